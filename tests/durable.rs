//! Durable runs on the engine: checkpoints, takeover after a crash, backoffs that survive a
//! restart, one claim per run between engines, idempotency keys, keyed starts, and bad input.
//!
//! A crash is a runtime dropped mid-run: every task on it stops where it is, as in a killed
//! process, and the store keeps only what was committed. The next engine takes the run over
//! once the dead one's lease lapses. (`tests/crash.rs` kills real processes.)

mod common;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use flow::history::{Failure, Outcome};
use flow::prelude::*;
use flow::store::{CheckpointStore, Filter, MemoryStore, SqliteStore, Status, StoreError};
use flow::testing::TestClock;
use flow::{Engine, EngineError, RunError, RunId};
use serde::{Deserialize, Serialize};
use tokio::runtime::Runtime;

/// What `charge` does on each call for one order id, in order; `Ok` once the script is empty.
#[derive(Clone)]
enum Act {
    Ok,
    Fail,
    Hang,
}

static SCRIPTS: LazyLock<Mutex<HashMap<u32, VecDeque<Act>>>> = LazyLock::new(Default::default);

/// One `charge` attempt: order id, attempt, idempotency key, tokio time.
type Attempt = (u32, u32, String, tokio::time::Instant);

/// Every `charge` attempt.
static SEEN: LazyLock<Mutex<Vec<Attempt>>> = LazyLock::new(Default::default);

fn script(id: u32, acts: impl IntoIterator<Item = Act>) {
    SCRIPTS.lock().unwrap().insert(id, acts.into_iter().collect());
}

fn seen(id: u32) -> Vec<(u32, String, tokio::time::Instant)> {
    let seen = SEEN.lock().unwrap();
    seen.iter().filter(|s| s.0 == id).map(|s| (s.1, s.2.clone(), s.3)).collect()
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Ledger {
    pub steps: Vec<String>,
}

#[flow::machine]
pub mod order {
    use super::*;

    #[state(start, to(charge))]
    async fn reserve(cx: &mut Ledger, id: u32) -> Result<Reserve> {
        cx.steps.push("reserve".into());
        goto!(charge(id, id * 10))
    }

    #[state(to(ship), retry(attempts = 3, backoff = "10m"))]
    async fn charge(cx: &mut Ledger, id: u32, amount: u32) -> Result<Charge> {
        let now = flow::current().expect("inside a state");
        let key = now.idempotency_key();
        SEEN.lock().unwrap().push((id, now.attempt, key, tokio::time::Instant::now()));
        let act = SCRIPTS.lock().unwrap().get_mut(&id).and_then(VecDeque::pop_front);
        match act.unwrap_or(Act::Ok) {
            Act::Ok => {}
            Act::Fail => return Err(Error::retryable(format!("card of order {id} declined"))),
            Act::Hang => std::future::pending::<()>().await,
        }
        cx.steps.push(format!("charge {amount}"));
        goto!(ship(id))
    }

    #[state(end)]
    async fn ship(cx: &mut Ledger, id: u32) -> Result<String> {
        cx.steps.push("ship".into());
        Ok(format!("order {id}: {}", cx.steps.join(", ")))
    }
}

/// Another machine, to ask for a run by the wrong type.
#[flow::machine]
pub mod other {
    #[state(start, end)]
    async fn only(cx: &mut u32) -> flow::Result<u32> {
        Ok(*cx)
    }
}

fn runtime() -> Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn paused_runtime() -> Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// An engine on a clock that follows tokio's (paused in most tests here, so `charge`'s
/// 10-minute backoffs, and the 10-second lease of a process that died, pass at once).
fn engine(store: impl CheckpointStore) -> Engine {
    Engine::builder()
        .store(store)
        .machine::<order::Machine>()
        .seed(7)
        .clock(TestClock::new())
        .build()
        .unwrap()
}

/// Polls the run's status until `done` says so (real time; a few ms per poll).
async fn until(engine: &Engine, run: RunId, done: impl Fn(&flow::RunStatus) -> bool) {
    for _ in 0..2000 {
        if let Ok(status) = engine.status(run).await
            && done(&status)
        {
            return;
        }
        tokio::task::yield_now().await;
        std::thread::sleep(Duration::from_millis(1));
    }
    panic!("run {run} never reached the expected status: {:?}", engine.status(run).await);
}

#[test]
fn a_run_checkpoints_every_step_and_reports_its_status() {
    let path = common::db("durable-status");
    runtime().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap());
        let handle = engine.start::<order::Machine>(1).await.unwrap();
        let run = handle.id();
        assert_eq!(handle.output().await.unwrap(), "order 1: reserve, charge 10, ship");

        let status = engine.status(run).await.unwrap();
        assert_eq!(status.status, Status::Completed);
        assert_eq!(status.state, "ship");
        assert_eq!(status.seq, 3, "start, two transitions, the end: four checkpoints");
        let path: Vec<_> = status.history.iter().map(|e| e.state).collect();
        assert_eq!(path, ["reserve", "charge", "ship"]);

        let completed = engine.list(Filter::new().status(Status::Completed)).await.unwrap();
        assert_eq!(completed.iter().map(|r| r.run).collect::<Vec<_>>(), [run]);
        assert!(engine.list(Filter::new().machine("other")).await.unwrap().is_empty());
    });
}

