//! The embedded default: one SQLite file.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use super::{Checkpoint, CheckpointStore, Filter, RunSummary, Status, StoreError};
use crate::RunId;

/// The layout this build writes; a newer one is refused rather than misread.
const LAYOUT: i64 = 1;

/// The most checkpoints one transaction (one fsync) commits.
const MAX_BATCH: usize = 4096;

// The layout is chosen for group commit: a batch of checkpoints of many runs should touch few
// pages. Checkpoints are appended to a rowid table in commit order (each batch fills a few
// consecutive pages), each linked to its run's previous one; a run's head (last sequence
// number and checkpoint) is one small row, where the compare-and-set happens. A table keyed
// by (run, seq) instead puts nearly every checkpoint of a batch on a page of its own.
const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS flow_runs (
        id       TEXT    PRIMARY KEY,
        machine  TEXT    NOT NULL,
        status   TEXT    NOT NULL,
        note     TEXT,
        seq      INTEGER NOT NULL,
        head     INTEGER NOT NULL,
        created  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS flow_runs_by_status ON flow_runs (status, machine);
    CREATE TABLE IF NOT EXISTS flow_checkpoints (
        id           INTEGER PRIMARY KEY,
        run          TEXT    NOT NULL,
        seq          INTEGER NOT NULL,
        prev         INTEGER,
        machine      TEXT    NOT NULL,
        version      INTEGER NOT NULL,
        fingerprint  TEXT    NOT NULL,
        status       TEXT    NOT NULL,
        state        TEXT    NOT NULL,
        wake_at      INTEGER,
        snapshot     TEXT    NOT NULL,
        entries      TEXT    NOT NULL
    );
";

const INSERT_CHECKPOINT: &str = "
    INSERT INTO flow_checkpoints
        (run, seq, prev, machine, version, fingerprint, status, state, wake_at, snapshot, entries)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";

const COLUMNS: &str =
    "run, seq, machine, version, fingerprint, status, state, wake_at, snapshot, entries";

/// A run's checkpoints, newest first, by following `prev` from its head.
const CHAIN: &str = "
    WITH RECURSIVE chain(id) AS (
        SELECT head FROM flow_runs WHERE id = ?1
        UNION ALL
        SELECT c.prev FROM flow_checkpoints c JOIN chain ON c.id = chain.id
        WHERE c.prev IS NOT NULL
    )";

/// Keeps runs in one SQLite file: WAL journal, `synchronous=FULL`, and group commit.
///
/// One writer thread owns the write connection. Checkpoints that arrive while it commits are
/// written together by the next transaction, so many concurrent runs share each fsync, and
/// each run's [`save`](CheckpointStore::save) returns once its own checkpoint is durable. A
/// lone run pays one commit per checkpoint, as a hand-written insert would. Reads use a
/// second connection and never wait for a commit.
///
/// Cloning is cheap: clones share the file's connections. Several processes may open the same
/// file; the compare-and-set on each checkpoint keeps them from applying a transition twice.
///
/// ```no_run
/// use flow_core::store::SqliteStore;
///
/// # fn main() -> Result<(), flow_core::store::StoreError> {
/// let store = SqliteStore::open("runs.db")?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    writer: mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
}

enum Job {
    Save(Checkpoint, oneshot::Sender<Result<(), StoreError>>),
    Mark(RunId, Status, Option<String>, oneshot::Sender<Result<(), StoreError>>),
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its tables if missing. The directory
    /// must exist.
    ///
    /// # Errors
    ///
    /// [`StoreError::Open`] if the file cannot be opened or written (a missing directory, no
    /// permission, not a SQLite file); [`StoreError::Layout`] if a newer `flow` wrote it.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteStore, StoreError> {
        let path = path.as_ref().to_path_buf();
        let open_error = |source: rusqlite::Error| StoreError::Open {
            path: path.clone(),
            source: Box::new(source),
        };
        let writer = connect(&path).map_err(open_error)?;
        let found: i64 =
            writer.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(open_error)?;
        if found > LAYOUT {
            return Err(StoreError::Layout { path, found, supported: LAYOUT });
        }
        // A write, even when the tables exist: a file we can read but not write fails here,
        // not at the first checkpoint.
        writer
            .execute_batch(&format!(
                "BEGIN IMMEDIATE; {SCHEMA} PRAGMA user_version = {LAYOUT}; COMMIT;"
            ))
            .map_err(open_error)?;
        let reader = connect(&path).map_err(open_error)?;
        let (sender, jobs) = mpsc::channel();
        thread::Builder::new()
            .name("flow-sqlite-writer".into())
            .spawn(move || write_loop(writer, jobs))
            .map_err(|error| StoreError::Open { path: path.clone(), source: Box::new(error) })?;
        Ok(SqliteStore {
            shared: Arc::new(Shared { path, writer: sender, reader: Arc::new(Mutex::new(reader)) }),
        })
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn write(&self, job: impl FnOnce(WriteReply) -> Job) -> Result<(), StoreError> {
        let (reply, done) = oneshot::channel();
        if self.shared.writer.send(job(reply)).is_err() {
            return Err(StoreError::Closed);
        }
        done.await.unwrap_or(Err(StoreError::Closed))
    }

    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = Arc::clone(&self.shared.reader);
        let result = tokio::task::spawn_blocking(move || {
            let connection = reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            query(&connection)
        })
        .await
        .map_err(|error| StoreError::Backend(Box::new(error)))?;
        result.map_err(backend)
    }
}

