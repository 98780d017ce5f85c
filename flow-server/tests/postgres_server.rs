//! The server on a PostgreSQL store that another worker shares, over real HTTP on 127.0.0.1:
//! a run the other worker executes moves on the server's stream, checkpoint by checkpoint,
//! to its end; and the routes that list, read, signal, cancel and delete runs, on PostgreSQL.
//!
//! Needs `--features postgres` and DATABASE_URL; each test works in a schema of its own.

#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use common::{Stream, seqs};
use flow::prelude::*;
use flow::store::PostgresStore;
use flow::{Engine, RunId};
use flow_server::ServerConfig;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

/// Steps from `n` to `last`, a checkpoint each.
#[flow::machine(name = "pg_server_relay")]
pub mod relay {
    use super::*;

    #[state(start, to(step, done))]
    async fn step(_cx: &mut (), n: u32, last: u32) -> Result<Step> {
        tokio::time::sleep(Duration::from_millis(60)).await;
        if n < last { goto!(step(n + 1, last)) } else { goto!(done(n)) }
    }

    #[state(end)]
    async fn done(_cx: &mut (), n: u32) -> Result<u32> {
        Ok(n)
    }
}

/// Waits for a reviewer's name.
#[flow::machine(name = "pg_server_desk")]
pub mod desk {
    use super::*;

    #[state(start, to(publish))]
    async fn review(_cx: &mut (), doc: String, #[signal] by: String) -> Result<Review> {
        goto!(publish(format!("{doc}, approved by {by}")))
    }

    #[state(end)]
    async fn publish(_cx: &mut (), doc: String) -> Result<String> {
        Ok(doc)
    }
}

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "the PostgreSQL tests need DATABASE_URL, e.g. \
             DATABASE_URL=postgres://postgres@127.0.0.1:5432/test; \
             or leave them out by testing without `--features postgres`"
        )
    })
}

/// A fresh schema for test `name`, whatever an earlier run left in it dropped.
async fn schema(name: &str) -> String {
    let schema = format!("flow_server_{name}");
    let url = database_url();
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|error| panic!("cannot connect to DATABASE_URL {url}: {error}"));
    let driver = tokio::spawn(connection);
    client.batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE")).await.unwrap();
    drop(client);
    let _ = driver.await;
    schema
}

/// An engine on `schema`: a worker of its own, as another process would be. Only one with
/// `relay` executes its runs: engines claim runs of the machines they have.
async fn engine(schema: &str, relay: bool) -> Engine {
    let store = PostgresStore::builder(database_url()).schema(schema).connect().await.unwrap();
    let builder = Engine::builder()
        .store(store)
        .machine::<desk::Machine>()
        .poll_interval(Duration::from_millis(100));
    let builder = if relay { builder.machine::<relay::Machine>() } else { builder };
    builder.build().unwrap()
}

/// Serves `engine` on a free port of 127.0.0.1, looking in the store every 100 ms.
async fn serve(engine: Engine) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let config = ServerConfig::new().follow_interval(Duration::from_millis(100));
    tokio::spawn(flow_server::serve(listener, engine, config));
    format!("http://{address}")
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(30)).build().unwrap()
}

