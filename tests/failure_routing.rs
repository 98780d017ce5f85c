//! What a state's final failure leads to: a typed fallback state that receives the failure
//! (`fallback = state`), a pause for an operator (`on_failure = pause`), or, by default, the
//! run's failure.

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
    let unreachable = Failure::Error { message: "ledger unreachable".into(), permanent: false };
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
