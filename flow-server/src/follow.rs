//! [`Follow`]: a subscription to one run's or every run's events, as the Server-Sent Events
//! and WebSocket routes send it, with what it queued to send.
//!
//! One run's stream is checkpoint by checkpoint without a gap: this engine's events as they
//! come, each `Checkpointed` one with the checkpoint's sequence number as its id, and from
//! the store what they do not carry (a run executing on another worker, a reconnecting
//! client's missed checkpoints) as `checkpoint` messages with the same ids.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use flow_core::history::Entry;
use flow_core::store::Status;
use flow_core::{Engine, EngineError, Event, EventKind, Events, Recorded, RunId};
use futures_util::FutureExt;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Interval, MissedTickBehavior};

use crate::error::ApiError;
use crate::events::sse_message;
use crate::hub::{Batch, Subscription};
use crate::kinds::Kinds;
use crate::message::{CheckpointData, End, Kind, Lagged, Message, Reset, event_json};
use crate::routes::{App, run_id};
use crate::since::Since;

/// What a followed stream has queued to send.
enum Queued {
    Message(Message),
    /// A batch of every run's events, from its `n`th on.
    Events(Arc<Batch>, usize),
}

/// Where a followed stream's events come from.
enum Source {
    /// One run's, from the engine.
    Run(Events),
    /// Every run's, made JSON once by the [`Hub`](crate::hub::Hub).
    Every(Subscription),
}

/// What a [`Source`] gave.
enum Received {
    Event(Event),
    Batch(Arc<Batch>),
    /// Nothing follows.
    Ended,
}

impl Source {
    /// The next events. Cancel-safe, as both channels are.
    async fn recv(&mut self) -> Received {
        match self {
            Source::Run(events) => events.next().await.map_or(Received::Ended, Received::Event),
            Source::Every(subscription) => loop {
                match subscription.batches.recv().await {
                    Ok(batch) => return Received::Batch(batch),
                    // The next batch's position says how many were missed.
                    Err(RecvError::Lagged(_)) => continue,
                    Err(RecvError::Closed) => return Received::Ended,
                }
            },
        }
    }
}

/// A subscription being sent, by SSE or WebSocket: the events, and what is queued to send.
pub(crate) struct Follow {
    engine: Engine,
    source: Source,
    /// The run followed, if one is.
    run: Option<RunId>,
    /// How many missed events were reported.
    missed: u64,
    queue: VecDeque<Queued>,
    /// Nothing follows the queue.
    done: bool,
    /// When to look in the store for what the run recorded.
    check: Interval,
    /// The run's last checkpoint this stream reported (or, for a new client, the one it
    /// stood at): live `Checkpointed` events up to it are not sent again.
    reported: u64,
    /// A live `Checkpointed` event came since the last look in the store: the run executes
    /// here, and its events say what it records.
    heard: bool,
    /// A live event held back until what the run recorded before it is read from the store:
    /// a `Checkpointed` after a gap, or the run's last event.
    held: Option<Event>,
}

impl Follow {
    /// Follows run `id` until it ends, from `since`; a run that has ended is what it
    /// recorded after `since` and its `end`, at once.
    ///
    /// # Errors
    ///
    /// For an id that is not a run's (400), an unknown run (404), or a store that fails.
    pub(crate) async fn run(app: &App, id: &str, since: Since) -> Result<Follow, ApiError> {
        let run = run_id(id)?;
        // Subscribed before looking, so that nothing happens unseen in between.
        let events = app.engine.events_of(run);
        let after = match since {
            Since::Seq(seq) => seq,
            Since::Now | Since::Unknown => u64::MAX,
        };
        let mut recorded = app.engine.recorded_after(run, after).await?;
        let source = Source::Run(events);
        let mut follow = Follow::new(app.engine.clone(), source, Some(run), app.follow_every);
        let finished = recorded.status.is_finished();
        match since {
            Since::Seq(seq) if seq <= recorded.seq => {
                follow.reported = seq;
                follow.report(&recorded);
            }
            Since::Now if finished => follow.reported = recorded.seq,
            // Where the run stands, with an id to come back with.
            Since::Now if recorded.seq == 0 => {
                // Its first checkpoint, which records no attempt.
                follow.checkpoint(&recorded, 0, &[]);
            }
            Since::Now => {
                follow.reported = recorded.seq - 1;
                recorded = app.engine.recorded_after(run, follow.reported).await?;
                follow.report(&recorded);
            }
            Since::Seq(_) | Since::Unknown => {
                let reason = "the position given (Last-Event-ID or after) is no checkpoint \
                              of this run: read it afresh (GET /runs/{id})";
                follow.reset(reason, Some(recorded.seq));
            }
        }
        if finished {
            follow.end(run, recorded.status.as_str());
        }
        Ok(follow)
    }

