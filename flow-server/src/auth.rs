//! Bearer tokens: one that may change runs, one that may only read.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::routes::App;

/// Lets a request through if its token allows it: with no token configured, every request;
/// otherwise reads (GET, HEAD) with either token, and changes only with
/// [`ServerConfig::token`](crate::ServerConfig::token).
pub(crate) async fn check(State(app): State<App>, request: Request, next: Next) -> Response {
    let config = &app.config;
    if config.token.is_none() && config.read_only_token.is_none() {
        return next.run(request).await;
    }
    let reads = matches!(*request.method(), Method::GET | Method::HEAD);
    let presented = bearer(request.headers());
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
            "the read-only token may only read; starting, signalling, cancelling, pausing and \
             resuming runs needs the server's token",
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
}
