//! Running a machine in memory, from input to output.
//!
//! `module::run(input, &mut cx)`, generated for every machine, is `Runner::new().run(..)`; build a
//! [`Runner`] yourself to fix the backoff jitter's seed or to change `max_steps`. The
//! [`Machine`](crate::Machine) docs show a complete run.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use thiserror::Error;
use tokio::time::Instant;

use crate::history::{Caught, Entry, Failure, Outcome};
use std::sync::Arc;

use tracing::Instrument;

use crate::event::{EventKind, Reporter};
use crate::id::{Attempt, Cancel, Current, Delivery, Halt, RunId};
use crate::{Graph, Machine, OnFailure, Step};

/// Runs machines in memory: no store, no engine. Cheap to build; reusable.
#[derive(Debug, Clone, Default)]
pub struct Runner {
    seed: Option<u64>,
    max_steps: Option<u64>,
}

/// A finished run: the end state's output and every attempt on the way.
#[derive(Debug, Clone)]
pub struct Finished<O> {
    /// What the end state returned.
    pub output: O,
    /// One entry per state attempt, in order.
    pub history: Vec<Entry>,
}

/// Why a run failed. Each variant carries the history up to the failure.
///
/// Serialized without its history (a durable run's checkpoints hold that already).
#[derive(Debug, Clone, Error, Serialize, Deserialize)]
pub enum RunError {
    /// A state failed on its last allowed attempt, or with a permanent error.
    #[error("state `{state}` failed after {} attempt(s); last: {}", .attempts.len(), last(.attempts))]
    StateFailed {
        /// The state that failed.
        #[serde(deserialize_with = "crate::history::name")]
        state: crate::history::Name,
        /// Every attempt's failure, in order.
        attempts: Vec<Failure>,
        /// The run's history, the failed attempts included.
        #[serde(skip)]
        history: Vec<Entry>,
    },
    /// A state waits for a signal, which only an [`Engine`](crate::Engine) delivers, and has no
    /// timeout to go on without one.
    #[error(
        "state `{state}` waits for a signal, and only an Engine delivers signals; run this \
         machine on an Engine, or give the wait a timeout: signal(timeout = \"...\", default = ...)"
    )]
    NoSignal {
        /// The waiting state.
        #[serde(deserialize_with = "crate::history::name")]
        state: crate::history::Name,
        /// The run's history up to the wait.
        #[serde(skip)]
        history: Vec<Entry>,
    },
    /// A state was entered more often than its `max_visits` allows.
    #[error(
        "state `{state}` was entered more than {limit} times (its max_visits); \
         make the loop reach an exit sooner, or raise max_visits in its #[state(...)]"
    )]
    MaxVisits {
        /// The state.
        #[serde(deserialize_with = "crate::history::name")]
        state: crate::history::Name,
        /// Its `max_visits`.
        limit: u32,
        /// The run's history up to the refused visit.
        #[serde(skip)]
        history: Vec<Entry>,
    },
    /// The run entered more states than its `max_steps` allows without ending.
    #[error(
        "the run entered {limit} states without reaching an end (max_steps), and was stopped \
         before entering `{state}`; check for a loop that never exits, or raise max_steps in \
         #[flow::machine(...)] or with Runner::max_steps"
    )]
    MaxSteps {
        /// The state the run was about to enter.
        #[serde(deserialize_with = "crate::history::name")]
        state: crate::history::Name,
        /// The `max_steps` in force.
        limit: u64,
        /// The run's history.
        #[serde(skip)]
        history: Vec<Entry>,
    },
    /// The run failed, and the compensations of the states it had completed ran, newest
    /// first. The cause names the failed state; `failed` names each compensation that failed
    /// too (the others still ran).
    #[error("{cause}; rollback: {}", rolled_back(.undone, .failed))]
    RolledBack {
        /// Why the run failed.
        cause: Box<RunError>,
        /// The states whose compensation ran, in the order they ran.
        #[serde(deserialize_with = "crate::history::names")]
        undone: Vec<crate::history::Name>,
        /// The compensations that failed, in the order they ran.
        failed: Vec<FailedCompensation>,
        /// The run's history, the compensations included.
        #[serde(skip)]
        history: Vec<Entry>,
    },
}

