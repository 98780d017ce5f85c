//! Halts and marks: a cancel or pause requested of a run's holder, and a run marked stuck or
//! running again.

use flow::store::{Checkpoint, CheckpointStore, Halt, Lease, Status, Wait};

use super::harness::*;

pub(crate) async fn halts_are_delivered_to_the_holder_and_to_the_next_claim(
    store: impl CheckpointStore,
) {
    store.save(cp(1, 0)).await.unwrap();
    let held = claim_one(&store, "e1", 0).await;
    assert!(store.heartbeat("e1", 0, 10_000).await.unwrap().is_empty());

    assert!(store.request_halt(id(1), Halt::Pause).await.unwrap());
    assert_eq!(store.heartbeat("e1", 0, 10_000).await.unwrap(), [(id(1), Halt::Pause)]);
    assert!(store.heartbeat("e2", 0, 10_000).await.unwrap().is_empty());
    assert!(store.request_halt(id(1), Halt::Cancel).await.unwrap());
    // A cancel is not turned back into a pause.
    assert!(store.request_halt(id(1), Halt::Pause).await.unwrap());
    assert_eq!(store.heartbeat("e1", 0, 10_000).await.unwrap(), [(id(1), Halt::Cancel)]);

    // The holder backs off before honouring it: the next claim gets it.
    let backoff = Checkpoint { wait: Some(Wait::Backoff), wake_at: Some(100), ..cp(1, 1) };
    store.save(Checkpoint { lease: Some(held.lease), ..backoff }).await.unwrap();
    assert!(store.heartbeat("e1", 0, 10_000).await.unwrap().is_empty());
    let next = claim_one(&store, "e2", 100).await;
    assert_eq!(next.halt, Some(Halt::Cancel));
    assert_eq!(store.heartbeat("e2", 0, 10_000).await.unwrap(), [(id(1), Halt::Cancel)]);

    assert!(!store.request_halt(id(9), Halt::Cancel).await.unwrap());
    let done = Checkpoint { status: Status::Cancelled, ..under(1, 2, &next.lease) };
    store.save(done).await.unwrap();
    assert!(!store.request_halt(id(1), Halt::Cancel).await.unwrap());
}

pub(crate) async fn a_checkpoint_that_ends_or_pauses_a_run_clears_its_halt(
    store: impl CheckpointStore,
) {
    for (n, status) in [(1, Status::Paused), (2, Status::Cancelled)] {
        store.save(cp(n, 0)).await.unwrap();
        let held = claim_one(&store, "e1", 0).await;
        assert!(store.request_halt(id(n), Halt::Pause).await.unwrap());
        store.save(Checkpoint { status, ..under(n, 1, &held.lease) }).await.unwrap();
        // Made runnable again (for a finished run, only to look), it comes without the halt.
        store.mark(id(n), Status::Running, None, None).await.unwrap();
        let again = claim_one(&store, "e1", 0).await;
        assert_eq!(again.halt, None, "{status}");
        assert!(store.heartbeat("e1", 0, 10_000).await.unwrap().is_empty());
        // Out of the next round's way.
        store.release(id(n), again.lease).await.unwrap();
        store.mark(id(n), status, None, None).await.unwrap();
    }
}

pub(crate) async fn mark_is_fenced_stuck_holds_a_run_and_running_frees_it(
    store: impl CheckpointStore,
) {
    store
        .save(Checkpoint { wait: Some(Wait::Backoff), wake_at: Some(5_000), ..cp(1, 0) })
        .await
        .unwrap();
    store.mark(id(1), Status::Stuck, Some("no version 3".into()), None).await.unwrap();
    assert!(claim(&store, "e1", JOB, u64::MAX).await.is_empty());
    assert_eq!(store.next_due(JOB).await.unwrap(), None);
    let summary = store.summary(id(1)).await.unwrap().unwrap();
    assert_eq!((summary.status, summary.note.as_deref()), (Status::Stuck, Some("no version 3")));
    assert_eq!(summary.wait, None);

    store.mark(id(1), Status::Running, None, None).await.unwrap();
    let claimed = claim_one(&store, "e1", 0).await; // at once, before its backoff's end
    assert_eq!(claimed.checkpoint.seq, 0);

    // A held run is marked only under its claim: not from outside, not under a stale one.
    let outside = store.mark(id(1), Status::Stuck, Some("from outside".into()), None).await;
    assert_fenced(outside, 1);
    let stale = Lease { token: claimed.lease.token - 1, ..claimed.lease.clone() };
    assert_fenced(store.mark(id(1), Status::Stuck, None, Some(stale)).await, 1);
    assert_eq!(store.summary(id(1)).await.unwrap().unwrap().status, Status::Running);
    // Marked by its holder, it is let go of: the holder's writes are refused.
    let panicked = Some("panicked".into());
    store.mark(id(1), Status::Stuck, panicked, Some(claimed.lease.clone())).await.unwrap();
    assert_fenced(store.save(under(1, 1, &claimed.lease)).await, 1);
    assert!(store.take_over("e2", JOB, u64::MAX, 10).await.unwrap().is_empty());
    // An unknown run is left alone.
    store.mark(id(9), Status::Running, None, None).await.unwrap();
    assert_eq!(store.summary(id(9)).await.unwrap(), None);
}
