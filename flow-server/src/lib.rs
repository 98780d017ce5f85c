//! An HTTP API over a [`flow`](https://docs.rs/flow-machine) [`Engine`]: list its machines,
//! start runs from JSON, signal, cancel, pause, resume, retry and delete them, list them a
//! page at a time, read where they stand, and follow their events as Server-Sent Events or
//! over a WebSocket; and a dashboard that draws each machine and lights up where a run
//! stands, live. Package `flow-machine-server`.
//!
//! The server reads and acts only through the engine and its store, so it sees the runs of
//! every worker on that store, and steers them wherever they execute.
//!
//! ```no_run
//! use flow::Engine;
//! use flow::store::SqliteStore;
//! use flow_server::ServerConfig;
//!
//! #[flow::machine]
//! pub mod greet {
//!     use flow::prelude::*;
//!
//!     #[state(start, end)]
//!     async fn hello(_cx: &mut (), name: String) -> Result<String> {
//!         Ok(format!("hello, {name}"))
//!     }
//! }
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let engine = Engine::builder()
//!         .store(SqliteStore::open("runs.db")?)
//!         .machine::<greet::Machine>()
//!         .build()?;
//!     let config = ServerConfig::new().token("change me");
//!     let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//!     // POST /machines/greet/runs {"input": "Ada"}, with Authorization: Bearer change me
//!     flow_server::serve(listener, engine, config).await?;
//!     Ok(())
//! }
//! ```
//!
//! # Routes
//!
//! JSON in and out, but for the dashboard's page; `GET /openapi.json` is the OpenAPI 3.1
//! document of the API.
//!
//! | route | what it does |
//! | --- | --- |
//! | `GET /machines` | the registered machines, each with its graph, Mermaid diagram, and the JSON Schemas of its input and signals (`input_schema`, `signal_schemas` by state; for types that derive `schemars::JsonSchema`) |
//! | `GET /machines/{name}` | one of them (404 if unknown) |
//! | `POST /machines/{name}/runs` | starts a run: `{"input": …, "context": …, "key": …}` (context and key optional) → 201 `{"run": "<id>"}` |
//! | `GET /runs?machine=&status=&key=&state=&wait=&created_after=&created_before=` | a page of the runs the filters match, newest first: `{"runs": […], "next": "<cursor>"}` (see [Listing runs](#listing-runs)) |
//! | `GET /runs/{id}` | where a run stands, with its history, context and (for a branch) its parent |
//! | `DELETE /runs/{id}` | deletes a finished run and its history → 204 (409 if unfinished: cancel it first) |
//! | `POST /runs/{id}/signal` | delivers the body, decoded as the signal type the run waits for → 202 |
//! | `POST /runs/{id}/cancel`, `/pause`, `/resume` | steer a run → 202 |
//! | `POST /runs/{id}/retry` | starts the next attempt of a run waiting out a retry's backoff now → 202 (409 if it waits for none) |
//! | `GET /runs/{id}/branches` | the run ids of the branches of the fork the run waits for (`wait` is `join`) |
//! | `GET /runs/{id}/events?after=` | the run's events and checkpoints as Server-Sent Events, until it ends, wherever it executes |
//! | `GET /events` | every run's events in this engine as Server-Sent Events |
//! | `GET /runs/{id}/ws?after=` | the same as `GET /runs/{id}/events`, over a WebSocket |
//! | `GET /ws` | every run's events in this engine over a WebSocket |
//! | `GET /` | the dashboard (HTML; its files are under `GET /ui/{file}`) |
//!
//! # Listing runs
//!
//! `GET /runs` lists the newest runs first (`order=oldest` for the other way), since an
//! operator mostly wants the latest; `wait` is `signal`, `timer`, `backoff` or `join`, and
//! `created_after` and `created_before` are Unix milliseconds. A page holds `limit` runs,
//! 50 unless given and 500 at most (more is refused with 400). Its `next` is the cursor of
//! the following page, `null` at the end: pass it as `cursor`, with the same filters and
//! order. A cursor is the creation time and the id of the page's last run
//! (`1767225600000-0193f1e2…`), so pages neither skip nor repeat a run while new ones are
//! created. An unknown parameter, status or wait, a time or limit that is not a number, or a
//! malformed cursor is a 400 naming the parameter (`detail.parameter`) and what it takes.
//!
//! # Errors
//!
//! Every error is JSON, an [`ErrorBody`]: `{"error": "…", "code": "…", "detail": …}`, with a
//! message that says what to do. Bad input is a 4xx, never a 5xx: a body that is not JSON
//! is 400, one without `Content-Type: application/json` 415, one over
//! [`ServerConfig::body_limit`] 413, and a value that does not read as the machine's type
//! 422 with the serde path to it in `detail.path` (`input.lines[1].cents`). An unknown
//! machine, run or route is 404; a key that has a run, or a run in no state to take the
//! call (not waiting for a signal, not paused, not backing off, finished; unfinished, for a
//! delete), 409. A store that fails is 503.
//!
//! # Events
//!
//! Each event of this engine's is one SSE message whose data is the [`flow_core::Event`] as
//! JSON. A subscriber that falls behind the engine misses the oldest events; it is told,
//! with an SSE event `lagged` whose data is `{"missed": n}`, never with a silent gap. A run's
//! stream ends with an SSE event `end`, `{"run": "<id>", "status": "completed"}`.
//!
//! A run's stream (`GET /runs/{id}/events`) goes checkpoint by checkpoint, each once and in
//! order, wherever the run executes. Its `Checkpointed` events carry the checkpoint's
//! sequence number as their SSE `id:`. What the run records where this engine's events do
//! not say it comes from the store as an SSE event `checkpoint` with the same `id:`, whose
//! data is `{"run", "seq", "entries": [history entries], "status", "state", "wait"}` (the
//! last three on the run's latest checkpoint only). That covers a run executing on another
//! worker: the stream looks in the store every [`ServerConfig::follow_interval`] (1 s) while
//! no checkpoint came from this engine, so such a run moves at checkpoint granularity, up
//! to that much late, without its live events (attempts beginning, progress). A new client
//! first gets the `checkpoint` of the run's latest checkpoint, with where it stands (of a
//! finished run, only its `end`). A
//! client that reconnects with the last `id:` it saw (`Last-Event-ID`, as browsers'
//! `EventSource` sends it, or `?after=<seq>`) first gets every checkpoint after it from the
//! store, then the live events. When the stream cannot tell what was missed (a position
//! that is no checkpoint of the run, a store that cannot say), it sends an SSE event
//! `reset`, `{"reason": "…", "seq": n}`: read the run afresh.
//!
//! Every run's stream (`GET /events`) carries this engine's events, from now on: runs on
//! other workers send none there (`GET /runs` lists them). It replays nothing: it opens with
//! an `id:` alone, and a client that comes back with it (or with any `?after=`) first gets
//! `reset`, `{"reason": "…"}`: events went by while it was away.
//!
//! The WebSocket routes send the same messages, one per text frame, as
//! `{"event": "message" | "checkpoint" | "lagged" | "reset" | "end", "id": n, "data": …}`:
//! `event` is the SSE event type, `id` the SSE `id:` (only on frames that have one) and
//! `data` the SSE data. They take `?after=` alike. After `end` the server closes the socket
//! with code 1000 (normal).
//!
//! # Dashboard
//!
//! `GET /` is a page for people: the runs, newest first, filtered by machine, status and
//! wait, a page more at a click, and kept current over `GET /events`; a form to start a run;
//! and a run's page, with its machine drawn from the graph of `GET /machines/{name}`, the
//! state it is in lit up and moving as events come, its history as a timeline of attempts,
//! waits and errors, its context, the run it is a branch of or the branches it waits for, and
//! buttons to signal, cancel, pause and resume it, retry it now while it backs off, and
//! delete it once it has finished. Where `GET /machines` has the JSON Schema of a machine's
//! input or of the signal a run waits for, the start and signal forms are built from it (a
//! labelled input per property, a select for an enum) and write the JSON they send into the
//! textarea below them; without one, the textarea alone takes the JSON. It is plain HTML, JavaScript and CSS built into the binary: nothing
//! to build or install. The page and its files need no token (they hold no data); it asks
//! for the token, keeps it in the browser's local storage, and sends it with every call.
//!
//! # Tokens
//!
//! With [`ServerConfig::token`] set, every call that changes something (starting,
//! signalling, cancelling, pausing, resuming, retrying, deleting) needs
//! `Authorization: Bearer <token>`: 401 without it, 403 with the
//! [read-only token](ServerConfig::read_only_token). Reads accept
//! either token. Browsers open event streams (`EventSource`, `WebSocket`) without headers:
//! the four event routes take the token as a `?token=` query parameter too (no other route
//! does). A URL can end up in logs and browser history: prefer the header where the client
//! can set it, and give such clients the read-only token. With no token set, anyone who
//! reaches the address may do anything: bind to a loopback address then, or put the server
//! behind something that checks who calls.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod auth;
mod body;
mod control;
mod error;
mod events;
mod follow;
mod hub;
mod kinds;
mod list;
mod message;
mod routes;
mod since;
mod ui;
mod ws;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use flow_core::Engine;
use tokio::net::TcpListener;

