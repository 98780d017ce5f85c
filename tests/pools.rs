//! Resource pools and priorities: a pool's capacity bounds its holders, waiting attempts are
//! admitted by priority (lower first, arrival order within one), and the wait shows in the
//! run's status and events.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flow::event::EventKind;
use flow::prelude::*;
use flow::store::{CheckpointStore, MemoryStore};
use flow::{Engine, EngineError};
use tokio::sync::Notify;

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub struct Studio;

static HOLDERS: AtomicUsize = AtomicUsize::new(0);
static MOST_HOLDERS: AtomicUsize = AtomicUsize::new(0);

#[flow::machine(pools(gpu))]
pub mod render {
    use super::*;

    #[state(start, end, uses(gpu = 1))]
    async fn render(_cx: &mut Studio, frame: u32) -> Result<u32> {
        let holders = HOLDERS.fetch_add(1, Ordering::SeqCst) + 1;
        MOST_HOLDERS.fetch_max(holders, Ordering::SeqCst);
        // The state itself checks the bound: a third holder fails its run.
        let outcome = if holders > 2 {
            Err(Error::permanent(format!("{holders} holders of a pool of 2")))
        } else {
            tokio::time::sleep(Duration::from_millis(3)).await;
            Ok(frame)
        };
        HOLDERS.fetch_sub(1, Ordering::SeqCst);
        outcome
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_of_two_never_has_three_holders() {
    let engine = Engine::builder()
        .machine::<render::Machine>()
        .pool("gpu", 2)
        .max_concurrent_runs(64)
        .build()
        .unwrap();
    let mut runs = Vec::new();
    for frame in 0..40 {
        runs.push(engine.start::<render::Machine>(frame).await.unwrap());
    }
    for (frame, run) in runs.into_iter().enumerate() {
        assert_eq!(run.output().await.unwrap(), frame as u32);
    }
    // Two at a time happened, and never more.
    assert_eq!(MOST_HOLDERS.load(Ordering::SeqCst), 2);
}

/// The order in which `call` attempts ran, by tag.
static ADMITTED: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// Tells the test the holder holds the one `api` unit.
static HOLDING: Notify = Notify::const_new();
/// Holds it until the test lets go.
static GATE: Notify = Notify::const_new();
const HOLDER: u32 = 100;
/// Tags from here on are not recorded (other tests of this file).
const UNRECORDED: u32 = 50;

#[flow::machine(pools(api))]
pub mod call {
    use super::*;

    #[state(start, end, uses(api))]
    async fn call(_cx: &mut Studio, tag: u32) -> Result<u32> {
        if tag == HOLDER {
            HOLDING.notify_one();
            GATE.notified().await;
        } else if tag < UNRECORDED {
            ADMITTED.lock().unwrap().push(tag);
        }
        Ok(tag)
    }
}

#[flow::machine(pools(api), priority = -1)]
pub mod urgent {
    use super::*;

    #[state(start, end, uses(api = 1))]
    async fn page(_cx: &mut Studio, tag: u32) -> Result<u32> {
        ADMITTED.lock().unwrap().push(tag);
        Ok(tag)
    }
}

#[tokio::test]
async fn waiting_attempts_are_admitted_by_priority_then_arrival() {
    let engine = Engine::builder()
        .machine::<call::Machine>()
        .machine::<urgent::Machine>()
        .pool("api", 1)
        .build()
        .unwrap();
    let mut events = engine.events();
    let holder = engine.start::<call::Machine>(HOLDER).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), HOLDING.notified())
        .await
        .expect("the holder runs");
    // Tags 0..5 at priorities 5, 1, 3, 1, 5, then tag 9 of a machine whose runs have -1.
    let mut waiting = Vec::new();
    for (tag, priority) in [(0, 5), (1, 1), (2, 3), (3, 1), (4, 5)] {
        waiting.push(
            engine.start_with_priority::<call::Machine>(tag, Studio, priority).await.unwrap(),
        );
    }
    let page = engine.start::<urgent::Machine>(9).await.unwrap();
    let ids: Vec<_> = waiting.iter().map(|run| run.id()).chain([page.id()]).collect();
    let all_wait = async {
        for run in &ids {
            while engine.status(*run).await.unwrap().waiting_for_pool.as_deref() != Some("api") {
                tokio::task::yield_now().await;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), all_wait)
        .await
        .expect("every run started after the holder waits for the `api` pool");
    assert!(ADMITTED.lock().unwrap().is_empty(), "nothing runs while the holder holds the pool");
    GATE.notify_one();
    assert_eq!(holder.output().await.unwrap(), HOLDER);
    for run in waiting {
        run.output().await.unwrap();
    }
    assert_eq!(page.output().await.unwrap(), 9);
    assert_eq!(*ADMITTED.lock().unwrap(), [9, 1, 3, 2, 0, 4]);
    let mut waits = 0;
    // Every event so far is buffered; the stream has none more to give after a short wait.
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await
    {
        if matches!(event.kind, EventKind::WaitingForPool { pool: "api" }) {
            waits += 1;
        }
    }
    assert_eq!(waits, ids.len(), "each waiting run said so once");
}

#[test]
fn the_graph_shows_what_a_state_holds() {
    let graph = render::graph();
    assert_eq!(graph.state("render").unwrap().policy.uses, [("gpu", 1)]);
    assert_eq!(graph.priority, 0);
    assert_eq!(urgent::graph().priority, -1);
    assert!(graph.to_mermaid().contains("render : render (holds 1 gpu)"), "{}", graph.to_mermaid());
}

#[tokio::test]
async fn an_engine_without_the_pool_a_machine_uses_is_refused() {
    let missing = Engine::builder().machine::<render::Machine>().build().unwrap_err();
    let EngineError::Config { problems } = missing else { panic!("{missing}") };
    assert!(problems.contains("uses pool `gpu`"), "{problems}");
    assert!(problems.contains(".pool(\"gpu\", capacity)"), "{problems}");

    let small = Engine::builder().machine::<render::Machine>().pool("gpu", 0).build().unwrap_err();
    assert!(small.to_string().contains("uses 1 of pool `gpu`, which holds 0"), "{small}");
}

#[tokio::test]
async fn a_runs_own_priority_is_stored_with_it() {
    let store = MemoryStore::new();
    let engine = Engine::builder()
        .store(store.clone())
        .machine::<call::Machine>()
        .pool("api", 1)
        .build()
        .unwrap();
    let run = engine.start_with_priority::<call::Machine>(UNRECORDED, Studio, 4).await.unwrap();
    let id = run.id();
    assert_eq!(run.output().await.unwrap(), UNRECORDED);
    let latest = store.latest(id).await.unwrap().unwrap();
    assert!(latest.snapshot.contains("\"priority\":4"), "{}", latest.snapshot);
}

/// Holds the one `lane` unit until the test lets go.
static LANE_HELD: Notify = Notify::const_new();
static LANE_GATE: Notify = Notify::const_new();

#[flow::machine(pools(lane))]
pub mod lane {
    use super::*;

