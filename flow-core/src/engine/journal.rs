//! What a durable run writes to the store as it moves on: [`DurableJournal`], and reading
//! its checkpoints back.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};

use super::pools::Uses;
use super::versions::upgrade;
use super::{Durable, EngineError, Inner, duration_ms};
use crate::current::{Cancel, Halt};
use crate::error::SharedError;
use crate::event::{EventKind, Reporter};
use crate::history::Failure;
use crate::run::{BranchOf, Cursor, Done, End, Hold, Joining, Journal, Rollback, Waited};
use crate::store::{Checkpoint, Lease, Status, StoreError, Wait};
use crate::{Graph, Machine, RunError, RunId, Signal};

/// What a checkpoint's `snapshot` holds, written from borrowed parts.
#[derive(Serialize)]
pub(crate) struct SnapshotOut<'a, S, C, O> {
    pub state: Option<&'a S>,
    pub context: &'a C,
    pub attempt: u32,
    pub visit: u64,
    pub steps: u64,
    pub visits: BTreeMap<&'static str, u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<&'a O>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a RunError>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub undo: &'a [Done<S>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<&'a Rollback>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub failures: &'a [Failure],
    #[serde(skip_serializing_if = "is_zero")]
    pub takeovers: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joining: Option<&'a Joining<S>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<BranchOf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_output: Option<&'a serde_json::Value>,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

/// What a checkpoint's `snapshot` holds, read back.
#[derive(Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>, C: Deserialize<'de>, O: Deserialize<'de>"))]
pub(crate) struct SnapshotIn<S, C, O> {
    pub state: Option<S>,
    pub context: C,
    pub attempt: u32,
    pub visit: u64,
    pub steps: u64,
    pub visits: BTreeMap<String, u32>,
    #[serde(default = "none", deserialize_with = "present")]
    pub output: Option<O>,
    #[serde(default)]
    pub error: Option<RunError>,
    /// The completed visits a failure would undo.
    #[serde(default = "Vec::new")]
    pub undo: Vec<Done<S>>,
    /// A rollback under way.
    #[serde(default)]
    pub rollback: Option<Rollback>,
    /// The failed attempts of the current visit.
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// The takeovers of the current visit (`EngineBuilder::max_reassignments`); absent from
    /// checkpoints written before it was counted, and when 0.
    #[serde(default)]
    pub takeovers: u32,
    /// The run's own priority (`Engine::start_with_priority`); absent when it has none.
    #[serde(default)]
    pub priority: Option<i32>,
    /// The fork whose branches the run waits for; absent when it waits for none.
    #[serde(default = "none")]
    pub joining: Option<Joining<S>>,
    /// The fork this run is a branch of; absent for a run started on its own.
    #[serde(default)]
    pub branch: Option<BranchOf>,
    /// A finished branch's output, for its fork's join.
    #[serde(default)]
    pub branch_output: Option<serde_json::Value>,
}

fn none<O>() -> Option<O> {
    None
}

/// An output whose key is present: `null` is read as the output it is (`()`, a `None`), or
/// refused, never taken for no output.
fn present<'de, D: Deserializer<'de>, O: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<O>, D::Error> {
    O::deserialize(deserializer).map(Some)
}

/// The parts of a snapshot the engine reads back with the machine's own types: the state and
/// the undo list (as a claim reads them), the context (as a claim, and a signal, read it),
/// the output (as a finished run's handle reads it). The rest is the engine's own, and
/// always reads back.
#[derive(Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>, C: Deserialize<'de>, O: Deserialize<'de>"))]
#[allow(dead_code)] // read only to be checked
struct Readable<S, C, O> {
    state: Option<S>,
    context: C,
    #[serde(default = "none", deserialize_with = "present")]
    output: Option<O>,
    #[serde(default = "Vec::new")]
    undo: Vec<Done<S>>,
}

