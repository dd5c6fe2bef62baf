//! A fixture upstream proxy: serves a GOPROXY tree over real HTTP, counts requests, and misbehaves on demand.
//!
//! Request paths are percent-decoded once and looked up as files under the tree; anything
//! else is a 404 with a text/plain body. Counts are keyed by that decoded path and include
//! requests answered with an injected fault, a 503 while down, or a 404.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;

use super::fixture_tree::FixtureTree;

/// A misbehaviour for one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this status and a short text body.
    Status(u16),
    /// Answer 200 with the full Content-Length, send half the body, then drop the connection.
    ResetMidBody,
    /// Answer 200 with the full Content-Length, send half the body, then end the body cleanly.
    ShortBody,
    /// Declare half the length and offer the whole body: hyper sends only the declared bytes, so
    /// the client reads a well-framed but truncated file.
    LongBody,
    /// Send the headers and half the body, then nothing more while the connection stays open.
    Stall,
    /// Send the body one byte per second (each byte well within any read timeout).
    SlowDrip,
    /// Redirect to the same path, forever.
    RedirectLoop,
    /// Answer 200 with these bytes instead of the file.
    Body(Bytes),
    /// Answer 200 with `size` zero bytes made as they are sent (never held in memory), with or
    /// without a Content-Length; [`Upstream::streamed`] counts what was handed to the socket.
    Huge {
        /// Bytes in the whole body.
        size: u64,
        /// Whether the answer declares its length up front.
        content_length: bool,
    },
}

#[derive(Debug)]
struct Shared {
    root: PathBuf,
    counts: Mutex<BTreeMap<String, usize>>,
    delay: Mutex<Duration>,
    faults: Mutex<HashMap<String, Fault>>,
    streamed: Mutex<BTreeMap<String, u64>>,
    down: AtomicBool,
    arrived: tokio::sync::Notify,
    required_auth: Mutex<Option<String>>,
}

/// A running fixture upstream; stops when dropped.
#[derive(Debug)]
pub struct Upstream {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Upstream {
    /// Serves the shared fixture tree ([`FixtureTree::shared`]).
    pub async fn start() -> Upstream {
        Upstream::serve_dir(FixtureTree::shared().dir()).await
    }

    /// Serves any GOPROXY tree on disk.
    pub async fn serve_dir(root: &Path) -> Upstream {
        let shared = Arc::new(Shared {
            root: root.to_owned(),
            counts: Mutex::new(BTreeMap::new()),
            delay: Mutex::new(Duration::ZERO),
            faults: Mutex::new(HashMap::new()),
            streamed: Mutex::new(BTreeMap::new()),
            down: AtomicBool::new(false),
            arrived: tokio::sync::Notify::new(),
            required_auth: Mutex::new(None),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fixture upstream");
        let addr = listener.local_addr().expect("upstream address");
        let app = Router::new().fallback(answer).with_state(shared.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await
                .expect("fixture upstream failed");
        });
        Upstream {
            addr,
            shared,
            shutdown: Some(tx),
        }
    }

    /// `http://127.0.0.1:PORT`, to use as modstash's upstream or as a GOPROXY.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Delays every later response by `delay` before answering (zero turns it off).
    pub fn set_delay(&self, delay: Duration) {
        *self.shared.delay.lock().expect("lock") = delay;
    }

    /// Makes every later request for `path` (decoded, e.g. `/example.com/hello/@v/v1.1.0.mod`) misbehave.
    pub fn set_fault(&self, path: &str, fault: Fault) {
        self.shared
            .faults
            .lock()
            .expect("lock")
            .insert(path.to_owned(), fault);
    }

    /// Serves `path` normally again.
    pub fn clear_fault(&self, path: &str) {
        self.shared.faults.lock().expect("lock").remove(path);
    }

    /// Answers 401 to every later request whose `Authorization` header is not exactly `value`
    /// (`None`: no authentication).
    pub fn require_authorization(&self, value: Option<&str>) {
        *self.shared.required_auth.lock().expect("lock") = value.map(str::to_owned);
    }

    /// While down, every request is answered 503 (after the delay).
    pub fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
    }

    /// Requests received so far, per decoded path.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.shared.counts.lock().expect("lock").clone()
    }