    /// Follows every run's events, from now on, without end; `since` says whether the client
    /// saw messages before, which it is then told were not replayed. `mark`: open with an
    /// `id:` alone, so that a browser that reconnects says so.
    pub(crate) fn every(app: &App, since: Since, mark: bool, kinds: Kinds) -> Follow {
        let subscription = app.hub.subscribe(&app.engine, kinds);
        let at = subscription.next;
        let source = Source::Every(subscription);
        let mut follow = Follow::new(app.engine.clone(), source, None, app.follow_every);
        if since != Since::Now {
            let reason = "every run's stream replays nothing: events went by while this \
                          client was away; read the runs afresh (GET /runs)";
            follow.reset(reason, None);
        }
        if mark {
            let mark = Message { kind: Kind::Event, data: Arc::from(""), id: Some(at) };
            follow.queue.push_back(Queued::Message(mark));
        }
        follow
    }

    fn new(engine: Engine, source: Source, run: Option<RunId>, every: Duration) -> Follow {
        // A zero period would make tokio's interval panic.
        let mut check = tokio::time::interval(every.max(Duration::from_millis(1)));
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Follow {
            engine,
            source,
            run,
            missed: 0,
            queue: VecDeque::new(),
            done: false,
            check,
            reported: 0,
            heard: false,
            held: None,
        }
    }

    /// The next message to send; `None` once the stream is over.
    ///
    /// Cancel-safe: a call dropped before it returns loses no message.
    pub(crate) async fn next(&mut self) -> Option<Message> {
        self.wait().await?;
        self.ready()
    }

    /// The next message if one is ready, without waiting.
    pub(crate) fn ready(&mut self) -> Option<Message> {
        match self.queue.pop_front()? {
            Queued::Message(message) => Some(message),
            Queued::Events(batch, n) => {
                if n + 1 < batch.len() {
                    self.queue.push_front(Queued::Events(Arc::clone(&batch), n + 1));
                }
                let data = batch.event(n)?;
                Some(Message::new(Kind::Event, data))
            }
        }
    }

    /// What to send next as Server-Sent Events: one message, or a batch of events whole;
    /// `None` once the stream is over. Cancel-safe.
    pub(crate) async fn next_sse(&mut self) -> Option<Bytes> {
        self.wait().await?;
        self.ready_sse()
    }

    /// What to send next as Server-Sent Events, if anything is ready.
    pub(crate) fn ready_sse(&mut self) -> Option<Bytes> {
        match self.queue.front()? {
            Queued::Events(batch, 0) => {
                let text = batch.sse();
                self.queue.pop_front();
                Some(text)
            }
            _ => self.ready().map(|message| sse_message(&message)),
        }
    }

    /// Waits until something is queued; `None` once the stream is over.
    async fn wait(&mut self) -> Option<()> {
        loop {
            if !self.queue.is_empty() {
                return Some(());
            }
            if self.done {
                return None;
            }
            if self.held.is_some() {
                // Dropped while reading, the event stays held for the next call.
                self.release().await;
                continue;
            }
            tokio::select! {
                received = self.source.recv() => match received {
                    Received::Event(event) => self.receive(event),
                    Received::Batch(batch) => self.push_batch(batch),
                    Received::Ended => {
                        self.lag();
                        self.done = true;
                    }
                },
                _ = self.check.tick(), if self.run.is_some() => {
                    if !std::mem::take(&mut self.heard) {
                        self.look().await;
                    }
                }
            }
        }
    }

    /// Takes in a live event of the followed run: sent at once, dropped if its checkpoint
    /// was reported, or held until what came before it is read from the store.
    fn receive(&mut self, event: Event) {
        match event.kind {
            EventKind::Checkpointed { seq } => {
                self.heard = true;
                if seq <= self.reported {
                    return;
                }
                if seq > self.reported + 1 {
                    self.held = Some(event);
                    return;
                }
            }
            // The run's last checkpoints may not have come as events: read them first.
            ref kind if kind.ends_the_run() => {
                self.held = Some(event);
                return;
            }
            _ => {}
        }
        self.push(&event);
    }

    /// Reports what the run recorded before the held event, from the store, then the event.
    async fn release(&mut self) {
        let (Some(run), Some(held)) = (self.run, &self.held) else { return };
        let upto = match held.kind {
            EventKind::Checkpointed { seq } => seq - 1,
            _ => u64::MAX,
        };
        match self.engine.recorded_after(run, self.reported).await {
            Ok(recorded) => self.report_until(&recorded, upto),
            Err(error) => {
                let reason = format!(
                    "checkpoints went by that the store could not be read for \
                                      ({error}): read the run afresh (GET /runs/{{id}})"
                );
                self.reset(&reason, (upto != u64::MAX).then_some(upto));
            }
        }
        if let Some(event) = self.held.take() {
            self.push(&event);
        }
    }

