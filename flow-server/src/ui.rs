//! The dashboard: one HTML page, its scripts and its style, built into the binary, so that
//! nothing needs building or installing to see the runs.
//!
//! The page holds no data: it asks for the token, keeps it in the browser's local storage,
//! and reads everything through the API, as any client would.

use axum::Router;
use axum::extract::{OriginalUri, Path};
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::error::ApiError;
use crate::routes::App;

/// The page, its files, and their media types.
const FILES: [(&str, &str, &str); 8] = [
    ("index.html", include_str!("../ui/index.html"), "text/html; charset=utf-8"),
    ("app.js", include_str!("../ui/app.js"), "text/javascript; charset=utf-8"),
    ("common.js", include_str!("../ui/common.js"), "text/javascript; charset=utf-8"),
    ("forms.js", include_str!("../ui/forms.js"), "text/javascript; charset=utf-8"),
    ("graph.js", include_str!("../ui/graph.js"), "text/javascript; charset=utf-8"),
    ("run.js", include_str!("../ui/run.js"), "text/javascript; charset=utf-8"),
    ("runs.js", include_str!("../ui/runs.js"), "text/javascript; charset=utf-8"),
    ("style.css", include_str!("../ui/style.css"), "text/css; charset=utf-8"),
];

/// Only this server's own files, and calls to this server: no inline script, nothing from
/// elsewhere.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
    connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; \
    frame-ancestors 'none'";

/// `GET /` and `GET /ui/{file}`. The page links its files and calls the API relative to
/// itself, so the router may be nested under a prefix.
pub(crate) fn routes() -> Router<App> {
    Router::new().route("/", get(index)).route("/ui/{file}", get(file))
}

/// The dashboard's page. Its links are relative, so that the page works under a prefix
/// (nested in another router, or behind a proxy): at `/flow` rather than `/flow/` they would
/// resolve against the root, so there they name the page's last segment (`flow/ui/app.js`).
async fn index(OriginalUri(uri): OriginalUri) -> Response {
    let Some(mut page) = serve("index.html") else {
        return ApiError::not_found("no dashboard").into_response();
    };
    let path = uri.path();
    if !path.ends_with('/') {
        let last = &path[path.rfind('/').map_or(0, |at| at + 1)..];
        let html = include_str!("../ui/index.html").replace("\"ui/", &format!("\"{last}/ui/"));
        *page.body_mut() = html.into();
    }
    page
}

/// One of the dashboard's files.
async fn file(Path(name): Path<String>) -> Response {
    serve(&name).unwrap_or_else(|| {
        ApiError::not_found(&format!("the dashboard has no file `{name}`")).into_response()
    })
}

/// The file `name`, with its media type and a policy that keeps the page to this server.
fn serve(name: &str) -> Option<Response> {
    let &(_, body, media) = FILES.iter().find(|(file, ..)| *file == name)?;
    let headers = [
        (CONTENT_TYPE, HeaderValue::from_static(media)),
        // A new server version brings new files: the browser asks again each time.
        (CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        (CONTENT_SECURITY_POLICY, HeaderValue::from_static(POLICY)),
        (HeaderName::from_static("x-content-type-options"), HeaderValue::from_static("nosniff")),
        (HeaderName::from_static("referrer-policy"), HeaderValue::from_static("no-referrer")),
    ];
    Some((headers, body).into_response())
}
