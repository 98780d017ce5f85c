//! What happens in durable runs, as it happens: typed [`Event`]s, and progress reported from
//! inside a state.
//!
//! ```no_run
//! # async fn watch(engine: flow::Engine, run: flow::RunId) {
//! let mut events = engine.events_of(run); // or engine.events() for every run
//! while let Some(event) = events.next().await {
//!     // "01906d6b8f3a7c129e4b28e9c8a1b2c3 checkout/charge: attempt 2 failed: …; retry in 180ms"
//!     println!("{event}");
//! }
//! # }
//! ```
//!
//! Events go through bounded broadcast channels: a subscriber that falls behind misses the
//! oldest events ([`Events::missed`] counts them) and never slows a run down. A subscriber of
//! one run has a channel of that run's events only, so other runs' events neither wake it nor
//! push its own out.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio::sync::broadcast;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio_stream::Stream;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::history::Failure;
use crate::{Clock, RunId};

/// Something that happened in a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    /// The run.
    pub run: RunId,
    /// Its machine's name.
    pub machine: &'static str,
    /// The state it happened in (for a transition: the state left).
    pub state: &'static str,
    /// When, by the engine's clock. Serialized as whole milliseconds since the Unix epoch
    /// (what JavaScript's `new Date(at)` takes): compact, where a server sends every event.
    #[serde(serialize_with = "unix_millis")]
    pub at: SystemTime,
    /// What happened.
    pub kind: EventKind,
}

/// `at` as whole milliseconds since the Unix epoch ([`unix_ms`](crate::engine::unix_ms)):
/// how every time the engine reports is serialized.
pub(crate) fn unix_millis<S: serde::Serializer>(
    at: &SystemTime,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_u64(crate::engine::unix_ms(*at))
}

/// [`unix_millis`] for a time that may be absent (`null`).
pub(crate) fn unix_millis_or_null<S: serde::Serializer>(
    at: &Option<SystemTime>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match at {
        Some(at) => unix_millis(at, serializer),
        None => serializer.serialize_none(),
    }
}

/// What happened; see [`Event`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub enum EventKind {
    /// The run was started; its first checkpoint is durable.
    Started,
    /// An engine claimed the run and goes on from its last checkpoint: after a restart, a
    /// resume, a takeover from an engine that died, or a signal. (A run waking from its own
    /// timer or backoff goes on without this event.)
    Resumed {
        /// The checkpoint it resumed from.
        seq: u64,
    },
    /// An attempt of the state begins.
    Entered {
        /// 1 for the first attempt of the visit.
        attempt: u32,
        /// The visit: the sequence number of the checkpoint that entered the state, as
        /// [`flow::current`](crate::current())'s `visit`; the same for every attempt of it.
        visit: u64,
        /// The state's payload, as JSON, as its checkpoint stores it: its parameters by name
        /// (`{"id": 7}`), `null` for a state without any. Built only when someone listens.
        payload: serde_json::Value,
    },
    /// An attempt failed.
    AttemptFailed {
        /// Which attempt.
        attempt: u32,
        /// Why.
        failure: Failure,
        /// The backoff before the next attempt; `None` when none follows.
        retry_in: Option<Duration>,
    },
    /// The state went to another.
    Transitioned {
        /// The next state.
        to: &'static str,
    },
    /// A checkpoint became durable.
    Checkpointed {
        /// Its sequence number.
        seq: u64,
    },
    /// The state body reported progress with [`progress`].
    Progress {
        /// What it said.
        message: String,
        /// How far along, from 0.0 to 1.0, if it said.
        fraction: Option<f32>,
    },
    /// The run waits for a signal before the state's first attempt.
    WaitingForSignal {
        /// The signal's type, as declared.
        signal: &'static str,
    },
    /// The signal arrived and is checkpointed.
    SignalReceived,
    /// An attempt of the state waits for units of an engine's resource pool
    /// (`#[state(uses(...))]`): others hold them, or runs of a lower priority value wait for
    /// them first. Its `Entered` follows when it holds them.
    WaitingForPool {
        /// The pool it waits for.
        pool: &'static str,
    },
    /// The run is rolling back: an attempt of the state's compensation begins.
    Compensating {
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// The state's compensation ran; its visit is undone.
    Compensated,
    /// An attempt of the state's compensation failed.
    CompensationFailed {
        /// Which attempt.
        attempt: u32,
        /// Why.
        failure: Failure,
        /// The backoff before the next attempt; `None` when none follows (the rollback goes
        /// on with the next compensation, and the run's error names this one).
        retry_in: Option<Duration>,
    },
    /// The run completed.
    Completed {
        /// Its output, as JSON, as the store keeps it (for a branch of a fork, the branch's
        /// output). Built only when someone listens.
        output: serde_json::Value,
    },
    /// The run failed.
    Failed {
        /// The run's error, as text.
        error: String,
    },
    /// The run was cancelled.
    Cancelled,
    /// The run was paused; [`Engine::resume`](crate::Engine::resume) continues it.
    Paused,
    /// This engine's claim on the run was superseded: its lease lapsed (the engine stalled,
    /// or lost touch with the store) and another engine took the run over, so the store
    /// refused this engine's write. This engine dropped the run at once, without the step it
    /// was writing; the engine holding the run now goes on with it, from its last checkpoint
    /// (its events reach that engine's subscribers, not this one's). The run has not ended.
    ///
    /// Also sent when the store failed and this engine's own lease lapsed before a write got
    /// through: another engine takes the run over once it reaches the store.
    LeaseLost {
        /// What the store said.
        error: String,
    },
    /// The store failed to write the run's checkpoint; the engine tries again after
    /// `retry_in`, as long as its lease holds. The run does not move on meanwhile.
    StoreFault {
        /// What the store said.
        error: String,
        /// The wait before the next try.
        retry_in: Duration,
    },
}

