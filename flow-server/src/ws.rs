//! Events over WebSocket: the same messages as the Server-Sent Events routes, one per text
//! frame, for clients that would rather hold a socket than read an event stream.

use std::time::Duration;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message as Frame, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{Path, State};
use axum::response::Response;
use utoipa::ToSchema;

use crate::error::{ApiError, ErrorBody};
use crate::events::{Follow, Message};
use crate::routes::{App, RunIdDoc};

/// How long a socket whose stream ended waits for the client to answer its close.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// One WebSocket text frame: `{"event": "message" | "lagged" | "end", "data": …}`, where
/// `event` is the SSE event type and `data` the SSE data of the same message.
#[derive(ToSchema)]
#[schema(as = WsFrame)]
#[allow(dead_code)]
pub(crate) struct FrameDoc {
    /// `message` (data: an Event), `lagged` (data: Lagged) or `end` (data: End).
    event: String,
    /// The message's data, as the SSE routes send it.
    data: serde_json::Value,
}

/// Follows one run's events over a WebSocket until the run ends.
///
/// Each text frame is `{"event": …, "data": …}`: `message` with an Event, `lagged` with how
/// many events this client missed by falling behind, and last `end` with how the run
/// finished, after which the server closes the socket (code 1000). Frames the client sends
/// are ignored. The token may come as `?token=`, since browsers cannot set headers on a
/// WebSocket.
#[utoipa::path(get, path = "/runs/{id}/ws", tag = "events",
    params(("id" = RunIdDoc, Path, description = "The run's id")),
    responses((status = 101, description = "Upgraded: text frames of WsFrame, until `end`",
            body = FrameDoc),
        (status = 400, description = "Not a WebSocket handshake, or not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(crate) async fn run_ws(
    State(app): State<App>,
    Path(id): Path<String>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(refused)?;
    let follow = Follow::run(&app, &id).await?;
    Ok(upgrade.on_upgrade(move |socket| send(socket, follow)))
}

/// Follows every run's events over a WebSocket, as this engine sees them, from now on.
///
/// Each text frame is `{"event": …, "data": …}`: `message` with an Event, or `lagged` with
/// how many events this client missed by falling behind. The socket stays open until the
/// client closes it. The token may come as `?token=`.
#[utoipa::path(get, path = "/ws", tag = "events",
    responses((status = 101, description = "Upgraded: text frames of WsFrame", body = FrameDoc),
        (status = 400, description = "Not a WebSocket handshake", body = ErrorBody)))]
pub(crate) async fn all_ws(
    State(app): State<App>,
    upgrade: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let upgrade = upgrade.map_err(refused)?;
    let follow = Follow::every(&app);
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
    format!(r#"{{"event":"{}","data":{}}}"#, message.kind.name(), message.data)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::Kind;

    #[test]
    fn frames_wrap_the_sse_data_in_json() {
        let message = Message { kind: Kind::Lagged, data: r#"{"missed":3}"#.into() };
        let value: serde_json::Value = serde_json::from_str(&frame(&message)).unwrap();
        assert_eq!(value, serde_json::json!({ "event": "lagged", "data": { "missed": 3 } }));
    }
}
