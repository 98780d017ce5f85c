//! Events as Server-Sent Events: one run's until it ends, or every run's; and [`Follow`],
//! the subscription both they and the WebSocket routes send from.
//!
//! One run's stream is checkpoint by checkpoint without a gap: this engine's events as they
//! come, each `Checkpointed` one with the checkpoint's sequence number as its SSE `id:`, and
//! from the store what they do not carry (a run executing on another worker, a reconnecting
//! client's missed checkpoints) as `checkpoint` messages with the same ids.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use flow_core::history::Entry;
use flow_core::store::Status;
use flow_core::{Engine, Event, EventKind, Events, Recorded, RunId};
use futures_util::FutureExt;
use futures_util::stream;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Interval, MissedTickBehavior};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::hub::{Batch, Subscription};
use crate::routes::{App, EventDoc, RunIdDoc, run_id};
use crate::since::{AfterQuery, EverySince, LastEventIdHeader, RunSince, Since};

/// Sent as `lagged` when this subscriber fell behind and missed events: how many.
/// The events after it go on from where the engine is now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Lagged {
    /// How many events were missed.
    missed: u64,
}

/// Sent as `end`, last, when a run's stream ends: the run has finished.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct End {
    /// The run's id.
    run: String,
    /// How it finished: completed, failed or cancelled.
    status: String,
}

/// Sent as `checkpoint`, with the checkpoint's sequence number as the SSE `id:`: a checkpoint
/// of the run read from the store, because this stream's events did not report it (the run
/// executes on another worker, or this client reconnected after it, or events were missed).
#[derive(Debug, Serialize)]
struct CheckpointData<'a> {
    run: String,
    seq: u64,
    entries: &'a [Entry],
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    wait: Option<flow_core::store::Wait>,
}

/// Sent as `checkpoint`, with `seq` as the SSE `id:` (and the WebSocket frame's `id`): a
/// checkpoint of the run read from the store, where this stream's live events did not
/// report it (the run executes on another worker, the client reconnected after it, or
/// events were missed). Checkpoints come in order, each once, whether as a live
/// `Checkpointed` event or as this.
#[derive(ToSchema)]
#[schema(as = Checkpoint)]
#[allow(dead_code)]
pub(crate) struct CheckpointDoc {
    /// The run's id.
    run: String,
    /// The checkpoint's sequence number (0 for the run's first).
    seq: u64,
    /// The history entries it added, as `GET /runs/{id}` shows them in `history`; empty for
    /// a checkpoint that recorded no attempt (a delivered signal, a cancel, a pause).
    entries: Vec<serde_json::Value>,
    /// Where the run stands (as `GET /runs/{id}`'s `status`): only on the message of its
    /// latest checkpoint when the store was read.
    status: Option<String>,
    /// The state it is in or ended in, on the same message as `status`.
    state: Option<String>,
    /// Why it waits (signal, timer, backoff, join), on the same message as `status`.
    wait: Option<String>,
}

/// Sent as `reset`: what came before this message is not replayed, and how much was missed
/// cannot be told. Read the run (`GET /runs/{id}`) or the runs (`GET /runs`) afresh.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Reset {
    /// Why.
    reason: String,
    /// On one run's stream: the checkpoint the stream goes on from (also the message's
    /// SSE `id:`). Absent on every run's stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<u64>,
}

