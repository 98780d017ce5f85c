//! ETL: extract → transform → load, with a per-attempt timeout on the load, a quarantine branch
//! for malformed data, and a permanent failure that is not retried.
//!
//! ```sh
//! cargo run --example etl
//! ```
//!
//! Three batches: a clean one, whose first load attempt stalls past its 50ms timeout and is
//! retried; one with a malformed record, routed to `quarantine` (a branch of the machine, not an
//! error); and one the sink refuses with a permanent error, so the run fails at once, unretried.

use std::time::Duration;

use flow::RunError;
use flow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub sku: String,
    pub qty: u32,
}

/// How the simulated warehouse database behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sink {
    /// Stalls on the first write (so that attempt times out), then accepts.
    SlowStart,
    /// Refuses the write: no retry can help.
    ReadOnly,
}

/// What every state shares: the source to read, the sink to write.
pub struct Pipeline {
    /// CSV lines, `sku,qty`.
    pub source: Vec<&'static str>,
    pub sink: Sink,
    pub writes: u32,
    pub loaded: Vec<Row>,
}

#[derive(Debug, PartialEq)]
pub enum Report {
    Loaded { table: String, rows: usize },
    Quarantined { line: usize, reason: String },
}

#[flow::machine]
pub mod etl {
    use super::*;

    #[state(start, to(transform))]
    async fn extract(cx: &mut Pipeline, table: String) -> Result<Extract> {
        let lines: Vec<String> = cx.source.iter().map(|line| line.to_string()).collect();
        println!("  extract: {} line(s) for {table}", lines.len());
        goto!(transform(table, lines))
    }

    #[state(to(load, quarantine))]
    async fn transform(_cx: &mut Pipeline, table: String, lines: Vec<String>) -> Result<Transform> {
        let mut rows = Vec::new();
        for (i, line) in lines.iter().enumerate() {
            let parsed = line.split_once(',').and_then(|(sku, qty)| {
                Some(Row { sku: sku.trim().to_uppercase(), qty: qty.trim().parse().ok()? })
            });
            match parsed {
                Some(row) => rows.push(row),
                // Retrying cannot fix bad data: set the whole batch aside for a human.
                None => {
                    println!("  transform: line {} is malformed: {line:?}", i + 1);
                    return goto!(quarantine(i + 1, format!("malformed record {line:?}")));
                }
            }
        }
        println!("  transform: {} row(s) normalized: {rows:?}", rows.len());
        goto!(load(table, rows))
    }

    #[state(end, retry(attempts = 3, backoff = "10ms..40ms"), timeout = "50ms")]
    async fn load(cx: &mut Pipeline, table: String, rows: Vec<Row>) -> Result<Report> {
        cx.writes += 1;
        println!("  load: write {} of {} row(s) to {table}", cx.writes, rows.len());
        match cx.sink {
            Sink::ReadOnly => {
                println!("  load: {table} is read-only");
                return Err(Error::permanent(format!("table {table} is read-only")));
            }
            Sink::SlowStart if cx.writes == 1 => {
                println!("  load: the database is slow to answer...");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Sink::SlowStart => {}
        }
        let count = rows.len();
        cx.loaded.extend(rows);
        println!("  load: committed");
        Ok(Report::Loaded { table, rows: count })
    }

    #[state(end)]
    async fn quarantine(_cx: &mut Pipeline, line: usize, reason: String) -> Result<Report> {
        println!("  quarantine: batch set aside ({reason})");
        Ok(Report::Quarantined { line, reason })
    }
}

#[tokio::main]
async fn main() {
    let batches = [
        ("orders", vec!["tea, 3", "cups,12"], Sink::SlowStart),
        ("returns", vec!["tea, 1", "saucers twelve"], Sink::SlowStart),
        ("archive", vec!["pot, 1"], Sink::ReadOnly),
    ];
    // A fixed seed makes the backoff jitter, and so the retry delays below, the same on every run.
    let runner = flow::Runner::new().seed(3);
    for (table, source, sink) in batches {
        println!("== batch {table} ==");
        let mut pipeline = Pipeline { source, sink, writes: 0, loaded: Vec::new() };
        let history = match runner.run::<etl::Machine>(table.to_string(), &mut pipeline).await {
            Ok(done) => {
                println!("outcome: {:?}", done.output);
                done.history
            }
            Err(error) => {
                println!("failed: {error}");
                if let RunError::StateFailed { attempts, .. } = &error {
                    println!("attempts: {}", attempts.len());
                }
                error.history().to_vec()
            }
        };
        println!("rows loaded: {}", pipeline.loaded.len());
        println!("history:");
        for entry in &history {
            println!("  {entry}");
        }
        println!();
    }
}
