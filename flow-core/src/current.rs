//! What a state body sees while it runs: [`current`], [`idempotency_key`], [`cancelled`],
//! and the run's stop requests behind them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use crate::event::Reporter;
use crate::id::RunId;
pub(crate) use crate::store::Halt;

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

/// A run's stop requests, while an engine here executes it: a flag the run checks at safe
/// points, and state bodies through [`cancelled`].
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    /// 0, or the strongest `Halt` requested.
    requested: AtomicU8,
    /// Wakes what waits for a request: an attempt waiting for a resource pool.
    changed: tokio::sync::Notify,
}

impl Cancel {
    pub(crate) fn request(&self, halt: Halt) {
        self.requested.fetch_max(halt as u8, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Returns once a halt has been requested.
    pub(crate) async fn requested(&self) {
        loop {
            // Registered before the check, so a request between the two is not missed.
            let changed = self.changed.notified();
            if self.halt().is_some() {
                return;
            }
            changed.await;
        }
    }

    pub(crate) fn halt(&self) -> Option<Halt> {
        match self.requested.load(Ordering::SeqCst) {
            0 => None,
            1 => Some(Halt::Pause),
            _ => Some(Halt::Cancel),
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
    /// The fencing token of the engine's claim on the run while this attempt runs; `None` for
    /// a run in memory ([`Runner`](crate::Runner)), which no store holds.
    ///
    /// Every claim of a run gets a token higher than the claim before: the run's start
    /// (a run an engine starts and executes at once holds token 1), each claim after a wait
    /// or a restart, each takeover from an engine whose lease lapsed. Every checkpoint the
    /// engine writes carries the token, and the store refuses a write under an older one, so
    /// an engine that lost the run cannot move it on. The same token holds for every attempt
    /// of the claim; a retry that backs off in the store runs under a new claim.
    ///
    /// That protects the run's checkpoints, not what a state body changes elsewhere: an
    /// engine that lost its claim (a long GC pause, a network cut off from the store) can be
    /// in the middle of a body while another engine runs the same visit again. To fence such
    /// a side effect at the system it touches, pass it the token with the write and have it
    /// refuse a write with a lower token than the highest it has seen (for that resource):
    /// the fencing token of Martin Kleppmann's "How to do distributed locking" (2016),
    /// <https://martin.kleppmann.com/2016/02/08/how-to-do-distributed-locking.html>. The
    /// [idempotency key](Current::idempotency_key) makes a repeated write harmless; the token
    /// makes a late one from a superseded attempt be refused.
    pub fencing_token: Option<u64>,
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

/// The run, state, visit, attempt and fencing token of the state body calling it; `None`
/// outside one.
///
/// ```
/// # use flow::Result;
/// async fn charge_card(amount: u64) -> Result<()> {
///     let key = flow::current().map(|now| now.idempotency_key());
///     // payments.charge(amount).idempotency_key(key).send().await?;
///     # let _ = (amount, key);
///     Ok(())
/// }
///
/// async fn set_balance(account: &str, cents: i64) -> Result<()> {
///     let token = flow::current().and_then(|now| now.fencing_token);
///     // ledger.set(account, cents).fencing_token(token).send().await?;
///     // The ledger keeps the highest token it has seen for `account`, and refuses a write
///     // with a lower one: the write of an engine that lost the run.
///     # let _ = (account, cents, token);
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
