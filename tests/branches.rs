//! A fork's branches under an engine: each branch is a run of its own in the store, and the
//! run that forked waits there (`Wait::Join`) until they have finished.

mod common;

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use flow::prelude::*;
use flow::store::{SqliteStore, Status, Wait};
use flow::{Engine, EngineError, RunId};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approve {
    pub by: String,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Desk {
    pub log: Vec<String>,
}

/// The branches' ends, in the order they came, per order (by its number).
static ENDED: Mutex<Vec<(u32, &'static str)>> = Mutex::new(Vec::new());

fn ended(order: u32) -> Vec<&'static str> {
    let all = ENDED.lock().unwrap();
    all.iter().filter(|(of, _)| *of == order).map(|(_, branch)| *branch).collect()
}

/// An order: its number, and how each branch behaves. `slow` takes 300 ms, `quick` none;
/// `hold` makes `pay` wait for an approval; `fail` makes `reserve` fail for good.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Order {
    pub number: u32,
    pub hold: bool,
    pub fail: bool,
}

#[flow::machine]
pub mod order {
    use super::*;

    #[state(start, fork(pay, reserve), join = ship)]
    async fn split(cx: &mut Desk, order: Order) -> Result<Split> {
        cx.log.push("split".into());
        fork!(pay(order.clone()), reserve(order))
    }

    /// The first branch ends last.
    #[state(to(approval, capture))]
    async fn pay(cx: &mut Desk, order: Order) -> Result<Pay> {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cx.log.push("pay".into());
        if order.hold { goto!(approval(order.number)) } else { goto!(capture(order.number, None)) }
    }

    #[state(to(capture))]
    async fn approval(_cx: &mut Desk, number: u32, #[signal] approve: Approve) -> Result<Approval> {
        goto!(capture(number, Some(approve.by)))
    }

    #[state(branch_end)]
    async fn capture(_cx: &mut Desk, number: u32, by: Option<String>) -> Result<String> {
        ENDED.lock().unwrap().push((number, "pay"));
        Ok(format!("paid{}", by.map(|by| format!(" ({by})")).unwrap_or_default()))
    }

    #[state(branch_end)]
    async fn reserve(cx: &mut Desk, order: Order) -> Result<usize> {
        cx.log.push("reserve".into());
        if order.fail {
            return Err(Error::permanent("out of stock"));
        }
        ENDED.lock().unwrap().push((order.number, "reserve"));
        Ok(3)
    }

    #[state(end)]
    async fn ship(cx: &mut Desk, paid: String, items: usize) -> Result<String> {
        Ok(format!("{paid}, {items} items, log {}", cx.log.join(" ")))
    }
}

fn engine(name: &str, slots: usize) -> Engine {
    let store = SqliteStore::open(common::db(name)).unwrap();
    Engine::builder()
        .store(store)
        .machine::<order::Machine>()
        .max_concurrent_runs(slots)
        .poll_interval(Duration::from_millis(50))
        .build()
        .unwrap()
}

fn an_order(number: u32, hold: bool, fail: bool) -> Order {
    Order { number, hold, fail }
}

