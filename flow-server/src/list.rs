//! `GET /runs`: the runs a filter matches, a page at a time, newest first unless asked.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use flow_core::store::{Cursor, Filter, Order, RunSummary, Status, Wait};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::routes::{App, RunSummaryDoc};

/// The runs a page holds unless `limit` says otherwise.
pub(crate) const DEFAULT_LIMIT: usize = 50;

/// The most runs a page holds: a larger `limit` is refused.
pub(crate) const MAX_LIMIT: usize = 500;

/// The filters and paging of `GET /runs`; each filter left out matches every run. Values are
/// read as text and checked here, so that a bad one is refused naming its parameter.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct RunsQuery {
    /// Only runs of this machine.
    machine: Option<String>,
    /// Only runs with this status: running, completed, failed, cancelled, paused or stuck.
    #[param(value_type = Option<crate::routes::StatusDoc>)]
    status: Option<String>,
    /// Only the run started under this business key.
    key: Option<String>,
    /// Only runs in this state (a finished run: the state it ended in).
    state: Option<String>,
    /// Only runs waiting in the store for this: signal, timer, backoff or join (the branches
    /// of a fork). A paused run is `status=paused`.
    #[param(value_type = Option<WaitDoc>)]
    wait: Option<String>,
    /// Only runs created strictly after this time, in Unix milliseconds.
    #[param(value_type = Option<u64>)]
    created_after: Option<String>,
    /// Only runs created strictly before this time, in Unix milliseconds.
    #[param(value_type = Option<u64>)]
    created_before: Option<String>,
    /// `newest` (the default: an operator wants the latest runs first) or `oldest`.
    #[param(value_type = Option<OrderDoc>)]
    order: Option<String>,
    /// At most this many runs: 1 to 500, 50 unless given.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// The next page: the `next` of the page before, with the same filters and order
    /// (the creation time in Unix milliseconds, a dash, the last run's id). Empty: the first.
    #[param(
        pattern = r"^([0-9]{1,19}-([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}))?$"
    )]
    cursor: Option<String>,
}

/// A page of runs, as `GET /runs` gives it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = RunPage)]
pub(crate) struct RunPage {
    /// The runs, in the order asked for.
    #[schema(value_type = Vec<RunSummaryDoc>)]
    runs: Vec<RunSummary>,
    /// The cursor of the next page (pass it as `cursor`); `null` when this page is the last.
    next: Option<String>,
}

/// Why a run waits, as `wait=` takes it.
#[derive(Serialize, ToSchema)]
#[schema(as = Wait)]
#[allow(dead_code)]
#[serde(rename_all = "lowercase")]
pub(crate) enum WaitDoc {
    Signal,
    Timer,
    Backoff,
    Join,
}

/// The order of a listing, as `order=` takes it.
#[derive(Serialize, ToSchema)]
#[schema(as = Order)]
#[allow(dead_code)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OrderDoc {
    Newest,
    Oldest,
}

/// Lists runs, newest first unless `order=oldest`, a page at a time: `next` is the cursor of
/// the following page, `null` at the end.
#[utoipa::path(get, path = "/runs", tag = "runs", params(RunsQuery),
    responses((status = 200, description = "A page of the runs the filters match", body = RunPage),
        (status = 400, description = "An unknown parameter, or a value it does not take; the \
            message names the parameter and what it accepts", body = ErrorBody)))]
pub(crate) async fn runs(
    State(app): State<App>,
    query: Result<Query<RunsQuery>, QueryRejection>,
) -> Result<Json<RunPage>, ApiError> {
    let Query(query) = query.map_err(|rejection| {
        bad(
            None,
            format!(
                "{}; the parameters are machine, status, key, state, wait, created_after, \
                 created_before, order, limit and cursor",
                rejection.body_text()
            ),
        )
    })?;
    let (filter, limit) = filter(query)?;
    // One more than the page, to know whether another page follows.
    let mut runs = app.engine.list(filter.limit(limit + 1)).await?;
    let next = if runs.len() > limit {
        runs.truncate(limit);
        runs.last().map(|last| last.cursor().to_string())
    } else {
        None
    };
    Ok(Json(RunPage { runs, next }))
}

