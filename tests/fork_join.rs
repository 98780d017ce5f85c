//! Parallel branches in memory (`module::run`, no engine): a fork runs its branches at once, each on its own copy of the
//! context, and its join receives their outputs in the fork's order.

use std::sync::Mutex;
use std::time::Duration;

use flow::RunError;
use flow::history::Outcome;
use flow::prelude::*;

#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Order {
    pub cents: u64,
    pub items: Vec<String>,
    /// Which branch fails, if one does.
    pub fail: Option<String>,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Receipt {
    pub cents: u64,
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Reservation {
    pub items: usize,
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Shop {
    pub log: Vec<String>,
}

/// Which branch ends first, per test (by the order's cents).
static FINISHED: Mutex<Vec<(u64, &'static str)>> = Mutex::new(Vec::new());

fn finished(cents: u64) -> Vec<&'static str> {
    let all = FINISHED.lock().unwrap();
    all.iter().filter(|(of, _)| *of == cents).map(|(_, branch)| *branch).collect()
}

#[flow::machine]
pub mod order {
    use super::*;

    #[state(start, fork(pay, reserve), join = ship)]
    async fn split(cx: &mut Shop, order: Order) -> Result<Split> {
        cx.log.push("split".into());
        let fail = order.fail.clone();
        fork!(pay(order.cents, fail.clone()), reserve(order.cents, order.items, fail))
    }

    #[state(to(capture))]
    async fn pay(cx: &mut Shop, cents: u64, fail: Option<String>) -> Result<Pay> {
        // The slower branch: it ends last.
        tokio::time::sleep(Duration::from_secs(2)).await;
        cx.log.push("pay".into());
        if fail.as_deref() == Some("pay") {
            return Err(Error::permanent("the card was declined"));
        }
        goto!(capture(cents))
    }

    #[state(branch_end)]
    async fn capture(_cx: &mut Shop, cents: u64) -> Result<Receipt> {
        FINISHED.lock().unwrap().push((cents, "pay"));
        Ok(Receipt { cents })
    }

    #[state(branch_end)]
    async fn reserve(
        cx: &mut Shop,
        cents: u64,
        items: Vec<String>,
        fail: Option<String>,
    ) -> Result<Reservation> {
        tokio::time::sleep(Duration::from_secs(1)).await;
        cx.log.push("reserve".into());
        if fail.as_deref() == Some("reserve") {
            return Err(Error::permanent("out of stock"));
        }
        FINISHED.lock().unwrap().push((cents, "reserve"));
        Ok(Reservation { items: items.len() })
    }

    #[state(end)]
    async fn ship(cx: &mut Shop, receipt: Receipt, reservation: Reservation) -> Result<String> {
        Ok(format!("{} cents, {} items; log {:?}", receipt.cents, reservation.items, cx.log))
    }
}

fn an_order(cents: u64, fail: Option<&str>) -> Order {
    let items = vec!["tea".to_owned(), "cups".to_owned()];
    Order { cents, items, fail: fail.map(str::to_owned) }
}

#[tokio::test(start_paused = true)]
async fn the_join_gets_outputs_in_fork_order_though_branches_end_in_reverse() {
    let mut shop = Shop::default();
    let started = tokio::time::Instant::now();
    let done = order::run(an_order(500, None), &mut shop).await.unwrap();
    // `reserve` ended first, yet the join took the receipt first, as the fork declares.
    assert_eq!(finished(500), ["reserve", "pay"]);
    // The branches' copies of the context went with them: the join sees the fork's.
    assert_eq!(done.output, "500 cents, 2 items; log [\"split\"]");
    // At once: the slower branch's 2 s, not 1 s + 2 s.
    assert_eq!(started.elapsed(), Duration::from_secs(2));
    let steps: Vec<(&str, &Outcome)> =
        done.history.iter().map(|entry| (entry.state, &entry.outcome)).collect();
    assert_eq!(
        steps,
        [
            ("split", &Outcome::Forked { join: "ship" }),
            ("pay", &Outcome::Transitioned { to: "capture" }),
            ("capture", &Outcome::Completed),
            ("reserve", &Outcome::Completed),
            ("ship", &Outcome::Completed),
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn a_failed_branch_fails_the_run_and_cancels_its_sibling() {
    let mut shop = Shop::default();
    let started = tokio::time::Instant::now();
    let error = order::run(an_order(700, Some("reserve")), &mut shop).await.unwrap_err();
    let RunError::StateFailed { state, attempts, .. } = &error else { panic!("{error}") };
    assert_eq!(*state, "reserve");
    assert!(attempts[0].to_string().contains("out of stock"), "{error}");
    // `pay` was cut off at the failure: it never got to its end.
    assert_eq!(finished(700), Vec::<&str>::new());
    assert_eq!(started.elapsed(), Duration::from_secs(1));
}

#[test]
fn the_graph_shows_the_fork_and_the_join() {
    let graph = order::graph();
    let split = graph.state("split").unwrap();
    let fork = split.fork.unwrap();
    assert_eq!(fork.branches, ["pay", "reserve"]);
    assert_eq!(fork.join, "ship");
    assert!(graph.state("capture").unwrap().branch_end);
    assert_eq!(
        graph.to_mermaid(),
        "stateDiagram-v2
    state split_fork <<fork>>
    state ship_join <<join>>
    [*] --> split
    pay --> capture
    capture --> ship_join
    reserve --> ship_join
    split --> split_fork
    split_fork --> pay
    split_fork --> reserve
    ship_join --> ship
    ship --> [*]
"
    );
}

#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct Desk;

/// How many `summarise` branches run now, and the most at once.
static SUMMARISING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
static MOST_SUMMARISING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

#[flow::machine]
pub mod digest {
    use super::*;
    use std::sync::atomic::Ordering;

    #[state(start, fan_out(summarise, limit = 3), join = merge)]
    async fn split(_cx: &mut Desk, text: String) -> Result<Split> {
        fan_out!(summarise, text.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
    }

    #[state(branch_end)]
    async fn summarise(_cx: &mut Desk, word: String) -> Result<usize> {
        let now = SUMMARISING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST_SUMMARISING.fetch_max(now, Ordering::SeqCst);
        // Longer words take longer: the branches end out of order.
        tokio::time::sleep(Duration::from_millis(100 * (10 - word.len() as u64))).await;
        SUMMARISING.fetch_sub(1, Ordering::SeqCst);
        Ok(word.len())
    }

    #[state(end)]
    async fn merge(_cx: &mut Desk, lengths: Vec<usize>) -> Result<Vec<usize>> {
        Ok(lengths)
    }
}

#[tokio::test(start_paused = true)]
async fn a_fan_out_joins_every_output_in_item_order_with_at_most_limit_at_once() {
    let text = "a bb ccc dddd eeeee ffffff g";
    let done = digest::run(text.to_owned(), &mut Desk).await.unwrap();
    assert_eq!(done.output, [1, 2, 3, 4, 5, 6, 1]);
    assert_eq!(MOST_SUMMARISING.load(std::sync::atomic::Ordering::SeqCst), 3);
    // One entry for the split, one per item, one for the merge.
    assert_eq!(done.history.len(), 1 + 7 + 1);

    // No items: the join gets an empty list at once.
    let done = digest::run(String::new(), &mut Desk).await.unwrap();
    assert_eq!(done.output, Vec::<usize>::new());
    let fork = digest::graph().state("split").unwrap().fork.unwrap();
    assert!(fork.fan_out);
    assert_eq!(fork.limit, Some(3));
    let mermaid = digest::graph().to_mermaid();
    assert!(mermaid.contains("split : split (3 branches at once)"), "{mermaid}");
}

#[flow::machine]
pub mod race {
    use super::*;

    #[state(start, fan_out(ask, first = 2), join = fastest)]
    async fn split(_cx: &mut Desk, mirrors: u64) -> Result<Split> {
        fan_out!(ask, 0..mirrors)
    }

    #[state(branch_end)]
    async fn ask(_cx: &mut Desk, n: u64) -> Result<u64> {
        tokio::time::sleep(Duration::from_millis(100 * (5 - n))).await;
        Ok(n)
    }

    #[state(end)]
    async fn fastest(_cx: &mut Desk, answers: Vec<u64>) -> Result<Vec<u64>> {
        Ok(answers)
    }
}

#[tokio::test(start_paused = true)]
async fn a_first_k_fan_out_joins_with_the_first_k_in_item_order() {
    let started = tokio::time::Instant::now();
    let done = race::run(5, &mut Desk).await.unwrap();
    assert_eq!(done.output, [3, 4]);
    // The join came when the second answer did, not after the slowest.
    assert_eq!(started.elapsed(), Duration::from_millis(200));
    let mermaid = race::graph().to_mermaid();
    assert!(mermaid.contains("split : split (joins on the first 2)"), "{mermaid}");
    // Fewer items than `first`: the join waits for all of them.
    assert_eq!(race::run(1, &mut Desk).await.unwrap().output, [0]);
}
