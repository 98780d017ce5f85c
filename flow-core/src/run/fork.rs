//! Parallel branches: a fork state's branches run at once, each on its own copy of the
//! context, and the join state is entered with their outputs in the fork's order.

use std::future::Future;
use std::pin::Pin;

use futures_util::stream::{self, StreamExt};
use serde::{Deserialize, Serialize};

use super::attempt::JitterRng;
use super::drive::{arrive, drive, reroute};
use super::rollback::fail;
use super::{Cursor, End, Journal, RunError};
use crate::history::Outcome;
use crate::{Machine, RunId};

/// A fork whose branches run as runs of their own in the store, while the run that forked
/// waits for them (`Wait::Join`): what its checkpoints keep of the fork.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Joining<S> {
    /// The fork's visit: with the run's id and a branch's place, it makes the branch's run
    /// id ([`RunId::branch`]).
    pub visit: u64,
    /// How many branches the fork made.
    pub branches: u32,
    /// Branches `0..started` have their runs; the others wait in `pending`, in order, for
    /// room under the fan-out's `limit`.
    pub started: u32,
    /// Branches `0..settled` are known to have finished: later looks skip them.
    pub settled: u32,
    /// The entry states of the branches not started yet.
    #[serde(default = "Vec::new", skip_serializing_if = "Vec::is_empty")]
    pub pending: Vec<S>,
}

/// Why a branch ended without an output, as the join of a fork that collects its branches'
/// results receives it: `#[state(fork(a, b), join = j, collect)]` gives `j` one
/// `Result<Output, BranchError>` per branch (a fan-out, one `Vec` of them), and a branch that
/// fails neither fails the run nor cuts its siblings off.
///
/// ```
/// let failed = flow::BranchError { branch: 1, message: "out of stock".into() };
/// assert_eq!(failed.to_string(), "branch 1 failed: out of stock");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("branch {branch} failed: {message}")]
pub struct BranchError {
    /// The branch's place in the fork (in a fan-out, its item's), from 0.
    pub branch: u32,
    /// What went wrong, in words: the branch's error, or that it was cancelled.
    pub message: String,
}

impl BranchError {
    /// `Err(BranchError)` as the join's parameter reads it, in JSON.
    pub(crate) fn json(branch: u32, message: String) -> serde_json::Value {
        serde_json::json!({ "Err": BranchError { branch, message } })
    }
}

/// What a branch's run keeps of where it belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BranchOf {
    /// The run that forked.
    pub parent: RunId,
    /// The branch's place in the fork, from 0.
    pub index: u32,
}

