//! Serves a checkout and an approval machine over HTTP on 127.0.0.1, with a SQLite store.
//!
//! ```text
//! cargo run -p flow-machine-server --example server
//! ```
//!
//! It prints the address, the dashboard's and a fresh token, then curl lines to try. In the
//! dashboard, paste the token, start an `approval` run with the input `"a memo"`, and send
//! it the signal `"Approve"` (or `{"Reject": "too short"}`, which goes round once more),
//! typed as JSON or picked in the form the page builds from the signal's JSON Schema. The
//! runs live in `target/server-example.db`, or the file `FLOW_SERVER_DB` names: stop the
//! server (Ctrl-C) and start it again, and the runs that waited go on. `FLOW_SERVER_PREFIX=/flow`
//! serves it all under that path instead, nested in a router as an application that serves
//! more than flow would (or as behind a proxy that forwards `/flow/`). The example sits in
//! the server's package, not in the repository's root `examples/`, since those use the
//! `flow-machine` facade only.

use std::time::Duration;

use flow::prelude::*;
use flow::store::SqliteStore;
use flow::{Engine, RunId};
use flow_server::ServerConfig;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

// The input and signal types derive `JsonSchema`: `GET /machines` carries their schemas,
// and the dashboard builds its start and signal forms from them.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Line {
    pub sku: String,
    pub cents: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Order {
    pub id: u32,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Shop {
    pub charged_cents: u64,
}

#[flow::machine]
pub mod checkout {
    use super::*;

    #[state(start, to(charge, reject))]
    async fn validate(_cx: &mut Shop, order: Order) -> Result<Validate> {
        if order.lines.is_empty() {
            return goto!(reject(order.id, format!("order {} is empty", order.id)));
        }
        goto!(charge(order))
    }

    /// A line of sku `flaky` fails the first attempt, and the retry follows 20 s later (or at
    /// once, with the dashboard's "Retry now"); one of sku `declined` fails for good: the
    /// dashboard shows both in the run's history.
    #[state(to(ship), retry(attempts = 3, backoff = "20s"))]
    async fn charge(cx: &mut Shop, order: Order) -> Result<Charge> {
        flow::progress(format!("charging order {}", order.id), None);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let has = |sku: &str| order.lines.iter().any(|line| line.sku == sku);
        if has("declined") {
            return Err(Error::permanent(format!("the card for order {} was declined", order.id)));
        }
        let attempt = flow::current().map_or(1, |current| current.attempt);
        if has("flaky") && attempt == 1 {
            return Err(Error::retryable("the payment provider timed out"));
        }
        cx.charged_cents += order.lines.iter().map(|line| u64::from(line.cents)).sum::<u64>();
        goto!(ship(order))
    }

    #[state(end)]
    async fn ship(cx: &mut Shop, order: Order) -> Result<String> {
        Ok(format!("order {} shipped, {} cents charged", order.id, cx.charged_cents))
    }

    #[state(end)]
    async fn reject(_cx: &mut Shop, order: u32, reason: String) -> Result<String> {
        Ok(format!("order {order} rejected: {reason}"))
    }
}

/// What a reviewer sends.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub enum Decision {
    Approve,
    Reject(String),
}

#[flow::machine]
pub mod approval {
    use super::*;

    #[state(start, to(review))]
    async fn submit(_cx: &mut (), doc: String) -> Result<Submit> {
        goto!(review(doc))
    }

    /// Waits for a reviewer, for a day at most.
    #[state(to(publish, revise), signal(timeout = "1d", default = publish))]
    async fn review(_cx: &mut (), doc: String, #[signal] decision: Decision) -> Result<Review> {
        match decision {
            Decision::Approve => goto!(publish(doc)),
            Decision::Reject(why) => goto!(revise(doc, why)),
        }
    }

    #[state(to(review))]
    async fn revise(_cx: &mut (), doc: String, why: String) -> Result<Revise> {
        goto!(review(format!("{doc} (revised: {why})")))
    }

    #[state(end)]
    async fn publish(_cx: &mut (), doc: String) -> Result<String> {
        Ok(format!("published {doc}"))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // CI's API fuzzing points this at a fresh file, so its runs neither pile up here nor
    // meet the runs of an earlier session.
    let path = match std::env::var_os("FLOW_SERVER_DB") {
        Some(path) => std::path::PathBuf::from(path),
        None => {
            // The workspace's target folder, made if a build put its output elsewhere
            // (CARGO_TARGET_DIR).
            let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
            std::fs::create_dir_all(&target)?;
            target.join("server-example.db")
        }
    };
    let engine = Engine::builder()
        .store(SqliteStore::open(&path)?)
        .machine::<checkout::Machine>()
        .default_context::<checkout::Machine>(Shop::default)
        .machine::<approval::Machine>()
        .build()?;
    // A fresh token per start, for the demo (its digits are not from a cryptographic
    // generator): in production, read the token from where your secrets are kept.
    let token = RunId::random().to_string();
    let config = ServerConfig::new().token(token.clone());
    // Under a prefix, flow's routes are nested in the application's own router.
    let prefix = std::env::var("FLOW_SERVER_PREFIX").unwrap_or_default();
    let prefix = prefix.trim_end_matches('/');
    let routes = flow_server::router(engine, config);
    let app = match prefix {
        "" => routes,
        _ if !prefix.starts_with('/') => {
            return Err(
                format!("FLOW_SERVER_PREFIX must start with `/`, as `/flow`: {prefix:?}").into()
            );
        }
        _ => axum::Router::new().nest(prefix, routes),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let address = format!("{address}{prefix}");
    println!("serving on http://{address}");
    let page = if prefix.is_empty() { "/" } else { "" };
    println!("dashboard: http://{address}{page} (paste the token there)");
    println!("token: {token}");
    println!("runs in {}", path.display());
    println!();
    println!("try:");
    println!("  curl -H 'Authorization: Bearer {token}' http://{address}/machines");
    println!(
        "  curl -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \
         -d '{{\"input\": {{\"id\": 7, \"lines\": [{{\"sku\": \"tea\", \"cents\": 450}}]}}}}' \
         http://{address}/machines/checkout/runs"
    );
    println!("  curl -N -H 'Authorization: Bearer {token}' http://{address}/events");
    println!("  curl -H 'Authorization: Bearer {token}' http://{address}/openapi.json");
    axum::serve(listener, app).await?;
    Ok(())
}
