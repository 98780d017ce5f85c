//! The crash test: real engine processes, killed with SIGKILL at random moments, over one
//! SQLite store. Two scenarios, each with its own files (the store and a ledger):
//!
//! 1. one engine process, killed at least 30 times and restarted each time, then let finish;
//! 2. two engine processes on the same files at once; a random one of them is killed at
//!    random moments (at least 30 kills in all) and restarted, then both are let finish.
//!
//! Each scenario runs 200 workflows, plus one doomed workflow whose only state kills the
//! process that runs it (`std::process::abort()`) on every attempt. Nobody calls
//! `resume_pending`: runs held by a dead process are taken over once its lease lapses.
//!
//! Afterwards, from the files alone:
//!
//! - every workflow completed exactly once, with the output its input determines;
//! - its history has one `Completed` entry, the last one; its transitions are exactly the path
//!   its input determines (none lost, none applied twice); its attempts are numbered without a
//!   gap; every failed attempt is an interrupted one or the failure the workflow injects, and
//!   was retried; and the latest checkpoint's sequence number is the number of history entries
//!   (in these machines every checkpoint after the first adds exactly one);
//! - every side effect, recorded downstream under the visit's idempotency key, was applied
//!   once per visit of the history (same key, same state, same amount), although state bodies
//!   ran again after kills;
//! - the doomed workflow failed after exactly its 3 attempts, each `Failure::Interrupted`, and
//!   took at most 3 processes down with it.
//!
//! The kill schedule is seeded: `FLOW_CRASH_SEED=<n> cargo test --test crash` replays one.
//! (A harness-less test: the same binary is the child when `FLOW_CRASH_CHILD` is set.)

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, ExitStatus};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use flow::history::{Entry, Failure, Outcome};
use flow::prelude::*;
use flow::store::{CheckpointStore, Filter, SqliteStore, Status};
use flow::{Engine, EngineError, RunError, RunHandle, RunId};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

const WORKFLOWS: u32 = 200;
/// SIGKILLs per scenario, at least.
const KILLS: u32 = 30;
/// At most this many runs execute at once in one engine, so the work takes a few seconds and
/// the kills land in the middle of it.
const CONCURRENCY: usize = 8;
/// The child engines' owner lease: a killed engine's runs are taken over this long after its
/// last renewal (plus a poll), instead of the default 10 s.
const LEASE: Duration = Duration::from_millis(300);
/// How often the child engines look for runs another process made claimable (lapsed leases).
const POLL: Duration = Duration::from_millis(100);
/// The doomed state's `retry(attempts = 3)`: how many attempts (and so at most how many
/// process deaths) it gets before its run fails.
const DOOMED_ATTEMPTS: u32 = 3;
/// The doomed workflow's number (its run id and ledger rows), after the 200 others.
const DOOMED: u32 = WORKFLOWS;
/// How long the children get to finish once the kills stop, before the test fails.
const FINISH_WITHIN: Duration = Duration::from_secs(30);
/// The message of the failure `debit` injects.
const LOST_ANSWER: &str = "the bank's answer was lost";

/// The downstream system the workflows change: a ledger deduplicating by idempotency key.
static LEDGER: OnceLock<Mutex<Connection>> = OnceLock::new();

fn ledger() -> Result<std::sync::MutexGuard<'static, Connection>> {
    let ledger = LEDGER.get().ok_or_else(|| Error::permanent("the ledger is not open"))?;
    ledger.lock().map_err(|_| Error::permanent("the ledger's lock is poisoned"))
}

fn key() -> Result<String> {
    flow::idempotency_key().ok_or_else(|| Error::permanent("a ledger write outside a state"))
}

