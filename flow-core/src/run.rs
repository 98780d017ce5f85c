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

use crate::history::{Entry, Failure, Outcome};
use std::sync::Arc;

use tracing::Instrument;

use crate::event::{EventKind, Reporter};
use crate::id::{Attempt, Cancel, Current, Delivery, Halt, RunId};
use crate::{Graph, Machine, Step};

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
            | RunError::NoSignal { history, .. } => history,
        }
    }

    pub(crate) fn with_history(mut self, entries: Vec<Entry>) -> RunError {
        match &mut self {
            RunError::StateFailed { history, .. }
            | RunError::MaxVisits { history, .. }
            | RunError::MaxSteps { history, .. }
            | RunError::NoSignal { history, .. } => *history = entries,
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
            Ok(End::Cancelled | End::Paused) => unreachable!("an in-memory run was halted"),
            Err(never) => match never {},
        }
    }
}

/// Where a run stands between attempts: what a checkpoint holds besides the state and context.
#[derive(Debug, Clone)]
pub(crate) struct Cursor {
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
}

impl Cursor {
    pub(crate) fn new(graph: &Graph) -> Cursor {
        Cursor {
            attempt: 1,
            seq: 0,
            visit: 0,
            visits: vec![0; graph.states.len()],
            steps: 0,
            wake_at: None,
            history: Vec::with_capacity(graph.states.len()),
        }
    }

