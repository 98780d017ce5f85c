//! What a state's final failure leads to: a typed fallback state that receives the failure
//! (`fallback = state`, which catches the state's `max_visits` too), a pause for an operator
//! (`on_failure = pause`), or, by default, the run's failure.

use std::sync::atomic::{AtomicBool, Ordering};

use flow::history::{Failure, Outcome};
use flow::prelude::*;
use flow::store::{MemoryStore, Status};
use flow::{Caught, Engine, EngineError, EventKind, OnFailure, RunError};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desk {
    pub tries: u32,
}

#[flow::machine]
pub mod payout {
    use super::*;

    #[state(start, to(sent), retry(attempts = 3, backoff = "1ms"), fallback = manual)]
    async fn send(cx: &mut Desk, cents: u64) -> Result<Send> {
        cx.tries += 1;
        if cents > 1_000 {
            return Err(Error::retryable(format!("bank refused {cents} cents")));
        }
        goto!(sent(cents))
    }

    #[state(end)]
    async fn sent(_cx: &mut Desk, cents: u64) -> Result<String> {
        Ok(format!("sent {cents} cents"))
    }

    /// Where a refused payout goes: a person looks at it.
    #[state(end)]
    async fn manual(cx: &mut Desk, failure: Caught) -> Result<String> {
        Ok(format!("queued for a person after {} tries: {failure}", cx.tries))
    }
}

#[tokio::test]
async fn a_failure_goes_to_the_fallback_with_the_error_as_its_payload() {
    let mut desk = Desk::default();
    let done = payout::run(5_000, &mut desk).await.unwrap();
    assert_eq!(
        done.output,
        "queued for a person after 3 tries: state `send` failed after 3 attempt(s); \
         last: error: bank refused 5000 cents"
    );
    let outcomes: Vec<String> =
        done.history.iter().map(|entry| format!("{} {}", entry.state, entry.outcome)).collect();
    assert_eq!(outcomes.len(), 5, "{outcomes:?}");
    assert!(outcomes[2].starts_with("send error: bank refused 5000 cents; no retry"));
    assert_eq!(outcomes[3], "send failed → fallback manual");
    assert_eq!(outcomes[4], "manual completed");

    let ok = payout::run(500, &mut Desk::default()).await.unwrap();
    assert_eq!(ok.output, "sent 500 cents");
}

#[test]
fn the_fallback_is_an_edge_of_the_graph() {
    let graph = payout::graph();
    assert_eq!(graph.state("send").unwrap().policy.on_failure, OnFailure::Fallback("manual"));
    assert_eq!(graph.fallbacks().collect::<Vec<_>>(), [("send", "manual")]);
    assert_eq!(graph.targets("send").collect::<Vec<_>>(), ["sent"]);
    let mermaid = graph.to_mermaid();
    assert!(mermaid.contains("    send --> manual : on failure\n"), "{mermaid}");
    let dot = graph.to_dot();
    assert!(dot.contains("    send -> manual [style=dashed, label=\"on failure\"];\n"), "{dot}");
}

/// The ledger service a mailing depends on; an operator mends it.
static LEDGER_UP: AtomicBool = AtomicBool::new(false);

#[flow::machine]
pub mod mailing {
    use super::*;

    #[state(start, to(done), retry(attempts = 2, backoff = "1ms"), on_failure = pause)]
    async fn post(cx: &mut Desk, letters: u32) -> Result<Post> {
        cx.tries += 1;
        if !LEDGER_UP.load(Ordering::SeqCst) {
            return Err(Error::retryable("ledger unreachable"));
        }
        goto!(done(letters))
    }

    #[state(end)]
    async fn done(cx: &mut Desk, letters: u32) -> Result<String> {
        Ok(format!("posted {letters} letters in {} tries", cx.tries))
    }
}