/// A compensation that failed during a rollback: [`RunError::RolledBack`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FailedCompensation {
    /// The state whose compensation it is.
    #[serde(deserialize_with = "crate::history::name")]
    pub state: crate::history::Name,
    /// Every attempt's failure, in order.
    pub attempts: Vec<Failure>,
}

/// `undid `hold`, `reserve`; the compensation of `charge` failed after 2 attempt(s); last: …`.
fn rolled_back(undone: &[&str], failed: &[FailedCompensation]) -> String {
    let mut parts = Vec::new();
    if !undone.is_empty() {
        let names: Vec<String> = undone.iter().map(|name| format!("`{name}`")).collect();
        parts.push(format!("undid {}", names.join(", ")));
    }
    for failure in failed {
        parts.push(format!(
            "the compensation of `{}` failed after {} attempt(s); last: {}",
            failure.state,
            failure.attempts.len(),
            last(&failure.attempts)
        ));
    }
    parts.join("; ")
}

fn last(attempts: &[Failure]) -> String {
    attempts.last().map(ToString::to_string).unwrap_or_default()
}

impl RunError {
    /// The run's history up to the failure.
    pub fn history(&self) -> &[Entry] {
        match self {
            RunError::StateFailed { history, .. }
            | RunError::MaxVisits { history, .. }
            | RunError::MaxSteps { history, .. }
            | RunError::NoSignal { history, .. }
            | RunError::RolledBack { history, .. } => history,
        }
    }

    /// What failed the run: the error itself, or for [`RunError::RolledBack`] its cause.
    pub fn cause(&self) -> &RunError {
        match self {
            RunError::RolledBack { cause, .. } => cause.cause(),
            other => other,
        }
    }

    /// The state the run failed in (or was refused entry to, for a loop guard).
    pub fn state(&self) -> &'static str {
        match self {
            RunError::StateFailed { state, .. }
            | RunError::MaxVisits { state, .. }
            | RunError::MaxSteps { state, .. }
            | RunError::NoSignal { state, .. } => state,
            RunError::RolledBack { cause, .. } => cause.state(),
        }
    }

    pub(crate) fn with_history(mut self, entries: Vec<Entry>) -> RunError {
        match &mut self {
            RunError::StateFailed { history, .. }
            | RunError::MaxVisits { history, .. }
            | RunError::MaxSteps { history, .. }
            | RunError::NoSignal { history, .. }
            | RunError::RolledBack { history, .. } => *history = entries,
        }
        self
    }
}

impl Runner {
    /// A runner with a random jitter seed and each machine's own `max_steps`.
    pub fn new() -> Self {
        Runner::default()
    }

    /// Seeds the backoff jitter, so the delays of a run can be reproduced exactly.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Overrides the machine's `max_steps` for the runs of this runner.
    pub fn max_steps(mut self, max_steps: u64) -> Self {
        self.max_steps = Some(max_steps);
        self
    }

    /// Runs `M` from its start state with `input` to an end state.
    pub async fn run<M: Machine>(
        &self,
        input: M::Input,
        cx: &mut M::Context,
    ) -> Result<Finished<M::Output>, RunError> {
        self.run_from::<M>(M::start(input), cx).await
    }

    /// Runs `M` from `state`, any state of the machine, to an end state.
    pub async fn run_from<M: Machine>(
        &self,
        state: M::State,
        cx: &mut M::Context,
    ) -> Result<Finished<M::Output>, RunError> {
        let max_steps = self.max_steps.unwrap_or(M::graph().max_steps);
        let mut cursor = Cursor::new(M::graph());
        let mut journal = InMemory { run: RunId::random(), base: Instant::now() };
        let mut jitter = Jitter::new(self.seed);
        let ended = match cursor.enter::<M>(&state, max_steps) {
            Ok(()) => {
                arrive::<M, _>(&state, &mut cursor, &journal);
                drive::<M, _>(state, &mut cursor, cx, &mut journal, &mut jitter, max_steps).await
            }
            Err(error) => Ok(End::Failed(error)),
        };
        let history = std::mem::take(&mut cursor.history);
        match ended {
            Ok(End::Done(output)) => Ok(Finished { output, history }),
            Ok(End::Failed(error)) => Err(error.with_history(history)),
            // Nothing cancels or pauses an in-memory run.
            Ok(End::Cancelled | End::Paused(_)) => unreachable!("an in-memory run was halted"),
            Err(never) => match never {},
        }
    }
}

