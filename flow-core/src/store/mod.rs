//! Where durable runs are kept: the [`CheckpointStore`] trait and its stores, in memory, SQLite
//! (the default) and PostgreSQL (the `postgres` feature).
//!
//! ```no_run
//! use flow::store::SqliteStore;
//!
//! # fn main() -> Result<(), flow::store::StoreError> {
//! // One file, created if missing; WAL, synchronous=FULL, group commit.
//! let store = SqliteStore::open("runs.db")?;
//! # Ok(()) }
//! ```
//!
//! The store is the truth: a run lives in its store, not in a process. Per run, a store keeps
//! its latest [`Checkpoint`] (numbered 0, 1, 2, …: [`Checkpoint::seq`]), the business key it
//! was started under, if any ([`Checkpoint::key`]), the history entries each checkpoint
//! added, why the run waits and until when ([`Wait`], [`Checkpoint::due_at`]), and which
//! engine holds it under which [`Lease`]. Writing checkpoint `n` succeeds only if the
//! run's last one is `n - 1` (a compare-and-set) and the write carries the lease the run is
//! held under (fencing): an engine that lost a run cannot move it on. Engines
//! [`claim`](CheckpointStore::claim) runs when they are due, and
//! [`take_over`](CheckpointStore::take_over) those of an engine whose lease lapsed.
//!
//! The engine builds checkpoints and reads them back; a store only keeps them, so a new
//! backend needs nothing of `flow` beyond this module. `tests/store.rs` is the contract every
//! store passes.
//!
//! - [`MemoryStore`]: in the process, for tests and runs that need not survive it.
//! - [`SqliteStore`]: one file, the embedded default.
//! - `PostgresStore` (feature `postgres`): one database shared by many worker processes.

use std::borrow::Cow;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::{BoxError, RunId};

mod filter;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use filter::{Cursor, Filter, Order, ParseCursorError, RunSummary};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

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
    /// [`CheckpointStore::history`] gives a run's history.
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

/// An engine's claim on a run: who holds it, and the fencing token of this claim.
///
/// Every claim of a run gets a token one higher than the claim before, so a write carrying an
/// older token comes from an engine that lost the run, and the store refuses it
/// ([`StoreError::Fenced`]). State bodies read the token from [`crate::current`] to fence the
/// side effects they make elsewhere.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The engine holding the run: its owner id ([`CheckpointStore::heartbeat`] keeps it alive).
    pub owner: Arc<str>,
    /// This claim's fencing token.
    pub token: u64,
}

/// A run an engine has claimed: its latest checkpoint, and the claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// The run's latest checkpoint (its `entries` left `"[]"`).
    pub checkpoint: Checkpoint,
    /// The new claim; write the run's next checkpoints under it.
    pub lease: Lease,
    /// Whether the run was taken from an engine whose lease expired, rather than released:
    /// the attempt that engine was running was interrupted.
    pub taken_over: bool,
    /// A cancel or pause requested while the run was held elsewhere, still to be honoured.
    pub halt: Option<Halt>,
}

/// A request to stop a run that an engine holds: recorded in the store, and honoured by that
/// engine at the run's next safe point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Halt {
    /// Hold the run, to be resumed later.
    Pause = 1,
    /// End the run as cancelled.
    Cancel = 2,
}

