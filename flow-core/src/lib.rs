//! The runtime of [`flow`](https://docs.rs/flow): what `#[flow::machine]` generates code
//! against, and what runs it.
//!
//! Users depend on the `flow` crate, which re-exports everything here together with the macros.
//! The pieces:
//!
//! - [`Machine`]: the trait a generated machine implements; [`Step`] and [`Goto`] its plumbing.
//! - [`Runner`]: runs a machine in memory, with each state's [`Policy`] (retries with
//!   [`Backoff`], timeouts, visit limits) and the run's `max_steps` guard.
//! - [`Error`]: what a state returns on failure, retryable or permanent.
//! - [`Graph`]: the static shape of a machine, rendered as Mermaid or DOT.
//! - [`history`]: what happened in a run, attempt by attempt.
//! - [`testing`]: time-skipping tests of workflows, with injected failures.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod current;
mod engine;
mod error;
pub mod event;
mod graph;
pub mod history;
mod id;
mod machine;
mod policy;
mod run;
pub mod store;
mod stored;
pub mod testing;

pub use current::{Current, cancelled, current, idempotency_key};
pub use engine::{
    Clock, Durable, Engine, EngineBuilder, EngineError, Migrate, Resumed, RunHandle, RunStatus,
    SystemClock,
};
pub use error::{BoxError, Error, Result, ResultExt, SharedError};
pub use event::{Event, EventKind, Events, progress};
pub use graph::{Graph, SignalInfo, StateInfo};
pub use history::{Caught, FromCaught};
pub use id::{ParseRunIdError, RunId};
pub use machine::{Goto, Machine, Signal, Step};
pub use policy::{Backoff, Jitter, OnFailure, Policy, RetryPolicy};
pub use run::{FailedCompensation, Finished, RunError, Runner};

#[doc(hidden)]
pub mod __private {
    pub use crate::machine::no_compensation;
    pub mod stored {
        pub use crate::stored::*;
    }
    pub use serde;
    pub use serde_json;
}
