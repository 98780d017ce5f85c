//! Leases: taken over once they lapse, their holder fenced; released at once, unless
//! stale.

use flow::store::{Checkpoint, CheckpointStore, Lease, Wait};

use super::harness::*;

pub(crate) async fn an_expired_lease_is_taken_over_and_its_holder_fenced(
    store: impl CheckpointStore,
) {
    // In real time: a store may measure leases on a clock of its own (the database's).
    const LEASE: u64 = 400;
    let beat = |owner: &'static str| {
        let now = wall_ms();
        store.heartbeat(owner, now, now + LEASE)
    };
    beat("e1").await.unwrap();
    store.save(cp(1, 0)).await.unwrap();
    store.save(cp(2, 0)).await.unwrap();
    store.save(Checkpoint { machine: "other".into(), ..cp(3, 0) }).await.unwrap();
    let held = claim(&store, "e1", &["job", "other"], 0).await;
    assert_eq!(held.len(), 3);
    store.save(cp(4, 0)).await.unwrap(); // runnable, held by no one

    assert!(store.take_over("e2", JOB, wall_ms(), 10).await.unwrap().is_empty());
    sleep_ms(LEASE / 2).await;
    beat("e1").await.unwrap();
    sleep_ms(LEASE / 2 + 100).await;
    // Past the first lease's end, but renewed.
    assert!(store.take_over("e2", JOB, wall_ms(), 10).await.unwrap().is_empty());
    sleep_ms(LEASE).await;

    beat("e2").await.unwrap();
    let mut taken = store.take_over("e2", JOB, wall_ms(), 1).await.unwrap();
    taken.extend(store.take_over("e2", JOB, wall_ms(), 10).await.unwrap());
    let mut ids = runs(&taken);
    ids.sort();
    assert_eq!(ids, [id(1), id(2)], "only the lapsed runs of the named machines");
    for claim in &taken {
        let n = claim.checkpoint.run.as_u128();
        assert!(claim.taken_over);
        assert_eq!(&*claim.lease.owner, "e2");
        assert!(claim.lease.token > lease_of(&held, n).token);
        assert_eq!(claim.checkpoint, cp(n, 0));
    }
    assert_fenced(store.save(under(1, 1, &lease_of(&held, 1))).await, 1);
    store.save(under(1, 1, &lease_of(&taken, 1))).await.unwrap();
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(cp(1, 1)));
}

fn wall_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    since.as_millis() as u64
}

pub(crate) async fn sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

pub(crate) async fn release_frees_a_run_at_once_unless_its_lease_is_stale(
    store: impl CheckpointStore,
) {
    let backoff = Checkpoint { wait: Some(Wait::Backoff), wake_at: Some(1_000), ..cp(1, 0) };
    store.save(backoff).await.unwrap();
    let first = claim_one(&store, "e1", 1_000).await;
    assert!(claim(&store, "e2", JOB, u64::MAX).await.is_empty());
    store.release(id(1), first.lease.clone()).await.unwrap();
    // Runnable at once: at 0, well before the backoff it was claimed from.
    let second = claim_one(&store, "e1", 0).await;
    assert!(!second.taken_over);

    // Stale releases, by the same engine or with another's name, are ignored.
    store.release(id(1), first.lease).await.unwrap();
    let impostor = Lease { owner: "e2".into(), token: second.lease.token };
    store.release(id(1), impostor).await.unwrap();
    assert!(claim(&store, "e3", JOB, u64::MAX).await.is_empty());
    store.save(under(1, 1, &second.lease)).await.unwrap();
}
