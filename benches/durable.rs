//! Durable steps per second on SQLite, beside what raw SQLite commits on the same disk.
//!
//! `cargo bench --bench durable` prints a markdown table (about 25 s on 2 cores). Four
//! measurements, in one process:
//!
//! 1. Floor A: raw rusqlite, one ~200-byte row per transaction (autocommit): commits/s.
//! 2. Floor B: raw rusqlite, 100 rows per transaction through a prepared statement: rows/s.
//! 3. One durable run at a time: a 10-state chain on an [`Engine`] over [`SqliteStore`],
//!    started and awaited one after the other, on a current-thread runtime. Each run writes
//!    11 checkpoints (its start, 9 transitions, its end); every checkpoint is a "durable
//!    step". Compared with floor A's latency per commit (target: within 1.3×). Floor A and
//!    this case alternate over a few rounds, so a drift in the disk's latency hits both alike.
//! 4. 1,000 concurrent durable runs of a 100-state self-loop on one engine (multi-thread
//!    runtime, 2 workers), from the first start until every output is awaited. Compared with
//!    floor B's rows/s and with the 100,000 steps/s target.
//!
//! Then diagnostics, to tell the store's cost from the engine's: the checkpoints one run of
//! cases 3 and 4 saved (recorded on their way to the store by [`Watched`](common::Watched), since a store keeps
//! only a run's latest snapshot), copied under new run ids and saved straight to a
//! `SqliteStore` without the engine (one after the other in the rounds of case 3; by 1,000
//! tasks for case 4); and, on
//! Linux, the bytes and calls of I/O per item of floor B, case 4 and the diagnostic (from
//! `/proc/self/io`).
//!
//! Every database is in WAL mode with `synchronous=FULL`, in a fresh directory under
//! `CARGO_TARGET_TMPDIR` (the project's disk, not a tmpfs), removed at the end.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Io, Watched, bench_dir, cpu_model, grouped, table};
use flow::prelude::*;
use flow::store::{Checkpoint, CheckpointStore, Lease, SqliteStore};
use flow::{Engine, RunId};
use rusqlite::{Connection, Statement};

/// Floor A: single-row commits per round (`ROUNDS` rounds: about 2,000 in all).
const SINGLE_COMMITS: u64 = 400;
/// Commits before floor A and the one-run-at-a-time case are measured.
const WARM_UP_COMMITS: u64 = 1_200;
/// Rounds of floor A alternating with the one-run-at-a-time case.
const ROUNDS: u32 = 5;
/// Floor A and the one-run-at-a-time case stop a round after this long.
const ROUND_BUDGET: Duration = Duration::from_millis(400);
/// Floor B: transactions of `ROWS_PER_TX` rows.
const BATCH_TXS: u64 = 1_000;
/// Floor B: rows per transaction.
const ROWS_PER_TX: u64 = 100;
/// Floor B stops after this long, even short of `BATCH_TXS`.
const BATCH_BUDGET: Duration = Duration::from_secs(5);
/// The concurrent case: runs in flight at once.
const CONCURRENT_RUNS: usize = 1_000;
/// The concurrent case: states each run enters (`tick` × 99, then `done`).
const LOOP_STATES: u32 = 100;
/// The concurrent case's target, in durable steps per second.
const TARGET_STEPS_PER_S: f64 = 100_000.0;

/// A 10-state chain; each state counts itself in the context and passes `n + 1` on.
#[flow::machine]
pub mod chain {
    use super::*;

