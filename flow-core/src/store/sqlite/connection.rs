//! The SQLite store's connections: opening a file and bringing it to the current layout, and
//! the writer thread, which commits the jobs waiting in one transaction (group commit).

use std::path::Path;
use std::sync::Arc;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::oneshot;

use super::backend;
use super::file::File;
use super::schema::{INDEXES, LAYOUT, MIGRATIONS};
use crate::store::StoreError;

/// The most jobs one transaction (one fsync) commits.
const MAX_BATCH: usize = 4096;

/// A write the writer thread runs inside the batch's transaction.
pub(super) trait Job: Send {
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
pub(super) struct Write<T, F> {
    pub(super) work: F,
    pub(super) answer: Option<Result<T, StoreError>>,
    pub(super) reply: oneshot::Sender<Result<T, StoreError>>,
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

pub(super) fn connect(path: &Path) -> rusqlite::Result<Connection> {
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
pub(super) fn migrate(connection: &mut Connection, path: &Path) -> Result<(), StoreError> {
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

/// The writer thread: takes every job waiting, runs them in one transaction, answers each.
///
/// Before each transaction it checks that the file at the store's path is still the one it
/// opened; once it is not, every write fails with [`StoreError::FileChanged`].
pub(super) fn write_loop(
    mut connection: Connection,
    jobs: mpsc::Receiver<Box<dyn Job>>,
    file: Arc<File>,
) {
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
