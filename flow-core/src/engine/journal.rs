//! What a durable run writes to the store as it moves on: [`DurableJournal`].

use std::borrow::Cow;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::de::IgnoredAny;

use super::pools::Uses;
use super::snapshot::{SnapshotIn, SnapshotOut, readable, visits};
use super::versions::upgrade;
use super::{Durable, EngineError, Inner, duration_ms};
use crate::current::{Cancel, Halt};
use crate::error::SharedError;
use crate::event::{Event, EventKind, Reporter, kind};
use crate::history::Failure;
use crate::run::{BranchOf, Cursor, End, Hold, Journal, Waited};
use crate::store::{Checkpoint, Lease, Status, StoreError, Wait};
use crate::{RunError, RunId};

/// Why a durable run stopped before its end, as the run loop sees it.
pub(crate) enum Stop {
    /// The run waits in the store (a signal, a timer, a backoff) or was handed back to it at
    /// shutdown: the engine that claims it next goes on.
    Waiting,
    /// Another engine holds the run now: this one's claim lapsed or was superseded.
    Lost(EngineError),
    /// The run cannot go on (its checkpoint would not serialize, the store refused it for
    /// good): it is marked stuck.
    Failed(EngineError),
}

impl From<EngineError> for Stop {
    fn from(error: EngineError) -> Stop {
        match error {
            EngineError::Store(StoreError::Conflict { .. } | StoreError::Fenced { .. }) => {
                Stop::Lost(error)
            }
            error => Stop::Failed(error),
        }
    }
}

/// The longest wait between two tries of a checkpoint the store failed to write.
const STORE_RETRY_CAP: Duration = Duration::from_secs(5);

/// The journal of a durable run: a checkpoint per step, written under the run's claim before
/// the run moves on; waits written to the store, where the run waits.
pub(crate) struct DurableJournal<M> {
    pub inner: Arc<Inner>,
    pub run: RunId,
    /// The claim the run is held under; `None` for a run started without a free slot.
    pub lease: Option<Lease>,
    /// The state the run was last recorded in, for checkpoints that carry no state.
    pub state_name: &'static str,
    /// The snapshot of a completed run's last checkpoint, handed to its handle so the output
    /// need not be read back from the store.
    pub completed: Option<Arc<str>>,
    /// Set by `Engine::cancel` and `Engine::pause`, here or through the store.
    pub cancel: Arc<Cancel>,
    /// Whether the last checkpoint let the run go to wait in the store.
    pub released: bool,
    /// What the next checkpoint with a deadline waits for.
    pub waiting_for: Wait,
    /// The claim took the run over from an engine that died mid-attempt: how the cut-off
    /// attempt failed.
    pub interrupted: Option<Failure>,
    /// The business key the run is started under, written with its checkpoint 0.
    pub key: Option<String>,
    /// The fork this run is a branch of, kept in each of its checkpoints.
    pub branch_of: Option<BranchOf>,
    pub machine: PhantomData<fn() -> M>,
}

impl<M: Durable> DurableJournal<M> {
    pub fn new(inner: &Arc<Inner>, run: RunId, lease: Option<Lease>, state: &'static str) -> Self {
        DurableJournal {
            inner: Arc::clone(inner),
            run,
            lease,
            state_name: state,
            completed: None,
            cancel: Arc::default(),
            released: false,
            waiting_for: Wait::Timer,
            interrupted: None,
            key: None,
            branch_of: None,
            machine: PhantomData,
        }
    }

