//! What only the PostgreSQL store has: group commit with a statement the database fails, a
//! save retried after a lost answer, workers claiming at once, LISTEN/NOTIFY, and its layouts
//! and connection errors. Built with `--features postgres`; the tests need `DATABASE_URL`.

use std::collections::HashSet;
use std::time::Duration;

use flow::RunId;
use flow::store::{Checkpoint, CheckpointStore, Filter, StoreError};

use super::common;
use super::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_commit_fails_a_refused_or_failing_write_alone() {
    let store = common::postgres("pg-group-commit").await;
    // PostgreSQL's text holds no NUL: the database fails the statement, which both moves
    // the head and appends the history.
    let doomed = Checkpoint { entries: "[\"\u{0}\"]".into(), ..cp(3, 2) };
    super::group_commit::group_commit_fails_a_refused_or_failing_write_alone(store, doomed).await;
}

/// A save tried again after its answer was lost finds its first try committed: accepted,
/// written once. Another checkpoint with the same number is still a conflict.
#[tokio::test]
async fn a_save_retried_after_a_lost_answer_is_accepted_once() {
    let store = common::postgres("pg-retried-save").await;
    let first = Checkpoint { entries: r#"["begun"]"#.into(), ..cp(1, 0) };
    store.save(first.clone()).await.unwrap();
    store.save(first).await.unwrap();
    let next = Checkpoint { entries: r#"["next"]"#.into(), ..cp(1, 1) };
    store.save(next.clone()).await.unwrap();
    store.save(next.clone()).await.unwrap();
    assert_eq!(store.history(id(1)).await.unwrap(), [r#"["begun"]"#, r#"["next"]"#]);
    let other = Checkpoint { snapshot: "{}".into(), ..next };
    let refused = store.save(other).await;
    assert!(matches!(refused, Err(StoreError::Conflict { stored: Some(1), .. })), "{refused:?}");
}

/// Two workers (two stores, as two processes have) claiming the same runs at once: each
/// run goes to exactly one of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_claims_take_each_run_once() {
    let one = common::postgres("pg-concurrent-claims").await;
    let two = flow::store::PostgresStore::builder(common::database_url())
        .schema(common::schema_for("pg-concurrent-claims"))
        .connect()
        .await
        .unwrap();
    for n in 0..400 {
        one.save(cp(n, 0)).await.unwrap();
    }
    let worker = |store: flow::store::PostgresStore, owner: &'static str| async move {
        let mut taken = Vec::new();
        loop {
            let claimed = store.claim(owner, JOB, 0, 16).await.unwrap();
            if claimed.is_empty() {
                return taken;
            }
            taken.extend(runs(&claimed));
        }
    };
    let (a, b) =
        tokio::join!(tokio::spawn(worker(one.clone(), "e1")), tokio::spawn(worker(two, "e2")));
    let (a, b) = (a.unwrap(), b.unwrap());
    let all: HashSet<RunId> = a.iter().chain(&b).copied().collect();
    assert_eq!(a.len() + b.len(), 400, "a run was claimed twice");
    assert_eq!(all.len(), 400);
    assert!(!a.is_empty() && !b.is_empty(), "one worker took every run: {} {}", a.len(), b.len());
}

/// A run made runnable through one store wakes the engines of another (another process)
/// through LISTEN/NOTIFY, long before a poll would.
#[tokio::test]
async fn a_run_made_runnable_elsewhere_is_heard_of() {
    let here = common::postgres("pg-notify").await;
    let elsewhere = flow::store::PostgresStore::builder(common::database_url())
        .schema(common::schema_for("pg-notify"))
        .connect()
        .await
        .unwrap();
    let hint = here.runnable_hint().unwrap();
    // The listener wakes once when it (re)connects; let that pass.
    drain(&hint).await;
    let heard = hint.notified();
    elsewhere.save(cp(1, 0)).await.unwrap();
    tokio::time::timeout(Duration::from_secs(2), heard)
        .await
        .expect("no notification within 2 s of a runnable run");
    // A checkpoint that keeps its run held wakes nobody.
    let held = claim_one(&elsewhere, "e1", 0).await;
    drain(&hint).await;
    let quiet = hint.notified();
    elsewhere.save(under(1, 1, &held.lease)).await.unwrap();
    assert!(tokio::time::timeout(Duration::from_millis(500), quiet).await.is_err());
}

/// Waits until `hint` has been quiet for 300 ms.
async fn drain(hint: &tokio::sync::Notify) {
    while tokio::time::timeout(Duration::from_millis(300), hint.notified()).await.is_ok() {}
}

#[tokio::test]
async fn a_layout_from_a_newer_flow_is_refused() {
    let store = common::postgres("pg-newer-layout").await;
    drop(store);
    let url = common::database_url();
    let schema = common::schema_for("pg-newer-layout");
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client.batch_execute(&format!("UPDATE {schema}.flow_layout SET version = 99")).await.unwrap();
    let refused = flow::store::PostgresStore::builder(url).schema(schema).connect().await;
    let error = refused.unwrap_err();
    assert!(matches!(error, StoreError::Layout { found: 99, supported: 2, .. }), "{error:?}");
    assert!(error.to_string().contains("upgrade flow"), "{error}");
}

/// Tables of layout 1, the last before business keys: their runs list without a key, and
/// keyed runs are written beside them.
#[tokio::test]
async fn a_layout_1_schema_is_upgraded() {
    let store = common::postgres("pg-layout-1").await;
    store.save(Checkpoint { entries: r#"["a"]"#.into(), ..cp(1, 0) }).await.unwrap();
    store.save(cp(2, 0)).await.unwrap();
    drop(store);
    // Layout 2 only added the key column and its index: without them, the tables are
    // layout 1.
    let (url, schema) = (common::database_url(), common::schema_for("pg-layout-1"));
    let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .batch_execute(&format!(
            "DROP INDEX {schema}.flow_runs_by_key;
             ALTER TABLE {schema}.flow_runs DROP COLUMN key;
             UPDATE {schema}.flow_layout SET version = 1;"
        ))
        .await
        .unwrap();

    let store = flow::store::PostgresStore::builder(url).schema(&schema).connect().await;
    let store = store.unwrap();
    let summaries = store.list(Filter::new()).await.unwrap();
    let keys: Vec<_> = summaries.into_iter().map(|s| (s.run, s.key)).collect();
    assert_eq!(keys, [(id(1), None), (id(2), None)]);
    assert_eq!(store.latest(id(2)).await.unwrap(), Some(cp(2, 0)));
    let keyed = Checkpoint { key: Some("order-3".into()), ..cp(3, 0) };
    store.save(keyed.clone()).await.unwrap();
    assert_eq!(store.latest(id(3)).await.unwrap(), Some(keyed));
    assert_eq!(listed(store.list(Filter::new().key("order-3")).await.unwrap()), [id(3)]);
    let layout = format!("SELECT max(version) FROM {schema}.flow_layout");
    let layout: i32 = client.query_one(&layout, &[]).await.unwrap().get(0);
    assert_eq!(i64::from(layout), flow::store::PostgresStore::LAYOUT);
}

#[tokio::test]
async fn a_bad_url_or_schema_says_what_to_fix() {
    let unreachable = flow::store::PostgresStore::connect("postgres://nobody@127.0.0.1:1/none")
        .await
        .unwrap_err();
    assert!(matches!(unreachable, StoreError::Connect { .. }), "{unreachable:?}");
    let message = unreachable.to_string();
    assert!(
        message.contains("nobody@127.0.0.1:1/none")
            && message.contains("check that the server runs"),
        "{message}"
    );
    let bad = flow::store::PostgresStore::builder(common::database_url())
        .schema("runs; DROP TABLE x")
        .connect()
        .await
        .unwrap_err();
    assert!(bad.to_string().contains("not a plain identifier"), "{bad}");
}
