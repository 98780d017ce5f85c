//! A fork's branches in the store: each branch runs as a run of its own, which any engine may
//! claim, checkpoint, retry, park on a signal or a timer, and take over after a crash, while
//! the run that forked waits in the store (`Wait::Join`) holding no slot.
//!
//! A branch's run id derives from the forking run's id, the fork's visit and the branch's
//! place ([`RunId::branch`]), so a fork resumed after a crash finds the branches it had
//! started: finished ones are read, never run again; unfinished ones go on from their own
//! last checkpoint.
//!
//! Waking: a branch whose run ends makes the forking run runnable, if it waits. A branch that
//! ends while the forking run is held (looking at its branches) cannot, so the forking run
//! looks once more after it has written its wait; and it looks again every [`RECHECK`]
//! regardless, in case a branch's engine died between its last checkpoint and the wake.
//! Looking costs a read per open branch, so an engine counts the open branches of the forks
//! it looked at: a branch that completes there wakes its forking run only if it was the last
//! (or the fork wants more: a `limit` with items left, or `first = k`).

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use serde::de::IgnoredAny;

use super::journal::{DurableJournal, Stop};
use super::snapshot::{SnapshotIn, due_now, error};
use super::{Durable, Engine, EngineError, Inner, duration_ms, lock};
use crate::run::{BranchOf, Cursor, Done, End, Joining, Journal, arrive};
use crate::store::{Checkpoint, Status, StoreError, Wait};
use crate::{BranchError, RunError, RunId};

/// How long a run waiting for its branches waits before it looks at them again, though no
/// branch woke it.
pub(crate) const RECHECK: Duration = Duration::from_secs(5);

