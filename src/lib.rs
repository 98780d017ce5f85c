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
//! The [`#[flow::machine]`](macro@machine) page lists what the macro generates in the module
//! (here `checkout::run`, `checkout::graph` and `checkout::Machine`) and the keys of
//! `#[flow::machine(...)]`; the [`#[state]`](macro@state) page every key of `#[state(...)]`,
//! each with an example.
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
//! # Parallel branches
//!
//! A state can split the run: `fork(a, b)` starts a branch in each named state at once,
//! `fan_out(state)` one branch per item. Each branch runs on its own copy of the context until
//! a `branch_end` state returns its output, and the `join` state receives the outputs, typed:
//! one parameter per branch in the fork's order, or one `Vec` in the items' order. The
//! compiler checks that every branch ends, that no branch goes into another, and that the
//! join's parameters are the branches' output types.
//!
//! ```
//! use flow::prelude::*;
//!
//! #[derive(Debug, Clone, Default)]
//! pub struct Shop;
//!
//! #[flow::machine]
//! pub mod order {
//!     use super::*;
//!
//!     #[state(start, fork(pay, reserve), join = ship)]
//!     async fn split(_cx: &mut Shop, cents: u64) -> Result<Split> {
//!         fork!(pay(cents), reserve(vec!["tea".to_owned(), "cups".to_owned()]))
//!     }
//!
//!     #[state(branch_end)]
//!     async fn pay(_cx: &mut Shop, cents: u64) -> Result<u64> {
//!         Ok(cents)
//!     }
//!
//!     #[state(branch_end)]
//!     async fn reserve(_cx: &mut Shop, items: Vec<String>) -> Result<usize> {
//!         Ok(items.len())
//!     }
//!
//!     #[state(end)]
//!     async fn ship(_cx: &mut Shop, paid: u64, reserved: usize) -> Result<String> {
//!         Ok(format!("paid {paid}, reserved {reserved}"))
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let done = order::run(500, &mut Shop).await.unwrap();
//! assert_eq!(done.output, "paid 500, reserved 2");
//! # }
//! ```
//!
//! A branch that fails for good cuts the others off and fails the run, after the
//! compensations of every state the run and its branches completed, newest first. In memory (`run`, or
//! [`Runner`]) branches are tasks of the run. Under an [`Engine`] each branch is a run of its
//! own in the store, with its own checkpoints, retries and waits, claimed by any engine; the
//! run that forked waits in the store ([`store::Wait::Join`]) holding no slot, and goes on
//! when the last branch ends. After a crash only unfinished branches run again: finished ones
//! are read back. [`Engine::branches`] lists a forked run's branch runs, so a branch that waits
//! for a signal is signalled by its own id. `examples/fork_join.rs` and `examples/fanout.rs`
//! run both kinds.
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
//! # Cargo features
//!
//! - `sqlite` (default): `store::SqliteStore`, the embedded store.
//! - `postgres`: `store::PostgresStore`, one PostgreSQL database shared by many worker
//!   processes.
//! - `schemars`: the JSON Schemas of machines' inputs and signals,
//!   [`MachineInfo::input_schema`] and [`MachineInfo::signal_schemas`], for a client (a form,
//!   a dashboard) to build values from. A machine has them for the types that derive
//!   `schemars::JsonSchema` (schemars 1, a dependency of yours to derive it); a type without
//!   it still compiles and runs, and has no schema. flow-machine-server turns it on.
//!
//! # Where things are
//!
//! Writing a machine:
//! - [`#[flow::machine]`](macro@machine) and [`#[state]`](macro@state), the attributes;
//!   [`goto!`] moves to a state; [`prelude`] imports what a module of states needs.
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

// Writing a machine, and what a state body calls.
pub use flow_core::{Caught, Error, Result, ResultExt, fan_out, fork, goto};

pub use flow_core::{Current, cancelled, current, idempotency_key};

#[doc(no_inline)]
pub use event::progress;

// Running it: in memory, then durably, and watching it.
pub use flow_core::{BranchError, FailedCompensation, Finished, RunError, Runner};

