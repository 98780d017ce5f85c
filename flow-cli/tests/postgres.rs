//! The same commands on a PostgreSQL store (`--features postgres`, `DATABASE_URL`), in a
//! schema of its own (`--schema`).

#![cfg(feature = "postgres")]

mod common;

use std::time::Duration;

use common::{engine, failed, flow, json, ok, runtime, until};
use flow::store::{PostgresStore, Status, Wait};

const SCHEMA: &str = "flow_cli_tests";

fn database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| {
        panic!(
            "the PostgreSQL tests need DATABASE_URL, e.g. \
             DATABASE_URL=postgres://postgres@127.0.0.1:5432/test; \
             or leave them out by testing without `--features postgres`"
        )
    })
}

#[test]
fn runs_list_show_cancel_and_machines_on_postgresql() {
    let url = database_url();
    let runtime = runtime();
    let (waiting, timer) = runtime.block_on(async {
        let (client, connection) =
            tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
        let driver = tokio::spawn(connection);
        client.batch_execute(&format!("DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")).await.unwrap();
        drop(client);
        let _ = driver.await;
        let store = PostgresStore::builder(&url).schema(SCHEMA).connect().await.unwrap();
        let engine = engine(store);
        let shop = common::Shop { name: "the harbour shop".into() };
        let mut runs = Vec::new();
        for kind in ["ship", "approve", "nap"] {
            let handle = engine.start_keyed::<common::Order>(kind, kind.into(), shop.clone());
            runs.push(handle.await.unwrap().id());
        }
        until(&engine, runs[0], |s| s.status == Status::Completed).await;
        until(&engine, runs[1], |s| s.wait == Some(Wait::Signal)).await;
        until(&engine, runs[2], |s| s.wait == Some(Wait::Timer)).await;
        engine.shutdown(Duration::from_secs(5)).await.unwrap();
        (runs[1].to_string(), runs[2].to_string())
    });
    let run = |args: &[&str]| {
        let mut all = vec!["--store", &url, "--schema", SCHEMA];
        all.extend_from_slice(args);
        flow(&all)
    };

    let listing = json(&run(&["--json", "runs", "list"]));
    assert_eq!(listing["runs"].as_array().unwrap().len(), 3);
    let signal = json(&run(&["--json", "runs", "list", "--wait", "signal"]));
    assert_eq!(signal["runs"][0]["run"], waiting.as_str());
    assert_eq!(signal["runs"][0]["state"], "approve");
    let page = json(&run(&["--json", "runs", "list", "--limit", "2"]));
    let next = page["next"].as_str().unwrap().to_owned();
    let rest = json(&run(&["--json", "runs", "list", "--limit", "2", "--before", &next]));
    assert_eq!(rest["runs"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], serde_json::Value::Null);

    let shown = ok(&run(&["runs", "show", &timer]));
    assert!(shown.contains("timer until") && shown.contains("the harbour shop"), "{shown}");
    assert_eq!(ok(&run(&["cancel", &waiting])), format!("run {waiting} is cancelled\n"));
    let machines = ok(&run(&["machines"]));
    let row: Vec<&str> = machines.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!(row, ["order", "3", "1", "1", "0", "1", "0", "0"]);

    let error = failed(&flow(&["--store", "postgres://nobody@127.0.0.1:1/none", "runs", "list"]));
    assert!(
        error.contains("nobody@127.0.0.1:1/none") && error.contains("check that the server runs")
    );
}
