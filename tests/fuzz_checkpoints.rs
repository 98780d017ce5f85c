//! A fuzz loop over stored checkpoints: real checkpoints of a machine with rich payloads are
//! mutated (their JSON values replaced, removed, nested, retyped; their text cut or flipped;
//! their state, status and wait changed) and stored as runs of their own, then read back
//! and run through the public API: `status`, `output`, `list`, `resume_pending`, `signal`,
//! `cancel`. Whatever the store holds, the engine must answer with a value or an error and
//! mark a run it cannot read stuck: never panic (in the test, or inside the engine, which
//! would mark the run stuck as "a bug in flow"), never hang.
//!
//! It runs for `FLOW_FUZZ_SECONDS` (default 20) from seed 2026, or `FLOW_FUZZ_SEED=<n>`
//! (printed at the start, to replay a run). The inputs that found crashes before are replayed
//! first, from `tests/fuzz/`; a new crash is written to the test's temporary directory, ready
//! to be added there. `FLOW_FUZZ_TEMPLATES=1` prints the unmutated checkpoints in that form. A harness-less test: it has its own main.

use std::borrow::Cow;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use flow::prelude::*;
use flow::store::{Checkpoint, CheckpointStore, Filter, MemoryStore, Status, Wait};
use flow::{Engine, RunId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Basket {
    pub items: Vec<Item>,
    pub note: Option<String>,
    pub total: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub sku: String,
    pub qty: u32,
    pub price: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Choice {
    Keep,
    Drop(String),
    Split { at: u32 },
}

#[flow::machine(name = "fuzzed", max_steps = 20)]
pub mod fuzzed {
    use super::*;

    #[state(start, to(pick, approve, done), retry(attempts = 2, backoff = "1ms"), compensate = unfill)]
    async fn fill(cx: &mut Basket, items: Vec<Item>, seed: u64) -> Result<Fill> {
        cx.items.extend(items);
        match seed % 3 {
            0 => goto!(pick(Choice::Split { at: 1 }, -3)),
            1 => goto!(approve(seed)),
            _ => goto!(done(seed)),
        }
    }

    #[state(to(done, fill), max_visits = 3, timeout = "1s")]
    async fn pick(cx: &mut Basket, choice: Choice, n: i64) -> Result<Pick> {
        if let Choice::Drop(why) = choice {
            cx.note = Some(why);
        }
        if n > 0 { goto!(fill(Vec::new(), n as u64)) } else { goto!(done(cx.items.len() as u64)) }
    }

    #[state(to(done), signal(timeout = "1h", default = done))]
    async fn approve(cx: &mut Basket, id: u64, #[signal] verdict: Choice) -> Result<Approve> {
        if verdict == Choice::Keep {
            cx.total = cx.total.saturating_add(id);
        }
        goto!(done(cx.total))
    }

    #[state(end, wait = "1ms")]
    async fn done(cx: &mut Basket, total: u64) -> Result<u64> {
        if total == 13 {
            return Err(Error::permanent("unlucky"));
        }
        Ok(total.saturating_add(cx.items.len() as u64))
    }

    async fn unfill(cx: &mut Basket, _items: Vec<Item>, _seed: u64) -> Result<()> {
        cx.items.clear();
        Ok(())
    }
}

type Fuzzed = fuzzed::Machine;

fn engine(store: MemoryStore) -> Engine {
    Engine::builder().store(store).machine::<Fuzzed>().build().unwrap()
}

fn items(n: usize) -> Vec<Item> {
    (0..n).map(|k| Item { sku: format!("sku-{k}"), qty: k as u32, price: 1.5 * k as f64 }).collect()
}

/// Real checkpoints to mutate: runs at several stages (waiting for a signal, completed,
/// failed and rolled back, waiting on a timer), as the store holds them.
async fn templates() -> Vec<Checkpoint> {
    let store = MemoryStore::new();
    let engine = engine(store.clone());
    let mut runs = Vec::new();
    for (seed, n) in [(0, 2), (1, 1), (2, 3), (13, 0), (4, 1), (11, 2)] {
        let run = engine.start_with::<Fuzzed>((items(n), seed), Basket::default()).await.unwrap();
        runs.push(run.id());
        let _ = tokio::time::timeout(Duration::from_millis(200), run.output()).await;
    }
    let mut templates = Vec::new();
    for run in runs {
        if let Some(latest) = store.latest(run).await.unwrap() {
            templates.push(latest);
        }
    }
    engine.shutdown(Duration::from_secs(1)).await.unwrap();
    templates
}

/// One random JSON value, some of them nested or large.
fn random_value(rng: &mut fastrand::Rng, depth: u32) -> Value {
    match rng.u8(..12) {
        0 => Value::Null,
        1 => json!(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => json!(u64::MAX),
        4 => json!(rng.f64() * 1e300),
        5 => json!(""),
        6 => json!("x".repeat(rng.usize(..100))),
        7 => json!(["Keep", "Drop", "Split", "fill", "pick", "approve", "done"][rng.usize(..7)]),
        8 if depth < 4 => {
            Value::Array((0..rng.usize(..4)).map(|_| random_value(rng, depth + 1)).collect())
        }
        9 if depth < 4 => {
            let keys = [
                "state",
                "context",
                "attempt",
                "visit",
                "steps",
                "visits",
                "output",
                "error",
                "undo",
                "rollback",
                "failures",
                "takeovers",
                "fill",
                "items",
                "sku",
                "Split",
                "at",
            ];
            Value::Object(
                (0..rng.usize(..4))
                    .map(|_| {
                        (keys[rng.usize(..keys.len())].to_owned(), random_value(rng, depth + 1))
                    })
                    .collect(),
            )
        }
        10 => {
            // Deep nesting, past serde_json's recursion limit now and then.
            let mut value = json!(1);
            for _ in 0..rng.usize(..200) {
                value = json!([value]);
            }
            value
        }
        _ => json!(rng.u32(..)),
    }
}

/// Every place in `value`, as a path of keys and indices.
fn places(value: &Value, path: &mut Vec<Value>, out: &mut Vec<Vec<Value>>) {
    out.push(path.clone());
    match value {
        Value::Array(items) => {
            for (k, item) in items.iter().enumerate() {
                path.push(json!(k));
                places(item, path, out);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map {
                path.push(json!(key));
                places(item, path, out);
                path.pop();
            }
        }
        _ => {}
    }
}

fn at<'a>(value: &'a mut Value, path: &[Value]) -> Option<&'a mut Value> {
    path.iter().try_fold(value, |value, step| match step {
        Value::String(key) => value.get_mut(key.as_str()),
        Value::Number(k) => value.get_mut(k.as_u64()? as usize),
        _ => None,
    })
}

/// The snapshot `text` mutated once or a few times.
fn mutate_snapshot(text: &str, rng: &mut fastrand::Rng) -> String {
    if rng.u8(..10) == 0 {
        // Raw text: cut short, a byte flipped, or bytes spliced in.
        let mut bytes = text.as_bytes().to_vec();
        match rng.u8(..3) {
            0 => bytes.truncate(rng.usize(..=bytes.len())),
            1 if !bytes.is_empty() => {
                let k = rng.usize(..bytes.len());
                bytes[k] ^= 1 << rng.u8(..7);
            }
            _ => {
                let k = rng.usize(..=bytes.len());
                bytes.splice(k..k, *b"{\"\\u0000\":[}");
            }
        }
        return String::from_utf8_lossy(&bytes).into_owned();
    }
    let Ok(mut value) = serde_json::from_str::<Value>(text) else { return text.to_owned() };
    for _ in 0..1 + rng.usize(..3) {
        let mut all = Vec::new();
        places(&value, &mut Vec::new(), &mut all);
        let path = all[rng.usize(..all.len())].clone();
        match rng.u8(..4) {
            // Remove the place from its parent.
            0 if !path.is_empty() => {
                let (last, parent) = path.split_last().unwrap_or((&Value::Null, &[]));
                if let Some(parent) = at(&mut value, parent) {
                    match (parent, last) {
                        (Value::Object(map), Value::String(key)) => {
                            map.remove(key);
                        }
                        (Value::Array(items), Value::Number(k)) => {
                            let k = k.as_u64().unwrap_or(0) as usize;
                            if k < items.len() {
                                items.remove(k);
                            }
                        }
                        _ => {}
                    }
                }
            }
            // Wrap it in an array or object.
            1 => {
                if let Some(place) = at(&mut value, &path) {
                    *place = if rng.bool() {
                        json!([place.take()])
                    } else {
                        json!({"Split": place.take()})
                    };
                }
            }
            _ => {
                let new = random_value(rng, 0);
                if let Some(place) = at(&mut value, &path) {
                    *place = new;
                }
            }
        }
    }
    value.to_string()
}

/// A mutated copy of `template`, as a new run.
fn mutant(template: &Checkpoint, rng: &mut fastrand::Rng) -> Checkpoint {
    let mut checkpoint = Checkpoint {
        run: RunId::random(),
        seq: 0,
        lease: None,
        entries: "[]".into(),
        snapshot: mutate_snapshot(&template.snapshot, rng),
        ..template.clone()
    };
    match rng.u8(..12) {
        0 => {
            checkpoint.state = Cow::Owned(
                ["fill", "pick", "approve", "done", "nowhere", ""][rng.usize(..6)].into(),
            )
        }
        1 => {
            checkpoint.status =
                [Status::Running, Status::Completed, Status::Failed, Status::Paused][rng.usize(..4)]
        }
        2 => {
            checkpoint.wait =
                [None, Some(Wait::Signal), Some(Wait::Timer), Some(Wait::Backoff)][rng.usize(..4)]
        }
        3 => checkpoint.version = rng.u32(..3),
        4 => checkpoint.fingerprint = Cow::Owned("0000".into()),
        _ => {}
    }
    if checkpoint.status == Status::Running && rng.bool() {
        // Due now, so the engine runs it.
        checkpoint.wait = None;
        checkpoint.wake_at = None;
    }
    checkpoint
}

/// Puts `checkpoint` in a store and drives it through the public API. `Err` says what went
/// wrong: a panic inside the engine, or a call that hung.
async fn exercise(
    engine: &Engine,
    store: &MemoryStore,
    checkpoint: Checkpoint,
) -> Result<(), String> {
    let run = checkpoint.run;
    if store.save(checkpoint).await.is_err() {
        return Ok(());
    }
    let within = |what: &'static str| move |_| format!("{what} hung for run {run}");
    let limit = Duration::from_secs(5);
    tokio::time::timeout(limit, engine.status(run)).await.map_err(within("status"))?.ok();
    if let Ok(handle) = engine.handle::<Fuzzed>(run).await {
        // A run may wait on a signal for an hour: its output is not awaited to the end.
        let _ = tokio::time::timeout(Duration::from_millis(30), handle.output()).await;
    }
    let _ = tokio::time::timeout(limit, engine.signal::<Fuzzed, Choice>(run, Choice::Keep))
        .await
        .map_err(within("signal"))?;
    tokio::time::timeout(limit, engine.resume_pending())
        .await
        .map_err(within("resume_pending"))?
        .ok();
    let _ = tokio::time::timeout(limit, engine.cancel(run)).await.map_err(within("cancel"))?;
    tokio::time::timeout(limit, engine.list(Filter::new())).await.map_err(within("list"))?.ok();
    if let Ok(status) = engine.status(run).await
        && let Some(note) = &status.note
        && note.contains("a bug in flow")
    {
        return Err(format!("the engine panicked on run {run}: {note}"));
    }
    Ok(())
}

/// A case kept in `tests/fuzz/`: a checkpoint's fields that matter.
#[derive(Debug, Serialize, Deserialize)]
struct Case {
    state: String,
    status: Status,
    wait: Option<Wait>,
    wake_at: Option<u64>,
    version: u32,
    snapshot: String,
}

impl Case {
    fn of(checkpoint: &Checkpoint) -> Case {
        Case {
            state: checkpoint.state.to_string(),
            status: checkpoint.status,
            wait: checkpoint.wait,
            wake_at: checkpoint.wake_at,
            version: checkpoint.version,
            snapshot: checkpoint.snapshot.clone(),
        }
    }

    fn checkpoint(self, template: &Checkpoint) -> Checkpoint {
        Checkpoint {
            run: RunId::random(),
            seq: 0,
            lease: None,
            entries: "[]".into(),
            state: Cow::Owned(self.state),
            status: self.status,
            wait: self.wait,
            wake_at: self.wake_at,
            version: self.version,
            snapshot: self.snapshot,
            ..template.clone()
        }
    }
}

fn kept() -> Vec<(PathBuf, Case)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz");
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut cases: Vec<_> = entries
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let case =
                serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            (path, case)
        })
        .collect();
    cases.sort_by(|a, b| a.0.cmp(&b.0));
    cases
}

