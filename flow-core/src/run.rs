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

use thiserror::Error;
use tokio::time::Instant;

use crate::history::{Entry, Failure, Outcome};
use crate::{Machine, StateInfo, Step};

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
#[derive(Debug, Clone, Error)]
pub enum RunError {
    /// A state failed on its last allowed attempt, or with a permanent error.
    #[error("state `{state}` failed after {} attempt(s); last: {}", .attempts.len(), last(.attempts))]
    StateFailed {
        /// The state that failed.
        state: &'static str,
        /// Every attempt's failure, in order.
        attempts: Vec<Failure>,
        /// The run's history, the failed attempts included.
        history: Vec<Entry>,
    },
    /// A state was entered more often than its `max_visits` allows.
    #[error(
        "state `{state}` was entered more than {limit} times (its max_visits); \
         make the loop reach an exit sooner, or raise max_visits in its #[state(...)]"
    )]
    MaxVisits {
        /// The state.
        state: &'static str,
        /// Its `max_visits`.
        limit: u32,
        /// The run's history up to the refused visit.
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
        state: &'static str,
        /// The `max_steps` in force.
        limit: u64,
        /// The run's history.
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
            | RunError::MaxSteps { history, .. } => history,
        }
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
        mut state: M::State,
        cx: &mut M::Context,
    ) -> Result<Finished<M::Output>, RunError> {
        let graph = M::graph();
        let max_steps = self.max_steps.unwrap_or(graph.max_steps);
        // Seeded on the first retry: runs that never retry never pay for it.
        let mut jitter = Jitter { seed: self.seed, rng: None };
        let mut visits = vec![0u32; graph.states.len()];
        let mut history = Vec::with_capacity(graph.states.len());
        // Each attempt ends when it is measured; the next starts then, unless a backoff intervened.
        let mut clock = Instant::now();
        let mut steps = 0u64;
        loop {
            let index = M::index(&state);
            let info = &graph.states[index];
            if steps == max_steps {
                return Err(RunError::MaxSteps { state: info.name, limit: max_steps, history });
            }
            steps += 1;
            visits[index] += 1;
            if let Some(limit) = info.policy.max_visits
                && visits[index] > limit
            {
                return Err(RunError::MaxVisits { state: info.name, limit, history });
            }
            match visit::<M>(info, state, cx, &mut jitter, &mut clock, &mut history).await {
                Visit::Next(next) => state = next,
                Visit::Done(output) => return Ok(Finished { output, history }),
                Visit::Failed(attempts) => {
                    return Err(RunError::StateFailed { state: info.name, attempts, history });
                }
            }
        }
    }
}

/// The backoff jitter's random source, created on first use.
struct Jitter {
    seed: Option<u64>,
    rng: Option<fastrand::Rng>,
}

impl Jitter {
    fn rng(&mut self) -> &mut fastrand::Rng {
        let seed = self.seed;
        self.rng
            .get_or_insert_with(|| seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed))
    }
}

enum Visit<M: Machine> {
    Next(M::State),
    Done(M::Output),
    Failed(Vec<Failure>),
}

/// One visit of a state: attempts until one succeeds, the policy gives up, or a failure is
/// permanent; with the backoff between attempts.
async fn visit<M: Machine>(
    info: &'static StateInfo,
    mut state: M::State,
    cx: &mut M::Context,
    jitter: &mut Jitter,
    clock: &mut Instant,
    history: &mut Vec<Entry>,
) -> Visit<M> {
    let retry = &info.policy.retry;
    let mut failures = Vec::new();
    let mut attempt = 1;
    loop {
        // Keep a copy only while another attempt may need it: a state without retries
        // moves its payload straight into the body.
        let (this_try, spare) =
            if attempt < retry.attempts { (state.clone(), Some(state)) } else { (state, None) };
        let started = *clock;
        let result = attempt_once::<M>(this_try, cx, info.policy.timeout).await;
        *clock = Instant::now();
        let duration = *clock - started;
        let failure = match result {
            Ok(Step::Next(next)) => {
                let to = M::graph().states[M::index(&next)].name;
                let outcome = Outcome::Transitioned { to };
                history.push(Entry { state: info.name, attempt, outcome, duration });
                return Visit::Next(next);
            }
            Ok(Step::Done(output)) => {
                let outcome = Outcome::Completed;
                history.push(Entry { state: info.name, attempt, outcome, duration });
                return Visit::Done(output);
            }
            Err(failure) => failure,
        };
        let retry_in = match spare {
            Some(_) if !failure.is_permanent() => Some(retry.backoff.delay(attempt, jitter.rng())),
            _ => None,
        };
        let outcome = Outcome::Failed { failure: failure.clone(), retry_in };
        history.push(Entry { state: info.name, attempt, outcome, duration });
        failures.push(failure);
        match (retry_in, spare) {
            (Some(delay), Some(spare)) => {
                tokio::time::sleep(delay).await;
                *clock = Instant::now();
                state = spare;
                attempt += 1;
            }
            _ => return Visit::Failed(failures),
        }
    }
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
