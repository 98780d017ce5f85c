//! `Engine::recorded_after`: what a run recorded after one of its checkpoints, read from the
//! store, one entry per later checkpoint without gaps, as a follower elsewhere needs it.

use flow::prelude::*;
use flow::store::{MemoryStore, Status};
use flow::{Engine, EngineError, RunId};

#[flow::machine]
pub mod desk {
    use super::*;

    #[state(start, to(review))]
    async fn submit(_cx: &mut (), doc: String) -> Result<Submit> {
        goto!(review(doc))
    }

    #[state(to(publish))]
    async fn review(_cx: &mut (), doc: String, #[signal] by: String) -> Result<Review> {
        goto!(publish(format!("{doc}, approved by {by}")))
    }

    #[state(end)]
    async fn publish(_cx: &mut (), doc: String) -> Result<String> {
        Ok(doc)
    }
}

#[tokio::test]
async fn each_checkpoint_after_the_one_given_comes_once_with_the_entries_it_added() {
    let engine =
        Engine::builder().store(MemoryStore::new()).machine::<desk::Machine>().build().unwrap();
    let handle = engine.start::<desk::Machine>("the memo".into()).await.unwrap();
    let run = handle.id();
    let mut events = handle.events();
    events.until(|e| matches!(e.kind, flow::EventKind::WaitingForSignal { .. })).await;
    let waiting = engine.status(run).await.unwrap();
    engine.signal::<desk::Machine, _>(run, "ada".to_owned()).await.unwrap();
    assert_eq!(handle.output().await.unwrap(), "the memo, approved by ada");
    let done = engine.status(run).await.unwrap();

    let recorded = engine.recorded_after(run, waiting.seq).await.unwrap();
    assert_eq!((recorded.seq, recorded.status), (done.seq, Status::Completed));
    assert_eq!(recorded.state, "publish");
    let checkpoints = recorded.checkpoints.unwrap();
    let seqs: Vec<u64> = checkpoints.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (waiting.seq + 1..=done.seq).collect::<Vec<_>>());
    // The signal's checkpoint records no attempt; the others the attempts since.
    let entries: Vec<_> = checkpoints.into_iter().flat_map(|(_, entries)| entries).collect();
    assert_eq!(entries, done.history[waiting.history.len()..]);
    assert!(checkpoints_are_empty(&engine, run, done.seq).await);

    let unknown = engine.recorded_after(RunId::random(), 0).await.unwrap_err();
    assert!(matches!(unknown, EngineError::UnknownRun { .. }), "{unknown}");
}

/// Whether nothing is recorded after `seq`, the latest.
async fn checkpoints_are_empty(engine: &Engine, run: RunId, seq: u64) -> bool {
    let recorded = engine.recorded_after(run, seq).await.unwrap();
    recorded.seq == seq && recorded.checkpoints == Some(Vec::new())
}
