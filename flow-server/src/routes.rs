//! The routes, their handlers, and the OpenAPI document generated from them.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use flow_core::{Engine, MachineInfo, RunId, RunStatus, StartJson};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use crate::body::JsonBody;
use crate::error::{ApiError, ErrorBody};
use crate::hub::Hub;
use crate::{ServerConfig, auth, control, events, list, message, ui, ws};

/// What every handler shares.
#[derive(Clone)]
pub(crate) struct App {
    pub engine: Engine,
    pub config: Arc<ServerConfig>,
    /// How often a run's event stream looks in the store for what the run recorded:
    /// [`ServerConfig::follow_interval`].
    pub follow_every: Duration,
    /// Every run's events, made JSON once for all who follow them.
    pub hub: Arc<Hub>,
}

pub(crate) fn router(app: App) -> Router {
    let limit = app.config.body_limit;
    Router::new()
        .route("/machines", get(machines))
        .route("/machines/{name}", get(machine))
        .route("/machines/{name}/runs", post(start))
        .route("/runs", get(list::runs))
        .route("/runs/{id}", get(run).delete(control::delete))
        .route("/runs/{id}/signal", post(signal))
        .route("/runs/{id}/cancel", post(cancel))
        .route("/runs/{id}/pause", post(pause))
        .route("/runs/{id}/resume", post(resume))
        .route("/runs/{id}/retry", post(control::retry))
        .route("/runs/{id}/branches", get(control::branches))
        .route("/runs/{id}/events", get(events::run_events))
        .route("/events", get(events::all_events))
        .route("/runs/{id}/ws", get(ws::run_ws))
        .route("/ws", get(ws::all_ws))
        .route("/openapi.json", get(openapi))
        .merge(ui::routes())
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(app.clone(), auth::check))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(app)
}

/// The body of `POST /machines/{name}/runs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({ "input": "a memo" }))]
pub(crate) struct StartRun {
    /// The run's input: the start state's payload as JSON (an array for several values;
    /// `null` or absent for none).
    #[serde(default)]
    input: Value,
    /// The run's context as JSON; absent or `null` for the machine's default context.
    #[serde(default)]
    context: Option<Value>,
    /// A business key: the run's id is derived from it and the machine's name, so a second
    /// start with the same key is refused (409) and a retried request starts one run.
    #[serde(default)]
    key: Option<String>,
}

/// A run, by id: what starting or steering it returns.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub(crate) struct RunRef {
    /// The run's id, 32 hex digits.
    run: String,
}

/// Lists the registered machines, each with its graph, Mermaid diagram, and the JSON Schemas
/// of its input and signals where its types have them.
#[utoipa::path(get, path = "/machines", tag = "machines",
    responses((status = 200, description = "The registered machines, by name", body = [MachineDoc])))]
pub(crate) async fn machines(State(app): State<App>) -> Json<Vec<MachineInfo>> {
    Json(app.engine.machines())
}

/// One registered machine, with its graph, Mermaid diagram, and the JSON Schemas of its input
/// and signals where its types have them.
#[utoipa::path(get, path = "/machines/{name}", tag = "machines",
    params(("name" = String, Path, description = "The machine's name")),
    responses((status = 200, description = "The machine", body = MachineDoc),
        (status = 404, description = "No machine of that name is registered", body = ErrorBody)))]
pub(crate) async fn machine(
    State(app): State<App>,
    Path(name): Path<String>,
) -> Result<Json<MachineInfo>, ApiError> {
    Ok(Json(app.engine.machine(&name)?))
}

