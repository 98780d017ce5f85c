//! Machines and runs by name and JSON: listing machines, starting runs from a JSON input,
//! delivering JSON signals decoded as the type the run's state waits for, and the errors that
//! say where a value does not fit.

use flow::prelude::*;
use flow::store::MemoryStore;
use flow::{Engine, EngineError, EventKind, JsonError, JsonPart, StartJson};
use serde::{Deserialize, Serialize};
use serde_json::json;

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

    #[state(start, end)]
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
            Decision::Approve { by } => goto!(publish(format!("{doc} by {by}"))),
            Decision::Reject(why) => goto!(publish(format!("{doc}: rejected, {why}"))),
        }
    }

    #[state(end)]
    async fn publish(cx: &mut Desk, doc: String) -> Result<String> {
        Ok(format!("{doc} after {} review(s)", cx.reviews))
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn engine() -> Engine {
    Engine::builder()
        .store(MemoryStore::new())
        .machine::<total::Machine>()
        .machine::<approval::Machine>()
        .default_context::<approval::Machine>(Desk::default)
        .build()
        .unwrap()
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

#[test]
fn machines_are_listed_with_their_graphs() {
    runtime().block_on(async {
        let engine = engine();
        let machines = engine.machines();
        let names: Vec<_> = machines.iter().map(|info| info.name).collect();
        assert_eq!(names, ["approval", "total"]);
        assert!(machines.iter().all(|info| info.default_context));
        assert_eq!(machines[0].mermaid, approval::graph().to_mermaid());
        let json = serde_json::to_value(&machines[1]).unwrap();
        assert_eq!(json["graph"]["states"][0]["name"], "sum");
        assert!(matches!(engine.machine("nope"), Err(EngineError::UnknownMachine { .. })));
    });
}

#[test]
fn a_run_starts_from_json_and_a_bad_input_says_where() {
    runtime().block_on(async {
        let engine = engine();
        let order = json!({ "id": 1, "lines": [{ "sku": "a", "cents": 250 }, { "sku": "b", "cents": 50 }] });
        let run = engine.start_json("total", StartJson::new(order.clone())).await.unwrap();
        assert_eq!(engine.handle::<total::Machine>(run).await.unwrap().output().await.unwrap(), 300);
        assert_eq!(engine.status(run).await.unwrap().output, Some(json!(300)));

        let bad = json!({ "id": 2, "lines": [{ "sku": "a", "cents": 1 }, { "sku": "b", "cents": "ten" }] });
        let Err(JsonError::Decode(error)) = engine.start_json("total", StartJson::new(bad)).await
        else {
            panic!("a string is no number of cents")
        };
        assert_eq!(error.part, JsonPart::Input);
        assert_eq!(error.path, "lines[1].cents");
        assert_eq!(error.expected, "Order");
        assert!(error.message.contains("expected u32"), "{error}");
        assert!(error.to_string().contains("at `lines[1].cents`"), "{error}");

        let missing = json!({ "id": 3 });
        let Err(JsonError::Decode(error)) = engine.start_json("total", StartJson::new(missing)).await
        else {
            panic!("an order has lines")
        };
        assert!(error.message.contains("missing field `lines`"), "{error}");

        let unknown = engine.start_json("nope", StartJson::new(json!(null))).await;
        assert!(matches!(unknown, Err(JsonError::Engine(EngineError::UnknownMachine { .. }))));

        // A key starts one run.
        let keyed = StartJson::new(order).key("order-1");
        let first = engine.start_json("total", keyed.clone()).await.unwrap();
        assert_eq!(first, flow::RunId::for_key("total", "order-1"));
        let again = engine.start_json("total", keyed).await;
        assert!(matches!(again, Err(JsonError::Engine(EngineError::AlreadyExists { .. }))));
        assert_eq!(engine.list(flow::store::Filter::new()).await.unwrap().len(), 2);
        let summary = engine.summary(first).await.unwrap();
        assert_eq!((summary.key.as_deref(), summary.machine.as_str()), (Some("order-1"), "total"));
        let unknown = engine.summary(flow::RunId::random()).await;
        assert!(matches!(unknown, Err(EngineError::UnknownRun { .. })));
    });
}

#[test]
fn a_context_is_given_decoded_or_required() {
    runtime().block_on(async {
        let engine = engine();
        let start = StartJson::new(json!("memo")).context(json!({ "reviews": 2 }));
        let run = engine.start_json("approval", start).await.unwrap();
        waiting(&engine, run).await;
        engine.signal_json(run, json!({ "Approve": { "by": "ada" } })).await.unwrap();
        let output = engine.handle::<approval::Machine>(run).await.unwrap().output().await;
        assert_eq!(output.unwrap(), "memo by ada after 3 review(s)");

        let bad = StartJson::new(json!("memo")).context(json!({ "reviews": -1 }));
        let Err(JsonError::Decode(error)) = engine.start_json("approval", bad).await else {
            panic!("reviews are counted from 0")
        };
        assert_eq!((error.part, error.path.as_str()), (JsonPart::Context, "reviews"));

        // Without a registered default, a context other than `()` is required.
        let bare = Engine::builder().machine::<approval::Machine>().build().unwrap();
        assert!(!bare.machine("approval").unwrap().default_context);
        let refused = bare.start_json("approval", StartJson::new(json!("memo"))).await;
        assert!(matches!(refused, Err(JsonError::ContextRequired { .. })), "{refused:?}");

        // A default for a machine that is not registered is a configuration error.
        let built = Engine::builder().default_context::<approval::Machine>(Desk::default).build();
        assert!(matches!(built, Err(EngineError::Config { .. })));
    });
}

#[test]
fn a_json_signal_is_decoded_as_the_waiting_states_type() {
    runtime().block_on(async {
        let engine = engine();
        let run = engine.start_json("approval", StartJson::new(json!("memo"))).await.unwrap();
        waiting(&engine, run).await;
        let handle = engine.handle::<approval::Machine>(run).await.unwrap();

        let Err(JsonError::Decode(error)) =
            engine.signal_json(run, json!({ "Approve": { "by": 7 } })).await
        else {
            panic!("a number is no name")
        };
        assert_eq!(error.part, JsonPart::Signal);
        assert_eq!(error.state.as_deref(), Some("review"));
        assert_eq!(error.expected, "Decision");
        assert_eq!(error.path, "Approve.by");
        assert!(error.message.contains("expected a string"), "{error}");

        let Err(JsonError::Decode(error)) = engine.signal_json(run, json!("Maybe")).await else {
            panic!("no such decision")
        };
        assert!(error.message.contains("unknown variant `Maybe`"), "{error}");

        let Err(JsonError::Decode(_)) = engine.signal_json(run, json!(null)).await else {
            panic!("null is no decision")
        };

        let mut events = engine.events_of(run);
        engine.signal_json(run, json!({ "Reject": "too long" })).await.unwrap();
        assert!(events.until(|event| event.kind == EventKind::SignalReceived).await.is_some());
        assert_eq!(handle.output().await.unwrap(), "memo: rejected, too long after 1 review(s)");

        // Finished: it waits for nothing now.
        let late = engine.signal_json(run, json!({ "Reject": "late" })).await;
        assert!(matches!(late, Err(JsonError::Engine(EngineError::NotWaiting { .. }))));
        let unknown = engine.signal_json(flow::RunId::random(), json!(1)).await;
        assert!(matches!(unknown, Err(JsonError::Engine(EngineError::UnknownRun { .. }))));

        // A run whose state takes no signal.
        let order = json!({ "id": 1, "lines": [] });
        let total = engine.start_json("total", StartJson::new(order)).await.unwrap();
        engine.handle::<total::Machine>(total).await.unwrap().output().await.unwrap();
        let refused = engine.signal_json(total, json!(1)).await;
        assert!(matches!(refused, Err(JsonError::Engine(EngineError::NotWaiting { .. }))));
    });
}
