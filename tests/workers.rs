//! Worker processes on one PostgreSQL database, killed and frozen. Two scenarios, each in a
//! schema of its own (the store's tables and a ledger's):
//!
//! 1. **Killed**: 3 worker processes share 500 workflows (several states, retries, a signal
//!    wait, a timer). A random worker is SIGKILLed at random moments, at least 30 times, and
//!    restarted each time; then all are let finish. Nobody calls `resume_pending`: a dead
//!    worker's runs are taken over once its lease lapses on the database's clock.
//! 2. **Frozen**: a worker is stopped (SIGSTOP) in the middle of a state body, past its lease;
//!    another takes the run over and finishes the state; the frozen one is resumed (SIGCONT).
//!    Its side effect is refused by the ledger (fenced by the claim's token, from
//!    `flow::current()`), and its checkpoint by the store, which it reports in an event.
//!
//! Afterwards, from the database alone: every workflow completed exactly once with the output
//! its input determines; its history is exactly the path its input determines (no transition
//! lost or applied twice, attempts numbered without a gap, every failure one this test causes);
//! every side effect, recorded in the ledger under the visit's idempotency key, was applied
//! once per visit; every write the store refused was counted.
//!
//! The kill schedule is seeded: `FLOW_WORKERS_SEED=<n>` replays one. Needs `DATABASE_URL`
//! (see the README). A harness-less test: the same binary is the worker when
//! `FLOW_WORKERS_CHILD` is set.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitCode, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use flow::history::{Entry, Failure, Outcome};
use flow::prelude::*;
use flow::store::{PostgresStore, Status};
use flow::{Engine, EngineError, EventKind, RunHandle, RunId};
use serde::{Deserialize, Serialize};
use tokio_postgres::{Client, NoTls};

mod common;

const WORKFLOWS: u32 = 500;
const WORKERS: usize = 3;
/// SIGKILLs in the first scenario, at least.
const KILLS: u32 = 30;
/// At most this many runs execute at once in one worker, so the work lasts a few seconds and
/// the kills land in the middle of it.
const CONCURRENCY: usize = 8;
/// The workers' owner lease, on the database's clock.
const LEASE: Duration = Duration::from_millis(400);
/// How often workers look at the store for what LISTEN/NOTIFY does not announce (lapsed
/// leases).
const POLL: Duration = Duration::from_millis(100);
/// How long the workers get to finish once the kills stop.
const FINISH_WITHIN: Duration = Duration::from_secs(60);
/// The message of the failure `debit` injects.
const LOST_ANSWER: &str = "the bank's answer was lost";
/// The frozen scenario's state body: how long it works before its side effect.
const FROZEN_WORK: Duration = Duration::from_millis(1500);

/// The ledger: the downstream system the workflows change, in the scenario's schema.
static LEDGER: OnceLock<Client> = OnceLock::new();

/// The statement a side effect runs: it raises the run's fence to the claim's token unless a
/// higher one was seen (Kleppmann's fencing token), applies the effect once per idempotency
/// key if the fence let it, and counts the execution either way.
const APPLY: &str = "
    WITH fence AS (
        INSERT INTO fences (run, token) VALUES ($1, $2)
        ON CONFLICT (run) DO UPDATE SET token = excluded.token
        WHERE fences.token <= excluded.token
        RETURNING 1
    ), effect AS (
        INSERT INTO effects (key, workflow, state, amount, token)
        SELECT $3, $4, $5, $6, $2 FROM fence
        ON CONFLICT (key) DO NOTHING
    ), execution AS (
        INSERT INTO executions (key, workflow, fenced)
        VALUES ($3, $4, NOT EXISTS (SELECT 1 FROM fence))
    )
    SELECT EXISTS (SELECT 1 FROM fence)";

const LEDGER_TABLES: &str = "
    CREATE TABLE fences (run text PRIMARY KEY, token bigint NOT NULL);
    CREATE TABLE effects (
        key text PRIMARY KEY, workflow bigint, state text, amount bigint, token bigint);
    CREATE TABLE executions (id bigserial PRIMARY KEY, key text, workflow bigint, fenced bool);
    CREATE TABLE refusals (id bigserial PRIMARY KEY, run text, worker integer, error text);
    CREATE TABLE marks (run text, token bigint, at timestamptz DEFAULT clock_timestamp());";

