//! A crash in the middle of a fan-out: an engine process runs a fan-out of 40 branches over
//! a SQLite store, and is SIGKILLed once some of the branches have finished and others have
//! not. A second process on the same files takes the runs over and finishes the fork.
//!
//! Afterwards, from the files alone:
//!
//! - the join received every branch's output, in item order;
//! - every branch that had finished before the kill ran exactly once: it was read back, never
//!   run again;
//! - the kill did land mid-fork: some branches had finished, not all.
//!
//! (A harness-less test: the same binary is the child when `FLOW_CRASH_FORK_CHILD` is set.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use flow::prelude::*;
use flow::store::{CheckpointStore, Filter, SqliteStore, Status};
use flow::{Engine, EngineError, RunHandle, RunId};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

const ITEMS: u32 = 40;
/// Branches that run at once in one engine: the fork takes a second or so.
const CONCURRENCY: usize = 4;
/// The kill comes once at least this many branches have finished.
const KILL_AFTER: usize = 10;
const LEASE: Duration = Duration::from_millis(300);
const POLL: Duration = Duration::from_millis(100);
const FINISH_WITHIN: Duration = Duration::from_secs(60);
const RUN: RunId = RunId::from_u128(0x00f0_4c0d_e000);

/// Where each branch records that its body ran.
static LEDGER: OnceLock<Mutex<Connection>> = OnceLock::new();

fn ran(item: u32) -> Result<()> {
    let ledger = LEDGER.get().ok_or_else(|| Error::permanent("the ledger is not open"))?;
    let ledger = ledger.lock().map_err(|_| Error::permanent("the ledger's lock is poisoned"))?;
    ledger.execute("INSERT INTO executions (item) VALUES (?1)", [item])?;
    Ok(())
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desk;

#[flow::machine(name = "crash_fanout")]
pub mod fanout {
    use super::*;

    #[state(start, fan_out(square), join = collect)]
    async fn split(_cx: &mut Desk, items: u32) -> Result<Split> {
        fan_out!(square, (0..items).collect::<Vec<_>>())
    }

    /// A kill mid-attempt counts as a failed attempt: the branch retries it.
    #[state(branch_end, retry(attempts = 3, backoff = "5ms"))]
    async fn square(_cx: &mut Desk, item: u32) -> Result<u64> {
        tokio::time::sleep(Duration::from_millis(40 + u64::from(item * 7 % 30))).await;
        ran(item)?;
        Ok(u64::from(item) * u64::from(item))
    }

    #[state(end)]
    async fn collect(_cx: &mut Desk, squares: Vec<u64>) -> Result<Vec<u64>> {
        Ok(squares)
    }
}

fn expected() -> Vec<u64> {
    (0..u64::from(ITEMS)).map(|item| item * item).collect()
}

fn open_ledger(dir: &Path) -> Result<Connection, String> {
    let open = || -> rusqlite::Result<Connection> {
        let ledger = Connection::open(dir.join("ledger.db"))?;
        ledger.busy_timeout(Duration::from_secs(10))?;
        ledger.pragma_update(None, "journal_mode", "WAL")?;
        ledger.pragma_update(None, "synchronous", "FULL")?;
        ledger.execute_batch(
            "CREATE TABLE IF NOT EXISTS executions (id INTEGER PRIMARY KEY, item INTEGER);",
        )?;
        Ok(ledger)
    };
    open().map_err(|error| format!("cannot open the ledger: {error}"))
}

/// The child: starts the fan-out (or follows it, started by a process before) and waits for
/// its output.
fn child(dir: &Path) -> Result<(), String> {
    LEDGER.set(Mutex::new(open_ledger(dir)?)).map_err(|_| "the ledger was opened twice")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let engine = Engine::builder()
            .store(SqliteStore::open(dir.join("runs.db")).map_err(|e| e.to_string())?)
            .machine::<fanout::Machine>()
            .max_concurrent_runs(CONCURRENCY)
            .lease(LEASE)
            .poll_interval(POLL)
            .build()
            .map_err(|e| e.to_string())?;
        let handle: RunHandle<fanout::Machine> =
            match engine.start_as::<fanout::Machine>(RUN, ITEMS, Desk).await {
                Ok(handle) => handle,
                Err(EngineError::AlreadyExists { .. }) => {
                    engine.handle(RUN).await.map_err(|e| e.to_string())?
                }
                Err(error) => return Err(error.to_string()),
            };
        let output = handle.output().await.map_err(|e| e.to_string())?;
        if output != expected() {
            return Err(format!("the join received {output:?}"));
        }
        Ok(())
    })
}

