//! The GOPROXY protocol as modstash answers it: bodies, content types, caching headers, ranges, and what lands in storage.

use std::time::Duration;

use crate::support::fixture_tree::{FixtureTree, FixtureVersion};
use crate::support::upstream::Upstream;
use crate::support::{Fetched, Stack, client, get, gocmd, layout, send, server, stack, stack_with};

const BRANCHY_PSEUDO: &str = "v0.0.0-20240102150405-abcdefabcdef";

fn lines(body: &Fetched) -> Vec<String> {
    body.text().lines().map(str::to_owned).collect()
}

/// The `max-age` of a Cache-Control value, if it has one.
fn max_age(cache_control: &str) -> Option<u64> {
    cache_control
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|n| n.parse().ok())
}

#[track_caller]
fn assert_short_lived(what: &str, response: &Fetched) {
    let cc = response
        .header("cache-control")
        .unwrap_or_else(|| panic!("{what}: no Cache-Control"));
    assert!(
        !cc.contains("immutable"),
        "{what}: a list changes, it must not be immutable: {cc}"
    );
    let age = max_age(cc).unwrap_or_else(|| panic!("{what}: no max-age in {cc}"));
    assert!(age <= 3600, "{what}: max-age {age} is not short");
}

#[track_caller]
fn assert_immutable(what: &str, response: &Fetched) {
    let cc = response
        .header("cache-control")
        .unwrap_or_else(|| panic!("{what}: no Cache-Control"));
    assert!(cc.contains("immutable"), "{what}: Cache-Control {cc}");
}

