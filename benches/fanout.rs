//! Items per second through a fan-out: 10,000 items of a trivial state, in memory, beside
//! `tokio::spawn` of the same async fn per item and `join_all` over the handles.
//!
//! `cargo bench --bench fanout` prints a table with the ratio. Both sides do the same work per
//! item (a suspension point and an addition); flow's side also copies the context per branch,
//! stores each output as JSON for the join, and keeps a history entry per item.
//!
//! Durable fan-out (each branch checkpointed in a store) is not measured: in this version an
//! engine refuses machines that fork.

use std::hint::black_box;
use std::time::{Duration, Instant};

use flow::prelude::*;

const ITEMS: u64 = 10_000;
const ROUNDS: usize = 5;

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

fn best(mut round: impl FnMut() -> Duration) -> Duration {
    (0..ROUNDS).map(|_| round()).min().unwrap_or_default()
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let expected: u64 = (1..=ITEMS).sum();
    let flow = best(|| {
        runtime.block_on(async {
            let started = Instant::now();
            let done = fanout::run(ITEMS, &mut ()).await.unwrap();
            assert_eq!(done.output, expected);
            started.elapsed()
        })
    });
    let spawn = best(|| {
        runtime.block_on(async {
            let started = Instant::now();
            assert_eq!(spawned(ITEMS).await, expected);
            started.elapsed()
        })
    });
    let rate = |d: Duration| ITEMS as f64 / d.as_secs_f64();
    println!("fan-out of {ITEMS} items of a trivial state, in memory; best of {ROUNDS} rounds");
    println!();
    println!("| side                               | items/s    | ms total | ratio to spawn |");
    println!("|------------------------------------|------------|----------|----------------|");
    println!(
        "| tokio::spawn + join_all            | {:>10.0} | {:>8.2} | {:>14.2} |",
        rate(spawn),
        spawn.as_secs_f64() * 1e3,
        1.0
    );
    println!(
        "| flow fan_out! (one task, branches) | {:>10.0} | {:>8.2} | {:>14.2} |",
        rate(flow),
        flow.as_secs_f64() * 1e3,
        rate(flow) / rate(spawn)
    );
}
