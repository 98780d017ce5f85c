//! Events over WebSocket: the same messages as the Server-Sent Events routes, one per text
//! frame, for clients that would rather hold a socket than read an event stream.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, State};
use axum::response::Response;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::follow::Follow;
use crate::kinds::{Kinds, KindsQuery};
use crate::message::Message;
use crate::routes::{App, RunIdDoc};
use crate::since::{AfterQuery, EverySince, LastEventIdHeader, RunSince};

/// How long a socket whose stream ended waits for the client to answer its close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// One WebSocket text frame: `{"event": "message" | "checkpoint" | "lagged" | "reset" |
/// "end", "id": …, "data": …}`, where `event` is the SSE event type, `id` the SSE `id:` (on
/// the messages that report a checkpoint) and `data` the SSE data of the same message.
#[derive(ToSchema)]
#[schema(as = WsFrame)]
#[allow(dead_code)]
pub(crate) struct FrameDoc {
    /// `message` (data: an Event), `checkpoint` (data: Checkpoint), `lagged` (data: Lagged),
    /// `reset` (data: Reset) or `end` (data: End).
    event: String,
    /// The sequence number of the checkpoint the frame reports (a `Checkpointed` event, a
    /// `checkpoint`, a `reset` on a run's socket); absent on other frames. Pass the last one
    /// seen as `?after=` to reconnect without a gap.
    id: Option<u64>,
    /// The message's data, as the SSE routes send it.
    data: serde_json::Value,
}

/// Follows one run's events over a WebSocket until the run ends.
///
/// Each text frame is `{"event": …, "id": …, "data": …}`, the messages of
/// `GET /runs/{id}/events`: `message` with an Event, `checkpoint` with a checkpoint read
/// from the store (the run executes on another worker, or this client reconnected),
/// `lagged` with how many events this client missed by falling behind, `reset` when what
/// was missed cannot be told, and last `end` with how the run finished, after which the
/// server closes the socket (code 1000). Frames that report a checkpoint carry its sequence
/// number as `id`; a client that reconnects with the last as `?after=` gets every checkpoint
/// after it, then the live frames. Frames the client sends are ignored. The token may come
/// as `?token=`, since browsers cannot set headers on a WebSocket.
#[utoipa::path(get, path = "/runs/{id}/ws", tag = "events",
    params(("id" = RunIdDoc, Path, description = "The run's id"), AfterQuery, LastEventIdHeader),
    responses((status = 101, description = "Upgraded: text frames of WsFrame, until `end`",
            body = FrameDoc),
        (status = 400, description = "Not a WebSocket handshake, not a run id, or `after` is \
            not a number", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(crate) async fn run_ws(
    State(app): State<App>,
    Path(id): Path<String>,
    RunSince(since): RunSince,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(refused)?;
    let follow = Follow::run(&app, &id, since).await?;
    Ok(upgrade.on_upgrade(move |socket| send(socket, follow)))
}

/// Follows every run's events over a WebSocket, as this engine sees them, from now on.
///
/// Each text frame is `{"event": …, "data": …}`: `message` with an Event, or `lagged` with
/// how many events this client missed by falling behind. This engine's events only: runs
/// executing on other workers send none here. Nothing is replayed: a client that
/// reconnects and says so (`?after=`, any value) first gets `reset`. `?kinds=` keeps the
/// kinds named, as on `GET /events`. The socket stays open until the client closes it. The
/// token may come as `?token=`.
#[utoipa::path(get, path = "/ws", tag = "events",
    params(KindsQuery, ("after" = Option<String>, Query, description = "Any value: this client saw \
            messages of the stream before; nothing is replayed, and it is first sent `reset`"),
        ("Last-Event-ID" = Option<String>, Header, description = "Sent by a browser's \
            `EventSource` when it reconnects (the stream opens with an `id:` for it): any \
            value, read as `?after=`")),
    responses((status = 101, description = "Upgraded: text frames of WsFrame", body = FrameDoc),
        (status = 400, description = "Not a WebSocket handshake, or an unknown kind in \
            `kinds`", body = ErrorBody)))]
pub(crate) async fn all_ws(
    State(app): State<App>,
    EverySince(since): EverySince,
    kinds: Kinds,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(refused)?;
    // No id alone: a socket has no Last-Event-ID to send back.
    let follow = Follow::every(&app, since, false, kinds);
    Ok(upgrade.on_upgrade(move |socket| send(socket, follow)))
}

/// A request that is no WebSocket handshake, refused as JSON with axum's reason.
fn refused(rejection: WebSocketUpgradeRejection) -> ApiError {
    ApiError::new(
        rejection.status(),
        "not_websocket",
        format!(
            "{}; this route speaks WebSocket only (the same events are Server-Sent Events at \
             the route ending in /events)",
            rejection.body_text()
        ),
    )
}

/// What the socket's loop does next.
enum Step {
    /// Send this message; `None`: the stream ended.
    Send(Option<Message>),
    /// The client sent something, or left (`None`, an error, or a close).
    Received(Option<Result<Frame, axum::Error>>),
}

/// Sends `follow` on `socket` until the stream ends or the client leaves.
async fn send(mut socket: WebSocket, mut follow: Follow) {
    loop {
        // Reading while waiting lets the socket answer pings and see the client leave.
        let step = tokio::select! {
            next = follow.next() => Step::Send(next),
            received = socket.recv() => Step::Received(received),
        };
        match step {
            // An id alone is for SSE clients, to say where they were when they reconnect.
            Step::Send(Some(message)) if message.data.is_empty() => {}
            Step::Send(Some(message)) => {
                if socket.send(Frame::text(frame(&message))).await.is_err() {
                    return;
                }
            }
            Step::Send(None) => return close(socket).await,
            Step::Received(Some(Ok(Frame::Close(_))) | Some(Err(_)) | None) => return,
            Step::Received(Some(Ok(_))) => {}
        }
    }
}

/// Closes `socket` normally, and waits a while for the client to answer.
async fn close(mut socket: WebSocket) {
    let frame = CloseFrame { code: close_code::NORMAL, reason: "the run ended".into() };
    if socket.send(Frame::Close(Some(frame))).await.is_err() {
        return;
    }
    let _ =
        tokio::time::timeout(CLOSE_GRACE, async { while let Some(Ok(_)) = socket.recv().await {} })
            .await;
}

/// `message` as a text frame: `{"event": "<kind>", "data": <its JSON>}`.
fn frame(message: &Message) -> String {
    // The data is JSON already, and the kind's name a plain word: no need to parse again.
    match message.id {
        Some(id) => {
            format!(r#"{{"event":"{}","id":{id},"data":{}}}"#, message.kind.name(), message.data)
        }
        None => format!(r#"{{"event":"{}","data":{}}}"#, message.kind.name(), message.data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Kind;

    #[test]
    fn frames_wrap_the_sse_data_in_json() {
        let message = Message { kind: Kind::Lagged, data: r#"{"missed":3}"#.into(), id: None };
        let value: serde_json::Value = serde_json::from_str(&frame(&message)).unwrap();
        assert_eq!(value, serde_json::json!({ "event": "lagged", "data": { "missed": 3 } }));
        let data = r#"{"run":"r","seq":4,"entries":[]}"#;
        let message = Message { kind: Kind::Checkpoint, data: data.into(), id: Some(4) };
        let value: serde_json::Value = serde_json::from_str(&frame(&message)).unwrap();
        let data = serde_json::json!({ "run": "r", "seq": 4, "entries": [] });
        assert_eq!(value, serde_json::json!({ "event": "checkpoint", "id": 4, "data": data }));
    }
}