impl EventKind {
    /// Every kind's name, as [`EventKind::name`] gives it, in declaration order.
    pub const NAMES: [&'static str; 19] = [
        "Started",
        "Resumed",
        "Entered",
        "AttemptFailed",
        "Transitioned",
        "Checkpointed",
        "Progress",
        "WaitingForSignal",
        "SignalReceived",
        "WaitingForPool",
        "Compensating",
        "Compensated",
        "CompensationFailed",
        "Completed",
        "Failed",
        "Cancelled",
        "Paused",
        "LeaseLost",
        "StoreFault",
    ];

    /// The kind's name: the variant's, as its JSON names it (`"Completed"` for
    /// `{"Completed": {...}}`), for a subscriber that picks the kinds it wants.
    pub fn name(&self) -> &'static str {
        Self::NAMES[self.index()]
    }

    /// The kind's place in [`EventKind::NAMES`].
    pub fn index(&self) -> usize {
        match self {
            EventKind::Started => 0,
            EventKind::Resumed { .. } => 1,
            EventKind::Entered { .. } => 2,
            EventKind::AttemptFailed { .. } => 3,
            EventKind::Transitioned { .. } => 4,
            EventKind::Checkpointed { .. } => 5,
            EventKind::Progress { .. } => 6,
            EventKind::WaitingForSignal { .. } => 7,
            EventKind::SignalReceived => 8,
            EventKind::WaitingForPool { .. } => 9,
            EventKind::Compensating { .. } => 10,
            EventKind::Compensated => 11,
            EventKind::CompensationFailed { .. } => 12,
            EventKind::Completed { .. } => 13,
            EventKind::Failed { .. } => 14,
            EventKind::Cancelled => 15,
            EventKind::Paused => 16,
            EventKind::LeaseLost { .. } => 17,
            EventKind::StoreFault { .. } => 18,
        }
    }

    /// The place in [`EventKind::NAMES`] of the kind named `name`, for [`kind!`] to work out
    /// at compile time; panics (there: fails to compile) if no kind has that name.
    pub(crate) const fn place(name: &str) -> usize {
        let mut place = 0;
        while place < Self::NAMES.len() {
            if same(Self::NAMES[place].as_bytes(), name.as_bytes()) {
                return place;
            }
            place += 1;
        }
        panic!("no event kind has this name")
    }

    /// Whether the run is over after this: completed, failed or cancelled. (Not
    /// [`EventKind::LeaseLost`]: the run goes on in another engine.)
    pub fn ends_the_run(&self) -> bool {
        matches!(
            self,
            EventKind::Completed { .. } | EventKind::Failed { .. } | EventKind::Cancelled
        )
    }
}

