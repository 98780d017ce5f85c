//! Every run's events, each serialized once however many follow them: [`Hub`].
//!
//! The engine's event channel hands each subscriber its own copy of every event, and each
//! stream then made its own JSON of it: with a hundred followers of `GET /events`, a hundred
//! copies and a hundred serializations per event, on the cores the runs need. The hub is the
//! engine's one subscriber for all of them: a task that reads its events, makes each one's
//! JSON once, and passes them on in batches, which the followers share, with the batch's
//! Server-Sent Events text made once too.
//!
//! A busy engine sends events far faster than anyone reads them, and each batch wakes every
//! follower: so the hub sends at most one batch per [`PACE`], with all that came meanwhile.
//! An idle engine's events go out at once.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use axum::body::Bytes;
use flow_core::{Engine, Event, Events};
use futures_util::FutureExt;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::kinds::Kinds;
use crate::message::event_json;

/// The least time between two batches: at most 100 wake-ups a second for each follower,
/// however busy the engine. A person watching cannot tell 10 ms apart.
const PACE: Duration = Duration::from_millis(10);
/// How many batches a follower may fall behind before it misses the oldest.
const BATCHES: usize = 64;
/// The most JSON in one batch. With [`BATCHES`], the hub holds at most some 16 MiB of
/// events for followers that fall behind, however many they are.
const BATCH_BYTES: usize = 256 * 1024;

/// Events in a row, as JSON: what the hub read from the engine at once.
#[derive(Debug)]
pub(crate) struct Batch {
    /// The position of the first of them among the engine's events (counting those the hub
    /// missed): a follower whose last batch ended before it missed the events in between.
    pub first: u64,
    /// Each event, as JSON.
    pub events: Vec<Arc<str>>,
    /// All of them as Server-Sent Events, made by the first follower that sends them so.
    sse: OnceLock<Bytes>,
}

impl Batch {
    pub(crate) fn new(first: u64, events: Vec<Arc<str>>) -> Batch {
        Batch { first, events, sse: OnceLock::new() }
    }

    /// The events as Server-Sent Events messages (`data: <json>` and a blank line each),
    /// made once for every follower.
    pub(crate) fn sse(&self) -> Bytes {
        self.sse
            .get_or_init(|| {
                let length = self.events.iter().map(|event| event.len() + 8).sum();
                let mut text = String::with_capacity(length);
                for event in &self.events {
                    text.push_str("data: ");
                    text.push_str(event);
                    text.push_str("\n\n");
                }
                Bytes::from(text)
            })
            .clone()
    }
}

/// Passes every run's events on to those that follow them all, each made JSON once; a task
/// runs for each set of kinds followed ([`Kinds`]), while anyone follows it, and makes JSON
/// only of the events of those kinds.
#[derive(Default)]
pub(crate) struct Hub {
    channels: Mutex<HashMap<Kinds, Channel>>,
}

/// One set of kinds' channel, while its task runs.
struct Channel {
    sender: broadcast::Sender<Arc<Batch>>,
    /// The position of the next batch's first event, if no events are missed before it.
    next: u64,
}

/// A follower's subscription: the batches, and the position it expects next.
pub(crate) struct Subscription {
    pub batches: broadcast::Receiver<Arc<Batch>>,
    pub next: u64,
}

impl Hub {
    /// Follows every run's events of `kinds` from now on; starts their task if none runs.
    pub(crate) fn subscribe(self: &Arc<Hub>, engine: &Engine, kinds: Kinds) -> Subscription {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let channel = channels.entry(kinds).or_insert_with(|| {
            // Subscribed to the engine now, under the lock: nothing slips in between.
            // The engine wakes the task only for the kinds wanted.
            let events = engine.events_of_kinds(&kinds.names()).unwrap_or_else(|_| engine.events());
            tokio::spawn(pass_on(Arc::downgrade(self), events, kinds));
            Channel { sender: broadcast::Sender::new(BATCHES), next: 0 }
        });
        Subscription { batches: channel.sender.subscribe(), next: channel.next }
    }

    /// Sends `events` of `kinds`, which follow `gap` missed ones; false once no one follows.
    fn send(&self, kinds: Kinds, gap: u64, events: Vec<Arc<str>>) -> bool {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(Channel { sender, next }) = channels.get_mut(&kinds) else { return false };
        let first = *next + gap;
        *next = first + events.len() as u64;
        if sender.send(Arc::new(Batch::new(first, events))).is_err() {
            channels.remove(&kinds);
            return false;
        }
        true
    }

    /// The task of `kinds` has stopped: the next follower starts another.
    fn stopped(&self, kinds: Kinds) {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner).remove(&kinds);
    }
}