#[test]
fn a_crashed_run_is_taken_over_from_its_last_checkpoint() {
    let path = common::db("durable-resume");
    script(2, [Act::Hang]);
    let run = paused_runtime().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap());
        let run = engine.start::<order::Machine>(2).await.unwrap().id();
        until(&engine, run, |s| s.state == "charge").await;
        run
    }); // the runtime drops here: the hanging attempt dies with it

    paused_runtime().block_on(async {
        // The new engine takes the run over on its own once the dead one's lease lapses.
        let engine = engine(SqliteStore::open(&path).unwrap());
        let output = engine.handle::<order::Machine>(run).await.unwrap().output().await.unwrap();
        // `reserve` ran once: its transition was checkpointed before the crash.
        assert_eq!(output, "order 2: reserve, charge 20, ship");
        let status = engine.status(run).await.unwrap();
        let charges: Vec<_> = status.history.iter().map(|e| (e.state, e.attempt)).collect();
        // The attempt the crash cut off counts as failed; the retry after its backoff went on.
        assert_eq!(charges, [("reserve", 1), ("charge", 1), ("charge", 2), ("ship", 1)]);
        let Outcome::Failed { failure, retry_in: Some(_) } = &status.history[1].outcome else {
            panic!("the cut-off attempt is a failure with a retry: {}", status.history[1]);
        };
        assert_eq!(*failure, Failure::Interrupted);
        // Nothing left to resume.
        assert!(engine.resume_pending().await.unwrap().resumed.is_empty());
    });
}

#[test]
fn a_backoff_survives_a_restart_and_waits_only_the_rest() {
    let store = MemoryStore::new();
    let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    script(3, [Act::Fail]);
    let (run, wake_at) = paused_runtime().block_on(async {
        let engine = Engine::builder()
            .store(store.clone())
            .machine::<order::Machine>()
            .clock(TestClock::starting_at(t0))
            .seed(11)
            .build()
            .unwrap();
        // A run id of its own: the backoff's jitter is drawn from the seed and the run id,
        // and this one's is long enough to restart half way through.
        let run = RunId::from_u128(0x0bac_c0ff);
        engine.start_as::<order::Machine>(run, 3, Ledger::default()).await.unwrap();
        loop {
            let status = engine.status(run).await.unwrap();
            if let Some(wake_at) = status.wake_at {
                break (run, wake_at);
            }
            tokio::task::yield_now().await;
        }
    }); // crash while backing off
    let wait = wake_at.duration_since(t0).unwrap();
    assert!(wait > Duration::from_secs(1), "the drawn backoff ({wait:?}) is too short to test");

    // The process comes back when half the backoff has passed.
    let restart = t0 + wait / 2;
    paused_runtime().block_on(async {
        let engine = Engine::builder()
            .store(store.clone())
            .machine::<order::Machine>()
            .clock(TestClock::starting_at(restart))
            .build()
            .unwrap();
        let started = tokio::time::Instant::now();
        // Not due yet: the run waits in the store, and is claimed when its backoff ends.
        assert!(engine.resume_pending().await.unwrap().resumed.is_empty());
        let output = engine.handle::<order::Machine>(run).await.unwrap().output().await.unwrap();
        assert_eq!(output, "order 3: reserve, charge 30, ship");
        // Checkpoints after the wait no longer carry its wake-up time.
        assert_eq!(engine.status(run).await.unwrap().wake_at, None);
        let attempts = seen(3);
        assert_eq!(attempts.len(), 2);
        let (attempt, _, at) = &attempts[1];
        assert_eq!(*attempt, 2, "the resumed run goes on with the retry");
        let waited = *at - started;
        let rest = wake_at.duration_since(restart).unwrap();
        assert!(
            waited.abs_diff(rest) <= Duration::from_millis(1),
            "waited {waited:?} after the restart; the rest of the backoff was {rest:?}"
        );
    });
}

