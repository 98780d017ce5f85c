//! The runtime of [`flow-machine`](https://docs.rs/flow-machine): what `#[flow::machine]`
//! generates code against, and what runs it.
//!
//! Depend on `flow-machine` (`use flow::...`), which re-exports what users need from here
//! together with the macros, and documents it. The pieces:
//!
//! - [`Machine`]: the trait a generated machine implements; [`codegen`] holds its plumbing.
//! - [`Runner`]: runs a machine in memory, with each state's [`policy::Policy`]
//!   (retries with backoff, timeouts, visit limits) and the run's `max_steps` guard.
//! - [`Engine`]: runs machines durably over a [`store`].
//! - [`Error`]: what a state returns on failure, retryable or permanent.
//! - [`Graph`]: the static shape of a machine, rendered as Mermaid or DOT.
//! - [`history`]: what happened in a run, attempt by attempt.
//! - [`testing`]: time-skipping tests of workflows, with injected failures.
//!
//! Its features: `sqlite` (default) and `postgres`, the stores; `schemars`, the JSON Schemas
//! of machines' inputs and signals in [`MachineInfo`] (see the facade's docs).
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
pub mod policy;
mod run;
mod schema;
pub mod store;
mod stored;
pub mod testing;

pub use current::{Current, cancelled, current, idempotency_key};
pub use engine::{
    Clock, DecodeError, Durable, Engine, EngineBuilder, EngineError, JsonError, JsonPart,
    MachineInfo, Migrate, Recorded, Resumed, RunHandle, RunStatus, StartJson, SystemClock,
};
pub use error::{BoxError, Error, Result, ResultExt, SharedError};
pub use event::{Event, EventKind, Events, progress};
pub use graph::Graph;
pub use history::Caught;
pub use id::{ParseRunIdError, RunId};
pub use machine::Machine;
pub use run::{BranchError, FailedCompensation, Finished, RunError, Runner};

// Where generated code and older paths find them; shown in `codegen`, `history` and `policy`.
#[doc(hidden)]
pub use graph::{SignalInfo, StateInfo};
#[doc(hidden)]
pub use history::FromCaught;
#[doc(hidden)]
pub use machine::{Goto, Signal, Step};
#[doc(hidden)]
pub use policy::{Backoff, Jitter, OnFailure, Policy, RetryPolicy};

/// What `#[flow::machine]` generates code against: the pieces of a [`Machine`] besides the
/// trait itself.
///
/// You meet these only when you implement [`Machine`] by hand (see its docs) or read a
/// [`Graph`]'s states. A fallback state's payload type implements
/// [`history::FromCaught`].
pub mod codegen {
    pub use crate::graph::ForkInfo;
    pub use crate::graph::{SignalInfo, StateInfo};
    pub use crate::machine::{FanOutInto, ForkInto, Goto, Signal, Step};
}

#[doc(hidden)]
pub mod __private {
    pub use crate::machine::no_compensation;
    pub mod stored {
        pub use crate::stored::*;
    }
    pub mod schema {
        pub use crate::schema::*;
    }
    pub use serde;
    pub use serde_json;
}
