//! `flow::testing`: a workflow with hourly retries and a three-day approval timeout, tested end
//! to end on tokio's paused clock, with failures injected and a reviewer's signal delivered.

use std::time::Duration;

use flow::history::Outcome;
use flow::prelude::*;
use flow::testing::{self, Faults, INJECTED};
use flow::{EngineError, EventKind};
use serde::{Deserialize, Serialize};
use tokio::time::Instant;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    Approve,
    Reject,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Office {
    pub reminders: u32,
}

#[flow::machine]
pub mod approval {
    use super::*;

    /// Mails the reviewer; the mail server is often down, so it retries every hour or so.
    #[state(start, to(review), retry(attempts = 48, backoff = "1h..1h"))]
    async fn notify(cx: &mut Office, doc: String) -> Result<Notify> {
        cx.reminders += 1;
        goto!(review(doc))
    }

    /// Waits up to three days for the reviewer.
    #[state(to(publish, escalate), signal(timeout = "3d", default = escalate))]
    async fn review(_cx: &mut Office, doc: String, #[signal] decision: Decision) -> Result<Review> {
        match decision {
            Decision::Approve => goto!(publish(doc)),
            Decision::Reject => goto!(escalate(doc)),
        }
    }

    #[state(end)]
    async fn publish(_cx: &mut Office, doc: String) -> Result<String> {
        Ok(format!("published {doc}"))
    }

    #[state(end)]
    async fn escalate(_cx: &mut Office, doc: String) -> Result<String> {
        Ok(format!("escalated {doc}"))
    }
}

type Approval = approval::Machine;

const HOUR: Duration = Duration::from_secs(3600);
const DAY: Duration = Duration::from_secs(24 * 3600);

#[tokio::test(start_paused = true)]
async fn three_days_without_a_review_escalate_after_hourly_retries() {
    let engine = testing::engine()
        .machine::<Approval>()
        .faults(Faults::new().fail::<Approval>("notify", 1..=5))
        .build()
        .unwrap();
    let started = Instant::now();
    let run = engine.start::<Approval>("the memo".into()).await.unwrap();
    let id = run.id();
    assert_eq!(run.output().await.unwrap(), "escalated the memo");

    let history = engine.status(id).await.unwrap().history;
    let lines: Vec<String> =
        history.iter().map(|entry| format!("{} #{}", entry.state, entry.attempt)).collect();
    assert_eq!(
        lines,
        [
            "notify #1",
            "notify #2",
            "notify #3",
            "notify #4",
            "notify #5",
            "notify #6",
            "review #1",
            "escalate #1",
        ]
    );
    let mut backoff = Duration::ZERO;
    for entry in &history[..5] {
        let Outcome::Failed { failure, retry_in: Some(delay) } = &entry.outcome else {
            panic!("expected an injected failure with a retry: {entry}");
        };
        assert!(failure.to_string().contains(INJECTED), "{failure}");
        assert!(*delay <= HOUR, "{entry}");
        backoff += *delay;
    }
    assert_eq!(history[6].outcome, Outcome::NoSignal { to: "escalate" });
    // Every backoff and the full three days went by, on the paused clock.
    let elapsed = started.elapsed();
    assert!(elapsed >= backoff + 3 * DAY, "{elapsed:?}");
    assert!(elapsed < backoff + 3 * DAY + Duration::from_secs(1), "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn a_review_within_the_three_days_publishes() {
    let engine = testing::engine().machine::<Approval>().build().unwrap();
    let mut events = engine.events();
    let started = Instant::now();
    let run = engine.start::<Approval>("the handbook".into()).await.unwrap();
    let waiting =
        events.until(|e| matches!(e.kind, EventKind::WaitingForSignal { .. })).await.unwrap();
    assert_eq!((waiting.run, waiting.state), (run.id(), "review"));

    // The reviewer answers two days in.
    tokio::time::sleep(2 * DAY).await;
    engine.signal::<Approval, _>(run.id(), Decision::Approve).await.unwrap();
    assert_eq!(run.output().await.unwrap(), "published the handbook");
    let elapsed = started.elapsed();
    assert!(elapsed >= 2 * DAY && elapsed < 3 * DAY, "{elapsed:?}");
}

#[tokio::test(start_paused = true)]
async fn faults_in_a_state_the_machine_lacks_are_refused() {
    let error = testing::engine()
        .machine::<Approval>()
        .faults(Faults::new().fail::<Approval>("notfiy", [1]))
        .build()
        .unwrap_err();
    let EngineError::Config { problems } = &error else { panic!("{error:?}") };
    assert_eq!(
        problems,
        "faults are injected into state `notfiy`, which machine `approval` does not have; \
         its states are: notify, review, publish, escalate"
    );
}
