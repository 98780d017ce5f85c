//! Deleting runs: one finished run, or the finished runs a filter matches, with their
//! history; never an unfinished one.

use flow::store::{Checkpoint, CheckpointStore, Filter, Status, StoreError};

use super::harness::*;

pub(crate) async fn delete_removes_a_finished_run_and_its_history(store: impl CheckpointStore) {
    store.save(Checkpoint { entries: r#"["a"]"#.into(), ..cp(1, 0) }).await.unwrap();
    let done = Checkpoint { status: Status::Completed, entries: r#"["b"]"#.into(), ..cp(1, 1) };
    store.save(done).await.unwrap();
    assert!(store.delete(id(1)).await.unwrap());
    assert_eq!(store.latest(id(1)).await.unwrap(), None);
    assert!(store.history(id(1)).await.unwrap().is_empty());
    assert_eq!(store.summary(id(1)).await.unwrap(), None);
    assert!(store.list(Filter::new()).await.unwrap().is_empty());
    assert!(!store.delete(id(1)).await.unwrap());
    assert!(!store.delete(id(9)).await.unwrap());
    // The id begins anew, with nothing of the deleted run's history.
    store.save(Checkpoint { entries: r#"["c"]"#.into(), ..cp(1, 0) }).await.unwrap();
    assert_eq!(store.history(id(1)).await.unwrap(), [r#"["c"]"#]);
}

pub(crate) async fn delete_refuses_an_unfinished_run(store: impl CheckpointStore) {
    store.save(Checkpoint { entries: r#"["a"]"#.into(), ..cp(1, 0) }).await.unwrap();
    store.save(cp(2, 0)).await.unwrap();
    store.mark(id(2), Status::Stuck, None, None).await.unwrap();
    for (n, status) in [(1, Status::Running), (2, Status::Stuck)] {
        let refused = store.delete(id(n)).await;
        assert!(
            matches!(refused, Err(StoreError::Unfinished { run, status: s }) if run == id(n) && s == status),
            "{refused:?}"
        );
        assert_eq!(store.latest(id(n)).await.unwrap(), Some(cp(n, 0)));
    }
    assert_eq!(store.history(id(1)).await.unwrap(), [r#"["a"]"#]);
    assert_eq!(store.delete_finished(Filter::new(), u64::MAX).await.unwrap(), 0);
    assert_eq!(listed(store.list(Filter::new()).await.unwrap()), [id(1), id(2)]);
}

pub(crate) async fn delete_finished_deletes_matching_runs_finished_before(
    store: impl CheckpointStore,
) {
    let end = |n, machine: &'static str, status, at| Checkpoint {
        machine: machine.into(),
        status,
        at,
        entries: r#"["x"]"#.into(),
        ..cp(n, 1)
    };
    for (n, machine, status, at) in [
        (1, "job", Status::Completed, 100),
        (2, "job", Status::Failed, 250),
        (3, "other", Status::Cancelled, 100),
        (4, "job", Status::Completed, 300),
        (5, "job", Status::Cancelled, 200),
        (6, "job", Status::Running, 50),
    ] {
        store.save(Checkpoint { machine: machine.into(), at: n as u64, ..cp(n, 0) }).await.unwrap();
        store.save(end(n, machine, status, at)).await.unwrap();
    }
    let left = async || listed(store.list(Filter::new()).await.unwrap());
    // Finished before 250: not run 2, finished at 250 exactly.
    assert_eq!(store.delete_finished(Filter::new().machine("job"), 250).await.unwrap(), 2);
    assert_eq!(left().await, [id(2), id(3), id(4), id(6)]);
    let completed = Filter::new().status(Status::Completed);
    assert_eq!(store.delete_finished(completed, u64::MAX).await.unwrap(), 1);
    assert_eq!(left().await, [id(2), id(3), id(6)]);
    assert_eq!(store.delete_finished(Filter::new(), u64::MAX).await.unwrap(), 2);
    assert_eq!(left().await, [id(6)]);
    for n in 1..=5 {
        assert!(store.history(id(n)).await.unwrap().is_empty(), "run {n}");
    }
    assert_eq!(store.history(id(6)).await.unwrap(), [r#"["x"]"#]);
}
