//! Per-state policy: attempts, backoff, timeout, the visit guard, a durable wait, and what a
//! failure leads to.
//!
//! The macro builds a [`Policy`] for every state from its attribute;
//! `#[state(retry(attempts = 5, backoff = "100ms..10s"), timeout = "30s", max_visits = 3)]`
//! becomes:
//!
//! ```
//! use std::time::Duration;
//! use flow_core::{Backoff, OnFailure, Policy, RetryPolicy};
//!
//! let policy = Policy {
//!     retry: RetryPolicy {
//!         attempts: 5,
//!         backoff: Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(10) },
//!     },
//!     timeout: Some(Duration::from_secs(30)),
//!     max_visits: Some(3),
//!     wait: None,
//!     on_failure: OnFailure::Fail,
//! };
//! // The n-th retry waits a random time in [0, min(cap, base * 2^(n-1))] ("full jitter").
//! assert_eq!(policy.retry.backoff.ceiling(1), Duration::from_millis(100));
//! assert_eq!(policy.retry.backoff.ceiling(4), Duration::from_millis(800));
//! assert_eq!(policy.retry.backoff.ceiling(30), Duration::from_secs(10));
//! ```

use std::time::Duration;

use serde::Serialize;

/// How the runtime treats one state: retries, per-attempt timeout and visit limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// How many attempts a visit gets and how long to wait between them.
    pub retry: RetryPolicy,
    /// The longest one attempt may run; a slower attempt is cancelled and counts as failed.
    pub timeout: Option<Duration>,
    /// How often a run may enter this state; entering it once more fails the run.
    pub max_visits: Option<u32>,
    /// A durable timer: how long a run waits after entering this state before its first
    /// attempt, `#[state(wait = "1h")]`. The wake-up time is checkpointed, so the wait survives
    /// a restart (and waits only what is left of it).
    pub wait: Option<Duration>,
    /// What the run does when a visit's attempts are exhausted, or one fails permanently.
    pub on_failure: OnFailure,
}

/// What a run does when a state fails for good: its last attempt failed, or an attempt
/// failed with a permanent error. Declared with `on_failure = pause` or `fallback = state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum OnFailure {
    /// The run fails, after the compensations of the states it completed have run, newest
    /// first. The default.
    Fail,
    /// The run pauses, for an operator to mend the cause and
    /// [`Engine::resume`](crate::Engine::resume) it; the state then gets a fresh set of
    /// attempts. A run without an engine to resume it (the in-memory runner) fails instead.
    Pause,
    /// The run goes to this state, which takes the failure ([`Caught`](crate::Caught)) as
    /// its payload: a typed `Catch`.
    Fallback(&'static str),
}

impl Policy {
    /// One attempt, no timeout, no visit limit: the policy of a state that declares none.
    pub const DEFAULT: Policy = Policy {
        retry: RetryPolicy::NONE,
        timeout: None,
        max_visits: None,
        wait: None,
        on_failure: OnFailure::Fail,
    };
}

impl Default for Policy {
    fn default() -> Self {
        Policy::DEFAULT
    }
}

/// How many attempts a state visit gets, and the backoff between them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; at least 1.
    pub attempts: u32,
    /// The wait before each retry.
    pub backoff: Backoff,
}

impl RetryPolicy {
    /// A single attempt: a failure fails the state.
    pub const NONE: RetryPolicy = RetryPolicy { attempts: 1, backoff: Backoff::DEFAULT };
}

/// Exponential backoff with a cap and full jitter.
///
/// Before retry `n` (1 for the first retry) the runtime waits a uniformly random duration in
/// `[0, min(cap, base * 2^(n-1))]` (in whole milliseconds). Full jitter spreads retries of many runs hitting the same
/// failing service, instead of having them come back in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backoff {
    /// The ceiling of the first retry's wait.
    pub base: Duration,
    /// The largest ceiling any retry's wait can have.
    pub cap: Duration,
}

impl Backoff {
    /// `100ms..10s`: the backoff of a `retry(...)` that does not name one.
    pub const DEFAULT: Backoff =
        Backoff { base: Duration::from_millis(100), cap: Duration::from_secs(10) };

    /// The longest wait before retry `retry` (1-based): `min(cap, base * 2^(retry-1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(63);
        let factor = 1u128 << doublings;
        let nanos = self.base.as_nanos().saturating_mul(factor).min(self.cap.as_nanos());
        // `nanos <= cap`, which came from a `Duration`, so it fits back into one.
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The wait before retry `retry`, drawn uniformly from `[0, ceiling(retry)]`.
    ///
    /// Drawn in whole milliseconds, the resolution of tokio's timers, so the recorded delay is
    /// the one the run really waits; a ceiling under a millisecond is drawn in nanoseconds.
    pub(crate) fn delay(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        match u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX) {
            0 => Duration::from_nanos(rng.u64(0..=ceiling.subsec_nanos().into())),
            millis => Duration::from_millis(rng.u64(0..=millis)),
        }
    }
}