/// Applies `amount` for the current state visit, once per idempotency key; every execution is
/// counted too, to show how many were deduplicated.
fn apply(state: &str, workflow: u32, amount: u64) -> Result<()> {
    let key = key()?;
    let ledger = ledger()?;
    ledger.execute(
        "INSERT INTO executions (key, workflow) VALUES (?1, ?2)",
        rusqlite::params![key, workflow],
    )?;
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

/// The transitions workflow `i` must make, in order: open → debit × rounds → credit → close.
fn path(i: u32) -> Vec<(&'static str, &'static str)> {
    let mut path = vec![("open", "debit")];
    path.extend((1..rounds(i)).map(|_| ("debit", "debit")));
    path.extend([("debit", "credit"), ("credit", "close")]);
    path
}

/// Simulated work, so that runs are in flight when the kills land.
async fn work(i: u32, step: u32) {
    tokio::time::sleep(Duration::from_millis(u64::from(15 + (i * 7 + step * 13) % 30))).await;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tally {
    pub total: u64,
}

/// Every state has 12 attempts with a short backoff: a kill during an attempt counts as a
/// failed attempt (`Failure::Interrupted`) against the state's budget, and with 30 kills (and,
/// with two engines, takeovers), one visit can be interrupted several times in a row, on top
/// of the failure `debit` injects. With the default single attempt, one kill mid-attempt would
/// fail the workflow; 12 leaves a margin this schedule never comes near.
#[flow::machine(name = "crash_job")]
pub mod job {
    use super::*;

    #[state(start, to(debit), retry(attempts = 12, backoff = "5ms..40ms"))]
    async fn open(_cx: &mut Tally, i: u32) -> Result<Open> {
        work(i, 0).await;
        apply("open", i, 0)?;
        goto!(debit(i, 1))
    }

    /// Loops once per round. Every third workflow loses the bank's answer on its first
    /// attempt of each round: the debit was applied, the retry applies it again, and only the
    /// idempotency key keeps the ledger right.
    #[state(to(debit, credit), retry(attempts = 12, backoff = "5ms..40ms"))]
    async fn debit(cx: &mut Tally, i: u32, round: u32) -> Result<Debit> {
        work(i, round).await;
        let amount = debit_amount(i, round);
        apply("debit", i, amount)?;
        if i.is_multiple_of(3) && flow::current().is_some_and(|now| now.attempt == 1) {
            return Err(Error::retryable(LOST_ANSWER));
        }
        cx.total += amount;
        if round < rounds(i) {
            return goto!(debit(i, round + 1));
        }
        goto!(credit(i))
    }

    #[state(to(close), retry(attempts = 12, backoff = "5ms..40ms"))]
    async fn credit(cx: &mut Tally, i: u32) -> Result<Credit> {
        work(i, 99).await;
        apply("credit", i, u64::from(i))?;
        cx.total += u64::from(i);
        goto!(close(i))
    }

    #[state(end, retry(attempts = 12, backoff = "5ms..40ms"))]
    async fn close(cx: &mut Tally, i: u32) -> Result<u64> {
        apply("close", i, 0)?;
        Ok(cx.total)
    }
}

/// A workflow whose only state kills the process running it, every attempt. Its run must
/// fail after `DOOMED_ATTEMPTS` interrupted attempts, not take processes down forever.
#[flow::machine(name = "crash_doomed")]
pub mod doomed {
    use super::*;

    #[state(start, end, retry(attempts = 3, backoff = "5ms"))]
    async fn explode(_cx: &mut Tally, i: u32) -> Result<u64> {
        // Counted, so the check can tell how often the body really ran.
        let key = key()?;
        ledger()?.execute(
            "INSERT INTO executions (key, workflow) VALUES (?1, ?2)",
            rusqlite::params![key, i],
        )?;
        std::process::abort()
    }
}

fn run_id(i: u32) -> RunId {
    RunId::from_u128(0x00c0_ffee_0000 + u128::from(i))
}

fn engine(dir: &Path, seed: u64) -> Result<Engine, EngineError> {
    Engine::builder()
        .store(SqliteStore::open(dir.join("runs.db"))?)
        .machine::<job::Machine>()
        .machine::<doomed::Machine>()
        .max_concurrent_runs(CONCURRENCY)
        .lease(LEASE)
        .poll_interval(POLL)
        // Kills here are random, not the state's doing: a visit killed often is bounded by
        // its 12 attempts, as the checks below expect, not by the default 5 takeovers.
        .max_reassignments(12)
        .seed(seed)
        .build()
}

/// Opens the ledger, creating it (and switching it to WAL) if it is missing. The parent
/// creates it before any child starts: two processes creating a fresh file and switching it
/// to WAL at the same moment were seen to fail with "database is locked" despite the busy
/// timeout.
fn open_ledger(dir: &Path) -> Result<Connection, String> {
    let open = || -> rusqlite::Result<Connection> {
        let ledger = Connection::open(dir.join("ledger.db"))?;
        // Two engine processes write the ledger at once: each waits for the other's write
        // lock instead of failing with SQLITE_BUSY.
        ledger.busy_timeout(Duration::from_secs(10))?;
        ledger.pragma_update(None, "journal_mode", "WAL")?;
        ledger.pragma_update(None, "synchronous", "FULL")?;
        ledger.execute_batch(
            "CREATE TABLE IF NOT EXISTS effects (
                 key TEXT PRIMARY KEY, workflow INTEGER, state TEXT, amount INTEGER);
             CREATE TABLE IF NOT EXISTS executions (
                 id INTEGER PRIMARY KEY, key TEXT, workflow INTEGER);",
        )?;
        Ok(ledger)
    };
    open().map_err(|error| format!("cannot open the ledger: {error}"))
}

/// Starts run `run`, or, if some process started it already, takes a handle on it: a handle
/// follows its run wherever it executes.
async fn start_or_follow<M: flow::Durable<Context = Tally>>(
    engine: &Engine,
    run: RunId,
    input: M::Input,
) -> Result<RunHandle<M>, String> {
    match engine.start_as::<M>(run, input, Tally::default()).await {
        Ok(handle) => Ok(handle),
        Err(EngineError::AlreadyExists { run }) => {
            engine.handle::<M>(run).await.map_err(|e| format!("run {run}: {e}"))
        }
        Err(error) => Err(format!("run {run}: {error}")),
    }
}

/// The child: start every workflow not started yet (including the doomed one, half way),
/// wait for every output, wherever the runs execute. Runs a dead process held are taken
/// over by the engine on its own.
fn child(dir: &Path, seed: u64) -> Result<(), String> {
    let ledger = open_ledger(dir)?;
    LEDGER.set(Mutex::new(ledger)).map_err(|_| "the ledger was opened twice")?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let engine = engine(dir, seed).map_err(|e| e.to_string())?;
        let mut jobs = Vec::new();
        let mut doomed_run = None;
        for i in 0..WORKFLOWS {
            if i == WORKFLOWS / 2 {
                let run = run_id(DOOMED);
                doomed_run = Some(start_or_follow::<doomed::Machine>(&engine, run, DOOMED).await?);
            }
            jobs.push((i, start_or_follow::<job::Machine>(&engine, run_id(i), i).await?));
        }
        for (i, handle) in jobs {
            let output = handle.output().await.map_err(|e| format!("workflow {i}: {e}"))?;
            if output != expected(i) {
                return Err(format!("workflow {i} ended with {output}, expected {}", expected(i)));
            }
        }
        // The doomed run failing is what it is for; anything else is not.
        match doomed_run.ok_or("the doomed workflow was not started")?.output().await {
            Err(EngineError::Failed {
                error: RunError::StateFailed { state: "explode", .. },
                ..
            }) => Ok(()),
            other => Err(format!("the doomed workflow ended with {other:?}, expected a failure")),
        }
    })
}