impl fmt::Display for Event {
    /// `01906d6b8f3a7c129e4b28e9c8a1b2c3 checkout/charge: attempt 2 failed: error: declined;
    /// retry in 180ms`: the run's whole id (it parses back, to pass to `Engine::status` or
    /// `Engine::cancel`), the machine, the state, what happened.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}: ", self.run, self.machine, self.state)?;
        match &self.kind {
            EventKind::Started => f.write_str("started"),
            EventKind::Resumed { seq } => write!(f, "resumed from checkpoint {seq}"),
            EventKind::Entered { attempt, .. } => write!(f, "attempt {attempt}"),
            EventKind::AttemptFailed { attempt, failure, retry_in: Some(delay) } => {
                write!(f, "attempt {attempt} failed: {failure}; retry in {delay:?}")
            }
            EventKind::AttemptFailed { attempt, failure, retry_in: None } => {
                write!(f, "attempt {attempt} failed: {failure}; no retry")
            }
            EventKind::Transitioned { to } => write!(f, "→ {to}"),
            EventKind::Checkpointed { seq } => write!(f, "checkpoint {seq}"),
            EventKind::Progress { message, fraction: Some(fraction) } => {
                write!(f, "{message} ({:.0}%)", fraction * 100.0)
            }
            EventKind::Progress { message, fraction: None } => f.write_str(message),
            EventKind::WaitingForSignal { signal } => write!(f, "waiting for a {signal}"),
            EventKind::SignalReceived => f.write_str("signal received"),
            EventKind::WaitingForPool { pool } => write!(f, "waiting for pool {pool}"),
            EventKind::Compensating { attempt } => write!(f, "compensating, attempt {attempt}"),
            EventKind::Compensated => f.write_str("compensated"),
            EventKind::CompensationFailed { attempt, failure, retry_in: Some(delay) } => {
                write!(f, "compensation attempt {attempt} failed: {failure}; retry in {delay:?}")
            }
            EventKind::CompensationFailed { attempt, failure, retry_in: None } => {
                write!(f, "compensation attempt {attempt} failed: {failure}; no retry")
            }
            EventKind::Completed { .. } => f.write_str("completed"),
            EventKind::Failed { error } => write!(f, "failed: {error}"),
            EventKind::Cancelled => f.write_str("cancelled"),
            EventKind::Paused => f.write_str("paused"),
            EventKind::LeaseLost { error } => {
                write!(f, "dropped here, another engine holds the run now: {error}")
            }
            EventKind::StoreFault { error, retry_in } => {
                write!(f, "the store failed to write a checkpoint: {error}; retry in {retry_in:?}")
            }
        }
    }
}

/// A stream of events: every run's ([`Engine::events`](crate::Engine::events)) or one run's
/// ([`Engine::events_of`](crate::Engine::events_of), [`RunHandle::events`](crate::RunHandle::events)).
///
/// A [`Stream`]; [`Events::next`] needs no extension trait. One run's stream ends after that
/// run's last event here: completed, failed or cancelled (a paused run may go on, so its
/// stream does not end). Every run's stream ends when the engine is gone.
///
/// A stream carries what this engine sees: the events of a run that executes in another
/// engine on the same store do not reach it. Every run's stream may fall behind by up to
/// [`EngineBuilder::event_capacity`](crate::EngineBuilder::event_capacity) events, one run's
/// by up to 256 (or that capacity, if smaller) of that run's events, before it misses the
/// oldest.
#[derive(Debug)]
pub struct Events {
    receiving: Receiving,
    run: Option<RunId>,
    missed: u64,
    /// The run's last event went by: the stream has ended.
    ended: bool,
    /// Where a run's own channel is kept, to drop it with its last subscriber.
    channels: Option<Arc<Channels>>,
    /// The kinds taken, for a subscriber of some kinds of every run's events: its channel's
    /// key, one bit per [`EventKind::NAMES`] entry.
    kinds: Option<u32>,
}