/// Starts a run of a machine; returns once its first checkpoint is durable.
#[utoipa::path(post, path = "/machines/{name}/runs", tag = "runs",
    params(("name" = String, Path, description = "The machine's name")),
    request_body = StartRun,
    responses((status = 201, description = "Started", body = RunRef, links(
            ("status" = (operation_id = "run", parameters(("id" = "$response.body#/run")))),
            ("signal" = (operation_id = "signal", parameters(("id" = "$response.body#/run")))),
            ("cancel" = (operation_id = "cancel", parameters(("id" = "$response.body#/run")))),
            ("pause" = (operation_id = "pause", parameters(("id" = "$response.body#/run")))),
            ("resume" = (operation_id = "resume", parameters(("id" = "$response.body#/run")))))),
        (status = 400, description = "The body is not JSON", body = ErrorBody),
        (status = 404, description = "No machine of that name", body = ErrorBody),
        (status = 409, description = "A run with this key (or id) exists", body = ErrorBody),
        (status = 413, description = "The body is over the server's limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`", body = ErrorBody),
        (status = 422, description = "The input or context does not read as the machine's \
            types; `detail.path` says where", body = ErrorBody)))]
pub(crate) async fn start(
    State(app): State<App>,
    Path(name): Path<String>,
    JsonBody(body): JsonBody<StartRun>,
) -> Result<Response, ApiError> {
    let mut start = StartJson::new(body.input);
    if let Some(context) = body.context {
        start = start.context(context);
    }
    if let Some(key) = body.key {
        start = start.key(key);
    }
    let run =
        app.engine.start_json(&name, start).await.map_err(|error| ApiError::json(error, true))?;
    let location = format!("/runs/{run}");
    let body = Json(RunRef { run: run.to_string() });
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], body).into_response())
}

/// Where a run stands, with its full history.
#[utoipa::path(get, path = "/runs/{id}", tag = "runs",
    params(("id" = RunIdDoc, Path, description = "The run's id")),
    responses((status = 200, description = "The run", body = RunStatusDoc),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody)))]
pub(crate) async fn run(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Json<RunStatus>, ApiError> {
    Ok(Json(app.engine.status(run_id(&id)?).await?))
}

/// Delivers a signal to a run waiting for one; the body is the signal's value, decoded as
/// the type the run's state waits for.
#[utoipa::path(post, path = "/runs/{id}/signal", tag = "runs",
    params(("id" = RunIdDoc, Path, description = "The run's id")),
    request_body(content = Value, description = "The signal, as the waiting state's type"),
    responses((status = 202, description = "The signal is in the store; the run goes on", body = RunRef),
        (status = 400, description = "Not a run id, or the body is not JSON", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run waits for no signal now", body = ErrorBody),
        (status = 413, description = "The body is over the server's limit", body = ErrorBody),
        (status = 415, description = "The body is not sent as `application/json`", body = ErrorBody),
        (status = 422, description = "The value does not read as the signal's type; \
            `detail.path` says where", body = ErrorBody)))]
pub(crate) async fn signal(
    State(app): State<App>,
    Path(id): Path<String>,
    JsonBody(signal): JsonBody<Value>,
) -> Result<Response, ApiError> {
    let run = run_id(&id)?;
    app.engine.signal_json(run, signal).await.map_err(|error| ApiError::json(error, false))?;
    Ok(accepted(run))
}

/// Cancels a run at its next safe point (at once if it waits).
#[utoipa::path(post, path = "/runs/{id}/cancel", tag = "runs",
    params(("id" = RunIdDoc, Path, description = "The run's id")),
    responses((status = 202, description = "Cancelled, or asked of the engine running it", body = RunRef),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "Finished, or rolling back", body = ErrorBody)))]
pub(crate) async fn cancel(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = run_id(&id)?;
    app.engine.cancel(run).await?;
    Ok(accepted(run))
}

/// Pauses a run at its next safe point, until it is resumed.
#[utoipa::path(post, path = "/runs/{id}/pause", tag = "runs",
    params(("id" = RunIdDoc, Path, description = "The run's id")),
    responses((status = 202, description = "Paused, or asked of the engine running it", body = RunRef),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "Finished, or rolling back", body = ErrorBody)))]
pub(crate) async fn pause(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = run_id(&id)?;
    app.engine.pause(run).await?;
    Ok(accepted(run))
}

/// Resumes a paused run from its checkpoint.
#[utoipa::path(post, path = "/runs/{id}/resume", tag = "runs",
    params(("id" = RunIdDoc, Path, description = "The run's id")),
    responses((status = 202, description = "Runnable again", body = RunRef),
        (status = 400, description = "Not a run id", body = ErrorBody),
        (status = 404, description = "No such run", body = ErrorBody),
        (status = 409, description = "The run is not paused", body = ErrorBody)))]
