//! Per-state retries: backoff, permanent errors, timeouts and panics, on tokio's paused clock.

use std::time::Duration;

use flow::history::{Failure, Outcome};
use flow::prelude::*;
use flow::{Backoff, Jitter, RunError, Runner};

/// How the `call` state behaves on each attempt, in order; attempts past the end succeed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Act {
    Fail,
    FailPermanently,
    Stall,
    Panic,
}

#[derive(Default)]
pub struct Script {
    pub acts: Vec<Act>,
    pub calls: u32,
}

#[flow::machine]
pub mod flaky {
    use super::*;

    #[state(start, to(done), retry(attempts = 4, backoff = "1s..3s"), timeout = "10s")]
    async fn call(cx: &mut Script, value: u32) -> Result<Call> {
        let act = cx.acts.get(cx.calls as usize).copied();
        cx.calls += 1;
        match act {
            Some(Act::Fail) => Err(<Error as MsgForTest>::msg_for_test("service unavailable")),
            Some(Act::FailPermanently) => Err(Error::permanent("card declined")),
            Some(Act::Stall) => {
                tokio::time::sleep(Duration::from_secs(60)).await;
                goto!(done(value))
            }
            Some(Act::Panic) => panic!("index out of range in attempt {}", cx.calls),
            None => goto!(done(value)),
        }
    }

    #[state(end)]
    async fn done(_cx: &mut Script, value: u32) -> Result<u32> {
        Ok(value * 2)
    }
}

