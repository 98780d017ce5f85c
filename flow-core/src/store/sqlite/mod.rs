//! The embedded default: one SQLite file.

mod connection;
mod file;
mod schema;
mod writes;

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;

use rusqlite::{Connection, OptionalExtension, Row, params};
use tokio::sync::oneshot;

use super::sql::{self, Conditions, Dialect};
use super::{
    Checkpoint, CheckpointStore, Claimed, Filter, Halt, Lease, RunSummary, Status, StoreError,
};
use crate::RunId;
use connection::{Job, Write, connect, migrate, write_loop};
use file::File;
use schema::*;
use writes::{claim, delete_run, save};

/// Keeps runs in one SQLite file: WAL journal, `synchronous=FULL`, and group commit.
///
/// One writer thread owns the write connection. Checkpoints (and claims, heartbeats) that
/// arrive while it commits are written together by the next transaction, so many concurrent
/// runs share each fsync, and each run's [`save`](CheckpointStore::save) returns once its own
/// checkpoint is durable. A lone run pays one commit per checkpoint, as a hand-written insert
/// would. A write the store refuses, or that fails on its own (a row over SQLite's limits),
/// fails alone: the rest of its batch commits. Reads use a second connection and never wait
/// for a commit.
///
/// Cloning is cheap: clones share the file's connections. Several processes may open the same
/// file: engines claim runs under leases, and the store refuses writes under a lease that
/// lapsed, so no transition is applied twice.
///
/// A file written by an older `flow` is upgraded in place when opened.
///
/// ```no_run
/// use flow::store::SqliteStore;
///
/// # fn main() -> Result<(), flow::store::StoreError> {
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
    writer: mpsc::Sender<Box<dyn Job>>,
    reader: Arc<Mutex<Connection>>,
    file: Arc<File>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Closing: no checkpoint into a journal that is no longer this store's.
        let reader = self.reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.file.disown(&reader);
    }
}

impl SqliteStore {
    /// Opens the store at `path`, creating the file and its tables if missing, and upgrading
    /// a file an older `flow` wrote. The directory must exist.
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
        let mut writer = connect(&path).map_err(open_error)?;
        migrate(&mut writer, &path)?;
        let file = File::opened(&path)
            .map_err(|error| StoreError::Open { path: path.clone(), source: Box::new(error) })?;
        let file = Arc::new(file);
        let reader = connect(&path).map_err(open_error)?;
        let (sender, jobs) = mpsc::channel();
        thread::Builder::new()
            .name("flow-sqlite-writer".into())
            .spawn({
                let file = Arc::clone(&file);
                move || write_loop(writer, jobs, file)
            })
            .map_err(|error| StoreError::Open { path: path.clone(), source: Box::new(error) })?;
        Ok(SqliteStore {
            shared: Arc::new(Shared {
                path,
                writer: sender,
                reader: Arc::new(Mutex::new(reader)),
                file,
            }),
        })
    }

    /// The file this store writes.
    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    async fn write<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnMut(&Connection) -> rusqlite::Result<Result<T, StoreError>> + Send + 'static,
    {
        let (reply, done) = oneshot::channel();
        let job = Box::new(Write { work, answer: None, reply });
        if self.shared.writer.send(job).is_err() {
            return Err(StoreError::Closed);
        }
        done.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Claims for `owner` the runs `query` selects (parameters: now, machines, limit): due
    /// runs, or with `taken_over` runs whose holder's lease lapsed.
    async fn claim_where(
        &self,
        query: &'static str,
        taken_over: bool,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let (owner, machines) = (owner.to_owned(), machines_json(machines));
        // Looked for on the reader first: an idle poll takes no write lock.
        if !self.any(query, now, &machines).await? {
            return Ok(Vec::new());
        }
        self.write(move |transaction| {
            let ids = transaction
                .prepare_cached(query)?
                .query_map(params![to_sql(now), machines, to_sql(limit as u64)], |row| row.get(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            claim(transaction, ids, &owner, taken_over).map(Ok)
        })
        .await
    }

    /// Whether `query` (a claim's selection, parameters: now, machines, limit) finds a run.
    async fn any(&self, query: &'static str, now: u64, machines: &str) -> Result<bool, StoreError> {
        let machines = machines.to_owned();
        self.read(move |connection| {
            connection
                .prepare_cached(query)?
                .query_map(params![to_sql(now), machines, 1], |_| Ok(()))?
                .next()
                .transpose()
                .map(|found| found.is_some())
        })
        .await
    }

    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = Arc::clone(&self.shared.reader);
        let file = Arc::clone(&self.shared.file);
        tokio::task::spawn_blocking(move || {
            let connection = reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            // Read from a file no longer at the path, runs would look stale, not gone.
            file.check(&connection)?;
            query(&connection).map_err(backend)
        })
        .await
        .map_err(|error| StoreError::Backend(Box::new(error)))?
    }
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

fn machines_json(machines: &[&'static str]) -> String {
    serde_json::to_string(machines).unwrap_or_else(|_| "[]".to_owned())
}

// SQLite integers are i64; sequence numbers and Unix milliseconds stay far below i64::MAX.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn malformed(index: usize, what: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, what.into())
}

fn checkpoint(row: &Row<'_>) -> rusqlite::Result<Checkpoint> {
    let run: String = row.get(0)?;
    let status: String = row.get(5)?;
    let wait: Option<String> = row.get(9)?;
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
        wait: wait
            .map(|wait| wait.parse().map_err(|error: StoreError| malformed(9, error.to_string())))
            .transpose()?,
        lease: None,
        snapshot: row.get(8)?,
        at: from_sql(row.get(10)?),
        entries: "[]".into(),
        key: row.get(11)?,
    })
}

