//! Why the engine could not do what was asked: [`EngineError`].

use thiserror::Error;

use crate::store::{Status, StoreError, Wait};
use crate::{RunError, RunId, SharedError};

/// Why the engine could not do what was asked.
#[derive(Debug, Error)]
pub enum EngineError {
    /// No machine of that name is registered.
    #[error(
        "no machine named `{name}` is registered with this engine; register it with \
         Engine::builder().machine::<{name}::Machine>()"
    )]
    UnknownMachine {
        /// The name asked for.
        name: String,
    },
    /// The run belongs to another machine than the one asked for.
    #[error("run {run} is a run of machine `{found}`, not of `{expected}`")]
    WrongMachine {
        /// The run.
        run: RunId,
        /// The machine asked for.
        expected: &'static str,
        /// The run's machine.
        found: String,
    },
    /// The store has no run with this id.
    #[error(
        "there is no run {run} in this engine's store; check the id \
         (RunHandle::id and Engine::list give the ids of existing runs)"
    )]
    UnknownRun {
        /// The id asked for.
        run: RunId,
    },
    /// A kind of event was named that there is none of
    /// ([`Engine::events_of_kinds`](crate::Engine::events_of_kinds)).
    #[error("`{name}` is no kind of event; the kinds are: {}", crate::EventKind::NAMES.join(", "))]
    UnknownEventKind {
        /// The name given.
        name: String,
    },
    /// A run with this id exists already: [`Engine::start_as`](crate::Engine::start_as) was
    /// given an id that is taken, or [`Engine::start_keyed`](crate::Engine::start_keyed) a
    /// key its machine has a run for.
    #[error(
        "a run with id {run} exists already (started under this id, or this machine and key); \
         a run is started once: get its handle with Engine::handle or Engine::handle_for_key"
    )]
    AlreadyExists {
        /// The id.
        run: RunId,
    },
    /// The run is stuck: an engine could not run it, and its note says why.
    #[error(
        "run {run} is stuck: {note}; fix the cause (a missing migration, a corrupt checkpoint), \
         then call Engine::resume_pending"
    )]
    Stuck {
        /// The run.
        run: RunId,
        /// Why, as the engine that marked it wrote.
        note: String,
    },
    /// The engine is shutting down ([`Engine::shutdown`](crate::Engine::shutdown)) and starts nothing more.
    #[error("the engine is shutting down and starts no more runs; start it on another engine")]
    ShuttingDown,
    /// The stored run matches no version of its machine this engine knows.
    #[error(
        "run {run} of machine `{machine}` was stored by version {stored_version} (fingerprint \
         {stored_fingerprint}); this binary has version {version} (fingerprint {fingerprint}): \
         {why}"
    )]
    Incompatible {
        /// The run.
        run: RunId,
        /// Its machine.
        machine: String,
        /// The version in its checkpoint.
        stored_version: u32,
        /// The fingerprint in its checkpoint.
        stored_fingerprint: String,
        /// The registered machine's version.
        version: u32,
        /// The registered machine's fingerprint.
        fingerprint: &'static str,
        /// What to do about it.
        why: &'static str,
    },
    /// A stored checkpoint does not read back.
    #[error("run {run} of machine `{machine}` has a corrupt checkpoint: {detail}")]
    Corrupt {
        /// The run.
        run: RunId,
        /// Its machine.
        machine: String,
        /// What is wrong.
        detail: String,
    },
    /// A registered migration failed on a run.
    #[error("run {run} of machine `{machine}`: migrating from version {from} to {to}: {detail}")]
    Migration {
        /// The run.
        run: RunId,
        /// Its machine.
        machine: String,
        /// The version migrated from.
        from: u32,
        /// The version migrated to.
        to: u32,
        /// What went wrong.
        detail: String,
    },
    /// A signal would not serialize (or would read back as no signal), or a run's history
    /// would not: nothing was written.
    #[error(
        "run {run} of machine `{machine}` could not be checkpointed: {detail}; the run stopped at \
         its last checkpoint (check the Serialize impls of its payloads and context)"
    )]
    Serialize {
        /// The run.
        run: RunId,
        /// Its machine.
        machine: &'static str,
        /// What serde said.
        detail: String,
    },
    /// What a run was about to write would not read back from the store (a float that is
    /// NaN or infinite, which JSON cannot hold; a value nested deeper than the 128 levels a
    /// checkpoint is read with; a `Serialize` impl that fails or does not match its
    /// `Deserialize`), so it was not written. A start or a signal refused this way stored
    /// nothing; a state whose result was refused failed that attempt with this message.
    #[error(
        "run {run} of machine `{machine}`: its checkpoint in state `{state}` would not read \
         back ({source}), so nothing was written; JSON holds no NaN or infinite float (they \
         are written as null) and is read back at most 128 levels deep"
    )]
    Unstorable {
        /// The run.
        run: RunId,
        /// Its machine.
        machine: &'static str,
        /// The state the run was entering, waiting in, or ending in.
        state: &'static str,
        /// Why: the serializer's error, or the read-back's.
        #[source]
        source: serde_json::Error,
    },
    /// The run failed. Its source is the [`RunError`], whose chain reaches the error the
    /// failed state returned while the engine that ran the run still runs
    /// ([`RunError::downcast_ref`]).
    #[error("run {run} failed: {error}")]
    Failed {
        /// The run.
        run: RunId,
        /// How, with the run's history.
        #[source]
        error: RunError,
    },
    /// The run was cancelled ([`Engine::cancel`](crate::Engine::cancel)).
    #[error("run {run} was cancelled")]
    Cancelled {
        /// The run.
        run: RunId,
    },
    /// The run is paused ([`Engine::pause`](crate::Engine::pause)); [`Engine::resume`](crate::Engine::resume) continues it.
    #[error("run {run} is paused; Engine::resume continues it, then Engine::handle waits for it")]
    Paused {
        /// The run.
        run: RunId,
    },
    /// The run is not waiting for a signal: it is running an attempt, or finished, or its
    /// state takes none.
    #[error("run {run} is not waiting for a signal{}; nothing was delivered", .state.as_ref().map_or_else(String::new, |state| format!(" (it is in state `{state}`)")))]
    NotWaiting {
        /// The run.
        run: RunId,
        /// The state it is in, if known.
        state: Option<String>,
    },
    /// The run waits for another type of signal.
    #[error(
        "run {run} waits in state `{state}` for a {expected}, not a {got}; nothing was delivered"
    )]
    WrongSignal {
        /// The run.
        run: RunId,
        /// The waiting state.
        state: String,
        /// The type it waits for, as declared.
        expected: &'static str,
        /// The type sent.
        got: &'static str,
    },
    /// The run is not paused, so there is nothing to resume.
    #[error("run {run} is not paused ({status}); only a paused run can be resumed")]
    NotPaused {
        /// The run.
        run: RunId,
        /// Where it stands.
        status: Status,
    },
    /// The run is not waiting out a retry's backoff, so there is no backoff to cut short.
    #[error(
        "run {run} is not backing off after a failed attempt ({status}{}); only a run waiting \
         for its next attempt can be retried now",
        wait.map(|wait| format!(", waiting for a {wait}")).unwrap_or_default()
    )]
    NotBackingOff {
        /// The run.
        run: RunId,
        /// Where it stands.
        status: Status,
        /// What it waits for instead, if it waits.
        wait: Option<Wait>,
    },
    /// The run is undoing its completed states after a failure; a rollback is not stopped
    /// halfway.
    #[error(
        "run {run} is rolling back after a failure and cannot be cancelled or paused; \
         it finishes its rollback and ends as failed"
    )]
    RollingBack {
        /// The run.
        run: RunId,
    },
    /// The run has finished already: there is nothing to cancel or pause.
    #[error("run {run} has finished already ({status}); there is nothing to stop")]
    Finished {
        /// The run.
        run: RunId,
        /// How it finished.
        status: Status,
    },
    /// The run stopped unfinished and is marked [`Status::Stuck`] with the reason; it goes on
    /// from its last checkpoint after [`Engine::resume_pending`](crate::Engine::resume_pending).
    #[error("run {run} stopped unfinished: {reason}")]
    Stopped {
        /// The run.
        run: RunId,
        /// Why.
        reason: String,
        /// The error that stopped it, as the engine that ran it saw it: the [`StoreError`]
        /// when the store failed (downcast the source to it), or the engine's own error.
        /// `None` when the run stopped for another reason, such as a panic in the engine.
        #[source]
        source: Option<SharedError>,
    },
    /// The engine's configuration is inconsistent.
    #[error("the engine cannot be built: {problems}")]
    Config {
        /// Every problem found.
        problems: String,
    },
    /// The store failed, or refused a checkpoint ([`StoreError::Conflict`]).
    #[error(transparent)]
    Store(#[from] StoreError),
}
