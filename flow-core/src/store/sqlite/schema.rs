//! The SQLite store's tables, their layout versions, and every query it runs.
//!
//! The layout is chosen for group commit: a batch of checkpoints of many runs should touch few
//! pages. Each table a checkpoint writes to is appended to in commit order (each batch fills a
//! few consecutive pages):
//!
//! - `flow_latest`: each run's latest checkpoint, snapshot included. A write appends the new
//!   one and deletes the one before, which an earlier batch appended nearby, so the table stays
//!   as small as the runs' latest snapshots, and its freed pages are reused.
//! - `flow_checkpoints`: the history, one small row per checkpoint that added entries, each
//!   linked to its run's previous one.
//! - `flow_runs`: a run's head (last sequence number, latest row, last history row, who holds
//!   it, when it is due): one small row, where the compare-and-set happens.
//!
//! A run's storage is its latest snapshot plus its history.

/// The layout this build writes; a newer one is refused rather than misread.
pub const LAYOUT: i64 = 2;

/// Layout 1: the runs' heads and every checkpoint in full.
const LAYOUT_1: &str = "
    CREATE TABLE IF NOT EXISTS flow_runs (
        id       TEXT    PRIMARY KEY,
        machine  TEXT    NOT NULL,
        status   TEXT    NOT NULL,
        note     TEXT,
        seq      INTEGER NOT NULL,
        head     INTEGER NOT NULL,
        created  INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX IF NOT EXISTS flow_runs_by_status ON flow_runs (status, machine);
    CREATE TABLE IF NOT EXISTS flow_checkpoints (
        id           INTEGER PRIMARY KEY,
        run          TEXT    NOT NULL,
        seq          INTEGER NOT NULL,
        prev         INTEGER,
        machine      TEXT    NOT NULL,
        version      INTEGER NOT NULL,
        fingerprint  TEXT    NOT NULL,
        status       TEXT    NOT NULL,
        state        TEXT    NOT NULL,
        wake_at      INTEGER,
        snapshot     TEXT    NOT NULL,
        entries      TEXT    NOT NULL
    );
";

/// Layout 2: runs live in the store. A head says why its run waits and when it is due, which
/// engine holds it under which token, and any halt requested; engines' leases have a table of
/// their own. Latest checkpoints move to `flow_latest`; history rows keep no snapshot (`''`),
/// and a run without history has head 0. Runs of layout 1 that were running
/// become runnable at once (or at their backoff's end); their `updated` time is the upgrade's, as
/// layout 1 kept none.
const LAYOUT_2: &str = "
    ALTER TABLE flow_checkpoints ADD COLUMN wait TEXT;
    ALTER TABLE flow_runs ADD COLUMN wait TEXT;
    ALTER TABLE flow_runs ADD COLUMN due_at INTEGER;
    ALTER TABLE flow_runs ADD COLUMN owner TEXT;
    ALTER TABLE flow_runs ADD COLUMN token INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE flow_runs ADD COLUMN halt TEXT;
    ALTER TABLE flow_runs ADD COLUMN updated INTEGER NOT NULL DEFAULT 0;
    UPDATE flow_runs SET updated = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
    UPDATE flow_runs SET due_at = coalesce(
        (SELECT wake_at FROM flow_checkpoints WHERE flow_checkpoints.id = flow_runs.head), 0)
    WHERE status = 'running';
    CREATE TABLE flow_latest (
        id           INTEGER PRIMARY KEY,
        run          TEXT    NOT NULL,
        seq          INTEGER NOT NULL,
        machine      TEXT    NOT NULL,
        version      INTEGER NOT NULL,
        fingerprint  TEXT    NOT NULL,
        status       TEXT    NOT NULL,
        state        TEXT    NOT NULL,
        wake_at      INTEGER,
        wait         TEXT,
        snapshot     TEXT    NOT NULL
    );
    INSERT INTO flow_latest
        (run, seq, machine, version, fingerprint, status, state, wake_at, wait, snapshot)
    SELECT c.run, c.seq, c.machine, c.version, c.fingerprint, c.status, c.state, c.wake_at,
        NULL, c.snapshot
    FROM flow_runs r JOIN flow_checkpoints c ON c.id = r.head;
    ALTER TABLE flow_runs ADD COLUMN latest INTEGER NOT NULL DEFAULT 0;
    UPDATE flow_runs SET latest = (SELECT id FROM flow_latest WHERE run = flow_runs.id);
    UPDATE flow_checkpoints SET snapshot = '';
    CREATE INDEX flow_runs_due ON flow_runs (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX flow_runs_held ON flow_runs (owner) WHERE owner IS NOT NULL;
    CREATE TABLE flow_owners (
        id       TEXT    PRIMARY KEY,
        expires  INTEGER NOT NULL
    ) WITHOUT ROWID;
";

/// The steps from an empty file to [`LAYOUT`], in order: step `n` leads to layout `n + 1`.
pub const MIGRATIONS: [&str; LAYOUT as usize] = [LAYOUT_1, LAYOUT_2];

pub const HEAD: &str = "SELECT seq, head, owner, token, latest FROM flow_runs WHERE id = ?1";

pub const INSERT_LATEST: &str = "
    INSERT INTO flow_latest
        (run, seq, machine, version, fingerprint, status, state, wake_at, wait, snapshot)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

pub const DELETE_LATEST: &str = "DELETE FROM flow_latest WHERE id = ?1";

/// A history row: the checkpoint's entries, linked to the run's previous history row.
pub const INSERT_HISTORY: &str = "
    INSERT INTO flow_checkpoints
        (run, seq, prev, machine, version, fingerprint, status, state, wake_at, snapshot, entries,
         wait)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, '', ?10, ?11)";

pub const INSERT_RUN: &str = "
    INSERT INTO flow_runs
        (id, machine, status, seq, head, latest, created, updated, wait, due_at, owner, token)
    VALUES (?1, ?2, ?3, 0, ?4, ?5, ?6, ?6, ?7, ?8, ?9, ?10)";

/// The hot path: the run goes on under the same lease, so nothing indexed changes.
pub const ADVANCE_RUN: &str =
    "UPDATE flow_runs SET seq = ?2, head = ?3, latest = ?4, updated = ?5 WHERE id = ?1";

pub const MOVE_RUN: &str = "
    UPDATE flow_runs SET seq = ?2, head = ?3, latest = ?4, updated = ?5, status = ?6,
        note = NULL, wait = ?7, due_at = ?8, owner = ?9,
        halt = CASE WHEN ?6 = 'running' THEN halt END
    WHERE id = ?1";

pub const DUE: &str = "
    SELECT id FROM flow_runs
    WHERE due_at IS NOT NULL AND due_at <= ?1
      AND machine IN (SELECT value FROM json_each(?2))
    ORDER BY due_at LIMIT ?3";

pub const LAPSED: &str = "
    SELECT id FROM flow_runs r
    WHERE owner IS NOT NULL AND machine IN (SELECT value FROM json_each(?2))
      AND NOT EXISTS (SELECT 1 FROM flow_owners o WHERE o.id = r.owner AND o.expires >= ?1)
    LIMIT ?3";

pub const CLAIM: &str = "
    UPDATE flow_runs SET owner = ?2, token = token + 1, due_at = NULL, wait = NULL
    WHERE id = ?1
    RETURNING token, halt";

pub const NEXT_DUE: &str = "
    SELECT due_at FROM flow_runs
    WHERE due_at IS NOT NULL AND machine IN (SELECT value FROM json_each(?1))
    ORDER BY due_at LIMIT 1";

pub const HEARTBEAT: &str = "
    INSERT INTO flow_owners (id, expires) VALUES (?1, ?2)
    ON CONFLICT (id) DO UPDATE SET expires = excluded.expires";

pub const HALTS: &str = "SELECT id, halt FROM flow_runs WHERE owner = ?1 AND halt IS NOT NULL";

pub const RELEASE: &str = "
    UPDATE flow_runs SET owner = NULL, due_at = 0 WHERE id = ?1 AND owner = ?2 AND token = ?3";

pub const REQUEST_HALT: &str = "
    UPDATE flow_runs SET halt = CASE WHEN halt = 'cancel' THEN halt ELSE ?2 END
    WHERE id = ?1 AND status NOT IN ('completed', 'failed', 'cancelled')";

pub const MARK: &str = "
    UPDATE flow_runs SET status = ?2, note = ?3, wait = NULL, owner = NULL,
        due_at = CASE WHEN ?2 = 'running' THEN 0 END
    WHERE id = ?1";

/// A run's latest checkpoint, its columns in the order `checkpoint` reads them.
pub const LATEST: &str = "
    SELECT l.run, l.seq, l.machine, l.version, l.fingerprint, l.status, l.state, l.wake_at,
        l.snapshot, l.wait, r.updated
    FROM flow_runs r JOIN flow_latest l ON l.id = r.latest WHERE r.id = ?1";

/// A run's kept checkpoint rows, newest first, by following `prev` from its head.
pub const CHAIN: &str = "
    WITH RECURSIVE chain(id) AS (
        SELECT head FROM flow_runs WHERE id = ?1
        UNION ALL
        SELECT c.prev FROM flow_checkpoints c JOIN chain ON c.id = chain.id
        WHERE c.prev IS NOT NULL
    )";

pub const HISTORY: &str = "
    SELECT entries FROM flow_checkpoints
    WHERE id IN (SELECT id FROM chain) AND entries <> '[]' ORDER BY seq";

pub const DELETE_HISTORY: &str = "DELETE FROM flow_checkpoints WHERE id IN (SELECT id FROM chain)";

pub const DELETE_RUN_LATEST: &str =
    "DELETE FROM flow_latest WHERE id = (SELECT latest FROM flow_runs WHERE id = ?1)";

pub const DELETE_RUN: &str = "DELETE FROM flow_runs WHERE id = ?1";

pub const SUMMARY_COLUMNS: &str = "id, machine, status, note, wait, created, updated";

pub const FINISHED_BEFORE: &str = "
    SELECT id FROM flow_runs
    WHERE status IN ('completed', 'failed', 'cancelled') AND updated < ?1
      AND (?2 IS NULL OR machine = ?2) AND (?3 IS NULL OR status = ?3)";
