//! What serving costs the engine, and how fast events reach subscribers over HTTP.
//!
//! `cargo bench -p flow-machine-server --bench sse` prints a markdown table (the runs take
//! about 15 s on 2 cores, after the build). One workload throughout: 1,000 concurrent runs of
//! a 5-state loop ([`LAPS`] laps, 26 checkpoints a run) on an engine over a [`SqliteStore`] (a
//! fresh file per round), from the first start until every output is awaited. Six setups,
//! alternating over a few rounds (the median round is reported), so that a drift in the
//! machine's load hits each alike; a setup's ratio to the engine alone is the median of its
//! rounds' ratios to the alone round run just before them:
//!
//! 1. **alone**: the engine, nothing else;
//! 2. **one subscriber** of [`Engine::events`] in its runtime: the floor of what following
//!    costs, since the server subscribes once for all who follow every run;
//! 3. **in-process**: 100 subscribers of [`Engine::events`], each with its own copy of
//!    every event, without HTTP;
//! 4. **served**: the engine behind [`flow_server::serve`] on 127.0.0.1, with 100 clients
//!    following `GET /events` as Server-Sent Events over real loopback HTTP (reqwest, in a
//!    runtime of their own: on this machine they share its cores with the server);
//! 5. **attached**: the server as in 4, with one client following `GET /events` for the
//!    kinds that move a run, as the dashboard's runs table does;
//! 6. **per run**: each run followed by its own handle's events, as a caller that starts a
//!    run and watches it does: 1,000 subscribers, each of one run.
//!
//! The table gives the engine's durable steps per second in each setup (a step is one
//! checkpoint), the CPU time the process spent per step (with and without the HTTP
//! clients' thread: on a real deployment the clients are elsewhere), and the events per
//! second delivered to the 100 subscribers, in-process and over HTTP, with how many they
//! missed: a subscriber that falls behind misses the oldest events, and is told so; runs
//! never wait for subscribers. Delivery is timed from the first start until the last event
//! reaches a subscriber.
//!
//! `FLOW_BENCH_SETUPS=alone,served` runs only the setups named (for a profiler); the others
//! then show as infinite. `FLOW_BENCH_ROUNDS=15` runs more rounds of each (7 by default),
//! for steadier medians on a noisy machine.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flow::Engine;
use flow::prelude::*;
use flow::store::SqliteStore;
use flow_server::ServerConfig;
use futures_util::StreamExt;
use tokio::runtime::Runtime;

/// Runs in flight at once, per round.
const RUNS: usize = 1_000;
/// Subscribers, in-process or over HTTP.
const SUBSCRIBERS: usize = 100;
/// Rounds of each setup, unless `FLOW_BENCH_ROUNDS` says how many.
const ROUNDS: usize = 7;
/// How long delivery may go on after the runs finished before a round gives up waiting.
const DRAIN: Duration = Duration::from_secs(10);
/// Delivery is over once no subscriber received anything for this long.
const QUIET: Duration = Duration::from_millis(300);
/// The kinds of events the dashboard's runs table follows: `MOVES` in `ui/runs.js`, read
/// from there, so that the bench follows what the dashboard does.
fn dashboard_kinds() -> String {
    let script = include_str!("../ui/runs.js");
    let (_, rest) = script.split_once("const MOVES = ").expect("ui/runs.js defines MOVES");
    let (literal, _) = rest.split_once(';').expect("MOVES ends with a semicolon");
    // `"Started,Resumed," + "Transitioned,…"`: the strings' contents, joined.
    let kinds: String = literal.split('"').skip(1).step_by(2).collect();
    assert!(kinds.contains("Transitioned"), "MOVES read as {kinds:?}");
    kinds
}
/// The target: serving costs the engine less than 10% of its steps per second.
const TARGET: f64 = 0.90;

/// Laps each run goes round [`chain`]'s loop.
const LAPS: u64 = 6;

/// A loop of 4 states gone round [`LAPS`] times, then an end: long enough runs that a round
/// lasts a good part of a second, and the figures settle.
#[flow::machine]
pub mod chain {
    use super::*;

    #[state(start, to(b))]
    async fn a(_cx: &mut (), n: u64) -> Result<A> {
        goto!(b(n + 1))
    }
    #[state(to(c))]
    async fn b(_cx: &mut (), n: u64) -> Result<B> {
        goto!(c(n + 1))
    }
    #[state(to(d))]
    async fn c(_cx: &mut (), n: u64) -> Result<C> {
        goto!(d(n + 1))
    }
    #[state(to(a, e))]
    async fn d(_cx: &mut (), n: u64) -> Result<D> {
        if n + 1 < 4 * LAPS { goto!(a(n + 1)) } else { goto!(e(n + 1)) }
    }
    #[state(end)]
    async fn e(_cx: &mut (), n: u64) -> Result<u64> {
        Ok(n + 1)
    }
}

