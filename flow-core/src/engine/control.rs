//! What callers do with runs: start, signal, read, follow, shut down (steering them is in
//! `steer.rs`). Each is a write to (or read of) the store, so it works from any engine on the
//! store, for a run waiting, queued, executing here or executing in another process.

use std::any::TypeId;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, UNIX_EPOCH};

use super::journal::{self, DurableJournal};
use super::registry::spawn;
use super::scheduler::{self, ensure_lease};
use super::{Durable, Engine, EngineError, Recorded, Resumed, RunHandle, RunStatus};
use super::{signalled, snapshot};
use crate::event::{EventKind, Events, Reporter, kind};
use crate::history::Entry;
use crate::run::{Cursor, End, Journal};
use crate::store::{Checkpoint, Filter, Lease, RunSummary, Status, StoreError};
use crate::{RunId, Signal};

/// How often a write from outside a run is tried again when the run moved on meanwhile.
pub(super) const RACES: usize = 8;

impl Engine {
    /// Starts a run of `M` with `input` and a default context. Returns once the run's first
    /// checkpoint is durable.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownMachine`] if `M` is not registered; [`EngineError::ShuttingDown`];
    /// a store error if the first checkpoint could not be written.
    pub async fn start<M: Durable>(&self, input: M::Input) -> Result<RunHandle<M>, EngineError>
    where
        M::Context: Default,
    {
        self.start_as::<M>(RunId::random(), input, M::Context::default()).await
    }

    /// Starts a run of `M` with `input` and `context`.
    ///
    /// # Errors
    ///
    /// As [`Engine::start`].
    pub async fn start_with<M: Durable>(
        &self,
        input: M::Input,
        context: M::Context,
    ) -> Result<RunHandle<M>, EngineError> {
        self.start_as::<M>(RunId::random(), input, context).await
    }

    /// Starts a run of `M` under the id `run`, chosen by the caller. Starting an id that
    /// exists is refused, so a retried request starts one run. To start a run per order
    /// number or other business key, [`Engine::start_keyed`] derives the id from the key and
    /// keeps the key with the run.
    ///
    /// The run executes here at once if a slot is free; otherwise it waits in the store,
    /// runnable, for the first engine with a free slot.
    ///
    /// # Errors
    ///
    /// [`EngineError::AlreadyExists`] if the id is taken; otherwise as [`Engine::start`].
    pub async fn start_as<M: Durable>(
        &self,
        run: RunId,
        input: M::Input,
        context: M::Context,
    ) -> Result<RunHandle<M>, EngineError> {
        self.start_run::<M>(run, None, None, input, context).await
    }

    /// Starts a run of `M` under a business key of the caller's (an order number, say:
    /// `"order-1042"`), kept with the run: [`RunSummary::key`] lists it, and
    /// [`Filter::key`] finds the run by it.
    ///
    /// The run's id is [`RunId::for_key`]`(M::NAME, key)`, the same for every start with
    /// this key, on every engine and every version of `flow`: starting the key again is
    /// refused, like [`Engine::start_as`] refuses an id that exists, so a retried request
    /// starts one run. [`Engine::handle_for_key`] gets the run's handle back.
    ///
    /// ```no_run
    /// # use flow::{Durable, Engine, EngineError};
    /// # async fn order<M: Durable>(engine: Engine, input: M::Input, cx: M::Context)
    /// # -> Result<(), EngineError> {
    /// let run = match engine.start_keyed::<M>("order-1042", input, cx).await {
    ///     Ok(run) => run,
    ///     // Started by an earlier request: the same run.
    ///     Err(EngineError::AlreadyExists { .. }) => engine.handle_for_key::<M>("order-1042").await?,
    ///     Err(error) => return Err(error),
    /// };
    /// # let _ = run; Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// [`EngineError::AlreadyExists`] if a run of `M` was started under `key`; otherwise as
    /// [`Engine::start`].
    pub async fn start_keyed<M: Durable>(
        &self,
        key: impl Into<String>,
        input: M::Input,
        context: M::Context,
    ) -> Result<RunHandle<M>, EngineError> {
        let key = key.into();
        let run = RunId::for_key(M::NAME, &key);
        self.start_run::<M>(run, Some(key), None, input, context).await
    }

