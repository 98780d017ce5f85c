//! Configuring an engine: [`EngineBuilder`].

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore};

use super::erased::NewContext;
use super::pools::Pools;
use super::registry::{Registered, Registration};
use super::versions::Migration;
use super::{Clock, Durable, Engine, EngineError, Inner, Migrate, SystemClock, scheduler};
use crate::RunId;
use crate::event::Channels;
use crate::store::{CheckpointStore, DynStore, MemoryStore};
use crate::testing::Faults;

/// Builds an [`Engine`]: [`Engine::builder`].
pub struct EngineBuilder {
    store: Option<Box<dyn DynStore>>,
    machines: Vec<(&'static str, Arc<dyn Registered>)>,
    migrations: Vec<(&'static str, Migration)>,
    /// Contexts for runs started from JSON without one: machine name, its type, the maker.
    contexts: Vec<(&'static str, TypeId, NewContext)>,
    max_concurrent_runs: usize,
    clock: Arc<dyn Clock>,
    seed: Option<u64>,
    event_capacity: usize,
    faults: Option<Faults>,
    lease: Duration,
    poll: Duration,
    retention: Option<Duration>,
    max_reassignments: u32,
    pools: Vec<(String, u32)>,
}

impl fmt::Debug for EngineBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let machines: Vec<_> = self.machines.iter().map(|(name, ..)| name).collect();
        f.debug_struct("EngineBuilder")
            .field("machines", &machines)
            .field("max_concurrent_runs", &self.max_concurrent_runs)
            .field("pools", &self.pools)
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

    /// Registers machine `M`, so the engine can start its runs and claim them by name.
    pub fn machine<M: Durable>(mut self) -> Self {
        self.machines.push((M::NAME, Arc::new(Registration::<M>::new(None))));
        self
    }

    /// Registers machine `M` with a hook that gives each of its runs' contexts what the store
    /// does not keep: clients, pools, configuration. `restore` runs on every context before
    /// the run executes in this engine, when it starts and each time it is claimed (after a
    /// restart, a wait, a takeover), so state bodies reach the resources as plain typed
    /// fields. Mark those fields `#[serde(skip)]` (with a `Default`) so they are not stored.
    ///
    /// The `flow` crate's docs (Resources) show a whole machine with a client given this way.
    ///
    /// Two engines in one process can give the same machine different resources.
    pub fn machine_with<M: Durable>(
        mut self,
        restore: impl Fn(&mut M::Context) + Send + Sync + 'static,
    ) -> Self {
        let registration = Registration::<M>::new(Some(Arc::new(restore)));
        self.machines.push((M::NAME, Arc::new(registration)));
        self
    }

    /// Gives runs of `M` started from JSON without a context ([`Engine::start_json`], an
    /// HTTP API) the context `make` returns, before `machine_with`'s hook, if any, gives it
    /// resources. `M` must be registered too.
    ///
    /// Without it, such a start is refused ([`JsonError::ContextRequired`]) unless `M`'s
    /// context is `()`. The engine cannot tell by itself whether a context has a `Default`,
    /// so it asks: `.default_context::<checkout::Machine>(Shop::default)`.
    ///
    /// [`Engine::start_json`]: crate::Engine::start_json
    /// [`JsonError::ContextRequired`]: crate::JsonError::ContextRequired
    pub fn default_context<M: Durable>(
        mut self,
        make: impl Fn() -> M::Context + Send + Sync + 'static,
    ) -> Self {
        self.contexts.push((M::NAME, TypeId::of::<M>(), NewContext::new::<M>(make)));
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

    /// How many runs may execute at once in this engine (default 10,000). Only executing runs
    /// count: a run waiting for a signal, a timer or a backoff holds no slot. Runs started over
    /// the limit are checkpointed and wait in the store, runnable, for a slot here or in
    /// another engine.
    pub fn max_concurrent_runs(mut self, limit: usize) -> Self {
        self.max_concurrent_runs = limit.max(1);
        self
    }

    /// Adds a resource pool: `capacity` units of `name` (`"gpu"`, `"api"`), which states
    /// hold while their attempts run, `#[state(uses(gpu = 1))]`. An attempt that needs units
    /// others hold waits for them, by priority, lower values first
    /// ([`Graph::priority`](crate::Graph::priority),
    /// [`Engine::start_with_priority`](crate::Engine::start_with_priority)), and in arrival
    /// order within one; meanwhile it keeps its run slot ([`max_concurrent_runs`]), the
    /// run's events say [`EventKind::WaitingForPool`](crate::event::EventKind::WaitingForPool),
    /// and a cancel or pause ends the wait at once.
    ///
    /// Pools belong to this engine, in this process: engines on one store each have their
    /// own, so with several workers a pool of 2 lets each worker hold 2. Adding a name again
    /// sets its capacity. In memory (`checkout::run`, [`Runner`](crate::Runner)) `uses` holds
    /// nothing.
    ///
    /// [`max_concurrent_runs`]: EngineBuilder::max_concurrent_runs
    pub fn pool(mut self, name: impl Into<String>, capacity: u32) -> Self {
        let name = name.into();
        self.pools.retain(|(known, _)| *known != name);
        self.pools.push((name, capacity));
        self
    }

    /// How long this engine's hold on the runs it executes lasts without renewal (default
    /// 10 s, at least 100 ms). The engine renews it every third of that while it holds runs.
    /// When the engine dies or loses the store for longer, another engine on the store takes
    /// its runs over: a shorter lease means a faster takeover, and more renewals.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.lease = lease.max(Duration::from_millis(100));
        self
    }

    /// How many times in a row a run may be taken over in one state visit before the engine
    /// fails the state (default 5).
    ///
    /// An engine takes a run over when the engine holding it stopped mid-attempt: it
    /// crashed, was killed, ran out of memory, or lost the store for longer than its lease.
    /// The cut-off attempt counts as failed ([`Failure::Interrupted`]) and runs again here.
    /// A state that kills or stalls every process running it would take each worker down in
    /// turn, for as long as its retries last (each takeover uses one of the state's attempts,
    /// so this bounds states whose retries outlast it). Once a visit has been taken over
    /// `limit` times, the next takeover fails the attempt for good with
    /// [`Failure::Reassigned`], without running the state again; what follows is what
    /// follows any permanent failure of the state: its fallback, a pause (`on_failure =
    /// pause`), or the run failing and rolling back the states it completed.
    ///
    /// The count is kept in the run's checkpoints, so it holds across engines and restarts.
    /// It starts over when the run enters a state (a transition, a fallback), and when the
    /// run ends or pauses; a retry of the same visit keeps it. A rollback counts the
    /// takeovers of each compensation alike: a compensation cut off by a takeover runs again
    /// whatever attempts it has left, until the limit fails it ([`Failure::Reassigned`]) and
    /// the rollback goes on to the next. 0 fails a visit at its first takeover.
    ///
    /// [`Failure::Interrupted`]: crate::history::Failure::Interrupted
    /// [`Failure::Reassigned`]: crate::history::Failure::Reassigned
    pub fn max_reassignments(mut self, limit: u32) -> Self {
        self.max_reassignments = limit;
        self
    }

    /// How often the engine looks in the store for what other processes wrote (default
    /// 250 ms): runs they made runnable (a signal, a resume, a lapsed lease), and cancels or
    /// pauses of the runs this engine executes, which it honours at their next safe point. Writes by this engine wake it
    /// at once. A store only this process writes (a [`MemoryStore`]) is looked at on each
    /// lease renewal instead.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll = interval.max(Duration::from_millis(1));
        self
    }

    /// Deletes finished runs (completed, failed, cancelled) this long after they finished,
    /// with their history, checked about once a minute. Unset by default: finished runs
    /// stay until [`Engine::delete`](crate::Engine::delete) or
    /// [`Engine::delete_finished`](crate::Engine::delete_finished).
    pub fn retention(mut self, keep: Duration) -> Self {
        self.retention = Some(keep);
        self
    }

    /// The clock for durable waits; the system clock unless set. Tests use one they control.
    pub fn clock(mut self, clock: impl Clock) -> Self {
        self.clock = Arc::new(clock);
        self
    }

    /// How many events a subscriber of every run ([`Engine::events`]) may fall behind before
    /// it misses the oldest (default 4,096); a subscriber of one run
    /// ([`Engine::events_of`]) may fall behind by 256 of that run's events, or this capacity
    /// if smaller. Runs never wait for subscribers.
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

    /// The engine. Built inside a tokio runtime, it starts claiming runnable runs at once.
    ///
    /// # Errors
    ///
    /// [`EngineError::Config`] if two machines share a name, a migration does not lead
    /// from a lower version to a registered machine of the same name, [`Faults`] name a
    /// state no registered machine has, or a [`default_context`](EngineBuilder::default_context)
    /// is given for a machine that is not registered.
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
        let mut contexts = HashMap::new();
        for (name, type_id, make) in self.contexts {
            match machines.get(name) {
                Some(registered) if registered.type_id() == type_id => {
                    contexts.insert(name, make);
                }
                _ => problems.push(format!(
                    "a default context is given for machine `{name}`, which is not registered \
                     (or another machine is, under its name); add .machine::<...>() for it"
                )),
            }
        }
        for (name, registered) in &machines {
            for info in registered.graph().states {
                for (pool, units) in info.policy.uses {
                    match self.pools.iter().find(|(known, _)| known == pool) {
                        None => problems.push(format!(
                            "state `{}` of machine `{name}` uses pool `{pool}`, which this \
                             engine does not have; add .pool(\"{pool}\", capacity)",
                            info.name
                        )),
                        Some((_, capacity)) if units > capacity => problems.push(format!(
                            "state `{}` of machine `{name}` uses {units} of pool `{pool}`, \
                             which holds {capacity}: its attempts would wait for ever; raise \
                             the capacity or lower the use",
                            info.name
                        )),
                        Some(_) => {}
                    }
                }
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
        let mut names: Vec<&'static str> = machines.keys().copied().collect();
        names.sort_unstable();
        let store = self.store.unwrap_or_else(|| Box::new(MemoryStore::new()));
        // A store no other process writes has nothing to poll for but lapsed leases.
        let poll = if store.shared_between_processes() { self.poll } else { self.lease / 3 };
        let engine = Engine {
            inner: Arc::new(Inner {
                store,
                machines,
                contexts,
                names,
                migrations,
                slots: Arc::new(Semaphore::new(self.max_concurrent_runs)),
                pools: Arc::new(Pools::new(&self.pools)),
                joins: Mutex::default(),
                clock: self.clock,
                seed: self.seed,
                events: Arc::new(Channels::new(self.event_capacity)),
                live: Mutex::new(HashMap::new()),
                faults: self.faults,
                owner: Arc::from(RunId::random().to_string()),
                lease: self.lease,
                poll,
                retention: self.retention,
                max_reassignments: self.max_reassignments,
                lease_until: AtomicU64::new(0),
                wake: Arc::new(Notify::new()),
                changed: Notify::new(),
                due_hint: AtomicU64::new(0),
                backlog: AtomicBool::new(true),
                closing: AtomicBool::new(false),
                scheduling: AtomicBool::new(false),
                renewing: tokio::sync::Mutex::new(()),
                claiming: tokio::sync::Mutex::new(()),
            }),
        };
        // Inside a runtime, runnable runs are claimed from now on; otherwise from the
        // engine's first use in one.
        scheduler::start(&engine.inner);
        Ok(engine)
    }
}

impl Engine {
    /// Starts building an engine.
    pub fn builder() -> EngineBuilder {
        EngineBuilder {
            store: None,
            machines: Vec::new(),
            migrations: Vec::new(),
            contexts: Vec::new(),
            max_concurrent_runs: 10_000,
            clock: Arc::new(SystemClock),
            seed: None,
            event_capacity: 4096,
            faults: None,
            lease: Duration::from_secs(10),
            poll: Duration::from_millis(250),
            retention: None,
            pools: Vec::new(),
            max_reassignments: 5,
        }
    }
}