pub(crate) async fn resume(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let run = run_id(&id)?;
    app.engine.resume(run).await?;
    Ok(accepted(run))
}

/// This API's OpenAPI 3.1 document.
pub(crate) async fn openapi() -> Json<Value> {
    Json(openapi_document())
}

pub(crate) fn openapi_document() -> Value {
    serde_json::to_value(ApiDoc::openapi()).unwrap_or_default()
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such route")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take this method; GET /openapi.json lists the routes",
    )
}

/// `id` as a run id.
pub(crate) fn run_id(id: &str) -> Result<RunId, ApiError> {
    id.parse().map_err(|error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "bad_run_id",
            format!(
                "`{id}` is not a run id ({error}); ids are 32 hex digits, as GET /runs lists them"
            ),
        )
    })
}

pub(crate) fn accepted(run: RunId) -> Response {
    (StatusCode::ACCEPTED, Json(RunRef { run: run.to_string() })).into_response()
}

// What the OpenAPI document says of flow's own types, which do not derive its schemas: their
// fields as they serialize. The tests compare them with real responses.

/// A run's id in a path: 32 hex digits as the API prints them, or a UUID in its hyphenated
/// form; anything else is refused with 400.
pub(crate) struct RunIdDoc;

/// What [`RunIdDoc`] matches, as [`RunId`]'s `FromStr` reads it.
const RUN_ID_PATTERN: &str = "^([0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-\
    [0-9a-fA-F]{4}-[0-9a-fA-F]{12})$";

impl PartialSchema for RunIdDoc {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(RUN_ID_PATTERN))
            .description(Some("A run's id: 32 hex digits, or a hyphenated UUID."))
            .into()
    }
}

impl ToSchema for RunIdDoc {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("RunId")
    }
}

/// A registered machine.
#[derive(ToSchema)]
#[schema(as = Machine)]
#[allow(dead_code)]
pub(crate) struct MachineDoc {
    /// Its name.
    name: String,
    /// Its static shape: states (payload and signal types as written), edges, policies.
    graph: Value,
    /// The graph as a Mermaid `stateDiagram-v2`.
    mermaid: String,
    /// Whether a run starts without a context.
    default_context: bool,
    /// The JSON Schema (2020-12) of a run's `input`, for a client to build a form from:
    /// the start state's payload (its one value, an array of several, `null` for none).
    /// `null` when the machine's input type has no schema (it does not derive
    /// `schemars::JsonSchema`): send any JSON of its type.
    input_schema: Option<Value>,
    /// The JSON Schema (2020-12) of each signal, by the state that waits for it. A state
    /// whose signal type has no schema is missing; its graph still names the type.
    signal_schemas: BTreeMap<String, Value>,
}

/// Where a run stands.
#[derive(Serialize, ToSchema)]
#[schema(as = Status)]
#[allow(dead_code)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StatusDoc {
    Running,
    Completed,
    Failed,
    Cancelled,
    Paused,
    Stuck,
}

/// A run as `GET /runs` lists it.
#[derive(ToSchema)]
#[schema(as = RunSummary)]
#[allow(dead_code)]
pub(crate) struct RunSummaryDoc {
    /// The run's id.
    run: String,
    /// Its machine.
    machine: String,
    /// The business key it was started under.
    key: Option<String>,
    status: StatusDoc,
    /// The state it is in, or ended in.
    state: String,
    /// Why it is stuck.
    note: Option<String>,
    /// Why it waits: signal, timer, backoff or join (its fork's branches).
    wait: Option<String>,
    /// When it was created, in Unix milliseconds.
    created: u64,
    /// When its last checkpoint was written, in Unix milliseconds.
    updated: u64,
}

