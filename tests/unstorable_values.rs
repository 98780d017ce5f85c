//! What the store cannot give back is never written: a NaN or an infinite float (which JSON
//! holds as `null`), a value nested deeper than a checkpoint is read back. A start or a signal
//! carrying one is refused with nothing stored; a state returning one fails that attempt, and
//! the run goes on from its last checkpoint, readable after a restart.

mod common;

use flow::history::{Failure, Outcome};
use flow::prelude::*;
use flow::store::{Filter, SqliteStore, Status};
use flow::testing::TestClock;
use flow::{Engine, EngineError, EventKind, RunError, RunId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Gauge {
    pub reading: f64,
}

/// A value as deep as it is long: `{"Node":{"Node":…"Leaf"}}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Tree {
    Leaf,
    Node(Box<Tree>),
}

fn tree(depth: usize) -> Tree {
    (0..depth).fold(Tree::Leaf, |tree, _| Tree::Node(Box::new(tree)))
}

fn depth(mut tree: &Tree) -> usize {
    let mut depth = 0;
    while let Tree::Node(inner) = tree {
        (tree, depth) = (inner, depth + 1);
    }
    depth
}

/// What a run does wrong, on its first `bad` attempts of the state concerned.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub enum Fault {
    None,
    /// `read` leaves an infinite reading in the context.
    InfiniteContext,
    /// `read` goes to `branch` with a tree 150 levels deep.
    DeepPayload,
    /// `finish` returns NaN.
    NanOutput,
    /// `read` goes to `hold`, which waits for a signal.
    Signal,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Plan {
    pub fault: Fault,
    pub bad: u32,
    /// Added to the output.
    pub offset: f64,
}

fn plan(fault: Fault, bad: u32) -> Plan {
    Plan { fault, bad, offset: 0.0 }
}

/// What `hold` waits for.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Sample {
    pub value: f64,
    pub tree: Tree,
}

fn bad(plan: &Plan) -> bool {
    flow::current().expect("inside a state").attempt <= plan.bad
}

#[flow::machine]
pub mod gauge {
    use super::*;

    #[state(start, to(branch, hold, finish), retry(attempts = 2, backoff = "1ms"))]
    async fn read(cx: &mut Gauge, plan: Plan) -> Result<Read> {
        // Each attempt counts itself: one whose context was not stored leaves no trace.
        cx.reading += 1.0;
        match plan.fault {
            Fault::InfiniteContext if bad(&plan) => cx.reading = f64::INFINITY,
            Fault::DeepPayload => {
                let depth = if bad(&plan) { 150 } else { 3 };
                return goto!(branch(plan, tree(depth)));
            }
            Fault::Signal => return goto!(hold(plan)),
            _ => {}
        }
        goto!(finish(plan))
    }

    #[state(to(finish))]
    async fn branch(cx: &mut Gauge, plan: Plan, tree: Tree) -> Result<Branch> {
        cx.reading += depth(&tree) as f64;
        goto!(finish(plan))
    }

    #[state(to(finish))]
    async fn hold(cx: &mut Gauge, plan: Plan, #[signal] sample: Sample) -> Result<Hold> {
        cx.reading += sample.value;
        goto!(finish(plan))
    }

    #[state(end, retry(attempts = 2, backoff = "1ms"))]
    async fn finish(cx: &mut Gauge, plan: Plan) -> Result<f64> {
        if matches!(plan.fault, Fault::NanOutput) && bad(&plan) {
            return Ok(f64::NAN);
        }
        Ok(cx.reading + plan.offset)
    }
}

type Machine = gauge::Machine;

fn engine() -> Engine {
    flow::testing::engine().machine::<Machine>().build().unwrap()
}

/// The message of the failure of attempt `attempt` of `state`, from the run's history.
async fn failure_of(engine: &Engine, run: RunId, state: &str, attempt: u32) -> String {
    let status = engine.status(run).await.unwrap();
    let entry = status.history.iter().find(|e| e.state == state && e.attempt == attempt);
    match entry.map(|e| &e.outcome) {
        Some(Outcome::Failed {
            failure: Failure::Error { message, permanent: false, .. }, ..
        }) => message.clone(),
        other => panic!("{state} #{attempt} did not fail with an error: {other:?}"),
    }
}

