//! The engine's worker loop: it keeps the owner lease alive while runs execute, claims runs
//! as they come due (and runs whose holder's lease lapsed) while slots are free, and sleeps
//! until the next due time, a local wake-up, or the next poll of the store.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use super::{EngineError, Inner, duration_ms};
use crate::RunId;
use crate::store::{Claimed, Filter, Status};

/// The most runs one claim takes.
const CLAIM_BATCH: usize = 256;

/// How often the retention setting deletes old finished runs.
const RETENTION_EVERY: Duration = Duration::from_secs(60);

/// Starts the engine's scheduler on the current tokio runtime, once; a no-op outside one
/// (the next call from inside one starts it).
pub(crate) fn start(inner: &Arc<Inner>) {
    if inner.scheduling.load(Ordering::SeqCst) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
    if inner.scheduling.swap(true, Ordering::SeqCst) {
        return;
    }
    // Weak: the scheduler keeps no engine alive that nobody uses.
    runtime.spawn(schedule(Arc::downgrade(inner)));
}

async fn schedule(engine: Weak<Inner>) {
    let mut next_poll = 0;
    let mut next_retention = 0;
    let runnable = engine.upgrade().and_then(|inner| inner.store.runnable_hint());
    loop {
        let Some(inner) = engine.upgrade() else { return };
        let wake = Arc::clone(&inner.wake);
        let woken = wake.notified();
        tokio::pin!(woken);
        woken.as_mut().enable();
        let now = inner.now_ms();
        let lease = inner.lease_ms();
        let holding = !inner.live().is_empty();
        let closing = inner.closing.load(Ordering::SeqCst);
        if closing && !holding {
            inner.scheduling.store(false, Ordering::SeqCst);
            return;
        }
        let poll_tick = now >= next_poll;
        // While it executes runs, the engine renews its lease at each look at the store too,
        // which brings the halts other engines requested for them within a poll interval.
        if holding && let Err(error) = renew(&inner, poll_tick).await {
            tracing::warn!("cannot renew the engine's lease: {error}");
        }
        if !closing {
            if poll_tick {
                next_poll = now + duration_ms(inner.poll);
                claim(&inner, true).await;
                match inner.store.next_due(&inner.names).await {
                    Ok(Some(due)) => {
                        inner.due_hint.fetch_min(due, Ordering::SeqCst);
                    }
                    Ok(None) => {}
                    Err(error) => tracing::warn!("cannot read the store's next due run: {error}"),
                }
                if let Some(keep) = inner.retention
                    && now >= next_retention
                {
                    next_retention = now + duration_ms(RETENTION_EVERY);
                    let before = now.saturating_sub(duration_ms(keep));
                    if let Err(error) = inner.store.delete_finished(Filter::new(), before).await {
                        tracing::warn!("cannot delete old finished runs: {error}");
                    }
                }
            }
            if inner.due_hint.load(Ordering::SeqCst) <= now || inner.backlog.load(Ordering::SeqCst)
            {
                claim(&inner, false).await;
            }
        }
        let now = inner.now_ms();
        let mut until = next_poll.min(inner.due_hint.load(Ordering::SeqCst));
        if !inner.live().is_empty() {
            until = until.min(now + lease / 3);
        }
        let sleep = Duration::from_millis(until.saturating_sub(now).max(1));
        drop(inner);
        // Another process made runs runnable: look for them now rather than at the next poll.
        let heard = async {
            match &runnable {
                Some(runnable) => runnable.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = woken => {}
            () = heard => {
                if let Some(inner) = engine.upgrade() {
                    inner.due_hint.fetch_min(0, Ordering::SeqCst);
                }
            }
            () = tokio::time::sleep(sleep) => {}
        }
    }
}

/// Renews the engine's owner lease, and passes on the halts other engines requested for the
/// runs it holds.
/// Unless `always`, only when the lease has less than two thirds of its length left.
pub(crate) async fn renew(inner: &Inner, always: bool) -> Result<(), EngineError> {
    let _one = inner.renewing.lock().await;
    if !always && fresh(inner) {
        // Renewed by whoever held the lock before.
        return Ok(());
    }
    let now = inner.now_ms();
    let expires = now.saturating_add(inner.lease_ms());
    let halts = inner.store.heartbeat(&inner.owner, now, expires).await?;
    inner.lease_until.fetch_max(expires, Ordering::SeqCst);
    let live = inner.live();
    for (run, halt) in halts {
        if let Some(live) = live.get(&run) {
            live.cancel.request(halt);
        }
    }
    Ok(())
}

/// Makes sure the owner lease holds for a while yet, before the engine takes a run.
pub(crate) async fn ensure_lease(inner: &Inner) -> Result<(), EngineError> {
    renew(inner, false).await
}

/// Whether the owner lease has more than two thirds of its length left.
fn fresh(inner: &Inner) -> bool {
    let left = inner.lease_until.load(Ordering::SeqCst).saturating_sub(inner.now_ms());
    left > inner.lease_ms() * 2 / 3
}

/// Claims what runs it can while slots are free: due runs, or with `lapsed` runs whose
/// holder's lease lapsed. Returns the runs set going, and why others could not be.
pub(crate) async fn claim(inner: &Arc<Inner>, lapsed: bool) -> (Vec<RunId>, Vec<EngineError>) {
    let _one = inner.claiming.lock().await;
    claim_now(inner, lapsed).await
}

/// [`claim`], for a caller that holds `inner.claiming`.
pub(crate) async fn claim_now(inner: &Arc<Inner>, lapsed: bool) -> (Vec<RunId>, Vec<EngineError>) {
    let mut started = Vec::new();
    let mut failed = Vec::new();
    if !lapsed {
        inner.backlog.store(false, Ordering::SeqCst);
        inner.due_hint.store(u64::MAX, Ordering::SeqCst);
    }
    loop {
        let free = inner.slots.available_permits().min(CLAIM_BATCH);
        if free == 0 {
            inner.backlog.store(true, Ordering::SeqCst);
            break;
        }
        if let Err(error) = ensure_lease(inner).await {
            tracing::warn!("cannot renew the engine's lease to claim runs: {error}");
            break;
        }
        let now = inner.now_ms();
        let claimed = if lapsed {
            inner.store.take_over(&inner.owner, &inner.names, now, free).await
        } else {
            inner.store.claim(&inner.owner, &inner.names, now, free).await
        };
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(error) => {
                tracing::warn!("cannot claim runs: {error}");
                inner.backlog.store(true, Ordering::SeqCst);
                break;
            }
        };
        let full = claimed.len() == free;
        for run in claimed {
            let id = run.checkpoint.run;
            match set_going(inner, run).await {
                Ok(()) => started.push(id),
                Err(error) => failed.push(error),
            }
        }
        if !full {
            break;
        }
    }
    if !lapsed {
        // What is due next, now that the due runs are taken.
        if let Ok(Some(due)) = inner.store.next_due(&inner.names).await {
            inner.due_hint.fetch_min(due, Ordering::SeqCst);
        }
    }
    (started, failed)
}

