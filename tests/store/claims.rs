//! Claims: which runs are due, for which machines, how many, in which order, each under a
//! fresh token; and when the next one will be due.

use flow::store::{Checkpoint, CheckpointStore, Wait};

use super::harness::*;

/// The checkpoint as written, its `wait` included: the engine tells a run waking from its own
/// wait from one resumed by another engine by `Claimed::checkpoint.wait`.
pub(crate) async fn a_claim_returns_the_latest_checkpoint_as_written(store: impl CheckpointStore) {
    store.save(cp(1, 0)).await.unwrap();
    let lease = claim_one(&store, "e1", 0).await.lease;
    let backoff = Checkpoint {
        wait: Some(Wait::Backoff),
        wake_at: Some(500),
        entries: r#"["failed"]"#.into(),
        ..under(1, 1, &lease)
    };
    store.save(backoff.clone()).await.unwrap();
    let claimed = claim_one(&store, "e2", 500).await;
    assert_eq!(claimed.checkpoint, stored(&backoff));
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(stored(&backoff)));
}

pub(crate) async fn a_waiting_run_is_claimed_from_its_deadline_and_not_before(
    store: impl CheckpointStore,
) {
    store.save(cp(1, 0)).await.unwrap();
    let first = claim_one(&store, "e1", 0).await;
    let backoff = Checkpoint { wait: Some(Wait::Backoff), wake_at: Some(1_000), ..cp(1, 1) };
    store.save(Checkpoint { lease: Some(first.lease.clone()), ..backoff }).await.unwrap();
    let timer = Checkpoint { wait: Some(Wait::Timer), wake_at: Some(1_000), ..cp(2, 0) };
    let timeout = Checkpoint { wait: Some(Wait::Signal), wake_at: Some(1_000), ..cp(3, 0) };
    let signal = Checkpoint { wait: Some(Wait::Signal), ..cp(4, 0) };
    for checkpoint in [timer, timeout, signal] {
        store.save(checkpoint).await.unwrap();
    }

    assert!(claim(&store, "e2", JOB, 999).await.is_empty());
    let claimed = claim(&store, "e2", JOB, 1_000).await;
    let mut woken = runs(&claimed);
    woken.sort();
    assert_eq!(woken, [id(1), id(2), id(3)]);
    for claim in &claimed {
        assert_eq!((&*claim.lease.owner, claim.taken_over, claim.halt), ("e2", false, None));
    }
    let backoff = claimed.iter().find(|claim| claim.checkpoint.run == id(1)).unwrap();
    assert!(backoff.lease.token > first.lease.token);
    // Waiting for a signal without a deadline: never, however late.
    assert!(claim(&store, "e3", JOB, u64::MAX).await.is_empty());
    assert_eq!(store.next_due(JOB).await.unwrap(), None);
}

pub(crate) async fn claim_takes_only_the_named_machines(store: impl CheckpointStore) {
    for (n, machine) in [(1, "job"), (2, "other"), (3, "third")] {
        store.save(Checkpoint { machine: machine.into(), ..cp(n, 0) }).await.unwrap();
    }
    assert!(claim(&store, "e1", &[], 0).await.is_empty());
    assert!(claim(&store, "e1", &["nobody"], 0).await.is_empty());
    assert_eq!(runs(&claim(&store, "e1", &["other"], 0).await), [id(2)]);
    let mut rest = runs(&claim(&store, "e1", &["third", "job", "other"], 0).await);
    rest.sort();
    assert_eq!(rest, [id(1), id(3)]);
}

pub(crate) async fn claim_honours_its_limit_earliest_due_first(store: impl CheckpointStore) {
    for (n, due) in [(1, 40), (2, 10), (3, 30), (4, 20)] {
        let checkpoint = Checkpoint { wait: Some(Wait::Timer), wake_at: Some(due), ..cp(n, 0) };
        store.save(checkpoint).await.unwrap();
    }
    assert_eq!(runs(&store.claim("e1", JOB, 100, 2).await.unwrap()), [id(2), id(4)]);
    assert_eq!(runs(&store.claim("e1", JOB, 100, 1).await.unwrap()), [id(3)]);
    assert!(store.claim("e1", JOB, 100, 0).await.unwrap().is_empty());
    assert_eq!(runs(&store.claim("e1", JOB, 100, 5).await.unwrap()), [id(1)]);
}

pub(crate) async fn each_claim_of_a_run_gets_a_higher_token(store: impl CheckpointStore) {
    store.save(cp(1, 0)).await.unwrap();
    let mut last = None;
    for owner in ["e1", "e2", "e1", "e1"] {
        let claimed = claim_one(&store, owner, 0).await;
        assert!(last.is_none_or(|last| claimed.lease.token > last), "{claimed:?}");
        last = Some(claimed.lease.token);
        store.release(id(1), claimed.lease).await.unwrap();
    }
}

pub(crate) async fn next_due_is_the_earliest_due_run_no_engine_holds(store: impl CheckpointStore) {
    assert_eq!(store.next_due(JOB).await.unwrap(), None);
    let timer = |n, due| Checkpoint { wait: Some(Wait::Timer), wake_at: Some(due), ..cp(n, 0) };
    store.save(timer(1, 300)).await.unwrap();
    store.save(Checkpoint { wait: Some(Wait::Backoff), ..timer(2, 200) }).await.unwrap();
    store.save(Checkpoint { machine: "other".into(), ..timer(3, 100) }).await.unwrap();
    store.save(Checkpoint { wait: Some(Wait::Signal), wake_at: None, ..cp(4, 0) }).await.unwrap();
    store.save(timer(5, 50)).await.unwrap();
    assert_eq!(store.next_due(JOB).await.unwrap(), Some(50));
    // Claimed, run 5 is held: no longer due.
    assert_eq!(runs(&claim(&store, "e1", JOB, 50).await), [id(5)]);
    assert_eq!(store.next_due(JOB).await.unwrap(), Some(200));
    assert_eq!(store.next_due(&["other"]).await.unwrap(), Some(100));
    assert_eq!(store.next_due(&["job", "other"]).await.unwrap(), Some(100));
    assert_eq!(store.next_due(&["nobody"]).await.unwrap(), None);
    assert_eq!(runs(&claim(&store, "e1", JOB, 250).await), [id(2)]);
    assert_eq!(store.next_due(JOB).await.unwrap(), Some(300));
}
