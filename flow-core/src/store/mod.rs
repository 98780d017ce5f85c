//! Where durable runs are kept: the [`CheckpointStore`] trait and its two stores.
//!
//! ```no_run
//! use flow_core::store::SqliteStore;
//!
//! # fn main() -> Result<(), flow_core::store::StoreError> {
//! // One file, created if missing; WAL, synchronous=FULL, group commit.
//! let store = SqliteStore::open("runs.db")?;
//! # Ok(()) }
//! ```
//!
//! A store keeps, per run, a log of checkpoints numbered 0, 1, 2, … ([`Checkpoint::seq`]).
//! Writing checkpoint `n` succeeds only if the run's last checkpoint is `n - 1` (a
//! compare-and-set): two engines resuming the same run cannot both move it on. The engine
//! builds checkpoints and reads them back; a store only keeps them, so a new backend needs
//! nothing of `flow` beyond this module.
//!
//! - [`MemoryStore`]: in the process, for tests and runs that need not survive it.
//! - [`SqliteStore`]: one file, the embedded default.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{BoxError, RunId};

mod memory;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use memory::MemoryStore;
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// One durable step of a run: everything needed to go on from here.
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
    /// While a retry backs off: when it is due, in Unix milliseconds.
    pub wake_at: Option<u64>,
    /// The machine-specific part, as JSON: the state's payload, the context, the attempt, the
    /// visit counts, and the output or error of a finished run.
    pub snapshot: String,
    /// The history entries this checkpoint adds, as a JSON array.
    pub entries: String,
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not finished: running, backing off before a retry, or waiting for a free slot.
    Running,
    /// Finished with an output.
    Completed,
    /// Finished with an error.
    Failed,
    /// Stopped by `Engine::cancel`.
    Cancelled,
    /// Held by `Engine::pause` until `Engine::resume`; not resumed by `resume_pending`.
    Paused,
    /// Unfinished, but this engine could not resume it: its checkpoint is corrupt, or matches
    /// no known version of its machine. The run's note says why; nothing was changed, so the
    /// run resumes once a fixed binary (with the missing migration, say) calls
    /// `Engine::resume_pending` again.
    Stuck,
}

impl Status {
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
        match text {
            "running" => Ok(Status::Running),
            "completed" => Ok(Status::Completed),
            "failed" => Ok(Status::Failed),
            "cancelled" => Ok(Status::Cancelled),
            "paused" => Ok(Status::Paused),
            "stuck" => Ok(Status::Stuck),
            other => Err(StoreError::Backend(
                format!(
                    "unknown run status `{other}` in the store; \
                     expected running, completed, failed, cancelled, paused or stuck"
                )
                .into(),
            )),
        }
    }
}

/// Which runs [`CheckpointStore::list`] returns; every field left `None` matches all.
///
/// ```
/// use flow_core::store::{Filter, Status};
///
/// let stuck_checkouts = Filter::new().machine("checkout").status(Status::Stuck);
/// # let _ = stuck_checkouts;
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Only runs of this machine.
    pub machine: Option<String>,
    /// Only runs with this status.
    pub status: Option<Status>,
}

impl Filter {
    /// Matches every run.
    pub fn new() -> Filter {
        Filter::default()
    }

    /// Only runs of the machine named `name`.
    pub fn machine(mut self, name: impl Into<String>) -> Filter {
        self.machine = Some(name.into());
        self
    }

    /// Only runs with `status`.
    pub fn status(mut self, status: Status) -> Filter {
        self.status = Some(status);
        self
    }

    /// Whether `summary` passes the filter.
    pub fn matches(&self, summary: &RunSummary) -> bool {
        self.machine.as_ref().is_none_or(|name| *name == summary.machine)
            && self.status.is_none_or(|status| status == summary.status)
    }
}

/// One run as [`CheckpointStore::list`] sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// The run.
    pub run: RunId,
    /// Its machine's name.
    pub machine: String,
    /// Where it stands.
    pub status: Status,
    /// Why a run is stuck; `None` otherwise.
    pub note: Option<String>,
}