#[test]
fn the_idempotency_key_is_stable_across_retries_and_resumes_of_a_visit() {
    let store = MemoryStore::new();
    script(4, [Act::Fail, Act::Hang]);
    let run = paused_runtime().block_on(async {
        let engine = engine(store.clone());
        let run = engine.start::<order::Machine>(4).await.unwrap().id();
        while seen(4).len() < 2 {
            tokio::task::yield_now().await;
            tokio::time::sleep(Duration::from_secs(60)).await;
        }
        run
    });
    paused_runtime().block_on(async {
        let engine = engine(store.clone());
        engine.handle::<order::Machine>(run).await.unwrap().output().await.unwrap();
    });
    let attempts = seen(4);
    let keys: Vec<_> = attempts.iter().map(|(attempt, key, _)| (*attempt, key.clone())).collect();
    let key = format!("{run}/1");
    // Attempt 2 was cut off by the crash, and counted: the takeover runs attempt 3.
    assert_eq!(keys, [(1, key.clone()), (2, key.clone()), (3, key)]);
}

#[test]
fn two_engines_on_one_store_never_both_run_a_run() {
    // (Two processes on one SQLite file: tests/crash.rs. Here the clock is paused, and the
    // store in memory, so that no lease lapses while an engine waits for a disk.)
    let store = MemoryStore::new();
    script(5, [Act::Hang]);
    let run = paused_runtime().block_on(async {
        let engine = engine(store.clone());
        let run = engine.start::<order::Machine>(5).await.unwrap().id();
        until(&engine, run, |s| s.state == "charge").await;
        run
    }); // the process dies with `charge` running

    // Two engines race to take the run over; one wins, and the other never runs it.
    paused_runtime().block_on(async {
        let one = engine(store.clone());
        let two = engine(store.clone());
        let first = one.handle::<order::Machine>(run).await.unwrap().output();
        let second = two.handle::<order::Machine>(run).await.unwrap().output();
        let (first, second) = tokio::join!(first, second);
        for output in [first, second] {
            let output = output.unwrap_or_else(|error| panic!("{error:?}"));
            assert_eq!(output, "order 5: reserve, charge 50, ship");
        }
        let status = one.status(run).await.unwrap();
        let charges: Vec<_> = status.history.iter().filter(|e| e.state == "charge").collect();
        // Once: the transition out of `charge`, whichever engine made it.
        let moved = charges.iter().filter(|e| matches!(e.outcome, Outcome::Transitioned { .. }));
        assert_eq!(moved.count(), 1, "{status:?}");
        // The attempt cut off by the crash counted as failed; no attempt ran in both engines.
        let attempts: Vec<u32> = charges.iter().map(|e| e.attempt).collect();
        assert_eq!(attempts, (1..=attempts.len() as u32).collect::<Vec<_>>(), "{status:?}");
        let ran: Vec<u32> = seen(5).iter().map(|(attempt, ..)| *attempt).collect();
        let mut distinct = ran.clone();
        distinct.dedup();
        assert_eq!(ran, distinct, "an attempt ran twice: {ran:?}");
    });
}