fn spawn_child(dir: &Path) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the test binary's path: {e}"))?;
    Command::new(exe)
        .env("FLOW_CRASH_FORK_CHILD", dir)
        .spawn()
        .map_err(|e| format!("cannot start a child: {e}"))
}

/// The branch runs the store holds as completed.
fn completed(
    runtime: &tokio::runtime::Runtime,
    store: &SqliteStore,
) -> Result<BTreeSet<RunId>, String> {
    let filter = Filter::new().machine("crash_fanout").status(Status::Completed);
    let runs = runtime.block_on(store.list(filter)).map_err(|e| e.to_string())?;
    Ok(runs.into_iter().map(|summary| summary.run).filter(|run| *run != RUN).collect())
}

fn parent() -> Result<String, String> {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("crash_fork");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let ledger = open_ledger(&dir)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;

    let mut first = spawn_child(&dir)?;
    let store = SqliteStore::open(dir.join("runs.db")).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + FINISH_WITHIN;
    loop {
        if completed(&runtime, &store)?.len() >= KILL_AFTER {
            break;
        }
        if let Some(status) = first.try_wait().map_err(|e| e.to_string())? {
            return Err(format!("the first child ended before the kill: {status}"));
        }
        if Instant::now() > deadline {
            let _ = first.kill();
            return Err("the branches did not get going".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    first.kill().map_err(|e| e.to_string())?;
    first.wait().map_err(|e| e.to_string())?;
    // Read after the process is gone: every branch it finished, and only those.
    let before = completed(&runtime, &store)?;
    if before.len() >= ITEMS as usize {
        return Err("every branch had finished before the kill; make them longer".into());
    }

    let mut second = spawn_child(&dir)?;
    loop {
        if let Some(status) = second.try_wait().map_err(|e| e.to_string())? {
            if !status.success() {
                return Err(format!("the second child failed: {status}"));
            }
            break;
        }
        if Instant::now() > deadline {
            let _ = second.kill();
            return Err(format!("the fork did not finish within {FINISH_WITHIN:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }

    // Which item each finished branch ran, by its run id.
    let item_of = |run: &RunId| (0..ITEMS).find(|item| RunId::branch(RUN, 0, *item) == *run);
    let mut runs = ledger.prepare("SELECT count(*) FROM executions WHERE item = ?1").unwrap();
    let mut again = Vec::new();
    for run in &before {
        let item = item_of(run).ok_or_else(|| format!("{run} is no branch of the fork"))?;
        let count: u32 = runs.query_row([item], |row| row.get(0)).map_err(|e| e.to_string())?;
        if count != 1 {
            again.push((item, count));
        }
    }
    if !again.is_empty() {
        return Err(format!("branches finished before the kill ran again: (item, runs) {again:?}"));
    }
    let total: u32 = ledger
        .query_row("SELECT count(DISTINCT item) FROM executions", [], |row| row.get(0))
        .map_err(|e| e.to_string())?;
    if total != ITEMS {
        return Err(format!("{total} items ran, of {ITEMS}"));
    }
    Ok(format!("{} of {ITEMS} branches had finished at the kill", before.len()))
}

fn main() -> ExitCode {
    if let Some(dir) = std::env::var_os("FLOW_CRASH_FORK_CHILD") {
        return match child(Path::new(&dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("crash_fork child: {error}");
                ExitCode::FAILURE
            }
        };
    }
    // `cargo test -- --list` and filters other than this test's name run nothing.
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if std::env::args().any(|a| a == "--list") {
        println!("crash_mid_fork: test");
        return ExitCode::SUCCESS;
    }
    if args.iter().any(|filter| !"crash_mid_fork".contains(filter.as_str())) {
        return ExitCode::SUCCESS;
    }
    match parent() {
        Ok(summary) => {
            println!("test crash_mid_fork ... ok ({summary})");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("test crash_mid_fork ... FAILED\n{error}");
            ExitCode::FAILURE
        }
    }
}
