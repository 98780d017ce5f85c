//! Durable timers: `#[state(wait = "...")]` holds a run before the state's first attempt; the
//! wake-up time is checkpointed, so a restart waits only the rest, and a cancel ends the wait.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flow::prelude::*;
use flow::store::{MemoryStore, Status};
use flow::testing::TestClock;
use flow::{Engine, EngineError};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Log {
    pub notes: Vec<String>,
}

#[flow::machine]
pub mod trial {
    use super::*;

    #[state(start, to(remind))]
    async fn sign_up(cx: &mut Log, user: String) -> Result<SignUp> {
        cx.notes.push(format!("{user} signed up"));
        goto!(remind(user))
    }

    /// Three days after signing up.
    #[state(to(expire), wait = "3d")]
    async fn remind(cx: &mut Log, user: String) -> Result<Remind> {
        cx.notes.push(format!("reminded {user}"));
        goto!(expire(user))
    }

    #[state(end, wait = "1h")]
    async fn expire(cx: &mut Log, user: String) -> Result<String> {
        cx.notes.push(format!("{user}'s trial expired"));
        Ok(cx.notes.join("; "))
    }
}

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test(start_paused = true)]
async fn an_in_memory_run_waits_before_each_waiting_state() {
    let started = Instant::now();
    let done = trial::run("ada".into(), &mut Log::default()).await.unwrap();
    assert_eq!(done.output, "ada signed up; reminded ada; ada's trial expired");
    assert_eq!(started.elapsed(), 3 * DAY + HOUR);
    assert_eq!(trial::graph().state("remind").unwrap().policy.wait, Some(3 * DAY));
}

fn engine(store: &MemoryStore, base: SystemTime) -> Engine {
    Engine::builder()
        .store(store.clone())
        .machine::<trial::Machine>()
        .clock(TestClock::starting_at(base))
        .build()
        .unwrap()
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

#[test]
fn a_wait_survives_a_restart_and_waits_only_the_rest() {
    let store = MemoryStore::new();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let run = paused().block_on(async {
        let engine = engine(&store, t0);
        let run = engine.start::<trial::Machine>("bob".into()).await.unwrap().id();
        while engine.status(run).await.unwrap().wake_at.is_none() {
            tokio::task::yield_now().await;
        }
        let status = engine.status(run).await.unwrap();
        assert_eq!((status.state.as_str(), status.wake_at), ("remind", Some(t0 + 3 * DAY)));
        run
    }); // the process stops on the first day

    paused().block_on(async {
        let engine = engine(&store, t0 + DAY); // and comes back a day later
        let started = Instant::now();
        // Nothing to resume: the run waits in the store, and is claimed when it is due.
        assert!(engine.resume_pending().await.unwrap().resumed.is_empty());
        let output = engine.handle::<trial::Machine>(run).await.unwrap().output().await.unwrap();
        assert_eq!(output, "bob signed up; reminded bob; bob's trial expired");
        assert_eq!(started.elapsed(), 2 * DAY + HOUR, "two days left of three, then an hour");
    });
}

#[tokio::test(start_paused = true)]
async fn cancel_ends_a_wait() {
    let store = MemoryStore::new();
    let engine = engine(&store, UNIX_EPOCH + Duration::from_secs(1_800_000_000));
    let started = Instant::now();
    let handle = engine.start::<trial::Machine>("cy".into()).await.unwrap();
    let run = handle.id();
    while engine.status(run).await.unwrap().wake_at.is_none() {
        tokio::task::yield_now().await;
    }
    engine.cancel(run).await.unwrap();
    assert!(matches!(handle.output().await, Err(EngineError::Cancelled { .. })));
    assert!(started.elapsed() < Duration::from_secs(1));
    let status = engine.status(run).await.unwrap();
    assert_eq!((status.status, status.state.as_str()), (Status::Cancelled, "remind"));
}
