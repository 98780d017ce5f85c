//! Steering runs: cancel, pause, resume, retry a backoff now, delete. Each is a write to
//! the store, so it works from any engine on the store, for a run waiting, queued, executing
//! here or executing in another process.

use std::time::Duration;

use super::control::RACES;
use super::{Engine, EngineError, duration_ms, scheduler, snapshot};
use crate::RunId;
use crate::current::Halt;
use crate::event::EventKind;
use crate::store::{Checkpoint, Filter, Status, StoreError, Wait};

impl Engine {
    /// Stops run `run` at its next safe point and records it as cancelled: at once if it
    /// waits in the store (for a backoff, a timer or a signal: its next attempt never runs),
    /// or before its next attempt if an engine executes it, here or elsewhere. A state body
    /// that is running finishes its attempt unless it checks [`crate::cancelled`].
    ///
    /// Returns once the cancellation is recorded, or requested from the engine executing the
    /// run; [`RunHandle::output`](super::RunHandle::output) returns [`EngineError::Cancelled`] once the run has
    /// stopped. A run that is rolling back after a failure finishes its rollback and ends as
    /// failed.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`]; [`EngineError::Finished`] if the run has finished;
    /// [`EngineError::RollingBack`] for a run that waits in the middle of a rollback.
    pub async fn cancel(&self, run: RunId) -> Result<(), EngineError> {
        self.halt(run, Halt::Cancel).await
    }

    /// Holds run `run` at its next safe point (as [`Engine::cancel`] stops it), recorded as
    /// [`Status::Paused`], until [`Engine::resume`]: no engine claims it meanwhile. A run
    /// paused while it waits for a timer keeps the timer's deadline. Its handle's
    /// [`output`](super::RunHandle::output) returns [`EngineError::Paused`]. A run that is rolling
    /// back after a failure is not paused: it finishes its rollback.
    ///
    /// # Errors
    ///
    /// As [`Engine::cancel`].
    pub async fn pause(&self, run: RunId) -> Result<(), EngineError> {
        self.halt(run, Halt::Pause).await
    }