#[test]
fn unknown_machines_and_runs_are_clear_errors() {
    runtime().block_on(async {
        let store = MemoryStore::new();
        let engine = engine(store.clone());
        let nobody = Engine::builder().store(store.clone()).build().unwrap();

        let error = nobody.start::<order::Machine>(6).await.unwrap_err();
        assert!(matches!(&error, EngineError::UnknownMachine { name } if name == "order"));
        assert_eq!(
            error.to_string(),
            "no machine named `order` is registered with this engine; register it with \
             Engine::builder().machine::<order::Machine>()"
        );

        // An engine claims only runs of the machines it knows.
        script(6, [Act::Hang]);
        let run = engine.start::<order::Machine>(6).await.unwrap().id();
        let report = nobody.resume_pending().await.unwrap();
        assert!(report.resumed.is_empty() && report.failed.is_empty(), "{report:?}");
        assert_eq!(nobody.status(run).await.unwrap().status, Status::Running);

        let wrong = engine.handle::<other::Machine>(run).await.unwrap_err();
        assert_eq!(
            wrong.to_string(),
            format!("run {run} is a run of machine `order`, not of `other`")
        );

        let ghost = RunId::from_u128(0xdead_beef);
        let error = engine.status(ghost).await.unwrap_err();
        assert!(matches!(error, EngineError::UnknownRun { run } if run == ghost));
        assert!(error.to_string().starts_with("there is no run 000000000000000000000000deadbeef"));
        assert!(matches!(
            engine.handle::<order::Machine>(ghost).await,
            Err(EngineError::UnknownRun { .. })
        ));
        assert!("not-a-run-id".parse::<RunId>().is_err());

        let taken = engine.start_as::<order::Machine>(run, 7, Ledger::default()).await;
        assert!(matches!(taken, Err(EngineError::AlreadyExists { run: r }) if r == run));
    });
}

/// A run started under a business key has the id the key maps to and keeps the key; the key
/// starts one run however often it is started, and finds that run again after a restart.
#[test]
fn a_keyed_start_starts_one_run_found_by_its_key() {
    let path = common::db("durable-keyed");
    let run = RunId::for_key("order", "order-41");
    runtime().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap());
        let first = engine.start_keyed::<order::Machine>("order-41", 41, Ledger::default());
        let first = first.await.unwrap();
        assert_eq!(first.id(), run);
        let again = engine.start_keyed::<order::Machine>("order-41", 42, Ledger::default()).await;
        assert!(matches!(again, Err(EngineError::AlreadyExists { run: r }) if r == run));
        let taken = engine.start_as::<order::Machine>(run, 43, Ledger::default()).await;
        assert!(matches!(taken, Err(EngineError::AlreadyExists { .. })));
        assert_eq!(first.output().await.unwrap(), "order 41: reserve, charge 410, ship");
        let other = engine.start_keyed::<order::Machine>("order-44", 44, Ledger::default());
        other.await.unwrap().output().await.unwrap();
        engine.start::<order::Machine>(45).await.unwrap().output().await.unwrap();
    });
    runtime().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap());
        let found = engine.handle_for_key::<order::Machine>("order-41").await.unwrap();
        assert_eq!(found.id(), run);
        assert_eq!(found.output().await.unwrap(), "order 41: reserve, charge 410, ship");
        let status = engine.status(run).await.unwrap();
        assert_eq!(status.key.as_deref(), Some("order-41"));
        let mut keys: Vec<_> =
            engine.list(Filter::new()).await.unwrap().into_iter().map(|s| s.key).collect();
        keys.sort();
        assert_eq!(keys, [None, Some("order-41".into()), Some("order-44".into())]);
        let listed = engine.list(Filter::new().key("order-41")).await.unwrap();
        assert_eq!(listed.iter().map(|s| s.run).collect::<Vec<_>>(), [run]);
        let unknown = engine.handle_for_key::<order::Machine>("order-40").await;
        let ghost = RunId::for_key("order", "order-40");
        assert!(matches!(unknown, Err(EngineError::UnknownRun { run }) if run == ghost));
    });
}

