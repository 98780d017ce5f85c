//! What a durable run's checkpoints hold (`snapshot`, as JSON), written and read back.

use std::collections::BTreeMap;

use serde::de::{DeserializeOwned, IgnoredAny};
use serde::{Deserialize, Deserializer, Serialize};

use super::Durable;
use crate::history::Failure;
use crate::run::{BranchOf, Done, Joining, Rollback};
use crate::store::Checkpoint;
use crate::{Graph, RunError};

/// What a checkpoint's `snapshot` holds, written from borrowed parts.
#[derive(Serialize)]
pub(crate) struct SnapshotOut<'a, S, C, O> {
    pub state: Option<&'a S>,
    pub context: &'a C,
    pub attempt: u32,
    pub visit: u64,
    pub steps: u64,
    pub visits: BTreeMap<&'static str, u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<&'a O>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<&'a RunError>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub undo: &'a [Done<S>],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rollback: Option<&'a Rollback>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub failures: &'a [Failure],
    #[serde(skip_serializing_if = "is_zero")]
    pub takeovers: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub joining: Option<&'a Joining<S>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch: Option<BranchOf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub branch_output: Option<&'a serde_json::Value>,
}

fn is_zero(count: &u32) -> bool {
    *count == 0
}

/// What a checkpoint's `snapshot` holds, read back.
#[derive(Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>, C: Deserialize<'de>, O: Deserialize<'de>"))]
pub(crate) struct SnapshotIn<S, C, O> {
    pub state: Option<S>,
    pub context: C,
    pub attempt: u32,
    pub visit: u64,
    pub steps: u64,
    pub visits: BTreeMap<String, u32>,
    #[serde(default = "none", deserialize_with = "present")]
    pub output: Option<O>,
    #[serde(default)]
    pub error: Option<RunError>,
    /// The completed visits a failure would undo.
    #[serde(default = "Vec::new")]
    pub undo: Vec<Done<S>>,
    /// A rollback under way.
    #[serde(default)]
    pub rollback: Option<Rollback>,
    /// The failed attempts of the current visit.
    #[serde(default)]
    pub failures: Vec<Failure>,
    /// The takeovers of the current visit (`EngineBuilder::max_reassignments`); absent from
    /// checkpoints written before it was counted, and when 0.
    #[serde(default)]
    pub takeovers: u32,
    /// The run's own priority (`Engine::start_with_priority`); absent when it has none.
    #[serde(default)]
    pub priority: Option<i32>,
    /// The fork whose branches the run waits for; absent when it waits for none.
    #[serde(default = "none")]
    pub joining: Option<Joining<S>>,
    /// The fork this run is a branch of; absent for a run started on its own.
    #[serde(default)]
    pub branch: Option<BranchOf>,
    /// A finished branch's output, for its fork's join.
    #[serde(default)]
    pub branch_output: Option<serde_json::Value>,
}

fn none<O>() -> Option<O> {
    None
}

/// An output whose key is present: `null` is read as the output it is (`()`, a `None`), or
/// refused, never taken for no output.
fn present<'de, D: Deserializer<'de>, O: Deserialize<'de>>(
    deserializer: D,
) -> Result<Option<O>, D::Error> {
    O::deserialize(deserializer).map(Some)
}

/// The parts of a snapshot the engine reads back with the machine's own types: the state and
/// the undo list (as a claim reads them), the context (as a claim, and a signal, read it),
/// the output (as a finished run's handle reads it). The rest is the engine's own, and
/// always reads back.
#[derive(Deserialize)]
#[serde(bound(deserialize = "S: Deserialize<'de>, C: Deserialize<'de>, O: Deserialize<'de>"))]
#[allow(dead_code)] // read only to be checked
struct Readable<S, C, O> {
    state: Option<S>,
    context: C,
    #[serde(default = "none", deserialize_with = "present")]
    output: Option<O>,
    #[serde(default = "Vec::new")]
    undo: Vec<Done<S>>,
}

/// `snapshot` as JSON, once it is known to read back: a snapshot that would not (a NaN,
/// which serde_json writes as `null`; a value nested past serde_json's recursion limit) is
/// refused before it reaches the store, rather than found unreadable after.
pub(crate) fn readable<S, C, O, R>(
    snapshot: &SnapshotOut<'_, S, C, O>,
) -> serde_json::Result<String>
where
    S: Serialize + DeserializeOwned,
    C: Serialize + DeserializeOwned,
    O: Serialize,
    R: DeserializeOwned,
{
    let json = serde_json::to_string(snapshot)?;
    serde_json::from_str::<Readable<S, C, R>>(&json)?;
    Ok(json)
}

pub(crate) fn visits(graph: &Graph, counts: &[u32]) -> BTreeMap<&'static str, u32> {
    graph
        .states
        .iter()
        .zip(counts)
        .filter(|(_, count)| **count > 0)
        .map(|(state, count)| (state.name, *count))
        .collect()
}

/// Visit counts read back from a snapshot, keyed by `graph`'s own names; names the graph does
/// not have are dropped.
pub(crate) fn stored_visits(
    graph: &Graph,
    counts: &BTreeMap<String, u32>,
) -> BTreeMap<&'static str, u32> {
    graph
        .states
        .iter()
        .filter_map(|info| counts.get(info.name).map(|count| (info.name, *count)))
        .collect()
}

/// Reads a finished run's output from its last checkpoint's snapshot.
pub(crate) fn output<M: Durable>(snapshot: &str) -> Result<Option<M::Output>, String>
where
    M::Output: DeserializeOwned,
{
    let snapshot: SnapshotIn<IgnoredAny, IgnoredAny, M::Output> =
        serde_json::from_str(snapshot).map_err(|error| error.to_string())?;
    Ok(snapshot.output)
}

/// Whether a snapshot was written in the middle of a rollback. One that does not read back
/// is not: the run's resume reports it.
pub(crate) fn rolling_back(snapshot: &str) -> bool {
    serde_json::from_str::<SnapshotIn<IgnoredAny, IgnoredAny, IgnoredAny>>(snapshot)
        .is_ok_and(|snapshot| snapshot.rollback.is_some())
}

/// Reads a failed run's error from its last checkpoint.
pub(crate) fn error(latest: &Checkpoint) -> Result<Option<RunError>, String> {
    let snapshot: SnapshotIn<IgnoredAny, IgnoredAny, IgnoredAny> =
        serde_json::from_str(&latest.snapshot).map_err(|error| error.to_string())?;
    Ok(snapshot.error)
}

/// The checkpoint after `latest`, written at `at` from outside the run (as a signal, a
/// retry now or a branch's end writes it): runnable at once, the store refusing it if an
/// engine claimed the run meanwhile.
pub(crate) fn due_now(latest: Checkpoint, at: u64) -> Checkpoint {
    Checkpoint {
        seq: latest.seq + 1,
        wake_at: None,
        wait: None,
        lease: None,
        at,
        entries: "[]".into(),
        ..latest
    }
}