impl Drop for Events {
    fn drop(&mut self) {
        match (&self.channels, self.run, self.kinds) {
            (Some(channels), Some(run), _) => channels.unsubscribe(run),
            (Some(channels), None, Some(kinds)) => channels.unsubscribe_kinds(kinds),
            (Some(channels), None, None) => {
                channels.every.fetch_sub(1, Ordering::SeqCst);
            }
            (None, ..) => {}
        }
    }
}

impl Events {
    fn new(receiver: broadcast::Receiver<Event>, run: Option<RunId>) -> Events {
        let receiving = Receiving::Idle(receiver);
        Events { receiving, run, missed: 0, ended: false, channels: None, kinds: None }
    }

    /// The next event `wanted` accepts, skipping the others; `None` once the stream ends
    /// without one (for one run's stream: the run ended first).
    ///
    /// ```no_run
    /// # async fn demo(engine: flow::Engine, run: flow::RunId) {
    /// use flow::EventKind;
    ///
    /// let mut events = engine.events_of(run);
    /// let waiting = events.until(|e| matches!(e.kind, EventKind::WaitingForSignal { .. })).await;
    /// # }
    /// ```
    pub async fn until(&mut self, mut wanted: impl FnMut(&Event) -> bool) -> Option<Event> {
        while let Some(event) = self.next().await {
            if wanted(&event) {
                return Some(event);
            }
        }
        None
    }

