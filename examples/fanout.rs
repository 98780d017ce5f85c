//! Map-reduce over a document: split it into chunks, summarise every chunk in parallel, three
//! at a time, and merge the summaries in the document's order.
//!
//! ```sh
//! cargo run --example fanout
//! ```
//!
//! `split` fans out to `summarise`, one branch per chunk, with `limit = 3`: at most three
//! summaries are under way at once, as if a rate-limited API served them. Chunks take longer
//! the longer they are, so they finish out of order; `merge` still receives the summaries in
//! the chunks' order, as one `Vec`.
//!
//! Fan-out runs in memory in this version of flow; on an engine, the same limit will come from
//! a resource pool (`#[state(uses(api = 1))]` with `.pool("api", 3)`) once branches are kept
//! durably.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use flow::prelude::*;
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

#[flow::machine]
pub mod digest {
    use super::*;

    #[state(start, fan_out(summarise, limit = 3), join = merge)]
    async fn split(_cx: &mut Desk, text: String) -> Result<Split> {
        let chunks: Vec<(usize, String)> = text
            .split(". ")
            .map(|sentence| sentence.trim_end_matches('.').to_owned())
            .enumerate()
            .collect();
        println!("{} chunks", chunks.len());
        fan_out!(summarise, chunks)
    }

    #[state(branch_end, retry(attempts = 3, backoff = "50ms"))]
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
async fn main() {
    let text = "Flow turns annotated async functions into typed state machines. \
                Every transition is checked by the compiler. \
                Runs are checkpointed. \
                A run killed midway resumes where it stopped. \
                Branches run in parallel and join in order. \
                Done.";
    let started = Instant::now();
    let done = digest::run(text.to_owned(), &mut Desk).await.expect("the digest runs");
    println!("merged in {:.1?}:\n{}", started.elapsed(), done.output);
}
