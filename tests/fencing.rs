//! Fencing: a state body sees the fencing token of the claim it runs under, the token every
//! checkpoint of that claim carries; a takeover runs under a higher one. An engine whose write
//! is refused under a stale token drops the run at once, says so, and leaves it to the engine
//! that holds it.
//!
//! A crash is a runtime dropped mid-run, as in `tests/durable.rs`; the clock is paused and
//! the store in memory, so the dead engine's lease lapses at once and nothing is left to chance.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use flow::prelude::*;
use flow::store::{
    Checkpoint, CheckpointStore, Claimed, Filter, Halt, Lease, MemoryStore, RunSummary, Status,
    StoreError,
};
use flow::testing::TestClock;
use flow::{Engine, EventKind, Machine, RunId};

/// What the store saw of one run: each claim's token, each accepted checkpoint's.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Claimed { token: u64, taken_over: bool },
    Saved { seq: u64, state: String, token: Option<u64> },
}

/// A [`MemoryStore`] that records the tokens of the claims it hands out and of the
/// checkpoints it accepts.
#[derive(Clone, Default)]
struct Watched {
    inner: MemoryStore,
    seen: Arc<Mutex<HashMap<RunId, Vec<Seen>>>>,
}

impl Watched {
    fn seen(&self, run: RunId) -> Vec<Seen> {
        self.seen.lock().unwrap().get(&run).cloned().unwrap_or_default()
    }

    fn note(&self, run: RunId, seen: Seen) {
        self.seen.lock().unwrap().entry(run).or_default().push(seen);
    }

    fn claimed(&self, claimed: &[Claimed]) {
        for claim in claimed {
            let (token, taken_over) = (claim.lease.token, claim.taken_over);
            self.note(claim.checkpoint.run, Seen::Claimed { token, taken_over });
        }
    }
}

