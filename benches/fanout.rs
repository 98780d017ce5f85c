//! Items per second through a fan-out: 10,000 items of a trivial state, beside `tokio::spawn`
//! of the same async fn per item and `join_all` over the handles.
//!
//! `cargo bench --bench fanout` prints a table with the ratio. Every side does the same work
//! per item (a suspension point and an addition). flow in memory (`run`) also copies the
//! context per branch, stores each output as JSON for the join, and keeps a history entry per
//! item. Under an engine each item is a run of its own: a checkpoint when it starts and one
//! when it ends, a claim, and its output read back for the join; on SQLite those are written
//! to a file (WAL, group commit), in the system's temporary directory.

use std::hint::black_box;
use std::time::{Duration, Instant};

use flow::Engine;
use flow::prelude::*;
use flow::store::{CheckpointStore, MemoryStore, SqliteStore};

const ITEMS: u64 = 10_000;
const ROUNDS: usize = 5;
/// Rounds for the engines, whose rounds take longer.
const ENGINE_ROUNDS: usize = 3;

/// The work of one item.
async fn work(n: u64) -> u64 {
    tokio::task::yield_now().await;
    black_box(n) + 1
}

#[flow::machine]
pub mod fanout {
    use super::*;

    #[state(start, fan_out(item, limit = 10000), join = sum)]
    async fn split(_cx: &mut (), count: u64) -> Result<Split> {
        fan_out!(item, 0..count)
    }

    #[state(branch_end)]
    async fn item(_cx: &mut (), n: u64) -> Result<u64> {
        Ok(work(n).await)
    }

    #[state(end)]
    async fn sum(_cx: &mut (), outputs: Vec<u64>) -> Result<u64> {
        Ok(outputs.iter().sum())
    }
}

async fn spawned(count: u64) -> u64 {
    let handles: Vec<_> = (0..count).map(|n| tokio::spawn(work(n))).collect();
    futures_util::future::join_all(handles).await.into_iter().map(Result::unwrap).sum()
}

fn best(rounds: usize, mut round: impl FnMut() -> Duration) -> Duration {
    (0..rounds).map(|_| round()).min().unwrap_or_default()
}

/// One round of the fan-out as a durable run of `engine`.
fn durable(runtime: &tokio::runtime::Runtime, engine: &Engine, expected: u64) -> Duration {
    runtime.block_on(async {
        let started = Instant::now();
        let handle = engine.start_with::<fanout::Machine>(ITEMS, ()).await.unwrap();
        assert_eq!(handle.output().await.unwrap(), expected);
        started.elapsed()
    })
}

fn engine(runtime: &tokio::runtime::Runtime, store: impl CheckpointStore) -> Engine {
    let _entered = runtime.enter();
    let engine = Engine::builder().store(store).machine::<fanout::Machine>();
    engine.max_concurrent_runs(ITEMS as usize).build().unwrap()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let expected: u64 = (1..=ITEMS).sum();
    let flow = best(ROUNDS, || {
        runtime.block_on(async {
            let started = Instant::now();
            let done = fanout::run(ITEMS, &mut ()).await.unwrap();
            assert_eq!(done.output, expected);
            started.elapsed()
        })
    });
    let spawn = best(ROUNDS, || {
        runtime.block_on(async {
            let started = Instant::now();
            assert_eq!(spawned(ITEMS).await, expected);
            started.elapsed()
        })
    });
    let memory = engine(&runtime, MemoryStore::new());
    let in_store = best(ENGINE_ROUNDS, || durable(&runtime, &memory, expected));
    let path = std::env::temp_dir().join(format!("flow-fanout-bench-{}.db", std::process::id()));
    let sqlite = engine(&runtime, SqliteStore::open(&path).unwrap());
    let on_disk = best(ENGINE_ROUNDS, || durable(&runtime, &sqlite, expected));
    drop(sqlite);
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let rate = |d: Duration| ITEMS as f64 / d.as_secs_f64();
    println!(
        "fan-out of {ITEMS} items of a trivial state; best of {ROUNDS} rounds \
         ({ENGINE_ROUNDS} for engines)"
    );
    println!();
    println!("| side                               | items/s    | ms total | ratio to spawn |");
    println!("|------------------------------------|------------|----------|----------------|");
    println!(
        "| tokio::spawn + join_all            | {:>10.0} | {:>8.2} | {:>14.2} |",
        rate(spawn),
        spawn.as_secs_f64() * 1e3,
        1.0
    );
    let rows = [
        ("flow fan_out!, in memory (run)", flow),
        ("flow fan_out!, engine, MemoryStore", in_store),
        ("flow fan_out!, engine, SqliteStore", on_disk),
    ];
    for (side, took) in rows {
        println!(
            "| {side:<34} | {:>10.0} | {:>8.2} | {:>14.3} |",
            rate(took),
            took.as_secs_f64() * 1e3,
            rate(took) / rate(spawn)
        );
    }
}