pub use error::ErrorBody;

/// The body limit unless set: 64 KiB.
pub const DEFAULT_BODY_LIMIT: usize = 64 * 1024;

/// How often a run's event stream looks in the store unless set: once a second.
pub const DEFAULT_FOLLOW_INTERVAL: Duration = Duration::from_secs(1);

/// How a server treats its callers: tokens, body size, and how closely it follows runs
/// executing elsewhere.
///
/// ```
/// use std::time::Duration;
/// use flow_server::ServerConfig;
///
/// let config = ServerConfig::new().token("s3cret").read_only_token("look-only");
/// assert_eq!(config.body_limit, 64 * 1024);
/// assert_eq!(config.follow_interval, Duration::from_secs(1));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct ServerConfig {
    /// The token calls that change something must bear (`Authorization: Bearer <token>`);
    /// it reads too. `None` (the default): no token is needed, unless a read-only token is
    /// set, which makes the server read-only.
    pub token: Option<String>,
    /// A token that may only read: with it, changes are refused with 403. `None` (the
    /// default): no such token.
    pub read_only_token: Option<String>,
    /// The largest request body accepted, in bytes; larger ones are refused with 413.
    /// [`DEFAULT_BODY_LIMIT`] (64 KiB) unless set.
    pub body_limit: usize,
    /// How often a run's event stream (`GET /runs/{id}/events`, `/ws`) looks in the store
    /// for what the run recorded while no checkpoint of it came from this engine: how late,
    /// at most, a run executing on another worker shows each checkpoint, and its end. Each
    /// look is a read of the run's latest checkpoint (and its new history, if any) per
    /// follower. [`DEFAULT_FOLLOW_INTERVAL`] (1 s) unless set; at least 1 ms.
    pub follow_interval: Duration,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            token: None,
            read_only_token: None,
            body_limit: DEFAULT_BODY_LIMIT,
            follow_interval: DEFAULT_FOLLOW_INTERVAL,
        }
    }
}

