//! `DELETE /runs/{id}`, `POST /runs/{id}/retry` and `GET /runs/{id}/branches` over real HTTP
//! on 127.0.0.1: what each does, what each refuses, and the token the changes need.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use flow::prelude::*;
use flow::store::MemoryStore;
use flow::{Engine, RunId};
use flow_server::{ErrorBody, ServerConfig};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

const TOKEN: &str = "full-token";
const READ: &str = "read-token";

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

#[flow::machine]
pub mod pair {
    use super::*;

    #[state(start, fork(left, right), join = both)]
    async fn split(_cx: &mut (), n: u32) -> Result<Split> {
        fork!(left(n), right(n))
    }

    /// Waits for a go-ahead, so that the fork waits for it.
    #[state(to(left_done))]
    async fn left(_cx: &mut (), n: u32, #[signal] go: bool) -> Result<Left> {
        goto!(left_done(if go { n } else { 0 }))
    }

    #[state(branch_end)]
    async fn left_done(_cx: &mut (), n: u32) -> Result<u32> {
        Ok(n)
    }

    #[state(branch_end)]
    async fn right(_cx: &mut (), n: u32) -> Result<u32> {
        Ok(n + 1)
    }

    #[state(end)]
    async fn both(_cx: &mut (), left: u32, right: u32) -> Result<u32> {
        Ok(left + right)
    }
}

