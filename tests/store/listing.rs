//! Listing and summaries: a run's status, wait, note and times as `list` and `summary` give
//! them.

use flow::store::{Checkpoint, CheckpointStore, Filter, RunSummary, Status, Wait};

use super::harness::*;

pub(crate) async fn list_and_summary_reflect_status_wait_and_times(store: impl CheckpointStore) {
    store.save(Checkpoint { at: 100, ..cp(1, 0) }).await.unwrap();
    store.save(Checkpoint { at: 150, wait: Some(Wait::Signal), ..cp(1, 1) }).await.unwrap();
    let timer = Checkpoint { at: 200, wait: Some(Wait::Timer), wake_at: Some(1_000), ..cp(2, 0) };
    store.save(Checkpoint { machine: "other".into(), ..timer }).await.unwrap();
    store.save(Checkpoint { at: 300, ..cp(3, 0) }).await.unwrap();
    store.save(Checkpoint { at: 350, status: Status::Failed, ..cp(3, 1) }).await.unwrap();
    store.save(Checkpoint { at: 400, ..cp(4, 0) }).await.unwrap();
    store.mark(id(4), Status::Stuck, Some("why".into()), None).await.unwrap();

    // `cp` names a checkpoint's state after its number: s0, s1, ...
    let summary = |(n, machine, state): (u128, &str, &str), status, note: Option<&str>, wait| {
        let (machine, state, note) = (machine.into(), state.into(), note.map(str::to_owned));
        move |created, updated| RunSummary {
            run: id(n),
            machine,
            key: None,
            status,
            state,
            note,
            wait,
            created,
            updated,
        }
    };
    let all = [
        summary((1, "job", "s1"), Status::Running, None, Some(Wait::Signal))(100, 150),
        summary((2, "other", "s0"), Status::Running, None, Some(Wait::Timer))(200, 200),
        summary((3, "job", "s1"), Status::Failed, None, None)(300, 350),
        summary((4, "job", "s0"), Status::Stuck, Some("why"), None)(400, 400),
    ];
    assert_eq!(store.list(Filter::new()).await.unwrap(), all);
    for expected in &all {
        assert_eq!(store.summary(expected.run).await.unwrap().as_ref(), Some(expected));
    }
    let list = async |filter| listed(store.list(filter).await.unwrap());
    assert_eq!(list(Filter::new().machine("job")).await, [id(1), id(3), id(4)]);
    assert_eq!(list(Filter::new().status(Status::Running)).await, [id(1), id(2)]);
    assert_eq!(list(Filter::new().machine("job").status(Status::Running)).await, [id(1)]);
    assert!(list(Filter::new().machine("nobody")).await.is_empty());
    assert_eq!(store.summary(id(9)).await.unwrap(), None);

    // Claimed, a run waits no more; a checkpoint clears a stuck run's note.
    claim(&store, "e1", &["other"], 1_000).await;
    assert_eq!(store.summary(id(2)).await.unwrap().unwrap().wait, None);
    store.save(Checkpoint { at: 450, ..cp(4, 1) }).await.unwrap();
    let expected = summary((4, "job", "s1"), Status::Running, None, None)(400, 450);
    assert_eq!(store.summary(id(4)).await.unwrap(), Some(expected));
}