    /// Starts a run of `M` with `input`, `context` and its own `priority` for the engine's
    /// resource pools, in place of the machine's (`#[flow::machine(priority = N)]`, 0 unless
    /// declared): when attempts wait for a pool's units ([`EngineBuilder::pool`]), lower
    /// values go first, and equal ones in arrival order. The priority is stored with the run
    /// and kept across restarts and takeovers.
    ///
    /// # Errors
    ///
    /// As [`Engine::start`].
    ///
    /// [`EngineBuilder::pool`]: crate::EngineBuilder::pool
    pub async fn start_with_priority<M: Durable>(
        &self,
        input: M::Input,
        context: M::Context,
        priority: i32,
    ) -> Result<RunHandle<M>, EngineError> {
        self.start_run::<M>(RunId::random(), None, Some(priority), input, context).await
    }

    async fn start_run<M: Durable>(
        &self,
        run: RunId,
        key: Option<String>,
        priority: Option<i32>,
        input: M::Input,
        mut context: M::Context,
    ) -> Result<RunHandle<M>, EngineError> {
        let inner = &self.inner;
        scheduler::start(inner);
        self.registered::<M>()?;
        if inner.closing.load(Ordering::SeqCst) {
            return Err(EngineError::ShuttingDown);
        }
        let graph = M::graph();
        if let Some(registered) = inner.machines.get(M::NAME) {
            registered.restore(&mut context);
        }
        let state = M::start(input);
        let mut cursor = Cursor::new(graph);
        cursor.priority = priority;
        let refused = cursor.enter::<M>(&state, graph.max_steps).err().map(End::Failed);
        let permit = Arc::clone(&inner.slots).try_acquire_owned().ok();
        if permit.is_some() {
            ensure_lease(inner).await?;
        }
        // A fresh run's first claim: token 1.
        let lease = permit.as_ref().map(|_| Lease { owner: Arc::clone(&inner.owner), token: 1 });
        let name = graph.states[M::index(&state)].name;
        let mut journal = DurableJournal::<M>::new(inner, run, lease, name);
        journal.key = key;
        if refused.is_none() {
            crate::run::arrive::<M, _>(&state, &mut cursor, &journal);
        }
        match journal.record(Some(&state), &mut cursor, &context, refused.as_ref()).await {
            Ok(()) => {}
            Err(journal::Stop::Lost(EngineError::Store(StoreError::Conflict { .. }))) => {
                return Err(EngineError::AlreadyExists { run });
            }
            Err(journal::Stop::Lost(error) | journal::Stop::Failed(error)) => return Err(error),
            // Shutting down between the check and the write: handed to the store.
            Err(journal::Stop::Waiting) => {}
        }
        journal.event(journal.state_name, kind!(Started), || EventKind::Started);
        match permit {
            Some(permit) if refused.is_none() && !journal.released => {
                spawn::<M>(journal, state, cursor, context, permit);
            }
            // Queued for a slot, here or in another engine.
            None if refused.is_none() && !journal.released => inner.runnable(),
            // Ended, or waiting in the store (its due time, if any, is with the scheduler).
            _ => {}
        }
        Ok(RunHandle { run, engine: self.clone(), machine: PhantomData })
    }

    /// Claims runnable runs now, instead of at the scheduler's next look at the store, and
    /// gives stuck runs another chance: they are made runnable again, so a binary with a
    /// missing migration (or a fix) picks them up.
    ///
    /// An engine claims runnable runs on its own, from the moment it is built: after a
    /// restart, call this only to retry stuck runs, or to learn which runs it claimed. Runs
    /// held by an engine that died are claimed once that engine's lease lapses.
    ///
    /// One bad run does not stop the others: a corrupt run, or one that matches no known
    /// version of its machine, is reported and marked [`Status::Stuck`] with the reason.
    ///
    /// # Errors
    ///
    /// Only if the store cannot list or claim runs.
    pub async fn resume_pending(&self) -> Result<Resumed, EngineError> {
        let inner = &self.inner;
        scheduler::start(inner);
        // Claims held off meanwhile, so the stuck runs made runnable are claimed here.
        let _one = inner.claiming.lock().await;
        for summary in inner.store.list(Filter::new().status(Status::Stuck)).await? {
            if inner.names.contains(&summary.machine.as_str()) {
                inner.store.mark(summary.run, Status::Running, None, None).await?;
            }
        }
        let (mut resumed, mut failed) = scheduler::claim_now(inner, false).await;
        let (lapsed, lapsed_failed) = scheduler::claim_now(inner, true).await;
        resumed.extend(lapsed);
        failed.extend(lapsed_failed);
        Ok(Resumed { resumed, failed })
    }

