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
//! backend needs nothing of `flow` beyond this module. `tests/store/` is the contract every
//! store passes.
//!
//! - [`MemoryStore`]: in the process, for tests and runs that need not survive it.
//! - [`SqliteStore`]: one file, the embedded default.
//! - `PostgresStore` (feature `postgres`): one database shared by many worker processes.

use std::future::Future;
use std::sync::Arc;

use crate::RunId;

mod checkpoint;
mod dyn_store;
mod error;
mod filter;
mod lease;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use checkpoint::{Checkpoint, Status, Wait};
pub(crate) use dyn_store::DynStore;
pub use error::StoreError;
pub use filter::{Cursor, Filter, Order, ParseCursorError, RunSummary};
pub use lease::{Claimed, Halt, Lease};
pub use memory::MemoryStore;
#[cfg(feature = "postgres")]
pub use postgres::{PostgresStore, PostgresStoreBuilder};
#[cfg(feature = "sqlite")]
pub use sqlite::SqliteStore;

/// Keeps durable runs. Implement it to add a backend; `tests/store/` holds the contract
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
