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
use std::ops::Range;
use std::sync::{Arc, Mutex, OnceLock, PoisonError, Weak};
use std::time::Duration;

use axum::body::Bytes;
use flow_core::{Engine, Event, Events};
use futures_util::FutureExt;
use tokio::sync::broadcast;
use tokio::time::Instant;

use crate::kinds::Kinds;
use crate::message::write_event_json;

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
    /// All of them as Server-Sent Events (`data: <json>` and a blank line each), written
    /// once for every follower.
    sse: Bytes,
    /// Where each event's JSON lies in `sse`.
    spans: Vec<Range<usize>>,
    /// Each event's JSON on its own, made by the first follower that sends them one by one
    /// (over a WebSocket).
    events: OnceLock<Vec<Arc<str>>>,
}

impl Batch {
    /// How many events it holds.
    pub(crate) fn len(&self) -> usize {
        self.spans.len()
    }

    /// The events as Server-Sent Events messages, the same bytes for every follower.
    pub(crate) fn sse(&self) -> Bytes {
        self.sse.clone()
    }

    /// The `n`th event's JSON, if the batch holds that many.
    pub(crate) fn event(&self, n: usize) -> Option<Arc<str>> {
        let events = self.events.get_or_init(|| {
            // Written from JSON, which is UTF-8 throughout.
            let json = |span: &Range<usize>| std::str::from_utf8(&self.sse[span.clone()]).ok();
            self.spans.iter().map(|span| Arc::from(json(span).unwrap_or("null"))).collect()
        });
        events.get(n).cloned()
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
    fn send(&self, kinds: Kinds, gap: u64, events: Gathered) -> bool {
        let mut channels = self.channels.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(Channel { sender, next }) = channels.get_mut(&kinds) else { return false };
        let first = *next + gap;
        let batch = events.into_batch(first);
        *next = first + batch.len() as u64;
        if sender.send(Arc::new(batch)).is_err() {
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
        // One timer for the batch, not one for each wait between its events.
        let due = tokio::time::sleep_until(last_sent + PACE);
        tokio::pin!(due);
        let mut ended = false;
        // What comes before the batch is due, up to its size: a gap in between sends what
        // came before it first, as the gap is counted before a batch's first event.
        while batch.bytes() < BATCH_BYTES {
            let next = match reader.next().now_or_never() {
                Some(next) => next,
                None => tokio::select! {
                    biased;
                    next = reader.next() => next,
                    () = &mut due => break,
                },
            };
            let Some(event) = next else {
                ended = true;
                break;
            };
            let missed = reader.gap();
            if missed > 0 {
                let Some(live) = hub.upgrade() else { return };
                if !live.send(kinds, gap, std::mem::take(&mut batch)) {
                    return;
                }
                gap = missed;
            }
            batch.push(&event);
        }
        let Some(live) = hub.upgrade() else { return };
        if !live.send(kinds, gap, batch) {
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

/// A batch being gathered: its events written straight into the text every follower of
/// Server-Sent Events gets, with no allocation of each event's own.
#[derive(Default)]
pub(crate) struct Gathered {
    sse: Vec<u8>,
    spans: Vec<Range<usize>>,
}

impl Gathered {
    fn push(&mut self, event: &Event) {
        self.push_with(|sse| write_event_json(sse, event));
    }

    /// Appends an event that `write` writes as JSON.
    fn push_with(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        self.sse.extend_from_slice(b"data: ");
        let start = self.sse.len();
        write(&mut self.sse);
        self.spans.push(start..self.sse.len());
        self.sse.extend_from_slice(b"\n\n");
    }

    /// Appends `json` as an event: a batch of made-up events, for tests.
    #[cfg(test)]
    pub(crate) fn push_json(&mut self, json: &str) {
        self.push_with(|sse| sse.extend_from_slice(json.as_bytes()));
    }

    /// The JSON's length so far, in bytes, messages' framing included.
    fn bytes(&self) -> usize {
        self.sse.len()
    }

    /// The batch, its first event at position `first`.
    pub(crate) fn into_batch(self, first: u64) -> Batch {
        Batch { first, sse: Bytes::from(self.sse), spans: self.spans, events: OnceLock::new() }
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
            next += batch.len() as u64;
            completed +=
                (0..batch.len()).filter(|n| batch.event(*n).unwrap().contains("Completed")).count();
        }
        assert_eq!((next - follower.next, completed), (all, 40));
        for pair in sent_at.windows(2) {
            assert!(pair[1] - pair[0] >= PACE, "batches {:?} apart", pair[1] - pair[0]);
        }
        assert!(sent_at.len() <= 6, "{} batches for 40 ms of events", sent_at.len());
    }
}
