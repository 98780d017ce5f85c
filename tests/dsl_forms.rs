//! Every form of the DSL, compiled and run: payloads of zero, one and several arguments,
//! branching, a state going to itself, back-edges, a shared context, and the loop guards.
//! The generated code must not warn in the user's crate: lints it could trip are denied here.

#![deny(non_snake_case, unused_variables)]

use flow::history::Outcome;
use flow::prelude::*;
use flow::{Machine, RunError, Runner};

#[derive(Debug, Default)]
pub struct Tally {
    pub log: Vec<String>,
}

#[flow::machine(max_steps = 50, name = "forms")]
pub mod forms {
    use super::*;

    /// Several payload arguments; branching to three targets.
    #[state(start, to(count, review, finish))]
    async fn begin(cx: &mut Tally, label: String, n: u32, strict: bool) -> Result<Begin> {
        cx.log.push(format!("begin {label} {n} {strict}"));
        match (n, strict) {
            (0, _) => goto!(finish),
            (_, true) => goto!(review(n)),
            _ => goto!(count(n, 0)),
        }
    }

    /// Goes to itself until done.
    #[state(to(count, review))]
    async fn count(cx: &mut Tally, left: u32, total: u64) -> Result<Count> {
        cx.log.push(format!("count {left}"));
        if left == 0 {
            return goto!(review(total as u32));
        }
        goto!(count(left - 1, total + u64::from(left)))
    }

    /// A back-edge to `count`, bounded by max_visits.
    #[state(to(count, finish), max_visits = 3)]
    async fn review(cx: &mut Tally, total: u32) -> Result<Review> {
        cx.log.push(format!("review {total}"));
        if total >= 100 {
            return goto!(count(total / 100, u64::from(total)));
        }
        goto!(finish())
    }

    /// No payload at all.
    #[state(end)]
    async fn finish(cx: &mut Tally) -> Result<usize> {
        cx.log.push("finish".into());
        Ok(cx.log.len())
    }
}

/// A machine of one state, both start and end; its input is `()`.
#[flow::machine]
pub mod single {
    #[state(start, end)]
    async fn only(cx: &mut u32) -> flow::Result<u32> {
        *cx += 1;
        Ok(*cx)
    }
}

/// Payload arguments a state does not use, named with a leading underscore.
#[flow::machine]
pub mod unused {
    #[state(start, to(last))]
    async fn first(_cx: &mut u32, _id: u32, __twice: u32) -> flow::Result<First> {
        flow::goto!(last(7))
    }

    #[state(end)]
    async fn last(_cx: &mut u32, _ignored: u32) -> flow::Result<u32> {
        Ok(1)
    }
}

#[tokio::test]
async fn unused_payload_arguments_named_with_an_underscore() {
    let finished = unused::run((1, 2), &mut 0).await.unwrap();
    assert_eq!(finished.output, 1);
}

#[tokio::test]
async fn several_payload_arguments_and_a_self_loop() {
    let mut tally = Tally::default();
    let finished = forms::run(("a".into(), 3, false), &mut tally).await.unwrap();
    assert_eq!(
        tally.log,
        ["begin a 3 false", "count 3", "count 2", "count 1", "count 0", "review 6", "finish"]
    );
    assert_eq!(finished.output, 7);
    let path: Vec<_> = finished.history.iter().map(|e| e.state).collect();
    assert_eq!(path, ["begin", "count", "count", "count", "count", "review", "finish"]);
    assert_eq!(finished.history[0].outcome, Outcome::Transitioned { to: "count" });
    assert_eq!(finished.history.last().unwrap().outcome, Outcome::Completed);
}

#[tokio::test]
async fn zero_payload_target_and_branching() {
    let mut tally = Tally::default();
    let finished = forms::run(("z".into(), 0, false), &mut tally).await.unwrap();
    assert_eq!(tally.log, ["begin z 0 false", "finish"]);
    assert_eq!(finished.output, 2);
}

#[tokio::test]
async fn back_edge_until_max_visits_names_the_state() {
    // review(500) -> count(5, ..) -> ... -> review(515) -> count(5, ..) -> ...: never below 100.
    let mut tally = Tally::default();
    let error = forms::run(("loop".into(), 500, true), &mut tally).await.unwrap_err();
    let RunError::MaxVisits { state, limit, ref history } = error else {
        panic!("expected MaxVisits, got: {error}");
    };
    assert_eq!((state, limit), ("review", 3));
    assert_eq!(history.iter().filter(|e| e.state == "review").count(), 3);
    let message = error.to_string();
    assert!(message.contains("state `review` was entered more than 3 times"), "{message}");
    assert!(message.contains("max_visits"), "{message}");
}

#[tokio::test]
async fn max_steps_bounds_a_run() {
    let mut tally = Tally::default();
    // count(60) alone takes over 60 steps; the machine allows 50.
    let error = forms::run(("long".into(), 60, false), &mut tally).await.unwrap_err();
    assert!(matches!(error, RunError::MaxSteps { limit: 50, .. }), "{error}");
    assert_eq!(error.history().len(), 50);
    assert!(error.to_string().contains("max_steps"));
    // A runner overrides the machine's limit, down...
    let mut tally = Tally::default();
    let runner = Runner::new().max_steps(3);
    let error = runner.run::<forms::Machine>(("a".into(), 3, false), &mut tally).await.unwrap_err();
    assert!(matches!(error, RunError::MaxSteps { limit: 3, state: "count", .. }), "{error}");
    assert_eq!(error.history().len(), 3);
    // ...and up: the same long run now gets past 50 steps (to review's own guard).
    let mut tally = Tally::default();
    let runner = Runner::new().max_steps(1_000);
    let error =
        runner.run::<forms::Machine>(("long".into(), 60, false), &mut tally).await.unwrap_err();
    assert!(matches!(error, RunError::MaxVisits { state: "review", .. }), "{error}");
    assert!(error.history().len() > 50);
}

#[tokio::test]
async fn single_state_machine() {
    let mut count = 41;
    assert_eq!(single::run((), &mut count).await.unwrap().output, 42);
}

#[test]
fn generated_types_are_public_and_serde() {
    assert_eq!(forms::Machine::NAME, "forms");
    let state = forms::State::Count { left: 2, total: 7 };
    let json = serde_json::to_string(&state).unwrap();
    assert_eq!(json, r#"{"Count":{"left":2,"total":7}}"#);
    let back: forms::State = serde_json::from_str(&json).unwrap();
    assert_eq!(format!("{back:?}"), "Count { left: 2, total: 7 }");
    assert_eq!(forms::Machine::index(&back), 1);
    // A next type only has the declared targets as variants.
    let next = forms::Review::Finish;
    assert!(matches!(forms::State::from(next), forms::State::Finish));
}
