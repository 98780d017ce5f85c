//! Durable runs: the [`Engine`], its builder and handles, versions and migrations.

mod durable;

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use thiserror::Error;
use tokio::sync::{Semaphore, broadcast, watch};

use crate::event::{Event, EventKind, Events};
use crate::history::Entry;
use crate::id::{Cancel, Halt};
use crate::run::{Cursor, End, Journal};
use crate::store::{
    CheckpointStore, DynStore, Filter, MemoryStore, RunSummary, Status, StoreError,
};
use crate::testing::Faults;
use crate::{Error, Machine, RunError, RunId, Signal};
use durable::{DurableJournal, Migration, Registered, Registration};

/// A machine the engine can keep: its context and output are serde types.
///
/// Implemented for every [`Machine`] whose `Context` and `Output` are `Serialize` and
/// `DeserializeOwned`; you never implement it yourself.
pub trait Durable:
    Machine<
        Context: Serialize + DeserializeOwned + 'static,
        Output: Serialize + DeserializeOwned + 'static,
    >
{
}

impl<M> Durable for M where
    M: Machine<
            Context: Serialize + DeserializeOwned + 'static,
            Output: Serialize + DeserializeOwned + 'static,
        >
{
}

/// Carries runs stored by an older version of a machine to this one.
///
/// Keep the old version's module (its `#[flow::machine(version = 1)]` with its state types;
/// the bodies are never run again) next to the new one, implement this for the new machine,
/// and register it with [`EngineBuilder::migration`]. On resume, a run stored by version 1
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
    /// An error here marks the run [`Status::Stuck`], with the error as its note; nothing else
    /// is changed, so a fixed migration can resume it later.
    fn migrate(
        state: Old::State,
        context: Old::Context,
    ) -> Result<(Self::State, Self::Context), Error>;
}

/// Where the engine reads the time for durable waits (a retry's backoff survives a restart as
/// a wall-clock deadline).
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's clock: [`SystemTime::now`]. The engine's default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// Runs machines durably, keeping every run in a [`CheckpointStore`] and resuming the
/// unfinished ones after a restart. Cheap to clone: clones share one engine.
///
/// ```
/// # use flow_core::{Graph, Machine, Policy, Result, StateInfo, Step};
/// # #[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
/// # pub enum State { Tick(u32) }
/// # static STATES: [StateInfo; 1] = [StateInfo {
/// #     name: "tick", start: true, end: true, payload: &[], output: Some("u32"), policy: Policy::DEFAULT, signal: None, compensate: None,
/// # }];
/// # static GRAPH: Graph = Graph { name: "countdown", states: &STATES, edges: &[("tick", "tick")],
/// #     start: 0, max_steps: 100, version: 1, fingerprint: "countdown-1" };
/// # pub struct Countdown;
/// # impl Machine for Countdown {
/// #     const NAME: &'static str = "countdown";
/// #     type Context = u32;
/// #     type Input = u32;
/// #     type Output = u32;
/// #     type State = State;
/// #     fn graph() -> &'static Graph { &GRAPH }
/// #     fn start(input: u32) -> State { State::Tick(input) }
/// #     fn index(_: &State) -> usize { 0 }
/// #     async fn step(state: State, ticks: &mut u32) -> Result<Step<State, u32>> {
/// #         let State::Tick(n) = state;
/// #         *ticks += 1;
/// #         Ok(if n == 0 { Step::Done(*ticks) } else { Step::Next(State::Tick(n - 1)) })
/// #     }
/// # }
/// use flow_core::{Engine, store::MemoryStore};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let engine = Engine::builder()
///     .store(MemoryStore::new()) // or SqliteStore::open("runs.db")?
///     .machine::<Countdown>()
///     .build()?;
///
/// // After a restart: go on with every run the last process left unfinished.
/// let resumed = engine.resume_pending().await?;
/// assert!(resumed.resumed.is_empty());
///
/// let run = engine.start::<Countdown>(3).await?;
/// println!("started run {}", run.id());
/// assert_eq!(run.output().await?, 4);
/// # Ok::<(), flow_core::EngineError>(())
/// # }).unwrap();
/// ```
///
/// A durable run checkpoints after every attempt: after a transition, before a retry's
/// backoff (with the time the retry is due), and at its end. It moves on only once the
/// checkpoint is durable. A run killed mid-way resumes from its last checkpoint: the attempt
/// that was running runs again (a state body runs at least once per visit), and the
/// transitions already checkpointed are never applied again. [`crate::current`] gives the
/// body an idempotency key, the same for every run of the same visit, to pass to the systems
/// it changes.
///
/// Contexts and outputs of durable machines are stored too, so they must be serde types
/// ([`Durable`]). Keep clients and pools out of the context (or `#[serde(skip)]` them).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Box<dyn DynStore>,
    machines: HashMap<&'static str, Arc<dyn Registered>>,
    /// Per machine name, the migrations into its registered version.
    migrations: HashMap<&'static str, Vec<Migration>>,
    slots: Arc<Semaphore>,
    clock: Arc<dyn Clock>,
    seed: Option<u64>,
    /// Every run's events, for whoever subscribes.
    events: broadcast::Sender<Event>,
    /// Runs this engine is running.
    live: Mutex<HashMap<RunId, Live>>,
    /// Attempts that fail without running (tests).
    pub(crate) faults: Option<Faults>,
}