pub use flow_core::{
    Clock, Durable, Engine, EngineBuilder, EngineError, Migrate, ParseRunIdError, Recorded,
    Resumed, RunHandle, RunId, RunStatus, SystemClock,
};

// Machines and runs by name and JSON, for servers and tools that do not know the types.
pub use flow_core::{DecodeError, JsonError, JsonPart, MachineInfo, StartJson};

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
    __private, Backoff, FromCaught, Goto, Jitter, OnFailure, Policy, RetryPolicy, Signal,
    SignalInfo, StateInfo, Step,
};

/// Turns a module of `#[state]` async fns into a typed state machine.
///
/// ```text
/// #[flow::machine]
/// #[flow::machine(max_steps = 1000, name = "checkout", version = 2)]
/// ```
///
/// # What it generates
///
/// In the module it marks, next to the states:
///
/// - `State`: the state enum, one variant per state carrying that state's payload;
///   serde-serializable, as durable runs store it.
/// - One next type per state that has targets, named after the state in `UpperCamelCase`
///   (`Validate` for `validate`): what the state returns, built only by [`goto!`] to one of
///   its declared targets.
/// - `Machine`: a unit struct implementing [`Machine`], the type you
///   give an [`Engine`] (`engine.start::<checkout::Machine>(input)`).
/// - `run(input, &mut cx)`: runs the machine in memory to its end,
///   `Result<Finished<Output>, RunError>` ([`Finished`],
///   [`RunError`]).
/// - `graph()`: its [`Graph`] (`&'static`), with
///   [`to_mermaid`](crate::Graph::to_mermaid) and [`to_dot`](crate::Graph::to_dot).
///
/// The macro checks the wiring at compile time: exactly one `start` state; `end` states that
/// all return the same output type; every target of `to(...)`, `fallback` and
/// `signal(default)` a state of this module; every `goto!` one of the state's targets, with
/// that target's payload; every state reachable, and every run able to end. Each mistake is a
/// compile error pointing at it.
///
/// # Keys
///
/// | key | meaning | unless set |
/// | --- | --- | --- |
/// | `max_steps = 1000` | how many states one run may enter, counting every visit; the one more fails the run with [`RunError::MaxSteps`], which no fallback catches. 1 or more | 10,000 |
/// | `name = "checkout"` | the machine's name: [`Machine::NAME`] and [`Graph::name`], what durable runs are stored and listed under. Not empty | the module's name |
/// | `version = 2` | the machine's version, stored with every durable run; bump it when the machine's shape changes and carry older runs forward with [`Migrate`]. 1 or more | 1 |
/// | `pools(gpu, api)` | the engine's resource pools its states may hold, `#[state(uses(gpu = 1))]`; the engine gives each a capacity ([`EngineBuilder::pool`]) and refuses to build without it | none |
/// | `priority = -1` | its runs' priority when attempts wait for a pool: lower values first, arrival order within one; a run started with [`Engine::start_with_priority`] has its own | 0 |
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use flow::Machine;
///
/// #[flow::machine(max_steps = 5, name = "order-checkout", version = 2)]
/// pub mod checkout {
///     use flow::prelude::*;
///
///     /// Charges `cents` in `parts` charges, one visit each.
///     #[state(start, to(charge, done))]
///     async fn charge(charged: &mut u64, cents: u64, parts: u64) -> Result<Charge> {
///         *charged += cents / parts;
///         if *charged >= cents { goto!(done) } else { goto!(charge(cents, parts)) }
///     }
///
///     #[state(end)]
///     async fn done(charged: &mut u64) -> Result<u64> {
///         Ok(*charged)
///     }
/// }
///
/// assert_eq!(checkout::Machine::NAME, "order-checkout");
/// let graph = checkout::graph();
/// assert_eq!((graph.name, graph.version, graph.max_steps), ("order-checkout", 2, 5));
///
/// // Two charges and the end: three steps.
/// assert_eq!(checkout::run((100, 2), &mut 0).await.unwrap().output, 100);
/// // Ten charges would take more than five steps.
/// let error = checkout::run((100, 10), &mut 0).await.unwrap_err();
/// assert!(matches!(error, flow::RunError::MaxSteps { limit: 5, .. }));
/// # }
/// ```
pub use flow_macros::machine;

