//! The PostgreSQL store's tables, their layout versions, and every statement it runs.
//!
//! A run's head is one row of `flow_runs`: its latest checkpoint (snapshot overwritten in
//! place), who holds it under which token, why it waits and when it is due. The
//! compare-and-set and the fencing check are the `WHERE` of one `UPDATE` of that row, so each
//! checkpoint is one statement, whatever the outcome. A step that keeps its run's lease
//! changes no indexed column, so PostgreSQL updates the row in place (a HOT update; the table
//! leaves room on each page for it). History rows are appended to `flow_history`. Engines'
//! leases live in `flow_owners`, their expiry on the database server's clock.

/// The layout this build writes; a newer one is refused rather than misread.
pub const LAYOUT: i64 = 2;

/// The database server's clock, in Unix milliseconds: leases are measured on it, so workers
/// whose clocks disagree still agree on whose lease lapsed.
macro_rules! now_ms {
    () => {
        "(extract(epoch FROM clock_timestamp()) * 1000)::bigint"
    };
}

/// Creates the layout table and serialises concurrent setups (two workers starting at once).
pub const PREPARE: &str = "
    SELECT pg_advisory_xact_lock(hashtext(current_schema() || '.flow_layout'));
    CREATE TABLE IF NOT EXISTS flow_layout (version integer NOT NULL);";

pub const FOUND_LAYOUT: &str = "SELECT max(version)::bigint FROM flow_layout";

/// Layout 1: heads, history, owners.
const LAYOUT_1: &str = "
    CREATE TABLE flow_runs (
        id          uuid    PRIMARY KEY,
        machine     text    NOT NULL,
        status      text    NOT NULL,
        note        text,
        seq         bigint  NOT NULL,
        version     bigint  NOT NULL,
        fingerprint text    NOT NULL,
        state       text    NOT NULL,
        wake_at     bigint,
        wait        text,
        snapshot    text    NOT NULL,
        due_at      bigint,
        owner       text,
        token       bigint  NOT NULL,
        halt        text,
        created     bigint  NOT NULL,
        updated     bigint  NOT NULL
    ) WITH (fillfactor = 70);
    CREATE INDEX flow_runs_due ON flow_runs (due_at) WHERE due_at IS NOT NULL;
    CREATE INDEX flow_runs_held ON flow_runs (owner) WHERE owner IS NOT NULL;
    CREATE INDEX flow_runs_by_created ON flow_runs (created);
    CREATE TABLE flow_history (
        run     uuid    NOT NULL,
        seq     bigint  NOT NULL,
        entries text    NOT NULL,
        PRIMARY KEY (run, seq)
    );
    CREATE TABLE flow_owners (
        id      text    PRIMARY KEY,
        expires bigint  NOT NULL
    );";

/// Layout 2: a run's business key, if it was started under one; runs of layout 1 have none.
/// (Adding a column without a default rewrites no rows.)
const LAYOUT_2: &str = "
    ALTER TABLE flow_runs ADD COLUMN key text;
    CREATE INDEX flow_runs_by_key ON flow_runs (key) WHERE key IS NOT NULL;";

/// The steps from an empty schema to [`LAYOUT`], in order: step `n` leads to layout `n + 1`.
pub const MIGRATIONS: [&str; LAYOUT as usize] = [LAYOUT_1, LAYOUT_2];

pub const SET_LAYOUT: &str = "INSERT INTO flow_layout VALUES ($1)";

/// A batch of checkpoints after the first, of distinct runs, one array per column: each is
/// applied only if it follows its run's last one and carries the claim the run is held under
/// (or none while no engine holds it). Returns the runs whose checkpoint was applied. One
/// statement for the whole batch: PostgreSQL's cost per statement is paid once.
///
/// Arrays: 1 run, 2 seq, 3 at, 4 version, 5 fingerprint, 6 state, 7 wake_at, 8 wait,
/// 9 snapshot, 10 status, 11 due_at, 12 owner after, 13 lease owner, 14 lease token,
/// 15 entries.
pub const ADVANCE: &str = "
    WITH input AS (
        SELECT * FROM unnest($1::uuid[], $2::bigint[], $3::bigint[], $4::bigint[], $5::text[],
            $6::text[], $7::bigint[], $8::text[], $9::text[], $10::text[], $11::bigint[],
            $12::text[], $13::text[], $14::bigint[], $15::text[])
        AS i(id, seq, at, version, fingerprint, state, wake_at, wait, snapshot, status, due_at,
            holder, lease_owner, token, entries)
    ), moved AS (
        UPDATE flow_runs r SET seq = i.seq, updated = i.at, version = i.version,
            fingerprint = i.fingerprint, state = i.state, wake_at = i.wake_at, wait = i.wait,
            snapshot = i.snapshot, status = i.status, note = NULL, due_at = i.due_at,
            owner = i.holder, halt = CASE WHEN i.status = 'running' THEN r.halt END
        FROM input i
        WHERE r.id = i.id AND r.seq = i.seq - 1
          AND r.owner IS NOT DISTINCT FROM i.lease_owner
          AND (i.lease_owner IS NULL OR r.token = i.token)
        RETURNING r.id
    ), added AS (
        INSERT INTO flow_history (run, seq, entries)
        SELECT i.id, i.seq, i.entries FROM input i JOIN moved USING (id)
        WHERE i.entries <> '[]'
    )
    SELECT id FROM moved";

