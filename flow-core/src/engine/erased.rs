//! Machines and runs by name and JSON: what an HTTP API, a command line or a dashboard does
//! with an engine without knowing its machines' types.
//!
//! [`Engine::machines`] lists what is registered, with each machine's [`Graph`];
//! [`Engine::start_json`] starts a run of a machine named at run time from a JSON input;
//! [`Engine::signal_json`] delivers a JSON signal to a run, decoded as the type its state
//! waits for. A value that does not fit is refused with a [`DecodeError`] that says where
//! (`lines[0].cents`) and why, and nothing is written. Cancel, pause, resume, status and
//! listing take no types already: [`Engine::cancel`], [`Engine::status`], [`Engine::list`],
//! [`Engine::summary`].

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Serialize;
use serde::de::{DeserializeOwned, IgnoredAny};
use serde_json::Value;
use thiserror::Error;

use super::signalled::{signalled_checkpoint, signalled_snapshot};
use super::snapshot::SnapshotIn;
use super::{Durable, Engine, EngineError, Inner, scheduler};
use crate::event::EventKind;
use crate::store::{Checkpoint, RunSummary, StoreError};
use crate::{Graph, RunId};

/// How often a signal is tried again when the run moved on meanwhile.
const RACES: usize = 8;

/// A machine registered with an engine, as [`Engine::machines`] describes it.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct MachineInfo {
    /// Its name, as runs are stored and listed under.
    pub name: &'static str,
    /// Its static shape: states (with payload and signal types as written), edges, policies.
    pub graph: &'static Graph,
    /// The graph as a Mermaid `stateDiagram-v2` ([`Graph::to_mermaid`]).
    pub mermaid: String,
    /// Whether [`Engine::start_json`] starts a run without a context: the machine has a
    /// [`default_context`](crate::EngineBuilder::default_context), or its context is `()`.
    pub default_context: bool,
    /// The JSON Schema of [`StartJson::input`]: what [`Engine::start_json`] decodes as the
    /// start state's payload (its one value; a JSON array of several, described with
    /// `prefixItems`; `null` for none). JSON Schema 2020-12 as `schemars` writes it: a
    /// `title`, and the types it refers to under `$defs`.
    ///
    /// `None` without the `schemars` feature, or when a payload type of the start state does
    /// not implement `schemars::JsonSchema` (the machine works the same; a client falls back
    /// to raw JSON). See [`Machine::input_schema`](crate::Machine::input_schema).
    pub input_schema: Option<Value>,
    /// The JSON Schema of each signal, by the name of the state that waits for it: what
    /// [`Engine::signal_json`] decodes for a run in that state, as
    /// [`input_schema`](MachineInfo::input_schema) writes it.
    ///
    /// A state that waits for a signal is missing here when its signal type does not
    /// implement `schemars::JsonSchema`, and every state is without the `schemars` feature:
    /// the state's [`StateInfo::signal`](crate::codegen::StateInfo::signal) still names the
    /// type. See [`Machine::signal_schema`](crate::Machine::signal_schema).
    pub signal_schemas: BTreeMap<&'static str, Value>,
}

/// What [`Engine::start_json`] starts: an input, and optionally a context and a business key.
///
/// ```
/// use flow::StartJson;
/// use serde_json::json;
///
/// let start = StartJson::new(json!({ "id": 7, "cents": 1200 })).key("order-7");
/// # let _ = start;
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct StartJson {
    /// The input, as JSON: the start state's payload (a JSON array for a payload of several
    /// values, `null` for none).
    pub input: Value,
    /// The context, as JSON; `None` for the machine's default context.
    pub context: Option<Value>,
    /// A business key to start the run under ([`Engine::start_keyed`]); `None` for a
    /// fresh id.
    pub key: Option<String>,
}

impl StartJson {
    /// A start with `input`, the machine's default context and a fresh id.
    pub fn new(input: Value) -> StartJson {
        StartJson { input, context: None, key: None }
    }

    /// Starts with `context` instead of the machine's default one.
    pub fn context(mut self, context: Value) -> StartJson {
        self.context = Some(context);
        self
    }

