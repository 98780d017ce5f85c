//! Two worker processes on one PostgreSQL database: either runs any run, and takes over the
//! runs of the other when it dies.
//!
//! ```text
//! DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo run --example workers --features postgres
//! ```
//!
//! This process starts two workers (this same program, as child processes), and each runs an
//! `Engine` on a `PostgresStore`, in the schema `flow_example_workers`. Worker
//! 1 starts 12 orders; both claim them as they become runnable, so the orders spread over the
//! two. After two seconds this process kills worker 1 outright (SIGKILL): worker 2 takes its
//! orders over once worker 1's lease (2 s, on the database's clock) has lapsed. The attempts
//! cut off count as failed ones and run again, with the same idempotency key. Each line says
//! which worker ran a step, under which claim (the fencing token a side effect would carry).

use std::process::{Command, ExitCode};
use std::time::Duration;

use flow::prelude::*;
use flow::store::PostgresStore;
use flow::{Engine, RunId};
use serde::{Deserialize, Serialize};

const ORDERS: u32 = 12;
const SCHEMA: &str = "flow_example_workers";

/// Which worker this process is (1 or 2), for the lines it prints.
fn worker() -> String {
    std::env::var("FLOW_EXAMPLE_WORKER").unwrap_or_default()
}

fn say(order: u32, what: &str) {
    let now = flow::current().expect("called from a state");
    println!(
        "worker {}: order {order:>2} {what:<10} (attempt {}, fencing token {})",
        worker(),
        now.attempt,
        now.fencing_token.unwrap_or(0)
    );
}

/// Who did what to an order.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Trail {
    pub steps: Vec<String>,
}

#[flow::machine]
pub mod order {
    use super::*;

    #[state(start, to(charge), retry(attempts = 5, backoff = "100ms"))]
    async fn reserve(cx: &mut Trail, order: u32) -> Result<Reserve> {
        say(order, "reserve");
        tokio::time::sleep(Duration::from_millis(400)).await;
        cx.steps.push(format!("reserved by worker {}", worker()));
        goto!(charge(order))
    }

    #[state(to(ship), retry(attempts = 5, backoff = "100ms"))]
    async fn charge(cx: &mut Trail, order: u32) -> Result<Charge> {
        say(order, "charge");
        tokio::time::sleep(Duration::from_millis(400)).await;
        cx.steps.push(format!("charged by worker {}", worker()));
        goto!(ship(order))
    }

    #[state(end, retry(attempts = 5, backoff = "100ms"))]
    async fn ship(cx: &mut Trail, order: u32) -> Result<String> {
        say(order, "ship");
        tokio::time::sleep(Duration::from_millis(400)).await;
        cx.steps.push(format!("shipped by worker {}", worker()));
        Ok(cx.steps.join(", "))
    }
}

/// Order `order`'s run id: this try's base (new each time the example runs) plus `order`.
fn order_id(order: u32) -> RunId {
    let base: u128 =
        std::env::var("FLOW_EXAMPLE_BASE").ok().and_then(|b| b.parse().ok()).unwrap_or(0);
    RunId::from_u128(base + u128::from(order))
}

fn database_url() -> String {
    std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

async fn engine() -> Result<Engine, Box<dyn std::error::Error>> {
    let store = PostgresStore::builder(database_url()).schema(SCHEMA).connect().await?;
    Ok(Engine::builder()
        .store(store)
        .machine::<order::Machine>()
        .lease(Duration::from_secs(2))
        .max_concurrent_runs(4)
        .build()?)
}

/// A worker: worker 1 starts the orders; both follow every order to its end.
async fn run_worker() -> Result<(), Box<dyn std::error::Error>> {
    let engine = engine().await?;
    if worker() == "1" {
        for n in 1..=ORDERS {
            engine.start_as::<order::Machine>(order_id(n), n, Trail::default()).await?;
        }
    }
    for n in 1..=ORDERS {
        let handle = loop {
            match engine.handle::<order::Machine>(order_id(n)).await {
                Ok(handle) => break handle,
                // Not started yet by worker 1.
                Err(flow::EngineError::UnknownRun { .. }) => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(error) => return Err(error.into()),
            }
        };
        let trail = handle.output().await?;
        if worker() == "2" {
            println!("order {n:>2}: {trail}");
        }
    }
    Ok(())
}

/// Deletes the orders earlier tries finished; returns this try's run-id base.
async fn tidy() -> Result<u128, Box<dyn std::error::Error>> {
    let store = PostgresStore::builder(database_url()).schema(SCHEMA).connect().await?;
    let finished = flow::store::Filter::new().machine("order");
    flow::store::CheckpointStore::delete_finished(&store, finished, u64::MAX).await?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?;
    Ok(now.as_nanos() << 16)
}

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    if !worker().is_empty() {
        return match runtime.block_on(run_worker()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("worker {}: {error}", worker());
                ExitCode::FAILURE
            }
        };
    }
    let base = match runtime.block_on(tidy()) {
        Ok(base) => base,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    let spawn = |n: &str| {
        Command::new(std::env::current_exe().expect("this program's path"))
            .env("FLOW_EXAMPLE_WORKER", n)
            .env("FLOW_EXAMPLE_BASE", base.to_string())
            .spawn()
            .expect("cannot start a worker")
    };
    let mut one = spawn("1");
    let mut two = spawn("2");
    std::thread::sleep(Duration::from_secs(2));
    let _ = one.kill();
    let _ = one.wait();
    println!("-- killed worker 1; worker 2 takes its orders over once its lease lapses --");
    let ended = two.wait().expect("worker 2 ran");
    if ended.success() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}