/// A tiny extension so the machine reads like user code: a retryable error from a message.
trait MsgForTest {
    fn msg_for_test(message: &'static str) -> Error;
}
impl MsgForTest for Error {
    fn msg_for_test(message: &'static str) -> Error {
        Error::retryable(message)
    }
}

async fn run(acts: &[Act]) -> (Result<flow::Finished<u32>, RunError>, Script, Duration) {
    let mut script = Script { acts: acts.to_vec(), calls: 0 };
    let started = tokio::time::Instant::now();
    let result = Runner::new().seed(42).run::<flaky::Machine>(21, &mut script).await;
    (result, script, started.elapsed())
}

fn retry_delays(history: &[flow::history::Entry]) -> Vec<Duration> {
    history
        .iter()
        .filter_map(|entry| match &entry.outcome {
            Outcome::Failed { retry_in, .. } => *retry_in,
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn retry_then_success() {
    let (result, script, elapsed) = run(&[Act::Fail, Act::Fail]).await;
    let finished = result.expect("the third attempt succeeds");
    assert_eq!(finished.output, 42);
    assert_eq!(script.calls, 3);
    let call: Vec<_> = finished.history.iter().filter(|e| e.state == "call").collect();
    assert_eq!(call.iter().map(|e| e.attempt).collect::<Vec<_>>(), [1, 2, 3]);
    assert!(
        matches!(&call[0].outcome, Outcome::Failed { failure: Failure::Error { message, permanent: false, .. }, retry_in: Some(_) } if message == "service unavailable")
    );
    assert_eq!(call[2].outcome, Outcome::Transitioned { to: "done" });
    // On the paused clock the run took exactly its backoffs.
    let delays = retry_delays(&finished.history);
    assert_eq!(delays.len(), 2);
    assert_eq!(elapsed, delays.iter().sum::<Duration>());
}

#[tokio::test(start_paused = true)]
async fn retries_exhausted_error_carries_every_attempt() {
    let (result, script, _) = run(&[Act::Fail; 10]).await;
    let Err(RunError::StateFailed { state, attempts, history }) = result else {
        panic!("expected StateFailed, got: {:?}", result.map(|f| f.output));
    };
    assert_eq!(state, "call");
    assert_eq!(script.calls, 4, "attempts = 4 means four tries in all");
    assert_eq!(attempts.len(), 4);
    assert!(attempts.iter().all(|f| *f == Failure::error("service unavailable", false)));
    // The last attempt schedules no retry.
    assert_eq!(retry_delays(&history).len(), 3);
    assert!(matches!(history.last().unwrap().outcome, Outcome::Failed { retry_in: None, .. }));
}

#[tokio::test(start_paused = true)]
async fn permanent_error_is_not_retried() {
    let (result, script, elapsed) = run(&[Act::FailPermanently]).await;
    let Err(error @ RunError::StateFailed { .. }) = result else { panic!("expected StateFailed") };
    assert_eq!(script.calls, 1);
    assert_eq!(elapsed, Duration::ZERO, "no backoff was waited");
    let RunError::StateFailed { attempts, .. } = &error else { unreachable!() };
    assert_eq!(attempts, &[Failure::error("card declined", true)]);
    assert_eq!(
        error.to_string(),
        "state `call` failed after 1 attempt(s); last: permanent error: card declined"
    );
}

#[tokio::test(start_paused = true)]
async fn timeout_is_a_failed_attempt_and_retried() {
    let (result, script, elapsed) = run(&[Act::Stall]).await;
    let finished = result.expect("the retry after the timeout succeeds");
    assert_eq!(script.calls, 2);
    let first = &finished.history[0];
    assert!(
        matches!(first.outcome, Outcome::Failed { failure: Failure::TimedOut { after }, retry_in: Some(_) } if after == Duration::from_secs(10))
    );
    assert_eq!(first.duration, Duration::from_secs(10), "the attempt was cut at its timeout");
    assert_eq!(elapsed, Duration::from_secs(10) + retry_delays(&finished.history)[0]);
}

#[tokio::test(start_paused = true)]
async fn panic_is_a_failed_attempt_not_a_crash() {
    let (result, _, _) = run(&[Act::Panic]).await;
    let finished = result.expect("the retry after the panic succeeds");
    assert!(
        matches!(&finished.history[0].outcome, Outcome::Failed { failure: Failure::Panicked { message }, .. } if message == "index out of range in attempt 1")
    );
    assert_eq!(finished.output, 42);

    let (result, script, _) = run(&[Act::Panic; 4]).await;
    assert_eq!(script.calls, 4);
    assert!(
        matches!(result, Err(RunError::StateFailed { ref attempts, .. }) if attempts.iter().all(|f| matches!(f, Failure::Panicked { .. })))
    );
}

#[tokio::test(start_paused = true)]
async fn backoff_delays_are_within_jitter_bounds_and_cap() {
    let backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(2),
        ..Backoff::DEFAULT
    };
    let ceilings: Vec<Duration> = (1..=8).map(|n| backoff.ceiling(n)).collect();
    let ms = Duration::from_millis;
    assert_eq!(
        ceilings,
        [ms(100), ms(200), ms(400), ms(800), ms(1600), ms(2000), ms(2000), ms(2000)]
    );

    // The machine's own delays, over many seeds: each within [0, ceiling(n)] of its retry.
    let mut above_half = 0;
    for seed in 0..200 {
        let mut script = Script { acts: vec![Act::Fail; 3], calls: 0 };
        let finished =
            Runner::new().seed(seed).run::<flaky::Machine>(1, &mut script).await.unwrap();
        let policy = flaky::graph().state("call").unwrap().policy.retry.backoff;
        for (n, delay) in retry_delays(&finished.history).into_iter().enumerate() {
            let ceiling = policy.ceiling(n as u32 + 1);
            assert!(delay <= ceiling, "retry {} waited {delay:?}, above {ceiling:?}", n + 1);
            above_half += usize::from(delay > ceiling / 2);
        }
    }
    // Full jitter: about half the draws land in the upper half (600 draws in all).
    assert!(
        (200..400).contains(&above_half),
        "{above_half} of 600 delays above half their ceiling"
    );
}

#[tokio::test(start_paused = true)]
async fn a_seed_reproduces_the_delays() {
    let delays = |seed| async move {
        let mut script = Script { acts: vec![Act::Fail; 3], calls: 0 };
        let finished =
            Runner::new().seed(seed).run::<flaky::Machine>(1, &mut script).await.unwrap();
        retry_delays(&finished.history)
    };
    assert_eq!(delays(7).await, delays(7).await);
    assert_ne!(delays(7).await, delays(8).await);
}

/// `call` of [`flaky`] with each jitter named: fails while the script says so, then ends.
macro_rules! with_jitter {
    ($name:ident, $jitter:tt) => {
        #[flow::machine]
        pub mod $name {
            use super::*;

            #[state(start, to(done), retry(attempts = 4, backoff = "1s..3s", jitter = $jitter))]
            async fn call(cx: &mut Script, value: u32) -> Result<Call> {
                let act = cx.acts.get(cx.calls as usize).copied();
                cx.calls += 1;
                match act {
                    Some(_) => Err(Error::retryable("service unavailable")),
                    None => goto!(done(value)),
                }
            }

            #[state(end)]
            async fn done(_cx: &mut Script, value: u32) -> Result<u32> {
                Ok(value)
            }
        }
    };
}

with_jitter!(exact, "none");
with_jitter!(even, "equal");
with_jitter!(full, "full");

/// The retry delays of `M` failing three times, with the jitter seeded by `seed`, and how
/// long the run took on the paused clock.
async fn three_failures<M>(seed: u64) -> (Vec<Duration>, Duration)
where
    M: flow::Machine<Context = Script, Input = u32, Output = u32>,
{
    let mut script = Script { acts: vec![Act::Fail; 3], calls: 0 };
    let started = tokio::time::Instant::now();
    let finished = Runner::new().seed(seed).run::<M>(1, &mut script).await.unwrap();
    (retry_delays(&finished.history), started.elapsed())
}

#[tokio::test(start_paused = true)]
async fn no_jitter_waits_exactly_each_ceiling() {
    let backoff = exact::graph().state("call").unwrap().policy.retry.backoff;
    assert_eq!(backoff.jitter, Jitter::None);
    let ceilings: Vec<Duration> = (1..=3).map(|n| backoff.ceiling(n)).collect();
    let s = Duration::from_secs;
    assert_eq!(ceilings, [s(1), s(2), s(3)]);
    for seed in 0..20 {
        let (delays, elapsed) = three_failures::<exact::Machine>(seed).await;
        assert_eq!(delays, ceilings, "seed {seed}");
        assert_eq!(elapsed, s(6), "the run waited exactly its backoffs");
    }
}

#[tokio::test(start_paused = true)]
async fn equal_jitter_waits_between_half_and_all_of_each_ceiling() {
    let backoff = even::graph().state("call").unwrap().policy.retry.backoff;
    assert_eq!(backoff.jitter, Jitter::Equal);
    let (mut at_ceiling, mut below_three_quarters) = (0, 0);
    for seed in 0..200 {
        let (delays, elapsed) = three_failures::<even::Machine>(seed).await;
        assert_eq!(delays.len(), 3);
        assert_eq!(elapsed, delays.iter().sum::<Duration>());
        for (n, delay) in delays.into_iter().enumerate() {
            let ceiling = backoff.ceiling(n as u32 + 1);
            assert!(
                ceiling / 2 <= delay && delay <= ceiling,
                "retry {} waited {delay:?}, outside [{:?}, {ceiling:?}]",
                n + 1,
                ceiling / 2
            );
            at_ceiling += usize::from(delay == ceiling);
            below_three_quarters += usize::from(delay < ceiling * 3 / 4);
        }
    }
    // Drawn, not fixed: of 600 draws spread over the upper half, about half fall in its lower
    // half, and few (if any) land on the ceiling itself.
    assert!(at_ceiling < 10, "{at_ceiling} of 600 delays were the whole ceiling");
    assert!(
        (200..400).contains(&below_three_quarters),
        "{below_three_quarters} of 600 delays below three quarters of their ceiling"
    );
}

#[tokio::test(start_paused = true)]
async fn full_jitter_is_the_default() {
    let default = flaky::graph().state("call").unwrap().policy.retry.backoff;
    assert_eq!(default.jitter, Jitter::Full);
    assert_eq!(default, full::graph().state("call").unwrap().policy.retry.backoff);
    // The same seed draws the same delays with the jitter left out as with "full" written.
    for seed in 0..20 {
        let mut script = Script { acts: vec![Act::Fail; 3], calls: 0 };
        let finished =
            Runner::new().seed(seed).run::<flaky::Machine>(1, &mut script).await.unwrap();
        let (delays, _) = three_failures::<full::Machine>(seed).await;
        assert_eq!(retry_delays(&finished.history), delays, "seed {seed}");
    }
}