/// Where a run stands between attempts: what a checkpoint holds besides the state and context.
#[derive(Debug, Clone)]
pub(crate) struct Cursor<S> {
    /// The attempt of the current visit to run next.
    pub attempt: u32,
    /// The sequence number of the last checkpoint (in memory: of the last one there would be).
    pub seq: u64,
    /// The sequence number that entered the current visit: the idempotency key's half.
    pub visit: u64,
    /// Visits per state, by index in the graph, the current one counted.
    pub visits: Vec<u32>,
    /// States entered, the current one counted.
    pub steps: u64,
    /// While a retry backs off: when it is due, in Unix milliseconds.
    pub wake_at: Option<u64>,
    /// Every attempt so far.
    pub history: Vec<Entry>,
    /// The completed visits of states with a compensation, oldest first: what a failure undoes.
    pub undo: Vec<Done<S>>,
    /// While the run rolls back after a failure: why, and how far it got.
    pub rollback: Option<Rollback>,
}

impl<S> Cursor<S> {
    pub(crate) fn new(graph: &Graph) -> Cursor<S> {
        Cursor {
            attempt: 1,
            seq: 0,
            visit: 0,
            visits: vec![0; graph.states.len()],
            steps: 0,
            wake_at: None,
            history: Vec::with_capacity(graph.states.len()),
            undo: Vec::new(),
            rollback: None,
        }
    }

    /// Counts the run's entering `state`, or refuses it when a loop guard says so.
    pub(crate) fn enter<M: Machine<State = S>>(
        &mut self,
        state: &S,
        max_steps: u64,
    ) -> Result<(), RunError> {
        let index = M::index(state);
        let info = &M::graph().states[index];
        if self.steps == max_steps {
            return Err(RunError::MaxSteps {
                state: info.name,
                limit: max_steps,
                history: Vec::new(),
            });
        }
        self.steps += 1;
        self.visits[index] += 1;
        if let Some(limit) = info.policy.max_visits
            && self.visits[index] > limit
        {
            return Err(RunError::MaxVisits { state: info.name, limit, history: Vec::new() });
        }
        self.attempt = 1;
        self.visit = self.seq;
        Ok(())
    }
}

/// A completed visit of a state with a compensation: what a rollback would undo.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Done<S> {
    /// The state, with the payload it was entered with.
    pub state: S,
    /// The visit, for the compensation's idempotency key.
    pub visit: u64,
}

/// A rollback under way: why the run failed, and what the compensations have done so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Rollback {
    pub cause: RunError,
    #[serde(deserialize_with = "crate::history::names")]
    pub undone: Vec<crate::history::Name>,
    pub failed: Vec<FailedCompensation>,
}

/// How a run ended, as far as the run loop is concerned.
pub(crate) enum End<O> {
    Done(O),
    /// The error's history is left empty: the cursor holds it.
    Failed(RunError),
    /// The run was asked to stop, and did at a safe point.
    Cancelled,
    /// The run was asked to hold, and did at a safe point, or its state failed with
    /// `on_failure = pause` (the error says how); it resumes later.
    Paused(Option<RunError>),
}

/// How a wait for a signal ended.
pub(crate) enum Waited {
    /// The signal came, with whom to tell once it is checkpointed.
    Signal(Delivery),
    /// The timeout passed.
    TimedOut,
    /// The run was asked to stop.
    Halted,
    /// Nothing can deliver a signal (in memory), and no timeout ends the wait.
    Unavailable,
}

/// What the run loop tells whoever keeps the run: the in-memory runner (nothing to keep) or
/// the engine (a checkpoint each time).
pub(crate) trait Journal<M: Machine> {
    /// Why the journal stopped the run (a store failure, a lost compare-and-set).
    type Stop;

    /// Whether a state's payload must outlive its last attempt (to be checkpointed).
    const KEEPS_STATE: bool;

    /// Whether a paused run can be resumed: a state with `on_failure = pause` pauses only then.
    const CAN_PAUSE: bool;

    /// The run's id, for [`crate::current`].
    fn run(&self) -> RunId;

