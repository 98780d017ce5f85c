//! Live events over WebSocket on 127.0.0.1: a run started over HTTP and followed frame by
//! frame until its end, a signal that moves it on, a lagging client told what it missed, the
//! token (as a header or `?token=`), and requests that are no WebSocket handshake.

use std::time::Duration;

use flow::Engine;
use flow::prelude::*;
use flow::store::MemoryStore;
use flow_server::{ErrorBody, ServerConfig};
use futures_util::{SinkExt, StreamExt};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

#[flow::machine]
pub mod approval {
    use super::*;

    #[state(start, to(publish))]
    async fn review(_cx: &mut (), doc: String, #[signal] by: String) -> Result<Review> {
        goto!(publish(format!("{doc}, approved by {by}")))
    }

    #[state(end)]
    async fn publish(_cx: &mut (), doc: String) -> Result<String> {
        Ok(doc)
    }
}

/// Reports a burst of progress, faster than a slow client reads it.
#[flow::machine]
pub mod chatty {
    use super::*;

    #[state(start, end)]
    async fn talk(_cx: &mut (), times: u32) -> Result<u32> {
        tokio::time::sleep(Duration::from_millis(200)).await;
        for i in 0..times {
            flow::progress(format!("line {i}"), None);
        }
        Ok(times)
    }
}

const TOKEN: &str = "full-token";
const READ: &str = "read-token";

/// Serves an engine on a free port of 127.0.0.1 with both tokens; returns the address.
async fn serve() -> String {
    let engine = Engine::builder()
        .store(MemoryStore::new())
        .machine::<approval::Machine>()
        .machine::<chatty::Machine>()
        .event_capacity(8)
        .build()
        .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let config = ServerConfig::new().token(TOKEN).read_only_token(READ);
    tokio::spawn(flow_server::serve(listener, engine, config));
    address.to_string()
}

fn client() -> Client {
    Client::builder().timeout(Duration::from_secs(20)).build().unwrap()
}

