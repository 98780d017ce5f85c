//! The `CheckpointStore` contract, one suite run against both stores: the compare-and-set on
//! sequence numbers, fencing, claims and leases, halts, marks, reads and deletion. Then what
//! only SQLite has: group commit, and upgrading an older file.

mod common;

use std::borrow::Cow;

use flow::RunId;
use flow::store::{
    Checkpoint, CheckpointStore, Claimed, Filter, Halt, Lease, RunSummary, SqliteStore, Status,
    StoreError, Wait,
};

const JOB: &[&str] = &["job"];

fn id(n: u128) -> RunId {
    RunId::from_u128(n)
}

/// Checkpoint `seq` of run `n`, of machine `job`: running, going on at once, written from
/// outside any claim (as a start, a signal or a cancel is), adding no history.
fn cp(n: u128, seq: u64) -> Checkpoint {
    Checkpoint {
        run: id(n),
        seq,
        machine: Cow::Borrowed("job"),
        version: 1,
        fingerprint: Cow::Borrowed("f1"),
        status: Status::Running,
        state: Cow::Owned(format!("s{seq}")),
        wake_at: None,
        wait: None,
        lease: None,
        snapshot: format!(r#"{{"seq":{seq}}}"#),
        at: 1_000 + seq,
        entries: "[]".into(),
        key: None,
    }
}

/// Checkpoint `seq` of run `n` written by the engine holding it under `lease`.
fn under(n: u128, seq: u64, lease: &Lease) -> Checkpoint {
    Checkpoint { lease: Some(lease.clone()), ..cp(n, seq) }
}

/// What a read gives back for `written`: no entries, no lease.
fn stored(written: &Checkpoint) -> Checkpoint {
    Checkpoint { entries: "[]".into(), lease: None, ..written.clone() }
}

async fn claim(
    store: &impl CheckpointStore,
    owner: &str,
    machines: &[&'static str],
    now: u64,
) -> Vec<Claimed> {
    store.claim(owner, machines, now, 100).await.unwrap()
}

/// Claims the one run of `job` due by `now` for `owner`.
async fn claim_one(store: &impl CheckpointStore, owner: &str, now: u64) -> Claimed {
    let mut claimed = claim(store, owner, JOB, now).await;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    claimed.remove(0)
}

fn runs(claimed: &[Claimed]) -> Vec<RunId> {
    claimed.iter().map(|claim| claim.checkpoint.run).collect()
}

fn lease_of(claimed: &[Claimed], n: u128) -> Lease {
    claimed.iter().find(|claim| claim.checkpoint.run == id(n)).unwrap().lease.clone()
}

fn listed(summaries: Vec<RunSummary>) -> Vec<RunId> {
    summaries.into_iter().map(|summary| summary.run).collect()
}

#[track_caller]
fn assert_fenced(result: Result<(), StoreError>, n: u128) {
    assert!(matches!(result, Err(StoreError::Fenced { run }) if run == id(n)), "{result:?}");
}

async fn seq_0_creates_a_run_once_and_each_checkpoint_follows_the_last(
    store: impl CheckpointStore,
) {
    let first = Checkpoint { entries: r#"["begun"]"#.into(), ..cp(1, 0) };
    store.save(first.clone()).await.unwrap();
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(stored(&first)));

    let again = Checkpoint { snapshot: "{}".into(), entries: r#"["again"]"#.into(), ..cp(1, 0) };
    let refused = store.save(again).await;
    assert!(
        matches!(refused, Err(StoreError::Conflict { run, seq: 0, stored: Some(0) }) if run == id(1)),
        "{refused:?}"
    );
    let gap = Checkpoint { entries: r#"["gap"]"#.into(), at: 9_000, ..cp(1, 2) };
    let refused = store.save(gap).await;
    assert!(matches!(refused, Err(StoreError::Conflict { seq: 2, stored: Some(0), .. })));
    // A run that does not exist cannot begin past 0.
    let refused = store.save(cp(2, 1)).await;
    assert!(matches!(refused, Err(StoreError::Conflict { seq: 1, stored: None, .. })));

    // Refused, nothing was written.
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(stored(&first)));
    assert_eq!(store.history(id(1)).await.unwrap(), [r#"["begun"]"#]);
    assert_eq!(store.summary(id(1)).await.unwrap().unwrap().updated, first.at);
    assert_eq!(store.latest(id(2)).await.unwrap(), None);
    assert_eq!(listed(store.list(Filter::new()).await.unwrap()), [id(1)]);

    store.save(cp(1, 1)).await.unwrap();
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(cp(1, 1)));
}

async fn writes_are_fenced_by_the_current_claim(store: impl CheckpointStore) {
    store.save(cp(1, 0)).await.unwrap();
    let first = claim_one(&store, "e1", 0).await;
    store.save(under(1, 1, &first.lease)).await.unwrap();
    store.release(id(1), first.lease.clone()).await.unwrap();

    // Claimed again, even by the same engine: the first claim's token is stale.
    let second = claim_one(&store, "e1", 0).await;
    assert_fenced(store.save(under(1, 2, &first.lease)).await, 1);
    store.release(id(1), second.lease.clone()).await.unwrap();
    let third = claim_one(&store, "e2", 0).await;
    assert_fenced(store.save(under(1, 2, &second.lease)).await, 1);
    // A write from outside the run, while an engine holds it.
    assert_fenced(store.save(cp(1, 2)).await, 1);
    assert_eq!(store.latest(id(1)).await.unwrap().unwrap().seq, 1);

    // The holder waits for a signal: no engine holds the run, not even its last holder.
    let waiting = Checkpoint { wait: Some(Wait::Signal), ..under(1, 2, &third.lease) };
    store.save(waiting).await.unwrap();
    assert_fenced(store.save(under(1, 3, &third.lease)).await, 1);
    store.save(cp(1, 3)).await.unwrap();
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(cp(1, 3)));
}

async fn latest_is_the_newest_snapshot_and_history_the_entries_added(store: impl CheckpointStore) {
    store.save(Checkpoint { entries: r#"[{"n":0}]"#.into(), ..cp(1, 0) }).await.unwrap();
    let lease = claim_one(&store, "e1", 0).await.lease;
    let written = [
        under(1, 1, &lease),
        Checkpoint {
            entries: r#"[{"n":2},{"n":2.5}]"#.into(),
            wait: Some(Wait::Backoff),
            wake_at: Some(5_000),
            ..under(1, 2, &lease)
        },
        // A signal finishes the run, adding nothing.
        Checkpoint { status: Status::Completed, snapshot: r#"{"out":3}"#.into(), ..cp(1, 3) },
    ];
    for checkpoint in written {
        store.save(checkpoint.clone()).await.unwrap();
        assert_eq!(store.latest(id(1)).await.unwrap(), Some(stored(&checkpoint)));
    }
    assert_eq!(store.history(id(1)).await.unwrap(), [r#"[{"n":0}]"#, r#"[{"n":2},{"n":2.5}]"#]);
    assert_eq!(store.latest(id(9)).await.unwrap(), None);
    assert!(store.history(id(9)).await.unwrap().is_empty());
}

/// The checkpoint as written, its `wait` included: the engine tells a run waking from its own
/// wait from one resumed by another engine by `Claimed::checkpoint.wait`.
async fn a_claim_returns_the_latest_checkpoint_as_written(store: impl CheckpointStore) {
    store.save(cp(1, 0)).await.unwrap();
    let lease = claim_one(&store, "e1", 0).await.lease;
    let backoff = Checkpoint {
        wait: Some(Wait::Backoff),
        wake_at: Some(500),
        entries: r#"["failed"]"#.into(),
        ..under(1, 1, &lease)
    };
    store.save(backoff.clone()).await.unwrap();
    let claimed = claim_one(&store, "e2", 500).await;
    assert_eq!(claimed.checkpoint, stored(&backoff));
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(stored(&backoff)));
}

async fn a_waiting_run_is_claimed_from_its_deadline_and_not_before(store: impl CheckpointStore) {
    store.save(cp(1, 0)).await.unwrap();
    let first = claim_one(&store, "e1", 0).await;
    let backoff = Checkpoint { wait: Some(Wait::Backoff), wake_at: Some(1_000), ..cp(1, 1) };
    store.save(Checkpoint { lease: Some(first.lease.clone()), ..backoff }).await.unwrap();
    let timer = Checkpoint { wait: Some(Wait::Timer), wake_at: Some(1_000), ..cp(2, 0) };
    let timeout = Checkpoint { wait: Some(Wait::Signal), wake_at: Some(1_000), ..cp(3, 0) };
    let signal = Checkpoint { wait: Some(Wait::Signal), ..cp(4, 0) };
    for checkpoint in [timer, timeout, signal] {
        store.save(checkpoint).await.unwrap();
    }

    assert!(claim(&store, "e2", JOB, 999).await.is_empty());
    let claimed = claim(&store, "e2", JOB, 1_000).await;
    let mut woken = runs(&claimed);
    woken.sort();
    assert_eq!(woken, [id(1), id(2), id(3)]);
    for claim in &claimed {
        assert_eq!((&*claim.lease.owner, claim.taken_over, claim.halt), ("e2", false, None));
    }
    let backoff = claimed.iter().find(|claim| claim.checkpoint.run == id(1)).unwrap();
    assert!(backoff.lease.token > first.lease.token);
    // Waiting for a signal without a deadline: never, however late.
    assert!(claim(&store, "e3", JOB, u64::MAX).await.is_empty());
    assert_eq!(store.next_due(JOB).await.unwrap(), None);
}

async fn claim_takes_only_the_named_machines(store: impl CheckpointStore) {
    for (n, machine) in [(1, "job"), (2, "other"), (3, "third")] {
        store.save(Checkpoint { machine: machine.into(), ..cp(n, 0) }).await.unwrap();
    }
    assert!(claim(&store, "e1", &[], 0).await.is_empty());
    assert!(claim(&store, "e1", &["nobody"], 0).await.is_empty());
    assert_eq!(runs(&claim(&store, "e1", &["other"], 0).await), [id(2)]);
    let mut rest = runs(&claim(&store, "e1", &["third", "job", "other"], 0).await);
    rest.sort();
    assert_eq!(rest, [id(1), id(3)]);
}

async fn claim_honours_its_limit_earliest_due_first(store: impl CheckpointStore) {
    for (n, due) in [(1, 40), (2, 10), (3, 30), (4, 20)] {
        let checkpoint = Checkpoint { wait: Some(Wait::Timer), wake_at: Some(due), ..cp(n, 0) };
        store.save(checkpoint).await.unwrap();
    }
    assert_eq!(runs(&store.claim("e1", JOB, 100, 2).await.unwrap()), [id(2), id(4)]);
    assert_eq!(runs(&store.claim("e1", JOB, 100, 1).await.unwrap()), [id(3)]);
    assert!(store.claim("e1", JOB, 100, 0).await.unwrap().is_empty());
    assert_eq!(runs(&store.claim("e1", JOB, 100, 5).await.unwrap()), [id(1)]);
}

async fn each_claim_of_a_run_gets_a_higher_token(store: impl CheckpointStore) {
    store.save(cp(1, 0)).await.unwrap();
    let mut last = None;
    for owner in ["e1", "e2", "e1", "e1"] {
        let claimed = claim_one(&store, owner, 0).await;
        assert!(last.is_none_or(|last| claimed.lease.token > last), "{claimed:?}");
        last = Some(claimed.lease.token);
        store.release(id(1), claimed.lease).await.unwrap();
    }
}

async fn next_due_is_the_earliest_due_run_no_engine_holds(store: impl CheckpointStore) {
    assert_eq!(store.next_due(JOB).await.unwrap(), None);
    let timer = |n, due| Checkpoint { wait: Some(Wait::Timer), wake_at: Some(due), ..cp(n, 0) };
    store.save(timer(1, 300)).await.unwrap();
    store.save(Checkpoint { wait: Some(Wait::Backoff), ..timer(2, 200) }).await.unwrap();
    store.save(Checkpoint { machine: "other".into(), ..timer(3, 100) }).await.unwrap();
    store.save(Checkpoint { wait: Some(Wait::Signal), wake_at: None, ..cp(4, 0) }).await.unwrap();
    store.save(timer(5, 50)).await.unwrap();
    assert_eq!(store.next_due(JOB).await.unwrap(), Some(50));
    // Claimed, run 5 is held: no longer due.
    assert_eq!(runs(&claim(&store, "e1", JOB, 50).await), [id(5)]);
    assert_eq!(store.next_due(JOB).await.unwrap(), Some(200));
    assert_eq!(store.next_due(&["other"]).await.unwrap(), Some(100));
    assert_eq!(store.next_due(&["job", "other"]).await.unwrap(), Some(100));
    assert_eq!(store.next_due(&["nobody"]).await.unwrap(), None);
    assert_eq!(runs(&claim(&store, "e1", JOB, 250).await), [id(2)]);
    assert_eq!(store.next_due(JOB).await.unwrap(), Some(300));
}

async fn an_expired_lease_is_taken_over_and_its_holder_fenced(store: impl CheckpointStore) {
    // In real time: a store may measure leases on a clock of its own (the database's).
    const LEASE: u64 = 400;
    let beat = |owner: &'static str| {
        let now = wall_ms();
        store.heartbeat(owner, now, now + LEASE)
    };
    beat("e1").await.unwrap();
    store.save(cp(1, 0)).await.unwrap();
    store.save(cp(2, 0)).await.unwrap();
    store.save(Checkpoint { machine: "other".into(), ..cp(3, 0) }).await.unwrap();
    let held = claim(&store, "e1", &["job", "other"], 0).await;
    assert_eq!(held.len(), 3);
    store.save(cp(4, 0)).await.unwrap(); // runnable, held by no one

    assert!(store.take_over("e2", JOB, wall_ms(), 10).await.unwrap().is_empty());
    sleep_ms(LEASE / 2).await;
    beat("e1").await.unwrap();
    sleep_ms(LEASE / 2 + 100).await;
    // Past the first lease's end, but renewed.
    assert!(store.take_over("e2", JOB, wall_ms(), 10).await.unwrap().is_empty());
    sleep_ms(LEASE).await;

    beat("e2").await.unwrap();
    let mut taken = store.take_over("e2", JOB, wall_ms(), 1).await.unwrap();
    taken.extend(store.take_over("e2", JOB, wall_ms(), 10).await.unwrap());
    let mut ids = runs(&taken);
    ids.sort();
    assert_eq!(ids, [id(1), id(2)], "only the lapsed runs of the named machines");
    for claim in &taken {
        let n = claim.checkpoint.run.as_u128();
        assert!(claim.taken_over);
        assert_eq!(&*claim.lease.owner, "e2");
        assert!(claim.lease.token > lease_of(&held, n).token);
        assert_eq!(claim.checkpoint, cp(n, 0));
    }
    assert_fenced(store.save(under(1, 1, &lease_of(&held, 1))).await, 1);
    store.save(under(1, 1, &lease_of(&taken, 1))).await.unwrap();
    assert_eq!(store.latest(id(1)).await.unwrap(), Some(cp(1, 1)));
}

fn wall_ms() -> u64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap();
    since.as_millis() as u64
}

async fn sleep_ms(ms: u64) {
    tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
}

async fn release_frees_a_run_at_once_unless_its_lease_is_stale(store: impl CheckpointStore) {
    let backoff = Checkpoint { wait: Some(Wait::Backoff), wake_at: Some(1_000), ..cp(1, 0) };
    store.save(backoff).await.unwrap();
    let first = claim_one(&store, "e1", 1_000).await;
    assert!(claim(&store, "e2", JOB, u64::MAX).await.is_empty());
    store.release(id(1), first.lease.clone()).await.unwrap();
    // Runnable at once: at 0, well before the backoff it was claimed from.
    let second = claim_one(&store, "e1", 0).await;
    assert!(!second.taken_over);

    // Stale releases, by the same engine or with another's name, are ignored.
    store.release(id(1), first.lease).await.unwrap();
    let impostor = Lease { owner: "e2".into(), token: second.lease.token };
    store.release(id(1), impostor).await.unwrap();
    assert!(claim(&store, "e3", JOB, u64::MAX).await.is_empty());
    store.save(under(1, 1, &second.lease)).await.unwrap();
}

async fn halts_are_delivered_to_the_holder_and_to_the_next_claim(store: impl CheckpointStore) {
    store.save(cp(1, 0)).await.unwrap();
    let held = claim_one(&store, "e1", 0).await;
    assert!(store.heartbeat("e1", 0, 10_000).await.unwrap().is_empty());

    assert!(store.request_halt(id(1), Halt::Pause).await.unwrap());
    assert_eq!(store.heartbeat("e1", 0, 10_000).await.unwrap(), [(id(1), Halt::Pause)]);
    assert!(store.heartbeat("e2", 0, 10_000).await.unwrap().is_empty());
    assert!(store.request_halt(id(1), Halt::Cancel).await.unwrap());
    // A cancel is not turned back into a pause.
    assert!(store.request_halt(id(1), Halt::Pause).await.unwrap());
    assert_eq!(store.heartbeat("e1", 0, 10_000).await.unwrap(), [(id(1), Halt::Cancel)]);

    // The holder backs off before honouring it: the next claim gets it.
    let backoff = Checkpoint { wait: Some(Wait::Backoff), wake_at: Some(100), ..cp(1, 1) };
    store.save(Checkpoint { lease: Some(held.lease), ..backoff }).await.unwrap();
    assert!(store.heartbeat("e1", 0, 10_000).await.unwrap().is_empty());
    let next = claim_one(&store, "e2", 100).await;
    assert_eq!(next.halt, Some(Halt::Cancel));
    assert_eq!(store.heartbeat("e2", 0, 10_000).await.unwrap(), [(id(1), Halt::Cancel)]);

    assert!(!store.request_halt(id(9), Halt::Cancel).await.unwrap());
    let done = Checkpoint { status: Status::Cancelled, ..under(1, 2, &next.lease) };
    store.save(done).await.unwrap();
    assert!(!store.request_halt(id(1), Halt::Cancel).await.unwrap());
}

async fn a_checkpoint_that_ends_or_pauses_a_run_clears_its_halt(store: impl CheckpointStore) {
    for (n, status) in [(1, Status::Paused), (2, Status::Cancelled)] {
        store.save(cp(n, 0)).await.unwrap();
        let held = claim_one(&store, "e1", 0).await;
        assert!(store.request_halt(id(n), Halt::Pause).await.unwrap());
        store.save(Checkpoint { status, ..under(n, 1, &held.lease) }).await.unwrap();
        // Made runnable again (for a finished run, only to look), it comes without the halt.
        store.mark(id(n), Status::Running, None, None).await.unwrap();
        let again = claim_one(&store, "e1", 0).await;
        assert_eq!(again.halt, None, "{status}");
        assert!(store.heartbeat("e1", 0, 10_000).await.unwrap().is_empty());
        // Out of the next round's way.
        store.release(id(n), again.lease).await.unwrap();
        store.mark(id(n), status, None, None).await.unwrap();
    }
}

async fn mark_is_fenced_stuck_holds_a_run_and_running_frees_it(store: impl CheckpointStore) {
    store
        .save(Checkpoint { wait: Some(Wait::Backoff), wake_at: Some(5_000), ..cp(1, 0) })
        .await
        .unwrap();
    store.mark(id(1), Status::Stuck, Some("no version 3".into()), None).await.unwrap();
    assert!(claim(&store, "e1", JOB, u64::MAX).await.is_empty());
    assert_eq!(store.next_due(JOB).await.unwrap(), None);
    let summary = store.summary(id(1)).await.unwrap().unwrap();
    assert_eq!((summary.status, summary.note.as_deref()), (Status::Stuck, Some("no version 3")));
    assert_eq!(summary.wait, None);

    store.mark(id(1), Status::Running, None, None).await.unwrap();
    let claimed = claim_one(&store, "e1", 0).await; // at once, before its backoff's end
    assert_eq!(claimed.checkpoint.seq, 0);

    // A held run is marked only under its claim: not from outside, not under a stale one.
    let outside = store.mark(id(1), Status::Stuck, Some("from outside".into()), None).await;
    assert_fenced(outside, 1);
    let stale = Lease { token: claimed.lease.token - 1, ..claimed.lease.clone() };
    assert_fenced(store.mark(id(1), Status::Stuck, None, Some(stale)).await, 1);
    assert_eq!(store.summary(id(1)).await.unwrap().unwrap().status, Status::Running);
    // Marked by its holder, it is let go of: the holder's writes are refused.
    let panicked = Some("panicked".into());
    store.mark(id(1), Status::Stuck, panicked, Some(claimed.lease.clone())).await.unwrap();
    assert_fenced(store.save(under(1, 1, &claimed.lease)).await, 1);
    assert!(store.take_over("e2", JOB, u64::MAX, 10).await.unwrap().is_empty());
    // An unknown run is left alone.
    store.mark(id(9), Status::Running, None, None).await.unwrap();
    assert_eq!(store.summary(id(9)).await.unwrap(), None);
}

async fn delete_removes_a_finished_run_and_its_history(store: impl CheckpointStore) {
    store.save(Checkpoint { entries: r#"["a"]"#.into(), ..cp(1, 0) }).await.unwrap();
    let done = Checkpoint { status: Status::Completed, entries: r#"["b"]"#.into(), ..cp(1, 1) };
    store.save(done).await.unwrap();
    assert!(store.delete(id(1)).await.unwrap());
    assert_eq!(store.latest(id(1)).await.unwrap(), None);
    assert!(store.history(id(1)).await.unwrap().is_empty());
    assert_eq!(store.summary(id(1)).await.unwrap(), None);
    assert!(store.list(Filter::new()).await.unwrap().is_empty());
    assert!(!store.delete(id(1)).await.unwrap());
    assert!(!store.delete(id(9)).await.unwrap());
    // The id begins anew, with nothing of the deleted run's history.
    store.save(Checkpoint { entries: r#"["c"]"#.into(), ..cp(1, 0) }).await.unwrap();
    assert_eq!(store.history(id(1)).await.unwrap(), [r#"["c"]"#]);
}

async fn delete_refuses_an_unfinished_run(store: impl CheckpointStore) {
    store.save(Checkpoint { entries: r#"["a"]"#.into(), ..cp(1, 0) }).await.unwrap();
    store.save(cp(2, 0)).await.unwrap();
    store.mark(id(2), Status::Stuck, None, None).await.unwrap();
    for (n, status) in [(1, Status::Running), (2, Status::Stuck)] {
        let refused = store.delete(id(n)).await;
        assert!(
            matches!(refused, Err(StoreError::Unfinished { run, status: s }) if run == id(n) && s == status),
            "{refused:?}"
        );
        assert_eq!(store.latest(id(n)).await.unwrap(), Some(cp(n, 0)));
    }
    assert_eq!(store.history(id(1)).await.unwrap(), [r#"["a"]"#]);
    assert_eq!(store.delete_finished(Filter::new(), u64::MAX).await.unwrap(), 0);
    assert_eq!(listed(store.list(Filter::new()).await.unwrap()), [id(1), id(2)]);
}

async fn delete_finished_deletes_matching_runs_finished_before(store: impl CheckpointStore) {
    let end = |n, machine: &'static str, status, at| Checkpoint {
        machine: machine.into(),
        status,
        at,
        entries: r#"["x"]"#.into(),
        ..cp(n, 1)
    };
    for (n, machine, status, at) in [
        (1, "job", Status::Completed, 100),
        (2, "job", Status::Failed, 250),
        (3, "other", Status::Cancelled, 100),
        (4, "job", Status::Completed, 300),
        (5, "job", Status::Cancelled, 200),
        (6, "job", Status::Running, 50),
    ] {
        store.save(Checkpoint { machine: machine.into(), at: n as u64, ..cp(n, 0) }).await.unwrap();
        store.save(end(n, machine, status, at)).await.unwrap();
    }
    let left = async || listed(store.list(Filter::new()).await.unwrap());
    // Finished before 250: not run 2, finished at 250 exactly.
    assert_eq!(store.delete_finished(Filter::new().machine("job"), 250).await.unwrap(), 2);
    assert_eq!(left().await, [id(2), id(3), id(4), id(6)]);
    let completed = Filter::new().status(Status::Completed);
    assert_eq!(store.delete_finished(completed, u64::MAX).await.unwrap(), 1);
    assert_eq!(left().await, [id(2), id(3), id(6)]);
    assert_eq!(store.delete_finished(Filter::new(), u64::MAX).await.unwrap(), 2);
    assert_eq!(left().await, [id(6)]);
    for n in 1..=5 {
        assert!(store.history(id(n)).await.unwrap().is_empty(), "run {n}");
    }
    assert_eq!(store.history(id(6)).await.unwrap(), [r#"["x"]"#]);
}

async fn list_and_summary_reflect_status_wait_and_times(store: impl CheckpointStore) {
    store.save(Checkpoint { at: 100, ..cp(1, 0) }).await.unwrap();
    store.save(Checkpoint { at: 150, wait: Some(Wait::Signal), ..cp(1, 1) }).await.unwrap();
    let timer = Checkpoint { at: 200, wait: Some(Wait::Timer), wake_at: Some(1_000), ..cp(2, 0) };
    store.save(Checkpoint { machine: "other".into(), ..timer }).await.unwrap();
    store.save(Checkpoint { at: 300, ..cp(3, 0) }).await.unwrap();
    store.save(Checkpoint { at: 350, status: Status::Failed, ..cp(3, 1) }).await.unwrap();
    store.save(Checkpoint { at: 400, ..cp(4, 0) }).await.unwrap();
    store.mark(id(4), Status::Stuck, Some("why".into()), None).await.unwrap();

    // `cp` names a checkpoint's state after its number: s0, s1, ...
    let summary = |(n, machine, state): (u128, &str, &str), status, note: Option<&str>, wait| {
        let (machine, state, note) = (machine.into(), state.into(), note.map(str::to_owned));
        move |created, updated| RunSummary {
            run: id(n),
            machine,
            key: None,
            status,
            state,
            note,
            wait,
            created,
            updated,
        }
    };
    let all = [
        summary((1, "job", "s1"), Status::Running, None, Some(Wait::Signal))(100, 150),
        summary((2, "other", "s0"), Status::Running, None, Some(Wait::Timer))(200, 200),
        summary((3, "job", "s1"), Status::Failed, None, None)(300, 350),
        summary((4, "job", "s0"), Status::Stuck, Some("why"), None)(400, 400),
    ];
    assert_eq!(store.list(Filter::new()).await.unwrap(), all);
    for expected in &all {
        assert_eq!(store.summary(expected.run).await.unwrap().as_ref(), Some(expected));
    }
    let list = async |filter| listed(store.list(filter).await.unwrap());
    assert_eq!(list(Filter::new().machine("job")).await, [id(1), id(3), id(4)]);
    assert_eq!(list(Filter::new().status(Status::Running)).await, [id(1), id(2)]);
    assert_eq!(list(Filter::new().machine("job").status(Status::Running)).await, [id(1)]);
    assert!(list(Filter::new().machine("nobody")).await.is_empty());
    assert_eq!(store.summary(id(9)).await.unwrap(), None);

    // Claimed, a run waits no more; a checkpoint clears a stuck run's note.
    claim(&store, "e1", &["other"], 1_000).await;
    assert_eq!(store.summary(id(2)).await.unwrap().unwrap().wait, None);
    store.save(Checkpoint { at: 450, ..cp(4, 1) }).await.unwrap();
    let expected = summary((4, "job", "s1"), Status::Running, None, None)(400, 450);
    assert_eq!(store.summary(id(4)).await.unwrap(), Some(expected));
}

/// A run's business key is written with its checkpoint 0 and kept: later checkpoints cannot
/// change it, and every read, claim and summary gives it back; a filter by key lists and
/// deletes the runs started under it.
async fn a_keyed_run_keeps_its_key_and_lists_by_it(store: impl CheckpointStore) {
    let keyed = |n: u128, machine: &'static str, key: Option<&str>| Checkpoint {
        machine: machine.into(),
        key: key.map(str::to_owned),
        at: n as u64,
        ..cp(n, 0)
    };
    store.save(keyed(1, "job", Some("order-1"))).await.unwrap();
    store.save(keyed(2, "other", Some("order-2"))).await.unwrap();
    store.save(keyed(3, "job", None)).await.unwrap();
    store.save(keyed(4, "other", Some("order-1"))).await.unwrap();
    let key = Some("order-1".to_owned());
    assert_eq!(store.latest(id(1)).await.unwrap().unwrap().key, key);
    assert_eq!(store.summary(id(1)).await.unwrap().unwrap().key, key);
    assert_eq!(store.summary(id(3)).await.unwrap().unwrap().key, None);

    // A later checkpoint without the key, or with another, leaves it as it was.
    let claimed = claim(&store, "e1", JOB, 0).await;
    let first = claimed.iter().find(|claim| claim.checkpoint.run == id(1)).unwrap();
    assert_eq!(first.checkpoint.key, key);
    store.save(under(1, 1, &first.lease)).await.unwrap();
    let other = Some("changed".to_owned());
    store.save(Checkpoint { key: other, ..under(1, 2, &first.lease) }).await.unwrap();
    let done = Checkpoint { status: Status::Completed, ..under(1, 3, &first.lease) };
    store.save(done).await.unwrap();
    assert_eq!(store.latest(id(1)).await.unwrap().unwrap().key, key);

    let keys = store.list(Filter::new()).await.unwrap().into_iter().map(|s| (s.run, s.key));
    let order = |n: u32| Some(format!("order-{n}"));
    assert_eq!(
        keys.collect::<Vec<_>>(),
        [(id(1), order(1)), (id(2), order(2)), (id(3), None), (id(4), order(1))]
    );
    let list = async |filter| listed(store.list(filter).await.unwrap());
    assert_eq!(list(Filter::new().key("order-1")).await, [id(1), id(4)]);
    assert_eq!(list(Filter::new().key("order-1").machine("other")).await, [id(4)]);
    assert_eq!(list(Filter::new().key("order-2").status(Status::Running)).await, [id(2)]);
    assert!(list(Filter::new().key("changed")).await.is_empty());
    assert!(list(Filter::new().key("order-")).await.is_empty());

    // Deleting by key spares the runs of other keys and those without one.
    store.save(Checkpoint { status: Status::Cancelled, ..cp(2, 1) }).await.unwrap();
    let third = lease_of(&claimed, 3);
    store.save(Checkpoint { status: Status::Cancelled, ..under(3, 1, &third) }).await.unwrap();
    assert_eq!(store.delete_finished(Filter::new().key("order-2"), u64::MAX).await.unwrap(), 1);
    assert_eq!(store.delete_finished(Filter::new().key("order-1"), u64::MAX).await.unwrap(), 1);
    assert_eq!(list(Filter::new()).await, [id(3), id(4)]);
}

async fn history_after_gives_each_later_checkpoints_entries_with_its_seq(
    store: impl CheckpointStore,
) {
    store.save(Checkpoint { entries: r#"["begun"]"#.into(), ..cp(1, 0) }).await.unwrap();
    let lease = claim_one(&store, "e1", 0).await.lease;
    store.save(under(1, 1, &lease)).await.unwrap();
    let second = Checkpoint { entries: r#"["two"]"#.into(), ..under(1, 2, &lease) };
    store.save(second).await.unwrap();
    let third = Checkpoint { entries: r#"["three"]"#.into(), ..under(1, 3, &lease) };
    store.save(third).await.unwrap();
    let rows = |after| store.history_after(id(1), after);
    let all =
        [(0, r#"["begun"]"#.to_owned()), (2, r#"["two"]"#.into()), (3, r#"["three"]"#.into())];
    assert_eq!(rows(0).await.unwrap().unwrap(), all[1..]);
    // Checkpoint 1 added nothing: after it is as after 0.
    assert_eq!(rows(1).await.unwrap().unwrap(), all[1..]);
    assert_eq!(rows(2).await.unwrap().unwrap(), all[2..]);
    assert!(rows(3).await.unwrap().unwrap().is_empty());
    assert!(rows(u64::MAX).await.unwrap().unwrap().is_empty());
    assert!(store.history_after(id(9), 0).await.unwrap().unwrap().is_empty());
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
                super::$test(super::common::postgres(stringify!($test)).await).await;
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
    seq_0_creates_a_run_once_and_each_checkpoint_follows_the_last,
    writes_are_fenced_by_the_current_claim,
    latest_is_the_newest_snapshot_and_history_the_entries_added,
    history_after_gives_each_later_checkpoints_entries_with_its_seq,
    a_claim_returns_the_latest_checkpoint_as_written,
    a_waiting_run_is_claimed_from_its_deadline_and_not_before,
    claim_takes_only_the_named_machines,
    claim_honours_its_limit_earliest_due_first,
    each_claim_of_a_run_gets_a_higher_token,
    next_due_is_the_earliest_due_run_no_engine_holds,
    an_expired_lease_is_taken_over_and_its_holder_fenced,
    release_frees_a_run_at_once_unless_its_lease_is_stale,
    halts_are_delivered_to_the_holder_and_to_the_next_claim,
    a_checkpoint_that_ends_or_pauses_a_run_clears_its_halt,
    mark_is_fenced_stuck_holds_a_run_and_running_frees_it,
    delete_removes_a_finished_run_and_its_history,
    delete_refuses_an_unfinished_run,
    delete_finished_deletes_matching_runs_finished_before,
    list_and_summary_reflect_status_wait_and_times,
    a_keyed_run_keeps_its_key_and_lists_by_it,
);

/// A store in a fresh file for test `name`.
fn sqlite(name: &str) -> SqliteStore {
    SqliteStore::open(common::db(&format!("store-{name}"))).unwrap()
}

/// Group commit: among 200 writes, three are refused or fail (a run that exists, a run
/// another engine holds, and `doomed`, run 3's checkpoint 2, which the database itself fails
/// after the store began writing it); each fails alone, and the rest of its batches commit.
async fn group_commit_fails_a_refused_or_failing_write_alone<S: CheckpointStore + Clone>(
    store: S,
    doomed: Checkpoint,
) {
    store.save(cp(1, 0)).await.unwrap();
    store.save(cp(2, 0)).await.unwrap();
    claim(&store, "e1", JOB, 0).await;
    store.save(Checkpoint { entries: r#"["kept"]"#.into(), ..cp(3, 0) }).await.unwrap();
    store.save(cp(3, 1)).await.unwrap();

    let mut writes = tokio::task::JoinSet::new();
    let mut save = |checkpoint: Checkpoint| {
        let store = store.clone();
        writes.spawn(async move { (checkpoint.run, store.save(checkpoint).await) })
    };
    // The three doomed writes go in the middle of the stream, so they share its batches.
    for n in 100..300 {
        save(Checkpoint { entries: format!("[{n}]"), ..cp(n, 0) });
        if n == 150 {
            save(Checkpoint { snapshot: "{}".into(), ..cp(1, 0) }); // already exists
            save(cp(2, 1)); // held by e1
            save(doomed.clone());
        }
    }
    while let Some(joined) = writes.join_next().await {
        let (run, result) = joined.unwrap();
        match run.as_u128() {
            1 => assert!(matches!(result, Err(StoreError::Conflict { .. })), "{result:?}"),
            2 => assert_fenced(result, 2),
            3 => assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}"),
            n => {
                result.unwrap();
                assert_eq!(store.history(run).await.unwrap(), [format!("[{n}]")]);
            }
        }
    }
    assert_eq!(store.list(Filter::new()).await.unwrap().len(), 203);
    assert_eq!(store.latest(id(3)).await.unwrap(), Some(cp(3, 1)));
    assert_eq!(store.history(id(3)).await.unwrap(), [r#"["kept"]"#]);
    store.save(cp(3, 2)).await.unwrap();
    assert_eq!(store.history(id(3)).await.unwrap(), [r#"["kept"]"#]);
}

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
    // Its writer closes the file on its own thread, moving its journal into it: wait for that,
    // so the file moved in holds its data.
    let journal = format!("{}-wal", other.display());
    let closing = std::time::Instant::now();
    while std::path::Path::new(&journal).exists() {
        assert!(
            closing.elapsed() < std::time::Duration::from_secs(10),
            "the replacement never closed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
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

#[cfg(feature = "postgres")]
mod postgres_only {
    use super::*;
    use std::collections::HashSet;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn group_commit_fails_a_refused_or_failing_write_alone() {
        let store = common::postgres("pg-group-commit").await;
        // PostgreSQL's text holds no NUL: the database fails the statement, which both moves
        // the head and appends the history.
        let doomed = Checkpoint { entries: "[\"\u{0}\"]".into(), ..cp(3, 2) };
        super::group_commit_fails_a_refused_or_failing_write_alone(store, doomed).await;
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
        assert!(
            matches!(refused, Err(StoreError::Conflict { stored: Some(1), .. })),
            "{refused:?}"
        );
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
        assert!(
            !a.is_empty() && !b.is_empty(),
            "one worker took every run: {} {}",
            a.len(),
            b.len()
        );
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
        let (client, connection) =
            tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("UPDATE {schema}.flow_layout SET version = 99"))
            .await
            .unwrap();
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
        let (client, connection) =
            tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
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
}
