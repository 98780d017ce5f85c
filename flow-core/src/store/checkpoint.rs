//! What a store keeps of a run: its latest [`Checkpoint`], where the run stands ([`Status`]),
//! and why it waits ([`Wait`]).

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::{Lease, StoreError};
use crate::RunId;

/// One durable step of a run: everything needed to go on from here.
///
/// A store keeps a run's latest checkpoint (its snapshot replaces the one before) and appends
/// its history entries; it does not keep a full copy per step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The run.
    pub run: RunId,
    /// 0 for the run's first checkpoint, then one more per checkpoint, without gaps.
    pub seq: u64,
    /// The machine's name.
    pub machine: Cow<'static, str>,
    /// The machine's version when this checkpoint was written.
    pub version: u32,
    /// The machine's shape fingerprint when this checkpoint was written.
    pub fingerprint: Cow<'static, str>,
    /// Where the run stands.
    pub status: Status,
    /// The name of the state the run is in (or ended in).
    pub state: Cow<'static, str>,
    /// A deadline, in Unix milliseconds: when a retry's backoff or a `wait` timer ends, or
    /// when a wait for a signal times out.
    pub wake_at: Option<u64>,
    /// Why the run waits, if it does: a waiting run is held by no engine, and becomes
    /// runnable at `wake_at` (or, waiting for a signal without a deadline, when one comes).
    /// `None` for a run that goes on at once.
    pub wait: Option<Wait>,
    /// The claim this checkpoint is written under, checked by the store (fencing). `None`
    /// for a write from outside the run (a signal, a cancel), which the store accepts only
    /// while no engine holds the run.
    pub lease: Option<Lease>,
    /// The machine-specific part, as JSON: the state's payload, the context, the attempt, the
    /// visit counts, and the output or error of a finished run.
    pub snapshot: String,
    /// When it was written, in Unix milliseconds on the writer's clock.
    pub at: u64,
    /// The history entries this checkpoint adds, as a JSON array. Reads leave it `"[]"`:
    /// [`CheckpointStore::history`](super::CheckpointStore::history) gives a run's history.
    pub entries: String,
    /// The business key the run was started under, if any. A store
    /// records it with the run's checkpoint 0 and ignores it on later ones; reads give it
    /// back on every checkpoint.
    pub key: Option<String>,
}

impl Checkpoint {
    /// Whether the engine that writes this checkpoint keeps holding the run: it is running
    /// and goes on at once under the writer's lease.
    pub fn keeps_lease(&self) -> bool {
        self.status == Status::Running && self.wait.is_none() && self.lease.is_some()
    }

    /// When the run becomes claimable after this checkpoint, in Unix milliseconds: `None` for
    /// a run no engine may claim (held by its writer, finished, paused, stuck, or waiting for
    /// a signal without a deadline); `Some(0)` for a run that is runnable now.
    pub fn due_at(&self) -> Option<u64> {
        if self.status != Status::Running || self.keeps_lease() {
            return None;
        }
        match self.wait {
            None => Some(0),
            Some(Wait::Signal | Wait::Join) => self.wake_at,
            Some(Wait::Timer | Wait::Backoff) => Some(self.wake_at.unwrap_or(0)),
        }
    }
}

/// Why a run waits in the store, held by no engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Wait {
    /// For a `#[signal]`, until its timeout if it has one.
    Signal,
    /// For a state's `wait = "..."` timer.
    Timer,
    /// For a retry's backoff.
    Backoff,
    /// For the branches of a fork (each a run of its own) to finish. A branch that finishes
    /// makes the run runnable; `wake_at` is when it looks at its branches again regardless.
    Join,
}

impl Wait {
    /// Every reason, in declaration order: what [`FromStr`] reads and error messages list.
    pub const ALL: &[Wait] = &[Wait::Signal, Wait::Timer, Wait::Backoff, Wait::Join];

    /// `"signal"`, `"timer"`, `"backoff"` or `"join"`: how stores write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Wait::Signal => "signal",
            Wait::Timer => "timer",
            Wait::Backoff => "backoff",
            Wait::Join => "join",
        }
    }
}

impl fmt::Display for Wait {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Wait {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Wait, StoreError> {
        Wait::ALL.iter().copied().find(|wait| wait.as_str() == text).ok_or_else(|| {
            StoreError::Backend(
                format!("unknown wait `{text}` in the store; expected {}", one_of(Wait::ALL))
                    .into(),
            )
        })
    }
}

/// `"a, b or c"`: the names of `values`, for an error message.
fn one_of<T: fmt::Display>(values: &[T]) -> String {
    let names: Vec<String> = values.iter().map(T::to_string).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not finished: executing, runnable, or waiting in the store (for a backoff, a timer or
    /// a signal; [`RunSummary::wait`](super::RunSummary::wait) says which).
    Running,
    /// Finished with an output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped by `Engine::cancel`.
    Cancelled,
    /// Held by `Engine::pause` until `Engine::resume`; no engine claims it meanwhile.
    Paused,
    /// Unfinished, but an engine could not run it: its checkpoint is corrupt, matches no known
    /// version of its machine, or the engine failed while running it. The run's note says why;
    /// nothing else was changed, so the run goes on once a fixed binary (with the missing
    /// migration, say) calls `Engine::resume_pending`. No engine claims it meanwhile.
    Stuck,
}

impl Status {
    /// Every status, in declaration order: what [`FromStr`] reads and error messages list.
    pub const ALL: &[Status] = &[
        Status::Running,
        Status::Completed,
        Status::Failed,
        Status::Cancelled,
        Status::Paused,
        Status::Stuck,
    ];

    /// Whether the run has finished (completed, failed or cancelled).
    pub fn is_finished(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }

    /// `"running"`, `"completed"`, `"failed"`, `"cancelled"`, `"paused"` or `"stuck"`: how stores write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Running => "running",
            Status::Completed => "completed",
            Status::Failed => "failed",
            Status::Cancelled => "cancelled",
            Status::Paused => "paused",
            Status::Stuck => "stuck",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Status {
    type Err = StoreError;

    fn from_str(text: &str) -> Result<Status, StoreError> {
        Status::ALL.iter().copied().find(|status| status.as_str() == text).ok_or_else(|| {
            StoreError::Backend(
                format!(
                    "unknown run status `{text}` in the store; expected {}",
                    one_of(Status::ALL)
                )
                .into(),
            )
        })
    }
}