/// A run's first checkpoint: applied only if the run does not exist yet (it needs no claim:
/// the run is new). Returns 1 if applied.
///
/// Parameters: 1 run, 2 at, 3 version, 4 fingerprint, 5 state, 6 wake_at, 7 wait,
/// 8 snapshot, 9 status, 10 due_at, 11 owner, 12 token, 13 machine, 14 entries, 15 key.
pub const CREATE: &str = "
    WITH created AS (
        INSERT INTO flow_runs (id, seq, updated, created, version, fingerprint, state, wake_at,
            wait, snapshot, status, due_at, owner, token, machine, key)
        VALUES ($1, 0, $2, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $15)
        ON CONFLICT (id) DO NOTHING
        RETURNING id
    ), added AS (
        INSERT INTO flow_history (run, seq, entries)
        SELECT id, 0, $14::text FROM created WHERE $14::text <> '[]'
    )
    SELECT count(*) FROM created";

/// Why a write was refused: the run's head as it is now, and whether it is the refused
/// checkpoint itself (snapshot $2, written at $3), committed by an earlier try.
pub const HEAD: &str = "
    SELECT seq, snapshot = $2 AND updated = $3 FROM flow_runs WHERE id = $1";

/// Wakes the engines listening on [`CHANNEL`]: the payload is the machine with runs to claim.
pub const NOTIFY: &str = "SELECT pg_notify('flow_runnable', $1)";

/// The channel engines `LISTEN` on for runnable runs.
pub const LISTEN: &str = "LISTEN flow_runnable";

/// The columns a claim or a read turns into a checkpoint, in the order `checkpoint` reads them.
macro_rules! checkpoint_columns {
    ($r:literal) => {
        concat!(
            $r,
            ".id, ",
            $r,
            ".seq, ",
            $r,
            ".machine, ",
            $r,
            ".version, ",
            $r,
            ".fingerprint, ",
            $r,
            ".status, ",
            $r,
            ".state, ",
            $r,
            ".wake_at, ",
            $r,
            ".snapshot, ",
            $r,
            ".wait, ",
            $r,
            ".updated, ",
            $r,
            ".key"
        )
    };
}

/// Claims the runs due by $1 of machines $2, at most $3, earliest due first, for owner $4.
/// Rows another claim has locked are skipped, not waited for.
pub const CLAIM_DUE: &str = concat!(
    "WITH picked AS (
        SELECT id, due_at FROM flow_runs
        WHERE due_at <= $1 AND machine = ANY($2)
        ORDER BY due_at LIMIT $3
        FOR UPDATE SKIP LOCKED
    )
    UPDATE flow_runs r SET owner = $4, token = r.token + 1, due_at = NULL
    FROM picked WHERE r.id = picked.id
    RETURNING ",
    checkpoint_columns!("r"),
    ", r.token, r.halt, picked.due_at"
);

/// Claims the runs of machines $2 whose holder's lease lapsed on the server's clock, at most
/// $3, for owner $1.
pub const CLAIM_LAPSED: &str = concat!(
    "WITH picked AS (
        SELECT r.id FROM flow_runs r
        WHERE r.owner IS NOT NULL AND r.machine = ANY($2)
          AND NOT EXISTS (
            SELECT 1 FROM flow_owners o WHERE o.id = r.owner AND o.expires >= ",
    now_ms!(),
    ")
        LIMIT $3
        FOR UPDATE OF r SKIP LOCKED
    )
    UPDATE flow_runs r SET owner = $1, token = r.token + 1, due_at = NULL
    FROM picked WHERE r.id = picked.id
    RETURNING ",
    checkpoint_columns!("r"),
    ", r.token, r.halt, 0::bigint"
);