    /// State 0 of 10.
    #[state(start, to(s1))]
    async fn s0(cx: &mut u64, n: u64) -> Result<S0> {
        *cx += 1;
        goto!(s1(n + 1))
    }
    /// State 1 of 10.
    #[state(to(s2))]
    async fn s1(cx: &mut u64, n: u64) -> Result<S1> {
        *cx += 1;
        goto!(s2(n + 1))
    }
    /// State 2 of 10.
    #[state(to(s3))]
    async fn s2(cx: &mut u64, n: u64) -> Result<S2> {
        *cx += 1;
        goto!(s3(n + 1))
    }
    /// State 3 of 10.
    #[state(to(s4))]
    async fn s3(cx: &mut u64, n: u64) -> Result<S3> {
        *cx += 1;
        goto!(s4(n + 1))
    }
    /// State 4 of 10.
    #[state(to(s5))]
    async fn s4(cx: &mut u64, n: u64) -> Result<S4> {
        *cx += 1;
        goto!(s5(n + 1))
    }
    /// State 5 of 10.
    #[state(to(s6))]
    async fn s5(cx: &mut u64, n: u64) -> Result<S5> {
        *cx += 1;
        goto!(s6(n + 1))
    }
    /// State 6 of 10.
    #[state(to(s7))]
    async fn s6(cx: &mut u64, n: u64) -> Result<S6> {
        *cx += 1;
        goto!(s7(n + 1))
    }
    /// State 7 of 10.
    #[state(to(s8))]
    async fn s7(cx: &mut u64, n: u64) -> Result<S7> {
        *cx += 1;
        goto!(s8(n + 1))
    }
    /// State 8 of 10.
    #[state(to(s9))]
    async fn s8(cx: &mut u64, n: u64) -> Result<S8> {
        *cx += 1;
        goto!(s9(n + 1))
    }
    /// State 9 of 10: the end; outputs the count and the context.
    #[state(end)]
    async fn s9(cx: &mut u64, n: u64) -> Result<(u64, u64)> {
        *cx += 1;
        Ok((n + 1, *cx))
    }
}

/// A self-loop: `tick` goes to itself until `LOOP_STATES - 1` states are behind it, then
/// to `done`; `LOOP_STATES` states entered in all.
#[flow::machine]
pub mod looping {
    use super::*;

    /// Counts itself in the context and goes on with `n + 1`.
    #[state(start, to(tick, done))]
    async fn tick(cx: &mut u64, n: u32) -> Result<Tick> {
        *cx += 1;
        if n + 2 >= LOOP_STATES {
            return goto!(done(n + 1));
        }
        goto!(tick(n + 1))
    }

    /// The end: outputs the last `n` and the context.
    #[state(end)]
    async fn done(cx: &mut u64, n: u32) -> Result<(u32, u64)> {
        *cx += 1;
        Ok((n, *cx))
    }
}

/// `template` (one run's checkpoints, written under its engine's claim) made ready to be
/// saved by the diagnostics under new run ids, with no engine: under the claim of an owner of
/// their own, whose lease `store` holds for an hour, so no engine on the file takes their runs
/// over mid-way.
async fn detached(store: &SqliteStore, template: Vec<Checkpoint>) -> Vec<Checkpoint> {
    let owner: Arc<str> = Arc::from("bench-store-only");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    let now = u64::try_from(now.as_millis()).unwrap();
    store.heartbeat(&owner, now, now + 3_600_000).await.unwrap();
    template
        .into_iter()
        .map(|checkpoint| Checkpoint {
            lease: checkpoint
                .lease
                .as_ref()
                .map(|lease| Lease { owner: Arc::clone(&owner), token: lease.token }),
            ..checkpoint
        })
        .collect()
}

/// Opens a raw connection with the pragmas `SqliteStore` uses, and a table to fill.
fn raw(path: &Path) -> Connection {
    let connection = Connection::open(path).unwrap();
    connection.pragma_update(None, "journal_mode", "WAL").unwrap();
    connection.pragma_update(None, "synchronous", "FULL").unwrap();
    connection
        .execute_batch(
            "CREATE TABLE rows (id INTEGER PRIMARY KEY, run TEXT NOT NULL, payload TEXT NOT NULL)",
        )
        .unwrap();
    connection
}

/// The insert both floors use.
const INSERT_ROW: &str = "INSERT INTO rows (run, payload) VALUES (?1, ?2)";

/// A ~200-byte payload of random letters and digits.
fn payload() -> String {
    std::iter::repeat_with(fastrand::alphanumeric).take(200).collect()
}

/// Floor A, one round: one row per commit (autocommit), until `SINGLE_COMMITS` or
/// `ROUND_BUDGET`. Returns the commits made and the time they took.
fn single_commits(insert: &mut Statement<'_>, payload: &str) -> (u64, Duration) {
    let started = Instant::now();
    let mut commits = 0;
    while commits < SINGLE_COMMITS && started.elapsed() < ROUND_BUDGET {
        insert.execute((RunId::random().to_string(), payload)).unwrap();
        commits += 1;
    }
    (commits, started.elapsed())
}

