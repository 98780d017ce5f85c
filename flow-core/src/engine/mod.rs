//! Durable runs: the [`Engine`], a worker over a [`CheckpointStore`].
//!
//! The store is the truth. A run lives in its store: its latest checkpoint, its history, and
//! why it waits (a signal, a timer, a retry's backoff, a pause) and until when. An engine
//! claims runs that are runnable (new, due, signalled, resumed, or whose holder's lease
//! lapsed), executes them until they wait or end, and lets go. A waiting run costs no memory
//! in any engine and holds no slot.
//!
//! - [`builder`](EngineBuilder): the store, the machines, limits and leases.
//! - [`handle`](RunHandle): a run's id, its output once it ends, its status.
//! - control: start, signal, cancel, pause, resume and delete, all writes to the store, so
//!   they work from any engine, for a run anywhere.
//! - the scheduler: claims, the owner lease and its heartbeat, shutdown.
//! - the journal: what a run writes to the store as it moves on.
//! - versions: [`Migrate`], carrying runs of an older version forward.

mod branches;
mod builder;
mod control;
mod erased;
mod error;
mod handle;
mod journal;
pub(crate) mod pools;
mod registry;
mod scheduler;
mod signalled;
mod snapshot;
mod steer;
mod versions;

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, Semaphore, watch};

use crate::Machine;
use crate::current::Cancel;
use crate::event::{Channels, Reporter};
use crate::store::{DynStore, Lease};
use crate::testing::Faults;
use crate::{RunError, RunId, SharedError};

pub use builder::EngineBuilder;
pub use erased::{DecodeError, JsonError, JsonPart, MachineInfo, StartJson};
pub use error::EngineError;
pub use handle::{Recorded, Resumed, RunHandle, RunStatus};
pub use versions::Migrate;

use registry::Registered;
use versions::Migration;

/// A machine the engine can keep: its context and output are serde types, and its input
/// reads from JSON.
///
/// Implemented for every [`Machine`] whose `Context` and `Output` are `Serialize` and
/// `DeserializeOwned`, whose `Context` is `Send` (runs move between the engine's tasks), and
/// whose `Input` is `DeserializeOwned` and `Send` (so that [`Engine::start_json`] starts a
/// run by name, from JSON); you never implement it yourself. A generated machine's input is
/// its start state's payload, which is stored and moves between threads, so it always is.
pub trait Durable:
    Machine<
        Context: Serialize + DeserializeOwned + Send + 'static,
        Input: DeserializeOwned + Send,
        Output: Serialize + DeserializeOwned + 'static,
    >
{
}

impl<M> Durable for M where
    M: Machine<
            Context: Serialize + DeserializeOwned + Send + 'static,
            Input: DeserializeOwned + Send,
            Output: Serialize + DeserializeOwned + 'static,
        >
{
}

/// Where the engine reads the time for durable waits and leases (a retry's backoff survives a
/// restart as a wall-clock deadline).
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

