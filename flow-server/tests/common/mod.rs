//! What the tests of following runs share: an SSE client that reads message by message.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::{RequestBuilder, StatusCode};
use serde_json::Value;

/// One Server-Sent Event: its type (`message` unless named), its `id:` if it had one, and
/// its data (`Null` for an id alone).
#[derive(Debug, Clone, PartialEq)]
pub struct Sse {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

impl Sse {
    /// The checkpoint it reports: its id, as a number.
    pub fn seq(&self) -> Option<u64> {
        self.id.as_deref().map(|id| id.parse().unwrap())
    }
}

/// An open event stream, read a message at a time; dropped, it closes the connection.
pub struct Stream {
    bytes: BoxStream<'static, reqwest::Result<axum::body::Bytes>>,
    text: String,
}

impl Stream {
    /// Opens the stream `request` asks for; it must answer 200 with an event stream.
    pub async fn open(request: RequestBuilder) -> Stream {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()["content-type"], "text/event-stream");
        Stream { bytes: response.bytes_stream().boxed(), text: String::new() }
    }

    /// The next message, or `None` once the stream closes. Fails after 20 s without one.
    pub async fn next(&mut self) -> Option<Sse> {
        loop {
            if let Some(end) = self.text.find("\n\n") {
                let block: String = self.text.drain(..end + 2).collect();
                let mut sse = Sse { event: "message".into(), id: None, data: Value::Null };
                let mut lines = 0;
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event: ") {
                        sse.event = name.to_owned();
                    } else if let Some(id) = line.strip_prefix("id: ") {
                        sse.id = Some(id.to_owned());
                    } else if let Some(json) = line.strip_prefix("data: ") {
                        sse.data = serde_json::from_str(json).unwrap();
                    } else {
                        continue;
                    }
                    lines += 1;
                }
                if lines == 0 {
                    continue; // a keep-alive comment
                }
                return Some(sse);
            }
            let chunk = tokio::time::timeout(Duration::from_secs(20), self.bytes.next())
                .await
                .expect("no message for 20 s")?;
            self.text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }

    /// Every message until the stream closes.
    pub async fn rest(mut self) -> Vec<Sse> {
        let mut all = Vec::new();
        while let Some(sse) = self.next().await {
            all.push(sse);
        }
        all
    }
}

/// The checkpoints `messages` report, in order.
pub fn seqs(messages: &[Sse]) -> Vec<u64> {
    messages.iter().filter(|m| m.data != Value::Null).filter_map(Sse::seq).collect()
}
