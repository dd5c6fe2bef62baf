//! Upstream faults (issue 6, part 1): every misbehaviour the fixture upstream can inject, each
//! against a modstash with its own storage. Each must give the client a non-200 naming the problem
//! (the go command prints it), leave nothing of the version in storage, and not stick: once the
//! fault is cleared the next request fetches and serves the version. A zip over the 500 MiB limit
//! is cut off at the limit, and the real binary's peak memory stays far below the zip's size.

use std::time::Duration;

use bytes::Bytes;

use crate::report::{Line, Report};
use crate::support::fixture_tree::{FixtureTree, FixtureVersion, read_zip, write_zip};
use crate::support::fleet::{Replica, temp_dir};
use crate::support::gocmd::{self, Go};
use crate::support::upstream::{Fault, Upstream};
use crate::support::{Stack, client, get, layout, stack_with};
use crate::{Mode, Outcome, ScenarioFuture};

const SCENARIO: &str = "upstream_faults";
/// Go's (and modstash's) module zip limit.
const MAX_ZIP: u64 = 500 << 20;
/// What a stalled or dripping upstream gets: short, so those cases end quickly.
const READ_TIMEOUT: Duration = Duration::from_secs(2);
const METADATA_TIMEOUT: Duration = Duration::from_secs(2);
/// A hang guard per case, far above the timeouts: a stuck case fails instead of the suite.
const CASE_GUARD: Duration = Duration::from_secs(90);

/// The scenario, for `scenarios()`.
pub fn upstream_faults(report: &Report, mode: Mode) -> ScenarioFuture<'_> {
    Box::pin(run(report, mode))
}

/// One injected misbehaviour and what the client must be told.
struct Case {
    name: &'static str,
    /// The file of the version the fault sits on: `info`, `mod` or `zip`.
    file: &'static str,
    fault: Fault,
    /// Statuses a client may get while the fault lasts.
    statuses: &'static [u16],
    /// Text the plain-text answer (and the go command's message) must contain.
    reason: &'static str,
    /// Also run `go mod download` against the fault and look for `reason` in what it prints.
    go: bool,
}

/// The version every case fetches (each case has fresh storage, so the same one is cold each time).
fn target() -> &'static FixtureVersion {
    FixtureTree::shared().version("example.com/hello", "v1.1.0")
}

/// The version's zip with `extra` entries (relative to the `module@version/` prefix) added.
fn zip_with(extra: &[(&str, &[u8])]) -> Bytes {
    let v = target();
    let prefix = format!("{}@{}/", v.module, v.version);
    let mut entries = read_zip(&v.zip);
    entries.extend(
        extra
            .iter()
            .map(|(name, data)| (format!("{prefix}{name}"), data.to_vec())),
    );
    Bytes::from(write_zip(&entries))
}

