//! The machines an engine runs: typed inside, erased outside, so a claimed run is rebuilt by
//! its machine's name and set going.

use std::any::{Any, TypeId};
use std::future::Future;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::de::IgnoredAny;
use tokio::sync::{OwnedSemaphorePermit, watch};

use super::erased::{self, JsonError, StartJson};
use super::journal::{DurableJournal, Stop};
use super::snapshot::SnapshotIn;
use super::versions::upgrade;
use super::{Durable, Ended, Engine, EngineError, Inner, Live};
use crate::event::{EventKind, kind};
use crate::history::Failure;
use crate::run::{Cursor, End, JitterRng, Journal, catching_panics, drive, panic_message};
use crate::store::{Checkpoint, Claimed, Lease, Status};
use crate::{Graph, RunId, SharedError};

/// A machine as the engine's registry holds it.
pub(crate) trait Registered: Send + Sync {
    fn type_id(&self) -> TypeId;
    fn name(&self) -> &'static str;
    fn graph(&self) -> &'static Graph;
    /// Gives a context of this machine the engine's resources (`machine_with`).
    fn restore(&self, context: &mut dyn Any);
    /// Rebuilds a claimed run from its latest checkpoint and sets it going.
    fn run_claimed(
        &self,
        inner: &Arc<Inner>,
        claimed: Claimed,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), EngineError>;
    /// The JSON Schema of the input (`Machine::input_schema`).
    fn input_schema(&self) -> Option<serde_json::Value>;
    /// The JSON Schema of the signal the state at `index` waits for (`Machine::signal_schema`).
    fn signal_schema(&self, index: usize) -> Option<serde_json::Value>;
    /// Whether a run can start from JSON without a context (`Engine::start_json`).
    fn has_default_context(&self, inner: &Inner) -> bool;
    /// Starts a run from JSON: the input (and context) decoded as this machine's types.
    fn start_json<'a>(
        &'a self,
        engine: &'a Engine,
        start: StartJson,
    ) -> Pin<Box<dyn Future<Output = Result<RunId, JsonError>> + Send + 'a>>;
    /// A waiting run's last checkpoint with `signal`, JSON decoded as the signal the run's
    /// state waits for, delivered: the checkpoint that follows it.
    fn deliver_json(
        &self,
        latest: &Checkpoint,
        signal: serde_json::Value,
        now: u64,
    ) -> Result<Checkpoint, JsonError>;
}

type Restore<C> = Arc<dyn Fn(&mut C) + Send + Sync>;

pub(crate) struct Registration<M: Durable> {
    restore: Option<Restore<M::Context>>,
    machine: PhantomData<fn() -> M>,
}

impl<M: Durable> Registration<M> {
    pub fn new(restore: Option<Restore<M::Context>>) -> Self {
        Registration { restore, machine: PhantomData }
    }
}

impl<M: Durable> Registered for Registration<M> {
    fn type_id(&self) -> TypeId {
        TypeId::of::<M>()
    }

    fn name(&self) -> &'static str {
        M::NAME
    }

    fn graph(&self) -> &'static Graph {
        M::graph()
    }

    fn restore(&self, context: &mut dyn Any) {
        if let (Some(restore), Some(context)) = (&self.restore, context.downcast_mut()) {
            restore(context);
        }
    }

    fn input_schema(&self) -> Option<serde_json::Value> {
        M::input_schema()
    }

    fn signal_schema(&self, index: usize) -> Option<serde_json::Value> {
        M::signal_schema(index)
    }

    fn has_default_context(&self, inner: &Inner) -> bool {
        erased::default_context::<M>(inner).is_some()
    }

    fn start_json<'a>(
        &'a self,
        engine: &'a Engine,
        start: StartJson,
    ) -> Pin<Box<dyn Future<Output = Result<RunId, JsonError>> + Send + 'a>> {
        Box::pin(erased::start_json::<M>(engine, start))
    }

    fn deliver_json(
        &self,
        latest: &Checkpoint,
        signal: serde_json::Value,
        now: u64,
    ) -> Result<Checkpoint, JsonError> {
        erased::deliver_json::<M>(latest, signal, now)
    }

    fn run_claimed(
        &self,
        inner: &Arc<Inner>,
        claimed: Claimed,
        permit: OwnedSemaphorePermit,
    ) -> Result<(), EngineError> {
        let Claimed { checkpoint: mut latest, lease, taken_over, halt } = claimed;
        let graph = M::graph();
        let run = latest.run;
        let migrations = inner.migrations.get(M::NAME).map_or(&[][..], Vec::as_slice);
        upgrade::<M>(migrations, &mut latest)?;
        let corrupt =
            |detail: String| EngineError::Corrupt { run, machine: M::NAME.into(), detail };
        let snapshot: SnapshotIn<M::State, M::Context, IgnoredAny> =
            serde_json::from_str(&latest.snapshot).map_err(|error| {
                corrupt(format!(
                    "checkpoint {} does not read as this machine's: {error}",
                    latest.seq
                ))
            })?;
        let state = snapshot.state.ok_or_else(|| {
            corrupt(format!("checkpoint {} of an unfinished run holds no state", latest.seq))
        })?;
        let mut cursor = Cursor::new(graph);
        cursor.attempt = snapshot.attempt.max(1);
        cursor.seq = latest.seq;
        cursor.visit = snapshot.visit;
        cursor.steps = snapshot.steps;
        for (index, info) in graph.states.iter().enumerate() {
            cursor.visits[index] = snapshot.visits.get(info.name).copied().unwrap_or(0);
        }
        cursor.wake_at = latest.wake_at;
        cursor.undo = snapshot.undo;
        cursor.rollback = snapshot.rollback;
        cursor.failures = snapshot.failures;
        cursor.takeovers = snapshot.takeovers;
        cursor.priority = snapshot.priority;
        cursor.joining = snapshot.joining;
        let mut context = snapshot.context;
        self.restore(&mut context);
        let mut journal =
            DurableJournal::<M>::new(inner, run, Some(lease), graph.states[M::index(&state)].name);
        journal.branch_of = snapshot.branch;
        // The attempt the dead engine was running (a state's, or a compensation's) failed; the
        // next checkpoint, written before it runs again (the retry's, or the failure's),
        // keeps the count.
        if taken_over {
            cursor.takeovers = cursor.takeovers.saturating_add(1);
            let (times, limit) = (cursor.takeovers, inner.max_reassignments);
            journal.interrupted = Some(if times > limit {
                Failure::Reassigned { times, limit }
            } else {
                Failure::Interrupted
            });
        }
        if let Some(halt) = halt {
            journal.cancel.request(halt);
        }
        // A run waking from its own wait goes on quietly; any other claim is news.
        if taken_over || latest.wait.is_none() {
            let seq = latest.seq;
            journal.event(journal.state_name, kind!(Resumed), || EventKind::Resumed { seq });
        }
        spawn::<M>(journal, state, cursor, context, permit);
        Ok(())
    }
}