#[track_caller]
fn assert_info(what: &str, response: &Fetched, v: &FixtureVersion) {
    assert_eq!(response.status, 200, "{what}: {}", response.text());
    let info: serde_json::Value = serde_json::from_slice(&response.body)
        .unwrap_or_else(|e| panic!("{what}: .info is not JSON ({e}): {}", response.text()));
    assert_eq!(info["Version"], v.version.as_str(), "{what}");
    assert_eq!(info["Time"], v.time.as_str(), "{what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_keeps_retracted_versions_and_only_tags() {
    let s = stack().await;
    let hello = s.tree.module("example.com/hello");
    let list = get(&s.server.url(&hello.list_path())).await;
    assert_eq!(list.status, 200, "{}", list.text());
    let mut got = lines(&list);
    got.sort();
    assert_eq!(
        got,
        ["v1.0.0", "v1.1.0", "v1.2.0"],
        "retracted v1.0.0 stays listed"
    );
    assert_eq!(
        list.header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_short_lived("hello list", &list);

    let upper = s.tree.module("github.com/Upper/Case");
    let list = get(&s.server.url(&upper.list_path())).await;
    assert_eq!(
        (list.status, lines(&list)),
        (200, vec!["v1.0.0".to_owned()])
    );

    let branchy = s.tree.module("example.com/branchy");
    let list = get(&s.server.url(&branchy.list_path())).await;
    assert_eq!(
        list.status, 200,
        "an untagged module lists nothing, it exists"
    );
    assert!(
        list.text().trim().is_empty(),
        "no pseudo-versions in list: {:?}",
        list.text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_mod_and_zip_are_the_fixture_answers() {
    let s = stack().await;
    let cases = [
        ("example.com/hello", "v1.1.0"),
        ("example.com/hello/v2", "v2.0.0"),
        ("github.com/Upper/Case", "v1.0.0"),
        ("example.com/legacy", "v2.0.0+incompatible"),
        ("example.com/pre", "v1.0.0-rc.1"),
    ];
    for (module, version) in cases {
        let v = s.tree.version(module, version);
        let what = v.target();

        let info = get(&s.server.url(&v.path("info"))).await;
        assert_info(&what, &info, v);
        assert!(
            info.header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{what}: .info content type {:?}",
            info.header("content-type")
        );
        assert_immutable(&format!("{what}.info"), &info);

        let go_mod = get(&s.server.url(&v.path("mod"))).await;
        assert_eq!(go_mod.status, 200, "{what}.mod: {}", go_mod.text());
        assert_eq!(
            go_mod.text(),
            String::from_utf8_lossy(&v.go_mod),
            "{what}.mod"
        );
        assert_eq!(
            go_mod.header("content-type"),
            Some("text/plain; charset=utf-8"),
            "{what}.mod"
        );
        assert_immutable(&format!("{what}.mod"), &go_mod);

        let zip = get(&s.server.url(&v.path("zip"))).await;
        assert_eq!(zip.status, 200, "{what}.zip: {}", zip.text());
        assert!(
            zip.body == v.zip,
            "{what}.zip: {} bytes, expected {}",
            zip.body.len(),
            v.zip.len()
        );
        assert_eq!(
            zip.header("content-type"),
            Some("application/zip"),
            "{what}"
        );
        assert_immutable(&format!("{what}.zip"), &zip);
    }
    let legacy = get(&s
        .server
        .url("/example.com/legacy/@v/v2.0.0+incompatible.mod"))
    .await;
    assert_eq!(legacy.text(), "module example.com/legacy\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn latest_answers_the_highest_release_or_the_only_prerelease() {
    let s = stack().await;
    for (module, expected) in [
        ("example.com/hello", "v1.2.0"),
        ("example.com/pre", "v1.0.0-rc.1"),
        ("example.com/branchy", BRANCHY_PSEUDO),
    ] {
        let m = s.tree.module(module);
        let latest = get(&s.server.url(&m.latest_path())).await;
        assert_info(
            &format!("{module}/@latest"),
            &latest,
            s.tree.version(module, expected),
        );
        assert!(
            latest
                .header("content-type")
                .is_some_and(|t| t.starts_with("application/json")),
            "{module}/@latest content type"
        );
        assert_short_lived(&format!("{module}/@latest"), &latest);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etag_and_if_none_match_give_304() {
    let s = stack().await;
    let v = s.tree.version("example.com/hello", "v1.2.0");
    let http = client();
    for ext in ["info", "mod", "zip"] {
        let url = s.server.url(&v.path(ext));
        let first = send(http.get(&url)).await;
        assert_eq!(first.status, 200, "{url}");
        let etag = first
            .header("etag")
            .unwrap_or_else(|| panic!("{url}: no ETag"))
            .to_owned();
        let again = send(http.get(&url).header("if-none-match", &etag)).await;
        assert_eq!(again.status, 304, "{url} with If-None-Match {etag}");
        assert!(again.body.is_empty(), "{url}: a 304 has no body");
        let other = send(http.get(&url).header("if-none-match", "\"not-this-one\"")).await;
        assert_eq!(other.status, 200, "{url} with a different ETag");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_requests_on_a_stored_zip() {
    let s = stack().await;
    let v = s.tree.version("example.com/big", "v1.0.0");
    let url = s.server.url(&v.path("zip"));
    let full = get(&url).await;
    assert_eq!(full.status, 200);
    assert!(full.body == v.zip, "full zip bytes");

    let http = client();
    let len = v.zip.len();
    let mid = len / 2;
    for (range, start, end) in [
        ("bytes=0-99".to_owned(), 0, 99),
        (format!("bytes={mid}-{}", mid + 4095), mid, mid + 4095),
        ("bytes=-100".to_owned(), len - 100, len - 1),
    ] {
        let part = send(http.get(&url).header("range", &range)).await;
        assert_eq!(part.status, 206, "{range}");
        assert!(part.body == v.zip[start..=end], "{range}: wrong bytes");
        assert_eq!(
            part.header("content-range"),
            Some(format!("bytes {start}-{end}/{len}").as_str()),
            "{range}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_answers_like_get_without_a_body() {
    let s = stack().await;
    let v = s.tree.version("example.com/hello", "v1.1.0");
    let http = client();
    let cold = send(http.head(s.server.url(&v.path("info")))).await;
    assert_eq!(cold.status, 200, "HEAD on a cold .info");
    assert!(cold.body.is_empty());

    let url = s.server.url(&v.path("zip"));
    assert_eq!(get(&url).await.status, 200);
    let head = send(http.head(&url)).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty(), "HEAD must not carry a body");
    assert_eq!(
        head.header("content-length"),
        Some(v.zip.len().to_string().as_str())
    );
    assert_eq!(head.header("content-type"), Some("application/zip"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_query_resolves_and_stores_only_the_pseudo_version() {
    let s = stack().await;
    let branchy = s.tree.module("example.com/branchy");
    let v = s.tree.version("example.com/branchy", BRANCHY_PSEUDO);
    let info = get(&s.server.url(&branchy.query_info_path("main"))).await;
    assert_info("branchy@main", &info, v);

    let keys = layout::stored_keys(s.server.storage_dir());
    assert!(
        keys.contains(&v.key("info")),
        "the resolved pseudo-version is stored: {keys:#?}"
    );
    assert!(
        !keys.iter().any(|k| k.contains("main")),
        "a branch name is never a storage key: {keys:#?}"
    );

    let go_mod = get(&s.server.url(&v.path("mod"))).await;
    assert_eq!(
        (go_mod.status, go_mod.body.clone()),
        (200, v.go_mod.clone())
    );
    let zip = get(&s.server.url(&v.path("zip"))).await;
    assert_eq!(zip.status, 200);
    assert!(zip.body == v.zip, "pseudo-version zip bytes");
    assert_stored_version(&s, v);

    let list = layout::read_key(
        s.server.storage_dir(),
        branchy.list_path().trim_start_matches('/'),
    )
    .unwrap_or_default();
    assert!(
        !String::from_utf8_lossy(&list).contains(BRANCHY_PSEUDO),
        "a stored list holds tags only"
    );
    assert_eq!(
        layout::violations(s.server.storage_dir()),
        Vec::<String>::new()
    );
}

/// The four files of `v` are in storage with the right bytes, and `.ziphash` is its `h1:`.
#[track_caller]
fn assert_stored_version(s: &Stack, v: &FixtureVersion) {
    let dir = s.server.storage_dir();
    let read = |ext: &str| {
        layout::read_key(dir, &v.key(ext)).unwrap_or_else(|| {
            panic!(
                "{} is not stored; storage holds {:#?}",
                v.key(ext),
                layout::stored_keys(dir)
            )
        })
    };
    let info: serde_json::Value = serde_json::from_slice(&read("info")).expect("stored .info");
    assert_eq!(info["Version"], v.version.as_str());
    assert_eq!(read("mod"), v.go_mod, "stored {}", v.key("mod"));
    assert!(read("zip") == v.zip, "stored {} bytes differ", v.key("zip"));
    assert_eq!(
        String::from_utf8_lossy(&read("ziphash")).trim(),
        v.h1,
        "stored {}",
        v.key("ziphash")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fetched_version_is_stored_as_a_goproxy_tree() {
    let s = stack().await;
    let v = s.tree.version("example.com/hello", "v1.1.0");
    for ext in ["info", "mod", "zip"] {
        assert_eq!(get(&s.server.url(&v.path(ext))).await.status, 200, "{ext}");
    }
    assert_stored_version(&s, v);
    let list = layout::read_key(s.server.storage_dir(), "example.com/hello/@v/list")
        .expect("a stored version is recorded in the stored list");
    assert!(
        String::from_utf8_lossy(&list)
            .lines()
            .any(|l| l == "v1.1.0"),
        "stored list: {:?}",
        String::from_utf8_lossy(&list)
    );

    let upper = s.tree.version("github.com/Upper/Case", "v1.0.0");
    assert_eq!(get(&s.server.url(&upper.path("zip"))).await.status, 200);
    assert!(
        layout::read_key(
            s.server.storage_dir(),
            "github.com/!upper/!case/@v/v1.0.0.zip"
        )
        .is_some(),
        "upper-case paths are stored escaped: {:#?}",
        layout::stored_keys(s.server.storage_dir())
    );
    assert_eq!(
        layout::violations(s.server.storage_dir()),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_alone_serves_the_go_command() {
    let Some(go) = gocmd::go_or_skip("protocol::the_storage_alone_serves_the_go_command") else {
        return;
    };
    let s = stack().await;
    let versions: Vec<&FixtureVersion> = [
        ("example.com/hello", "v1.1.0"),
        ("github.com/Upper/Case", "v1.0.0"),
        ("example.com/legacy", "v2.0.0+incompatible"),
        ("example.com/branchy", BRANCHY_PSEUDO),
    ]
    .into_iter()
    .map(|(m, v)| s.tree.version(m, v))
    .collect();
    for v in &versions {
        for ext in ["info", "mod", "zip"] {
            assert_eq!(get(&s.server.url(&v.path(ext))).await.status, 200);
        }
    }
    s.upstream.set_down(true);
    let sandbox = go.sandbox(&format!("file://{}", s.server.storage_dir().display()));
    let targets: Vec<String> = versions.iter().map(|v| v.target()).collect();
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    for d in sandbox.download_json(&targets).await {
        let v = s.tree.version(&d.path, &d.version);
        assert_eq!(d.sum.as_deref(), Some(v.h1.as_str()), "{}", v.target());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_and_latest_are_served_from_storage_while_upstream_is_down() {
    // A zero TTL makes modstash ask the upstream every time, so the outage is actually met.
    let s = stack_with(|settings| settings.list_ttl = Duration::ZERO).await;
    let hello = s.tree.module("example.com/hello");
    let v = s.tree.version("example.com/hello", "v1.2.0");
    assert_eq!(get(&s.server.url(&hello.list_path())).await.status, 200);
    for ext in ["info", "mod", "zip"] {
        assert_eq!(get(&s.server.url(&v.path(ext))).await.status, 200);
    }
    assert_eq!(get(&s.server.url(&hello.latest_path())).await.status, 200);

    s.upstream.set_down(true);
    let asked_before = s.upstream.total();
    let list = get(&s.server.url(&hello.list_path())).await;
    assert_eq!(
        list.status,
        200,
        "list while upstream is down: {}",
        list.text()
    );
    let listed = lines(&list);
    assert!(listed.contains(&"v1.2.0".to_owned()), "{listed:?}");
    assert!(
        listed.iter().all(|l| hello.list.contains(l)),
        "only real versions: {listed:?}"
    );
    let latest = get(&s.server.url(&hello.latest_path())).await;
    assert_info("@latest while upstream is down", &latest, v);
    assert!(
        s.upstream.total() > asked_before,
        "with a zero TTL modstash should have tried the upstream: {:#?}",
        s.upstream.counts()
    );
}

#[test]
fn fixture_versions_used_here_exist() {
    // Catches a renamed fixture before the server-dependent tests would report it confusingly.
    let tree = FixtureTree::shared();
    tree.version("example.com/branchy", BRANCHY_PSEUDO);
    tree.version("example.com/big", "v1.0.0");
    tree.version("example.com/legacy", "v2.0.0+incompatible");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_an_in_flight_request_finish() {
    let tree = FixtureTree::shared();
    let upstream = Upstream::start().await;
    let mut server = server::start(&upstream.url()).await;
    let v = tree.version("example.com/shared", "v1.0.0");
    // The delay keeps the request in flight while shutdown starts.
    upstream.set_delay(Duration::from_millis(300));
    let mut in_flight = tokio::spawn(send(client().get(server.url(&v.path("info")))));
    let info_path = v.path("info");
    tokio::select! {
        () = upstream.wait_for(&info_path, 1) => {}
        early = &mut in_flight => panic!("the request ended before reaching the upstream: {early:?}"),
    }
    server
        .shutdown()
        .await
        .expect("serve returns Ok after a requested shutdown");
    // Connection tasks can outlive an abrupt serve(); only a graceful one has finished the
    // request's work, including storing the version, by the time it returns.
    assert!(
        layout::read_key(server.storage_dir(), &v.key("info")).is_some(),
        "serve() returned before the in-flight request was done: {:#?}",
        layout::stored_keys(server.storage_dir())
    );
    let answer = in_flight.await.expect("request task");
    assert_info("the request in flight at shutdown", &answer, v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_removed_from_storage_behind_the_servers_back_is_fetched_again() {
    let s = stack().await;
    let v = s.tree.version("example.com/shared", "v1.0.0");
    for ext in ["info", "mod", "zip"] {
        assert_eq!(get(&s.server.url(&v.path(ext))).await.status, 200, "{ext}");
    }
    // As `modstash rm` does it: .info first, then the rest.
    for ext in ["info", "zip", "mod", "ziphash"] {
        std::fs::remove_file(s.server.storage_dir().join(v.key(ext))).unwrap();
    }
    for ext in ["mod", "zip"] {
        let again = get(&s.server.url(&v.path(ext))).await;
        assert_eq!(again.status, 200, "{ext} after removal: {}", again.text());
    }
    assert_eq!(
        s.upstream.count(&v.path("zip")),
        2,
        "the zip was fetched again"
    );
    assert!(layout::read_key(s.server.storage_dir(), &v.key("info")).is_some());
}
