//! The `CheckpointStore::list` contract, one suite run against every store: each criterion
//! of a `Filter` (machine, status, key, state, wait, creation time), both orders, and paging
//! with a cursor that neither skips nor repeats a run while runs are created. `list` and
//! `Filter::matches` agree, and `delete_finished` honours the same criteria.

mod common;

use std::borrow::Cow;

use flow::RunId;
use flow::store::{
    Checkpoint, CheckpointStore, Cursor, Filter, Order, RunSummary, SqliteStore, Status, Wait,
};

fn id(n: u128) -> RunId {
    RunId::from_u128(n)
}

/// Checkpoint `seq` of run `n` of machine `job`, in state `start`, written at `at` from
/// outside any claim.
fn cp(n: u128, seq: u64, at: u64) -> Checkpoint {
    Checkpoint {
        run: id(n),
        seq,
        machine: Cow::Borrowed("job"),
        version: 1,
        fingerprint: Cow::Borrowed("f1"),
        status: Status::Running,
        state: Cow::Borrowed("start"),
        wake_at: None,
        wait: None,
        lease: None,
        snapshot: "{}".into(),
        at,
        entries: "[]".into(),
        key: None,
    }
}

fn listed(summaries: &[RunSummary]) -> Vec<RunId> {
    summaries.iter().map(|summary| summary.run).collect()
}

async fn list(store: &impl CheckpointStore, filter: Filter) -> Vec<RunId> {
    listed(&store.list(filter).await.unwrap())
}

/// Eight runs, created at 100, 200, ... 800:
///
/// | run | machine | state   | status    | wait    | key |
/// | --- | ------- | ------- | --------- | ------- | --- |
/// | 1   | job     | approve | running   | signal  | a   |
/// | 2   | job     | sleep   | running   | timer   |     |
/// | 3   | other   | charge  | running   | backoff |     |
/// | 4   | job     | charge  | running   | (held)  |     |
/// | 5   | job     | sleep   | paused    | (timer) | b   |
/// | 6   | other   | done    | completed |         |     |
/// | 7   | job     | charge  | failed    |         |     |
/// | 8   | job     | approve | stuck     |         |     |
async fn eight_runs(store: &impl CheckpointStore) {
    let waiting = |n, state: &'static str, wait, at| Checkpoint {
        state: state.into(),
        wait: Some(wait),
        wake_at: (wait != Wait::Signal).then_some(10_000),
        ..cp(n, 1, at)
    };
    let first = |n: u128, machine: &'static str, key: Option<&str>| Checkpoint {
        machine: machine.into(),
        key: key.map(str::to_owned),
        ..cp(n, 0, n as u64 * 100)
    };
    let runs = [
        (1, "job", Some("a")),
        (2, "job", None),
        (3, "other", None),
        (4, "job", None),
        (5, "job", Some("b")),
        (6, "other", None),
        (7, "job", None),
        (8, "job", None),
    ];
    for (n, machine, key) in runs {
        store.save(first(n, machine, key)).await.unwrap();
    }
    store.save(waiting(1, "approve", Wait::Signal, 150)).await.unwrap();
    store.save(waiting(2, "sleep", Wait::Timer, 250)).await.unwrap();
    let backoff = waiting(3, "charge", Wait::Backoff, 350);
    store.save(Checkpoint { machine: "other".into(), ..backoff }).await.unwrap();
    // Run 4 is claimed: it waits for nothing in the store, an engine executes it.
    let claimed = store.claim("e1", &["job"], 0, 100).await.unwrap();
    let lease = claimed.iter().find(|claim| claim.checkpoint.run == id(4)).unwrap().lease.clone();
    let held = Checkpoint { state: "charge".into(), lease: Some(lease), ..cp(4, 1, 450) };
    store.save(held).await.unwrap();
    for claim in claimed.into_iter().filter(|claim| claim.checkpoint.run != id(4)) {
        store.release(claim.checkpoint.run, claim.lease).await.unwrap();
    }
    // A paused run keeps its timer for the resume, but waits for nothing meanwhile.
    let paused = waiting(5, "sleep", Wait::Timer, 550);
    store.save(Checkpoint { status: Status::Paused, ..paused }).await.unwrap();
    let done = Checkpoint { machine: "other".into(), state: "done".into(), ..cp(6, 1, 650) };
    store.save(Checkpoint { status: Status::Completed, ..done }).await.unwrap();
    let failed = Checkpoint { state: "charge".into(), status: Status::Failed, ..cp(7, 1, 750) };
    store.save(failed).await.unwrap();
    store.save(Checkpoint { state: "approve".into(), ..cp(8, 1, 850) }).await.unwrap();
    store.mark(id(8), Status::Stuck, Some("no such version".into()), None).await.unwrap();
}

