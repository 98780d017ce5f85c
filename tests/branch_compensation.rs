//! Compensations inside a fork's branches: when a branch fails for good, its siblings are cut
//! off, and every state the fork and its branches completed is compensated, newest first,
//! before the run fails. In memory and under an engine.

mod common;

use std::sync::Mutex;
use std::time::Duration;

use flow::prelude::*;
use flow::store::{SqliteStore, Status};
use flow::{Engine, RunError, RunId};
use serde::{Deserialize, Serialize};

/// What the states did, per test.
static LEDGER: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());

fn effect(test: &str, what: &str) {
    LEDGER.lock().unwrap().push((test.to_owned(), what.to_owned()));
}

fn ledger(test: &str) -> Vec<String> {
    let all = LEDGER.lock().unwrap();
    all.iter().filter(|(of, _)| of == test).map(|(_, what)| what.clone()).collect()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trip {
    pub test: String,
}

#[flow::machine]
pub mod trip {
    use super::*;

    #[state(start, to(split), compensate = release_budget)]
    async fn budget(cx: &mut Trip, city: String) -> Result<Budget> {
        effect(&cx.test, "hold budget");
        goto!(split(city))
    }

    #[state(fork(flight, hotel), join = confirm)]
    async fn split(_cx: &mut Trip, city: String) -> Result<Split> {
        fork!(flight(city.clone()), hotel(city))
    }

    /// The first branch books a flight, then waits for a seat, which takes a while.
    #[state(to(seat), compensate = cancel_flight)]
    async fn flight(cx: &mut Trip, city: String) -> Result<Flight> {
        effect(&cx.test, "book flight");
        goto!(seat(city))
    }

    #[state(branch_end, compensate = release_seat)]
    async fn seat(cx: &mut Trip, _city: String) -> Result<String> {
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        while tokio::time::Instant::now() < until {
            if flow::cancelled() {
                return Err(Error::permanent("no longer needed"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        effect(&cx.test, "seat");
        Ok("12A".into())
    }

    /// The second branch finds no room, for good.
    #[state(branch_end)]
    async fn hotel(_cx: &mut Trip, city: String) -> Result<String> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Err(Error::permanent(format!("no room in {city}")))
    }

    #[state(end)]
    async fn confirm(_cx: &mut Trip, seat: String, room: String) -> Result<String> {
        Ok(format!("{seat}, {room}"))
    }

    async fn release_budget(cx: &mut Trip, _city: String) -> Result<()> {
        effect(&cx.test, "release budget");
        Ok(())
    }

    async fn cancel_flight(cx: &mut Trip, _city: String) -> Result<()> {
        effect(&cx.test, "cancel flight");
        Ok(())
    }

    async fn release_seat(cx: &mut Trip, _city: String) -> Result<()> {
        effect(&cx.test, "release seat");
        Ok(())
    }
}

/// What every test expects: the flight branch cut off before its seat, then the flight and
/// the budget undone, newest first.
const UNDONE: [&str; 4] = ["hold budget", "book flight", "cancel flight", "release budget"];

fn rolled_back(error: &RunError) {
    let RunError::RolledBack { cause, undone, failed, .. } = error else {
        panic!("expected a rollback, got {error}")
    };
    assert!(cause.to_string().contains("no room in Oslo"), "{cause}");
    assert_eq!(undone, &["flight", "budget"]);
    assert!(failed.is_empty());
}

#[tokio::test(start_paused = true)]
async fn in_memory_a_failed_branch_cuts_its_sibling_off_and_everything_is_undone() {
    let mut trip = Trip { test: "memory".into() };
    let error = trip::run("Oslo".into(), &mut trip).await.unwrap_err();
    rolled_back(&error);
    assert_eq!(ledger("memory"), UNDONE);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_an_engine_the_cut_off_branch_stops_before_anything_is_undone() {
    let store = SqliteStore::open(common::db("branch_compensation")).unwrap();
    let engine = Engine::builder().store(store).machine::<trip::Machine>().build().unwrap();
    let trip = Trip { test: "engine".into() };
    let handle = engine.start_with::<trip::Machine>("Oslo".into(), trip).await.unwrap();
    let run = handle.id();
    let flow::EngineError::Failed { error, .. } = handle.output().await.unwrap_err() else {
        panic!("the run did not fail")
    };
    rolled_back(&error);
    assert_eq!(ledger("engine"), UNDONE);
    let flight = engine.status(RunId::branch(run, 1, 0)).await.unwrap();
    assert_eq!(flight.status, Status::Cancelled, "{flight:?}");
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Checks;

/// A fan-out that collects: every item's result reaches the join, failures included.
#[flow::machine]
pub mod checks {
    use super::*;

    #[state(start, fan_out(check), join = report, collect)]
    async fn split(_cx: &mut Checks, hosts: Vec<String>) -> Result<Split> {
        fan_out!(check, hosts)
    }

    /// Hosts named `down…` fail; the others answer, the first ones last.
    #[state(branch_end)]
    async fn check(_cx: &mut Checks, host: String) -> Result<usize> {
        tokio::time::sleep(Duration::from_millis(50 * (6 - host.len() as u64))).await;
        if host.starts_with("down") {
            return Err(Error::permanent(format!("{host} did not answer")));
        }
        Ok(host.len())
    }

    #[state(end)]
    async fn report(
        _cx: &mut Checks,
        results: Vec<std::result::Result<usize, flow::BranchError>>,
    ) -> Result<Vec<String>> {
        Ok(results
            .into_iter()
            .map(|result| match result {
                Ok(length) => format!("ok {length}"),
                Err(error) => format!("{error}"),
            })
            .collect())
    }
}

fn hosts() -> Vec<String> {
    ["a", "down1", "bbb"].map(str::to_owned).to_vec()
}

fn collected(report: &[String]) {
    assert_eq!(report.len(), 3);
    assert_eq!(report[0], "ok 1");
    assert!(report[1].starts_with("branch 1 failed: "), "{}", report[1]);
    assert!(report[1].contains("down1 did not answer"), "{}", report[1]);
    assert_eq!(report[2], "ok 3");
}

#[tokio::test(start_paused = true)]
async fn in_memory_a_collecting_join_gets_every_result_in_item_order() {
    let done = checks::run(hosts(), &mut Checks).await.unwrap();
    collected(&done.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_an_engine_a_collecting_join_gets_every_result_in_item_order() {
    let store = SqliteStore::open(common::db("branch_collect")).unwrap();
    let engine = Engine::builder().store(store).machine::<checks::Machine>().build().unwrap();
    let handle = engine.start_with::<checks::Machine>(hosts(), Checks).await.unwrap();
    let run = handle.id();
    collected(&handle.output().await.unwrap());
    // The failed branch failed on its own; its siblings ran to their ends.
    let states = [Status::Completed, Status::Failed, Status::Completed];
    for (index, status) in states.into_iter().enumerate() {
        let branch = engine.status(RunId::branch(run, 0, index as u32)).await.unwrap();
        assert_eq!(branch.status, status, "{branch:?}");
    }
}