    pub(crate) fn checkpoint(
        &mut self,
        state: Option<&M::State>,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
        end: Option<&End<M::Output>>,
    ) -> Result<Checkpoint, EngineError> {
        let graph = M::graph();
        let now = self.inner.now_ms();
        let state_name = state.map_or(self.state_name, |state| graph.states[M::index(state)].name);
        let (status, output, error) = match end {
            None => (Status::Running, None, None),
            Some(End::Done(output)) => (Status::Completed, Some(output), None),
            Some(End::Failed(error)) => (Status::Failed, None, Some(error)),
            Some(End::Cancelled) => (Status::Cancelled, None, None),
            Some(End::Paused(error)) => (Status::Paused, None, error.as_ref()),
            // A branch's run completes with the branch's output, kept apart from a run's.
            Some(End::Branch(_)) => (Status::Completed, None, None),
        };
        let branch_output = match end {
            Some(End::Branch(output)) => Some(output),
            _ => None,
        };
        // A run that is to wait is written as waiting, and no engine holds it meanwhile.
        let wait = match state {
            _ if end.is_some() || cursor.rollback.is_some() => None,
            _ if cursor.joining.is_some() => cursor.wake_at.map(|_| Wait::Join),
            Some(state) if M::waits_for_signal(state) => Some(Wait::Signal),
            _ if cursor.wake_at.is_some_and(|at| at > now) => Some(self.waiting_for),
            _ => None,
        };
        let snapshot = SnapshotOut {
            state,
            context: cx,
            attempt: cursor.attempt,
            visit: cursor.visit,
            steps: cursor.steps,
            visits: visits(graph, &cursor.visits),
            output,
            error,
            undo: &cursor.undo,
            rollback: cursor.rollback.as_ref(),
            failures: &cursor.failures,
            // A run that ends or pauses starts counting again if it is ever resumed.
            takeovers: if end.is_some() { 0 } else { cursor.takeovers },
            priority: cursor.priority,
            joining: cursor.joining.as_ref(),
            branch: self.branch_of,
            branch_output,
        };
        // Refused before anything changes here: the run loop may go on from the last
        // checkpoint instead (`Journal::recover`).
        let snapshot = readable::<_, _, _, M::Output>(&snapshot).map_err(|source| {
            EngineError::Unstorable { run: self.run, machine: M::NAME, state: state_name, source }
        })?;
        let entries = serde_json::to_string(&cursor.history).map_err(|error| {
            EngineError::Serialize { run: self.run, machine: M::NAME, detail: error.to_string() }
        })?;
        cursor.history.clear();
        // A run that went to wait in the store is no longer this engine's: what it writes
        // after that (a halt requested before the wait was written, seen at the next safe
        // point) is a write from outside, accepted only while no engine has claimed it since.
        let lease = if self.released { None } else { self.lease.clone() };
        self.state_name = state_name;
        self.waiting_for = Wait::Timer;
        self.released = wait.is_some();
        if status == Status::Completed {
            self.completed = Some(snapshot.as_str().into());
        }
        Ok(Checkpoint {
            run: self.run,
            seq: cursor.seq,
            machine: Cow::Borrowed(M::NAME),
            version: graph.version,
            fingerprint: Cow::Borrowed(graph.fingerprint),
            status,
            state: Cow::Borrowed(self.state_name),
            wake_at: cursor.wake_at,
            wait,
            lease,
            at: now,
            snapshot,
            entries,
            // The store keeps the key from checkpoint 0 on.
            key: if cursor.seq == 0 { self.key.clone() } else { None },
        })
    }

    /// Writes `checkpoint`, trying again while the store fails and this engine's lease holds;
    /// a refusal (another engine holds the run) is final.
    pub(crate) fn save(
        &self,
        checkpoint: Result<Checkpoint, EngineError>,
    ) -> impl Future<Output = Result<(), Stop>> + Send + use<M> {
        let inner = Arc::clone(&self.inner);
        let reporter = self.reporter(self.state_name);
        async move {
            let checkpoint = checkpoint?;
            let (seq, due_at) = (checkpoint.seq, checkpoint.due_at());
            let mut delay = Duration::from_millis(10);
            loop {
                match inner.store.save(checkpoint.clone()).await {
                    Ok(()) => break,
                    Err(error @ (StoreError::Conflict { .. } | StoreError::Fenced { .. })) => {
                        return Err(Stop::Lost(error.into()));
                    }
                    Err(error) if !inner.lease_holds() => {
                        return Err(Stop::Lost(error.into()));
                    }
                    Err(error) => {
                        // Nothing is announced before it is durable: subscribers hear of the
                        // fault, and of the step only once a retry has written it.
                        reporter.send(EventKind::StoreFault {
                            error: error.to_string(),
                            retry_in: delay,
                        });
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(STORE_RETRY_CAP);
                    }
                }
            }
            reporter.send(EventKind::Checkpointed { seq });
            if let Some(due_at) = due_at {
                inner.due(due_at);
            }
            Ok(())
        }
    }

