//! What makes a run durable: its checkpoints, and reading them back into a typed run.

use std::any::TypeId;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::{Durable, Ended, EngineError, Inner, Migrate};
use crate::event::{EventKind, Reporter};
use crate::history::Entry;
use crate::id::{Cancel, Halt};
use crate::run::{Cursor, Done, End, Jitter, Journal, Rollback, Waited, drive};
use crate::store::{Checkpoint, Status, StoreError};
use crate::{Graph, RunError, RunId, Signal};

/// What a checkpoint's `snapshot` holds, written from borrowed parts.
#[derive(Serialize)]
struct SnapshotOut<'a, S, C, O> {
    state: Option<&'a S>,
    context: &'a C,
    attempt: u32,
    visit: u64,
    steps: u64,
    visits: BTreeMap<&'static str, u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    output: Option<&'a O>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a RunError>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    undo: &'a [Done<S>],
    #[serde(skip_serializing_if = "Option::is_none")]
    rollback: Option<&'a Rollback>,
}

/// What a checkpoint's `snapshot` holds, read back.
#[derive(Deserialize)]
pub(crate) struct SnapshotIn<S, C, O> {
    pub state: Option<S>,
    pub context: C,
    pub attempt: u32,
    pub visit: u64,
    pub steps: u64,
    pub visits: BTreeMap<String, u32>,
    #[serde(default = "none")]
    pub output: Option<O>,
    #[serde(default)]
    pub error: Option<RunError>,
    /// The completed visits a failure would undo.
    #[serde(default = "Vec::new")]
    pub undo: Vec<Done<S>>,
    /// A rollback under way.
    #[serde(default)]
    pub rollback: Option<Rollback>,
}

fn none<O>() -> Option<O> {
    None
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
fn stored_visits(graph: &Graph, counts: &BTreeMap<String, u32>) -> BTreeMap<&'static str, u32> {
    graph
        .states
        .iter()
        .filter_map(|info| counts.get(info.name).map(|count| (info.name, *count)))
        .collect()
}

/// The journal of a durable run: a checkpoint per step, written before the run moves on.
pub(crate) struct DurableJournal<M> {
    pub inner: Arc<Inner>,
    pub run: RunId,
    /// History entries already in a checkpoint.
    pub recorded: usize,
    /// The state the run was last recorded in, for checkpoints that carry no state.
    pub state_name: &'static str,
    /// The snapshot of a completed run's last checkpoint, handed to its handle so the output
    /// need not be read back from the store.
    pub completed: Option<Arc<str>>,
    /// Set by `Engine::cancel`.
    pub cancel: Arc<Cancel>,
    pub machine: PhantomData<fn() -> M>,
}

impl<M: Durable> DurableJournal<M> {
    fn checkpoint(
        &mut self,
        state: Option<&M::State>,
        cursor: &Cursor<M::State>,
        cx: &M::Context,
        end: Option<&End<M::Output>>,
    ) -> Result<Checkpoint, EngineError> {
        let graph = M::graph();
        if let Some(state) = state {
            self.state_name = graph.states[M::index(state)].name;
            // Open to signals from the moment the wait is being checkpointed: a signal sent as
            // soon as the checkpoint shows the wait is taken, not refused.
            let waits = end.is_none() && cursor.rollback.is_none() && M::waits_for_signal(state);
            *lock(&self.cancel.waiting) = waits.then_some(self.state_name);
        }
        let (status, output, error) = match end {
            None => (Status::Running, None, None),
            Some(End::Done(output)) => (Status::Completed, Some(output), None),
            Some(End::Failed(error)) => (Status::Failed, None, Some(error)),
            Some(End::Cancelled) => (Status::Cancelled, None, None),
            Some(End::Paused(error)) => (Status::Paused, None, error.as_ref()),
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
        };
        let serialize_error = |error: serde_json::Error| EngineError::Serialize {
            run: self.run,
            machine: M::NAME,
            detail: error.to_string(),
        };
        let snapshot = serde_json::to_string(&snapshot).map_err(serialize_error)?;
        if status == Status::Completed {
            self.completed = Some(snapshot.as_str().into());
        }
        let entries =
            serde_json::to_string(&cursor.history[self.recorded..]).map_err(serialize_error)?;
        self.recorded = cursor.history.len();
        Ok(Checkpoint {
            run: self.run,
            seq: cursor.seq,
            machine: Cow::Borrowed(M::NAME),
            version: graph.version,
            fingerprint: Cow::Borrowed(graph.fingerprint),
            status,
            state: Cow::Borrowed(self.state_name),
            wake_at: cursor.wake_at,
            snapshot,
            entries,
        })
    }