    /// The next event, or `None` once the stream has ended.
    pub async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// How many events this subscriber missed by falling behind.
    pub fn missed(&self) -> u64 {
        self.missed
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        if self.ended {
            return Poll::Ready(None);
        }
        loop {
            match self.receiving.poll_recv(cx) {
                Poll::Ready(Ok(event)) => {
                    if self.run.is_none_or(|run| run == event.run) {
                        self.ended = self.run.is_some() && event.kind.ends_the_run();
                        return Poll::Ready(Some(event));
                    }
                }
                Poll::Ready(Err(RecvError::Lagged(missed))) => self.missed += missed,
                Poll::Ready(Err(RecvError::Closed)) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// A wait for the next event, holding the receiver until one comes.
type Wait = Pin<Box<dyn Future<Output = (Result<Event, RecvError>, Receiver)> + Send + Sync>>;
type Receiver = broadcast::Receiver<Event>;

/// An [`Events`]' receiver: idle, or held by a wait for the next event.
///
/// An event already in the channel is taken without a future (`try_recv`): a busy
/// subscriber reads most of its events so, and makes a wait only when it has caught up.
enum Receiving {
    Idle(Receiver),
    Waiting(Wait),
    /// Only while a poll moves the receiver between the two (or after a wait panicked).
    Moving,
}

impl fmt::Debug for Receiving {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Receiving::Idle(_) => "Idle",
            Receiving::Waiting(_) => "Waiting",
            Receiving::Moving => "Moving",
        })
    }
}

impl Receiving {
    fn poll_recv(&mut self, cx: &mut Context<'_>) -> Poll<Result<Event, RecvError>> {
        loop {
            match std::mem::replace(self, Receiving::Moving) {
                Receiving::Idle(mut receiver) => match receiver.try_recv() {
                    Ok(event) => {
                        *self = Receiving::Idle(receiver);
                        return Poll::Ready(Ok(event));
                    }
                    Err(TryRecvError::Lagged(missed)) => {
                        *self = Receiving::Idle(receiver);
                        return Poll::Ready(Err(RecvError::Lagged(missed)));
                    }
                    Err(TryRecvError::Closed) => {
                        *self = Receiving::Idle(receiver);
                        return Poll::Ready(Err(RecvError::Closed));
                    }
                    Err(TryRecvError::Empty) => {
                        *self = Receiving::Waiting(Box::pin(async move {
                            (receiver.recv().await, receiver)
                        }));
                    }
                },
                Receiving::Waiting(mut wait) => match wait.as_mut().poll(cx) {
                    Poll::Ready((received, receiver)) => {
                        *self = Receiving::Idle(receiver);
                        return Poll::Ready(received);
                    }
                    Poll::Pending => {
                        *self = Receiving::Waiting(wait);
                        return Poll::Pending;
                    }
                },
                // A wait that panicked took the receiver with it: nothing more comes.
                Receiving::Moving => return Poll::Ready(Err(RecvError::Closed)),
            }
        }
    }
}

/// Reports progress from inside a state body, as an [`EventKind::Progress`] event of the
/// current run: a message, and how far along (0.0 to 1.0) if known.
///
/// Does nothing outside a state, or for a run nobody subscribes to (the in-memory
/// [`Runner`](crate::Runner) has no subscribers).
///
/// ```
/// # async fn load(rows: &[u32]) {
/// for (done, _row) in rows.iter().enumerate() {
///     flow::progress(format!("row {done}"), Some(done as f32 / rows.len() as f32));
/// }
/// # }
/// ```
pub fn progress(message: impl Into<String>, fraction: Option<f32>) {
    crate::current::with_reporter(|reporter| {
        let fraction = fraction.map(|f| f.clamp(0.0, 1.0));
        reporter.send(EventKind::Progress { message: message.into(), fraction });
    });
}

/// Whether `a` and `b` hold the same bytes, where `==` is not yet `const`.
const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `kind!(Entered)`: the place of the kind named in [`EventKind::NAMES`], worked out at
/// compile time, so that the engine asks whether anyone wants an event before building it.
macro_rules! kind {
    ($name:ident) => {
        const { $crate::event::EventKind::place(stringify!($name)) }
    };
}
pub(crate) use kind;

/// An engine's event channels: one for every run's events, and one per run that someone
/// follows on its own ([`Engine::events_of`](crate::Engine::events_of)).
///
/// A run's own channel keeps its followers from being woken by every other run's events: with
/// a [`RunHandle::events`](crate::RunHandle::events) per run, one channel for all would wake
/// each follower for every event of every run, a cost that grows with the square of the runs.
#[derive(Debug)]
pub(crate) struct Channels {
    all: broadcast::Sender<Event>,
    /// How many subscribe to every run's events: read for each event, where the channel's
    /// own count takes a lock.
    every: AtomicUsize,
    runs: Mutex<HashMap<RunId, broadcast::Sender<Event>>>,
    /// How many runs have a channel of their own, read before taking the lock.
    followed: AtomicUsize,
    /// A channel per set of kinds followed on its own (one bit per [`EventKind::NAMES`]
    /// entry), so that its subscribers are woken only for those.
    kinds: Mutex<HashMap<u32, broadcast::Sender<Event>>>,
    /// Every kind some channel of `kinds` takes, one bit each, read before taking the lock:
    /// an event of another kind is not even built for them.
    wanted: AtomicU32,
    /// How many events a subscriber of every run may fall behind.
    capacity: usize,
}

/// How many events a subscriber of one run may fall behind: a run's channel is made for each
/// run followed, so it is kept smaller than the engine's.
const RUN_CAPACITY: usize = 256;

impl Channels {
    pub(crate) fn new(capacity: usize) -> Channels {
        Channels {
            all: broadcast::channel(capacity).0,
            every: AtomicUsize::new(0),
            runs: Mutex::default(),
            followed: AtomicUsize::new(0),
            kinds: Mutex::default(),
            wanted: AtomicU32::new(0),
            capacity,
        }
    }

    /// Every run's events, from now on.
    pub(crate) fn every(self: &Arc<Channels>) -> Events {
        self.every.fetch_add(1, Ordering::SeqCst);
        let mut events = Events::new(self.all.subscribe(), None);
        events.channels = Some(Arc::clone(self));
        events
    }