/// Every filter below, as `list` gives it, is what `Filter::matches` says of all the runs,
/// in the filter's order.
async fn assert_matches_agrees(store: &impl CheckpointStore, filters: &[Filter]) {
    for filter in filters {
        let all = store.list(Filter::new().order(filter.order)).await.unwrap();
        let expected: Vec<RunId> =
            all.iter().filter(|summary| filter.matches(summary)).map(|s| s.run).collect();
        assert_eq!(list(store, filter.clone()).await, expected, "{filter:?}");
    }
}

async fn each_criterion_selects_its_runs(store: impl CheckpointStore) {
    eight_runs(&store).await;
    let ids = |ns: &[u128]| ns.iter().map(|n| id(*n)).collect::<Vec<_>>();
    let all = store.list(Filter::new()).await.unwrap();
    assert_eq!(listed(&all), ids(&[1, 2, 3, 4, 5, 6, 7, 8]));
    let states: Vec<&str> = all.iter().map(|summary| summary.state.as_str()).collect();
    assert_eq!(
        states,
        ["approve", "sleep", "charge", "charge", "sleep", "done", "charge", "approve"]
    );

    assert_eq!(list(&store, Filter::new().state("charge")).await, ids(&[3, 4, 7]));
    assert_eq!(list(&store, Filter::new().state("approve")).await, ids(&[1, 8]));
    assert!(list(&store, Filter::new().state("char")).await.is_empty());
    assert_eq!(list(&store, Filter::new().wait(Wait::Signal)).await, ids(&[1]));
    assert_eq!(list(&store, Filter::new().wait(Wait::Timer)).await, ids(&[2]));
    assert_eq!(list(&store, Filter::new().wait(Wait::Backoff)).await, ids(&[3]));
    assert_eq!(list(&store, Filter::new().status(Status::Paused)).await, ids(&[5]));
    // Strictly after and strictly before.
    assert_eq!(list(&store, Filter::new().created_after(300)).await, ids(&[4, 5, 6, 7, 8]));
    assert_eq!(list(&store, Filter::new().created_before(300)).await, ids(&[1, 2]));
    let window = Filter::new().created_after(199).created_before(501);
    assert_eq!(list(&store, window.clone()).await, ids(&[2, 3, 4, 5]));
    assert!(list(&store, Filter::new().created_after(500).created_before(500)).await.is_empty());
    let combined = window.clone().machine("job").state("charge");
    assert_eq!(list(&store, combined).await, ids(&[4]));
    let keyed = Filter::new().key("b").status(Status::Paused).state("sleep");
    assert_eq!(list(&store, keyed).await, ids(&[5]));

    assert_matches_agrees(
        &store,
        &[
            Filter::new().state("sleep"),
            Filter::new().wait(Wait::Timer).machine("job"),
            Filter::new().wait(Wait::Backoff).machine("job"),
            Filter::new().status(Status::Running).created_before(400),
            window.clone().newest_first(),
            Filter::new().machine("other").newest_first(),
            Filter::new().cursor(Cursor { created: 400, run: id(4) }),
            Filter::new().newest_first().cursor(Cursor { created: 400, run: id(4) }),
        ],
    )
    .await;
}

