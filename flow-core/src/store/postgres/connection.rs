//! The PostgreSQL store's connections: setup and upgrades, the shared connection with its
//! prepared statements, the group-commit writer, and the listener.

use std::collections::HashSet;
use std::str::FromStr;
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::{Mutex, Notify, mpsc, oneshot};
use tokio_postgres::{AsyncMessage, Client, Config, NoTls, Statement, Transaction};
use uuid::Uuid;

use super::schema::{self, LAYOUT, MIGRATIONS};
use super::{backend, from_sql, to_sql, uuid};
use crate::store::{Checkpoint, StoreError};

/// The most checkpoints one transaction commits.
const MAX_BATCH: usize = 1024;

/// How long the listener waits before connecting again after losing its connection.
const LISTEN_RETRY: Duration = Duration::from_secs(1);

/// How the store reaches its database: the settings, and the shared connection (opened
/// again when lost).
#[derive(Debug)]
pub(super) struct Connection {
    config: Config,
    target: String,
    live: Mutex<Option<Arc<Live>>>,
}

/// An open connection and the store's statements, prepared on it.
#[derive(Debug)]
pub(super) struct Live {
    pub client: Client,
    pub statements: Statements,
}

/// Every statement the store runs, prepared once per connection.
#[derive(Debug)]
pub(super) struct Statements {
    pub advance: Statement,
    pub create: Statement,
    pub head: Statement,
    pub notify: Statement,
    pub claim_due: Statement,
    pub claim_lapsed: Statement,
    pub next_due: Statement,
    pub heartbeat: Statement,
    pub release: Statement,
    pub request_halt: Statement,
    pub mark: Statement,
    pub latest: Statement,
    pub history: Statement,
    pub history_after: Statement,
    pub summary: Statement,
    pub delete: Statement,
    pub status: Statement,
}

impl Statements {
    async fn prepare(client: &Client) -> Result<Statements, tokio_postgres::Error> {
        Ok(Statements {
            advance: client.prepare(schema::ADVANCE).await?,
            create: client.prepare(schema::CREATE).await?,
            head: client.prepare(schema::HEAD).await?,
            notify: client.prepare(schema::NOTIFY).await?,
            claim_due: client.prepare(schema::CLAIM_DUE).await?,
            claim_lapsed: client.prepare(schema::CLAIM_LAPSED).await?,
            next_due: client.prepare(schema::NEXT_DUE).await?,
            heartbeat: client.prepare(schema::HEARTBEAT).await?,
            release: client.prepare(schema::RELEASE).await?,
            request_halt: client.prepare(schema::REQUEST_HALT).await?,
            mark: client.prepare(schema::MARK).await?,
            latest: client.prepare(schema::LATEST).await?,
            history: client.prepare(schema::HISTORY).await?,
            history_after: client.prepare(schema::HISTORY_AFTER).await?,
            summary: client.prepare(schema::SUMMARY).await?,
            delete: client.prepare(schema::DELETE).await?,
            status: client.prepare(schema::STATUS).await?,
        })
    }
}

/// A checkpoint on its way to the writer, and where its outcome goes.
pub(super) struct Save {
    pub checkpoint: Checkpoint,
    pub reply: oneshot::Sender<Result<(), StoreError>>,
}

impl Connection {
    /// Parses `url`, connects, and brings the tables to [`LAYOUT`].
    pub async fn open(url: &str, schema: Option<&str>) -> Result<Connection, StoreError> {
        let mut config = Config::from_str(url).map_err(|error| StoreError::Connect {
            target: "the URL given (it does not parse)".to_owned(),
            source: Box::new(error),
        })?;
        config.application_name("flow");
        let mut target = describe(&config);
        if let Some(schema) = schema {
            target = format!("{target}, schema {schema}");
            if !plain_identifier(schema) {
                return Err(StoreError::Connect {
                    target,
                    source: format!(
                        "schema name `{schema}` is not a plain identifier; use ASCII letters, \
                         digits and `_`, not starting with a digit, at most 63 bytes"
                    )
                    .into(),
                });
            }
            config.options(format!("-c search_path={schema}"));
        }
        let connection = Connection { config, target, live: Mutex::new(None) };
        let mut client = connection.connect().await?;
        migrate(&mut client, schema, &connection.target).await?;
        let statements =
            Statements::prepare(&client).await.map_err(|error| connection.connect_error(error))?;
        *connection.live.lock().await = Some(Arc::new(Live { client, statements }));
        Ok(connection)
    }

    /// The server and database, without the password.
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The shared connection, opened again if it was lost.
    pub async fn live(&self) -> Result<Arc<Live>, StoreError> {
        let mut live = self.live.lock().await;
        if let Some(open) = live.as_ref().filter(|open| !open.client.is_closed()) {
            return Ok(Arc::clone(open));
        }
        let open = Arc::new(self.fresh().await?);
        *live = Some(Arc::clone(&open));
        Ok(open)
    }

