//! The command line: one subcommand enum, global options for where the runs are and how to
//! print them.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use clap::{Args, Parser, Subcommand};
use flow_core::RunId;
use flow_core::store::{Cursor, Status, Wait};

use crate::output::parse_time;

/// The help heading of the options every command takes.
const GLOBAL: &str = "Global options";

/// Look at and steer the runs of flow state machines, in their store or through a flow server.
///
/// Reads and control (list, show, events, machines, cancel, pause, resume, retry, delete) work on
/// the store itself, without your machines' code: --store sqlite:PATH or --store
/// postgres://USER@HOST:PORT/DATABASE (or FLOW_STORE). Signals and diagrams need that code,
/// so they go through a flow server: --server http://HOST:PORT (or FLOW_SERVER).
///
/// Tables are for people; --json prints one JSON document for scripts.
#[derive(Debug, Parser)]
#[command(name = "flow", version)]
pub struct Cli {
    /// The store: sqlite:PATH (an existing file) or postgres://USER@HOST:PORT/DATABASE.
    #[arg(long, env = "FLOW_STORE", global = true, value_name = "STORE", help_heading = GLOBAL)]
    pub store: Option<String>,

    /// The PostgreSQL schema holding flow's tables [default: public].
    #[arg(long, global = true, value_name = "SCHEMA", help_heading = GLOBAL)]
    pub schema: Option<String>,

    /// A flow server, for `signal` and `diagram`: http://HOST:PORT.
    #[arg(long, env = "FLOW_SERVER", global = true, value_name = "URL", help_heading = GLOBAL)]
    pub server: Option<String>,

    /// The flow server's bearer token, if it needs one.
    #[arg(
        long,
        env = "FLOW_TOKEN",
        global = true,
        hide_env_values = true,
        value_name = "TOKEN",
        help_heading = GLOBAL
    )]
    pub token: Option<String>,

    /// Print one JSON document instead of a table (with `runs events --follow`: one per line).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub json: bool,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// The commands on a store.
    #[command(flatten)]
    Store(StoreCommand),
    /// The commands through a server.
    #[command(flatten)]
    Server(ServerCommand),
}

/// The commands that work on a store, without the machines' code.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// List runs, show one, or follow one's events.
    #[command(subcommand)]
    Runs(Runs),
    /// The machine names the store's runs were started under, with their runs per status.
    /// (The store keeps runs, not machines' graphs: `flow diagram` asks a server for those.)
    Machines,
    /// Cancel a run: at once if it waits in the store, or at its next safe point if an
    /// engine executes it.
    Cancel {
        /// The run's id.
        id: RunId,
    },
    /// Pause a run, as `cancel` stops it, until `flow resume`.
    Pause {
        /// The run's id.
        id: RunId,
    },
    /// Resume a paused run; a stuck run is made runnable again, for an engine with a fixed
    /// binary to claim.
    Resume {
        /// The run's id.
        id: RunId,
    },
    /// Retry a run now: start the next attempt of a run waiting out a retry's backoff at
    /// once, instead of at the backoff's end (the outage is over). An engine that runs its
    /// machine claims it.
    Retry {
        /// The run's id.
        id: RunId,
    },
    /// Delete a finished run and its history.
    Delete {
        /// The run's id.
        id: RunId,
    },
}

impl StoreCommand {
    /// The command's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            StoreCommand::Runs(Runs::List(_)) => "runs list",
            StoreCommand::Runs(Runs::Show { .. }) => "runs show",
            StoreCommand::Runs(Runs::Events { .. }) => "runs events",
            StoreCommand::Machines => "machines",
            StoreCommand::Cancel { .. } => "cancel",
            StoreCommand::Pause { .. } => "pause",
            StoreCommand::Resume { .. } => "resume",
            StoreCommand::Retry { .. } => "retry",
            StoreCommand::Delete { .. } => "delete",
        }
    }
}

/// The commands that need the machines' code, so go through a flow server.
#[derive(Debug, Subcommand)]
pub enum ServerCommand {
    /// Send a signal to a run waiting for one, through a flow server (--server).
    Signal {
        /// The run's id.
        id: RunId,
        /// The signal's value, as JSON: '{"approved": true}', '"text"', '42'.
        value: String,
    },
    /// Print a machine's diagram (Mermaid stateDiagram-v2), from a flow server (--server).
    Diagram {
        /// The machine's name.
        machine: String,
    },
}

/// `flow runs ...`.
#[derive(Debug, Subcommand)]
pub enum Runs {
    /// List runs, newest first, a page at a time (--limit, then --before for the next page).
    List(ListArgs),
    /// Show where a run stands: state, status, wait and deadline, context, error, history.
    Show {
        /// The run's id.
        id: RunId,
    },
    /// Print a run's history; with --follow, keep printing what it does until it ends.
    Events {
        /// The run's id.
        id: RunId,
        /// Keep going until the run ends, polling the store (the store pushes nothing).
        #[arg(long)]
        follow: bool,
        /// How often --follow polls the store, in milliseconds.
        #[arg(long, default_value_t = 1000, value_name = "MS")]
        interval: u64,
    },
}

/// The filters and paging of `flow runs list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs of this machine.
    #[arg(long)]
    pub machine: Option<String>,
    /// Only runs with this status.
    #[arg(long, value_parser = status())]
    pub status: Option<Status>,
    /// Only runs started under this business key.
    #[arg(long)]
    pub key: Option<String>,
    /// Only runs in this state (finished runs: the state they ended in).
    #[arg(long)]
    pub state: Option<String>,
    /// Only runs waiting in the store for this (a paused run is --status paused).
    #[arg(long, value_parser = wait())]
    pub wait: Option<Wait>,
    /// Only runs created after this time: Unix milliseconds, or a UTC date and time
    /// (2026-12-01, 2026-12-01T08:30:00Z).
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub created_after: Option<u64>,
    /// Only runs created before this time, as --created-after.
    #[arg(long, value_parser = parse_time, value_name = "TIME")]
    pub created_before: Option<u64>,
    /// At most this many runs.
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// The next page: the cursor the previous page ended with.
    #[arg(long, value_name = "CURSOR")]
    pub before: Option<Cursor>,
    /// List the oldest runs first (--before then continues towards newer runs).
    #[arg(long)]
    pub oldest_first: bool,
}

/// Reads a status, offering every one in help and errors.
fn status() -> impl TypedValueParser<Value = Status> {
    PossibleValuesParser::new(Status::ALL.iter().map(|status| status.as_str()))
        .try_map(|text| text.parse::<Status>())
}

/// Reads a wait, offering every one in help and errors.
fn wait() -> impl TypedValueParser<Value = Wait> {
    PossibleValuesParser::new(Wait::ALL.iter().map(|wait| wait.as_str()))
        .try_map(|text| text.parse::<Wait>())
}
