//! The run loop: attempts, backoffs, waits and transitions, each told to the journal before
//! the run moves on.

use std::time::Duration;

use tokio::time::Instant;
use tracing::Instrument;

use super::attempt::{JitterRng, guarded, scoped};
use super::rollback::{fail, roll_back};
use super::{Cursor, Done, End, Hold, Journal, RunError, Waited};
use crate::current::Halt;
use crate::event::{EventKind, kind};
use crate::history::{Caught, Entry, Failure, Outcome};
use crate::{Machine, OnFailure, Step};

/// Runs a machine from `state` (already entered, as the cursor says) to its end: attempts,
/// backoffs, transitions, each told to the journal before the run moves on.
pub(crate) async fn drive<M: Machine, J: Journal<M>>(
    mut state: M::State,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut JitterRng,
    max_steps: u64,
) -> Result<End<M::Output>, J::Stop> {
    let graph = M::graph();
    // A run restored in the middle of a rollback finishes it before anything else.
    if let Some(rollback) = cursor.rollback.clone() {
        return Box::pin(roll_back::<M, J>(Some(state), rollback, cursor, cx, journal, jitter))
            .await;
    }
    // A restored run waiting for its fork's branches looks at them first.
    if cursor.joining.is_some() {
        let joined = join_stored::<M, J>(state, None, cursor, cx, journal, jitter, max_steps);
        state = match Box::pin(joined).await? {
            Ok(next) => next,
            Err(end) => return Ok(end),
        };
    }
    // A restored run waiting for a signal keeps its deadline for the wait below.
    if cursor.wake_at.is_some() && !M::waits_for_signal(&state) {
        journal.wait_until(&state, cursor, cx).await?;
        cursor.wake_at = None;
    }
    // Each attempt ends when it is measured; the next starts then, unless a backoff intervened.
    let mut clock = Instant::now();
    loop {
        let index = M::index(&state);
        let info = &graph.states[index];
        let retry = &info.policy.retry;
        let attempt = cursor.attempt;
        if let Some(halt) = journal.halt() {
            // A checkpoint of its own: no attempt precedes it.
            cursor.seq += 1;
            let end = match halt {
                Halt::Pause => End::Paused(None),
                Halt::Cancel => End::Cancelled,
            };
            journal.record(Some(&state), cursor, cx, Some(&end)).await?;
            return Ok(announce(journal, info.name, end));
        }
        if M::waits_for_signal(&state) {
            match journal.wait_signal(&state, cursor, cx).await? {
                Waited::TimedOut => {
                    cursor.wake_at = None;
                    let Some(next) = M::signal_timeout(state.clone()) else {
                        // A deadline without a default is not generated; wait on.
                        continue;
                    };
                    cursor.seq += 1;
                    let no_signal = |to| Outcome::NoSignal { to };
                    let entered = reroute::<M, J>(
                        info.name, attempt, next, no_signal, cursor, cx, journal, jitter, max_steps,
                    );
                    state = match entered.await? {
                        Ok(next) => next,
                        Err(end) => return Ok(end),
                    };
                    clock = Instant::now();
                    continue;
                }
                Waited::Unavailable => {
                    let error = RunError::NoSignal { state: info.name, history: Vec::new() };
                    cursor.seq += 1;
                    return Box::pin(fail::<M, J>(Some(state), error, cursor, cx, journal, jitter))
                        .await;
                }
            }
        }
        // Held for this attempt only, from before it is announced until its result is in.
        let priority = cursor.priority.unwrap_or(graph.priority);
        let held = match journal.hold(info.name, info.policy.uses, priority).await {
            Hold::Held(held) => held,
            // The halt is recorded at the top of the loop, before any attempt.
            Hold::Halted => continue,
        };
        journal.event(info.name, kind!(Entered), || EventKind::Entered {
            attempt,
            visit: cursor.visit,
            payload: payload_json(&state),
        });
        // The in-memory runner moves the payload straight into a state's last attempt; a
        // durable run keeps it for the failure's checkpoint, and a state with a compensation
        // for its rollback.
        let keep = J::KEEPS_STATE || attempt < retry.attempts || info.compensate.is_some();
        let (this_try, mut kept) = if keep { (state.clone(), Some(state)) } else { (state, None) };
        let (scope, span) = scoped::<M, J>(journal, info.name, cursor.visit, attempt, false);
        let started = clock;
        let result = if let Some(failure) = journal.failed_before(info.name, attempt) {
            drop(this_try);
            Err(failure)
        } else {
            let body = guarded(M::step(this_try, cx), info.policy.timeout);
            scope.scope(body).instrument(span).await
        };
        drop(held);
        clock = Instant::now();
        let duration = clock - started;
        let failure = match result {
            Ok(Step::Next(next)) => {
                let to = graph.states[M::index(&next)].name;
                // Taken back if the journal refuses to store where the state went.
                let mark = cursor.mark(M::index(&next));
                let outcome = Outcome::Transitioned { to };
                cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
                let undoable = info.compensate.is_some() && kept.is_some();
                if undoable && let Some(state) = kept.take() {
                    cursor.undo.push(Done { state, visit: cursor.visit });
                }
                // `reroute`'s steps, written out: on this path, the hot one, an extra async
                // layer cost about a tenth of a trivial transition (`cargo bench --bench transitions`).
                cursor.seq += 1;
                if let Err(error) = cursor.enter::<M>(&next, max_steps) {
                    let caught = refused::<M, J>(
                        info.name, next, error, cursor, cx, journal, jitter, max_steps,
                    );
                    state = match Box::pin(caught).await? {
                        Ok(next) => next,
                        Err(end) => return Ok(end),
                    };
                    clock = Instant::now();
                    continue;
                }
                arrive::<M, J>(&next, cursor, journal);
                let recorded = journal.record(Some(&next), cursor, cx, None).await;
                match recorded {
                    // What the state returned would not read back: the attempt failed, and
                    // the run goes on from where it was.
                    Err(stop) => {
                        let failure = journal.recover(stop, cx).await?;
                        if undoable {
                            kept = cursor.undo.pop().map(|done| done.state);
                        }
                        cursor.rewind(mark);
                        failure
                    }
                    Ok(()) => {
                        // Announced once durable: a subscriber never hears of a transition a
                        // crash could take back.
                        journal.event(info.name, kind!(Transitioned), || EventKind::Transitioned {
                            to,
                        });
                        if cursor.wake_at.is_some() && !M::waits_for_signal(&next) {
                            journal.wait_until(&next, cursor, cx).await?;
                            cursor.wake_at = None;
                            clock = Instant::now();
                        }
                        state = next;
                        continue;
                    }
                }
            }
            Ok(Step::Done(output)) => {
                let mark = cursor.mark(index);
                let outcome = Outcome::Completed;
                cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
                cursor.seq += 1;
                let end = End::Done(output);
                let recorded = journal.record(kept.as_ref(), cursor, cx, Some(&end)).await;
                match recorded {
                    Ok(()) => return Ok(announce(journal, info.name, end)),
                    // The output (or the context) would not read back: the attempt failed.
                    Err(stop) => {
                        drop(end);
                        let failure = journal.recover(stop, cx).await?;
                        cursor.rewind(mark);
                        failure
                    }
                }
            }
            Ok(Step::Fork(branches)) => {
                let joined = match kept {
                    Some(fork) if J::BRANCHES_IN_STORE => {
                        let joined = join_stored::<M, J>(
                            fork,
                            Some(branches),
                            cursor,
                            cx,
                            journal,
                            jitter,
                            max_steps,
                        );
                        Box::pin(joined).await?
                    }
                    _ => {
                        let forked = super::fork::fork::<M, J>(
                            index, attempt, branches, cursor, cx, journal, jitter, max_steps,
                        );
                        Box::pin(forked).await?
                    }
                };
                state = match joined {
                    Ok(next) => next,
                    Err(end) => return Ok(end),
                };
                clock = Instant::now();
                continue;
            }
            Ok(Step::BranchDone(output)) => {
                let outcome = Outcome::Completed;
                cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
                // Undone if the fork fails after all, as the branch's other states are.
                if info.compensate.is_some()
                    && let Some(state) = kept.take()
                {
                    cursor.undo.push(Done { state, visit: cursor.visit });
                }
                cursor.seq += 1;
                let end = End::Branch(output);
                // A branch with a run of its own finishes it; in memory this writes nothing.
                journal.record(kept.as_ref(), cursor, cx, Some(&end)).await?;
                return Ok(announce(journal, info.name, end));
            }
            Err(failure) => failure,
        };
        let cancelled = journal.halt() == Some(Halt::Cancel);
        let retry_in = match kept {
            Some(_) if attempt < retry.attempts && !failure.is_permanent() && !cancelled => {
                Some(retry.backoff.delay(attempt, jitter.rng()))
            }
            _ => None,
        };
        journal.event(info.name, kind!(AttemptFailed), || EventKind::AttemptFailed {
            attempt,
            failure: failure.clone(),
            retry_in,
        });
        cursor.failures.push(failure.clone());
        let outcome = Outcome::Failed { failure, retry_in };
        cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
        cursor.seq += 1;
        match (retry_in, kept) {
            (Some(delay), Some(kept)) => {
                cursor.attempt += 1;
                journal.backoff(&kept, cursor, cx, delay).await?;
                cursor.wake_at = None;
                clock = Instant::now();
                state = kept;
            }
            (_, kept) if cancelled => {
                let end = End::Cancelled;
                journal.record(kept.as_ref(), cursor, cx, Some(&end)).await?;
                return Ok(announce(journal, info.name, end));
            }
            (_, kept) => {
                let attempts: Vec<Failure> = std::mem::take(&mut cursor.failures);
                match info.policy.on_failure {
                    OnFailure::Fallback(_) => {
                        let caught =
                            Caught { state: info.name.to_owned(), attempts: attempts.clone() };
                        if let Some(next) = M::fallback(index, caught) {
                            let caught = |to| Outcome::Caught { to };
                            let entered = reroute::<M, J>(
                                info.name, attempt, next, caught, cursor, cx, journal, jitter,
                                max_steps,
                            );
                            state = match entered.await? {
                                Ok(next) => next,
                                Err(end) => return Ok(end),
                            };
                            clock = Instant::now();
                            continue;
                        }
                    }
                    OnFailure::Pause if J::CAN_PAUSE => {
                        // Resumed by an operator, the visit starts over with all its attempts.
                        cursor.attempt = 1;
                        cursor.takeovers = 0;
                        let error = RunError::StateFailed {
                            state: info.name,
                            attempts,
                            history: Vec::new(),
                        };
                        let end = End::Paused(Some(error));
                        journal.record(kept.as_ref(), cursor, cx, Some(&end)).await?;
                        return Ok(announce(journal, info.name, end));
                    }
                    OnFailure::Pause | OnFailure::Fail => {}
                }
                let error =
                    RunError::StateFailed { state: info.name, attempts, history: Vec::new() };
                return Box::pin(fail::<M, J>(kept, error, cursor, cx, journal, jitter)).await;
            }
        }
    }
}

