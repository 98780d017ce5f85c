//! Compensation (saga): when a run fails for good, the states it completed are undone,
//! newest first; a failed compensation is reported and the others still run; a crash in the
//! middle of a rollback resumes the rollback.

mod common;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use flow::history::{Failure, Outcome};
use flow::prelude::*;
use flow::store::SqliteStore;
use flow::{Engine, EngineError, EventKind, RunError};
use serde::{Deserialize, Serialize};

/// Side effects, as the outside world sees them: `"{test}: {effect}"`, in order. A static,
/// not the context: the context is checkpointed and rolled back with the run.
static LEDGER: Mutex<Vec<String>> = Mutex::new(Vec::new());
/// Tests whose hotel cancellation hangs (the moment the process "crashes").
static HANG: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn effect(test: &str, what: impl std::fmt::Display) {
    LEDGER.lock().unwrap().push(format!("{test}: {what}"));
}

fn ledger(test: &str) -> Vec<String> {
    let prefix = format!("{test}: ");
    let all = LEDGER.lock().unwrap();
    all.iter().filter_map(|line| line.strip_prefix(&prefix)).map(str::to_owned).collect()
}

fn hangs(test: &str) -> bool {
    HANG.lock().unwrap().as_ref().is_some_and(|set| set.contains(test))
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trip {
    /// Which test this run belongs to, for the ledger.
    pub test: String,
    /// The payment fails, permanently.
    pub declined: bool,
    /// The hotel refuses to cancel, permanently.
    pub hotel_refuses: bool,
    /// How many times the car's cancellation fails before it goes through.
    pub car_outages: u32,
}

#[flow::machine]
pub mod trip {
    use super::*;

    #[state(start, to(hotel), compensate = cancel_flight)]
    async fn flight(cx: &mut Trip, city: String) -> Result<Flight> {
        effect(&cx.test, format!("book flight to {city}"));
        goto!(hotel(city))
    }

    #[state(to(car), compensate = cancel_hotel)]
    async fn hotel(cx: &mut Trip, city: String) -> Result<Hotel> {
        effect(&cx.test, format!("book hotel in {city}"));
        goto!(car(city))
    }

    #[state(to(pay), compensate = cancel_car, retry(attempts = 2, backoff = "1ms"))]
    async fn car(cx: &mut Trip, city: String) -> Result<Car> {
        effect(&cx.test, format!("book car in {city}"));
        goto!(pay(city))
    }

    #[state(to(confirm))]
    async fn pay(cx: &mut Trip, city: String) -> Result<Pay> {
        if cx.declined {
            return Err(Error::permanent("card declined"));
        }
        goto!(confirm(city))
    }

    #[state(end)]
    async fn confirm(_cx: &mut Trip, city: String) -> Result<String> {
        Ok(format!("off to {city}"))
    }

    async fn cancel_flight(cx: &mut Trip, city: String) -> Result<()> {
        effect(&cx.test, format!("cancel flight to {city}"));
        Ok(())
    }

    async fn cancel_hotel(cx: &mut Trip, city: String) -> Result<()> {
        let key = flow::idempotency_key().unwrap_or_default();
        effect(&cx.test, format!("cancelling hotel ({})", &key[32..]));
        if hangs(&cx.test) {
            std::future::pending::<()>().await;
        }
        if cx.hotel_refuses {
            return Err(Error::permanent("non-refundable"));
        }
        effect(&cx.test, format!("cancel hotel in {city}"));
        Ok(())
    }

    async fn cancel_car(cx: &mut Trip, city: String) -> Result<()> {
        if cx.car_outages > 0 {
            cx.car_outages -= 1;
            return Err(Error::retryable("car rental offline"));
        }
        effect(&cx.test, format!("cancel car in {city}"));
        Ok(())
    }
}

fn trip(test: &str) -> Trip {
    Trip { test: test.into(), declined: true, ..Trip::default() }
}

#[tokio::test]
async fn a_failure_undoes_the_completed_states_newest_first() {
    let mut cx = trip("reverse");
    let error = trip::run("Lisbon".into(), &mut cx).await.unwrap_err();
    assert_eq!(
        ledger("reverse"),
        [
            "book flight to Lisbon",
            "book hotel in Lisbon",
            "book car in Lisbon",
            "cancel car in Lisbon",
            // A compensation's key is its visit's, marked as the undo: the hotel was entered
            // by checkpoint 1 (the flight's transition).
            "cancelling hotel (/1/undo)",
            "cancel hotel in Lisbon",
            "cancel flight to Lisbon",
        ]
    );
    let RunError::RolledBack { cause, undone, failed, history } = &error else {
        panic!("expected a rolled-back run, got {error:?}");
    };
    assert!(matches!(**cause, RunError::StateFailed { state: "pay", .. }), "{cause:?}");
    assert_eq!(undone, &["car", "hotel", "flight"]);
    assert!(failed.is_empty());
    assert_eq!(error.cause().state(), "pay");
    let compensated: Vec<&str> = history
        .iter()
        .filter(|entry| entry.outcome == Outcome::Compensated)
        .map(|entry| entry.state)
        .collect();
    assert_eq!(compensated, ["car", "hotel", "flight"]);
    assert_eq!(
        error.to_string(),
        "state `pay` failed after 1 attempt(s); last: permanent error: card declined; \
         rollback: undid `car`, `hotel`, `flight`"
    );
}

#[tokio::test]
async fn a_run_that_completes_undoes_nothing() {
    let mut cx = Trip { test: "complete".into(), ..Trip::default() };
    let done = trip::run("Oslo".into(), &mut cx).await.unwrap();
    assert_eq!(done.output, "off to Oslo");
    assert_eq!(
        ledger("complete"),
        ["book flight to Oslo", "book hotel in Oslo", "book car in Oslo"]
    );
}

#[tokio::test]
async fn a_compensation_gets_its_states_retries() {
    // `car` has two attempts; its compensation fails once, then goes through.
    let mut cx = Trip { car_outages: 1, ..trip("retried") };
    let error = trip::run("Riga".into(), &mut cx).await.unwrap_err();
    let RunError::RolledBack { undone, failed, history, .. } = &error else {
        panic!("expected a rolled-back run, got {error:?}");
    };
    assert_eq!(undone, &["car", "hotel", "flight"]);
    assert!(failed.is_empty());
    let car: Vec<String> = history
        .iter()
        .filter(|entry| entry.state == "car")
        .map(|entry| format!("#{} {}", entry.attempt, entry.outcome))
        .collect();
    assert_eq!(car.len(), 3, "{car:?}");
    assert_eq!(car[0], "#1 → pay");
    assert!(car[1].starts_with("#1 compensation error: car rental offline; retry in"), "{car:?}");
    assert_eq!(car[2], "#2 compensated");

    // With both attempts failing, the car is reported and the rest is still undone.
    let mut cx = Trip { car_outages: 2, ..trip("retried twice") };
    let error = trip::run("Riga".into(), &mut cx).await.unwrap_err();
    let RunError::RolledBack { undone, failed, .. } = &error else { panic!("{error:?}") };
    assert_eq!(undone, &["hotel", "flight"]);
    assert_eq!((failed[0].state, failed[0].attempts.len()), ("car", 2));
}

#[tokio::test]
async fn a_failed_compensation_is_reported_and_the_others_still_run() {
    let mut cx = Trip { hotel_refuses: true, ..trip("refuses") };
    let error = trip::run("Rome".into(), &mut cx).await.unwrap_err();
    assert_eq!(
        ledger("refuses")[3..],
        ["cancel car in Rome", "cancelling hotel (/1/undo)", "cancel flight to Rome"]
    );
    let RunError::RolledBack { undone, failed, .. } = &error else {
        panic!("expected a rolled-back run, got {error:?}");
    };
    assert_eq!(undone, &["car", "flight"]);
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].state, "hotel");
    assert_eq!(failed[0].attempts, [Failure::error("non-refundable", true)]);
    assert_eq!(
        error.to_string(),
        "state `pay` failed after 1 attempt(s); last: permanent error: card declined; \
         rollback: undid `car`, `flight`; the compensation of `hotel` failed after 1 \
         attempt(s); last: permanent error: non-refundable"
    );
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// A short lease, so that a run held by a process that died is taken over soon.
const LEASE: Duration = Duration::from_millis(300);