    /// Requests received so far for one decoded path.
    pub fn count(&self, path: &str) -> usize {
        self.shared
            .counts
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Waits until `path` has been requested at least `n` times: to act while a request is in flight.
    pub async fn wait_for(&self, path: &str, n: usize) {
        self.wait_until(|| self.count(path) >= n).await;
    }

    /// Waits until at least `n` requests arrived in all (any path): to act while fetches run.
    #[allow(dead_code)] // used by the reliability suite only
    pub async fn wait_total(&self, n: usize) {
        self.wait_until(|| self.total() >= n).await;
    }

    async fn wait_until(&self, done: impl Fn() -> bool) {
        loop {
            // Registered before the check, so a request arriving in between still wakes us.
            let arrived = self.shared.arrived.notified();
            tokio::pin!(arrived);
            arrived.as_mut().enable();
            if done() {
                return;
            }
            arrived.await;
        }
    }

    /// Bytes of [`Fault::Huge`] bodies produced so far for `path` (at most a socket buffer ahead
    /// of what the client read).
    pub fn streamed(&self, path: &str) -> u64 {
        self.shared
            .streamed
            .lock()
            .expect("lock")
            .get(path)
            .copied()
            .unwrap_or(0)
    }

    /// Requests received that are not well-formed GOPROXY requests (shortened for messages): a
    /// proxy in front must refuse those itself.
    pub fn malformed_requests(&self) -> Vec<String> {
        self.counts()
            .into_keys()
            .filter(|path| super::layout::check_upstream_path(path).is_err())
            .map(|path| super::raw_http::shorten(&path))
            .collect()
    }

    /// Requests received so far, all paths together.
    pub fn total(&self) -> usize {
        self.shared.counts.lock().expect("lock").values().sum()
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn answer(State(shared): State<Arc<Shared>>, headers: HeaderMap, uri: Uri) -> Response {
    let path = percent_encoding::percent_decode_str(uri.path())
        .decode_utf8_lossy()
        .into_owned();
    *shared
        .counts
        .lock()
        .expect("lock")
        .entry(path.clone())
        .or_default() += 1;
    shared.arrived.notify_waiters();
    let delay = *shared.delay.lock().expect("lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if shared.down.load(Ordering::SeqCst) {
        return text(StatusCode::SERVICE_UNAVAILABLE, "upstream is down\n");
    }
    let required = shared.required_auth.lock().expect("lock").clone();
    if let Some(required) = required
        && headers.get(header::AUTHORIZATION).map(|v| v.as_bytes()) != Some(required.as_bytes())
    {
        return text(StatusCode::UNAUTHORIZED, "authentication required\n");
    }
    let fault = shared.faults.lock().expect("lock").get(&path).cloned();
    let file = resolve(&shared.root, &path);
    let content = match &file {
        Some(file) => tokio::fs::read(file).await.ok(),
        None => None,
    };
    if let Some(fault) = fault {
        let content = Bytes::from(content.unwrap_or_else(|| vec![b'x'; 64]));
        return misbehave(&shared, &path, fault, content);
    }
    match content {
        Some(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type(&path));
            response
        }
        None => {
            // One line, like any GOPROXY reason, whatever a hostile path decodes to.
            let shown: String = path.chars().filter(|c| !c.is_control()).collect();
            text(StatusCode::NOT_FOUND, &format!("not found: {shown}\n"))
        }
    }
}

/// The file a decoded path names inside the tree, refusing anything that could step outside it.
fn resolve(root: &Path, path: &str) -> Option<PathBuf> {
    let rel = path.strip_prefix('/')?;
    let mut file = root.to_owned();
    for element in rel.split('/') {
        let bad = element.is_empty()
            || element == "."
            || element == ".."
            || element.contains('\\')
            || element.contains('\0');
        if bad {
            return None;
        }
        file.push(element);
    }
    file.is_file().then_some(file)
}

fn content_type(path: &str) -> HeaderValue {
    let value = if path.ends_with(".info") || path.ends_with("/@latest") {
        "application/json"
    } else if path.ends_with(".zip") {
        "application/zip"
    } else {
        "text/plain; charset=utf-8"
    };
    HeaderValue::from_static(value)
}

fn text(status: StatusCode, body: &str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body.to_owned(),
    )
        .into_response()
}

fn misbehave(shared: &Arc<Shared>, path: &str, fault: Fault, content: Bytes) -> Response {
    let full = content.len();
    let half = content.slice(..full / 2);
    match fault {
        Fault::Status(code) => {
            let status = StatusCode::from_u16(code).expect("valid fault status");
            text(status, &format!("injected fault {code} for {path}\n"))
        }
        Fault::ResetMidBody => half_then_end(half, full, true),
        Fault::ShortBody => half_then_end(half, full, false),
        // A stream, not a whole body: hyper asserts that a body of known size matches the header.
        Fault::LongBody => with_length(body_of(content), (full / 2) as u64),
        Fault::Stall => {
            let body = futures::stream::once(async move { Ok::<_, std::io::Error>(half) })
                .chain(futures::stream::pending());
            with_length(Body::from_stream(body), full as u64)
        }
        Fault::SlowDrip => {
            let ticks = tokio_stream_interval(Duration::from_secs(1));
            let body = ticks
                .zip(futures::stream::iter(0..full))
                .map(move |(_, i)| Ok::<_, std::io::Error>(content.slice(i..i + 1)));
            with_length(Body::from_stream(body), full as u64)
        }
        Fault::RedirectLoop => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::FOUND;
            let location = HeaderValue::from_str(path).expect("decoded fixture paths are ASCII");
            response.headers_mut().insert(header::LOCATION, location);
            response
        }
        Fault::Body(bytes) => {
            let mut response = Response::new(Body::from(bytes));
            response
                .headers_mut()
                .insert(header::CONTENT_TYPE, content_type(path));
            response
        }
        Fault::Huge {
            size,
            content_length,
        } => huge(shared, path, size, content_length),
    }
}

