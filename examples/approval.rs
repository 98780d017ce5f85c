//! Human in the loop: a document waits for a reviewer's decision, a typed signal.
//!
//! ```text
//! cargo run --example approval
//! ```
//!
//! Approve → publish; reject → revise and wait again; no decision within the deadline →
//! escalate to a manager, who comments. The waits are checkpoints: on an engine with a
//! SQLite store, the process could exit while a document waits for days, and
//! `engine.signal(run, decision)` after a restart would go on with it. Here the reviewer
//! is a task of this program and the deadline is two seconds, so the example ends quickly;
//! every event prints as it happens.

use std::time::Duration;

use flow::prelude::*;
use flow::{Engine, EventKind};
use serde::{Deserialize, Serialize};

/// What a reviewer sends.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Decision {
    Approve,
    Reject(String),
}

/// What a manager sends when nobody reviewed in time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Comment(pub String);

/// Carried along: how many reviews the document went through.
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

    /// Waits for a reviewer's decision, for two seconds at most.
    #[state(to(publish, revise, escalate), signal(timeout = "2s", default = escalate))]
    async fn review(cx: &mut Desk, doc: String, #[signal] decision: Decision) -> Result<Review> {
        cx.reviews += 1;
        match decision {
            Decision::Approve => goto!(publish(doc)),
            Decision::Reject(why) => goto!(revise(doc, why)),
        }
    }

    #[state(to(review))]
    async fn revise(_cx: &mut Desk, doc: String, why: String) -> Result<Revise> {
        flow::progress(format!("revising: {why}"), None);
        goto!(review(format!("{doc} (revised)")))
    }

    #[state(to(publish))]
    async fn escalate(_cx: &mut Desk, doc: String, #[signal] note: Comment) -> Result<Escalate> {
        goto!(publish(format!("{doc} [manager: {}]", note.0)))
    }

    #[state(end)]
    async fn publish(cx: &mut Desk, doc: String) -> Result<String> {
        Ok(format!("published {doc} after {} review(s)", cx.reviews))
    }
}

type Approval = approval::Machine;

#[tokio::main]
async fn main() -> Result<(), flow::EngineError> {
    println!("{}", approval::graph().to_mermaid());
    let engine = Engine::builder().machine::<Approval>().build()?;

    // Subscribed before the runs start, so no event is missed.
    let mut events = engine.events();
    let handbook = engine.start::<Approval>("the handbook".into()).await?;
    let memo = engine.start::<Approval>("the memo".into()).await?;

    // Print every event, and play the people: a reviewer who rejects the handbook once and
    // then approves it; nobody reviews the memo, so it escalates to a manager.
    let people = engine.clone();
    let handbook_run = handbook.id();
    let watcher = tokio::spawn(async move {
        let mut handbook_reviews = 0;
        while let Some(event) = events.next().await {
            println!("  {event}");
            if !matches!(event.kind, EventKind::WaitingForSignal { .. }) {
                continue;
            }
            let (engine, run) = (people.clone(), event.run);
            match event.state {
                "review" if run == handbook_run => {
                    handbook_reviews += 1;
                    let decision = match handbook_reviews {
                        1 => Decision::Reject("too long".into()),
                        _ => Decision::Approve,
                    };
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        if let Err(error) = engine.signal::<Approval, _>(run, decision).await {
                            eprintln!("reviewer: {error}");
                        }
                    });
                }
                "escalate" => {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        let note = Comment("fine, ship it".into());
                        if let Err(error) = engine.signal::<Approval, _>(run, note).await {
                            eprintln!("manager: {error}");
                        }
                    });
                }
                _ => {}
            }
        }
    });

    let (handbook, memo) = tokio::join!(handbook.output(), memo.output());
    println!("\n{}\n{}", handbook?, memo?);
    watcher.abort();
    Ok(())
}
