//! `flow signal` and `flow diagram`: what needs the machines' code (a signal's type, a
//! machine's graph), asked of a flow server over its HTTP API.

use flow_core::RunId;
use reqwest::{Response, Url};
use serde_json::{Value, json};

use crate::args::Cli;
use crate::error::CliError;
use crate::output::Out;

/// The server's address, checked: an `http://` URL.
fn server(cli: &Cli, command: &'static str, what: &'static str) -> Result<Url, CliError> {
    let given = cli.server.as_deref().ok_or(CliError::NoServer { command, what })?;
    let bad = || CliError::BadServer { given: given.to_owned() };
    let url = Url::parse(given).map_err(|_| bad())?;
    if url.scheme() != "http" || url.host().is_none() {
        return Err(bad());
    }
    Ok(url)
}

/// `base` with `segments` appended to its path, each escaped as a path segment.
fn endpoint(base: &Url, segments: &[&str]) -> Result<Url, CliError> {
    let mut url = base.clone();
    url.path_segments_mut()
        .map_err(|()| CliError::BadServer { given: base.to_string() })?
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Sends `request`, with the token if there is one; an answer other than a success is
/// [`CliError::Refused`], with the server's message.
async fn send(
    cli: &Cli,
    request: reqwest::RequestBuilder,
    url: &Url,
    what: String,
) -> Result<Response, CliError> {
    let request = match &cli.token {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let unreachable = |source| CliError::Unreachable { url: url.to_string(), source };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let body = response.text().await.map_err(unreachable)?;
    // flow-server's errors are `{"error": "...", "code": "..."}`; anything else is shown as is.
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|body| body.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or(body);
    Err(CliError::Refused { what, status: status.as_u16(), message })
}

/// Delivers `value` (JSON) to run `id`: `POST /runs/{id}/signal`.
pub async fn signal(cli: &Cli, id: RunId, value: &str, out: &mut Out) -> Result<(), CliError> {
    let base = server(cli, "signal", "decode a signal into its type")?;
    let value: Value =
        serde_json::from_str(value).map_err(|source| CliError::BadJson { source })?;
    let url = endpoint(&base, &["runs", &id.to_string(), "signal"])?;
    let request = reqwest::Client::new().post(url.clone()).json(&value);
    send(cli, request, &url, format!("the signal to run {id}")).await?;
    if out.json {
        return out.json(&json!({ "run": id.to_string(), "signalled": true }));
    }
    out.line(format!("run {id} has its signal and goes on"))
}

/// Prints machine `name`'s Mermaid diagram: `GET /machines/{name}`.
pub async fn diagram(cli: &Cli, name: &str, out: &mut Out) -> Result<(), CliError> {
    let base = server(cli, "diagram", "draw a machine's graph")?;
    let url = endpoint(&base, &["machines", name])?;
    let request = reqwest::Client::new().get(url.clone());
    let what = format!("machine `{name}`");
    let response = send(cli, request, &url, what.clone()).await?;
    let unreachable = |source| CliError::Unreachable { url: url.to_string(), source };
    let machine: Value = response.json().await.map_err(unreachable)?;
    let Some(mermaid) = machine.get("mermaid").and_then(Value::as_str) else {
        let message = "its answer has no `mermaid` diagram; is this a flow server?".to_owned();
        return Err(CliError::Refused { what, status: 200, message });
    };
    if out.json {
        return out.json(&json!({ "machine": name, "mermaid": mermaid }));
    }
    out.text(mermaid)
}
