//! Run ids and what a running state knows about itself.

use std::fmt;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use tokio::sync::Notify;

use crate::event::Reporter;

/// Identifies one run: 128 bits, written as 32 lowercase hex digits.
///
/// [`RunId::random`] ids begin with the creation time in milliseconds, so they sort roughly
/// by age. Pick your own with [`RunId::from_u128`] (for example from an order number) and
/// start the run with `Engine::start_as`: starting the same id twice is refused, which makes
/// starting a run idempotent.
///
/// ```
/// use flow_core::RunId;
///
/// let id = RunId::from_u128(42);
/// assert_eq!(id.to_string(), "0000000000000000000000000000002a");
/// assert_eq!("0000000000000000000000000000002a".parse::<RunId>().unwrap(), id);
/// assert!("run-42".parse::<RunId>().is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(u128);

impl RunId {
    /// A new id: 48 bits of the current Unix time in milliseconds, then 80 random bits.
    pub fn random() -> RunId {
        let millis = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis());
        let random = fastrand::u128(..) & ((1u128 << 80) - 1);
        RunId(((millis & ((1u128 << 48) - 1)) << 80) | random)
    }

    /// The id with this value.
    pub const fn from_u128(value: u128) -> RunId {
        RunId(value)
    }

    /// The id's value.
    pub const fn as_u128(self) -> u128 {
        self.0
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RunId({self})")
    }
}

/// A string that is not a run id.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("`{text}` is not a run id: a run id is 32 hex digits, as printed by the engine")]
pub struct ParseRunIdError {
    text: String,
}

impl FromStr for RunId {
    type Err = ParseRunIdError;

    fn from_str(text: &str) -> Result<RunId, ParseRunIdError> {
        let valid = text.len() == 32 && text.bytes().all(|b| b.is_ascii_hexdigit());
        match u128::from_str_radix(text, 16) {
            Ok(value) if valid => Ok(RunId(value)),
            _ => Err(ParseRunIdError { text: text.chars().take(64).collect() }),
        }
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RunId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

tokio::task_local! {
    static ATTEMPT: Attempt;
}

/// What the runtime scopes around each attempt of a state body.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub current: Current,
    /// Where progress goes; `None` in memory.
    pub reporter: Option<Reporter>,
    /// Set when the run is asked to stop; `None` in memory.
    pub cancel: Option<Arc<Cancel>>,
}

impl Attempt {
    pub(crate) async fn scope<F: Future>(self, future: F) -> F::Output {
        ATTEMPT.scope(self, future).await
    }
}

/// How a run is asked to stop at its next safe point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Halt {
    /// Hold the run, to be resumed later.
    Pause = 1,
    /// End the run as cancelled.
    Cancel = 2,
}

/// A run's stop request: a flag the run checks at safe points, and a wake-up for its waits;
/// and its mailbox for a signal, open while the run waits for one.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    /// 0, or the strongest `Halt` requested.
    requested: AtomicU8,
    notify: Notify,
    /// The state waiting for a signal, while one does.
    pub waiting: std::sync::Mutex<Option<&'static str>>,
    /// A delivered signal, and who to tell once it is checkpointed.
    pub mailbox: std::sync::Mutex<Option<Delivery>>,
    pub delivered: Notify,
}

/// A signal handed to a waiting run, with the answer to its sender.
pub(crate) type Delivery =
    (serde_json::Value, tokio::sync::oneshot::Sender<std::result::Result<(), String>>);

impl Cancel {
    pub(crate) fn request(&self, halt: Halt) {
        self.requested.fetch_max(halt as u8, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    pub(crate) fn halt(&self) -> Option<Halt> {
        match self.requested.load(Ordering::SeqCst) {
            0 => None,
            1 => Some(Halt::Pause),
            _ => Some(Halt::Cancel),
        }
    }

    /// Returns once a stop is requested.
    pub(crate) async fn requested(&self) {
        loop {
            let notified = self.notify.notified();
            if self.halt().is_some() {
                return;
            }
            notified.await;
        }
    }
}

pub(crate) fn with_reporter(send: impl FnOnce(&Reporter)) {
    let _ = ATTEMPT.try_with(|attempt| {
        if let Some(reporter) = &attempt.reporter {
            send(reporter);
        }
    });
}

/// What a state body can learn about the attempt it runs in: [`current`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Current {
    /// The run.
    pub run: RunId,
    /// The state's name.
    pub state: &'static str,
    /// The visit: the sequence number of the checkpoint that entered this state. The same for
    /// every attempt of the visit, before and after a crash; a later visit of the same state
    /// (a loop) has another.
    pub visit: u64,
    /// 1 for the first attempt of the visit, 2 for its first retry, and so on.
    pub attempt: u32,
    /// Whether what runs is the state's compensation (`compensate = fn`), undoing the visit,
    /// rather than its body.
    pub compensating: bool,
}

impl Current {
    /// A key naming this visit of this state in this run: `"{run}/{visit}"`, and
    /// `"{run}/{visit}/undo"` for the compensation undoing the visit.
    ///
    /// Stable across the retries of the visit and across a crash and resume, so a payment
    /// provider, a database or a queue given this key applies the visit's side effect once
    /// even when the state body runs more than once (it runs at least once per visit). The
    /// same holds for a compensation, under its own key.
    pub fn idempotency_key(&self) -> String {
        if self.compensating {
            format!("{}/{}/undo", self.run, self.visit)
        } else {
            format!("{}/{}", self.run, self.visit)
        }
    }
}

/// The run, state, visit and attempt of the state body calling it; `None` outside one.
///
/// ```
/// # use flow_core::Result;
/// async fn charge_card(amount: u64) -> Result<()> {
///     let key = flow_core::current().map(|now| now.idempotency_key());
///     // payments.charge(amount).idempotency_key(key).send().await?;
///     # let _ = (amount, key);
///     Ok(())
/// }
/// ```
pub fn current() -> Option<Current> {
    ATTEMPT.try_with(|attempt| attempt.current).ok()
}

/// Whether the current run has been asked to stop ([`Engine::cancel`](crate::Engine::cancel)).
///
/// The engine stops a run at its next safe point: before an attempt, or during a backoff. A
/// long state body may check this and return early (any `Err` will do; the run is recorded as
/// cancelled, not failed). `false` outside a state and for in-memory runs.
pub fn cancelled() -> bool {
    ATTEMPT
        .try_with(|attempt| attempt.cancel.as_ref().is_some_and(|c| c.halt() == Some(Halt::Cancel)))
        .unwrap_or(false)
}

/// The idempotency key of the current state visit: [`Current::idempotency_key`]; `None`
/// outside a state body.
pub fn idempotency_key() -> Option<String> {
    current().map(|now| now.idempotency_key())
}