    /// Writes the run as waiting in the store until the cursor's deadline (unless its last
    /// checkpoint did), and stops it here. `advance`: whether the write needs a sequence
    /// number of its own.
    fn wait_in_store(
        &mut self,
        state: &M::State,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
        advance: bool,
    ) -> impl Future<Output = Result<(), Stop>> + Send + use<M> {
        let saved = (!self.released).then(|| {
            if advance {
                cursor.seq += 1;
            }
            let checkpoint = self.checkpoint(Some(state), cursor, cx, None);
            self.save(checkpoint)
        });
        // The deadline may have come by the time the checkpoint was made (a backoff drawn as
        // 0 ms): then the run is still held here, and goes on at once.
        let released = self.released;
        async move {
            if let Some(saved) = saved {
                saved.await?;
            }
            if released { Err(Stop::Waiting) } else { Ok(()) }
        }
    }

    pub(crate) fn reporter(&self, state: &'static str) -> Reporter {
        self.inner.reporter(self.run, M::NAME, state)
    }
}

impl<M: Durable> Journal<M> for DurableJournal<M> {
    type Stop = Stop;
    const KEEPS_STATE: bool = true;
    const CAN_PAUSE: bool = true;
    const BRANCHES_IN_STORE: bool = true;

    fn await_branches(
        &mut self,
        state: &M::State,
        branches: Option<Vec<M::State>>,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
    ) -> impl Future<Output = Result<Result<Vec<serde_json::Value>, RunError>, Stop>> + Send {
        // Owned: a reference held across the awaits would need them to be `Sync`.
        let (fork, cx) = (state.clone(), M::fork_context(cx));
        super::branches::await_branches(self, fork, branches, cursor, cx)
    }

    fn run(&self) -> RunId {
        self.run
    }

    fn fencing_token(&self) -> Option<u64> {
        self.lease.as_ref().map(|lease| lease.token)
    }

    fn record(
        &mut self,
        state: Option<&M::State>,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
        end: Option<&End<M::Output>>,
    ) -> impl Future<Output = Result<(), Stop>> + Send {
        let checkpoint = self.checkpoint(state, cursor, cx, end);
        let keeps = checkpoint.as_ref().is_ok_and(Checkpoint::keeps_lease);
        let saved = self.save(checkpoint);
        let inner = Arc::clone(&self.inner);
        let (run, lease) = (self.run, self.lease.clone());
        async move {
            saved.await?;
            // Shutting down: the run goes no further here; the next engine goes on from this
            // checkpoint.
            if keeps && inner.closing.load(Ordering::SeqCst) {
                if let Some(lease) = lease {
                    inner.store.release(run, lease).await.map_err(EngineError::from)?;
                }
                return Err(Stop::Waiting);
            }
            Ok(())
        }
    }

    fn backoff(
        &mut self,
        state: &M::State,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
        delay: Duration,
    ) -> impl Future<Output = Result<(), Stop>> + Send {
        cursor.wake_at = Some(Journal::<M>::wake_at(self, delay));
        self.waiting_for = Wait::Backoff;
        self.released = false;
        // The failed attempt's checkpoint, whose seq the run loop advanced.
        self.wait_in_store(state, cursor, cx, false)
    }

    fn wait_until(
        &mut self,
        state: &M::State,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
    ) -> impl Future<Output = Result<(), Stop>> + Send {
        let due = cursor.wake_at.is_none_or(|at| at <= self.inner.now_ms());
        let waited = (!due).then(|| self.wait_in_store(state, cursor, cx, true));
        async move {
            match waited {
                Some(waited) => waited.await,
                None => Ok(()),
            }
        }
    }

    fn wake_at(&self, delay: Duration) -> u64 {
        self.inner.now_ms().saturating_add(duration_ms(delay))
    }

    fn halt(&self) -> Option<Halt> {
        self.cancel.halt()
    }

