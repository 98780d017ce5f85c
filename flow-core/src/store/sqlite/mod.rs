//! The embedded default: one SQLite file.

mod file;
mod schema;

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
use file::File;
use schema::*;

/// The most jobs one transaction (one fsync) commits.
const MAX_BATCH: usize = 4096;

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

/// A write the writer thread runs inside the batch's transaction.
trait Job: Send {
    /// Does the job's writes, keeping its answer until the transaction's fate is known.
    /// `false` if SQLite failed the job: the transaction must then be undone and tried again
    /// without it (a job may run more than once).
    fn apply(&mut self, connection: &Connection) -> bool;
    /// Sends the kept answer, or the error `failed` makes if the transaction did not commit.
    fn answer(self: Box<Self>, failed: Option<&dyn Fn() -> StoreError>);
}

impl std::fmt::Debug for dyn Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Job")
    }
}

/// A [`Job`] from a closure, answered on a oneshot channel.
struct Write<T, F> {
    work: F,
    answer: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Write<T, F>
where
    T: Send,
    F: FnMut(&Connection) -> rusqlite::Result<Result<T, StoreError>> + Send,
{
    fn apply(&mut self, connection: &Connection) -> bool {
        let (answer, applied) = match (self.work)(connection) {
            Ok(answer) => (answer, true),
            Err(error) => (Err(backend(error)), false),
        };
        self.answer = Some(answer);
        applied
    }

    fn answer(self: Box<Self>, failed: Option<&dyn Fn() -> StoreError>) {
        let answer = match failed {
            Some(error) => Err(error()),
            None => self.answer.unwrap_or(Err(StoreError::Closed)),
        };
        // A caller that stopped waiting needs no answer.
        let _ = self.reply.send(answer);
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

fn connect(path: &Path) -> rusqlite::Result<Connection> {
    let connection = Connection::open(path)?;
    // First: switching a fresh file to WAL takes a lock another process may hold.
    connection.busy_timeout(std::time::Duration::from_secs(5))?;
    connection.pragma_update(None, "journal_mode", "WAL")?;
    connection.pragma_update(None, "synchronous", "FULL")?;
    // Copy the WAL back into the database every 4,000 pages (16 MiB at most) instead of
    // every 1,000: the copy is the cost of a commit that crosses the threshold, and fewer,
    // larger copies cost less per checkpoint.
    connection.pragma_update(None, "wal_autocheckpoint", 4000)?;
    Ok(connection)
}

/// Brings the file to [`LAYOUT`], one step per layout, in one transaction. A write even when
/// it is current: a file we can read but not write fails here, not at the first checkpoint.
fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let open_error = |source: rusqlite::Error| StoreError::Open {
        path: path.to_owned(),
        source: Box::new(source),
    };
    let transaction = connection
        .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
        .map_err(open_error)?;
    let found: i64 =
        transaction.query_row("PRAGMA user_version", [], |row| row.get(0)).map_err(open_error)?;
    if found > LAYOUT {
        return Err(StoreError::Layout {
            location: path.display().to_string(),
            found,
            supported: LAYOUT,
        });
    }
    // A file without our tables is layout 0 whatever it says, unless it has them.
    for step in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        transaction.execute_batch(step).map_err(open_error)?;
    }
    transaction.execute_batch(INDEXES).map_err(open_error)?;
    transaction.pragma_update(None, "user_version", LAYOUT).map_err(open_error)?;
    transaction.commit().map_err(open_error)
}

fn backend(error: rusqlite::Error) -> StoreError {
    StoreError::Backend(Box::new(error))
}

/// The writer thread: takes every job waiting, runs them in one transaction, answers each.
///
/// Before each transaction it checks that the file at the store's path is still the one it
/// opened; once it is not, every write fails with [`StoreError::FileChanged`].
fn write_loop(mut connection: Connection, jobs: mpsc::Receiver<Box<dyn Job>>, file: Arc<File>) {
    let mut batch = Vec::new();
    while let Ok(first) = jobs.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match jobs.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let failed: Option<Box<dyn Fn() -> StoreError>> = match file.check(&connection) {
            Err(StoreError::FileChanged { path, replaced }) => {
                Some(Box::new(move || StoreError::FileChanged { path: path.clone(), replaced }))
            }
            _ => commit(&mut connection, &mut batch).err().map(|error| {
                let message = error.to_string();
                Box::new(move || StoreError::Backend(message.clone().into())) as Box<_>
            }),
        };
        for job in batch.drain(..) {
            job.answer(failed.as_deref());
        }
    }
    // Closing: no checkpoint into a journal that is no longer this store's.
    file.disown(&connection);
}

