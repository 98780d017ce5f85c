//! Runs live in the store: a run that waits (for a signal, a timer, a backoff, or paused)
//! holds no slot and no task, and signals, cancels, pauses and resumes are writes to the
//! store that reach a run wherever it is: waiting, executing here, or executing in another
//! engine on the same store.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use flow::history::{Failure, Outcome};
use flow::prelude::*;
use flow::store::{MemoryStore, SqliteStore, Status, Wait};
use flow::testing::TestClock;
use flow::{Engine, EngineError, EventKind, RunId};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approve(pub bool);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desk;

/// How often `charge` ran, across engines.
static CHARGES: AtomicU32 = AtomicU32::new(0);
/// How often `flaky` ran.
static FLAKY: AtomicU32 = AtomicU32::new(0);

#[flow::machine]
pub mod desk {
    use super::*;

    /// Input 0 waits for a person; 1 sits in a three-day timer; 2 finishes at once; 3 fails
    /// its first charge and backs off for an hour; 4 runs until cancelled.
    #[state(start, to(approval, later, charge, busy, prepare, flaky, done))]
    async fn route(_cx: &mut Desk, kind: u32) -> Result<Route> {
        match kind {
            0 => goto!(approval(kind)),
            5 | 6 => goto!(prepare(kind)),
            7 => goto!(flaky(kind)),
            1 => goto!(later(kind)),
            3 => goto!(charge(kind)),
            4 => goto!(busy(kind)),
            _ => goto!(done(kind)),
        }
    }

    /// Fails its first attempt, then backs off for an hour.
    #[state(to(done), retry(attempts = 2, backoff = "1h"))]
    async fn flaky(_cx: &mut Desk, kind: u32) -> Result<Flaky> {
        if FLAKY.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Error::retryable("the partner is down"));
        }
        goto!(done(kind))
    }

    /// Takes a while, then waits for a person (5) or a timer (6).
    #[state(to(approval, later))]
    async fn prepare(_cx: &mut Desk, kind: u32) -> Result<Prepare> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if kind == 5 { goto!(approval(kind)) } else { goto!(later(kind)) }
    }

    #[state(to(done))]
    async fn approval(_cx: &mut Desk, kind: u32, #[signal] answer: Approve) -> Result<Approval> {
        goto!(done(kind + if answer.0 { 100 } else { 200 }))
    }

    #[state(to(done), wait = "3d")]
    async fn later(_cx: &mut Desk, kind: u32) -> Result<Later> {
        goto!(done(kind))
    }

    #[state(to(done), retry(attempts = 3, backoff = "1h"))]
    async fn charge(_cx: &mut Desk, kind: u32) -> Result<Charge> {
        if CHARGES.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(Error::retryable("the bank is down"));
        }
        goto!(done(kind))
    }

    /// Works until the run is cancelled, checking as it goes.
    #[state(to(done))]
    async fn busy(_cx: &mut Desk, kind: u32) -> Result<Busy> {
        while !flow::cancelled() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Err(Error::permanent("stopped on request"))?;
        goto!(done(kind))
    }

    #[state(end)]
    async fn done(_cx: &mut Desk, kind: u32) -> Result<u32> {
        Ok(kind)
    }
}

type Desks = desk::Machine;

fn engine(store: impl flow::store::CheckpointStore, slots: usize) -> Engine {
    Engine::builder()
        .store(store)
        .machine::<Desks>()
        .max_concurrent_runs(slots)
        .clock(TestClock::new())
        .poll_interval(Duration::from_millis(20))
        .seed(1)
        .build()
        .unwrap()
}