    /// Starts under the business key `key` ([`Engine::start_keyed`]).
    pub fn key(mut self, key: impl Into<String>) -> StartJson {
        self.key = Some(key.into());
        self
    }
}

/// Which value of a JSON call did not decode: [`DecodeError::part`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum JsonPart {
    /// A run's input ([`StartJson::input`]).
    Input,
    /// A run's context ([`StartJson::context`]).
    Context,
    /// A signal ([`Engine::signal_json`]).
    Signal,
}

impl JsonPart {
    /// `"input"`, `"context"` or `"signal"`.
    pub fn as_str(self) -> &'static str {
        match self {
            JsonPart::Input => "input",
            JsonPart::Context => "context",
            JsonPart::Signal => "signal",
        }
    }
}

impl fmt::Display for JsonPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A JSON value that does not decode as the type the machine takes there: where, and why.
/// Nothing was written.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Error)]
#[error(
    "the {part} of machine `{machine}`{} does not read as `{expected}`{}: {message}",
    .state.as_ref().map_or_else(String::new, |state| format!(" (state `{state}`)")),
    if .path.is_empty() { String::new() } else { format!(" at `{}`", .path) }
)]
#[non_exhaustive]
pub struct DecodeError {
    /// The machine.
    pub machine: String,
    /// Which value: the input, the context or a signal.
    pub part: JsonPart,
    /// For a signal, the state that waits for it.
    pub state: Option<String>,
    /// The type expected, as the machine's code writes it.
    pub expected: String,
    /// Where in the value it failed, as serde sees it: `lines[0].cents`, `decision.Reject`;
    /// empty for the value itself (a wrong type, a missing field of the outermost struct).
    pub path: String,
    /// What serde said.
    pub message: String,
}

/// Why a call by JSON ([`Engine::start_json`], [`Engine::signal_json`]) did nothing.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum JsonError {
    /// A value does not decode as the machine's type.
    #[error(transparent)]
    Decode(Box<DecodeError>),
    /// No context was given, and the machine has no default one.
    #[error(
        "machine `{machine}` needs a context to start a run from JSON: send one, or give the \
         engine a default with EngineBuilder::default_context::<{machine}::Machine>(...)"
    )]
    ContextRequired {
        /// The machine.
        machine: String,
    },
    /// The engine refused: an unknown machine or run, a key that exists, a run that waits
    /// for no signal, a store that failed.
    #[error(transparent)]
    Engine(#[from] EngineError),
}

impl From<DecodeError> for JsonError {
    fn from(error: DecodeError) -> JsonError {
        JsonError::Decode(Box::new(error))
    }
}

impl From<StoreError> for JsonError {
    fn from(error: StoreError) -> JsonError {
        JsonError::Engine(error.into())
    }
}

/// A maker of contexts for one machine ([`crate::EngineBuilder::default_context`]), kept
/// without its type: an `Arc<dyn Fn() -> M::Context>` inside.
#[derive(Clone)]
pub(crate) struct NewContext(Arc<dyn Any + Send + Sync>);

type MakeContext<C> = Arc<dyn Fn() -> C + Send + Sync>;

impl NewContext {
    pub fn new<M: Durable>(make: impl Fn() -> M::Context + Send + Sync + 'static) -> NewContext {
        let make: MakeContext<M::Context> = Arc::new(make);
        NewContext(Arc::new(make))
    }
}

/// A fresh context for a run of `M` started without one: the registered maker's, or `()`.
pub(crate) fn default_context<M: Durable>(inner: &Inner) -> Option<M::Context> {
    let made =
        inner.contexts.get(M::NAME).and_then(|new| new.0.downcast_ref::<MakeContext<M::Context>>());
    if let Some(make) = made {
        return Some(make());
    }
    let unit: Box<dyn Any> = Box::new(());
    unit.downcast::<M::Context>().ok().map(|context| *context)
}

/// The output a completed run's snapshot holds, as JSON.
pub(crate) fn output_json(snapshot: &str) -> Option<Value> {
    serde_json::from_str::<SnapshotIn<IgnoredAny, IgnoredAny, Value>>(snapshot).ok()?.output
}

