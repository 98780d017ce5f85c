//! ETL: extract → transform → load, with a per-attempt timeout on the load, a quarantine branch
//! for malformed data, and a permanent failure that is not retried.
//!
//! ```sh
//! cargo run --example etl
//! ```
//!
//! Three batches: a clean one, whose first load attempt stalls past its 50ms timeout and is
//! retried; one with a malformed record, routed to `quarantine`; and one the sink refuses
//! outright, a permanent error, so the run fails at once with the reason.

use std::time::Duration;

use flow::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub sku: String,
    pub qty: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sink {
    /// Stalls on the first write (the attempt times out), then accepts.
    SlowStart,
    /// Refuses the table: no retry can help.
    ReadOnly,
}

pub struct Pipeline {
    pub source: Vec<&'static str>,
    pub sink: Sink,
    pub writes: u32,
    pub loaded: Vec<Row>,
}

#[derive(Debug, PartialEq)]
pub enum Report {
    Loaded { rows: usize },
    Quarantined { line: usize, reason: String },
}

#[flow::machine]
pub mod etl {
    use super::*;

    #[state(start, to(transform))]
    async fn extract(cx: &mut Pipeline, table: String) -> Result<Extract> {
        let lines: Vec<String> = cx.source.iter().map(|line| line.to_string()).collect();
        println!("  extract: {} line(s) from {table}", lines.len());
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
                None => {
                    println!("  transform: line {} is malformed: {line:?}", i + 1);
                    return goto!(quarantine(i + 1, format!("malformed record {line:?}")));
                }
            }
        }
        println!("  transform: {} row(s) normalized", rows.len());
        goto!(load(table, rows))
    }

    #[state(end, retry(attempts = 3, backoff = "10ms..40ms"), timeout = "50ms")]
    async fn load(cx: &mut Pipeline, table: String, rows: Vec<Row>) -> Result<Report> {
        cx.writes += 1;
        println!("  load: write {} of {} row(s) to {table}", cx.writes, rows.len());
        match cx.sink {
            Sink::ReadOnly => {
                return Err(Error::permanent(format!("table {table} is read-only")));
            }
            Sink::SlowStart if cx.writes == 1 => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Sink::SlowStart => {}
        }
        let count = rows.len();
        cx.loaded.extend(rows);
        Ok(Report::Loaded { rows: count })
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
    let runner = flow::Runner::new().seed(3);
    for (table, source, sink) in batches {
        println!("batch {table}:");
        let mut pipeline = Pipeline { source, sink, writes: 0, loaded: Vec::new() };
        match runner.run::<etl::Machine>(table.to_string(), &mut pipeline).await {
            Ok(done) => {
                println!("  => {:?}", done.output);
                for entry in &done.history {
                    println!("    {entry}");
                }
            }
            Err(error) => {
                println!("  => failed: {error}");
                println!("  ({} write attempt(s), nothing loaded)", pipeline.writes);
            }
        }
        println!();
    }
}
