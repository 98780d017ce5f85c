//! Durable runs on a SQLite file: interrupt this example and run it again, and it goes on
//! where it stopped.
//!
//! ```text
//! cargo run --example durable        # starts 5 report runs; press Ctrl-C midway
//! cargo run --example durable        # goes on with the unfinished ones from their checkpoints
//! ```
//!
//! Each run fetches, renders (a flaky step that retries with backoff) and publishes a report,
//! taking a few seconds. Every step is checkpointed to `target/flow-durable-example.db` (or
//! the path given as the first argument) before the run moves on.
//!
//! Ctrl-C shuts the engine down: the attempts under way finish, and their runs are handed back
//! to the file. The next start claims every unfinished run at once: finished states are not
//! run again, and a retry that was backing off waits only the rest of its backoff. Killed
//! outright (`kill -9`), the process cannot hand its runs back: the next start takes them over
//! once the dead process's lease (3 s here) has lapsed, and the attempt that was cut off counts
//! as a failed one and runs again with the same idempotency key, so `publish` can tell it
//! already published. Delete the file to start over.

use std::path::PathBuf;
use std::time::Duration;

use flow::Engine;
use flow::prelude::*;
use flow::store::{Filter, SqliteStore};
use serde::{Deserialize, Serialize};

/// What a report run carries along: the lines it has produced so far.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Draft {
    pub lines: Vec<String>,
}

/// Prints a step with the run's visit and attempt.
fn say(report: u32, what: &str) {
    let now = flow::current().expect("called from a state");
    println!(
        "report {report}: {what:<28} (attempt {}, idempotency key …{})",
        now.attempt,
        &now.idempotency_key()[24..]
    );
}

#[flow::machine]
pub mod report {
    use super::*;

    #[state(start, to(render), retry(attempts = 3, backoff = "100ms"))]
    async fn fetch(cx: &mut Draft, report: u32) -> Result<Fetch> {
        say(report, "fetching figures");
        tokio::time::sleep(Duration::from_millis(800)).await;
        cx.lines.push(format!("figures for region {report}"));
        goto!(render(report, 3 + report % 3))
    }

    /// Fails on its first attempt of every visit, as a flaky renderer would.
    #[state(to(render, publish), retry(attempts = 3, backoff = "1s..4s"))]
    async fn render(cx: &mut Draft, report: u32, pages: u32) -> Result<Render> {
        if flow::current().is_some_and(|now| now.attempt == 1) {
            say(report, "renderer busy, will retry");
            return Err(Error::retryable("the renderer is busy"));
        }
        say(report, &format!("rendering page {pages}"));
        tokio::time::sleep(Duration::from_millis(600)).await;
        cx.lines.push(format!("page {pages}"));
        if pages > 1 {
            return goto!(render(report, pages - 1));
        }
        goto!(publish(report))
    }

    /// Retried if a crash cuts it off: a cut-off attempt counts as a failed one.
    #[state(end, retry(attempts = 3, backoff = "100ms"))]
    async fn publish(cx: &mut Draft, report: u32) -> Result<String> {
        say(report, "publishing");
        tokio::time::sleep(Duration::from_millis(400)).await;
        Ok(format!("report {report}: {}", cx.lines.join(", ")))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .map_or_else(|| PathBuf::from("target").join("flow-durable-example.db"), PathBuf::from);
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let engine = Engine::builder()
        .store(SqliteStore::open(&path)?)
        .machine::<report::Machine>()
        .lease(Duration::from_secs(3))
        .build()?;
    println!("runs are kept in {}", path.display());
    // Ctrl-C: let the attempts under way finish, and hand their runs back to the file.
    tokio::spawn({
        let engine = engine.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                println!("\nshutting down: finishing the attempts under way");
                let _ = engine.shutdown(Duration::from_secs(5)).await;
                println!("every unfinished run waits in the file; run me again to go on");
                std::process::exit(130);
            }
        }
    });

    let known = engine.list(Filter::new()).await?;
    let unfinished = known.iter().filter(|run| !run.status.is_finished()).count();
    match (known.len(), unfinished) {
        (0, _) => println!("starting 5 report runs; press Ctrl-C midway, then run me again\n"),
        (_, 0) => println!("every run finished earlier; their outputs are in the store\n"),
        (_, n) => println!("going on with {n} unfinished run(s) where they stopped\n"),
    }

    // Keyed starts are idempotent: a report started by an earlier process is taken over, not
    // started twice.
    let mut handles = Vec::new();
    for report in 1..=5 {
        let key = format!("report-{report}");
        let started = engine.start_keyed::<report::Machine>(&*key, report, Draft::default()).await;
        let handle = match started {
            Ok(handle) => handle,
            Err(flow::EngineError::AlreadyExists { .. }) => engine.handle_for_key(&key).await?,
            Err(error) => return Err(error.into()),
        };
        handles.push(handle);
    }

    for handle in handles {
        let run = handle.id();
        let output = handle.output().await?;
        let steps = engine.status(run).await?.history.len();
        println!("done: {output} ({steps} attempts in its history)");
    }
    println!("\nall reports published; delete {} to start over", path.display());
    Ok(())
}