    /// A handle on run `run` of machine `M`, to wait for its output, wherever it runs.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`], [`EngineError::WrongMachine`].
    pub async fn handle<M: Durable>(&self, run: RunId) -> Result<RunHandle<M>, EngineError> {
        scheduler::start(&self.inner);
        self.latest::<M>(run).await?;
        Ok(RunHandle { run, engine: self.clone(), machine: PhantomData })
    }

    /// A handle on the run of machine `M` started under the business key `key`
    /// ([`Engine::start_keyed`]): the run [`RunId::for_key`]`(M::NAME, key)`.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`] if no run of `M` was started under `key`.
    pub async fn handle_for_key<M: Durable>(&self, key: &str) -> Result<RunHandle<M>, EngineError> {
        self.handle::<M>(RunId::for_key(M::NAME, key)).await
    }

    /// Where run `run` stands, with its full history.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`] for an id the store does not have;
    /// [`EngineError::Corrupt`] if its history does not read back.
    pub async fn status(&self, run: RunId) -> Result<RunStatus, EngineError> {
        let inner = &self.inner;
        // The summary first: the checkpoint read after it is as new or newer, so a run that
        // has finished shows its status, output and error from that one checkpoint.
        let summary = inner.store.summary(run).await?;
        let Some(latest) = inner.store.latest(run).await? else {
            return Err(EngineError::UnknownRun { run });
        };
        let history = self.history(run, &latest.machine).await?;
        let (status, note, wait) = match summary {
            // What no checkpoint says: a run marked stuck and why, whether it waits unheld.
            Some(summary) if !latest.status.is_finished() => {
                (summary.status, summary.note, summary.wait)
            }
            _ => (latest.status, None, latest.wait),
        };
        let (payload, context, parent) = super::erased::stored_json(&latest.snapshot);
        Ok(RunStatus {
            run,
            machine: latest.machine.to_string(),
            key: latest.key.clone(),
            version: latest.version,
            status,
            state: latest.state.to_string(),
            payload,
            context,
            parent,
            seq: latest.seq,
            wait,
            wake_at: latest.wake_at.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            waiting_for_pool: inner.pools.waiting_for(run),
            note,
            // A snapshot that does not read back has no error to show; a claim reports it.
            error: snapshot::error(&latest).ok().flatten(),
            output: match latest.status {
                Status::Completed => super::erased::output_json(&latest.snapshot),
                _ => None,
            },
            history,
        })
    }

    /// What run `run` recorded after its checkpoint `after` ([`RunStatus::seq`],
    /// [`EventKind::Checkpointed`]): where it stands now, and the history entries of each
    /// later checkpoint, read from the store. A reader that has seen a run up to one
    /// checkpoint learns from it what came since, wherever the run executes: this engine's
    /// [`Engine::events_of`] carries only what happens here.
    ///
    /// ```no_run
    /// # async fn watch(engine: flow::Engine, run: flow::RunId) -> Result<(), flow::EngineError> {
    /// let mut seen = engine.status(run).await?.seq;
    /// loop {
    ///     let recorded = engine.recorded_after(run, seen).await?;
    ///     for (seq, entries) in recorded.checkpoints.unwrap_or_default() {
    ///         for entry in entries {
    ///             println!("checkpoint {seq}: {entry}");
    ///         }
    ///     }
    ///     seen = recorded.seq;
    ///     if recorded.status.is_finished() {
    ///         return Ok(());
    ///     }
    ///     tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`] for an id the store does not have;
    /// [`EngineError::Corrupt`] if entries do not read back.
    pub async fn recorded_after(&self, run: RunId, after: u64) -> Result<Recorded, EngineError> {
        let store = &self.inner.store;
        let Some(latest) = store.latest(run).await? else {
            return Err(EngineError::UnknownRun { run });
        };
        // Read after the checkpoint: rows newer than it may have come meanwhile, left for the
        // next call.
        let checkpoints = if after < latest.seq {
            match store.history_after(run, after).await? {
                Some(rows) => {
                    let mut rows =
                        rows.into_iter().filter(|(seq, _)| *seq <= latest.seq).peekable();
                    let mut checkpoints = Vec::new();
                    for seq in after + 1..=latest.seq {
                        let entries =
                            match rows.next_if(|(at, _)| *at == seq) {
                                Some((_, entries)) => serde_json::from_str(&entries).map_err(
                                    |error| EngineError::Corrupt {
                                        run,
                                        machine: latest.machine.to_string(),
                                        detail: format!(
                                            "the history entries of checkpoint {seq} do not read \
                                         back: {error}"
                                        ),
                                    },
                                )?,
                                None => Vec::new(),
                            };
                        checkpoints.push((seq, entries));
                    }
                    Some(checkpoints)
                }
                None => None,
            }
        } else {
            Some(Vec::new())
        };
        Ok(Recorded {
            run,
            seq: latest.seq,
            status: latest.status,
            state: latest.state.to_string(),
            wait: latest.wait,
            checkpoints,
        })
    }