/// A run with its history, as `GET /runs/{id}` shows it.
#[derive(ToSchema)]
#[schema(as = RunStatus)]
#[allow(dead_code)]
pub(crate) struct RunStatusDoc {
    /// The run's id.
    run: String,
    /// Its machine.
    machine: String,
    /// The business key it was started under.
    key: Option<String>,
    /// The machine version of its last checkpoint.
    version: u32,
    status: StatusDoc,
    /// The state it is in, or ended in.
    state: String,
    /// That state with its payload, as stored: `{"Ship": {"paid": "…", "items": 3}}`.
    payload: Option<Value>,
    /// Its context, as stored.
    context: Option<Value>,
    /// For a branch of a fork, the run that forked.
    parent: Option<String>,
    /// Its last checkpoint's sequence number.
    seq: u64,
    /// Why it waits: signal, timer, backoff or join (its fork's branches).
    wait: Option<String>,
    /// When its wait ends, in milliseconds since the Unix epoch.
    wake_at: Option<u64>,
    /// The resource pool an attempt waits for in this engine.
    waiting_for_pool: Option<String>,
    /// Why it is stuck.
    note: Option<String>,
    /// Why it failed, or paused itself.
    error: Option<Value>,
    /// The output of a completed run.
    output: Option<Value>,
    /// Every attempt so far.
    history: Vec<Value>,
}

/// One event of a run, as a Server-Sent Event's data (SSE event type `message`).
#[derive(ToSchema)]
#[schema(as = Event)]
#[allow(dead_code)]
pub(crate) struct EventDoc {
    /// The run's id.
    run: String,
    /// Its machine.
    machine: String,
    /// The state it happened in.
    state: String,
    /// When, in whole milliseconds since the Unix epoch.
    at: u64,
    /// What happened: `"Started"`, `{"Entered": {"attempt": 1, "visit": 3, "payload": {…}}}`
    /// (the state's payload, its parameters by name), `{"Completed": {"output": …}}`, …
    kind: Value,
}

#[derive(OpenApi)]
#[openapi(
    info(title = "flow", description = "Start, steer and follow the runs of an engine's \
        machines. Errors are JSON: `error`, `code`, `detail`."),
    paths(machines, machine, start, list::runs, run, signal, cancel, pause, resume,
        control::delete, control::retry, control::branches,
        events::run_events, events::all_events, ws::run_ws, ws::all_ws),
    components(schemas(ErrorBody, StartRun, RunRef, RunIdDoc, MachineDoc, StatusDoc, RunSummaryDoc,
        RunStatusDoc, EventDoc, list::RunPage, list::WaitDoc, list::OrderDoc, message::Lagged,
        message::End, message::CheckpointDoc, message::Reset, ws::FrameDoc)),
    modifiers(&Bearer, &Refusals),
    security(("bearer" = [])),
    tags((name = "machines", description = "The registered machines"),
        (name = "runs", description = "Starting, reading and steering runs"),
        (name = "events", description = "What happens, as Server-Sent Events or over a \
            WebSocket")),
)]
struct ApiDoc;

/// The bearer token scheme.
struct Bearer;

impl Modify for Bearer {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let scheme = HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build();
        components.add_security_scheme("bearer", SecurityScheme::Http(scheme));
    }
}

/// The refusals of the token check, which stands before every route: 401 on each operation,
/// and 403 (the read-only token) on each that changes something.
struct Refusals;

impl Modify for Refusals {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let refusal = |description: &str| {
            let body = Content::new(Some(Ref::from_schema_name("ErrorBody")));
            ResponseBuilder::new().description(description).content("application/json", body)
        };
        for item in openapi.paths.paths.values_mut() {
            let reads = [&mut item.get, &mut item.head].into_iter().map(|op| (op, true));
            let changes = [&mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for (operation, reads) in reads.chain(changes.into_iter().map(|op| (op, false))) {
                let Some(operation) = operation else { continue };
                let responses = &mut operation.responses.responses;
                responses.entry("401".into()).or_insert_with(|| {
                    refusal("No token, or one this server does not accept").build().into()
                });
                if !reads {
                    responses.entry("403".into()).or_insert_with(|| {
                        refusal("The read-only token: it may only read").build().into()
                    });
                }
            }
        }
    }
}
