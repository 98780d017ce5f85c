//! What waiting runs cost when the store is the truth: memory, restarts, storage.
//!
//! `cargo bench --bench waiting` prints a markdown table (about a minute on 2 cores;
//! `FLOW_BENCH_QUICK=1` scales every count down for a check in seconds). In one run:
//!
//! 1. Memory per waiting run: 1,000,000 runs of a machine whose start state waits for a
//!    `#[signal]`, started on one engine over a [`SqliteStore`] file (1,000 `start` calls in
//!    flight, so group commit batches them; every handle dropped). The process's RSS before
//!    the first start and once every run waits, per run (target ≤ 200 bytes; the engine that
//!    held waiting runs in memory used ~3.5 KB each). Then, to leave out the allocator's slack
//!    from the start phase, a fresh process (this binary again, with `FLOW_WAITING_CHILD`)
//!    opens the file, builds an engine and starts one run of a 1-state machine: its RSS, and
//!    the time from spawning the process to that run's first checkpoint (`start` returning;
//!    target ≤ 0.5 s), beside the same child on an empty store.
//! 2. Runs per second when 100,000 runs are due at once after a restart: one engine starts
//!    them in a state with `wait = "1m"` on a clock an hour behind (the process was down while
//!    they came due), and shuts down; a fresh engine on the file, on the system clock, claims
//!    and completes them all, timed from its build until the store counts 100,000 completed
//!    runs. Beside it: 100,000 fresh runs of the same 1-state machine without the wait, 1,000
//!    `start` calls in flight, timed the same way.
//! 3. Bytes written per durable step with a 10 KiB context: a loop whose context holds a 10 KiB
//!    string, 2,000 steps on a fresh file, from `/proc/self/io` (`write_bytes`: what reached
//!    the disk, WAL and its copy into the database included), beside raw SQLite overwriting one
//!    10 KiB row per commit. Then the database's size after a 100,000-step loop with that
//!    context, beside the same loop with an empty context (its history alone): storage =
//!    k × context + history.
//!
//! Under the table, details: RSS before and after, the children's own timeline, bytes to write
//! calls beside bytes to the disk, how full the checkpoint table's pages are (SQLite's
//! `dbstat`), and the calls each phase made to the store (counted by [`Watched`](common::Watched)).
//!
//! Every database is in WAL mode with `synchronous=FULL` (the store's defaults), in a fresh
//! directory under `CARGO_TARGET_TMPDIR` (the project's disk), removed at the end
//! (`FLOW_BENCH_KEEP=1` keeps them).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use common::{Io, Watched, bench_dir, cpu_model, grouped, table};
use flow::prelude::*;
use flow::store::SqliteStore;
use flow::{Clock, Durable, Engine, RunId};
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

/// The child process's variable: the database it opens.
const CHILD: &str = "FLOW_WAITING_CHILD";
/// `start` calls in flight at once.
const IN_FLIGHT: u64 = 1_000;
/// The context of the storage measurements.
const CONTEXT_BYTES: usize = 10 * 1024;
/// Starting the waiting runs stops after this long, short of the count if need be.
const START_BUDGET: Duration = Duration::from_secs(360);
/// A budget that never runs out.
const NO_BUDGET: Duration = Duration::from_secs(24 * 3600);
/// Target: bytes of RSS per waiting run.
const TARGET_BYTES_PER_RUN: f64 = 200.0;
/// What the engine that held waiting runs in memory used per waiting run.
const OLD_BYTES_PER_RUN: f64 = 3.5 * 1024.0;
/// Target: from a process's start to its first new checkpoint, with the runs stored.
const TARGET_FIRST_CHECKPOINT: Duration = Duration::from_millis(500);

/// How many of each thing; `FLOW_BENCH_QUICK=1` scales them down.
struct Scale {
    waiting: u64,
    due: u64,
    steps: u64,
    long_loop: u64,
}

impl Scale {
    fn from_env() -> Scale {
        if std::env::var_os("FLOW_BENCH_QUICK").is_some_and(|quick| quick != "0") {
            Scale { waiting: 20_000, due: 10_000, steps: 300, long_loop: 3_000 }
        } else {
            Scale { waiting: 1_000_000, due: 100_000, steps: 2_000, long_loop: 100_000 }
        }
    }
}

