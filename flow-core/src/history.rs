//! What happened during a run: one [`Entry`] per state attempt.

use std::collections::BTreeSet;
use std::error::Error as StdError;
use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::SharedError;

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
    /// The end state finished the run, or a `branch_end` state its branch.
    Completed,
    /// The fork state split the run into branches, whose entries follow; once each had
    /// ended, the run went to the join state `join`.
    Forked {
        /// The join state.
        #[serde(deserialize_with = "name")]
        join: Name,
    },
    /// The state's signal did not come within its timeout; the run went to its default.
    NoSignal {
        /// The default state.
        #[serde(deserialize_with = "name")]
        to: Name,
    },
    /// The state failed for good (or its `max_visits` refused a visit:
    /// [`Failure::VisitLimit`]) and the run went to its fallback, with the failure: an entry
    /// of its own after the last attempt's `Failed` one, with the same attempt number.
    Caught {
        /// The fallback state.
        #[serde(deserialize_with = "name")]
        to: Name,
    },
    /// The state's compensation ran (the run is rolling back).
    Compensated,
    /// An attempt of the state's compensation failed.
    CompensationFailed {
        /// Why.
        failure: Failure,
        /// The backoff before the next attempt; `None` when none follows.
        retry_in: Option<Duration>,
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
///
/// A failure is stored with the run; what is stored is what two failures are compared by.
/// [`Failure::Error`] also holds, while the process that saw it runs, the error the state
/// returned: [`Failure::downcast_ref`] and the `source` chain reach it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Failure {
    /// The state returned an error.
    Error {
        /// The error's message and causes.
        message: String,
        /// Whether it was marked permanent (no retry).
        permanent: bool,
        /// The error itself, with its causes, as the state returned it: present while the
        /// process that saw it runs. It is not stored (a run read back after a restart has
        /// only the message, causes included), and it is ignored when failures are compared.
        #[serde(skip)]
        source: Option<SharedError>,
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
    /// The process running the attempt stopped (it crashed, was killed, or lost touch with
    /// the store) before the attempt ended; another engine took the run over and counted the
    /// attempt as failed, so a state that crashes its process every time runs out of
    /// attempts instead of running forever.
    Interrupted,
    /// Like [`Failure::Interrupted`], but the run had been taken over more often in this visit
    /// than [`EngineBuilder::max_reassignments`](crate::EngineBuilder::max_reassignments)
    /// allows: each engine holding it stopped before the attempt ended, `times` times
    /// without the run moving on. The engine that took it over last failed the attempt for
    /// good (no retry) instead of running the state again.
    Reassigned {
        /// How many times the run was taken over in this visit, this takeover included.
        times: u32,
        /// The engine's `max_reassignments`.
        limit: u32,
    },
    /// The run entered the state more often than its `max_visits` allows, and the state
    /// declares a `fallback`, which catches the refused visit like any failure: the fallback
    /// receives it in its [`Caught`], and the history records it as the failed first attempt
    /// of the refused visit (which never ran: its duration is zero), before the `Caught` entry.
    /// Without a fallback the run fails with [`RunError::MaxVisits`](crate::RunError::MaxVisits).
    VisitLimit {
        /// The state's `max_visits`.
        limit: u32,
    },
}

impl Failure {
    /// A [`Failure::Error`] with `message` and no live error: what a stored failure reads
    /// back as.
    pub fn error(message: impl Into<String>, permanent: bool) -> Failure {
        Failure::Error { message: message.into(), permanent, source: None }
    }

    /// The error the state returned, as it returned it, while the process that saw it runs;
    /// `None` for other failures and for a failure read back from a store.
    pub fn source_error(&self) -> Option<&(dyn StdError + Send + Sync + 'static)> {
        match self {
            Failure::Error { source: Some(source), .. } => Some(&**source),
            _ => None,
        }
    }

    /// The error the state returned, or the first of its causes, of type `E`: see
    /// [`Failure::source_error`] for when it is there.
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        crate::error::find(self.source_error()?)
    }

    /// Whether this failure ends the visit whatever attempts remain.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Failure::Error { permanent: true, .. }
                | Failure::Reassigned { .. }
                | Failure::VisitLimit { .. }
        )
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Error { message, permanent: true, .. } => {
                write!(f, "permanent error: {message}")
            }
            Failure::Error { message, permanent: false, .. } => write!(f, "error: {message}"),
            Failure::TimedOut { after } => write!(f, "timed out after {after:?}"),
            Failure::Panicked { message } => write!(f, "panicked: {message}"),
            Failure::Interrupted => f.write_str("interrupted: the process running it stopped"),
            Failure::Reassigned { times, limit } => write!(
                f,
                "the run was taken over {times} times in this state without moving on (limit \
                 {limit}, EngineBuilder::max_reassignments): each engine holding it stopped \
                 before its next checkpoint; look for what in this state kills or stalls the \
                 process"
            ),
            Failure::VisitLimit { limit } => {
                write!(f, "entered more than {limit} times (its max_visits)")
            }
        }
    }
}