/// A 200 answer whose Content-Length is `length`, whatever the body holds.
fn with_length(body: Body, length: u64) -> Response {
    let mut response = Response::new(body);
    response
        .headers_mut()
        .insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    response
}

/// A body of `bytes` whose size hyper does not know in advance.
fn body_of(bytes: Bytes) -> Body {
    Body::from_stream(futures::stream::once(async move {
        Ok::<_, std::io::Error>(bytes)
    }))
}

/// Ticks of a tokio interval as a stream (the first one at once).
fn tokio_stream_interval(period: Duration) -> impl futures::Stream<Item = ()> {
    futures::stream::unfold(tokio::time::interval(period), |mut interval| async move {
        interval.tick().await;
        Some(((), interval))
    })
}

fn huge(shared: &Arc<Shared>, path: &str, size: u64, content_length: bool) -> Response {
    const CHUNK: usize = 256 * 1024;
    static ZEROS: [u8; CHUNK] = [0; CHUNK];
    let shared = Arc::clone(shared);
    let path = path.to_owned();
    let body = futures::stream::unfold(0u64, move |sent| {
        let shared = Arc::clone(&shared);
        let path = path.clone();
        async move {
            if sent >= size {
                return None;
            }
            let n = (size - sent).min(CHUNK as u64);
            *shared
                .streamed
                .lock()
                .expect("lock")
                .entry(path)
                .or_default() += n;
            let chunk = Bytes::from_static(&ZEROS[..n as usize]);
            Some((Ok::<_, std::io::Error>(chunk), sent + n))
        }
    });
    let body = Body::from_stream(body);
    if content_length {
        with_length(body, size)
    } else {
        Response::new(body)
    }
}

/// Half the body, then the end (`reset` false) or an error that drops the connection.
fn half_then_end(half: Bytes, full: usize, reset: bool) -> Response {
    // The end must come on a later poll than the first chunk: ending on the first poll makes
    // hyper drop the connection before even the status line goes out. One pending poll in
    // between lets hyper flush the status line, headers and the first half.
    let body = futures::stream::unfold(0u8, move |step| {
        let half = half.clone();
        async move {
            match step {
                0 => Some((Ok(half), 1)),
                1 => {
                    tokio::task::yield_now().await;
                    reset.then(|| {
                        let e = std::io::Error::new(
                            std::io::ErrorKind::ConnectionReset,
                            "injected reset mid-body",
                        );
                        (Err(e), 2)
                    })
                }
                _ => None,
            }
        }
    });
    // The promised length is what makes the cut-off detectable by the client.
    with_length(Body::from_stream(body), full as u64)
}