/// The signal that opens a gate. (Not a unit struct: serde writes `Some(())`-like values as
/// `null`, which reads back as no signal.)
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Open(pub u64);

/// A run that waits for [`Open`] from its first checkpoint on, then ends.
#[flow::machine]
pub mod gate {
    use super::*;

    /// Waits for the signal; outputs its input.
    #[state(start, end)]
    async fn shut(_cx: &mut u64, n: u64, #[signal] open: Open) -> Result<u64> {
        Ok(n + open.0)
    }
}

/// One state, run at once: the trivial machine.
#[flow::machine]
pub mod once {
    use super::*;

    /// Outputs its input.
    #[state(start, end)]
    async fn only(cx: &mut u64, n: u64) -> Result<u64> {
        *cx += 1;
        Ok(n)
    }
}

/// One state, after a minute's durable timer.
#[flow::machine]
pub mod nap {
    use super::*;

    /// Outputs its input, a minute after the run started.
    #[state(start, end, wait = "1m")]
    async fn wake(cx: &mut u64, n: u64) -> Result<u64> {
        *cx += 1;
        Ok(n)
    }
}

/// A loop's context: a text carried along, and a count that changes every step.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Notes {
    pub text: String,
    pub steps: u64,
}

/// A loop: `tick` goes to itself `n - 1` times, then to `done`.
#[flow::machine(max_steps = 1000000)]
pub mod scribe {
    use super::*;

    /// Counts itself in the context.
    #[state(start, to(tick, done))]
    async fn tick(cx: &mut Notes, left: u64) -> Result<Tick> {
        cx.steps += 1;
        if left <= 1 {
            return goto!(done());
        }
        goto!(tick(left - 1))
    }

    /// The end: outputs the count and the text's length.
    #[state(end)]
    async fn done(cx: &mut Notes) -> Result<(u64, usize)> {
        Ok((cx.steps, cx.text.len()))
    }
}

/// The system clock, an hour behind: runs started on it come due an hour early by the system
/// clock, as if their process had been down while they came due.
struct HourBehind;