/// Floor B: `ROWS_PER_TX` rows per transaction, until `BATCH_TXS` or `BATCH_BUDGET`.
/// Returns the rows written, the time they took, and the I/O per row.
fn floor_batched(dir: &Path) -> (u64, Duration, String) {
    let mut connection = raw(&dir.join("floor-b.db"));
    let payload = payload();
    let io = Io::now();
    let started = Instant::now();
    let mut rows = 0;
    for _ in 0..BATCH_TXS {
        let transaction = connection.transaction().unwrap();
        {
            let mut insert = transaction.prepare_cached(INSERT_ROW).unwrap();
            for _ in 0..ROWS_PER_TX {
                insert.execute((RunId::random().to_string(), &payload)).unwrap();
            }
        }
        transaction.commit().unwrap();
        rows += ROWS_PER_TX;
        if started.elapsed() >= BATCH_BUDGET {
            break;
        }
    }
    (rows, started.elapsed(), Io::now().per_step(io, rows))
}

/// How many checkpoints `run` wrote: its last sequence number plus one.
async fn checkpoints(engine: &Engine, run: RunId) -> u64 {
    engine.status(run).await.unwrap().seq + 1
}

/// The one-run-at-a-time case, one round: chain runs started and awaited one after the
/// other for `ROUND_BUDGET`. Returns the runs and the time they took.
async fn chain_runs(engine: &Engine) -> (u64, Duration) {
    let started = Instant::now();
    let mut runs = 0;
    while started.elapsed() < ROUND_BUDGET {
        let handle = engine.start::<chain::Machine>(runs).await.unwrap();
        assert_eq!(handle.output().await.unwrap(), (runs + 10, 10));
        runs += 1;
    }
    (runs, started.elapsed())
}

/// The serial diagnostic, one round: copies of `template` (one chain run's checkpoints,
/// under a new run id each) saved straight to `store`, one checkpoint after the other, for
/// `ROUND_BUDGET`. Returns the checkpoints saved and the time they took.
async fn store_runs(store: &SqliteStore, template: &[Checkpoint]) -> (u64, Duration) {
    let started = Instant::now();
    let mut saved = 0;
    while started.elapsed() < ROUND_BUDGET {
        let run = RunId::random();
        for checkpoint in template {
            store.save(Checkpoint { run, ..checkpoint.clone() }).await.unwrap();
        }
        saved += template.len() as u64;
    }
    (saved, started.elapsed())
}

/// What floor A, the one-run-at-a-time case and its store-only diagnostic measured, over all
/// rounds.
#[derive(Default)]
struct Serial {
    commits: u64,
    floor: Duration,
    runs: u64,
    per_run: u64,
    durable: Duration,
    /// Checkpoints the store-only diagnostic saved.
    saved: u64,
    direct: Duration,
    /// Each round's µs per raw commit, per durable step and per checkpoint saved.
    rounds: Vec<[f64; 3]>,
}

/// Floor A, the one-run-at-a-time case on `runtime` and its store-only diagnostic,
/// alternating over `ROUNDS` rounds, with their files in `dir`.
fn one_at_a_time(dir: &Path, runtime: &tokio::runtime::Runtime) -> Serial {
    let connection = raw(&dir.join("floor-a.db"));
    let mut insert = connection.prepare(INSERT_ROW).unwrap();
    let payload = payload();
    let path = dir.join("durable-serial.db");
    let store = SqliteStore::open(&path).unwrap();
    let recorder = Watched::new(store.clone());
    let engine =
        Engine::builder().store(recorder.clone()).machine::<chain::Machine>().build().unwrap();
    // Warm-ups, long enough for both WALs to pass their first checkpoint and be rewritten in
    // place: a WAL that still grows costs more per fsync, which would favour whichever side
    // wraps first. Floor A's passes 1,000 pages (SQLite's default) in `WARM_UP_COMMITS`
    // commits of one page; the store's passes 4,000 (its `wal_autocheckpoint`) at ~2.3 pages
    // a checkpoint, so the durable warm-up goes on until the database file grows: its WAL
    // was copied back. It also says how many checkpoints a run writes.
    for _ in 0..WARM_UP_COMMITS {
        insert.execute((RunId::random().to_string(), &payload)).unwrap();
    }
    let file_size = || std::fs::metadata(&path).map_or(0, |metadata| metadata.len());
    let unwrapped = file_size();
    let (per_run, template) = runtime.block_on(async {
        recorder.record();
        let handle = engine.start::<chain::Machine>(0).await.unwrap();
        let run = handle.id();
        assert_eq!(handle.output().await.unwrap(), (10, 10));
        let template = detached(&store, recorder.recorded(run)).await;
        let mut n = 0;
        while n < WARM_UP_COMMITS / 11 || (file_size() == unwrapped && n < 10 * WARM_UP_COMMITS) {
            engine.start::<chain::Machine>(n).await.unwrap().output().await.unwrap();
            n += 1;
        }
        assert!(file_size() > unwrapped, "the store's WAL was never copied back");
        (checkpoints(&engine, run).await, template)
    });
    assert_eq!(per_run, 11, "a 10-state chain: start, 9 transitions, end");
    assert_eq!(template.len() as u64, per_run, "the recorder saw every checkpoint");

    let mut serial = Serial { per_run, ..Serial::default() };
    let us = |elapsed: Duration, items: u64| elapsed.as_secs_f64() * 1e6 / items as f64;
    for _ in 0..ROUNDS {
        let (commits, floor) = single_commits(&mut insert, &payload);
        let (runs, durable) = runtime.block_on(chain_runs(&engine));
        let (saved, direct) = runtime.block_on(store_runs(&store, &template));
        serial.rounds.push([us(floor, commits), us(durable, runs * per_run), us(direct, saved)]);
        serial.commits += commits;
        serial.floor += floor;
        serial.runs += runs;
        serial.durable += durable;
        serial.saved += saved;
        serial.direct += direct;
    }
    serial
}