/// What [`crate::run::Journal::await_branches`] does for a durable run.
pub(crate) async fn await_branches<M: Durable>(
    journal: &mut DurableJournal<M>,
    fork: M::State,
    branches: Option<Vec<M::State>>,
    cursor: &mut Cursor<M::State>,
    cx: Option<M::Context>,
) -> Result<Result<Vec<serde_json::Value>, RunError>, Stop> {
    let graph = M::graph();
    let info = &graph.states[M::index(&fork)];
    let Some(cx) = cx else {
        let message = "the machine forks but gives its branches no context: a bug in flow";
        return Ok(Err(RunError::permanent(info.name, message.to_owned())));
    };
    let inner = Arc::clone(&journal.inner);
    let parent = journal.run;
    cursor.wake_at = None;
    if let Some(branches) = branches {
        let Ok(count) = u32::try_from(branches.len()) else {
            let message = format!("a fork of {} branches is more than flow keeps", branches.len());
            return Ok(Err(RunError::permanent(info.name, message)));
        };
        let joining = Joining {
            visit: cursor.visit,
            branches: count,
            started: 0,
            settled: 0,
            pending: branches,
        };
        cursor.joining = Some(joining);
        // The fork's outcome is durable before any branch starts: from here on, a crash
        // resumes these branches, never ones a second attempt of the fork would make.
        cursor.seq += 1;
        journal.record(Some(&fork), cursor, &cx, None).await?;
    }
    let Some(joining) = cursor.joining.as_mut() else {
        let message = "the run waits for no branches: a bug in flow";
        return Ok(Err(RunError::permanent(info.name, message.to_owned())));
    };
    let visit = joining.visit;
    let branch = move |index| RunId::branch(parent, visit, index);

    // The branches started and not known to have finished.
    let ids: Vec<RunId> = (joining.settled..joining.started).map(branch).collect();
    let looked = statuses(&inner, &ids).await.map_err(EngineError::from)?;
    let collect = info.fork.is_some_and(|fork| fork.collect);
    let mut open = Vec::new();
    let (mut failed, mut cancelled) = (None, None);
    let mut completed: Vec<u32> = (0..joining.settled).collect();
    for (index, status) in (joining.settled..).zip(&looked) {
        match status {
            Some(Status::Completed) => completed.push(index),
            // With `collect`, a branch that failed has ended with a result like any other.
            Some(Status::Failed | Status::Cancelled) if collect => completed.push(index),
            Some(Status::Failed) => {
                failed.get_or_insert(index);
            }
            // Cut off by a sibling's failure, or by an operator.
            Some(Status::Cancelled) => {
                cancelled.get_or_insert(index);
            }
            _ => open.push(index),
        }
    }
    let failed = failed.or(cancelled);
    let settled = looked.iter().take_while(|status| **status == Some(Status::Completed)).count();
    joining.settled += settled as u32;

    let engine = Engine { inner: Arc::clone(&inner) };
    lock(&inner.joins).remove(&parent);
    let undoes = M::graph().states.iter().any(|state| state.compensate.is_some());
    if let Some(index) = failed {
        // The join can no longer fire: the other branches are cut off.
        join_all(open.iter().map(|&index| engine.cancel(branch(index)))).await;
        joining.pending.clear();
        let error = branch_error(&inner, info.name, branch(index), index).await?;
        if !undoes {
            return Ok(Err(error));
        }
        if open.is_empty() {
            // Every branch has stopped: what they completed is undone with the run's own
            // states, newest first (the failed branch undid its own already).
            let ids: Vec<RunId> = (0..joining.started).map(branch).collect();
            cursor.undo.extend(completed_visits::<M>(&inner, &ids).await?);
            return Ok(Err(error));
        }
        // Waits for the cut-off branches to stop, each at its next safe point.
    }
    let first = if failed.is_some() { u32::MAX } else { first_of(info, joining.branches) };
    // The join fires once: with every branch's output, or with the first k a fan-out asks
    // for (in the items' order among those that ended), the others cut off. Any that end
    // after all the same are recorded in their own runs, and wake a run that has moved on.
    if completed.len() >= first as usize {
        join_all(open.iter().map(|&index| engine.cancel(branch(index)))).await;
        joining.pending.clear();
        let ended = completed[..first as usize].iter().map(|&index| (index, branch(index)));
        let ended: Vec<(u32, RunId)> = ended.collect();
        return Ok(Ok(outputs(&inner, M::NAME, parent, &ended, collect).await?));
    }

    // As many new branches as the fork's limit makes room for.
    let limit = info.fork.and_then(|fork| fork.limit).unwrap_or(u32::MAX).max(1) as usize;
    let room = limit.saturating_sub(open.len()).min(joining.pending.len());
    if room > 0 {
        let next = joining.started;
        let starting = joining.pending.drain(..room);
        let priority = cursor.priority;
        let started = starting.enumerate().map(|(offset, state)| {
            let of = BranchOf { parent, index: next + offset as u32 };
            start::<M>(&inner, branch(of.index), of, state, M::fork_context(&cx), priority)
        });
        for started in join_all(started.collect::<Vec<_>>()).await {
            started?;
        }
        joining.started += room as u32;
        open.extend(next..joining.started);
    }

    // Waits in the store, holding no slot, until a branch wakes it (or the recheck): the
    // last of its open branches, when only their ends matter.
    if joining.pending.is_empty() && info.fork.and_then(|fork| fork.first).is_none() {
        lock(&inner.joins).insert(parent, open.len() as u32);
    }
    let now = inner.now_ms();
    cursor.wake_at = Some(now.saturating_add(duration_ms(RECHECK)));
    cursor.seq += 1;
    journal.record(Some(&fork), cursor, &cx, None).await?;
    if !journal.released {
        // Shutting down: the run was handed back to the store as it was.
        return Err(Stop::Waiting);
    }
    // A branch that ended while this run was held could not wake it.
    let open: Vec<RunId> = open.into_iter().map(branch).collect();
    if let Ok(now) = statuses(&inner, &open).await
        && now.iter().any(|status| status.is_some_and(Status::is_finished))
    {
        wake(&inner, parent).await;
    }
    Err(Stop::Waiting)
}

/// How many branch outputs the join of the fork `info` takes, of `branches`.
fn first_of(info: &crate::graph::StateInfo, branches: u32) -> u32 {
    info.fork.and_then(|fork| fork.first).map_or(branches, |first| first.min(branches))
}