impl Clock for HourBehind {
    fn now(&self) -> SystemTime {
        SystemTime::now() - Duration::from_secs(3600)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// A field of `/proc/self/status`, in KiB (0 where missing).
fn status_kib(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The process's resident set, in bytes.
fn rss() -> u64 {
    status_kib("VmRSS") * 1024
}

/// A text of `len` random letters and digits.
fn text(len: usize) -> String {
    std::iter::repeat_with(fastrand::alphanumeric).take(len).collect()
}

/// Reads one number from the database at `path`.
fn count(connection: &Connection, sql: &str) -> u64 {
    let value: i64 = connection.query_row(sql, [], |row| row.get(0)).unwrap();
    u64::try_from(value).unwrap()
}

/// The size of `path` and its WAL, in bytes.
fn file_bytes(path: &Path) -> u64 {
    ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|metadata| metadata.len())
        .sum()
}

/// Starts `runs` runs of `M` (inputs 0, 1, …) with `IN_FLIGHT` calls in flight, dropping each
/// handle, until `budget` is over. Returns how many started, and the id of run 0.
async fn start_all<M>(engine: &Engine, runs: u64, budget: Duration) -> (u64, RunId)
where
    M: Durable<Input = u64>,
    M::Context: Default,
{
    let next = Arc::new(AtomicU64::new(0));
    let started = Arc::new(AtomicU64::new(0));
    let first = Arc::new(OnceLock::new());
    let deadline = Instant::now() + budget;
    let tasks: Vec<_> = (0..IN_FLIGHT.min(runs))
        .map(|_| {
            let (engine, next) = (engine.clone(), Arc::clone(&next));
            let (started, first) = (Arc::clone(&started), Arc::clone(&first));
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= runs || Instant::now() >= deadline {
                        break;
                    }
                    let handle = engine.start::<M>(i).await.unwrap();
                    if i == 0 {
                        first.set(handle.id()).unwrap();
                    }
                    let done = started.fetch_add(1, Ordering::Relaxed) + 1;
                    if done % 100_000 == 0 {
                        eprintln!("  {done} of {runs} runs of `{}` started", M::NAME);
                    }
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    (started.load(Ordering::Relaxed), *first.get().unwrap())
}

/// Polls the database at `path` until `runs` runs have completed (at most `limit`); returns
/// how long that took from `since`.
fn until_completed(path: &Path, runs: u64, since: Instant, limit: Duration) -> Duration {
    let connection = Connection::open(path).unwrap();
    loop {
        let done = count(&connection, "SELECT count(*) FROM flow_runs WHERE status = 'completed'");
        let elapsed = since.elapsed();
        assert!(elapsed < limit, "only {done} of {runs} runs completed in {limit:?}");
        if done >= runs {
            return elapsed;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// What measurement 1 found.
struct Waiting {
    runs: u64,
    /// How long starting them took.
    start: Duration,
    before: u64,
    after: u64,
    peak: u64,
    file: u64,
    /// What the engine asked of the store.
    calls: String,
}

/// Measurement 1, in this process: `runs` runs waiting for a signal, on the file at `path`.
fn waiting(path: &Path, runs: u64) -> Waiting {
    let runtime = runtime();
    runtime.block_on(async {
        let store = Watched::new(SqliteStore::open(path).unwrap());
        let engine =
            Engine::builder().store(store.clone()).machine::<gate::Machine>().build().unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let before = rss();
        let started = Instant::now();
        let (runs, first) = start_all::<gate::Machine>(&engine, runs, START_BUDGET).await;
        let start = started.elapsed();
        let calls = store.calls();
        // Let the scheduler look at the store once more, and anything deferred settle.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let after = rss();
        let peak = status_kib("VmHWM") * 1024;
        // Every run waits for its signal, in the store.
        let check = Connection::open(path).unwrap();
        let waiting = count(&check, "SELECT count(*) FROM flow_runs WHERE wait = 'signal'");
        assert_eq!(waiting, runs, "every run started waits for its signal");
        drop(check);
        // And goes on when it comes.
        engine.signal::<gate::Machine, _>(first, Open(5)).await.unwrap();
        let handle = engine.handle::<gate::Machine>(first).await.unwrap();
        assert_eq!(handle.output().await.unwrap(), 5);
        engine.shutdown(Duration::from_secs(5)).await.unwrap();
        Waiting { runs, start, before, after, peak, file: file_bytes(path), calls }
    })
}

/// What a child process reported, and how long it took to report its first checkpoint.
struct Child {
    /// From spawning the process to reading its line, after `start` returned.
    first_checkpoint: Duration,
    /// The child's own times from `main`: store opened, engine built, `start` returned.
    opened: Duration,
    built: Duration,
    started: Duration,
    /// RSS at the first checkpoint, and a second later.
    rss: u64,
    settled: u64,
}

/// Runs this binary as a child on the database at `path`; see [`child`].
fn spawn_child(path: &Path) -> Child {
    let spawned = Instant::now();
    let mut process = Command::new(std::env::current_exe().unwrap())
        .env(CHILD, path)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(process.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let first_checkpoint = spawned.elapsed();
    let second = lines.next().unwrap().unwrap();
    assert!(process.wait().unwrap().success(), "the child failed");
    let numbers = |line: &str, tag: &str| -> Vec<u64> {
        let rest = line.strip_prefix(tag).unwrap_or_else(|| panic!("the child said: {line}"));
        rest.split_whitespace().map(|n| n.parse().unwrap()).collect()
    };
    let first = numbers(&first, "first-checkpoint");
    let settled = numbers(&second, "settled")[0];
    Child {
        first_checkpoint,
        opened: Duration::from_micros(first[0]),
        built: Duration::from_micros(first[1]),
        started: Duration::from_micros(first[2]),
        rss: first[3],
        settled,
    }
}

/// The child: opens the store at `path`, builds an engine, starts one run of a 1-state
/// machine and reports once `start` returns (its first checkpoint is durable): its times
/// since `main` and its RSS; then its RSS again a second after the run ended.
fn child(path: &Path) {
    let began = Instant::now();
    let runtime = runtime();
    runtime.block_on(async {
        let store = SqliteStore::open(path).unwrap();
        let opened = began.elapsed();
        let engine = Engine::builder()
            .store(store)
            .machine::<gate::Machine>()
            .machine::<once::Machine>()
            .build()
            .unwrap();
        let built = began.elapsed();
        let handle = engine.start::<once::Machine>(7).await.unwrap();
        let started = began.elapsed();
        let micros = |elapsed: Duration| elapsed.as_micros();
        let mut out = std::io::stdout();
        writeln!(
            out,
            "first-checkpoint {} {} {} {}",
            micros(opened),
            micros(built),
            micros(started),
            rss()
        )
        .unwrap();
        out.flush().unwrap();
        assert_eq!(handle.output().await.unwrap(), 7);
        tokio::time::sleep(Duration::from_secs(1)).await;
        writeln!(out, "settled {}", rss()).unwrap();
        out.flush().unwrap();
    });
}

/// Measurement 2: `runs` runs made due at once, then claimed by a fresh engine. Returns how
/// long creating them took, how long the fresh engine took to complete them all, and what it
/// asked of the store meanwhile.
fn due_after_restart(path: &Path, runs: u64) -> (Duration, Duration, String) {
    let created = runtime().block_on(async {
        let engine = Engine::builder()
            .store(SqliteStore::open(path).unwrap())
            .machine::<nap::Machine>()
            .clock(HourBehind)
            .build()
            .unwrap();
        let started = Instant::now();
        let (started_runs, _) = start_all::<nap::Machine>(&engine, runs, NO_BUDGET).await;
        assert_eq!(started_runs, runs);
        let created = started.elapsed();
        engine.shutdown(Duration::from_secs(5)).await.unwrap();
        created
    });
    let check = Connection::open(path).unwrap();
    let timers = "SELECT count(*) FROM flow_runs WHERE wait = 'timer' AND status = 'running'";
    assert_eq!(count(&check, timers), runs, "every run waits for its timer");
    drop(check);

    // The restart: a fresh engine, on the system clock, finds every run due.
    let runtime = runtime();
    let _inside = runtime.enter();
    let since = Instant::now();
    let store = Watched::new(SqliteStore::open(path).unwrap());
    let engine = Engine::builder().store(store.clone()).machine::<nap::Machine>().build();
    let engine = engine.unwrap();
    let elapsed = until_completed(path, runs, since, Duration::from_secs(600));
    let calls = store.calls();
    runtime.block_on(engine.shutdown(Duration::from_secs(5))).unwrap();
    (created, elapsed, calls)
}

/// Measurement 2's baseline: `runs` fresh runs of a 1-state machine, `IN_FLIGHT` starts at
/// once, timed from the first start until all completed; and what the engine asked of the
/// store meanwhile.
fn fresh_runs(path: &Path, runs: u64) -> (Duration, String) {
    let runtime = runtime();
    let _inside = runtime.enter();
    let store = Watched::new(SqliteStore::open(path).unwrap());
    let engine = Engine::builder().store(store.clone()).machine::<once::Machine>().build().unwrap();
    let since = Instant::now();
    let starter = {
        let engine = engine.clone();
        runtime.spawn(async move { start_all::<once::Machine>(&engine, runs, NO_BUDGET).await })
    };
    let elapsed = until_completed(path, runs, since, Duration::from_secs(600));
    assert_eq!(runtime.block_on(starter).unwrap().0, runs);
    let calls = store.calls();
    runtime.block_on(engine.shutdown(Duration::from_secs(5))).unwrap();
    (elapsed, calls)
}

/// One loop run of `steps` states with a context of `context` bytes on a fresh file at
/// `path`, one engine on a current-thread runtime. Returns the checkpoints it wrote and the
/// bytes written meanwhile (to the disk, and to write calls).
async fn scribe_loop(path: &Path, steps: u64, context: usize) -> (u64, (u64, u64)) {
    let engine = Engine::builder()
        .store(SqliteStore::open(path).unwrap())
        .machine::<scribe::Machine>()
        .build()
        .unwrap();
    let notes = Notes { text: text(context), steps: 0 };
    let io = Io::now();
    let handle = engine.start_with::<scribe::Machine>(steps, notes).await.unwrap();
    let run = handle.id();
    assert_eq!(handle.output().await.unwrap(), (steps, context));
    let written = Io::now().since(io);
    engine.shutdown(Duration::from_secs(5)).await.unwrap();
    let check = Connection::open(path).unwrap();
    let seq: i64 = check
        .query_row("SELECT seq FROM flow_runs WHERE id = ?1", [run.to_string()], |row| row.get(0))
        .unwrap();
    (u64::try_from(seq).unwrap() + 1, written)
}

/// The floor of measurement 3: raw SQLite (WAL, `synchronous=FULL`, the store's
/// `wal_autocheckpoint`) overwriting one 10 KiB row per commit, `commits` times. Returns the
/// bytes written per commit (to the disk, and to write calls).
fn raw_overwrites(path: &Path, commits: u64) -> (f64, f64) {
    let connection = Connection::open(path).unwrap();
    connection.pragma_update(None, "journal_mode", "WAL").unwrap();
    connection.pragma_update(None, "synchronous", "FULL").unwrap();
    connection.pragma_update(None, "wal_autocheckpoint", 4000).unwrap();
    connection.execute_batch("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)").unwrap();
    connection
        .execute("INSERT INTO notes (id, body) VALUES (1, ?1)", [text(CONTEXT_BYTES)])
        .unwrap();
    let mut update = connection.prepare("UPDATE notes SET body = ?1 WHERE id = 1").unwrap();
    let bodies: Vec<String> = (0..16).map(|_| text(CONTEXT_BYTES)).collect();
    let io = Io::now();
    for i in 0..commits {
        update.execute([&bodies[(i % 16) as usize]]).unwrap();
    }
    let (disk, calls) = Io::now().since(io);
    (disk as f64 / commits as f64, calls as f64 / commits as f64)
}

/// What a database holds once its WAL is copied back and truncated.
struct Stored {
    /// The file's size.
    file: u64,
    /// The bytes of history entries kept, and the checkpoint rows keeping them.
    history: u64,
    rows: u64,
    /// The checkpoint table's pages (and their bytes), the bytes of rows on them, and the
    /// bytes left unused.
    pages: u64,
    page_bytes: u64,
    payload: u64,
    unused: u64,
}

fn stored(path: &Path) -> Stored {
    let connection = Connection::open(path).unwrap();
    connection.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(())).unwrap();
    let history =
        count(&connection, "SELECT coalesce(sum(length(entries)), 0) FROM flow_checkpoints");
    let rows = count(&connection, "SELECT count(*) FROM flow_checkpoints");
    let table: [i64; 4] = connection
        .query_row(
            "SELECT count(*), sum(pgsize), sum(payload), sum(unused) FROM dbstat
             WHERE name = 'flow_checkpoints'",
            [],
            |row| Ok([row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?]),
        )
        .unwrap();
    drop(connection);
    let [pages, page_bytes, payload, unused] = table.map(|n| u64::try_from(n).unwrap());
    let file = std::fs::metadata(path).unwrap().len();
    Stored { file, history, rows, pages, page_bytes, payload, unused }
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Runs the measurements and prints the table.
fn main() {
    if let Some(path) = std::env::var_os(CHILD) {
        child(Path::new(&path));
        return;
    }
    let scale = Scale::from_env();
    let dir = bench_dir("bench-waiting");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores ({}); databases in {}", cpu_model(), dir.display());
    println!(
        "every database: journal_mode=WAL, synchronous=FULL; runtime: tokio multi-thread with \
         2 workers (1 run at a time on a current-thread runtime for the loops)"
    );

    // 1. Memory per waiting run, here and in a fresh process.
    let began = Instant::now();
    let waiting_db = dir.join("waiting.db");
    eprintln!("starting {} runs that wait for a signal…", scale.waiting);
    let waited = waiting(&waiting_db, scale.waiting);
    let empty = spawn_child(&dir.join("empty.db"));
    let full = spawn_child(&waiting_db);
    std::fs::remove_file(&waiting_db).unwrap();
    eprintln!("measurement 1 took {:.0?}", began.elapsed());

    // 2. Due runs after a restart, beside fresh runs.
    let began = Instant::now();
    eprintln!("{} runs due at once after a restart…", scale.due);
    let (created, resumed, resumed_calls) = due_after_restart(&dir.join("due.db"), scale.due);
    let (fresh, fresh_calls) = fresh_runs(&dir.join("fresh.db"), scale.due);
    eprintln!("measurement 2 took {:.0?}", began.elapsed());

    // 3. Bytes per step and storage, with a 10 KiB context.
    let began = Instant::now();
    eprintln!("loops with a 10 KiB context…");
    let (floor_disk, floor_calls) = raw_overwrites(&dir.join("raw.db"), scale.steps);
    let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let (short_steps, (short_disk, short_calls)) =
        current.block_on(scribe_loop(&dir.join("short.db"), scale.steps, CONTEXT_BYTES));
    let (bare_steps, (bare_disk, _)) =
        current.block_on(scribe_loop(&dir.join("short-bare.db"), scale.steps, 0));
    // The long loops measure sizes, not speed: both at once, on a thread each.
    let long = |name: &'static str, context: usize| {
        let path = dir.join(name);
        let steps = scale.long_loop;
        std::thread::spawn(move || {
            let current = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let (checkpoints, _) = current.unwrap().block_on(scribe_loop(&path, steps, context));
            (checkpoints, stored(&path))
        })
    };
    let (with_context, bare) = (long("long.db", CONTEXT_BYTES), long("long-bare.db", 0));
    let ((long_steps, with_context), (_, bare)) =
        (with_context.join().unwrap(), bare.join().unwrap());
    eprintln!("measurement 3 took {:.0?}", began.elapsed());

    // The table.
    let per_run = |grown: u64, runs: u64| grown as f64 / runs as f64;
    let grown = waited.after.saturating_sub(waited.before);
    let here = per_run(grown, waited.runs);
    let child_per_run = per_run(full.settled.saturating_sub(empty.settled), waited.runs);
    let secs = |elapsed: Duration| elapsed.as_secs_f64();
    let rate = |runs: u64, elapsed: Duration| runs as f64 / secs(elapsed);
    let per_step = |bytes: u64, steps: u64| bytes as f64 / steps as f64 / 1024.0;
    let short = per_step(short_disk, short_steps);
    let floor = floor_disk / 1024.0;
    let context_kib = CONTEXT_BYTES as f64 / 1024.0;
    let k = (with_context.file as f64 - bare.file as f64) / CONTEXT_BYTES as f64;
    let loop_steps = long_steps as f64;
    let grown_per_step = (with_context.file as f64 - CONTEXT_BYTES as f64) / loop_steps;
    let bare_per_step = bare.file as f64 / loop_steps;
    let short_of = if waited.runs < scale.waiting {
        format!(" (only {} of {} started in {START_BUDGET:?})", waited.runs, scale.waiting)
    } else {
        String::new()
    };
    let n = grouped(waited.runs as f64);
    let rows = [
        [
            format!("RSS per waiting run, in the engine that started {n} runs{short_of}"),
            format!("+{:.1} MiB", mib(grown)),
            format!("{here:.0} B/run"),
            format!(
                "target ≤ {TARGET_BYTES_PER_RUN:.0} B/run (the old engine: ~{:.1} KB)",
                OLD_BYTES_PER_RUN / 1024.0
            ),
            format!("{:.2}×", here / TARGET_BYTES_PER_RUN),
        ],
        [
            format!("RSS of a fresh process over the {n} waiting runs, 1 run started"),
            format!("{:.1} MiB", mib(full.settled)),
            format!("{child_per_run:.0} B/run"),
            format!(
                "target ≤ {TARGET_BYTES_PER_RUN:.0} B/run over an empty store ({:.1} MiB)",
                mib(empty.settled)
            ),
            format!("{:.2}×", child_per_run / TARGET_BYTES_PER_RUN),
        ],
        [
            format!("process start → first new checkpoint, {n} runs stored"),
            format!("{:.3} s", secs(full.first_checkpoint)),
            "—".to_owned(),
            format!(
                "target ≤ {:.1} s (empty store: {:.3} s)",
                secs(TARGET_FIRST_CHECKPOINT),
                secs(empty.first_checkpoint)
            ),
            format!("{:.2}×", secs(full.first_checkpoint) / secs(TARGET_FIRST_CHECKPOINT)),
        ],
        [
            format!("{} due runs claimed and completed after a restart", grouped(scale.due as f64)),
            format!("{} runs/s", grouped(rate(scale.due, resumed))),
            format!("{:.1} µs/run", secs(resumed) * 1e6 / scale.due as f64),
            format!(
                "fresh runs, {IN_FLIGHT} starts in flight: {} runs/s",
                grouped(rate(scale.due, fresh))
            ),
            format!("{:.2}×", secs(resumed) / secs(fresh)),
        ],
        [
            format!("bytes written per step, {context_kib:.0} KiB context"),
            format!("{short:.1} KiB/step"),
            format!("{} steps", grouped(short_steps as f64)),
            format!("raw SQLite, 1 row of {context_kib:.0} KiB overwritten: {floor:.1} KiB/commit"),
            format!("{:.2}×", short / floor),
        ],
        [
            format!("bytes written per step, {context_kib:.0} KiB context, vs the context"),
            format!("{short:.1} KiB/step"),
            format!("{} steps", grouped(short_steps as f64)),
            format!("the context: {context_kib:.0} KiB"),
            format!("{:.2}×", short / context_kib),
        ],
        [
            format!(
                "storage after a {}-step loop, {context_kib:.0} KiB context",
                grouped(loop_steps)
            ),
            format!("{:.1} MiB", mib(with_context.file)),
            format!("= {k:.1} × context + {:.1} MiB", mib(bare.file)),
            "a small multiple of the context + its history (the loop, empty context)".to_owned(),
            format!("{k:.1}×"),
        ],
        [
            format!("the same, per step, beyond one {context_kib:.0} KiB context"),
            format!("{grown_per_step:.0} B/step"),
            format!("{} steps", grouped(loop_steps)),
            format!("its history: the loop with an empty context, {bare_per_step:.0} B/step"),
            format!("{:.2}×", grown_per_step / bare_per_step),
        ],
    ];
    println!(
        "N: {} waiting runs, started in {:.1} s ({} runs/s, {IN_FLIGHT} in flight); {} due \
         runs (created in {:.1} s); loops of {} and {} steps (a step is a checkpoint: a loop \
         of n states writes n + 1)",
        grouped(waited.runs as f64),
        secs(waited.start),
        grouped(rate(waited.runs, waited.start)),
        grouped(scale.due as f64),
        secs(created),
        grouped(short_steps as f64),
        grouped(loop_steps),
    );
    println!("ratio = figure ÷ baseline or target (≤ 1.00× meets it; time ÷ time for runs/s)");
    println!();
    table(["what", "figure", "per item", "baseline / target", "ratio"], &rows);
    println!();
    println!("details:");
    println!(
        "- the engine that started the waiting runs: RSS {:.1} MiB before, {:.1} MiB after \
         (peak {:.1} MiB); the file: {:.1} MiB ({:.0} B/run)",
        mib(waited.before),
        mib(waited.after),
        mib(waited.peak),
        mib(waited.file),
        per_run(waited.file, waited.runs),
    );
    for (what, child) in [("empty store", &empty), (&*format!("{n} runs stored"), &full)] {
        println!(
            "- fresh process, {what}: store opened at {:.1} ms, engine built at {:.1} ms, \
             first checkpoint at {:.1} ms after main (spawn → checkpoint: {:.1} ms); RSS \
             {:.1} MiB then, {:.1} MiB a second after its run ended",
            secs(child.opened) * 1e3,
            secs(child.built) * 1e3,
            secs(child.started) * 1e3,
            secs(child.first_checkpoint) * 1e3,
            mib(child.rss),
            mib(child.settled),
        );
    }
    println!(
        "- bytes per step, from /proc/self/io: {short:.1} KiB to the disk, {:.1} KiB to write \
         calls ({context_kib:.0} KiB context); {:.1} KiB to the disk with an empty context; raw \
         SQLite {floor:.1} KiB to the disk, {:.1} KiB to write calls per 10 KiB overwrite",
        per_step(short_calls, short_steps),
        per_step(bare_disk, bare_steps),
        floor_calls / 1024.0,
    );
    for (what, stored) in [("the", &with_context), ("an empty", &bare)] {
        println!(
            "- after the {}-step loop with {what} context (WAL copied back): {:.1} MiB \
             ({:.0} × {context_kib:.0} KiB); history \
             entries kept: {:.1} MiB in {} rows; the checkpoint table: {} pages holding {:.1} MiB \
             of rows, {:.1} MiB unused ({:.0}% full)",
            grouped(loop_steps),
            mib(stored.file),
            stored.file as f64 / CONTEXT_BYTES as f64,
            mib(stored.history),
            grouped(stored.rows as f64),
            grouped(stored.pages as f64),
            mib(stored.payload),
            mib(stored.unused),
            100.0 * (1.0 - stored.unused as f64 / stored.page_bytes as f64),
        );
    }
    println!(
        "- what the engine asked of the store: to start the {n} waiting runs, {}; after the \
         restart, {resumed_calls}; for the fresh runs, {fresh_calls}",
        waited.calls
    );
    println!(
        "- load average at the end (other work on the machine adds noise): {}",
        std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim()
    );

    if std::env::var_os("FLOW_BENCH_KEEP").is_none() {
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