/// The state (with its payload), the context and the forking run of a snapshot, as JSON;
/// `None` for each when the snapshot does not read back.
pub(crate) fn stored_json(snapshot: &str) -> (Option<Value>, Option<Value>, Option<RunId>) {
    match serde_json::from_str::<SnapshotIn<Value, Value, IgnoredAny>>(snapshot) {
        Ok(snapshot) => {
            (snapshot.state, Some(snapshot.context), snapshot.branch.map(|of| of.parent))
        }
        Err(_) => (None, None, None),
    }
}

/// Decodes `value` as a `T`, saying where it failed.
fn decode<T: DeserializeOwned>(value: Value) -> Result<T, (String, String)> {
    serde_path_to_error::deserialize(value)
        .map_err(|error| (path(error.path(), 0), error.inner().to_string()))
}

/// `path` as `a.b[0].c`, without its first `skip` segments.
fn path(path: &serde_path_to_error::Path, skip: usize) -> String {
    use serde_path_to_error::Segment;
    let mut text = String::new();
    for segment in path.iter().skip(skip) {
        match segment {
            Segment::Seq { index } => text.push_str(&format!("[{index}]")),
            Segment::Map { key } => push_name(&mut text, key),
            Segment::Enum { variant } => push_name(&mut text, variant),
            Segment::Unknown => push_name(&mut text, "?"),
        }
    }
    text
}

fn push_name(text: &mut String, name: &str) {
    if !text.is_empty() {
        text.push('.');
    }
    text.push_str(name);
}

/// The start state's payload types, as written: what a JSON input must read as.
fn input_type(graph: &Graph) -> String {
    match graph.start().payload {
        [] => "()".into(),
        [(_, ty)] => (*ty).into(),
        many => format!("({})", many.iter().map(|(_, ty)| *ty).collect::<Vec<_>>().join(", ")),
    }
}

pub(crate) async fn start_json<M: Durable>(
    engine: &Engine,
    start: StartJson,
) -> Result<RunId, JsonError> {
    let refused = |part, expected: String, (path, message): (String, String)| DecodeError {
        machine: M::NAME.into(),
        part,
        state: None,
        expected,
        path,
        message,
    };
    let input: M::Input = decode(start.input)
        .map_err(|error| refused(JsonPart::Input, input_type(M::graph()), error))?;
    let context: M::Context = match start.context {
        Some(context) => decode(context).map_err(|error| {
            refused(JsonPart::Context, std::any::type_name::<M::Context>().into(), error)
        })?,
        None => default_context::<M>(&engine.inner)
            .ok_or_else(|| JsonError::ContextRequired { machine: M::NAME.into() })?,
    };
    let handle = match start.key {
        Some(key) => engine.start_keyed::<M>(key, input, context).await?,
        None => engine.start_as::<M>(RunId::random(), input, context).await?,
    };
    Ok(handle.id())
}

/// A waiting run's last checkpoint with `signal` delivered, decoded as the signal its state
/// waits for: the checkpoint that follows it. As `signalled::deliver_stored`, with the type
/// found by the state rather than given.
pub(crate) fn deliver_json<M: Durable>(
    latest: &Checkpoint,
    signal: Value,
    now: u64,
) -> Result<Checkpoint, JsonError> {
    let run = latest.run;
    let graph = M::graph();
    let (mut state, snapshot) = signalled_snapshot::<M>(latest)?;
    let info = &graph.states[M::index(&state)];
    let not_waiting = || EngineError::NotWaiting { run, state: Some(info.name.into()) };
    // A run rolling back waits for nothing, whatever state it failed in.
    let Some(expected) = info.signal.map(|signal| signal.ty) else {
        return Err(not_waiting().into());
    };
    if !M::waits_for_signal(&state) || snapshot.rollback.is_some() {
        return Err(not_waiting().into());
    }
    let refused = |(path, message): (String, String)| DecodeError {
        machine: M::NAME.into(),
        part: JsonPart::Signal,
        state: Some(info.name.into()),
        expected: expected.into(),
        path,
        message,
    };
    let before = state.clone();
    if let Err(error) = M::deliver_signal(&mut state, signal.clone()) {
        let located = locate_signal::<M>(&before, info.payload, signal);
        return Err(refused(located.unwrap_or_else(|| (String::new(), error.to_string()))).into());
    }
    // A signal stored as JSON `null` reads back as none: the run would wait on.
    if M::waits_for_signal(&state) {
        return Err(refused((
            String::new(),
            "null reads back as no signal; send a value of the signal's type".into(),
        ))
        .into());
    }
    Ok(signalled_checkpoint::<M>(latest, &state, &snapshot, now)?)
}