    /// Run `run`'s events, from now on.
    pub(crate) fn of(self: &Arc<Channels>, run: RunId) -> Events {
        let mut runs = crate::engine::lock(&self.runs);
        let receiver = match runs.get(&run) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(self.capacity.min(RUN_CAPACITY));
                runs.insert(run, sender);
                self.followed.fetch_add(1, Ordering::SeqCst);
                receiver
            }
        };
        let mut events = Events::new(receiver, Some(run));
        events.channels = Some(Arc::clone(self));
        events
    }

    /// Every run's events of `kinds` (one bit per [`EventKind::NAMES`] entry), from now on.
    pub(crate) fn of_kinds(self: &Arc<Channels>, kinds: u32) -> Events {
        let mut channels = crate::engine::lock(&self.kinds);
        let capacity = self.capacity;
        let sender = channels.entry(kinds).or_insert_with(|| broadcast::channel(capacity).0);
        let receiver = sender.subscribe();
        self.wanted.fetch_or(kinds, Ordering::SeqCst);
        let mut events = Events::new(receiver, None);
        events.channels = Some(Arc::clone(self));
        events.kinds = Some(kinds);
        events
    }

    /// A subscriber of `kinds` is going: their channel goes with the last one.
    fn unsubscribe_kinds(&self, kinds: u32) {
        let mut channels = crate::engine::lock(&self.kinds);
        if channels.get(&kinds).is_some_and(|sender| sender.receiver_count() <= 1) {
            channels.remove(&kinds);
            let wanted = channels.keys().fold(0, |wanted, kinds| wanted | kinds);
            self.wanted.store(wanted, Ordering::SeqCst);
        }
    }

    /// A subscriber of run `run` is going: its channel goes with the last one.
    fn unsubscribe(&self, run: RunId) {
        let mut runs = crate::engine::lock(&self.runs);
        // Subscribers come and go under the lock: the one going is still counted.
        if runs.get(&run).is_some_and(|sender| sender.receiver_count() <= 1) {
            runs.remove(&run);
            self.followed.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Whether anyone listens to run `run`'s events: events are built only then.
    #[cfg(test)]
    fn listened(&self, run: RunId) -> bool {
        self.every.load(Ordering::SeqCst) > 0 || self.run_channel(run).is_some()
    }

    /// Run `run`'s own channel, if someone follows it.
    fn run_channel(&self, run: RunId) -> Option<broadcast::Sender<Event>> {
        if self.followed.load(Ordering::SeqCst) == 0 {
            return None;
        }
        crate::engine::lock(&self.runs).get(&run).cloned()
    }

    /// Sends the event `make` builds, of the kind at `place` in [`EventKind::NAMES`], if
    /// anyone listens to run `run` or wants that kind.
    pub(crate) fn send(&self, run: RunId, place: usize, make: impl FnOnce() -> Event) {
        let bit = 1 << place;
        let all = self.every.load(Ordering::SeqCst) > 0;
        let some = self.wanted.load(Ordering::SeqCst) & bit != 0;
        let one = self.run_channel(run);
        if !all && !some && one.is_none() {
            return;
        }
        let event = make();
        debug_assert_eq!(event.kind.index(), place, "an event sent as another kind");
        // No receiver left between the check and the send: nothing to deliver.
        if some {
            let channels = crate::engine::lock(&self.kinds);
            for sender in channels.iter().filter(|(kinds, _)| *kinds & bit != 0).map(|(_, s)| s) {
                let _ = sender.send(event.clone());
            }
        }
        match one {
            Some(one) if all => {
                let _ = one.send(event.clone());
                let _ = self.all.send(event);
            }
            Some(one) => {
                let _ = one.send(event);
            }
            None if all => {
                let _ = self.all.send(event);
            }
            None => {}
        }
    }
}

/// Sends one run's events to the engine's channels; cloned into each attempt of the run.
#[derive(Clone)]
pub(crate) struct Reporter {
    pub channels: Arc<Channels>,
    pub clock: Arc<dyn Clock>,
    pub run: RunId,
    pub machine: &'static str,
    pub state: &'static str,
}

impl fmt::Debug for Reporter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reporter").field("run", &self.run).field("state", &self.state).finish()
    }
}