impl Halt {
    /// `"pause"` or `"cancel"`: how stores write it.
    pub fn as_str(self) -> &'static str {
        match self {
            Halt::Pause => "pause",
            Halt::Cancel => "cancel",
        }
    }

    /// Reads [`Halt::as_str`] back; `None` for anything else.
    pub fn parse(text: &str) -> Option<Halt> {
        match text {
            "pause" => Some(Halt::Pause),
            "cancel" => Some(Halt::Cancel),
            _ => None,
        }
    }
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not finished: executing, runnable, or waiting in the store (for a backoff, a timer or
    /// a signal; [`RunSummary::wait`] says which).
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
    /// The checkpoint was written under a lease that no longer holds the run: another engine
    /// claimed it after this one's lease expired, or (for a write from outside the run) an
    /// engine holds it now. Nothing was written.
    #[error(
        "run {run}: the write was refused, the run is held by another claim than this \
         writer's (its lease expired and another engine took the run over); this engine \
         lets go of the run"
    )]
    Fenced {
        /// The run.
        run: RunId,
    },
    /// Only finished runs are deleted.
    #[error(
        "run {run} is {status}, not finished, and was not deleted; cancel it first \
         (Engine::cancel), then delete it"
    )]
    Unfinished {
        /// The run.
        run: RunId,
        /// Where it stands.
        status: Status,
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
        "the store at {location} has layout version {found}, this flow understands up to \
         {supported}; upgrade flow, or use another file (SQLite) or schema (PostgreSQL)"
    )]
    Layout {
        /// Where: the file, or the database and schema.
        location: String,
        /// The store's layout version.
        found: i64,
        /// The newest this build understands.
        supported: i64,
    },
    /// The database server could not be reached, or refused the connection or the store's
    /// setup (creating its schema and tables).
    #[error(
        "cannot use the PostgreSQL database at {target}: {source}; check that the server \
         runs and that the URL's host, port, user and database are right"
    )]
    Connect {
        /// The server and database, without the password.
        target: String,
        /// What the driver said.
        #[source]
        source: BoxError,
    },
    /// The store's file was deleted, or replaced by another file, while the store had it
    /// open. Nothing more is written through this store: its writes would go to a file no
    /// one can open again, or (its journal replayed later) over the new file's data.
    #[error(
        "the store's file {} was {} while this process had it open; nothing more is written \
         through this store. Put the file back and restart, or restart to use the file now \
         at that path", .path.display(), if *.replaced { "replaced by another file" } else { "deleted" }
    )]
    FileChanged {
        /// The file.
        path: PathBuf,
        /// Whether another file is at the path now (`false`: none is).
        replaced: bool,
    },
    /// The store has shut down (its writer stopped); nothing more can be written.
    #[error("the store has shut down; nothing more can be written to it")]
    Closed,
    /// Any other failure of the backend (I/O, a full disk, a malformed row).
    #[error("store failure: {0}")]
    Backend(#[source] BoxError),
}

