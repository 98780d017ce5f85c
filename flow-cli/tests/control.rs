//! `flow cancel`, `pause`, `resume`, `retry` and `delete` on a store; `runs events --follow` while an
//! engine moves the run on; `signal` and `diagram` through a flow server.

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{engine, failed, fixture, flow, json, ok, runtime, until};
use flow::prelude::*;
use flow::store::{SqliteStore, Status, Wait};
use flow::{Engine, RunId};

/// The status `runs show --json` gives for run `name` of `store`.
fn status_of(store: &common::Fixture, name: &str) -> String {
    let shown = json(&store.flow(&["--json", "runs", "show", &store.run(name).to_string()]));
    shown["status"].as_str().unwrap().to_owned()
}

#[test]
fn cancel_pause_resume_and_delete_steer_runs_in_the_store() {
    let store = fixture("control");
    let waiting = store.run("waiting").to_string();
    let timer = store.run("timer").to_string();

    assert_eq!(ok(&store.flow(&["cancel", &waiting])), format!("run {waiting} is cancelled\n"));
    assert_eq!(status_of(&store, "waiting"), "cancelled");
    let error = failed(&store.flow(&["cancel", &waiting]));
    assert!(error.contains("cancel run") && error.contains("cancelled"), "{error}");

    let paused = json(&store.flow(&["--json", "pause", &timer]));
    assert_eq!((&paused["action"], &paused["status"]), (&"pause".into(), &"paused".into()));
    let shown = json(&store.flow(&["--json", "runs", "show", &timer]));
    assert!(shown["deadline"].is_u64(), "a paused timer keeps its deadline: {shown}");
    let resumed = ok(&store.flow(&["resume", &timer]));
    assert!(resumed.contains("is resumed"), "{resumed}");
    assert_eq!(status_of(&store, "timer"), "running");
    let listing = json(&store.flow(&["--json", "runs", "list", "--wait", "timer"]));
    assert_eq!(listing["runs"][0]["run"], timer.as_str(), "it waits for its timer again");
    let error = failed(&store.flow(&["resume", &timer]));
    assert!(error.contains("not paused"), "{error}");

    // A stuck run is made runnable again, for an engine with a fixed binary.
    let stuck = store.run("stuck").to_string();
    assert!(ok(&store.flow(&["resume", &stuck])).contains("was stuck and is runnable again"));
    assert_eq!(status_of(&store, "stuck"), "running");

    let completed = store.run("completed").to_string();
    let deleted = ok(&store.flow(&["delete", &completed]));
    assert_eq!(deleted, format!("run {completed} is deleted, with its history\n"));
    let error = failed(&store.flow(&["runs", "show", &completed]));
    assert!(error.contains("there is no run"), "{error}");
    let error = failed(&store.flow(&["delete", &timer]));
    assert!(error.contains("not finished") && error.contains(&format!("flow cancel {timer}")));
    let error = failed(&store.flow(&["delete", &completed]));
    assert!(error.contains("there is no run"), "{error}");
    let error = failed(&store.flow(&["pause", "0000000000000000000000000000002a"]));
    assert!(error.contains("there is no run"), "{error}");
}

#[flow::machine]
pub mod flaky {
    use super::*;

    /// Fails its first attempt, then waits an hour before the next.
    #[state(start, end, retry(attempts = 3, backoff = "1h"))]
    async fn call(_cx: &mut (), n: u32) -> Result<u32> {
        if flow::current().map_or(1, |current| current.attempt) == 1 {
            return Err(Error::retryable("the service is down"));
        }
        Ok(n * 2)
    }
}

fn flaky_engine(path: &std::path::Path) -> Engine {
    let store = SqliteStore::open(path).unwrap();
    Engine::builder().store(store).machine::<flaky::Machine>().build().unwrap()
}

#[test]
fn retry_starts_the_next_attempt_of_a_run_backing_off_now() {
    let store = fixture("retry");
    let runtime = runtime();
    // A run that failed its first attempt and waits out an hour's backoff, engine gone.
    let run = runtime.block_on(async {
        let engine = flaky_engine(&store.path);
        let run = engine.start::<flaky::Machine>(21).await.unwrap().id();
        until(&engine, run, |status| status.wait == Some(Wait::Backoff)).await;
        engine.shutdown(Duration::from_secs(5)).await.unwrap();
        run
    });
    let id = run.to_string();
    let shown = json(&store.flow(&["--json", "runs", "show", &id]));
    assert_eq!(shown["wait"], "backoff", "{shown}");

    let retried = json(&store.flow(&["--json", "retry", &id]));
    assert_eq!((&retried["action"], &retried["status"]), (&"retry".into(), &"running".into()));
    let shown = json(&store.flow(&["--json", "runs", "show", &id]));
    assert_eq!(shown["wait"], serde_json::Value::Null, "runnable, not backing off: {shown}");
    let error = failed(&store.flow(&["retry", &id]));
    assert!(error.contains("cannot retry run") && error.contains("not backing off"), "{error}");

    // An engine with the machine takes it at once, not in an hour.
    runtime.block_on(async {
        let engine = flaky_engine(&store.path);
        engine.resume_pending().await.unwrap();
        let done = until(&engine, run, |status| status.status == Status::Completed).await;
        assert_eq!(done.output, Some(serde_json::json!(42)));
        engine.shutdown(Duration::from_secs(5)).await.unwrap();
    });
    let completed = store.run("completed").to_string();
    let error = failed(&store.flow(&["retry", &completed]));
    assert!(error.contains("not backing off") && error.contains("completed"), "{error}");
    let error = failed(&store.flow(&["retry", &RunId::from_u128(42).to_string()]));
    assert!(error.contains("there is no run"), "{error}");
}

