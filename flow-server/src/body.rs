//! JSON request bodies: [`JsonBody`], whose refusals are JSON too and say where a body went
//! wrong.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::error::ApiError;
use crate::routes::App;

/// A request body read as JSON into a `T`. Refused, as JSON: without a JSON content type
/// (415), over the server's body limit (413), not JSON (400, with the line and column), or
/// JSON of the wrong shape (422, with the serde path of the value that failed).
pub(crate) struct JsonBody<T>(pub T);

impl<T: DeserializeOwned> FromRequest<App> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, app: &App) -> Result<Self, ApiError> {
        let content_type = request.headers().get(header::CONTENT_TYPE);
        let media = content_type.and_then(|value| value.to_str().ok()).unwrap_or("");
        let media = media.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
        if media != "application/json" && !media.ends_with("+json") {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the body as JSON, with the header Content-Type: application/json",
            ));
        }
        let limit = app.config.body_limit;
        let bytes = Bytes::from_request(request, app).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    format!("the body is larger than this server accepts ({limit} bytes)"),
                )
                .detail(json!({ "limit": limit }))
            } else {
                ApiError::new(rejection.status(), "bad_body", rejection.body_text())
            }
        })?;
        parse(&bytes).map(JsonBody)
    }
}

/// `bytes` as JSON read into a `T`.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = match serde_path_to_error::deserialize(&mut deserializer) {
        Ok(value) => value,
        Err(error) => {
            let path = error.path().to_string();
            let path = if path == "." { String::new() } else { path };
            return Err(refused(path, error.into_inner()));
        }
    };
    deserializer.end().map_err(|error| refused(String::new(), error))?;
    Ok(value)
}

/// The refusal of a body: not JSON (400), or JSON that does not fit (422), at `path`.
fn refused(path: String, error: serde_json::Error) -> ApiError {
    let (status, code, what) = if error.is_data() {
        (StatusCode::UNPROCESSABLE_ENTITY, "bad_body", "the body does not have the expected shape")
    } else {
        (StatusCode::BAD_REQUEST, "bad_json", "the body is not JSON")
    };
    let at = if path.is_empty() { String::new() } else { format!(" at `{path}`") };
    let detail = json!({
        "path": path,
        "message": error.to_string(),
        "line": error.line(),
        "column": error.column(),
    });
    ApiError::new(status, code, format!("{what}{at}: {error}")).detail(detail)
}
