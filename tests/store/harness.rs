//! The suite's harness: checkpoints to write, the claims to take, and the assertions the
//! contract's tests share.

use std::borrow::Cow;

use flow::RunId;
use flow::store::{
    Checkpoint, CheckpointStore, Claimed, Lease, RunSummary, SqliteStore, Status, StoreError,
};

use super::common;

pub(crate) const JOB: &[&str] = &["job"];

pub(crate) fn id(n: u128) -> RunId {
    RunId::from_u128(n)
}

/// Checkpoint `seq` of run `n`, of machine `job`: running, going on at once, written from
/// outside any claim (as a start, a signal or a cancel is), adding no history.
pub(crate) fn cp(n: u128, seq: u64) -> Checkpoint {
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
pub(crate) fn under(n: u128, seq: u64, lease: &Lease) -> Checkpoint {
    Checkpoint { lease: Some(lease.clone()), ..cp(n, seq) }
}

/// What a read gives back for `written`: no entries, no lease.
pub(crate) fn stored(written: &Checkpoint) -> Checkpoint {
    Checkpoint { entries: "[]".into(), lease: None, ..written.clone() }
}

pub(crate) async fn claim(
    store: &impl CheckpointStore,
    owner: &str,
    machines: &[&'static str],
    now: u64,
) -> Vec<Claimed> {
    store.claim(owner, machines, now, 100).await.unwrap()
}

/// Claims the one run of `job` due by `now` for `owner`.
pub(crate) async fn claim_one(store: &impl CheckpointStore, owner: &str, now: u64) -> Claimed {
    let mut claimed = claim(store, owner, JOB, now).await;
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    claimed.remove(0)
}

pub(crate) fn runs(claimed: &[Claimed]) -> Vec<RunId> {
    claimed.iter().map(|claim| claim.checkpoint.run).collect()
}

pub(crate) fn lease_of(claimed: &[Claimed], n: u128) -> Lease {
    claimed.iter().find(|claim| claim.checkpoint.run == id(n)).unwrap().lease.clone()
}

pub(crate) fn listed(summaries: Vec<RunSummary>) -> Vec<RunId> {
    summaries.into_iter().map(|summary| summary.run).collect()
}

#[track_caller]
pub(crate) fn assert_fenced(result: Result<(), StoreError>, n: u128) {
    assert!(matches!(result, Err(StoreError::Fenced { run }) if run == id(n)), "{result:?}");
}

/// A store in a fresh file for test `name`.
pub(crate) fn sqlite(name: &str) -> SqliteStore {
    SqliteStore::open(common::db(&format!("store-{name}"))).unwrap()
}