    /// Queues `event`, after a `lagged` event if events were missed before it.
    fn push(&mut self, event: &Event) {
        self.lag();
        let data = event_json(event);
        let mut message = Message::new(Kind::Event, data);
        if let EventKind::Checkpointed { seq } = event.kind {
            self.reported = self.reported.max(seq);
            message.id = Some(seq);
        }
        self.queue.push_back(Queued::Message(message));
        if let Some(run) = self.run {
            let status = match event.kind {
                EventKind::Completed { .. } => Some(Status::Completed),
                EventKind::Failed { .. } => Some(Status::Failed),
                EventKind::Cancelled => Some(Status::Cancelled),
                _ => None,
            };
            if let Some(status) = status {
                self.end(run, status.as_str());
            }
        }
    }

    /// Queues the checkpoints of `recorded` not reported yet.
    fn report(&mut self, recorded: &Recorded) {
        self.report_until(recorded, u64::MAX);
    }

    /// Queues the checkpoints of `recorded` not reported yet, up to `upto`: a `checkpoint`
    /// message each, or a `reset` if the store cannot tell what each recorded.
    fn report_until(&mut self, recorded: &Recorded, upto: u64) {
        let last = recorded.seq.min(upto);
        if last <= self.reported {
            return;
        }
        let Some(checkpoints) = &recorded.checkpoints else {
            let reason = "the store cannot tell what each checkpoint recorded: read the run \
                          afresh (GET /runs/{id})";
            self.reset(reason, Some(last));
            return;
        };
        for (seq, entries) in checkpoints {
            if (self.reported + 1..=last).contains(seq) {
                self.checkpoint(recorded, *seq, entries);
            }
        }
    }

    /// Queues the `checkpoint` message of checkpoint `seq` of `recorded`, which added
    /// `entries`.
    fn checkpoint(&mut self, recorded: &Recorded, seq: u64, entries: &[Entry]) {
        let latest = seq == recorded.seq;
        let data = CheckpointData {
            run: recorded.run.to_string(),
            seq,
            entries,
            status: latest.then(|| recorded.status.as_str()),
            state: latest.then_some(recorded.state.as_str()),
            wait: recorded.wait.filter(|_| latest),
        };
        let data = serde_json::to_string(&data).unwrap_or_default();
        self.queue.push_back(Queued::Message(Message {
            kind: Kind::Checkpoint,
            data: data.into(),
            id: Some(seq),
        }));
        self.reported = seq;
    }

    /// Queues the events of `batch`, after a `lagged` event if events were missed before
    /// them (by the hub, or by this follower).
    fn push_batch(&mut self, batch: Arc<Batch>) {
        let Source::Every(subscription) = &mut self.source else { return };
        let expected = subscription.next;
        subscription.next = batch.first + batch.len() as u64;
        if batch.first > expected {
            self.lagged(batch.first - expected);
        }
        // A batch that began before the expected position cannot come; skip what was sent.
        let skip = usize::try_from(expected.saturating_sub(batch.first)).unwrap_or(usize::MAX);
        if skip < batch.len() {
            self.queue.push_back(Queued::Events(batch, skip));
        }
    }

    /// Queues a `lagged` event if events were missed since the last one.
    fn lag(&mut self) {
        let Source::Run(events) = &self.source else { return };
        let missed = events.missed();
        if missed > self.missed {
            self.lagged(missed - self.missed);
        }
    }

    /// Queues a `lagged` event: `missed` events were missed.
    fn lagged(&mut self, missed: u64) {
        self.missed += missed;
        let data = serde_json::to_string(&Lagged { missed }).unwrap_or_default();
        self.queue.push_back(Queued::Message(Message::new(Kind::Lagged, data)));
    }

    /// Queues a `reset`: what was missed cannot be told. On a run's stream, it goes on from
    /// checkpoint `seq`, the message's id.
    fn reset(&mut self, reason: &str, seq: Option<u64>) {
        let data =
            serde_json::to_string(&Reset { reason: reason.to_owned(), seq }).unwrap_or_default();
        self.queue.push_back(Queued::Message(Message {
            kind: Kind::Reset,
            data: data.into(),
            id: seq,
        }));
        if let Some(seq) = seq {
            self.reported = self.reported.max(seq);
        }
    }

    /// Queues the `end` of run `run`, which finished as `status`: nothing follows it.
    fn end(&mut self, run: RunId, status: &str) {
        let end = End { run: run.to_string(), status: status.to_owned() };
        let data = serde_json::to_string(&end).unwrap_or_default();
        self.queue.push_back(Queued::Message(Message::new(Kind::End, data)));
        self.done = true;
    }

