//! Per-state policy: attempts, backoff, timeout, the visit guard, a durable wait, and what a
//! failure leads to.
//!
//! The macro builds a [`Policy`] for every state from its attribute;
//! `#[state(retry(attempts = 5, backoff = "100ms..10s"), timeout = "30s", max_visits = 3)]`
//! becomes:
//!
//! ```
//! use std::time::Duration;
//! use flow::policy::{Backoff, Jitter, OnFailure, Policy, RetryPolicy};
//!
//! let policy = Policy {
//!     retry: RetryPolicy {
//!         attempts: 5,
//!         backoff: Backoff {
//!             base: Duration::from_millis(100),
//!             cap: Duration::from_secs(10),
//!             jitter: Jitter::Full,
//!         },
//!     },
//!     timeout: Some(Duration::from_secs(30)),
//!     max_visits: Some(3),
//!     wait: None,
//!     on_failure: OnFailure::Fail,
//!     uses: &[],
//! };
//! // The n-th retry waits a random time in [0, min(cap, base * 2^(n-1))] ("full jitter", the
//! // default; `retry(jitter = "equal")` or `"none"` choose otherwise: see `Jitter`).
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
    /// How often a run may enter this state; entering it once more fails the run, or, if the
    /// state declares a fallback, goes there instead ([`Failure::VisitLimit`]).
    ///
    /// [`Failure::VisitLimit`]: crate::history::Failure::VisitLimit
    pub max_visits: Option<u32>,
    /// A durable timer: how long a run waits after entering this state before its first
    /// attempt, `#[state(wait = "1h")]`. The wake-up time is checkpointed, so the wait survives
    /// a restart (and waits only what is left of it).
    pub wait: Option<Duration>,
    /// What the run does when a visit's attempts are exhausted, or one fails permanently.
    pub on_failure: OnFailure,
    /// The engine's resource pools each attempt of the state holds while it runs, as
    /// `(pool, units)`: `#[state(uses(gpu = 1))]`. The attempt waits until it can hold all of
    /// them ([`EngineBuilder::pool`](crate::EngineBuilder::pool)); the state's compensation
    /// holds none. Empty for a state that uses none.
    pub uses: &'static [(&'static str, u32)],
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
    /// its payload: a typed `Catch`. It catches the state's `max_visits` too: a visit the
    /// limit refuses goes to the fallback, with
    /// [`Failure::VisitLimit`](crate::history::Failure::VisitLimit) as the failure.
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
        uses: &[],
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

/// Exponential backoff with a cap and a [`Jitter`].
///
/// Before retry `n` (1 for the first retry) the runtime waits up to the ceiling
/// `min(cap, base * 2^(n-1))`; the jitter says how much of it, full jitter (the default)
/// drawing a uniformly random duration in `[0, ceiling]`. Jitter spreads the retries of many
/// runs hitting the same failing service, instead of having them come back in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Backoff {
    /// The ceiling of the first retry's wait.
    pub base: Duration,
    /// The largest ceiling any retry's wait can have.
    pub cap: Duration,
    /// How much of each retry's ceiling it waits: `retry(jitter = "equal")`.
    pub jitter: Jitter,
}

/// How a retry's wait is drawn under its ceiling, `#[state(retry(jitter = "..."))]`.
///
/// Full and equal jitter are the two named in Marc Brooker's "Exponential Backoff And Jitter"
/// (AWS Architecture Blog, 2015,
/// <https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/>): full jitter
/// spreads retries the most, equal jitter keeps every wait at least half its ceiling.
///
/// ```
/// use std::time::Duration;
/// use flow::policy::{Backoff, Jitter};
///
/// let exact = Backoff { jitter: Jitter::None, ..Backoff::DEFAULT };
/// // With no jitter, retry 3 waits exactly its ceiling: 100ms * 2^2.
/// assert_eq!(exact.ceiling(3), Duration::from_millis(400));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum Jitter {
    /// A uniformly random wait in `[0, ceiling]`: `jitter = "full"`, the default.
    #[default]
    Full,
    /// A uniformly random wait in `[ceiling / 2, ceiling]`: `jitter = "equal"`.
    Equal,
    /// Exactly the ceiling, every time: `jitter = "none"`, for exact waits in a test or a
    /// protocol that prescribes them.
    None,
}

impl Backoff {
    /// `100ms..10s` with full jitter: the backoff of a `retry(...)` that does not name one.
    pub const DEFAULT: Backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(10),
        jitter: Jitter::Full,
    };

    /// The longest wait before retry `retry` (1-based): `min(cap, base * 2^(retry-1))`.
    pub fn ceiling(&self, retry: u32) -> Duration {
        let doublings = retry.saturating_sub(1).min(63);
        let factor = 1u128 << doublings;
        let nanos = self.base.as_nanos().saturating_mul(factor).min(self.cap.as_nanos());
        // `nanos <= cap`, which came from a `Duration`, so it fits back into one.
        Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
    }

    /// The wait before retry `retry`: drawn uniformly from `[0, ceiling(retry)]` (full jitter)
    /// or `[ceiling(retry) / 2, ceiling(retry)]` (equal jitter), or the ceiling itself (none).
    ///
    /// Drawn in whole milliseconds, the resolution of tokio's timers, so the recorded delay is
    /// the one the run really waits; a ceiling under a millisecond is drawn in nanoseconds.
    pub(crate) fn delay(&self, retry: u32, rng: &mut fastrand::Rng) -> Duration {
        let ceiling = self.ceiling(retry);
        let (unit, highest) = match u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX) {
            _ if self.jitter == Jitter::None => return ceiling,
            0 => (1, u64::from(ceiling.subsec_nanos())),
            millis => (1_000_000, millis),
        };
        let lowest = match self.jitter {
            // Half the ceiling, rounded up to a whole unit so that no draw falls below it.
            Jitter::Equal => {
                let half = ceiling.as_nanos().div_ceil(2).div_ceil(unit);
                u64::try_from(half).unwrap_or(u64::MAX).min(highest)
            }
            Jitter::Full | Jitter::None => 0,
        };
        let drawn = rng.u64(lowest..=highest);
        if unit == 1 { Duration::from_nanos(drawn) } else { Duration::from_millis(drawn) }
    }
}

#[cfg(test)]
mod tests {
    use super::{Backoff, Jitter};
    use std::time::Duration;

    /// Ceilings in whole milliseconds, with a fraction of one, and under one: every draw stays
    /// within its jitter's bounds.
    #[test]
    fn draws_stay_within_their_jitter() {
        let mut rng = fastrand::Rng::with_seed(3);
        for base in
            [Duration::from_millis(40), Duration::from_micros(1_500), Duration::from_nanos(700)]
        {
            for jitter in [Jitter::Full, Jitter::Equal, Jitter::None] {
                let backoff = Backoff { base, cap: base * 4, jitter };
                for retry in 1..=4 {
                    let ceiling = backoff.ceiling(retry);
                    let lowest = match jitter {
                        Jitter::Full => Duration::ZERO,
                        Jitter::Equal => ceiling / 2,
                        Jitter::None => ceiling,
                    };
                    for _ in 0..200 {
                        let delay = backoff.delay(retry, &mut rng);
                        assert!(
                            lowest <= delay && delay <= ceiling,
                            "{jitter:?} retry {retry}: {delay:?} outside [{lowest:?}, {ceiling:?}]"
                        );
                    }
                }
            }
        }
    }
}