/// What a run of [`chain`] outputs: each of its 4 × [`LAPS`] + 1 visits adds one.
const OUTPUT: u64 = 4 * LAPS + 1;

/// Checkpoints a run of [`chain`] writes: its start, each transition, its end.
const STEPS_PER_RUN: u64 = 4 * LAPS + 2;

#[derive(Clone, Copy, Debug, PartialEq)]
enum Setup {
    Alone,
    /// One subscriber: what any subscriber at all costs the engine.
    One,
    InProcess,
    Served,
    /// The server attached, with one client following every run's events: a dashboard.
    Attached,
    /// Each run followed by its own handle's events ([`flow::RunHandle::events`]): a
    /// thousand subscribers, each of one run.
    PerRun,
}

/// One round of one setup.
#[derive(Clone, Copy, Debug, Default)]
struct Round {
    /// From the first start until every output was awaited.
    runs: Duration,
    /// From the first start until the last event reached a subscriber.
    delivery: Duration,
    /// Events received, over all subscribers.
    received: u64,
    /// Events the subscribers were told they missed.
    missed: u64,
    /// CPU time the HTTP clients' thread spent while the runs ran.
    clients_cpu: Duration,
    /// CPU time the whole process spent while the runs ran, the clients' thread included.
    cpu: Duration,
}

/// What every subscriber has received so far, and when the last of it came.
#[derive(Default)]
struct Tally {
    received: AtomicU64,
    missed: AtomicU64,
}