async fn fuzz(seed: u64, seconds: u64) -> Result<String, String> {
    let templates = templates().await;
    if std::env::var_os("FLOW_FUZZ_TEMPLATES").is_some() {
        // The starting points, as kept cases, to write new ones from.
        for template in &templates {
            println!("{}", serde_json::to_string(&Case::of(template)).unwrap_or_default());
        }
    }
    if templates.len() < 4 {
        return Err(format!("only {} templates were made", templates.len()));
    }
    let mut store = MemoryStore::new();
    let mut engine = engine(store.clone());
    let cases = kept();
    let kept = cases.len();
    for (path, case) in cases {
        exercise(&engine, &store, case.checkpoint(&templates[0]))
            .await
            .map_err(|error| format!("kept case {}: {error}", path.display()))?;
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let began = Instant::now();
    let mut tried = 0u64;
    while began.elapsed() < Duration::from_secs(seconds) {
        // A fresh store now and then: `resume_pending` and `list` read every run.
        if tried % 100 == 99 {
            engine.shutdown(Duration::from_secs(1)).await.map_err(|e| e.to_string())?;
            store = MemoryStore::new();
            engine = self::engine(store.clone());
        }
        let template = &templates[rng.usize(..templates.len())];
        let checkpoint = mutant(template, &mut rng);
        let case = Case::of(&checkpoint);
        if let Err(error) = exercise(&engine, &store, checkpoint).await {
            let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join(format!("fuzz-crash-{seed}-{tried}.json"));
            let _ = std::fs::write(&path, serde_json::to_string_pretty(&case).unwrap_or_default());
            return Err(format!(
                "{error}\nthe input is in {}; add it to tests/fuzz/",
                path.display()
            ));
        }
        tried += 1;
    }
    Ok(format!("{kept} kept cases, {tried} mutated checkpoints in {seconds} s"))
}

fn main() -> ExitCode {
    if std::env::args().any(|arg| arg == "--list") {
        println!("fuzz_checkpoints: test");
        return ExitCode::SUCCESS;
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if args.iter().any(|filter| !"fuzz_checkpoints".contains(filter.as_str())) {
        return ExitCode::SUCCESS;
    }
    // A fixed seed by default, so that CI is repeatable; another explores further.
    let seed = std::env::var("FLOW_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(2026);
    let seconds =
        std::env::var("FLOW_FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    println!("fuzzing stored checkpoints, seed {seed} (replay: FLOW_FUZZ_SEED={seed})");
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    match runtime.block_on(fuzz(seed, seconds)) {
        Ok(summary) => {
            println!("test fuzz_checkpoints ... ok ({summary})");
            ExitCode::SUCCESS
        }
        Err(error) => {
            println!("test fuzz_checkpoints ... FAILED\n{error}\n(seed {seed})");
            ExitCode::FAILURE
        }
    }
}