/// Sets a claimed run going in a slot; a run that cannot go on here is marked stuck with
/// the reason, or handed back.
async fn set_going(inner: &Arc<Inner>, claimed: Claimed) -> Result<(), EngineError> {
    let run = claimed.checkpoint.run;
    let machine = claimed.checkpoint.machine.to_string();
    let Some(registered) = inner.machines.get(machine.as_str()).cloned() else {
        inner.store.release(run, claimed.lease).await?;
        return Err(EngineError::UnknownMachine { name: machine });
    };
    match Arc::clone(&inner.slots).try_acquire_owned() {
        Ok(permit) => go(inner, registered.as_ref(), claimed, permit).await,
        // Taken over from an engine that died: handed back, the cut-off attempt would not be
        // counted, so it waits here for a slot instead.
        Err(_) if claimed.taken_over => {
            let inner = Arc::clone(inner);
            tokio::spawn(async move {
                if let Ok(permit) = Arc::clone(&inner.slots).acquire_owned().await {
                    let _ = go(&inner, registered.as_ref(), claimed, permit).await;
                }
            });
            Ok(())
        }
        // The slots filled up meanwhile: handed back, runnable, for the next free slot.
        Err(_) => {
            inner.backlog.store(true, Ordering::SeqCst);
            inner.store.release(run, claimed.lease).await?;
            Ok(())
        }
    }
}

async fn go(
    inner: &Arc<Inner>,
    registered: &dyn super::Registered,
    claimed: Claimed,
    permit: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), EngineError> {
    let run = claimed.checkpoint.run;
    let lease = claimed.lease.clone();
    match registered.run_claimed(inner, claimed, permit) {
        Ok(()) => Ok(()),
        Err(error) => {
            // A run this version cannot read: stuck, with the reason, for a fixed binary.
            let note = Some(error.to_string());
            if let Err(store) =
                inner.store.mark(run, Status::Stuck, note, Some(lease.clone())).await
            {
                tracing::error!(run = %run, "cannot mark the run stuck: {store}");
                let _ = inner.store.release(run, lease).await;
            }
            Err(error)
        }
    }
}
