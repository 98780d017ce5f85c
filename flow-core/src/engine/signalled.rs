//! Delivering a signal to a run that waits for it in the store: the checkpoint that follows
//! its last one, written from outside (by [`Engine::signal`](super::Engine::signal) and the
//! JSON path alike).

use std::borrow::Cow;

use serde::de::IgnoredAny;

use super::snapshot::{SnapshotIn, SnapshotOut, due_now, readable, stored_visits};
use super::{Durable, EngineError};
use crate::store::Checkpoint;
use crate::{Machine, RunId, Signal};

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
        fingerprint: Cow::Borrowed(graph.fingerprint),
        snapshot,
        ..due_now(latest.clone(), now)
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
