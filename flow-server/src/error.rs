//! Errors as JSON: [`ErrorBody`], with the HTTP status each refusal maps to.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use flow_core::store::StoreError;
use flow_core::{DecodeError, EngineError, JsonError};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The body of every error response: what went wrong, in words a person can act on, a
/// stable code for programs, and details where there are some.
///
/// ```json
/// { "error": "the input of machine `checkout` does not read as `Order` at `lines[1].cents`: …",
///   "code": "bad_input",
///   "detail": { "part": "input", "path": "input.lines[1].cents", "expected": "Order", … } }
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// What went wrong and what to do about it.
    pub error: String,
    /// A stable, machine-readable code: `bad_input`, `bad_json`, `unknown_run`,
    /// `unauthorized`, `too_large`, …
    pub code: String,
    /// Details, when there are some: for a value that does not decode, its `part`, `path`
    /// (from the request body's root), `expected` type and serde's `message`. `null`
    /// otherwise.
    #[serde(default)]
    pub detail: Value,
}

/// An error response: a status and an [`ErrorBody`].
#[derive(Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &str, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: ErrorBody { error: error.into(), code: code.into(), detail: Value::Null },
        }
    }

    pub fn detail(mut self, detail: Value) -> ApiError {
        self.body.detail = detail;
        self
    }

    /// A value of the machine's that does not decode; `prefix` is where it sits in the
    /// request body (`input`, `context`), empty for a body that is the value itself.
    pub fn decode(error: DecodeError, in_body: bool) -> ApiError {
        let path = match (in_body, error.path.as_str()) {
            (false, path) => path.to_owned(),
            (true, "") => error.part.as_str().to_owned(),
            (true, path) => format!("{}.{path}", error.part),
        };
        let detail = json!({
            "part": error.part,
            "path": path,
            "expected": error.expected,
            "state": error.state,
            "message": error.message,
            "machine": error.machine,
        });
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "bad_input", error.to_string())
            .detail(detail)
    }

    /// A refusal of a call by JSON; a value that does not decode sits in the request body
    /// when `in_body`.
    pub fn json(error: JsonError, in_body: bool) -> ApiError {
        match error {
            JsonError::Decode(error) => ApiError::decode(*error, in_body),
            JsonError::ContextRequired { machine } => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "context_required",
                JsonError::ContextRequired { machine: machine.clone() }.to_string(),
            )
            .detail(json!({ "machine": machine })),
            JsonError::Engine(error) => error.into(),
            other => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", other.to_string())
            }
        }
    }

    pub fn not_found(what: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("{what}; GET /openapi.json lists the routes"),
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        use StatusCode as S;
        let (status, code) = match &error {
            EngineError::UnknownMachine { .. } => (S::NOT_FOUND, "unknown_machine"),
            EngineError::UnknownRun { .. } => (S::NOT_FOUND, "unknown_run"),
            EngineError::AlreadyExists { .. } => (S::CONFLICT, "already_exists"),
            EngineError::NotWaiting { .. } | EngineError::WrongSignal { .. } => {
                (S::CONFLICT, "not_waiting")
            }
            EngineError::NotPaused { .. } => (S::CONFLICT, "not_paused"),
            EngineError::NotBackingOff { .. } => (S::CONFLICT, "not_backing_off"),
            EngineError::Finished { .. } => (S::CONFLICT, "finished"),
            EngineError::RollingBack { .. } => (S::CONFLICT, "rolling_back"),
            EngineError::WrongMachine { .. } => (S::CONFLICT, "wrong_machine"),
            EngineError::Incompatible { .. } => (S::CONFLICT, "incompatible"),
            EngineError::Stuck { .. } => (S::CONFLICT, "stuck"),
            EngineError::Paused { .. } => (S::CONFLICT, "paused"),
            EngineError::Cancelled { .. } => (S::CONFLICT, "cancelled"),
            EngineError::Failed { .. } => (S::CONFLICT, "failed"),
            // What the caller sent would not read back from the store.
            EngineError::Unstorable { .. } | EngineError::Serialize { .. } => {
                (S::UNPROCESSABLE_ENTITY, "unstorable")
            }
            EngineError::Store(StoreError::Conflict { .. }) => (S::CONFLICT, "conflict"),
            EngineError::Store(StoreError::Unfinished { .. }) => (S::CONFLICT, "unfinished"),
            // Passing: the run kept moving, the engine is stopping, the store is away.
            EngineError::Stopped { .. } => (S::SERVICE_UNAVAILABLE, "try_again"),
            EngineError::ShuttingDown => (S::SERVICE_UNAVAILABLE, "shutting_down"),
            EngineError::Store(_) => (S::SERVICE_UNAVAILABLE, "store_unavailable"),
            _ => (S::INTERNAL_SERVER_ERROR, "internal"),
        };
        let detail = match &error {
            EngineError::NotWaiting { run, state } => json!({ "run": run, "state": state }),
            EngineError::NotPaused { run, status } | EngineError::Finished { run, status } => {
                json!({ "run": run, "status": status })
            }
            _ => Value::Null,
        };
        ApiError::new(status, code, error.to_string()).detail(detail)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let unauthorized = self.status == StatusCode::UNAUTHORIZED;
        let mut response = (self.status, Json(self.body)).into_response();
        if unauthorized {
            let challenge = HeaderValue::from_static("Bearer");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}