    /// The runs `filter` matches, oldest first.
    ///
    /// # Errors
    ///
    /// If the store cannot list them.
    pub async fn list(&self, filter: Filter) -> Result<Vec<RunSummary>, EngineError> {
        Ok(self.inner.store.list(filter).await?)
    }

    /// Delivers `signal` to run `run`, waiting for it in a state with a `#[signal]` parameter
    /// of type `S`, and returns once the signal is in the store: the run is runnable at once,
    /// and this engine (or another on the store) claims it and goes on with it.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotWaiting`] if the run waits for no signal now (it is executing an
    /// attempt, or has finished, or its state takes none), [`EngineError::WrongSignal`] if it
    /// waits for another type, [`EngineError::UnknownRun`], [`EngineError::WrongMachine`]. In
    /// each case nothing was delivered and the run is as it was.
    pub async fn signal<M: Durable, S: Signal<M>>(
        &self,
        run: RunId,
        signal: S,
    ) -> Result<(), EngineError> {
        let inner = &self.inner;
        scheduler::start(inner);
        let value = signal.to_json().map_err(|error| EngineError::Serialize {
            run,
            machine: M::NAME,
            detail: error.to_string(),
        })?;
        for _ in 0..RACES {
            let latest = self.latest::<M>(run).await?;
            let state = latest.state.to_string();
            if latest.status.is_finished() {
                return Err(EngineError::NotWaiting { run, state: Some(state) });
            }
            let delivered =
                signalled::deliver_stored::<M, S>(&latest, value.clone(), inner.now_ms())?;
            match inner.store.save(delivered).await {
                Ok(()) => {
                    self.reporter::<M>(run, &state).send(EventKind::SignalReceived);
                    inner.runnable();
                    return Ok(());
                }
                // The run moved on meanwhile: look again.
                Err(StoreError::Conflict { .. }) => continue,
                // An engine holds it: it is executing, not waiting.
                Err(StoreError::Fenced { .. }) => {
                    return Err(EngineError::NotWaiting { run, state: Some(state) });
                }
                Err(error) => return Err(error.into()),
            }
        }
        Err(EngineError::NotWaiting { run, state: None })
    }

    /// Every run's events, as this engine sees them, from now on.
    pub fn events(&self) -> Events {
        self.inner.events.every()
    }

