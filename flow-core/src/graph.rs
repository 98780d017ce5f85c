//! Static graph metadata of a machine, and its Mermaid and DOT renderings.

use std::fmt::Write;

use serde::Serialize;

use crate::{OnFailure, Policy};

/// The shape of a machine: its states, its edges, where it starts and where it may end.
///
/// Read it to draw a machine ([`Graph::to_mermaid`], [`Graph::to_dot`]), to list where a
/// state may go ([`Graph::targets`]) or to check a policy in a test.
///
/// Every machine exposes its graph as `module::graph()` (and [`Machine::graph`](crate::Machine::graph));
/// the macro builds it as a static like this one:
///
/// ```
/// use flow::Graph;
/// use flow::codegen::StateInfo;
/// use flow::policy::Policy;
///
/// static STATES: [StateInfo; 2] = [
///     StateInfo { name: "work", start: true, end: false, payload: &[("left", "u32")], output: None, policy: Policy::DEFAULT, fork: None, branch_end: false, signal: None, compensate: None },
///     StateInfo { name: "done", start: false, end: true, payload: &[], output: Some("u32"), policy: Policy::DEFAULT, fork: None, branch_end: false, signal: None, compensate: None },
/// ];
/// static JOB: Graph = Graph {
///     name: "job", states: &STATES, edges: &[("work", "work"), ("work", "done")], start: 0, max_steps: 100,
///     version: 1, priority: 0, fingerprint: "5f0c8e1a2b3d4c6e", legacy_fingerprints: &[],
/// };
///
/// assert_eq!(JOB.targets("work").collect::<Vec<_>>(), ["work", "done"]);
/// assert_eq!(JOB.to_mermaid(), "stateDiagram-v2\n    [*] --> work\n    work --> work\n    work --> done\n    done --> [*]\n");
/// ```
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Graph {
    /// The machine's name.
    pub name: &'static str,
    /// Every state, in declaration order.
    pub states: &'static [StateInfo],
    /// Every declared transition, as `(from, to)` state names, in declaration order.
    pub edges: &'static [(&'static str, &'static str)],
    /// The index of the start state in `states`.
    pub start: usize,
    /// How many states one run may enter before it fails (the loop guard).
    pub max_steps: u64,
    /// The machine's version, `#[flow::machine(version = N)]`; 1 unless declared.
    pub version: u32,
    /// The priority of its runs for the engine's resource pools, lower first:
    /// `#[flow::machine(priority = N)]`, 0 unless declared. A run started with
    /// [`Engine::start_with_priority`](crate::Engine::start_with_priority) has its own.
    pub priority: i32,
    /// A hash of the machine's shape (state names, payload fields and their types, signal
    /// types, edges, output types, compensations, context type), stored with every durable
    /// run. A stored run whose version and fingerprint match neither this machine nor a
    /// registered migration is refused rather than misread. The order in which states, fields
    /// and targets are declared, and how they are formatted, do not change it.
    pub fingerprint: &'static str,
    /// Fingerprints earlier flow versions computed for this same shape: a stored run carrying
    /// one of them (and this version) is this machine's run, and its next checkpoint carries
    /// [`Graph::fingerprint`]. Empty for a graph written by hand.
    pub legacy_fingerprints: &'static [&'static str],
}

/// A fork (`fork(a, b)`) or a fan-out (`fan_out(summarise)`): the states its branches start
/// in, and the join state that receives their outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ForkInfo {
    /// The first state of each branch, in declared order; for a fan-out, the one state every
    /// item's branch starts in.
    pub branches: &'static [&'static str],
    /// The state entered with the branches' outputs.
    pub join: &'static str,
    /// Whether this is a fan-out: one branch per item, the join taking all outputs in one
    /// `Vec`, in the items' order.
    pub fan_out: bool,
    /// How many branches run at once (`fan_out(summarise, limit = 3)`); `None`: all.
    pub limit: Option<u32>,
    /// How many branches' outputs the join waits for (`fan_out(summarise, first = 2)`): once
    /// that many have ended, the others are cancelled and the join gets those outputs, in
    /// the items' order. `None`: all. A fan-out of fewer items waits for all of them.
    pub first: Option<u32>,
    /// Whether the join takes each branch's `Result<Output, BranchError>`
    /// (`#[state(fork(...), join = j, collect)]`): a branch that fails does not fail the
    /// run nor cut its siblings off.
    pub collect: bool,
}