fn spawn_child(dir: &Path, seed: u64) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the test binary's path: {e}"))?;
    Command::new(exe)
        .env("FLOW_CRASH_CHILD", dir)
        .env("FLOW_CRASH_SEED", seed.to_string())
        .spawn()
        .map_err(|e| format!("cannot start a child: {e}"))
}

/// How a child process ended.
enum Death {
    /// Our SIGKILL.
    Killed,
    /// It ran the doomed state, which aborted it.
    Aborted,
    /// It saw every run end as expected.
    Finished,
    /// Anything else: a failure of the child.
    Failed(ExitStatus),
}

fn death(status: ExitStatus) -> Death {
    const SIGKILL: i32 = 9;
    const SIGABRT: i32 = 6;
    match status.signal() {
        Some(SIGKILL) => Death::Killed,
        Some(SIGABRT) => Death::Aborted,
        _ if status.success() => Death::Finished,
        _ => Death::Failed(status),
    }
}

/// The engine processes of one scenario, and how they died.
struct Children {
    dir: PathBuf,
    seed: u64,
    running: Vec<Child>,
    kills: u32,
    aborts: u32,
}

impl Children {
    fn start(dir: &Path, seed: u64, count: usize) -> Result<Children, String> {
        let running = (0..count).map(|_| spawn_child(dir, seed)).collect::<Result<_, _>>()?;
        Ok(Children { dir: dir.to_owned(), seed, running, kills: 0, aborts: 0 })
    }

