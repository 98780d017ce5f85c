//! Where a follower of an event stream says it stopped: [`Since`], from `?after=` or the
//! `Last-Event-ID` header a browser's `EventSource` sends when it reconnects.

use axum::extract::FromRequestParts;
use axum::extract::Query;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::json;
use utoipa::IntoParams;

use crate::error::ApiError;

/// The header a browser's `EventSource` sends on reconnecting: the `id:` of the last message
/// it received.
pub(crate) const LAST_EVENT_ID: &str = "last-event-id";

/// Where a follower resumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Since {
    /// A new follower: from now on.
    Now,
    /// A follower that has seen the run up to this checkpoint (its sequence number).
    Seq(u64),
    /// A follower that saw messages before, but whose position names no checkpoint this
    /// stream can go on from: what it missed cannot be told.
    Unknown,
}

/// `?after=` of the event routes. Other parameters (`token`) are left to their readers.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct AfterQuery {
    /// The sequence number of the last checkpoint this client saw (the `id:` of the last
    /// SSE message it received that had one): the stream first sends what the run recorded
    /// after it. Wins over the `Last-Event-ID` header. Not a number: 400.
    #[param(value_type = Option<u64>, minimum = 0)]
    after: Option<String>,
}

/// The `Last-Event-ID` header, as the OpenAPI document describes it.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub(crate) struct LastEventIdHeader {
    /// Sent by a browser's `EventSource` when it reconnects: the `id:` of the last message
    /// it received, a checkpoint's sequence number. Read as `?after=`; a value that is not a
    /// number is not refused (a browser would not recover from a 400) but answered with a
    /// `reset` message.
    #[param(rename = "Last-Event-ID")]
    last_event_id: Option<String>,
}

/// One run's follower's position: `?after=` or else `Last-Event-ID`.
pub(crate) struct RunSince(pub Since);

impl<S: Send + Sync> FromRequestParts<S> for RunSince {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<RunSince, ApiError> {
        match after(parts)? {
            Some(text) => match text.trim().parse() {
                Ok(seq) => Ok(RunSince(Since::Seq(seq))),
                Err(_) => Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_query",
                    format!(
                        "`{text}` is not a checkpoint: after is the sequence number of the last \
                         checkpoint seen (the `id:` of an SSE message), such as 12"
                    ),
                )
                .detail(json!({ "parameter": "after" }))),
            },
            None => Ok(RunSince(match last_event_id(&parts.headers) {
                Some(text) => text.trim().parse().map_or(Since::Unknown, Since::Seq),
                None => Since::Now,
            })),
        }
    }
}

/// Every run's follower's position: whether it says it saw messages before (any `?after=`
/// or `Last-Event-ID`), which that stream cannot replay.
pub(crate) struct EverySince(pub Since);

impl<S: Send + Sync> FromRequestParts<S> for EverySince {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<EverySince, ApiError> {
        let resumed = after(parts)?.is_some() || last_event_id(&parts.headers).is_some();
        Ok(EverySince(if resumed { Since::Unknown } else { Since::Now }))
    }
}

/// `?after=`, if given.
fn after(parts: &Parts) -> Result<Option<String>, ApiError> {
    let Query(query) = Query::<AfterQuery>::try_from_uri(&parts.uri).map_err(|rejection| {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_query", rejection.body_text())
    })?;
    Ok(query.after)
}

/// `Last-Event-ID`, if sent; one that is not text counts as sent.
fn last_event_id(headers: &HeaderMap) -> Option<&str> {
    headers.get(LAST_EVENT_ID).map(|value| value.to_str().unwrap_or(""))
}