impl ServerConfig {
    /// No tokens, a body limit of 64 KiB, and runs followed in the store once a second.
    pub fn new() -> ServerConfig {
        ServerConfig::default()
    }

    /// Sets [`ServerConfig::token`].
    pub fn token(mut self, token: impl Into<String>) -> ServerConfig {
        self.token = Some(token.into());
        self
    }

    /// Sets [`ServerConfig::read_only_token`].
    pub fn read_only_token(mut self, token: impl Into<String>) -> ServerConfig {
        self.read_only_token = Some(token.into());
        self
    }

    /// Sets [`ServerConfig::body_limit`], in bytes.
    pub fn body_limit(mut self, bytes: usize) -> ServerConfig {
        self.body_limit = bytes;
        self
    }

    /// Sets [`ServerConfig::follow_interval`].
    pub fn follow_interval(mut self, interval: Duration) -> ServerConfig {
        self.follow_interval = interval;
        self
    }
}

impl fmt::Debug for ServerConfig {
    /// Says whether tokens are set, never what they are.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |token: &Option<String>| if token.is_some() { "<set>" } else { "<none>" };
        f.debug_struct("ServerConfig")
            .field("token", &set(&self.token))
            .field("read_only_token", &set(&self.read_only_token))
            .field("body_limit", &self.body_limit)
            .field("follow_interval", &self.follow_interval)
            .finish()
    }
}

/// The API's routes over `engine`, as an axum [`Router`]: serve it with [`serve`] or
/// `axum::serve`, or nest it in an application's own router.
pub fn router(engine: Engine, config: ServerConfig) -> Router {
    let app = routes::App {
        engine,
        follow_every: config.follow_interval.max(Duration::from_millis(1)),
        config: Arc::new(config),
        hub: Arc::default(),
    };
    routes::router(app)
}

/// Serves the API over `engine` on `listener` until the process ends.
///
/// # Errors
///
/// If accepting connections fails for good.
pub async fn serve(
    listener: TcpListener,
    engine: Engine,
    config: ServerConfig,
) -> std::io::Result<()> {
    axum::serve(listener, router(engine, config)).await
}

/// The API's OpenAPI 3.1 document, as `GET /openapi.json` serves it.
pub fn openapi() -> serde_json::Value {
    routes::openapi_document()
}