#[test]
fn a_corrupt_checkpoint_marks_its_run_and_harms_no_other() {
    let path = common::db("durable-corrupt");
    script(8, [Act::Hang]);
    script(9, [Act::Hang]);
    let (bad, good) = paused_runtime().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap());
        let bad = engine.start::<order::Machine>(8).await.unwrap().id();
        let good = engine.start::<order::Machine>(9).await.unwrap().id();
        until(&engine, bad, |s| s.state == "charge").await;
        until(&engine, good, |s| s.state == "charge").await;
        (bad, good)
    });
    let file = rusqlite::Connection::open(&path).unwrap();
    file.execute(
        "UPDATE flow_runs SET snapshot = '{\"state\": {\"Charge\": [8]}' WHERE id = ?1 AND seq = 1",
        [bad.to_string()],
    )
    .unwrap();

    paused_runtime().block_on(async {
        // Both are taken over once the dead engine's lease lapses; one cannot be read.
        let engine = engine(SqliteStore::open(&path).unwrap());
        let output = engine.handle::<order::Machine>(good).await.unwrap().output().await.unwrap();
        assert_eq!(output, "order 9: reserve, charge 90, ship");
        until(&engine, bad, |s| s.status == Status::Stuck).await;
        // Retried, it is refused again, with the reason.
        let report = engine.resume_pending().await.unwrap();
        assert!(report.resumed.is_empty(), "{report:?}");
        let [EngineError::Corrupt { run, machine, detail }] = &report.failed[..] else {
            panic!("expected one corrupt run, got {:?}", report.failed);
        };
        assert_eq!((*run, machine.as_str()), (bad, "order"));
        assert!(detail.starts_with("checkpoint 1 does not read as this machine's"), "{detail}");

        let status = engine.status(bad).await.unwrap();
        assert_eq!(status.status, Status::Stuck);
        assert!(status.note.unwrap().contains("has a corrupt checkpoint"));
        let stuck = engine.list(Filter::new().status(Status::Stuck)).await.unwrap();
        assert_eq!(stuck.iter().map(|r| r.run).collect::<Vec<_>>(), [bad]);
    });
}

#[test]
fn an_unwritable_store_path_is_a_clear_error() {
    // A directory that cannot exist: its parent is a file.
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml").join("runs.db");
    let error = SqliteStore::open(&path).unwrap_err();
    assert!(matches!(error, StoreError::Open { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.starts_with("cannot open the store at "), "{message}");
    assert!(message.contains("Cargo.toml/runs.db"), "{message}");
    assert!(message.ends_with("check that its directory exists and is writable"), "{message}");

    // A file that is not a database is refused too, and left as it was.
    let not_a_db = common::db("durable-not-a-db");
    std::fs::write(&not_a_db, "plain text, not SQLite").unwrap();
    assert!(matches!(SqliteStore::open(&not_a_db), Err(StoreError::Open { .. })));
    assert_eq!(std::fs::read_to_string(&not_a_db).unwrap(), "plain text, not SQLite");
}

#[test]
fn a_failed_run_reports_its_error_and_history_after_a_restart() {
    let path = common::db("durable-failed");
    script(10, [Act::Fail, Act::Fail, Act::Fail]);
    let run = paused_runtime().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap());
        let handle = engine.start::<order::Machine>(10).await.unwrap();
        let run = handle.id();
        let error = handle.output().await.unwrap_err();
        assert!(matches!(&error, EngineError::Failed { error: RunError::StateFailed { .. }, .. }));
        run
    });
    runtime().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap());
        let error = engine.handle::<order::Machine>(run).await.unwrap().output().await.unwrap_err();
        let EngineError::Failed {
            error: RunError::StateFailed { state, attempts, history }, ..
        } = error
        else {
            panic!("expected the stored failure, got {error}");
        };
        assert_eq!(state, "charge");
        assert_eq!(attempts.len(), 3);
        assert_eq!(history.len(), 4, "reserve and three charge attempts");
        assert_eq!(engine.status(run).await.unwrap().status, Status::Failed);
    });
}

#[flow::machine(name = "flaky_call")]
pub mod flaky {
    use super::*;

    /// Fails its first attempt; full jitter over 1 ms draws a backoff of 0 ms about half the
    /// time.
    #[state(start, end, retry(attempts = 2, backoff = "1ms"))]
    async fn call(_cx: &mut u32, n: u32) -> Result<u32> {
        if flow::current().is_some_and(|now| now.attempt == 1) {
            return Err(Error::retryable("the first attempt fails"));
        }
        Ok(n)
    }
}

#[tokio::test(start_paused = true)]
async fn a_retry_whose_backoff_is_drawn_as_zero_goes_on() {
    let engine = Engine::builder()
        .store(MemoryStore::new())
        .machine::<flaky::Machine>()
        .clock(TestClock::new())
        .build()
        .unwrap();
    let mut zero = 0;
    for n in 0..40 {
        let run = engine.start::<flaky::Machine>(n).await.unwrap();
        let id = run.id();
        let output = tokio::time::timeout(Duration::from_secs(60), run.output()).await;
        assert_eq!(output.expect("the retry ran").unwrap(), n);
        let history = engine.status(id).await.unwrap().history;
        if let Outcome::Failed { retry_in: Some(delay), .. } = history[0].outcome {
            zero += u32::from(delay.is_zero());
        }
    }
    assert!(zero > 0, "no backoff was drawn as zero: the case was not tried");
}

