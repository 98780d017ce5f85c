//! `flow machines`, and `flow cancel`, `pause`, `resume`, `retry` and `delete`: the
//! runtime's own control, through an engine that runs no machine of its own, over the store.

use std::collections::BTreeMap;

use flow_core::store::{CheckpointStore, Filter, Halt, Status, StoreError};
use flow_core::{Engine, EngineError, RunId};
use serde_json::json;

use crate::error::CliError;
use crate::output::{Out, table};

/// A store, and its address as given, for messages.
pub struct Place<S> {
    /// The store.
    pub store: S,
    /// Its address, as `--store` gave it.
    pub label: String,
}

/// An engine over the store that registers no machine, so it claims and runs nothing: its
/// cancel, pause, resume, delete and status are the runtime's own, on any run.
pub fn engine<S: CheckpointStore + Clone>(place: &Place<S>) -> Result<Engine, CliError> {
    Engine::builder()
        .store(place.store.clone())
        .build()
        .map_err(CliError::engine("read the store through the runtime"))
}

/// The most runs `machines` reads at once.
const PAGE: usize = 1000;

/// The machine names of the store's runs, with their number of runs per status.
pub async fn machines<S: CheckpointStore>(store: &S, out: &mut Out) -> Result<(), CliError> {
    let mut counts: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let mut filter = Filter::new().limit(PAGE);
    loop {
        let page = store.list(filter.clone()).await.map_err(CliError::store("list the runs"))?;
        for summary in &page {
            let column = Status::ALL.iter().position(|status| *status == summary.status);
            let row =
                counts.entry(summary.machine.clone()).or_insert_with(|| vec![0; Status::ALL.len()]);
            if let Some(count) = column.and_then(|column| row.get_mut(column)) {
                *count += 1;
            }
        }
        match page.last() {
            Some(last) if page.len() == PAGE => filter = filter.cursor(last.cursor()),
            _ => break,
        }
    }
    let note = "the store keeps runs, not machines' graphs: these are the machines its runs \
                were started under (`flow diagram NAME --server URL` draws one)";
    if out.json {
        let machines: Vec<_> = counts
            .iter()
            .map(|(name, row)| {
                let by_status: serde_json::Map<String, serde_json::Value> = Status::ALL
                    .iter()
                    .zip(row)
                    .map(|(status, count)| (status.as_str().to_owned(), json!(count)))
                    .collect();
                json!({ "name": name, "runs": row.iter().sum::<u64>(), "by_status": by_status })
            })
            .collect();
        return out.json(&json!({ "machines": machines, "note": note }));
    }
    eprintln!("{note}");
    if counts.is_empty() {
        return out.line("no runs in the store");
    }
    let mut headers = vec!["MACHINE".to_owned(), "RUNS".to_owned()];
    headers.extend(Status::ALL.iter().map(|status| status.as_str().to_uppercase()));
    let headers: Vec<&str> = headers.iter().map(String::as_str).collect();
    let rows: Vec<Vec<String>> = counts
        .into_iter()
        .map(|(name, row)| {
            let total = row.iter().sum::<u64>().to_string();
            [name, total].into_iter().chain(row.iter().map(u64::to_string)).collect()
        })
        .collect();
    out.text(&table(&headers, &rows))
}

/// A runtime error about run `id`, with an unknown run said as such.
fn refused(
    place: &Place<impl CheckpointStore>,
    id: RunId,
    action: &str,
) -> impl FnOnce(EngineError) -> CliError {
    let (label, action) = (place.label.clone(), format!("{action} run {id}"));
    move |error| match error {
        EngineError::UnknownRun { run } => CliError::UnknownRun { run, store: label },
        EngineError::Store(StoreError::Unfinished { run, status }) => {
            CliError::Unfinished { run, status: status.to_string() }
        }
        other => CliError::engine(action)(other),
    }
}

/// Where run `id` stands now.
async fn status_of(
    place: &Place<impl CheckpointStore>,
    id: RunId,
) -> Result<Option<Status>, CliError> {
    let summary = place.store.summary(id).await;
    Ok(summary.map_err(CliError::store(format!("read run {id}")))?.map(|summary| summary.status))
}

/// Prints what a command did to run `id`.
fn report(
    out: &mut Out,
    id: RunId,
    action: &str,
    status: Option<Status>,
    text: &str,
) -> Result<(), CliError> {
    if out.json {
        return out.json(
            &json!({ "run": id.to_string(), "action": action, "status": status, "message": text }),
        );
    }
    out.line(text)
}

/// Cancels (`Halt::Cancel`) or pauses (`Halt::Pause`) run `id`.
pub async fn halt<S: CheckpointStore + Clone>(
    place: &Place<S>,
    id: RunId,
    halt: Halt,
    out: &mut Out,
) -> Result<(), CliError> {
    let engine = engine(place)?;
    let (done, verb) = match halt {
        Halt::Cancel => (Status::Cancelled, "cancel"),
        Halt::Pause => (Status::Paused, "pause"),
    };
    let result = match halt {
        Halt::Cancel => engine.cancel(id).await,
        Halt::Pause => engine.pause(id).await,
    };
    result.map_err(refused(place, id, verb))?;
    let status = status_of(place, id).await?;
    let text = if status == Some(done) {
        format!("run {id} is {done}")
    } else {
        format!(
            "asked to {verb} run {id}: an engine is executing it, and will {verb} it at its next \
             safe point (`flow runs show {id}` tells when)"
        )
    };
    report(out, id, verb, status, &text)
}

/// Resumes a paused run; makes a stuck one runnable again, as `Engine::resume_pending` does
/// for the machines of the engine that calls it.
pub async fn resume<S: CheckpointStore + Clone>(
    place: &Place<S>,
    id: RunId,
    out: &mut Out,
) -> Result<(), CliError> {
    let before = status_of(place, id).await?;
    let text = if before == Some(Status::Stuck) {
        let action = format!("resume run {id}");
        place.store.mark(id, Status::Running, None, None).await.map_err(CliError::store(action))?;
        format!(
            "run {id} was stuck and is runnable again: an engine that runs its machine (with the \
             fix it was stuck for) claims it"
        )
    } else {
        engine(place)?.resume(id).await.map_err(refused(place, id, "resume"))?;
        format!("run {id} is resumed: an engine that runs its machine claims it")
    };
    let status = status_of(place, id).await?;
    report(out, id, "resume", status, &text)
}

/// Starts the next attempt of run `id`, waiting out a retry's backoff, now.
pub async fn retry<S: CheckpointStore + Clone>(
    place: &Place<S>,
    id: RunId,
    out: &mut Out,
) -> Result<(), CliError> {
    engine(place)?.retry_now(id).await.map_err(refused(place, id, "retry"))?;
    let status = status_of(place, id).await?;
    let text = format!(
        "run {id} is retried now: an engine that runs its machine claims it and starts its next \
         attempt"
    );
    report(out, id, "retry", status, &text)
}

/// Deletes finished run `id` and its history.
pub async fn delete<S: CheckpointStore + Clone>(
    place: &Place<S>,
    id: RunId,
    out: &mut Out,
) -> Result<(), CliError> {
    engine(place)?.delete(id).await.map_err(refused(place, id, "delete"))?;
    report(out, id, "delete", None, &format!("run {id} is deleted, with its history"))
}
