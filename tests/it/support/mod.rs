//! Shared test support: fixture tree, fixture upstream, in-process modstash, raw HTTP, the go command.
//!
//! A typical test: `let s = support::stack().await;` then requests against `s.server`, with
//! expectations from `s.tree` and upstream request counts from `s.upstream`.

pub mod fixture_tree;
pub mod fleet;
pub mod git_origin;
pub mod gocmd;
pub mod hostile;
pub mod layout;
pub mod raw_http;
pub mod server;
pub mod sumdb;
pub mod tls;
pub mod upstream;

use std::time::Duration;

use modstash::Settings;
use reqwest::header::HeaderMap;

use fixture_tree::FixtureTree;
use server::TestServer;
use upstream::Upstream;

/// A fixture upstream and a modstash in front of it, plus the expected answers.
#[derive(Debug)]
pub struct Stack {
    /// What every answer should be.
    pub tree: &'static FixtureTree,
    /// The upstream modstash fetches from.
    pub upstream: Upstream,
    /// modstash, with its own empty storage.
    pub server: TestServer,
}

/// A fresh upstream and a modstash with default settings.
pub async fn stack() -> Stack {
    stack_with(|_| {}).await
}

/// A fresh upstream and a modstash whose settings `configure` adjusts.
pub async fn stack_with(configure: impl FnOnce(&mut Settings)) -> Stack {
    let tree = FixtureTree::shared();
    let upstream = Upstream::start().await;
    let server = server::start_with(&upstream.url(), configure).await;
    Stack {
        tree,
        upstream,
        server,
    }
}

/// Hang guard only, far above any healthy answer: a stuck server fails the test instead of the suite.
pub const HANG_GUARD: Duration = Duration::from_secs(120);

/// An HTTP client that ignores `*_PROXY` variables: every test talks to loopback only.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(HANG_GUARD)
        .build()
        .expect("build reqwest client")
}

/// A whole response, read before returning.
#[derive(Debug)]
pub struct Fetched {
    /// Status code.
    pub status: u16,
    /// Header fields.
    pub headers: HeaderMap,
    /// The body.
    pub body: Vec<u8>,
}

impl Fetched {
    /// A header's value as text, if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The body as UTF-8 text (lossy), for messages and text answers.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends a request and reads the whole answer; a transport error fails the test with the URL.
pub async fn send(request: reqwest::RequestBuilder) -> Fetched {
    try_send(request).await.unwrap_or_else(|e| panic!("{e}"))
}

/// Sends a request and reads the whole answer; `Err` says what failed (connecting, or the body
/// cut short) with the URL: for tests where a server may die under the request.
pub async fn try_send(request: reqwest::RequestBuilder) -> Result<Fetched, String> {
    let (client, request) = request.build_split();
    let request = request.expect("build request");
    let url = request.url().to_string();
    let response = client
        .execute(request)
        .await
        .map_err(|e| format!("request to {url} failed (is modstash serving?): {e:?}"))?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response
        .bytes()
        .await
        .map_err(|e| format!("reading the body of {url} (status {status}) failed: {e:?}"))?
        .to_vec();
    Ok(Fetched {
        status,
        headers,
        body,
    })
}

/// `GET url` with a fresh client.
pub async fn get(url: &str) -> Fetched {
    send(client().get(url)).await
}
