//! Why a command failed: [`CliError`], one variant per thing that can go wrong, each saying
//! what happened, where, and what to do.

use std::path::PathBuf;

use flow_core::store::StoreError;
use flow_core::{EngineError, RunId};
use thiserror::Error;

/// Why a `flow` command failed. Its message is printed as `error: ...`, and the command
/// exits with status 1.
#[derive(Debug, Error)]
pub enum CliError {
    /// No `--store` and no `FLOW_STORE`.
    #[error(
        "`flow {command}` reads a store, and none was given: pass --store sqlite:PATH (the file \
         your engines open) or --store postgres://USER@HOST:PORT/DATABASE, or set FLOW_STORE"
    )]
    NoStore {
        /// The command.
        command: &'static str,
    },
    /// A `--store` that is neither `sqlite:PATH` nor a PostgreSQL URL.
    #[error(
        "`{given}` is not a store address: use sqlite:PATH for a SQLite file{hint}, or \
         postgres://USER@HOST:PORT/DATABASE for PostgreSQL"
    )]
    BadStore {
        /// What was given.
        given: String,
        /// A suggestion, when the value names a file that exists.
        hint: String,
    },
    /// `sqlite:PATH` names no file.
    #[error(
        "there is no SQLite store at {}: no such file. Give the path of the file your engines \
         open (SqliteStore::open), e.g. --store sqlite:./runs.db; flow does not create one here",
        .path.display()
    )]
    NoFile {
        /// The path.
        path: PathBuf,
    },
    /// `sqlite:PATH` names a file that SQLite cannot read, or a database without flow's tables.
    #[error(
        "{} is not a flow store: {reason}. Check the path: it should be the file your engines \
         open (SqliteStore::open)",
        .path.display()
    )]
    NotAStore {
        /// The path.
        path: PathBuf,
        /// What the file is instead.
        reason: String,
        /// What SQLite said, if it could not read the file.
        #[source]
        source: Option<rusqlite::Error>,
    },
    /// A PostgreSQL URL, to a build without PostgreSQL.
    #[cfg(not(feature = "postgres"))]
    #[error(
        "this flow command was built without PostgreSQL support, so it cannot open {url}; \
         install it with `cargo install flow-machine-cli --features postgres`"
    )]
    NoPostgres {
        /// The URL given.
        url: String,
    },
    /// The store failed.
    #[error("cannot {action}: {source}")]
    Store {
        /// What the command was doing.
        action: String,
        /// What the store said.
        #[source]
        source: StoreError,
    },
    /// The runtime refused or failed (a run not paused, finished, rolling back, ...).
    #[error("cannot {action}: {source}")]
    Engine {
        /// What the command was doing.
        action: String,
        /// What the runtime said (boxed: it is large, and errors are rare).
        #[source]
        source: Box<EngineError>,
    },
    /// The id names no run in the store.
    #[error(
        "there is no run {run} in the store at {store}; `flow runs list` shows the runs it has"
    )]
    UnknownRun {
        /// The run.
        run: RunId,
        /// The store, as given.
        store: String,
    },
    /// Only finished runs are deleted.
    #[error(
        "run {run} is {status}, not finished, and was not deleted; cancel it first \
         (`flow cancel {run}`), then delete it"
    )]
    Unfinished {
        /// The run.
        run: RunId,
        /// Where it stands.
        status: String,
    },
    /// A command that needs a server, without `--server`.
    #[error(
        "`flow {command}` needs a flow server, as the store alone has no machine's code to \
         {what}: pass --server http://HOST:PORT (and --token TOKEN if it has one), or set \
         FLOW_SERVER and FLOW_TOKEN"
    )]
    NoServer {
        /// The command.
        command: &'static str,
        /// What the server does that the store cannot.
        what: &'static str,
    },
    /// A `--server` that is not an `http://` URL.
    #[error(
        "`{given}` is not a server address: use http://HOST:PORT, the address flow-server \
         listens on (https is not supported by this command)"
    )]
    BadServer {
        /// What was given.
        given: String,
    },
    /// The server could not be reached, or its answer not read.
    #[error(
        "cannot reach the flow server at {url}: {source}; check that it runs and that the \
         address is right"
    )]
    Unreachable {
        /// The URL requested.
        url: String,
        /// What the HTTP client said.
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error.
    #[error("the flow server refused {what} (HTTP {status}): {message}")]
    Refused {
        /// What was asked.
        what: String,
        /// The HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// A signal value that is not JSON.
    #[error(
        "the signal value is not JSON ({source}); give it as one argument, quoted for your \
         shell, e.g. '{{\"approved\": true}}' or '\"text\"'"
    )]
    BadJson {
        /// What the parser said.
        #[source]
        source: serde_json::Error,
    },
    /// The output could not be written (a closed pipe, a full disk).
    #[error("cannot write the output: {0}")]
    Output(#[source] std::io::Error),
}

impl CliError {
    /// A store failure while doing `action`.
    pub fn store(action: impl Into<String>) -> impl FnOnce(StoreError) -> CliError {
        move |source| CliError::Store { action: action.into(), source }
    }

    /// A runtime failure while doing `action`.
    pub fn engine(action: impl Into<String>) -> impl FnOnce(EngineError) -> CliError {
        move |source| CliError::Engine { action: action.into(), source: Box::new(source) }
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> CliError {
        CliError::Output(error)
    }
}