/// One state of a [`Graph`].
#[derive(Debug, Clone, Copy, Serialize)]
pub struct StateInfo {
    /// The state's name: its fn's name.
    pub name: &'static str,
    /// Whether runs begin here.
    pub start: bool,
    /// Whether this state ends a run.
    pub end: bool,
    /// The payload: `(argument name, type)` in order, as written in the fn signature.
    pub payload: &'static [(&'static str, &'static str)],
    /// For an end state, the output type as written.
    pub output: Option<&'static str>,
    /// Retries, timeout and visit limit.
    pub policy: Policy,
    /// The branches this state forks into and where they join, for a fork state
    /// (`#[state(fork(pay, reserve), join = ship)]`).
    pub fork: Option<ForkInfo>,
    /// Whether this state ends a branch of a fork (`#[state(branch_end)]`): its output goes
    /// to the fork's join state.
    pub branch_end: bool,
    /// The signal the state waits for before its first attempt, if it has a `#[signal]`
    /// parameter.
    pub signal: Option<SignalInfo>,
    /// The fn that undoes a completed visit of this state when the run fails later
    /// (`compensate = refund`), by name.
    pub compensate: Option<&'static str>,
}

/// What a state waits for: [`StateInfo::signal`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct SignalInfo {
    /// The signal's type, as written.
    pub ty: &'static str,
    /// How long the run waits; `None`: as long as it takes.
    pub timeout: Option<std::time::Duration>,
    /// Where the run goes when the timeout passes without a signal.
    pub default: Option<&'static str>,
}

impl Graph {
    /// Whether a run stored with `fingerprint` has this graph's shape: it is
    /// [`Graph::fingerprint`] or one of [`Graph::legacy_fingerprints`].
    pub fn has_fingerprint(&self, fingerprint: &str) -> bool {
        self.fingerprint == fingerprint || self.legacy_fingerprints.contains(&fingerprint)
    }