/// `snapshot` as JSON, once it is known to read back: a snapshot that would not (a NaN,
/// which serde_json writes as `null`; a value nested past serde_json's recursion limit) is
/// refused before it reaches the store, rather than found unreadable after.
pub(crate) fn readable<S, C, O, R>(
    snapshot: &SnapshotOut<'_, S, C, O>,
) -> serde_json::Result<String>
where
    S: Serialize + DeserializeOwned,
    C: Serialize + DeserializeOwned,
    O: Serialize,
    R: DeserializeOwned,
{
    let json = serde_json::to_string(snapshot)?;
    serde_json::from_str::<Readable<S, C, R>>(&json)?;
    Ok(json)
}

fn visits(graph: &Graph, counts: &[u32]) -> BTreeMap<&'static str, u32> {
    graph
        .states
        .iter()
        .zip(counts)
        .filter(|(_, count)| **count > 0)
        .map(|(state, count)| (state.name, *count))
        .collect()
}

/// Visit counts read back from a snapshot, keyed by `graph`'s own names; names the graph does
/// not have are dropped.
pub(crate) fn stored_visits(
    graph: &Graph,
    counts: &BTreeMap<String, u32>,
) -> BTreeMap<&'static str, u32> {
    graph
        .states
        .iter()
        .filter_map(|info| counts.get(info.name).map(|count| (info.name, *count)))
        .collect()
}

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

    fn event(&self, state: &'static str, kind: impl FnOnce() -> EventKind) {
        if self.inner.events.receiver_count() > 0 {
            self.reporter(state).send(kind());
        }
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
            self.event(state, || EventKind::WaitingForPool { pool });
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

/// Reads a finished run's output from its last checkpoint's snapshot.
pub(crate) fn output<M: Durable>(snapshot: &str) -> Result<Option<M::Output>, String>
where
    M::Output: DeserializeOwned,
{
    let snapshot: SnapshotIn<IgnoredAny, IgnoredAny, M::Output> =
        serde_json::from_str(snapshot).map_err(|error| error.to_string())?;
    Ok(snapshot.output)
}

/// Whether a snapshot was written in the middle of a rollback. One that does not read back
/// is not: the run's resume reports it.
pub(crate) fn rolling_back(snapshot: &str) -> bool {
    serde_json::from_str::<SnapshotIn<IgnoredAny, IgnoredAny, IgnoredAny>>(snapshot)
        .is_ok_and(|snapshot| snapshot.rollback.is_some())
}

/// Reads a failed run's error from its last checkpoint.
pub(crate) fn error(latest: &Checkpoint) -> Result<Option<RunError>, String> {
    let snapshot: SnapshotIn<IgnoredAny, IgnoredAny, IgnoredAny> =
        serde_json::from_str(&latest.snapshot).map_err(|error| error.to_string())?;
    Ok(snapshot.error)
}

/// A waiting run's last checkpoint with `signal` delivered: the checkpoint that follows it.
pub(crate) fn deliver_stored<M: Durable, S: Signal<M>>(
    latest: &Checkpoint,
    signal: serde_json::Value,
    now: u64,
) -> Result<Checkpoint, EngineError> {
    let run = latest.run;
    let graph = M::graph();
    let (mut state, snapshot) = signalled_snapshot::<M>(latest)?;
    let name = graph.states[M::index(&state)].name;
    check_signal::<M, S>(run, Some(name))?;
    // A run rolling back waits for nothing, whatever state it failed in.
    if !M::waits_for_signal(&state) || snapshot.rollback.is_some() {
        return Err(EngineError::NotWaiting { run, state: Some(name.into()) });
    }
    // A signal is written as JSON before it reaches the state: one that does not read back
    // as the state's (a NaN written as `null` where a float is due) is refused here.
    let unstorable =
        |source| EngineError::Unstorable { run, machine: M::NAME, state: name, source };
    M::deliver_signal(&mut state, signal).map_err(unstorable)?;
    // A signal that serializes to JSON `null` (a unit struct) would read back as no signal:
    // the run would wait on, and the sender would never know.
    if M::waits_for_signal(&state) {
        return Err(EngineError::Serialize {
            run,
            machine: M::NAME,
            detail: format!(
                "a {} is stored as JSON null, which reads back as no signal; give the signal \
                 type a field (a unit struct cannot be told from none)",
                std::any::type_name::<S>()
            ),
        });
    }
    signalled_checkpoint::<M>(latest, &state, &snapshot, now)
}

/// A waiting run's last checkpoint read for a signal, written by this version of `M`: its
/// state, and the rest of its snapshot.
pub(crate) type Signalled<M> =
    (<M as Machine>::State, SnapshotIn<<M as Machine>::State, <M as Machine>::Context, IgnoredAny>);

/// A waiting run's last checkpoint read for a signal: its state, taken out of the snapshot,
/// and the rest, for [`signalled_checkpoint`] once the state has its signal.
pub(crate) fn signalled_snapshot<M: Durable>(
    latest: &Checkpoint,
) -> Result<Signalled<M>, EngineError> {
    let run = latest.run;
    let graph = M::graph();
    if latest.version != graph.version || !graph.has_fingerprint(&latest.fingerprint) {
        return Err(EngineError::Incompatible {
            run,
            machine: M::NAME.into(),
            stored_version: latest.version,
            stored_fingerprint: latest.fingerprint.to_string(),
            version: graph.version,
            fingerprint: graph.fingerprint,
            why: "let an engine with this version claim the run first (it migrates it), then \
                  signal it",
        });
    }
    let corrupt = |detail: String| EngineError::Corrupt { run, machine: M::NAME.into(), detail };
    let mut snapshot: SnapshotIn<M::State, M::Context, IgnoredAny> =
        serde_json::from_str(&latest.snapshot).map_err(|error| {
            corrupt(format!("checkpoint {} does not read as this machine's: {error}", latest.seq))
        })?;
    let Some(state) = snapshot.state.take() else {
        return Err(corrupt(format!("checkpoint {} holds no state", latest.seq)));
    };
    Ok((state, snapshot))
}

/// The checkpoint after `latest` once `state` (read with `snapshot`) received its signal:
/// runnable at once, unless paused, since the wait is over.
pub(crate) fn signalled_checkpoint<M: Durable>(
    latest: &Checkpoint,
    state: &M::State,
    snapshot: &SnapshotIn<M::State, M::Context, IgnoredAny>,
    now: u64,
) -> Result<Checkpoint, EngineError> {
    let graph = M::graph();
    let name = graph.states[M::index(state)].name;
    let unstorable =
        |source| EngineError::Unstorable { run: latest.run, machine: M::NAME, state: name, source };
    let out = SnapshotOut::<M::State, M::Context, ()> {
        state: Some(state),
        context: &snapshot.context,
        attempt: snapshot.attempt,
        visit: snapshot.visit,
        steps: snapshot.steps,
        visits: stored_visits(graph, &snapshot.visits),
        output: None,
        error: None,
        undo: &snapshot.undo,
        rollback: snapshot.rollback.as_ref(),
        failures: &snapshot.failures,
        takeovers: snapshot.takeovers,
        priority: snapshot.priority,
        joining: snapshot.joining.as_ref(),
        branch: snapshot.branch,
        branch_output: None,
    };
    let snapshot = readable::<_, _, _, IgnoredAny>(&out).map_err(unstorable)?;
    Ok(Checkpoint {
        seq: latest.seq + 1,
        fingerprint: Cow::Borrowed(graph.fingerprint),
        wake_at: None,
        wait: None,
        lease: None,
        at: now,
        snapshot,
        entries: "[]".into(),
        ..latest.clone()
    })
}

/// Refuses a signal of type `S` for a run waiting in `waiting` (or in no state).
pub(crate) fn check_signal<M: Durable, S: Signal<M>>(
    run: RunId,
    waiting: Option<&'static str>,
) -> Result<(), EngineError> {
    let Some(state) = waiting else {
        return Err(EngineError::NotWaiting { run, state: None });
    };
    let expected = M::graph().state(state).and_then(|info| info.signal).map(|signal| signal.ty);
    match expected {
        None => Err(EngineError::NotWaiting { run, state: Some(state.into()) }),
        Some(_) if S::STATES.contains(&state) => Ok(()),
        Some(expected) => Err(EngineError::WrongSignal {
            run,
            state: state.into(),
            expected,
            got: std::any::type_name::<S>(),
        }),
    }
}
