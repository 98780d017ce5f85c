//! What the benches share: a store that watches the engine's calls, the process's I/O
//! counters, and the table they print.

// Each bench uses a part.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flow::RunId;
use flow::store::{
    Checkpoint, CheckpointStore, Claimed, Filter, Halt, Lease, RunSummary, SqliteStore, Status,
    StoreError,
};

/// A [`SqliteStore`] that counts the engine's calls, to tell what a phase asked of the store,
/// and while it records keeps a copy of every checkpoint saved: how a diagnostic gets the
/// checkpoints a run wrote, snapshots and history entries included (the store keeps only a
/// run's latest snapshot). It costs an atomic add per call, and an atomic load per save.
#[derive(Clone)]
pub struct Watched {
    store: SqliteStore,
    /// Writes, claims (and takeovers), heartbeats, reads.
    calls: Arc<[AtomicU64; 4]>,
    recording: Arc<AtomicBool>,
    saved: Arc<Mutex<Vec<Checkpoint>>>,
}

const WRITE: usize = 0;
const CLAIM: usize = 1;
const HEARTBEAT: usize = 2;
const READ: usize = 3;

impl Watched {
    pub fn new(store: SqliteStore) -> Watched {
        Watched { store, calls: Arc::default(), recording: Arc::default(), saved: Arc::default() }
    }

    fn count(&self, call: usize) {
        self.calls[call].fetch_add(1, Ordering::Relaxed);
    }

    /// The calls so far, as a phrase.
    pub fn calls(&self) -> String {
        let [writes, claims, heartbeats, reads] =
            self.calls.each_ref().map(|calls| grouped(calls.load(Ordering::Relaxed) as f64));
        format!("{writes} saves, {claims} claims, {heartbeats} heartbeats, {reads} reads")
    }

    /// Starts keeping copies of what is saved.
    pub fn record(&self) {
        self.saved.lock().unwrap().clear();
        self.recording.store(true, Ordering::SeqCst);
    }

    /// Stops recording, and returns the checkpoints of `run` saved meanwhile, in order.
    pub fn recorded(&self, run: RunId) -> Vec<Checkpoint> {
        self.recording.store(false, Ordering::SeqCst);
        let saved = std::mem::take(&mut *self.saved.lock().unwrap());
        saved.into_iter().filter(|checkpoint| checkpoint.run == run).collect()
    }
}

impl CheckpointStore for Watched {
    async fn save(&self, checkpoint: Checkpoint) -> Result<(), StoreError> {
        self.count(WRITE);
        if self.recording.load(Ordering::Relaxed) {
            self.saved.lock().unwrap().push(checkpoint.clone());
        }
        self.store.save(checkpoint).await
    }
    async fn claim(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.count(CLAIM);
        self.store.claim(owner, machines, now, limit).await
    }
    async fn take_over(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.count(CLAIM);
        self.store.take_over(owner, machines, now, limit).await
    }
    async fn next_due(&self, machines: &[&'static str]) -> Result<Option<u64>, StoreError> {
        self.count(READ);
        self.store.next_due(machines).await
    }
    async fn heartbeat(
        &self,
        owner: &str,
        now: u64,
        expires: u64,
    ) -> Result<Vec<(RunId, Halt)>, StoreError> {
        self.count(HEARTBEAT);
        self.store.heartbeat(owner, now, expires).await
    }
    async fn release(&self, run: RunId, lease: Lease) -> Result<(), StoreError> {
        self.count(WRITE);
        self.store.release(run, lease).await
    }
    async fn request_halt(&self, run: RunId, halt: Halt) -> Result<bool, StoreError> {
        self.count(WRITE);
        self.store.request_halt(run, halt).await
    }
    async fn latest(&self, run: RunId) -> Result<Option<Checkpoint>, StoreError> {
        self.count(READ);
        self.store.latest(run).await
    }
    async fn history(&self, run: RunId) -> Result<Vec<String>, StoreError> {
        self.count(READ);
        self.store.history(run).await
    }
    async fn summary(&self, run: RunId) -> Result<Option<RunSummary>, StoreError> {
        self.count(READ);
        self.store.summary(run).await
    }
    async fn list(&self, filter: Filter) -> Result<Vec<RunSummary>, StoreError> {
        self.count(READ);
        self.store.list(filter).await
    }
    async fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
        lease: Option<Lease>,
    ) -> Result<(), StoreError> {
        self.count(WRITE);
        self.store.mark(run, status, note, lease).await
    }
    async fn delete_finished(&self, filter: Filter, before: u64) -> Result<u64, StoreError> {
        self.count(WRITE);
        self.store.delete_finished(filter, before).await
    }
    async fn delete(&self, run: RunId) -> Result<bool, StoreError> {
        self.count(WRITE);
        self.store.delete(run).await
    }
    fn shared_between_processes(&self) -> bool {
        self.store.shared_between_processes()
    }
}

/// The process's I/O counters from `/proc/self/io` (Linux; zeros elsewhere).
#[derive(Clone, Copy, Default)]
pub struct Io {
    /// Bytes passed to read calls.
    rchar: u64,
    /// Bytes passed to write calls.
    wchar: u64,
    syscr: u64,
    syscw: u64,
    /// Bytes sent to the disk (pages dirtied, at page granularity).
    write_bytes: u64,
}

impl Io {
    /// The counters now.
    pub fn now() -> Io {
        let text = std::fs::read_to_string("/proc/self/io").unwrap_or_default();
        let field = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(": ")?.parse().ok())
                .unwrap_or(0)
        };
        Io {
            rchar: field("rchar"),
            wchar: field("wchar"),
            syscr: field("syscr"),
            syscw: field("syscw"),
            write_bytes: field("write_bytes"),
        }
    }

    /// The I/O since `earlier`, per `steps` items, as one line.
    pub fn per_step(self, earlier: Io, steps: u64) -> String {
        let per = |now: u64, then: u64| now.saturating_sub(then) as f64 / steps as f64;
        format!(
            "{:.1} KiB written in {:.1} write calls, {:.1} KiB read in {:.1} read calls",
            per(self.wchar, earlier.wchar) / 1024.0,
            per(self.syscw, earlier.syscw),
            per(self.rchar, earlier.rchar) / 1024.0,
            per(self.syscr, earlier.syscr),
        )
    }

    /// The bytes written since `earlier`: to the disk, and to write calls.
    pub fn since(self, earlier: Io) -> (u64, u64) {
        (self.write_bytes - earlier.write_bytes, self.wchar - earlier.wchar)
    }
}

/// A fresh directory `name` for the databases, on the project's disk.
pub fn bench_dir(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The CPU's model name, where `/proc/cpuinfo` gives it.
pub fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split(':').nth(1))
                .map(|name| name.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

/// `value` with thousands separators, rounded to a whole number.
pub fn grouped(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// Prints `rows` as a markdown table under `header`, each column as wide as its widest cell.
pub fn table(header: [&str; 5], rows: &[[String; 5]]) {
    let mut widths = header.map(|cell| cell.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; 5]| {
        let cells: Vec<_> = cells
            .iter()
            .zip(widths)
            .enumerate()
            .map(|(column, (cell, width))| match column {
                // Numbers are right-aligned, words left-aligned.
                1 | 2 | 4 => format!("{cell:>width$}"),
                _ => format!("{cell:<width$}"),
            })
            .collect();
        println!("| {} |", cells.join(" | "));
    };
    line(header);
    let rule: Vec<_> = widths.iter().map(|width| "-".repeat(*width)).collect();
    println!("|-{}-|", rule.join("-|-"));
    for row in rows {
        line(row.each_ref().map(String::as_str));
    }
}