    /// Counts the run's entering `state`, or refuses it when a loop guard says so.
    pub(crate) fn enter<M: Machine>(
        &mut self,
        state: &M::State,
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

/// How a run ended, as far as the run loop is concerned.
pub(crate) enum End<O> {
    Done(O),
    /// The error's history is left empty: the cursor holds it.
    Failed(RunError),
    /// The run was asked to stop, and did at a safe point.
    Cancelled,
    /// The run was asked to hold, and did at a safe point; it resumes later.
    Paused,
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
        cursor: &Cursor,
        cx: &M::Context,
        end: Option<&End<M::Output>>,
    ) -> impl Future<Output = Result<(), Self::Stop>> + Send;

    /// Waits `delay` before the cursor's next attempt; a durable journal first records when
    /// the wait ends, so a restart waits only the rest.
    fn backoff(
        &mut self,
        state: &M::State,
        cursor: &mut Cursor,
        cx: &M::Context,
        delay: Duration,
    ) -> impl Future<Output = Result<(), Self::Stop>> + Send;

    /// Waits until `cursor.wake_at`: the rest of a backoff a restored run was in, or a state's
    /// `wait`. Returns early if the run is cancelled.
    fn resume_backoff(&mut self, cursor: &mut Cursor) -> impl Future<Output = ()> + Send;

    /// The wake-up time `delay` from now, in the journal's clock (Unix milliseconds for a
    /// durable run).
    fn wake_at(&self, delay: Duration) -> u64;

    /// Whether the run was asked to stop, and how.
    fn halt(&self) -> Option<Halt>;

    /// Waits for the signal `state` waits for, until `cursor.wake_at` if set.
    fn wait_signal(
        &mut self,
        state: &'static str,
        cursor: &Cursor,
    ) -> impl Future<Output = Waited> + Send;

    /// Tells subscribers, if any, what happened in `state`; `kind` is built only for them.
    fn event(&self, state: &'static str, kind: impl FnOnce() -> EventKind);

    /// Where an attempt of `state` reports progress and learns of cancellation.
    fn attempt_scope(&self, state: &'static str) -> (Option<Reporter>, Option<Arc<Cancel>>);
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

    fn run(&self) -> RunId {
        self.run
    }

    fn record(
        &mut self,
        _: Option<&M::State>,
        _: &Cursor,
        _: &M::Context,
        _: Option<&End<M::Output>>,
    ) -> impl Future<Output = Result<(), Self::Stop>> + Send {
        std::future::ready(Ok(()))
    }

    fn backoff(
        &mut self,
        _: &M::State,
        _: &mut Cursor,
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

    fn resume_backoff(&mut self, cursor: &mut Cursor) -> impl Future<Output = ()> + Send {
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
        cursor: &Cursor,
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
    cursor: &mut Cursor,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut Jitter,
    max_steps: u64,
) -> Result<End<M::Output>, J::Stop> {
    let graph = M::graph();
    // A restored run waiting for a signal keeps its deadline for the wait below.
    if cursor.wake_at.is_some() && !M::waits_for_signal(&state) {
        journal.resume_backoff(cursor).await;
        cursor.wake_at = None;
    }
    // Each attempt ends when it is measured; the next starts then, unless a backoff intervened.
    let mut clock = Instant::now();
    loop {
        let info = &graph.states[M::index(&state)];
        let retry = &info.policy.retry;
        let attempt = cursor.attempt;
        if let Some(halt) = journal.halt() {
            // A checkpoint of its own: no attempt precedes it.
            cursor.seq += 1;
            let end = match halt {
                Halt::Pause => End::Paused,
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
                    let to = graph.states[M::index(&next)].name;
                    let outcome = Outcome::NoSignal { to };
                    let duration = Duration::ZERO;
                    cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
                    journal.event(info.name, || EventKind::Transitioned { to });
                    cursor.seq += 1;
                    if let Err(error) = cursor.enter::<M>(&next, max_steps) {
                        let end = End::Failed(error);
                        journal.record(Some(&next), cursor, cx, Some(&end)).await?;
                        return Ok(announce(journal, to, end));
                    }
                    state = next;
                    arrive::<M, J>(&state, cursor, journal);
                    journal.record(Some(&state), cursor, cx, None).await?;
                    clock = Instant::now();
                    continue;
                }
                Waited::Halted => continue,
                Waited::Unavailable => {
                    let error = RunError::NoSignal { state: info.name, history: Vec::new() };
                    let end = End::Failed(error);
                    journal.record(Some(&state), cursor, cx, Some(&end)).await?;
                    return Ok(announce(journal, info.name, end));
                }
            }
        }
        journal.event(info.name, || EventKind::Entered { attempt });
        // The in-memory runner moves the payload straight into a state's last attempt; a
        // durable run keeps it for the failure's checkpoint.
        let keep = J::KEEPS_STATE || attempt < retry.attempts;
        let (this_try, kept) = if keep { (state.clone(), Some(state)) } else { (state, None) };
        let (reporter, cancel) = journal.attempt_scope(info.name);
        let scope = Attempt {
            current: Current { run: journal.run(), state: info.name, visit: cursor.visit, attempt },
            reporter,
            cancel,
        };
        let span = tracing::info_span!(
            "attempt",
            run = %journal.run(),
            machine = M::NAME,
            state = info.name,
            attempt,
        );
        let started = clock;
        let body = attempt_once::<M>(this_try, cx, info.policy.timeout);
        let result = scope.scope(body).instrument(span).await;
        clock = Instant::now();
        let duration = clock - started;
        let failure = match result {
            Ok(Step::Next(next)) => {
                let to = graph.states[M::index(&next)].name;
                let outcome = Outcome::Transitioned { to };
                cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
                journal.event(info.name, || EventKind::Transitioned { to });
                cursor.seq += 1;
                if let Err(error) = cursor.enter::<M>(&next, max_steps) {
                    let end = End::Failed(error);
                    journal.record(Some(&next), cursor, cx, Some(&end)).await?;
                    return Ok(announce(journal, graph.states[M::index(&next)].name, end));
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
                let attempts = cursor.history[cursor.history.len() - attempt as usize..]
                    .iter()
                    .filter_map(|entry| match &entry.outcome {
                        Outcome::Failed { failure, .. } => Some(failure.clone()),
                        _ => None,
                    })
                    .collect();
                let error =
                    RunError::StateFailed { state: info.name, attempts, history: Vec::new() };
                let end = End::Failed(error);
                journal.record(kept.as_ref(), cursor, cx, Some(&end)).await?;
                return Ok(announce(journal, info.name, end));
            }
        }
    }
}

/// Sets the deadline a state just entered keeps in its checkpoint: the end of its `wait`, or
/// of its wait for a signal.
pub(crate) fn arrive<M: Machine, J: Journal<M>>(
    state: &M::State,
    cursor: &mut Cursor,
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
        End::Paused => EventKind::Paused,
    });
    end
}

/// One attempt of a state body, with its timeout, a panic caught as a failure.
async fn attempt_once<M: Machine>(
    state: M::State,
    cx: &mut M::Context,
    timeout: Option<Duration>,
) -> Result<Step<M::State, M::Output>, Failure> {
    let guarded = catching_panics(M::step(state, cx));
    let result = match timeout {
        Some(after) => match tokio::time::timeout(after, guarded).await {
            Ok(result) => result,
            Err(_) => return Err(Failure::TimedOut { after }),
        },
        None => guarded.await,
    };
    match result {
        Ok(Ok(step)) => Ok(step),
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