type WriteReply = oneshot::Sender<Result<(), StoreError>>;

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    // Copy the WAL back into the database every 4,000 pages (16 MiB at most) instead of
    // every 1,000: the copy is the cost of a commit that crosses the threshold, and fewer,
    // larger copies cost less per checkpoint.
    connection.pragma_update(None, "wal_autocheckpoint", 4000)?;
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(connection)
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// The writer thread: takes every job waiting, commits them in one transaction, answers each.
fn write_loop(mut connection: Connection, jobs: mpsc::Receiver<Job>) {
    let mut batch = Vec::new();
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let answers = match commit(&mut connection, &batch) {
            Ok(answers) => answers,
            Err(error) => {
                let message = error.to_string();
                batch.iter().map(|_| Err(StoreError::Backend(message.clone().into()))).collect()
            }
        };
        for (job, answer) in batch.drain(..).zip(answers) {
            let (Job::Save(_, reply) | Job::Mark(_, _, _, reply)) = job;
            // A run that stopped waiting (its task was dropped) needs no answer.
            let _ = reply.send(answer);
        }
    }
}

/// One transaction for the whole batch, one answer per job. A refused compare-and-set is that
/// job's answer and changes nothing; any other failure rolls the batch back.
fn commit(
    connection: &mut Connection,
    batch: &[Job],
) -> rusqlite::Result<Vec<Result<(), StoreError>>> {
    let transaction =
        connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let mut answers = Vec::with_capacity(batch.len());
    for job in batch {
        answers.push(match job {
            Job::Save(checkpoint, _) => save(&transaction, checkpoint)?,
            Job::Mark(run, status, note, _) => {
                transaction
                    .prepare_cached("UPDATE flow_runs SET status = ?2, note = ?3 WHERE id = ?1")?
                    .execute(params![run.to_string(), status.as_str(), note])?;
                Ok(())
            }
        });
    }
    transaction.commit()?;
    Ok(answers)
}

fn save(
    transaction: &rusqlite::Transaction<'_>,
    checkpoint: &Checkpoint,
) -> rusqlite::Result<Result<(), StoreError>> {
    let run = checkpoint.run.to_string();
    let head: Option<(i64, i64)> = transaction
        .prepare_cached("SELECT seq, head FROM flow_runs WHERE id = ?1")?
        .query_row([&run], |row| Ok((row.get(0)?, row.get(1)?)))
        .optional()?;
    let stored = head.map(|(seq, _)| from_sql(seq));
    let follows = match stored {
        None => checkpoint.seq == 0,
        Some(last) => checkpoint.seq == last + 1,
    };
    if !follows {
        return Ok(Err(StoreError::Conflict { run: checkpoint.run, seq: checkpoint.seq, stored }));
    }
    transaction.prepare_cached(INSERT_CHECKPOINT)?.execute(params![
        run,
        to_sql(checkpoint.seq),
        head.map(|(_, head)| head),
        checkpoint.machine,
        checkpoint.version,
        checkpoint.fingerprint,
        checkpoint.status.as_str(),
        checkpoint.state,
        checkpoint.wake_at.map(to_sql),
        checkpoint.snapshot,
        checkpoint.entries,
    ])?;
    let id = transaction.last_insert_rowid();
    if head.is_none() {
        transaction
            .prepare_cached(
                "INSERT INTO flow_runs (id, machine, status, seq, head, created)
                 VALUES (?1, ?2, ?3, 0, ?4, ?4)",
            )?
            .execute(params![run, checkpoint.machine, checkpoint.status.as_str(), id])?;
    } else if checkpoint.status == Status::Running {
        // The status (and its index) is left alone: only finishing changes it.
        transaction
            .prepare_cached("UPDATE flow_runs SET seq = ?2, head = ?3 WHERE id = ?1")?
            .execute(params![run, to_sql(checkpoint.seq), id])?;
    } else {
        transaction
            .prepare_cached(
                "UPDATE flow_runs SET seq = ?2, head = ?3, status = ?4, note = NULL WHERE id = ?1",
            )?
            .execute(params![run, to_sql(checkpoint.seq), id, checkpoint.status.as_str()])?;
    }
    Ok(Ok(()))
}