impl Reporter {
    pub fn send(&self, kind: EventKind) {
        self.channels.send(self.run, kind.index(), || Event {
            run: self.run,
            machine: self.machine,
            state: self.state,
            at: self.clock.now(),
            kind,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_is_named_as_its_json_names_it() {
        let failure = Failure::Error { message: "no".into(), permanent: false, source: None };
        let every = [
            EventKind::Started,
            EventKind::Resumed { seq: 1 },
            EventKind::Entered { attempt: 1, visit: 0, payload: serde_json::Value::Null },
            EventKind::AttemptFailed { attempt: 1, failure: failure.clone(), retry_in: None },
            EventKind::Transitioned { to: "b" },
            EventKind::Checkpointed { seq: 1 },
            EventKind::Progress { message: "half".into(), fraction: Some(0.5) },
            EventKind::WaitingForSignal { signal: "Approval" },
            EventKind::SignalReceived,
            EventKind::WaitingForPool { pool: "gpu" },
            EventKind::Compensating { attempt: 1 },
            EventKind::Compensated,
            EventKind::CompensationFailed { attempt: 1, failure, retry_in: None },
            EventKind::Completed { output: serde_json::Value::Null },
            EventKind::Failed { error: "no".into() },
            EventKind::Cancelled,
            EventKind::Paused,
            EventKind::LeaseLost { error: "taken".into() },
            EventKind::StoreFault { error: "full".into(), retry_in: Duration::ZERO },
        ];
        for (index, kind) in every.iter().enumerate() {
            let json = serde_json::to_value(kind).unwrap();
            let tag = json.as_str().or_else(|| json.as_object()?.keys().next().map(String::as_str));
            assert_eq!(Some(kind.name()), tag);
            assert_eq!(kind.index(), index);
        }
        assert_eq!(every.len(), EventKind::NAMES.len());
    }

    #[test]
    fn kinds_are_placed_at_compile_time_as_named() {
        assert_eq!(kind!(Started), 0);
        assert_eq!(kind!(Entered), EventKind::NAMES.iter().position(|n| *n == "Entered").unwrap());
        assert_eq!(kind!(StoreFault), EventKind::NAMES.len() - 1);
    }

    #[tokio::test]
    async fn an_event_of_a_kind_nobody_wants_is_not_built() {
        let channels = Arc::new(Channels::new(16));
        let run = RunId::random();
        let event = |kind: EventKind| {
            move || Event { run, machine: "m", state: "s", at: SystemTime::UNIX_EPOCH, kind }
        };
        // Nobody listens at all.
        channels.send(run, kind!(Entered), || unreachable!("built for nobody"));
        let mut moves = channels.of_kinds(1 << kind!(Transitioned) | 1 << kind!(Completed));
        // Subscribers of some kinds only: the others are not built.
        channels.send(run, kind!(Entered), || unreachable!("built for subscribers of others"));
        channels.send(run, kind!(Transitioned), event(EventKind::Transitioned { to: "t" }));
        let received = moves.next().await.expect("the kind wanted is sent");
        assert_eq!(received.kind, EventKind::Transitioned { to: "t" });
        // A follower of the run, or of every run, takes every kind.
        let every = channels.every();
        channels.send(run, kind!(Started), event(EventKind::Started));
        drop(every);
        let one = channels.of(run);
        channels.send(run, kind!(Started), event(EventKind::Started));
        drop(one);
        channels.send(run, kind!(Started), || unreachable!("built once they went"));
        drop(moves);
        channels.send(run, kind!(Transitioned), || unreachable!("built once all went"));
    }

    #[test]
    fn a_runs_channel_goes_with_its_last_follower() {
        let channels = Arc::new(Channels::new(16));
        let (run, other) = (RunId::random(), RunId::random());
        let (first, second) = (channels.of(run), channels.of(run));
        assert!(channels.listened(run));
        assert!(!channels.listened(other));
        drop(first);
        assert!(channels.listened(run));
        drop(second);
        assert!(!channels.listened(run));
        assert_eq!(channels.followed.load(Ordering::SeqCst), 0);
        assert!(crate::engine::lock(&channels.runs).is_empty());

        let every = channels.every();
        assert!(channels.listened(other));
        drop(every);
        assert!(!channels.listened(other));

        let (first, second) = (channels.of_kinds(0b1), channels.of_kinds(0b1));
        drop(first);
        assert_eq!(crate::engine::lock(&channels.kinds).len(), 1);
        drop(second);
        assert!(crate::engine::lock(&channels.kinds).is_empty());
        assert_eq!(channels.wanted.load(Ordering::SeqCst), 0);
    }
}
