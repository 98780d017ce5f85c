//! Events, progress and cancellation on the engine.

use std::time::Duration;

use flow::Clock;

use flow::prelude::*;
use flow::store::{MemoryStore, Status};
use flow::testing::TestClock;
use flow::{Engine, EngineError, EventKind, Events, RunId};
use futures_util::FutureExt;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Tries {
    pub charge: u32,
}

#[flow::machine]
pub mod order {
    use super::*;

    #[state(start, to(charge))]
    async fn reserve(_cx: &mut Tries, id: u32) -> Result<Reserve> {
        goto!(charge(id))
    }

    /// Fails its first attempt; order 0 fails every attempt, with a long backoff.
    #[state(to(ship), retry(attempts = 3, backoff = "10m"))]
    async fn charge(cx: &mut Tries, id: u32) -> Result<Charge> {
        cx.charge += 1;
        if cx.charge == 1 || id == 0 {
            return Err(Error::retryable("declined"));
        }
        flow::progress("charged", Some(0.5));
        goto!(ship(id))
    }

    #[state(end)]
    async fn ship(_cx: &mut Tries, id: u32) -> Result<u32> {
        flow::progress("packing", None);
        flow::progress("labelled", Some(1.0));
        Ok(id)
    }
}

/// An engine whose durable clock follows tokio's paused clock, so backoffs come due as
/// virtual time passes.
fn engine(store: MemoryStore) -> Engine {
    Engine::builder()
        .store(store)
        .machine::<order::Machine>()
        .clock(TestClock::new())
        .seed(3)
        .build()
        .unwrap()
}

/// Every event of `run` until it ends, as (state, kind).
async fn collect(events: &mut Events, run: RunId) -> Vec<(&'static str, EventKind)> {
    let mut seen = Vec::new();
    while let Some(event) = events.next().await {
        if event.run != run {
            continue;
        }
        let end = matches!(
            event.kind,
            EventKind::Completed { .. } | EventKind::Failed { .. } | EventKind::Cancelled
        );
        seen.push((event.state, event.kind));
        if end {
            break;
        }
    }
    seen
}

#[tokio::test(start_paused = true)]
async fn a_run_with_a_retry_emits_its_events_in_order() {
    let engine = engine(MemoryStore::new());
    let mut events = engine.events();
    let handle = engine.start::<order::Machine>(7).await.unwrap();
    let run = handle.id();
    assert_eq!(handle.output().await.unwrap(), 7);
    let seen = collect(&mut events, run).await;

    let status = engine.status(run).await.unwrap();
    let flow::history::Outcome::Failed { failure, retry_in } = &status.history[1].outcome else {
        panic!("charge's first attempt failed");
    };
    use EventKind::*;
    use serde_json::json;
    assert_eq!(
        seen,
        [
            ("reserve", Checkpointed { seq: 0 }),
            ("reserve", Started),
            ("reserve", Entered { attempt: 1, visit: 0, payload: json!({ "id": 7 }) }),
            // A transition is announced once its checkpoint is durable.
            ("charge", Checkpointed { seq: 1 }),
            ("reserve", Transitioned { to: "charge" }),
            // Each attempt of a visit names the checkpoint that entered it.
            ("charge", Entered { attempt: 1, visit: 1, payload: json!({ "id": 7 }) }),
            ("charge", AttemptFailed { attempt: 1, failure: failure.clone(), retry_in: *retry_in }),
            // The run waits out its backoff in the store, then is claimed again.
            ("charge", Checkpointed { seq: 2 }),
            ("charge", Entered { attempt: 2, visit: 1, payload: json!({ "id": 7 }) }),
            ("charge", Progress { message: "charged".into(), fraction: Some(0.5) }),
            ("ship", Checkpointed { seq: 3 }),
            ("charge", Transitioned { to: "ship" }),
            ("ship", Entered { attempt: 1, visit: 3, payload: json!({ "id": 7 }) }),
            ("ship", Progress { message: "packing".into(), fraction: None }),
            ("ship", Progress { message: "labelled".into(), fraction: Some(1.0) }),
            ("ship", Checkpointed { seq: 4 }),
            ("ship", Completed { output: json!(7) }),
        ]
    );
    assert!(retry_in.is_some());
    assert_eq!(events.missed(), 0);
}