fn engine(path: &PathBuf) -> Engine {
    Engine::builder()
        .store(SqliteStore::open(path).unwrap())
        .machine::<trip::Machine>()
        .lease(LEASE)
        .build()
        .unwrap()
}

#[test]
fn a_rollback_interrupted_by_a_crash_resumes_where_it_stopped() {
    let path = common::db("compensation-crash");
    HANG.lock().unwrap().get_or_insert_with(HashSet::new).insert("crash".into());
    let run = runtime().block_on(async {
        let engine = engine(&path);
        let mut events = engine.events();
        let handle =
            engine.start_with::<trip::Machine>("Kyiv".into(), trip("crash")).await.unwrap();
        let mut seen = Vec::new();
        while let Some(event) = events.next().await {
            match event.kind {
                EventKind::Compensating { .. } | EventKind::Compensated => {
                    seen.push(format!("{} {:?}", event.state, event.kind));
                }
                _ => {}
            }
            if event.state == "hotel" && matches!(event.kind, EventKind::Compensating { .. }) {
                break;
            }
        }
        assert_eq!(
            seen,
            [
                "car Compensating { attempt: 1 }",
                "car Compensated",
                "hotel Compensating { attempt: 1 }"
            ]
        );
        handle.id()
    }); // the process dies while the hotel's cancellation is in flight

    HANG.lock().unwrap().get_or_insert_with(HashSet::new).remove("crash");
    runtime().block_on(async {
        let engine = engine(&path);
        // A rollback is not stopped halfway.
        let refused = engine.cancel(run).await.unwrap_err();
        assert!(matches!(refused, EngineError::RollingBack { .. }), "{refused:?}");
        // Once the dead process's lease lapses, this engine takes the run over on its own.
        let error = engine.handle::<trip::Machine>(run).await.unwrap().output().await.unwrap_err();
        let EngineError::Failed { error: RunError::RolledBack { undone, failed, .. }, .. } = &error
        else {
            panic!("expected a rolled-back run, got {error:?}");
        };
        assert_eq!(undone, &["car", "hotel", "flight"]);
        assert!(failed.is_empty());
    });
    assert_eq!(
        ledger("crash"),
        [
            "book flight to Kyiv",
            "book hotel in Kyiv",
            "book car in Kyiv",
            "cancel car in Kyiv",
            "cancelling hotel (/1/undo)",
            // Resumed: the car's compensation was checkpointed and does not run again; the
            // hotel's runs again under the same key, then the flight's.
            "cancelling hotel (/1/undo)",
            "cancel hotel in Kyiv",
            "cancel flight to Kyiv",
        ]
    );
}