fn cases() -> Vec<Case> {
    let v = target();
    let wrong_version = format!(r#"{{"Version":"v1.0.0","Time":"{}"}}"#, v.time);
    let other_go_mod = format!("module {}\n\ngo 1.99\n", v.module);
    let bad_gateway: &'static [u16] = &[502];
    let timeout: &'static [u16] = &[504];
    vec![
        Case {
            name: "zip answers 500",
            file: "zip",
            fault: Fault::Status(500),
            statuses: bad_gateway,
            reason: "answered 500",
            go: true,
        },
        Case {
            name: ".info answers 503",
            file: "info",
            fault: Fault::Status(503),
            statuses: bad_gateway,
            reason: "answered 503",
            go: false,
        },
        Case {
            name: "zip connection reset mid-body",
            file: "zip",
            fault: Fault::ResetMidBody,
            statuses: bad_gateway,
            reason: "broken response body",
            go: true,
        },
        Case {
            name: "zip body shorter than Content-Length",
            file: "zip",
            fault: Fault::ShortBody,
            statuses: bad_gateway,
            reason: "broken response body",
            go: false,
        },
        Case {
            name: ".mod body shorter than Content-Length",
            file: "mod",
            fault: Fault::ShortBody,
            statuses: bad_gateway,
            reason: "broken response body",
            go: false,
        },
        Case {
            name: "zip body longer than Content-Length",
            file: "zip",
            fault: Fault::LongBody,
            statuses: bad_gateway,
            reason: "not a valid zip file",
            go: false,
        },
        Case {
            name: ".info body longer than Content-Length",
            file: "info",
            fault: Fault::LongBody,
            statuses: bad_gateway,
            reason: ".info is not valid JSON",
            go: false,
        },
        Case {
            name: "zip stalls past the read timeout",
            file: "zip",
            fault: Fault::Stall,
            statuses: timeout,
            reason: "timed out",
            go: true,
        },
        Case {
            name: ".info stalls past the timeout",
            file: "info",
            fault: Fault::Stall,
            statuses: timeout,
            reason: "timed out",
            go: false,
        },
        Case {
            name: ".mod drips 1 byte/s",
            file: "mod",
            fault: Fault::SlowDrip,
            statuses: timeout,
            reason: "timed out",
            go: false,
        },
        Case {
            name: "zip drips 1 byte/s",
            file: "zip",
            fault: Fault::SlowDrip,
            statuses: timeout,
            reason: "too slow",
            go: false,
        },
        Case {
            name: ".mod redirects to itself",
            file: "mod",
            fault: Fault::RedirectLoop,
            statuses: bad_gateway,
            reason: "redirect",
            go: true,
        },
        Case {
            name: "zip entry escapes the prefix (../)",
            file: "zip",
            fault: Fault::Body(zip_with(&[("../../evil.go", b"package evil\n")])),
            statuses: bad_gateway,
            reason: "evil.go",
            go: true,
        },
        Case {
            name: "zip entries collide by case",
            file: "zip",
            fault: Fault::Body(zip_with(&[("Docs.md", b"a\n"), ("docs.md", b"b\n")])),
            statuses: bad_gateway,
            reason: "case-insensitive file name collision",
            go: true,
        },
        Case {
            name: "zip over 500 MiB with Content-Length",
            file: "zip",
            fault: Fault::Huge {
                size: MAX_ZIP + (100 << 20),
                content_length: true,
            },
            statuses: bad_gateway,
            reason: "zip is larger than 524288000 bytes",
            go: true,
        },
        Case {
            name: ".mod disagrees with the zip's go.mod",
            file: "mod",
            fault: Fault::Body(Bytes::from(other_go_mod)),
            statuses: bad_gateway,
            reason: ".mod differs from the go.mod inside the zip",
            go: true,
        },
        Case {
            name: ".info names another version",
            file: "info",
            fault: Fault::Body(Bytes::from(wrong_version)),
            statuses: bad_gateway,
            reason: r#".info names version "v1.0.0""#,
            go: true,
        },
        Case {
            name: ".info is not JSON",
            file: "info",
            fault: Fault::Body(Bytes::from_static(b"{\"Version\": ")),
            statuses: bad_gateway,
            reason: ".info is not valid JSON",
            go: true,
        },
    ]
}

async fn run(report: &Report, mode: Mode) -> Outcome {
    let go = gocmd::go_or_skip("reliability::upstream_faults (go command checks)");
    let rounds = match mode {
        Mode::Short => 1,
        Mode::Long => 3,
    };
    for round in 0..rounds {
        for case in cases() {
            let go = if round == 0 && case.go {
                go.as_ref()
            } else {
                None
            };
            let verdict = tokio::time::timeout(CASE_GUARD, one_case(report, &case, go))
                .await
                .unwrap_or_else(|_| Err(format!("no verdict within {CASE_GUARD:?}")));
            if let Err(why) = &verdict {
                eprintln!("   FAILED {}: {why}", case.name);
            } else {
                eprintln!("   held   {}", case.name);
            }
            report.one(Line::Faults, SCENARIO, verdict.is_ok());
        }
    }
    let verdict = tokio::time::timeout(CASE_GUARD * 3, huge_streamed_zip(report)).await;
    let verdict = verdict.unwrap_or_else(|_| Err("no verdict".into()));
    if let Err(why) = &verdict {
        eprintln!("   FAILED streamed 600 MiB zip without Content-Length: {why}");
    }
    report.one(Line::Faults, SCENARIO, verdict.is_ok());
    Outcome::Ran
}

/// Tallies one request under `Requests` and passes its verdict on.
fn counted(report: &Report, verdict: Result<(), String>) -> Result<(), String> {
    report.one(Line::Requests, SCENARIO, verdict.is_ok());
    verdict
}

async fn one_case(report: &Report, case: &Case, go: Option<&Go>) -> Result<(), String> {
    let s = stack_with(|settings| {
        settings.negative_ttl = Duration::ZERO;
        settings.upstream_read_timeout = READ_TIMEOUT;
        settings.upstream_timeout = METADATA_TIMEOUT;
    })
    .await;
    let v = target();
    let faulty = v.path(case.file);
    s.upstream.set_fault(&faulty, case.fault.clone());

    // The go command asks for .info first, and that answer waits for the whole fetch.
    let info = get(&s.server.url(&v.path("info"))).await;
    counted(report, refused(case, "info", info.status, &info.text()))?;
    counted(report, zip_refused(case, &s).await)?;
    if let Some(go) = go {
        counted(report, go_prints_reason(case, go, &s).await)?;
    }
    nothing_stored(&s, v)?;

    let attempts = s.upstream.count(&faulty);
    s.upstream.clear_fault(&faulty);
    let info = get(&s.server.url(&v.path("info"))).await;
    counted(report, served(&info, &v.info, "info"))?;
    let zip = get(&s.server.url(&v.path("zip"))).await;
    counted(report, served(&zip, &v.zip, "zip"))?;
    if s.upstream.count(&faulty) <= attempts {
        return Err(format!("the retry did not ask upstream for {faulty} again"));
    }
    let stored = layout::stored_keys(s.server.storage_dir());
    if !stored.contains(&v.key("info")) || !stored.contains(&v.key("ziphash")) {
        return Err(format!("not committed after the retry: {stored:?}"));
    }
    Ok(())
}

/// The answer while the fault lasts: an expected status and a one-line reason naming it.
fn refused(case: &Case, what: &str, status: u16, body: &str) -> Result<(), String> {
    if !case.statuses.contains(&status) {
        return Err(format!(
            "{what}: status {status}, expected one of {:?}: {body:?}",
            case.statuses
        ));
    }
    if !body.contains(case.reason) {
        return Err(format!(
            "{what}: reason {body:?} does not say {:?}",
            case.reason
        ));
    }
    Ok(())
}

/// A zip request during the fault: refused, or (when it follows a live download, whose status
/// went out before the zip failed) a body that breaks off instead of completing.
async fn zip_refused(case: &Case, s: &Stack) -> Result<(), String> {
    let response = client()
        .get(s.server.url(&target().path("zip")))
        .send()
        .await
        .map_err(|e| format!("zip: no answer: {e}"))?;
    let status = response.status().as_u16();
    match (status, response.bytes().await) {
        (200, Err(_)) => Ok(()),
        (200, Ok(body)) => Err(format!(
            "zip: a complete 200 ({} bytes) although upstream misbehaved",
            body.len()
        )),
        (status, Ok(body)) => refused(case, "zip", status, &String::from_utf8_lossy(&body)),
        (status, Err(e)) => Err(format!("zip: status {status} with a broken body: {e}")),
    }
}

async fn go_prints_reason(case: &Case, go: &Go, s: &Stack) -> Result<(), String> {
    let sandbox = go.sandbox(&s.server.base_url());
    sandbox.write_main_module("module example.com/app\n\ngo 1.21\n", "package main\n");
    let out = sandbox.run(&["mod", "download", &target().target()]).await;
    if out.status.success() {
        return Err("go mod download succeeded although upstream misbehaved".into());
    }
    if !out.stderr.contains(case.reason) {
        return Err(format!(
            "go mod download's message does not say {:?}:\n{}",
            case.reason, out.stderr
        ));
    }
    Ok(())
}

/// None of the version's files is in storage, no list names it, and every key fits the layout.
fn nothing_stored(s: &Stack, v: &FixtureVersion) -> Result<(), String> {
    let dir = s.server.storage_dir();
    let keys = layout::stored_keys(dir);
    let ours: Vec<&String> = ["info", "mod", "zip", "ziphash"]
        .iter()
        .map(|ext| v.key(ext))
        .filter_map(|k| keys.iter().find(|stored| **stored == k))
        .collect();
    if !ours.is_empty() {
        return Err(format!("stored after a refused fetch: {ours:?}"));
    }
    let list_key = format!("{}/@v/list", v.escaped_module);
    if let Some(list) = layout::read_key(dir, &list_key)
        && String::from_utf8_lossy(&list)
            .lines()
            .any(|l| l == v.version)
    {
        return Err(format!("{list_key} names {}", v.version));
    }
    let violations = layout::violations(dir);
    if !violations.is_empty() {
        return Err(format!("storage breaks the layout: {violations:?}"));
    }
    Ok(())
}

fn served(answer: &crate::support::Fetched, expected: &[u8], what: &str) -> Result<(), String> {
    if answer.status != 200 {
        return Err(format!(
            "{what} after the fault was cleared: {} {}",
            answer.status,
            answer.text()
        ));
    }
    if answer.body != expected {
        return Err(format!("{what} after the retry: wrong bytes"));
    }
    Ok(())
}

/// A 600 MiB zip with no Content-Length, through the real binary: refused once 500 MiB arrived
/// (not downloaded to the end), and spooled to disk, so peak memory stays far below its size.
async fn huge_streamed_zip(report: &Report) -> Result<(), String> {
    const SIZE: u64 = MAX_ZIP + (100 << 20);
    /// Socket buffers on both ends may hold this much past what modstash read.
    const IN_FLIGHT: u64 = 32 << 20;
    /// Far below the zip: a spool held in memory would show as hundreds of MiB.
    const PEAK_RSS: u64 = 200 << 20;
    let upstream = Upstream::start().await;
    let v = target();
    let faulty = v.path("zip");
    upstream.set_fault(
        &faulty,
        Fault::Huge {
            size: SIZE,
            content_length: false,
        },
    );
    let (_storage, storage_dir) = temp_dir("modstash-faults-huge-");
    let replica = Replica::start(
        &[
            "--storage".into(),
            format!("file://{}", storage_dir.display()),
            "--upstream".into(),
            upstream.url(),
            "--negative-ttl".into(),
            "0s".into(),
        ],
        &[],
    )
    .await;
    let answer = get(&format!("{}{}", replica.base, v.path("info"))).await;
    let case = Case {
        name: "zip over 500 MiB without Content-Length",
        file: "zip",
        fault: Fault::Status(0),
        statuses: &[502],
        reason: "zip is larger than 524288000 bytes",
        go: false,
    };
    counted(
        report,
        refused(&case, "info", answer.status, &answer.text()),
    )?;
    let streamed = upstream.streamed(&faulty);
    if streamed > MAX_ZIP + IN_FLIGHT {
        return Err(format!(
            "{streamed} bytes streamed: the download was not cut off at the limit"
        ));
    }
    if streamed < MAX_ZIP {
        return Err(format!(
            "refused after only {streamed} bytes, below the {MAX_ZIP}-byte limit"
        ));
    }
    let peak = peak_rss(replica.pid()).ok_or("no VmHWM in /proc/PID/status")?;
    eprintln!(
        "   held   {}: cut off after {} MiB, peak RSS {} MiB",
        case.name,
        streamed >> 20,
        peak >> 20
    );
    if peak > PEAK_RSS {
        return Err(format!(
            "peak RSS {} MiB while spooling: the zip is held in memory",
            peak >> 20
        ));
    }
    let stored = layout::stored_keys(&storage_dir);
    if !stored.is_empty() {
        return Err(format!("stored after a refused fetch: {stored:?}"));
    }
    upstream.clear_fault(&faulty);
    let info = get(&format!("{}{}", replica.base, v.path("info"))).await;
    counted(report, served(&info, &v.info, "info"))?;
    replica.kill().await;
    Ok(())
}

/// `VmHWM` (peak resident set) of a process, in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