pub const NEXT_DUE: &str = "
    SELECT due_at FROM flow_runs
    WHERE due_at IS NOT NULL AND machine = ANY($1)
    ORDER BY due_at LIMIT 1";

/// Renews owner $1's lease for $2 milliseconds of the server's clock; returns the halts
/// requested for the runs it holds.
pub const HEARTBEAT: &str = concat!(
    "WITH beat AS (
        INSERT INTO flow_owners (id, expires) VALUES ($1, ",
    now_ms!(),
    " + $2)
        ON CONFLICT (id) DO UPDATE SET expires = excluded.expires
    )
    SELECT id, halt FROM flow_runs WHERE owner = $1 AND halt IS NOT NULL"
);

/// Lets go of run $1 if owner $2 holds it under token $3; returns its machine if it did.
pub const RELEASE: &str = "
    UPDATE flow_runs SET owner = NULL, due_at = 0
    WHERE id = $1 AND owner = $2 AND token = $3
    RETURNING machine";

pub const REQUEST_HALT: &str = "
    UPDATE flow_runs SET halt = CASE WHEN halt = 'cancel' THEN halt ELSE $2 END
    WHERE id = $1 AND status NOT IN ('completed', 'failed', 'cancelled')";

/// Sets run $1's status $2 and note $3 and lets go of it, if it is held under owner $4 and
/// token $5, or by no one with $4 NULL; returns its machine if it did, and whether the run
/// exists.
pub const MARK: &str = "
    WITH marked AS (
        UPDATE flow_runs SET status = $2, note = $3, owner = NULL,
            due_at = CASE WHEN $2 = 'running' THEN 0 END
        WHERE id = $1 AND owner IS NOT DISTINCT FROM $4::text AND ($4::text IS NULL OR token = $5)
        RETURNING machine
    )
    SELECT (SELECT machine FROM marked), EXISTS (SELECT 1 FROM flow_runs WHERE id = $1)";

/// A run's latest checkpoint. (A run marked stuck was running when it was marked.)
pub const LATEST: &str = "
    SELECT id, seq, machine, version, fingerprint,
        CASE status WHEN 'stuck' THEN 'running' ELSE status END,
        state, wake_at, snapshot, wait, updated, key
    FROM flow_runs WHERE id = $1";

pub const HISTORY: &str = "SELECT entries FROM flow_history WHERE run = $1 ORDER BY seq";

/// Run $1's history rows after checkpoint $2, with their seqs.
pub const HISTORY_AFTER: &str =
    "SELECT seq, entries FROM flow_history WHERE run = $1 AND seq > $2 ORDER BY seq";

/// A summary's wait is the latest checkpoint's while the run waits in the store
/// (`sql::WAITING`).
macro_rules! summary_columns {
    () => {
        "id, machine, status, note,
        CASE WHEN status = 'running' AND owner IS NULL THEN wait END, created, updated, key,
        state"
    };
}

pub const SUMMARY: &str = concat!("SELECT ", summary_columns!(), " FROM flow_runs WHERE id = $1");

/// The runs a filter matches: its conditions (`sql::Conditions`, from $1), order and limit
/// follow. (`flow_runs_by_created` serves the order.)
pub const LIST: &str = concat!("SELECT ", summary_columns!(), " FROM flow_runs WHERE true");

/// Deletes the finished runs that finished before $1 and match a filter, whose conditions
/// (from $2) and then [`DELETE_FINISHED_END`] follow, and their history; returns how many.
pub const DELETE_FINISHED: &str = "
    WITH gone AS (
        DELETE FROM flow_runs
        WHERE status IN ('completed', 'failed', 'cancelled') AND updated < $1::bigint";

pub const DELETE_FINISHED_END: &str = "
        RETURNING id
    ), history AS (
        DELETE FROM flow_history WHERE run IN (SELECT id FROM gone)
    )
    SELECT count(*) FROM gone";

/// Deletes run $1 and its history if it has finished; returns how many runs (0 or 1).
pub const DELETE: &str = "
    WITH gone AS (
        DELETE FROM flow_runs
        WHERE id = $1 AND status IN ('completed', 'failed', 'cancelled')
        RETURNING id
    ), history AS (
        DELETE FROM flow_history WHERE run IN (SELECT id FROM gone)
    )
    SELECT count(*) FROM gone";

pub const STATUS: &str = "SELECT status FROM flow_runs WHERE id = $1";