/// Follows one run's events as Server-Sent Events until the run ends.
///
/// Each event of this engine's is one SSE message (type `message`) whose data is the event
/// as JSON; a `Checkpointed` event has the checkpoint's sequence number as its `id:`. What
/// the run records where this engine's events do not say it (it executes on another worker
/// of the store, or events were missed) comes from the store as `checkpoint` messages, each
/// with its `id:`: checkpoints come in order, each once. The stream looks in the store every
/// follow interval (1 s unless the server is configured otherwise) while no checkpoint came
/// here meanwhile, so a run executing elsewhere moves checkpoint by checkpoint, up to that
/// much late. A subscriber that fell behind gets
/// `lagged` saying how many events it missed; the stream closes after `end`, with how the
/// run finished.
///
/// A client that reconnects sends the last `id:` it received (`Last-Event-ID`, as browsers
/// do, or `?after=`): the stream first sends, as `checkpoint` messages, every checkpoint
/// after it, then goes on live. A new client (neither given) first gets the `checkpoint`
/// message of the run's latest checkpoint, with where the run stands, unless the run has
/// finished: then only `end`. A position that names no checkpoint of the run, or a store
/// that cannot tell what each checkpoint recorded, gets `reset` instead of a silent gap.
#[utoipa::path(get, path = "/runs/{id}/events", tag = "events",
    params(("id" = RunIdDoc, Path, description = "The run's id"), AfterQuery, LastEventIdHeader),
    responses((status = 200, description = "The run's events, as `text/event-stream`: \
            `message` (an Event), `checkpoint` (Checkpoint), `lagged` (Lagged), `reset` \
            (Reset), and last `end` (End)",
            content_type = "text/event-stream", body = EventDoc),
        (status = 400, description = "Not a run id, or `after` is not a number", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(crate) async fn run_events(
    State(app): State<App>,
    Path(id): Path<String>,
    RunSince(since): RunSince,
) -> Result<Response, ApiError> {
    Ok(sse(Follow::run(&app, &id, since).await?))
}

/// Follows every run's events as Server-Sent Events, as this engine sees them, from now on.
///
/// Each event is one SSE message whose data is the event as JSON; a subscriber that fell
/// behind gets an SSE event `lagged` saying how many it missed. The stream does not end.
/// It carries this engine's events only: runs executing on other workers of the store send
/// none here (list them with `GET /runs`, follow one with `GET /runs/{id}/events`).
///
/// Nothing is replayed: the stream opens with an `id:` alone, so that a browser that
/// reconnects says so (`Last-Event-ID`); such a client, or one that passes `?after=` (any
/// value), first gets `reset`: events went by while it was away, read the runs afresh.
#[utoipa::path(get, path = "/events", tag = "events",
    params(("after" = Option<String>, Query, description = "Any value: this client saw \
            messages of the stream before; nothing is replayed, and it is first sent `reset`"),
        ("Last-Event-ID" = Option<String>, Header, description = "Sent by a browser's \
            `EventSource` when it reconnects (the stream opens with an `id:` for it): any \
            value, read as `?after=`")),
    responses((status = 200, description = "Every run's events, as `text/event-stream`: \
            `message` (an Event), `lagged` (Lagged) and `reset` (Reset)",
            content_type = "text/event-stream", body = EventDoc)))]
pub(crate) async fn all_events(State(app): State<App>, EverySince(since): EverySince) -> Response {
    sse(Follow::every(&app, since, true))
}

/// How long a stream may go without a message before it sends a comment (`:`), so that
/// proxies and clients do not take an idle stream for a dead one.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// `follow` as a `text/event-stream` body: what is ready goes out together, as one chunk.
///
/// Written here rather than with axum's `Sse`, which makes each message a chunk of its own
/// and resets its keep-alive timer for each: with many followers of a busy engine, that
/// was most of what a stream cost. A batch of every run's events goes out as the text the
/// hub made once for all followers.
fn sse(follow: Follow) -> Response {
    let stream = stream::unfold(follow, |mut follow| async move {
        let first = match tokio::time::timeout(KEEP_ALIVE, follow.next_sse()).await {
            Ok(next) => next?,
            Err(_) => return Some((Ok::<_, Infallible>(Bytes::from_static(b":\n\n")), follow)),
        };
        let Some(second) = follow.ready_sse() else { return Some((Ok(first), follow)) };
        let mut text = [first, second].concat();
        while let Some(more) = follow.ready_sse() {
            text.extend_from_slice(&more);
        }
        Some((Ok(Bytes::from(text)), follow))
    });
    let headers =
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")];
    (headers, Body::from_stream(stream)).into_response()
}