/// A run this engine is running: how it ends, and how to stop it.
#[derive(Clone)]
struct Live {
    machine: &'static str,
    done: watch::Receiver<Option<Ended>>,
    cancel: Arc<Cancel>,
}

/// How a run's task ended.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// The run reached its end; the store has its output or error. A run completed by this
    /// engine carries its last snapshot, with the output.
    Finished(Option<Arc<str>>),
    /// Another engine moved the run on first.
    Conflict { seq: u64, stored: Option<u64> },
    /// The run stopped unfinished (its store failed, its context would not serialize).
    Stopped(String),
}

impl Inner {
    fn now_ms(&self) -> u64 {
        unix_ms(self.clock.now())
    }

    fn live(&self) -> MutexGuard<'_, HashMap<RunId, Live>> {
        durable::lock(&self.live)
    }

    fn forget(&self, run: RunId) {
        self.live().remove(&run);
    }
}

fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut machines: Vec<_> = self.inner.machines.keys().collect();
        machines.sort();
        f.debug_struct("Engine")
            .field("machines", &machines)
            .field("running", &self.inner.live().len())
            .finish_non_exhaustive()
    }
}

/// Builds an [`Engine`]: [`Engine::builder`].
pub struct EngineBuilder {
    store: Option<Box<dyn DynStore>>,
    machines: Vec<(&'static str, Arc<dyn Registered>)>,
    migrations: Vec<(&'static str, Migration)>,
    max_concurrent_runs: usize,
    clock: Arc<dyn Clock>,
    seed: Option<u64>,
    event_capacity: usize,
    faults: Option<Faults>,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let machines: Vec<_> = self.machines.iter().map(|(name, ..)| name).collect();
        f.debug_struct("EngineBuilder")
            .field("machines", &machines)
            .field("max_concurrent_runs", &self.max_concurrent_runs)
            .finish_non_exhaustive()
    }
}

impl EngineBuilder {
    /// Where runs are kept; a fresh [`MemoryStore`] unless set. Use
    /// [`SqliteStore`](crate::store::SqliteStore) for runs that survive the process.
    pub fn store(mut self, store: impl CheckpointStore) -> Self {
        self.store = Some(Box::new(store));
        self
    }

    /// Registers machine `M`, so the engine can start its runs and resume them by name.
    pub fn machine<M: Durable>(mut self) -> Self {
        self.machines.push((M::NAME, Arc::new(Registration::<M>(PhantomData))));
        self
    }