    /// Continues a paused run from its checkpoint: it is runnable at once, or when the timer
    /// it was paused in ends.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotPaused`] if the run is not paused (or still on its way to its safe
    /// point); [`EngineError::UnknownRun`].
    pub async fn resume(&self, run: RunId) -> Result<(), EngineError> {
        let inner = &self.inner;
        scheduler::start(inner);
        for _ in 0..RACES {
            let latest = inner.store.latest(run).await?;
            let latest = latest.ok_or(EngineError::UnknownRun { run })?;
            // A run executing here is still on its way to its safe point.
            let status =
                if inner.live().contains_key(&run) { Status::Running } else { latest.status };
            if status != Status::Paused {
                return Err(EngineError::NotPaused { run, status });
            }
            let resumed = Checkpoint {
                seq: latest.seq + 1,
                status: Status::Running,
                at: inner.now_ms(),
                entries: "[]".into(),
                ..latest
            };
            let due_at = resumed.due_at();
            match inner.store.save(resumed).await {
                Ok(()) => {
                    if let Some(due_at) = due_at {
                        inner.due(due_at);
                    }
                    return Ok(());
                }
                Err(StoreError::Conflict { .. } | StoreError::Fenced { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::NotPaused { run, status: Status::Running })
    }

    /// Starts the next attempt of run `run` now, instead of at the end of the backoff it waits
    /// out after a failed attempt (an operator's "retry now": the outage is over). The attempt
    /// counts against the state's `retry(attempts = ...)` as it would have.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotBackingOff`] if the run is not waiting out a backoff (executing,
    /// waiting for something else, paused or finished); [`EngineError::UnknownRun`].
    pub async fn retry_now(&self, run: RunId) -> Result<(), EngineError> {
        let inner = &self.inner;
        scheduler::start(inner);
        for _ in 0..RACES {
            let latest = inner.store.latest(run).await?;
            let latest = latest.ok_or(EngineError::UnknownRun { run })?;
            let held = inner.live().contains_key(&run);
            if held || latest.status != Status::Running || latest.wait != Some(Wait::Backoff) {
                let (status, wait) = (latest.status, latest.wait.filter(|_| !held));
                return Err(EngineError::NotBackingOff { run, status, wait });
            }
            match inner.store.save(snapshot::due_now(latest, inner.now_ms())).await {
                Ok(()) => {
                    inner.runnable();
                    return Ok(());
                }
                Err(StoreError::Conflict { .. } | StoreError::Fenced { .. }) => continue,
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::NotBackingOff { run, status: Status::Running, wait: None })
    }

    /// Deletes finished run `run` and its history.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`]; [`StoreError::Unfinished`] (in [`EngineError::Store`])
    /// for a run that has not finished: cancel it first.
    pub async fn delete(&self, run: RunId) -> Result<(), EngineError> {
        match self.inner.store.delete(run).await? {
            true => Ok(()),
            false => Err(EngineError::UnknownRun { run }),
        }
    }

    /// Deletes the finished runs (completed, failed, cancelled) that `filter` matches and
    /// that finished more than `older_than` ago, with their history. Returns how many.
    ///
    /// # Errors
    ///
    /// If the store fails.
    pub async fn delete_finished(
        &self,
        filter: Filter,
        older_than: Duration,
    ) -> Result<u64, EngineError> {
        let before = self.inner.now_ms().saturating_sub(duration_ms(older_than));
        Ok(self.inner.store.delete_finished(filter, before).await?)
    }

    pub(crate) async fn halt(&self, run: RunId, halt: Halt) -> Result<(), EngineError> {
        let inner = &self.inner;
        scheduler::start(inner);
        for _ in 0..RACES {
            if let Some(live) = inner.live().get(&run) {
                live.cancel.request(halt);
                return Ok(());
            }
            let latest = inner.store.latest(run).await?;
            let latest = latest.ok_or(EngineError::UnknownRun { run })?;
            if latest.status.is_finished() {
                return Err(EngineError::Finished { run, status: latest.status });
            }
            if snapshot::rolling_back(&latest.snapshot) {
                return Err(EngineError::RollingBack { run });
            }
            let status = match halt {
                Halt::Pause if latest.status == Status::Paused => return Ok(()),
                Halt::Pause => Status::Paused,
                Halt::Cancel => Status::Cancelled,
            };
            let state = latest.state.to_string();
            // A cancelled fork's branches are cancelled with it.
            let branches = match halt {
                Halt::Cancel => super::branches::started(&latest),
                Halt::Pause => Vec::new(),
            };
            // A pause keeps the wait and its deadline, for the resume.
            let halted = Checkpoint {
                seq: latest.seq + 1,
                status,
                at: inner.now_ms(),
                entries: "[]".into(),
                ..latest
            };
            let machine = halted.machine.to_string();
            match inner.store.save(halted).await {
                Ok(()) => {
                    let kind = match halt {
                        Halt::Pause => EventKind::Paused,
                        Halt::Cancel => EventKind::Cancelled,
                    };
                    self.reporter_named(run, &machine, &state).send(kind);
                    inner.changed.notify_waiters();
                    for branch in branches {
                        // One that has ended already has nothing to stop.
                        let _ = Box::pin(self.halt(branch, Halt::Cancel)).await;
                    }
                    return Ok(());
                }
                Err(StoreError::Conflict { .. }) => continue,
                // An engine holds the run: it honours the request at its next safe point.
                Err(StoreError::Fenced { .. }) => {
                    if inner.store.request_halt(run, halt).await? {
                        // It may have come back here meanwhile.
                        if let Some(live) = inner.live().get(&run) {
                            live.cancel.request(halt);
                        }
                        return Ok(());
                    }
                    continue;
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::Stopped {
            run,
            reason: "the run kept moving on while it was being stopped; try again".into(),
            source: None,
        })
    }
}
