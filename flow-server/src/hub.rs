//! Every run's events, each serialized once however many follow them: [`Hub`].
//!
//! The engine's event channel hands each subscriber its own copy of every event, and each
//! stream then made its own JSON of it: with a hundred followers of `GET /events`, a hundred
//! copies and a hundred serializations per event, on the cores the runs need. The hub is the
//! engine's one subscriber for all of them: a task that reads its events, makes each one's
//! JSON once, and passes them on in batches (what came at once), which the followers share.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use flow_core::{Engine, Events};
use futures_util::FutureExt;
use tokio::sync::broadcast;

use crate::events::event_json;

/// How many batches a follower may fall behind before it misses the oldest.
const BATCHES: usize = 512;
/// The most events in one batch. With [`BATCHES`], a follower that stops reading holds at
/// most 32,768 events' JSON (some 8 MiB) until it catches up or goes: batches of hundreds
/// would let one stalled client hold a hundred times the engine's own buffer.
const BATCH: usize = 64;

/// Events in a row, as JSON: what the hub read from the engine at once.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The position of the first of them among the engine's events (counting those the hub
    /// missed): a follower whose last batch ended before it missed the events in between.
    pub first: u64,
    /// Each event, as JSON.
    pub events: Vec<Arc<str>>,
}

/// Passes every run's events on to those that follow them all, each made JSON once; its
/// task runs while anyone follows.
#[derive(Default)]
pub(crate) struct Hub {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The task's channel, while it runs.
    sender: Option<broadcast::Sender<Arc<Batch>>>,
    /// The position of the next batch's first event, if no events are missed before it.
    next: u64,
}

/// A follower's subscription: the batches, and the position it expects next.
pub(crate) struct Subscription {
    pub batches: broadcast::Receiver<Arc<Batch>>,
    pub next: u64,
}

impl Hub {
    /// Follows every run's events from now on; starts the task if none runs.
    pub(crate) fn subscribe(self: &Arc<Hub>, engine: &Engine) -> Subscription {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let sender = match &state.sender {
            Some(sender) => sender.clone(),
            None => {
                let sender = broadcast::Sender::new(BATCHES);
                // Subscribed to the engine now, under the lock: nothing slips in between.
                tokio::spawn(pass_on(Arc::downgrade(self), engine.events()));
                state.sender = Some(sender.clone());
                sender
            }
        };
        Subscription { batches: sender.subscribe(), next: state.next }
    }

    /// Sends `events`, which follow `gap` missed ones; false once no one follows.
    fn send(&self, gap: u64, events: Vec<Arc<str>>) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let State { sender: Some(sender), next } = &mut *state else { return false };
        let first = *next + gap;
        *next = first + events.len() as u64;
        if sender.send(Arc::new(Batch { first, events })).is_err() {
            state.sender = None;
            return false;
        }
        true
    }

    /// The task has stopped: the next follower starts another.
    fn stopped(&self) {
        self.state.lock().unwrap_or_else(PoisonError::into_inner).sender = None;
    }
}

/// The hub's task: reads `events`, and sends them on in batches of what is ready, until
/// no one follows or the engine is gone.
async fn pass_on(hub: Weak<Hub>, mut events: Events) {
    let mut seen = 0;
    'read: while let Some(event) = events.next().await {
        let mut gap = events.missed() - seen;
        seen = events.missed();
        let mut batch = vec![Arc::from(event_json(&event))];
        let mut ended = false;
        while batch.len() < BATCH {
            match events.next().now_or_never() {
                Some(Some(event)) => {
                    if events.missed() != seen {
                        // A gap: what came before it goes first.
                        let Some(live) = hub.upgrade() else { return };
                        if !live.send(gap, std::mem::take(&mut batch)) {
                            return;
                        }
                        gap = events.missed() - seen;
                        seen = events.missed();
                    }
                    batch.push(Arc::from(event_json(&event)));
                }
                Some(None) => {
                    ended = true;
                    break;
                }
                None => break,
            }
        }
        let Some(live) = hub.upgrade() else { return };
        if !live.send(gap, batch) {
            return;
        }
        if ended {
            break 'read;
        }
    }
    if let Some(live) = hub.upgrade() {
        live.stopped();
    }
}