async fn newest_first_reverses_the_order_and_limit_cuts_it(store: impl CheckpointStore) {
    eight_runs(&store).await;
    let ids = |ns: &[u128]| ns.iter().map(|n| id(*n)).collect::<Vec<_>>();
    let newest = Filter::new().newest_first();
    assert_eq!(list(&store, newest.clone()).await, ids(&[8, 7, 6, 5, 4, 3, 2, 1]));
    assert_eq!(list(&store, newest.clone().limit(3)).await, ids(&[8, 7, 6]));
    assert_eq!(list(&store, Filter::new().limit(2)).await, ids(&[1, 2]));
    assert!(list(&store, Filter::new().limit(0)).await.is_empty());
    let job = newest.clone().machine("job").limit(4);
    assert_eq!(list(&store, job).await, ids(&[8, 7, 5, 4]));
    let running = Filter::new().order(Order::NewestFirst).status(Status::Running).limit(2);
    assert_eq!(list(&store, running).await, ids(&[4, 3]));
}

/// Reads every page of `filter` with pages of `size`, creating run `insert` (at `at`) after
/// the first page: it shows only where the order puts new runs.
async fn pages(
    store: &impl CheckpointStore,
    filter: Filter,
    size: usize,
    insert: Option<(u128, u64)>,
) -> Vec<Vec<RunId>> {
    let mut filter = filter.limit(size);
    let mut pages = Vec::new();
    loop {
        let page = store.list(filter.clone()).await.unwrap();
        assert!(page.len() <= size);
        if page.is_empty() {
            return pages;
        }
        filter = filter.cursor(page.last().unwrap().cursor());
        pages.push(listed(&page));
        if let (1, Some((n, at))) = (pages.len(), insert) {
            store.save(cp(n, 0, at)).await.unwrap();
        }
    }
}

async fn pages_follow_a_cursor_without_gaps_or_repeats(store: impl CheckpointStore) {
    // Runs 1..=7, created two by two in the same millisecond (run 7 alone): the id orders
    // runs created together.
    for n in 1..=7u128 {
        store.save(cp(n, 0, 1_000 + (n as u64 - 1) / 2)).await.unwrap();
    }
    let ids = |ns: &[u128]| ns.iter().map(|n| id(*n)).collect::<Vec<_>>();
    let newest = pages(&store, Filter::new().newest_first(), 3, Some((8, 2_000))).await;
    // Run 8, newer than every page, shows only in the next listing from the top.
    assert_eq!(newest, [ids(&[7, 6, 5]), ids(&[4, 3, 2]), ids(&[1])]);
    let oldest = pages(&store, Filter::new(), 3, Some((9, 3_000))).await;
    // Oldest first, a new run comes at the end: the last page has it.
    assert_eq!(oldest, [ids(&[1, 2, 3]), ids(&[4, 5, 6]), ids(&[7, 8, 9])]);
    let newest = pages(&store, Filter::new().newest_first(), 2, None).await;
    assert_eq!(newest.concat(), ids(&[9, 8, 7, 6, 5, 4, 3, 2, 1]));
    assert_eq!(newest.len(), 5);
    // Paging goes with the other criteria, and a cursor from a run that is gone still works.
    let bounded = Filter::new().newest_first().created_after(1_000).created_before(2_000);
    assert_eq!(pages(&store, bounded, 2, None).await, [ids(&[7, 6]), ids(&[5, 4]), ids(&[3])]);
    let gone = Cursor { created: 1_001, run: id(99) };
    let after_gone = Filter::new().newest_first().cursor(gone);
    assert_eq!(list(&store, after_gone).await, ids(&[4, 3, 2, 1]));
    let before_gone = Filter::new().cursor(gone).limit(3);
    assert_eq!(list(&store, before_gone).await, ids(&[5, 6, 7]));
}