/// The store's filter for `query`, and the page's size.
fn filter(query: RunsQuery) -> Result<(Filter, usize), ApiError> {
    let status = query.status.map(|text| choose("status", &text, Status::ALL)).transpose()?;
    let wait = query.wait.map(|text| choose("wait", &text, Wait::ALL)).transpose()?;
    let order = match query.order.as_deref() {
        None | Some("newest") => Order::NewestFirst,
        Some("oldest") => Order::OldestFirst,
        Some(other) => {
            return Err(bad(
                Some("order"),
                format!("`{other}` is not an order: order is newest (the default) or oldest"),
            ));
        }
    };
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(text) => match text.parse::<usize>() {
            Ok(limit @ 1..=MAX_LIMIT) => limit,
            _ => {
                return Err(bad(
                    Some("limit"),
                    format!(
                        "`{text}` is not a page size: limit is a number from 1 to {MAX_LIMIT} \
                         (the max); page through more with cursor"
                    ),
                )
                .detail(json!({ "parameter": "limit", "max": MAX_LIMIT })));
            }
        },
    };
    // An empty cursor (a form's field left blank) asks for the first page.
    let cursor = query
        .cursor
        .filter(|text| !text.is_empty())
        .map(|text| {
            // At most 19 digits of time, as the document's pattern says (Unix milliseconds
            // stay below 10^19 for some 300 million years).
            let digits = text.split_once('-').map_or(text.len(), |(created, _)| created.len());
            let parsed = match digits {
                20.. => Err(format!("the cursor `{text}` has more than 19 digits of time")),
                _ => text.parse::<Cursor>().map_err(|error| error.to_string()),
            };
            parsed.map_err(|error| {
                bad(Some("cursor"), format!("{error}; pass the `next` of the page before"))
            })
        })
        .transpose()?;
    let filter = Filter {
        machine: query.machine,
        status,
        key: query.key,
        state: query.state,
        wait,
        created_after: query
            .created_after
            .map(|text| millis("created_after", &text))
            .transpose()?,
        created_before: query
            .created_before
            .map(|text| millis("created_before", &text))
            .transpose()?,
        order,
        cursor,
        limit: None,
    };
    Ok((filter, limit))
}

/// The value of `values` named `text`, or a refusal naming `parameter` and every value.
fn choose<T: Copy + std::fmt::Display>(
    parameter: &str,
    text: &str,
    values: &[T],
) -> Result<T, ApiError> {
    values.iter().copied().find(|value| value.to_string() == text).ok_or_else(|| {
        let names: Vec<String> = values.iter().map(T::to_string).collect();
        bad(
            Some(parameter),
            format!("`{text}` is not a {parameter}: {parameter} is one of {}", names.join(", ")),
        )
        .detail(json!({ "parameter": parameter, "accepted": names }))
    })
}

/// `text` as Unix milliseconds, or a refusal naming `parameter`.
fn millis(parameter: &str, text: &str) -> Result<u64, ApiError> {
    // The document's int64: 0 to 2^63 - 1, which no time in milliseconds comes near.
    let millis = text.parse::<i64>().ok().and_then(|millis| u64::try_from(millis).ok());
    millis.ok_or_else(|| {
        bad(
            Some(parameter),
            format!(
                "`{text}` is not a time: {parameter} is a time in Unix milliseconds, such as \
                 1767225600000"
            ),
        )
    })
}

/// A 400 `bad_query`, with the parameter at fault in its detail when there is one.
fn bad(parameter: Option<&str>, message: String) -> ApiError {
    let error = ApiError::new(StatusCode::BAD_REQUEST, "bad_query", message);
    match parameter {
        Some(parameter) => error.detail(json!({ "parameter": parameter })),
        None => error,
    }
}