/// `message` as one Server-Sent Event.
fn sse_message(message: &Message) -> Bytes {
    let mut text = String::with_capacity(message.data.len() + 48);
    if let Some(id) = message.id {
        text.push_str("id: ");
        text.push_str(&id.to_string());
        text.push('\n');
        // An id alone sets the client's last event id and dispatches no event.
        if message.data.is_empty() {
            text.push('\n');
            return Bytes::from(text);
        }
    }
    if message.kind != Kind::Event {
        text.push_str("event: ");
        text.push_str(message.kind.name());
        text.push('\n');
    }
    // Compact JSON: no line breaks, so one `data:` line holds it all.
    text.push_str("data: ");
    text.push_str(&message.data);
    text.push_str("\n\n");
    Bytes::from(text)
}

/// What a message of a followed stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An [`Event`].
    Event,
    /// A [`Lagged`]: events were missed.
    Lagged,
    /// An [`End`]: the run finished; nothing follows.
    End,
    /// A checkpoint read from the store: [`CheckpointDoc`].
    Checkpoint,
    /// A [`Reset`]: what was missed cannot be told.
    Reset,
}

impl Kind {
    /// Its name on the wire: the SSE event type, and the WebSocket frame's `event`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Event => "message",
            Kind::Lagged => "lagged",
            Kind::End => "end",
            Kind::Checkpoint => "checkpoint",
            Kind::Reset => "reset",
        }
    }
}

/// What a followed stream has queued to send.
enum Queued {
    Message(Message),
    /// A batch of every run's events, from its `n`th on.
    Events(Arc<Batch>, usize),
}

/// One message of a followed stream: what it is, and its data as JSON.
#[derive(Debug)]
pub(crate) struct Message {
    pub kind: Kind,
    /// Shared: every follower of every run sends the same JSON of an event. Empty for an
    /// [`id`](Message::id) alone, which SSE sends without an event and WebSocket not at all.
    pub data: Arc<str>,
    /// The checkpoint it reports (its sequence number): the SSE `id:`, which a reconnecting
    /// client sends back as `Last-Event-ID`.
    pub id: Option<u64>,
}

impl Message {
    fn new(kind: Kind, data: impl Into<Arc<str>>) -> Message {
        Message { kind, data: data.into(), id: None }
    }
}

/// `event` as JSON.
pub(crate) fn event_json(event: &Event) -> String {
    serde_json::to_string(event).unwrap_or_else(|error| {
        serde_json::json!({ "run": event.run, "error": error.to_string() }).to_string()
    })
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
    pub(crate) fn every(app: &App, since: Since, mark: bool) -> Follow {
        let subscription = app.hub.subscribe(&app.engine);
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
                if n + 1 < batch.events.len() {
                    self.queue.push_front(Queued::Events(Arc::clone(&batch), n + 1));
                }
                let data = Arc::clone(batch.events.get(n)?);
                Some(Message::new(Kind::Event, data))
            }
        }
    }

    /// What to send next as Server-Sent Events: one message, or a batch of events whole;
    /// `None` once the stream is over. Cancel-safe.
    async fn next_sse(&mut self) -> Option<Bytes> {
        self.wait().await?;
        self.ready_sse()
    }

    /// What to send next as Server-Sent Events, if anything is ready.
    fn ready_sse(&mut self) -> Option<Bytes> {
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
        let data = Arc::from(event_json(event));
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
        subscription.next = batch.first + batch.events.len() as u64;
        if batch.first > expected {
            self.lagged(batch.first - expected);
        }
        // A batch that began before the expected position cannot come; skip what was sent.
        let skip = usize::try_from(expected.saturating_sub(batch.first)).unwrap_or(usize::MAX);
        if skip < batch.events.len() {
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
        let Ok(recorded) = self.engine.recorded_after(run, self.reported).await else { return };
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

    /// A batch of `n` events, the first at position `first`.
    fn batch(first: u64, n: u64) -> Batch {
        let events = (first..first + n).map(|at| Arc::from(format!(r#"{{"at":{at}}}"#))).collect();
        Batch::new(first, events)
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

    #[tokio::test]
    async fn a_follower_of_every_run_is_told_how_many_events_it_missed() {
        let engine = Engine::builder().store(MemoryStore::new()).build().unwrap();
        let config = Arc::new(ServerConfig::default());
        let app = App { engine, config, follow_every: Duration::from_secs(1), hub: Arc::default() };
        let mut follow = Follow::every(&app, Since::Now, false);
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