    /// Counts a death by abort, failing once more processes died than the doomed state has
    /// attempts: it is being retried past its budget.
    fn aborted(&mut self) -> Result<(), String> {
        self.aborts += 1;
        if self.aborts > DOOMED_ATTEMPTS {
            return Err(format!(
                "{} processes died running the doomed state, which has {DOOMED_ATTEMPTS} \
                 attempts: its interrupted attempts are not counted against its budget",
                self.aborts
            ));
        }
        Ok(())
    }

    /// Restarts children that died running the doomed state; `Ok(true)` for a child that
    /// finished.
    fn reap(&mut self, k: usize) -> Result<bool, String> {
        let Some(status) = self.running[k].try_wait().map_err(|e| e.to_string())? else {
            return Ok(false);
        };
        match death(status) {
            Death::Aborted => {
                self.aborted()?;
                self.running[k] = spawn_child(&self.dir, self.seed)?;
                Ok(false)
            }
            Death::Finished => Ok(true),
            Death::Killed => Err("a child was SIGKILLed by someone else".into()),
            Death::Failed(status) => Err(format!("a child failed on its own: {status}")),
        }
    }

    /// SIGKILLs child `k` and restarts it.
    fn kill(&mut self, k: usize) -> Result<(), String> {
        let child = &mut self.running[k];
        // Already dead (aborted) and reaped, `kill` is a no-op; `wait` tells how it ended.
        let _ = child.kill();
        match death(child.wait().map_err(|e| e.to_string())?) {
            Death::Killed => self.kills += 1,
            Death::Aborted => self.aborted()?,
            Death::Finished => {
                return Err(format!(
                    "the workload finished after only {} kills; make it longer",
                    self.kills
                ));
            }
            Death::Failed(status) => return Err(format!("a child failed on its own: {status}")),
        }
        self.running[k] = spawn_child(&self.dir, self.seed)?;
        Ok(())
    }

