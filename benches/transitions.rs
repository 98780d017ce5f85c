//! Transitions per second: a 10-state chain through the runtime, beside a hand-written
//! `loop { match }` over an equivalent enum of the same async fns.
//!
//! `cargo bench --bench transitions` prints a table with the ratio. Each state adds 1 to a
//! counter it carries (the workload of the peers' "chain" benchmark), so both sides do the
//! same work and the difference is the runtime's bookkeeping: visit counts, the step guard,
//! a history entry and a clock reading per attempt, and the panic guard.

use std::hint::black_box;
use std::time::{Duration, Instant};

use flow::prelude::*;

/// The work of one state: add 1, after a real suspension point when `yielding`.
async fn add(n: u64, yielding: bool) -> u64 {
    if yielding {
        tokio::task::yield_now().await;
    }
    black_box(n) + 1
}

#[flow::machine]
pub mod chain {
    use super::*;

    #[state(start, to(s1))]
    async fn s0(cx: &mut bool, n: u64) -> Result<S0> {
        goto!(s1(add(n, *cx).await))
    }
    #[state(to(s2))]
    async fn s1(cx: &mut bool, n: u64) -> Result<S1> {
        goto!(s2(add(n, *cx).await))
    }
    #[state(to(s3))]
    async fn s2(cx: &mut bool, n: u64) -> Result<S2> {
        goto!(s3(add(n, *cx).await))
    }
    #[state(to(s4))]
    async fn s3(cx: &mut bool, n: u64) -> Result<S3> {
        goto!(s4(add(n, *cx).await))
    }
    #[state(to(s5))]
    async fn s4(cx: &mut bool, n: u64) -> Result<S4> {
        goto!(s5(add(n, *cx).await))
    }
    #[state(to(s6))]
    async fn s5(cx: &mut bool, n: u64) -> Result<S5> {
        goto!(s6(add(n, *cx).await))
    }
    #[state(to(s7))]
    async fn s6(cx: &mut bool, n: u64) -> Result<S6> {
        goto!(s7(add(n, *cx).await))
    }
    #[state(to(s8))]
    async fn s7(cx: &mut bool, n: u64) -> Result<S7> {
        goto!(s8(add(n, *cx).await))
    }
    #[state(to(s9))]
    async fn s8(cx: &mut bool, n: u64) -> Result<S8> {
        goto!(s9(add(n, *cx).await))
    }
    #[state(end)]
    async fn s9(cx: &mut bool, n: u64) -> Result<u64> {
        Ok(add(n, *cx).await)
    }
}

/// The hand-written equivalent: the same enum shape, the same async fns, a plain loop.
mod by_hand {
    use super::add;

    pub enum State {
        S0(u64),
        S1(u64),
        S2(u64),
        S3(u64),
        S4(u64),
        S5(u64),
        S6(u64),
        S7(u64),
        S8(u64),
        S9(u64),
    }

    pub async fn run(n: u64, cx: &mut bool) -> Result<u64, String> {
        let mut state = State::S0(n);
        loop {
            state = match state {
                State::S0(n) => State::S1(add(n, *cx).await),
                State::S1(n) => State::S2(add(n, *cx).await),
                State::S2(n) => State::S3(add(n, *cx).await),
                State::S3(n) => State::S4(add(n, *cx).await),
                State::S4(n) => State::S5(add(n, *cx).await),
                State::S5(n) => State::S6(add(n, *cx).await),
                State::S6(n) => State::S7(add(n, *cx).await),
                State::S7(n) => State::S8(add(n, *cx).await),
                State::S8(n) => State::S9(add(n, *cx).await),
                State::S9(n) => return Ok(add(n, *cx).await),
            }
        }
    }
}

const RUNS: u64 = 200_000;
const ROUNDS: usize = 5;

/// The best of `ROUNDS` timings of `RUNS` runs (the least disturbed by other load).
async fn best<F, Fut>(runs: u64, yielding: bool, run: F) -> Duration
where
    F: Fn(u64, bool) -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let mut best = Duration::MAX;
    for _ in 0..ROUNDS {
        let started = Instant::now();
        for i in 0..runs {
            assert_eq!(black_box(run(black_box(i), yielding).await), i + 10);
        }
        best = best.min(started.elapsed());
    }
    best
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
    rt.block_on(async {
        println!("10-state chain through flow::Runner (defaults: history with a duration per attempt)");
        println!("beside a hand-written loop {{ match }} over the same async fns; best of {ROUNDS} rounds, one thread");
        println!();
        println!("| state body                  | runs    | hand-written tr/s | flow tr/s  | flow ns/tr | hand ns/tr | ratio  |");
        println!("|-----------------------------|---------|-------------------|------------|------------|------------|--------|");
        for (label, runs, yielding) in [("add 1", RUNS, false), ("add 1 after yield_now()", RUNS / 4, true)] {
            let by_hand = best(runs, yielding, |n, mut y| async move { by_hand::run(n, &mut y).await.unwrap() }).await;
            let flow = best(runs, yielding, |n, mut y| async move { chain::run(n, &mut y).await.unwrap().output }).await;
            let transitions = (runs * 10) as f64;
            let rate = |d: Duration| transitions / d.as_secs_f64();
            let per = |d: Duration| d.as_nanos() as f64 / transitions;
            println!(
                "| {label:<27} | {runs:>7} | {:>17.0} | {:>10.0} | {:>10.1} | {:>10.1} | {:>5.2}x |",
                rate(by_hand),
                rate(flow),
                per(flow),
                per(by_hand),
                flow.as_secs_f64() / by_hand.as_secs_f64()
            );
        }
    });
}
