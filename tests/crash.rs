//! The crash test: a child process runs 200 workflows against a SQLite file and is killed
//! with SIGKILL at random moments, at least 30 times, restarting each time; then it is let
//! finish. Afterwards, from the files alone:
//!
//! - every workflow completed exactly once, with the output its input determines;
//! - each run's checkpoints are numbered 0, 1, 2, … without a gap or a duplicate;
//! - every side effect, recorded downstream under the visit's idempotency key, was applied
//!   once per visit, although state bodies ran again after kills.
//!
//! The kill schedule is seeded: `FLOW_CRASH_SEED=<n> cargo test --test crash` replays one.
//! (A harness-less test: the same binary is the child when `FLOW_CRASH_CHILD` is set.)

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use flow::prelude::*;
use flow::store::{CheckpointStore, SqliteStore, Status};
use flow::{Engine, EngineError, RunId};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

const WORKFLOWS: u32 = 200;
const KILLS: u32 = 30;
/// At most this many runs execute at once, so the work takes a few seconds and the kills
/// land in the middle of it.
const CONCURRENCY: usize = 8;

/// The downstream system the workflows change: a ledger deduplicating by idempotency key.
static LEDGER: OnceLock<Mutex<Connection>> = OnceLock::new();

/// Applies `amount` for the current state visit, once per idempotency key; every execution is
/// counted too, to show how many were deduplicated.
fn apply(state: &str, workflow: u32, amount: u64) -> Result<()> {
    let key = flow::idempotency_key().ok_or_else(|| Error::permanent("apply outside a state"))?;
    let ledger = LEDGER.get().ok_or_else(|| Error::permanent("the ledger is not open"))?;
    let ledger = ledger.lock().map_err(|_| Error::permanent("the ledger's lock is poisoned"))?;
    ledger.execute("INSERT INTO executions (key) VALUES (?1)", [&key])?;
    ledger.execute(
        "INSERT OR IGNORE INTO effects (key, workflow, state, amount) VALUES (?1, ?2, ?3, ?4)",
        rusqlite::params![key, workflow, state, amount as i64],
    )?;
    Ok(())
}

/// How many debit rounds workflow `i` makes, and what each is worth.
fn rounds(i: u32) -> u32 {
    2 + i % 5
}

fn debit_amount(i: u32, round: u32) -> u64 {
    u64::from(i * 10 + round)
}

/// The output workflow `i` must end with.
fn expected(i: u32) -> u64 {
    let debits: u64 = (1..=rounds(i)).map(|round| debit_amount(i, round)).sum();
    debits + u64::from(i) // the credit
}