/// What a concurrent case measured.
struct Concurrent {
    /// Checkpoints per run.
    per_run: u64,
    elapsed: Duration,
    /// The I/O per step, as a line.
    io: String,
    /// The database and its WAL at the end, in MiB.
    size: f64,
}

/// The size of the database at `path` and its WAL, in MiB.
fn size_mib(path: &Path) -> f64 {
    let bytes: u64 = ["", "-wal"]
        .iter()
        .filter_map(|suffix| std::fs::metadata(format!("{}{suffix}", path.display())).ok())
        .map(|metadata| metadata.len())
        .sum();
    bytes as f64 / (1024.0 * 1024.0)
}

/// The bytes of a checkpoint's text columns: what a row holds, give or take its integers.
fn text_bytes(checkpoint: &Checkpoint) -> usize {
    checkpoint.run.to_string().len()
        + checkpoint.machine.len()
        + checkpoint.fingerprint.len()
        + checkpoint.status.as_str().len()
        + checkpoint.state.len()
        + checkpoint.snapshot.len()
        + checkpoint.entries.len()
}

/// Counts the checkpoints the runs in the database at `path` have written, all of them
/// completed: each run's last sequence number plus one (a store keeps a run's latest snapshot
/// and its history, not a row per checkpoint).
fn stored(path: &Path) -> u64 {
    let (runs, completed, count): (i64, i64, i64) = Connection::open(path)
        .unwrap()
        .query_row(
            "SELECT count(*), coalesce(sum(status = 'completed'), 0), coalesce(sum(seq + 1), 0)
             FROM flow_runs",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .unwrap();
    assert_eq!(completed, runs, "every run completed");
    u64::try_from(count).unwrap()
}

/// `CONCURRENT_RUNS` durable runs at once on one engine, each started and awaited by a task
/// of its own, timed from the first start until every output was awaited. Also returns the
/// checkpoints one run saved.
async fn durable_concurrent(dir: &Path) -> (Concurrent, Vec<Checkpoint>) {
    let path = dir.join("durable-concurrent.db");
    let recorder = Watched::new(SqliteStore::open(&path).unwrap());
    let engine = Engine::builder()
        .store(recorder.clone())
        .machine::<looping::Machine>()
        .max_concurrent_runs(CONCURRENT_RUNS)
        .build()
        .unwrap();
    let expected = (LOOP_STATES - 1, u64::from(LOOP_STATES));
    // A warm-up run, which also says how many checkpoints a run writes.
    recorder.record();
    let handle = engine.start::<looping::Machine>(0).await.unwrap();
    let run = handle.id();
    assert_eq!(handle.output().await.unwrap(), expected);
    let per_run = checkpoints(&engine, run).await;
    assert_eq!(per_run, u64::from(LOOP_STATES) + 1);
    let template = recorder.recorded(run);
    assert_eq!(template.len() as u64, per_run, "the recorder saw every checkpoint");

    let io = Io::now();
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_RUNS)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let handle = engine.start::<looping::Machine>(0).await.unwrap();
                handle.output().await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), expected);
    }
    let elapsed = started.elapsed();
    let steps = CONCURRENT_RUNS as u64 * per_run;
    let io = Io::now().per_step(io, steps);

    // Every checkpoint is in the file: the warm-up run's and the measured ones.
    assert_eq!(stored(&path), steps + per_run);
    (Concurrent { per_run, elapsed, io, size: size_mib(&path) }, template)
}