    fn save(
        &self,
        checkpoint: Result<Checkpoint, EngineError>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send + use<M> {
        let inner = Arc::clone(&self.inner);
        let reporter = self.reporter(self.state_name);
        async move {
            let checkpoint = checkpoint?;
            let seq = checkpoint.seq;
            inner.store.save(checkpoint).await?;
            reporter.send(EventKind::Checkpointed { seq });
            Ok(())
        }
    }

    pub(crate) fn reporter(&self, state: &'static str) -> Reporter {
        Reporter {
            sender: self.inner.events.clone(),
            clock: Arc::clone(&self.inner.clock),
            run: self.run,
            machine: M::NAME,
            state,
        }
    }
}

impl<M: Durable> Journal<M> for DurableJournal<M> {
    type Stop = EngineError;
    const KEEPS_STATE: bool = true;
    const CAN_PAUSE: bool = true;

    fn run(&self) -> RunId {
        self.run
    }

    fn record(
        &mut self,
        state: Option<&M::State>,
        cursor: &Cursor<M::State>,
        cx: &M::Context,
        end: Option<&End<M::Output>>,
    ) -> impl Future<Output = Result<(), EngineError>> + Send {
        let checkpoint = self.checkpoint(state, cursor, cx, end);
        self.save(checkpoint)
    }

    fn backoff(
        &mut self,
        state: &M::State,
        cursor: &mut Cursor<M::State>,
        cx: &M::Context,
        delay: Duration,
    ) -> impl Future<Output = Result<(), EngineError>> + Send {
        cursor.wake_at = Some(Journal::<M>::wake_at(self, delay));
        let checkpoint = self.checkpoint(Some(state), cursor, cx, None);
        let saved = self.save(checkpoint);
        let cancel = Arc::clone(&self.cancel);
        async move {
            saved.await?;
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = cancel.requested() => {}
            }
            Ok(())
        }
    }

    fn resume_backoff(&mut self, cursor: &mut Cursor<M::State>) -> impl Future<Output = ()> + Send {
        let left = cursor.wake_at.map_or(0, |wake_at| wake_at.saturating_sub(self.inner.now_ms()));
        let cancel = Arc::clone(&self.cancel);
        async move {
            tokio::select! {
                () = tokio::time::sleep(Duration::from_millis(left)) => {}
                () = cancel.requested() => {}
            }
        }
    }

    fn wake_at(&self, delay: Duration) -> u64 {
        self.inner.now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
    }

    fn halt(&self) -> Option<Halt> {
        self.cancel.halt()
    }

