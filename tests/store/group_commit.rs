//! Group commit, which SQLite and PostgreSQL both do: the body of their tests, each store's
//! own in `sqlite_only` and `postgres_only` (each makes a write its database fails).

use flow::store::{Checkpoint, CheckpointStore, Filter, StoreError};

use super::harness::*;

/// Group commit: among 200 writes, three are refused or fail (a run that exists, a run
/// another engine holds, and `doomed`, run 3's checkpoint 2, which the database itself fails
/// after the store began writing it); each fails alone, and the rest of its batches commit.
pub(crate) async fn group_commit_fails_a_refused_or_failing_write_alone<
    S: CheckpointStore + Clone,
>(
    store: S,
    doomed: Checkpoint,
) {
    store.save(cp(1, 0)).await.unwrap();
    store.save(cp(2, 0)).await.unwrap();
    claim(&store, "e1", JOB, 0).await;
    store.save(Checkpoint { entries: r#"["kept"]"#.into(), ..cp(3, 0) }).await.unwrap();
    store.save(cp(3, 1)).await.unwrap();

    let mut writes = tokio::task::JoinSet::new();
    let mut save = |checkpoint: Checkpoint| {
        let store = store.clone();
        writes.spawn(async move { (checkpoint.run, store.save(checkpoint).await) })
    };
    // The three doomed writes go in the middle of the stream, so they share its batches.
    for n in 100..300 {
        save(Checkpoint { entries: format!("[{n}]"), ..cp(n, 0) });
        if n == 150 {
            save(Checkpoint { snapshot: "{}".into(), ..cp(1, 0) }); // already exists
            save(cp(2, 1)); // held by e1
            save(doomed.clone());
        }
    }
    while let Some(joined) = writes.join_next().await {
        let (run, result) = joined.unwrap();
        match run.as_u128() {
            1 => assert!(matches!(result, Err(StoreError::Conflict { .. })), "{result:?}"),
            2 => assert_fenced(result, 2),
            3 => assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}"),
            n => {
                result.unwrap();
                assert_eq!(store.history(run).await.unwrap(), [format!("[{n}]")]);
            }
        }
    }
    assert_eq!(store.list(Filter::new()).await.unwrap().len(), 203);
    assert_eq!(store.latest(id(3)).await.unwrap(), Some(cp(3, 1)));
    assert_eq!(store.history(id(3)).await.unwrap(), [r#"["kept"]"#]);
    store.save(cp(3, 2)).await.unwrap();
    assert_eq!(store.history(id(3)).await.unwrap(), [r#"["kept"]"#]);
}