impl CheckpointStore for Watched {
    async fn save(&self, checkpoint: Checkpoint) -> Result<(), StoreError> {
        let (run, seq, state) = (checkpoint.run, checkpoint.seq, checkpoint.state.to_string());
        let token = checkpoint.lease.as_ref().map(|lease| lease.token);
        self.inner.save(checkpoint).await?;
        self.note(run, Seen::Saved { seq, state, token });
        Ok(())
    }
    async fn claim(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let claimed = self.inner.claim(owner, machines, now, limit).await?;
        self.claimed(&claimed);
        Ok(claimed)
    }
    async fn take_over(
        &self,
        owner: &str,
        machines: &[&'static str],
        now: u64,
        limit: usize,
    ) -> Result<Vec<Claimed>, StoreError> {
        let claimed = self.inner.take_over(owner, machines, now, limit).await?;
        self.claimed(&claimed);
        Ok(claimed)
    }
    async fn next_due(&self, machines: &[&'static str]) -> Result<Option<u64>, StoreError> {
        self.inner.next_due(machines).await
    }
    async fn heartbeat(
        &self,
        owner: &str,
        now: u64,
        expires: u64,
    ) -> Result<Vec<(RunId, Halt)>, StoreError> {
        self.inner.heartbeat(owner, now, expires).await
    }
    async fn release(&self, run: RunId, lease: Lease) -> Result<(), StoreError> {
        self.inner.release(run, lease).await
    }
    async fn request_halt(&self, run: RunId, halt: Halt) -> Result<bool, StoreError> {
        self.inner.request_halt(run, halt).await
    }
    async fn latest(&self, run: RunId) -> Result<Option<Checkpoint>, StoreError> {
        self.inner.latest(run).await
    }
    async fn history(&self, run: RunId) -> Result<Vec<String>, StoreError> {
        self.inner.history(run).await
    }
    async fn summary(&self, run: RunId) -> Result<Option<RunSummary>, StoreError> {
        self.inner.summary(run).await
    }
    async fn list(&self, filter: Filter) -> Result<Vec<RunSummary>, StoreError> {
        self.inner.list(filter).await
    }
    async fn mark(
        &self,
        run: RunId,
        status: Status,
        note: Option<String>,
        lease: Option<Lease>,
    ) -> Result<(), StoreError> {
        self.inner.mark(run, status, note, lease).await
    }
    async fn delete_finished(&self, filter: Filter, before: u64) -> Result<u64, StoreError> {
        self.inner.delete_finished(filter, before).await
    }
    async fn delete(&self, run: RunId) -> Result<bool, StoreError> {
        self.inner.delete(run).await
    }
    fn shared_between_processes(&self) -> bool {
        false
    }
}

/// One `charge` attempt: its attempt number and fencing token.
type Attempt = (u32, Option<u64>);

/// Every `charge` attempt, by order id.
static CHARGES: LazyLock<Mutex<HashMap<u32, Vec<Attempt>>>> = LazyLock::new(Default::default);

/// What the first attempt of order 2 waits for.
static GATE: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(0);

fn charges(id: u32) -> Vec<Attempt> {
    CHARGES.lock().unwrap().get(&id).cloned().unwrap_or_default()
}

#[flow::machine]
pub mod pay {
    use super::*;

    /// Hangs on its first attempt in an engine (the engine dies with it); for order 2, until
    /// the test lets it go on.
    #[state(start, to(ship), retry(attempts = 3, backoff = "1s"))]
    async fn charge(_cx: &mut u32, id: u32) -> Result<Charge> {
        let now = flow::current().expect("inside a state");
        CHARGES.lock().unwrap().entry(id).or_default().push((now.attempt, now.fencing_token));
        if now.attempt == 1 && now.fencing_token.is_some() {
            match id {
                2 => drop(GATE.acquire().await),
                _ => std::future::pending::<()>().await,
            }
        }
        goto!(ship(id))
    }

    #[state(end)]
    async fn ship(cx: &mut u32, id: u32) -> Result<u32> {
        *cx += 1;
        Ok(id)
    }
}

type Pay = pay::Machine;

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

/// An engine whose clock reads `hours` past [`TestClock::START`].
fn engine(store: impl CheckpointStore, hours: u64) -> Engine {
    let start = UNIX_EPOCH + TestClock::START + Duration::from_secs(hours * 3600);
    Engine::builder()
        .store(store)
        .machine::<Pay>()
        .clock(TestClock::starting_at(start))
        .seed(3)
        .build()
        .unwrap()
}

/// Waits (on the paused clock) until `charge` of order `id` has run `n` times.
async fn charged(id: u32, n: usize) {
    while charges(id).len() < n {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn a_state_sees_its_claims_fencing_token_and_a_takeover_a_higher_one() {
    // In memory, no store holds the run, and there is no token.
    let memory = paused_runtime().block_on(async {
        let mut cx = 0;
        pay::run(7, &mut cx).await.unwrap();
        charges(7)
    });
    assert_eq!(memory, [(1, None)]);

    let store = Watched::default();
    let run = paused_runtime().block_on(async {
        let engine = engine(store.clone(), 0);
        let run = engine.start::<Pay>(1).await.unwrap().id();
        charged(1, 1).await;
        run
    }); // the engine dies with `charge` running under the run's first claim
    // Started and executed at once, the run holds token 1: its first checkpoint carries it.
    assert_eq!(charges(1), [(1, Some(1))]);
    let started = Seen::Saved { seq: 0, state: "charge".into(), token: Some(1) };
    assert_eq!(store.seen(run), [started]);

    let output = paused_runtime().block_on(async {
        let engine = engine(store.clone(), 1);
        engine.handle::<Pay>(run).await.unwrap().output().await.unwrap()
    });
    assert_eq!(output, 1);
    // The takeover counted the cut-off attempt as failed; the retry ran under a later claim.
    let after = charges(1);
    assert_eq!(after.len(), 2, "{after:?}");
    let (attempt, token) = after[1];
    assert_eq!(attempt, 2);
    let token = token.expect("a durable run has a token");
    assert!(token > 1, "the new attempt's token {token} is not higher than the dead claim's");

    // The token the retry saw is the token of the claim it ran under, the store's last one,
    // and every checkpoint of that claim carries it.
    let seen = store.seen(run);
    let last_claim = seen.iter().rposition(|seen| matches!(seen, Seen::Claimed { .. })).unwrap();
    let Seen::Claimed { token: claimed, .. } = seen[last_claim] else { unreachable!() };
    assert_eq!(token, claimed, "{seen:?}");
    let written: Vec<_> = seen[last_claim + 1..].to_vec();
    assert!(written.len() >= 2, "the transition and the end are written: {seen:?}");
    for write in &written {
        let Seen::Saved { token: carried, .. } = write else { panic!("{seen:?}") };
        assert_eq!(*carried, Some(token), "{seen:?}");
    }
    assert!(matches!(seen[1], Seen::Claimed { taken_over: true, .. }), "{seen:?}");
}

#[tokio::test(start_paused = true)]
async fn an_engine_whose_write_is_fenced_drops_the_run_and_another_finishes_it() {
    let store = Watched::default();
    let first = engine(store.clone(), 0);
    let mut events = first.events();
    let handle = first.start::<Pay>(2).await.unwrap();
    let run = handle.id();
    charged(2, 1).await;

    // The first engine stalls in `charge` past its lease (as in a long pause), and another
    // claim takes the run over: it holds the run until an hour past the clocks' start.
    let an_hour = (TestClock::START + Duration::from_secs(3600)).as_millis() as u64;
    store.heartbeat("other", 0, an_hour).await.unwrap();
    let taken = store.take_over("other", &[Pay::NAME], u64::MAX, 1).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert!(taken[0].taken_over && taken[0].lease.token > 1, "{:?}", taken[0]);

    // The stalled attempt ends; its transition is written under the old token and refused.
    GATE.add_permits(1);
    let mut heard = Vec::new();
    let lost = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(event) = events.next().await {
            if event.run == run {
                heard.push(event.kind.clone());
                if let EventKind::LeaseLost { error } = event.kind {
                    return error;
                }
            }
        }
        panic!("the event stream ended");
    })
    .await
    .unwrap_or_else(|_| panic!("no LeaseLost event; the first engine sent {heard:?}"));
    assert!(lost.contains("refused"), "{lost}");
    assert!(!EventKind::LeaseLost { error: lost.clone() }.ends_the_run());
    // Nothing of the refused step was announced, and the run is where the store had it.
    assert!(heard.iter().all(|kind| !matches!(kind, EventKind::Transitioned { .. })), "{heard:?}");
    let status = first.status(run).await.unwrap();
    assert_eq!((status.status, status.state.as_str(), status.seq), (Status::Running, "charge", 0));

    // A second engine takes the run over once the other claim lapses, and finishes it.
    let second = engine(store.clone(), 2);
    assert_eq!(second.handle::<Pay>(run).await.unwrap().output().await.unwrap(), 2);
    // The first engine's handle follows the run to its end elsewhere: it was not failed there.
    assert_eq!(handle.output().await.unwrap(), 2);
    while let Ok(Some(event)) = tokio::time::timeout(Duration::from_millis(1), events.next()).await
    {
        if event.run == run {
            heard.push(event.kind);
        }
    }
    let lost = heard.iter().filter(|kind| matches!(kind, EventKind::LeaseLost { .. }));
    assert_eq!(lost.count(), 1, "{heard:?}");
    assert!(heard.iter().all(|kind| !kind.ends_the_run()), "{heard:?}");

    // `charge` moved on once, in the second engine, which ran the retry under its own claim.
    let history = second.status(run).await.unwrap().history;
    let path: Vec<_> = history.iter().map(|entry| (entry.state, entry.attempt)).collect();
    assert_eq!(path, [("charge", 1), ("charge", 2), ("ship", 1)], "{history:?}");
    let attempts = charges(2);
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert!(attempts[1].1 > Some(taken[0].lease.token), "{attempts:?}");
}
