//! Events as Server-Sent Events: one run's until it ends, or every run's, sent from a
//! [`Follow`].

use std::convert::Infallible;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream;

use crate::error::{ApiError, ErrorBody};
use crate::follow::Follow;
use crate::kinds::{Kinds, KindsQuery};
use crate::message::{Kind, Message};
use crate::routes::{App, EventDoc, RunIdDoc};
use crate::since::{AfterQuery, EverySince, LastEventIdHeader, RunSince};

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
///
/// `?kinds=` keeps the kinds named (`Started,Transitioned,Completed`), which costs the
/// engine's cores less than every event: a `lagged` count still counts events of any kind.
#[utoipa::path(get, path = "/events", tag = "events",
    params(KindsQuery, ("after" = Option<String>, Query, description = "Any value: this client saw \
            messages of the stream before; nothing is replayed, and it is first sent `reset`"),
        ("Last-Event-ID" = Option<String>, Header, description = "Sent by a browser's \
            `EventSource` when it reconnects (the stream opens with an `id:` for it): any \
            value, read as `?after=`")),
    responses((status = 200, description = "Every run's events, as `text/event-stream`: \
            `message` (an Event), `lagged` (Lagged) and `reset` (Reset)",
            content_type = "text/event-stream", body = EventDoc),
        (status = 400, description = "An unknown kind in `kinds`", body = ErrorBody)))]
pub(crate) async fn all_events(
    State(app): State<App>,
    EverySince(since): EverySince,
    kinds: Kinds,
) -> Response {
    sse(Follow::every(&app, since, true, kinds))
}

/// How long a stream may go without a message before it sends a comment (`:`), so that
/// proxies and clients do not take an idle stream for a dead one.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Messages ready together go out as one chunk while they are smaller than this; a bigger
/// one (a batch of the hub's) goes out as it is, shared with every follower, not copied.
const CHUNK: usize = 16 * 1024;

/// `follow` as a `text/event-stream` body: small messages that are ready together go out as
/// one chunk, and a batch of every run's events as the text the hub made once for all
/// followers.
///
/// Written here rather than with axum's `Sse`, which makes each message a chunk of its own
/// and resets its keep-alive timer for each: with many followers of a busy engine, that
/// was most of what a stream cost.
fn sse(follow: Follow) -> Response {
    // A big message found while gathering small ones is carried to the next chunk.
    let stream = stream::unfold((follow, None), |(mut follow, carried)| async move {
        let first = match carried {
            Some(first) => first,
            None => match tokio::time::timeout(KEEP_ALIVE, follow.next_sse()).await {
                Ok(next) => next?,
                Err(_) => {
                    let alive = Bytes::from_static(b":\n\n");
                    return Some((Ok::<_, Infallible>(alive), (follow, None)));
                }
            },
        };
        // What else is ready joins a small first message, up to CHUNK; a big one is carried.
        let (mut text, mut carried) = (Vec::new(), None);
        while first.len() < CHUNK && text.len() < CHUNK {
            let Some(more) = follow.ready_sse() else { break };
            if more.len() >= CHUNK {
                carried = Some(more);
                break;
            }
            if text.is_empty() {
                text.extend_from_slice(&first);
            }
            text.extend_from_slice(&more);
        }
        let chunk = if text.is_empty() { first } else { Bytes::from(text) };
        Some((Ok(chunk), (follow, carried)))
    });
    let headers =
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-cache")];
    (headers, Body::from_stream(stream)).into_response()
}

/// `message` as one Server-Sent Event.
pub(crate) fn sse_message(message: &Message) -> Bytes {
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
