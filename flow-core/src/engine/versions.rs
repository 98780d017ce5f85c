//! Versions of a machine: [`Migrate`] carries runs stored by an older version to this one.

use std::borrow::Cow;

use serde::de::IgnoredAny;

use super::snapshot::{SnapshotIn, SnapshotOut, readable, stored_visits};
use super::{Durable, EngineError};
use crate::store::Checkpoint;
use crate::{Error, Machine};

/// Carries runs stored by an older version of a machine to this one.
///
/// Keep the old version's module (its `#[flow::machine(version = 1)]` with its state types;
/// the bodies are never run again) next to the new one, implement this for the new machine,
/// and register it with [`EngineBuilder::migration`](crate::EngineBuilder::migration). When an
/// engine claims it, a run stored by version 1
/// goes through `1 → 2`, then `2 → 3` if registered, and so on, before it runs on.
///
/// The run keeps its history, attempt and visit counts (by state name).
///
/// A run that has completed a state with a compensation (so it has visits a failure would
/// undo) is not migrated: it is reported and marked stuck, and the old version's binary can
/// finish it.
pub trait Migrate<Old: Machine>: Machine {
    /// Maps an old run's state and context to this version's.
    ///
    /// # Errors
    ///
    /// An error here marks the run [`Status::Stuck`](crate::store::Status::Stuck), with the error as its note; nothing else
    /// is changed, so a fixed migration can resume it later.
    fn migrate(
        state: Old::State,
        context: Old::Context,
    ) -> Result<(Self::State, Self::Context), Error>;
}

/// One registered migration step, from a stored version to the next known one.
pub(crate) struct Migration {
    pub from_version: u32,
    pub from_fingerprint: &'static str,
    /// What earlier flow versions computed as `from_fingerprint`.
    pub from_legacy: &'static [&'static str],
    pub to_version: u32,
    pub to_fingerprint: &'static str,
    /// Old snapshot JSON → new snapshot JSON and the new state's name.
    pub apply: fn(&str) -> Result<(String, &'static str), String>,
}

impl Migration {
    pub fn new<Old: Durable, New: Durable + Migrate<Old>>() -> Migration {
        Migration {
            from_version: Old::graph().version,
            from_fingerprint: Old::graph().fingerprint,
            from_legacy: Old::graph().legacy_fingerprints,
            to_version: New::graph().version,
            to_fingerprint: New::graph().fingerprint,
            apply: migrate::<Old, New>,
        }
    }
}

fn migrate<Old: Durable, New: Durable + Migrate<Old>>(
    snapshot: &str,
) -> Result<(String, &'static str), String> {
    let old: SnapshotIn<Old::State, Old::Context, IgnoredAny> =
        serde_json::from_str(snapshot).map_err(|error| error.to_string())?;
    let state = old.state.ok_or("the checkpoint holds no state to migrate")?;
    if !old.undo.is_empty() || old.rollback.is_some() {
        return Err("the run has completed states with compensations still to run if it fails, \
                    and migrating those is not supported yet: let it finish on the old version"
            .to_owned());
    }
    if old.joining.is_some() || old.branch.is_some() {
        return Err("the run is in a fork (waiting for its branches, or one of them), and \
                    migrating those is not supported yet: let the fork join on the old version"
            .to_owned());
    }
    let (state, context) = New::migrate(state, old.context)
        .map_err(|error| format!("the migration failed: {error}"))?;
    let graph = New::graph();
    let name = graph.states[New::index(&state)].name;
    let new = SnapshotOut::<New::State, New::Context, ()> {
        state: Some(&state),
        context: &context,
        attempt: old.attempt,
        visit: old.visit,
        steps: old.steps,
        // Visit counts follow state names; a renamed state starts counting again.
        visits: stored_visits(graph, &old.visits),
        output: None,
        error: None,
        undo: &[],
        rollback: None,
        failures: &old.failures,
        takeovers: old.takeovers,
        priority: old.priority,
        joining: None,
        branch: None,
        branch_output: None,
    };
    let new = readable::<_, _, _, IgnoredAny>(&new)
        .map_err(|error| format!("the migrated run would not read back: {error}"))?;
    Ok((new, name))
}

/// Carries a checkpoint written by an older version of `M` to the current one, through the
/// registered migrations; refuses one that matches no known version.
pub(crate) fn upgrade<M: Durable>(
    migrations: &[Migration],
    latest: &mut Checkpoint,
) -> Result<(), EngineError> {
    let graph = M::graph();
    let incompatible = |latest: &Checkpoint, why: &'static str| EngineError::Incompatible {
        run: latest.run,
        machine: M::NAME.into(),
        stored_version: latest.version,
        stored_fingerprint: latest.fingerprint.to_string(),
        version: graph.version,
        fingerprint: graph.fingerprint,
        why,
    };
    // Each step raises the version, so this ends; the bound guards a malformed registry.
    for _ in 0..=migrations.len() {
        if latest.version == graph.version && graph.has_fingerprint(&latest.fingerprint) {
            // Written by an earlier flow for this shape: the same run, under today's name.
            latest.fingerprint = Cow::Borrowed(graph.fingerprint);
            return Ok(());
        }
        let step = migrations.iter().find(|step| {
            step.from_version == latest.version
                && (step.from_fingerprint == latest.fingerprint
                    || step.from_legacy.contains(&&*latest.fingerprint))
        });
        let Some(step) = step else {
            let why = if latest.version == graph.version {
                "the machine's shape changed without a version bump: declare \
                     #[flow::machine(version = N)] with a higher N, and register a migration \
                     from the old version with EngineBuilder::migration"
            } else if latest.version > graph.version {
                "the run was written by a newer version of the machine than this binary has"
            } else {
                "no registered migration starts from the stored version and fingerprint: \
                     keep the old version's module and register EngineBuilder::migration::<Old, New>()"
            };
            return Err(incompatible(latest, why));
        };
        let (snapshot, state) =
            (step.apply)(&latest.snapshot).map_err(|error| EngineError::Migration {
                run: latest.run,
                machine: M::NAME.into(),
                from: step.from_version,
                to: step.to_version,
                detail: error,
            })?;
        latest.snapshot = snapshot;
        latest.state = Cow::Borrowed(state);
        latest.version = step.to_version;
        latest.fingerprint = Cow::Borrowed(step.to_fingerprint);
    }
    Err(incompatible(latest, "the registered migrations do not lead to this version"))
}