/// Runs machines durably: a worker over a [`CheckpointStore`](crate::store::CheckpointStore) that claims runnable runs,
/// executes them until they wait or end, and lets go. Cheap to clone: clones share one engine.
///
/// ```
/// use flow::{Engine, store::MemoryStore};
///
/// #[flow::machine]
/// pub mod countdown {
///     use flow::prelude::*;
///
///     /// Counts its ticks in the context, down to zero.
///     #[state(start, to(tick, done))]
///     async fn tick(ticks: &mut u32, left: u32) -> Result<Tick> {
///         *ticks += 1;
///         if left == 0 { goto!(done) } else { goto!(tick(left - 1)) }
///     }
///
///     #[state(end)]
///     async fn done(ticks: &mut u32) -> Result<u32> {
///         Ok(*ticks)
///     }
/// }
/// type Countdown = countdown::Machine;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let engine = Engine::builder()
///     .store(MemoryStore::new()) // or SqliteStore::open("runs.db")?
///     .machine::<Countdown>()
///     .build()?;
///
/// let run = engine.start::<Countdown>(3).await?;
/// println!("started run {}", run.id());
/// assert_eq!(run.output().await?, 4);
/// # Ok::<(), flow::EngineError>(())
/// # }).unwrap();
/// ```
///
/// **Checkpoints.** A durable run checkpoints after every attempt: after a transition,
/// before a retry's backoff (with the time the retry is due), and at its end. It moves on only
/// once the checkpoint is durable. A run killed mid-way is taken over from its last
/// checkpoint: the attempt that was running counts as a failed attempt
/// ([`Failure::Interrupted`](crate::history::Failure::Interrupted)) and runs again within the
/// state's retries (a state body runs at least once per visit); the transitions already
/// checkpointed are never applied again. [`crate::current`] gives the body an idempotency key,
/// the same for every attempt of the same visit, to pass to the systems it changes.
///
/// **What waits where.** A run that waits (for a signal, a `wait` timer, a retry's backoff,
/// or paused) is written to the store with why and until when, and no engine holds it: it
/// costs no memory and no slot. When it is due (or signalled, or resumed), whichever engine
/// on the store claims it first runs it on. After a restart, runnable runs are claimed without
/// any call; [`Engine::resume_pending`] claims at once, and retries stuck runs.
///
/// **Leases.** An engine holds the runs it executes under its owner lease (10 s by default,
/// [`EngineBuilder::lease`]), renewed while it holds any. If the engine dies, another engine
/// on the store takes its runs over once the lease lapses (up to
/// [`EngineBuilder::max_reassignments`] times in one state visit, then the state fails);
/// every write carries the claim's fencing token, so an engine that lost a run can never
/// overwrite a newer checkpoint. State bodies read the token
/// ([`Current::fencing_token`](crate::Current::fencing_token)) to fence the writes they make
/// elsewhere the same way.
///
/// **Slots.** [`EngineBuilder::max_concurrent_runs`] bounds the runs executing at once in
/// this engine; waiting runs hold nothing.
///
/// **Resources.** Contexts of durable machines are stored, so they must be serde types
/// ([`Durable`]). Keep clients and pools in `#[serde(skip)]` fields and give them back to
/// every run with [`EngineBuilder::machine_with`].
///
/// **Shutdown.** [`Engine::shutdown`] stops claiming, lets executing attempts finish, and
/// hands their runs back to the store for the next engine.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    store: Box<dyn DynStore>,
    machines: HashMap<&'static str, Arc<dyn Registered>>,
    /// Per machine name, the context of a run started from JSON without one
    /// ([`EngineBuilder::default_context`]).
    contexts: HashMap<&'static str, erased::NewContext>,
    /// The registered machines' names, for claims.
    names: Vec<&'static str>,
    /// Per machine name, the migrations into its registered version.
    migrations: HashMap<&'static str, Vec<Migration>>,
    slots: Arc<Semaphore>,
    /// The resource pools states hold while their attempts run.
    pools: Arc<pools::Pools>,
    /// Forks this engine last looked at, by forking run: how many of their branches were
    /// open, so that a branch ending here wakes its forking run only if it is the last.
    joins: Mutex<HashMap<RunId, u32>>,
    clock: Arc<dyn Clock>,
    seed: Option<u64>,
    /// Every run's events, and each followed run's, for whoever subscribes.
    events: Arc<Channels>,
    /// Runs this engine is executing.
    live: Mutex<HashMap<RunId, Live>>,
    /// Attempts that fail without running (tests).
    faults: Option<Faults>,
    /// This engine's owner id in the store's leases.
    owner: Arc<str>,
    lease: Duration,
    poll: Duration,
    retention: Option<Duration>,
    /// How many takeovers in a row a state visit may see before the engine fails it.
    max_reassignments: u32,
    /// Until when the owner lease was last renewed, in Unix milliseconds.
    lease_until: AtomicU64,
    /// Wakes the scheduler: a slot came free, a run became due.
    wake: Arc<Notify>,
    /// Wakes handles: a run here ended or went to wait.
    changed: Notify,
    /// The earliest time a write of this engine made a run due, in Unix milliseconds.
    due_hint: AtomicU64,
    /// Runnable runs may be waiting for a slot.
    backlog: AtomicBool,
    /// Set by `Engine::shutdown`.
    closing: AtomicBool,
    /// Whether the scheduler's task runs.
    scheduling: AtomicBool,
    /// One renewal of the owner lease at a time.
    renewing: tokio::sync::Mutex<()>,
    /// One claim at a time, so that `resume_pending` reports on the runs it makes runnable.
    claiming: tokio::sync::Mutex<()>,
}

/// A run this engine is executing: how it ends, and how to stop it.
#[derive(Clone)]
struct Live {
    done: watch::Receiver<Option<Ended>>,
    cancel: Arc<Cancel>,
    lease: Lease,
    abort: tokio::task::AbortHandle,
}

/// How a run's execution in this engine ended.
#[derive(Debug, Clone)]
pub(crate) enum Ended {
    /// The run reached its end (or was cancelled or paused); the store has its output or
    /// error. A run completed here carries its last snapshot, with the output.
    Finished(Option<Arc<str>>),
    /// The run waits in the store (or was handed back to it); some engine claims it later.
    Waiting,
    /// Another engine holds the run now: this one's claim lapsed.
    Lost,
    /// The run failed; the store has its error. This is the error as the run saw it: the
    /// errors its states returned are still there.
    Failed(RunError),
    /// The run stopped unfinished and is marked stuck: why, and the error that stopped it.
    Stopped(String, Option<SharedError>),
}

impl Inner {
    fn now_ms(&self) -> u64 {
        unix_ms(self.clock.now())
    }

    fn live(&self) -> MutexGuard<'_, HashMap<RunId, Live>> {
        lock(&self.live)
    }

    fn lease_ms(&self) -> u64 {
        duration_ms(self.lease)
    }

    /// Whether this engine's owner lease still holds, as far as it knows.
    fn lease_holds(&self) -> bool {
        self.lease_until.load(Ordering::SeqCst) > self.now_ms()
    }

    /// Where events of run `run` go.
    fn reporter(&self, run: RunId, machine: &'static str, state: &'static str) -> Reporter {
        let (channels, clock) = (Arc::clone(&self.events), Arc::clone(&self.clock));
        Reporter { channels, clock, run, machine, state }
    }

    /// Tells the scheduler that a run became due at `at` (Unix milliseconds).
    fn due(&self, at: u64) {
        self.due_hint.fetch_min(at, Ordering::SeqCst);
        self.wake.notify_one();
    }

    /// Tells the scheduler that a run became runnable now.
    fn runnable(&self) {
        self.backlog.store(true, Ordering::SeqCst);
        self.wake.notify_one();
    }
}

/// `time` as whole milliseconds since the Unix epoch (0 for a time before it): how the store
/// keeps times, and how every time the engine reports is serialized.
pub(crate) fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn duration_ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

/// Locks `mutex`, whose holders never panic while holding it.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut machines: Vec<_> = self.inner.machines.keys().collect();
        machines.sort();
        f.debug_struct("Engine")
            .field("owner", &self.inner.owner)
            .field("machines", &machines)
            .field("executing", &self.inner.live().len())
            .finish_non_exhaustive()
    }
}