    /// Every run's events of the kinds named (as [`EventKind::name`] gives them:
    /// `["Started", "Completed"]`), as this engine sees them, from now on. The engine wakes
    /// this subscriber only for those, where one of [`Engine::events`] is woken for each
    /// event of every run and drops what it does not want; no names is every kind.
    ///
    /// ```no_run
    /// # async fn watch(engine: flow::Engine) -> Result<(), flow::EngineError> {
    /// let mut ends = engine.events_of_kinds(&["Completed", "Failed", "Cancelled"])?;
    /// while let Some(end) = ends.next().await {
    ///     println!("{end}");
    /// }
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownEventKind`] for a name that is no kind of event.
    pub fn events_of_kinds(&self, names: &[&str]) -> Result<Events, EngineError> {
        let mut kinds = 0u32;
        for name in names {
            let Some(index) = EventKind::NAMES.iter().position(|known| known == name) else {
                return Err(EngineError::UnknownEventKind { name: (*name).to_owned() });
            };
            kinds |= 1 << index;
        }
        Ok(if kinds == 0 { self.events() } else { self.inner.events.of_kinds(kinds) })
    }

    /// Run `run`'s events, as this engine sees them, from now on.
    pub fn events_of(&self, run: RunId) -> Events {
        self.inner.events.of(run)
    }

    /// Shuts the engine down: it claims and starts nothing more, lets the attempts it is
    /// executing finish for up to `grace`, and hands their runs back to the store, runnable,
    /// for the next engine. Runs still executing when `grace` is over are cut off and handed
    /// back too; their attempt runs again from the start elsewhere.
    ///
    /// # Errors
    ///
    /// If the store fails while runs are handed back (they are then taken over once this
    /// engine's lease lapses).
    pub async fn shutdown(&self, grace: Duration) -> Result<(), EngineError> {
        let inner = &self.inner;
        inner.closing.store(true, Ordering::SeqCst);
        inner.wake.notify_one();
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let changed = inner.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if inner.live().is_empty() {
                return Ok(());
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                break;
            }
        }
        let left: Vec<(RunId, Lease, tokio::task::AbortHandle)> = inner
            .live()
            .iter()
            .map(|(run, live)| (*run, live.lease.clone(), live.abort.clone()))
            .collect();
        let mut failed = None;
        for (run, lease, abort) in left {
            abort.abort();
            inner.live().remove(&run);
            if let Err(error) = inner.store.release(run, lease).await {
                failed = Some(error);
            }
        }
        inner.changed.notify_waiters();
        failed.map_or(Ok(()), |error| Err(error.into()))
    }

    fn registered<M: Durable>(&self) -> Result<(), EngineError> {
        match self.inner.machines.get(M::NAME) {
            Some(registered) if registered.type_id() == TypeId::of::<M>() => Ok(()),
            _ => Err(EngineError::UnknownMachine { name: M::NAME.into() }),
        }
    }

    pub(crate) async fn latest<M: Durable>(&self, run: RunId) -> Result<Checkpoint, EngineError> {
        let latest = self.inner.store.latest(run).await?;
        let latest = latest.ok_or(EngineError::UnknownRun { run })?;
        if latest.machine != M::NAME {
            return Err(EngineError::WrongMachine {
                run,
                expected: M::NAME,
                found: latest.machine.into_owned(),
            });
        }
        Ok(latest)
    }

    /// The output (or error) of a finished run, read from its last checkpoint.
    pub(crate) async fn finished<M: Durable>(&self, run: RunId) -> Result<M::Output, EngineError> {
        let latest = self.latest::<M>(run).await?;
        let corrupt =
            |detail: String| EngineError::Corrupt { run, machine: M::NAME.into(), detail };
        match latest.status {
            Status::Completed => snapshot::output::<M>(&latest.snapshot)
                .map_err(corrupt)?
                .ok_or_else(|| corrupt("a completed run's checkpoint holds no output".into())),
            Status::Failed => {
                let error = snapshot::error(&latest)
                    .map_err(corrupt)?
                    .ok_or_else(|| corrupt("a failed run's checkpoint holds no error".into()))?;
                let history = self.history(run, &latest.machine).await?;
                Err(EngineError::Failed { run, error: error.with_history(history) })
            }
            Status::Cancelled => Err(EngineError::Cancelled { run }),
            Status::Paused => Err(EngineError::Paused { run }),
            Status::Running | Status::Stuck => Err(EngineError::Stopped {
                run,
                reason: "the run has not finished".into(),
                source: None,
            }),
        }
    }

    /// A run's full history, from the entries each checkpoint added.
    async fn history(&self, run: RunId, machine: &str) -> Result<Vec<Entry>, EngineError> {
        let mut history = Vec::new();
        for (index, entries) in self.inner.store.history(run).await?.iter().enumerate() {
            let entries: Vec<Entry> =
                serde_json::from_str(entries).map_err(|error| EngineError::Corrupt {
                    run,
                    machine: machine.into(),
                    detail: format!("the history entries #{index} do not read back: {error}"),
                })?;
            history.extend(entries);
        }
        Ok(history)
    }

    fn reporter<M: Durable>(&self, run: RunId, state: &str) -> Reporter {
        self.reporter_named(run, M::NAME, state)
    }

    /// Where events about run `run` go when no journal of it is at hand.
    pub(super) fn reporter_named(&self, run: RunId, machine: &str, state: &str) -> Reporter {
        let registered = self.inner.machines.get(machine);
        let machine = registered.map_or("?", |registered| registered.name());
        let graph = registered.map(|registered| registered.graph());
        let state = graph.and_then(|graph| graph.state(state)).map_or("?", |info| info.name);
        self.inner.reporter(run, machine, state)
    }
}
