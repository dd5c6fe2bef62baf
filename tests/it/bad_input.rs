//! Hostile and malformed request paths: a plain one-line 404 (or 410), never a 400 or 5xx, and nothing odd in storage.
//!
//! The targets go out byte for byte over raw TCP; a URL library would normalise `..` away.

use crate::support::hostile::hostile_targets;
use crate::support::layout;
use crate::support::raw_http::{RawResponse, raw_get, shorten};
use crate::support::upstream::Upstream;
use crate::support::{get, stack};

/// What is wrong with an answer to a hostile target, if anything.
pub fn problem(answer: &RawResponse) -> Option<String> {
    if answer.status != 404 && answer.status != 410 {
        return Some(format!("status {}", answer.status));
    }
    let content_type = answer.header("content-type").unwrap_or("");
    if !content_type.starts_with("text/plain") {
        return Some(format!("content-type {content_type:?}"));
    }
    let body = String::from_utf8_lossy(&answer.body);
    let body = body.strip_suffix('\n').unwrap_or(&body);
    if body.trim().is_empty() || body.contains('\n') {
        return Some(format!("body is not one non-empty line: {body:?}"));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_paths_get_a_plain_404_and_touch_nothing() {
    let s = stack().await;
    let targets = hostile_targets();
    assert!(targets.len() >= 100);
    let mut problems = Vec::new();
    for target in &targets {
        let answer = raw_get(s.server.addr(), target).await;
        if let Some(p) = problem(&answer) {
            problems.push(format!("{}: {p}", shorten(target)));
        }
    }
    assert!(
        problems.is_empty(),
        "{} of {} hostile targets were mishandled:\n{}",
        problems.len(),
        targets.len(),
        problems.join("\n")
    );
    let forwarded = s.upstream.malformed_requests();
    assert!(
        forwarded.is_empty(),
        "malformed requests must be refused locally, not passed upstream: {forwarded:#?}"
    );
    assert_eq!(
        layout::violations(s.server.storage_dir()),
        Vec::<String>::new()
    );
    assert_eq!(
        layout::stored_keys(s.server.storage_dir()),
        Vec::<String>::new(),
        "none of these name a real module file, so nothing may be stored"
    );

    // The 404s above must come from validation, not from a server that answers nothing.
    let shared = s.tree.module("example.com/shared");
    assert_eq!(get(&s.server.url(&shared.list_path())).await.status, 200);
    assert_eq!(
        layout::violations(s.server.storage_dir()),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_targets_reach_the_application() {
    // Served by the fixture upstream (plain axum): a 400 here would be the HTTP stack's doing,
    // and a table entry modstash could never pass.
    let up = Upstream::start().await;
    let mut problems = Vec::new();
    for target in hostile_targets() {
        let answer = raw_get(up.addr(), &target).await;
        if let Some(p) = problem(&answer) {
            problems.push(format!("{}: {p}", shorten(&target)));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    let ok = raw_get(up.addr(), "/example.com/hello/@v/list").await;
    assert_eq!(ok.status, 200, "the raw client reads a normal answer");
    assert_eq!(
        String::from_utf8_lossy(&ok.body),
        "v1.0.0\nv1.1.0\nv1.2.0\n"
    );
}