/// Runs the branches the fork state at `index` returned, then goes to its join: `Ok(next)`
/// with the join state entered and recorded, or `Err(end)` when a branch failed (the run
/// fails with that branch's error, its siblings cancelled) or a loop guard refused the join.
///
/// The history holds the fork state's `Forked` entry, then each branch's entries, branch by
/// branch in the fork's order (not interleaved as they ran).
#[allow(clippy::too_many_arguments)] // the run loop's state, passed through
pub(crate) async fn fork<M: Machine, J: Journal<M>>(
    index: usize,
    attempt: u32,
    branches: Vec<M::State>,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut JitterRng,
    max_steps: u64,
) -> Result<Result<M::State, End<M::Output>>, J::Stop> {
    let graph = M::graph();
    let from = graph.states[index].name;
    let mut parts = Vec::with_capacity(branches.len());
    let mut cursors = Vec::with_capacity(branches.len());
    for branch in branches {
        let (Some(branch_journal), Some(branch_cx)) = (journal.branch(), M::fork_context(cx))
        else {
            let message = "this run cannot run branches in this process";
            let error = RunError::permanent(from, message.to_owned());
            return Ok(
                Err(Box::pin(fail::<M, J>(None, error, cursor, cx, journal, jitter)).await?),
            );
        };
        // `max_steps` guards each path: a branch counts its own steps, from none, so a
        // fan-out of many items is not taken for a loop.
        let mut branch_cursor = Cursor::new(graph);
        branch_cursor.seq = cursor.seq;
        branch_cursor.priority = cursor.priority;
        // A seeded run stays reproducible: each branch's jitter comes from the run's.
        let branch_jitter = JitterRng::new(Some(jitter.rng().u64(..)));
        parts.push((branch, branch_journal, branch_cx, branch_jitter));
        cursors.push(branch_cursor);
    }
    // Each branch's cursor outlives its task: a branch cut off keeps what it completed, for
    // the rollback.
    let runs: Vec<_> = parts
        .into_iter()
        .zip(cursors.iter_mut())
        .map(|((branch, mut branch_journal, mut branch_cx, mut branch_jitter), branch_cursor)| {
            Box::pin(async move {
                match branch_cursor.enter::<M>(&branch, max_steps) {
                    Ok(()) => {
                        arrive::<M, J>(&branch, branch_cursor, &branch_journal);
                        let driven = drive::<M, J>(
                            branch,
                            branch_cursor,
                            &mut branch_cx,
                            &mut branch_journal,
                            &mut branch_jitter,
                            max_steps,
                        );
                        Box::pin(driven).await
                    }
                    Err(error) => Ok(End::Failed(error)),
                }
            })
        })
        .collect();
    // A branch that fails for good ends the fork: the join can no longer fire, so the others
    // are cut off (dropped, in memory) rather than run to no purpose.
    let fork = graph.states[index].fork;
    let limit = fork.and_then(|fork| fork.limit).map_or(usize::MAX, |n| n as usize);
    // A fan-out with `first = k` joins once k branches have ended; the rest are cut off.
    let first = fork.and_then(|fork| fork.first).map_or(usize::MAX, |n| n as usize);
    // With `collect`, a branch's failure is a result like any other.
    let collect = fork.is_some_and(|fork| fork.collect);
    let mut ended = 0;
    let results = join_until(runs, limit, |end| {
        let output = matches!(end, Ok(End::Branch(_)));
        ended += usize::from(output || collect);
        ended >= first || !(output || collect)
    })
    .await;
    let mut outputs = Vec::with_capacity(results.len());
    let mut failed = None;
    let mut branch_history = Vec::new();
    for (at, (end, branch_cursor)) in results.into_iter().zip(cursors.iter_mut()).enumerate() {
        let Some(end) = end else { continue };
        branch_history.append(&mut branch_cursor.history);
        match end? {
            End::Branch(output) if collect => outputs.push(serde_json::json!({ "Ok": output })),
            End::Branch(output) => outputs.push(output),
            End::Failed(error) if collect => {
                outputs.push(BranchError::json(at as u32, error.to_string()));
            }
            End::Failed(error) => {
                failed.get_or_insert(error);
            }
            // A branch ends in a `branch_end` state (the macro checks every branch has one)
            // or fails; in memory nothing halts it.
            End::Done(_) | End::Cancelled | End::Paused(_) => {
                let message = "a branch ended without reaching a `branch_end` state";
                failed.get_or_insert(RunError::permanent(from, message.to_owned()));
            }
        }
    }
    // The run fails: what every branch completed is undone with the rest, newest first (a
    // failed branch undid its own already).
    if failed.is_some() {
        for branch_cursor in &mut cursors {
            cursor.undo.append(&mut branch_cursor.undo);
        }
    }
    let outputs = match failed {
        Some(error) => Err(error),
        None => Ok(outputs),
    };
    // The branches' entries go right after the fork's, which the join writes.
    let at = cursor.history.len();
    let branch_entries = branch_history.len();
    cursor.history.extend(branch_history);
    let joined = join::<M, J>(index, attempt, outputs, cursor, cx, journal, jitter, max_steps);
    let joined = Box::pin(joined).await?;
    let forked = cursor.history.get(at + branch_entries).is_some_and(|entry| {
        entry.state == from && matches!(entry.outcome, Outcome::Forked { .. })
    });
    if forked {
        cursor.history[at..=at + branch_entries].rotate_right(1);
    }
    Ok(joined)
}

/// Goes from the fork state at `index` (its attempt `attempt`) to its join, with its
/// branches' `outputs` in the fork's order: `Ok(next)` with the join entered and recorded, or
/// `Err(end)` when a branch failed (`outputs` is its error), the outputs did not make the
/// join's payload, or a loop guard refused the join.
#[allow(clippy::too_many_arguments)] // the run loop's state, passed through
pub(crate) async fn join<M: Machine, J: Journal<M>>(
    index: usize,
    attempt: u32,
    outputs: Result<Vec<serde_json::Value>, RunError>,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut JitterRng,
    max_steps: u64,
) -> Result<Result<M::State, End<M::Output>>, J::Stop> {
    let from = M::graph().states[index].name;
    let next = outputs.and_then(|outputs| {
        M::join(index, outputs).map_err(|error| {
            let message = format!("the branches' outputs do not make the join's payload: {error}");
            RunError::permanent(from, message)
        })
    });
    cursor.seq += 1;
    match next {
        Err(error) => {
            Ok(Err(Box::pin(fail::<M, J>(None, error, cursor, cx, journal, jitter)).await?))
        }
        Ok(next) => {
            let forked = |join| Outcome::Forked { join };
            let joined = reroute::<M, J>(
                from, attempt, next, forked, cursor, cx, journal, jitter, max_steps,
            );
            Box::pin(joined).await
        }
    }
}

/// Runs the futures, at most `limit` at a time (started in order), until all have finished,
/// or one whose output `stops` says so has: the outputs in the futures' order, `None` for
/// those cut off or never started. Only woken futures are polled, so 10,000 branches cost
/// 10,000 polls per round of wake-ups, not 10,000 each.
async fn join_until<F: Future>(
    futures: Vec<Pin<Box<F>>>,
    limit: usize,
    mut stops: impl FnMut(&F::Output) -> bool,
) -> Vec<Option<F::Output>> {
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let tagged =
        futures.into_iter().enumerate().map(|(at, future)| async move { (at, future.await) });
    let mut running = stream::iter(tagged).buffer_unordered(limit.max(1));
    while let Some((at, output)) = running.next().await {
        let stop = stops(&output);
        outputs[at] = Some(output);
        if stop {
            break;
        }
    }
    outputs
}