/// Keeps durable runs. Implement it to add a backend; `tests/store.rs` holds the contract
/// every store passes.
///
/// Every method is one atomic operation. [`save`](CheckpointStore::save) returns only once
/// the checkpoint is durable: the engine moves a run on only after that. Times are Unix
/// milliseconds on the calling engine's clock.
///
/// A run is held by at most one engine at a time: the engine that started it, or one that
/// claimed it ([`claim`](CheckpointStore::claim)). An engine's hold lasts while its owner
/// lease is renewed ([`heartbeat`](CheckpointStore::heartbeat)); once that lapses, another
/// engine may take the run over, and the old holder's writes are refused.
pub trait CheckpointStore: Send + Sync + 'static {
    /// Writes `checkpoint` as its run's latest, and appends its history entries, if:
    ///
    /// - its `seq` follows the run's last one (for `seq` 0: the run does not exist yet, which
    ///   also records the run, its machine and its [`Checkpoint::key`]); otherwise
    ///   [`StoreError::Conflict`];
    /// - it carries the lease the run is held under, or none while no engine holds the run;
    ///   otherwise [`StoreError::Fenced`].
    ///
    /// Refused, it writes nothing. Written, the run is held by the checkpoint's lease if
    /// [`Checkpoint::keeps_lease`], and released otherwise, claimable from
    /// [`Checkpoint::due_at`]. A checkpoint that ends or pauses the run clears any
    /// [`Halt`] requested for it.
    fn save(&self, checkpoint: Checkpoint) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Claims up to `limit` runs of the named `machines` for `owner`: running runs that no
    /// engine holds and that are due by `now`, those due earliest first. Each claim gets a
    /// fresh token.
    fn claim(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Claimed>, StoreError>> + Send;

    /// Claims up to `limit` runs of the named `machines` for `owner` whose holder's lease
    /// expired before `now` (an engine that died, or lost touch with the store); a store
    /// with a clock of its own compares on that clock instead. They come
    /// back with [`Claimed::taken_over`] set; each claim gets a fresh token.
    fn take_over(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> impl Future<Output = Result<Vec<Claimed>, StoreError>> + Send;

    /// When the next run of `machines` that no engine holds becomes due; `None` if none
    /// waits for a time.
    fn next_due(
        &self,
        machines: &[&'static str],
    ) -> impl Future<Output = Result<Option<u64>, StoreError>> + Send;

    /// Renews `owner`'s lease until `expires` (registering the owner on its first call), and
    /// returns the halts requested for runs it holds. `now` is the caller's clock reading: a
    /// store that measures leases on a clock of its own, shared by every engine (the
    /// database server's, for `PostgresStore`), holds the lease for `expires - now` on it.
    fn heartbeat(
        &self,
        owner: &str,
        now: u64,
        expires: u64,
    ) -> impl Future<Output = Result<Vec<(RunId, Halt)>, StoreError>> + Send;

    /// Lets go of a run held under `lease` without a checkpoint, runnable at once: how an
    /// engine hands back the runs it holds when it shuts down, or the runs it cannot run.
    /// A lease that no longer holds the run is ignored.
    fn release(
        &self,
        run: RunId,
        lease: Lease,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Records that run `run` is to be halted by the engine holding it. Returns `false` if
    /// the run is unknown or finished.
    fn request_halt(
        &self,
        run: RunId,
        halt: Halt,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// The run's latest checkpoint (with `entries` left `"[]"` and no lease); `None` for an
    /// unknown run.
    fn latest(
        &self,
        run: RunId,
    ) -> impl Future<Output = Result<Option<Checkpoint>, StoreError>> + Send;

    /// The run's history: the `entries` of each checkpoint that added some, in order; empty
    /// for an unknown run.
    fn history(&self, run: RunId) -> impl Future<Output = Result<Vec<String>, StoreError>> + Send;

    /// The history entries that the run's checkpoints after checkpoint `after` added, each
    /// with its checkpoint's [`seq`](Checkpoint::seq), in order; checkpoints that added none
    /// are left out. Empty for an unknown run. How a reader that has seen a run up to one
    /// checkpoint (a client following its events that reconnects) learns what came since.
    ///
    /// `None` if this store cannot tell which checkpoint added which entries: the default,
    /// for stores written before this method. Every store of this crate can tell.
    fn history_after(
        &self,
        run: RunId,
        after: u64,
    ) -> impl Future<Output = Result<Option<Vec<(u64, String)>>, StoreError>> + Send {
        let _ = (run, after);
        std::future::ready(Ok(None))
    }

    /// The run's summary; `None` for an unknown run.
    fn summary(
        &self,
        run: RunId,
    ) -> impl Future<Output = Result<Option<RunSummary>, StoreError>> + Send;

    /// The runs `filter` matches, in its [`Order`], at most its [`limit`](Filter::limit).
    fn list(
        &self,
        filter: Filter,
    ) -> impl Future<Output = Result<Vec<RunSummary>, StoreError>> + Send;

    /// Sets a run's status and note without writing a checkpoint, and lets go of it: how the
    /// engine marks a run it cannot resume as [`Status::Stuck`], and how
    /// `Engine::resume_pending` makes it [`Status::Running`] (runnable at once) again.
    ///
    /// Fenced like a checkpoint: with `lease`, only while the run is held under that claim
    /// (an engine marking a run it holds); without, only while no engine holds it. Otherwise
    /// [`StoreError::Fenced`], and nothing changes. An unknown run is left alone.
    fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
        lease: Option<Lease>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Deletes finished runs that `filter` matches ([`Filter::matches`]: its order and limit
    /// do not apply) and that finished before `before` (all of them with `u64::MAX`), with
    /// their history. Returns how many were deleted.
    fn delete_finished(
        &self,
        filter: Filter,
        before: u64,
    ) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Deletes run `run` and its history if it has finished. Returns `false` for an unknown
    /// run; [`StoreError::Unfinished`] for a run that has not finished (nothing is deleted).
    fn delete(&self, run: RunId) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Whether other processes may write this store, so that an engine must poll it to see
    /// their writes (signals, new runs, expired leases). `true` unless a store says otherwise.
    fn shared_between_processes(&self) -> bool {
        true
    }

    /// Notified when some process may have made runs runnable, for a store that can tell
    /// (`PostgresStore`, through `LISTEN/NOTIFY`): an engine then claims at once instead of
    /// at its next poll. `None` (the default): engines find such runs by polling.
    fn runnable_hint(&self) -> Option<Arc<tokio::sync::Notify>> {
        None
    }
}

type Boxed<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// [`CheckpointStore`] with boxed futures, so the engine can hold any store behind one type.
pub(crate) trait DynStore: Send + Sync + 'static {
    fn save(&self, checkpoint: Checkpoint) -> Boxed<'_, ()>;
    fn claim<'a>(
        &'a self,
        owner: &'a str,
        machines: &'a [&'static str],
        now: u64,
        limit: usize,
    ) -> Boxed<'a, Vec<Claimed>>;
    fn take_over<'a>(
        &'a self,
        owner: &'a str,
        machines: &'a [&'static str],
        now: u64,
        limit: usize,
    ) -> Boxed<'a, Vec<Claimed>>;
    fn next_due<'a>(&'a self, machines: &'a [&'static str]) -> Boxed<'a, Option<u64>>;
    fn heartbeat<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
        expires: u64,
    ) -> Boxed<'a, Vec<(RunId, Halt)>>;
    fn release(&self, run: RunId, lease: Lease) -> Boxed<'_, ()>;
    fn request_halt(&self, run: RunId, halt: Halt) -> Boxed<'_, bool>;
    fn latest(&self, run: RunId) -> Boxed<'_, Option<Checkpoint>>;
    fn history(&self, run: RunId) -> Boxed<'_, Vec<String>>;
    fn history_after(&self, run: RunId, after: u64) -> Boxed<'_, Option<Vec<(u64, String)>>>;
    fn summary(&self, run: RunId) -> Boxed<'_, Option<RunSummary>>;
    fn list(&self, filter: Filter) -> Boxed<'_, Vec<RunSummary>>;
    fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
        lease: Option<Lease>,
    ) -> Boxed<'_, ()>;
    fn delete_finished(&self, filter: Filter, before: u64) -> Boxed<'_, u64>;
    fn delete(&self, run: RunId) -> Boxed<'_, bool>;
    fn shared_between_processes(&self) -> bool;
    fn runnable_hint(&self) -> Option<Arc<tokio::sync::Notify>>;
}