/// Marks an `async fn` in a [`#[flow::machine]`](macro@machine) module as a state, with its
/// transitions and policy.
///
/// ```text
/// #[state(start, end, to(a, b), retry(attempts = 5, backoff = "100ms..10s", jitter = "full"),
///         timeout = "30s", max_visits = 3, wait = "1h",
///         signal(timeout = "3d", default = escalate), compensate = refund,
///         fallback = review, on_failure = pause, uses(gpu = 1))]
/// async fn name(cx: &mut Context, payload: A, more: B, #[signal] value: S) -> Result<Next>
/// ```
///
/// A state's first parameter is the context, `&mut` the same type in every state of the
/// machine; the others are its payload, what [`goto!`] passes to enter it (the start state's
/// payload is the run's input: one value, or a tuple of several). It returns [`Result`] of its
/// next type (`Name` for `name`, built by `goto!`), or, for an end state, of the run's output.
/// A parameter marked `#[signal]` is not payload: the state waits for it (see `signal`), and
/// comes last.
///
/// Payloads and signals are stored in every checkpoint and move between tasks, so they are
/// owned (`String`, not `&str`) and implement `serde::Serialize` and `serde::Deserialize`; the
/// context is `Send`, as a run's attempts may move between threads.
///
/// Durations are strings of numbers each followed by a unit, `ns`, `us`, `ms`, `s`, `m`, `h`
/// or `d`: `"250ms"`, `"1.5s"`, `"1h30m"`, `"3d"`.
///
/// # Keys
///
/// | key | meaning | unless set |
/// | --- | --- | --- |
/// | `start` | runs begin here; exactly one state has it | |
/// | `end` | the state returns the run's output; every end state returns the same type | |
/// | `to(a, b)` | the states this one may go to, with `goto!(a(...))` | no targets: an end state |
/// | `retry(attempts = 5, backoff = "100ms..10s", jitter = "full")` | `attempts`: tries in all, the first included (required: `backoff` or `jitter` without `attempts` is an error). `backoff = "BASE..CAP"`: retry `n` waits up to `min(CAP, BASE * 2^(n-1))`; `"1s"` alone: every wait up to 1s. `jitter`: how much of that ceiling it waits, `"full"` a random time up to it, `"equal"` between half of it and all of it, `"none"` exactly it ([`Jitter`]) | one attempt; `"100ms..10s"`; `"full"` |
/// | `timeout = "30s"` | the longest one attempt may run; a slower attempt fails (and is retried like any failure) | no limit |
/// | `max_visits = 3` | how often a run may enter this state; the visit past it fails the run ([`RunError::MaxVisits`]) or goes to the state's `fallback` | no limit (`max_steps` bounds the run) |
/// | `wait = "1h"` | a durable timer: entering the state, the run waits this long before the first attempt (on an [`Engine`], in the store, across restarts) | no wait |
/// | `signal(timeout = "3d", default = escalate)` | for a state with a `#[signal] name: T` parameter: how long it waits for a `T` ([`Engine::signal`]) before going to `default`, one of its targets, with its own payload | waits for ever |
/// | `compensate = refund` | what undoes a completed visit if the run fails later, newest first (a saga): `async fn refund(cx: &mut C, <the state's payload>) -> Result<()>`, in the module or imported by name (`use super::refund;`). In a fork's branches too: when a branch fails, its siblings are cut off (each stops at its next safe point) and every visit the branches and the run completed is undone, newest first, with the run's context | nothing to undo |
/// | `fallback = review` | where the run goes when this state fails for good (its last attempt, or a permanent error) or `max_visits` refuses a visit: a state whose payload is the failure ([`Caught`], or a type implementing [`FromCaught`]) | the run fails |
/// | `on_failure = pause` | instead, the run pauses for an operator to [`Engine::resume`], with a fresh set of attempts (on an [`Engine`]; in memory the run fails); `on_failure = fail` is the default | `fail` |
/// | `fork(pay, reserve)` with `join = ship` | the run splits: a branch starts in each named state at once, with the payloads the body passes to `fork!(pay(...), reserve(...))`, and runs on its own copy of the context (`Clone`) until a `branch_end` state; then `ship` is entered with one parameter per branch, each branch's output in the fork's order. A branch that fails for good cuts the others off and fails the run; `max_steps` bounds each branch on its own. Checked: each branch ends, stays in itself, and the join's parameters match the outputs. Under an [`Engine`] each branch is a run of its own ([`Engine::branches`]), and the run waits for them in the store holding no slot | no fork |
/// | `fan_out(summarise, limit = 3)` with `join = merge` | one branch per item: the body returns `fan_out!(summarise, items)` (anything iterable), each item's branch starts in `summarise` (which takes one item), at most `limit` run at once, and `merge` takes every output in one `Vec`, in the items' order (empty for no items). Under an [`Engine`], `limit` bounds the item runs started at once. `fan_out(ask, first = 2)` joins once 2 branches have ended, with their outputs in the items' order, and cancels the rest (all of them for fewer items) | all at once; join on all |
/// | `collect` (with `fork` or `fan_out`) | the join takes each branch's `Result<Output, flow::BranchError>` (a fan-out, a `Vec` of them, in the items' order): a branch that fails neither fails the run nor cuts its siblings off, and the join decides. With `first = k`, the first k results, failures included | a failed branch fails the run |
/// | `branch_end` | the state ends its branch of a fork or fan-out: it returns the branch's output (a serde type), which goes to the join | |
/// | `uses(gpu = 1, api)` | the units of the engine's resource pools each attempt holds while it runs (`api` alone: 1), pools declared in `#[flow::machine(pools(...))]`; an attempt waits until it holds them all, by priority ([`EngineBuilder::pool`]). Pools are per engine; in memory nothing is held | holds nothing |
///
/// # Transitions, retries and a timeout
///
/// `start`, `end`, `to(...)`, `retry(...)` and `timeout`:
///
/// ```
/// #[flow::machine]
/// pub mod checkout {
///     use flow::prelude::*;
///
///     #[state(start, to(charge, reject))]
///     async fn validate(_tries: &mut u32, cents: u64) -> Result<Validate> {
///         if cents == 0 {
///             return goto!(reject("nothing to charge".to_string()));
///         }
///         goto!(charge(cents))
///     }
///
///     // Three attempts in all, the retries after up to 1ms and 2ms; each attempt 5s at most.
///     #[state(to(ship), retry(attempts = 3, backoff = "1ms..10ms", jitter = "equal"), timeout = "5s")]
///     async fn charge(tries: &mut u32, cents: u64) -> Result<Charge> {
///         *tries += 1;
///         if *tries < 3 {
///             return Err(Error::retryable("the bank timed out"));
///         }
///         goto!(ship(cents))
///     }
///
///     #[state(end)]
///     async fn ship(_tries: &mut u32, cents: u64) -> Result<String> {
///         Ok(format!("shipped, {cents} cents charged"))
///     }
///
///     #[state(end)]
///     async fn reject(_tries: &mut u32, reason: String) -> Result<String> {
///         Ok(format!("rejected: {reason}"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut tries = 0;
/// let done = checkout::run(250, &mut tries).await.unwrap();
/// assert_eq!((done.output.as_str(), tries), ("shipped, 250 cents charged", 3));
/// assert_eq!(checkout::run(0, &mut 0).await.unwrap().output, "rejected: nothing to charge");
/// # }
/// ```
///
/// # A bounded loop with a fallback
///
/// `max_visits` and `fallback`:
///
/// ```
/// #[flow::machine]
/// pub mod agent {
///     use flow::prelude::*;
///
///     #[state(start, to(think, answer), max_visits = 3, fallback = give_up)]
///     async fn think(steps: &mut u32, question: String) -> Result<Think> {
///         *steps += 1;
///         if question.ends_with('?') {
///             return goto!(think(question)); // never sure: think again
///         }
///         goto!(answer(question))
///     }
///
///     #[state(end)]
///     async fn answer(_steps: &mut u32, text: String) -> Result<String> {
///         Ok(text)
///     }
///
///     #[state(end)]
///     async fn give_up(steps: &mut u32, failure: flow::Caught) -> Result<String> {
///         Ok(format!("gave up after {steps} steps ({})", failure.state))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let done = agent::run("why?".into(), &mut 0).await.unwrap();
/// assert_eq!(done.output, "gave up after 3 steps (think)");
/// # }
/// ```
///
/// # Undoing completed steps
///
/// `compensate`: the run below fails in `credit`, so `debit` is undone before the run's error
/// is returned.
///
/// ```
/// #[flow::machine]
/// pub mod transfer {
///     use flow::prelude::*;
///
///     #[state(start, to(credit), compensate = refund)]
///     async fn debit(balance: &mut i64, cents: i64) -> Result<Debit> {
///         *balance -= cents;
///         goto!(credit(cents))
///     }
///
///     async fn refund(balance: &mut i64, cents: i64) -> Result<()> {
///         *balance += cents;
///         Ok(())
///     }
///
///     #[state(end)]
///     async fn credit(_balance: &mut i64, cents: i64) -> Result<String> {
///         Err(Error::permanent(format!("the account is closed; {cents} cents not credited")))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let mut balance = 1000;
/// let error = transfer::run(300, &mut balance).await.unwrap_err();
/// assert!(matches!(error, flow::RunError::RolledBack { .. }));
/// assert_eq!(balance, 1000);
/// # }
/// ```
///
/// # Timers, signals and pauses on an engine
///
/// `wait`, `signal(...)` and `on_failure = pause` act on durable runs. Here on
/// [`testing::engine`], whose clock follows tokio's paused clock, so the hour and the three
/// days pass at once:
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
///
/// #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// pub struct Verdict(pub bool);
///
/// static MANAGER_IN: AtomicBool = AtomicBool::new(false);
///
/// #[flow::machine]
/// pub mod publishing {
///     use super::*;
///     use flow::prelude::*;
///
///     // A durable timer: an hour after the run enters the state, its first attempt runs.
///     #[state(start, to(review), wait = "1h")]
///     async fn cool_down(_cx: &mut u32, doc: String) -> Result<CoolDown> {
///         goto!(review(doc))
///     }
///
///     // Waits for a `Verdict` (`engine.signal::<publishing::Machine, _>(id, Verdict(true))`);
///     // without one in three days, the run goes to `escalate` with `doc`.
///     #[state(to(publish, escalate), signal(timeout = "3d", default = escalate))]
///     async fn review(_cx: &mut u32, doc: String, #[signal] verdict: Verdict) -> Result<Review> {
///         if verdict.0 { goto!(publish(doc)) } else { goto!(escalate(doc)) }
///     }
///
///     // A failure here pauses the run until an operator resumes it.
///     #[state(to(publish), on_failure = pause)]
///     async fn escalate(_cx: &mut u32, doc: String) -> Result<Escalate> {
///         if !MANAGER_IN.load(Ordering::SeqCst) {
///             return Err(Error::permanent("the manager is away"));
///         }
///         goto!(publish(doc))
///     }
///
///     #[state(end)]
///     async fn publish(_cx: &mut u32, doc: String) -> Result<String> {
///         Ok(format!("published {doc}"))
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)]
/// # async fn main() -> Result<(), flow::EngineError> {
/// let engine = flow::testing::engine().machine::<publishing::Machine>().build()?;
/// let started = tokio::time::Instant::now();
/// let run = engine.start::<publishing::Machine>("the memo".into()).await?;
/// let id = run.id();
///
/// // Nobody reviews it: after the hour and three days, `escalate` fails and the run pauses.
/// assert!(matches!(run.output().await, Err(flow::EngineError::Paused { .. })));
/// assert_eq!(started.elapsed().as_secs(), 3600 + 3 * 24 * 3600);
///
/// MANAGER_IN.store(true, Ordering::SeqCst);
/// engine.resume(id).await?;
/// let done = engine.handle::<publishing::Machine>(id).await?.output().await?;
/// assert_eq!(done, "published the memo");
/// # Ok(())
/// # }
/// ```
pub use flow_macros::state;

/// What a module of states needs: `use flow::prelude::*;`.
pub mod prelude {
    pub use flow_core::{Caught, Error, Result, ResultExt, fan_out, fork, goto};
    pub use flow_macros::state;
}