/// An event line begins with the whole run id, which a user can copy and parse back.
#[tokio::test(start_paused = true)]
async fn an_event_line_names_its_run_in_full() {
    let engine = engine(MemoryStore::new());
    let mut events = engine.events();
    let handle = engine.start::<order::Machine>(3).await.unwrap();
    let run = handle.id();
    handle.output().await.unwrap();
    let started = events.until(|event| event.kind == EventKind::Started).await.unwrap();
    let line = started.to_string();
    assert_eq!(line, format!("{run} order/reserve: started"));
    let printed = line.split(' ').next().unwrap();
    assert_eq!(printed.parse::<RunId>(), Ok(run));
}

/// As JSON, an event names its run as its text does, and its time in Unix milliseconds.
#[tokio::test(start_paused = true)]
async fn an_event_as_json_gives_its_time_in_unix_milliseconds() {
    let engine = engine(MemoryStore::new());
    let mut events = engine.events();
    let handle = engine.start::<order::Machine>(3).await.unwrap();
    let started = events.until(|event| event.kind == EventKind::Started).await.unwrap();
    let json = serde_json::to_value(&started).unwrap();
    let millis = started.at.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
    assert_eq!(json["at"].as_u64().map(u128::from), Some(millis));
    assert_eq!(json["run"], handle.id().to_string());
    assert_eq!(json["kind"], "Started");
}

#[tokio::test(start_paused = true)]
async fn a_run_handle_streams_only_its_own_run() {
    let engine = engine(MemoryStore::new());
    let first = engine.start::<order::Machine>(1).await.unwrap();
    let mut mine = first.events();
    let second = engine.start::<order::Machine>(2).await.unwrap();
    let run = first.id();
    let (one, two) = tokio::join!(first.output(), second.output());
    assert_eq!((one.unwrap(), two.unwrap()), (1, 2));
    let mut progress = Vec::new();
    while let Some(event) = mine.next().await {
        assert_eq!(event.run, run, "an event of another run: {event}");
        if let EventKind::Progress { message, .. } = &event.kind {
            progress.push(message.clone());
        }
        if matches!(event.kind, EventKind::Completed { .. }) {
            break;
        }
    }
    assert_eq!(progress, ["charged", "packing", "labelled"]);
}

#[tokio::test(start_paused = true)]
async fn cancel_during_a_backoff_stops_the_run_at_once() {
    let engine = engine(MemoryStore::new());
    let mut events = engine.events();
    let started = tokio::time::Instant::now();
    let handle = engine.start::<order::Machine>(0).await.unwrap();
    let run = handle.id();
    while engine.status(run).await.unwrap().wake_at.is_none() {
        tokio::task::yield_now().await;
    }
    engine.cancel(run).await.unwrap();

    let error = handle.output().await.unwrap_err();
    assert!(matches!(error, EngineError::Cancelled { run: r } if r == run), "{error}");
    assert_eq!(error.to_string(), format!("run {run} was cancelled"));
    assert!(started.elapsed() < Duration::from_secs(1), "waited out the 10-minute backoff");

    let status = engine.status(run).await.unwrap();
    assert_eq!(status.status, Status::Cancelled);
    assert_eq!(status.state, "charge");
    assert_eq!(status.history.len(), 2, "reserve, and charge's failed attempt: no other");
    let seen = collect(&mut events, run).await;
    assert_eq!(seen.last(), Some(&("charge", EventKind::Cancelled)));

    assert!(matches!(
        engine.cancel(run).await,
        Err(EngineError::Finished { status: Status::Cancelled, .. })
    ));
    assert!(engine.resume_pending().await.unwrap().resumed.is_empty());
}

