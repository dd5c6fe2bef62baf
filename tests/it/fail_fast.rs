//! Upstream failures: the client gets a 502 at once, nothing half-fetched becomes visible, and a retry after the fault succeeds.

use std::time::Duration;

use crate::support::fixture_tree::FixtureVersion;
use crate::support::upstream::Fault;
use crate::support::{Stack, client, get, layout, stack_with};

/// No negative caching, so a retry right after the fault is cleared reaches the upstream.
async fn stack_without_negative_cache() -> Stack {
    stack_with(|settings| settings.negative_ttl = Duration::ZERO).await
}

/// Which of `v`'s files are visible in storage.
fn stored_files_of(s: &Stack, v: &FixtureVersion) -> Vec<String> {
    let keys = layout::stored_keys(s.server.storage_dir());
    ["info", "mod", "zip", "ziphash"]
        .into_iter()
        .map(|ext| v.key(ext))
        .filter(|k| keys.contains(k))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_mod_fetch_fails_the_version_and_leaves_nothing_visible() {
    let s = stack_without_negative_cache().await;
    let v = s.tree.version("example.com/hello", "v1.1.0");
    s.upstream.set_fault(&v.path("mod"), Fault::Status(500));

    for ext in ["zip", "info"] {
        let answer = get(&s.server.url(&v.path(ext))).await;
        assert_eq!(
            answer.status,
            502,
            "{ext} while the upstream .mod fails: {}",
            answer.text()
        );
    }
    assert_eq!(
        stored_files_of(&s, v),
        Vec::<String>::new(),
        "a failed fetch must leave none of the version's files visible"
    );
    assert_eq!(
        layout::violations(s.server.storage_dir()),
        Vec::<String>::new()
    );

    let failed_attempts = s.upstream.count(&v.path("mod"));
    assert!(failed_attempts >= 1, "{:#?}", s.upstream.counts());
    s.upstream.clear_fault(&v.path("mod"));
    let zip = get(&s.server.url(&v.path("zip"))).await;
    assert_eq!(
        zip.status,
        200,
        "after the fault is cleared: {}",
        zip.text()
    );
    assert!(zip.body == v.zip, "zip bytes after the retry");
    assert!(
        s.upstream.count(&v.path("mod")) > failed_attempts,
        "the retry must ask the upstream again: {:#?}",
        s.upstream.counts()
    );
    let info = get(&s.server.url(&v.path("info"))).await;
    assert_eq!(info.status, 200);
    assert_eq!(
        stored_files_of(&s, v).len(),
        4,
        "all four files once it worked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zip_cut_off_mid_body_is_neither_served_whole_nor_stored() {
    let s = stack_without_negative_cache().await;
    let v = s.tree.version("example.com/hello", "v1.2.0");
    s.upstream.set_fault(&v.path("zip"), Fault::ResetMidBody);

    // modstash may answer 502 up front, or, if it streams, abort the body: either way the
    // client must not end up with a complete 200 response.
    let response = client()
        .get(s.server.url(&v.path("zip")))
        .send()
        .await
        .expect("modstash answers");
    let status = response.status().as_u16();
    let body = response.bytes().await;
    match (status, body) {
        (502, _) => {}
        (200, Err(_)) => {}
        (200, Ok(bytes)) => panic!(
            "a truncated upstream zip was served as a complete 200 ({} of {} bytes)",
            bytes.len(),
            v.zip.len()
        ),
        (other, _) => panic!("status {other} for a zip cut off upstream; expected 502"),
    }
    assert!(
        !stored_files_of(&s, v).contains(&v.key("zip")),
        "a truncated zip must not be stored: {:#?}",
        layout::stored_keys(s.server.storage_dir())
    );
    assert!(
        !stored_files_of(&s, v).contains(&v.key("info")),
        "the version must not look available"
    );

    s.upstream.clear_fault(&v.path("zip"));
    let zip = get(&s.server.url(&v.path("zip"))).await;
    assert_eq!(zip.status, 200, "{}", zip.text());
    assert!(zip.body == v.zip, "zip bytes after the retry");
    let ziphash = layout::read_key(s.server.storage_dir(), &v.key("ziphash"))
        .expect("ziphash stored after the retry");
    assert_eq!(String::from_utf8_lossy(&ziphash).trim(), v.h1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_not_found_is_a_404_not_a_failure() {
    let s = stack_without_negative_cache().await;
    for path in [
        "/example.com/nope/@v/v1.0.0.info",
        "/example.com/nope/@v/list",
        "/example.com/hello/@v/v9.9.9.zip",
    ] {
        let answer = get(&s.server.url(path)).await;
        assert!(
            answer.status == 404 || answer.status == 410,
            "{path}: {} {}",
            answer.status,
            answer.text()
        );
    }
    assert_eq!(
        layout::stored_keys(s.server.storage_dir()),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_upstream_fails_a_cold_version_with_502() {
    let s = stack_without_negative_cache().await;
    s.upstream.set_down(true);
    let v = s.tree.version("example.com/shared", "v1.0.0");
    let answer = get(&s.server.url(&v.path("info"))).await;
    assert_eq!(answer.status, 502, "{}", answer.text());
    assert_eq!(stored_files_of(&s, v), Vec::<String>::new());
    s.upstream.set_down(false);
    assert_eq!(get(&s.server.url(&v.path("info"))).await.status, 200);
}
