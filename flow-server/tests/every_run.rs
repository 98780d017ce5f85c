//! Followers of every run's events (`GET /events`): each gets every event the engine sent
//! after it subscribed, or is told how many it missed, however many follow at once.

use std::time::Duration;

use flow::Engine;
use flow::prelude::*;
use flow::store::MemoryStore;
use flow_server::ServerConfig;
use futures_util::StreamExt;
use reqwest::{Client, StatusCode};
use serde_json::Value;

/// Reports a burst of progress, faster than the engine's small event buffer holds.
#[flow::machine]
pub mod chatty {
    use super::*;

    #[state(start, end)]
    async fn talk(_cx: &mut (), times: u32) -> Result<u32> {
        for i in 0..times {
            flow::progress(format!("line {i}"), None);
        }
        Ok(times)
    }
}

/// One step, after a pause: its events come well after the bursts.
#[flow::machine]
pub mod last {
    use super::*;

    #[state(start, end)]
    async fn wait(_cx: &mut (), ms: u64) -> Result<u64> {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok(ms)
    }
}

/// What a follower of `GET /events` counted: events, and the missed ones it was told of.
#[derive(Debug, Default, PartialEq)]
struct Count {
    events: u64,
    missed: u64,
}

/// Reads `GET /events` until run `end` completes.
async fn count(response: reqwest::Response, end: tokio::sync::watch::Receiver<String>) -> Count {
    assert_eq!(response.status(), StatusCode::OK);
    let mut bytes = response.bytes_stream();
    let (mut text, mut count) = (String::new(), Count::default());
    while let Some(chunk) = bytes.next().await {
        text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        while let Some(at) = text.find("\n\n") {
            let block: String = text.drain(..at + 2).collect();
            let (mut event, mut data) = ("message", Value::Null);
            for line in block.lines() {
                if let Some(name) = line.strip_prefix("event: ") {
                    event = if name == "lagged" { "lagged" } else { "other" };
                } else if let Some(json) = line.strip_prefix("data: ") {
                    data = serde_json::from_str(json).unwrap();
                }
            }
            match event {
                "lagged" => count.missed += data["missed"].as_u64().unwrap(),
                "message" if !data.is_null() => {
                    count.events += 1;
                    if data["kind"].get("Completed").is_some() && data["run"] == *end.borrow() {
                        return count;
                    }
                }
                _ => {}
            }
        }
    }
    panic!("the stream ended before the last run did: {count:?}");
}

/// An engine of `chatty` and `last` whose followers may fall `capacity` events behind,
/// served on 127.0.0.1: the engine, the server's address, and a client.
async fn serve(capacity: usize) -> (Engine, String, Client) {
    let engine = Engine::builder()
        .store(MemoryStore::new())
        .machine::<chatty::Machine>()
        .machine::<last::Machine>()
        .event_capacity(capacity)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(flow_server::serve(listener, engine.clone(), ServerConfig::new()));
    let client = Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    (engine, base, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_follower_gets_each_event_or_is_told_it_missed_it() {
    // Room for 8 events: the bursts overrun it.
    let (engine, base, client) = serve(8).await;

    // What the engine sends from now on: what this subscriber got, and what it missed.
    let mut sent = engine.events();
    let (end, ending) = tokio::sync::watch::channel(String::new());
    let mut followers = Vec::new();
    for _ in 0..5 {
        // Subscribed once the response's head has come.
        let response = client.get(format!("{base}/events")).send().await.unwrap();
        followers.push(tokio::spawn(count(response, ending.clone())));
    }
    let counting = tokio::spawn(async move {
        let mut count = Count::default();
        while let Some(event) = sent.next().await {
            count.events += 1;
            if matches!(event.kind, flow::EventKind::Completed { .. })
                && event.run.to_string() == *ending.borrow()
            {
                break;
            }
        }
        Count { missed: sent.missed(), ..count }
    });

    let bursts: Vec<_> = (0..4).map(|_| engine.start::<chatty::Machine>(500)).collect();
    for burst in bursts {
        assert_eq!(burst.await.unwrap().output().await.unwrap(), 500);
    }
    // Its id is known before its events can come: it pauses first.
    let last = engine.start::<last::Machine>(200).await.unwrap();
    end.send_replace(last.id().to_string());
    last.output().await.unwrap();

    let sent = counting.await.unwrap();
    assert!(sent.events + sent.missed > 2_000, "{sent:?}");
    for follower in followers {
        let got = follower.await.unwrap();
        assert_eq!(got.events + got.missed, sent.events + sent.missed, "{got:?} of {sent:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_gets_only_the_kinds_it_names() {
    let (engine, base, client) = serve(4096).await;

    let wrong = client.get(format!("{base}/events?kinds=Started,Finished")).send().await.unwrap();
    assert_eq!(wrong.status(), StatusCode::BAD_REQUEST);
    let error: Value = wrong.json().await.unwrap();
    let message = error["error"].as_str().unwrap();
    assert!(message.contains("`Finished`") && message.contains("Completed"), "{message}");

    let some = client.get(format!("{base}/events?kinds=Started,Completed")).send();
    let all = client.get(format!("{base}/events")).send();
    let (some, all) = (some.await.unwrap(), all.await.unwrap());
    engine.start::<chatty::Machine>(3).await.unwrap().output().await.unwrap();
    let kinds = |response: reqwest::Response| async move {
        let mut bytes = response.bytes_stream();
        let (mut text, mut kinds) = (String::new(), Vec::<String>::new());
        while let Some(chunk) = bytes.next().await {
            text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
            while let Some(at) = text.find("\n\n") {
                let block: String = text.drain(..at + 2).collect();
                let Some(json) = block.lines().find_map(|line| line.strip_prefix("data: ")) else {
                    continue;
                };
                let kind = &serde_json::from_str::<Value>(json).unwrap()["kind"];
                let name =
                    kind.as_str().or_else(|| kind.as_object()?.keys().next().map(|k| k.as_str()));
                kinds.push(name.unwrap().to_owned());
                if kinds.last().is_some_and(|kind| kind == "Completed") {
                    return kinds;
                }
            }
        }
        panic!("the stream ended before the run's end: {kinds:?}");
    };
    assert_eq!(kinds(some).await, ["Started", "Completed"]);
    let every = kinds(all).await;
    assert!(every.len() > 5 && every.contains(&"Progress".to_owned()), "{every:?}");
}