/// Simulated work, so that runs are in flight when the kills land.
async fn work(i: u32, step: u32) {
    tokio::time::sleep(Duration::from_millis(u64::from(15 + (i * 7 + step * 13) % 30))).await;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tally {
    pub total: u64,
}

#[flow::machine(name = "crash_job")]
pub mod job {
    use super::*;

    #[state(start, to(debit))]
    async fn open(_cx: &mut Tally, i: u32) -> Result<Open> {
        work(i, 0).await;
        apply("open", i, 0)?;
        goto!(debit(i, 1))
    }

    /// Loops once per round. Every third workflow loses the bank's answer on its first
    /// attempt of each round: the debit was applied, the retry applies it again, and only the
    /// idempotency key keeps the ledger right.
    #[state(to(debit, credit), retry(attempts = 4, backoff = "5ms..40ms"))]
    async fn debit(cx: &mut Tally, i: u32, round: u32) -> Result<Debit> {
        work(i, round).await;
        let amount = debit_amount(i, round);
        apply("debit", i, amount)?;
        if i.is_multiple_of(3) && flow::current().is_some_and(|now| now.attempt == 1) {
            return Err(Error::retryable("the bank's answer was lost"));
        }
        cx.total += amount;
        if round < rounds(i) {
            return goto!(debit(i, round + 1));
        }
        goto!(credit(i))
    }

    #[state(to(close), retry(attempts = 3, backoff = "5ms..20ms"))]
    async fn credit(cx: &mut Tally, i: u32) -> Result<Credit> {
        work(i, 99).await;
        apply("credit", i, u64::from(i))?;
        cx.total += u64::from(i);
        goto!(close(i))
    }

    #[state(end)]
    async fn close(cx: &mut Tally, i: u32) -> Result<u64> {
        apply("close", i, 0)?;
        Ok(cx.total)
    }
}

fn run_id(i: u32) -> RunId {
    RunId::from_u128(0x00c0_ffee_0000 + u128::from(i))
}

fn engine(dir: &Path, seed: u64) -> Result<Engine, EngineError> {
    Engine::builder()
        .store(SqliteStore::open(dir.join("runs.db"))?)
        .machine::<job::Machine>()
        .max_concurrent_runs(CONCURRENCY)
        .seed(seed)
        .build()
}

fn open_ledger(dir: &Path) -> rusqlite::Result<Connection> {
    let ledger = Connection::open(dir.join("ledger.db"))?;
    ledger.pragma_update(None, "journal_mode", "WAL")?;
    ledger.pragma_update(None, "synchronous", "FULL")?;
    ledger.execute_batch(
        "CREATE TABLE IF NOT EXISTS effects (
             key TEXT PRIMARY KEY, workflow INTEGER, state TEXT, amount INTEGER);
         CREATE TABLE IF NOT EXISTS executions (id INTEGER PRIMARY KEY, key TEXT);",
    )?;
    Ok(ledger)
}

/// The child: resume what a killed predecessor left, start what it never started, finish.
fn child(dir: &Path, seed: u64) -> Result<(), String> {
    let ledger = open_ledger(dir).map_err(|e| e.to_string())?;
    LEDGER.set(Mutex::new(ledger)).map_err(|_| "the ledger was opened twice")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let engine = engine(dir, seed).map_err(|e| e.to_string())?;
        let resumed = engine.resume_pending().await.map_err(|e| e.to_string())?;
        if let Some(error) = resumed.failed.first() {
            return Err(format!("resume failed: {error}"));
        }
        let mut handles = Vec::new();
        for i in 0..WORKFLOWS {
            match engine.start_as::<job::Machine>(run_id(i), i, Tally::default()).await {
                Ok(handle) => handles.push(handle),
                Err(EngineError::AlreadyExists { run }) => match engine.handle(run).await {
                    Ok(handle) => handles.push(handle),
                    Err(error) => return Err(format!("workflow {i}: {error}")),
                },
                Err(error) => return Err(format!("workflow {i}: {error}")),
            }
        }
        for handle in handles {
            let run = handle.id();
            handle.output().await.map_err(|e| format!("run {run}: {e}"))?;
        }
        Ok(())
    })
}

fn spawn_child(dir: &Path, seed: u64) -> Child {
    Command::new(std::env::current_exe().expect("the test binary's path"))
        .env("FLOW_CRASH_CHILD", dir)
        .env("FLOW_CRASH_SEED", seed.to_string())
        .spawn()
        .expect("the child starts")
}

/// The parent: kill, restart, let finish, check.
fn parent(seed: u64) -> Result<String, String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{seed}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut rng = fastrand::Rng::with_seed(seed);
    let began = Instant::now();

    let mut kills = 0;
    while kills < KILLS {
        let mut child = spawn_child(&dir, seed);
        std::thread::sleep(Duration::from_millis(rng.u64(30..150)));
        match child.try_wait().map_err(|e| e.to_string())? {
            None => {
                child.kill().map_err(|e| e.to_string())?; // SIGKILL
                child.wait().map_err(|e| e.to_string())?;
                kills += 1;
            }
            Some(status) if status.success() => {
                return Err(format!(
                    "the workload finished after only {kills} kills; make it longer"
                ));
            }
            Some(status) => return Err(format!("the child failed on its own: {status}")),
        }
    }
    let status = spawn_child(&dir, seed).wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("the last child, never killed, failed: {status}"));
    }
    let elapsed = began.elapsed();
    let stats = check(&dir, seed)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(format!("{kills} kills, {stats}, {elapsed:.1?}"))
}