    /// Lets every child finish, restarting those the doomed state kills.
    fn finish(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + FINISH_WITHIN;
        let mut pending: Vec<usize> = (0..self.running.len()).collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for k in pending {
                if !self.reap(k)? {
                    still.push(k);
                }
            }
            pending = still;
            if Instant::now() > deadline {
                return Err(format!(
                    "the children did not finish within {FINISH_WITHIN:?} after the last kill"
                ));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(())
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        // A failed scenario leaves no process behind.
        for child in &mut self.running {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// What one scenario did, for the summary.
struct Scenario {
    kills: u32,
    aborts: u32,
    took: Duration,
    stats: Stats,
}

/// Runs `engines` child processes at once on one pair of files, SIGKILLs a random one at
/// random moments until `KILLS` kills, restarting each, then lets them all finish and checks.
fn scenario(seed: u64, engines: usize, rng: &mut fastrand::Rng) -> Result<Scenario, String> {
    let began = Instant::now();
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("crash-{seed}-{engines}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    // Both files exist before the children race to open them (see `open_ledger`).
    drop(open_ledger(&dir)?);
    drop(SqliteStore::open(dir.join("runs.db")).map_err(|e| e.to_string())?);
    let mut children = Children::start(&dir, seed, engines)?;
    while children.kills < KILLS {
        std::thread::sleep(Duration::from_millis(rng.u64(30..150)));
        for k in 0..engines {
            if children.reap(k)? {
                return Err(format!(
                    "the workload finished after only {} kills; make it longer",
                    children.kills
                ));
            }
        }
        children.kill(rng.usize(..engines))?;
    }
    if let Err(error) = children.finish() {
        drop(children); // killed: the store holds still
        return Err(format!("{error}\n{}", unfinished(&dir)));
    }
    let (kills, aborts) = (children.kills, children.aborts);
    drop(children);
    let took = began.elapsed();
    let stats = check(&dir, seed, aborts)?;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Scenario { kills, aborts, took, stats })
}

/// What the store says of the runs that have not finished, to tell why they did not.
fn unfinished(dir: &Path) -> String {
    const SHOWN: usize = 5;
    let describe = async {
        let store = SqliteStore::open(dir.join("runs.db")).map_err(|e| e.to_string())?;
        let running = store.list(Filter::new()).await.map_err(|e| e.to_string())?;
        let running: Vec<_> = running.into_iter().filter(|run| !run.status.is_finished()).collect();
        let mut lines = vec![format!("{} runs are unfinished:", running.len())];
        for run in running.iter().take(SHOWN) {
            let latest = store.latest(run.run).await.map_err(|e| e.to_string())?;
            let history = store.history(run.run).await.map_err(|e| e.to_string())?;
            lines.push(format!(
                "  run {}: {} in `{}`, checkpoint {}, waiting for {:?}; last entries: {}",
                run.run,
                run.status,
                latest.as_ref().map_or("?", |latest| &latest.state),
                latest.as_ref().map_or(0, |latest| latest.seq),
                run.wait,
                history.last().map_or("none", String::as_str)
            ));
        }
        Ok::<_, String>(lines.join("\n"))
    };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build();
    match runtime.map_err(|e| e.to_string()).and_then(|runtime| runtime.block_on(describe)) {
        Ok(lines) => lines,
        Err(error) => format!("(cannot read the store: {error})"),
    }
}

/// The parent: both scenarios, one after the other.
fn parent(seed: u64) -> Result<String, String> {
    let mut rng = fastrand::Rng::with_seed(seed);
    let began = Instant::now();
    let mut summary = Vec::new();
    let (mut effects, mut executions, mut interrupted, mut most_attempts) = (0, 0, 0, 0);
    for (engines, name) in [(1, "1 engine"), (2, "2 engines")] {
        let one = scenario(seed, engines, &mut rng).map_err(|error| format!("{name}: {error}"))?;
        summary.push(format!(
            "{name}: {} kills, {} deaths by abort, {:.1?}",
            one.kills, one.aborts, one.took
        ));
        effects += one.stats.effects;
        executions += one.stats.executions;
        interrupted += one.stats.interrupted;
        most_attempts = most_attempts.max(one.stats.most_attempts);
    }
    Ok(format!(
        "{}; 2 x {WORKFLOWS} workflows + 1 doomed, {effects} effects from {executions} \
         executions ({} re-executions deduplicated), {interrupted} attempts interrupted \
         (at most {most_attempts} attempts for one visit), {:.1?}",
        summary.join("; "),
        executions - effects,
        began.elapsed()
    ))
}

/// Figures of one scenario's check.
struct Stats {
    effects: i64,
    executions: i64,
    interrupted: usize,
    /// The most attempts one visit took.
    most_attempts: u32,
}

/// A state visit: the sequence number of the checkpoint that entered it, and the state.
type Visit = (u64, &'static str);

/// Checks workflow `i`'s history: the path its input determines, attempts numbered without a
/// gap, only the failures this test causes, each retried, one `Completed` entry at the end.
/// Returns the visits it made (the checkpoint that entered each, and the state), and how many
/// attempts were interrupted.
fn check_history(i: u32, history: &[Entry]) -> Result<(Vec<Visit>, usize), String> {
    let path = path(i);
    let mut taken = 0; // transitions of `path` made so far
    let mut state = "open";
    let mut attempt = 1;
    let mut visits = vec![(0, "open")];
    let mut interrupted = 0;
    let at = |k: usize, entry: &Entry| format!("workflow {i}, history entry {k} ({entry})");
    for (k, entry) in history.iter().enumerate() {
        if entry.state != state || entry.attempt != attempt {
            return Err(format!("{}: expected attempt {attempt} of `{state}`", at(k, entry)));
        }
        match &entry.outcome {
            Outcome::Transitioned { to } => {
                if path.get(taken) != Some(&(state, *to)) {
                    return Err(format!(
                        "{}: transition {taken} should be {:?}; the whole path is {path:?}",
                        at(k, entry),
                        path.get(taken)
                    ));
                }
                // Every third workflow's debits fail their first attempt, one way or another.
                if i.is_multiple_of(3) && state == "debit" && attempt == 1 {
                    return Err(format!(
                        "{}: the first attempt of a debit succeeded",
                        at(k, entry)
                    ));
                }
                taken += 1;
                state = to;
                attempt = 1;
                // History entry k is written by checkpoint k + 1, which enters `to`.
                visits.push((k as u64 + 1, *to));
            }
            Outcome::Failed { failure, retry_in } => {
                let injected = matches!(failure, Failure::Error { message, permanent: false, .. }
                    if message.contains(LOST_ANSWER) && state == "debit" && attempt == 1);
                if *failure == Failure::Interrupted {
                    interrupted += 1;
                } else if !injected {
                    return Err(format!("{}: a failure this test does not cause", at(k, entry)));
                }
                if retry_in.is_none() {
                    return Err(format!("{}: the failed attempt was not retried", at(k, entry)));
                }
                attempt += 1;
            }
            Outcome::Completed => {
                if k + 1 != history.len() || state != "close" || taken != path.len() {
                    return Err(format!(
                        "{}: completed, but not as the last entry of `close` after the whole \
                         path ({taken} of {} transitions, {} entries)",
                        at(k, entry),
                        path.len(),
                        history.len()
                    ));
                }
            }
            _ => return Err(format!("{}: an outcome this machine cannot have", at(k, entry))),
        }
    }
    match history.last() {
        Some(Entry { outcome: Outcome::Completed, .. }) => Ok((visits, interrupted)),
        _ => Err(format!("workflow {i}: its history does not end with its completion")),
    }
}

/// The amount the effect of a visit must have: the `n`-th debit visit is round `n`.
fn effect_amount(i: u32, state: &str, debits_before: u32) -> u64 {
    match state {
        "debit" => debit_amount(i, debits_before + 1),
        "credit" => u64::from(i),
        _ => 0,
    }
}

/// Checks the files against what 200 workflows run exactly once, and one doomed, would leave.
fn check(dir: &Path, seed: u64, aborts: u32) -> Result<Stats, String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let ledger = open_ledger(dir)?;
    runtime.block_on(async {
        let engine = engine(dir, seed).map_err(|e| e.to_string())?;
        let store = SqliteStore::open(dir.join("runs.db")).map_err(|e| e.to_string())?;
        let mut effects_total = 0;
        let mut interrupted_total = 0;
        let mut most_attempts = 0;
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

            let status = engine.status(run).await.map_err(|e| e.to_string())?;
            if status.status != Status::Completed {
                return Err(format!("workflow {i} is {}, not completed", status.status));
            }
            let (visits, interrupted) = check_history(i, &status.history)?;
            interrupted_total += interrupted;
            let attempts = status.history.iter().map(|entry| entry.attempt).max();
            most_attempts = most_attempts.max(attempts.unwrap_or(0));

            // Every checkpoint after the first (the start) adds exactly one history entry.
            let latest = store.latest(run).await.map_err(|e| e.to_string())?;
            let seq = latest.map(|latest| latest.seq);
            let rows = store.history(run).await.map_err(|e| e.to_string())?.len();
            let entries = status.history.len() as u64;
            if seq != Some(entries) || status.seq != entries || rows as u64 != entries {
                return Err(format!(
                    "workflow {i}: its latest checkpoint is {seq:?} (status says {}), for {entries} \
                     history entries in {rows} checkpoints; expected one entry per checkpoint \
                     after the first",
                    status.seq
                ));
            }

            // One effect per visit, under the visit's key: the states the run entered, each
            // once, with the amount of that visit.
            let mut expected_effects = BTreeMap::new();
            let mut debits = 0;
            for (visit, state) in &visits {
                let amount = effect_amount(i, state, debits);
                debits += u32::from(*state == "debit");
                expected_effects.insert(format!("{run}/{visit}"), (state.to_string(), amount));
            }
            let mut query = ledger
                .prepare_cached("SELECT key, state, amount FROM effects WHERE workflow = ?1")
                .map_err(|e| e.to_string())?;
            let effects = query
                .query_map([i], |row| {
                    Ok((row.get::<_, String>(0)?, (row.get::<_, String>(1)?, row.get::<_, i64>(2)?)))
                })
                .map_err(|e| e.to_string())?
                .map(|row| row.map(|(key, (state, amount))| (key, (state, amount as u64))))
                .collect::<rusqlite::Result<BTreeMap<_, _>>>()
                .map_err(|e| e.to_string())?;
            if effects != expected_effects {
                return Err(format!(
                    "workflow {i}: the ledger holds the effects {effects:?}; its history's \
                     visits call for exactly {expected_effects:?}"
                ));
            }
            effects_total += effects.len() as i64;
        }

        check_doomed(&engine, &store, &ledger, aborts).await?;

        let count = |sql: &str| -> Result<i64, String> {
            ledger.query_row(sql, [], |row| row.get(0)).map_err(|e| e.to_string())
        };
        // No effect outside the workflows' visits (the doomed one makes none).
        let effects = count("SELECT count(*) FROM effects")?;
        if effects != effects_total {
            return Err(format!(
                "the ledger holds {effects} effects, the workflows' visits {effects_total}"
            ));
        }
        let executions = count(&format!("SELECT count(*) FROM executions WHERE workflow <> {DOOMED}"))?;
        Ok(Stats { effects, executions, interrupted: interrupted_total, most_attempts })
    })
}

/// The doomed workflow failed in its state after exactly its attempts, each interrupted, and
/// its body ran (and so killed a process) at most once per attempt.
async fn check_doomed(
    engine: &Engine,
    store: &SqliteStore,
    ledger: &Connection,
    aborts: u32,
) -> Result<(), String> {
    let run = run_id(DOOMED);
    let status = engine.status(run).await.map_err(|e| format!("the doomed workflow: {e}"))?;
    let history: Vec<String> = status.history.iter().map(ToString::to_string).collect();
    let attempts = DOOMED_ATTEMPTS as usize;
    let failed_as_expected = status.history.len() == attempts
        && status.history.iter().enumerate().all(|(k, entry)| {
            entry.state == "explode"
                && entry.attempt == k as u32 + 1
                && matches!(&entry.outcome, Outcome::Failed { failure: Failure::Interrupted, retry_in }
                    if retry_in.is_some() == (k + 1 < attempts))
        });
    if status.status != Status::Failed || !failed_as_expected {
        return Err(format!(
            "the doomed workflow is {} with the history {history:?}; expected failed after \
             {attempts} interrupted attempts of `explode`",
            status.status
        ));
    }
    match &status.error {
        Some(RunError::StateFailed { state: "explode", attempts: failures, .. })
            if *failures == vec![Failure::Interrupted; attempts] => {}
        other => return Err(format!("the doomed workflow failed with {other:?}")),
    }
    let seq = store.latest(run).await.map_err(|e| e.to_string())?.map(|latest| latest.seq);
    if seq != Some(DOOMED_ATTEMPTS.into()) {
        return Err(format!("the doomed workflow's latest checkpoint is {seq:?}"));
    }
    let runs: u32 = ledger
        .query_row("SELECT count(*) FROM executions WHERE workflow = ?1", [DOOMED], |row| {
            row.get(0)
        })
        .map_err(|e| e.to_string())?;
    // A SIGKILL can land between the body's ledger write and its abort, hence not `==`.
    if !(1..=DOOMED_ATTEMPTS).contains(&aborts) || !(aborts..=DOOMED_ATTEMPTS).contains(&runs) {
        return Err(format!(
            "the doomed state's body ran {runs} times and {aborts} processes died of it; \
             expected between 1 and {DOOMED_ATTEMPTS} deaths, and no more runs than attempts"
        ));
    }
    Ok(())
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