    /// The start state.
    pub fn start(&self) -> &'static StateInfo {
        &self.states[self.start]
    }

    /// The state named `name`, if the machine has one.
    pub fn state(&self, name: &str) -> Option<&'static StateInfo> {
        self.states.iter().find(|state| state.name == name)
    }

    /// The end states, in declaration order.
    pub fn ends(&self) -> impl Iterator<Item = &'static StateInfo> + 'static {
        self.states.iter().filter(|state| state.end)
    }

    /// The states `from` may go to, in declaration order.
    pub fn targets<'a>(&self, from: &'a str) -> impl Iterator<Item = &'static str> + 'a {
        self.edges.iter().filter(move |(f, _)| *f == from).map(|(_, to)| *to)
    }

    /// The fallback edges, as `(from, to)`: where a state's failure leads (`fallback = to`).
    pub fn fallbacks(&self) -> impl Iterator<Item = (&'static str, &'static str)> + 'static {
        self.states.iter().filter_map(|state| match state.policy.on_failure {
            OnFailure::Fallback(to) => Some((state.name, to)),
            _ => None,
        })
    }

    /// The graph as a Mermaid `stateDiagram-v2`, with each non-default policy noted on its
    /// state and each fallback edge labelled `on failure`.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("stateDiagram-v2\n");
        for state in self.states {
            if let Some(policy) = describe(state) {
                let _ = writeln!(out, "    {0} : {0} ({policy})", state.name);
            }
        }
        // A fork and its join are Mermaid's `<<fork>>` and `<<join>>` pseudo-states.
        let forks = self.states.iter().filter_map(|state| Some((state.name, state.fork?)));
        for (name, fork) in forks.clone() {
            let _ = writeln!(out, "    state {name}_fork <<fork>>");
            let _ = writeln!(out, "    state {}_join <<join>>", fork.join);
        }
        let _ = writeln!(out, "    [*] --> {}", self.start().name);
        for (from, to) in self.edges {
            match self.state(from) {
                Some(info) if info.fork.is_some() => {}
                Some(info) if info.branch_end => {
                    let _ = writeln!(out, "    {from} --> {to}_join");
                }
                _ => {
                    let _ = writeln!(out, "    {from} --> {to}");
                }
            }
        }
        for (name, fork) in forks {
            let _ = writeln!(out, "    {name} --> {name}_fork");
            for branch in fork.branches {
                let _ = writeln!(out, "    {name}_fork --> {branch}");
            }
            let _ = writeln!(out, "    {0}_join --> {0}", fork.join);
        }
        for (from, to) in self.fallbacks() {
            let _ = writeln!(out, "    {from} --> {to} : on failure");
        }
        for end in self.ends() {
            let _ = writeln!(out, "    {} --> [*]", end.name);
        }
        out
    }

    /// The graph in Graphviz DOT: start marked by a point, end states doubly outlined,
    /// fallback edges dashed.
    pub fn to_dot(&self) -> String {
        let mut out = format!("digraph {} {{\n", self.name);
        out.push_str("    rankdir=LR;\n    node [shape=box, style=rounded];\n");
        out.push_str("    __start [shape=point];\n");
        for state in self.states {
            let mut attrs = Vec::new();
            if let Some(policy) = describe(state) {
                attrs.push(format!("label=\"{}\\n{policy}\"", state.name));
            }
            if state.end {
                attrs.push("peripheries=2".to_owned());
            }
            if attrs.is_empty() {
                let _ = writeln!(out, "    {};", state.name);
            } else {
                let _ = writeln!(out, "    {} [{}];", state.name, attrs.join(", "));
            }
        }
        let _ = writeln!(out, "    __start -> {};", self.start().name);
        for (from, to) in self.edges {
            match self.state(from) {
                Some(info) if info.fork.is_some() => {
                    let _ = writeln!(out, "    {from} -> {to} [style=bold, label=\"fork\"];");
                }
                Some(info) if info.branch_end => {
                    let _ = writeln!(out, "    {from} -> {to} [style=bold, label=\"join\"];");
                }
                _ => {
                    let _ = writeln!(out, "    {from} -> {to};");
                }
            }
        }
        for (from, to) in self.fallbacks() {
            let _ = writeln!(out, "    {from} -> {to} [style=dashed, label=\"on failure\"];");
        }
        out.push_str("}\n");
        out
    }
}

/// A short description of a state's policy's non-default parts and its signal, `None` when
/// there is nothing to say.
fn describe(state: &StateInfo) -> Option<String> {
    let policy = &state.policy;
    let mut parts = Vec::new();
    if let Some(signal) = &state.signal {
        let mut wait = format!("waits for {}", signal.ty);
        if let (Some(timeout), Some(default)) = (signal.timeout, signal.default) {
            wait.push_str(&format!(", {timeout:?} then {default}"));
        }
        parts.push(wait);
    }
    if policy.retry.attempts > 1 {
        parts.push(format!("{} attempts", policy.retry.attempts));
    }
    if let Some(timeout) = policy.timeout {
        parts.push(format!("timeout {timeout:?}"));
    }
    if let Some(max) = policy.max_visits {
        parts.push(format!("max {max} visits"));
    }
    if let Some(wait) = policy.wait {
        parts.push(format!("waits {wait:?}"));
    }
    if policy.on_failure == OnFailure::Pause {
        parts.push("pauses on failure".to_owned());
    }
    for (pool, units) in policy.uses {
        parts.push(format!("holds {units} {pool}"));
    }
    if let Some(compensate) = state.compensate {
        parts.push(format!("undone by {compensate}"));
    }
    if let Some(fork) = state.fork {
        if let Some(limit) = fork.limit {
            parts.push(format!("{limit} branches at once"));
        }
        if let Some(first) = fork.first {
            parts.push(format!("joins on the first {first}"));
        }
        if fork.collect {
            parts.push("collects results".to_owned());
        }
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}
