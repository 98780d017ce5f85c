//! Events as Server-Sent Events: one run's until it ends, or every run's; and [`Follow`],
//! the subscription both they and the WebSocket routes send from.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use flow_core::store::Status;
use flow_core::{Engine, Event, EventKind, Events, RunId};
use futures_util::FutureExt;
use futures_util::stream;
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Interval, MissedTickBehavior};
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::hub::{Batch, Subscription};
use crate::routes::{App, EventDoc, RunIdDoc, run_id};

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

/// Follows one run's events as Server-Sent Events until the run ends.
///
/// Each event is one SSE message (type `message`) whose data is the event as JSON; a
/// subscriber that fell behind gets an SSE event `lagged` saying how many it missed; the
/// stream closes after an SSE event `end` with how the run finished. A run that executes on
/// another worker of the store sends no events here, but its end is still seen: the stream
/// looks in the store every second.
#[utoipa::path(get, path = "/runs/{id}/events", tag = "events",
    params(("id" = RunIdDoc, Path, description = "The run's id")),
    responses((status = 200, description = "The run's events, as `text/event-stream`: \
            `message` (an Event), `lagged` (Lagged), and last `end` (End)",
            content_type = "text/event-stream", body = EventDoc),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(crate) async fn run_events(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(sse(Follow::run(&app, &id).await?))
}

/// Follows every run's events as Server-Sent Events, as this engine sees them, from now on.
///
/// Each event is one SSE message whose data is the event as JSON; a subscriber that fell
/// behind gets an SSE event `lagged` saying how many it missed. The stream does not end.
#[utoipa::path(get, path = "/events", tag = "events",
    responses((status = 200, description = "Every run's events, as `text/event-stream`: \
            `message` (an Event) and `lagged` (Lagged)",
            content_type = "text/event-stream", body = EventDoc)))]
pub(crate) async fn all_events(State(app): State<App>) -> Response {
    sse(Follow::every(&app))
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
    let mut text = String::with_capacity(message.data.len() + 24);
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
}

impl Kind {
    /// Its name on the wire: the SSE event type, and the WebSocket frame's `event`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Event => "message",
            Kind::Lagged => "lagged",
            Kind::End => "end",
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
    /// Shared: every follower of every run sends the same JSON of an event.
    pub data: Arc<str>,
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
    /// When to look in the store for the run's end.
    check: Interval,
}

impl Follow {
    /// Follows run `id` until it ends; a run that has ended is its `end` at once.
    ///
    /// # Errors
    ///
    /// For an id that is not a run's (400), an unknown run (404), or a store that fails.
    pub(crate) async fn run(app: &App, id: &str) -> Result<Follow, ApiError> {
        let run = run_id(id)?;
        // Subscribed before looking, so that nothing happens unseen in between.
        let events = app.engine.events_of(run);
        let summary = app.engine.summary(run).await?;
        let source = Source::Run(events);
        let mut follow = Follow::new(app.engine.clone(), source, Some(run), app.follow_every);
        if summary.status.is_finished() {
            follow.end(run, summary.status.as_str());
        }
        Ok(follow)
    }

    /// Follows every run's events, from now on, without end.
    pub(crate) fn every(app: &App) -> Follow {
        let source = Source::Every(app.hub.subscribe(&app.engine));
        Follow::new(app.engine.clone(), source, None, app.follow_every)
    }

    fn new(engine: Engine, source: Source, run: Option<RunId>, every: Duration) -> Follow {
        let mut check = tokio::time::interval(every);
        check.set_missed_tick_behavior(MissedTickBehavior::Delay);
        Follow { engine, source, run, missed: 0, queue: VecDeque::new(), done: false, check }
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
                Some(Message { kind: Kind::Event, data })
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
            tokio::select! {
                received = self.source.recv() => match received {
                    Received::Event(event) => self.push(&event),
                    Received::Batch(batch) => self.push_batch(batch),
                    Received::Ended => {
                        self.lag();
                        self.done = true;
                    }
                },
                _ = self.check.tick(), if self.run.is_some() => self.look().await,
            }
        }
    }

    /// Queues `event`, after a `lagged` event if events were missed before it.
    fn push(&mut self, event: &Event) {
        self.lag();
        let data = Arc::from(event_json(event));
        self.queue.push_back(Queued::Message(Message { kind: Kind::Event, data }));
        if let Some(run) = self.run {
            let status = match event.kind {
                EventKind::Completed => Some(Status::Completed),
                EventKind::Failed { .. } => Some(Status::Failed),
                EventKind::Cancelled => Some(Status::Cancelled),
                _ => None,
            };
            if let Some(status) = status {
                self.end(run, status.as_str());
            }
        }
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
        self.queue
            .push_back(Queued::Message(Message { kind: Kind::Lagged, data: Arc::from(data) }));
    }

    /// Queues the `end` of run `run`, which finished as `status`: nothing follows it.
    fn end(&mut self, run: RunId, status: &str) {
        let end = End { run: run.to_string(), status: status.to_owned() };
        let data = serde_json::to_string(&end).unwrap_or_default();
        self.queue.push_back(Queued::Message(Message { kind: Kind::End, data: Arc::from(data) }));
        self.done = true;
    }

    /// Looks in the store whether the run has finished: its last events may have been
    /// missed, or it runs on another worker, whose events do not come here.
    async fn look(&mut self) {
        let Some(run) = self.run else { return };
        let Ok(summary) = self.engine.summary(run).await else { return };
        if !summary.status.is_finished() {
            return;
        }
        // Its last events may be on their way: send what has come first.
        while let Source::Run(events) = &mut self.source
            && let Some(Some(event)) = events.next().now_or_never()
        {
            self.push(&event);
            if self.done {
                return;
            }
        }
        self.lag();
        self.end(run, summary.status.as_str());
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
    async fn a_follower_of_every_run_is_told_how_many_events_it_missed() {
        let engine = Engine::builder().store(MemoryStore::new()).build().unwrap();
        let config = Arc::new(ServerConfig::default());
        let app = App { engine, config, follow_every: Duration::from_secs(1), hub: Arc::default() };
        let mut follow = Follow::every(&app);
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