/// The history as `(state, attempt)`.
async fn path(engine: &Engine, run: RunId) -> Vec<(&'static str, u32)> {
    let status = engine.status(run).await.unwrap();
    status.history.iter().map(|e| (e.state, e.attempt)).collect()
}

#[test]
fn a_nan_output_fails_its_attempt_and_the_run_stays_readable_after_a_restart() {
    let store = common::db("unstorable-nan-output");
    let runtime = || {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    };
    let engine_on = || {
        Engine::builder()
            .store(SqliteStore::open(&store).unwrap())
            .machine::<Machine>()
            .clock(TestClock::new())
            .build()
            .unwrap()
    };
    let (once, always, fine) = runtime().block_on(async {
        let engine = engine_on();
        let once = engine.start::<Machine>(plan(Fault::NanOutput, 1)).await.unwrap();
        let always = engine.start::<Machine>(plan(Fault::NanOutput, 2)).await.unwrap();
        let fine = engine.start::<Machine>(plan(Fault::None, 0)).await.unwrap();
        let ids = (once.id(), always.id(), fine.id());

        // The first attempt's NaN was refused; the retry's output was stored.
        assert_eq!(once.output().await.unwrap(), 1.0);
        let run = ids.0;
        assert_eq!(path(&engine, run).await, [("read", 1), ("finish", 1), ("finish", 2)]);
        let message = failure_of(&engine, run, "finish", 1).await;
        assert!(
            message.starts_with(&format!(
                "run {run} of machine `gauge`: its checkpoint in state `finish` would not read \
                 back (invalid type: null, expected f64"
            )),
            "{message}"
        );

        // Refused on every attempt: the run failed, as with any error, and says why.
        let error = always.output().await.unwrap_err();
        let EngineError::Failed { error: RunError::StateFailed { state, attempts, .. }, .. } =
            &error
        else {
            panic!("expected the run to fail in `finish`, got {error:?}");
        };
        assert_eq!((*state, attempts.len()), ("finish", 2));
        assert!(error.to_string().contains("would not read back"), "{error}");

        assert_eq!(fine.output().await.unwrap(), 1.0);
        ids
    });

    // A new process reads every run back: none is stuck, each output is as it was.
    runtime().block_on(async {
        let engine = engine_on();
        let report = engine.resume_pending().await.unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(engine.status(once).await.unwrap().status, Status::Completed);
        assert_eq!(engine.handle::<Machine>(once).await.unwrap().output().await.unwrap(), 1.0);
        assert_eq!(engine.status(always).await.unwrap().status, Status::Failed);
        let error = engine.handle::<Machine>(always).await.unwrap().output().await.unwrap_err();
        assert!(matches!(error, EngineError::Failed { .. }), "{error:?}");
        assert_eq!(engine.handle::<Machine>(fine).await.unwrap().output().await.unwrap(), 1.0);
        assert!(engine.list(Filter::new().status(Status::Stuck)).await.unwrap().is_empty());
    });
}

#[tokio::test(start_paused = true)]
async fn an_infinite_context_fails_its_attempt_and_the_context_is_put_back() {
    let engine = engine();
    let handle = engine.start::<Machine>(plan(Fault::InfiniteContext, 1)).await.unwrap();
    let run = handle.id();
    // 1.0, not infinity: the retry began from the context as last stored (0.0), not from
    // what the refused attempt left.
    assert_eq!(handle.output().await.unwrap(), 1.0);
    assert_eq!(path(&engine, run).await, [("read", 1), ("read", 2), ("finish", 1)]);
    let message = failure_of(&engine, run, "read", 1).await;
    assert!(message.contains(&format!("run {run} of machine `gauge`")), "{message}");
    assert!(message.contains("would not read back"), "{message}");
}