async fn start(client: &Client, address: &str, machine: &str, input: Value) -> String {
    let response = client
        .post(format!("http://{address}/machines/{machine}/runs"))
        .bearer_auth(TOKEN)
        .json(&json!({ "input": input }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CREATED);
    let body: Value = response.json().await.unwrap();
    body["run"].as_str().unwrap().to_owned()
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `path`, with the read-only token as a header.
async fn connect(address: &str, path: &str) -> Socket {
    let mut request = format!("ws://{address}{path}").into_client_request().unwrap();
    let bearer = HeaderValue::from_str(&format!("Bearer {READ}")).unwrap();
    request.headers_mut().insert("authorization", bearer);
    let (socket, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
}

/// Reads `socket`'s frames as JSON until the server closes it; returns them and the close
/// code.
async fn read_all(socket: &mut Socket) -> (Vec<Value>, Option<CloseCode>) {
    let mut frames = Vec::new();
    let read = async {
        while let Some(message) = socket.next().await {
            match message.unwrap() {
                Message::Text(text) => frames.push(serde_json::from_str(&text).unwrap()),
                Message::Close(frame) => return frame.map(|frame| frame.code),
                _ => {}
            }
        }
        None
    };
    let code = tokio::time::timeout(Duration::from_secs(20), read).await.unwrap();
    (frames, code)
}

/// Waits until run `run` waits for a signal, as `GET /runs/{id}` says.
async fn until_waiting(client: &Client, address: &str, run: &str) {
    for _ in 0..500 {
        let status: Value = client
            .get(format!("http://{address}/runs/{run}"))
            .bearer_auth(READ)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if status["wait"] == "signal" {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("run {run} never waited for a signal");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_is_followed_over_a_websocket_until_its_output() {
    let address = serve().await;
    let client = client();
    let mut every = connect(&address, "/ws").await;
    let run = start(&client, &address, "approval", json!("the memo")).await;
    let mut socket = connect(&address, &format!("/runs/{run}/ws")).await;
    until_waiting(&client, &address, &run).await;

    let sent = client
        .post(format!("http://{address}/runs/{run}/signal"))
        .bearer_auth(TOKEN)
        .json(&json!("ada"))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let (frames, code) = read_all(&mut socket).await;
    assert_eq!(code, Some(CloseCode::Normal));
    let (last, before) = frames.split_last().unwrap();
    assert_eq!(last, &json!({ "event": "end", "data": { "run": run, "status": "completed" } }));
    // Checkpoints this engine's events do not report (where the run stood when the socket
    // opened; the signal's) come from the store.
    assert_eq!(before[0]["event"], "checkpoint", "{before:?}");
    let events: Vec<&Value> = before.iter().filter(|frame| frame["event"] == "message").collect();
    assert!(before.iter().all(|frame| frame["data"]["run"] == run), "{before:?}");
    assert!(
        before.iter().all(|frame| frame["event"] == "message" || frame["event"] == "checkpoint"),
        "{before:?}"
    );
    let kinds: Vec<&Value> = events.iter().map(|frame| &frame["data"]["kind"]).collect();
    assert!(kinds.contains(&&json!("SignalReceived")), "{kinds:?}");
    assert!(kinds.contains(&&json!({ "Transitioned": { "to": "publish" } })), "{kinds:?}");
    let output = json!("the memo, approved by ada");
    assert_eq!(kinds.last(), Some(&&json!({ "Completed": { "output": output } })));

    let status: Value = client
        .get(format!("http://{address}/runs/{run}"))
        .bearer_auth(READ)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["output"], "the memo, approved by ada");

    // Every run's socket saw the same run start and complete, and stays open.
    let mut seen = Vec::new();
    while !seen.iter().any(|kind: &Value| kind.get("Completed").is_some()) {
        let next = tokio::time::timeout(Duration::from_secs(20), every.next()).await.unwrap();
        let frame: Value =
            serde_json::from_str(&next.unwrap().unwrap().into_text().unwrap()).unwrap();
        assert_eq!(frame["event"], "message");
        assert_eq!(frame["data"]["run"], run);
        seen.push(frame["data"]["kind"].clone());
    }
    assert!(seen.contains(&json!("Started")), "{seen:?}");
    every.send(Message::Ping(vec![7].into())).await.unwrap();
    let pong = tokio::time::timeout(Duration::from_secs(20), every.next()).await.unwrap();
    assert_eq!(pong.unwrap().unwrap(), Message::Pong(vec![7].into()));

    // A finished run's socket is its end at once.
    let mut again = connect(&address, &format!("/runs/{run}/ws")).await;
    let (frames, code) = read_all(&mut again).await;
    assert_eq!(frames.as_slice(), std::slice::from_ref(last));
    assert_eq!(code, Some(CloseCode::Normal));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_client_is_told_how_much_it_missed() {
    let address = serve().await;
    let client = client();
    let run = start(&client, &address, "chatty", json!(5000)).await;
    let mut socket = connect(&address, &format!("/runs/{run}/ws")).await;
    let (frames, _) = read_all(&mut socket).await;
    let missed: u64 = frames
        .iter()
        .filter(|frame| frame["event"] == "lagged")
        .map(|frame| frame["data"]["missed"].as_u64().unwrap())
        .sum();
    let received = frames.iter().filter(|frame| frame["event"] == "message").count() as u64;
    assert!(missed > 0, "5000 events in a burst through a channel of 8 were all read in time");
    assert!(missed + received >= 5000, "{missed} missed, {received} received");
    assert_eq!(frames.last().unwrap()["event"], "end");
    assert_eq!(frames.last().unwrap()["data"]["status"], "completed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sockets_need_a_token_and_a_handshake() {
    let address = serve().await;
    let client = client();
    let run = start(&client, &address, "approval", json!("memo")).await;
    let url = format!("ws://{address}/runs/{run}/ws");

    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), StatusCode::UNAUTHORIZED),
        other => panic!("a socket without a token was not refused: {other:?}"),
    }
    let wrong = format!("{url}?token=guess");
    match tokio_tungstenite::connect_async(wrong.as_str()).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), StatusCode::UNAUTHORIZED),
        other => panic!("a socket with a wrong token was not refused: {other:?}"),
    }
    // Browsers cannot set headers on a WebSocket: the token comes in the query.
    let (mut socket, response) =
        tokio_tungstenite::connect_async(format!("{url}?token={READ}")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    until_waiting(&client, &address, &run).await;
    socket.close(None).await.unwrap();

    // The query is no token elsewhere.
    let status = client.get(format!("http://{address}/runs/{run}?token={READ}")).send().await;
    assert_eq!(status.unwrap().status(), StatusCode::UNAUTHORIZED);

    let plain = client.get(format!("http://{address}/runs/{run}/ws")).bearer_auth(READ).send();
    let plain = plain.await.unwrap();
    assert!(plain.status().is_client_error(), "{}", plain.status());
    let body: ErrorBody = plain.json().await.unwrap();
    assert_eq!(body.code, "not_websocket");

    let unknown = format!("ws://{address}/runs/{}/ws?token={READ}", flow::RunId::random());
    match tokio_tungstenite::connect_async(unknown.as_str()).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), StatusCode::NOT_FOUND),
        other => panic!("a socket for an unknown run was not refused: {other:?}"),
    }
}
