//! `flow runs list`, `runs show`, `runs events` and `machines` on a SQLite store with a run in
//! every status: the tables people read, the JSON scripts read, and every filter.

mod common;

use std::collections::BTreeSet;

use common::{failed, fixture, flow, json, ok};
use serde_json::Value;

/// The statuses of a `runs list --json`'s runs, as names.
fn statuses(listing: &Value) -> Vec<String> {
    let runs = listing["runs"].as_array().expect("a `runs` array");
    runs.iter().map(|run| run["status"].as_str().unwrap().to_owned()).collect()
}

fn ids(listing: &Value) -> Vec<String> {
    let runs = listing["runs"].as_array().expect("a `runs` array");
    runs.iter().map(|run| run["run"].as_str().unwrap().to_owned()).collect()
}

#[test]
fn runs_list_shows_every_run_in_a_table_and_as_json() {
    let store = fixture("list");
    let table = ok(&store.flow(&["runs", "list"]));
    let lines: Vec<&str> = table.lines().collect();
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(header, ["RUN", "MACHINE", "STATUS", "STATE", "WAIT", "KEY", "CREATED", "UPDATED"]);
    assert_eq!(lines.len(), 8, "{table}");
    // Columns line up: each run's status starts where the header's STATUS does.
    let column = lines[0].find("STATUS").unwrap();
    let mut seen = BTreeSet::new();
    for line in &lines[1..] {
        let status = line[column..].split_whitespace().next().unwrap();
        seen.insert(status.to_owned());
    }
    let all = ["cancelled", "completed", "failed", "paused", "running", "stuck"];
    assert_eq!(seen, all.into_iter().map(str::to_owned).collect());
    let waiting = store.run("waiting").to_string();
    let row = lines.iter().find(|line| line.starts_with(&waiting)).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(&cells[1..6], ["order", "running", "approve", "signal", "o-waiting"]);

    let listing = json(&store.flow(&["--json", "runs", "list"]));
    let mut statuses = statuses(&listing);
    statuses.sort();
    let expected = ["cancelled", "completed", "failed", "paused", "running", "running", "stuck"];
    assert_eq!(statuses, expected);
    assert_eq!(listing["next"], Value::Null);
    let runs = listing["runs"].as_array().unwrap();
    let created: Vec<u64> = runs.iter().map(|run| run["created"].as_u64().unwrap()).collect();
    assert!(created.windows(2).all(|pair| pair[0] >= pair[1]), "newest first: {created:?}");
    let timer = runs.iter().find(|run| run["key"] == "o-timer").unwrap();
    assert_eq!((&timer["state"], &timer["wait"]), (&Value::from("nap"), &Value::from("timer")));
}

