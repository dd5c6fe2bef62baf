//! Idle and slowloris clients at scale (issue 6, part 4): 10,000 connections that never send a
//! byte and slowloris clients that dribble header bytes are all held by a modstash process at
//! once, while normal clients keep getting their answers; then the header-read timeout closes
//! every one of them and their slots are free again. `tests/it/slow_clients.rs` covers the
//! slot-filling case at small scale, in-process.

use std::time::Duration;

use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::report::{Line, Report};
use crate::support::fleet::{Replica, temp_dir};
use crate::support::upstream::Upstream;
use crate::support::{HANG_GUARD, client, send};
use crate::{Mode, Outcome, ScenarioFuture};

const SCENARIO: &str = "idle_connections";
const IDLE: usize = 10_000;
const SLOWLORIS: usize = 64;
/// Long enough for all idle connections to be open at once on a loaded 2-core machine.
const HEADER_READ_TIMEOUT: &str = "10s";
/// How often a slowloris client sends one more header byte: well inside the header timeout.
const DRIBBLE: Duration = Duration::from_millis(500);

/// The scenario, for `scenarios()`.
pub fn idle_connections(report: &Report, mode: Mode) -> ScenarioFuture<'_> {
    Box::pin(run(report, mode))
}

/// The soft limit on open files of this process (children inherit it).
fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

async fn run(report: &Report, mode: Mode) -> Outcome {
    let need = (IDLE + SLOWLORIS + 1024) as u64;
    match open_files_limit() {
        Some(n) if n >= need => {}
        other => {
            return Outcome::Skipped(format!(
                "needs `ulimit -n` of at least {need} (have {other:?}) for {IDLE} connections"
            ));
        }
    }
    let normal_requests = match mode {
        Mode::Short => 200,
        Mode::Long => 2_000,
    };
    let upstream = Upstream::start().await;
    let (_storage, storage_dir) = temp_dir("modstash-idle-");
    let replica = Replica::start(
        &[
            "--storage".into(),
            format!("file://{}", storage_dir.display()),
            "--upstream".into(),
            upstream.url(),
            "--max-connections".into(),
            (IDLE + SLOWLORIS + 1024).to_string(),
            "--header-read-timeout".into(),
            HEADER_READ_TIMEOUT.into(),
        ],
        &[],
    )
    .await;
    let addr: std::net::SocketAddr = replica
        .base
        .trim_start_matches("http://")
        .parse()
        .expect("replica address");
    let pid = replica.pid();
    let baseline = open_fds(pid);

    let idle: Vec<TcpStream> = futures::stream::iter(0..IDLE)
        .map(|_| TcpStream::connect(addr))
        .buffer_unordered(256)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .map(|c| c.expect("open an idle connection"))
        .collect();
    let slowloris: Vec<_> = (0..SLOWLORIS)
        .map(|i| tokio::spawn(slowloris_client(addr, i)))
        .collect();

    // All of them held at once: modstash has a descriptor for each.
    let held = poll_until(|| open_fds(pid) >= baseline + IDLE).await;
    eprintln!(
        "   modstash holds {} descriptors ({} before)",
        open_fds(pid),
        baseline
    );
    report.one(Line::BadInputs, SCENARIO, held);

    // Meanwhile everyone else is served.
    let served = normal_clients(&replica.base, normal_requests).await;
    report.record(
        Line::Requests,
        SCENARIO,
        normal_requests as u64,
        served as u64,
    );

    // Then the header-read timeout closes every idle and slowloris connection.
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    let closed_idle = futures::stream::iter(idle)
        .map(|stream| closed_by_server(stream, deadline))
        .buffer_unordered(IDLE)
        .filter(|closed| futures::future::ready(*closed))
        .count()
        .await;
    let mut closed_slow = 0;
    for task in slowloris {
        if task.await.expect("slowloris task") {
            closed_slow += 1;
        }
    }
    eprintln!(
        "   closed by modstash: {closed_idle} of {IDLE} idle, {closed_slow} of {SLOWLORIS} slowloris; served {served} of {normal_requests} others meanwhile"
    );
    report.record(Line::BadInputs, SCENARIO, IDLE as u64, closed_idle as u64);
    report.record(
        Line::BadInputs,
        SCENARIO,
        SLOWLORIS as u64,
        closed_slow as u64,
    );
    let freed = poll_until(|| open_fds(pid) < baseline + 64).await;
    report.one(Line::BadInputs, SCENARIO, freed);
    let after = send(client().get(format!("{}/healthz", replica.base))).await;
    report.one(Line::Requests, SCENARIO, after.status == 200);
    replica.kill().await;
    Outcome::Ran
}

/// Polls `condition` every 50 ms until it holds or the hang guard passes.
async fn poll_until(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    condition()
}

/// Requests of fixture files, 16 at a time; how many were answered 200 with the right bytes.
async fn normal_clients(base: &str, requests: usize) -> usize {
    let tree = crate::support::fixture_tree::FixtureTree::shared();
    let versions: Vec<_> = tree.versions().iter().filter(|v| v.tagged).collect();
    let http = client();
    futures::stream::iter(0..requests)
        .map(|i| {
            let v = versions[i % versions.len()];
            let (ext, expected) = if i % 2 == 0 {
                ("info", &v.info)
            } else {
                ("mod", &v.go_mod)
            };
            let request = http.get(format!("{base}{}", v.path(ext)));
            async move {
                let answer = send(request).await;
                answer.status == 200 && &answer.body == expected
            }
        })
        .buffer_unordered(16)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await
}

/// Waits until the server closes `stream` (EOF or reset); false if it is still open at
/// `deadline` or sends an answer to a request that never finished.
async fn closed_by_server(mut stream: TcpStream, deadline: tokio::time::Instant) -> bool {
    let mut buf = [0u8; 512];
    match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        // hyper may answer a timed-out head with 408 before closing.
        Ok(Ok(n)) => buf[..n].starts_with(b"HTTP/1.1 408"),
        Err(_) => false,
    }
}

/// A client that starts a request and sends one more header byte every [`DRIBBLE`], never
/// finishing; true once modstash has closed the connection.
async fn slowloris_client(addr: std::net::SocketAddr, i: usize) -> bool {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        return false;
    };
    let head = format!("GET /example.com/hello/@v/list HTTP/1.1\r\nHost: x\r\nX-Slow-{i}: ");
    if stream.write_all(head.as_bytes()).await.is_err() {
        return true;
    }
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    let mut ticks = tokio::time::interval(DRIBBLE);
    let mut buf = [0u8; 512];
    while tokio::time::Instant::now() < deadline {
        tokio::select! {
            _ = ticks.tick() => {
                if stream.write_all(b"x").await.is_err() {
                    return true;
                }
            }
            read = stream.read(&mut buf) => {
                return match read {
                    Ok(0) | Err(_) => true,
                    Ok(n) => buf[..n].starts_with(b"HTTP/1.1 408"),
                };
            }
        }
    }
    false
}