async fn delete_finished_honours_every_criterion(store: impl CheckpointStore) {
    eight_runs(&store).await;
    let finished =
        |n| Checkpoint { status: Status::Completed, state: "done".into(), ..cp(n, 1, 0) };
    for n in 10..14u128 {
        store.save(cp(n, 0, n as u64 * 100)).await.unwrap();
        store.save(finished(n)).await.unwrap();
    }
    // Only runs 6 and 10..=13 are finished and in state `done`; 7 failed in `charge`.
    let in_charge = Filter::new().state("charge");
    assert_eq!(store.delete_finished(in_charge, u64::MAX).await.unwrap(), 1);
    let window = Filter::new().state("done").created_after(1_000).created_before(1_300);
    assert_eq!(store.delete_finished(window, u64::MAX).await.unwrap(), 2);
    let ids = |ns: &[u128]| ns.iter().map(|n| id(*n)).collect::<Vec<_>>();
    assert_eq!(list(&store, Filter::new()).await, ids(&[1, 2, 3, 4, 5, 6, 8, 10, 13]));
    // Order and limit do not apply to a deletion; a cursor does.
    let older = Filter::new().newest_first().limit(1).cursor(Cursor { created: 1_300, run: id(0) });
    assert_eq!(store.delete_finished(older, u64::MAX).await.unwrap(), 2);
    assert_eq!(list(&store, Filter::new()).await, ids(&[1, 2, 3, 4, 5, 8, 13]));
}

/// Each contract test, once per store: `memory::name`, `sqlite::name` and (with the `postgres`
/// feature) `postgres::name`.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test]
            async fn $test() {
                super::$test(flow::store::MemoryStore::new()).await;
            })*
        }
        mod sqlite {
            $(#[tokio::test]
            async fn $test() {
                super::$test(super::sqlite(stringify!($test))).await;
            })*
        }
        #[cfg(feature = "postgres")]
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                let name = concat!("listing-", stringify!($test));
                super::$test(super::common::postgres(name).await).await;
            })*
        }
        /// Said in every run without PostgreSQL, so that leaving it out is never silent.
        #[cfg(not(feature = "postgres"))]
        #[test]
        #[ignore = "the PostgreSQL contract tests need `--features postgres` and DATABASE_URL"]
        fn postgres_contract() {}
    };
}

contract!(
    each_criterion_selects_its_runs,
    newest_first_reverses_the_order_and_limit_cuts_it,
    pages_follow_a_cursor_without_gaps_or_repeats,
    delete_finished_honours_every_criterion,
);

/// A store in a fresh file for test `name`.
fn sqlite(name: &str) -> SqliteStore {
    SqliteStore::open(common::db(&format!("listing-{name}"))).unwrap()
}

/// A file from before the listing index (layout 3 without it) gets the index when opened,
/// keeps its layout number, so older builds still open it, and lists newest first.
#[tokio::test]
async fn sqlite_adds_the_listing_index_to_an_older_file_without_a_new_layout() {
    let path = common::db("listing-older-file");
    let store = SqliteStore::open(&path).unwrap();
    for n in 1..=3 {
        store.save(cp(n, 0, n as u64)).await.unwrap();
    }
    drop(store);
    let sql = rusqlite::Connection::open(&path).unwrap();
    sql.execute_batch("DROP INDEX flow_runs_by_created").unwrap();
    drop(sql);

    let store = SqliteStore::open(&path).unwrap();
    let newest = store.list(Filter::new().newest_first().limit(2)).await.unwrap();
    assert_eq!(listed(&newest), [id(3), id(2)]);
    let sql = rusqlite::Connection::open(&path).unwrap();
    let layout: i64 = sql.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(layout, 3);
    let plan: String = sql
        .query_row(
            "EXPLAIN QUERY PLAN SELECT id FROM flow_runs ORDER BY created DESC, id DESC LIMIT 2",
            [],
            |row| row.get(3),
        )
        .unwrap();
    assert!(plan.contains("flow_runs_by_created"), "{plan}");
}