    /// The run moved on: to `state` (the cursor's `seq` already advanced), or to its end.
    /// The run goes no further until this returns.
    ///
    /// Implementations read what they keep before returning the future, which then holds
    /// none of the references: states and contexts need not be `Sync`.
    fn record(
        &mut self,
        state: Option<&M::State>,
        cursor: &Cursor<M::State>,
        cx: &M::Context,
        end: Option<&End<M::Output>>,
    ) -> impl Future<Output = Result<(), Self::Stop>> + Send;

    /// Waits `delay` before the cursor's next attempt; a durable journal first records when
    /// the wait ends, so a restart waits only the rest.
    fn backoff(
        &mut self,
        state: &M::State,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
        delay: Duration,
    ) -> impl Future<Output = Result<(), Self::Stop>> + Send;

    /// Waits until `cursor.wake_at`: the rest of a backoff a restored run was in, or a state's
    /// `wait`. Returns early if the run is cancelled.
    fn resume_backoff(&mut self, cursor: &mut Cursor<M::State>) -> impl Future<Output = ()> + Send;

    /// The wake-up time `delay` from now, in the journal's clock (Unix milliseconds for a
    /// durable run).
    fn wake_at(&self, delay: Duration) -> u64;

    /// Whether the run was asked to stop, and how.
    fn halt(&self) -> Option<Halt>;

    /// Waits for the signal `state` waits for, until `cursor.wake_at` if set.
    fn wait_signal(
        &mut self,
        state: &'static str,
        cursor: &Cursor<M::State>,
    ) -> impl Future<Output = Waited> + Send;

