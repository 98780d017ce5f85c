//! Running a machine in memory, from input to output.

mod attempt;
mod drive;
mod fork;
mod journal;
mod rollback;

use std::error::Error as StdError;
use std::fmt;

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use crate::history::{Entry, Failure};
use crate::id::RunId;
use crate::{Graph, Machine};

pub(crate) use attempt::{JitterRng, catching_panics, panic_message};
pub(crate) use drive::{arrive, drive};
pub use fork::BranchError;
pub(crate) use fork::{BranchOf, Joining};
pub(crate) use journal::{End, Hold, InMemory, Journal, Waited};

/// Runs machines in memory: no store, no engine. Cheap to build; reusable.
///
/// `module::run(input, &mut cx)`, generated for every machine, is `Runner::new().run(..)`;
/// build a `Runner` yourself to fix the backoff jitter's seed or to change `max_steps`. A run
/// returns its output and history ([`Finished`]) or why it failed ([`RunError`]).
///
/// ```
/// #[flow::machine]
/// pub mod countdown {
///     use flow::prelude::*;
///
///     #[state(start, to(tick, done))]
///     async fn tick(ticks: &mut u32, left: u32) -> Result<Tick> {
///         *ticks += 1;
///         if left == 0 { goto!(done) } else { goto!(tick(left - 1)) }
///     }
///
///     #[state(end)]
///     async fn done(ticks: &mut u32) -> Result<u32> {
///         Ok(*ticks)
///     }
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let mut ticks = 0;
/// let runner = flow::Runner::new().seed(7).max_steps(3);
/// // Four ticks and the end are five states: more than the three this runner allows.
/// let error = runner.run::<countdown::Machine>(3, &mut ticks).await.unwrap_err();
/// assert!(matches!(error, flow::RunError::MaxSteps { .. }));
///
/// let done = flow::Runner::new().run::<countdown::Machine>(3, &mut 0).await.unwrap();
/// assert_eq!((done.output, done.history.len()), (4, 5));
/// # });
/// ```
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
///
/// Its `source` chain goes from a failed state's last [`Failure`] to the error the state
/// returned, while the process that saw it runs: [`RunError::downcast_ref`] finds it by type.
/// For [`RunError::RolledBack`] the chain starts with the cause.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RunError {
    /// A state failed on its last allowed attempt, or with a permanent error.
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
    NoSignal {
        /// The waiting state.
        #[serde(deserialize_with = "crate::history::name")]
        state: crate::history::Name,
        /// The run's history up to the wait.
        #[serde(skip)]
        history: Vec<Entry>,
    },
    /// A state was entered more often than its `max_visits` allows, and declares no fallback
    /// to catch it (with one, the run goes there instead: `Failure::VisitLimit`).
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

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::StateFailed { state, attempts, .. } => write!(
                f,
                "state `{state}` failed after {} attempt(s); last: {}",
                attempts.len(),
                last(attempts)
            ),
            RunError::NoSignal { state, .. } => write!(
                f,
                "state `{state}` waits for a signal, and only an Engine delivers signals; run \
                 this machine on an Engine, or give the wait a timeout: \
                 signal(timeout = \"...\", default = ...)"
            ),
            RunError::MaxVisits { state, limit, .. } => write!(
                f,
                "state `{state}` was entered more than {limit} times (its max_visits); make the \
                 loop reach an exit sooner, or raise max_visits in its #[state(...)]"
            ),
            RunError::MaxSteps { state, limit, .. } => write!(
                f,
                "the run entered {limit} states without reaching an end (max_steps), and was \
                 stopped before entering `{state}`; check for a loop that never exits, or raise \
                 max_steps in #[flow::machine(...)] or with Runner::max_steps"
            ),
            RunError::RolledBack { cause, undone, failed, .. } => {
                write!(f, "{cause}; rollback: {}", rolled_back(undone, failed))
            }
        }
    }
}

/// The source of a [`RunError::StateFailed`] is its last failure; of a
/// [`RunError::RolledBack`], its cause.
impl StdError for RunError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            RunError::StateFailed { attempts, .. } => {
                attempts.last().map(|failure| failure as &(dyn StdError + 'static))
            }
            RunError::RolledBack { cause, .. } => Some(&**cause),
            RunError::NoSignal { .. } | RunError::MaxVisits { .. } | RunError::MaxSteps { .. } => {
                None
            }
        }
    }
}