async fn until_status(engine: &Engine, run: RunId, wanted: impl Fn(&flow::RunStatus) -> bool) {
    for _ in 0..5_000 {
        if wanted(&engine.status(run).await.unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("run {run} never got there: {:?}", engine.status(run).await.unwrap());
}

#[tokio::test(start_paused = true)]
async fn a_run_waiting_for_a_signal_holds_no_slot() {
    let engine = engine(MemoryStore::new(), 1);
    let waiting = engine.start::<Desks>(0).await.unwrap();
    until_status(&engine, waiting.id(), |s| s.wait == Some(Wait::Signal)).await;
    // The one slot is free: another run completes at once.
    let started = Instant::now();
    let other = engine.start::<Desks>(2).await.unwrap();
    assert_eq!(other.output().await.unwrap(), 2);
    assert!(started.elapsed() < Duration::from_secs(1));
    engine.signal::<Desks, _>(waiting.id(), Approve(true)).await.unwrap();
    assert_eq!(waiting.output().await.unwrap(), 100);
}

#[tokio::test(start_paused = true)]
async fn a_halt_asked_during_the_attempt_before_a_wait_is_not_lost() {
    let engine = engine(MemoryStore::new(), 4);
    let run = engine.start::<Desks>(5).await.unwrap().id();
    until_status(&engine, run, |s| s.state == "prepare").await;
    // Asked while `prepare` runs: honoured at the next safe point, after the run was written
    // as waiting for its signal (and so no longer held here).
    engine.cancel(run).await.unwrap();
    until_status(&engine, run, |s| s.status == Status::Cancelled).await;

    // The same for a pause asked before the run goes to wait for a timer.
    let run = engine.start::<Desks>(6).await.unwrap().id();
    until_status(&engine, run, |s| s.state == "prepare").await;
    engine.pause(run).await.unwrap();
    until_status(&engine, run, |s| s.status == Status::Paused).await;
    assert_eq!(engine.status(run).await.unwrap().state, "later");
}

#[tokio::test(start_paused = true)]
async fn retry_now_ends_a_backoff_and_nothing_else() {
    let engine = engine(MemoryStore::new(), 4);
    let handle = engine.start::<Desks>(7).await.unwrap();
    let run = handle.id();
    until_status(&engine, run, |s| s.wait == Some(Wait::Backoff)).await;
    let asked = Instant::now();
    engine.retry_now(run).await.unwrap();
    // Done long before the hour is up (on the paused clock), on its second and last attempt.
    assert_eq!(handle.output().await.unwrap(), 7);
    assert!(asked.elapsed() < Duration::from_secs(60), "{:?}", asked.elapsed());
    assert_eq!(FLAKY.load(Ordering::SeqCst), 2);

    let refused = engine.retry_now(run).await.unwrap_err();
    assert!(
        matches!(refused, EngineError::NotBackingOff { status: Status::Completed, wait: None, .. }),
        "{refused}"
    );
    let waiting = engine.start::<Desks>(0).await.unwrap().id();
    until_status(&engine, waiting, |s| s.wait == Some(Wait::Signal)).await;
    let refused = engine.retry_now(waiting).await.unwrap_err();
    assert!(refused.to_string().contains("waiting for a signal"), "{refused}");
}

#[tokio::test(start_paused = true)]
async fn a_run_in_a_three_day_timer_holds_no_slot() {
    let engine = engine(MemoryStore::new(), 1);
    let timed = engine.start::<Desks>(1).await.unwrap();
    until_status(&engine, timed.id(), |s| s.wait == Some(Wait::Timer)).await;
    let started = Instant::now();
    let other = engine.start::<Desks>(2).await.unwrap();
    assert_eq!(other.output().await.unwrap(), 2);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(timed.output().await.unwrap(), 1);
    assert!(started.elapsed() >= Duration::from_secs(3 * 24 * 3600) - Duration::from_secs(1));
}

#[test]
fn a_signal_right_after_a_restart_is_taken() {
    let path = common::db("waiting-signal-after-restart");
    let run = paused().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap(), 10);
        let run = engine.start::<Desks>(0).await.unwrap().id();
        until_status(&engine, run, |s| s.wait == Some(Wait::Signal)).await;
        run
    }); // the process stops while the run waits

    paused().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap(), 10);
        engine.resume_pending().await.unwrap();
        engine.signal::<Desks, _>(run, Approve(false)).await.unwrap();
        let output = engine.handle::<Desks>(run).await.unwrap().output().await.unwrap();
        assert_eq!(output, 200);
    });
}