/// Waits for the branches of the fork state `fork`, which run in the store (started here
/// when `branches` is given), then goes to its join, or fails with a branch's error.
async fn join_stored<M: Machine, J: Journal<M>>(
    fork: M::State,
    branches: Option<Vec<M::State>>,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut JitterRng,
    max_steps: u64,
) -> Result<Result<M::State, End<M::Output>>, J::Stop> {
    let outputs = journal.await_branches(&fork, branches, cursor, cx).await?;
    cursor.joining = None;
    let (index, attempt) = (M::index(&fork), cursor.attempt);
    let joined =
        super::fork::join::<M, J>(index, attempt, outputs, cursor, cx, journal, jitter, max_steps);
    Box::pin(joined).await
}

/// Takes the run from `from` to `next` without an attempt of `next`'s predecessor to show for
/// it (a signal's default, a fallback): records `outcome` for `from`, enters `next` (the
/// cursor's `seq` already advanced), checkpoints, and waits out its `wait`. `Err` is how the
/// run ended instead, when a loop guard refused the visit.
///
/// Takes the state by value: a reference held across the awaits would need it to be `Sync`.
#[allow(clippy::too_many_arguments)] // the run loop's state, passed through
pub(crate) async fn reroute<M: Machine, J: Journal<M>>(
    from: &'static str,
    attempt: u32,
    next: M::State,
    outcome: fn(&'static str) -> Outcome,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut JitterRng,
    max_steps: u64,
) -> Result<Result<M::State, End<M::Output>>, J::Stop> {
    let to = M::graph().states[M::index(&next)].name;
    let (outcome, duration) = (outcome(to), Duration::ZERO);
    cursor.history.push(Entry { state: from, attempt, outcome, duration });
    if let Err(error) = cursor.enter::<M>(&next, max_steps) {
        let caught = refused::<M, J>(from, next, error, cursor, cx, journal, jitter, max_steps);
        return Box::pin(caught).await;
    }
    arrive::<M, J>(&next, cursor, journal);
    journal.record(Some(&next), cursor, cx, None).await?;
    journal.event(from, kind!(Transitioned), || EventKind::Transitioned { to });
    if cursor.wake_at.is_some() && !M::waits_for_signal(&next) {
        journal.wait_until(&next, cursor, cx).await?;
        cursor.wake_at = None;
    }
    Ok(Ok(next))
}

/// Goes on from `from`'s move to `next`, which a loop guard refused with `error`: when the
/// guard is `next`'s `max_visits` and `next` declares a fallback, the refused visit is caught
/// like a failed state ([`Failure::VisitLimit`], then [`Outcome::Caught`]) and the run enters
/// the fallback instead (whose own guard may refuse it in turn); otherwise the run fails with
/// `error`. Like [`reroute`], checkpoints the state entered and waits out its `wait`.
#[allow(clippy::too_many_arguments)] // the run loop's state, passed through
async fn refused<M: Machine, J: Journal<M>>(
    from: &'static str,
    mut next: M::State,
    mut error: RunError,
    cursor: &mut Cursor<M::State>,
    cx: &mut M::Context,
    journal: &mut J,
    jitter: &mut JitterRng,
    max_steps: u64,
) -> Result<Result<M::State, End<M::Output>>, J::Stop> {
    let graph = M::graph();
    // What to announce once the state finally entered is durable, in order.
    let to = graph.states[M::index(&next)].name;
    let mut events = vec![(from, EventKind::Transitioned { to })];
    loop {
        let index = M::index(&next);
        let info = &graph.states[index];
        let failure = match (&error, info.policy.on_failure) {
            (RunError::MaxVisits { limit, .. }, OnFailure::Fallback(_)) => {
                Some(Failure::VisitLimit { limit: *limit })
            }
            _ => None,
        };
        let caught = failure.and_then(|failure| {
            let caught = Caught { state: info.name.to_owned(), attempts: vec![failure.clone()] };
            Some((M::fallback(index, caught)?, failure))
        });
        let Some((fallback, failure)) = caught else {
            let failed = Box::pin(fail::<M, J>(Some(next), error, cursor, cx, journal, jitter));
            return Ok(Err(failed.await?));
        };
        let (attempt, duration, retry_in) = (1, Duration::ZERO, None);
        let kind = EventKind::AttemptFailed { attempt, failure: failure.clone(), retry_in };
        events.push((info.name, kind));
        let outcome = Outcome::Failed { failure, retry_in };
        cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
        let to = graph.states[M::index(&fallback)].name;
        let outcome = Outcome::Caught { to };
        cursor.history.push(Entry { state: info.name, attempt, outcome, duration });
        events.push((info.name, EventKind::Transitioned { to }));
        match cursor.enter::<M>(&fallback, max_steps) {
            Ok(()) => {
                next = fallback;
                break;
            }
            Err(refusal) => (next, error) = (fallback, refusal),
        }
    }
    arrive::<M, J>(&next, cursor, journal);
    journal.record(Some(&next), cursor, cx, None).await?;
    for (state, kind) in events {
        journal.event(state, kind.index(), || kind);
    }
    if cursor.wake_at.is_some() && !M::waits_for_signal(&next) {
        journal.wait_until(&next, cursor, cx).await?;
        cursor.wake_at = None;
    }
    Ok(Ok(next))
}

/// Sets the deadline a state just entered keeps in its checkpoint: the end of its `wait`, or
/// of its wait for a signal.
pub(crate) fn arrive<M: Machine, J: Journal<M>>(
    state: &M::State,
    cursor: &mut Cursor<M::State>,
    journal: &J,
) {
    let info = &M::graph().states[M::index(state)];
    let signal =
        info.signal.and_then(|signal| signal.timeout).filter(|_| M::waits_for_signal(state));
    cursor.wake_at = info.policy.wait.or(signal).map(|delay| journal.wake_at(delay));
}

/// Tells subscribers how the run ended (after its last checkpoint), and returns the end.
pub(crate) fn announce<M: Machine, J: Journal<M>>(
    journal: &J,
    state: &'static str,
    end: End<M::Output>,
) -> End<M::Output> {
    let place = match &end {
        End::Done(_) | End::Branch(_) => kind!(Completed),
        End::Failed(_) => kind!(Failed),
        End::Cancelled => kind!(Cancelled),
        End::Paused(_) => kind!(Paused),
    };
    journal.event(state, place, || match &end {
        End::Done(output) => EventKind::Completed { output: journal.output_json(output) },
        End::Failed(error) => EventKind::Failed { error: error.to_string() },
        End::Cancelled => EventKind::Cancelled,
        End::Paused(_) => EventKind::Paused,
        End::Branch(output) => EventKind::Completed { output: output.clone() },
    });
    end
}

/// The payload of `state` as JSON: the state enum's variant holds it (`{"Ship": {…}}`), and
/// a state without one is its bare name.
fn payload_json<S: serde::Serialize>(state: &S) -> serde_json::Value {
    match serde_json::to_value(state) {
        Ok(serde_json::Value::Object(mut variant)) if variant.len() == 1 => {
            variant.values_mut().next().map(std::mem::take).unwrap_or_default()
        }
        _ => serde_json::Value::Null,
    }
}
