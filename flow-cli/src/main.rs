//! `flow`: list, inspect, follow and steer the runs of flow state machines.
//!
//! Reads and control work on the store itself, without the machines' code:
//!
//! ```text
//! flow --store sqlite:runs.db runs list --status running --wait signal
//! flow --store sqlite:runs.db runs show 0193f1e2...
//! flow --store postgres://postgres@127.0.0.1/app runs events 0193f1e2... --follow
//! flow --store sqlite:runs.db cancel 0193f1e2...
//! ```
//!
//! Signals and diagrams need the machines' code, so they go through a flow server:
//!
//! ```text
//! flow --server http://127.0.0.1:8080 --token T signal 0193f1e2... '{"approved": true}'
//! flow --server http://127.0.0.1:8080 diagram checkout
//! ```
//!
//! Every read prints a table, or with `--json` one JSON document. An error is printed as
//! `error: ...` on standard error, saying what to do, and the exit status is 1 (2 for a
//! command line clap cannot read).

#![forbid(unsafe_code)]

mod args;
mod control;
mod error;
mod open;
mod output;
mod runs;
mod server;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use flow_core::store::{CheckpointStore, Halt};

use args::{Cli, Command, Runs, ServerCommand, StoreCommand};
use control::Place;
use error::CliError;
use open::Address;
use output::Out;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(&cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: &Cli) -> Result<(), CliError> {
    let mut out = Out::stdout(cli.json);
    let command = match &cli.command {
        Command::Server(ServerCommand::Signal { id, value }) => {
            return server::signal(cli, *id, value, &mut out).await;
        }
        Command::Server(ServerCommand::Diagram { machine }) => {
            return server::diagram(cli, machine, &mut out).await;
        }
        Command::Store(command) => command,
    };
    let given = cli.store.as_deref().ok_or(CliError::NoStore { command: command.name() })?;
    let label = given.to_owned();
    match Address::parse(given)? {
        Address::Sqlite(path) => {
            let store = open::sqlite(&path)?;
            on_store(command, Place { store, label }, &mut out).await
        }
        #[cfg(feature = "postgres")]
        Address::Postgres(url) => {
            let store = open::postgres(&url, cli.schema.as_deref()).await?;
            on_store(command, Place { store, label }, &mut out).await
        }
        #[cfg(not(feature = "postgres"))]
        Address::Postgres(url) => Err(CliError::NoPostgres { url }),
    }
}

async fn on_store<S: CheckpointStore + Clone>(
    command: &StoreCommand,
    place: Place<S>,
    out: &mut Out,
) -> Result<(), CliError> {
    match command {
        StoreCommand::Runs(Runs::List(args)) => runs::list(&place.store, args, out).await,
        StoreCommand::Runs(Runs::Show { id }) => runs::show(&place, *id, out).await,
        StoreCommand::Runs(Runs::Events { id, follow, interval }) => {
            let interval = Duration::from_millis((*interval).max(1));
            runs::events(&place, *id, *follow, interval, out).await
        }
        StoreCommand::Machines => control::machines(&place.store, out).await,
        StoreCommand::Cancel { id } => control::halt(&place, *id, Halt::Cancel, out).await,
        StoreCommand::Pause { id } => control::halt(&place, *id, Halt::Pause, out).await,
        StoreCommand::Resume { id } => control::resume(&place, *id, out).await,
        StoreCommand::Retry { id } => control::retry(&place, *id, out).await,
        StoreCommand::Delete { id } => control::delete(&place, *id, out).await,
    }
}
