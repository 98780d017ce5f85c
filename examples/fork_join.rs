//! An order that charges the card and reserves the stock at the same time, then ships once
//! both are done: a fork into two branches and a typed join.
//!
//! ```sh
//! cargo run --example fork_join
//! ```
//!
//! `split` forks into `pay` (authorise, then capture) and `reserve`. Each branch runs on its
//! own copy of the context and ends in a `branch_end` state whose output goes to `ship`, which
//! takes a `Receipt` and a `Reservation`, in the fork's order, whichever finished first. The
//! second order asks for more than the warehouse has: its `reserve` branch fails for good, the
//! payment branch still under way is cut off, and the run fails with the stock error.
//!
//! Both orders run durably on an engine with a SQLite store: each branch is a run of its own,
//! and the order's run waits in the store for them. `order::run(order, &mut shop)` runs the
//! same machine in memory, the branches as tasks of the run.

use std::time::Duration;

use flow::Engine;
use flow::prelude::*;
use flow::store::SqliteStore;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub id: u32,
    pub cents: u64,
    pub item: String,
    pub quantity: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Receipt {
    pub authorisation: String,
    pub cents: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reservation {
    pub item: String,
    pub quantity: u32,
}

/// The shop's side: what is in stock. Each branch works on its own copy.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Shop {
    pub in_stock: u32,
}

#[flow::machine]
pub mod order {
    use super::*;

    #[state(start, fork(pay, reserve), join = ship)]
    async fn split(_cx: &mut Shop, order: Order) -> Result<Split> {
        println!("  order {}: paying and reserving at once", order.id);
        fork!(pay(order.id, order.cents), reserve(order.item, order.quantity))
    }

    #[state(to(capture), retry(attempts = 3, backoff = "10ms"))]
    async fn pay(_cx: &mut Shop, id: u32, cents: u64) -> Result<Pay> {
        // The card network is the slow part.
        tokio::time::sleep(Duration::from_millis(300)).await;
        println!("    pay: authorised {cents} cents");
        goto!(capture(format!("auth-{id}"), cents))
    }

    #[state(branch_end)]
    async fn capture(_cx: &mut Shop, authorisation: String, cents: u64) -> Result<Receipt> {
        println!("    pay: captured under {authorisation}");
        Ok(Receipt { authorisation, cents })
    }

    #[state(branch_end)]
    async fn reserve(cx: &mut Shop, item: String, quantity: u32) -> Result<Reservation> {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if quantity > cx.in_stock {
            println!("    reserve: only {} {item} in stock", cx.in_stock);
            return Err(Error::permanent(format!(
                "{quantity} {item} asked for, {} in stock",
                cx.in_stock
            )));
        }
        cx.in_stock -= quantity;
        println!("    reserve: {quantity} {item} held");
        Ok(Reservation { item, quantity })
    }

    #[state(end)]
    async fn ship(_cx: &mut Shop, receipt: Receipt, reservation: Reservation) -> Result<String> {
        Ok(format!(
            "shipped {} {} (paid {} cents, {})",
            reservation.quantity, reservation.item, receipt.cents, receipt.authorisation
        ))
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    println!("{}", order::graph().to_mermaid());
    let path = std::env::temp_dir().join("flow-fork-join-example.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let engine =
        Engine::builder().store(SqliteStore::open(&path)?).machine::<order::Machine>().build()?;
    let orders = [
        Order { id: 1, cents: 1200, item: "tea".into(), quantity: 2 },
        Order { id: 2, cents: 9900, item: "teapot".into(), quantity: 5 },
    ];
    for order in orders {
        let run = engine.start_with::<order::Machine>(order, Shop { in_stock: 3 }).await?;
        let id = run.id();
        match run.output().await {
            Ok(output) => println!("  {output}"),
            Err(error) => println!("  failed: {error}"),
        }
        // The order's history, then each branch's, from their own runs.
        let runs = [("order", id), ("pay", flow::RunId::branch(id, 0, 0))];
        let runs = runs.into_iter().chain([("reserve", flow::RunId::branch(id, 0, 1))]);
        for (name, run) in runs {
            // A branch cut off by its sibling's failure stops at its next safe point.
            let mut status = engine.status(run).await?;
            while !status.status.is_finished() {
                tokio::time::sleep(Duration::from_millis(20)).await;
                status = engine.status(run).await?;
            }
            println!("    {name} ({}):", status.status);
            for entry in &status.history {
                println!("      {} #{}: {}", entry.state, entry.attempt, entry.outcome);
            }
        }
    }
    Ok(())
}