#[test]
fn runs_list_filters_by_status_wait_state_key_machine_and_time() {
    let store = fixture("filters");
    let list = |args: &[&str]| {
        let mut all = vec!["runs", "list", "--json"];
        all.extend_from_slice(args);
        json(&store.flow(&all))
    };
    let keys = |listing: &Value| -> BTreeSet<String> {
        let runs = listing["runs"].as_array().unwrap();
        runs.iter().map(|run| run["key"].as_str().unwrap().to_owned()).collect()
    };
    let set = |keys: &[&str]| keys.iter().map(|key| (*key).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(keys(&list(&["--status", "paused"])), set(&["o-paused"]));
    assert_eq!(keys(&list(&["--status", "running"])), set(&["o-waiting", "o-timer"]));
    // A paused run keeps its wait for the resume, but waits for nothing meanwhile.
    assert_eq!(keys(&list(&["--wait", "signal"])), set(&["o-waiting"]));
    assert_eq!(keys(&list(&["--wait", "timer"])), set(&["o-timer"]));
    assert!(keys(&list(&["--wait", "backoff"])).is_empty());
    let in_approve = set(&["o-cancelled", "o-paused", "o-stuck", "o-waiting"]);
    assert_eq!(keys(&list(&["--state", "approve"])), in_approve);
    assert_eq!(keys(&list(&["--state", "boom", "--status", "failed"])), set(&["o-failed"]));
    assert_eq!(keys(&list(&["--key", "o-stuck"])), set(&["o-stuck"]));
    assert_eq!(statuses(&list(&["--key", "o-stuck"])), ["stuck"]);
    assert_eq!(
        keys(&list(&["--machine", "order", "--status", "completed"])),
        set(&["o-completed"])
    );
    assert!(keys(&list(&["--machine", "refund"])).is_empty());
    assert_eq!(ok(&store.flow(&["runs", "list", "--machine", "refund"])), "no runs match\n");

    // Strictly after the oldest run's creation, strictly before the newest's.
    let all = list(&["--oldest-first"]);
    let runs = all["runs"].as_array().unwrap();
    let first = runs[0]["created"].as_u64().unwrap();
    let last = runs[6]["created"].as_u64().unwrap();
    let after = list(&["--created-after", &first.to_string()]);
    assert!(
        after["runs"].as_array().unwrap().iter().all(|run| run["created"].as_u64() > Some(first))
    );
    assert!(!keys(&after).contains("o-completed"));
    let before = list(&["--created-before", &last.to_string()]);
    assert!(!keys(&before).contains("o-timer"));
    assert!(keys(&before).contains("o-completed"));
    assert!(keys(&list(&["--created-after", "2999-01-01"])).is_empty());
    assert_eq!(keys(&list(&["--created-after", "2000-01-01T00:00:00Z"])).len(), 7);

    // Arguments clap cannot read exit with its status 2.
    let wrong = store.flow(&["runs", "list", "--created-after", "last tuesday"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(common::texts(&wrong).1.contains("is not a time"));
    let output = store.flow(&["runs", "list", "--status", "sleeping"]);
    let (_, stderr) = common::texts(&output);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("running, completed, failed, cancelled, paused, stuck"), "{stderr}");
}

#[test]
fn runs_list_pages_newest_first_with_a_cursor() {
    let store = fixture("pages");
    let everything = ids(&json(&store.flow(&["--json", "runs", "list"])));
    let mut pages = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let mut args = vec!["--json", "runs", "list", "--limit", "3"];
        if let Some(cursor) = &before {
            args.extend(["--before", cursor]);
        }
        let page = json(&store.flow(&args));
        pages.push(ids(&page));
        match page["next"].as_str() {
            Some(next) => before = Some(next.to_owned()),
            None => break,
        }
        assert!(pages.len() < 5, "paging never ends: {pages:?}");
    }
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 3, 1]);
    assert_eq!(pages.concat(), everything);

    // For people, the cursor of the next page is said on standard error.
    let output = store.flow(&["runs", "list", "--limit", "2"]);
    let (stdout, stderr) = common::texts(&output);
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    let cursor = stderr.split("--before ").nth(1).unwrap().split_whitespace().next().unwrap();
    let next = json(&store.flow(&["--json", "runs", "list", "--limit", "2", "--before", cursor]));
    assert_eq!(ids(&next), everything[2..4]);
    let wrong = store.flow(&["runs", "list", "--before", "yesterday"]);
    assert_eq!(wrong.status.code(), Some(2));
    assert!(common::texts(&wrong).1.contains("is not a listing cursor"));
}

#[test]
fn runs_show_tells_state_status_wait_context_error_and_history() {
    let store = fixture("show");
    let failed_run = store.run("failed").to_string();
    let shown = ok(&store.flow(&["runs", "show", &failed_run]));
    let field = |text: &str, name: &str| -> String {
        let line = text.lines().find(|line| line.split_whitespace().next() == Some(name));
        line.unwrap_or_else(|| panic!("no {name} in {text}"))[name.len()..].trim().to_owned()
    };
    assert_eq!(field(&shown, "status"), "failed");
    assert_eq!(field(&shown, "state"), "boom");
    assert_eq!(field(&shown, "key"), "o-failed");
    assert!(field(&shown, "error").contains("the boom order exploded"), "{shown}");
    assert!(shown.contains("\"name\": \"the corner shop\""), "the context: {shown}");
    assert!(shown.contains("history (2 attempts):"), "{shown}");
    assert!(shown.contains("route #1") && shown.contains("→ boom"), "{shown}");

    let waiting = ok(&store.flow(&["runs", "show", &store.run("waiting").to_string()]));
    assert_eq!(field(&waiting, "waiting"), "signal, no deadline");
    assert_eq!(field(&waiting, "deadline"), "-");
    let timer = ok(&store.flow(&["runs", "show", &store.run("timer").to_string()]));
    assert!(field(&timer, "waiting").starts_with("timer until 20"), "{timer}");
    let stuck = ok(&store.flow(&["runs", "show", &store.run("stuck").to_string()]));
    assert_eq!(field(&stuck, "note"), "no version 9 of machine order is known");

    let document = json(&store.flow(&["--json", "runs", "show", &failed_run]));
    assert_eq!(document["status"], "failed");
    assert_eq!(document["context"]["name"], "the corner shop");
    assert!(document["error"]["message"].as_str().unwrap().contains("exploded"));
    assert_eq!(document["history"].as_array().unwrap().len(), 2);
    let timer = json(&store.flow(&["--json", "runs", "show", &store.run("timer").to_string()]));
    assert_eq!(timer["wait"], "timer");
    let hour_later = timer["created"].as_u64().unwrap() + 3_600_000;
    assert!(timer["deadline"].as_u64().unwrap().abs_diff(hour_later) < 60_000, "{timer}");
    let completed =
        json(&store.flow(&["--json", "runs", "show", &store.run("completed").to_string()]));
    assert_eq!(completed["output"], "ship shipped by the corner shop");
}