    /// A new connection of its own, statements prepared.
    pub async fn fresh(&self) -> Result<Live, StoreError> {
        let client = self.connect().await?;
        let statements =
            Statements::prepare(&client).await.map_err(|error| self.connect_error(error))?;
        Ok(Live { client, statements })
    }

    async fn connect(&self) -> Result<Client, StoreError> {
        let (client, connection) =
            self.config.connect(NoTls).await.map_err(|error| self.connect_error(error))?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("PostgreSQL connection ended: {error}");
            }
        });
        Ok(client)
    }

    fn connect_error(&self, error: tokio_postgres::Error) -> StoreError {
        StoreError::Connect { target: self.target.clone(), source: Box::new(error) }
    }
}

fn describe(config: &Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let user = config.get_user().unwrap_or("(default user)");
    let database = config.get_dbname().unwrap_or(user);
    format!("{user}@{host}:{port}/{database}")
}

fn plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars.next().is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|next| next.is_ascii_alphanumeric() || next == '_')
}

/// Brings the tables to [`LAYOUT`] in one transaction, one step per layout. Concurrent setups
/// (workers starting together) take turns on an advisory lock.
async fn migrate(
    client: &mut Client,
    schema: Option<&str>,
    target: &str,
) -> Result<(), StoreError> {
    let error = |error: tokio_postgres::Error| StoreError::Connect {
        target: target.to_owned(),
        source: Box::new(error),
    };
    let transaction = client.transaction().await.map_err(error)?;
    if let Some(schema) = schema {
        transaction
            .batch_execute("SELECT pg_advisory_xact_lock(hashtext('flow_setup'))")
            .await
            .map_err(error)?;
        transaction
            .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
            .await
            .map_err(error)?;
    }
    transaction.batch_execute(schema::PREPARE).await.map_err(error)?;
    let found: Option<i64> =
        transaction.query_one(schema::FOUND_LAYOUT, &[]).await.map_err(error)?.get(0);
    let found = found.unwrap_or(0);
    if found > LAYOUT {
        return Err(StoreError::Layout { location: target.to_owned(), found, supported: LAYOUT });
    }
    for step in MIGRATIONS.iter().skip(usize::try_from(found).unwrap_or(0)) {
        transaction.batch_execute(step).await.map_err(error)?;
    }
    if found != LAYOUT {
        transaction.batch_execute("DELETE FROM flow_layout").await.map_err(error)?;
        let layout = i32::try_from(LAYOUT).unwrap_or(i32::MAX);
        transaction.execute(schema::SET_LAYOUT, &[&layout]).await.map_err(error)?;
    }
    transaction.commit().await.map_err(error)
}

/// The group-commit writer: takes every checkpoint waiting, writes them in one transaction on
/// a connection of its own, and answers each. Ends when the store is dropped.
pub(super) async fn write_loop(
    connection: Arc<Connection>,
    mut queue: mpsc::UnboundedReceiver<Save>,
) {
    let mut own: Option<Live> = None;
    let mut later: Vec<Save> = Vec::new();
    loop {
        let mut waiting = std::mem::take(&mut later);
        if waiting.is_empty() {
            match queue.recv().await {
                Some(save) => waiting.push(save),
                None => return,
            }
        }
        while waiting.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(save) => waiting.push(save),
                Err(_) => break,
            }
        }
        // One checkpoint per run per transaction: a second one (a signal racing its run's own
        // checkpoint) goes in the next.
        let mut runs = HashSet::with_capacity(waiting.len());
        let (mut batch, next): (Vec<Save>, Vec<Save>) =
            waiting.into_iter().partition(|save| runs.insert(save.checkpoint.run));
        later = next;
        // The same order in every process's transactions: two batches that touch the same
        // runs lock them in the same order, and cannot deadlock.
        batch.sort_by_key(|save| save.checkpoint.run);
        let live = match own.take().filter(|live| !live.client.is_closed()) {
            Some(live) => live,
            None => match connection.fresh().await {
                Ok(live) => live,
                Err(error) => {
                    let message = error.to_string();
                    for save in batch {
                        let _ = save.reply.send(Err(StoreError::Backend(message.clone().into())));
                    }
                    continue;
                }
            },
        };
        let mut live = live;
        let outcomes = commit(&mut live, &batch).await;
        own = Some(live);
        for (save, outcome) in batch.into_iter().zip(outcomes) {
            // A caller that stopped waiting needs no answer.
            let _ = save.reply.send(outcome);
        }
    }
}