impl<S: CheckpointStore> DynStore for S {
    fn save(&self, checkpoint: Checkpoint) -> Boxed<'_, ()> {
        Box::pin(CheckpointStore::save(self, checkpoint))
    }
    fn claim<'a>(
        &'a self,
        owner: &'a str,
        machines: &'a [&'static str],
        now: u64,
        limit: usize,
    ) -> Boxed<'a, Vec<Claimed>> {
        Box::pin(CheckpointStore::claim(self, owner, machines, now, limit))
    }
    fn take_over<'a>(
        &'a self,
        owner: &'a str,
        machines: &'a [&'static str],
        now: u64,
        limit: usize,
    ) -> Boxed<'a, Vec<Claimed>> {
        Box::pin(CheckpointStore::take_over(self, owner, machines, now, limit))
    }
    fn next_due<'a>(&'a self, machines: &'a [&'static str]) -> Boxed<'a, Option<u64>> {
        Box::pin(CheckpointStore::next_due(self, machines))
    }
    fn heartbeat<'a>(
        &'a self,
        owner: &'a str,
        now: u64,
        expires: u64,
    ) -> Boxed<'a, Vec<(RunId, Halt)>> {
        Box::pin(CheckpointStore::heartbeat(self, owner, now, expires))
    }
    fn release(&self, run: RunId, lease: Lease) -> Boxed<'_, ()> {
        Box::pin(CheckpointStore::release(self, run, lease))
    }
    fn request_halt(&self, run: RunId, halt: Halt) -> Boxed<'_, bool> {
        Box::pin(CheckpointStore::request_halt(self, run, halt))
    }
    fn latest(&self, run: RunId) -> Boxed<'_, Option<Checkpoint>> {
        Box::pin(CheckpointStore::latest(self, run))
    }
    fn history(&self, run: RunId) -> Boxed<'_, Vec<String>> {
        Box::pin(CheckpointStore::history(self, run))
    }
    fn history_after(&self, run: RunId, after: u64) -> Boxed<'_, Option<Vec<(u64, String)>>> {
        Box::pin(CheckpointStore::history_after(self, run, after))
    }
    fn summary(&self, run: RunId) -> Boxed<'_, Option<RunSummary>> {
        Box::pin(CheckpointStore::summary(self, run))
    }
    fn list(&self, filter: Filter) -> Boxed<'_, Vec<RunSummary>> {
        Box::pin(CheckpointStore::list(self, filter))
    }
    fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
        lease: Option<Lease>,
    ) -> Boxed<'_, ()> {
        Box::pin(CheckpointStore::mark(self, run, status, note, lease))
    }
    fn delete_finished(&self, filter: Filter, before: u64) -> Boxed<'_, u64> {
        Box::pin(CheckpointStore::delete_finished(self, filter, before))
    }
    fn delete(&self, run: RunId) -> Boxed<'_, bool> {
        Box::pin(CheckpointStore::delete(self, run))
    }
    fn shared_between_processes(&self) -> bool {
        CheckpointStore::shared_between_processes(self)
    }
    fn runnable_hint(&self) -> Option<Arc<tokio::sync::Notify>> {
        CheckpointStore::runnable_hint(self)
    }
}