/// The completed visits with a compensation of the branch runs `runs`, in their order, each
/// oldest first, as their last checkpoints keep them.
async fn completed_visits<M: Durable>(
    inner: &Inner,
    runs: &[RunId],
) -> Result<Vec<Done<M::State>>, EngineError> {
    let read = join_all(runs.iter().map(|run| inner.store.latest(*run))).await;
    let mut visits = Vec::new();
    for (run, latest) in runs.iter().zip(read) {
        let Some(latest) = latest? else { continue };
        let snapshot: SnapshotIn<M::State, IgnoredAny, IgnoredAny> =
            serde_json::from_str(&latest.snapshot).map_err(|error| EngineError::Corrupt {
                run: *run,
                machine: M::NAME.into(),
                detail: format!("checkpoint {} does not read back: {error}", latest.seq),
            })?;
        visits.extend(snapshot.undo);
    }
    Ok(visits)
}

/// The statuses of `runs`, read at once; `None` for one the store does not have.
async fn statuses(inner: &Inner, runs: &[RunId]) -> Result<Vec<Option<Status>>, StoreError> {
    let read = join_all(runs.iter().map(|run| inner.store.summary(*run))).await;
    read.into_iter().map(|summary| summary.map(|summary| summary.map(|s| s.status))).collect()
}

/// Writes the checkpoint 0 of branch `of` (run `run`), entered in `state` with `cx`; one
/// already there, from before a crash, is left as it is.
async fn start<M: Durable>(
    inner: &Arc<Inner>,
    run: RunId,
    of: BranchOf,
    state: M::State,
    cx: Option<M::Context>,
    priority: Option<i32>,
) -> Result<(), Stop> {
    let graph = M::graph();
    let Some(cx) = cx else { return Ok(()) };
    let mut cursor = Cursor::new(graph);
    cursor.priority = priority;
    // A branch counts its own steps, from none: a fan-out of many items is not a loop.
    let refused = cursor.enter::<M>(&state, graph.max_steps).err().map(End::Failed);
    let name = graph.states[M::index(&state)].name;
    let mut journal = DurableJournal::<M>::new(inner, run, None, name);
    journal.branch_of = Some(of);
    if refused.is_none() {
        arrive::<M, _>(&state, &mut cursor, &journal);
    }
    let checkpoint = journal.checkpoint(Some(&state), &mut cursor, &cx, refused.as_ref());
    match journal.save(checkpoint).await {
        // Lost: the branch's run exists already.
        Ok(()) | Err(Stop::Lost(_)) => Ok(()),
        Err(stop) => Err(stop),
    }
}

/// The outputs of the ended branches `runs` (each with its place) of `parent`, in order;
/// with `collect`, each as the `Result` the join takes.
async fn outputs(
    inner: &Inner,
    machine: &'static str,
    parent: RunId,
    runs: &[(u32, RunId)],
    collect: bool,
) -> Result<Vec<serde_json::Value>, EngineError> {
    let read = join_all(runs.iter().map(|(_, run)| inner.store.latest(*run))).await;
    let corrupt = |run: RunId, detail: String| EngineError::Corrupt {
        run: parent,
        machine: machine.into(),
        detail: format!("its branch {run} {detail}"),
    };
    let mut outputs = Vec::with_capacity(runs.len());
    for ((index, run), latest) in runs.iter().zip(read) {
        let latest = latest?.ok_or_else(|| corrupt(*run, "is gone from the store".into()))?;
        if collect && latest.status != Status::Completed {
            let message = match (latest.status, error(&latest)) {
                (Status::Cancelled, _) => "the branch was cancelled".to_owned(),
                (_, Ok(Some(error))) => error.to_string(),
                _ => "the branch failed".to_owned(),
            };
            outputs.push(BranchError::json(*index, message));
            continue;
        }
        let snapshot: SnapshotIn<IgnoredAny, IgnoredAny, IgnoredAny> =
            serde_json::from_str(&latest.snapshot)
                .map_err(|error| corrupt(*run, format!("does not read back: {error}")))?;
        let output = snapshot
            .branch_output
            .ok_or_else(|| corrupt(*run, "completed without a branch output".into()))?;
        outputs.push(if collect { serde_json::json!({ "Ok": output }) } else { output });
    }
    Ok(outputs)
}