/// Where `signal` fails to decode in `state`, which waits for it: the state decoded again
/// with the signal in its field (the one that is not `payload`), its path less the variant
/// and the field. `None` if the state's stored form is not the one this expects.
fn locate_signal<M: Durable>(
    state: &M::State,
    payload: &[(&str, &str)],
    signal: Value,
) -> Option<(String, String)> {
    let Ok(Value::Object(mut outer)) = serde_json::to_value(state) else { return None };
    let Some((_, Value::Object(fields))) = outer.iter_mut().next() else { return None };
    let mut unknown = fields.keys().filter(|key| !payload.iter().any(|(name, _)| name == key));
    let (Some(field), None) = (unknown.next().cloned(), unknown.next()) else { return None };
    fields.insert(field, signal);
    match serde_path_to_error::deserialize::<_, M::State>(Value::Object(outer)) {
        Ok(_) => None,
        Err(error) => Some((path(error.path(), 2), error.inner().to_string())),
    }
}

impl Engine {
    /// The machines registered with this engine, by name.
    pub fn machines(&self) -> Vec<MachineInfo> {
        let mut machines: Vec<MachineInfo> =
            self.inner.names.iter().filter_map(|name| self.machine(name).ok()).collect();
        machines.sort_by_key(|info| info.name);
        machines
    }

    /// The registered machine named `name`.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownMachine`].
    pub fn machine(&self, name: &str) -> Result<MachineInfo, EngineError> {
        let registered = self
            .inner
            .machines
            .get(name)
            .ok_or_else(|| EngineError::UnknownMachine { name: name.into() })?;
        let graph = registered.graph();
        let signal_schemas =
            graph.states.iter().enumerate().filter(|(_, info)| info.signal.is_some());
        let signal_schemas = signal_schemas
            .filter_map(|(index, info)| Some((info.name, registered.signal_schema(index)?)))
            .collect();
        Ok(MachineInfo {
            name: registered.name(),
            graph,
            mermaid: graph.to_mermaid(),
            default_context: registered.has_default_context(&self.inner),
            input_schema: registered.input_schema(),
            signal_schemas,
        })
    }

    /// Run `run` as [`Engine::list`] shows it: its machine, key, status and why it waits,
    /// without its history (which [`Engine::status`] reads too).
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`]; a store error.
    pub async fn summary(&self, run: RunId) -> Result<RunSummary, EngineError> {
        let summary = self.inner.store.summary(run).await?;
        summary.ok_or(EngineError::UnknownRun { run })
    }

    /// Starts a run of the machine named `machine` from JSON: [`StartJson::input`] decoded as
    /// its input, [`StartJson::context`] as its context (or its default context: see
    /// [`EngineBuilder::default_context`](crate::EngineBuilder::default_context)), under
    /// [`StartJson::key`] if given. Returns the run's id once its first checkpoint is durable,
    /// as [`Engine::start_with`] and [`Engine::start_keyed`] do.
    ///
    /// ```
    /// use flow::{Engine, JsonError, StartJson};
    /// use serde_json::json;
    ///
    /// #[flow::machine]
    /// pub mod greet {
    ///     use flow::prelude::*;
    ///
    ///     #[state(start, end)]
    ///     async fn hello(_cx: &mut (), name: String) -> Result<String> {
    ///         Ok(format!("hello, {name}"))
    ///     }
    /// }
    ///
    /// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
    /// let engine = Engine::builder().machine::<greet::Machine>().build()?;
    /// let run = engine.start_json("greet", StartJson::new(json!("Ada"))).await?;
    /// assert_eq!(engine.handle::<greet::Machine>(run).await?.output().await?, "hello, Ada");
    ///
    /// let Err(JsonError::Decode(refused)) = engine.start_json("greet", StartJson::new(json!(7))).await
    /// else { panic!("a number is no name") };
    /// assert_eq!(refused.expected, "String");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # }).unwrap();
    /// ```
    ///
    /// # Errors
    ///
    /// [`JsonError::Decode`] if the input or context does not read as the machine's type,
    /// with the path to the value that failed; [`JsonError::ContextRequired`]; otherwise
    /// [`JsonError::Engine`] with what [`Engine::start_with`] returns:
    /// [`EngineError::UnknownMachine`], [`EngineError::AlreadyExists`] for a key (or id)
    /// that has a run, [`EngineError::Unstorable`], [`EngineError::ShuttingDown`], a store
    /// error. Nothing was started.
    pub async fn start_json(&self, machine: &str, start: StartJson) -> Result<RunId, JsonError> {
        let registered = self
            .inner
            .machines
            .get(machine)
            .ok_or_else(|| EngineError::UnknownMachine { name: machine.into() })?;
        registered.start_json(self, start).await
    }