/// Why a store could not do what was asked.
#[derive(Debug, Error)]
pub enum StoreError {
    /// The checkpoint was not the successor of the run's last one: another engine moved the
    /// run on (or the run already exists, for a checkpoint 0). Nothing was written.
    #[error(
        "run {run}: checkpoint {seq} was refused, the store's last checkpoint of this run is {}; \
         another engine has moved this run on, so this one stops it",
        .stored.map_or_else(|| "none".to_owned(), |seq| seq.to_string())
    )]
    Conflict {
        /// The run.
        run: RunId,
        /// The refused checkpoint's sequence number.
        seq: u64,
        /// The run's last stored sequence number, if it has one.
        stored: Option<u64>,
    },
    /// The store could not be opened or created.
    #[error("cannot open the store at {}: {source}; check that its directory exists and is writable", .path.display())]
    Open {
        /// Where.
        path: PathBuf,
        /// What the backend said.
        #[source]
        source: BoxError,
    },
    /// The store was written by a newer `flow`, with a layout this one does not know.
    #[error(
        "the store at {} has layout version {found}, this flow understands up to {supported}; \
         upgrade flow, or use another file", .path.display()
    )]
    Layout {
        /// Where.
        path: PathBuf,
        /// The store's layout version.
        found: i64,
        /// The newest this build understands.
        supported: i64,
    },
    /// The store has shut down (its writer stopped); nothing more can be written.
    #[error("the store has shut down; nothing more can be written to it")]
    Closed,
    /// Any other failure of the backend (I/O, a full disk, a malformed row).
    #[error("store failure: {0}")]
    Backend(#[source] BoxError),
}

/// Keeps the checkpoints of durable runs. Implement it to add a backend.
///
/// Every method is one atomic operation. [`save`](CheckpointStore::save) returns only once
/// the checkpoint is durable: the engine moves a run on only after that.
pub trait CheckpointStore: Send + Sync + 'static {
    /// Appends `checkpoint` to its run's log if its `seq` follows the run's last stored one
    /// (for `seq` 0: if the run does not exist yet, which also records the run and its
    /// machine); otherwise fails with [`StoreError::Conflict`] and writes nothing. A
    /// checkpoint whose status is not `Running` also sets the run's status.
    fn save(&self, checkpoint: Checkpoint) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The run's last checkpoint; `None` for an unknown run.
    fn latest(
        &self,
        run: RunId,
    ) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// All of the run's checkpoints, in order; empty for an unknown run.
    fn checkpoints(
        &self,
        run: RunId,
    ) -> impl Future<Output = Result<Vec<Checkpoint>, StoreError>> + Send;

    /// The run's summary; `None` for an unknown run.
    fn summary(
        &self,
        run: RunId,
    ) -> impl Future<Output = Result<Option<RunSummary>, StoreError>> + Send;

    /// The runs `filter` matches, oldest first.
    fn list(
        &self,
        filter: Filter,
    ) -> impl Future<Output = Result<Vec<RunSummary>, StoreError>> + Send;

    /// Sets a run's status and note without writing a checkpoint: how the engine marks a run
    /// it cannot resume as [`Status::Stuck`], and clears the mark once it can.
    fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// [`CheckpointStore`] with boxed futures, so the engine can hold any store behind one type.
pub(crate) trait DynStore: Send + Sync + 'static {
    fn save(&self, checkpoint: Checkpoint) -> Boxed<'_, ()>;
    fn latest(&self, run: RunId) -> Boxed<'_, Option<Checkpoint>>;
    fn checkpoints(&self, run: RunId) -> Boxed<'_, Vec<Checkpoint>>;
    fn summary(&self, run: RunId) -> Boxed<'_, Option<RunSummary>>;
    fn list(&self, filter: Filter) -> Boxed<'_, Vec<RunSummary>>;
    fn mark(&self, run: RunId, status: Status, note: Option<String>) -> Boxed<'_, ()>;
}

impl<S: CheckpointStore> DynStore for S {
    fn save(&self, checkpoint: Checkpoint) -> Boxed<'_, ()> {
        Box::pin(CheckpointStore::save(self, checkpoint))
    }
    fn latest(&self, run: RunId) -> Boxed<'_, Option<Checkpoint>> {
        Box::pin(CheckpointStore::latest(self, run))
    }
    fn checkpoints(&self, run: RunId) -> Boxed<'_, Vec<Checkpoint>> {
        Box::pin(CheckpointStore::checkpoints(self, run))
    }
    fn summary(&self, run: RunId) -> Boxed<'_, Option<RunSummary>> {
        Box::pin(CheckpointStore::summary(self, run))
    }
    fn list(&self, filter: Filter) -> Boxed<'_, Vec<RunSummary>> {
        Box::pin(CheckpointStore::list(self, filter))
    }
    fn mark(&self, run: RunId, status: Status, note: Option<String>) -> Boxed<'_, ()> {
        Box::pin(CheckpointStore::mark(self, run, status, note))
    }
}
