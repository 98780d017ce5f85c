//! Map-reduce over a document, durably: split it into chunks, summarise every chunk in
//! parallel through an API that serves three calls at once, and merge the summaries in the
//! document's order.
//!
//! ```sh
//! cargo run --example fanout
//! ```
//!
//! `split` fans out to `summarise`, one branch per chunk. Under the engine each branch is a
//! run of its own in a SQLite store (in the system's temporary directory), checkpointed
//! and retried on its own; the document's run waits in the store until the last one ends.
//! Each summary holds one unit of the engine's `api` pool (`.pool("api", 3)`): at most three
//! calls are under way at once, whatever the number of chunks, and the rest wait their turn.
//! Chunks take longer the longer they are, so they finish out of order; `merge` still
//! receives the summaries in the chunks' order, as one `Vec`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flow::Engine;
use flow::prelude::*;
use flow::store::SqliteStore;
use serde::{Deserialize, Serialize};

/// Summaries under way now.
static UNDER_WAY: AtomicUsize = AtomicUsize::new(0);

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    pub chunk: usize,
    pub words: usize,
    pub first: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desk;

#[flow::machine(pools(api))]
pub mod digest {
    use super::*;

    #[state(start, fan_out(summarise), join = merge)]
    async fn split(_cx: &mut Desk, text: String) -> Result<Split> {
        let chunks: Vec<(usize, String)> = text
            .split(". ")
            .map(|sentence| sentence.trim_end_matches('.').to_owned())
            .enumerate()
            .collect();
        println!("{} chunks", chunks.len());
        fan_out!(summarise, chunks)
    }

    #[state(branch_end, uses(api), retry(attempts = 3, backoff = "50ms"))]
    async fn summarise(_cx: &mut Desk, chunk: (usize, String)) -> Result<Summary> {
        let (index, text) = chunk;
        let now = UNDER_WAY.fetch_add(1, Ordering::SeqCst) + 1;
        println!("  chunk {index}: started ({now} under way)");
        // The "API": longer chunks take longer.
        tokio::time::sleep(Duration::from_millis(20 * text.len() as u64)).await;
        UNDER_WAY.fetch_sub(1, Ordering::SeqCst);
        let words = text.split_whitespace().count();
        let first = text.split_whitespace().next().unwrap_or_default().to_owned();
        println!("  chunk {index}: done, {words} words");
        Ok(Summary { chunk: index, words, first })
    }

    #[state(end)]
    async fn merge(_cx: &mut Desk, summaries: Vec<Summary>) -> Result<String> {
        let lines: Vec<String> = summaries
            .iter()
            .map(|s| format!("{}. \"{}…\" ({} words)", s.chunk, s.first, s.words))
            .collect();
        Ok(lines.join("\n"))
    }
}

#[tokio::main]
async fn main() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let text = "Flow turns annotated async functions into typed state machines. \
                Every transition is checked by the compiler. \
                Runs are checkpointed. \
                A run killed midway resumes where it stopped. \
                Branches run in parallel and join in order. \
                Done.";
    let path = std::env::temp_dir().join("flow-fanout-example.db");
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let engine = Engine::builder()
        .store(SqliteStore::open(&path)?)
        .machine::<digest::Machine>()
        .pool("api", 3)
        .build()?;
    let started = Instant::now();
    let run = engine.start_with::<digest::Machine>(text.to_owned(), Desk).await?;
    let id = run.id();
    let merged = run.output().await?;
    println!("merged in {:.1?}:\n{merged}", started.elapsed());
    // Each chunk's branch was a run of its own: its id derives from the document's run.
    for chunk in 0..6 {
        let branch = engine.status(flow::RunId::branch(id, 0, chunk)).await?;
        println!("  branch run {}: {} in `{}`", branch.run, branch.status, branch.state);
    }
    Ok(())
}
