//! Checkout: validate an order, charge a flaky payment API (retried with backoff), then ship it,
//! or reject the order.
//!
//! ```sh
//! cargo run --example checkout
//! ```
//!
//! The payment API fails its first two calls with a retryable 503, so `charge` succeeds on its
//! third attempt; an empty order is rejected without touching the API. A declined card is a
//! permanent error: the run would fail at once, with no retry.

use std::time::Duration;

use flow::prelude::*;
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
}

/// What every state of the checkout shares.
pub struct Shop {
    pub payments: Payments,
    pub shipments: u32,
}

#[flow::machine]
pub mod checkout {
    use super::*;

    #[state(start, to(charge, reject))]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        println!("  validate: order {} has {} line(s)", order.id, order.lines.len());
        if order.lines.is_empty() {
            return goto!(reject(order.id, format!("order {} is empty", order.id)));
        }
        goto!(charge(order))
    }

    #[state(to(ship), retry(attempts = 5, backoff = "20ms..200ms"), timeout = "1s")]
    async fn charge(cx: &mut Shop, order: Order) -> Result<Charge> {
        println!(
            "  charge: {} cents to {} (payment API call {})",
            order.cents,
            order.card,
            cx.payments.calls + 1
        );
        let charge = match cx.payments.charge(&order.card, order.cents).await {
            Ok(charge) => charge,
            // No retry can un-decline a card.
            Err(PaymentError::Declined) => return Err(Error::permanent(PaymentError::Declined)),
            Err(error) => {
                println!("  charge: {error}");
                return Err(error.into()); // what `?` does: retryable
            }
        };
        println!("  charge: ok, {charge}");
        goto!(ship(order))
    }

    #[state(end)]
    async fn ship(cx: &mut Shop, order: Order) -> Result<Receipt> {
        cx.shipments += 1;
        let tracking = format!("TRK-{}-{}", order.id, cx.shipments);
        println!("  ship: {} as {tracking}", order.lines.join(", "));
        Ok(Receipt { order: order.id, status: Status::Shipped { tracking } })
    }

    #[state(end)]
    async fn reject(_cx: &mut Shop, order: u32, reason: String) -> Result<Receipt> {
        println!("  reject: {reason}");
        Ok(Receipt { order, status: Status::Rejected { reason } })
    }
}

#[tokio::main]
async fn main() {
    println!("== the checkout machine, as Mermaid ==\n");
    println!("{}", checkout::graph().to_mermaid());

    let mut shop = Shop { payments: Payments { outage: 2, calls: 0 }, shipments: 0 };
    // A fixed seed makes the backoff jitter, and so the retry delays below, the same on every run.
    let runner = flow::Runner::new().seed(7);
    let orders = [
        Order {
            id: 1042,
            lines: vec!["green tea 250g".into(), "teapot".into()],
            cents: 4_450,
            card: "tok_visa".into(),
        },
        Order { id: 1043, lines: vec![], cents: 0, card: "tok_visa".into() },
    ];
    for order in orders {
        println!("== order {} ==", order.id);
        match runner.run::<checkout::Machine>(order, &mut shop).await {
            Ok(done) => {
                println!("outcome: {:?}", done.output);
                println!("history:");
                for entry in &done.history {
                    println!("  {entry}");
                }
            }
            Err(error) => {
                println!("failed: {error}");
                for entry in error.history() {
                    println!("  {entry}");
                }
            }
        }
        println!();
    }
}
