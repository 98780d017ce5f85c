//! Faults of the store and of the engine itself: a failed checkpoint write is retried and
//! nothing is announced before it is durable; a store lost for longer than the lease lets
//! another engine finish the run, exactly once; a panic in the engine's own code leaves a
//! clear error in the store, never a zombie.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use flow::prelude::*;
use flow::store::{
    Checkpoint, CheckpointStore, Claimed, Filter, Halt, Lease, MemoryStore, RunSummary, Status,
    StoreError,
};
use flow::testing::TestClock;
use flow::{Engine, EngineError, EventKind, RunId};
use serde::{Deserialize, Serialize};

/// A store in front of a [`MemoryStore`] that fails on demand: the next `fail_saves` saves,
/// every release while `fail_releases`, or every call while `down`.
#[derive(Clone, Default)]
struct Flaky {
    inner: MemoryStore,
    fail_saves: Arc<AtomicU32>,
    fail_releases: Arc<AtomicBool>,
    down: Arc<AtomicBool>,
}

impl Flaky {
    fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("the disk is gone".into()));
        }
        Ok(())
    }
}

impl CheckpointStore for Flaky {
    async fn save(&self, checkpoint: Checkpoint) -> Result<(), StoreError> {
        self.check()?;
        let failing = self.fail_saves.load(Ordering::SeqCst);
        if failing > 0 {
            self.fail_saves.store(failing - 1, Ordering::SeqCst);
            return Err(StoreError::Backend("disk full".into()));
        }
        self.inner.save(checkpoint).await
    }
    async fn claim(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.check()?;
        self.inner.claim(owner, machines, now, limit).await
    }
    async fn take_over(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.check()?;
        self.inner.take_over(owner, machines, now, limit).await
    }
    async fn next_due(&self, machines: &[&'static str]) -> Result<Option<u64>, StoreError> {
        self.check()?;
        self.inner.next_due(machines).await
    }
    async fn heartbeat(
        &self,
        owner: &str,
        now: u64,
        expires: u64,
    ) -> Result<Vec<(RunId, Halt)>, StoreError> {
        self.check()?;
        self.inner.heartbeat(owner, now, expires).await
    }
    async fn release(&self, run: RunId, lease: Lease) -> Result<(), StoreError> {
        self.check()?;
        if self.fail_releases.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("the release was lost".into()));
        }
        self.inner.release(run, lease).await
    }
    async fn request_halt(&self, run: RunId, halt: Halt) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.request_halt(run, halt).await
    }
    async fn latest(&self, run: RunId) -> Result<Option<Checkpoint>, StoreError> {
        self.check()?;
        self.inner.latest(run).await
    }
    async fn history(&self, run: RunId) -> Result<Vec<String>, StoreError> {
        self.check()?;
        self.inner.history(run).await
    }
    async fn summary(&self, run: RunId) -> Result<Option<RunSummary>, StoreError> {
        self.check()?;
        self.inner.summary(run).await
    }
    async fn list(&self, filter: Filter) -> Result<Vec<RunSummary>, StoreError> {
        self.check()?;
        self.inner.list(filter).await
    }
    async fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
        lease: Option<Lease>,
    ) -> Result<(), StoreError> {
        self.check()?;
        self.inner.mark(run, status, note, lease).await
    }
    async fn delete_finished(&self, filter: Filter, before: u64) -> Result<u64, StoreError> {
        self.check()?;
        self.inner.delete_finished(filter, before).await
    }
    async fn delete(&self, run: RunId) -> Result<bool, StoreError> {
        self.check()?;
        self.inner.delete(run).await
    }
    fn shared_between_processes(&self) -> bool {
        false
    }
}

/// Whether `pack` of parcel 2 should wait for `RELEASE` before it finishes, and how often it
/// ran.
static HOLD: AtomicBool = AtomicBool::new(false);
static RELEASE: tokio::sync::Notify = tokio::sync::Notify::const_new();
static PACKS: AtomicU32 = AtomicU32::new(0);

/// `pack` of parcel 3 says it started, then waits to be let go.
static STARTED: tokio::sync::Notify = tokio::sync::Notify::const_new();
static LET_GO: tokio::sync::Notify = tokio::sync::Notify::const_new();

/// A context whose serialization panics on demand: a bug in user code that runs inside the
/// engine's own (checkpoint) code, not in a state body.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Parcel {
    pub explode: bool,
}

impl Serialize for Parcel {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Plain {
            explode: bool,
        }
        assert!(!self.explode, "the parcel's serializer exploded");
        Plain { explode: self.explode }.serialize(serializer)
    }
}

#[flow::machine]
pub mod shipping {
    use super::*;

    #[state(start, to(pack))]
    async fn label(_cx: &mut Parcel, id: u32) -> Result<Label> {
        goto!(pack(id))
    }

    #[state(to(send), retry(attempts = 3, backoff = "10ms"))]
    async fn pack(cx: &mut Parcel, id: u32) -> Result<Pack> {
        if id == 2 {
            PACKS.fetch_add(1, Ordering::SeqCst);
            if HOLD.load(Ordering::SeqCst) {
                RELEASE.notified().await;
            }
        }
        if id == 3 {
            STARTED.notify_one();
            LET_GO.notified().await;
        }
        cx.explode = id == 99;
        goto!(send(id))
    }