impl RunError {
    /// The first error of type `E` in this error's `source` chain: the error a state
    /// returned, or one of its causes, while the process that saw it runs (a run read back
    /// from a store keeps their messages only).
    ///
    /// ```
    /// # use flow::RunError;
    /// # fn check(error: &RunError) {
    /// if let Some(io) = error.downcast_ref::<std::io::Error>() {
    ///     eprintln!("the state's I/O failed: {:?}", io.kind());
    /// }
    /// # }
    /// ```
    pub fn downcast_ref<E: StdError + 'static>(&self) -> Option<&E> {
        crate::error::find(self)
    }

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
            RunError::RolledBack { cause, .. } => RunError::cause(cause),
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

    /// State `state` failed for good with `message`, without an attempt of its body to blame:
    /// the runtime itself could not go on from it.
    pub(crate) fn permanent(state: &'static str, message: String) -> RunError {
        let failure = Failure::Error { message, permanent: true, source: None };
        RunError::StateFailed { state, attempts: vec![failure], history: Vec::new() }
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
        let mut jitter = JitterRng::new(self.seed);
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
            // Only a hand-written machine gets here: the macro keeps `branch_end` states in
            // branches.
            Ok(End::Branch(_)) => {
                let state = history.last().map_or(M::graph().start().name, |entry| entry.state);
                let message = "a `branch_end` state ended the run itself, outside a fork";
                let error = RunError::permanent(state, message.to_owned());
                Err(error.with_history(history))
            }
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
    /// The attempts not yet recorded: every attempt so far, in memory.
    pub history: Vec<Entry>,
    /// The failed attempts of the current visit, in order.
    pub failures: Vec<Failure>,
    /// How many times the run was taken over from an engine that stopped mid-attempt, in
    /// the current visit.
    pub takeovers: u32,
    /// The completed visits of states with a compensation, oldest first: what a failure undoes.
    pub undo: Vec<Done<S>>,
    /// While the run rolls back after a failure: why, and how far it got.
    pub rollback: Option<Rollback>,
    /// The run's own priority for resource pools, if it was started with one; else the
    /// machine's ([`Graph::priority`]).
    pub priority: Option<i32>,
    /// While the run waits for its fork's branches, each a run of its own in the store.
    pub joining: Option<Joining<S>>,
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
            failures: Vec::new(),
            takeovers: 0,
            undo: Vec::new(),
            rollback: None,
            priority: None,
            joining: None,
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
        // `>=`: a run stored past a limit lowered since is stopped too.
        if self.steps >= max_steps {
            return Err(RunError::MaxSteps {
                state: info.name,
                limit: max_steps,
                history: Vec::new(),
            });
        }
        self.steps = self.steps.saturating_add(1);
        self.visits[index] = self.visits[index].saturating_add(1);
        if let Some(limit) = info.policy.max_visits
            && self.visits[index] > limit
        {
            return Err(RunError::MaxVisits { state: info.name, limit, history: Vec::new() });
        }
        self.attempt = 1;
        self.failures.clear();
        self.takeovers = 0;
        self.visit = self.seq;
        Ok(())
    }
}

/// What recording a step changes in a [`Cursor`] (besides the undo list), taken before the
/// step so that it can be taken back when the journal refuses the step's checkpoint.
pub(crate) struct Mark {
    attempt: u32,
    seq: u64,
    visit: u64,
    steps: u64,
    wake_at: Option<u64>,
    takeovers: u32,
    history: usize,
    failures: Vec<Failure>,
    /// The visit count of the state about to be entered, by index.
    visits: (usize, u32),
}

impl<S> Cursor<S> {
    /// Where the cursor stands before a step that enters the state at `entering` (or, for
    /// an end, stays in the state at that index).
    pub(crate) fn mark(&self, entering: usize) -> Mark {
        Mark {
            attempt: self.attempt,
            seq: self.seq,
            visit: self.visit,
            steps: self.steps,
            wake_at: self.wake_at,
            takeovers: self.takeovers,
            history: self.history.len(),
            // Empty, and so free to copy, unless the visit failed attempts before.
            failures: self.failures.clone(),
            visits: (entering, self.visits[entering]),
        }
    }

    /// Takes the cursor back to `mark`.
    pub(crate) fn rewind(&mut self, mark: Mark) {
        self.attempt = mark.attempt;
        self.seq = mark.seq;
        self.visit = mark.visit;
        self.steps = mark.steps;
        self.wake_at = mark.wake_at;
        self.takeovers = mark.takeovers;
        self.history.truncate(mark.history);
        self.failures = mark.failures;
        self.visits[mark.visits.0] = mark.visits.1;
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
    /// The failed attempts of the compensation under way, kept when a takeover cuts it off,
    /// so that its attempts go on counting; absent from older snapshots.
    #[serde(default)]
    pub trying: Vec<crate::history::Failure>,
}
