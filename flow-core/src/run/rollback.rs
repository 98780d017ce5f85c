//! Undoing a failed run: its completed states' compensations, newest first.

use tokio::time::Instant;
use tracing::Instrument;

use super::attempt::{JitterRng, guarded, scoped};
use super::drive::announce;
use super::{Cursor, End, FailedCompensation, Journal, Rollback, RunError};
use crate::Machine;
use crate::event::{EventKind, kind};
use crate::history::{Entry, Failure, Outcome};

/// Ends the run with `error` (the cursor's `seq` already advanced), after rolling back the
/// completed states that have a compensation.
pub(crate) async fn fail<M: Machine, J: Journal<M>>(
    state: Option<M::State>,
    error: RunError,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut JitterRng,
) -> Result<End<M::Output>, J::Stop> {
    if cursor.undo.is_empty() {
        let at = error.state();
        let end = End::Failed(error);
        journal.record(state.as_ref(), cursor, cx, Some(&end)).await?;
        return Ok(announce(journal, at, end));
    }
    let rollback =
        Rollback { cause: error, undone: Vec::new(), failed: Vec::new(), trying: Vec::new() };
    // Checkpointed before the first compensation runs: a crash from here on resumes the
    // rollback, not the failed state.
    cursor.rollback = Some(rollback.clone());
    journal.record(state.as_ref(), cursor, cx, None).await?;
    roll_back::<M, J>(state, rollback, cursor, cx, journal, jitter).await
}

/// Runs the compensations still to run, newest first, each with its state's retries and
/// timeout, a checkpoint after each; then fails the run with [`RunError::RolledBack`].
///
/// A failed compensation is recorded and the rollback goes on. Cancelling or pausing does
/// not interrupt a rollback. A crash does: the compensation that was running is recorded as
/// a failed attempt ([`Failure::Interrupted`]) and runs again (under the same idempotency
/// key), whatever attempts it has left, until the run has been taken over more than the
/// engine's `max_reassignments` times in it ([`Failure::Reassigned`]).
pub(crate) async fn roll_back<M: Machine, J: Journal<M>>(
    state: Option<M::State>,
    mut rollback: Rollback,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut JitterRng,
) -> Result<End<M::Output>, J::Stop> {
    let graph = M::graph();
    while let Some(done) = cursor.undo.last() {
        let (undo, visit) = (done.state.clone(), done.visit);
        let info = &graph.states[M::index(&undo)];
        let retry = &info.policy.retry;
        // Taken over mid-rollback: the compensation that was running was cut off, and the
        // attempts it had failed before still count.
        let mut failures = std::mem::take(&mut rollback.trying);
        let mut compensated = false;
        let mut cut_off = journal.interrupted();
        let mut attempt = failures.len() as u32;
        loop {
            attempt += 1;
            journal.event(info.name, kind!(Compensating), || EventKind::Compensating { attempt });
            let started = Instant::now();
            let interrupted = cut_off.take();
            let result = match interrupted.clone() {
                Some(failure) => Err(failure),
                None => {
                    let (scope, span) = scoped::<M, J>(journal, info.name, visit, attempt, true);
                    let body = guarded(M::compensate(undo.clone(), cx), info.policy.timeout);
                    scope.scope(body).instrument(span).await
                }
            };
            let duration = started.elapsed();
            let failure = match result {
                Ok(()) => {
                    let outcome = Outcome::Compensated;
                    cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
                    journal.event(info.name, kind!(Compensated), || EventKind::Compensated);
                    compensated = true;
                    break;
                }
                Err(failure) => failure,
            };
            // An attempt cut off by a takeover is tried again whatever attempts remain: undoing
            // matters more than the budget, and the takeover limit (a permanent
            // `Reassigned`) still ends it.
            let again = failure == Failure::Interrupted
                || (attempt < retry.attempts && !failure.is_permanent());
            let retry_in = again.then(|| retry.backoff.delay(attempt, jitter.rng()));
            journal.event(info.name, kind!(CompensationFailed), || EventKind::CompensationFailed {
                attempt,
                failure: failure.clone(),
                retry_in,
            });
            let outcome = Outcome::CompensationFailed { failure: failure.clone(), retry_in };
            cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
            failures.push(failure);
            if interrupted.is_some() && retry_in.is_some() {
                // The takeover count and the attempts so far are durable before the
                // compensation runs again.
                cursor.seq += 1;
                cursor.rollback = Some(Rollback { trying: failures.clone(), ..rollback.clone() });
                journal.record(state.as_ref(), cursor, cx, None).await?;
            }
            match retry_in {
                Some(delay) => tokio::time::sleep(delay).await,
                None => break,
            }
        }
        cursor.undo.pop();
        // The next compensation is another visit's: its takeovers count afresh.
        cursor.takeovers = 0;
        if compensated {
            rollback.undone.push(info.name);
        } else {
            rollback.failed.push(FailedCompensation { state: info.name, attempts: failures });
        }
        cursor.seq += 1;
        cursor.rollback = Some(rollback.clone());
        journal.record(state.as_ref(), cursor, cx, None).await?;
    }
    cursor.rollback = None;
    let at = rollback.cause.state();
    let error = RunError::RolledBack {
        cause: Box::new(rollback.cause),
        undone: rollback.undone,
        failed: rollback.failed,
        history: Vec::new(),
    };
    cursor.seq += 1;
    let end = End::Failed(error);
    journal.record(state.as_ref(), cursor, cx, Some(&end)).await?;
    Ok(announce(journal, at, end))
}