#[tokio::test]
async fn a_failure_pauses_the_run_until_an_operator_resumes_it() {
    let engine =
        Engine::builder().store(MemoryStore::new()).machine::<mailing::Machine>().build().unwrap();
    let mut events = engine.events();
    let run = engine.start::<mailing::Machine>(40).await.unwrap();
    let id = run.id();
    while let Some(event) = events.next().await {
        if event.kind == EventKind::Paused {
            assert_eq!(event.state, "post");
            break;
        }
    }
    assert!(matches!(run.output().await, Err(EngineError::Paused { .. })));
    let status = engine.status(id).await.unwrap();
    assert_eq!(status.status, Status::Paused);
    let Some(RunError::StateFailed { state: "post", attempts, .. }) = &status.error else {
        panic!("a paused run says why: {:?}", status.error);
    };
    let unreachable = Failure::error("ledger unreachable", false);
    assert_eq!(attempts, &[unreachable.clone(), unreachable]);

    // The operator mends the ledger and resumes the run: the state gets a fresh set of attempts.
    LEDGER_UP.store(true, Ordering::SeqCst);
    engine.resume(id).await.unwrap();
    let output = engine.handle::<mailing::Machine>(id).await.unwrap().output().await.unwrap();
    assert_eq!(output, "posted 40 letters in 3 tries");
    let attempts: Vec<u32> = engine
        .status(id)
        .await
        .unwrap()
        .history
        .iter()
        .filter(|entry| entry.state == "post")
        .map(|entry| entry.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 1]);
}

#[flow::machine]
pub mod mailing_in_memory {
    use super::*;

    #[state(start, to(done), on_failure = pause)]
    async fn post(_cx: &mut Desk, letters: u32) -> Result<Post> {
        Err(Error::retryable(format!("cannot post {letters} letters")))
    }

    #[state(end)]
    async fn done(_cx: &mut Desk, letters: u32) -> Result<u32> {
        Ok(letters)
    }
}

#[tokio::test]
async fn in_memory_nothing_can_resume_a_pause_so_the_run_fails() {
    let error = mailing_in_memory::run(3, &mut Desk::default()).await.unwrap_err();
    assert!(matches!(error, RunError::StateFailed { state: "post", .. }), "{error:?}");
    assert!(matches!(error.history().last().map(|e| &e.outcome), Some(Outcome::Failed { .. })));
}

/// A loop that never finds its answer for an odd question: `plan` → `act` → `plan` → …, three
/// plans at most (`max_visits = 3`), the fourth refused and caught by `give_up`.
#[flow::machine]
pub mod planner {
    use super::*;

    #[state(start, to(act, answered), max_visits = 3, fallback = give_up)]
    async fn plan(cx: &mut Desk, question: u32) -> Result<Plan> {
        cx.tries += 1;
        if question.is_multiple_of(2) {
            return goto!(answered(question));
        }
        goto!(act(question))
    }

    #[state(to(plan))]
    async fn act(_cx: &mut Desk, question: u32) -> Result<Act> {
        goto!(plan(question))
    }

    #[state(end)]
    async fn answered(cx: &mut Desk, question: u32) -> Result<String> {
        Ok(format!("answered {question} after {} plans", cx.tries))
    }

    /// Where a loop that will not end goes: it gives up, saying why.
    #[state(end)]
    async fn give_up(cx: &mut Desk, failure: Caught) -> Result<String> {
        Ok(format!("gave up after {} plans: {failure}; {:?}", cx.tries, failure.attempts))
    }
}

/// [`planner`] without the fallback: the loop guard ends the run.
#[flow::machine]
pub mod unguarded_planner {
    use super::*;

    #[state(start, to(act, answered), max_visits = 3)]
    async fn plan(cx: &mut Desk, question: u32) -> Result<Plan> {
        cx.tries += 1;
        if question.is_multiple_of(2) {
            return goto!(answered(question));
        }
        goto!(act(question))
    }

    #[state(to(plan))]
    async fn act(_cx: &mut Desk, question: u32) -> Result<Act> {
        goto!(plan(question))
    }

    #[state(end)]
    async fn answered(_cx: &mut Desk, question: u32) -> Result<String> {
        Ok(format!("answered {question}"))
    }
}

const GAVE_UP: &str = "gave up after 3 plans: state `plan` was entered more than 3 times \
                       (its max_visits); [VisitLimit { limit: 3 }]";

