//! Business keys: written with a run's checkpoint 0 and kept, given back by every read, and
//! a filter's criterion for listing and deleting.

use flow::store::{Checkpoint, CheckpointStore, Filter, Status};

use super::harness::*;

/// A run's business key is written with its checkpoint 0 and kept: later checkpoints cannot
/// change it, and every read, claim and summary gives it back; a filter by key lists and
/// deletes the runs started under it.
pub(crate) async fn a_keyed_run_keeps_its_key_and_lists_by_it(store: impl CheckpointStore) {
    let keyed = |n: u128, machine: &'static str, key: Option<&str>| Checkpoint {
        machine: machine.into(),
        key: key.map(str::to_owned),
        at: n as u64,
        ..cp(n, 0)
    };
    store.save(keyed(1, "job", Some("order-1"))).await.unwrap();
    store.save(keyed(2, "other", Some("order-2"))).await.unwrap();
    store.save(keyed(3, "job", None)).await.unwrap();
    store.save(keyed(4, "other", Some("order-1"))).await.unwrap();
    let key = Some("order-1".to_owned());
    assert_eq!(store.latest(id(1)).await.unwrap().unwrap().key, key);
    assert_eq!(store.summary(id(1)).await.unwrap().unwrap().key, key);
    assert_eq!(store.summary(id(3)).await.unwrap().unwrap().key, None);

    // A later checkpoint without the key, or with another, leaves it as it was.
    let claimed = claim(&store, "e1", JOB, 0).await;
    let first = claimed.iter().find(|claim| claim.checkpoint.run == id(1)).unwrap();
    assert_eq!(first.checkpoint.key, key);
    store.save(under(1, 1, &first.lease)).await.unwrap();
    let other = Some("changed".to_owned());
    store.save(Checkpoint { key: other, ..under(1, 2, &first.lease) }).await.unwrap();
    let done = Checkpoint { status: Status::Completed, ..under(1, 3, &first.lease) };
    store.save(done).await.unwrap();
    assert_eq!(store.latest(id(1)).await.unwrap().unwrap().key, key);

    let keys = store.list(Filter::new()).await.unwrap().into_iter().map(|s| (s.run, s.key));
    let order = |n: u32| Some(format!("order-{n}"));
    assert_eq!(
        keys.collect::<Vec<_>>(),
        [(id(1), order(1)), (id(2), order(2)), (id(3), None), (id(4), order(1))]
    );
    let list = async |filter| listed(store.list(filter).await.unwrap());
    assert_eq!(list(Filter::new().key("order-1")).await, [id(1), id(4)]);
    assert_eq!(list(Filter::new().key("order-1").machine("other")).await, [id(4)]);
    assert_eq!(list(Filter::new().key("order-2").status(Status::Running)).await, [id(2)]);
    assert!(list(Filter::new().key("changed")).await.is_empty());
    assert!(list(Filter::new().key("order-")).await.is_empty());

    // Deleting by key spares the runs of other keys and those without one.
    store.save(Checkpoint { status: Status::Cancelled, ..cp(2, 1) }).await.unwrap();
    let third = lease_of(&claimed, 3);
    store.save(Checkpoint { status: Status::Cancelled, ..under(3, 1, &third) }).await.unwrap();
    assert_eq!(store.delete_finished(Filter::new().key("order-2"), u64::MAX).await.unwrap(), 1);
    assert_eq!(store.delete_finished(Filter::new().key("order-1"), u64::MAX).await.unwrap(), 1);
    assert_eq!(list(Filter::new()).await, [id(3), id(4)]);
}
