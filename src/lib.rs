//! Typed, durable state machines from annotated `async fn`s.
//!
//! A workflow is a module marked `#[flow::machine]`, its states `async fn`s marked `#[state]`.
//! The macro generates a state enum and checks the wiring at compile time: a state can only go
//! where its attribute says, with exactly the payload the target takes, every state is reachable
//! and every run can end. The runtime runs it with each state's retries, backoff, timeout and
//! loop guards.
//!
//! ```
//! use flow::prelude::*;
//!
//! #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
//! pub struct Order { pub id: u32, pub lines: Vec<String> }
//!
//! #[derive(Default)]
//! pub struct Shop { pub charged: u32 }
//!
//! #[flow::machine]
//! pub mod checkout {
//!     use super::*;
//!
//!     #[state(start, to(charge, reject))]
//!     async fn validate(cx: &mut Shop, order: Order) -> Result<Validate> {
//!         if order.lines.is_empty() {
//!             return goto!(reject(format!("order {} is empty", order.id)));
//!         }
//!         goto!(charge(order))
//!     }
//!
//!     #[state(to(ship), retry(attempts = 5, backoff = "100ms..10s"), timeout = "30s")]
//!     async fn charge(cx: &mut Shop, order: Order) -> Result<Charge> {
//!         cx.charged += 1;
//!         goto!(ship(order))
//!     }
//!
//!     #[state(end)]
//!     async fn ship(cx: &mut Shop, order: Order) -> Result<String> {
//!         Ok(format!("shipped order {}", order.id))
//!     }
//!
//!     #[state(end)]
//!     async fn reject(cx: &mut Shop, reason: String) -> Result<String> {
//!         Ok(format!("rejected: {reason}"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut shop = Shop::default();
//! let order = Order { id: 7, lines: vec!["tea".into()] };
//! let done = checkout::run(order, &mut shop).await.unwrap();
//! assert_eq!(done.output, "shipped order 7");
//! assert_eq!(done.history.len(), 3);
//! assert_eq!(checkout::graph().targets("validate").collect::<Vec<_>>(), ["charge", "reject"]);
//! # }
//! ```
//!
//! What the macro generates in the module: `State` (the state enum, serde-serializable), one
//! next type per state that has targets (`Validate` for `validate`), `Machine` (implementing
//! [`Machine`]), `run(input, &mut cx)` and `graph()` (a [`Graph`], with
//! [`to_mermaid`](Graph::to_mermaid) and [`to_dot`](Graph::to_dot)).
//!
//! # The `#[state(...)]` keys
//!
//! | key | meaning |
//! | --- | --- |
//! | `start` | runs begin here; exactly one state has it |
//! | `end` | the state returns the run's output; every end state returns the same type |
//! | `to(a, b)` | the states this one may go to, with `goto!(a(...))` |
//! | `retry(attempts = 5, backoff = "100ms..10s", jitter = "full")` | attempts in all (required: one attempt is the default, and `backoff` or `jitter` without `attempts` is an error), and the jittered exponential backoff between them (`"1s"` alone: every wait up to 1s); `jitter` is how much of a retry's ceiling it waits: `"full"` (the default) a random time up to it, `"equal"` between half of it and all of it, `"none"` exactly it ([`Jitter`]) |
//! | `timeout = "30s"` | the longest one attempt may run |
//! | `max_visits = 3` | how often a run may enter this state; one visit more fails the run ([`RunError::MaxVisits`]), or goes to the state's `fallback` if it has one |
//! | `signal(timeout = "3d", default = escalate)` | for a state with a `#[signal] name: T` parameter: how long it waits for a `T` ([`Engine::signal`]) before going to `default` with its payload |
//! | `wait = "1h"` | a durable timer: entering the state, the run waits this long before its first attempt (on an [`Engine`], across restarts) |
//! | `compensate = refund` | what undoes a completed visit if the run fails later: `async fn refund(cx: &mut C, <the state's payload>) -> Result<()>` |
//! | `fallback = review` | where the run goes when this state fails for good (last attempt, or a permanent error) or its `max_visits` refuses a visit, with the failure ([`Caught`]) as the payload |
//! | `on_failure = pause` | instead, pause the run for an operator to [`Engine::resume`] (on an [`Engine`]; in memory the run fails); `fail`, the default, fails the run |
//!
//! `#[flow::machine(max_steps = 1000, name = "checkout", version = 2)]` bounds the states one
//! run may enter (10,000 unless set), renames the machine, and declares its version (1 unless
//! set; stored with durable runs, see [`Migrate`]).
//!
//! # When a state fails for good
//!
//! By default the run fails. If it completed states that declare a compensation, those run
//! first, newest first (a saga), and the error is [`RunError::RolledBack`], naming the cause
//! and every compensation that failed (the same happens when a loop guard stops the run). A
//! state may instead route its failure to a fallback state, an edge the compiler checks like
//! any other:
//!
//! ```
//! use flow::prelude::*;
//!
//! #[derive(Default)]
//! pub struct Bank { pub held: u64 }
//!
//! #[flow::machine]
//! pub mod payout {
//!     use super::*;
//!
//!     #[state(start, to(send), compensate = release)]
//!     async fn hold(cx: &mut Bank, cents: u64) -> Result<Hold> {
//!         cx.held += cents;
//!         goto!(send(cents))
//!     }
//!
//!     /// Undoes `hold`, with the payload `hold` was entered with.
//!     async fn release(cx: &mut Bank, cents: u64) -> Result<()> {
//!         cx.held -= cents;
//!         Ok(())
//!     }
//!
//!     #[state(end, retry(attempts = 3, backoff = "1ms"), fallback = manual)]
//!     async fn send(_cx: &mut Bank, cents: u64) -> Result<String> {
//!         Err(Error::retryable(format!("the bank refused {cents} cents")))
//!     }
//!
//!     #[state(end)]
//!     async fn manual(_cx: &mut Bank, failure: flow::Caught) -> Result<String> {
//!         Ok(format!("for a person: {failure}"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let mut bank = Bank::default();
//! let done = payout::run(500, &mut bank).await.unwrap();
//! assert_eq!(
//!     done.output,
//!     "for a person: state `send` failed after 3 attempt(s); last: error: the bank refused 500 cents"
//! );
//! // The fallback caught the failure: the run did not fail, so nothing was undone.
//! assert_eq!(bank.held, 500);
//! # }
//! ```
//!
//! A fallback catches its state's `max_visits` too: a bounded loop with an exit for when it
//! runs out. The visit the limit refuses never runs; the fallback receives it as a [`Caught`]
//! whose one failure is [`Failure::VisitLimit`](history::Failure::VisitLimit), naming the
//! limit. (`max_steps` bounds the whole run, and no fallback catches it.)
//!
//! # Durable runs
//!
//! [`Engine`] runs machines durably: a checkpoint after every step in a
//! [`CheckpointStore`](store::CheckpointStore) (SQLite by default with
//! [`store::SqliteStore`]), takeover of unfinished runs after a restart, and an
//! [idempotency key](idempotency_key) per state visit for the side effects a state causes. The
//! [`Engine`] docs show a complete run; `examples/durable.rs` one you can interrupt.
//!
//! Runs live in the store: a run that waits (for a signal, a timer, a retry's backoff) is held
//! by no engine and costs no memory; any engine on the store claims it when it is due, and
//! takes over the runs of an engine that died once its lease lapses. See [`Engine`].
//!
//! # Resources
//!
//! A durable run's context is stored, so clients and pools stay out of it: mark them
//! `#[serde(skip)]` and give them back to every run with
//! [`EngineBuilder::machine_with`], which runs before the run executes in that engine (at its
//! start, and after every restart, wait or takeover).
//!
//! ```
//! use std::sync::Arc;
//! use flow::prelude::*;
//!
//! pub struct Payments { pub name: String }
//!
//! #[derive(Default, serde::Serialize, serde::Deserialize)]
//! pub struct Shop {
//!     pub charged: u64,                   // data: stored with the run
//!     #[serde(skip)]
//!     pub payments: Option<Arc<Payments>>, // a client: given back by the engine
//! }
//!
//! #[flow::machine]
//! pub mod checkout {
//!     use super::*;
//!
//!     #[state(start, end)]
//!     async fn charge(cx: &mut Shop, cents: u64) -> Result<String> {
//!         let payments = cx.payments.as_ref().ok_or_else(|| Error::permanent("no client"))?;
//!         cx.charged += cents;
//!         Ok(format!("{} charged {cents}", payments.name))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let payments = Arc::new(Payments { name: "acme".into() });
//! let engine = flow::Engine::builder()
//!     .machine_with::<checkout::Machine>(move |shop| shop.payments = Some(payments.clone()))
//!     .build()
//!     .unwrap();
//! let run = engine.start::<checkout::Machine>(250).await.unwrap();
//! assert_eq!(run.output().await.unwrap(), "acme charged 250");
//! # }
//! ```
//!
//! # Testing
//!
//! [`testing`] runs workflows on tokio's paused clock, so retries, timers and signal timeouts
//! of days take no time, with failures injected into chosen attempts.
//!
//! # Where things are
//!
//! Writing a machine:
//! - [`macro@machine`] and [`macro@state`], the attributes; [`goto!`] moves to a state;
//!   [`prelude`] imports what a module of states needs.
//! - [`Error`] and [`Result`], what a state returns ([`ResultExt`] marks errors permanent);
//!   [`Caught`], the payload of a fallback state.
//! - Inside a state body: [`current()`] (run, visit, attempt, fencing token),
//!   [`idempotency_key()`], [`cancelled()`], [`progress()`](event::progress).
//!
//! Running it:
//! - In memory: `module::run`, or a [`Runner`]; a run ends as [`Finished`] or a [`RunError`].
//! - Durably: an [`Engine`] built with an [`EngineBuilder`] over a [`store`] (SQLite,
//!   PostgreSQL, memory); [`Engine::start`] gives a [`RunHandle`] and a [`RunId`]; an
//!   [`Engine`]'s own failures are [`EngineError`]s; [`Migrate`] carries runs to a new version.
//! - Watching runs: [`event`] (a stream of what runs do) and [`history`] (every attempt).
//! - Testing: [`testing`] (paused time, injected failures, signals sent in a test).
//!
//! Reading a machine: [`Machine`], the trait every generated machine implements, and its
//! [`Graph`], with each state's [`policy`].
//!
//! [`codegen`] holds the rest of what generated code is made of ([`codegen::Step`],
//! [`codegen::Goto`], [`codegen::StateInfo`], ...), which you need only to implement
//! [`Machine`] by hand.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

