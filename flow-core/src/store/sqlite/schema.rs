//! The SQLite store's tables, their layout versions, and every query it runs.
//!
//! The layout is chosen for group commit: a batch of checkpoints of many runs should touch few
//! pages. A run's head is one row of `flow_runs`: its latest checkpoint (snapshot included,
//! overwritten in place), who holds it, why it waits and when it is due; the compare-and-set
//! happens there. Its history is appended to `flow_checkpoints` in commit order (each batch
//! fills a few consecutive pages), one small row per checkpoint that added entries, each
//! linked to its run's previous one. A run's storage is its latest snapshot plus its history;
//! a step writes its head's page and the history's last page.

/// The layout this build writes; a newer one is refused rather than misread.
pub const LAYOUT: i64 = 3;

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

/// Layout 2: runs live in the store. A head holds its run's latest checkpoint, says why the
/// run waits and when it is due, which engine holds it under which token, and any halt
/// requested; engines' leases have a table of their own. History rows keep no snapshot (`''`),
/// and a run without history has head 0. Runs of layout 1 that were running become runnable
/// at once (or at their backoff's end); their `updated` time is the upgrade's, as layout 1
/// kept none.
const LAYOUT_2: &str = "
    ALTER TABLE flow_checkpoints ADD COLUMN wait TEXT;
    ALTER TABLE flow_runs ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE flow_runs ADD COLUMN fingerprint TEXT NOT NULL DEFAULT '';
    ALTER TABLE flow_runs ADD COLUMN state TEXT NOT NULL DEFAULT '';
    ALTER TABLE flow_runs ADD COLUMN wake_at INTEGER;
    ALTER TABLE flow_runs ADD COLUMN wait TEXT;
    ALTER TABLE flow_runs ADD COLUMN snapshot TEXT NOT NULL DEFAULT '';
    ALTER TABLE flow_runs ADD COLUMN due_at INTEGER;
    ALTER TABLE flow_runs ADD COLUMN owner TEXT;
    ALTER TABLE flow_runs ADD COLUMN token INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE flow_runs ADD COLUMN halt TEXT;
    ALTER TABLE flow_runs ADD COLUMN updated INTEGER NOT NULL DEFAULT 0;
    UPDATE flow_runs SET (version, fingerprint, state, wake_at, snapshot) = (
        SELECT version, fingerprint, state, wake_at, snapshot FROM flow_checkpoints
        WHERE flow_checkpoints.id = flow_runs.head);
    UPDATE flow_runs SET due_at = coalesce(wake_at, 0) WHERE status = 'running';
    UPDATE flow_runs SET updated = CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER);
    UPDATE flow_checkpoints SET snapshot = '';
    CREATE INDEX flow_runs_due ON flow_runs (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX flow_runs_held ON flow_runs (owner) WHERE owner IS NOT NULL;
    CREATE TABLE flow_owners (
        id       TEXT    PRIMARY KEY,
        expires  INTEGER NOT NULL
    ) WITHOUT ROWID;
";

/// Layout 3: a run's business key, if it was started under one; runs of layout 2 have none.
const LAYOUT_3: &str = "
    ALTER TABLE flow_runs ADD COLUMN key TEXT;
    CREATE INDEX flow_runs_by_key ON flow_runs (key) WHERE key IS NOT NULL;
";

/// The steps from an empty file to [`LAYOUT`], in order: step `n` leads to layout `n + 1`.
pub const MIGRATIONS: [&str; LAYOUT as usize] = [LAYOUT_1, LAYOUT_2, LAYOUT_3];

/// Indexes that no layout depends on, made at every open if missing: reads are faster with
/// them, and a build without them (an older `flow` sharing the file) reads and writes the
/// file as before, so adding one needs no new layout, which older builds would refuse.
///
/// `flow_runs_by_created`: listings in creation order, a page at a time (created and id never
/// change, so only a run's first checkpoint writes it).
pub const INDEXES: &str = "
    CREATE INDEX IF NOT EXISTS flow_runs_by_created ON flow_runs (created, id);
";

pub const HEAD: &str = "SELECT seq, head, owner, token FROM flow_runs WHERE id = ?1";

/// A history row: the checkpoint's entries, linked to the run's previous history row. The
/// columns layout 1 filled from the checkpoint are left empty: the head has them.
pub const INSERT_HISTORY: &str = "
    INSERT INTO flow_checkpoints
        (run, seq, prev, entries, machine, version, fingerprint, status, state, snapshot)
    VALUES (?1, ?2, ?3, ?4, '', 0, '', '', '', '')";

pub const INSERT_RUN: &str = "
    INSERT INTO flow_runs
        (id, seq, head, updated, version, fingerprint, state, wake_at, wait, snapshot,
         machine, status, created, due_at, owner, token, key)
    VALUES (?1, 0, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?3, ?12, ?13, ?14, ?15)";

/// The hot path: the run goes on under the same lease, so nothing indexed changes.
pub const ADVANCE_RUN: &str = "
    UPDATE flow_runs SET seq = ?2, head = ?3, updated = ?4, version = ?5, fingerprint = ?6,
        state = ?7, wake_at = ?8, wait = ?9, snapshot = ?10
    WHERE id = ?1";

pub const MOVE_RUN: &str = "
    UPDATE flow_runs SET seq = ?2, head = ?3, updated = ?4, version = ?5, fingerprint = ?6,
        state = ?7, wake_at = ?8, wait = ?9, snapshot = ?10, status = ?11, note = NULL,
        due_at = ?12, owner = ?13, halt = CASE WHEN ?11 = 'running' THEN halt END
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
    UPDATE flow_runs SET owner = ?2, token = token + 1, due_at = NULL
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

/// Marks run ?1 if it is held under owner ?4 and token ?5, or by no one with ?4 NULL.
pub const MARK: &str = "
    UPDATE flow_runs SET status = ?2, note = ?3, owner = NULL,
        due_at = CASE WHEN ?2 = 'running' THEN 0 END
    WHERE id = ?1 AND owner IS ?4 AND (?4 IS NULL OR token = ?5)";

pub const EXISTS: &str = "SELECT 1 FROM flow_runs WHERE id = ?1";

/// A run's latest checkpoint, its columns in the order `checkpoint` reads them. (A run marked
/// stuck was running when it was marked.)
pub const LATEST: &str = "
    SELECT id, seq, machine, version, fingerprint,
        CASE status WHEN 'stuck' THEN 'running' ELSE status END,
        state, wake_at, snapshot, wait, updated, key
    FROM flow_runs WHERE id = ?1";

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

/// The run's history rows after checkpoint ?2, with their seqs.
pub const HISTORY_AFTER: &str = "
    SELECT seq, entries FROM flow_checkpoints
    WHERE id IN (SELECT id FROM chain) AND entries <> '[]' AND seq > ?2 ORDER BY seq";

pub const DELETE_HISTORY: &str = "DELETE FROM flow_checkpoints WHERE id IN (SELECT id FROM chain)";

pub const DELETE_RUN: &str = "DELETE FROM flow_runs WHERE id = ?1";

/// A summary's wait is the latest checkpoint's while the run waits in the store
/// (`sql::WAITING`).
pub const SUMMARY_COLUMNS: &str = "
    id, machine, status, note,
    CASE WHEN status = 'running' AND owner IS NULL THEN wait END, created, updated, key, state";

/// The finished runs that finished before ?1: a filter's conditions (from ?2) follow.
pub const FINISHED_BEFORE: &str = "
    SELECT id FROM flow_runs
    WHERE status IN ('completed', 'failed', 'cancelled') AND updated < ?1";