#[flow::machine(name = "ticker", max_steps = 50)]
pub mod ticker {
    use super::*;

    /// A second between ticks, spent waiting in the store.
    #[state(start, to(tick, done), wait = "1s")]
    async fn tick(cx: &mut u32, n: u32) -> Result<Tick> {
        *cx += 1;
        if n >= 3 { goto!(done(n)) } else { goto!(tick(n + 1)) }
    }

    #[state(end)]
    async fn done(cx: &mut u32, n: u32) -> Result<u32> {
        Ok(n * 100 + *cx)
    }
}

/// Edits run `run`'s stored snapshot with SQLite's `json_set(snapshot, path, value)`.
fn edit_snapshot(path: &std::path::Path, run: RunId, json_path: &str, value: i64) {
    let file = rusqlite::Connection::open(path).unwrap();
    let changed = file
        .execute(
            "UPDATE flow_runs SET snapshot = json_set(snapshot, ?2, ?3) WHERE id = ?1",
            rusqlite::params![run.to_string(), json_path, value],
        )
        .unwrap();
    assert_eq!(changed, 1);
}

#[test]
fn guards_and_counters_hold_for_any_stored_value() {
    let path = common::db("durable-stored-counters");
    let build = || {
        Engine::builder()
            .store(SqliteStore::open(&path).unwrap())
            .machine::<ticker::Machine>()
            .clock(TestClock::new())
            .build()
            .unwrap()
    };
    // In real time: a shutdown on a paused clock would give up on its grace at once, while
    // SQLite's writer thread still works.
    let (past_the_limit, at_the_top) = runtime().block_on(async {
        let engine = build();
        let past_the_limit = engine.start_with::<ticker::Machine>(0, 0).await.unwrap().id();
        let at_the_top = engine.start_with::<ticker::Machine>(0, 0).await.unwrap().id();
        // No engine writes them while they are edited below.
        engine.shutdown(Duration::from_secs(10)).await.unwrap();
        (past_the_limit, at_the_top)
    });
    // Their counters are rewritten, as a deploy that lowered max_steps, or a long life, would
    // leave them.
    edit_snapshot(&path, past_the_limit, "$.steps", 1000);
    edit_snapshot(&path, at_the_top, "$.visits.tick", i64::from(u32::MAX));
    edit_snapshot(&path, at_the_top, "$.steps", 3);
    paused_runtime().block_on(async {
        let engine = build();
        // A run stored past max_steps is stopped at its next step, not run on.
        let output = engine.handle::<ticker::Machine>(past_the_limit).await.unwrap().output();
        let error = output.await.unwrap_err();
        let EngineError::Failed { error: RunError::MaxSteps { limit: 50, .. }, .. } = &error else {
            panic!("expected the max_steps guard, got {error:?}");
        };
        // A visit counter at its top saturates: no overflow, no wrap, the run goes on.
        let output = engine.handle::<ticker::Machine>(at_the_top).await.unwrap().output();
        assert_eq!(output.await.unwrap(), 304);
    });
}

/// Runs never complete into a file deleted under the engine: their writes are refused, and
/// the handle says why, instead of reporting an output nobody can find after a restart.
#[test]
fn runs_never_complete_into_a_deleted_file() {
    let path = common::db("durable-deleted-file");
    runtime().block_on(async {
        let engine = Engine::builder()
            .store(SqliteStore::open(&path).unwrap())
            .machine::<ticker::Machine>()
            .build()
            .unwrap();
        let handle = engine.start::<ticker::Machine>(0).await.unwrap();
        std::fs::remove_file(&path).unwrap();
        let ended = tokio::time::timeout(Duration::from_secs(10), handle.output()).await;
        let error =
            ended.expect("the handle hangs").expect_err("the run completed into a deleted file");
        assert!(error.to_string().contains("was deleted"), "{error}");
    });
}