// Writing a machine.
pub use flow_core::{Caught, Error, Result, ResultExt, goto};
pub use flow_core::{Current, cancelled, current, idempotency_key};
#[doc(no_inline)]
pub use event::progress;

// Running it: in memory, then durably.
pub use flow_core::{FailedCompensation, Finished, RunError, Runner};
pub use flow_core::{
    Clock, Durable, Engine, EngineBuilder, EngineError, Migrate, ParseRunIdError, Resumed,
    RunHandle, RunId, RunStatus, SystemClock,
};
#[doc(no_inline)]
pub use event::{Event, EventKind, Events};
pub use flow_core::{BoxError, SharedError};

// Reading a machine.
pub use flow_core::{Graph, Machine};

pub use flow_core::{codegen, event, history, policy, store, testing};

// Plumbing, where generated code (and code written before `codegen` and `policy`) finds it;
// documented in those modules.
#[doc(hidden)]
pub use flow_core::{
    Backoff, FromCaught, Goto, Jitter, OnFailure, Policy, RetryPolicy, Signal, SignalInfo,
    StateInfo, Step, __private,
};

pub use flow_macros::{machine, state};

/// What a module of states needs: `use flow::prelude::*;`.
pub mod prelude {
    pub use flow_core::{Caught, Error, Result, ResultExt, goto};
    pub use flow_macros::state;
}