    fn wait_signal(
        &mut self,
        state: &M::State,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
    ) -> impl Future<Output = Result<Waited, Stop>> + Send {
        let timed_out = cursor.wake_at.is_some_and(|at| at <= self.inner.now_ms());
        let info = &M::graph().states[M::index(state)];
        let signal = info.signal.map_or("signal", |signal| signal.ty);
        let reporter = self.reporter(info.name);
        let waited = (!timed_out).then(|| self.wait_in_store(state, cursor, cx, true));
        async move {
            let Some(waited) = waited else { return Ok(Waited::TimedOut) };
            let waited = waited.await;
            // Once the wait is in the store: a signal sent on hearing of it is taken.
            if matches!(waited, Err(Stop::Waiting)) {
                reporter.send(EventKind::WaitingForSignal { signal });
            }
            waited.map(|()| Waited::TimedOut)
        }
    }

    fn event(&self, state: &'static str, place: usize, make: impl FnOnce() -> EventKind) {
        // Straight to the channels, without a reporter's clones: this runs several times a
        // step, and the event is built only if someone wants it.
        let (run, clock) = (self.run, &self.inner.clock);
        self.inner.events.send(run, place, || Event {
            run,
            machine: M::NAME,
            state,
            at: clock.now(),
            kind: make(),
        });
    }

    fn output_json(&self, output: &M::Output) -> serde_json::Value {
        serde_json::to_value(output).unwrap_or_default()
    }

    fn attempt_scope(&self, state: &'static str) -> (Option<Reporter>, Option<Arc<Cancel>>) {
        (Some(self.reporter(state)), Some(Arc::clone(&self.cancel)))
    }

    fn hold(
        &mut self,
        state: &'static str,
        uses: Uses,
        priority: i32,
    ) -> impl Future<Output = Hold> + Send {
        let taken = (!uses.is_empty()).then(|| self.inner.pools.try_hold(self.run, uses, priority));
        if let Some(Err((_, pool))) = &taken {
            self.event(state, kind!(WaitingForPool), || EventKind::WaitingForPool { pool });
        }
        let cancel = Arc::clone(&self.cancel);
        async move {
            match taken {
                None => Hold::Held(None),
                Some(Ok(held)) => Hold::Held(Some(held)),
                // A cancel or pause ends the wait; the ticket leaves the queue as it drops.
                Some(Err((ticket, _))) => tokio::select! {
                    held = ticket.admitted() => Hold::Held(Some(held)),
                    () = cancel.requested() => Hold::Halted,
                },
            }
        }
    }

    fn failed_before(&mut self, state: &'static str, attempt: u32) -> Option<Failure> {
        if let Some(failure) = self.interrupted.take() {
            return Some(failure);
        }
        let injected = self.inner.faults.as_ref().is_some_and(|f| f.fails(M::NAME, state, attempt));
        injected.then(|| Failure::error(crate::testing::INJECTED, false))
    }

    fn interrupted(&mut self) -> Option<Failure> {
        self.interrupted.take()
    }

    fn recover(
        &mut self,
        stop: Stop,
        cx: &mut M::Context,
    ) -> impl Future<Output = Result<Failure, Stop>> + Send {
        let inner = Arc::clone(&self.inner);
        let run = self.run;
        async move {
            let Stop::Failed(refused @ EngineError::Unstorable { .. }) = stop else {
                return Err(stop);
            };
            let corrupt =
                |detail: String| EngineError::Corrupt { run, machine: M::NAME.into(), detail };
            let latest = inner.store.latest(run).await.map_err(EngineError::from)?;
            let mut latest = latest.ok_or_else(|| corrupt("its checkpoints are gone".into()))?;
            // Read as a claim reads it: a run claimed from an older version was migrated in
            // memory only.
            let migrations = inner.migrations.get(M::NAME).map_or(&[][..], Vec::as_slice);
            upgrade::<M>(migrations, &mut latest)?;
            let snapshot: SnapshotIn<IgnoredAny, M::Context, IgnoredAny> =
                serde_json::from_str(&latest.snapshot).map_err(|error| {
                    corrupt(format!("checkpoint {} does not read back: {error}", latest.seq))
                })?;
            let mut context = snapshot.context;
            if let Some(registered) = inner.machines.get(M::NAME) {
                registered.restore(&mut context);
            }
            *cx = context;
            let message = refused.to_string();
            Ok(Failure::Error {
                message,
                permanent: false,
                source: Some(SharedError::new(refused)),
            })
        }
    }
}