/// Its source is the error the state returned, while there is one: [`Failure::source_error`].
impl StdError for Failure {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self.source_error() {
            Some(source) => Some(source),
            None => None,
        }
    }
}

/// Compares what is stored: the live error of a [`Failure::Error`] is left out, so a failure
/// equals itself read back from a store.
impl PartialEq for Failure {
    fn eq(&self, other: &Failure) -> bool {
        use Failure::*;
        match (self, other) {
            (Error { message, permanent, .. }, Error { message: m, permanent: p, .. }) => {
                message == m && permanent == p
            }
            (TimedOut { after }, TimedOut { after: a }) => after == a,
            (Panicked { message }, Panicked { message: m }) => message == m,
            (Interrupted, Interrupted) => true,
            (Reassigned { times, limit }, Reassigned { times: t, limit: l }) => {
                times == t && limit == l
            }
            (VisitLimit { limit }, VisitLimit { limit: l }) => limit == l,
            (
                Error { .. }
                | TimedOut { .. }
                | Panicked { .. }
                | Interrupted
                | Reassigned { .. }
                | VisitLimit { .. },
                _,
            ) => false,
        }
    }
}

impl Eq for Failure {}

/// What a fallback state receives: which state failed for good, and each of its attempts'
/// failures. Declared as the fallback's one payload parameter (the `flow` crate's docs show a
/// whole machine):
///
/// ```text
/// #[state(to(ship), retry(attempts = 3), fallback = review)]
/// async fn charge(cx: &mut Shop, order: Order) -> Result<Charge> { ... }
///
/// #[state(end)]
/// async fn review(cx: &mut Shop, failure: flow::Caught) -> Result<Receipt> { ... }
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Caught {
    /// The state that failed.
    pub state: String,
    /// Its attempts' failures, in order; the last one ended the visit. A visit refused by the
    /// state's `max_visits` has the one failure [`Failure::VisitLimit`].
    pub attempts: Vec<Failure>,
}

impl Caught {
    /// The failure that ended the visit.
    pub fn last(&self) -> Option<&Failure> {
        self.attempts.last()
    }
}

/// `state `charge` failed after 3 attempt(s); last: error: declined`, or for a refused visit
/// `state `plan` was entered more than 3 times (its max_visits)`.
impl fmt::Display for Caught {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let [refused @ Failure::VisitLimit { .. }] = self.attempts.as_slice() {
            return write!(f, "state `{}` was {refused}", self.state);
        }
        write!(f, "state `{}` failed after {} attempt(s)", self.state, self.attempts.len())?;
        match self.last() {
            Some(last) => write!(f, "; last: {last}"),
            None => Ok(()),
        }
    }
}

/// A type a fallback state's payload can be: it is built from the [`Caught`] failure.
///
/// Implemented for [`Caught`] itself; implement it for your own type to keep only what the
/// fallback needs.
#[diagnostic::on_unimplemented(
    message = "a fallback state's payload must take the failure, and `{Self}` cannot",
    label = "this fallback's payload is `{Self}`",
    note = "give the fallback state one payload parameter `failure: flow::Caught`, or implement `flow::FromCaught` for `{Self}`"
)]
pub trait FromCaught: Sized {
    /// Builds the fallback's payload from the failure.
    fn from_caught(caught: Caught) -> Self;
}

impl FromCaught for Caught {
    fn from_caught(caught: Caught) -> Caught {
        caught
    }
}

/// `→ charge`, `completed`, or `error: …; retry in 16ms`.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Transitioned { to } => write!(f, "→ {to}"),
            Outcome::Completed => f.write_str("completed"),
            Outcome::Forked { join } => write!(f, "forked, joined at {join}"),
            Outcome::NoSignal { to } => write!(f, "no signal in time → {to}"),
            Outcome::Caught { to } => write!(f, "failed → fallback {to}"),
            Outcome::Compensated => f.write_str("compensated"),
            Outcome::CompensationFailed { failure, retry_in: Some(delay) } => {
                write!(f, "compensation {failure}; retry in {delay:?}")
            }
            Outcome::CompensationFailed { failure, retry_in: None } => {
                write!(f, "compensation {failure}; no retry")
            }
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

/// Reads a list of state names back, as [`name`] does one.
pub(crate) fn names<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<&'static str>, D::Error> {
    #[derive(Deserialize)]
    struct One(#[serde(deserialize_with = "name")] Name);
    let all = Vec::<One>::deserialize(deserializer)?;
    Ok(all.into_iter().map(|One(name)| name).collect())
}

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
