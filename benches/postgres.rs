//! Durable transitions per second on PostgreSQL, with 1 worker process and with 2, 1,000
//! concurrent runs, beside what PostgreSQL itself does in the same run on the same server: a
//! single-row upsert per transaction, and 100 upserts per transaction.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo bench --bench postgres --features postgres
//! ```
//!
//! Each worker is this program again, as a child process with an `Engine` on a
//! `PostgresStore` (in the schema `flow_bench`, emptied first). The workers start at one
//! agreed instant; each starts its share of the 1,000 runs, awaits their outputs, and reports
//! when it finished. A run is 100 states of a self-loop, each a durable checkpoint: 100
//! transitions (the last one ends the run) and one start. Where the time goes is read from
//! `/proc`: the CPU seconds the workers used, and those of the server's processes.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flow::Engine;
use flow::prelude::*;
use flow::store::PostgresStore;
use tokio_postgres::{Client, NoTls};

const RUNS: usize = 1_000;
/// States entered per run: each one a checkpoint, and a transition out (the last ends it).
const LOOP_STATES: u32 = 100;
const SCHEMA: &str = "flow_bench";
/// How long each baseline writes.
const BASELINE_FOR: Duration = Duration::from_secs(3);

#[flow::machine]
pub mod looping {
    use super::*;

    #[state(start, to(tick, done))]
    async fn tick(cx: &mut u64, n: u32) -> Result<Tick> {
        *cx += 1;
        if n + 2 >= LOOP_STATES {
            return goto!(done(n + 1));
        }
        goto!(tick(n + 1))
    }

    #[state(end)]
    async fn done(cx: &mut u64, n: u32) -> Result<(u32, u64)> {
        *cx += 1;
        Ok((n, *cx))
    }
}

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "the PostgreSQL bench needs DATABASE_URL, e.g. postgres://postgres@127.0.0.1:5432/test"
        )
    })
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

async fn connect() -> Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// A worker: waits for `start_at` (Unix ms), starts `runs` runs, awaits them, prints when it
/// finished and the CPU seconds it used.
async fn worker(runs: usize, start_at: u64) {
    let store = PostgresStore::builder(database_url()).schema(SCHEMA).connect().await.unwrap();
    let engine = Engine::builder()
        .store(store)
        .machine::<looping::Machine>()
        .max_concurrent_runs(RUNS)
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(start_at.saturating_sub(unix_ms()))).await;
    let cpu = own_cpu();
    let tasks: Vec<_> = (0..runs)
        .map(|_| {
            let engine = engine.clone();
            tokio::spawn(async move {
                let handle = engine.start::<looping::Machine>(0).await.unwrap();
                handle.output().await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), (LOOP_STATES - 1, u64::from(LOOP_STATES)));
    }
    println!("finished {} {}", unix_ms(), own_cpu() - cpu);
    // Connected until the parent has read the server's CPU time: a backend's ends with it.
    let _ = std::io::stdin().read_line(&mut String::new());
}

