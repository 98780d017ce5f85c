//! Why a store could not do what was asked: [`StoreError`].

use std::path::PathBuf;

use thiserror::Error;

use super::Status;
use crate::{BoxError, RunId};

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