async fn serve() -> String {
    let engine = Engine::builder()
        .store(MemoryStore::new())
        .machine::<flaky::Machine>()
        .machine::<pair::Machine>()
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let config = ServerConfig::new().token(TOKEN).read_only_token(READ);
    tokio::spawn(flow_server::serve(listener, engine, config));
    format!("http://{address}")
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

async fn error(response: reqwest::Response, status: StatusCode) -> ErrorBody {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

async fn start(client: &Client, base: &str, machine: &str, input: Value) -> String {
    let response = client
        .post(format!("{base}/machines/{machine}/runs"))
        .bearer_auth(TOKEN)
        .json(&json!({ "input": input }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["run"].as_str().unwrap().to_owned()
}

async fn status(client: &Client, base: &str, run: &str) -> Value {
    let response = client.get(format!("{base}/runs/{run}")).bearer_auth(READ).send().await;
    let response = response.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

/// Waits until `done` says so of run `run`'s status.
async fn until(client: &Client, base: &str, run: &str, done: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..1000 {
        let status = status(client, base, run).await;
        if done(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run} never got there: {}", status(client, base, run).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_backing_off_is_retried_now() {
    let base = serve().await;
    let client = client();
    let run = start(&client, &base, "flaky", json!(21)).await;
    let waiting = until(&client, &base, &run, |status| status["wait"] == "backoff").await;
    // In Unix milliseconds, as every time the API gives: within the hour (the backoff is
    // jittered).
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64;
    let wake_at = waiting["wake_at"].as_u64().unwrap_or_else(|| panic!("{waiting}"));
    assert!((now..now + 3_700_000).contains(&wake_at), "{waiting}");
    let retry = format!("{base}/runs/{run}/retry");

    let anonymous = client.post(&retry).send().await.unwrap();
    assert_eq!(error(anonymous, StatusCode::UNAUTHORIZED).await.code, "unauthorized");
    let read = client.post(&retry).bearer_auth(READ).send().await.unwrap();
    assert_eq!(error(read, StatusCode::FORBIDDEN).await.code, "forbidden");
    assert_eq!(status(&client, &base, &run).await["wait"], "backoff", "refusals change nothing");

    let retried = client.post(&retry).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(retried.status(), StatusCode::ACCEPTED);
    assert_eq!(retried.json::<Value>().await.unwrap(), json!({ "run": run }));
    // Long before the hour's backoff is over.
    let done = until(&client, &base, &run, |status| status["status"] == "completed").await;
    assert_eq!(done["output"], 42);

    let again = client.post(&retry).bearer_auth(TOKEN).send().await.unwrap();
    let again = error(again, StatusCode::CONFLICT).await;
    assert_eq!(again.code, "not_backing_off");
    assert!(again.error.contains("not backing off"), "{}", again.error);
    let unknown = format!("{base}/runs/{}/retry", RunId::random());
    let unknown = client.post(unknown).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(error(unknown, StatusCode::NOT_FOUND).await.code, "unknown_run");
    let bad = client.post(format!("{base}/runs/nope/retry")).bearer_auth(TOKEN).send().await;
    assert_eq!(error(bad.unwrap(), StatusCode::BAD_REQUEST).await.code, "bad_run_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_a_finished_run_is_deleted() {
    let base = serve().await;
    let client = client();
    let waiting = start(&client, &base, "flaky", json!(1)).await;
    until(&client, &base, &waiting, |status| status["wait"] == "backoff").await;
    let url = format!("{base}/runs/{waiting}");

    let read = client.delete(&url).bearer_auth(READ).send().await.unwrap();
    assert_eq!(error(read, StatusCode::FORBIDDEN).await.code, "forbidden");
    let unfinished = client.delete(&url).bearer_auth(TOKEN).send().await.unwrap();
    let unfinished = error(unfinished, StatusCode::CONFLICT).await;
    assert_eq!(unfinished.code, "unfinished");
    assert!(unfinished.error.contains("cancel it first"), "{}", unfinished.error);
    assert_eq!(unfinished.detail["status"], "running");

    let cancel = format!("{base}/runs/{waiting}/cancel");
    let cancelled = client.post(cancel).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(cancelled.status(), StatusCode::ACCEPTED);
    until(&client, &base, &waiting, |status| status["status"] == "cancelled").await;
    let deleted = client.delete(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    assert!(deleted.text().await.unwrap().is_empty());

    let gone = client.get(&url).bearer_auth(READ).send().await.unwrap();
    assert_eq!(error(gone, StatusCode::NOT_FOUND).await.code, "unknown_run");
    let listed = client.get(format!("{base}/runs")).bearer_auth(READ).send().await.unwrap();
    let listed: Value = listed.json().await.unwrap();
    assert_eq!(listed, json!({ "runs": [], "next": null }));
    let twice = client.delete(&url).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(error(twice, StatusCode::NOT_FOUND).await.code, "unknown_run");
    let bad = client.delete(format!("{base}/runs/nope")).bearer_auth(TOKEN).send().await;
    assert_eq!(error(bad.unwrap(), StatusCode::BAD_REQUEST).await.code, "bad_run_id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forking_run_lists_its_branches() {
    let base = serve().await;
    let client = client();
    let run = start(&client, &base, "pair", json!(20)).await;
    let forked = until(&client, &base, &run, |status| status["wait"] == "join").await;
    assert_eq!(forked["parent"], Value::Null);
    let url = format!("{base}/runs/{run}/branches");
    let branches: Vec<String> =
        client.get(&url).bearer_auth(READ).send().await.unwrap().json().await.unwrap();
    let id: RunId = run.parse().unwrap();
    let expected: Vec<String> =
        (0..2).map(|index| RunId::branch(id, 0, index).to_string()).collect();
    assert_eq!(branches, expected);

    // Each branch is a run whose status names its parent.
    let left = until(&client, &base, &branches[0], |status| status["wait"] == "signal").await;
    assert_eq!(left["parent"], run.as_str());
    let joining: Value = client
        .get(format!("{base}/runs?wait=join"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(joining["runs"][0]["run"], run.as_str());
    assert_eq!(joining["runs"].as_array().unwrap().len(), 1);

    let signal = format!("{base}/runs/{}/signal", branches[0]);
    let sent = client.post(signal).bearer_auth(TOKEN).json(&json!(true)).send().await.unwrap();
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let done = until(&client, &base, &run, |status| status["status"] == "completed").await;
    assert_eq!(done["output"], 41);
    let after: Vec<String> =
        client.get(&url).bearer_auth(READ).send().await.unwrap().json().await.unwrap();
    assert!(after.is_empty(), "a run that waits for no fork has no branches: {after:?}");

    let unknown = format!("{base}/runs/{}/branches", RunId::random());
    let unknown = client.get(unknown).bearer_auth(READ).send().await.unwrap();
    assert_eq!(error(unknown, StatusCode::NOT_FOUND).await.code, "unknown_run");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_new_routes_are_in_the_openapi_document() {
    let doc = flow_server::openapi();
    let paths = &doc["paths"];
    assert!(
        paths["/runs/{id}"]["delete"]["responses"]["204"].is_object(),
        "{}",
        paths["/runs/{id}"]
    );
    assert!(paths["/runs/{id}/retry"]["post"]["responses"]["409"].is_object());
    assert!(paths["/runs/{id}/branches"]["get"]["responses"]["200"].is_object());
    let parameters = paths["/runs"]["get"]["parameters"].as_array().unwrap();
    let names: Vec<&str> = parameters.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "machine",
            "status",
            "key",
            "state",
            "wait",
            "created_after",
            "created_before",
            "order",
            "limit",
            "cursor"
        ]
    );
}