#[test]
fn a_signal_from_a_second_engine_reaches_a_run_of_the_first() {
    let path = common::db("waiting-signal-second-engine");
    runtime().block_on(async {
        let first = engine(SqliteStore::open(&path).unwrap(), 10);
        let second = engine(SqliteStore::open(&path).unwrap(), 10);
        let handle = first.start::<Desks>(0).await.unwrap();
        until_status(&first, handle.id(), |s| s.wait == Some(Wait::Signal)).await;
        second.signal::<Desks, _>(handle.id(), Approve(true)).await.unwrap();
        // The first engine's handle follows the run wherever it executes.
        assert_eq!(handle.output().await.unwrap(), 100);
    });
}

#[test]
fn a_cancel_from_a_second_engine_stops_a_run_executing_in_the_first() {
    let path = common::db("waiting-cancel-second-engine");
    runtime().block_on(async {
        let first = engine(SqliteStore::open(&path).unwrap(), 10);
        let second = engine(SqliteStore::open(&path).unwrap(), 10);
        let mut events = first.events();
        let handle = first.start::<Desks>(4).await.unwrap();
        let run = handle.id();
        events
            .until(|e| e.run == run && matches!(e.kind, EventKind::Entered { attempt: 1, .. }))
            .await;
        events.until(|e| e.run == run && e.state == "busy").await;
        // `busy` executes in the first engine; the second one asks it to stop.
        second.cancel(run).await.unwrap();
        let error = handle.output().await.unwrap_err();
        assert!(matches!(error, EngineError::Cancelled { run: r } if r == run), "{error}");
        assert_eq!(second.status(run).await.unwrap().status, Status::Cancelled);
    });
}

#[test]
fn a_cancel_from_a_second_engine_during_a_backoff_prevents_the_next_attempt() {
    CHARGES.store(0, Ordering::SeqCst);
    let store = MemoryStore::new();
    paused().block_on(async {
        let first = engine(store.clone(), 10);
        let second = engine(store.clone(), 10);
        let handle = first.start::<Desks>(3).await.unwrap();
        let run = handle.id();
        until_status(&first, run, |s| s.wait == Some(Wait::Backoff)).await;
        second.cancel(run).await.unwrap();
        let error = handle.output().await.unwrap_err();
        assert!(matches!(error, EngineError::Cancelled { .. }), "{error}");
        // An hour later, nothing more ran.
        tokio::time::sleep(Duration::from_secs(7200)).await;
        assert_eq!(CHARGES.load(Ordering::SeqCst), 1, "the retry never ran");
        let status = second.status(run).await.unwrap();
        assert_eq!(status.status, Status::Cancelled);
        let charges = status.history.iter().filter(|e| e.state == "charge").count();
        assert_eq!(charges, 1);
        assert!(matches!(
            &status.history[1].outcome,
            Outcome::Failed { failure: Failure::Error { .. }, retry_in: Some(_) }
        ));
    });
}

#[tokio::test(start_paused = true)]
async fn a_pause_keeps_the_deadline_of_a_timer() {
    let engine = engine(MemoryStore::new(), 10);
    let started = Instant::now();
    let handle = engine.start::<Desks>(1).await.unwrap();
    let run = handle.id();
    until_status(&engine, run, |s| s.wait == Some(Wait::Timer)).await;
    tokio::time::sleep(Duration::from_secs(3600)).await;
    engine.pause(run).await.unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    engine.resume(run).await.unwrap();
    assert_eq!(handle.output().await.unwrap(), 1);
    // `later` ran three days after it was entered: the pause was a hold, not a reason to fire.
    let elapsed = started.elapsed();
    let three_days = Duration::from_secs(3 * 24 * 3600);
    assert!(elapsed >= three_days, "ran after {elapsed:?}");
    assert!(elapsed < three_days + Duration::from_secs(60), "ran after {elapsed:?}");
}

fn paused() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}
