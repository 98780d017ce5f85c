//! Writing checkpoints: the compare-and-set on sequence numbers, and fencing by the claim
//! the run is held under.

use flow::store::{Checkpoint, CheckpointStore, Filter, StoreError, Wait};

use super::harness::*;

pub(crate) async fn seq_0_creates_a_run_once_and_each_checkpoint_follows_the_last(
    store: impl CheckpointStore,
) {
    let first = Checkpoint { entries: r#"["begun"]"#.into(), ..cp(1, 0) };
    store.save(first.clone()).await.unwrap();
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(stored(&first)));

    let again = Checkpoint { snapshot: "{}".into(), entries: r#"["again"]"#.into(), ..cp(1, 0) };
    let refused = store.save(again).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { run, seq: 0, stored: Some(0) }) if run == id(1)),
        "{refused:?}"
    );
    let gap = Checkpoint { entries: r#"["gap"]"#.into(), at: 9_000, ..cp(1, 2) };
    let refused = store.save(gap).await;
    assert!(matches!(refused, Err(StoreError::Conflict { seq: 2, stored: Some(0), .. })));
    // A run that does not exist cannot begin past 0.
    let refused = store.save(cp(2, 1)).await;
    assert!(matches!(refused, Err(StoreError::Conflict { seq: 1, stored: None, .. })));

    // Refused, nothing was written.
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(stored(&first)));
    assert_eq!(store.history(id(1)).await.unwrap(), [r#"["begun"]"#]);
    assert_eq!(store.summary(id(1)).await.unwrap().unwrap().updated, first.at);
    assert_eq!(store.latest(id(2)).await.unwrap(), None);
    assert_eq!(listed(store.list(Filter::new()).await.unwrap()), [id(1)]);

    store.save(cp(1, 1)).await.unwrap();
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(cp(1, 1)));
}

pub(crate) async fn writes_are_fenced_by_the_current_claim(store: impl CheckpointStore) {
    store.save(cp(1, 0)).await.unwrap();
    let first = claim_one(&store, "e1", 0).await;
    store.save(under(1, 1, &first.lease)).await.unwrap();
    store.release(id(1), first.lease.clone()).await.unwrap();

    // Claimed again, even by the same engine: the first claim's token is stale.
    let second = claim_one(&store, "e1", 0).await;
    assert_fenced(store.save(under(1, 2, &first.lease)).await, 1);
    store.release(id(1), second.lease.clone()).await.unwrap();
    let third = claim_one(&store, "e2", 0).await;
    assert_fenced(store.save(under(1, 2, &second.lease)).await, 1);
    // A write from outside the run, while an engine holds it.
    assert_fenced(store.save(cp(1, 2)).await, 1);
    assert_eq!(store.latest(id(1)).await.unwrap().unwrap().seq, 1);

    // The holder waits for a signal: no engine holds the run, not even its last holder.
    let waiting = Checkpoint { wait: Some(Wait::Signal), ..under(1, 2, &third.lease) };
    store.save(waiting).await.unwrap();
    assert_fenced(store.save(under(1, 3, &third.lease)).await, 1);
    store.save(cp(1, 3)).await.unwrap();
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(cp(1, 3)));
}