// SQLite integers are i64; sequence numbers and Unix milliseconds stay far below i64::MAX.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn checkpoint(row: &Row<'_>) -> rusqlite::Result<Checkpoint> {
    let run: String = row.get(0)?;
    let status: String = row.get(5)?;
    let malformed = |index, what: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, what.into())
    };
    Ok(Checkpoint {
        run: run
            .parse()
            .map_err(|error: crate::ParseRunIdError| malformed(0, error.to_string()))?,
        seq: from_sql(row.get(1)?),
        machine: Cow::Owned(row.get(2)?),
        version: row.get(3)?,
        fingerprint: Cow::Owned(row.get(4)?),
        status: status.parse().map_err(|error: StoreError| malformed(5, error.to_string()))?,
        state: Cow::Owned(row.get(6)?),
        wake_at: row.get::<_, Option<i64>>(7)?.map(from_sql),
        snapshot: row.get(8)?,
        entries: row.get(9)?,
    })
}

fn summary(row: &Row<'_>) -> rusqlite::Result<RunSummary> {
    let run: String = row.get(0)?;
    let status: String = row.get(2)?;
    let malformed = |index, what: String| {
        rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, what.into())
    };
    Ok(RunSummary {
        run: run
            .parse()
            .map_err(|error: crate::ParseRunIdError| malformed(0, error.to_string()))?,
        machine: row.get(1)?,
        status: status.parse().map_err(|error: StoreError| malformed(2, error.to_string()))?,
        note: row.get(3)?,
    })
}

impl CheckpointStore for SqliteStore {
    async fn save(&self, checkpoint: Checkpoint) -> Result<(), StoreError> {
        self.write(|reply| Job::Save(checkpoint, reply)).await
    }

    async fn latest(&self, run: RunId) -> Result<Option<Checkpoint>, StoreError> {
        self.read(move |connection| {
            connection
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM flow_checkpoints
                     WHERE id = (SELECT head FROM flow_runs WHERE id = ?1)"
                ))?
                .query_row([run.to_string()], checkpoint)
                .optional()
        })
        .await
    }

    async fn checkpoints(&self, run: RunId) -> Result<Vec<Checkpoint>, StoreError> {
        self.read(move |connection| {
            connection
                .prepare_cached(&format!(
                    "{CHAIN} SELECT {COLUMNS} FROM flow_checkpoints
                     WHERE id IN (SELECT id FROM chain) ORDER BY seq"
                ))?
                .query_map([run.to_string()], checkpoint)?
                .collect()
        })
        .await
    }

    async fn summary(&self, run: RunId) -> Result<Option<RunSummary>, StoreError> {
        self.read(move |connection| {
            connection
                .prepare_cached("SELECT id, machine, status, note FROM flow_runs WHERE id = ?1")?
                .query_row([run.to_string()], summary)
                .optional()
        })
        .await
    }

    async fn list(&self, filter: Filter) -> Result<Vec<RunSummary>, StoreError> {
        self.read(move |connection| {
            connection
                .prepare_cached(
                    "SELECT id, machine, status, note FROM flow_runs
                     WHERE (?1 IS NULL OR machine = ?1) AND (?2 IS NULL OR status = ?2)
                     ORDER BY created",
                )?
                .query_map(params![filter.machine, filter.status.map(Status::as_str)], summary)?
                .collect()
        })
        .await
    }

    async fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(|reply| Job::Mark(run, status, note, reply)).await
    }
}