    /// Delivers `signal`, JSON, to run `run`, decoded as the signal type its state waits for
    /// (whatever machine the run is of), and returns once the signal is in the store, as
    /// [`Engine::signal`] does.
    ///
    /// # Errors
    ///
    /// [`JsonError::Decode`] if `signal` does not read as the type the run waits for, with
    /// the path to the value that failed; [`JsonError::Engine`] with
    /// [`EngineError::NotWaiting`] if the run waits for no signal now (it is executing an
    /// attempt, has finished, or its state takes none), [`EngineError::UnknownRun`],
    /// [`EngineError::UnknownMachine`] if the run's machine is not registered here, or a
    /// store error. In each case nothing was delivered and the run is as it was.
    pub async fn signal_json(&self, run: RunId, signal: Value) -> Result<(), JsonError> {
        let inner = &self.inner;
        scheduler::start(inner);
        for _ in 0..RACES {
            let latest = inner.store.latest(run).await?;
            let latest = latest.ok_or(EngineError::UnknownRun { run })?;
            if latest.status.is_finished() {
                let state = Some(latest.state.to_string());
                return Err(EngineError::NotWaiting { run, state }.into());
            }
            let registered = inner
                .machines
                .get(latest.machine.as_ref())
                .ok_or_else(|| EngineError::UnknownMachine { name: latest.machine.to_string() })?;
            let delivered = registered.deliver_json(&latest, signal.clone(), inner.now_ms())?;
            let graph = registered.graph();
            let state = graph.state(&latest.state).map_or("?", |info| info.name);
            match inner.store.save(delivered).await {
                Ok(()) => {
                    let reporter = inner.reporter(run, registered.name(), state);
                    reporter.send(EventKind::SignalReceived);
                    inner.runnable();
                    return Ok(());
                }
                // The run moved on meanwhile: look again.
                Err(StoreError::Conflict { .. }) => continue,
                // An engine holds it: it is executing, not waiting.
                Err(StoreError::Fenced { .. }) => {
                    let state = Some(state.to_string());
                    return Err(EngineError::NotWaiting { run, state }.into());
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::NotWaiting { run, state: None }.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_read_as_written() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Line {
            cents: u32,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Order {
            lines: Vec<Line>,
        }
        let value = serde_json::json!({ "lines": [{ "cents": 1 }, { "cents": "x" }] });
        let (path, message) = decode::<Order>(value).unwrap_err();
        assert_eq!(path, "lines[1].cents");
        assert!(message.contains("expected u32"), "{message}");
        let (path, _) = decode::<Order>(serde_json::json!(3)).unwrap_err();
        assert_eq!(path, "");
    }

    #[test]
    fn decode_errors_say_where() {
        let error = DecodeError {
            machine: "checkout".into(),
            part: JsonPart::Input,
            state: None,
            expected: "Order".into(),
            path: "lines[1].cents".into(),
            message: "invalid type: string \"x\", expected u32".into(),
        };
        assert_eq!(
            error.to_string(),
            "the input of machine `checkout` does not read as `Order` at `lines[1].cents`: \
             invalid type: string \"x\", expected u32"
        );
    }
}
