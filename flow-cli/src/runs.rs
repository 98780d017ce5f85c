//! `flow runs list`, `flow runs show` and `flow runs events`: reads of a store.

use std::time::{Duration, UNIX_EPOCH};

use flow_core::store::{CheckpointStore, Filter, Order, RunSummary, Status, Wait};
use flow_core::{Engine, EngineError, RunId, RunStatus};
use serde_json::json;

use crate::args::ListArgs;
use crate::control::{Place, engine};
use crate::error::CliError;
use crate::output::{Out, or_dash, table, time};

/// Lists the runs `args` select, one page: a table, or `{"runs": [...], "next": CURSOR}`.
pub async fn list<S: CheckpointStore>(
    store: &S,
    args: &ListArgs,
    out: &mut Out,
) -> Result<(), CliError> {
    let filter = Filter {
        machine: args.machine.clone(),
        status: args.status,
        key: args.key.clone(),
        state: args.state.clone(),
        wait: args.wait,
        created_after: args.created_after,
        created_before: args.created_before,
        order: if args.oldest_first { Order::OldestFirst } else { Order::NewestFirst },
        cursor: args.before,
        limit: Some(args.limit),
    };
    let page = store.list(filter).await.map_err(CliError::store("list the runs"))?;
    // A full page may have a next one.
    let next = page.last().filter(|_| page.len() == args.limit).map(RunSummary::cursor);
    if out.json {
        let next = next.map(|cursor| cursor.to_string());
        return out.json(&json!({ "runs": page, "next": next }));
    }
    if page.is_empty() {
        return out.line("no runs match");
    }
    let rows: Vec<Vec<String>> = page.iter().map(row).collect();
    let headers = ["RUN", "MACHINE", "STATUS", "STATE", "WAIT", "KEY", "CREATED", "UPDATED"];
    out.text(&table(&headers, &rows))?;
    if let Some(next) = next {
        eprintln!("more runs may follow: add --before {next} for the next page");
    }
    Ok(())
}

fn row(summary: &RunSummary) -> Vec<String> {
    vec![
        summary.run.to_string(),
        summary.machine.clone(),
        summary.status.to_string(),
        summary.state.clone(),
        or_dash(summary.wait),
        or_dash(summary.key.as_ref()),
        time(summary.created),
        time(summary.updated),
    ]
}

/// Where run `id` stands, read through `engine`, one with no machines ([`engine`]): it
/// decodes the history and the error, which need no machine's types.
async fn status<S: CheckpointStore>(
    engine: &Engine,
    place: &Place<S>,
    id: RunId,
) -> Result<RunStatus, CliError> {
    engine.status(id).await.map_err(|error| match error {
        EngineError::UnknownRun { run } => CliError::UnknownRun { run, store: place.label.clone() },
        other => CliError::engine(format!("read run {id}"))(other),
    })
}