    /// Looks in the store for what the run recorded since the last checkpoint reported, and
    /// whether it has finished: it may execute on another worker, whose events do not come
    /// here, or its last events may have been missed.
    async fn look(&mut self) {
        let Some(run) = self.run else { return };
        let recorded = match self.engine.recorded_after(run, self.reported).await {
            Ok(recorded) => recorded,
            // Only a finished run is deleted: here, before this stream saw how it finished
            // (on another worker, between two looks). Nothing more comes.
            Err(EngineError::UnknownRun { .. }) => {
                self.lag();
                self.end(run, "deleted");
                return;
            }
            // The store failed: the next look tries again.
            Err(_) => return,
        };
        if recorded.status.is_finished() {
            // Its last events may be on their way: send what has come first.
            while let Source::Run(events) = &mut self.source
                && let Some(Some(event)) = events.next().now_or_never()
            {
                if let EventKind::Checkpointed { seq } = event.kind {
                    if seq <= self.reported {
                        continue;
                    }
                    self.report_until(&recorded, seq - 1);
                }
                self.push(&event);
                if self.done {
                    return;
                }
            }
        }
        self.report(&recorded);
        if recorded.status.is_finished() {
            self.lag();
            self.end(run, recorded.status.as_str());
        }
    }
}

#[cfg(test)]
mod tests {
    use flow_core::store::MemoryStore;

    use super::*;
    use crate::ServerConfig;
    use crate::hub::Gathered;

    /// A batch of `n` events, the first at position `first`.
    fn batch(first: u64, n: u64) -> Batch {
        let mut gathered = Gathered::default();
        for at in first..first + n {
            gathered.push_json(&format!(r#"{{"at":{at}}}"#));
        }
        gathered.into_batch(first)
    }

    #[tokio::test]
    async fn a_checkpoint_is_sent_once_and_one_after_a_gap_waits_for_the_store() {
        let engine = Engine::builder().store(MemoryStore::new()).build().unwrap();
        let run = RunId::random();
        let source = Source::Run(engine.events_of(run));
        let mut follow = Follow::new(engine, source, Some(run), Duration::from_secs(1));
        // Checkpoints up to 5 were reported from the store.
        follow.reported = 5;
        let checkpointed = |seq| Event {
            run,
            machine: "m",
            state: "s",
            at: std::time::SystemTime::UNIX_EPOCH,
            kind: EventKind::Checkpointed { seq },
        };
        follow.receive(checkpointed(4));
        follow.receive(checkpointed(5));
        follow.receive(checkpointed(6));
        let sent: Vec<Option<u64>> = std::iter::from_fn(|| follow.ready()).map(|m| m.id).collect();
        assert_eq!(sent, [Some(6)]);
        assert_eq!(follow.reported, 6);
        // 7 went by unseen: 8 waits until it is read.
        follow.receive(checkpointed(8));
        assert!(follow.ready().is_none());
        assert_eq!(follow.held.as_ref().map(|event| &event.kind), Some(&checkpointed(8).kind));
    }

    #[tokio::test(start_paused = true)]
    async fn a_run_deleted_before_its_end_was_seen_ends_its_stream() {
        let engine = Engine::builder().store(MemoryStore::new()).build().unwrap();
        // Followed, then gone from the store: finished and deleted by another worker.
        let run = RunId::random();
        let source = Source::Run(engine.events_of(run));
        let mut follow = Follow::new(engine, source, Some(run), Duration::from_secs(1));
        let end = tokio::time::timeout(Duration::from_secs(5), follow.next()).await;
        let end = end.expect("the stream ends").expect("with a message");
        assert_eq!(end.kind, Kind::End);
        assert_eq!(&*end.data, format!(r#"{{"run":"{run}","status":"deleted"}}"#));
        assert!(follow.next().await.is_none());
    }

    #[tokio::test]
    async fn a_follower_of_every_run_is_told_how_many_events_it_missed() {
        let engine = Engine::builder().store(MemoryStore::new()).build().unwrap();
        let config = Arc::new(ServerConfig::default());
        let app = App { engine, config, follow_every: Duration::from_secs(1), hub: Arc::default() };
        let mut follow = Follow::every(&app, Since::Now, false, Kinds::ALL);
        follow.push_batch(Arc::new(batch(0, 2)));
        // Positions 2 to 4 went by: missed, at the hub or by this follower.
        follow.push_batch(Arc::new(batch(5, 2)));
        follow.push_batch(Arc::new(batch(7, 1)));
        let sent: Vec<(Kind, String)> =
            std::iter::from_fn(|| follow.ready()).map(|m| (m.kind, m.data.to_string())).collect();
        let event = |at: u64| (Kind::Event, format!(r#"{{"at":{at}}}"#));
        let lagged = (Kind::Lagged, r#"{"missed":3}"#.to_owned());
        assert_eq!(sent, [event(0), event(1), lagged, event(5), event(6), event(7)]);
        assert_eq!(follow.missed, 3);
    }
}
