//! One attempt of a state body or a compensation: its scope, its timeout, a panic caught.

use std::any::Any;
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use super::Journal;
use crate::Machine;
use crate::current::{Attempt, Current};
use crate::error::SharedError;
use crate::history::Failure;

/// The backoff jitter's random source, created on first use.
pub(crate) struct JitterRng {
    seed: Option<u64>,
    rng: Option<fastrand::Rng>,
}

impl JitterRng {
    pub(crate) fn new(seed: Option<u64>) -> JitterRng {
        JitterRng { seed, rng: None }
    }

    pub(crate) fn rng(&mut self) -> &mut fastrand::Rng {
        let seed = self.seed;
        self.rng
            .get_or_insert_with(|| seed.map_or_else(fastrand::Rng::new, fastrand::Rng::with_seed))
    }
}

/// What one attempt of `state`'s body, or of its compensation, runs in: the task-local scope
/// [`crate::current`] reads, and a `tracing` span.
pub(crate) fn scoped<M: Machine, J: Journal<M>>(
    journal: &J,
    state: &'static str,
    visit: u64,
    attempt: u32,
    compensating: bool,
) -> (Attempt, tracing::Span) {
    let (reporter, cancel) = journal.attempt_scope(state);
    let run = journal.run();
    let fencing_token = journal.fencing_token();
    let current = Current { run, state, visit, attempt, compensating, fencing_token };
    let span = tracing::info_span!(
        "attempt",
        run = %run,
        machine = M::NAME,
        state,
        attempt,
        compensating,
    );
    (Attempt { current, reporter, cancel }, span)
}

/// One attempt of a state body or a compensation, with its timeout, a panic caught as a
/// failure.
pub(crate) async fn guarded<T>(
    body: impl Future<Output = crate::Result<T>>,
    timeout: Option<Duration>,
) -> Result<T, Failure> {
    let guarded = catching_panics(body);
    let result = match timeout {
        Some(after) => match tokio::time::timeout(after, guarded).await {
            Ok(result) => result,
            Err(_) => return Err(Failure::TimedOut { after }),
        },
        None => guarded.await,
    };
    match result {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(error)) => Err(Failure::Error {
            message: error.message(),
            permanent: error.is_permanent(),
            source: Some(SharedError::new(error.into_source())),
        }),
        Err(panic) => Err(Failure::Panicked { message: panic_message(&*panic) }),
    }
}

/// Polls `future`, turning a panic during any poll into `Err(payload)`.
///
/// The state's future is dropped after a panic and its context may be left half-updated; the
/// next attempt sees it as the panicking attempt left it, as it would after an error.
pub(crate) async fn catching_panics<F: Future>(
    future: F,
) -> Result<F::Output, Box<dyn Any + Send>> {
    let mut future = pin!(future);
    poll_fn(move |task| match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(task))) {
        Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
        Ok(Poll::Pending) => Poll::Pending,
        Err(panic) => Poll::Ready(Err(panic)),
    })
    .await
}

pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic with a non-string payload".to_owned()
    }
}
