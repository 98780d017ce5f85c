//! What only the SQLite store has: group commit with a write SQLite itself fails, a file
//! deleted or replaced under the store, and upgrading the files older `flow`s wrote.

use flow::store::{Checkpoint, CheckpointStore, Filter, SqliteStore, Status, StoreError};

use super::common;
use super::group_commit::group_commit_fails_a_refused_or_failing_write_alone;
use super::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_group_commit_fails_a_refused_or_failing_write_alone() {
    let store = sqlite("group-commit");
    // A write SQLite itself fails, after the job has already appended to run 3's history.
    let sql = rusqlite::Connection::open(store.path()).unwrap();
    sql.execute_batch(
        "CREATE TRIGGER boom BEFORE UPDATE ON flow_runs WHEN NEW.state = 'boom'
         BEGIN SELECT RAISE(ABORT, 'boom'); END;",
    )
    .unwrap();
    let doomed = Checkpoint { state: "boom".into(), entries: r#"["lost"]"#.into(), ..cp(3, 2) };
    group_commit_fails_a_refused_or_failing_write_alone(store, doomed).await;
}

/// The store is the file it opened: once that file is deleted, or another is put at its path,
/// nothing more is written, to either, and the new file's data is left as it was.
#[tokio::test]
async fn sqlite_never_writes_into_a_file_deleted_or_replaced_under_it() {
    let path = common::db("file-deleted");
    let store = SqliteStore::open(&path).unwrap();
    store.save(cp(1, 0)).await.unwrap();
    std::fs::remove_file(&path).unwrap();
    for seq in [1, 1] {
        let refused = store.save(cp(1, seq)).await;
        assert!(
            matches!(&refused, Err(StoreError::FileChanged { replaced: false, path: at }) if *at == path),
            "{refused:?}"
        );
    }
    let message = store.save(cp(2, 0)).await.unwrap_err().to_string();
    assert!(message.contains("was deleted") && message.contains("restart"), "{message}");
    drop(store);

    let path = common::db("file-replaced");
    let other = common::db("file-replacement");
    let store = SqliteStore::open(&path).unwrap();
    store.save(cp(1, 0)).await.unwrap();
    let replacement = SqliteStore::open(&other).unwrap();
    replacement.save(cp(2, 0)).await.unwrap();
    drop(replacement);
    // Its two connections close on their own, and two closing at once may each leave the
    // journal to the other, so the data may stay in `-wal` beside the file. Take the journal
    // in here, once they are closed (leaving WAL mode needs the file alone), so that the file
    // moved in holds its data by itself.
    let sql = rusqlite::Connection::open(&other).unwrap();
    let closing = std::time::Instant::now();
    loop {
        let mode = sql.query_row("PRAGMA journal_mode = DELETE", [], |row| row.get::<_, String>(0));
        if matches!(&mode, Ok(mode) if mode == "delete") {
            break;
        }
        assert!(closing.elapsed() < std::time::Duration::from_secs(10), "still open: {mode:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    drop(sql);
    assert!(!std::path::Path::new(&format!("{}-wal", other.display())).exists());
    std::fs::rename(&other, &path).unwrap();
    let refused = store.save(cp(1, 1)).await;
    assert!(matches!(refused, Err(StoreError::FileChanged { replaced: true, .. })), "{refused:?}");
    assert!(matches!(store.save(cp(3, 0)).await, Err(StoreError::FileChanged { .. })));
    drop(store);
    // The file now at the path holds its own data only.
    let now = SqliteStore::open(&path).unwrap();
    assert_eq!(listed(now.list(Filter::new()).await.unwrap()), [id(2)]);
}

#[tokio::test]
async fn sqlite_delete_leaves_no_checkpoint_rows() {
    let store = sqlite("delete-rows");
    for n in 1..=2 {
        for seq in 0..4 {
            let entries = if seq % 2 == 0 { format!("[{seq}]") } else { "[]".into() };
            store.save(Checkpoint { entries, ..cp(n, seq) }).await.unwrap();
        }
        store.save(Checkpoint { status: Status::Completed, ..cp(n, 4) }).await.unwrap();
    }
    assert!(store.delete(id(1)).await.unwrap());
    assert_eq!(store.delete_finished(Filter::new(), u64::MAX).await.unwrap(), 1);
    let sql = rusqlite::Connection::open(store.path()).unwrap();
    let count = |table: &str| -> i64 {
        sql.query_row(&format!("SELECT count(*) FROM {table}"), [], |row| row.get(0)).unwrap()
    };
    assert_eq!((count("flow_runs"), count("flow_checkpoints")), (0, 0));
}

/// Layout 1's tables, as `flow` wrote them before runs lived in the store.
const LAYOUT_1: &str = "
    CREATE TABLE flow_runs (
        id TEXT PRIMARY KEY, machine TEXT NOT NULL, status TEXT NOT NULL, note TEXT,
        seq INTEGER NOT NULL, head INTEGER NOT NULL, created INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX flow_runs_by_status ON flow_runs (status, machine);
    CREATE TABLE flow_checkpoints (
        id INTEGER PRIMARY KEY, run TEXT NOT NULL, seq INTEGER NOT NULL, prev INTEGER,
        machine TEXT NOT NULL, version INTEGER NOT NULL, fingerprint TEXT NOT NULL,
        status TEXT NOT NULL, state TEXT NOT NULL, wake_at INTEGER,
        snapshot TEXT NOT NULL, entries TEXT NOT NULL
    );
    PRAGMA user_version = 1;";

#[tokio::test]
async fn sqlite_upgrades_a_layout_1_file_on_open() {
    let path = common::db("store-layout-1");
    let sql = rusqlite::Connection::open(&path).unwrap();
    sql.execute_batch(LAYOUT_1).unwrap();
    // Every checkpoint in full, each linked to the one before; `created` was the first's row.
    let run = id(1).to_string();
    for (row, entries) in [(1, r#"[{"n":0}]"#), (2, "[]"), (3, r#"[{"n":2}]"#)] {
        sql.execute(
            "INSERT INTO flow_checkpoints (id, run, seq, prev, machine, version, fingerprint,
                 status, state, wake_at, snapshot, entries)
             VALUES (?1, ?2, ?1 - 1, nullif(?1 - 1, 0), 'job', 1, 'f1', 'running',
                 's' || (?1 - 1), NULL, '{\"seq\":' || (?1 - 1) || '}', ?3)",
            rusqlite::params![row, run, entries],
        )
        .unwrap();
    }
    sql.execute("INSERT INTO flow_runs VALUES (?1, 'job', 'running', NULL, 2, 3, 1)", [&run])
        .unwrap();
    drop(sql);

    let store = SqliteStore::open(&path).unwrap();
    let latest = store.latest(id(1)).await.unwrap().unwrap();
    assert_eq!(latest, Checkpoint { at: latest.at, ..cp(1, 2) });
    let history = [r#"[{"n":0}]"#, r#"[{"n":2}]"#];
    assert_eq!(store.history(id(1)).await.unwrap(), history);
    let summary = store.summary(id(1)).await.unwrap().unwrap();
    assert_eq!((summary.status, summary.wait, summary.key), (Status::Running, None, None));

    let claimed = claim_one(&store, "e1", 0).await;
    assert_eq!(claimed.checkpoint, latest);
    let next = Checkpoint { entries: r#"[{"n":3}]"#.into(), ..under(1, 3, &claimed.lease) };
    store.save(next).await.unwrap();
    drop(store);

    // Reopened, the upgraded file is as it was left.
    let store = SqliteStore::open(&path).unwrap();
    assert_eq!(store.latest(id(1)).await.unwrap().map(|latest| latest.seq), Some(3));
    let history = [r#"[{"n":0}]"#, r#"[{"n":2}]"#, r#"[{"n":3}]"#];
    assert_eq!(store.history(id(1)).await.unwrap(), history);
}

/// A file of layout 2, the last before business keys: its runs list without a key, and
/// keyed runs are written beside them.
#[tokio::test]
async fn sqlite_upgrades_a_layout_2_file_on_open() {
    let path = common::db("store-layout-2");
    let store = SqliteStore::open(&path).unwrap();
    store.save(Checkpoint { entries: r#"["a"]"#.into(), ..cp(1, 0) }).await.unwrap();
    store.save(Checkpoint { status: Status::Completed, ..cp(1, 1) }).await.unwrap();
    store.save(cp(2, 0)).await.unwrap();
    drop(store);
    // Layout 3 only added the key column and its index: without them, the file is layout 2.
    let sql = rusqlite::Connection::open(&path).unwrap();
    sql.execute_batch(
        "DROP INDEX flow_runs_by_key;
         ALTER TABLE flow_runs DROP COLUMN key;
         PRAGMA user_version = 2;",
    )
    .unwrap();
    drop(sql);

    let store = SqliteStore::open(&path).unwrap();
    let keys: Vec<_> =
        store.list(Filter::new()).await.unwrap().into_iter().map(|s| s.key).collect();
    assert_eq!(keys, [None, None]);
    assert_eq!(store.latest(id(2)).await.unwrap(), Some(cp(2, 0)));
    assert_eq!(store.history(id(1)).await.unwrap(), [r#"["a"]"#]);
    let keyed = Checkpoint { key: Some("order-3".into()), ..cp(3, 0) };
    store.save(keyed.clone()).await.unwrap();
    assert_eq!(store.latest(id(3)).await.unwrap(), Some(keyed));
    assert_eq!(listed(store.list(Filter::new().key("order-3")).await.unwrap()), [id(3)]);
    let sql = rusqlite::Connection::open(&path).unwrap();
    let layout: i64 = sql.query_row("PRAGMA user_version", [], |row| row.get(0)).unwrap();
    assert_eq!(layout, 3);
}