#[test]
fn a_run_left_by_a_stopped_process_is_cancelled_in_the_store() {
    let store = MemoryStore::new();
    let run = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .start_paused(true)
        .build()
        .unwrap()
        .block_on(async {
            let engine = engine(store.clone());
            let run = engine.start::<order::Machine>(0).await.unwrap().id();
            while engine.status(run).await.unwrap().wake_at.is_none() {
                tokio::task::yield_now().await;
            }
            run
        }); // the process stops while the run backs off

    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
        let engine = engine(store.clone());
        engine.cancel(run).await.unwrap();
        let status = engine.status(run).await.unwrap();
        assert_eq!((status.status, status.seq), (Status::Cancelled, 3));
        assert!(engine.resume_pending().await.unwrap().resumed.is_empty());
        let error = engine.handle::<order::Machine>(run).await.unwrap().output().await;
        assert!(matches!(error, Err(EngineError::Cancelled { .. })));
    });
}

#[test]
fn a_paused_run_holds_across_a_restart_until_resumed() {
    let store = MemoryStore::new();
    let run = paused_runtime().block_on(async {
        let engine = engine(store.clone());
        let handle = engine.start::<order::Machine>(5).await.unwrap();
        let run = handle.id();
        while engine.status(run).await.unwrap().wake_at.is_none() {
            tokio::task::yield_now().await;
        }
        engine.pause(run).await.unwrap();
        let error = handle.output().await.unwrap_err();
        assert!(matches!(error, EngineError::Paused { run: r } if r == run), "{error}");
        let status = engine.status(run).await.unwrap();
        assert_eq!((status.status, status.state.as_str()), (Status::Paused, "charge"));
        let error = engine.cancel(run).await.map(|()| "cancelled");
        assert!(error.is_ok(), "a paused run can still be cancelled in the store");
        run
    });
    // Cancelled while paused: resuming it is refused.
    let resumed = paused_runtime().block_on(engine(store.clone()).resume(run));
    assert!(matches!(resumed, Err(EngineError::NotPaused { status: Status::Cancelled, .. })));

    let store = MemoryStore::new();
    let run = paused_runtime().block_on(async {
        let engine = engine(store.clone());
        let run = engine.start::<order::Machine>(6).await.unwrap().id();
        while engine.status(run).await.unwrap().wake_at.is_none() {
            tokio::task::yield_now().await;
        }
        engine.pause(run).await.unwrap();
        while engine.status(run).await.unwrap().status != Status::Paused {
            tokio::task::yield_now().await;
        }
        run
    }); // the process stops while the run is paused

    paused_runtime().block_on(async {
        let engine = engine(store.clone());
        assert!(engine.resume_pending().await.unwrap().resumed.is_empty(), "it stays paused");
        let started = tokio::time::Instant::now();
        let wake_at = engine.status(run).await.unwrap().wake_at.expect("the backoff's deadline");
        let rest = wake_at.duration_since(TestClock::new().now()).unwrap();
        engine.resume(run).await.unwrap();
        let handle = engine.handle::<order::Machine>(run).await.unwrap();
        assert_eq!(handle.output().await.unwrap(), 6);
        // The pause kept the backoff's deadline: the retry ran when it was due, not before.
        assert!(started.elapsed() >= rest, "{:?} < {rest:?}", started.elapsed());
        let status = engine.status(run).await.unwrap();
        assert_eq!(status.status, Status::Completed);
        let attempts: Vec<_> = status.history.iter().map(|e| (e.state, e.attempt)).collect();
        assert_eq!(attempts, [("reserve", 1), ("charge", 1), ("charge", 2), ("ship", 1)]);
        let again = engine.resume(run).await;
        assert!(matches!(again, Err(EngineError::NotPaused { status: Status::Completed, .. })));
    });
}