/// The hub's task for `kinds`: reads `events`, and sends those of `kinds` on in batches, at
/// most one per [`PACE`], until no one follows or the engine is gone.
async fn pass_on(hub: Weak<Hub>, events: Events, kinds: Kinds) {
    let mut reader = Reader { events, seen: 0, kinds };
    let mut last_sent = Instant::now() - PACE;
    'read: while let Some(event) = reader.next().await {
        let mut gap = reader.gap();
        let mut batch = Gathered::default();
        batch.push(&event);
        let due = last_sent + PACE;
        let mut ended = false;
        // What comes before the batch is due, up to its size: a gap in between sends what
        // came before it first, as the gap is counted before a batch's first event.
        while batch.bytes < BATCH_BYTES {
            let next = match reader.next().now_or_never() {
                Some(next) => next,
                None if Instant::now() >= due => break,
                None => match tokio::time::timeout_at(due, reader.next()).await {
                    Ok(next) => next,
                    Err(_) => break,
                },
            };
            let Some(event) = next else {
                ended = true;
                break;
            };
            let missed = reader.gap();
            if missed > 0 {
                let Some(live) = hub.upgrade() else { return };
                if !live.send(kinds, gap, std::mem::take(&mut batch).events) {
                    return;
                }
                batch.bytes = 0;
                gap = missed;
            }
            batch.push(&event);
        }
        let Some(live) = hub.upgrade() else { return };
        if !live.send(kinds, gap, batch.events) {
            return;
        }
        last_sent = Instant::now();
        if ended {
            break 'read;
        }
    }
    if let Some(live) = hub.upgrade() {
        live.stopped(kinds);
    }
}

/// The hub's subscription to the engine, the kinds it passes on, and how many missed events
/// it has counted.
struct Reader {
    events: Events,
    seen: u64,
    kinds: Kinds,
}

impl Reader {
    /// The next event of the kinds wanted; `None` once the engine is gone.
    async fn next(&mut self) -> Option<Event> {
        loop {
            let event = self.events.next().await?;
            if self.kinds.wants(&event.kind) {
                return Some(event);
            }
        }
    }

    /// How many events were missed since the last call.
    fn gap(&mut self) -> u64 {
        let gap = self.events.missed() - self.seen;
        self.seen = self.events.missed();
        gap
    }
}

/// A batch being gathered.
#[derive(Default)]
struct Gathered {
    events: Vec<Arc<str>>,
    /// The JSON's length, in all.
    bytes: usize,
}

impl Gathered {
    fn push(&mut self, event: &Event) {
        let json = event_json(event);
        self.bytes += json.len();
        self.events.push(json);
    }
}

#[cfg(test)]
mod tests {
    use flow::prelude::*;
    use flow_core::store::MemoryStore;

    use super::*;

    /// Reports `times` lines of progress at once.
    #[flow::machine]
    pub mod chatty {
        use super::*;

        #[state(start, end)]
        async fn talk(_cx: &mut (), times: u32) -> Result<u32> {
            for i in 0..times {
                flow::progress(format!("line {i}"), None);
            }
            Ok(times)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_busy_engines_events_go_out_paced_and_all_of_them() {
        let engine = Engine::builder()
            .store(MemoryStore::new())
            .machine::<chatty::Machine>()
            .build()
            .unwrap();
        let hub = Arc::new(Hub::default());
        let mut follower = hub.subscribe(&engine, Kinds::ALL);
        // A run every millisecond for 40 ms: each would be a batch of its own, unpaced.
        let starter = engine.clone();
        tokio::spawn(async move {
            for _ in 0..40 {
                starter.start::<chatty::Machine>(3).await.unwrap();
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        });

        // Each run's start and end checkpoints, Started, Entered, 3 × Progress, Completed.
        let all = 40 * 8;
        let (mut sent_at, mut next, mut completed) = (Vec::new(), follower.next, 0);
        while next - follower.next < all {
            let batch = tokio::time::timeout(Duration::from_secs(5), follower.batches.recv())
                .await
                .unwrap_or_else(|_| panic!("{} of {all} events came", next - follower.next))
                .unwrap();
            sent_at.push(Instant::now());
            assert_eq!(batch.first, next, "no event missed, none sent twice");
            next += batch.events.len() as u64;
            completed += batch.events.iter().filter(|e| e.contains("Completed")).count();
        }
        assert_eq!((next - follower.next, completed), (all, 40));
        for pair in sent_at.windows(2) {
            assert!(pair[1] - pair[0] >= PACE, "batches {:?} apart", pair[1] - pair[0]);
        }
        assert!(sent_at.len() <= 6, "{} batches for 40 ms of events", sent_at.len());
    }
}