    /// Tells subscribers, if any, what happened in `state`; `kind` is built only for them.
    fn event(&self, state: &'static str, kind: impl FnOnce() -> EventKind);

    /// Where an attempt of `state` reports progress and learns of cancellation.
    fn attempt_scope(&self, state: &'static str) -> (Option<Reporter>, Option<Arc<Cancel>>);

    /// Whether attempt `attempt` of `state` is to fail without running ([`Faults`]).
    ///
    /// [`Faults`]: crate::testing::Faults
    fn injected(&self, state: &'static str, attempt: u32) -> bool {
        let _ = (state, attempt);
        false
    }
}

/// The journal of [`Runner`]: nothing is kept, backoffs are plain sleeps.
struct InMemory {
    run: RunId,
    /// Wake-up times are milliseconds since this instant.
    base: Instant,
}

impl<M: Machine> Journal<M> for InMemory {
    type Stop = std::convert::Infallible;
    const KEEPS_STATE: bool = false;
    const CAN_PAUSE: bool = false;

    fn run(&self) -> RunId {
        self.run
    }

    fn record(
        &mut self,
        _: Option<&M::State>,
        _: &Cursor<M::State>,
        _: &M::Context,
        _: Option<&End<M::Output>>,
    ) -> impl Future<Output = Result<(), Self::Stop>> + Send {
        std::future::ready(Ok(()))
    }

    fn backoff(
        &mut self,
        _: &M::State,
        _: &mut Cursor<M::State>,
        _: &M::Context,
        delay: Duration,
    ) -> impl Future<Output = Result<(), Self::Stop>> + Send {
        // Not an `async fn`: its future would hold the references, which would then need Sync.
        let sleep = tokio::time::sleep(delay);
        async move {
            sleep.await;
            Ok(())
        }
    }

    fn resume_backoff(&mut self, cursor: &mut Cursor<M::State>) -> impl Future<Output = ()> + Send {
        let wake = self.base + Duration::from_millis(cursor.wake_at.unwrap_or(0));
        tokio::time::sleep_until(wake)
    }

    fn wake_at(&self, delay: Duration) -> u64 {
        let at = (Instant::now() - self.base) + delay;
        u64::try_from(at.as_millis()).unwrap_or(u64::MAX)
    }

    fn halt(&self) -> Option<Halt> {
        None
    }

    fn wait_signal(
        &mut self,
        _: &'static str,
        cursor: &Cursor<M::State>,
    ) -> impl Future<Output = Waited> + Send {
        // Nothing delivers signals in memory: only a timeout ends the wait.
        let wake = cursor.wake_at.map(|ms| self.base + Duration::from_millis(ms));
        async move {
            match wake {
                Some(wake) => {
                    tokio::time::sleep_until(wake).await;
                    Waited::TimedOut
                }
                None => Waited::Unavailable,
            }
        }
    }

    fn event(&self, _: &'static str, _: impl FnOnce() -> EventKind) {}

    fn attempt_scope(&self, _: &'static str) -> (Option<Reporter>, Option<Arc<Cancel>>) {
        (None, None)
    }
}

/// The backoff jitter's random source, created on first use.
pub(crate) struct Jitter {
    seed: Option<u64>,
    rng: Option<fastrand::Rng>,
}

impl Jitter {
    pub(crate) fn new(seed: Option<u64>) -> Jitter {
        Jitter { seed, rng: None }
    }

    fn rng(&mut self) -> &mut fastrand::Rng {
        let seed = self.seed;
        self.rng
            .get_or_insert_with(|| seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed))
    }
}

/// Runs a machine from `state` (already entered, as the cursor says) to its end: attempts,
/// backoffs, transitions, each told to the journal before the run moves on.
pub(crate) async fn drive<M: Machine, J: Journal<M>>(
    mut state: M::State,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut Jitter,
    max_steps: u64,
) -> Result<End<M::Output>, J::Stop> {
    let graph = M::graph();
    // A run restored in the middle of a rollback finishes it before anything else.
    if let Some(rollback) = cursor.rollback.clone() {
        return Box::pin(roll_back::<M, J>(Some(state), rollback, cursor, cx, journal, jitter))
            .await;
    }
    // A restored run waiting for a signal keeps its deadline for the wait below.
    if cursor.wake_at.is_some() && !M::waits_for_signal(&state) {
        journal.resume_backoff(cursor).await;
        cursor.wake_at = None;
    }
    // Each attempt ends when it is measured; the next starts then, unless a backoff intervened.
    let mut clock = Instant::now();
    loop {
        let index = M::index(&state);
        let info = &graph.states[index];
        let retry = &info.policy.retry;
        let attempt = cursor.attempt;
        if let Some(halt) = journal.halt() {
            // A checkpoint of its own: no attempt precedes it.
            cursor.seq += 1;
            let end = match halt {
                Halt::Pause => End::Paused(None),
                Halt::Cancel => End::Cancelled,
            };
            journal.record(Some(&state), cursor, cx, Some(&end)).await?;
            return Ok(announce(journal, info.name, end));
        }
        if M::waits_for_signal(&state) {
            let signal = info.signal.map_or("signal", |signal| signal.ty);
            journal.event(info.name, || EventKind::WaitingForSignal { signal });
            match journal.wait_signal(info.name, cursor).await {
                Waited::Signal((value, answer)) => {
                    if let Err(error) = M::deliver_signal(&mut state, value) {
                        let _ = answer.send(Err(format!("the signal does not read back: {error}")));
                        continue;
                    }
                    cursor.seq += 1;
                    cursor.wake_at = None;
                    let recorded = journal.record(Some(&state), cursor, cx, None).await;
                    let _ = answer.send(recorded.as_ref().map(|_| ()).map_err(|_| {
                        "the run could not checkpoint the signal; it stopped".to_owned()
                    }));
                    recorded?;
                    journal.event(info.name, || EventKind::SignalReceived);
                    clock = Instant::now();
                }
                Waited::TimedOut => {
                    cursor.wake_at = None;
                    let Some(next) = M::signal_timeout(state.clone()) else {
                        // A deadline without a default is not generated; wait on.
                        continue;
                    };
                    cursor.seq += 1;
                    let no_signal = |to| Outcome::NoSignal { to };
                    let entered = reroute::<M, J>(
                        info.name, attempt, next, no_signal, cursor, cx, journal, jitter, max_steps,
                    );
                    state = match entered.await? {
                        Ok(next) => next,
                        Err(end) => return Ok(end),
                    };
                    clock = Instant::now();
                    continue;
                }
                Waited::Halted => continue,
                Waited::Unavailable => {
                    let error = RunError::NoSignal { state: info.name, history: Vec::new() };
                    cursor.seq += 1;
                    return Box::pin(fail::<M, J>(Some(state), error, cursor, cx, journal, jitter))
                        .await;
                }
            }
        }
        journal.event(info.name, || EventKind::Entered { attempt });
        // The in-memory runner moves the payload straight into a state's last attempt; a
        // durable run keeps it for the failure's checkpoint, and a state with a compensation
        // for its rollback.
        let keep = J::KEEPS_STATE || attempt < retry.attempts || info.compensate.is_some();
        let (this_try, kept) = if keep { (state.clone(), Some(state)) } else { (state, None) };
        let (scope, span) = scoped::<M, J>(journal, info.name, cursor.visit, attempt, false);
        let started = clock;
        let result = if journal.injected(info.name, attempt) {
            drop(this_try);
            let message = crate::testing::INJECTED.to_owned();
            Err(Failure::Error { message, permanent: false })
        } else {
            let body = guarded(M::step(this_try, cx), info.policy.timeout);
            scope.scope(body).instrument(span).await
        };
        clock = Instant::now();
        let duration = clock - started;
        let failure = match result {
            Ok(Step::Next(next)) => {
                let to = graph.states[M::index(&next)].name;
                let outcome = Outcome::Transitioned { to };
                cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
                journal.event(info.name, || EventKind::Transitioned { to });
                if info.compensate.is_some()
                    && let Some(state) = kept
                {
                    cursor.undo.push(Done { state, visit: cursor.visit });
                }
                // `reroute`'s steps, written out: on this path, the hot one, an extra async
                // layer cost about a tenth of a trivial transition (`cargo bench --bench transitions`).
                cursor.seq += 1;
                if let Err(error) = cursor.enter::<M>(&next, max_steps) {
                    return Box::pin(fail::<M, J>(Some(next), error, cursor, cx, journal, jitter))
                        .await;
                }
                arrive::<M, J>(&next, cursor, journal);
                journal.record(Some(&next), cursor, cx, None).await?;
                if cursor.wake_at.is_some() && !M::waits_for_signal(&next) {
                    journal.resume_backoff(cursor).await;
                    cursor.wake_at = None;
                    clock = Instant::now();
                }
                state = next;
                continue;
            }
            Ok(Step::Done(output)) => {
                let outcome = Outcome::Completed;
                cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
                cursor.seq += 1;
                let end = End::Done(output);
                journal.record(kept.as_ref(), cursor, cx, Some(&end)).await?;
                return Ok(announce(journal, info.name, end));
            }
            Err(failure) => failure,
        };
        let cancelled = journal.halt() == Some(Halt::Cancel);
        let retry_in = match kept {
            Some(_) if attempt < retry.attempts && !failure.is_permanent() && !cancelled => {
                Some(retry.backoff.delay(attempt, jitter.rng()))
            }
            _ => None,
        };
        journal.event(info.name, || EventKind::AttemptFailed {
            attempt,
            failure: failure.clone(),
            retry_in,
        });
        let outcome = Outcome::Failed { failure, retry_in };
        cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
        cursor.seq += 1;
        match (retry_in, kept) {
            (Some(delay), Some(kept)) => {
                cursor.attempt += 1;
                journal.backoff(&kept, cursor, cx, delay).await?;
                cursor.wake_at = None;
                clock = Instant::now();
                state = kept;
            }
            (_, kept) if cancelled => {
                let end = End::Cancelled;
                journal.record(kept.as_ref(), cursor, cx, Some(&end)).await?;
                return Ok(announce(journal, info.name, end));
            }
            (_, kept) => {
                let attempts: Vec<Failure> = cursor.history
                    [cursor.history.len() - attempt as usize..]
                    .iter()
                    .filter_map(|entry| match &entry.outcome {
                        Outcome::Failed { failure, .. } => Some(failure.clone()),
                        _ => None,
                    })
                    .collect();
                match info.policy.on_failure {
                    OnFailure::Fallback(_) => {
                        let caught =
                            Caught { state: info.name.to_owned(), attempts: attempts.clone() };
                        if let Some(next) = M::fallback(index, caught) {
                            let caught = |to| Outcome::Caught { to };
                            let entered = reroute::<M, J>(
                                info.name, attempt, next, caught, cursor, cx, journal, jitter,
                                max_steps,
                            );
                            state = match entered.await? {
                                Ok(next) => next,
                                Err(end) => return Ok(end),
                            };
                            clock = Instant::now();
                            continue;
                        }
                    }
                    OnFailure::Pause if J::CAN_PAUSE => {
                        // Resumed by an operator, the visit starts over with all its attempts.
                        cursor.attempt = 1;
                        let error = RunError::StateFailed {
                            state: info.name,
                            attempts,
                            history: Vec::new(),
                        };
                        let end = End::Paused(Some(error));
                        journal.record(kept.as_ref(), cursor, cx, Some(&end)).await?;
                        return Ok(announce(journal, info.name, end));
                    }
                    OnFailure::Pause | OnFailure::Fail => {}
                }
                let error =
                    RunError::StateFailed { state: info.name, attempts, history: Vec::new() };
                return Box::pin(fail::<M, J>(kept, error, cursor, cx, journal, jitter)).await;
            }
        }
    }
}

/// What one attempt of `state`'s body, or of its compensation, runs in: the task-local scope
/// [`crate::current`] reads, and a `tracing` span.
fn scoped<M: Machine, J: Journal<M>>(
    journal: &J,
    state: &'static str,
    visit: u64,
    attempt: u32,
    compensating: bool,
) -> (Attempt, tracing::Span) {
    let (reporter, cancel) = journal.attempt_scope(state);
    let run = journal.run();
    let current = Current { run, state, visit, attempt, compensating };
    let span = tracing::info_span!(
        "attempt",
        run = %run,
        machine = M::NAME,
        state,
        attempt,
        compensating,
    );
    (Attempt { current, reporter, cancel }, span)
}

/// Takes the run from `from` to `next` without an attempt of `next`'s predecessor to show for
/// it (a signal's default, a fallback): records `outcome` for `from`, enters `next` (the
/// cursor's `seq` already advanced), checkpoints, and waits out its `wait`. `Err` is how the
/// run ended instead, when a loop guard refused the visit.
///
/// Takes the state by value: a reference held across the awaits would need it to be `Sync`.
#[allow(clippy::too_many_arguments)] // the run loop's state, passed through
async fn reroute<M: Machine, J: Journal<M>>(
    from: &'static str,
    attempt: u32,
    next: M::State,
    outcome: fn(&'static str) -> Outcome,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut Jitter,
    max_steps: u64,
) -> Result<Result<M::State, End<M::Output>>, J::Stop> {
    let to = M::graph().states[M::index(&next)].name;
    let (outcome, duration) = (outcome(to), Duration::ZERO);
    cursor.history.push(Entry { state: from, attempt, outcome, duration });
    journal.event(from, || EventKind::Transitioned { to });
    if let Err(error) = cursor.enter::<M>(&next, max_steps) {
        let failed = Box::pin(fail::<M, J>(Some(next), error, cursor, cx, journal, jitter));
        return Ok(Err(failed.await?));
    }
    arrive::<M, J>(&next, cursor, journal);
    journal.record(Some(&next), cursor, cx, None).await?;
    if cursor.wake_at.is_some() && !M::waits_for_signal(&next) {
        journal.resume_backoff(cursor).await;
        cursor.wake_at = None;
    }
    Ok(Ok(next))
}

/// Ends the run with `error` (the cursor's `seq` already advanced), after rolling back the
/// completed states that have a compensation.
async fn fail<M: Machine, J: Journal<M>>(
    state: Option<M::State>,
    error: RunError,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut Jitter,
) -> Result<End<M::Output>, J::Stop> {
    if cursor.undo.is_empty() {
        let at = error.state();
        let end = End::Failed(error);
        journal.record(state.as_ref(), cursor, cx, Some(&end)).await?;
        return Ok(announce(journal, at, end));
    }
    let rollback = Rollback { cause: error, undone: Vec::new(), failed: Vec::new() };
    // Checkpointed before the first compensation runs: a crash from here on resumes the
    // rollback, not the failed state.
    cursor.rollback = Some(rollback.clone());
    journal.record(state.as_ref(), cursor, cx, None).await?;
    roll_back::<M, J>(state, rollback, cursor, cx, journal, jitter).await
}

/// Runs the compensations still to run, newest first, each with its state's retries and
/// timeout, a checkpoint after each; then fails the run with [`RunError::RolledBack`].
///
/// A failed compensation is recorded and the rollback goes on. Cancelling or pausing does
/// not interrupt a rollback. A crash does: the compensation that was running runs again
/// (under the same idempotency key).
async fn roll_back<M: Machine, J: Journal<M>>(
    state: Option<M::State>,
    mut rollback: Rollback,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut Jitter,
) -> Result<End<M::Output>, J::Stop> {
    let graph = M::graph();
    while let Some(done) = cursor.undo.last() {
        let (undo, visit) = (done.state.clone(), done.visit);
        let info = &graph.states[M::index(&undo)];
        let retry = &info.policy.retry;
        let mut failures = Vec::new();
        let mut compensated = false;
        for attempt in 1..=retry.attempts {
            journal.event(info.name, || EventKind::Compensating { attempt });
            let (scope, span) = scoped::<M, J>(journal, info.name, visit, attempt, true);
            let started = Instant::now();
            let body = guarded(M::compensate(undo.clone(), cx), info.policy.timeout);
            let result = scope.scope(body).instrument(span).await;
            let duration = started.elapsed();
            let failure = match result {
                Ok(()) => {
                    let outcome = Outcome::Compensated;
                    cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
                    journal.event(info.name, || EventKind::Compensated);
                    compensated = true;
                    break;
                }
                Err(failure) => failure,
            };
            let retry_in = (attempt < retry.attempts && !failure.is_permanent())
                .then(|| retry.backoff.delay(attempt, jitter.rng()));
            journal.event(info.name, || EventKind::CompensationFailed {
                attempt,
                failure: failure.clone(),
                retry_in,
            });
            let outcome = Outcome::CompensationFailed { failure: failure.clone(), retry_in };
            cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
            failures.push(failure);
            match retry_in {
                Some(delay) => tokio::time::sleep(delay).await,
                None => break,
            }
        }
        cursor.undo.pop();
        if compensated {
            rollback.undone.push(info.name);
        } else {
            rollback.failed.push(FailedCompensation { state: info.name, attempts: failures });
        }
        cursor.seq += 1;
        cursor.rollback = Some(rollback.clone());
        journal.record(state.as_ref(), cursor, cx, None).await?;
    }
    cursor.rollback = None;
    let at = rollback.cause.state();
    let error = RunError::RolledBack {
        cause: Box::new(rollback.cause),
        undone: rollback.undone,
        failed: rollback.failed,
        history: Vec::new(),
    };
    cursor.seq += 1;
    let end = End::Failed(error);
    journal.record(state.as_ref(), cursor, cx, Some(&end)).await?;
    Ok(announce(journal, at, end))
}

/// Sets the deadline a state just entered keeps in its checkpoint: the end of its `wait`, or
/// of its wait for a signal.
pub(crate) fn arrive<M: Machine, J: Journal<M>>(
    state: &M::State,
    cursor: &mut Cursor<M::State>,
    journal: &J,
) {
    let info = &M::graph().states[M::index(state)];
    let signal =
        info.signal.and_then(|signal| signal.timeout).filter(|_| M::waits_for_signal(state));
    cursor.wake_at = info.policy.wait.or(signal).map(|delay| journal.wake_at(delay));
}

/// Tells subscribers how the run ended (after its last checkpoint), and returns the end.
fn announce<M: Machine, J: Journal<M>>(
    journal: &J,
    state: &'static str,
    end: End<M::Output>,
) -> End<M::Output> {
    journal.event(state, || match &end {
        End::Done(_) => EventKind::Completed,
        End::Failed(error) => EventKind::Failed { error: error.to_string() },
        End::Cancelled => EventKind::Cancelled,
        End::Paused(_) => EventKind::Paused,
    });
    end
}

/// One attempt of a state body or a compensation, with its timeout, a panic caught as a
/// failure.
async fn guarded<T>(
    body: impl Future<Output = crate::Result<T>>,
    timeout: Option<Duration>,
) -> Result<T, Failure> {
    let guarded = catching_panics(body);
    let result = match timeout {
        Some(after) => match tokio::time::timeout(after, guarded).await {
            Ok(result) => result,
            Err(_) => return Err(Failure::TimedOut { after }),
        },
        None => guarded.await,
    };
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => {
            Err(Failure::Error { message: error.message(), permanent: error.is_permanent() })
        }
        Err(panic) => Err(Failure::Panicked { message: panic_message(&*panic) }),
    }
}

/// Polls `future`, turning a panic during any poll into `Err(payload)`.
///
/// The state's future is dropped after a panic and its context may be left half-updated; the
/// next attempt sees it as the panicking attempt left it, as it would after an error.
async fn catching_panics<F: Future>(future: F) -> Result<F::Output, Box<dyn Any + Send>> {
    let mut future = pin!(future);
    poll_fn(move |task| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(task))) {
        Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(panic) => Poll::Ready(Err(panic)),
    })
    .await
}

fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