/// Why branch `index` (run `run`) of the fork at `fork` ended without an output.
async fn branch_error(
    inner: &Inner,
    fork: &'static str,
    run: RunId,
    index: u32,
) -> Result<RunError, EngineError> {
    let latest = inner.store.latest(run).await?;
    let cause = match latest {
        Some(latest) => ended_without_output(&latest),
        None => "is gone from the store".to_owned(),
    };
    Ok(RunError::permanent(fork, format!("branch {index} of the fork (run {run}) {cause}")))
}

/// How a branch's run that did not complete ended, from its last checkpoint `latest`.
fn ended_without_output(latest: &Checkpoint) -> String {
    match latest.status {
        Status::Cancelled => "was cancelled".to_owned(),
        _ => match error(latest) {
            Ok(Some(error)) => format!("failed: {error}"),
            _ => "failed".to_owned(),
        },
    }
}

/// The branch runs a run's fork has started, read from its last checkpoint `latest`; none
/// for a run that waits for no branches (or whose checkpoint does not read back).
pub(crate) fn started(latest: &Checkpoint) -> Vec<RunId> {
    branch_runs(latest, false).unwrap_or_default()
}

/// The branch runs of the fork the run of checkpoint `latest` waits for: those started, or
/// (`all`) every one, started or not.
fn branch_runs(latest: &Checkpoint, all: bool) -> serde_json::Result<Vec<RunId>> {
    let snapshot: SnapshotIn<IgnoredAny, IgnoredAny, IgnoredAny> =
        serde_json::from_str(&latest.snapshot)?;
    let Some(joining) = snapshot.joining else { return Ok(Vec::new()) };
    let count = if all { joining.branches } else { joining.started };
    Ok((0..count).map(|index| RunId::branch(latest.run, joining.visit, index)).collect())
}

/// Whether a branch of `parent`'s fork that ended here (`completed`, or not) wakes it: one
/// that did not complete does; one that completed does if it was the last open branch this
/// engine counted, or if this engine counts none for `parent` (it did not look at the fork
/// last, or the fork wants more than its open branches' ends).
pub(crate) fn wakes(inner: &Inner, parent: RunId, completed: bool) -> bool {
    let mut joins = lock(&inner.joins);
    match joins.get_mut(&parent) {
        Some(open) if completed && *open > 1 => {
            *open -= 1;
            false
        }
        Some(_) => {
            joins.remove(&parent);
            true
        }
        None => true,
    }
}

/// Makes `parent` runnable now if it waits in the store for its branches; does nothing if
/// it does not (it is held, and looks at its branches once it has written its wait).
pub(crate) async fn wake(inner: &Inner, parent: RunId) {
    let Ok(Some(latest)) = inner.store.latest(parent).await else { return };
    if latest.status != Status::Running || latest.wait != Some(Wait::Join) {
        return;
    }
    // Refused when another branch woke it first, or an engine claimed it meanwhile.
    if inner.store.save(due_now(latest, inner.now_ms())).await.is_ok() {
        inner.runnable();
    }
}

impl Engine {
    /// The runs of the branches of the fork that run `run` waits for, in the fork's order
    /// (for a fan-out, the items' order); empty when it waits for none. Each is a run of the
    /// same machine: read it with [`Engine::status`], signal a branch that waits for one
    /// with [`Engine::signal`] and the branch's id. Ids of branches a fan-out's `limit`
    /// has not started yet are listed too (their runs do not exist yet).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`]; [`EngineError::Corrupt`] if its checkpoint does not
    /// read back.
    pub async fn branches(&self, run: RunId) -> Result<Vec<RunId>, EngineError> {
        let latest = self.inner.store.latest(run).await?;
        let latest = latest.ok_or(EngineError::UnknownRun { run })?;
        branch_runs(&latest, true).map_err(|error| EngineError::Corrupt {
            run,
            machine: latest.machine.to_string(),
            detail: format!("checkpoint {} does not read back: {error}", latest.seq),
        })
    }
}
