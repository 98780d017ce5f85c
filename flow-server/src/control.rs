//! A run's housekeeping: `DELETE /runs/{id}`, `POST /runs/{id}/retry` and
//! `GET /runs/{id}/branches`.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use flow_core::EngineError;
use flow_core::store::StoreError;

use crate::error::{ApiError, ErrorBody};
use crate::routes::{App, RunIdDoc, RunRef, accepted, run_id};

/// Deletes a finished run and its history.
#[utoipa::path(delete, path = "/runs/{id}", tag = "runs",
    params(("id" = RunIdDoc, Path, description = "The run's id")),
    responses((status = 204, description = "Deleted, with its history"),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run has not finished: cancel it first", body = ErrorBody)))]
pub(crate) async fn delete(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let run = run_id(&id)?;
    match app.engine.delete(run).await {
        Ok(()) => Ok(StatusCode::NO_CONTENT),
        Err(EngineError::Store(StoreError::Unfinished { run, status })) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "unfinished",
            format!(
                "run {run} is {status}, not finished, and was not deleted; cancel it first \
                 (POST /runs/{run}/cancel), then delete it"
            ),
        )
        .detail(serde_json::json!({ "run": run, "status": status }))),
        Err(error) => Err(error.into()),
    }
}

/// Starts the next attempt of a run that waits out a retry's backoff now, instead of at the
/// backoff's end (the outage is over). It counts against the state's attempts as it would
/// have.
#[utoipa::path(post, path = "/runs/{id}/retry", tag = "runs",
    params(("id" = RunIdDoc, Path, description = "The run's id")),
    responses((status = 202, description = "The run is runnable now; an engine claims it", body = RunRef),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is not waiting out a backoff", body = ErrorBody)))]
pub(crate) async fn retry(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = run_id(&id)?;
    app.engine.retry_now(run).await?;
    Ok(accepted(run))
}

/// The branch runs of the fork a run waits for (`wait` is `join`), in the fork's order; empty
/// when it waits for none. Ids of branches a fan-out's limit has not started yet are listed
/// too (`GET /runs/{id}` says 404 for them until they start).
#[utoipa::path(get, path = "/runs/{id}/branches", tag = "runs",
    params(("id" = RunIdDoc, Path, description = "The run's id")),
    responses((status = 200, description = "The branches' run ids", body = [String]),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(crate) async fn branches(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let branches = app.engine.branches(run_id(&id)?).await?;
    let ids: Vec<String> = branches.iter().map(ToString::to_string).collect();
    Ok(Json(ids).into_response())
}