fn main() {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-server-sse");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let engine_rt =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let clients_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sse-client")
        .enable_all()
        .build()
        .unwrap();

    let setups =
        [Setup::Alone, Setup::One, Setup::InProcess, Setup::Served, Setup::Attached, Setup::PerRun];
    // `FLOW_BENCH_SETUPS=alone,served` runs only those, e.g. under a profiler.
    let only = std::env::var("FLOW_BENCH_SETUPS").unwrap_or_default().to_lowercase();
    let chosen: Vec<Setup> = setups
        .into_iter()
        .filter(|setup| {
            only.is_empty() || only.split(',').any(|s| s == format!("{setup:?}").to_lowercase())
        })
        .collect();
    let rounds_of_each = std::env::var("FLOW_BENCH_ROUNDS")
        .ok()
        .and_then(|rounds| rounds.parse().ok())
        .filter(|rounds| *rounds > 0)
        .unwrap_or(ROUNDS);
    let mut rounds: Vec<(Setup, Round)> = Vec::new();
    let mut per_run_events = 0;
    for round in 0..rounds_of_each {
        for &setup in &chosen {
            let path = dir.join(format!("{setup:?}-{round}.db"));
            let (measured, events) = engine_rt.block_on(one(setup, &path, &clients_rt));
            per_run_events = events;
            rounds.push((setup, measured));
        }
    }
    drop(clients_rt);
    drop(engine_rt);
    std::fs::remove_dir_all(&dir).unwrap();

    let median = |setup: Setup| {
        let mut of: Vec<Round> =
            rounds.iter().filter(|(s, _)| *s == setup).map(|(_, round)| *round).collect();
        of.sort_by_key(|round| round.runs);
        // A setup left out by FLOW_BENCH_SETUPS shows as infinite.
        of.get(of.len() / 2).copied().unwrap_or_default()
    };
    let [alone, one, in_process, served, attached, per_run] = setups.map(median);
    // Each round of a setup against the engine alone in the same round, seconds apart, so
    // that a drift in the machine's speed hits both alike: the median of those ratios.
    let paired = |setup: Setup| {
        let of = |wanted: Setup| rounds.iter().filter(move |(s, _)| *s == wanted).map(|(_, r)| r);
        let mut ratios: Vec<f64> = of(setup)
            .zip(of(Setup::Alone))
            .map(|(round, alone)| alone.runs.as_secs_f64() / round.runs.as_secs_f64())
            .collect();
        ratios.sort_by(f64::total_cmp);
        ratios.get(ratios.len() / 2).copied().unwrap_or(f64::NAN)
    };
    let steps = RUNS as u64 * STEPS_PER_RUN;
    // CPU per step over every round of a setup: the ticks are 10 ms, too coarse for one.
    let cpu_per_step = |setup: Setup, clients: bool| {
        let of = rounds.iter().filter(|(s, _)| *s == setup).map(|(_, round)| round);
        let cpu: Duration = of
            .clone()
            .map(
                |round| {
                    if clients { round.cpu } else { round.cpu.saturating_sub(round.clients_cpu) }
                },
            )
            .sum();
        cpu.as_secs_f64() * 1e6 / (steps * of.count() as u64) as f64
    };
    let alone_cpu = cpu_per_step(Setup::Alone, true);
    let served_cpu = cpu_per_step(Setup::Served, false);
    let steps_per_s = |round: Round| steps as f64 / round.runs.as_secs_f64();
    let events_per_s = |round: Round| round.received as f64 / round.delivery.as_secs_f64();
    let emitted = RUNS as u64 * per_run_events * SUBSCRIBERS as u64;
    let share = |round: Round| {
        format!(
            "{} events/s ({:.1}% received, {:.1}% missed)",
            grouped(events_per_s(round)),
            100.0 * round.received as f64 / emitted as f64,
            100.0 * round.missed as f64 / emitted as f64,
        )
    };

    println!(
        "machine: {cores} cores ({}); engine runtime: tokio multi-thread, 2 workers; HTTP \
         clients: a runtime of their own, 1 worker",
        cpu_model()
    );
    println!(
        "workload: {RUNS} concurrent runs of a 5-state loop ({LAPS} laps) on SQLite (WAL, fresh file per \
         round) = {} durable steps; {per_run_events} events per run, {} to each subscriber",
        grouped(steps as f64),
        grouped((RUNS as u64 * per_run_events) as f64)
    );
    println!(
        "median of {rounds_of_each} rounds per setup, setups alternating; ratio = rate ÷ the \
         baseline's rate (1.00× keeps up with it); for steps, the median of each round's \
         ratio to the engine alone in the same round"
    );
    let runs: Vec<String> = rounds
        .iter()
        .map(|(setup, round)| format!("{setup:?} {}", grouped(steps_per_s(*round))))
        .collect();
    println!("steps/s per round: {}", runs.join(", "));
    println!(
        "the HTTP clients' thread was busy about {:.0}% of the served round's runs, on a machine of \
         {cores} cores: a share the engine and server did not have",
        100.0 * served.clients_cpu.as_secs_f64() / served.runs.as_secs_f64()
    );
    println!();
    let rows = [
        [
            "engine alone: durable steps".to_owned(),
            format!("{} steps/s", grouped(steps_per_s(alone))),
            "—".to_owned(),
            "—".to_owned(),
        ],
        [
            "engine + 1 in-process subscriber: durable steps".to_owned(),
            format!("{} steps/s", grouped(steps_per_s(one))),
            "engine alone".to_owned(),
            format!("{:.2}×", paired(Setup::One)),
        ],
        [
            format!("engine + {SUBSCRIBERS} in-process subscribers: durable steps"),
            format!("{} steps/s", grouped(steps_per_s(in_process))),
            "engine alone".to_owned(),
            format!("{:.2}×", paired(Setup::InProcess)),
        ],
        [
            "engine + server + 1 SSE client (a dashboard): durable steps".to_owned(),
            format!("{} steps/s", grouped(steps_per_s(attached))),
            format!("engine alone (target ≥ {TARGET:.2}×)"),
            format!("{:.2}×", paired(Setup::Attached)),
        ],
        [
            format!("engine + server + {SUBSCRIBERS} SSE clients: durable steps"),
            format!("{} steps/s", grouped(steps_per_s(served))),
            format!("engine alone (target ≥ {TARGET:.2}×)"),
            format!("{:.2}×", paired(Setup::Served)),
        ],
        [
            format!("engine + each of the {RUNS} runs followed on its own: durable steps"),
            format!("{} steps/s", grouped(steps_per_s(per_run))),
            "engine alone".to_owned(),
            format!("{:.2}×", paired(Setup::PerRun)),
        ],
        [
            "engine alone: CPU per durable step".to_owned(),
            format!("{alone_cpu:.1} µs"),
            "—".to_owned(),
            "—".to_owned(),
        ],
        [
            "engine + server + 1 SSE client: CPU per step, the client's thread left out".to_owned(),
            format!("{:.1} µs", cpu_per_step(Setup::Attached, false)),
            format!("engine alone (target ≥ {TARGET:.2}×)"),
            format!("{:.2}×", alone_cpu / cpu_per_step(Setup::Attached, false)),
        ],
        [
            format!(
                "engine + server + {SUBSCRIBERS} SSE clients: CPU per step, clients' thread left out"
            ),
            format!("{served_cpu:.1} µs"),
            format!("engine alone (target ≥ {TARGET:.2}×)"),
            format!("{:.2}×", alone_cpu / served_cpu),
        ],
        [
            format!("engine + server + {SUBSCRIBERS} SSE clients: CPU per step, all"),
            format!("{:.1} µs", cpu_per_step(Setup::Served, true)),
            "engine alone".to_owned(),
            format!("{:.2}×", alone_cpu / cpu_per_step(Setup::Served, true)),
        ],
        [
            format!("events to {SUBSCRIBERS} in-process subscribers"),
            share(in_process),
            "—".to_owned(),
            "—".to_owned(),
        ],
        [
            format!("events to {SUBSCRIBERS} SSE clients (GET /events, loopback HTTP)"),
            share(served),
            format!("{SUBSCRIBERS} in-process subscribers"),
            format!("{:.2}×", events_per_s(served) / events_per_s(in_process)),
        ],
    ];
    table(["what", "rate", "baseline", "ratio"], &rows);
}