fn ledger() -> Result<&'static Client> {
    LEDGER.get().ok_or_else(|| Error::permanent("the ledger is not open"))
}

/// Applies `amount` for the current visit, fenced by the claim's token.
async fn apply(state: &str, workflow: u32, amount: u64) -> Result<()> {
    let now = flow::current().ok_or_else(|| Error::permanent("a side effect outside a state"))?;
    let key = flow::idempotency_key().ok_or_else(|| Error::permanent("no idempotency key"))?;
    let token = now.fencing_token.ok_or_else(|| Error::permanent("no fencing token"))?;
    let applied: bool = ledger()?
        .query_one(
            APPLY,
            &[
                &now.run.to_string(),
                &(token as i64),
                &key,
                &i64::from(workflow),
                &state,
                &(amount as i64),
            ],
        )
        .await
        .map_err(|error| Error::retryable(error.to_string()))?
        .get(0);
    if !applied {
        return Err(Error::permanent(format!("the ledger refused stale token {token}")));
    }
    Ok(())
}

fn rounds(i: u32) -> u32 {
    2 + i % 4
}

fn debit_amount(i: u32, round: u32) -> u64 {
    u64::from(i * 10 + round)
}

/// Every fourth workflow waits for an approval carrying a bonus.
fn approved(i: u32) -> bool {
    i.is_multiple_of(4)
}

fn bonus(i: u32) -> u64 {
    u64::from(i) * 1000
}

fn expected(i: u32) -> u64 {
    let debits: u64 = (1..=rounds(i)).map(|round| debit_amount(i, round)).sum();
    debits + u64::from(i) + if approved(i) { bonus(i) } else { 0 }
}

/// open → debit × rounds → (approve) → settle → credit → close.
fn path(i: u32) -> Vec<(&'static str, &'static str)> {
    let mut path = vec![("open", "debit")];
    path.extend((1..rounds(i)).map(|_| ("debit", "debit")));
    if approved(i) {
        path.extend([("debit", "approve"), ("approve", "settle")]);
    } else {
        path.push(("debit", "settle"));
    }
    path.extend([("settle", "credit"), ("credit", "close")]);
    path
}