/// Checks the files against what 200 workflows run exactly once would leave.
fn check(dir: &Path, seed: u64) -> Result<String, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let ledger = open_ledger(dir).map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let engine = engine(dir, seed).map_err(|e| e.to_string())?;
        let store = SqliteStore::open(dir.join("runs.db")).map_err(|e| e.to_string())?;
        let mut checkpoints_total = 0;
        for i in 0..WORKFLOWS {
            let run = run_id(i);
            let output = engine
                .handle::<job::Machine>(run)
                .await
                .map_err(|e| format!("workflow {i}: {e}"))?
                .output()
                .await
                .map_err(|e| format!("workflow {i}: {e}"))?;
            if output != expected(i) {
                return Err(format!("workflow {i} ended with {output}, expected {}", expected(i)));
            }

            let checkpoints = store.checkpoints(run).await.map_err(|e| e.to_string())?;
            checkpoints_total += checkpoints.len();
            let seqs: Vec<u64> = checkpoints.iter().map(|c| c.seq).collect();
            if seqs != (0..seqs.len() as u64).collect::<Vec<_>>() {
                return Err(format!("workflow {i}: checkpoint numbers {seqs:?} have a gap"));
            }
            let completed = checkpoints.iter().filter(|c| c.status == Status::Completed).count();
            if completed != 1 || checkpoints.last().map(|c| c.status) != Some(Status::Completed) {
                return Err(format!("workflow {i} completed {completed} times"));
            }

            // One effect per visit: the states the run entered, each once.
            let status = engine.status(run).await.map_err(|e| e.to_string())?;
            let visits = 1 + status
                .history
                .iter()
                .filter(|e| matches!(e.outcome, flow::history::Outcome::Transitioned { .. }))
                .count();
            let (effects, sum): (i64, i64) = ledger
                .query_row(
                    "SELECT count(*), coalesce(sum(amount), 0) FROM effects WHERE workflow = ?1",
                    [i],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map_err(|e| e.to_string())?;
            if effects as usize != visits || sum as u64 != expected(i) {
                return Err(format!(
                    "workflow {i}: {effects} effects summing to {sum} for {visits} visits; \
                     expected one per visit, summing to {}",
                    expected(i)
                ));
            }
        }
        let executions: i64 = ledger
            .query_row("SELECT count(*) FROM executions", [], |row| row.get(0))
            .map_err(|e| e.to_string())?;
        let effects: i64 = ledger
            .query_row("SELECT count(*) FROM effects", [], |row| row.get(0))
            .map_err(|e| e.to_string())?;
        Ok(format!(
            "{WORKFLOWS} workflows, {checkpoints_total} checkpoints, {effects} effects from \
             {executions} executions ({} re-executions deduplicated)",
            executions - effects
        ))
    })
}

fn main() -> ExitCode {
    let seed = std::env::var("FLOW_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(2026);
    if let Some(dir) = std::env::var_os("FLOW_CRASH_CHILD") {
        return match child(Path::new(&dir), seed) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("crash child: {error}");
                ExitCode::FAILURE
            }
        };
    }
    // `cargo test -- --list` and filters other than this test's name run nothing.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if std::env::args().any(|a| a == "--list") {
        println!("crash_test: test");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|filter| !"crash_test".contains(filter.as_str())) {
        return ExitCode::SUCCESS;
    }
    println!("running the crash test, seed {seed} (replay: FLOW_CRASH_SEED={seed})");
    match parent(seed) {
        Ok(summary) => {
            println!("test crash_test ... ok ({summary})");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("test crash_test ... FAILED\n{error}\n(seed {seed})");
            ExitCode::FAILURE
        }
    }
}
