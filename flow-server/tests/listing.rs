//! `GET /runs` over real HTTP on 127.0.0.1: every filter, both orders, paging across pages
//! with the cursor, and bad values refused with a 400 that names the parameter.

use std::time::Duration;

use flow::prelude::*;
use flow::store::MemoryStore;
use flow::{Engine, RunId};
use flow_server::{ErrorBody, ServerConfig};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};

#[flow::machine]
pub mod approval {
    use super::*;

    #[state(start, end)]
    async fn review(_cx: &mut (), doc: String, #[signal] ok: bool) -> Result<String> {
        Ok(format!("{doc}: {ok}"))
    }
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
        Ok(n)
    }
}

fn engine() -> Engine {
    Engine::builder()
        .store(MemoryStore::new())
        .machine::<approval::Machine>()
        .machine::<flaky::Machine>()
        .build()
        .unwrap()
}

async fn serve(engine: Engine) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(flow_server::serve(listener, engine, ServerConfig::new()));
    format!("http://{address}")
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

/// `GET {base}/runs?{query}`, which must answer 200: the page's run ids, and its `next`.
async fn page(client: &Client, base: &str, query: &str) -> (Vec<String>, Option<String>) {
    let response = client.get(format!("{base}/runs?{query}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{query}");
    let page: Value = response.json().await.unwrap();
    let runs = page["runs"].as_array().unwrap();
    let ids = runs.iter().map(|run| run["run"].as_str().unwrap().to_owned()).collect();
    (ids, page["next"].as_str().map(str::to_owned))
}

/// `GET {base}/runs?{query}`, which must be refused with 400 naming `parameter`.
async fn refused(client: &Client, base: &str, query: &str, parameter: &str) -> ErrorBody {
    let response = client.get(format!("{base}/runs?{query}")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST, "{query}");
    let body: ErrorBody = response.json().await.unwrap();
    assert_eq!(body.code, "bad_query", "{query}");
    assert!(body.error.contains(parameter), "{query}: {}", body.error);
    body
}

async fn start(client: &Client, base: &str, machine: &str, input: Value) -> String {
    let url = format!("{base}/machines/{machine}/runs");
    let response = client.post(url).json(&json!({ "input": input })).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    let run = body["run"].as_str().unwrap().to_owned();
    // Each run in a millisecond of its own, so that creation times tell them apart.
    tokio::time::sleep(Duration::from_millis(3)).await;
    run
}

/// Waits until run `run` waits for `wait`, as `GET /runs/{id}` says.
async fn until_waiting(client: &Client, base: &str, run: &str, wait: &str) -> Value {
    for _ in 0..1000 {
        let status: Value =
            client.get(format!("{base}/runs/{run}")).send().await.unwrap().json().await.unwrap();
        if status["wait"] == wait {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run} never waited for {wait}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_listed_newest_first_a_page_at_a_time() {
    let base = serve(engine()).await;
    let client = client();
    let mut started = Vec::new();
    for n in 0..5 {
        started.push(start(&client, &base, "approval", json!(format!("doc {n}"))).await);
    }
    let newest_first: Vec<String> = started.iter().rev().cloned().collect();

    let (all, next) = page(&client, &base, "").await;
    assert_eq!((all, next), (newest_first.clone(), None), "newest first, one page");
    // A cursor left blank asks for the first page, as none does.
    let (blank, _) = page(&client, &base, "cursor=").await;
    assert_eq!(blank, newest_first);
    let (oldest, _) = page(&client, &base, "order=oldest").await;
    assert_eq!(oldest, started);

    let (first, next) = page(&client, &base, "limit=3").await;
    assert_eq!(first, newest_first[..3]);
    let next = next.expect("a second page");
    let (second, last) = page(&client, &base, &format!("limit=3&cursor={next}")).await;
    assert_eq!(second, newest_first[3..]);
    assert_eq!(last, None, "the second page is the last");

    // Exactly a page left: the page says there is no other.
    let (two, next) = page(&client, &base, "order=oldest&limit=2").await;
    assert_eq!(two, started[..2]);
    let next = next.unwrap();
    let (three, next) = page(&client, &base, &format!("order=oldest&limit=3&cursor={next}")).await;
    assert_eq!((three, next), (started[2..].to_vec(), None));

    // A run created meanwhile comes before the first page, never inside the pages.
    let (first, next) = page(&client, &base, "limit=2").await;
    let newer = start(&client, &base, "approval", json!("newer")).await;
    let (rest, _) = page(&client, &base, &format!("limit=10&cursor={}", next.unwrap())).await;
    assert_eq!([first, rest].concat(), newest_first);
    assert_eq!(page(&client, &base, "limit=1").await.0, [newer]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_are_filtered_by_every_criterion() {
    let base = serve(engine()).await;
    let client = client();
    let doc = start(&client, &base, "approval", json!("memo")).await;
    let call = start(&client, &base, "flaky", json!(7)).await;
    until_waiting(&client, &base, &call, "backoff").await;
    until_waiting(&client, &base, &doc, "signal").await;
    let ids = |page: (Vec<String>, Option<String>)| page.0;

    assert_eq!(ids(page(&client, &base, "wait=backoff").await), [call.as_str()]);
    assert_eq!(ids(page(&client, &base, "wait=signal").await), [doc.as_str()]);
    assert!(ids(page(&client, &base, "wait=join").await).is_empty());
    assert!(ids(page(&client, &base, "wait=timer").await).is_empty());
    assert_eq!(ids(page(&client, &base, "machine=flaky").await), [call.as_str()]);
    assert_eq!(ids(page(&client, &base, "state=review&status=running").await), [doc.as_str()]);
    assert!(ids(page(&client, &base, "status=completed").await).is_empty());
    assert!(ids(page(&client, &base, "key=nobody").await).is_empty());

    // Creation times: the listing's own, in Unix milliseconds.
    let listed: Value =
        client.get(format!("{base}/runs?order=oldest")).send().await.unwrap().json().await.unwrap();
    let first = listed["runs"][0]["created"].as_u64().unwrap();
    let second = listed["runs"][1]["created"].as_u64().unwrap();
    assert!(first < second, "{listed}");
    let after = ids(page(&client, &base, &format!("created_after={first}")).await);
    assert_eq!(after, [call.as_str()]);
    let before = ids(page(&client, &base, &format!("created_before={second}")).await);
    assert_eq!(before, [doc.as_str()]);
    let between = format!("created_after={first}&created_before={second}");
    assert!(ids(page(&client, &base, &between).await).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_values_are_refused_naming_the_parameter() {
    let base = serve(engine()).await;
    let client = client();
    start(&client, &base, "approval", json!("memo")).await;

    let status = refused(&client, &base, "status=sleeping", "status").await;
    assert_eq!(status.detail["parameter"], "status");
    assert!(status.error.contains("running, completed, failed, cancelled, paused, stuck"));
    let wait = refused(&client, &base, "wait=nap", "wait").await;
    assert_eq!(wait.detail["accepted"], json!(["signal", "timer", "backoff", "join"]));
    let limit = refused(&client, &base, "limit=501", "limit").await;
    assert_eq!(limit.detail["max"], 500);
    assert!(limit.error.contains("500"), "{}", limit.error);
    for query in ["limit=0", "limit=-1", "limit=many", "limit=99999999999999999999999"] {
        refused(&client, &base, query, "limit").await;
    }
    let cursor = refused(&client, &base, "cursor=yesterday", "cursor").await;
    assert_eq!(cursor.detail["parameter"], "cursor");
    let too_long = format!("cursor={}-{}", u64::MAX, RunId::from_u128(1));
    for query in ["cursor=12-nothex", "cursor=-", &too_long] {
        refused(&client, &base, query, "cursor").await;
    }
    refused(&client, &base, "order=sideways", "order").await;
    refused(&client, &base, "created_after=today", "created_after").await;
    refused(&client, &base, "created_before=-5", "created_before").await;
    // Past the document's int64.
    refused(&client, &base, "created_before=9223372036854775808", "created_before").await;
    let unknown = refused(&client, &base, "stage=review", "stage").await;
    assert!(unknown.error.contains("cursor"), "it lists the parameters: {}", unknown.error);

    // At the edges, values are taken.
    let (ids, _) = page(&client, &base, "limit=500&created_after=0").await;
    assert_eq!(ids.len(), 1);
    let far = RunId::from_u128(u128::MAX);
    let (ids, _) = page(&client, &base, &format!("cursor=9999999999999999999-{far}")).await;
    assert_eq!(ids.len(), 1, "a cursor past every run, newest first, leaves them all");
}