fn summary(row: &Row<'_>) -> rusqlite::Result<RunSummary> {
    let run: String = row.get(0)?;
    let status: String = row.get(2)?;
    let wait: Option<String> = row.get(4)?;
    Ok(RunSummary {
        run: run
            .parse()
            .map_err(|error: crate::ParseRunIdError| malformed(0, error.to_string()))?,
        machine: row.get(1)?,
        key: row.get(7)?,
        status: status.parse().map_err(|error: StoreError| malformed(2, error.to_string()))?,
        note: row.get(3)?,
        wait: wait
            .map(|wait| wait.parse().map_err(|error: StoreError| malformed(4, error.to_string())))
            .transpose()?,
        created: from_sql(row.get(5)?),
        updated: from_sql(row.get(6)?),
        state: row.get(8)?,
    })
}

/// A filter's parameters as SQLite values (run ids as the text the table keeps).
fn values(conditions: Conditions) -> Vec<rusqlite::types::Value> {
    use rusqlite::types::Value;
    let value = |value| match value {
        sql::Value::Text(text) => Value::Text(text),
        sql::Value::Int(int) => Value::Integer(int),
        sql::Value::Run(run) => Value::Text(run.to_string()),
    };
    conditions.values.into_iter().map(value).collect()
}

impl CheckpointStore for SqliteStore {
    async fn save(&self, checkpoint: Checkpoint) -> Result<(), StoreError> {
        self.write(move |transaction| save(transaction, &checkpoint)).await
    }

    async fn claim(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_where(DUE, false, owner, machines, now, limit).await
    }

    async fn take_over(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_where(LAPSED, true, owner, machines, now, limit).await
    }

