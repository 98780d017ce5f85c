//! A run seen from outside: [`RunHandle`] waits for its output, wherever it executes;
//! [`RunStatus`] says where it stands, and [`Recorded`] what it recorded since a checkpoint.

use std::fmt;
use std::marker::PhantomData;
use std::time::SystemTime;

use serde::Serialize;

use super::snapshot::output;
use super::{Durable, Ended, Engine, EngineError};
use crate::history::Entry;
use crate::store::{Status, Wait};
use crate::{RunError, RunId};

/// A started run: its id, and its output once it ends.
///
/// The run may execute in this engine or in another on the same store, and wait in the store
/// between; the handle follows it there. Cheap to hold: it is the run's id and the engine.
pub struct RunHandle<M> {
    pub(crate) run: RunId,
    pub(crate) engine: Engine,
    pub(crate) machine: PhantomData<fn() -> M>,
}

impl<M> fmt::Debug for RunHandle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunHandle").field("run", &self.run).finish_non_exhaustive()
    }
}

impl<M: Durable> RunHandle<M> {
    /// The run's id: give it to [`Engine::status`] or [`Engine::handle`], later or from
    /// another process.
    pub fn id(&self) -> RunId {
        self.run
    }

    /// The run's events from now on, as this engine sees them.
    pub fn events(&self) -> crate::Events {
        self.engine.events_of(self.run)
    }

    /// Waits for the run to end and returns its output.
    ///
    /// While the run executes in this engine, the handle hears of its end at once; while it
    /// waits in the store or executes elsewhere, the handle looks in the store when this
    /// engine's runs change and at each poll interval.
    ///
    /// # Errors
    ///
    /// [`EngineError::Failed`] with the run's [`RunError`] (its history included) if the run
    /// failed; [`EngineError::Cancelled`]; [`EngineError::Paused`] while it is paused;
    /// [`EngineError::Stuck`] or [`EngineError::Stopped`] if no engine can run it now.
    pub async fn output(self) -> Result<M::Output, EngineError> {
        let inner = &self.engine.inner;
        let run = self.run;
        loop {
            let changed = inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let live = inner.live().get(&run).map(|live| live.done.clone());
            if let Some(mut done) = live {
                let ended =
                    done.wait_for(Option::is_some).await.ok().and_then(|ended| ended.clone());
                match ended {
                    Some(Ended::Finished(Some(snapshot))) => {
                        if let Ok(Some(output)) = output::<M>(&snapshot) {
                            return Ok(output);
                        }
                        return self.engine.finished::<M>(run).await;
                    }
                    Some(Ended::Finished(None)) => return self.engine.finished::<M>(run).await,
                    Some(Ended::Failed(live)) => {
                        return match self.engine.finished::<M>(run).await {
                            // The stored error is the live one: keep the live one, with the
                            // errors its states returned, and the stored history.
                            Err(EngineError::Failed { run, error }) => {
                                let history = error.history().to_vec();
                                Err(EngineError::Failed { run, error: live.with_history(history) })
                            }
                            other => other,
                        };
                    }
                    Some(Ended::Stopped(reason, source)) => {
                        return Err(EngineError::Stopped { run, reason, source });
                    }
                    // It goes on in the store, or in another engine.
                    Some(Ended::Waiting | Ended::Lost) | None => continue,
                }
            }
            // The handle was made for a run of `M`: its summary says where it stands.
            let summary = inner.store.summary(run).await?;
            let summary = summary.ok_or(EngineError::UnknownRun { run })?;
            match summary.status {
                status if status.is_finished() => return self.engine.finished::<M>(run).await,
                Status::Paused => return Err(EngineError::Paused { run }),
                Status::Stuck => {
                    let note = summary.note.unwrap_or_default();
                    return Err(EngineError::Stuck { run, note });
                }
                _ => {}
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(inner.poll) => {}
            }
        }
    }
}

