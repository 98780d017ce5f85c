//! Finished runs can be deleted, one at a time, by filter and age, or by a retention
//! setting; unfinished ones are refused with a clear error and left alone.

use std::time::Duration;

use flow::prelude::*;
use flow::store::{Filter, MemoryStore, Status, StoreError};
use flow::testing::TestClock;
use flow::{Engine, EngineError};

#[flow::machine]
pub mod chore {
    use super::*;

    /// Input 0 waits a week; others finish at once.
    #[state(start, to(done, later))]
    async fn begin(_cx: &mut (), n: u32) -> Result<Begin> {
        if n == 0 { goto!(later(n)) } else { goto!(done(n)) }
    }

    #[state(to(done), wait = "7d")]
    async fn later(_cx: &mut (), n: u32) -> Result<Later> {
        goto!(done(n))
    }

    #[state(end)]
    async fn done(_cx: &mut (), n: u32) -> Result<u32> {
        Ok(n)
    }
}

fn engine(retention: Option<Duration>) -> Engine {
    let builder = Engine::builder()
        .store(MemoryStore::new())
        .machine::<chore::Machine>()
        .clock(TestClock::new());
    match retention {
        Some(keep) => builder.retention(keep),
        None => builder,
    }
    .build()
    .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_finished_run_is_deleted_and_an_unfinished_one_refused() {
    let engine = engine(None);
    let finished = engine.start::<chore::Machine>(1).await.unwrap();
    let finished_id = finished.id();
    finished.output().await.unwrap();
    let waiting = engine.start::<chore::Machine>(0).await.unwrap().id();

    let refused = engine.delete(waiting).await.unwrap_err();
    assert!(
        matches!(
            refused,
            EngineError::Store(StoreError::Unfinished { status: Status::Running, .. })
        ),
        "{refused:?}"
    );
    assert_eq!(
        refused.to_string(),
        format!(
            "run {waiting} is running, not finished, and was not deleted; cancel it first \
             (Engine::cancel), then delete it"
        )
    );
    assert_eq!(engine.status(waiting).await.unwrap().status, Status::Running);

    engine.delete(finished_id).await.unwrap();
    assert!(matches!(engine.status(finished_id).await, Err(EngineError::UnknownRun { .. })));
    assert!(matches!(engine.delete(finished_id).await, Err(EngineError::UnknownRun { .. })));
}

#[tokio::test(start_paused = true)]
async fn finished_runs_older_than_an_age_are_deleted_by_filter() {
    let engine = engine(None);
    let old = engine.start::<chore::Machine>(1).await.unwrap();
    let old_id = old.id();
    old.output().await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let young = engine.start::<chore::Machine>(2).await.unwrap();
    let young_id = young.id();
    young.output().await.unwrap();
    let waiting = engine.start::<chore::Machine>(0).await.unwrap().id();

    let filter = Filter::new().machine("chore");
    let deleted = engine.delete_finished(filter, Duration::from_secs(1800)).await.unwrap();
    assert_eq!(deleted, 1);
    assert!(matches!(engine.status(old_id).await, Err(EngineError::UnknownRun { .. })));
    assert_eq!(engine.status(young_id).await.unwrap().status, Status::Completed);
    assert_eq!(engine.status(waiting).await.unwrap().status, Status::Running);
}

#[tokio::test(start_paused = true)]
async fn the_retention_setting_deletes_finished_runs_as_they_age() {
    let engine = engine(Some(Duration::from_secs(24 * 3600)));
    let done = engine.start::<chore::Machine>(1).await.unwrap();
    let done_id = done.id();
    done.output().await.unwrap();
    let waiting = engine.start::<chore::Machine>(0).await.unwrap().id();
    tokio::time::sleep(Duration::from_secs(12 * 3600)).await;
    assert_eq!(engine.status(done_id).await.unwrap().status, Status::Completed, "kept a day");
    tokio::time::sleep(Duration::from_secs(13 * 3600)).await;
    assert!(matches!(engine.status(done_id).await, Err(EngineError::UnknownRun { .. })));
    // The run still waiting for its week is kept.
    assert_eq!(engine.status(waiting).await.unwrap().status, Status::Running);
}
