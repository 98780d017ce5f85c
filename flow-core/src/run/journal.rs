//! The seam between the run loop and whoever keeps the run: [`Journal`], and its in-memory
//! side.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::{Cursor, RunError};
use crate::Machine;
use crate::current::{Cancel, Halt};
use crate::engine::pools::{Held, Uses};
use crate::event::{EventKind, Reporter};
use crate::history::Failure;
use crate::id::RunId;

/// How a run ended, as far as the run loop is concerned.
pub(crate) enum End<O> {
    Done(O),
    /// A `branch_end` state finished its branch with this output.
    Branch(serde_json::Value),
    /// The error's history is left empty: the cursor holds it.
    Failed(RunError),
    /// The run was asked to stop, and did at a safe point.
    Cancelled,
    /// The run was asked to hold, and did at a safe point, or its state failed with
    /// `on_failure = pause` (the error says how); it resumes later.
    Paused(Option<RunError>),
}

/// How a wait for a state's resource pools ended.
pub(crate) enum Hold {
    /// The attempt may run, holding these units (`None`: it uses no pool).
    Held(Option<Held>),
    /// The run was asked to stop (cancel or pause) before its turn came.
    Halted,
}

/// How a wait for a signal ended, where the run waits in memory.
pub(crate) enum Waited {
    /// The timeout passed.
    TimedOut,
    /// Nothing can deliver a signal (in memory), and no timeout ends the wait.
    Unavailable,
}

/// What the run loop tells whoever keeps the run: the in-memory runner (nothing to keep) or
/// the engine (a checkpoint each time).
pub(crate) trait Journal<M: Machine> {
    /// Why the journal stopped the run: for the engine, a store failure, a lost claim, or the
    /// run now waiting in the store.
    type Stop: Send;

    /// Whether a state's payload must outlive its last attempt (to be checkpointed).
    const KEEPS_STATE: bool;

    /// Whether a paused run can be resumed: a state with `on_failure = pause` pauses only then.
    const CAN_PAUSE: bool;

    /// The run's id, for [`crate::current`].
    fn run(&self) -> RunId;

    /// The fencing token of the claim the run is held under, for [`crate::current`]; `None`
    /// where no store holds the run.
    fn fencing_token(&self) -> Option<u64>;

    /// The run moved on: to `state` (the cursor's `seq` already advanced), or to its end.
    /// The run goes no further until this returns.
    ///
    /// Implementations read what they keep before returning the future, which then holds
    /// none of the references: states and contexts need not be `Sync`.
    fn record(
        &mut self,
        state: Option<&M::State>,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
        end: Option<&End<M::Output>>,
    ) -> impl Future<Output = Result<(), Self::Stop>> + Send;

    /// Waits `delay` before the cursor's next attempt (the cursor's `seq` already advanced).
    /// A durable journal records when the wait ends and lets the run wait in the store: it
    /// stops the run, which an engine claims again when it is due.
    fn backoff(
        &mut self,
        state: &M::State,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
        delay: Duration,
    ) -> impl Future<Output = Result<(), Self::Stop>> + Send;

    /// Waits until `cursor.wake_at`: a state's `wait`, or the rest of a backoff. A durable
    /// journal returns at once when that time has come, and otherwise lets the run wait in
    /// the store.
    fn wait_until(
        &mut self,
        state: &M::State,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
    ) -> impl Future<Output = Result<(), Self::Stop>> + Send;

    /// The wake-up time `delay` from now, in the journal's clock (Unix milliseconds for a
    /// durable run).
    fn wake_at(&self, delay: Duration) -> u64;

    /// Whether the run was asked to stop, and how.
    fn halt(&self) -> Option<Halt>;

    /// Waits for the signal `state` waits for, until `cursor.wake_at` if set. A durable
    /// journal returns [`Waited::TimedOut`] once that time has passed, and otherwise lets the
    /// run wait in the store, where a signal is delivered.
    fn wait_signal(
        &mut self,
        state: &M::State,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
    ) -> impl Future<Output = Result<Waited, Self::Stop>> + Send;