/// A run as [`Engine::status`] reports it.
#[derive(Debug, Clone, Serialize)]
pub struct RunStatus {
    /// The run.
    pub run: RunId,
    /// Its machine's name.
    pub machine: String,
    /// The business key it was started under ([`Engine::start_keyed`]), if any.
    pub key: Option<String>,
    /// The machine version its last checkpoint was written by.
    pub version: u32,
    /// Where it stands.
    pub status: Status,
    /// The state it is in, or ended in.
    pub state: String,
    /// That state with its payload, as JSON, as its last checkpoint stores it: the state
    /// enum's variant with the parameters by name (`{"Ship": {"paid": "…", "items": 3}}`);
    /// `None` if the checkpoint does not read back.
    pub payload: Option<serde_json::Value>,
    /// Its context, as JSON, as its last checkpoint stores it (as the state it is in saw it
    /// last); `None` if the checkpoint does not read back.
    pub context: Option<serde_json::Value>,
    /// For a branch of a fork, the run that forked ([`Engine::branches`] lists a forking
    /// run's branches); `None` for a run started on its own.
    pub parent: Option<RunId>,
    /// Its last checkpoint's sequence number.
    pub seq: u64,
    /// Why it waits, if it does: a signal, a timer, a backoff, or its fork's branches.
    pub wait: Option<Wait>,
    /// The deadline of its wait: when a backoff or timer ends, or a signal times out.
    /// Serialized as whole milliseconds since the Unix epoch, as every time is.
    #[serde(serialize_with = "crate::event::unix_millis_or_null")]
    pub wake_at: Option<SystemTime>,
    /// The resource pool an attempt of the run waits for in this engine, if it does
    /// ([`EngineBuilder::pool`](crate::EngineBuilder::pool)). Pools are per engine: a run
    /// executing in another process shows `None` here.
    pub waiting_for_pool: Option<String>,
    /// Why it is stuck, if it is.
    pub note: Option<String>,
    /// Why it failed, or why it paused itself (a state with `on_failure = pause` failed).
    pub error: Option<RunError>,
    /// The output of a completed run, as JSON (as it is stored); `None` for a run that has
    /// not completed. [`RunHandle::output`] gives it typed.
    pub output: Option<serde_json::Value>,
    /// Every attempt so far, in order.
    pub history: Vec<Entry>,
}

/// What a run recorded after one of its checkpoints, as [`Engine::recorded_after`] reads it
/// from the store: where it stands now, and what each later checkpoint added to its history.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Recorded {
    /// The run.
    pub run: RunId,
    /// Its latest checkpoint's sequence number.
    pub seq: u64,
    /// Where it stands, as its latest checkpoint says. (A run marked stuck, which takes no
    /// checkpoint, shows its last checkpoint's status: [`Engine::status`] says it is stuck.)
    pub status: Status,
    /// The state it is in, or ended in.
    pub state: String,
    /// Why it waits, if it does.
    pub wait: Option<Wait>,
    /// Each checkpoint after the one asked about, up to [`Recorded::seq`], in order and
    /// without gaps: its sequence number and the history entries it added (none for a
    /// checkpoint that records no attempt, such as a delivered signal or a cancel). Empty
    /// when nothing came after. `None` if the store cannot tell which checkpoint added which
    /// entries ([`CheckpointStore::history_after`](crate::store::CheckpointStore::history_after)).
    pub checkpoints: Option<Vec<(u64, Vec<Entry>)>>,
}

/// What [`Engine::resume_pending`] did.
#[derive(Debug, Default)]
pub struct Resumed {
    /// The runs this call claimed and set going. (Runs the engine claimed on its own before
    /// the call are not listed.)
    pub resumed: Vec<RunId>,
    /// The runs it claimed that could not go on, each with why. Corrupt and incompatible runs
    /// are marked [`Status::Stuck`] in the store with the reason.
    pub failed: Vec<EngineError>,
}
