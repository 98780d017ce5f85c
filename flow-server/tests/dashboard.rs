//! The dashboard's files over real HTTP on 127.0.0.1: served without a token (they hold no
//! data), with their media types and a policy that keeps the page to this server, while the
//! data they show still needs the token. The page itself is driven in a browser by
//! `flow-server/ui-tests`.

use std::time::Duration;

use flow::Engine;
use flow::prelude::*;
use flow::store::MemoryStore;
use flow_server::{ErrorBody, ServerConfig};
use reqwest::{Client, StatusCode};

#[flow::machine]
pub mod hello {
    use super::*;

    #[state(start, end)]
    async fn greet(_cx: &mut (), name: String) -> Result<String> {
        Ok(format!("hello, {name}"))
    }
}

async fn serve() -> String {
    let engine =
        Engine::builder().store(MemoryStore::new()).machine::<hello::Machine>().build().unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let config = ServerConfig::new().token("full-token").read_only_token("read-token");
    tokio::spawn(flow_server::serve(listener, engine, config));
    format!("http://{address}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_is_served_without_a_token_and_its_data_is_not() {
    let base = serve().await;
    let client = Client::builder().timeout(Duration::from_secs(20)).build().unwrap();

    let page = client.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    let policy = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(policy.contains("script-src 'self'"), "{policy}");
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    let html = page.text().await.unwrap();
    // Relative to the page, so that it works under a prefix too.
    let linked = linked(&html);
    assert_eq!(
        linked,
        [
            "ui/style.css",
            "ui/graph.js",
            "ui/common.js",
            "ui/forms.js",
            "ui/runs.js",
            "ui/run.js",
            "ui/app.js"
        ]
    );
    for path in linked {
        let file = client.get(format!("{base}/{path}")).send().await.unwrap();
        assert_eq!(file.status(), StatusCode::OK, "{path}");
        let media = file.headers()["content-type"].to_str().unwrap().to_owned();
        let expected = if path.ends_with(".css") { "text/css" } else { "text/javascript" };
        assert!(media.starts_with(expected), "{path}: {media}");
        assert!(!file.text().await.unwrap().is_empty(), "{path}");
    }

    let missing = client.get(format!("{base}/ui/secret.js")).send().await.unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
    let body: ErrorBody = missing.json().await.unwrap();
    assert_eq!(body.code, "not_found");
    let posted = client.post(format!("{base}/")).send().await.unwrap();
    assert_eq!(posted.status(), StatusCode::UNAUTHORIZED);

    // What the page shows comes from the API, which still asks for the token.
    let machines = client.get(format!("{base}/machines")).send().await.unwrap();
    assert_eq!(machines.status(), StatusCode::UNAUTHORIZED);
    let machines = client.get(format!("{base}/machines")).bearer_auth("read-token").send();
    assert_eq!(machines.await.unwrap().status(), StatusCode::OK);
    // The event stream takes it in the query, as the page's EventSource sends it.
    let events = client.get(format!("{base}/events?token=read-token")).send().await.unwrap();
    assert_eq!(events.status(), StatusCode::OK);
    assert_eq!(events.headers()["content-type"], "text/event-stream");
    let events = client.get(format!("{base}/events?token=guess")).send().await.unwrap();
    assert_eq!(events.status(), StatusCode::UNAUTHORIZED);
}

/// The style sheet and scripts `html` links to, as written (`href="…"`, `src="…"`).
fn linked(html: &str) -> Vec<String> {
    let mut linked = Vec::new();
    for attribute in ["href=\"", "src=\""] {
        for (start, _) in html.match_indices(attribute) {
            let rest = &html[start + attribute.len()..];
            let value = &rest[..rest.find('"').unwrap()];
            if value.ends_with(".css") || value.ends_with(".js") {
                linked.push(value.to_owned());
            }
        }
    }
    linked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_nested_under_a_prefix() {
    let engine =
        Engine::builder().store(MemoryStore::new()).machine::<hello::Machine>().build().unwrap();
    let config = ServerConfig::new().token("full-token");
    let app = axum::Router::new().nest("/flow", flow_server::router(engine, config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/flow", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let client = Client::builder().timeout(Duration::from_secs(20)).build().unwrap();

    // The page's links resolve under the prefix, from its address as nested (no slash).
    let page = client.get(&base).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.unwrap();
    let links = linked(&html);
    assert_eq!(links.len(), 7, "{html}");
    for path in links {
        let url = reqwest::Url::parse(&base).unwrap().join(&path).unwrap();
        assert!(url.path().starts_with("/flow/ui/"), "{url}");
        let file = client.get(url.clone()).send().await.unwrap();
        assert_eq!(file.status(), StatusCode::OK, "{url}");
    }
    // The page's calls go to the API relative to it.
    let machines = client.get(format!("{base}/machines")).bearer_auth("full-token").send();
    assert_eq!(machines.await.unwrap().status(), StatusCode::OK);
}