/// `plan` three times round the loop, its fourth visit refused and caught, then `give_up`.
fn caught_loop() -> Vec<String> {
    let mut expected = Vec::new();
    for _ in 0..3 {
        expected.push("plan #1: → act".to_owned());
        expected.push("act #1: → plan".to_owned());
    }
    expected.push("plan #1: entered more than 3 times (its max_visits); no retry".to_owned());
    expected.push("plan #1: failed → fallback give_up".to_owned());
    expected.push("give_up #1: completed".to_owned());
    expected
}

/// Each entry's state, attempt and outcome: the history without its durations.
fn shape(history: &[flow::history::Entry]) -> Vec<String> {
    history.iter().map(|e| format!("{} #{}: {}", e.state, e.attempt, e.outcome)).collect()
}

#[tokio::test]
async fn a_fallback_catches_the_state_s_visit_limit() {
    let done = planner::run(7, &mut Desk::default()).await.unwrap();
    assert_eq!(done.output, GAVE_UP);
    assert_eq!(shape(&done.history), caught_loop());
    let refused = &done.history[6].outcome;
    let visit_limit = Failure::VisitLimit { limit: 3 };
    assert_eq!(refused, &Outcome::Failed { failure: visit_limit, retry_in: None });
    assert_eq!(done.history[6].duration, std::time::Duration::ZERO, "the visit never ran");
    // A run that leaves the loop in time never meets the guard.
    let answered = planner::run(8, &mut Desk::default()).await.unwrap();
    assert_eq!(answered.output, "answered 8 after 1 plans");

    // Without a fallback the guard still ends the run, as it always did.
    let error = unguarded_planner::run(7, &mut Desk::default()).await.unwrap_err();
    let RunError::MaxVisits { state, limit, ref history } = error else {
        panic!("expected MaxVisits, got: {error}");
    };
    assert_eq!((state, limit), ("plan", 3));
    assert_eq!(shape(history), caught_loop()[..6]);
}

#[tokio::test]
async fn a_fallback_catches_the_visit_limit_of_a_durable_run() {
    let engine = Engine::builder()
        .store(MemoryStore::new())
        .machine::<planner::Machine>()
        .machine::<unguarded_planner::Machine>()
        .build()
        .unwrap();
    let mut events = engine.events();
    let run = engine.start::<planner::Machine>(7).await.unwrap();
    let id = run.id();
    assert_eq!(run.output().await.unwrap(), GAVE_UP);
    let status = engine.status(id).await.unwrap();
    assert_eq!(status.status, Status::Completed);
    assert_eq!(status.state, "give_up");
    // The checkpoints hold the same history as a run in memory.
    assert_eq!(shape(&status.history), caught_loop());
    // Subscribers hear of the last move into `plan`, its refusal, and the move to `give_up`.
    let mut told = Vec::new();
    while let Some(event) = events.next().await {
        match event.kind {
            EventKind::Completed { .. } => break,
            EventKind::Transitioned { .. } | EventKind::AttemptFailed { .. } => {
                told.push((event.state, event.kind));
            }
            _ => {}
        }
    }
    let refused = Failure::VisitLimit { limit: 3 };
    assert_eq!(
        told[told.len() - 3..],
        [
            ("act", EventKind::Transitioned { to: "plan" }),
            ("plan", EventKind::AttemptFailed { attempt: 1, failure: refused, retry_in: None }),
            ("plan", EventKind::Transitioned { to: "give_up" }),
        ]
    );

    // Without a fallback the guard still fails the run, as it always did.
    let run = engine.start::<unguarded_planner::Machine>(7).await.unwrap();
    let id = run.id();
    let error = run.output().await.unwrap_err();
    let EngineError::Failed { error: RunError::MaxVisits { state, limit, .. }, .. } = error else {
        panic!("expected MaxVisits, got: {error}");
    };
    assert_eq!((state, limit), ("plan", 3));
    let status = engine.status(id).await.unwrap();
    assert_eq!(status.status, Status::Failed);
    assert_eq!(shape(&status.history), caught_loop()[..6]);
}