async fn get(client: &Client, url: String) -> Value {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

async fn until_waiting(client: &Client, base: &str, run: &str) {
    for _ in 0..500 {
        if get(client, format!("{base}/runs/{run}")).await["wait"] == "signal" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("run {run} never waited for a signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_executing_on_another_worker_moves_on_the_servers_stream() {
    let schema = schema("follow_other").await;
    let here = engine(&schema, false).await;
    let there = engine(&schema, true).await;
    let base = serve(here).await;
    let client = client();

    let run: RunId = there.start::<relay::Machine>((0, 6)).await.unwrap().id();
    let stream = Stream::open(client.get(format!("{base}/runs/{run}/events"))).await;
    let messages = stream.rest().await;

    let (end, before) = messages.split_last().unwrap();
    assert_eq!(end.event, "end", "{messages:?}");
    assert_eq!(end.data, json!({ "run": run.to_string(), "status": "completed" }));
    // None of this engine's events: it does not execute the run. Its checkpoints came from
    // the store, each once, in order, to the last.
    assert!(before.iter().all(|m| m.event == "checkpoint"), "{messages:?}");
    let seqs = seqs(before);
    let expected: Vec<u64> = (seqs[0]..seqs[0] + seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "checkpoints repeated or missed");
    let status = get(&client, format!("{base}/runs/{run}")).await;
    assert_eq!(seqs.last().copied(), status["seq"].as_u64());
    // It moved while followed: several looks found it running, each further on.
    let running: Vec<u64> =
        before.iter().filter(|m| m.data["status"] == "running").map(|m| m.seq().unwrap()).collect();
    assert!(running.len() >= 2, "{messages:?}");
    let states: Vec<&Value> = before
        .iter()
        .flat_map(|m| m.data["entries"].as_array().unwrap())
        .map(|e| &e["outcome"])
        .collect();
    assert!(states.contains(&&json!({ "Transitioned": { "to": "done" } })), "{states:?}");
    assert!(states.contains(&&json!("Completed")), "{states:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_read_signalled_cancelled_and_deleted_on_postgres() {
    let schema = schema("routes").await;
    let base = serve(engine(&schema, false).await).await;
    let _other = engine(&schema, true).await;
    let client = client();
    let start = |key: &'static str| {
        client
            .post(format!("{base}/machines/pg_server_desk/runs"))
            .json(&json!({ "input": "the memo", "key": key }))
            .send()
    };
    let created = start("doc-1").await.unwrap();
    assert_eq!(created.status(), StatusCode::CREATED);
    let first = created.json::<Value>().await.unwrap()["run"].as_str().unwrap().to_owned();
    assert_eq!(start("doc-1").await.unwrap().status(), StatusCode::CONFLICT);
    let second = start("doc-2").await.unwrap().json::<Value>().await.unwrap()["run"]
        .as_str()
        .unwrap()
        .to_owned();
    until_waiting(&client, &base, &first).await;
    until_waiting(&client, &base, &second).await;

    let page = get(&client, format!("{base}/runs?machine=pg_server_desk&wait=signal")).await;
    let listed: Vec<&str> =
        page["runs"].as_array().unwrap().iter().map(|r| r["run"].as_str().unwrap()).collect();
    assert_eq!(listed, [second.as_str(), first.as_str()], "newest first");
    let keyed = get(&client, format!("{base}/runs?key=doc-1")).await;
    assert_eq!(keyed["runs"][0]["run"], first);

    let post = |path: String| client.post(format!("{base}{path}")).json(&json!("ada")).send();
    assert_eq!(post(format!("/runs/{first}/signal")).await.unwrap().status(), StatusCode::ACCEPTED);
    let signalled = Stream::open(client.get(format!("{base}/runs/{first}/events"))).await;
    assert_eq!(signalled.rest().await.last().unwrap().data["status"], "completed");
    let detail = get(&client, format!("{base}/runs/{first}")).await;
    assert_eq!(detail["output"], "the memo, approved by ada");
    assert_eq!(detail["key"], "doc-1");
    assert!(!detail["history"].as_array().unwrap().is_empty());

    let unfinished = client.delete(format!("{base}/runs/{second}")).send().await.unwrap();
    assert_eq!(unfinished.status(), StatusCode::CONFLICT);
    assert_eq!(
        post(format!("/runs/{second}/cancel")).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let cancelled = Stream::open(client.get(format!("{base}/runs/{second}/events"))).await;
    assert_eq!(cancelled.rest().await.last().unwrap().data["status"], "cancelled");

    for run in [&first, &second] {
        let deleted = client.delete(format!("{base}/runs/{run}")).send().await.unwrap();
        assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
        let gone = client.get(format!("{base}/runs/{run}")).send().await.unwrap();
        assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    }
}