async fn work(i: u32, step: u32) {
    tokio::time::sleep(Duration::from_millis(u64::from(10 + (i * 7 + step * 13) % 30))).await;
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tally {
    pub total: u64,
}

/// The approval's bonus: the signal a waiting workflow gets.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bonus(pub u64);

/// 12 attempts per state: a kill mid-attempt counts as a failed attempt.
#[flow::machine(name = "workers_job")]
pub mod job {
    use super::*;

    #[state(start, to(debit), retry(attempts = 12, backoff = "5ms..40ms"))]
    async fn open(_cx: &mut Tally, i: u32) -> Result<Open> {
        work(i, 0).await;
        apply("open", i, 0).await?;
        goto!(debit(i, 1))
    }

    /// Every third workflow loses the bank's answer on its first attempt of each round.
    #[state(to(debit, approve, settle), retry(attempts = 12, backoff = "5ms..40ms"))]
    async fn debit(cx: &mut Tally, i: u32, round: u32) -> Result<Debit> {
        work(i, round).await;
        let amount = debit_amount(i, round);
        apply("debit", i, amount).await?;
        if i.is_multiple_of(3) && flow::current().is_some_and(|now| now.attempt == 1) {
            return Err(Error::retryable(LOST_ANSWER));
        }
        cx.total += amount;
        if round < rounds(i) {
            return goto!(debit(i, round + 1));
        }
        if approved(i) { goto!(approve(i)) } else { goto!(settle(i)) }
    }

    #[state(to(settle), retry(attempts = 12, backoff = "5ms..40ms"))]
    async fn approve(cx: &mut Tally, i: u32, #[signal] bonus: Bonus) -> Result<Approve> {
        cx.total += bonus.0;
        goto!(settle(i))
    }

    /// A durable timer before the credit.
    #[state(to(credit), wait = "40ms", retry(attempts = 12, backoff = "5ms..40ms"))]
    async fn settle(_cx: &mut Tally, i: u32) -> Result<Settle> {
        goto!(credit(i))
    }

    #[state(to(close), retry(attempts = 12, backoff = "5ms..40ms"))]
    async fn credit(cx: &mut Tally, i: u32) -> Result<Credit> {
        work(i, 99).await;
        apply("credit", i, u64::from(i)).await?;
        cx.total += u64::from(i);
        goto!(close(i))
    }

    #[state(end, retry(attempts = 12, backoff = "5ms..40ms"))]
    async fn close(cx: &mut Tally, i: u32) -> Result<u64> {
        apply("close", i, 0).await?;
        Ok(cx.total)
    }
}

/// The frozen scenario's workflow: one slow state with a side effect.
#[flow::machine(name = "workers_slow")]
pub mod slow {
    use super::*;

    #[state(start, to(done), retry(attempts = 5, backoff = "5ms"))]
    async fn pay(_cx: &mut Tally, i: u32) -> Result<Pay> {
        let now = flow::current().ok_or_else(|| Error::permanent("outside a state"))?;
        let token = now.fencing_token.unwrap_or(0) as i64;
        ledger()?
            .execute(
                "INSERT INTO marks (run, token) VALUES ($1, $2)",
                &[&now.run.to_string(), &token],
            )
            .await
            .map_err(|error| Error::retryable(error.to_string()))?;
        tokio::time::sleep(FROZEN_WORK).await;
        apply("pay", i, 7).await?;
        goto!(done(i))
    }

    #[state(end)]
    async fn done(_cx: &mut Tally, i: u32) -> Result<u64> {
        Ok(u64::from(i) + 7)
    }
}

fn run_id(i: u32) -> RunId {
    RunId::from_u128(0x0077_0000_0000 + u128::from(i))
}

const SLOW: u32 = 9_999;

async fn connect(schema: &str) -> Result<Client, String> {
    let url = common::database_url();
    let (client, connection) =
        tokio_postgres::connect(&url, NoTls).await.map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(connection);
    client
        .batch_execute(&format!("SET search_path TO {schema}"))
        .await
        .map_err(|e| e.to_string())?;
    Ok(client)
}

async fn store(schema: &str) -> Result<PostgresStore, String> {
    PostgresStore::builder(common::database_url())
        .schema(schema)
        .connect()
        .await
        .map_err(|e| e.to_string())
}

async fn engine(schema: &str, seed: u64) -> Result<Engine, String> {
    Engine::builder()
        .store(store(schema).await?)
        .machine::<job::Machine>()
        .machine::<slow::Machine>()
        .max_concurrent_runs(CONCURRENCY)
        // As many takeovers per visit as the states have attempts: 30 kills may take one visit
        // over several times.
        .max_reassignments(12)
        .lease(LEASE)
        .poll_interval(POLL)
        .seed(seed)
        .build()
        .map_err(|e| e.to_string())
}

async fn start_or_follow<M: flow::Durable<Context = Tally>>(
    engine: &Engine,
    run: RunId,
    input: M::Input,
) -> Result<RunHandle<M>, String> {
    match engine.start_as::<M>(run, input, Tally::default()).await {
        Ok(handle) => Ok(handle),
        Err(EngineError::AlreadyExists { run }) => {
            engine.handle::<M>(run).await.map_err(|e| format!("run {run}: {e}"))
        }
        Err(error) => Err(format!("run {run}: {error}")),
    }
}

/// Records every write of this worker the store refused (its claim had moved on).
fn count_refusals(engine: &Engine, worker: i32) {
    let mut events = engine.events();
    tokio::spawn(async move {
        while let Some(event) = events.next().await {
            if let EventKind::LeaseLost { error } = &event.kind
                && let Ok(ledger) = ledger()
            {
                let _ = ledger
                    .execute(
                        "INSERT INTO refusals (run, worker, error) VALUES ($1, $2, $3)",
                        &[&event.run.to_string(), &worker, error],
                    )
                    .await;
            }
        }
    });
}

/// Delivers each approval, from whichever worker finds its run waiting first.
async fn approve_all(engine: Engine) {
    let mut pending: Vec<u32> = (0..WORKFLOWS).filter(|i| approved(*i)).collect();
    while !pending.is_empty() {
        let mut still = Vec::new();
        for i in pending {
            match engine.signal::<job::Machine, Bonus>(run_id(i), Bonus(bonus(i))).await {
                Ok(()) => {}
                // Delivered by another worker: the run is past its approval.
                Err(EngineError::NotWaiting { state: Some(state), .. })
                    if !["open", "debit", "approve"].contains(&state.as_str()) => {}
                Err(_) => still.push(i),
            }
        }
        pending = still;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A worker of the killed scenario: starts every workflow not started yet, delivers
/// approvals, and waits for every output, wherever the runs execute.
async fn killed_worker(schema: &str, seed: u64, worker: i32) -> Result<(), String> {
    let engine = engine(schema, seed).await?;
    count_refusals(&engine, worker);
    let mut handles = Vec::new();
    for i in 0..WORKFLOWS {
        handles.push((i, start_or_follow::<job::Machine>(&engine, run_id(i), i).await?));
    }
    let approvals = tokio::spawn(approve_all(engine.clone()));
    for (i, handle) in handles {
        let output = handle.output().await.map_err(|e| format!("workflow {i}: {e}"))?;
        if output != expected(i) {
            return Err(format!("workflow {i} ended with {output}, expected {}", expected(i)));
        }
    }
    approvals.await.map_err(|e| e.to_string())?;
    Ok(())
}

/// A worker of the frozen scenario: worker 0 starts the slow run; both follow it.
async fn frozen_worker(schema: &str, seed: u64, worker: i32) -> Result<(), String> {
    let engine = engine(schema, seed).await?;
    count_refusals(&engine, worker);
    let handle = if worker == 0 {
        start_or_follow::<slow::Machine>(&engine, run_id(SLOW), SLOW).await?
    } else {
        engine.handle::<slow::Machine>(run_id(SLOW)).await.map_err(|e| e.to_string())?
    };
    let output = handle.output().await.map_err(|e| e.to_string())?;
    if output != u64::from(SLOW) + 7 {
        return Err(format!("the slow workflow ended with {output}"));
    }
    // The frozen worker hears of its refusal when it resumes; give it that long.
    tokio::time::sleep(Duration::from_secs(2)).await;
    Ok(())
}

fn child(scenario: &str, schema: &str, seed: u64, worker: i32) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        LEDGER.set(connect(schema).await?).map_err(|_| "the ledger was opened twice")?;
        match scenario {
            "killed" => killed_worker(schema, seed, worker).await,
            _ => frozen_worker(schema, seed, worker).await,
        }
    })
}

