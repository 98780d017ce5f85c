//! What a followed stream sends, by Server-Sent Events or over a WebSocket: [`Message`]s of
//! each [`Kind`], and the data each kind carries.

use std::sync::Arc;

use flow_core::Event;
use flow_core::history::Entry;
use serde::Serialize;
use utoipa::ToSchema;

/// Sent as `lagged` when this subscriber fell behind and missed events: how many.
/// The events after it go on from where the engine is now.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Lagged {
    /// How many events were missed.
    pub(crate) missed: u64,
}

/// Sent as `end`, last, when a run's stream ends: the run has finished.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct End {
    /// The run's id.
    pub(crate) run: String,
    /// How it finished: completed, failed or cancelled; `deleted` for a run deleted (once
    /// finished, on another worker) before this stream saw how it finished.
    pub(crate) status: String,
}

/// Sent as `checkpoint`, with the checkpoint's sequence number as the SSE `id:`: a checkpoint
/// of the run read from the store, because this stream's events did not report it (the run
/// executes on another worker, or this client reconnected after it, or events were missed).
#[derive(Debug, Serialize)]
pub(crate) struct CheckpointData<'a> {
    pub(crate) run: String,
    pub(crate) seq: u64,
    pub(crate) entries: &'a [Entry],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) status: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) state: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) wait: Option<flow_core::store::Wait>,
}

/// Sent as `checkpoint`, with `seq` as the SSE `id:` (and the WebSocket frame's `id`): a
/// checkpoint of the run read from the store, where this stream's live events did not
/// report it (the run executes on another worker, the client reconnected after it, or
/// events were missed). Checkpoints come in order, each once, whether as a live
/// `Checkpointed` event or as this.
#[derive(ToSchema)]
#[schema(as = Checkpoint)]
#[allow(dead_code)]
pub(crate) struct CheckpointDoc {
    /// The run's id.
    pub(crate) run: String,
    /// The checkpoint's sequence number (0 for the run's first).
    pub(crate) seq: u64,
    /// The history entries it added, as `GET /runs/{id}` shows them in `history`; empty for
    /// a checkpoint that recorded no attempt (a delivered signal, a cancel, a pause).
    pub(crate) entries: Vec<serde_json::Value>,
    /// Where the run stands (as `GET /runs/{id}`'s `status`): only on the message of its
    /// latest checkpoint when the store was read.
    pub(crate) status: Option<String>,
    /// The state it is in or ended in, on the same message as `status`.
    pub(crate) state: Option<String>,
    /// Why it waits (signal, timer, backoff, join), on the same message as `status`.
    pub(crate) wait: Option<String>,
}

/// Sent as `reset`: what came before this message is not replayed, and how much was missed
/// cannot be told. Read the run (`GET /runs/{id}`) or the runs (`GET /runs`) afresh.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Reset {
    /// Why.
    pub(crate) reason: String,
    /// On one run's stream: the checkpoint the stream goes on from (also the message's
    /// SSE `id:`). Absent on every run's stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) seq: Option<u64>,
}

/// What a message of a followed stream is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// An [`Event`].
    Event,
    /// A [`Lagged`]: events were missed.
    Lagged,
    /// An [`End`]: the run finished; nothing follows.
    End,
    /// A checkpoint read from the store: [`CheckpointDoc`].
    Checkpoint,
    /// A [`Reset`]: what was missed cannot be told.
    Reset,
}

impl Kind {
    /// Its name on the wire: the SSE event type, and the WebSocket frame's `event`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Event => "message",
            Kind::Lagged => "lagged",
            Kind::End => "end",
            Kind::Checkpoint => "checkpoint",
            Kind::Reset => "reset",
        }
    }
}

/// One message of a followed stream: what it is, and its data as JSON.
#[derive(Debug)]
pub(crate) struct Message {
    pub kind: Kind,
    /// Shared: every follower of every run sends the same JSON of an event. Empty for an
    /// [`id`](Message::id) alone, which SSE sends without an event and WebSocket not at all.
    pub data: Arc<str>,
    /// The checkpoint it reports (its sequence number): the SSE `id:`, which a reconnecting
    /// client sends back as `Last-Event-ID`.
    pub id: Option<u64>,
}

impl Message {
    pub(crate) fn new(kind: Kind, data: impl Into<Arc<str>>) -> Message {
        Message { kind, data: data.into(), id: None }
    }
}

/// `event` as JSON.
///
/// Written into a buffer kept per thread, then copied once into the shared text: a server
/// streaming a busy engine's events makes one allocation per event, not two.
pub(crate) fn event_json(event: &Event) -> Arc<str> {
    thread_local! {
        static BUFFER: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    BUFFER.with_borrow_mut(|buffer| {
        buffer.clear();
        write_event_json(buffer, event);
        Arc::from(std::str::from_utf8(buffer).unwrap_or("null"))
    })
}

/// Appends `event` as JSON to `buffer`; for an event that does not serialize, its run and
/// why.
pub(crate) fn write_event_json(buffer: &mut Vec<u8>, event: &Event) {
    let start = buffer.len();
    if let Err(error) = serde_json::to_writer(&mut *buffer, event) {
        buffer.truncate(start);
        let failed = serde_json::json!({ "run": event.run, "error": error.to_string() });
        // A `Value` always serializes.
        let _ = serde_json::to_writer(&mut *buffer, &failed);
    }
}
