//! Bearer tokens: one that may change runs, one that may only read.

use std::collections::HashMap;

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::routes::App;

/// Lets a request through if its token allows it: with no token configured, every request;
/// otherwise the dashboard's files to anyone (they hold no data: the page asks for a token),
/// reads (GET, HEAD) with either token, and changes only with
/// [`ServerConfig::token`](crate::ServerConfig::token).
///
/// The token is an `Authorization: Bearer` header, or on the event streams (SSE and
/// WebSocket, which browsers open without headers) a `?token=` query parameter.
pub(crate) async fn check(State(app): State<App>, request: Request, next: Next) -> Response {
    let config = &app.config;
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    let open = config.token.is_none() && config.read_only_token.is_none();
    if open || (reads && public(request.uri().path())) {
        return next.run(request).await;
    }
    let query = (reads && stream(request.uri().path())).then(|| from_query(request.uri()));
    let presented = bearer(request.headers()).or(query.as_ref().and_then(|t| t.as_deref()));
    let matches = |token: &Option<String>| {
        presented.zip(token.as_deref()).is_some_and(|(given, known)| same(given, known))
    };
    if matches(&config.token) || (reads && matches(&config.read_only_token)) {
        return next.run(request).await;
    }
    let refused = if matches(&config.read_only_token) {
        ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "the read-only token may only read; starting, signalling, cancelling, pausing, \
             resuming, retrying and deleting runs needs the server's token",
        )
    } else if presented.is_some() {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not one this server accepts; check the token you were given",
        )
    } else {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "this server needs a token: send the header Authorization: Bearer <token>",
        )
    };
    refused.into_response()
}

/// Whether `path` is the dashboard's: its page and files.
fn public(path: &str) -> bool {
    path == "/" || path.starts_with("/ui/")
}

/// Whether `path` is an event stream: `/events`, `/ws`, `/runs/{id}/events`, `/runs/{id}/ws`.
fn stream(path: &str) -> bool {
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(segments.as_slice(), ["events" | "ws"] | ["runs", _, "events" | "ws"])
}

/// The `token` query parameter of `uri`, decoded.
fn from_query(uri: &Uri) -> Option<String> {
    let Query(mut query) = Query::<HashMap<String, String>>::try_from_uri(uri).ok()?;
    query.remove("token")
}

/// The token of an `Authorization: Bearer <token>` header.
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Whether `given` is `known`, in a time that does not depend on where they differ.
fn same(given: &str, known: &str) -> bool {
    let (given, known) = (given.as_bytes(), known.as_bytes());
    given.len() == known.len()
        && given.iter().zip(known).fold(0u8, |differ, (a, b)| differ | (a ^ b)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_from_bearer_headers() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer s3cret".parse().unwrap());
        assert_eq!(bearer(&headers), Some("s3cret"));
        headers.insert(header::AUTHORIZATION, "bearer  s3cret ".parse().unwrap());
        assert_eq!(bearer(&headers), Some("s3cret"));
        headers.insert(header::AUTHORIZATION, "Basic czNjcmV0".parse().unwrap());
        assert_eq!(bearer(&headers), None);
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("abc", "abcd"));
    }

    #[test]
    fn streams_and_the_dashboard_are_told_apart() {
        for path in ["/events", "/ws", "/runs/0123/events", "/runs/0123/ws"] {
            assert!(stream(path), "{path}");
        }
        for path in ["/runs", "/runs/0123", "/runs/0123/signal", "/runs/events", "/", "/ui/x"] {
            assert!(!stream(path), "{path}");
        }
        assert!(public("/") && public("/ui/app.js"));
        assert!(!public("/runs") && !public("/uix"));
        let uri: Uri = "/events?token=a%2Bb".parse().unwrap();
        assert_eq!(from_query(&uri).as_deref(), Some("a+b"));
        assert_eq!(from_query(&"/events?other=1".parse().unwrap()), None);
        assert_eq!(from_query(&"/events".parse().unwrap()), None);
    }
}