/// Writes `batch` in one transaction. If the database fails one of its statements (which
/// aborts the transaction), each checkpoint is written again in a transaction of its own, so
/// it fails alone.
async fn commit(live: &mut Live, batch: &[Save]) -> Vec<Result<(), StoreError>> {
    match transact(live, batch).await {
        Ok(outcomes) => outcomes,
        Err(error) if live.client.is_closed() || batch.len() == 1 => {
            let message = super::PostgresError::from(error).to_string();
            batch.iter().map(|_| Err(StoreError::Backend(message.clone().into()))).collect()
        }
        Err(_) => {
            let mut outcomes = Vec::with_capacity(batch.len());
            for save in batch {
                let outcome = match transact(live, std::slice::from_ref(save)).await {
                    Ok(mut alone) => alone.remove(0),
                    Err(error) => Err(backend(error)),
                };
                outcomes.push(outcome);
            }
            outcomes
        }
    }
}

async fn transact(
    live: &mut Live,
    batch: &[Save],
) -> Result<Vec<Result<(), StoreError>>, tokio_postgres::Error> {
    let Live { client, statements } = live;
    let statements = &*statements;
    let owned = client.transaction().await?;
    let transaction = &owned;
    let (first, later): (Vec<usize>, Vec<usize>) =
        (0..batch.len()).partition(|&k| batch[k].checkpoint.seq == 0);
    // Pipelined: every statement is sent before the first answer comes back.
    let (created, moved) = tokio::join!(
        join_all(first.iter().map(|&k| create(transaction, statements, &batch[k].checkpoint))),
        advance(transaction, statements, later.iter().map(|&k| &batch[k].checkpoint)),
    );
    let mut applied = vec![false; batch.len()];
    for (&k, created) in first.iter().zip(created) {
        applied[k] = created?;
    }
    let moved = moved?;
    for &k in &later {
        applied[k] = moved.contains(&uuid(batch[k].checkpoint.run));
    }
    let outcomes = join_all(batch.iter().zip(&applied).map(|(save, &applied)| async move {
        if applied { Ok(Ok(())) } else { refusal(transaction, statements, &save.checkpoint).await }
    }))
    .await
    .into_iter()
    .collect::<Result<Vec<_>, _>>()?;
    // Engines listening elsewhere hear of the runs this batch made runnable at once.
    let mut runnable: Vec<&str> = batch
        .iter()
        .zip(&outcomes)
        .filter(|(save, outcome)| outcome.is_ok() && save.checkpoint.due_at() == Some(0))
        .map(|(save, _)| &*save.checkpoint.machine)
        .collect();
    runnable.sort_unstable();
    runnable.dedup();
    for machine in runnable {
        transaction.execute(&statements.notify, &[&machine]).await?;
    }
    owned.commit().await?;
    Ok(outcomes)
}

/// What a checkpoint writes besides its run, sequence number and text columns.
struct Columns<'a> {
    at: i64,
    version: i64,
    wake_at: Option<i64>,
    wait: Option<&'static str>,
    status: &'static str,
    due_at: Option<i64>,
    /// Who holds the run after it: its writer if it keeps its lease.
    holder: Option<&'a str>,
    lease_owner: Option<&'a str>,
    token: i64,
}

fn columns(checkpoint: &Checkpoint) -> Columns<'_> {
    let lease = checkpoint.lease.as_ref();
    Columns {
        at: to_sql(checkpoint.at),
        version: i64::from(checkpoint.version),
        wake_at: checkpoint.wake_at.map(to_sql),
        wait: checkpoint.wait.map(|wait| wait.as_str()),
        status: checkpoint.status.as_str(),
        due_at: checkpoint.due_at().map(to_sql),
        holder: lease.filter(|_| checkpoint.keeps_lease()).map(|lease| &*lease.owner),
        lease_owner: lease.map(|lease| &*lease.owner),
        token: lease.map_or(0, |lease| to_sql(lease.token)),
    }
}

/// Writes a run's first checkpoint inside `transaction`; `false` if the run exists.
async fn create(
    transaction: &Transaction<'_>,
    statements: &Statements,
    checkpoint: &Checkpoint,
) -> Result<bool, tokio_postgres::Error> {
    let c = columns(checkpoint);
    let (fingerprint, state, machine): (&str, &str, &str) =
        (&checkpoint.fingerprint, &checkpoint.state, &checkpoint.machine);
    let row = transaction
        .query_one(
            &statements.create,
            &[
                &uuid(checkpoint.run),
                &c.at,
                &c.version,
                &fingerprint,
                &state,
                &c.wake_at,
                &c.wait,
                &checkpoint.snapshot,
                &c.status,
                &c.due_at,
                &c.holder,
                &c.token,
                &machine,
                &checkpoint.entries,
                &checkpoint.key,
            ],
        )
        .await?;
    Ok(row.get::<_, i64>(0) > 0)
}

