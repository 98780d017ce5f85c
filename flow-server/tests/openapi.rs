//! The OpenAPI document against the refusals the server really sends: every status a route
//! answers with is one the document lists for it, whatever the caller gets wrong, and a run id
//! in a path has the shape the server reads.

use std::time::Duration;

use flow::Engine;
use flow::prelude::*;
use flow::store::MemoryStore;
use flow_server::{ErrorBody, ServerConfig};
use reqwest::{Client, Method, StatusCode};
use serde_json::{Value, json};

#[flow::machine]
pub mod approval {
    use super::*;

    #[state(start, to(publish))]
    async fn review(_cx: &mut (), doc: String, #[signal] approved: bool) -> Result<Review> {
        goto!(publish(format!("{doc}: {approved}")))
    }

    #[state(end)]
    async fn publish(_cx: &mut (), doc: String) -> Result<String> {
        Ok(doc)
    }
}

const TOKEN: &str = "s3cret";
const READ_ONLY: &str = "look-only";
const LIMIT: usize = 1024;

/// Serves an engine with the approval machine on a free port of 127.0.0.1, with both tokens
/// and a small body limit; returns the base address.
async fn serve() -> String {
    let engine =
        Engine::builder().store(MemoryStore::new()).machine::<approval::Machine>().build().unwrap();
    let config = ServerConfig::new().token(TOKEN).read_only_token(READ_ONLY).body_limit(LIMIT);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(flow_server::serve(listener, engine, config));
    format!("http://{address}")
}

/// Every operation of the document: its method, its path template, and the operation.
fn operations(doc: &Value) -> Vec<(Method, String, Value)> {
    let mut operations = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            operations.push((method, path.clone(), operation.clone()));
        }
    }
    assert!(operations.len() >= 13, "{operations:?}");
    operations
}

/// Sends `request` and checks that its status is `expected`, that the document lists that
/// status for `operation`, and that the body is an [`ErrorBody`].
async fn refused(
    request: reqwest::RequestBuilder,
    operation: &(Method, String, Value),
    expected: StatusCode,
) {
    let (method, path, doc) = operation;
    let response = request.send().await.unwrap();
    let status = response.status();
    assert_eq!(status, expected, "{method} {path}");
    let documented = &doc["responses"][status.as_str()];
    assert!(
        documented.is_object(),
        "{method} {path} answers {status}, which its document leaves out"
    );
    assert_eq!(
        documented["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/ErrorBody"
    );
    let body: ErrorBody = response.json().await.unwrap();
    assert!(!body.error.is_empty(), "{method} {path}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_a_documented_status() {
    let base = serve().await;
    let client = Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let doc = flow_server::openapi();
    let response = client
        .post(format!("{base}/machines/approval/runs"))
        .bearer_auth(TOKEN)
        .json(&json!({ "input": "a memo" }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let run = response.json::<Value>().await.unwrap()["run"].as_str().unwrap().to_owned();

    for operation in operations(&doc) {
        let (method, path, doc) = &operation;
        let url = |id: &str| {
            let path = path.replace("{name}", "approval").replace("{id}", id);
            format!("{base}{path}")
        };
        let request = |id: &str| client.request(method.clone(), url(id));

        // No token, then a token the server does not know.
        refused(request(&run), &operation, StatusCode::UNAUTHORIZED).await;
        refused(request(&run).bearer_auth("guess"), &operation, StatusCode::UNAUTHORIZED).await;
        if *method == Method::POST {
            refused(request(&run).bearer_auth(READ_ONLY), &operation, StatusCode::FORBIDDEN).await;
        }
        if path.contains("{id}") {
            // With a body that would do, so that only the id is wrong.
            let mut bad_id = request("0").bearer_auth(TOKEN);
            if doc["requestBody"].is_object() {
                bad_id = bad_id.json(&json!(true));
            }
            refused(bad_id, &operation, StatusCode::BAD_REQUEST).await;
        }
        if doc["requestBody"].is_object() {
            let authorized = || request(&run).bearer_auth(TOKEN);
            let plain = authorized().body("\"a memo\"");
            refused(plain, &operation, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
            let json =
                |body: String| authorized().header("content-type", "application/json").body(body);
            refused(json("{".into()), &operation, StatusCode::BAD_REQUEST).await;
            let large = format!("\"{}\"", "x".repeat(LIMIT));
            refused(json(large), &operation, StatusCode::PAYLOAD_TOO_LARGE).await;
        }
    }
}

#[test]
fn a_run_id_in_a_path_has_the_shape_the_server_reads() {
    let doc = flow_server::openapi();
    let mut ids = 0;
    for (method, path, operation) in operations(&doc) {
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            if parameter["name"] != "id" {
                continue;
            }
            ids += 1;
            assert_eq!(
                parameter["schema"]["$ref"], "#/components/schemas/RunId",
                "{method} {path}"
            );
        }
    }
    // GET, DELETE; signal, cancel, pause, resume, retry; branches, events, ws.
    assert_eq!(ids, 10, "the routes under /runs/{{id}}");
    let schema = &doc["components"]["schemas"]["RunId"];
    assert_eq!(schema["type"], "string");
    let pattern = schema["pattern"].as_str().unwrap();
    // The two forms RunId's FromStr reads: 32 hex digits, and a hyphenated UUID.
    assert!(pattern.starts_with('^') && pattern.ends_with('$'), "{pattern}");
    assert!(pattern.contains("[0-9a-fA-F]{32}"), "{pattern}");
    assert!(
        pattern.contains(
            "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
        ),
        "{pattern}"
    );
}

#[test]
fn a_start_links_to_the_operations_on_its_run() {
    let doc = flow_server::openapi();
    let links = &doc["paths"]["/machines/{name}/runs"]["post"]["responses"]["201"]["links"];
    for operation in ["run", "signal", "cancel", "pause", "resume"] {
        let link =
            links.as_object().unwrap().values().find(|link| link["operationId"] == operation);
        let link = link.unwrap_or_else(|| panic!("no link to {operation}: {links}"));
        assert_eq!(link["parameters"]["id"], "$response.body#/run");
    }
}

#[test]
fn a_runs_stream_documents_where_a_client_resumes_and_what_it_is_sent() {
    let doc = flow_server::openapi();
    for path in ["/runs/{id}/events", "/runs/{id}/ws", "/events", "/ws"] {
        let params = doc["paths"][path]["get"]["parameters"].as_array().unwrap();
        let named = |name: &str, place: &str| {
            params.iter().any(|p| p["name"] == name && p["in"] == place && p["required"] != true)
        };
        assert!(named("after", "query"), "{path}: {params:?}");
        assert!(named("Last-Event-ID", "header"), "{path}: {params:?}");
    }
    let schemas = &doc["components"]["schemas"];
    for field in ["run", "seq", "entries", "status", "state", "wait"] {
        assert!(schemas["Checkpoint"]["properties"][field].is_object(), "Checkpoint.{field}");
    }
    assert!(schemas["Reset"]["properties"]["reason"].is_object());
    assert!(schemas["WsFrame"]["properties"]["id"].is_object());
    let described = doc["paths"]["/runs/{id}/events"]["get"]["responses"]["200"]["description"]
        .as_str()
        .unwrap();
    for kind in ["`message`", "`checkpoint`", "`lagged`", "`reset`", "`end`"] {
        assert!(described.contains(kind), "{kind}: {described}");
    }
}
