//! JSON Schemas of machines' inputs and signals (the `schemars` feature, which this package's
//! dev-dependencies turn on): a machine whose types derive `schemars::JsonSchema` describes
//! what `Engine::start_json` and `Engine::signal_json` take; one whose types do not still
//! compiles and runs, without schemas.

use flow::prelude::*;
use flow::store::MemoryStore;
use flow::{Engine, MachineInfo, StartJson};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Order {
    pub id: u32,
    pub customer: String,
    pub express: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub enum Verdict {
    Approve,
    Reject,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Decision {
    pub verdict: Verdict,
    pub note: Option<String>,
}

/// Serde, but no schema.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Opaque {
    pub id: u32,
}

#[flow::machine]
pub mod described {
    use super::*;

    #[state(start, to(done))]
    async fn review(_cx: &mut (), order: Order, #[signal] decision: Decision) -> Result<Review> {
        goto!(done(format!("{} {:?}", order.id, decision.verdict)))
    }

    #[state(end)]
    async fn done(_cx: &mut (), text: String) -> Result<String> {
        Ok(text)
    }
}

#[flow::machine]
pub mod pair {
    use super::*;

    #[state(start, end)]
    async fn count(_cx: &mut (), name: String, times: u32) -> Result<String> {
        Ok(name.repeat(times as usize))
    }
}

#[flow::machine]
pub mod nothing {
    use super::*;

    #[state(start, end)]
    async fn tick(_cx: &mut ()) -> Result<u32> {
        Ok(1)
    }
}

#[flow::machine]
pub mod undescribed {
    use super::*;

    #[state(start, to(done))]
    async fn hold(_cx: &mut (), item: Opaque, #[signal] go: Opaque) -> Result<Hold> {
        goto!(done(item.id + go.id))
    }

    #[state(end)]
    async fn done(_cx: &mut (), total: u32) -> Result<u32> {
        Ok(total)
    }
}

fn engine() -> Engine {
    Engine::builder()
        .store(MemoryStore::new())
        .machine::<described::Machine>()
        .machine::<pair::Machine>()
        .machine::<nothing::Machine>()
        .machine::<undescribed::Machine>()
        .build()
        .unwrap()
}

fn info(engine: &Engine, name: &str) -> MachineInfo {
    engine.machine(name).unwrap()
}

/// Waits until `run` waits for its signal in the store, where a signal reaches it.
async fn waiting(engine: &Engine, run: flow::RunId) {
    for _ in 0..500 {
        if engine.status(run).await.unwrap().wait == Some(flow::store::Wait::Signal) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("run {run} never waited for its signal");
}

/// The definition `schema` refers to by `$ref`, or `schema` itself.
fn resolved<'a>(root: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str().and_then(|path| path.strip_prefix("#/$defs/")) {
        Some(name) => &root["$defs"][name],
        None => schema,
    }
}

#[test]
fn the_input_schema_describes_the_start_payload() {
    let engine = engine();
    let schema = info(&engine, "described").input_schema.expect("Order derives JsonSchema");
    assert_eq!(schema["title"], "Order");
    assert_eq!(schema["type"], "object");
    let properties = &schema["properties"];
    assert_eq!(properties["id"]["type"], "integer");
    assert_eq!(properties["customer"]["type"], "string");
    assert_eq!(properties["express"]["type"], "boolean");
    assert_eq!(schema["required"], json!(["id", "customer", "express"]));
}

#[test]
fn a_signal_schema_is_keyed_by_the_state_that_waits() {
    let engine = engine();
    let info = info(&engine, "described");
    assert_eq!(info.signal_schemas.keys().copied().collect::<Vec<_>>(), ["review"]);
    let schema = &info.signal_schemas["review"];
    assert_eq!(schema["title"], "Decision");
    let verdict = resolved(schema, &schema["properties"]["verdict"]);
    assert_eq!(verdict["enum"], json!(["Approve", "Reject"]));
    assert_eq!(schema["required"], json!(["verdict"]));
}

#[test]
fn several_payload_values_are_an_array_and_none_is_null() {
    let engine = engine();
    let pair = info(&engine, "pair").input_schema.expect("String and u32 have schemas");
    assert_eq!(pair["type"], "array");
    assert_eq!(pair["prefixItems"][0]["type"], "string");
    assert_eq!(pair["prefixItems"][1]["type"], "integer");
    assert_eq!((pair["minItems"].as_u64(), pair["maxItems"].as_u64()), (Some(2), Some(2)));
    let nothing = info(&engine, "nothing").input_schema.expect("() has a schema");
    assert_eq!(nothing["type"], "null");
    assert!(info(&engine, "nothing").signal_schemas.is_empty());
}

#[tokio::test]
async fn what_the_schemas_describe_is_what_the_engine_takes() {
    let engine = engine();
    let run = engine.start_json("pair", StartJson::new(json!(["ab", 2]))).await.unwrap();
    assert_eq!(engine.handle::<pair::Machine>(run).await.unwrap().output().await.unwrap(), "abab");
    let run = engine.start_json("nothing", StartJson::new(Value::Null)).await.unwrap();
    assert_eq!(engine.handle::<nothing::Machine>(run).await.unwrap().output().await.unwrap(), 1);
    let order = json!({ "id": 7, "customer": "Ada", "express": true });
    let run = engine.start_json("described", StartJson::new(order)).await.unwrap();
    waiting(&engine, run).await;
    engine.signal_json(run, json!({ "verdict": "Approve" })).await.unwrap();
    let output = engine.handle::<described::Machine>(run).await.unwrap().output().await.unwrap();
    assert_eq!(output, "7 Approve");
}

#[tokio::test]
async fn types_without_json_schema_have_none_and_still_run() {
    let engine = engine();
    let info = info(&engine, "undescribed");
    assert_eq!(info.input_schema, None);
    assert!(info.signal_schemas.is_empty());
    assert!(info.graph.states[0].signal.is_some(), "the state still waits for its signal");
    let run = engine.start_json("undescribed", StartJson::new(json!({ "id": 2 }))).await.unwrap();
    waiting(&engine, run).await;
    engine.signal_json(run, json!({ "id": 3 })).await.unwrap();
    let output = engine.handle::<undescribed::Machine>(run).await.unwrap().output().await.unwrap();
    assert_eq!(output, 5);
}

#[test]
fn machine_info_serializes_its_schemas() {
    let engine = engine();
    let value = serde_json::to_value(info(&engine, "described")).unwrap();
    assert_eq!(value["input_schema"]["properties"]["id"]["type"], "integer");
    assert_eq!(value["signal_schemas"]["review"]["title"], "Decision");
    let value = serde_json::to_value(info(&engine, "undescribed")).unwrap();
    assert_eq!(value["input_schema"], Value::Null);
    assert_eq!(value["signal_schemas"], json!({}));
}