/// Writes checkpoints after the first, of distinct runs, in one statement inside
/// `transaction`; returns the runs whose checkpoint was applied.
async fn advance(
    transaction: &Transaction<'_>,
    statements: &Statements,
    checkpoints: impl Iterator<Item = &Checkpoint>,
) -> Result<HashSet<Uuid>, tokio_postgres::Error> {
    let checkpoints: Vec<&Checkpoint> = checkpoints.collect();
    if checkpoints.is_empty() {
        return Ok(HashSet::new());
    }
    let columns: Vec<Columns<'_>> =
        checkpoints.iter().map(|checkpoint| columns(checkpoint)).collect();
    let text = |column: fn(&Checkpoint) -> &str| -> Vec<&str> {
        checkpoints.iter().map(|checkpoint| column(checkpoint)).collect()
    };
    let runs: Vec<Uuid> = checkpoints.iter().map(|checkpoint| uuid(checkpoint.run)).collect();
    let seqs: Vec<i64> = checkpoints.iter().map(|checkpoint| to_sql(checkpoint.seq)).collect();
    let at: Vec<i64> = columns.iter().map(|c| c.at).collect();
    let versions: Vec<i64> = columns.iter().map(|c| c.version).collect();
    let wake_at: Vec<Option<i64>> = columns.iter().map(|c| c.wake_at).collect();
    let waits: Vec<Option<&str>> = columns.iter().map(|c| c.wait).collect();
    let statuses: Vec<&str> = columns.iter().map(|c| c.status).collect();
    let due_at: Vec<Option<i64>> = columns.iter().map(|c| c.due_at).collect();
    let holders: Vec<Option<&str>> = columns.iter().map(|c| c.holder).collect();
    let lease_owners: Vec<Option<&str>> = columns.iter().map(|c| c.lease_owner).collect();
    let tokens: Vec<i64> = columns.iter().map(|c| c.token).collect();
    let rows = transaction
        .query(
            &statements.advance,
            &[
                &runs,
                &seqs,
                &at,
                &versions,
                &text(|checkpoint| &checkpoint.fingerprint),
                &text(|checkpoint| &checkpoint.state),
                &wake_at,
                &waits,
                &text(|checkpoint| &checkpoint.snapshot),
                &statuses,
                &due_at,
                &holders,
                &lease_owners,
                &tokens,
                &text(|checkpoint| &checkpoint.entries),
            ],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get::<_, Uuid>(0)).collect())
}

/// Why the store refused `checkpoint`, from its run's head as it is now; or, if the head is
/// this very checkpoint (a save tried again after its answer was lost), that it was written.
async fn refusal(
    transaction: &Transaction<'_>,
    statements: &Statements,
    checkpoint: &Checkpoint,
) -> Result<Result<(), StoreError>, tokio_postgres::Error> {
    let (id, at) = (uuid(checkpoint.run), to_sql(checkpoint.at));
    let head = transaction.query_opt(&statements.head, &[&id, &checkpoint.snapshot, &at]).await?;
    let stored = head.as_ref().map(|row| from_sql(row.get(0)));
    let same = head.as_ref().is_some_and(|row| row.get::<_, Option<bool>>(1) == Some(true));
    if stored == Some(checkpoint.seq) && same {
        return Ok(Ok(()));
    }
    let follows = match stored {
        None => checkpoint.seq == 0,
        Some(last) => checkpoint.seq == last + 1,
    };
    let (run, seq) = (checkpoint.run, checkpoint.seq);
    Ok(Err(if follows {
        StoreError::Fenced { run }
    } else {
        StoreError::Conflict { run, seq, stored }
    }))
}

/// Listens for runs made runnable by any process, and wakes the engines on this store. On a
/// lost connection it connects again, and wakes them once in case it missed something.
pub(super) async fn listen(connection: Arc<Connection>, runnable: Weak<Notify>) {
    loop {
        if runnable.strong_count() == 0 {
            return;
        }
        if let Ok((client, mut messages)) = connection.config.connect(NoTls).await {
            let heard = runnable.clone();
            let drive = async move {
                while let Some(message) = std::future::poll_fn(|cx| messages.poll_message(cx)).await
                {
                    match message {
                        Ok(AsyncMessage::Notification(_)) => match heard.upgrade() {
                            Some(engines) => engines.notify_one(),
                            None => return,
                        },
                        Ok(_) => {}
                        Err(_) => return,
                    }
                }
            };
            let subscribe = async {
                if let Err(error) = client.batch_execute(schema::LISTEN).await {
                    tracing::debug!("cannot LISTEN for runnable runs: {error}");
                }
                if let Some(engines) = runnable.upgrade() {
                    engines.notify_one();
                }
            };
            tokio::join!(drive, subscribe);
        }
        tokio::time::sleep(LISTEN_RETRY).await;
    }
}
