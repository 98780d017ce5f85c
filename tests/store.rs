//! The `CheckpointStore` contract, checked the same way on both stores: the compare-and-set
//! on sequence numbers, reads, listing and marks.

use std::borrow::Cow;
use std::path::PathBuf;

use flow::RunId;
use flow::store::{
    Checkpoint, CheckpointStore, Filter, MemoryStore, SqliteStore, Status, StoreError,
};

fn checkpoint(run: RunId, seq: u64, status: Status) -> Checkpoint {
    Checkpoint {
        run,
        seq,
        machine: Cow::Borrowed("job"),
        version: 1,
        fingerprint: Cow::Borrowed("f1"),
        status,
        state: Cow::Owned(format!("s{seq}")),
        wake_at: (seq == 1).then_some(1_800_000_000_000),
        snapshot: format!("{{\"seq\":{seq}}}"),
        entries: "[]".into(),
    }
}

async fn contract(store: impl CheckpointStore) {
    let (a, b) = (RunId::from_u128(1), RunId::from_u128(2));

    // A run begins with checkpoint 0, once.
    store.save(checkpoint(a, 0, Status::Running)).await.unwrap();
    let again = store.save(checkpoint(a, 0, Status::Running)).await.unwrap_err();
    assert!(matches!(again, StoreError::Conflict { seq: 0, stored: Some(0), .. }), "{again}");
    // A run that does not exist cannot begin at 1.
    let skipped = store.save(checkpoint(b, 1, Status::Running)).await.unwrap_err();
    assert!(matches!(skipped, StoreError::Conflict { seq: 1, stored: None, .. }), "{skipped}");

    // Each checkpoint follows the last: no gap, no second writer of the same number.
    store.save(checkpoint(a, 1, Status::Running)).await.unwrap();
    let gap = store.save(checkpoint(a, 3, Status::Running)).await.unwrap_err();
    assert!(matches!(gap, StoreError::Conflict { seq: 3, stored: Some(1), .. }), "{gap}");
    let stale = store.save(checkpoint(a, 1, Status::Running)).await.unwrap_err();
    assert!(matches!(stale, StoreError::Conflict { seq: 1, stored: Some(1), .. }), "{stale}");
    store.save(checkpoint(b, 0, Status::Running)).await.unwrap();
    store.save(checkpoint(a, 2, Status::Completed)).await.unwrap();

    // What was written reads back, in order, whole.
    let latest = store.latest(a).await.unwrap().unwrap();
    assert_eq!(latest, checkpoint(a, 2, Status::Completed));
    let all = store.checkpoints(a).await.unwrap();
    assert_eq!(
        all,
        [
            checkpoint(a, 0, Status::Running),
            checkpoint(a, 1, Status::Running),
            checkpoint(a, 2, Status::Completed),
        ]
    );
    let ghost = RunId::from_u128(3);
    assert_eq!(store.latest(ghost).await.unwrap(), None);
    assert!(store.checkpoints(ghost).await.unwrap().is_empty());
    assert_eq!(store.summary(ghost).await.unwrap(), None);

    // A finishing checkpoint sets the run's status; listing filters by it, oldest first.
    let runs = |filter| async { store.list(filter).await.unwrap().into_iter().map(|r| r.run) };
    assert_eq!(runs(Filter::new()).await.collect::<Vec<_>>(), [a, b]);
    assert_eq!(runs(Filter::new().status(Status::Completed)).await.collect::<Vec<_>>(), [a]);
    assert_eq!(runs(Filter::new().status(Status::Running)).await.collect::<Vec<_>>(), [b]);
    assert_eq!(runs(Filter::new().machine("other")).await.count(), 0);

    // A mark changes status and note, not the log.
    store.mark(b, Status::Stuck, Some("why".into())).await.unwrap();
    let summary = store.summary(b).await.unwrap().unwrap();
    assert_eq!((summary.status, summary.note.as_deref()), (Status::Stuck, Some("why")));
    assert_eq!(store.checkpoints(b).await.unwrap(), [checkpoint(b, 0, Status::Running)]);
}

#[tokio::test]
async fn memory_store_keeps_the_contract() {
    contract(MemoryStore::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_store_keeps_the_contract() {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("store-contract.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    contract(SqliteStore::open(&path).unwrap()).await;
    // And it is all still there after reopening the file.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.checkpoints(RunId::from_u128(1)).await.unwrap().len(), 3);
}
