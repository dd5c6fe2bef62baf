//! Hostile clients (issue 6, part 4): a table of malformed and malicious requests, each answered
//! with the 4xx it deserves (never a 5xx, never a 200 with the wrong content), nothing forwarded
//! upstream that is not a well-formed GOPROXY request, and afterwards a storage tree holding only
//! the keys the benign requests named.

use crate::report::{Line, Report};
use crate::support::fixture_tree::FixtureVersion;
use crate::support::hostile::hostile_targets;
use crate::support::raw_http::{RawResponse, raw_exchange, shorten};
use crate::support::{get, layout, stack};
use crate::{Mode, Outcome, ScenarioFuture};

const SCENARIO: &str = "hostile_inputs";

/// The scenario, for `scenarios()`.
pub fn hostile_inputs(report: &Report, mode: Mode) -> ScenarioFuture<'_> {
    Box::pin(run(report, mode))
}

/// What a hostile request must get.
enum Expect {
    /// A plain-text one-line 404 or 410: what the go command falls through on.
    NotFound,
    /// One of these statuses (from modstash or from its HTTP parser), or, for a request too big
    /// to read, a closed connection.
    Refused(&'static [u16]),
    /// A 200 with exactly these bytes: the hostile part (a query string, an absolute-form
    /// target) must not change what is served.
    Served(Vec<u8>),
}

struct Case {
    what: String,
    request: Vec<u8>,
    expect: Expect,
}

fn request(method: &str, target: &str, headers: &[String]) -> Vec<u8> {
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: modstash\r\nConnection: close\r\n");
    for h in headers {
        head.push_str(h);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    head.into_bytes()
}

fn get_case(target: &str, expect: Expect) -> Case {
    Case {
        what: format!("GET {}", shorten(target)),
        request: request("GET", target, &[]),
        expect,
    }
}

fn cases(v: &FixtureVersion) -> Vec<Case> {
    let mut cases: Vec<Case> = hostile_targets()
        .iter()
        .map(|t| get_case(t, Expect::NotFound))
        .collect();
    let list = format!("/{}/@v/list", v.escaped_module);
    for method in [
        "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND",
    ] {
        cases.push(Case {
            what: format!("{method} {list}"),
            request: request(method, &list, &["Content-Length: 0".into()]),
            expect: Expect::Refused(&[405]),
        });
    }
    cases.push(Case {
        what: "POST /healthz".into(),
        request: request("POST", "/healthz", &["Content-Length: 0".into()]),
        expect: Expect::Refused(&[405]),
    });
    // Paths past the 8 KiB cap are refused by the parser; past 64 KiB by the HTTP layer.
    for len in [9 << 10, 60 << 10, 64 << 10, 1 << 20] {
        let target = format!("/example.com/{}/@v/list", "a".repeat(len));
        let expect = if len < 64 << 10 {
            Expect::NotFound
        } else {
            Expect::Refused(&[414, 431])
        };
        cases.push(get_case(&target, expect));
    }
    let huge_header = format!("X-Huge: {}", "h".repeat(600 << 10));
    cases.push(Case {
        what: "GET with a 600 KiB header".into(),
        request: request("GET", &v.path("info"), &[huge_header]),
        expect: Expect::Refused(&[431]),
    });
    let many: Vec<String> = (0..500).map(|i| format!("X-Many-{i}: x")).collect();
    cases.push(Case {
        what: "GET with 500 headers".into(),
        request: request("GET", &v.path("info"), &many),
        expect: Expect::Refused(&[431]),
    });
    for (target, expect) in [
        (
            "/example.com/hello/@v/v1.0.0.mod\0",
            Expect::Refused(&[400]),
        ),
        ("/example.com/hello /@v/list", Expect::Refused(&[400])),
        ("example.com/hello/@v/list", Expect::Refused(&[400, 404])),
        ("*", Expect::Refused(&[400, 404])),
    ] {
        cases.push(get_case(target, expect));
    }
    // Benign wrappers around a real request: the answer is the real file.
    let info = v.info.clone();
    for target in [
        format!("{}?x=../../etc/passwd", v.path("info")),
        format!("{}?go-get=1&%00=%ff", v.path("info")),
        format!("http://evil.example{}", v.path("info")),
    ] {
        cases.push(get_case(&target, Expect::Served(info.clone())));
    }
    cases.push(get_case(
        &format!("{}?v=1", v.path("mod")),
        Expect::Served(v.go_mod.clone()),
    ));
    cases.push(Case {
        what: "GET .info with a 16 KiB If-None-Match".into(),
        request: request(
            "GET",
            &v.path("info"),
            &[format!("If-None-Match: \"{}\"", "e".repeat(16 << 10))],
        ),
        expect: Expect::Served(info),
    });
    cases
}

/// What is wrong with `answer` given `expect`, if anything.
fn problem(answer: Option<&RawResponse>, expect: &Expect) -> Option<String> {
    match (expect, answer) {
        (Expect::NotFound, Some(a)) => {
            if a.status != 404 && a.status != 410 {
                return Some(format!("status {}", a.status));
            }
            let content_type = a.header("content-type").unwrap_or("");
            let body = String::from_utf8_lossy(&a.body);
            let line = body.strip_suffix('\n').unwrap_or(&body);
            if !content_type.starts_with("text/plain")
                || line.trim().is_empty()
                || line.contains('\n')
            {
                return Some(format!(
                    "not a one-line plain-text reason: {content_type} {body:?}"
                ));
            }
            None
        }
        (Expect::Refused(statuses), Some(a)) => (!statuses.contains(&a.status))
            .then(|| format!("status {}, expected {statuses:?}", a.status)),
        (Expect::Refused(_), None) => None,
        (Expect::Served(bytes), Some(a)) => {
            if a.status != 200 {
                Some(format!("status {}", a.status))
            } else if &a.body != bytes {
                Some("200 with the wrong content".into())
            } else {
                None
            }
        }
        (_, None) => Some("connection closed without an answer".into()),
    }
}

async fn run(report: &Report, mode: Mode) -> Outcome {
    let s = stack().await;
    let v = s.tree.version("example.com/hello", "v1.0.0");
    let rounds = match mode {
        Mode::Short => 1,
        Mode::Long => 5,
    };
    let cases = cases(v);
    let mut problems = Vec::new();
    for _ in 0..rounds {
        for case in &cases {
            let verdict = match raw_exchange(s.server.addr(), &case.request).await {
                Ok(answer) => problem(answer.as_ref(), &case.expect),
                Err(e) => Some(e),
            };
            if let Some(p) = &verdict {
                problems.push(format!("{}: {p}", case.what));
            }
            report.one(Line::BadInputs, SCENARIO, verdict.is_none());
        }
        // Still serving: the hostile requests cost nobody else their answers.
        let healthy = get(&s.server.url("/healthz")).await.status == 200;
        report.one(Line::Requests, SCENARIO, healthy);
        assert!(
            healthy,
            "modstash stopped answering after the hostile table"
        );
    }
    for p in &problems {
        eprintln!("   MISHANDLED {p}");
    }
    eprintln!("   {} hostile requests x {rounds}", cases.len());

    let malformed = s.upstream.malformed_requests();
    report.one(Line::BadInputs, SCENARIO, malformed.is_empty());
    assert!(malformed.is_empty(), "passed upstream: {malformed:#?}");

    // Only the benign requests' version may be stored, and every key must fit the layout.
    let dir = s.server.storage_dir();
    let expected: Vec<String> = ["info", "mod", "zip", "ziphash"]
        .iter()
        .map(|ext| v.key(ext))
        .chain([format!("{}/@v/list", v.escaped_module)])
        .collect();
    let unexpected: Vec<String> = layout::all_files(dir)
        .into_iter()
        .filter(|k| !expected.contains(k) && !k.starts_with(&format!("{}/", layout::PRIVATE_DIR)))
        .collect();
    let violations = layout::violations(dir);
    let clean = unexpected.is_empty() && violations.is_empty();
    report.one(Line::BadInputs, SCENARIO, clean);
    assert!(
        clean,
        "storage after the hostile table: unexpected {unexpected:?}, violations {violations:?}"
    );
    Outcome::Ran
}