    #[state(start, end, uses(lane))]
    async fn drive(_cx: &mut Studio, first: bool) -> Result<bool> {
        if first {
            LANE_HELD.notify_one();
            LANE_GATE.notified().await;
        }
        Ok(first)
    }
}

#[tokio::test]
async fn a_run_waiting_for_a_pool_is_cancelled_without_waiting_for_its_turn() {
    let engine = Engine::builder().machine::<lane::Machine>().pool("lane", 1).build().unwrap();
    let holder = engine.start::<lane::Machine>(true).await.unwrap();
    tokio::time::timeout(Duration::from_secs(10), LANE_HELD.notified()).await.expect("it holds");
    let waiting = engine.start::<lane::Machine>(false).await.unwrap();
    let id = waiting.id();
    let queued = async {
        while engine.status(id).await.unwrap().waiting_for_pool.is_none() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), queued).await.expect("it waits for the lane");
    engine.cancel(id).await.unwrap();
    // Cancelled while the holder still holds the lane: the wait ended at the request.
    let ended = tokio::time::timeout(Duration::from_secs(10), waiting.output()).await;
    let error = ended.expect("the cancel ends the wait").unwrap_err();
    assert!(error.to_string().contains("cancel"), "{error}");
    assert_eq!(engine.status(id).await.unwrap().status, flow::store::Status::Cancelled);
    assert_eq!(engine.status(id).await.unwrap().waiting_for_pool, None);
    LANE_GATE.notify_one();
    assert!(holder.output().await.unwrap());
}
