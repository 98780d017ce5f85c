//! Engines in one process, each on a `PostgresStore` of its own, as worker processes are:
//! signals, cancels, pauses and timers reach a run wherever it executes or is claimed next.

#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use flow::prelude::*;
use flow::store::{PostgresStore, Status};
use flow::{Engine, EngineError, RunId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Go(pub u32);

#[flow::machine(name = "pg_engines")]
pub mod relay {
    use super::*;

    #[state(start, to(hold, nap, slow))]
    async fn begin(_cx: &mut (), how: u32) -> Result<Begin> {
        match how {
            0 => goto!(hold()),
            1 => goto!(nap()),
            _ => goto!(slow(0)),
        }
    }

    /// Waits for a signal.
    #[state(to(done))]
    async fn hold(_cx: &mut (), #[signal] go: Go) -> Result<Hold> {
        goto!(done(go.0))
    }

    /// A durable timer.
    #[state(to(done), wait = "300ms")]
    async fn nap(_cx: &mut ()) -> Result<Nap> {
        goto!(done(7))
    }

    /// A loop of short steps, to be cancelled or paused midway.
    #[state(to(slow, done))]
    async fn slow(_cx: &mut (), n: u32) -> Result<Slow> {
        tokio::time::sleep(Duration::from_millis(50)).await;
        if n < 40 { goto!(slow(n + 1)) } else { goto!(done(n)) }
    }

    #[state(end)]
    async fn done(_cx: &mut (), n: u32) -> Result<u32> {
        Ok(n)
    }
}

type Relay = relay::Machine;

async fn engine(schema: &str) -> Engine {
    let store =
        PostgresStore::builder(common::database_url()).schema(schema).connect().await.unwrap();
    Engine::builder()
        .store(store)
        .machine::<Relay>()
        .poll_interval(Duration::from_millis(100))
        .build()
        .unwrap()
}

/// Two engines on one fresh schema.
async fn two(name: &str) -> (Engine, Engine) {
    drop(common::postgres(name).await);
    let schema = common::schema_for(name);
    (engine(&schema).await, engine(&schema).await)
}

async fn until_status(engine: &Engine, run: RunId, wanted: Status) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let status = engine.status(run).await.unwrap().status;
        if status == wanted {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "run {run} is {status}, not {wanted}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_sent_through_one_engine_wakes_a_run_another_started() {
    let (a, b) = two("pg-engines-signal").await;
    let handle = a.start::<Relay>(0).await.unwrap();
    let run = handle.id();
    let delivered = loop {
        match b.signal::<Relay, Go>(run, Go(42)).await {
            Err(EngineError::NotWaiting { .. }) => {
                tokio::time::sleep(Duration::from_millis(20)).await
            }
            other => break other,
        }
    };
    delivered.unwrap();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(10), handle.output()).await.unwrap().unwrap(),
        42
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timer_set_in_one_engine_is_kept_by_another() {
    let (a, b) = two("pg-engines-timer").await;
    let run = a.start::<Relay>(1).await.unwrap().id();
    // The run waits in the store; this engine goes away before it is due.
    a.shutdown(Duration::from_secs(5)).await.unwrap();
    drop(a);
    let output = b.handle::<Relay>(run).await.unwrap().output();
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), output).await.unwrap().unwrap(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_and_pause_reach_a_run_executing_in_another_engine() {
    let (a, b) = two("pg-engines-halt").await;
    let paused = a.start::<Relay>(2).await.unwrap().id();
    let cancelled = a.start::<Relay>(2).await.unwrap().id();
    tokio::time::sleep(Duration::from_millis(200)).await;
    b.pause(paused).await.unwrap();
    b.cancel(cancelled).await.unwrap();
    until_status(&b, paused, Status::Paused).await;
    until_status(&b, cancelled, Status::Cancelled).await;
    // Resumed through the engine that paused it, the run goes on to its end.
    b.resume(paused).await.unwrap();
    let output = b.handle::<Relay>(paused).await.unwrap().output();
    assert_eq!(tokio::time::timeout(Duration::from_secs(30), output).await.unwrap().unwrap(), 40);
}