/// One transaction for the whole batch. A job that SQLite fails (a row over its limits) fails
/// alone: the transaction is undone and run again without it, so the rest of the batch
/// commits, at no cost to a batch where nothing fails. Only a failure of the transaction
/// itself (its commit: a full disk) fails them all.
fn commit(connection: &mut Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    let mut failed = vec![false; batch.len()];
    'attempt: loop {
        let transaction =
            connection.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for (job, failed) in batch.iter_mut().zip(failed.iter_mut()) {
            if !*failed && !job.apply(&transaction) {
                // Dropped, the transaction rolls back; the job keeps its error as its answer.
                *failed = true;
                continue 'attempt;
            }
        }
        return transaction.commit();
    }
}

fn save(
    transaction: &Connection,
    checkpoint: &Checkpoint,
) -> rusqlite::Result<Result<(), StoreError>> {
    let run = checkpoint.run.to_string();
    let head: Option<(i64, i64, Option<String>, i64)> = transaction
        .prepare_cached(HEAD)?
        .query_row([&run], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)))
        .optional()?;
    let stored = head.as_ref().map(|(seq, ..)| from_sql(*seq));
    let follows = match stored {
        None => checkpoint.seq == 0,
        Some(last) => checkpoint.seq == last + 1,
    };
    if !follows {
        return Ok(Err(StoreError::Conflict { run: checkpoint.run, seq: checkpoint.seq, stored }));
    }
    if let Some((_, _, owner, token)) = &head {
        let holds = match (&checkpoint.lease, owner) {
            (Some(lease), Some(owner)) => *lease.owner == **owner && to_sql(lease.token) == *token,
            (None, None) => true,
            _ => false,
        };
        if !holds {
            return Ok(Err(StoreError::Fenced { run: checkpoint.run }));
        }
    }
    let seq = to_sql(checkpoint.seq);
    let wait = checkpoint.wait.map(|wait| wait.as_str());
    let status = checkpoint.status.as_str();
    let wake_at = checkpoint.wake_at.map(to_sql);
    // Its history entries, if it adds any, are appended to the run's history.
    let mut history = head.as_ref().map_or(0, |(_, head, ..)| *head);
    if checkpoint.entries != "[]" {
        transaction.prepare_cached(INSERT_HISTORY)?.execute(params![
            run,
            seq,
            Some(history).filter(|id| *id != 0),
            checkpoint.entries,
        ])?;
        history = transaction.last_insert_rowid();
    }
    // The latest checkpoint replaces the one before, in the head.
    let at = to_sql(checkpoint.at);
    let owner = checkpoint.lease.as_ref().filter(|_| checkpoint.keeps_lease());
    let owner = owner.map(|lease| &*lease.owner);
    let due_at = checkpoint.due_at().map(to_sql);
    let (version, fingerprint) = (checkpoint.version, &checkpoint.fingerprint);
    let (state, snapshot) = (&checkpoint.state, &checkpoint.snapshot);
    match head {
        None => {
            let token = checkpoint.lease.as_ref().map_or(0, |lease| to_sql(lease.token));
            transaction.prepare_cached(INSERT_RUN)?.execute(params![
                run,
                history,
                at,
                version,
                fingerprint,
                state,
                wake_at,
                wait,
                snapshot,
                checkpoint.machine,
                status,
                due_at,
                owner,
                token,
                checkpoint.key
            ])?;
        }
        // Held before and after: nothing indexed changes.
        Some((_, _, Some(_), _)) if checkpoint.keeps_lease() => {
            transaction.prepare_cached(ADVANCE_RUN)?.execute(params![
                run,
                seq,
                history,
                at,
                version,
                fingerprint,
                state,
                wake_at,
                wait,
                snapshot
            ])?;
        }
        Some(_) => {
            transaction.prepare_cached(MOVE_RUN)?.execute(params![
                run,
                seq,
                history,
                at,
                version,
                fingerprint,
                state,
                wake_at,
                wait,
                snapshot,
                status,
                due_at,
                owner
            ])?;
        }
    }
    Ok(Ok(()))
}

/// Claims the runs `ids` for `owner`, returning each with its latest checkpoint.
fn claim(
    transaction: &Connection,
    ids: Vec<String>,
    owner: &str,
    taken_over: bool,
) -> rusqlite::Result<Vec<Claimed>> {
    let owner: Arc<str> = Arc::from(owner);
    let mut claimed = Vec::with_capacity(ids.len());
    for id in ids {
        let (token, halt): (i64, Option<String>) = transaction
            .prepare_cached(CLAIM)?
            .query_row(params![id, &*owner], |row| Ok((row.get(0)?, row.get(1)?)))?;
        let checkpoint = transaction.prepare_cached(LATEST)?.query_row([&id], checkpoint)?;
        claimed.push(Claimed {
            checkpoint,
            lease: Lease { owner: Arc::clone(&owner), token: from_sql(token) },
            taken_over,
            halt: halt.as_deref().and_then(Halt::parse),
        });
    }
    Ok(claimed)
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

fn delete_run(transaction: &Connection, run: &str) -> rusqlite::Result<()> {
    transaction.prepare_cached(&format!("{CHAIN} {DELETE_HISTORY}"))?.execute([run])?;
    transaction.prepare_cached(DELETE_RUN)?.execute([run])?;
    Ok(())
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