    /// Tells subscribers, if any, what happened in `state`: an event of the kind at `place`
    /// in [`EventKind::NAMES`] (`kind!(Entered)`), which `make` builds only if anyone wants
    /// that kind.
    fn event(&self, state: &'static str, place: usize, make: impl FnOnce() -> EventKind);

    /// A run's output as JSON, for its `Completed` event; `null` where outputs are not
    /// stored (in memory, where nobody listens either).
    fn output_json(&self, output: &M::Output) -> serde_json::Value {
        let _ = output;
        serde_json::Value::Null
    }

    /// Where an attempt of `state` reports progress and learns of cancellation.
    fn attempt_scope(&self, state: &'static str) -> (Option<Reporter>, Option<Arc<Cancel>>);

    /// Holds what `state` uses of the engine's resource pools (`uses`) for one attempt, once
    /// the run's turn comes (`priority`, lower first); dropping what it returns gives them
    /// back. `Hold::Halted` if the run was asked to stop while it waited. Only an engine has
    /// pools: in memory the attempt runs at once.
    fn hold(
        &mut self,
        state: &'static str,
        uses: Uses,
        priority: i32,
    ) -> impl Future<Output = Hold> + Send {
        let _ = (state, uses, priority);
        std::future::ready(Hold::Held(None))
    }

    /// Whether a fork's branches run as runs of their own in the store
    /// ([`Journal::await_branches`]) rather than in this process ([`Journal::branch`]).
    const BRANCHES_IN_STORE: bool = false;

    /// A journal for one branch of a fork run in this process, keeping it as this one keeps
    /// the run; `None` where branches cannot run so.
    fn branch(&self) -> Option<Self>
    where
        Self: Sized,
    {
        None
    }

    /// For a journal whose branches run in the store: starts the `branches` the fork
    /// `state` returned (`None` when the run was already joining, as its cursor says), and
    /// returns their outputs once all have finished, in the fork's order, or the error of
    /// the first that failed (its siblings cancelled). Until then it writes the run as
    /// waiting for them (`Wait::Join`) and stops it there.
    fn await_branches(
        &mut self,
        state: &M::State,
        branches: Option<Vec<M::State>>,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
    ) -> impl Future<Output = Result<Result<Vec<serde_json::Value>, RunError>, Self::Stop>> + Send
    {
        let _ = (branches, cursor, cx);
        let from = M::graph().states[M::index(state)].name;
        let message = "this run keeps its branches in memory, not in a store";
        std::future::ready(Ok(Err(RunError::permanent(from, message.to_owned()))))
    }

    /// Why attempt `attempt` of `state` fails without running, if it does: it was
    /// interrupted by a crash before (a claimed run's first attempt only), or [`Faults`]
    /// chose it.
    ///
    /// [`Faults`]: crate::testing::Faults
    fn failed_before(&mut self, state: &'static str, attempt: u32) -> Option<Failure> {
        let _ = (state, attempt);
        None
    }

    /// Why the first compensation attempt after a claim fails without running, if it does:
    /// the run was taken over mid-rollback, and the compensation that was running was cut off
    /// ([`Failure::Interrupted`], or [`Failure::Reassigned`] past the engine's limit).
    fn interrupted(&mut self) -> Option<Failure> {
        None
    }

    /// The run loop's `record` of what an attempt returned stopped with `stop`. If the
    /// journal refused it because it would not read back from the store, puts `cx` back as
    /// last recorded (the attempt may have changed it) and returns the attempt's failure,
    /// saying why: the run goes on from its last checkpoint, as after any failed attempt.
    /// Any other stop is returned as it is.
    fn recover(
        &mut self,
        stop: Self::Stop,
        cx: &mut M::Context,
    ) -> impl Future<Output = Result<Failure, Self::Stop>> + Send;
}

/// The journal of [`Runner`](super::Runner): nothing is kept, backoffs are plain sleeps.
pub(crate) struct InMemory {
    pub run: RunId,
    /// Wake-up times are milliseconds since this instant.
    pub base: Instant,
}

impl<M: Machine> Journal<M> for InMemory {
    type Stop = std::convert::Infallible;
    const KEEPS_STATE: bool = false;
    const CAN_PAUSE: bool = false;

    fn branch(&self) -> Option<Self> {
        Some(InMemory { run: self.run, base: self.base })
    }

    fn run(&self) -> RunId {
        self.run
    }

    fn fencing_token(&self) -> Option<u64> {
        None
    }

    fn record(
        &mut self,
        _: Option<&M::State>,
        _: &mut Cursor<M::State>,
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

    fn wait_until(
        &mut self,
        _: &M::State,
        cursor: &mut Cursor<M::State>,
        _: &M::Context,
    ) -> impl Future<Output = Result<(), Self::Stop>> + Send {
        let wake = self.base + Duration::from_millis(cursor.wake_at.unwrap_or(0));
        async move {
            tokio::time::sleep_until(wake).await;
            Ok(())
        }
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
        _: &M::State,
        cursor: &mut Cursor<M::State>,
        _: &M::Context,
    ) -> impl Future<Output = Result<Waited, Self::Stop>> + Send {
        // Nothing delivers signals in memory: only a timeout ends the wait.
        let wake = cursor.wake_at.map(|ms| self.base + Duration::from_millis(ms));
        async move {
            match wake {
                Some(wake) => {
                    tokio::time::sleep_until(wake).await;
                    Ok(Waited::TimedOut)
                }
                None => Ok(Waited::Unavailable),
            }
        }
    }

    fn event(&self, _: &'static str, _: usize, _: impl FnOnce() -> EventKind) {}

    fn attempt_scope(&self, _: &'static str) -> (Option<Reporter>, Option<Arc<Cancel>>) {
        (None, None)
    }

    fn recover(
        &mut self,
        stop: Self::Stop,
        _: &mut M::Context,
    ) -> impl Future<Output = Result<Failure, Self::Stop>> + Send {
        // Nothing is stored in memory, so nothing is refused.
        std::future::ready(Err(stop))
    }
}
