//! Testing workflows: time skipped, failures injected, signals delivered.
//!
//! Run the test on tokio's paused clock (`#[tokio::test(start_paused = true)]`, which needs
//! tokio's `test-util` feature in your dev-dependencies). Whenever every task waits, tokio
//! jumps to the next timer: a backoff of an hour, a `wait = "2d"` or a signal timeout of three
//! days passes at once. [`engine`] builds an engine whose durable clock, [`TestClock`],
//! follows that paused clock, so checkpointed deadlines agree with it. [`Faults`] makes chosen
//! attempts fail without running them, and [`Engine::signal`](crate::Engine::signal) plays the
//! person a run waits for.
//!
//! ```
//! use std::time::Duration;
//! use flow::testing::{self, Faults};
//!
//! #[flow::machine]
//! pub mod mailer {
//!     use flow::prelude::*;
//!
//!     #[state(start, end, retry(attempts = 4, backoff = "1h"))]
//!     async fn send(_cx: &mut u32, letter: u32) -> Result<u32> {
//!         Ok(letter)
//!     }
//! }
//! type Mailer = mailer::Machine;
//!
//! // `send` retries hourly, up to 4 attempts; its first three fail.
//! # tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap().block_on(async {
//! let engine = testing::engine()
//!     .machine::<Mailer>()
//!     .faults(Faults::new().fail::<Mailer>("send", 1..=3))
//!     .build()
//!     .unwrap();
//! let started = tokio::time::Instant::now();
//! let run = engine.start::<Mailer>(7).await.unwrap();
//! let id = run.id();
//! assert_eq!(run.output().await.unwrap(), 7);
//! // Three backoffs of up to an hour each went by on the paused clock, in no time at all.
//! let history = engine.status(id).await.unwrap().history;
//! let backoff: Duration = history.iter().filter_map(|entry| match &entry.outcome {
//!     flow::history::Outcome::Failed { retry_in, .. } => *retry_in,
//!     _ => None,
//! }).sum();
//! assert_eq!(history.len(), 4);
//! assert!(started.elapsed() >= backoff && backoff <= Duration::from_secs(3 * 3600));
//! # });
//! ```

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::time::Instant;

use crate::store::MemoryStore;
use crate::{Clock, Engine, EngineBuilder, Machine};

/// The message of an injected failure.
pub const INJECTED: &str = "failure injected by flow::testing::Faults";

/// An engine for tests: a fresh [`MemoryStore`], a [`TestClock`] and a fixed jitter seed.
/// Register machines and [`Faults`] on it, then build it.
pub fn engine() -> EngineBuilder {
    Engine::builder().store(MemoryStore::new()).clock(TestClock::new()).seed(0)
}

/// A durable clock that follows tokio's clock: paused in a test, it jumps with it.
///
/// It starts at a fixed date (2027-01-15 08:00 UTC) so stored deadlines are the same on every
/// run of a test, and moves as much as [`tokio::time::Instant`] does.
#[derive(Debug, Clone, Copy)]
pub struct TestClock {
    base: SystemTime,
    start: Instant,
}

impl TestClock {
    /// The date a [`TestClock`] starts at, unless set with [`TestClock::starting_at`].
    pub const START: Duration = Duration::from_secs(1_800_000_000);

    /// A clock at [`TestClock::START`] now.
    pub fn new() -> TestClock {
        TestClock::starting_at(UNIX_EPOCH + TestClock::START)
    }

    /// A clock reading `base` now.
    pub fn starting_at(base: SystemTime) -> TestClock {
        TestClock { base, start: Instant::now() }
    }
}

impl Default for TestClock {
    fn default() -> Self {
        TestClock::new()
    }
}

impl Clock for TestClock {
    fn now(&self) -> SystemTime {
        self.base + self.start.elapsed()
    }
}

/// Attempts that fail without running: given to an engine with
/// [`EngineBuilder::faults`](crate::EngineBuilder::faults).
///
/// An injected failure is a retryable error with the message [`INJECTED`]; the state's
/// retries, fallback, pause or the run's rollback follow as for a real one. It applies to
/// every visit of the state.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    chosen: BTreeSet<(&'static str, String, u32)>,
}

impl Faults {
    /// No faults.
    pub fn new() -> Faults {
        Faults::default()
    }

    /// Fails these `attempts` (1 for the first) of state `state` of machine `M`: `[1]`, or
    /// `1..=3`. A state `M` does not have is refused when the engine is built.
    pub fn fail<M: Machine>(
        mut self,
        state: &str,
        attempts: impl IntoIterator<Item = u32>,
    ) -> Faults {
        for attempt in attempts {
            self.chosen.insert((M::NAME, state.to_owned(), attempt));
        }
        self
    }

    /// Whether attempt `attempt` of `state` of `machine` fails.
    pub(crate) fn fails(&self, machine: &'static str, state: &str, attempt: u32) -> bool {
        // Borrowed lookups in a set of owned keys: scan the machine's few entries.
        self.chosen.iter().any(|(m, s, a)| *m == machine && s == state && *a == attempt)
    }

    /// The `(machine, state)` pairs faults are chosen for.
    pub(crate) fn states(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.chosen.iter().map(|(machine, state, _)| (*machine, state.as_str()))
    }
}
