//! Bounded reassignment: a run whose state kills every engine that runs it is taken over at
//! most `max_reassignments` times in one visit, then fails with an error that says so,
//! instead of taking down each worker in turn; a run that moves on between takeovers starts
//! counting again.
//!
//! A crash is a runtime dropped mid-attempt, as in `tests/durable.rs`: each "life" below is
//! one engine on the shared store, which dies with its runtime once `crunch` hangs. The clock
//! is paused and the store in memory; each life's clock starts an hour after the last one's,
//! so the dead engine's lease has lapsed.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use flow::history::{Failure, Outcome};
use flow::prelude::*;
use flow::store::MemoryStore;
use flow::testing::TestClock;
use flow::{Engine, EngineError, RunError, RunId};

/// Every `crunch` attempt that ran, by order id: its attempt number.
static CRUNCHES: LazyLock<Mutex<HashMap<u32, Vec<u32>>>> = LazyLock::new(Default::default);

fn crunches(id: u32) -> Vec<u32> {
    CRUNCHES.lock().unwrap().get(&id).cloned().unwrap_or_default()
}

#[flow::machine]
pub mod mill {
    use super::*;

    /// Kills its engine (hangs until the runtime is dropped): on every attempt for order 1,
    /// on the first attempt of each visit for the others. Goes round three times, then packs.
    #[state(start, to(crunch, pack), retry(attempts = 20, backoff = "1s"))]
    async fn crunch(laps: &mut u32, id: u32) -> Result<Crunch> {
        let now = flow::current().expect("inside a state");
        CRUNCHES.lock().unwrap().entry(id).or_default().push(now.attempt);
        if id == 1 || now.attempt == 1 {
            std::future::pending::<()>().await;
        }
        *laps += 1;
        if *laps < 3 { goto!(crunch(id)) } else { goto!(pack(id)) }
    }

    #[state(end)]
    async fn pack(laps: &mut u32, id: u32) -> Result<u32> {
        Ok(id * 100 + *laps)
    }
}

type Mill = mill::Machine;

/// Books, then fails for good: the rollback runs `unbook`, which kills every engine that runs
/// it (hangs until the runtime is dropped).
#[flow::machine]
pub mod trip {
    use super::*;

    #[state(start, to(pay), compensate = unbook, retry(attempts = 20, backoff = "1s"))]
    async fn book(_cx: &mut u32, id: u32) -> Result<Book> {
        goto!(pay(id))
    }

    #[state(end)]
    async fn pay(_cx: &mut u32, _id: u32) -> Result<u32> {
        Err(Error::permanent("card declined"))
    }

    async fn unbook(_cx: &mut u32, id: u32) -> Result<()> {
        let now = flow::current().expect("inside a compensation");
        CRUNCHES.lock().unwrap().entry(id).or_default().push(now.attempt);
        std::future::pending::<()>().await;
        Ok(())
    }
}

/// One engine's life on `store`, its clock `hour` hours past [`TestClock::START`]: it starts
/// order `id` (or takes run `run` over) and runs until `crunch` hangs once more, or the run
/// ends. Then the engine dies with its runtime, mid-attempt.
fn life<M: flow::Durable<Input = u32, Output = u32, Context = u32>>(
    store: &MemoryStore,
    hour: u64,
    id: u32,
    run: Option<RunId>,
) -> (RunId, Option<Result<u32, EngineError>>) {
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build();
    runtime.unwrap().block_on(async {
        let before = crunches(id).len();
        let start = UNIX_EPOCH + TestClock::START + Duration::from_secs(hour * 3600);
        let engine = Engine::builder()
            .store(store.clone())
            .machine::<M>()
            .clock(TestClock::starting_at(start))
            .seed(5)
            .max_reassignments(2)
            .build()
            .unwrap();
        let run = match run {
            Some(run) => run,
            None => engine.start::<M>(id).await.unwrap().id(),
        };
        let output = engine.handle::<M>(run).await.unwrap().output();
        let hung = async {
            while crunches(id).len() == before {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // The attempt is under way: the engine dies now.
        };
        tokio::select! {
            output = output => (run, Some(output)),
            () = hung => (run, None),
        }
    })
}

/// Lives engines one after another on one store until the run ends; the output, and how
/// many engines it took.
fn until_it_ends(id: u32) -> (RunId, Result<u32, EngineError>, u64) {
    until_ends::<Mill>(id)
}

fn until_ends<M: flow::Durable<Input = u32, Output = u32, Context = u32>>(
    id: u32,
) -> (RunId, Result<u32, EngineError>, u64) {
    let store = MemoryStore::new();
    let mut run = None;
    for hour in 0..10 {
        match life::<M>(&store, hour, id, run) {
            (id, None) => run = Some(id),
            (id, Some(output)) => return (id, output, hour + 1),
        }
    }
    panic!("the run of order {id} was still going after 10 engines: {:?}", crunches(id));
}

#[test]
fn a_state_that_kills_every_engine_fails_after_max_reassignments_takeovers() {
    let (_, output, engines) = until_it_ends(1);
    // Three engines ran `crunch` and died with it: the first, and two that took the run
    // over (the limit). The fourth took it over a third time and failed it at once.
    assert_eq!(crunches(1), [1, 2, 3]);
    assert_eq!(engines, 4);
    let Err(EngineError::Failed { error, .. }) = output else {
        panic!("the run did not fail: {output:?}");
    };
    let RunError::StateFailed { state, attempts, history } = &error else {
        panic!("{error}");
    };
    assert_eq!(*state, "crunch");
    let reassigned = Failure::Reassigned { times: 3, limit: 2 };
    assert_eq!(*attempts, [Failure::Interrupted, Failure::Interrupted, reassigned.clone()]);
    // No retry after the last takeover: the failure is permanent.
    let last = history.last().unwrap();
    assert_eq!(last.outcome, Outcome::Failed { failure: reassigned, retry_in: None });
    let message = error.to_string();
    for says in ["taken over 3 times", "crunch", "limit 2", "max_reassignments", "kills or stalls"]
    {
        assert!(message.contains(says), "the error does not say `{says}`: {message}");
    }
}

#[test]
fn the_takeover_count_starts_over_when_the_run_moves_on() {
    // Each of the three visits of `crunch` is taken over once, and the limit is 2: counted
    // across visits, the third takeover would fail the run.
    let (_, output, engines) = until_it_ends(2);
    assert_eq!(output.unwrap(), 203);
    assert_eq!(engines, 4);
    assert_eq!(crunches(2), [1, 2, 1, 2, 1, 2]);
}

#[test]
fn a_compensation_that_kills_every_engine_fails_after_max_reassignments_takeovers() {
    let (_, output, engines) = until_ends::<trip::Machine>(3);
    // As for a state: three engines ran `unbook` and died with it; the fourth took the run
    // over a third time, failed the compensation at once, and ended the rollback.
    assert_eq!(crunches(3), [1, 2, 3]);
    assert_eq!(engines, 4);
    let Err(EngineError::Failed { error: RunError::RolledBack { cause, failed, .. }, .. }) = output
    else {
        panic!("the run did not fail with a rollback: {output:?}");
    };
    assert!(cause.to_string().contains("card declined"), "{cause}");
    let reassigned = Failure::Reassigned { times: 3, limit: 2 };
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].state, "book");
    assert_eq!(failed[0].attempts, [Failure::Interrupted, Failure::Interrupted, reassigned]);
}