    /// Registers the migration of runs stored by `Old` to `New` (`New: Migrate<Old>`).
    /// `New` must be registered too, under the same name, with a higher version.
    pub fn migration<Old, New>(mut self) -> Self
    where
        Old: Durable,
        New: Durable + Migrate<Old>,
    {
        self.migrations.push((New::NAME, Migration::new::<Old, New>()));
        self
    }

    /// How many runs may execute at once (default 10,000). Runs over the limit are started and
    /// checkpointed, and wait for a slot.
    pub fn max_concurrent_runs(mut self, limit: usize) -> Self {
        self.max_concurrent_runs = limit.max(1);
        self
    }

    /// The clock for durable waits; the system clock unless set. Tests use one they control.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How many events a subscriber may fall behind before it misses the oldest (default
    /// 4,096). Runs never wait for subscribers.
    pub fn event_capacity(mut self, capacity: usize) -> Self {
        self.event_capacity = capacity.max(1);
        self
    }

    /// Seeds the backoff jitter of every run (mixed with each run's id).
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Makes the chosen attempts fail without running them: for tests, see
    /// [`testing`](crate::testing).
    pub fn faults(mut self, faults: Faults) -> Self {
        self.faults = Some(faults);
        self
    }

    /// The engine.
    ///
    /// # Errors
    ///
    /// [`EngineError::Config`] if two machines share a name, a migration does not lead
    /// from a lower version to a registered machine of the same name, or [`Faults`] name a
    /// state no registered machine has.
    pub fn build(self) -> Result<Engine, EngineError> {
        let mut problems = Vec::new();
        let mut machines: HashMap<&'static str, Arc<dyn Registered>> = HashMap::new();
        let mut migrations: HashMap<&'static str, Vec<Migration>> = HashMap::new();
        for (name, registered) in self.machines {
            if let Some(existing) = machines.get(name) {
                if existing.type_id() != registered.type_id() {
                    problems.push(format!(
                        "two machines are registered under the name `{name}`; \
                         rename one with #[flow::machine(name = \"...\")]"
                    ));
                }
                continue;
            }
            machines.insert(name, registered);
        }
        for (name, migration) in self.migrations {
            let Some(registered) = machines.get(name) else {
                problems.push(format!(
                    "a migration leads to machine `{name}`, which is not registered; \
                     add .machine::<...>() for it"
                ));
                continue;
            };
            let graph = registered.graph();
            if migration.to_fingerprint != graph.fingerprint
                && migration.to_version >= graph.version
            {
                problems.push(format!(
                    "a migration of `{name}` leads to version {} with another shape than the \
                     registered machine (version {}); migrate to the registered machine or to \
                     an older version of it",
                    migration.to_version, graph.version
                ));
            } else if migration.from_version >= migration.to_version {
                problems.push(format!(
                    "a migration of `{name}` goes from version {} to version {}; \
                     migrations go from an older version to a newer one",
                    migration.from_version, migration.to_version
                ));
            } else {
                migrations.entry(name).or_default().push(migration);
            }
        }
        for (machine, state) in self.faults.iter().flat_map(Faults::states) {
            match machines.get(machine).map(|registered| registered.graph()) {
                None => problems.push(format!(
                    "faults are injected into machine `{machine}`, which is not registered; \
                     add .machine::<...>() for it"
                )),
                Some(graph) if graph.state(state).is_none() => {
                    let names: Vec<&str> = graph.states.iter().map(|info| info.name).collect();
                    problems.push(format!(
                        "faults are injected into state `{state}`, which machine `{machine}` \
                         does not have; its states are: {}",
                        names.join(", ")
                    ));
                }
                Some(_) => {}
            }
        }
        if !problems.is_empty() {
            return Err(EngineError::Config { problems: problems.join("; ") });
        }
        Ok(Engine {
            inner: Arc::new(Inner {
                store: self.store.unwrap_or_else(|| Box::new(MemoryStore::new())),
                machines,
                migrations,
                slots: Arc::new(Semaphore::new(self.max_concurrent_runs)),
                clock: self.clock,
                seed: self.seed,
                events: broadcast::channel(self.event_capacity).0,
                live: Mutex::new(HashMap::new()),
                faults: self.faults,
            }),
        })
    }
}

/// A started (or resumed) run: its id, and its output once it ends.
pub struct RunHandle<M> {
    run: RunId,
    engine: Engine,
    done: watch::Receiver<Option<Ended>>,
    machine: PhantomData<fn() -> M>,
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

