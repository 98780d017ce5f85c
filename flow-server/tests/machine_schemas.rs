//! `GET /machines` and `GET /machines/{name}` carry the JSON Schemas of a machine's input and
//! signals where its types derive `schemars::JsonSchema` (the server turns flow's `schemars`
//! feature on), `null` and `{}` where they do not, as the OpenAPI document says.

use flow::Engine;
use flow::prelude::*;
use flow::store::MemoryStore;
use flow_server::ServerConfig;
use reqwest::{Client, StatusCode};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Memo {
    pub title: String,
    pub pages: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub enum Decision {
    Approve,
    Reject(String),
}

/// Serde, but no schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Opaque(pub u32);

#[flow::machine]
pub mod approval {
    use super::*;

    #[state(start, to(publish))]
    async fn review(_cx: &mut (), memo: Memo, #[signal] decision: Decision) -> Result<Review> {
        goto!(publish(format!("{}: {decision:?}", memo.title)))
    }

    #[state(end)]
    async fn publish(_cx: &mut (), text: String) -> Result<String> {
        Ok(text)
    }
}

#[flow::machine]
pub mod opaque {
    use super::*;

    #[state(start, to(done))]
    async fn hold(_cx: &mut (), item: Opaque, #[signal] go: Opaque) -> Result<Hold> {
        goto!(done(item.0 + go.0))
    }

    #[state(end)]
    async fn done(_cx: &mut (), total: u32) -> Result<u32> {
        Ok(total)
    }
}

async fn serve() -> String {
    let engine = Engine::builder()
        .store(MemoryStore::new())
        .machine::<approval::Machine>()
        .machine::<opaque::Machine>()
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(flow_server::serve(listener, engine, ServerConfig::new()));
    format!("http://{address}")
}

async fn get(url: String) -> Value {
    let response = Client::new().get(url).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn machines_carry_their_input_and_signal_schemas() {
    let base = serve().await;
    let listed = get(format!("{base}/machines")).await;
    let approval = listed.as_array().unwrap().iter().find(|m| m["name"] == "approval").unwrap();
    assert_eq!(*approval, get(format!("{base}/machines/approval")).await);

    let input = &approval["input_schema"];
    assert_eq!(input["title"], "Memo");
    assert_eq!(input["properties"]["title"]["type"], "string");
    assert_eq!(input["properties"]["pages"]["type"], "integer");
    let signals = approval["signal_schemas"].as_object().unwrap();
    assert_eq!(signals.keys().collect::<Vec<_>>(), ["review"]);
    let decision = &signals["review"];
    assert_eq!(decision["title"], "Decision");
    let text = decision.to_string();
    assert!(text.contains("\"Approve\"") && text.contains("\"Reject\""), "{decision}");

    let opaque = get(format!("{base}/machines/opaque")).await;
    assert_eq!(opaque["input_schema"], Value::Null);
    assert_eq!(opaque["signal_schemas"], json!({}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_describes_the_schemas() {
    let base = serve().await;
    let doc = get(format!("{base}/openapi.json")).await;
    let machine = &doc["components"]["schemas"]["Machine"];
    let properties = machine["properties"].as_object().unwrap();
    assert!(properties.contains_key("input_schema"), "{machine}");
    assert_eq!(properties["signal_schemas"]["type"], "object", "{machine}");
    let required: Vec<&str> =
        machine["required"].as_array().unwrap().iter().filter_map(Value::as_str).collect();
    assert!(required.contains(&"signal_schemas"), "{machine}");
    assert!(!required.contains(&"input_schema"), "{machine}");
}
