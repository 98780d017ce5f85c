//! One PostgreSQL database shared by many worker processes.

mod connection;
mod schema;

use std::borrow::Cow;
use std::str::FromStr;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc, oneshot};
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::sql::{self, Conditions, Dialect};
use super::{
    Checkpoint, CheckpointStore, Claimed, Filter, Halt, Lease, RunSummary, Status, StoreError,
};
use crate::RunId;
use connection::{Connection, Live, Save};
use schema::LAYOUT;

/// Keeps runs in one PostgreSQL database that many worker processes share.
///
/// - **Claims** take runnable runs with `FOR UPDATE SKIP LOCKED` (READ COMMITTED), up to a
///   batch at a time, so workers never wait on each other's rows. Engines hear of runs that
///   became runnable in another process through `LISTEN/NOTIFY` (channel `flow_runnable`), and
///   poll as well, in case a notification is lost with a connection.
/// - **Leases** are measured on the database server's clock, so workers whose clocks
///   disagree still agree on whose lease lapsed. Due times (backoffs, timers) are the
///   writing engine's clock, as in every store.
/// - **Fencing**: each claim gets a fresh token; every checkpoint and release carries it, and
///   the one `UPDATE` that writes it refuses it if the run moved on or was claimed again.
/// - **Group commit**: checkpoints that arrive while one transaction commits are written by
///   the next, one statement each, pipelined on one connection; each run's
///   [`save`](CheckpointStore::save) returns once its own checkpoint is committed. A
///   checkpoint the database fails on its own fails alone: its batch is run again, one
///   transaction per checkpoint. A save tried again after its answer was lost (the
///   connection dropped during the commit) is accepted if its first try was committed.
///
/// The store creates its tables (in `public`, or in the schema given to
/// [`PostgresStoreBuilder::schema`]) and upgrades them when a newer `flow` needs it; a
/// layout written by a newer `flow` is refused. It keeps three connections: one for group
/// commit, one for everything else (pipelined), one listening. A lost connection is opened
/// again at the next call.
///
/// ```no_run
/// use flow::store::PostgresStore;
///
/// # async fn open() -> Result<(), flow::store::StoreError> {
/// let store = PostgresStore::connect("postgres://postgres@127.0.0.1:5432/test").await?;
/// # let _ = store; Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct PostgresStore {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    connection: Arc<Connection>,
    saves: mpsc::UnboundedSender<Save>,
    runnable: Arc<Notify>,
    tasks: Vec<tokio::task::AbortHandle>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Opens a [`PostgresStore`] with settings: [`PostgresStore::builder`].
#[derive(Debug, Clone)]
pub struct PostgresStoreBuilder {
    url: String,
    schema: Option<String>,
}

impl PostgresStoreBuilder {
    /// Keeps the store's tables in schema `name` (created if missing) instead of the
    /// connection's default (`public`): several stores in one database, one test per schema.
    /// `name` is a plain identifier: ASCII letters, digits and `_`, not starting with a digit,
    /// at most 63 bytes.
    pub fn schema(mut self, name: impl Into<String>) -> PostgresStoreBuilder {
        self.schema = Some(name.into());
        self
    }