    fn wait_signal(
        &mut self,
        state: &'static str,
        cursor: &Cursor<M::State>,
    ) -> impl Future<Output = Waited> + Send {
        let left = cursor.wake_at.map(|wake_at| wake_at.saturating_sub(self.inner.now_ms()));
        let control = Arc::clone(&self.cancel);
        *lock(&control.waiting) = Some(state);
        async move {
            let deadline = async {
                match left {
                    Some(left) => tokio::time::sleep(Duration::from_millis(left)).await,
                    None => std::future::pending().await,
                }
            };
            let mail = async {
                loop {
                    let delivered = control.delivered.notified();
                    if let Some(delivery) = lock(&control.mailbox).take() {
                        return delivery;
                    }
                    delivered.await;
                }
            };
            let waited = tokio::select! {
                delivery = mail => Waited::Signal(delivery),
                () = deadline => Waited::TimedOut,
                () = control.requested() => Waited::Halted,
            };
            *lock(&control.waiting) = None;
            // A signal that lost the race with the deadline or a stop goes back to its sender.
            drop(lock(&control.mailbox).take());
            waited
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

    fn injected(&self, state: &'static str, attempt: u32) -> bool {
        self.inner.faults.as_ref().is_some_and(|faults| faults.fails(M::NAME, state, attempt))
    }
}

/// A machine as the engine's registry holds it: typed inside, erased outside, so runs can be
/// resumed by machine name.
pub(crate) trait Registered: Send + Sync {
    fn type_id(&self) -> TypeId;
    fn name(&self) -> &'static str;
    fn graph(&self) -> &'static Graph;
    /// Rebuilds a run from its last checkpoint and full history, and starts it.
    fn resume(
        &self,
        inner: &Arc<Inner>,
        latest: Checkpoint,
        history: Vec<Entry>,
        done: watch::Sender<Option<Ended>>,
        cancel: Arc<Cancel>,
        unmark: bool,
    ) -> Result<(), EngineError>;
}

pub(crate) struct Registration<M>(pub PhantomData<fn() -> M>);

/// One registered migration step, from a stored version to the next known one.
pub(crate) struct Migration {
    pub from_version: u32,
    pub from_fingerprint: &'static str,
    pub to_version: u32,
    pub to_fingerprint: &'static str,
    /// Old snapshot JSON → new snapshot JSON and the new state's name.
    pub apply: fn(&str) -> Result<(String, &'static str), String>,
}

impl Migration {
    pub fn new<Old: Durable, New: Durable + Migrate<Old>>() -> Migration {
        Migration {
            from_version: Old::graph().version,
            from_fingerprint: Old::graph().fingerprint,
            to_version: New::graph().version,
            to_fingerprint: New::graph().fingerprint,
            apply: migrate::<Old, New>,
        }
    }
}

fn migrate<Old: Durable, New: Durable + Migrate<Old>>(
    snapshot: &str,
) -> Result<(String, &'static str), String> {
    let old: SnapshotIn<Old::State, Old::Context, IgnoredAny> =
        serde_json::from_str(snapshot).map_err(|error| error.to_string())?;
    let state = old.state.ok_or("the checkpoint holds no state to migrate")?;
    if !old.undo.is_empty() || old.rollback.is_some() {
        return Err("the run has completed states with compensations still to run if it fails, \
                    and migrating those is not supported yet: let it finish on the old version"
            .to_owned());
    }
    let (state, context) = New::migrate(state, old.context)
        .map_err(|error| format!("the migration failed: {error}"))?;
    let graph = New::graph();
    let name = graph.states[New::index(&state)].name;
    let new = SnapshotOut::<New::State, New::Context, ()> {
        state: Some(&state),
        context: &context,
        attempt: old.attempt,
        visit: old.visit,
        steps: old.steps,
        // Visit counts follow state names; a renamed state starts counting again.
        visits: stored_visits(graph, &old.visits),
        output: None,
        error: None,
        undo: &[],
        rollback: None,
    };
    Ok((serde_json::to_string(&new).map_err(|error| error.to_string())?, name))
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

    fn resume(
        &self,
        inner: &Arc<Inner>,
        mut latest: Checkpoint,
        history: Vec<Entry>,
        done: watch::Sender<Option<Ended>>,
        cancel: Arc<Cancel>,
        unmark: bool,
    ) -> Result<(), EngineError> {
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
        cursor.history = history;
        cursor.undo = snapshot.undo;
        cursor.rollback = snapshot.rollback;
        let journal = DurableJournal::<M> {
            inner: Arc::clone(inner),
            run,
            recorded: cursor.history.len(),
            state_name: graph.states[M::index(&state)].name,
            completed: None,
            cancel,
            machine: PhantomData,
        };
        let seq = latest.seq;
        journal.event(journal.state_name, || EventKind::Resumed { seq });
        spawn::<M>(journal, state, cursor, snapshot.context, done, unmark);
        Ok(())
    }
}

/// Carries a checkpoint written by an older version of `M` to the current one, through the
/// registered migrations; refuses one that matches no known version.
fn upgrade<M: Durable>(
    migrations: &[Migration],
    latest: &mut Checkpoint,
) -> Result<(), EngineError> {
    let graph = M::graph();
    let incompatible = |latest: &Checkpoint, why: &'static str| EngineError::Incompatible {
        run: latest.run,
        machine: M::NAME.into(),
        stored_version: latest.version,
        stored_fingerprint: latest.fingerprint.to_string(),
        version: graph.version,
        fingerprint: graph.fingerprint,
        why,
    };
    // Each step raises the version, so this ends; the bound guards a malformed registry.
    for _ in 0..=migrations.len() {
        if latest.version == graph.version && latest.fingerprint == graph.fingerprint {
            return Ok(());
        }
        let step = migrations.iter().find(|step| {
            step.from_version == latest.version && step.from_fingerprint == latest.fingerprint
        });
        let Some(step) = step else {
            let why = if latest.version == graph.version {
                "the machine's shape changed without a version bump: declare \
                     #[flow::machine(version = N)] with a higher N, and register a migration \
                     from the old version with EngineBuilder::migration"
            } else if latest.version > graph.version {
                "the run was written by a newer version of the machine than this binary has"
            } else {
                "no registered migration starts from the stored version and fingerprint: \
                     keep the old version's module and register EngineBuilder::migration::<Old, New>()"
            };
            return Err(incompatible(latest, why));
        };
        let (snapshot, state) =
            (step.apply)(&latest.snapshot).map_err(|error| EngineError::Migration {
                run: latest.run,
                machine: M::NAME.into(),
                from: step.from_version,
                to: step.to_version,
                detail: error,
            })?;
        latest.snapshot = snapshot;
        latest.state = Cow::Borrowed(state);
        latest.version = step.to_version;
        latest.fingerprint = Cow::Borrowed(step.to_fingerprint);
    }
    Err(incompatible(latest, "the registered migrations do not lead to this version"))
}

/// Runs a durable run to its end on the engine's runtime, telling `done` how it ended.
pub(crate) fn spawn<M: Durable>(
    mut journal: DurableJournal<M>,
    state: M::State,
    mut cursor: Cursor<M::State>,
    mut cx: M::Context,
    done: watch::Sender<Option<Ended>>,
    unmark: bool,
) {
    let inner = Arc::clone(&journal.inner);
    let run = journal.run;
    tokio::spawn(async move {
        // A stuck or paused run is running again. Marked here, before its next checkpoint,
        // so the mark cannot land after the run's end and hide it.
        if unmark && let Err(error) = inner.store.mark(run, Status::Running, None).await {
            let _ = done.send(Some(Ended::Stopped(error.to_string())));
            inner.forget(run);
            return;
        }
        // Runs beyond the engine's limit wait here, checkpointed and cheap.
        let permit = Arc::clone(&inner.slots).acquire_owned().await;
        let mut jitter = Jitter::new(inner.seed.map(|seed| seed ^ run.as_u128() as u64));
        let max_steps = M::graph().max_steps;
        let ended =
            match drive::<M, _>(state, &mut cursor, &mut cx, &mut journal, &mut jitter, max_steps)
                .await
            {
                Ok(_) => Ended::Finished(journal.completed.take()),
                Err(EngineError::Store(StoreError::Conflict { seq, stored, .. })) => {
                    Ended::Conflict { seq, stored }
                }
                Err(error) => Ended::Stopped(error.to_string()),
            };
        drop(permit);
        // Forgotten first: whoever learns of the end must not find the run still live.
        inner.forget(run);
        let _ = done.send(Some(ended));
    });
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

/// Locks `mutex`, whose holders never panic while holding it.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A waiting run's last checkpoint with `signal` delivered: the checkpoint that follows it.
pub(crate) fn deliver_stored<M: Durable, S: Signal<M>>(
    latest: &Checkpoint,
    signal: serde_json::Value,
) -> Result<Checkpoint, EngineError> {
    let run = latest.run;
    let graph = M::graph();
    if latest.version != graph.version || latest.fingerprint != graph.fingerprint {
        return Err(EngineError::Incompatible {
            run,
            machine: M::NAME.into(),
            stored_version: latest.version,
            stored_fingerprint: latest.fingerprint.to_string(),
            version: graph.version,
            fingerprint: graph.fingerprint,
            why: "resume the run first (Engine::resume_pending migrates it), then signal it",
        });
    }
    let corrupt = |detail: String| EngineError::Corrupt { run, machine: M::NAME.into(), detail };
    let mut snapshot: SnapshotIn<M::State, M::Context, IgnoredAny> =
        serde_json::from_str(&latest.snapshot).map_err(|error| {
            corrupt(format!("checkpoint {} does not read as this machine's: {error}", latest.seq))
        })?;
    let Some(state) = snapshot.state.as_mut() else {
        return Err(corrupt(format!("checkpoint {} holds no state", latest.seq)));
    };
    let name = graph.states[M::index(state)].name;
    check_signal::<M, S>(run, Some(name))?;
    // A run rolling back waits for nothing, whatever state it failed in.
    if !M::waits_for_signal(state) || snapshot.rollback.is_some() {
        return Err(EngineError::NotWaiting { run, state: Some(name.into()) });
    }
    M::deliver_signal(state, signal).map_err(|error| EngineError::Serialize {
        run,
        machine: M::NAME,
        detail: format!("the signal does not read back as the state's: {error}"),
    })?;
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
    };
    let snapshot = serde_json::to_string(&out).map_err(|error| EngineError::Serialize {
        run,
        machine: M::NAME,
        detail: error.to_string(),
    })?;
    Ok(Checkpoint {
        seq: latest.seq + 1,
        wake_at: None,
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
