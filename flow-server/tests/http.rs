//! The API over real HTTP on 127.0.0.1: runs started, followed over Server-Sent Events,
//! signalled and steered; tokens; bodies that are malformed, of the wrong shape or too large;
//! unknown runs; the OpenAPI document against real responses.

use std::collections::BTreeSet;
use std::time::Duration;

use flow::prelude::*;
use flow::store::MemoryStore;
use flow::{Engine, RunId};
use flow_server::{ErrorBody, ServerConfig};
use futures_util::StreamExt;
use reqwest::{Client, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Line {
    pub sku: String,
    pub cents: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    pub id: u32,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    Approve { by: String },
    Reject(String),
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desk {
    pub reviews: u32,
}

#[flow::machine]
pub mod total {
    use super::*;

    /// Takes a while, so that a subscriber sees it run.
    #[state(start, to(sum))]
    async fn check(_cx: &mut (), order: Order) -> Result<Check> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        flow::progress("checking", Some(0.5));
        tokio::time::sleep(Duration::from_millis(50)).await;
        goto!(sum(order))
    }

    #[state(end)]
    async fn sum(_cx: &mut (), order: Order) -> Result<u32> {
        Ok(order.lines.iter().map(|line| line.cents).sum())
    }
}

#[flow::machine]
pub mod approval {
    use super::*;

    #[state(start, to(publish))]
    async fn review(cx: &mut Desk, doc: String, #[signal] decision: Decision) -> Result<Review> {
        cx.reviews += 1;
        match decision {
            Decision::Approve { by } => goto!(publish(format!("{doc}, approved by {by}"))),
            Decision::Reject(why) => goto!(publish(format!("{doc}, rejected: {why}"))),
        }
    }

    #[state(end)]
    async fn publish(_cx: &mut Desk, doc: String) -> Result<String> {
        Ok(doc)
    }
}

/// Reports a burst of progress, faster than a slow subscriber reads it.
#[flow::machine]
pub mod chatty {
    use super::*;

    #[state(start, end)]
    async fn talk(_cx: &mut (), times: u32) -> Result<u32> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..times {
            flow::progress(format!("line {i}"), None);
        }
        Ok(times)
    }
}

fn engine() -> Engine {
    Engine::builder()
        .store(MemoryStore::new())
        .machine::<total::Machine>()
        .machine::<approval::Machine>()
        .default_context::<approval::Machine>(Desk::default)
        .machine::<chatty::Machine>()
        .event_capacity(8)
        .build()
        .unwrap()
}

/// Serves `engine` on a free port of 127.0.0.1; returns the base address.
async fn serve(engine: Engine, config: ServerConfig) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(flow_server::serve(listener, engine, config));
    format!("http://{address}")
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

async fn error(response: reqwest::Response, status: StatusCode) -> ErrorBody {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    let body: ErrorBody = response.json().await.unwrap();
    assert!(!body.error.is_empty());
    body
}

async fn start(client: &Client, base: &str, machine: &str, body: Value) -> RunId {
    let response =
        client.post(format!("{base}/machines/{machine}/runs")).json(&body).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = response.json().await.unwrap();
    let run = body["run"].as_str().unwrap();
    assert_eq!(location, format!("/runs/{run}"));
    run.parse().unwrap()
}

/// One Server-Sent Event: its type (`message` unless named) and data.
#[derive(Debug)]
struct Sse {
    event: String,
    data: Value,
}

/// Reads the SSE stream at `url` until it closes.
async fn follow(client: &Client, url: &str) -> Vec<Sse> {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut bytes = response.bytes_stream();
    let (mut text, mut events) = (String::new(), Vec::new());
    while let Some(chunk) = bytes.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(end) = text.find("\n\n") {
            let block: String = text.drain(..end + 2).collect();
            let (mut event, mut data) = ("message".to_owned(), None);
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = name.to_owned();
                } else if let Some(json) = line.strip_prefix("data: ") {
                    data = Some(serde_json::from_str(json).unwrap());
                }
            }
            if let Some(data) = data {
                events.push(Sse { event, data });
            }
        }
    }
    events
}