fn spawn_child(scenario: &str, schema: &str, seed: u64, worker: usize) -> Result<Child, String> {
    let exe = std::env::current_exe().map_err(|e| format!("the test binary's path: {e}"))?;
    Command::new(exe)
        .env("FLOW_WORKERS_CHILD", format!("{scenario}:{schema}:{worker}"))
        .env("FLOW_WORKERS_SEED", seed.to_string())
        .spawn()
        .map_err(|e| format!("cannot start a worker: {e}"))
}

enum Death {
    Killed,
    Finished,
    Failed(ExitStatus),
}

fn death(status: ExitStatus) -> Death {
    const SIGKILL: i32 = 9;
    match status.signal() {
        Some(SIGKILL) => Death::Killed,
        _ if status.success() => Death::Finished,
        _ => Death::Failed(status),
    }
}

/// The worker processes of one scenario.
struct Workers {
    scenario: &'static str,
    schema: String,
    seed: u64,
    running: Vec<Child>,
    kills: u32,
}

impl Workers {
    fn start(
        scenario: &'static str,
        schema: &str,
        seed: u64,
        count: usize,
    ) -> Result<Workers, String> {
        let running =
            (0..count).map(|k| spawn_child(scenario, schema, seed, k)).collect::<Result<_, _>>()?;
        Ok(Workers { scenario, schema: schema.to_owned(), seed, running, kills: 0 })
    }

    fn finished(&mut self, k: usize) -> Result<bool, String> {
        let Some(status) = self.running[k].try_wait().map_err(|e| e.to_string())? else {
            return Ok(false);
        };
        match death(status) {
            Death::Finished => Ok(true),
            Death::Killed => Err("a worker was SIGKILLed by someone else".into()),
            Death::Failed(status) => Err(format!("a worker failed on its own: {status}")),
        }
    }