/// The diagnostic: `CONCURRENT_RUNS` tasks each write a copy of `template` (one run's
/// checkpoints, under a new run id) straight to a fresh store, one checkpoint after the other.
async fn store_only(dir: &Path, template: Vec<Checkpoint>) -> Concurrent {
    let path = dir.join("store-only.db");
    let store = SqliteStore::open(&path).unwrap();
    let template = Arc::new(detached(&store, template).await);
    let io = Io::now();
    let started = Instant::now();
    let tasks: Vec<_> = (0..CONCURRENT_RUNS)
        .map(|_| {
            let store = store.clone();
            let template = Arc::clone(&template);
            tokio::spawn(async move {
                let run = RunId::random();
                for checkpoint in template.iter() {
                    store.save(Checkpoint { run, ..checkpoint.clone() }).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    let elapsed = started.elapsed();
    let steps = CONCURRENT_RUNS as u64 * template.len() as u64;
    let io = Io::now().per_step(io, steps);
    assert_eq!(stored(&path), steps);
    Concurrent { per_run: template.len() as u64, elapsed, io, size: size_mib(&path) }
}

/// A ratio for the table; `None` prints a dash.
fn ratio(value: Option<f64>) -> String {
    value.map_or_else(|| "—".to_owned(), |value| format!("{value:.2}×"))
}

/// Runs the measurements and prints the table.
fn main() {
    let dir = bench_dir("bench-durable");
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("machine: {cores} cores ({}); databases in {}", cpu_model(), dir.display());
    println!(
        "every database: journal_mode=WAL, synchronous=FULL; runtime: tokio current-thread for \
         1 run at a time, multi-thread with 2 workers for the concurrent runs"
    );

    // One run at a time needs no worker threads. On the multi-thread runtime every
    // checkpoint's reply wakes a parked worker from the store's writer thread, and that
    // worker wakes the other to search for work (tokio's wake-up chain): 20-35 µs per step on
    // 2 cores, spent by the scheduler, not by the engine or the store (the store-only
    // diagnostic, awaited on the `block_on` thread, never paid it).
    let current = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let serial = one_at_a_time(&dir, &current);
    drop(current);
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // The same case on the multi-thread runtime, in its own files, so the scheduler's share
    // is in the table too.
    let multi_dir = dir.join("multi-thread");
    std::fs::create_dir_all(&multi_dir).unwrap();
    let multi = one_at_a_time(&multi_dir, &runtime);
    let (rows, batched, batched_io) = floor_batched(&dir);
    let (concurrent, template) = runtime.block_on(durable_concurrent(&dir));
    let checkpoint_bytes = template.iter().map(text_bytes).sum::<usize>() / template.len();
    let direct = runtime.block_on(store_only(&dir, template));
    drop(runtime);

    let serial_steps = serial.runs * serial.per_run;
    let concurrent_steps = CONCURRENT_RUNS as u64 * concurrent.per_run;
    let direct_steps = CONCURRENT_RUNS as u64 * direct.per_run;
    println!(
        "N: floor A {} commits; floor B {rows} rows ({} transactions of {ROWS_PER_TX}); \
         1 at a time: {} runs × {} checkpoints = {serial_steps} steps ({} saved by the store \
         alone); concurrent: {CONCURRENT_RUNS} runs × {} checkpoints = {concurrent_steps} steps",
        serial.commits,
        rows / ROWS_PER_TX,
        serial.runs,
        serial.per_run,
        serial.saved,
        concurrent.per_run,
    );
    println!(
        "a durable step is one checkpoint: a run of k states writes k + 1 (its start, k - 1 \
         transitions, its end)"
    );
    let rounds: Vec<_> = serial
        .rounds
        .iter()
        .map(|[floor, durable, direct]| {
            format!("{floor:.0}/{durable:.0}/{direct:.0} ({:.2}×)", durable / floor)
        })
        .collect();
    println!(
        "floor A, the 1-at-a-time case and its store-only diagnostic alternate over {ROUNDS} \
         rounds; per round, µs per commit/step/save (ratio): {}",
        rounds.join(", ")
    );
    println!("ratio = time per item ÷ the baseline's time per item (≤ 1.00× keeps up with it)");
    println!();

    let us = |elapsed: Duration, items: u64| elapsed.as_secs_f64() * 1e6 / items as f64;
    let per_s = |elapsed: Duration, items: u64| items as f64 / elapsed.as_secs_f64();
    let commit_us = us(serial.floor, serial.commits);
    let row_us = us(batched, rows);
    let serial_us = us(serial.durable, serial_steps);
    let saved_us = us(serial.direct, serial.saved);
    let multi_steps = multi.runs * multi.per_run;
    let multi_us = us(multi.durable, multi_steps);
    let multi_commit_us = us(multi.floor, multi.commits);
    let concurrent_us = us(concurrent.elapsed, concurrent_steps);
    let direct_us = us(direct.elapsed, direct_steps);
    let target_us = 1e6 / TARGET_STEPS_PER_S;
    let concurrent_rate =
        format!("{} steps/s", grouped(per_s(concurrent.elapsed, concurrent_steps)));
    let rows = [
        [
            "floor A: raw SQLite, 1 row per commit".to_owned(),
            format!("{} commits/s", grouped(per_s(serial.floor, serial.commits))),
            format!("{commit_us:.1} µs/commit"),
            "—".to_owned(),
            ratio(None),
        ],
        [
            format!("floor B: raw SQLite, {ROWS_PER_TX} rows per commit"),
            format!("{} rows/s", grouped(per_s(batched, rows))),
            format!("{row_us:.2} µs/row"),
            "—".to_owned(),
            ratio(None),
        ],
        [
            "durable, 1 run at a time (10-state chain)".to_owned(),
            format!("{} steps/s", grouped(per_s(serial.durable, serial_steps))),
            format!("{serial_us:.1} µs/step"),
            format!("floor A: {commit_us:.1} µs/commit (target ≤ 1.3×)"),
            ratio(Some(serial_us / commit_us)),
        ],
        [
            "durable, 1 run at a time, multi-thread runtime (2 workers)".to_owned(),
            format!("{} steps/s", grouped(per_s(multi.durable, multi_steps))),
            format!("{multi_us:.1} µs/step"),
            format!("floor A: {multi_commit_us:.1} µs/commit (same rounds)"),
            ratio(Some(multi_us / multi_commit_us)),
        ],
        [
            "diagnostic: the same checkpoints, 1 at a time, store only".to_owned(),
            format!("{} steps/s", grouped(per_s(serial.direct, serial.saved))),
            format!("{saved_us:.1} µs/step"),
            format!("floor A: {commit_us:.1} µs/commit"),
            ratio(Some(saved_us / commit_us)),
        ],
        [
            format!("durable, {CONCURRENT_RUNS} concurrent runs ({LOOP_STATES}-state loop)"),
            concurrent_rate.clone(),
            format!("{concurrent_us:.2} µs/step"),
            format!("floor B: {} rows/s", grouped(per_s(batched, rows))),
            ratio(Some(concurrent_us / row_us)),
        ],
        [
            format!("durable, {CONCURRENT_RUNS} concurrent runs, vs target"),
            concurrent_rate,
            format!("{concurrent_us:.2} µs/step"),
            format!("target: {} steps/s", grouped(TARGET_STEPS_PER_S)),
            ratio(Some(concurrent_us / target_us)),
        ],
        [
            format!("diagnostic: the same checkpoints, {CONCURRENT_RUNS} tasks, store only"),
            format!("{} steps/s", grouped(per_s(direct.elapsed, direct_steps))),
            format!("{direct_us:.2} µs/step"),
            format!("durable, {CONCURRENT_RUNS} concurrent runs"),
            ratio(Some(direct_us / concurrent_us)),
        ],
    ];
    table(["what", "rate", "per item", "baseline", "ratio"], &rows);
    println!();
    println!("I/O per item, from /proc/self/io (SQLite's pread/pwrite, WAL checkpoints included):");
    println!(
        "- floor B, per row ({} bytes of text): {batched_io}",
        payload().len() + RunId::random().to_string().len()
    );
    println!(
        "- durable {CONCURRENT_RUNS} concurrent, per step (a checkpoint has ~{checkpoint_bytes} \
         bytes of text): {} (file at the end: {:.1} MiB)",
        concurrent.io, concurrent.size
    );
    println!("- store only, per step: {} (file at the end: {:.1} MiB)", direct.io, direct.size);

    std::fs::remove_dir_all(&dir).unwrap();
}
