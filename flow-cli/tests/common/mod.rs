//! A SQLite store with runs in every status, made by a real engine running a small machine,
//! and the built `flow` binary to run against it.

// Each test file uses a part of it.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use flow::prelude::*;
use flow::store::{CheckpointStore, SqliteStore, Status, Wait};
use flow::{Engine, RunId, RunStatus};
use serde::{Deserialize, Serialize};

/// The context: a shop's name, to find in `runs show`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Shop {
    pub name: String,
}

#[flow::machine]
pub mod order {
    use super::*;

    #[state(start, to(approve, nap, ship, boom))]
    async fn route(_cx: &mut Shop, kind: String) -> Result<Route> {
        match kind.as_str() {
            "approve" => goto!(approve(kind)),
            "nap" => goto!(nap(kind)),
            "boom" => goto!(boom(kind)),
            _ => goto!(ship(kind)),
        }
    }

    /// Waits for a person's yes or no, without a deadline.
    #[state(to(ship, boom))]
    async fn approve(_cx: &mut Shop, kind: String, #[signal] approved: bool) -> Result<Approve> {
        if approved { goto!(ship(kind)) } else { goto!(boom(kind)) }
    }

    /// Waits an hour first.
    #[state(to(ship), wait = "1h")]
    async fn nap(_cx: &mut Shop, kind: String) -> Result<Nap> {
        goto!(ship(kind))
    }

    #[state(end)]
    async fn ship(cx: &mut Shop, kind: String) -> Result<String> {
        Ok(format!("{kind} shipped by {}", cx.name))
    }

    #[state(end)]
    async fn boom(_cx: &mut Shop, kind: String) -> Result<String> {
        Err(flow::Error::permanent(format!("the {kind} order exploded")))
    }
}

pub type Order = order::Machine;

/// The runs of [`fixture`], by the status each is left in.
pub struct Fixture {
    /// The SQLite file.
    pub path: PathBuf,
    /// `--store` for it.
    pub store: String,
    /// Each run, by name: completed, failed, cancelled, paused, stuck, waiting (for a
    /// signal), timer (waiting on one).
    pub runs: BTreeMap<&'static str, RunId>,
}

impl Fixture {
    pub fn run(&self, name: &str) -> RunId {
        self.runs[name]
    }

    /// `flow --store sqlite:PATH ARGS...`.
    pub fn flow(&self, args: &[&str]) -> Output {
        let mut all = vec!["--store", &self.store];
        all.extend_from_slice(args);
        flow(&all)
    }
}

/// Runs the built `flow` with `args`, none of its environment variables set.
pub fn flow(args: &[&str]) -> Output {
    command(args).output().expect("the flow binary runs")
}

/// The `flow` command with `args`, none of its environment variables set.
pub fn command(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_flow"));
    command.args(args);
    for name in ["FLOW_STORE", "FLOW_SERVER", "FLOW_TOKEN"] {
        command.env_remove(name);
    }
    command
}

/// Standard output, checking that the command succeeded.
#[track_caller]
pub fn ok(output: &Output) -> String {
    let (stdout, stderr) = texts(output);
    assert!(
        output.status.success(),
        "failed: {}\nstdout: {stdout}\nstderr: {stderr}",
        output.status
    );
    stdout
}

/// Standard error, checking that the command failed with status 1 and printed nothing else.
#[track_caller]
pub fn failed(output: &Output) -> String {
    let (stdout, stderr) = texts(output);
    assert_eq!(output.status.code(), Some(1), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert!(stderr.starts_with("error: "), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

pub fn texts(output: &Output) -> (String, String) {
    let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
    (text(&output.stdout), text(&output.stderr))
}

/// Standard output as JSON, checking that the command succeeded.
#[track_caller]
pub fn json(output: &Output) -> serde_json::Value {
    let stdout = ok(output);
    serde_json::from_str(&stdout).unwrap_or_else(|error| panic!("not JSON ({error}): {stdout}"))
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// An engine running [`Order`] on `store`.
pub fn engine(store: impl CheckpointStore) -> Engine {
    Engine::builder().store(store).machine::<Order>().build().unwrap()
}

/// Polls `run`'s status until `done` says so; fails after 20 s.
pub async fn until(engine: &Engine, run: RunId, done: impl Fn(&RunStatus) -> bool) -> RunStatus {
    let start = Instant::now();
    loop {
        let status = engine.status(run).await.unwrap();
        if done(&status) {
            return status;
        }
        assert!(start.elapsed() < Duration::from_secs(20), "run {run} never got there: {status:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Cancels or pauses `run` (`to`), asking again if the request is lost: a run that has just
/// begun to wait in the store may still be on its way out of the engine, which takes the
/// request and then lets the run go without honouring it.
async fn halt(engine: &Engine, run: RunId, to: Status) {
    for _ in 0..50 {
        match to {
            Status::Cancelled => engine.cancel(run).await.unwrap(),
            _ => engine.pause(run).await.unwrap(),
        }
        for _ in 0..20 {
            if engine.status(run).await.unwrap().status == to {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    panic!("run {run} never became {to}");
}

/// A fresh SQLite store for test `name`, with one run in each status (each started under
/// the business key `o-NAME`), made by an engine that has shut down since.
pub fn fixture(name: &str) -> Fixture {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("cli-{name}.db"));
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let runs = runtime().block_on(async {
        let store = SqliteStore::open(&path).unwrap();
        let engine = engine(store.clone());
        let shop = Shop { name: "the corner shop".into() };
        let mut runs = BTreeMap::new();
        for (name, kind) in [
            ("completed", "ship"),
            ("failed", "boom"),
            ("cancelled", "approve"),
            ("paused", "approve"),
            ("stuck", "approve"),
            ("waiting", "approve"),
            ("timer", "nap"),
        ] {
            let key = format!("o-{name}");
            let handle = engine.start_keyed::<Order>(key, kind.into(), shop.clone()).await.unwrap();
            let run = handle.id();
            match name {
                "completed" => assert!(handle.output().await.is_ok()),
                "failed" => assert!(handle.output().await.is_err()),
                "timer" => {
                    until(&engine, run, |s| s.wait == Some(Wait::Timer)).await;
                }
                _ => {
                    until(&engine, run, |s| s.wait == Some(Wait::Signal)).await;
                }
            }
            match name {
                "cancelled" => halt(&engine, run, Status::Cancelled).await,
                "paused" => halt(&engine, run, Status::Paused).await,
                "stuck" => {
                    let note = Some("no version 9 of machine order is known".to_owned());
                    store.mark(run, Status::Stuck, note, None).await.unwrap();
                }
                _ => {}
            }
            runs.insert(name, run);
        }
        engine.shutdown(Duration::from_secs(5)).await.unwrap();
        runs
    });
    Fixture { store: format!("sqlite:{}", path.display()), path, runs }
}