fn paused_runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_run_stream_ends_with_its_run() {
    let engine = engine(MemoryStore::new());
    let handle = engine.start::<order::Machine>(0).await.unwrap();
    let mut events = handle.events();
    // Order 0 fails every attempt: nothing it emits is the signal this waits for, and the
    // wait ends when the run does, instead of hanging.
    let never = events.until(|e| matches!(e.kind, EventKind::WaitingForSignal { .. })).await;
    assert_eq!(never, None);
    assert!(matches!(handle.output().await, Err(EngineError::Failed { .. })));
    assert_eq!(events.next().await, None, "the stream stays ended");

    let second = engine.start::<order::Machine>(8).await.unwrap();
    let mut last = None;
    let mut seen = 0;
    let mut theirs = second.events();
    while let Some(event) = theirs.next().await {
        seen += 1;
        last = Some(event.kind);
    }
    // The output of order 8, as the store keeps it.
    let completed = EventKind::Completed { output: serde_json::json!(8) };
    assert_eq!(last, Some(completed), "the stream ended after the run's last event");
    assert!(seen > 3);
}

/// Reports `times` lines of progress at once.
#[flow::machine]
pub mod chatty {
    use super::*;

    #[state(start, end)]
    async fn talk(_cx: &mut (), times: u32) -> Result<u32> {
        for i in 0..times {
            flow::progress(format!("line {i}"), None);
        }
        Ok(times)
    }
}

#[tokio::test(start_paused = true)]
async fn a_run_followed_on_its_own_misses_nothing_however_busy_the_others() {
    // Room for 16 events: another run's 200 would push this one's out of a shared channel.
    let engine = Engine::builder()
        .store(MemoryStore::new())
        .machine::<chatty::Machine>()
        .event_capacity(16)
        .build()
        .unwrap();
    let quiet = RunId::for_key("chatty", "quiet");
    let mut followed = engine.events_of(quiet);
    let mut everything = engine.events();
    engine.start_keyed::<chatty::Machine>("quiet", 2, ()).await.unwrap().output().await.unwrap();
    engine.start::<chatty::Machine>(200).await.unwrap().output().await.unwrap();

    let kinds: Vec<EventKind> = std::iter::from_fn(|| followed.next().now_or_never().flatten())
        .map(|event| event.kind)
        .collect();
    assert_eq!(followed.missed(), 0);
    let progress = |i: u32| EventKind::Progress { message: format!("line {i}"), fraction: None };
    let entered =
        EventKind::Entered { attempt: 1, visit: 0, payload: serde_json::json!({ "times": 2 }) };
    assert_eq!(kinds[2..5], [entered, progress(0), progress(1)]);
    assert_eq!(kinds.last(), Some(&EventKind::Completed { output: serde_json::json!(2) }));
    // The follower of every run could not keep up with both, and was told so.
    while everything.next().now_or_never().flatten().is_some() {}
    assert!(everything.missed() > 0);
}

#[tokio::test(start_paused = true)]
async fn a_subscriber_of_some_kinds_gets_those_only() {
    let engine = engine(MemoryStore::new());
    let mut ends = engine.events_of_kinds(&["Started", "Completed"]).unwrap();
    let mut every = engine.events();
    engine.start::<order::Machine>(5).await.unwrap().output().await.unwrap();
    let kinds: Vec<&str> = std::iter::from_fn(|| ends.next().now_or_never().flatten())
        .map(|event| event.kind.name())
        .collect();
    assert_eq!(kinds, ["Started", "Completed"]);
    let all = std::iter::from_fn(|| every.next().now_or_never().flatten()).count();
    assert!(all > 5, "{all}");

    let wrong = engine.events_of_kinds(&["Started", "Finished"]).unwrap_err();
    assert!(matches!(&wrong, EngineError::UnknownEventKind { name } if name == "Finished"));
    assert!(wrong.to_string().contains("Completed"), "{wrong}");
}
