//! A run's event stream over real HTTP on 127.0.0.1 never has a silent gap: a client that
//! drops mid-run and comes back with the last `id:` it saw (`Last-Event-ID`, as browsers do,
//! or `?after=`) gets every checkpoint after it, each once, then the live events; one whose
//! position names no checkpoint is told so (`reset`), as is a client of every run's stream,
//! which replays nothing.

mod common;

use std::time::Duration;

use common::{Sse, Stream, seqs};
use flow::prelude::*;
use flow::store::MemoryStore;
use flow::{Engine, RunId};
use flow_server::ServerConfig;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// Steps from 0 to `last`, a checkpoint each, slowly enough to drop a connection midway.
#[flow::machine]
pub mod stepper {
    use super::*;

    #[state(start, to(step, done))]
    async fn step(_cx: &mut (), n: u32, last: u32) -> Result<Step> {
        tokio::time::sleep(Duration::from_millis(25)).await;
        if n < last { goto!(step(n + 1, last)) } else { goto!(done(n)) }
    }

    #[state(end)]
    async fn done(_cx: &mut (), n: u32) -> Result<u32> {
        Ok(n)
    }
}

/// Serves an engine on a free port of 127.0.0.1; returns the base address.
async fn serve() -> String {
    let engine =
        Engine::builder().store(MemoryStore::new()).machine::<stepper::Machine>().build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let config = ServerConfig::new().follow_interval(Duration::from_millis(50));
    tokio::spawn(flow_server::serve(listener, engine, config));
    format!("http://{address}")
}

async fn start(client: &Client, base: &str, last: u32) -> RunId {
    let response = client
        .post(format!("{base}/machines/stepper/runs"))
        .json(&json!({ "input": [0, last] }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["run"].as_str().unwrap().parse().unwrap()
}

async fn status(client: &Client, base: &str, run: RunId) -> Value {
    client.get(format!("{base}/runs/{run}")).send().await.unwrap().json().await.unwrap()
}

/// Asserts `seqs` are `from`, `from + 1`, … without a gap or a repeat.
fn contiguous(seqs: &[u64], from: u64) {
    let expected: Vec<u64> = (from..from + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "checkpoints repeated or missed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reconnects_gets_every_checkpoint_after_its_last_once() {
    let base = serve().await;
    let client = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let run = start(&client, &base, 40).await;
    let url = format!("{base}/runs/{run}/events");

    // A new client: where the run stands first, then checkpoint after checkpoint.
    let mut first = Stream::open(client.get(&url)).await;
    let mut seen: Vec<Sse> = Vec::new();
    while seqs(&seen).len() < 5 {
        seen.push(first.next().await.expect("the stream ended midway"));
    }
    assert_eq!(seen[0].event, "checkpoint", "{seen:?}");
    let before = seqs(&seen);
    contiguous(&before, before[0]);
    // The connection drops; the run goes on meanwhile.
    drop(first);
    let last = *before.last().unwrap();
    let moved = |status: &Value| status["seq"].as_u64().unwrap() > last + 5;
    while !moved(&status(&client, &base, run).await) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Back, as a browser comes back: every checkpoint after the last one seen, once.
    let again = Stream::open(client.get(&url).header("Last-Event-ID", last.to_string())).await;
    let rest = again.rest().await;
    let end = rest.last().unwrap();
    assert_eq!(end.event, "end", "{rest:?}");
    assert_eq!(end.data["status"], "completed");
    let after = seqs(&rest);
    contiguous(&after, last + 1);
    let finished = status(&client, &base, run).await;
    assert_eq!(after.last().copied(), finished["seq"].as_u64(), "{rest:?}");
    // The missed ones came from the store, with the history each added.
    let caught_up: Vec<&Sse> = rest.iter().filter(|m| m.event == "checkpoint").collect();
    assert!(caught_up.len() >= 5, "{rest:?}");
    assert!(caught_up.iter().all(|m| m.data["run"] == run.to_string()));
    assert!(caught_up.iter().any(|m| m.data["entries"][0]["state"] == "step"), "{caught_up:?}");

    // `?after=` is the same, over a finished run: all after it, then its end.
    let replayed = Stream::open(client.get(format!("{url}?after={last}"))).await.rest().await;
    assert_eq!(seqs(&replayed), after);
    assert_eq!(replayed.last().unwrap().event, "end");
    let entries = |messages: &[Sse]| -> Vec<Value> {
        messages
            .iter()
            .filter(|m| m.event == "checkpoint")
            .flat_map(|m| m.data["entries"].as_array().unwrap().clone())
            .collect()
    };
    let history = finished["history"].as_array().unwrap();
    let all = Stream::open(client.get(format!("{url}?after=0"))).await.rest().await;
    assert_eq!(entries(&all), history[history.len() - entries(&all).len()..]);
    contiguous(&seqs(&all), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_position_that_is_no_checkpoint_is_told_not_skipped() {
    let base = serve().await;
    let client = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let run = start(&client, &base, 3).await;
    let url = format!("{base}/runs/{run}/events");
    let done = Stream::open(client.get(&url)).await.rest().await;
    assert_eq!(done.last().unwrap().event, "end");
    let seq = status(&client, &base, run).await["seq"].as_u64().unwrap();

    for bogus in ["yesterday", "99999"] {
        let told = Stream::open(client.get(&url).header("Last-Event-ID", bogus)).await.rest().await;
        assert_eq!(told[0].event, "reset", "{bogus}: {told:?}");
        assert_eq!(told[0].data["seq"], seq);
        assert_eq!(told[0].seq(), Some(seq));
        assert_eq!(told.last().unwrap().event, "end");
    }
    let bad = client.get(format!("{url}?after=yesterday")).send().await.unwrap();
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["code"], "bad_query");
    assert_eq!(body["detail"]["parameter"], "after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_runs_stream_tells_a_returning_client_it_replays_nothing() {
    let base = serve().await;
    let client = Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
    let url = format!("{base}/events");
    // A new client gets an id alone first, for its browser to come back with.
    let mut fresh = Stream::open(client.get(&url)).await;
    let mark = fresh.next().await.unwrap();
    assert_eq!(mark.data, Value::Null, "{mark:?}");
    let id = mark.id.expect("no id to come back with");
    start(&client, &base, 0).await;
    assert_eq!(fresh.next().await.unwrap().event, "message");

    for request in
        [client.get(&url).header("Last-Event-ID", id), client.get(format!("{url}?after=7"))]
    {
        let mut back = Stream::open(request).await;
        let first = back.next().await.unwrap();
        assert_eq!(first.event, "reset", "{first:?}");
        assert!(first.data["reason"].as_str().unwrap().contains("GET /runs"));
    }
}
