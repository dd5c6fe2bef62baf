//! Launchers for the services the fleet tests run against: moto (an S3 server) and redis-server.
//!
//! Each server runs on a free loopback port in a temp dir of its own and is stopped by PID when
//! dropped. A watchdog shell also stops it when the test process exits, so servers shared by a
//! whole test binary (`shared`, kept in a static that is never dropped) do not outlive it.
//! A missing program is a [`Skip`], which tests report (or fail on, with `MODSTASH_E2E=require`).
#![allow(dead_code)] // each test binary uses a part
// Test support: a fixture that cannot be set up fails the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use modstash::storage::compliance::Skip;
use modstash::storage::{Storage, StorageUrl};
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};

/// Longest wait for a server to answer after it was started.
const START_DEADLINE: Duration = Duration::from_secs(60);

/// A free loopback port (free when asked; the server binds it right after).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Stops `pid` when this test process exits (or as soon as `pid` is gone).
fn watchdog(pid: u32) -> Option<Child> {
    Command::new("sh")
        .arg("-c")
        .arg(r#"while kill -0 "$1" 2>/dev/null && kill -0 "$2" 2>/dev/null; do sleep 1; done; kill "$2" 2>/dev/null"#)
        .arg("watchdog")
        .arg(std::process::id().to_string())
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()
}

/// Sends SIGTERM to `pid` and waits (bounded) until it is gone.
fn stop_pid(pid: u32) {
    let _ = Command::new("kill").arg(pid.to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !alive {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
}

/// One raw HTTP/1.1 request with `Connection: close`; the status code.
fn http_status(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let head = String::from_utf8_lossy(&response);
    head.split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {head:.80}")))
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let tail: Vec<char> = text.chars().rev().take(2000).collect();
    tail.into_iter().rev().collect()
}

/// A moto S3 server.
pub struct MotoServer {
    child: Child,
    watchdog: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl MotoServer {
    /// Starts `moto_server` and waits until it answers.
    pub fn start() -> Result<MotoServer, Skip> {
        let dir = tempfile::tempdir().map_err(|e| Skip::new("moto", e.to_string()))?;
        let port = free_port();
        let (child, watchdog) = MotoServer::spawn(dir.path(), port)?;
        let mut server = MotoServer {
            child,
            watchdog,
            port,
            dir,
        };
        server.wait_answering()?;
        Ok(server)
    }

    fn spawn(dir: &Path, port: u16) -> Result<(Child, Option<Child>), Skip> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("moto.log"))
            .map_err(|e| Skip::new("moto", e.to_string()))?;
        let log_err = log
            .try_clone()
            .map_err(|e| Skip::new("moto", e.to_string()))?;
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .map_err(|e| {
                Skip::new(
                    "moto",
                    format!(
                        "cannot run moto_server ({e}); pip install 'moto[s3]' flask flask-cors"
                    ),
                )
            })?;
        let watchdog = watchdog(child.id());
        Ok((child, watchdog))
    }

    fn wait_answering(&mut self) -> Result<(), Skip> {
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(Skip::new(
                    "moto",
                    format!(
                        "moto_server exited with {status}: {}",
                        log_tail(&self.dir.path().join("moto.log"))
                    ),
                ));
            }
            if http_status(self.port, "GET", "/").is_ok_and(|code| code == 200) {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err(Skip::new(
                    "moto",
                    format!("moto_server did not answer within {START_DEADLINE:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops the server (SIGKILL): an S3 endpoint that refuses connections until [`restart`].
    ///
    /// [`restart`]: MotoServer::restart
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }

    /// Starts the server again on the same port. moto keeps its state in memory: every bucket
    /// and object is gone.
    pub fn restart(&mut self) -> Result<(), Skip> {
        self.stop();
        let (child, watchdog) = MotoServer::spawn(self.dir.path(), self.port)?;
        self.child = child;
        self.watchdog = watchdog;
        self.wait_answering()
    }

    /// Creates the bucket `name` (after a [`restart`](MotoServer::restart), say).
    pub fn create_named_bucket(&self, name: &str) {
        let status = http_status(self.port, "PUT", &format!("/{name}")).expect("create bucket");
        assert_eq!(status, 200, "moto refused to create bucket {name}");
    }

    /// One server for the whole test binary, started on first use.
    pub fn shared() -> Result<&'static MotoServer, Skip> {
        static SHARED: OnceLock<Result<MotoServer, Skip>> = OnceLock::new();
        SHARED
            .get_or_init(MotoServer::start)
            .as_ref()
            .map_err(|skip| Skip::new(&skip.component, &skip.reason))
    }

    /// `http://127.0.0.1:{port}`
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment a modstash process needs to use this server as its S3 (object_store's
    /// `AWS_*` variables: path-style, plain HTTP, dummy keys).
    pub fn client_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint()),
            ("AWS_ALLOW_HTTP", "true".to_owned()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "modstash-test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "modstash-test".to_owned()),
            ("AWS_VIRTUAL_HOSTED_STYLE_REQUEST", "false".to_owned()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }

    /// Creates a bucket with a unique name and returns the name.
    pub fn create_bucket(&self) -> String {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "modstash-{}-{}-{:08x}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        self.create_named_bucket(&name);
        name
    }

    /// An S3 client for `bucket` on this server: path-style, plain HTTP, dummy keys, and the
    /// conditional put object_store uses for `PutMode::Create`/`Update` (`If-None-Match`/`If-Match`).
    pub fn s3_builder(&self, bucket: &str) -> AmazonS3Builder {
        AmazonS3Builder::new()
            .with_endpoint(self.endpoint())
            .with_allow_http(true)
            .with_region("us-east-1")
            .with_access_key_id("modstash-test")
            .with_secret_access_key("modstash-test")
            .with_virtual_hosted_style_request(false)
            .with_conditional_put(S3ConditionalPut::ETagMatch)
            .with_bucket_name(bucket)
    }

    /// A storage on a new, empty bucket.
    pub fn fresh_storage(&self) -> Storage {
        let bucket = self.create_bucket();
        let s3 = self.s3_builder(&bucket).build().expect("S3 client");
        Storage::from_store(
            std::sync::Arc::new(s3),
            StorageUrl::S3 {
                bucket,
                prefix: String::new(),
            },
        )
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A redis-server.
pub struct RedisServer {
    pid: u32,
    watchdog: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts `redis-server` (daemonized, no persistence) and waits until it answers `PING`.
    pub fn start() -> Result<RedisServer, Skip> {
        let dir = tempfile::tempdir().map_err(|e| Skip::new("redis-server", e.to_string()))?;
        let port = free_port();
        let pidfile = dir.path().join("redis.pid");
        let status = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "yes"])
            .arg("--pidfile")
            .arg(&pidfile)
            .arg("--dir")
            .arg(dir.path())
            .arg("--logfile")
            .arg(dir.path().join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map_err(|e| {
                Skip::new(
                    "redis-server",
                    format!("cannot run redis-server ({e}); apt-get install redis-server"),
                )
            })?;
        if !status.success() {
            return Err(Skip::new(
                "redis-server",
                format!("redis-server exited with {status}"),
            ));
        }
        let deadline = Instant::now() + START_DEADLINE;
        let pid = loop {
            if let Some(pid) = std::fs::read_to_string(&pidfile)
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
            {
                break pid;
            }
            if Instant::now() > deadline {
                return Err(Skip::new(
                    "redis-server",
                    format!(
                        "no pidfile within {START_DEADLINE:?}: {}",
                        log_tail(&dir.path().join("redis.log"))
                    ),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let server = RedisServer {
            pid,
            watchdog: watchdog(pid),
            port,
            dir,
        };
        while !server.ping() {
            if Instant::now() > deadline {
                return Err(Skip::new(
                    "redis-server",
                    format!("no PONG within {START_DEADLINE:?}"),
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// One server for the whole test binary, started on first use.
    pub fn shared() -> Result<&'static RedisServer, Skip> {
        static SHARED: OnceLock<Result<RedisServer, Skip>> = OnceLock::new();
        SHARED
            .get_or_init(RedisServer::start)
            .as_ref()
            .map_err(|skip| Skip::new(&skip.component, &skip.reason))
    }

    /// True when the server answers `PING` with `PONG`.
    pub fn ping(&self) -> bool {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let Ok(mut stream) = TcpStream::connect_timeout(&addr, Duration::from_secs(1)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }

    /// `redis://127.0.0.1:{port}`
    pub fn url(&self) -> url::Url {
        url::Url::parse(&format!("redis://127.0.0.1:{}", self.port)).expect("a redis URL")
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        stop_pid(self.pid);
        if let Some(mut w) = self.watchdog.take() {
            let _ = w.kill();
            let _ = w.wait();
        }
    }
}