    /// Connects, creates or upgrades the tables, and starts listening for runnable runs.
    /// Call it inside a tokio runtime: the store's connections run on it.
    ///
    /// # Errors
    ///
    /// [`StoreError::Connect`] if the URL does not parse, the server cannot be reached or
    /// refuses the user, or the schema name is not a plain identifier;
    /// [`StoreError::Layout`] if a newer `flow` wrote the tables.
    pub async fn connect(self) -> Result<PostgresStore, StoreError> {
        let connection = Arc::new(Connection::open(&self.url, self.schema.as_deref()).await?);
        let runnable = Arc::new(Notify::new());
        let (saves, queue) = mpsc::unbounded_channel();
        let writer = tokio::spawn(connection::write_loop(Arc::clone(&connection), queue));
        let listener =
            tokio::spawn(connection::listen(Arc::clone(&connection), Arc::downgrade(&runnable)));
        Ok(PostgresStore {
            shared: Arc::new(Shared {
                connection,
                saves,
                runnable,
                tasks: vec![writer.abort_handle(), listener.abort_handle()],
            }),
        })
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`,
    /// or the `key=value` form libpq takes) with the default settings: tables in the
    /// connection's default schema. See [`PostgresStoreBuilder::connect`] for errors.
    pub async fn connect(url: &str) -> Result<PostgresStore, StoreError> {
        PostgresStore::builder(url).connect().await
    }

    /// Settings before connecting to `url`.
    pub fn builder(url: impl Into<String>) -> PostgresStoreBuilder {
        PostgresStoreBuilder { url: url.into(), schema: None }
    }

    /// The layout version this build writes.
    pub const LAYOUT: i64 = LAYOUT;

    /// The server and database this store uses, without the password.
    pub fn target(&self) -> &str {
        self.shared.connection.target()
    }
}

fn uuid(run: RunId) -> Uuid {
    Uuid::from_u128(run.as_u128())
}

fn run_id(id: Uuid) -> RunId {
    RunId::from_u128(id.as_u128())
}

// PostgreSQL integers are i64; sequence numbers and Unix milliseconds stay far below
// i64::MAX.
fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

fn malformed(what: String) -> StoreError {
    StoreError::Backend(what.into())
}

fn backend(error: tokio_postgres::Error) -> StoreError {
    StoreError::Backend(Box::new(PostgresError::from(error)))
}

/// A failure of PostgreSQL or of the connection to it, saying what the server said (the
/// driver's own message is only "db error" for those).
#[derive(Debug, thiserror::Error)]
#[error("PostgreSQL: {message}")]
pub(crate) struct PostgresError {
    message: String,
    #[source]
    source: tokio_postgres::Error,
}

impl From<tokio_postgres::Error> for PostgresError {
    fn from(source: tokio_postgres::Error) -> PostgresError {
        let message = match source.as_db_error() {
            Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
            None => source.to_string(),
        };
        PostgresError { message, source }
    }
}

fn parse<T: FromStr<Err = StoreError>>(text: Option<String>) -> Result<Option<T>, StoreError> {
    text.map(|text| text.parse()).transpose()
}

/// A checkpoint from the columns `schema::LATEST` (and the claims) read, in that order.
fn checkpoint(row: &Row) -> Result<Checkpoint, StoreError> {
    let status: String = row.try_get(5).map_err(backend)?;
    let version: i64 = row.try_get(3).map_err(backend)?;
    Ok(Checkpoint {
        run: run_id(row.try_get(0).map_err(backend)?),
        seq: from_sql(row.try_get(1).map_err(backend)?),
        machine: Cow::Owned(row.try_get(2).map_err(backend)?),
        version: u32::try_from(version)
            .map_err(|_| malformed(format!("version {version} out of range")))?,
        fingerprint: Cow::Owned(row.try_get(4).map_err(backend)?),
        status: status.parse()?,
        state: Cow::Owned(row.try_get(6).map_err(backend)?),
        wake_at: row.try_get::<_, Option<i64>>(7).map_err(backend)?.map(from_sql),
        snapshot: row.try_get(8).map_err(backend)?,
        wait: parse(row.try_get(9).map_err(backend)?)?,
        lease: None,
        at: from_sql(row.try_get(10).map_err(backend)?),
        entries: "[]".into(),
        key: row.try_get(11).map_err(backend)?,
    })
}

/// A claimed run from a claim's row: the checkpoint's columns, then token, halt, due.
fn claimed(row: &Row, owner: &Arc<str>, taken_over: bool) -> Result<(Claimed, i64), StoreError> {
    let token: i64 = row.try_get(12).map_err(backend)?;
    let halt: Option<String> = row.try_get(13).map_err(backend)?;
    let due: i64 = row.try_get(14).map_err(backend)?;
    let claim = Claimed {
        checkpoint: checkpoint(row)?,
        lease: Lease { owner: Arc::clone(owner), token: from_sql(token) },
        taken_over,
        halt: halt.as_deref().and_then(Halt::parse),
    };
    Ok((claim, due))
}

fn summary(row: &Row) -> Result<RunSummary, StoreError> {
    let status: String = row.try_get(2).map_err(backend)?;
    Ok(RunSummary {
        run: run_id(row.try_get(0).map_err(backend)?),
        machine: row.try_get(1).map_err(backend)?,
        key: row.try_get(7).map_err(backend)?,
        status: status.parse()?,
        note: row.try_get(3).map_err(backend)?,
        wait: parse(row.try_get(4).map_err(backend)?)?,
        created: from_sql(row.try_get(5).map_err(backend)?),
        updated: from_sql(row.try_get(6).map_err(backend)?),
        state: row.try_get(8).map_err(backend)?,
    })
}

/// A filter's parameters as the driver's values.
fn values(conditions: &Conditions) -> Vec<Box<dyn ToSql + Sync + Send>> {
    let value = |value: &sql::Value| -> Box<dyn ToSql + Sync + Send> {
        match value {
            sql::Value::Text(text) => Box::new(text.clone()),
            sql::Value::Int(int) => Box::new(*int),
            sql::Value::Run(run) => Box::new(uuid(*run)),
        }
    };
    conditions.values.iter().map(value).collect()
}

fn borrowed(values: &[Box<dyn ToSql + Sync + Send>]) -> Vec<&(dyn ToSql + Sync)> {
    values.iter().map(|value| &**value as &(dyn ToSql + Sync)).collect()
}

impl PostgresStore {
    async fn live(&self) -> Result<Arc<Live>, StoreError> {
        self.shared.connection.live().await
    }

    /// Tells the engines listening that runs of `machine` are runnable.
    async fn notify(&self, live: &Live, machine: &str) -> Result<(), StoreError> {
        live.client.execute(&live.statements.notify, &[&machine]).await.map_err(backend)?;
        Ok(())
    }

    async fn claim_with(
        &self,
        lapsed: bool,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let live = self.live().await?;
        let (client, statements) = (&live.client, &live.statements);
        let limit = to_sql(limit as u64);
        let rows = if lapsed {
            client.query(&statements.claim_lapsed, &[&owner, &machines, &limit]).await
        } else {
            let now = to_sql(now);
            client.query(&statements.claim_due, &[&now, &machines, &limit, &owner]).await
        }
        .map_err(backend)?;
        let owner: Arc<str> = Arc::from(owner);
        let mut claimed =
            rows.iter().map(|row| claimed(row, &owner, lapsed)).collect::<Result<Vec<_>, _>>()?;
        claimed.sort_by_key(|(_, due)| *due);
        Ok(claimed.into_iter().map(|(claim, _)| claim).collect())
    }
}

impl CheckpointStore for PostgresStore {
    async fn save(&self, checkpoint: Checkpoint) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        if self.shared.saves.send(Save { checkpoint, reply }).is_err() {
            return Err(StoreError::Closed);
        }
        answer.await.unwrap_or(Err(StoreError::Closed))
    }

    async fn claim(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_with(false, owner, machines, now, limit).await
    }

    /// Compares leases on the database server's clock, not `now`.
    async fn take_over(
        &self,
        owner: &str,
        machines: &[&'static str],
        _now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_with(true, owner, machines, 0, limit).await
    }

    async fn next_due(&self, machines: &[&'static str]) -> Result<Option<u64>, StoreError> {
        let live = self.live().await?;
        let row = live.client.query_opt(&live.statements.next_due, &[&machines]).await;
        let due = row.map_err(backend)?.map(|row| row.try_get::<_, i64>(0));
        due.transpose().map(|due| due.map(from_sql)).map_err(backend)
    }

    /// Holds the lease for `expires - now` milliseconds of the database server's clock.
    async fn heartbeat(
        &self,
        owner: &str,
        now: u64,
        expires: u64,
    ) -> Result<Vec<(RunId, Halt)>, StoreError> {
        let length = to_sql(expires.saturating_sub(now));
        let live = self.live().await?;
        let rows = live.client.query(&live.statements.heartbeat, &[&owner, &length]).await;
        let mut halts = Vec::new();
        for row in rows.map_err(backend)? {
            let run: Uuid = row.try_get(0).map_err(backend)?;
            let halt: String = row.try_get(1).map_err(backend)?;
            if let Some(halt) = Halt::parse(&halt) {
                halts.push((run_id(run), halt));
            }
        }
        Ok(halts)
    }

    async fn release(&self, run: RunId, lease: Lease) -> Result<(), StoreError> {
        let (id, owner, token) = (uuid(run), &*lease.owner, to_sql(lease.token));
        let live = self.live().await?;
        let released =
            live.client.query_opt(&live.statements.release, &[&id, &owner, &token]).await;
        match released.map_err(backend)? {
            Some(row) => self.notify(&live, &row.get::<_, String>(0)).await,
            None => Ok(()),
        }
    }

    async fn request_halt(&self, run: RunId, halt: Halt) -> Result<bool, StoreError> {
        let (id, halt) = (uuid(run), halt.as_str());
        let live = self.live().await?;
        let changed = live.client.execute(&live.statements.request_halt, &[&id, &halt]).await;
        Ok(changed.map_err(backend)? > 0)
    }

    async fn latest(&self, run: RunId) -> Result<Option<Checkpoint>, StoreError> {
        let live = self.live().await?;
        let row = live.client.query_opt(&live.statements.latest, &[&uuid(run)]).await;
        row.map_err(backend)?.as_ref().map(checkpoint).transpose()
    }

    async fn history(&self, run: RunId) -> Result<Vec<String>, StoreError> {
        let live = self.live().await?;
        let rows = live.client.query(&live.statements.history, &[&uuid(run)]).await;
        rows.map_err(backend)?.iter().map(|row| row.try_get(0).map_err(backend)).collect()
    }

    async fn history_after(
        &self,
        run: RunId,
        after: u64,
    ) -> Result<Option<Vec<(u64, String)>>, StoreError> {
        let after = to_sql(after);
        let live = self.live().await?;
        let rows = live.client.query(&live.statements.history_after, &[&uuid(run), &after]).await;
        let row = |row: &Row| -> Result<(u64, String), StoreError> {
            Ok((from_sql(row.try_get(0).map_err(backend)?), row.try_get(1).map_err(backend)?))
        };
        rows.map_err(backend)?.iter().map(row).collect::<Result<_, _>>().map(Some)
    }

    async fn summary(&self, run: RunId) -> Result<Option<RunSummary>, StoreError> {
        let live = self.live().await?;
        let row = live.client.query_opt(&live.statements.summary, &[&uuid(run)]).await;
        row.map_err(backend)?.as_ref().map(summary).transpose()
    }

    async fn list(&self, filter: Filter) -> Result<Vec<RunSummary>, StoreError> {
        let mut conditions = Conditions::of(&filter, Dialect::Postgres, 1);
        let order = sql::order_and_limit(&filter, &mut conditions, Dialect::Postgres, 1);
        let query = format!("{}{}{order}", schema::LIST, conditions.sql);
        let values = values(&conditions);
        let live = self.live().await?;
        let rows = live.client.query(&query, &borrowed(&values)).await;
        rows.map_err(backend)?.iter().map(summary).collect()
    }

    async fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
        lease: Option<Lease>,
    ) -> Result<(), StoreError> {
        let (id, status, note) = (uuid(run), status.as_str(), note.as_deref());
        let owner = lease.as_ref().map(|lease| &*lease.owner);
        let token = lease.as_ref().map_or(0, |lease| to_sql(lease.token));
        let live = self.live().await?;
        let row = live
            .client
            .query_one(&live.statements.mark, &[&id, &status, &note, &owner, &token])
            .await
            .map_err(backend)?;
        let (marked, known): (Option<String>, bool) = (row.get(0), row.get(1));
        match marked {
            None if known => Err(StoreError::Fenced { run }),
            Some(machine) if status == Status::Running.as_str() => {
                self.notify(&live, &machine).await
            }
            _ => Ok(()),
        }
    }

    async fn delete_finished(&self, filter: Filter, before: u64) -> Result<u64, StoreError> {
        let conditions = Conditions::of(&filter, Dialect::Postgres, 2);
        let (head, end) = (schema::DELETE_FINISHED, schema::DELETE_FINISHED_END);
        let query = format!("{head}{}{end}", conditions.sql);
        let mut values = values(&conditions);
        values.insert(0, Box::new(to_sql(before)));
        let live = self.live().await?;
        let row = live.client.query_one(&query, &borrowed(&values)).await.map_err(backend)?;
        row.try_get::<_, i64>(0).map(from_sql).map_err(backend)
    }

    async fn delete(&self, run: RunId) -> Result<bool, StoreError> {
        let id = uuid(run);
        let live = self.live().await?;
        loop {
            let row = live.client.query_one(&live.statements.delete, &[&id]).await;
            if row.map_err(backend)?.try_get::<_, i64>(0).map_err(backend)? > 0 {
                return Ok(true);
            }
            let row = live.client.query_opt(&live.statements.status, &[&id]).await;
            let Some(row) = row.map_err(backend)? else { return Ok(false) };
            let status: Status = row.try_get::<_, String>(0).map_err(backend)?.parse()?;
            if !status.is_finished() {
                return Err(StoreError::Unfinished { run, status });
            }
            // It finished between the two statements: delete it now.
        }
    }

    fn runnable_hint(&self) -> Option<Arc<Notify>> {
        Some(Arc::clone(&self.shared.runnable))
    }
}