async fn until_status(engine: &Engine, run: RunId, wanted: impl Fn(&flow::RunStatus) -> bool) {
    for _ in 0..400 {
        if wanted(&engine.status(run).await.unwrap()) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run} never got there: {:?}", engine.status(run).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_join_gets_outputs_in_fork_order_though_branches_end_in_reverse() {
    let engine = engine("branches_order", 8);
    let started = std::time::Instant::now();
    let handle = engine
        .start_with::<order::Machine>(an_order(1, false, false), Desk::default())
        .await
        .unwrap();
    let run = handle.id();
    // The run waits in the store for its branches, which are runs of their own.
    until_status(&engine, run, |status| status.wait == Some(Wait::Join)).await;
    let branches = engine.branches(run).await.unwrap();
    assert_eq!(branches.len(), 2);
    assert_eq!(branches, [RunId::branch(run, 0, 0), RunId::branch(run, 0, 1)]);

    let output = handle.output().await.unwrap();
    // Each branch had its own copy of the context: the join sees the run's.
    assert_eq!(output, "paid, 3 items, log split");
    // Woken by its last branch's end, not by its recheck five seconds on.
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert_eq!(ended(1), ["reserve", "pay"]);
    for branch in branches {
        let status = engine.status(branch).await.unwrap();
        assert_eq!(status.status, Status::Completed, "{status:?}");
        assert_eq!(status.parent, Some(run));
    }
    // What the run's status shows of its last checkpoint: the end state and the context.
    let status = engine.status(run).await.unwrap();
    assert_eq!(status.parent, None);
    assert_eq!(status.context, Some(serde_json::json!({ "log": ["split"] })));
    let payload = status.payload.unwrap();
    assert_eq!(payload, serde_json::json!({ "Ship": { "paid": "paid", "items": 3 } }));
    // The run's history: the fork goes to its join, which ends the run.
    let status = engine.status(run).await.unwrap();
    let states: Vec<_> = status.history.iter().map(|entry| entry.state).collect();
    assert_eq!(states, ["split", "ship"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_waiting_for_a_signal_holds_no_slot_and_is_signalled_by_its_own_id() {
    // One slot: the run, its branch that waits and its other branch take it in turn.
    let engine = engine("branches_signal", 1);
    let handle = engine
        .start_with::<order::Machine>(an_order(2, true, false), Desk::default())
        .await
        .unwrap();
    let run = handle.id();
    until_status(&engine, run, |status| status.wait == Some(Wait::Join)).await;
    let pay = engine.branches(run).await.unwrap()[0];
    until_status(&engine, pay, |status| status.wait == Some(Wait::Signal)).await;
    // The other branch ran to its end in the one slot meanwhile.
    let reserve = engine.branches(run).await.unwrap()[1];
    until_status(&engine, reserve, |status| status.status == Status::Completed).await;
    // Woken by it, the run looked, and waits again for the branch still open.
    until_status(&engine, run, |status| status.wait == Some(Wait::Join)).await;

    // The run itself waits for no signal: it says so.
    let approve = Approve { by: "ada".into() };
    let refused = engine.signal::<order::Machine, _>(run, approve.clone()).await.unwrap_err();
    assert!(matches!(refused, EngineError::NotWaiting { .. }), "{refused}");
    engine.signal::<order::Machine, _>(pay, approve).await.unwrap();
    assert_eq!(handle.output().await.unwrap(), "paid (ada), 3 items, log split");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_branch_cancels_its_siblings_and_fails_the_run() {
    let engine = engine("branches_fail", 8);
    let handle = engine
        .start_with::<order::Machine>(an_order(3, true, true), Desk::default())
        .await
        .unwrap();
    let run = handle.id();
    let error = handle.output().await.unwrap_err();
    let text = error.to_string();
    assert!(text.contains("branch 1 of the fork"), "{text}");
    assert!(text.contains("out of stock"), "{text}");
    let (pay, reserve) = (RunId::branch(run, 0, 0), RunId::branch(run, 0, 1));
    assert_eq!(engine.status(reserve).await.unwrap().status, Status::Failed);
    // `pay` was cut off, before or while it waited for its approval.
    until_status(&engine, pay, |status| status.status == Status::Cancelled).await;
    assert_eq!(ended(3), Vec::<&str>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_fork_cancels_its_branches() {
    let engine = engine("branches_cancel", 8);
    let handle = engine
        .start_with::<order::Machine>(an_order(4, true, false), Desk::default())
        .await
        .unwrap();
    let run = handle.id();
    let (pay, reserve) = (RunId::branch(run, 0, 0), RunId::branch(run, 0, 1));
    until_status(&engine, run, |status| status.wait == Some(Wait::Join)).await;
    until_status(&engine, pay, |status| status.wait == Some(Wait::Signal)).await;
    until_status(&engine, reserve, |status| status.status == Status::Completed).await;
    engine.cancel(run).await.unwrap();
    assert_eq!(engine.status(run).await.unwrap().status, Status::Cancelled);
    // The branch waiting for its approval is cancelled with the run; the ended one stays.
    assert_eq!(engine.status(pay).await.unwrap().status, Status::Cancelled);
    assert_eq!(engine.status(reserve).await.unwrap().status, Status::Completed);
}

/// How many `summarise` branches run now, and the most at once.
static SUMMARISING: AtomicUsize = AtomicUsize::new(0);
static MOST_SUMMARISING: AtomicUsize = AtomicUsize::new(0);

#[flow::machine]
pub mod digest {
    use super::*;

    #[state(start, fan_out(summarise, limit = 2), join = merge)]
    async fn split(_cx: &mut Desk, text: String) -> Result<Split> {
        fan_out!(summarise, text.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    }

    #[state(branch_end)]
    async fn summarise(_cx: &mut Desk, word: String) -> Result<usize> {
        let now = SUMMARISING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST_SUMMARISING.fetch_max(now, Ordering::SeqCst);
        // Longer words take less time: the branches end out of order.
        tokio::time::sleep(Duration::from_millis(20 * (8 - word.len() as u64))).await;
        SUMMARISING.fetch_sub(1, Ordering::SeqCst);
        Ok(word.len())
    }

    #[state(end)]
    async fn merge(_cx: &mut Desk, lengths: Vec<usize>) -> Result<Vec<usize>> {
        Ok(lengths)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_in_the_store_keeps_item_order_and_its_limit() {
    let store = SqliteStore::open(common::db("branches_fan_out")).unwrap();
    let engine = Engine::builder().store(store).machine::<digest::Machine>().build().unwrap();
    let text = "a bb ccc dddd eeeee ffffff g";
    let handle = engine.start_with::<digest::Machine>(text.into(), Desk::default()).await.unwrap();
    let run = handle.id();
    assert_eq!(handle.output().await.unwrap(), [1, 2, 3, 4, 5, 6, 1]);
    // The engine had slots for many more: the fan-out's limit kept it to 2.
    assert_eq!(MOST_SUMMARISING.load(Ordering::SeqCst), 2);
    assert_eq!(engine.branches(run).await.unwrap(), Vec::<RunId>::new());

    // No items: the join gets an empty list at once.
    let handle =
        engine.start_with::<digest::Machine>(String::new(), Desk::default()).await.unwrap();
    assert_eq!(handle.output().await.unwrap(), Vec::<usize>::new());
}

/// How often `fastest` ran: the join of a `first = k` fan-out fires once.
static JOINS: AtomicUsize = AtomicUsize::new(0);

#[flow::machine]
pub mod race {
    use super::*;

    /// Asks five mirrors; the two that answer first win.
    #[state(start, fan_out(ask, first = 2), join = fastest)]
    async fn split(_cx: &mut Desk, mirrors: u64) -> Result<Split> {
        fan_out!(ask, 0..mirrors)
    }

    /// Mirror `n` answers after `(5 - n) × 150 ms`: the last ones first. It gives up when
    /// its branch is cancelled.
    #[state(branch_end)]
    async fn ask(_cx: &mut Desk, n: u64) -> Result<u64> {
        let answer = tokio::time::Instant::now() + Duration::from_millis(150 * (5 - n));
        while tokio::time::Instant::now() < answer {
            if flow::cancelled() {
                return Err(Error::permanent("no longer needed"));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(n)
    }

    #[state(end)]
    async fn fastest(_cx: &mut Desk, answers: Vec<u64>) -> Result<Vec<u64>> {
        JOINS.fetch_add(1, Ordering::SeqCst);
        Ok(answers)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_k_fan_out_joins_once_with_the_first_k_and_cancels_the_rest() {
    let store = SqliteStore::open(common::db("branches_first_k")).unwrap();
    let engine = Engine::builder().store(store).machine::<race::Machine>().build().unwrap();
    let handle = engine.start_with::<race::Machine>(5, Desk::default()).await.unwrap();
    let run = handle.id();
    // Mirrors 4 and 3 answered first; the join has them in the items' order.
    assert_eq!(handle.output().await.unwrap(), [3, 4]);
    for n in 0..3 {
        let branch = RunId::branch(run, 0, n);
        until_status(&engine, branch, |status| status.status == Status::Cancelled).await;
    }
    // The cancelled branches' ends woke a run that had moved on: the join fired once.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(JOINS.load(Ordering::SeqCst), 1);
    assert_eq!(engine.status(run).await.unwrap().status, Status::Completed);
}
