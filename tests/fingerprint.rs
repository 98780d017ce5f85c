//! The shape fingerprint stored with every durable run changes when the shape does (a state,
//! a payload field, an edge, a signal, an output, the context, a compensation), and only
//! then: not when states, fields or targets are declared in another order or formatted
//! differently. A run stored with the fingerprint earlier flow versions computed for the same
//! shape still resumes.

mod common;

use std::borrow::Cow;
use std::time::Duration;

use flow::prelude::*;
use flow::store::{Checkpoint, CheckpointStore, SqliteStore, Status};
use flow::{Engine, EventKind, RunId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desk {
    pub seen: u32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OtherDesk {
    pub seen: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Verdict {
    pub approve: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Note {
    pub text: String,
}

#[flow::machine(name = "shape")]
pub mod base {
    use super::*;

    #[state(start, to(review, done))]
    async fn draft(_cx: &mut Desk, id: u32, title: String) -> Result<Draft> {
        let _ = title;
        goto!(review(id))
    }

    #[state(to(done, draft))]
    async fn review(_cx: &mut Desk, id: u32, #[signal] verdict: Verdict) -> Result<Review> {
        if verdict.approve { goto!(done(id)) } else { goto!(draft(id, "again".into())) }
    }

    #[state(end)]
    async fn done(cx: &mut Desk, id: u32) -> Result<String> {
        cx.seen += 1;
        Ok(format!("{id} done"))
    }
}

/// `base`, its states, payload fields and targets declared in another order and formatted
/// differently.
#[rustfmt::skip]
#[flow::machine(name = "shape")]
pub mod reordered {
    use super::*;

    #[state(end)]
    async fn done(cx: &mut Desk, id: u32) -> Result<String> {
        cx.seen += 1;
        Ok(format!("{id} done"))
    }

    #[state(
        to( draft ,done )
    )]
    async fn review(
        _cx: &mut Desk,
        id : u32,
        #[signal]   verdict : Verdict,
    ) -> Result< Review > {
        if verdict.approve { goto!(done(id)) } else { goto!(draft("again".into(), id)) }
    }

    #[state(to(done, review), start)]
    async fn draft(_cx : &mut Desk, title : String, id : u32) -> Result<Draft> {
        let _ = title;
        goto!(review(id))
    }
}

#[flow::machine(name = "shape")]
pub mod state_added {
    use super::*;

    #[state(start, to(review, done))]
    async fn draft(_cx: &mut Desk, id: u32, title: String) -> Result<Draft> {
        let _ = title;
        goto!(review(id))
    }

    #[state(to(done, draft, shelve))]
    async fn review(_cx: &mut Desk, id: u32, #[signal] verdict: Verdict) -> Result<Review> {
        if verdict.approve { goto!(done(id)) } else { goto!(shelve(id)) }
    }

    #[state(end)]
    async fn shelve(_cx: &mut Desk, id: u32) -> Result<String> {
        Ok(format!("{id} shelved"))
    }

    #[state(end)]
    async fn done(cx: &mut Desk, id: u32) -> Result<String> {
        cx.seen += 1;
        Ok(format!("{id} done"))
    }
}

#[flow::machine(name = "shape")]
pub mod payload_changed {
    use super::*;

    #[state(start, to(review, done))]
    async fn draft(_cx: &mut Desk, id: u32, title: String) -> Result<Draft> {
        let _ = title;
        goto!(review(u64::from(id)))
    }

    #[state(to(done, draft))]
    async fn review(_cx: &mut Desk, id: u64, #[signal] verdict: Verdict) -> Result<Review> {
        let id = id as u32;
        if verdict.approve { goto!(done(id)) } else { goto!(draft(id, "again".into())) }
    }

    #[state(end)]
    async fn done(cx: &mut Desk, id: u32) -> Result<String> {
        cx.seen += 1;
        Ok(format!("{id} done"))
    }
}

#[flow::machine(name = "shape")]
pub mod edge_removed {
    use super::*;

    #[state(start, to(review, done))]
    async fn draft(_cx: &mut Desk, id: u32, title: String) -> Result<Draft> {
        let _ = title;
        goto!(review(id))
    }

    #[state(to(done))]
    async fn review(_cx: &mut Desk, id: u32, #[signal] verdict: Verdict) -> Result<Review> {
        let _ = verdict;
        goto!(done(id))
    }

    #[state(end)]
    async fn done(cx: &mut Desk, id: u32) -> Result<String> {
        cx.seen += 1;
        Ok(format!("{id} done"))
    }
}

#[flow::machine(name = "shape")]
pub mod signal_changed {
    use super::*;

    #[state(start, to(review, done))]
    async fn draft(_cx: &mut Desk, id: u32, title: String) -> Result<Draft> {
        let _ = title;
        goto!(review(id))
    }

    #[state(to(done, draft))]
    async fn review(_cx: &mut Desk, id: u32, #[signal] verdict: Note) -> Result<Review> {
        if verdict.text == "ok" { goto!(done(id)) } else { goto!(draft(id, "again".into())) }
    }

    #[state(end)]
    async fn done(cx: &mut Desk, id: u32) -> Result<String> {
        cx.seen += 1;
        Ok(format!("{id} done"))
    }
}

#[flow::machine(name = "shape")]
pub mod output_changed {
    use super::*;

    #[state(start, to(review, done))]
    async fn draft(_cx: &mut Desk, id: u32, title: String) -> Result<Draft> {
        let _ = title;
        goto!(review(id))
    }

    #[state(to(done, draft))]
    async fn review(_cx: &mut Desk, id: u32, #[signal] verdict: Verdict) -> Result<Review> {
        if verdict.approve { goto!(done(id)) } else { goto!(draft(id, "again".into())) }
    }

    #[state(end)]
    async fn done(cx: &mut Desk, id: u32) -> Result<u32> {
        cx.seen += 1;
        Ok(id)
    }
}

#[flow::machine(name = "shape")]
pub mod context_changed {
    use super::*;

    #[state(start, to(review, done))]
    async fn draft(_cx: &mut OtherDesk, id: u32, title: String) -> Result<Draft> {
        let _ = title;
        goto!(review(id))
    }

    #[state(to(done, draft))]
    async fn review(_cx: &mut OtherDesk, id: u32, #[signal] verdict: Verdict) -> Result<Review> {
        if verdict.approve { goto!(done(id)) } else { goto!(draft(id, "again".into())) }
    }

    #[state(end)]
    async fn done(cx: &mut OtherDesk, id: u32) -> Result<String> {
        cx.seen += 1;
        Ok(format!("{id} done"))
    }
}

#[flow::machine(name = "shape")]
pub mod compensate_added {
    use super::*;

    #[state(start, to(review, done), compensate = undraft)]
    async fn draft(_cx: &mut Desk, id: u32, title: String) -> Result<Draft> {
        let _ = title;
        goto!(review(id))
    }

    #[state(to(done, draft))]
    async fn review(_cx: &mut Desk, id: u32, #[signal] verdict: Verdict) -> Result<Review> {
        if verdict.approve { goto!(done(id)) } else { goto!(draft(id, "again".into())) }
    }

    #[state(end)]
    async fn done(cx: &mut Desk, id: u32) -> Result<String> {
        cx.seen += 1;
        Ok(format!("{id} done"))
    }

    async fn undraft(_cx: &mut Desk, id: u32, title: String) -> Result<()> {
        let _ = (id, title);
        Ok(())
    }
}

#[test]
fn declaration_order_and_formatting_leave_the_fingerprint_as_it_is() {
    assert_eq!(reordered::graph().fingerprint, base::graph().fingerprint);
    // The order is still the declared one everywhere else.
    let names: Vec<_> = reordered::graph().states.iter().map(|s| s.name).collect();
    assert_eq!(names, ["done", "review", "draft"]);
}

#[test]
fn every_change_of_shape_changes_the_fingerprint() {
    let base = base::graph().fingerprint;
    let changed = [
        ("a state added", state_added::graph().fingerprint),
        ("a payload type", payload_changed::graph().fingerprint),
        ("an edge removed", edge_removed::graph().fingerprint),
        ("the signal type", signal_changed::graph().fingerprint),
        ("the output type", output_changed::graph().fingerprint),
        ("the context type", context_changed::graph().fingerprint),
        ("a compensation added", compensate_added::graph().fingerprint),
    ];
    for (what, fingerprint) in changed {
        assert_ne!(fingerprint, base, "{what} left the fingerprint as it was");
    }
    let mut all: Vec<_> = changed.iter().map(|(_, fingerprint)| *fingerprint).collect();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), changed.len(), "two different shapes share a fingerprint");
}