    /// The run's events from now on.
    pub fn events(&self) -> Events {
        self.engine.events_of(self.run)
    }

    /// Waits for the run to end and returns its output.
    ///
    /// # Errors
    ///
    /// [`EngineError::Failed`] with the run's [`RunError`] (its history included) if the run
    /// failed; [`StoreError::Conflict`] (inside [`EngineError::Store`]) if another engine
    /// moved it on; others if it stopped unfinished (its store failed).
    pub async fn output(mut self) -> Result<M::Output, EngineError> {
        let run = self.run;
        let ended = match self.done.wait_for(Option::is_some).await {
            Ok(ended) => ended.clone(),
            Err(_) => Some(Ended::Stopped("the run's task ended without reporting".into())),
        };
        match ended {
            Some(Ended::Finished(Some(snapshot))) => match durable::output::<M>(&snapshot) {
                Ok(Some(output)) => Ok(output),
                _ => self.engine.finished::<M>(run).await,
            },
            Some(Ended::Finished(None)) | None => self.engine.finished::<M>(run).await,
            Some(Ended::Conflict { seq, stored }) => {
                Err(EngineError::Store(StoreError::Conflict { run, seq, stored }))
            }
            Some(Ended::Stopped(reason)) => Err(EngineError::Stopped { run, reason }),
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
    /// The machine version its last checkpoint was written by.
    pub version: u32,
    /// Where it stands.
    pub status: Status,
    /// The state it is in, or ended in.
    pub state: String,
    /// Its last checkpoint's sequence number.
    pub seq: u64,
    /// While a retry backs off: when it is due.
    pub wake_at: Option<SystemTime>,
    /// Why it is stuck, if it is.
    pub note: Option<String>,
    /// Why it failed, or why it paused itself (a state with `on_failure = pause` failed).
    pub error: Option<RunError>,
    /// Every attempt so far, in order.
    pub history: Vec<Entry>,
}

/// What [`Engine::resume_pending`] did.
#[derive(Debug, Default)]
pub struct Resumed {
    /// The runs now running again.
    pub resumed: Vec<RunId>,
    /// The runs that could not be resumed, each with why. Corrupt and incompatible runs are
    /// also marked [`Status::Stuck`] in the store; the others are left as they were.
    pub failed: Vec<EngineError>,
}

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
    /// A run with this id exists already.
    #[error("a run with id {run} exists already; start_as refuses to start it twice")]
    AlreadyExists {
        /// The id.
        run: RunId,
    },
    /// The run is unfinished but not running in this engine.
    #[error(
        "run {run} is unfinished but not running in this engine; \
         call Engine::resume_pending to resume it"
    )]
    NotRunning {
        /// The run.
        run: RunId,
    },
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
    /// A run's state, context or output would not serialize; the run stopped unfinished.
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
    /// The run failed.
    #[error("run {run} failed: {error}")]
    Failed {
        /// The run.
        run: RunId,
        /// How, with the run's history.
        error: RunError,
    },
    /// The run was cancelled ([`Engine::cancel`]).
    #[error("run {run} was cancelled")]
    Cancelled {
        /// The run.
        run: RunId,
    },
    /// The run is paused ([`Engine::pause`]); [`Engine::resume`] continues it.
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
    /// The run is undoing its completed states after a failure; a rollback is not stopped
    /// halfway.
    #[error(
        "run {run} is rolling back after a failure and cannot be cancelled or paused; \
         Engine::resume_pending finishes its rollback, and it ends as failed"
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
    /// The run stopped unfinished; it resumes from its last checkpoint with
    /// [`Engine::resume_pending`].
    #[error("run {run} stopped unfinished: {reason}")]
    Stopped {
        /// The run.
        run: RunId,
        /// Why.
        reason: String,
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

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            store: None,
            machines: Vec::new(),
            migrations: Vec::new(),
            max_concurrent_runs: 10_000,
            clock: Arc::new(SystemClock),
            seed: None,
            event_capacity: 4096,
            faults: None,
        }
    }

    /// Starts a run of `M` with `input` and a default context. Returns once the run's first
    /// checkpoint is durable.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownMachine`] if `M` is not registered; a store error if the first
    /// checkpoint could not be written.
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

    /// Starts a run of `M` under the id `run`, chosen by the caller (from an order number,
    /// say). Starting an id that exists is refused, so a retried request starts one run.
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
        self.registered::<M>()?;
        let graph = M::graph();
        let state = M::start(input);
        let mut cursor = Cursor::new(graph);
        let refused = cursor.enter::<M>(&state, graph.max_steps).err().map(End::Failed);
        let mut journal = DurableJournal::<M> {
            inner: Arc::clone(&self.inner),
            run,
            recorded: 0,
            state_name: graph.states[M::index(&state)].name,
            completed: None,
            cancel: Arc::default(),
            machine: PhantomData,
        };
        if refused.is_none() {
            crate::run::arrive::<M, _>(&state, &mut cursor, &journal);
        }
        let first = journal.record(Some(&state), &cursor, &context, refused.as_ref()).await;
        match first {
            Err(EngineError::Store(StoreError::Conflict { .. })) => {
                return Err(EngineError::AlreadyExists { run });
            }
            Err(error) => return Err(error),
            Ok(()) => {}
        }
        journal.event(journal.state_name, || EventKind::Started);
        let (done, receiver) = watch::channel(None);
        if refused.is_some() {
            let _ = done.send(Some(Ended::Finished(None)));
        } else {
            let live = Live {
                machine: M::NAME,
                done: receiver.clone(),
                cancel: Arc::clone(&journal.cancel),
            };
            self.inner.live().insert(run, live);
            durable::spawn::<M>(journal, state, cursor, context, done, false);
        }
        Ok(RunHandle { run, engine: self.clone(), done: receiver, machine: PhantomData })
    }

    /// Resumes every unfinished run in the store that this engine is not already running:
    /// call it once after a restart. Each resumes from its last checkpoint; a run that was
    /// backing off waits only what was left of its backoff.
    ///
    /// One bad run does not stop the others: a run whose machine is not registered is
    /// reported and left alone; a corrupt run, or one that matches no known version of its
    /// machine, is reported and marked [`Status::Stuck`] with the reason. Stuck runs are tried
    /// again on every call, so a binary with the missing migration picks them up.
    ///
    /// # Errors
    ///
    /// Only if the store cannot list its runs.
    pub async fn resume_pending(&self) -> Result<Resumed, EngineError> {
        let mut pending = self.inner.store.list(Filter::new().status(Status::Running)).await?;
        pending.extend(self.inner.store.list(Filter::new().status(Status::Stuck)).await?);
        let mut report = Resumed::default();
        for summary in pending {
            let run = summary.run;
            match self.resume_one(&summary).await {
                Ok(true) => report.resumed.push(run),
                Ok(false) => {}
                Err(error) => {
                    if matches!(
                        error,
                        EngineError::Corrupt { .. }
                            | EngineError::Incompatible { .. }
                            | EngineError::Migration { .. }
                    ) {
                        self.inner.store.mark(run, Status::Stuck, Some(error.to_string())).await?;
                    }
                    report.failed.push(error);
                }
            }
        }
        Ok(report)
    }

    /// Resumes one run; `Ok(false)` if this engine is already running it.
    async fn resume_one(&self, summary: &RunSummary) -> Result<bool, EngineError> {
        let run = summary.run;
        let Some(registered) = self.inner.machines.get(summary.machine.as_str()) else {
            return Err(EngineError::UnknownMachine { name: summary.machine.clone() });
        };
        if self.inner.live().contains_key(&run) {
            return Ok(false);
        }
        let checkpoints = self.inner.store.checkpoints(run).await?;
        let history = history(run, &summary.machine, &checkpoints)?;
        let Some(latest) = checkpoints.into_iter().last() else {
            return Err(EngineError::Corrupt {
                run,
                machine: summary.machine.clone(),
                detail: "the run has no checkpoint".into(),
            });
        };
        let (done, receiver) = watch::channel(None);
        let cancel = Arc::<Cancel>::default();
        {
            let mut live = self.inner.live();
            if live.contains_key(&run) {
                return Ok(false);
            }
            let machine = registered.name();
            live.insert(run, Live { machine, done: receiver, cancel: Arc::clone(&cancel) });
        }
        let unmark = matches!(summary.status, Status::Stuck | Status::Paused);
        let resumed = registered.resume(&self.inner, latest, history, done, cancel, unmark);
        if resumed.is_err() {
            self.inner.forget(run);
        }
        resumed.map(|()| true)
    }

    /// A handle on run `run` of machine `M`, to wait for its output: for runs resumed by
    /// [`Engine::resume_pending`], or finished ones.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`], [`EngineError::WrongMachine`], or
    /// [`EngineError::NotRunning`] for an unfinished run this engine is not running.
    pub async fn handle<M: Durable>(&self, run: RunId) -> Result<RunHandle<M>, EngineError> {
        let live = self.inner.live().get(&run).map(|live| (live.machine, live.done.clone()));
        let done = match live {
            Some((machine, _)) if machine != M::NAME => {
                return Err(EngineError::WrongMachine {
                    run,
                    expected: M::NAME,
                    found: machine.into(),
                });
            }
            Some((_, done)) => done,
            None => {
                let latest = self.latest::<M>(run).await?;
                if !latest.status.is_finished() {
                    return Err(EngineError::NotRunning { run });
                }
                watch::channel(Some(Ended::Finished(None))).1
            }
        };
        Ok(RunHandle { run, engine: self.clone(), done, machine: PhantomData })
    }

    /// Where run `run` stands, with its full history.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`] for an id the store does not have;
    /// [`EngineError::Corrupt`] if its history does not read back.
    pub async fn status(&self, run: RunId) -> Result<RunStatus, EngineError> {
        let checkpoints = self.inner.store.checkpoints(run).await?;
        let Some(latest) = checkpoints.last() else {
            return Err(EngineError::UnknownRun { run });
        };
        let history = history(run, &latest.machine, &checkpoints)?;
        let summary = self.inner.store.summary(run).await?;
        let (status, note) = summary.map_or((latest.status, None), |s| (s.status, s.note));
        Ok(RunStatus {
            run,
            machine: latest.machine.to_string(),
            version: latest.version,
            status,
            state: latest.state.to_string(),
            seq: latest.seq,
            wake_at: latest.wake_at.map(|ms| UNIX_EPOCH + Duration::from_millis(ms)),
            note,
            // A snapshot that does not read back has no error to show; `resume` reports it.
            error: durable::error(latest).ok().flatten(),
            history,
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
    /// of type `S`, and returns once the signal is checkpointed: the run goes on with it, in
    /// this process or, after a restart, in the next.
    ///
    /// A run this engine is not running (its process stopped) gets the signal in the store,
    /// and this engine resumes it.
    ///
    /// # Errors
    ///
    /// [`EngineError::NotWaiting`] if the run waits for no signal now,
    /// [`EngineError::WrongSignal`] if it waits for another type, [`EngineError::UnknownRun`],
    /// [`EngineError::WrongMachine`]. In each case nothing was delivered and the run is as it
    /// was.
    pub async fn signal<M: Durable, S: Signal<M>>(
        &self,
        run: RunId,
        signal: S,
    ) -> Result<(), EngineError> {
        let value = serde_json::to_value(&signal).map_err(|error| EngineError::Serialize {
            run,
            machine: M::NAME,
            detail: error.to_string(),
        })?;
        let live = self.inner.live().get(&run).cloned();
        if let Some(live) = live {
            if live.machine != M::NAME {
                let found = live.machine.into();
                return Err(EngineError::WrongMachine { run, expected: M::NAME, found });
            }
            let (answer, answered) = tokio::sync::oneshot::channel();
            {
                let waiting = durable::lock(&live.cancel.waiting);
                durable::check_signal::<M, S>(run, *waiting)?;
                let mut mailbox = durable::lock(&live.cancel.mailbox);
                if mailbox.is_some() {
                    return Err(EngineError::NotWaiting { run, state: waiting.map(Into::into) });
                }
                *mailbox = Some((value, answer));
            }
            live.cancel.delivered.notify_waiters();
            return match answered.await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(reason)) => Err(EngineError::Stopped { run, reason }),
                // The wait ended (timeout or stop) before the signal was taken.
                Err(_) => Err(EngineError::NotWaiting { run, state: None }),
            };
        }
        let latest = self.latest::<M>(run).await?;
        if latest.status.is_finished() {
            return Err(EngineError::NotWaiting { run, state: Some(latest.state.into_owned()) });
        }
        let delivered = durable::deliver_stored::<M, S>(&latest, value)?;
        self.inner.store.save(delivered).await?;
        if matches!(latest.status, Status::Running | Status::Stuck)
            && let Some(summary) = self.inner.store.summary(run).await?
        {
            self.resume_one(&summary).await?;
        }
        Ok(())
    }

    /// Every run's events, from now on.
    pub fn events(&self) -> Events {
        Events::new(self.inner.events.subscribe(), None)
    }

    /// Run `run`'s events, from now on.
    pub fn events_of(&self, run: RunId) -> Events {
        Events::new(self.inner.events.subscribe(), Some(run))
    }

    /// Stops run `run` at its next safe point and records it as cancelled: before its next
    /// attempt, or at once if it is backing off. A state body that is running finishes its
    /// attempt unless it checks [`crate::cancelled`]. A run this engine is not running (one
    /// left by a stopped process) is cancelled in the store directly.
    ///
    /// Returns once the cancellation is requested; [`RunHandle::output`] returns
    /// [`EngineError::Cancelled`] once the run has stopped. A run that is rolling back after a
    /// failure finishes its rollback and ends as failed.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`]; [`EngineError::Finished`] if the run has finished;
    /// [`EngineError::RollingBack`] for a run this engine is not running that was stopped in
    /// the middle of a rollback.
    pub async fn cancel(&self, run: RunId) -> Result<(), EngineError> {
        self.halt(run, Halt::Cancel).await
    }

    /// Holds run `run` at its next safe point (as [`Engine::cancel`] stops it), checkpointed
    /// as [`Status::Paused`], until [`Engine::resume`]. A paused run stays paused across
    /// restarts: [`Engine::resume_pending`] leaves it alone. Its handle's
    /// [`output`](RunHandle::output) returns [`EngineError::Paused`]. A run that is rolling
    /// back after a failure is not paused: it finishes its rollback.
    ///
    /// # Errors
    ///
    /// [`EngineError::UnknownRun`]; [`EngineError::Finished`] if the run has finished;
    /// [`EngineError::RollingBack`] for a run this engine is not running that was stopped in
    /// the middle of a rollback.
    pub async fn pause(&self, run: RunId) -> Result<(), EngineError> {
        self.halt(run, Halt::Pause).await
    }

    /// Continues a paused run from its checkpoint. Get a handle on it with
    /// [`Engine::handle`].
    ///
    /// # Errors
    ///
    /// [`EngineError::NotPaused`] if the run is not paused (or still on its way to its safe
    /// point); [`EngineError::UnknownRun`]; [`EngineError::UnknownMachine`] if its machine is
    /// not registered.
    pub async fn resume(&self, run: RunId) -> Result<(), EngineError> {
        let summary = self.inner.store.summary(run).await?;
        let summary = summary.ok_or(EngineError::UnknownRun { run })?;
        // A live run is still on its way to its safe point.
        let status =
            if self.inner.live().contains_key(&run) { Status::Running } else { summary.status };
        if status != Status::Paused {
            return Err(EngineError::NotPaused { run, status });
        }
        self.resume_one(&summary).await?;
        Ok(())
    }

    async fn halt(&self, run: RunId, halt: Halt) -> Result<(), EngineError> {
        if let Some(live) = self.inner.live().get(&run) {
            live.cancel.request(halt);
            return Ok(());
        }
        let latest = self.inner.store.latest(run).await?;
        let latest = latest.ok_or(EngineError::UnknownRun { run })?;
        if latest.status.is_finished() {
            return Err(EngineError::Finished { run, status: latest.status });
        }
        if durable::rolling_back(&latest.snapshot) {
            return Err(EngineError::RollingBack { run });
        }
        let status = match halt {
            Halt::Pause if latest.status == Status::Paused => return Ok(()),
            Halt::Pause => Status::Paused,
            Halt::Cancel => Status::Cancelled,
        };
        // A run no engine here is running (left by a stopped process, or paused): halted in
        // the store, by compare-and-set, so a process still running it stops at its next step.
        let halted = crate::store::Checkpoint {
            seq: latest.seq + 1,
            status,
            wake_at: None,
            entries: "[]".into(),
            ..latest
        };
        self.inner.store.save(halted).await?;
        if let Some(summary) = self.inner.store.summary(run).await?
            && summary.status == Status::Stuck
        {
            self.inner.store.mark(run, status, None).await?;
        }
        Ok(())
    }

    fn registered<M: Durable>(&self) -> Result<(), EngineError> {
        match self.inner.machines.get(M::NAME) {
            Some(registered) if registered.type_id() == TypeId::of::<M>() => Ok(()),
            _ => Err(EngineError::UnknownMachine { name: M::NAME.into() }),
        }
    }

    async fn latest<M: Durable>(
        &self,
        run: RunId,
    ) -> Result<crate::store::Checkpoint, EngineError> {
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
    async fn finished<M: Durable>(&self, run: RunId) -> Result<M::Output, EngineError> {
        let latest = self.latest::<M>(run).await?;
        let corrupt =
            |detail: String| EngineError::Corrupt { run, machine: M::NAME.into(), detail };
        match latest.status {
            Status::Completed => durable::output::<M>(&latest.snapshot)
                .map_err(corrupt)?
                .ok_or_else(|| corrupt("a completed run's checkpoint holds no output".into())),
            Status::Failed => {
                let error = durable::error(&latest)
                    .map_err(corrupt)?
                    .ok_or_else(|| corrupt("a failed run's checkpoint holds no error".into()))?;
                let checkpoints = self.inner.store.checkpoints(run).await?;
                let history = history(run, &latest.machine, &checkpoints)?;
                Err(EngineError::Failed { run, error: error.with_history(history) })
            }
            Status::Cancelled => Err(EngineError::Cancelled { run }),
            Status::Paused => Err(EngineError::Paused { run }),
            Status::Running | Status::Stuck => Err(EngineError::NotRunning { run }),
        }
    }
}

/// A run's full history, from the entries each checkpoint added.
fn history(
    run: RunId,
    machine: &str,
    checkpoints: &[crate::store::Checkpoint],
) -> Result<Vec<Entry>, EngineError> {
    let mut history = Vec::new();
    for checkpoint in checkpoints {
        let entries: Vec<Entry> =
            serde_json::from_str(&checkpoint.entries).map_err(|error| EngineError::Corrupt {
                run,
                machine: machine.into(),
                detail: format!(
                    "the history in checkpoint {} does not read back: {error}",
                    checkpoint.seq
                ),
            })?;
        history.extend(entries);
    }
    Ok(history)
}