    async fn next_due(&self, machines: &[&'static str]) -> Result<Option<u64>, StoreError> {
        let machines = machines_json(machines);
        self.read(move |connection| {
            connection
                .prepare_cached(NEXT_DUE)?
                .query_row([machines], |row| row.get::<_, i64>(0))
                .optional()
                .map(|due| due.map(from_sql))
        })
        .await
    }

    async fn heartbeat(
        &self,
        owner: &str,
        _now: u64,
        expires: u64,
    ) -> Result<Vec<(RunId, Halt)>, StoreError> {
        let owner = owner.to_owned();
        self.write(move |transaction| {
            transaction.prepare_cached(HEARTBEAT)?.execute(params![owner, to_sql(expires)])?;
            let halts = transaction
                .prepare_cached(HALTS)?
                .query_map([&owner], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(Ok(halts
                .into_iter()
                .filter_map(|(run, halt)| Some((run.parse().ok()?, Halt::parse(&halt)?)))
                .collect()))
        })
        .await
    }

    async fn release(&self, run: RunId, lease: Lease) -> Result<(), StoreError> {
        self.write(move |transaction| {
            transaction.prepare_cached(RELEASE)?.execute(params![
                run.to_string(),
                &*lease.owner,
                to_sql(lease.token)
            ])?;
            Ok(Ok(()))
        })
        .await
    }

    async fn request_halt(&self, run: RunId, halt: Halt) -> Result<bool, StoreError> {
        self.write(move |transaction| {
            let changed = transaction
                .prepare_cached(REQUEST_HALT)?
                .execute(params![run.to_string(), halt.as_str()])?;
            Ok(Ok(changed > 0))
        })
        .await
    }

    async fn latest(&self, run: RunId) -> Result<Option<Checkpoint>, StoreError> {
        self.read(move |connection| {
            connection.prepare_cached(LATEST)?.query_row([run.to_string()], checkpoint).optional()
        })
        .await
    }

    async fn history(&self, run: RunId) -> Result<Vec<String>, StoreError> {
        self.read(move |connection| {
            connection
                .prepare_cached(&format!("{CHAIN} {HISTORY}"))?
                .query_map([run.to_string()], |row| row.get(0))?
                .collect()
        })
        .await
    }

    async fn history_after(
        &self,
        run: RunId,
        after: u64,
    ) -> Result<Option<Vec<(u64, String)>>, StoreError> {
        let after = to_sql(after);
        self.read(move |connection| {
            connection
                .prepare_cached(&format!("{CHAIN} {HISTORY_AFTER}"))?
                .query_map(params![run.to_string(), after], |row| {
                    Ok((from_sql(row.get(0)?), row.get(1)?))
                })?
                .collect::<Result<Vec<_>, _>>()
                .map(Some)
        })
        .await
    }

    async fn summary(&self, run: RunId) -> Result<Option<RunSummary>, StoreError> {
        self.read(move |connection| {
            connection
                .prepare_cached(&format!("SELECT {SUMMARY_COLUMNS} FROM flow_runs WHERE id = ?1"))?
                .query_row([run.to_string()], summary)
                .optional()
        })
        .await
    }

    async fn list(&self, filter: Filter) -> Result<Vec<RunSummary>, StoreError> {
        let mut conditions = Conditions::of(&filter, Dialect::Sqlite, 1);
        let order = sql::order_and_limit(&filter, &mut conditions, Dialect::Sqlite, 1);
        let query =
            format!("SELECT {SUMMARY_COLUMNS} FROM flow_runs WHERE 1 = 1{}{order}", conditions.sql);
        let values = values(conditions);
        self.read(move |connection| {
            connection
                .prepare_cached(&query)?
                .query_map(rusqlite::params_from_iter(values), summary)?
                .collect()
        })
        .await
    }

    async fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
        lease: Option<Lease>,
    ) -> Result<(), StoreError> {
        self.write(move |transaction| {
            let id = run.to_string();
            let owner = lease.as_ref().map(|lease| &*lease.owner);
            let token = lease.as_ref().map_or(0, |lease| to_sql(lease.token));
            let changed = transaction.prepare_cached(MARK)?.execute(params![
                id,
                status.as_str(),
                note,
                owner,
                token
            ])?;
            let known = changed > 0
                || transaction
                    .prepare_cached(EXISTS)?
                    .query_row([&id], |_| Ok(()))
                    .optional()?
                    .is_some();
            Ok(if changed == 0 && known { Err(StoreError::Fenced { run }) } else { Ok(()) })
        })
        .await
    }

    async fn delete_finished(&self, filter: Filter, before: u64) -> Result<u64, StoreError> {
        let conditions = Conditions::of(&filter, Dialect::Sqlite, 2);
        let query = format!("{FINISHED_BEFORE}{}", conditions.sql);
        let mut values = values(conditions);
        values.insert(0, rusqlite::types::Value::Integer(to_sql(before)));
        self.write(move |transaction| {
            let ids = transaction
                .prepare_cached(&query)?
                .query_map(rusqlite::params_from_iter(values.iter()), |row| {
                    row.get::<_, String>(0)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            for id in &ids {
                delete_run(transaction, id)?;
            }
            Ok(Ok(ids.len() as u64))
        })
        .await
    }

    async fn delete(&self, run: RunId) -> Result<bool, StoreError> {
        self.write(move |transaction| {
            let id = run.to_string();
            let status: Option<String> = transaction
                .prepare_cached("SELECT status FROM flow_runs WHERE id = ?1")?
                .query_row([&id], |row| row.get(0))
                .optional()?;
            let Some(status) = status else { return Ok(Ok(false)) };
            let status: Status =
                status.parse().map_err(|error: StoreError| malformed(0, error.to_string()))?;
            if !status.is_finished() {
                return Ok(Err(StoreError::Unfinished { run, status }));
            }
            delete_run(transaction, &id)?;
            Ok(Ok(true))
        })
        .await
    }
}