fn ms(at: std::time::SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// Shows run `id`: its fields, context, error, output and history.
pub async fn show<S: CheckpointStore + Clone>(
    place: &Place<S>,
    id: RunId,
    out: &mut Out,
) -> Result<(), CliError> {
    let status = status(&engine(place)?, place, id).await?;
    let reading = format!("read run {id}");
    let summary = place.store.summary(id).await.map_err(CliError::store(reading.clone()))?;
    let context = status.context.clone();
    let (created, updated) = summary.map_or((None, None), |s| (Some(s.created), Some(s.updated)));
    let deadline = status.wake_at.map(ms);
    let error = status.error.as_ref().map(
        |error| json!({ "message": error.to_string(), "detail": serde_json::to_value(error).ok() }),
    );
    if out.json {
        return out.json(&json!({
            "run": status.run.to_string(),
            "machine": status.machine,
            "key": status.key,
            "version": status.version,
            "status": status.status,
            "state": status.state,
            "checkpoint": status.seq,
            "wait": status.wait,
            "deadline": deadline,
            "note": status.note,
            "error": error,
            "output": status.output,
            "context": context,
            "created": created,
            "updated": updated,
            "history": status.history,
        }));
    }
    let fields = [
        ("run", status.run.to_string()),
        ("machine", status.machine.clone()),
        ("key", or_dash(status.key.as_ref())),
        ("version", status.version.to_string()),
        ("status", status.status.to_string()),
        ("state", status.state.clone()),
        ("waiting", waiting(status.status, status.wait, deadline)),
        ("deadline", or_dash(deadline.map(time))),
        ("checkpoint", status.seq.to_string()),
        ("created", or_dash(created.map(time))),
        ("updated", or_dash(updated.map(time))),
        ("note", or_dash(status.note.as_ref())),
        ("error", or_dash(status.error.as_ref())),
        ("output", or_dash(status.output.as_ref())),
    ];
    let rows: Vec<Vec<String>> =
        fields.into_iter().map(|(name, value)| vec![name.to_owned(), value]).collect();
    let text = table(&["FIELD", "VALUE"], &rows);
    // The header says nothing a field name does not: leave it out.
    out.text(text.split_once('\n').map_or(text.as_str(), |(_, rest)| rest))?;
    out.line("context:")?;
    let context = context.map_or_else(
        || "-".to_owned(),
        |context| serde_json::to_string_pretty(&context).unwrap_or_default(),
    );
    out.line(indent(&context))?;
    out.line(format!("history ({} attempts):", status.history.len()))?;
    for entry in &status.history {
        out.line(format!("  {entry}"))?;
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|line| format!("  {line}")).collect::<Vec<_>>().join("\n")
}

/// Why a run waits, for people: `signal, no deadline`, `timer until ...`, or `-`.
fn waiting(status: Status, wait: Option<Wait>, deadline: Option<u64>) -> String {
    match (wait, deadline) {
        (Some(wait), Some(deadline)) => format!("{wait} until {}", time(deadline)),
        (Some(wait), None) => format!("{wait}, no deadline"),
        (None, _) if status == Status::Running => "no (runnable, or executing)".to_owned(),
        (None, _) => "-".to_owned(),
    }
}

/// Prints run `id`'s history; with `follow`, keeps reading the store every `interval` and
/// prints each new history entry and each change of status, state or wait, until the run
/// completes, fails or is cancelled.
pub async fn events<S: CheckpointStore + Clone>(
    place: &Place<S>,
    id: RunId,
    follow: bool,
    interval: Duration,
    out: &mut Out,
) -> Result<(), CliError> {
    let engine = engine(place)?;
    if !follow && out.json {
        let status = status(&engine, place, id).await?;
        return out.json(&json!({
            "run": id.to_string(),
            "status": status.status,
            "state": status.state,
            "wait": status.wait,
            "history": status.history,
        }));
    }
    let mut shown = 0;
    let mut last = None;
    loop {
        let status = status(&engine, place, id).await?;
        if follow && last.is_none() {
            eprintln!(
                "following run {id} by polling the store every {} ms (it pushes nothing) until \
                 the run ends; Ctrl-C stops",
                interval.as_millis()
            );
        }
        for entry in status.history.iter().skip(shown) {
            if out.json {
                out.json(
                    &json!({ "event": "attempt", "entry": entry, "text": entry.to_string() }),
                )?;
            } else {
                out.line(entry)?;
            }
        }
        shown = shown.max(status.history.len());
        let now = (status.status, status.state.clone(), status.wait);
        if last.as_ref() != Some(&now) {
            let deadline = status.wake_at.map(ms);
            if out.json {
                out.json(&json!({
                    "event": "status",
                    "status": status.status,
                    "state": status.state,
                    "wait": status.wait,
                    "deadline": deadline,
                }))?;
            } else {
                let wait = waiting(status.status, status.wait, deadline);
                out.line(format!(
                    "-- {} in state {}; waiting: {wait}",
                    status.status, status.state
                ))?;
            }
            last = Some(now);
        }
        if !follow || status.status.is_finished() {
            return Ok(());
        }
        tokio::time::sleep(interval).await;
    }
}