#[test]
fn the_fingerprint_earlier_versions_computed_is_kept_beside_the_new_one() {
    let graph = base::graph();
    // What flow computed for this machine before fingerprints ignored declaration order (the
    // value a build of the earlier algorithm gives): runs stored then carry it.
    assert_eq!(graph.legacy_fingerprints, ["5fc33c5417e72674"]);
    assert_ne!(graph.fingerprint, graph.legacy_fingerprints[0]);
    assert!(graph.has_fingerprint(graph.legacy_fingerprints[0]));
    assert!(graph.has_fingerprint(graph.fingerprint));
    assert!(!graph.has_fingerprint(state_added::graph().fingerprint));
    // The old algorithm depended on declaration order.
    assert_ne!(reordered::graph().legacy_fingerprints, graph.legacy_fingerprints);
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn engine(path: &std::path::Path) -> Engine {
    Engine::builder()
        .store(SqliteStore::open(path).unwrap())
        .machine::<base::Machine>()
        .build()
        .unwrap()
}

/// Rewrites `run`'s latest checkpoint as an earlier flow would have written it: with the
/// legacy fingerprint, and runnable (`wait` cleared) if `runnable`.
async fn as_written_before(store: &SqliteStore, run: RunId, runnable: bool) {
    let latest = store.latest(run).await.unwrap().unwrap();
    let legacy = base::graph().legacy_fingerprints[0];
    let wait = if runnable { None } else { latest.wait };
    let old = Checkpoint {
        seq: latest.seq + 1,
        fingerprint: Cow::Borrowed(legacy),
        wait,
        lease: None,
        entries: "[]".into(),
        ..latest
    };
    store.save(old).await.unwrap();
}

#[test]
fn a_run_stored_with_the_legacy_fingerprint_resumes() {
    let path = common::db("fingerprint-legacy");
    let (signalled, claimed) = runtime().block_on(async {
        let engine = engine(&path);
        let mut events = engine.events();
        let a = engine.start::<base::Machine>((1, "one".into())).await.unwrap().id();
        let b = engine.start::<base::Machine>((2, "two".into())).await.unwrap().id();
        let mut waiting = 0;
        while let Some(event) = events.next().await {
            if matches!(event.kind, EventKind::WaitingForSignal { .. }) {
                waiting += 1;
                if waiting == 2 {
                    break;
                }
            }
        }
        (a, b)
    }); // the process exits with both runs waiting in `review`

    runtime().block_on(async {
        let store = SqliteStore::open(&path).unwrap();
        as_written_before(&store, signalled, false).await;
        as_written_before(&store, claimed, true).await;

        let engine = engine(&path);
        // Claimed: the legacy fingerprint is this shape's, so the run goes on (to wait for its
        // signal again), and is not stuck.
        let report = engine.resume_pending().await.unwrap();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        assert_eq!(report.resumed, [claimed]);
        // Signalled where it waits: delivered.
        let verdict = Verdict { approve: true };
        engine.signal::<base::Machine, _>(signalled, verdict.clone()).await.unwrap();
        let output = engine.handle::<base::Machine>(signalled).await.unwrap().output().await;
        assert_eq!(output.unwrap(), "1 done");
        for _ in 0..500 {
            if engine.signal::<base::Machine, _>(claimed, verdict.clone()).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let output = engine.handle::<base::Machine>(claimed).await.unwrap().output().await;
        assert_eq!(output.unwrap(), "2 done");

        // Their new checkpoints carry the new fingerprint.
        for run in [signalled, claimed] {
            let latest = store.latest(run).await.unwrap().unwrap();
            assert_eq!(
                (latest.status, &*latest.fingerprint),
                (Status::Completed, base::graph().fingerprint)
            );
        }
    });
}