/// One round of `setup` on a fresh store at `path`; also returns the events of one run.
async fn one(setup: Setup, path: &Path, clients: &Runtime) -> (Round, u64) {
    let engine = Engine::builder()
        .store(SqliteStore::open(path).unwrap())
        .machine::<chain::Machine>()
        .max_concurrent_runs(RUNS)
        .build()
        .unwrap();
    let per_run_events = warm_up(&engine).await;

    let tally = Arc::new(Tally::default());
    let mut subscribers = Vec::new();
    let mut http_clients = Vec::new();
    match setup {
        Setup::Alone | Setup::PerRun => {}
        Setup::One | Setup::InProcess => {
            let count = if setup == Setup::One { 1 } else { SUBSCRIBERS };
            for _ in 0..count {
                subscribers.push(tokio::spawn(in_process(engine.events(), Arc::clone(&tally))));
            }
        }
        Setup::Served | Setup::Attached => {
            let followers = if setup == Setup::Served { SUBSCRIBERS } else { 1 };
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap();
            let served = engine.clone();
            subscribers.push(tokio::spawn(async move {
                let _ = flow_server::serve(listener, served, ServerConfig::new()).await;
            }));
            let client = reqwest::Client::new();
            // The dashboard's runs table follows the kinds that move a run; the 100 clients
            // take every event.
            let url = match setup {
                Setup::Attached => format!("http://{address}/events?kinds={}", dashboard_kinds()),
                _ => format!("http://{address}/events"),
            };
            let mut connecting = Vec::new();
            for _ in 0..followers {
                let (client, url, tally) = (client.clone(), url.clone(), Arc::clone(&tally));
                let (connected, ready) = tokio::sync::oneshot::channel();
                http_clients.push(clients.spawn(over_http(client, url, tally, connected)));
                connecting.push(ready);
            }
            // Each is subscribed once its response's head has come.
            for ready in connecting {
                ready.await.unwrap();
            }
        }
    }

    let clients_before = clients_cpu();
    let cpu_before = process_cpu();
    let started = Instant::now();
    let tasks: Vec<_> = (0..RUNS)
        .map(|_| {
            let (engine, tally) = (engine.clone(), Arc::clone(&tally));
            tokio::spawn(async move {
                let handle = engine.start::<chain::Machine>(0).await.unwrap();
                if setup == Setup::PerRun {
                    let mut events = handle.events();
                    while events.next().await.is_some() {
                        tally.received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                handle.output().await.unwrap()
            })
        })
        .collect();
    for task in tasks {
        assert_eq!(task.await.unwrap(), OUTPUT);
    }
    let runs = started.elapsed();
    let clients_cpu = clients_cpu().saturating_sub(clients_before);
    let cpu = process_cpu().saturating_sub(cpu_before);

    let mut round = Round { runs, delivery: runs, clients_cpu, cpu, ..Round::default() };
    // A run's own follower has had all of its events by the time the run's task ends.
    if setup != Setup::Alone && setup != Setup::PerRun {
        // Until every subscriber has all, or nothing came for a while: a subscriber hears
        // of missed events only with the next one it gets, so the tail may never add up.
        let followers = if matches!(setup, Setup::One | Setup::Attached) { 1 } else { SUBSCRIBERS };
        let all = RUNS as u64 * per_run_events * followers as u64;
        let mut last = (0, started.elapsed());
        let deadline = Instant::now() + DRAIN;
        loop {
            let received = tally.received.load(Ordering::SeqCst);
            let missed = tally.missed.load(Ordering::SeqCst);
            if received != last.0 {
                last = (received, started.elapsed());
            }
            let quiet = started.elapsed() - last.1 > QUIET;
            if received + missed >= all || quiet || Instant::now() > deadline {
                round.received = received;
                round.missed = missed;
                round.delivery = last.1;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    // The clients first: their connections close, and the server's streams end with them.
    for client in http_clients {
        client.abort();
    }
    for subscriber in subscribers {
        subscriber.abort();
    }
    (round, per_run_events)
}

/// Runs one chain to its end, and counts the events it sent.
async fn warm_up(engine: &Engine) -> u64 {
    let mut events = engine.events();
    let output = engine.start::<chain::Machine>(0).await.unwrap().output().await.unwrap();
    assert_eq!(output, OUTPUT);
    let mut count = 0;
    while let Ok(Some(_)) = tokio::time::timeout(Duration::from_millis(50), events.next()).await {
        count += 1;
    }
    assert_eq!(events.missed(), 0);
    count
}

/// Counts the events of `events` into `tally`.
async fn in_process(mut events: flow::Events, tally: Arc<Tally>) {
    let mut missed = 0;
    while events.next().await.is_some() {
        tally.received.fetch_add(1, Ordering::SeqCst);
        if events.missed() > missed {
            tally.missed.fetch_add(events.missed() - missed, Ordering::SeqCst);
            missed = events.missed();
        }
    }
}

/// Follows `url` as Server-Sent Events, counting messages and the `lagged` reports into
/// `tally`; says on `connected` once subscribed.
async fn over_http(
    client: reqwest::Client,
    url: String,
    tally: Arc<Tally>,
    connected: tokio::sync::oneshot::Sender<()>,
) {
    let response = client.get(url).send().await.unwrap();
    assert!(response.status().is_success());
    let _ = connected.send(());
    let mut body = response.bytes_stream();
    // Lean on purpose: the clients share the machine's cores with the server. Messages are
    // found by their blank line with memchr's SIMD search, and only a `lagged` one is read.
    let boundary = memchr::memmem::Finder::new(b"\n\n");
    let mut pending: Vec<u8> = Vec::new();
    while let Some(Ok(chunk)) = body.next().await {
        pending.extend_from_slice(&chunk);
        let mut start = 0;
        let (mut received, mut missed) = (0, 0);
        for end in boundary.find_iter(&pending) {
            let message = &pending[start..end];
            start = end + 2;
            if let Some(rest) = message.strip_prefix(b"event: lagged\ndata: ") {
                let report: serde_json::Value = serde_json::from_slice(rest).unwrap();
                missed += report["missed"].as_u64().unwrap();
            } else if message.starts_with(b"data: ") {
                received += 1;
            }
        }
        tally.received.fetch_add(received, Ordering::Relaxed);
        tally.missed.fetch_add(missed, Ordering::Relaxed);
        pending.drain(..start);
    }
}

/// The CPU time (user and system) of this whole process, from `/proc/self/stat` (Linux;
/// zero elsewhere).
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    ticks(&stat)
}

/// The user and system time of a `/proc/.../stat` line, if it is `comm`'s (any if `None`).
fn ticks(stat: &str) -> Duration {
    let Some((_, rest)) = stat.rsplit_once(')') else { return Duration::ZERO };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
    // utime and stime are the 12th and 13th fields after comm, in USER_HZ: 100 per second
    // on every architecture Linux runs on.
    Duration::from_millis((field(11) + field(12)) * 10)
}

/// The CPU time (user and system) of this process's `sse-client` threads, from
/// `/proc/self/task` (Linux; zero elsewhere).
fn clients_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return Duration::ZERO };
    let stats = tasks.flatten().map(|task| std::fs::read_to_string(task.path().join("stat")));
    stats.flatten().filter(|stat| stat.contains("(sse-client)")).map(|stat| ticks(&stat)).sum()
}

/// `value` with thousands separators, rounded to a whole number.
fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// The CPU's model name, where `/proc/cpuinfo` gives it.
fn cpu_model() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info.lines().find(|line| line.starts_with("model name"));
    model
        .and_then(|line| line.split(':').nth(1))
        .map_or("unknown CPU".into(), |name| name.trim().to_owned())
}

/// Prints `rows` as a markdown table under `header`, each column as wide as its widest cell.
fn table(header: [&str; 4], rows: &[[String; 4]]) {
    let mut widths = header.map(|cell| cell.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 4]| {
        let cells: Vec<_> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(column, (cell, width))| match column {
                1 | 3 => format!("{cell:>width$}"),
                _ => format!("{cell:<width$}"),
            })
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    line(header);
    let rule: Vec<_> = widths.iter().map(|width| "-".repeat(*width)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
}
