//! The SQLite store's tables, their layout versions, and every query it runs.
//!
//! The layout is chosen for group commit: a batch of checkpoints of many runs should touch few
//! pages. Checkpoints are appended to a rowid table in commit order (each batch fills a few
//! consecutive pages), each linked to its run's previous kept one; a run's head (last sequence
//! number, latest checkpoint, who holds it, when it is due) is one small row, where the
//! compare-and-set happens. Only a run's latest checkpoint keeps its snapshot: the one before
//! is emptied (or, without history entries, deleted) by the same write, so a run's storage is
//! its latest snapshot plus its history.

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
/// their own. Superseded snapshots are emptied (`''`). Runs of layout 1 that were running
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
    UPDATE flow_checkpoints SET snapshot = ''
    WHERE id NOT IN (SELECT head FROM flow_runs);
    CREATE INDEX flow_runs_due ON flow_runs (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX flow_runs_held ON flow_runs (owner) WHERE owner IS NOT NULL;
    CREATE TABLE flow_owners (
        id       TEXT    PRIMARY KEY,
        expires  INTEGER NOT NULL
    ) WITHOUT ROWID;
";

/// The steps from an empty file to [`LAYOUT`], in order: step `n` leads to layout `n + 1`.
pub const MIGRATIONS: [&str; LAYOUT as usize] = [LAYOUT_1, LAYOUT_2];

pub const HEAD: &str = "SELECT seq, head, owner, token FROM flow_runs WHERE id = ?1";

pub const HEAD_ROW: &str = "SELECT prev, entries = '[]' FROM flow_checkpoints WHERE id = ?1";

pub const INSERT_CHECKPOINT: &str = "
    INSERT INTO flow_checkpoints
        (run, seq, prev, machine, version, fingerprint, status, state, wake_at, snapshot, entries,
         wait)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)";

pub const EMPTY_SNAPSHOT: &str = "UPDATE flow_checkpoints SET snapshot = '' WHERE id = ?1";

pub const DELETE_CHECKPOINT: &str = "DELETE FROM flow_checkpoints WHERE id = ?1";

pub const INSERT_RUN: &str = "
    INSERT INTO flow_runs
        (id, machine, status, seq, head, created, updated, wait, due_at, owner, token)
    VALUES (?1, ?2, ?3, 0, ?4, ?5, ?5, ?6, ?7, ?8, ?9)";

/// The hot path: the run goes on under the same lease, so nothing indexed changes.
pub const ADVANCE_RUN: &str =
    "UPDATE flow_runs SET seq = ?2, head = ?3, updated = ?4 WHERE id = ?1";

pub const MOVE_RUN: &str = "
    UPDATE flow_runs SET seq = ?2, head = ?3, updated = ?4, status = ?5, note = NULL, wait = ?6,
        due_at = ?7, owner = ?8, halt = CASE WHEN ?5 = 'running' THEN halt END
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
    SELECT c.run, c.seq, c.machine, c.version, c.fingerprint, c.status, c.state, c.wake_at,
        c.snapshot, c.wait, r.updated
    FROM flow_runs r JOIN flow_checkpoints c ON c.id = r.head WHERE r.id = ?1";

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

pub const DELETE_RUN: &str = "DELETE FROM flow_runs WHERE id = ?1";

pub const SUMMARY_COLUMNS: &str = "id, machine, status, note, wait, created, updated";

pub const FINISHED_BEFORE: &str = "
    SELECT id FROM flow_runs
    WHERE status IN ('completed', 'failed', 'cancelled') AND updated < ?1
      AND (?2 IS NULL OR machine = ?2) AND (?3 IS NULL OR status = ?3)";
