//! Reading a run back: its latest checkpoint, its history, and the history after a
//! checkpoint.

use flow::store::{Checkpoint, CheckpointStore, Status, Wait};

use super::harness::*;

pub(crate) async fn latest_is_the_newest_snapshot_and_history_the_entries_added(
    store: impl CheckpointStore,
) {
    store.save(Checkpoint { entries: r#"[{"n":0}]"#.into(), ..cp(1, 0) }).await.unwrap();
    let lease = claim_one(&store, "e1", 0).await.lease;
    let written = [
        under(1, 1, &lease),
        Checkpoint {
            entries: r#"[{"n":2},{"n":2.5}]"#.into(),
            wait: Some(Wait::Backoff),
            wake_at: Some(5_000),
            ..under(1, 2, &lease)
        },
        // A signal finishes the run, adding nothing.
        Checkpoint { status: Status::Completed, snapshot: r#"{"out":3}"#.into(), ..cp(1, 3) },
    ];
    for checkpoint in written {
        store.save(checkpoint.clone()).await.unwrap();
        assert_eq!(store.latest(id(1)).await.unwrap(), Some(stored(&checkpoint)));
    }
    assert_eq!(store.history(id(1)).await.unwrap(), [r#"[{"n":0}]"#, r#"[{"n":2},{"n":2.5}]"#]);
    assert_eq!(store.latest(id(9)).await.unwrap(), None);
    assert!(store.history(id(9)).await.unwrap().is_empty());
}

pub(crate) async fn history_after_gives_each_later_checkpoints_entries_with_its_seq(
    store: impl CheckpointStore,
) {
    store.save(Checkpoint { entries: r#"["begun"]"#.into(), ..cp(1, 0) }).await.unwrap();
    let lease = claim_one(&store, "e1", 0).await.lease;
    store.save(under(1, 1, &lease)).await.unwrap();
    let second = Checkpoint { entries: r#"["two"]"#.into(), ..under(1, 2, &lease) };
    store.save(second).await.unwrap();
    let third = Checkpoint { entries: r#"["three"]"#.into(), ..under(1, 3, &lease) };
    store.save(third).await.unwrap();
    let rows = |after| store.history_after(id(1), after);
    let all =
        [(0, r#"["begun"]"#.to_owned()), (2, r#"["two"]"#.into()), (3, r#"["three"]"#.into())];
    assert_eq!(rows(0).await.unwrap().unwrap(), all[1..]);
    // Checkpoint 1 added nothing: after it is as after 0.
    assert_eq!(rows(1).await.unwrap().unwrap(), all[1..]);
    assert_eq!(rows(2).await.unwrap().unwrap(), all[2..]);
    assert!(rows(3).await.unwrap().unwrap().is_empty());
    assert!(rows(u64::MAX).await.unwrap().unwrap().is_empty());
    assert!(store.history_after(id(9), 0).await.unwrap().unwrap().is_empty());
}
