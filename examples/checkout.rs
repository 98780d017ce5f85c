//! Checkout: validate an order, charge a flaky payment API (retried with backoff), then ship it,
//! or reject the order; refund the charge when shipping fails.
//!
//! ```sh
//! cargo run --example checkout
//! ```
//!
//! The runs are durable, on an embedded SQLite file in the system's temporary directory, and
//! every event is printed as it happens. For the first order the payment API fails its first
//! two calls with a retryable 503, so `charge` succeeds on its third attempt; the second order
//! is empty and rejected without touching the API; the third is charged, but the warehouse is
//! out of one of its items, so shipping fails for good and the charge's compensation refunds
//! it (a saga). A declined card would be a permanent error: no retry, nothing to refund.

use std::time::Duration;

use flow::prelude::*;
use flow::store::SqliteStore;
use flow::{Engine, EventKind, RunId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub id: u32,
    pub lines: Vec<String>,
    pub cents: u64,
    /// A tokenized card, as a payment provider hands it out.
    pub card: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Status {
    Shipped { tracking: String },
    Rejected { reason: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Receipt {
    pub order: u32,
    pub status: Status,
}

/// A simulated payment API that is down for its first `outage` calls.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Payments {
    pub outage: u32,
    pub calls: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum PaymentError {
    #[error("payment API unavailable (503)")]
    Unavailable,
    #[error("card declined")]
    Declined,
}

impl Payments {
    async fn charge(
        &mut self,
        card: &str,
        cents: u64,
    ) -> std::result::Result<String, PaymentError> {
        self.calls += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
        if self.calls <= self.outage {
            return Err(PaymentError::Unavailable);
        }
        if card == "tok_declined" {
            return Err(PaymentError::Declined);
        }
        Ok(format!("ch_{:04} for {cents} cents", self.calls))
    }

    async fn refund(&mut self, card: &str, cents: u64) -> std::result::Result<(), PaymentError> {
        tokio::time::sleep(Duration::from_millis(5)).await;
        let _ = (card, cents);
        Ok(())
    }
}

/// What every state of a checkout run shares; checkpointed with the run.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Shop {
    pub payments: Payments,
    pub shipments: u32,
}

/// What the warehouse has run out of.
const OUT_OF_STOCK: &str = "matcha whisk";

#[flow::machine]
pub mod checkout {
    use super::*;

    #[state(start, to(charge, reject))]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        flow::progress(format!("order {} has {} line(s)", order.id, order.lines.len()), None);
        if order.lines.is_empty() {
            return goto!(reject(order.id, format!("order {} is empty", order.id)));
        }
        goto!(charge(order))
    }

    #[state(to(ship), retry(attempts = 5, backoff = "20ms..200ms"), timeout = "1s",
            compensate = refund)]
    async fn charge(cx: &mut Shop, order: Order) -> Result<Charge> {
        let call = cx.payments.calls + 1;
        flow::progress(format!("{} cents to {} (API call {call})", order.cents, order.card), None);
        let charge = match cx.payments.charge(&order.card, order.cents).await {
            Ok(charge) => charge,
            // No retry can un-decline a card.
            Err(PaymentError::Declined) => return Err(Error::permanent(PaymentError::Declined)),
            Err(error) => return Err(error.into()), // what `?` does: retryable
        };
        flow::progress(format!("charged: {charge}"), None);
        goto!(ship(order))
    }

    /// Undoes a charge when a later state fails for good: `charge`'s compensation.
    async fn refund(cx: &mut Shop, order: Order) -> Result<()> {
        // The provider dedupes by this key, so a refund that runs twice refunds once.
        let key = flow::idempotency_key().unwrap_or_default();
        cx.payments.refund(&order.card, order.cents).await?;
        flow::progress(
            format!("refunded {} cents to {} (key …{})", order.cents, order.card, &key[26..]),
            None,
        );
        Ok(())
    }

    #[state(end)]
    async fn ship(cx: &mut Shop, order: Order) -> Result<Receipt> {
        if let Some(line) = order.lines.iter().find(|line| *line == OUT_OF_STOCK) {
            return Err(Error::permanent(format!("the warehouse is out of {line}")));
        }
        cx.shipments += 1;
        let tracking = format!("TRK-{}-{}", order.id, cx.shipments);
        flow::progress(format!("{} as {tracking}", order.lines.join(", ")), None);
        Ok(Receipt { order: order.id, status: Status::Shipped { tracking } })
    }

    #[state(end)]
    async fn reject(_cx: &mut Shop, order: u32, reason: String) -> Result<Receipt> {
        flow::progress(format!("rejected: {reason}"), None);
        Ok(Receipt { order, status: Status::Rejected { reason } })
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    println!("== the checkout machine, as Mermaid ==\n");
    println!("{}", checkout::graph().to_mermaid());

    let path = std::env::temp_dir().join("flow-checkout-example.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    // A fixed seed (with fixed run ids) makes the backoff jitter, and so the retry delays
    // below, the same every time.
    let engine = Engine::builder()
        .store(SqliteStore::open(&path)?)
        .machine::<checkout::Machine>()
        .seed(7)
        .build()?;

    // Subscribed before the first run starts, so no event is missed.
    let mut events = engine.events();

    let orders = [
        (
            2,
            Order {
                id: 1042,
                lines: vec!["green tea 250g".into(), "teapot".into()],
                cents: 4_450,
                card: "tok_visa".into(),
            },
        ),
        (0, Order { id: 1043, lines: vec![], cents: 0, card: "tok_visa".into() }),
        (
            0,
            Order {
                id: 1044,
                lines: vec!["sencha 100g".into(), OUT_OF_STOCK.into()],
                cents: 2_900,
                card: "tok_amex".into(),
            },
        ),
    ];
    for (outage, order) in orders {
        println!("== order {} ==", order.id);
        let shop = Shop { payments: Payments { outage, calls: 0 }, shipments: 0 };
        // The run's id is the order's: starting the same order twice would be refused.
        let id = RunId::from_u128(order.id.into());
        let run = engine.start_as::<checkout::Machine>(id, order, shop).await?;
        // The run's events as they happen (checkpoints left out: one per step), to its end.
        while let Some(event) = events.next().await {
            if event.run != id || matches!(event.kind, EventKind::Checkpointed { .. }) {
                continue;
            }
            println!("  {event}");
            if matches!(event.kind, EventKind::Completed { .. } | EventKind::Failed { .. }) {
                break;
            }
        }
        match run.output().await {
            Ok(receipt) => println!("outcome: {receipt:?}"),
            Err(error) => println!("failed: {error}"),
        }
        println!("history:");
        for entry in engine.status(id).await?.history {
            println!("  {entry}");
        }
        println!();
    }
    Ok(())
}