/// One measurement: `workers` processes share `RUNS` runs. Returns transitions/s, and the
/// CPU seconds of the workers and of the server.
fn durable(workers: usize, runtime: &tokio::runtime::Runtime) -> (f64, f64, f64, f64) {
    runtime.block_on(async {
        let client = connect().await;
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")).await.unwrap();
        drop(PostgresStore::builder(database_url()).schema(SCHEMA).connect().await.unwrap());
    });
    let start_at = unix_ms() + 2_000;
    let children: Vec<_> = (0..workers)
        .map(|_| {
            Command::new(std::env::current_exe().unwrap())
                .env("FLOW_BENCH_WORKER", format!("{}:{start_at}", RUNS / workers))
                .stdout(Stdio::piped())
                .stdin(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    std::thread::sleep(Duration::from_millis(start_at.saturating_sub(unix_ms())));
    let server_cpu = server_cpu();
    let (mut finished, mut worker_cpu) = (0, 0.0);
    let mut children: Vec<_> = children.into_iter().collect();
    for child in &mut children {
        let line = BufReader::new(child.stdout.take().unwrap())
            .lines()
            .find_map(|line| line.ok().filter(|line| line.starts_with("finished ")));
        let line = line.expect("a worker reports when it finished");
        let mut words = line.split_whitespace().skip(1);
        finished = finished.max(words.next().unwrap().parse::<u64>().unwrap());
        worker_cpu += words.next().unwrap().parse::<f64>().unwrap();
    }
    let server_cpu = server_cpu_since(server_cpu);
    for mut child in children {
        drop(child.stdin.take());
        assert!(child.wait().unwrap().success());
    }
    let seconds = (finished - start_at) as f64 / 1000.0;
    let transitions = (RUNS as u64 * u64::from(LOOP_STATES)) as f64;
    (transitions / seconds, seconds, worker_cpu, server_cpu)
}

/// Rows upserted per second, `per_transaction` rows per transaction, pipelined within it.
async fn upserts(client: &mut Client, per_transaction: usize) -> f64 {
    client
        .batch_execute(
            "DROP TABLE IF EXISTS flow_bench_rows;
             CREATE TABLE flow_bench_rows (id bigint PRIMARY KEY, payload text NOT NULL)",
        )
        .await
        .unwrap();
    let upsert = client
        .prepare(
            "INSERT INTO flow_bench_rows (id, payload) VALUES ($1, $2)
             ON CONFLICT (id) DO UPDATE SET payload = excluded.payload",
        )
        .await
        .unwrap();
    let payload = "x".repeat(200);
    let started = Instant::now();
    let mut rows = 0u64;
    while started.elapsed() < BASELINE_FOR {
        let transaction = client.transaction().await.unwrap();
        let writes = (0..per_transaction).map(|k| {
            let id = ((rows + k as u64) % 1_000) as i64;
            let (transaction, upsert, payload) = (&transaction, &upsert, &payload);
            async move { transaction.execute(upsert, &[&id, payload]).await.unwrap() }
        });
        // Polled together: every statement is sent before the first answer comes back.
        futures_util::future::join_all(writes).await;
        transaction.commit().await.unwrap();
        rows += per_transaction as u64;
    }
    rows as f64 / started.elapsed().as_secs_f64()
}

/// This process's CPU seconds (user + system), from `/proc/self/stat`.
fn own_cpu() -> f64 {
    cpu_of("self").unwrap_or(0.0)
}

fn cpu_of(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command's closing parenthesis; utime and stime are the 12th and 13th.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

/// CPU seconds used so far by every process named `postgres`, by pid.
fn server_cpu() -> Vec<(String, f64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .filter(|pid| pid.chars().all(|c| c.is_ascii_digit()))
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim() == "postgres")
        })
        .filter_map(|pid| Some((pid.clone(), cpu_of(&pid)?)))
        .collect()
}

/// The server's CPU seconds since `before` (its connections come and go).
fn server_cpu_since(before: Vec<(String, f64)>) -> f64 {
    let before: std::collections::HashMap<_, _> = before.into_iter().collect();
    server_cpu().into_iter().map(|(pid, cpu)| cpu - before.get(&pid).copied().unwrap_or(0.0)).sum()
}

fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value);
    let mut out = String::new();
    for (k, c) in digits.chars().enumerate() {
        if k > 0 && (digits.len() - k).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if let Ok(spec) = std::env::var("FLOW_BENCH_WORKER") {
        let (runs, start_at) = spec.split_once(':').unwrap();
        runtime.block_on(worker(runs.parse().unwrap(), start_at.parse().unwrap()));
        return;
    }
    // `cargo bench` passes `--bench`; anything that lists or filters runs nothing.
    if std::env::args().any(|arg| arg == "--list") {
        return;
    }
    let (single, hundred) = runtime.block_on(async {
        let mut client = connect().await;
        let single = upserts(&mut client, 1).await;
        let hundred = upserts(&mut client, 100).await;
        client.batch_execute("DROP TABLE IF EXISTS flow_bench_rows").await.unwrap();
        (single, hundred)
    });
    let one = durable(1, &runtime);
    let two = durable(2, &runtime);
    println!();
    println!(
        "PostgreSQL durable runs: {RUNS} concurrent, {LOOP_STATES} transitions each, one \
         checkpoint per transition"
    );
    println!(
        "{:<44} {:>12} {:>10} {:>12} {:>12}",
        "", "per second", "ratio", "worker CPU", "server CPU"
    );
    println!(
        "{:<44} {:>12} {:>10}",
        "PostgreSQL: 1 upsert per transaction",
        grouped(single),
        "1.00x"
    );
    println!(
        "{:<44} {:>12} {:>9.2}x",
        "PostgreSQL: 100 upserts per transaction",
        grouped(hundred),
        hundred / single
    );
    for (name, (rate, seconds, worker_cpu, server_cpu)) in
        [("flow: 1 worker, transitions", one), ("flow: 2 worker processes, transitions", two)]
    {
        println!(
            "{:<44} {:>12} {:>9.2}x {:>10.1} s {:>10.1} s   ({seconds:.1} s wall, 2 cores)",
            name,
            grouped(rate),
            rate / single,
            worker_cpu,
            server_cpu
        );
    }
    println!("2 workers / 1 worker: {:.2}x", two.0 / one.0);
}