    #[state(end)]
    async fn send(_cx: &mut Parcel, id: u32) -> Result<u32> {
        Ok(id)
    }
}

type Shipping = shipping::Machine;

fn engine(store: impl CheckpointStore) -> Engine {
    Engine::builder()
        .store(store)
        .machine::<Shipping>()
        .clock(TestClock::new())
        .lease(Duration::from_secs(1))
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_failed_checkpoint_write_is_retried_and_nothing_is_announced_before_it_is_durable() {
    let store = Flaky::default();
    let engine = engine(store.clone());
    let mut events = engine.events();
    // Checkpoint 0 is written; the next write (the transition into `pack`) fails once.
    store.fail_saves.store(0, Ordering::SeqCst);
    let handle = engine.start_with::<Shipping>(1, Parcel::default()).await.unwrap();
    let run = handle.id();
    store.fail_saves.store(1, Ordering::SeqCst);
    assert_eq!(handle.output().await.unwrap(), 1);

    let mut seen = Vec::new();
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(1), events.next()).await
    {
        if event.run == run {
            seen.push(event.kind);
        }
    }
    let fault = seen.iter().position(|kind| matches!(kind, EventKind::StoreFault { .. }));
    let fault = fault.expect("subscribers hear of the fault");
    let to_pack = seen.iter().position(|kind| *kind == EventKind::Transitioned { to: "pack" });
    let to_pack = to_pack.expect("the transition is announced");
    let durable = seen.iter().position(|kind| *kind == EventKind::Checkpointed { seq: 1 });
    let durable = durable.expect("the retried checkpoint is written");
    assert!(fault < durable && durable < to_pack, "{seen:?}");
    assert_eq!(engine.status(run).await.unwrap().status, Status::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_store_lost_past_the_lease_lets_another_engine_finish_the_run_once() {
    let shared = MemoryStore::new();
    let lost = Flaky { inner: shared.clone(), ..Flaky::default() };
    let first = engine(lost.clone());
    let second = engine(shared.clone());
    PACKS.store(0, Ordering::SeqCst);
    HOLD.store(true, Ordering::SeqCst);
    let handle = first.start_with::<Shipping>(2, Parcel::default()).await.unwrap();
    let run = handle.id();
    while PACKS.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The first engine loses its store while `pack` runs, for longer than its lease.
    lost.down.store(true, Ordering::SeqCst);
    HOLD.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The second engine took the run over and finished it.
    let finished = second.handle::<Shipping>(run).await.unwrap().output().await.unwrap();
    assert_eq!(finished, 2);
    RELEASE.notify_waiters();
    tokio::time::sleep(Duration::from_secs(3)).await;
    lost.down.store(false, Ordering::SeqCst);

    let status = second.status(run).await.unwrap();
    let path: Vec<_> = status.history.iter().map(|e| (e.state, e.attempt)).collect();
    // `pack`'s transition was applied once: by the second engine, after the first one's
    // attempt was counted as interrupted.
    assert_eq!(path, [("label", 1), ("pack", 1), ("pack", 2), ("send", 1)], "{status:?}");
    let sends = status.history.iter().filter(|e| e.state == "send").count();
    assert_eq!(sends, 1);
    assert_eq!(status.status, Status::Completed);
}

#[tokio::test(start_paused = true)]
async fn a_panic_in_the_engine_leaves_a_clear_error_in_the_store_and_no_zombie() {
    let engine = engine(MemoryStore::new());
    let handle = engine.start_with::<Shipping>(99, Parcel::default()).await.unwrap();
    let run = handle.id();
    let error = handle.output().await.unwrap_err();
    let EngineError::Stopped { reason, .. } = &error else {
        panic!("expected the run stopped, got {error:?}");
    };
    assert!(reason.contains("the parcel's serializer exploded"), "{reason}");
    let status = engine.status(run).await.unwrap();
    assert_eq!(status.status, Status::Stuck);
    assert!(status.note.unwrap().contains("the engine failed while running it"));
    // Not a zombie: it can be cancelled, and then it is finished.
    engine.cancel(run).await.unwrap();
    assert_eq!(engine.status(run).await.unwrap().status, Status::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_store_error_that_stops_a_run_is_the_source_of_what_the_handle_returns() {
    let store = Flaky::default();
    let engine = engine(store.clone());
    let handle = engine.start_with::<Shipping>(3, Parcel::default()).await.unwrap();
    STARTED.notified().await;
    // At shutdown the run is handed back once `pack` ends; the store loses that release.
    store.fail_releases.store(true, Ordering::SeqCst);
    let shutdown = tokio::spawn({
        let engine = engine.clone();
        async move { engine.shutdown(Duration::from_secs(60)).await }
    });
    tokio::time::sleep(Duration::from_millis(1)).await;
    LET_GO.notify_one();
    let error = handle.output().await.unwrap_err();
    let EngineError::Stopped { reason, .. } = &error else {
        panic!("expected the run stopped, got {error:?}");
    };
    assert!(reason.contains("the release was lost"), "{reason}");
    let source = std::error::Error::source(&error).expect("the store's error is kept");
    let store_error = source.downcast_ref::<StoreError>().expect("as the StoreError itself");
    assert!(matches!(store_error, StoreError::Backend(_)), "{store_error:?}");
    shutdown.await.unwrap().unwrap();
}
