//! Runs modstash in-process through its public API: `127.0.0.1:0`, a private `file://` storage dir, a given upstream.

use std::net::SocketAddr;
use std::path::Path;

use futures::FutureExt;
use modstash::Settings;
use modstash::http::ServeError;

/// A running modstash; shut down by [`TestServer::shutdown`] or, without waiting, on drop.
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    storage: tempfile::TempDir,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), ServeError>>>,
}

/// Starts modstash with default settings in front of `upstream` (a GOPROXY-syntax URL).
pub async fn start(upstream: &str) -> TestServer {
    start_with(upstream, |_| {}).await
}

/// Starts modstash after letting `configure` adjust the settings (TTLs, timeouts, ...).
///
/// `listen`, `storage` and `upstream` are filled in first; `configure` may still override them.
pub async fn start_with(upstream: &str, configure: impl FnOnce(&mut Settings)) -> TestServer {
    let storage = tempfile::Builder::new()
        .prefix("modstash-storage-")
        .tempdir()
        .expect("create storage dir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind modstash");
    let addr = listener.local_addr().expect("modstash address");
    let mut settings = Settings {
        listen: addr,
        storage: format!("file://{}", storage.path().display())
            .parse()
            .expect("storage URL"),
        upstream: upstream.parse().expect("upstream spec"),
        ..Settings::default()
    };
    configure(&mut settings);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(modstash::serve(listener, settings, async {
        let _ = rx.await;
    }));
    TestServer {
        addr,
        storage,
        shutdown: Some(tx),
        task: Some(task),
    }
}

impl TestServer {
    /// `http://127.0.0.1:PORT`, also usable as a GOPROXY.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `base_url()` followed by `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url())
    }

    /// The listening address, for raw TCP clients.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The storage directory (a GOPROXY tree once modstash has written to it).
    pub fn storage_dir(&self) -> &Path {
        self.storage.path()
    }

    /// Asks for a graceful shutdown and waits for `serve` to return its result.
    ///
    /// Borrows rather than consumes, so the storage directory stays inspectable afterwards.
    pub async fn shutdown(&mut self) -> Result<(), ServeError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().expect("shutdown() is called once");
        task.await.expect("modstash serve task panicked")
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        // A serve() that already returned explains a failing test's refused connections;
        // the harness shows this stderr for failed tests.
        if let Some(Ok(Err(e))) = self.task.take().and_then(|t| t.now_or_never()) {
            eprintln!("modstash serve() returned early: {e}");
        }
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
