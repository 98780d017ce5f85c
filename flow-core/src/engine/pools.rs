//! Named resource pools: how many attempts may hold a resource at once, admitted by priority.
//!
//! An engine has the pools its builder names (`.pool("gpu", 2)`); a state declares what it
//! holds while an attempt runs (`#[state(uses(gpu = 1))]`). An attempt takes every unit it
//! needs at once, or waits: waiting attempts are admitted by the run's priority, lower values
//! first, and in arrival order within one priority. A waiter that does not fit blocks those
//! behind it on the same pools, so a state needing two units is not passed over for ever by
//! states needing one.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::oneshot;

use crate::RunId;

/// What one state holds while an attempt runs: pool names and units.
pub(crate) type Uses = &'static [(&'static str, u32)];

/// An engine's pools.
#[derive(Default)]
pub(crate) struct Pools {
    inner: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    /// Per pool: its capacity and the units held now.
    pools: HashMap<String, (u32, u32)>,
    /// Attempts waiting, by (priority, arrival).
    waiting: BTreeMap<(i32, u64), Waiter>,
    arrivals: u64,
}

struct Waiter {
    run: RunId,
    uses: Uses,
    admit: oneshot::Sender<()>,
}

impl Pools {
    /// Pools of the given capacities.
    pub(crate) fn new(capacities: &[(String, u32)]) -> Pools {
        let pools = capacities.iter().map(|(name, capacity)| (name.clone(), (*capacity, 0)));
        Pools { inner: Mutex::new(Queue { pools: pools.collect(), ..Queue::default() }) }
    }

    /// Takes `uses` for `run`, at once if they are free and nobody waits for them; otherwise
    /// `Err` with the ticket to wait on, and the first pool that made it wait.
    pub(crate) fn try_hold(
        self: &Arc<Self>,
        run: RunId,
        uses: Uses,
        priority: i32,
    ) -> Result<Held, (Ticket, &'static str)> {
        let mut queue = self.lock();
        let queued =
            |pool: &str| queue.waiting.values().any(|w| w.uses.iter().any(|u| u.0 == pool));
        let blocking = uses.iter().find(|(pool, units)| queued(pool) || !queue.fits(pool, *units));
        let Some((pool, _)) = blocking else {
            queue.take(uses);
            return Ok(Held { pools: Arc::clone(self), uses });
        };
        let (admit, admitted) = oneshot::channel();
        let key = (priority, queue.arrivals);
        queue.arrivals += 1;
        queue.waiting.insert(key, Waiter { run, uses, admit });
        let ticket = Ticket { pools: Arc::clone(self), key, uses, admitted: Some(admitted) };
        Err((ticket, pool))
    }

    /// The pool `run` waits for here, if it waits for one.
    pub(crate) fn waiting_for(&self, run: RunId) -> Option<String> {
        let queue = self.lock();
        let waiter = queue.waiting.values().find(|waiter| waiter.run == run)?;
        let blocking = waiter.uses.iter().find(|(pool, units)| !queue.fits(pool, *units));
        Some(blocking.unwrap_or(&waiter.uses[0]).0.to_owned())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Gives `uses` back and admits who fits now.
    fn release(&self, uses: Uses) {
        let mut queue = self.lock();
        for (pool, units) in uses {
            if let Some((_, held)) = queue.pools.get_mut(*pool) {
                *held -= units;
            }
        }
        queue.admit();
    }
}

impl Queue {
    fn fits(&self, pool: &str, units: u32) -> bool {
        self.pools.get(pool).is_some_and(|(capacity, held)| held + units <= *capacity)
    }

    fn take(&mut self, uses: Uses) {
        for (pool, units) in uses {
            if let Some((_, held)) = self.pools.get_mut(*pool) {
                *held += units;
            }
        }
    }

    /// Admits waiters in order while they fit. One that does not fit keeps its pools for
    /// itself: no later waiter takes units from them before it.
    fn admit(&mut self) {
        let mut blocked: Vec<&'static str> = Vec::new();
        let keys: Vec<(i32, u64)> = self.waiting.keys().copied().collect();
        for key in keys {
            let uses = self.waiting[&key].uses;
            let free =
                uses.iter().all(|(pool, units)| !blocked.contains(pool) && self.fits(pool, *units));
            if !free {
                blocked.extend(uses.iter().map(|(pool, _)| *pool));
                continue;
            }
            let waiter = self.waiting.remove(&key).expect("listed above");
            self.take(uses);
            // A waiter gone since gives its units back when its ticket drops.
            let _ = waiter.admit.send(());
        }
    }
}

/// A place in a pool's queue; dropped before admission, it leaves the queue.
pub(crate) struct Ticket {
    pools: Arc<Pools>,
    key: (i32, u64),
    uses: Uses,
    admitted: Option<oneshot::Receiver<()>>,
}

impl Ticket {
    /// Waits for admission.
    pub(crate) async fn admitted(mut self) -> Held {
        if let Some(admitted) = self.admitted.as_mut() {
            // The sender lives in the queue until it admits this ticket.
            let _ = admitted.await;
        }
        self.admitted = None;
        Held { pools: Arc::clone(&self.pools), uses: self.uses }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(mut admitted) = self.admitted.take() else { return };
        let mut queue = self.pools.lock();
        if queue.waiting.remove(&self.key).is_some() {
            // Left before its turn: those behind it may fit now.
            queue.admit();
        } else if admitted.try_recv().is_ok() {
            // Admitted, but gone before it could start: the units go back.
            drop(queue);
            self.pools.release(self.uses);
        }
    }
}

/// Units held for one attempt, given back when dropped.
pub(crate) struct Held {
    pools: Arc<Pools>,
    uses: Uses,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.pools.release(self.uses);
    }
}