#[test]
fn runs_events_prints_the_history_and_where_the_run_stands() {
    let store = fixture("events");
    let run = store.run("completed").to_string();
    let events = ok(&store.flow(&["runs", "events", &run]));
    let lines: Vec<&str> = events.lines().collect();
    assert!(lines[0].starts_with("route #1") && lines[0].ends_with("→ ship"), "{events}");
    assert!(lines[1].starts_with("ship #1") && lines[1].ends_with("completed"), "{events}");
    assert_eq!(lines[2], "-- completed in state ship; waiting: -");
    // A finished run ends a follow at once.
    let followed = store.flow(&["runs", "events", &run, "--follow", "--interval", "20"]);
    assert_eq!(ok(&followed), events);
    assert!(common::texts(&followed).1.contains("by polling the store every 20 ms"));
    let document = json(&store.flow(&["--json", "runs", "events", &run]));
    assert_eq!(document["status"], "completed");
    assert_eq!(document["history"][0]["state"], "route");
}

#[test]
fn machines_counts_runs_per_status() {
    let store = fixture("machines");
    let output = store.flow(&["machines"]);
    let table = ok(&output);
    let lines: Vec<Vec<&str>> =
        table.lines().map(|line| line.split_whitespace().collect()).collect();
    let header =
        ["MACHINE", "RUNS", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "PAUSED", "STUCK"];
    assert_eq!(lines[0], header);
    assert_eq!(lines[1], ["order", "7", "2", "1", "1", "1", "1", "1"]);
    assert!(common::texts(&output).1.contains("not machines' graphs"));
    let document = json(&store.flow(&["machines", "--json"]));
    assert_eq!(document["machines"][0]["name"], "order");
    assert_eq!(document["machines"][0]["runs"], 7);
    assert_eq!(document["machines"][0]["by_status"]["running"], 2);
    assert_eq!(document["machines"][0]["by_status"]["stuck"], 1);
}

#[test]
fn a_wrong_store_says_what_and_where_and_exits_non_zero() {
    let missing = std::env::temp_dir().join("flow-cli-no-such-dir/runs.db");
    let missing = format!("sqlite:{}", missing.display());
    let error = failed(&flow(&["--store", &missing, "runs", "list"]));
    assert!(
        error.contains("no such file") && error.contains("flow-cli-no-such-dir/runs.db"),
        "{error}"
    );
    assert!(!std::env::temp_dir().join("flow-cli-no-such-dir").exists(), "nothing is created");

    let error = failed(&flow(&["runs", "list"]));
    assert!(error.contains("--store sqlite:PATH") && error.contains("FLOW_STORE"), "{error}");
    let error = failed(&flow(&["--store", "mysql://db/app", "machines"]));
    assert!(error.contains("not a store address"), "{error}");

    let text = std::env::temp_dir().join("flow-cli-not-a-database.txt");
    std::fs::write(&text, "just some text, long enough to look like a file header").unwrap();
    let error = failed(&flow(&["--store", &format!("sqlite:{}", text.display()), "runs", "list"]));
    assert!(
        error.contains("is not a flow store") && error.contains("not a SQLite database"),
        "{error}"
    );
    assert_eq!(std::fs::read_to_string(&text).unwrap().len(), 54, "the file is left as it was");

    let store = fixture("wrong");
    let unknown = "0000000000000000000000000000002a";
    let error = failed(&store.flow(&["runs", "show", unknown]));
    assert!(error.contains(&format!("there is no run {unknown}")), "{error}");
    let error = failed(&store.flow(&["runs", "events", unknown, "--follow"]));
    assert!(error.contains("there is no run"), "{error}");
    let output = store.flow(&["runs", "show", "run-42"]);
    assert_eq!(output.status.code(), Some(2));
}

/// Said in every run without PostgreSQL, so that leaving it out is never silent.
#[cfg(not(feature = "postgres"))]
#[test]
#[ignore = "the PostgreSQL tests of the command need `--features postgres` and DATABASE_URL"]
fn postgres_store() {}
