//! Typed durable signals: a state waits for a value from outside (a reviewer's decision),
//! across restarts, with a timeout that takes a declared default path.

mod common;

use std::time::Duration;

use flow::history::Outcome;
use flow::prelude::*;
use flow::store::{MemoryStore, SqliteStore, Status};
use flow::{Engine, EngineError, EventKind, RunError, RunId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    Approve,
    Reject(String),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comment(pub String);

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desk {
    pub reviews: u32,
}

#[flow::machine]
pub mod approval {
    use super::*;

    #[state(start, to(review))]
    async fn submit(_cx: &mut Desk, doc: String) -> Result<Submit> {
        goto!(review(doc))
    }

    #[state(to(publish, revise, escalate), signal(timeout = "3d", default = escalate))]
    async fn review(cx: &mut Desk, doc: String, #[signal] decision: Decision) -> Result<Review> {
        cx.reviews += 1;
        match decision {
            Decision::Approve => goto!(publish(doc)),
            Decision::Reject(why) => goto!(revise(doc, why)),
        }
    }

    #[state(to(review))]
    async fn revise(_cx: &mut Desk, doc: String, why: String) -> Result<Revise> {
        goto!(review(format!("{doc}, revised ({why})")))
    }

    /// Nobody reviewed in time: a manager comments, without a deadline.
    #[state(to(publish))]
    async fn escalate(_cx: &mut Desk, doc: String, #[signal] note: Comment) -> Result<Escalate> {
        goto!(publish(format!("{doc} [{}]", note.0)))
    }

    #[state(end)]
    async fn publish(cx: &mut Desk, doc: String) -> Result<String> {
        Ok(format!("published {doc} after {} review(s)", cx.reviews))
    }
}

type Approval = approval::Machine;

fn engine(store: impl flow::store::CheckpointStore) -> Engine {
    Engine::builder().store(store).machine::<Approval>().build().unwrap()
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

/// Waits for `run`'s next wait for a signal, in `state`.
async fn until_waiting(events: &mut flow::Events, run: RunId, state: &str) {
    while let Some(event) = events.next().await {
        if event.run == run && matches!(event.kind, EventKind::WaitingForSignal { .. }) {
            assert_eq!(event.state, state);
            return;
        }
    }
    panic!("run {run} never waited in `{state}`");
}

#[test]
fn a_signal_sent_after_a_restart_resumes_the_run() {
    let path = common::db("signals-restart");
    let run = runtime().block_on(async {
        let engine = engine(SqliteStore::open(&path).unwrap());
        let mut events = engine.events();
        let run = engine.start::<Approval>("memo".into()).await.unwrap().id();
        until_waiting(&mut events, run, "review").await;
        run
    }); // the process exits while the run waits for its reviewer

    runtime().block_on(async {
        // A new process signals the run before resuming anything: the signal is checkpointed
        // and the run goes on here.
        let engine = engine(SqliteStore::open(&path).unwrap());
        let mut events = engine.events();
        engine.signal::<Approval, _>(run, Decision::Reject("too long".into())).await.unwrap();
        until_waiting(&mut events, run, "review").await;
        // It loops back to review and waits again; the second decision goes to the live run.
        engine.signal::<Approval, _>(run, Decision::Approve).await.unwrap();
        let output = engine.handle::<Approval>(run).await.unwrap().output().await.unwrap();
        assert_eq!(output, "published memo, revised (too long) after 2 review(s)");
        let status = engine.status(run).await.unwrap();
        let path: Vec<_> = status.history.iter().map(|e| e.state).collect();
        assert_eq!(path, ["submit", "review", "revise", "review", "publish"]);
    });
}

#[tokio::test(start_paused = true)]
async fn a_signal_timeout_takes_the_default_path() {
    // Deadlines are read on the engine's clock: one that follows tokio's paused clock.
    let engine = flow::testing::engine().machine::<Approval>().build().unwrap();
    let mut events = engine.events();
    let started = tokio::time::Instant::now();
    let handle = engine.start::<Approval>("plan".into()).await.unwrap();
    let run = handle.id();
    until_waiting(&mut events, run, "review").await;
    until_waiting(&mut events, run, "escalate").await;
    assert_eq!(started.elapsed().as_secs(), 3 * 24 * 3600, "three days, not a moment more");

    engine.signal::<Approval, _>(run, Comment("ok by me".into())).await.unwrap();
    assert_eq!(handle.output().await.unwrap(), "published plan [ok by me] after 0 review(s)");
    let status = engine.status(run).await.unwrap();
    assert_eq!(status.history[1].outcome, Outcome::NoSignal { to: "escalate" });
    assert_eq!(status.history[1].to_string(), "review #1 (0.0ns): no signal in time → escalate");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_signal_or_run_is_refused_and_the_run_is_unharmed() {
    let engine = engine(MemoryStore::new());
    let mut events = engine.events();
    let handle = engine.start::<Approval>("spec".into()).await.unwrap();
    let run = handle.id();
    until_waiting(&mut events, run, "review").await;

    let wrong = engine.signal::<Approval, _>(run, Comment("hi".into())).await.unwrap_err();
    assert!(matches!(&wrong, EngineError::WrongSignal { state, .. } if state == "review"));
    assert_eq!(
        wrong.to_string(),
        format!(
            "run {run} waits in state `review` for a Decision, not a signals::Comment; \
             nothing was delivered"
        )
    );
    let ghost = RunId::from_u128(404);
    let unknown = engine.signal::<Approval, _>(ghost, Decision::Approve).await.unwrap_err();
    assert!(matches!(unknown, EngineError::UnknownRun { run } if run == ghost), "{unknown}");

    // Still waiting, as it was: the right signal goes through.
    assert_eq!(engine.status(run).await.unwrap().status, Status::Running);
    engine.signal::<Approval, _>(run, Decision::Approve).await.unwrap();
    assert_eq!(handle.output().await.unwrap(), "published spec after 1 review(s)");

    let late = engine.signal::<Approval, _>(run, Decision::Approve).await.unwrap_err();
    assert!(matches!(late, EngineError::NotWaiting { .. }), "{late}");
}

#[tokio::test(start_paused = true)]
async fn in_memory_a_wait_without_timeout_is_a_clear_error() {
    let error = approval::run("note".into(), &mut Desk::default()).await.unwrap_err();
    let RunError::NoSignal { state, ref history } = error else {
        panic!("expected NoSignal, got {error}");
    };
    assert_eq!(state, "escalate");
    assert_eq!(history.len(), 2, "submit, then review's timeout");
    assert!(error.to_string().contains("only an Engine delivers signals"), "{error}");
}

#[test]
fn the_graph_shows_the_wait() {
    let review = approval::graph().state("review").unwrap();
    let signal = review.signal.unwrap();
    assert_eq!(
        (signal.ty, signal.timeout, signal.default),
        ("Decision", Some(Duration::from_secs(3 * 24 * 3600)), Some("escalate"))
    );
    assert!(
        approval::graph()
            .to_mermaid()
            .contains("review : review (waits for Decision, 259200s then escalate)")
    );
}