#[test]
fn events_follow_polls_until_the_run_ends() {
    let store = fixture("follow");
    let run = store.run("waiting");
    let id = run.to_string();
    let args = ["--store", &store.store, "runs", "events", &id, "--follow", "--interval", "20"];
    let mut child =
        common::command(&args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(200));
    assert!(child.try_wait().unwrap().is_none(), "a waiting run is followed until it ends");

    runtime().block_on(async {
        let engine = engine(SqliteStore::open(&store.path).unwrap());
        engine.signal::<common::Order, bool>(run, true).await.unwrap();
        until(&engine, run, |status| status.status == Status::Completed).await;
        engine.shutdown(Duration::from_secs(5)).await.unwrap();
    });
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        assert!(start.elapsed() < Duration::from_secs(20), "the follow never ended");
        std::thread::sleep(Duration::from_millis(20));
    }
    let (mut stdout, mut stderr) = (String::new(), String::new());
    child.stdout.take().unwrap().read_to_string(&mut stdout).unwrap();
    child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
    assert!(child.wait().unwrap().success(), "{stderr}");
    assert!(stderr.contains("by polling the store every 20 ms"), "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("route #1") && lines[0].ends_with("→ approve"), "{stdout}");
    assert_eq!(lines[1], "-- running in state approve; waiting: signal, no deadline");
    assert!(lines.iter().any(|line| line.starts_with("approve #1") && line.ends_with("→ ship")));
    assert_eq!(lines.last().copied(), Some("-- completed in state ship; waiting: -"), "{stdout}");
}

#[test]
fn signal_and_diagram_go_through_a_flow_server() {
    let store = fixture("server");
    let run = store.run("waiting");
    let id = run.to_string();
    let runtime = runtime();
    let engine = runtime.block_on(async { engine(SqliteStore::open(&store.path).unwrap()) });
    let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let server = format!("http://{}", listener.local_addr().unwrap());
    let config = flow_server::ServerConfig::new().token("s3cret");
    runtime.spawn(flow_server::serve(listener, engine.clone(), config));

    let diagram = ok(&flow(&["--server", &server, "--token", "s3cret", "diagram", "order"]));
    assert!(diagram.starts_with("stateDiagram-v2\n"), "{diagram}");
    assert!(diagram.contains("approve --> ship"), "{diagram}");
    let document =
        json(&flow(&["--server", &server, "--token", "s3cret", "--json", "diagram", "order"]));
    assert_eq!(document["mermaid"].as_str(), Some(diagram.as_str()));
    let error = failed(&flow(&["--server", &server, "--token", "s3cret", "diagram", "refund"]));
    assert!(error.contains("refused machine `refund` (HTTP 404)"), "{error}");

    let error = failed(&flow(&["--server", &server, "signal", &id, "true"]));
    assert!(error.contains("HTTP 401") && error.contains("Authorization: Bearer"), "{error}");
    let error = failed(&flow(&["--server", &server, "--token", "s3cret", "signal", &id, "yes!"]));
    assert!(error.contains("not JSON"), "{error}");
    let error =
        failed(&flow(&["--server", &server, "--token", "s3cret", "signal", &id, "\"yes\""]));
    assert!(error.contains("HTTP 422"), "a string is no bool: {error}");
    let signalled = ok(&flow(&["--server", &server, "--token", "s3cret", "signal", &id, "true"]));
    assert_eq!(signalled, format!("run {id} has its signal and goes on\n"));
    runtime.block_on(until(&engine, run, |status| status.status == Status::Completed));

    let error = failed(&flow(&["signal", &id, "true"]));
    assert!(error.contains("needs a flow server") && error.contains("FLOW_SERVER"), "{error}");
    let error = failed(&flow(&["--server", "ftp://example", "diagram", "order"]));
    assert!(error.contains("not a server address"), "{error}");
    let error = failed(&flow(&["--server", "http://127.0.0.1:1", "diagram", "order"]));
    assert!(error.contains("cannot reach the flow server at http://127.0.0.1:1/machines/order"));
    runtime.block_on(engine.shutdown(Duration::from_secs(5))).unwrap();
}