#[tokio::test(start_paused = true)]
async fn a_payload_nested_too_deep_fails_its_attempt_and_the_run_goes_on() {
    let engine = engine();
    let other = engine.start::<Machine>(plan(Fault::None, 0)).await.unwrap();
    let handle = engine.start::<Machine>(plan(Fault::DeepPayload, 1)).await.unwrap();
    let run = handle.id();
    // `read` counted once (its refused attempt's count was not stored), `branch` 3 levels.
    assert_eq!(handle.output().await.unwrap(), 4.0);
    assert_eq!(path(&engine, run).await, [("read", 1), ("read", 2), ("branch", 1), ("finish", 1)]);
    let message = failure_of(&engine, run, "read", 1).await;
    assert!(
        message.contains("its checkpoint in state `branch` would not read back (recursion limit"),
        "{message}"
    );
    assert_eq!(other.output().await.unwrap(), 1.0);

    // Too deep on every attempt: the run fails, readable.
    let failed = engine.start::<Machine>(plan(Fault::DeepPayload, 2)).await.unwrap();
    let failed_run = failed.id();
    let error = failed.output().await.unwrap_err();
    assert!(matches!(&error, EngineError::Failed { error, .. } if error.state() == "read"));
    assert_eq!(engine.status(failed_run).await.unwrap().status, Status::Failed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_signal_that_would_not_read_back_is_refused_and_the_run_still_waits() {
    let engine = engine();
    let mut events = engine.events();
    let handle = engine.start::<Machine>(plan(Fault::Signal, 0)).await.unwrap();
    let run = handle.id();
    while let Some(event) = events.next().await {
        if event.run == run && matches!(event.kind, EventKind::WaitingForSignal { .. }) {
            break;
        }
    }

    for sample in
        [Sample { value: f64::NAN, tree: Tree::Leaf }, Sample { value: 1.0, tree: tree(150) }]
    {
        let error = engine.signal::<Machine, _>(run, sample).await.unwrap_err();
        let EngineError::Unstorable { run: refused, state: "hold", .. } = &error else {
            panic!("expected the signal to be refused, got {error:?}");
        };
        assert_eq!(*refused, run);
        assert!(
            error.to_string().starts_with(&format!(
                "run {run} of machine `gauge`: its checkpoint in state `hold` would not read back"
            )),
            "{error}"
        );
        // Nothing was delivered: the run waits as it did.
        let status = engine.status(run).await.unwrap();
        assert_eq!((status.state.as_str(), status.seq), ("hold", 1));
    }

    engine.signal::<Machine, _>(run, Sample { value: 2.0, tree: Tree::Leaf }).await.unwrap();
    assert_eq!(handle.output().await.unwrap(), 3.0);
}

#[tokio::test(start_paused = true)]
async fn a_start_that_would_not_read_back_stores_nothing() {
    let engine = engine();
    let run = RunId::random();
    let nan = Plan { offset: f64::NAN, ..plan(Fault::None, 0) };
    let error = engine.start_as::<Machine>(run, nan, Gauge::default()).await.unwrap_err();
    let EngineError::Unstorable { run: refused, state: "read", .. } = &error else {
        panic!("expected the start to be refused, got {error:?}");
    };
    assert_eq!(*refused, run);
    assert!(matches!(engine.status(run).await, Err(EngineError::UnknownRun { .. })));

    let infinite = Gauge { reading: f64::INFINITY };
    let error = engine.start_as::<Machine>(run, plan(Fault::None, 0), infinite).await.unwrap_err();
    assert!(matches!(error, EngineError::Unstorable { state: "read", .. }), "{error:?}");
    assert!(engine.list(Filter::new()).await.unwrap().is_empty());

    // The id is still free.
    let handle = engine.start_as::<Machine>(run, plan(Fault::None, 0), Gauge::default()).await;
    assert_eq!(handle.unwrap().output().await.unwrap(), 1.0);
}

/// An output that is JSON `null` (here `()`) is an output, not the lack of one.
#[flow::machine]
pub mod chore {
    use super::*;

    #[state(start, end)]
    async fn sweep(_cx: &mut Gauge, rooms: u32) -> Result<()> {
        let _ = rooms;
        Ok(())
    }
}

#[tokio::test(start_paused = true)]
async fn an_output_written_as_null_reads_back() {
    let engine = flow::testing::engine().machine::<chore::Machine>().build().unwrap();
    let handle = engine.start::<chore::Machine>(3).await.unwrap();
    let run = handle.id();
    handle.output().await.unwrap();
    // Read from the store this time.
    engine.handle::<chore::Machine>(run).await.unwrap().output().await.unwrap();
}