/// Waits until run `run` waits for a signal, as `GET /runs/{id}` says.
async fn until_waiting(client: &Client, base: &str, run: RunId) {
    for _ in 0..500 {
        let status: Value =
            client.get(format!("{base}/runs/{run}")).send().await.unwrap().json().await.unwrap();
        if status["wait"] == "signal" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run} never waited for a signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_followed_over_sse_until_it_completes() {
    let base = serve(engine(), ServerConfig::new()).await;
    let client = client();
    let order =
        json!({ "id": 1, "lines": [{ "sku": "a", "cents": 250 }, { "sku": "b", "cents": 50 }] });
    let run = start(&client, &base, "total", json!({ "input": order })).await;

    let events = follow(&client, &format!("{base}/runs/{run}/events")).await;
    let kinds: Vec<&Value> =
        events.iter().filter(|e| e.event == "message").map(|e| &e.data["kind"]).collect();
    assert!(
        kinds.contains(&&json!({ "Progress": { "message": "checking", "fraction": 0.5 } })),
        "{kinds:?}"
    );
    assert!(kinds.contains(&&json!({ "Transitioned": { "to": "sum" } })), "{kinds:?}");
    // A state's payload comes with its attempt, the run's output with its end.
    let entered = json!({ "Entered": { "attempt": 1, "visit": 1, "payload": { "order": order } } });
    assert!(kinds.contains(&&entered), "{kinds:?}");
    assert_eq!(kinds.last(), Some(&&json!({ "Completed": { "output": 300 } })));
    assert!(
        events.iter().filter(|e| e.event == "message").all(|e| e.data["run"] == run.to_string())
    );
    let end = events.last().unwrap();
    assert_eq!(end.event, "end");
    assert_eq!(end.data, json!({ "run": run.to_string(), "status": "completed" }));

    let status: Value =
        client.get(format!("{base}/runs/{run}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["status"], "completed");
    assert_eq!(status["output"], 300);
    assert_eq!(status["state"], "sum");

    // A finished run's stream is its end at once.
    let again = follow(&client, &format!("{base}/runs/{run}/events")).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].event, "end");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiting_run_is_resumed_by_a_signal() {
    let base = serve(engine(), ServerConfig::new()).await;
    let client = client();
    let run = start(&client, &base, "approval", json!({ "input": "the memo" })).await;
    until_waiting(&client, &base, run).await;
    let signal = format!("{base}/runs/{run}/signal");

    let wrong = client.post(&signal).json(&json!({ "Approve": { "by": 7 } })).send().await.unwrap();
    let body = error(wrong, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(body.code, "bad_input");
    assert_eq!(body.detail["path"], "Approve.by");
    assert_eq!(body.detail["part"], "signal");
    assert_eq!(body.detail["state"], "review");
    assert_eq!(body.detail["expected"], "Decision");

    let sent =
        client.post(&signal).json(&json!({ "Approve": { "by": "ada" } })).send().await.unwrap();
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let events = follow(&client, &format!("{base}/runs/{run}/events")).await;
    assert_eq!(events.last().unwrap().data["status"], "completed");
    let status: Value =
        client.get(format!("{base}/runs/{run}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(status["output"], "the memo, approved by ada");

    let late = client.post(&signal).json(&json!({ "Reject": "late" })).send().await.unwrap();
    assert_eq!(error(late, StatusCode::CONFLICT).await.code, "not_waiting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_cancelled_paused_resumed_and_listed() {
    let base = serve(engine(), ServerConfig::new()).await;
    let client = client();
    let first = start(&client, &base, "approval", json!({ "input": "one", "key": "doc-1" })).await;
    assert_eq!(first, RunId::for_key("approval", "doc-1"));
    let second = start(&client, &base, "approval", json!({ "input": "two" })).await;
    until_waiting(&client, &base, first).await;
    until_waiting(&client, &base, second).await;

    let post = |path: String| client.post(format!("{base}{path}")).send();
    assert_eq!(post(format!("/runs/{first}/pause")).await.unwrap().status(), StatusCode::ACCEPTED);
    let page: Value = client
        .get(format!("{base}/runs?machine=approval&status=paused"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let runs = page["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0]["run"], first.to_string());
    assert_eq!(runs[0]["key"], "doc-1");
    let not_paused = post(format!("/runs/{second}/resume")).await.unwrap();
    assert_eq!(error(not_paused, StatusCode::CONFLICT).await.code, "not_paused");
    assert_eq!(post(format!("/runs/{first}/resume")).await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(
        post(format!("/runs/{second}/cancel")).await.unwrap().status(),
        StatusCode::ACCEPTED
    );
    let cancelled = follow(&client, &format!("{base}/runs/{second}/events")).await;
    assert_eq!(cancelled.last().unwrap().data["status"], "cancelled");
    let again = post(format!("/runs/{second}/cancel")).await.unwrap();
    assert_eq!(error(again, StatusCode::CONFLICT).await.code, "finished");

    let keyed: Value =
        client.get(format!("{base}/runs?key=doc-1")).send().await.unwrap().json().await.unwrap();
    assert_eq!(keyed["runs"].as_array().unwrap().len(), 1);
    let twice = client
        .post(format!("{base}/machines/approval/runs"))
        .json(&json!({ "input": "one", "key": "doc-1" }))
        .send()
        .await
        .unwrap();
    assert_eq!(error(twice, StatusCode::CONFLICT).await.code, "already_exists");
    let bad_status = client.get(format!("{base}/runs?status=sleeping")).send().await.unwrap();
    assert_eq!(error(bad_status, StatusCode::BAD_REQUEST).await.code, "bad_query");
    let bad_filter = client.get(format!("{base}/runs?stage=review")).send().await.unwrap();
    assert_eq!(error(bad_filter, StatusCode::BAD_REQUEST).await.code, "bad_query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changes_need_the_token_and_reads_take_either() {
    let config = ServerConfig::new().token("full-token").read_only_token("read-token");
    let base = serve(engine(), config).await;
    let client = client();
    let url = format!("{base}/machines/approval/runs");
    let body = json!({ "input": "memo" });

    let none = client.post(&url).json(&body).send().await.unwrap();
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert_eq!(error(none, StatusCode::UNAUTHORIZED).await.code, "unauthorized");
    let wrong = client.post(&url).bearer_auth("guess").json(&body).send().await.unwrap();
    assert_eq!(error(wrong, StatusCode::UNAUTHORIZED).await.code, "unauthorized");
    let read = client.post(&url).bearer_auth("read-token").json(&body).send().await.unwrap();
    assert_eq!(error(read, StatusCode::FORBIDDEN).await.code, "forbidden");
    let full = client.post(&url).bearer_auth("full-token").json(&body).send().await.unwrap();
    assert_eq!(full.status(), StatusCode::CREATED);
    let run: Value = full.json().await.unwrap();
    let run = run["run"].as_str().unwrap();
    let cancel = format!("{base}/runs/{run}/cancel");
    let read = client.post(&cancel).bearer_auth("read-token").send().await.unwrap();
    assert_eq!(error(read, StatusCode::FORBIDDEN).await.code, "forbidden");

    let machines = format!("{base}/machines");
    let anonymous = client.get(&machines).send().await.unwrap();
    assert_eq!(error(anonymous, StatusCode::UNAUTHORIZED).await.code, "unauthorized");
    for token in ["read-token", "full-token"] {
        let listed = client.get(&machines).bearer_auth(token).send().await.unwrap();
        assert_eq!(listed.status(), StatusCode::OK);
        let status = client.get(format!("{base}/runs/{run}")).bearer_auth(token).send().await;
        assert_eq!(status.unwrap().status(), StatusCode::OK);
    }
    let cancelled = client.post(&cancel).bearer_auth("full-token").send().await.unwrap();
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_bodies_are_refused_with_where_and_why() {
    let base = serve(engine(), ServerConfig::new()).await;
    let client = client();
    let url = format!("{base}/machines/total/runs");
    let send = |body: &'static str| {
        client.post(&url).header("content-type", "application/json").body(body).send()
    };

    let malformed = error(send("{\"input\": ").await.unwrap(), StatusCode::BAD_REQUEST).await;
    assert_eq!(malformed.code, "bad_json");
    assert!(malformed.detail["line"].is_number());

    let input = r#"{"input": {"id": 1, "lines": [{"sku": "a", "cents": 1}, {"sku": "b", "cents": "ten"}]}}"#;
    let bad = error(send(input).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(bad.code, "bad_input");
    assert_eq!(bad.detail["path"], "input.lines[1].cents");
    assert_eq!(bad.detail["expected"], "Order");
    assert!(bad.error.contains("lines[1].cents"), "{}", bad.error);

    let missing =
        error(send(r#"{"input": {"id": 1}}"#).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY)
            .await;
    assert_eq!(missing.detail["path"], "input");
    assert!(missing.error.contains("missing field `lines`"), "{}", missing.error);

    let typo =
        error(send(r#"{"inputs": {}}"#).await.unwrap(), StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(typo.code, "bad_body");
    assert!(typo.error.contains("unknown field `inputs`"), "{}", typo.error);

    let context = r#"{"input": "memo", "context": {"reviews": "many"}}"#;
    let response = client
        .post(format!("{base}/machines/approval/runs"))
        .header("content-type", "application/json")
        .body(context)
        .send()
        .await
        .unwrap();
    let bad = error(response, StatusCode::UNPROCESSABLE_ENTITY).await;
    assert_eq!(
        (bad.detail["part"].as_str(), bad.detail["path"].as_str()),
        (Some("context"), Some("context.reviews"))
    );

    let plain = client.post(&url).body(r#"{"input": null}"#).send().await.unwrap();
    assert_eq!(
        error(plain, StatusCode::UNSUPPORTED_MEDIA_TYPE).await.code,
        "unsupported_media_type"
    );

    let unknown =
        client.post(format!("{base}/machines/nope/runs")).json(&json!({})).send().await.unwrap();
    assert_eq!(error(unknown, StatusCode::NOT_FOUND).await.code, "unknown_machine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_body_is_refused() {
    let base = serve(engine(), ServerConfig::new().body_limit(1024)).await;
    let client = client();
    let big = json!({ "input": { "id": 1, "lines": [{ "sku": "x".repeat(4096), "cents": 1 }] } });
    let response =
        client.post(format!("{base}/machines/total/runs")).json(&big).send().await.unwrap();
    let body = error(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(body.code, "too_large");
    assert_eq!(body.detail["limit"], 1024);
    let runs: Value =
        client.get(format!("{base}/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(runs, json!({ "runs": [], "next": null }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_runs_machines_and_routes_are_404() {
    let base = serve(engine(), ServerConfig::new()).await;
    let client = client();
    let run = RunId::random();
    let status = client.get(format!("{base}/runs/{run}")).send().await.unwrap();
    assert_eq!(error(status, StatusCode::NOT_FOUND).await.code, "unknown_run");
    for action in ["cancel", "pause", "resume"] {
        let response = client.post(format!("{base}/runs/{run}/{action}")).send().await.unwrap();
        assert_eq!(error(response, StatusCode::NOT_FOUND).await.code, "unknown_run");
    }
    let signal =
        client.post(format!("{base}/runs/{run}/signal")).json(&json!(1)).send().await.unwrap();
    assert_eq!(error(signal, StatusCode::NOT_FOUND).await.code, "unknown_run");
    let events = client.get(format!("{base}/runs/{run}/events")).send().await.unwrap();
    assert_eq!(error(events, StatusCode::NOT_FOUND).await.code, "unknown_run");
    let machine = client.get(format!("{base}/machines/nope")).send().await.unwrap();
    assert_eq!(error(machine, StatusCode::NOT_FOUND).await.code, "unknown_machine");
    let route = client.get(format!("{base}/nowhere")).send().await.unwrap();
    assert_eq!(error(route, StatusCode::NOT_FOUND).await.code, "not_found");
    let bad_id = client.get(format!("{base}/runs/not-an-id")).send().await.unwrap();
    assert_eq!(error(bad_id, StatusCode::BAD_REQUEST).await.code, "bad_run_id");
    let method = client.delete(format!("{base}/machines")).send().await.unwrap();
    assert_eq!(error(method, StatusCode::METHOD_NOT_ALLOWED).await.code, "method_not_allowed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_subscriber_is_told_how_much_it_missed() {
    let base = serve(engine(), ServerConfig::new()).await;
    let client = client();
    let run = start(&client, &base, "chatty", json!({ "input": 5000 })).await;
    let events = follow(&client, &format!("{base}/runs/{run}/events")).await;
    let missed: u64 = events
        .iter()
        .filter(|e| e.event == "lagged")
        .map(|e| e.data["missed"].as_u64().unwrap())
        .sum();
    let received = events.iter().filter(|e| e.event == "message").count() as u64;
    assert!(missed > 0, "5000 events in a burst through a channel of 8 were all read in time");
    // Every event is either sent or counted as missed (Started and Entered came first).
    assert!(missed + received >= 5000, "{missed} missed, {received} received");
    assert_eq!(events.last().unwrap().event, "end");
    assert_eq!(events.last().unwrap().data["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_responses() {
    let base = serve(engine(), ServerConfig::new()).await;
    let client = client();
    let doc: Value =
        client.get(format!("{base}/openapi.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc, flow_server::openapi());
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths: BTreeSet<&str> =
        doc["paths"].as_object().unwrap().keys().map(String::as_str).collect();
    for path in [
        "/machines",
        "/machines/{name}",
        "/machines/{name}/runs",
        "/runs",
        "/runs/{id}",
        "/runs/{id}/signal",
        "/runs/{id}/cancel",
        "/runs/{id}/pause",
        "/runs/{id}/resume",
        "/runs/{id}/events",
        "/events",
        "/runs/{id}/ws",
        "/ws",
    ] {
        assert!(paths.contains(path), "{path} is not documented");
    }
    let schema = |name: &str| -> BTreeSet<String> {
        doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    };
    let keys = |value: &Value| -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    };

    let order = json!({ "id": 1, "lines": [] });
    let run = start(&client, &base, "total", json!({ "input": order })).await;
    follow(&client, &format!("{base}/runs/{run}/events")).await;
    let status: Value =
        client.get(format!("{base}/runs/{run}")).send().await.unwrap().json().await.unwrap();
    assert_eq!(schema("RunStatus"), keys(&status));
    let runs: Value =
        client.get(format!("{base}/runs")).send().await.unwrap().json().await.unwrap();
    assert_eq!(schema("RunPage"), keys(&runs));
    assert_eq!(schema("RunSummary"), keys(&runs["runs"][0]));
    let machine: Value =
        client.get(format!("{base}/machines/total")).send().await.unwrap().json().await.unwrap();
    assert_eq!(schema("Machine"), keys(&machine));
    assert!(machine["mermaid"].as_str().unwrap().starts_with("stateDiagram-v2"));
    let missing = client.get(format!("{base}/runs/{}", RunId::random())).send().await.unwrap();
    let missing: Value = missing.json().await.unwrap();
    assert_eq!(schema("ErrorBody"), keys(&missing));
}