    fn kill(&mut self, k: usize) -> Result<(), String> {
        let child = &mut self.running[k];
        let _ = child.kill();
        match death(child.wait().map_err(|e| e.to_string())?) {
            Death::Killed => self.kills += 1,
            Death::Finished => {
                return Err(format!(
                    "the workload finished after only {} kills; make it longer",
                    self.kills
                ));
            }
            Death::Failed(status) => return Err(format!("a worker failed on its own: {status}")),
        }
        self.running[k] = spawn_child(self.scenario, &self.schema, self.seed, k)?;
        Ok(())
    }

    fn signal(&self, k: usize, signal: &str) -> Result<(), String> {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.running[k].id().to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if !status.success() {
            return Err(format!("kill -{signal} failed: {status}"));
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + FINISH_WITHIN;
        let mut pending: Vec<usize> = (0..self.running.len()).collect();
        while !pending.is_empty() {
            let mut still = Vec::new();
            for k in pending {
                if !self.finished(k)? {
                    still.push(k);
                }
            }
            pending = still;
            if Instant::now() > deadline {
                return Err(format!(
                    "the workers did not finish within {FINISH_WITHIN:?} after the last kill"
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Workers {
    fn drop(&mut self) {
        // A failed scenario leaves no process behind, frozen or not.
        for child in &mut self.running {
            let _ = Command::new("kill")
                .args(["-CONT", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A fresh schema for `scenario`, with the store's tables and the ledger's.
async fn prepare(scenario: &str) -> Result<String, String> {
    let name = format!("workers-{scenario}");
    // The store's tables, in a schema emptied of what an earlier run left.
    drop(common::postgres(&name).await);
    let schema = common::schema_for(&name);
    connect(&schema).await?.batch_execute(LEDGER_TABLES).await.map_err(|e| e.to_string())?;
    Ok(schema)
}

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

/// Scenario 1.
fn killed(seed: u64, rng: &mut fastrand::Rng) -> Result<String, String> {
    let began = Instant::now();
    let runtime = runtime()?;
    let schema = runtime.block_on(prepare("killed"))?;
    let mut workers = Workers::start("killed", &schema, seed, WORKERS)?;
    while workers.kills < KILLS {
        std::thread::sleep(Duration::from_millis(rng.u64(50..200)));
        for k in 0..WORKERS {
            if workers.finished(k)? {
                return Err(format!(
                    "the workload finished after only {} kills; make it longer",
                    workers.kills
                ));
            }
        }
        workers.kill(rng.usize(..WORKERS))?;
    }
    workers.finish()?;
    let kills = workers.kills;
    drop(workers);
    let summary = runtime.block_on(check_killed(&schema, seed))?;
    Ok(format!("{kills} kills, {summary}, {:.1?}", began.elapsed()))
}

/// Checks workflow `i`'s history against its path; returns its visits and how many attempts
/// were interrupted.
fn check_history(i: u32, history: &[Entry]) -> Result<(Vec<&'static str>, usize), String> {
    let path = path(i);
    let mut taken = 0;
    let mut state = "open";
    let mut attempt = 1;
    let mut visits = vec!["open"];
    let mut interrupted = 0;
    let at = |k: usize, entry: &Entry| format!("workflow {i}, history entry {k} ({entry})");
    for (k, entry) in history.iter().enumerate() {
        if entry.state != state || entry.attempt != attempt {
            return Err(format!("{}: expected attempt {attempt} of `{state}`", at(k, entry)));
        }
        match &entry.outcome {
            Outcome::Transitioned { to } => {
                if path.get(taken) != Some(&(state, *to)) {
                    return Err(format!(
                        "{}: transition {taken} should be {:?}",
                        at(k, entry),
                        path.get(taken)
                    ));
                }
                taken += 1;
                state = to;
                attempt = 1;
                visits.push(*to);
            }
            Outcome::Failed { failure, retry_in } => {
                let injected = matches!(failure, Failure::Error { message, permanent: false, .. }
                    if message.contains(LOST_ANSWER) && state == "debit" && attempt == 1);
                if *failure == Failure::Interrupted {
                    interrupted += 1;
                } else if !injected {
                    return Err(format!("{}: a failure this test does not cause", at(k, entry)));
                }
                if retry_in.is_none() {
                    return Err(format!("{}: the failed attempt was not retried", at(k, entry)));
                }
                attempt += 1;
            }
            Outcome::Completed if k + 1 == history.len() && taken == path.len() => {}
            _ => return Err(format!("{}: not what this workflow can do here", at(k, entry))),
        }
    }
    match history.last() {
        Some(Entry { outcome: Outcome::Completed, .. }) => Ok((visits, interrupted)),
        _ => Err(format!("workflow {i}: its history does not end with its completion")),
    }
}

async fn check_killed(schema: &str, seed: u64) -> Result<String, String> {
    let engine = engine(schema, seed).await?;
    let ledger = connect(schema).await?;
    let mut interrupted_total = 0;
    let mut effects_total = 0;
    for i in 0..WORKFLOWS {
        let run = run_id(i);
        let status = engine.status(run).await.map_err(|e| format!("workflow {i}: {e}"))?;
        if status.status != Status::Completed {
            return Err(format!("workflow {i} is {}, not completed", status.status));
        }
        let output = engine
            .handle::<job::Machine>(run)
            .await
            .map_err(|e| e.to_string())?
            .output()
            .await
            .map_err(|e| format!("workflow {i}: {e}"))?;
        if output != expected(i) {
            return Err(format!("workflow {i} ended with {output}, expected {}", expected(i)));
        }
        let (visits, interrupted) = check_history(i, &status.history)?;
        interrupted_total += interrupted;
        // One effect per visit of a state that makes one, with the visit's amount.
        let mut expected_effects = BTreeMap::new();
        let mut debits = 0;
        for state in visits.iter().filter(|state| !matches!(**state, "approve" | "settle")) {
            let amount = match *state {
                "debit" => {
                    debits += 1;
                    debit_amount(i, debits)
                }
                "credit" => u64::from(i),
                _ => 0,
            };
            *expected_effects.entry((state.to_string(), amount)).or_insert(0) += 1;
        }
        let rows = ledger
            .query("SELECT state, amount FROM effects WHERE workflow = $1", &[&i64::from(i)])
            .await
            .map_err(|e| e.to_string())?;
        let mut effects = BTreeMap::new();
        for row in &rows {
            let key = (row.get::<_, String>(0), row.get::<_, i64>(1) as u64);
            *effects.entry(key).or_insert(0) += 1;
        }
        if effects != expected_effects {
            return Err(format!(
                "workflow {i}: the ledger holds {effects:?}; its visits call for {expected_effects:?}"
            ));
        }
        effects_total += rows.len();
    }
    let count = |sql: &'static str| {
        let ledger = &ledger;
        async move {
            ledger
                .query_one(sql, &[])
                .await
                .map(|row| row.get::<_, i64>(0))
                .map_err(|e| e.to_string())
        }
    };
    let executions = count("SELECT count(*) FROM executions").await?;
    let fenced = count("SELECT count(*) FROM executions WHERE fenced").await?;
    let refusals = count("SELECT count(*) FROM refusals").await?;
    let by_token =
        count("SELECT count(*) FROM refusals WHERE error LIKE '%held by another claim%'").await?;
    Ok(format!(
        "{WORKFLOWS} workflows on {WORKERS} workers, {effects_total} effects from {executions} \
         executions ({fenced} fenced by token), {interrupted_total} attempts interrupted, \
         {refusals} checkpoints of workers that had lost their run refused ({by_token} for \
         their stale token, the others for a stale sequence number)"
    ))
}

/// Scenario 2.
fn frozen(seed: u64) -> Result<String, String> {
    let runtime = runtime()?;
    let schema = runtime.block_on(prepare("frozen"))?;
    let ledger = runtime.block_on(connect(&schema))?;
    let marks = || -> Result<Vec<i64>, String> {
        let rows = runtime
            .block_on(ledger.query("SELECT token FROM marks ORDER BY at", &[]))
            .map_err(|e| e.to_string())?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    };
    let wait_for = |what: &str, done: &dyn Fn() -> Result<bool, String>| -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !done()? {
            if Instant::now() > deadline {
                return Err(format!("timed out waiting until {what}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    };
    // Worker 0 alone starts the run and enters its slow state; then it is frozen.
    let mut workers = Workers::start("frozen", &schema, seed, 1)?;
    wait_for("worker 0 enters the slow state", &|| Ok(!marks()?.is_empty()))?;
    workers.signal(0, "STOP")?;
    let frozen_token = marks()?[0];
    // Worker 1 takes the run over once worker 0's lease lapses, and does the side effect.
    workers.running.push(spawn_child("frozen", &schema, seed, 1)?);
    let effect = || -> Result<Option<i64>, String> {
        let row = runtime
            .block_on(ledger.query_opt("SELECT token FROM effects", &[]))
            .map_err(|e| e.to_string())?;
        Ok(row.map(|row| row.get(0)))
    };
    wait_for("worker 1 applies the side effect", &|| Ok(effect()?.is_some()))?;
    let applied_token = effect()?.unwrap_or(0);
    workers.signal(0, "CONT")?;
    workers.finish()?;
    drop(workers);

    let count = |sql: &str| -> Result<i64, String> {
        runtime
            .block_on(ledger.query_one(sql, &[]))
            .map(|row| row.get(0))
            .map_err(|e| e.to_string())
    };
    let fenced = count("SELECT count(*) FROM executions WHERE fenced")?;
    let effects = count("SELECT count(*) FROM effects")?;
    let refusals = count("SELECT count(*) FROM refusals WHERE worker = 0")?;
    let refused = runtime
        .block_on(ledger.query_opt("SELECT error FROM refusals WHERE worker = 0", &[]))
        .map_err(|e| e.to_string())?
        .map(|row| row.get::<_, String>(0))
        .unwrap_or_default();
    if applied_token <= frozen_token {
        return Err(format!(
            "the side effect was applied under token {applied_token}, not above the frozen \
             worker's {frozen_token}"
        ));
    }
    if effects != 1 || fenced != 1 {
        return Err(format!(
            "expected one effect and one execution fenced by token, found {effects} and {fenced}"
        ));
    }
    if refusals < 1 {
        return Err("the frozen worker's checkpoint was not refused, or it did not say so".into());
    }
    // The run's history: one interrupted attempt of `pay` (the frozen one's), one transition.
    let history = runtime.block_on(async {
        let engine = engine(&schema, seed).await?;
        engine.status(run_id(SLOW)).await.map_err(|e| e.to_string())
    })?;
    let transitions = history
        .history
        .iter()
        .filter(|entry| matches!(entry.outcome, Outcome::Transitioned { .. }))
        .count();
    if history.status != Status::Completed || transitions != 1 {
        return Err(format!(
            "the slow run ended {} with {transitions} transitions",
            history.status
        ));
    }
    Ok(format!(
        "frozen past its lease: its side effect fenced (token {frozen_token} < {applied_token}), \
         {refusals} checkpoint write(s) refused: {refused}"
    ))
}

fn main() -> ExitCode {
    let seed = std::env::var("FLOW_WORKERS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(2026);
    if let Ok(spec) = std::env::var("FLOW_WORKERS_CHILD") {
        let mut parts = spec.splitn(3, ':');
        let (scenario, schema, worker) = (
            parts.next().unwrap_or_default().to_owned(),
            parts.next().unwrap_or_default().to_owned(),
            parts.next().and_then(|w| w.parse().ok()).unwrap_or(0),
        );
        return match child(&scenario, &schema, seed, worker) {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("worker {worker}: {error}");
                ExitCode::FAILURE
            }
        };
    }
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).collect();
    if std::env::args().any(|a| a == "--list") {
        println!("workers_killed: test\nworkers_frozen: test");
        return ExitCode::SUCCESS;
    }
    let wanted = |name: &str| args.is_empty() || args.iter().any(|f| name.contains(f.as_str()));
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut failed = false;
    println!("running the workers tests, seed {seed} (replay: FLOW_WORKERS_SEED={seed})");
    for name in ["workers_frozen", "workers_killed"] {
        if !wanted(name) {
            continue;
        }
        let outcome = match name {
            "workers_frozen" => frozen(seed),
            _ => killed(seed, &mut rng),
        };
        match outcome {
            Ok(summary) => println!("test {name} ... ok ({summary})"),
            Err(error) => {
                println!("test {name} ... FAILED\n{error}\n(seed {seed})");
                failed = true;
            }
        }
    }
    if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS }
}