/// Runs a durable run on the engine's runtime until it waits or ends, holding `permit` (its
/// slot) meanwhile, and tells its handles how it went.
pub(crate) fn spawn<M: Durable>(
    mut journal: DurableJournal<M>,
    state: M::State,
    mut cursor: Cursor<M::State>,
    mut cx: M::Context,
    permit: OwnedSemaphorePermit,
) {
    let inner = Arc::clone(&journal.inner);
    let run = journal.run;
    let lease = journal.lease.clone();
    let cancel = Arc::clone(&journal.cancel);
    let (done, receiver) = watch::channel(None);
    // The task is registered before it can run, so that its end finds it.
    let mut live = inner.live();
    let task = tokio::spawn({
        let inner = Arc::clone(&inner);
        let held = lease.clone();
        async move {
            let mut jitter = JitterRng::new(inner.seed.map(|seed| seed ^ run.as_u128() as u64));
            let max_steps = M::graph().max_steps;
            let driven = catching_panics(async {
                let ended = drive::<M, _>(
                    state,
                    &mut cursor,
                    &mut cx,
                    &mut journal,
                    &mut jitter,
                    max_steps,
                )
                .await;
                (ended, journal.completed.take())
            })
            .await;
            let branch_completed = matches!(driven, Ok((Ok(End::Branch(_)), _)));
            let ended = match driven {
                Ok((Ok(End::Done(_)), completed)) => Ended::Finished(completed),
                Ok((Ok(End::Failed(error)), _)) => Ended::Failed(error),
                Ok((Ok(_), _)) => Ended::Finished(None),
                Ok((Err(Stop::Waiting), _)) => Ended::Waiting,
                Ok((Err(Stop::Lost(error)), _)) => {
                    let reason = error.to_string();
                    tracing::warn!(run = %run, "{reason}");
                    let reporter = journal.reporter(journal.state_name);
                    reporter.send(EventKind::LeaseLost { error: reason });
                    Ended::Lost
                }
                Ok((Err(Stop::Failed(error)), _)) => {
                    let reason = error.to_string();
                    // The store's own error when it is one: what a caller downcasts to.
                    let source = match error {
                        EngineError::Store(error) => SharedError::new(error),
                        error => SharedError::new(error),
                    };
                    stuck(&inner, run, held.clone(), reason, Some(source)).await
                }
                Err(panic) => {
                    let reason = format!(
                        "the engine failed while running it (a bug in flow): {}",
                        panic_message(&*panic)
                    );
                    stuck(&inner, run, held.clone(), reason, None).await
                }
            };
            // A branch's run that ended tells the run that forked, which may be waiting.
            if let Some(of) = journal.branch_of
                && matches!(ended, Ended::Finished(_) | Ended::Failed(_))
                && super::branches::wakes(&inner, of.parent, branch_completed)
            {
                super::branches::wake(&inner, of.parent).await;
            }
            drop(permit);
            // Forgotten first: whoever learns of the end must not find the run still here.
            inner.live().remove(&run);
            // A halt asked for while the run was on its way to wait in the store reaches it
            // there, as one asked for later would.
            if let (Ended::Waiting, Some(halt)) = (&ended, journal.cancel.halt()) {
                let engine = super::Engine { inner: Arc::clone(&inner) };
                if let Err(error) = engine.halt(run, halt).await {
                    tracing::warn!(run = %run, "a {halt:?} asked for was lost: {error}");
                }
            }
            let _ = done.send(Some(ended));
            inner.changed.notify_waiters();
            // A slot is free: the scheduler is needed only if runs wait for one.
            if inner.backlog.load(Ordering::SeqCst) {
                inner.wake.notify_one();
            }
        }
    });
    if let Some(lease) = lease {
        let abort = task.abort_handle();
        live.insert(run, Live { done: receiver, cancel, lease, abort });
    }
    drop(live);
    inner.changed.notify_waiters();
}

/// Marks `run`, held under `lease`, stuck with `reason` (caused by `source`), letting go of it,
/// and says how it ended.
async fn stuck(
    inner: &Inner,
    run: RunId,
    lease: Option<Lease>,
    reason: String,
    source: Option<SharedError>,
) -> Ended {
    tracing::error!(run = %run, "run stopped: {reason}");
    if let Err(error) = inner.store.mark(run, Status::Stuck, Some(reason.clone()), lease).await {
        tracing::error!(run = %run, "and could not be marked stuck: {error}");
    }
    Ended::Stopped(reason, source)
}
