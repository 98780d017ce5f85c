//! What happened during a run: one [`Entry`] per state attempt.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

/// One state attempt: which state, which attempt of its visit, what came of it, how long it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The state's name.
    #[serde(deserialize_with = "name")]
    pub state: Name,
    /// 1 for the first attempt of a visit, 2 for its first retry, and so on.
    pub attempt: u32,
    /// What the attempt produced.
    pub outcome: Outcome,
    /// How long the attempt ran (by the tokio clock, so paused-clock tests see virtual time).
    pub duration: Duration,
}

/// What came of one state attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Outcome {
    /// The state went to `to`.
    Transitioned {
        /// The next state's name.
        #[serde(deserialize_with = "name")]
        to: Name,
    },
    /// The end state finished the run.
    Completed,
    /// The state's signal did not come within its timeout; the run went to its default.
    NoSignal {
        /// The default state.
        #[serde(deserialize_with = "name")]
        to: Name,
    },
    /// The attempt failed.
    Failed {
        /// Why.
        failure: Failure,
        /// The backoff before the next attempt; `None` when no attempt follows.
        retry_in: Option<Duration>,
    },
}

/// Why a state attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Failure {
    /// The state returned an error.
    Error {
        /// The error's message and causes.
        message: String,
        /// Whether it was marked permanent (no retry).
        permanent: bool,
    },
    /// The attempt ran longer than the state's `timeout` and was cancelled.
    TimedOut {
        /// The timeout it exceeded.
        after: Duration,
    },
    /// The state panicked; the panic was caught and counted as a failed attempt.
    Panicked {
        /// The panic's message, when it was a string.
        message: String,
    },
}

impl Failure {
    /// Whether this failure ends the visit whatever attempts remain.
    pub fn is_permanent(&self) -> bool {
        matches!(self, Failure::Error { permanent: true, .. })
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error { message, permanent: true } => write!(f, "permanent error: {message}"),
            Failure::Error { message, permanent: false } => write!(f, "error: {message}"),
            Failure::TimedOut { after } => write!(f, "timed out after {after:?}"),
            Failure::Panicked { message } => write!(f, "panicked: {message}"),
        }
    }
}

/// `→ charge`, `completed`, or `error: …; retry in 16ms`.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Transitioned { to } => write!(f, "→ {to}"),
            Outcome::Completed => f.write_str("completed"),
            Outcome::NoSignal { to } => write!(f, "no signal in time → {to}"),
            Outcome::Failed { failure, retry_in: Some(delay) } => {
                write!(f, "{failure}; retry in {delay:?}")
            }
            Outcome::Failed { failure, retry_in: None } => write!(f, "{failure}; no retry"),
        }
    }
}

/// `charge #2 (6.4ms): → ship`.
impl fmt::Display for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} #{} ({:.1?}): {}", self.state, self.attempt, self.duration, self.outcome)
    }
}

/// A state's name. (An alias, so serde's derive reads it through [`name`] instead of
/// borrowing it from the input.)
pub(crate) type Name = &'static str;

/// Reads a state name back from a checkpoint as the `&'static str` the history holds.
///
/// Each distinct name is allocated once for the life of the process; names are few (the
/// states of the machines a store has seen), so the set stays small.
pub(crate) fn name<'de, D: Deserializer<'de>>(deserializer: D) -> Result<&'static str, D::Error> {
    static NAMES: Mutex<BTreeSet<&'static str>> = Mutex::new(BTreeSet::new());
    let text = String::deserialize(deserializer)?;
    let mut names = NAMES.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = names.get(&*text) {
        return Ok(known);
    }
    let leaked: &'static str = Box::leak(text.into_boxed_str());
    names.insert(leaked);
    Ok(leaked)
}
