//! The checksum-database proxy with the real go command and a real signed checksum database
//! (support/sumdb.rs): verification through `/sumdb/{name}/`, answers cached across go runs,
//! full tiles kept in storage, private modules and other databases refused with 404.

use std::time::Duration;

use crate::support::gocmd;
use crate::support::sumdb::SumdbFixture;
use crate::support::{get, stack_with};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_verifies_modules_through_the_sumdb_proxy_and_answers_are_cached() {
    let Some(go) = gocmd::go_or_skip("sumdb::go_verifies_modules_through_the_sumdb_proxy") else {
        return;
    };
    let tree = crate::support::fixture_tree::FixtureTree::shared();
    let db = SumdbFixture::start(&go, "sum.test", tree).await;
    let s = stack_with(|settings| {
        settings.sumdb = format!("sum.test={}", db.url).parse().unwrap();
        settings.private = "example.com/legacy".parse().unwrap();
        // Lookups and partial tiles are kept for the list TTL: longer than this test.
        settings.list_ttl = Duration::from_secs(3600);
    })
    .await;
    let targets = ["example.com/hello@v1.2.0", "example.com/shared@v1.0.0"];
    for run in 0..2 {
        // A fresh sandbox each time: empty module cache and checksum-database cache.
        let mut sandbox = go.sandbox(&s.server.base_url());
        sandbox.set_env("GOSUMDB", &db.vkey);
        let downloads = sandbox.download_json(&targets).await;
        assert_eq!(downloads.len(), 2, "run {run}");
        let verified =
            std::fs::read_dir(sandbox.root_dir().join("gopath/mod/cache/download/sumdb"))
                .map(|d| d.count())
                .unwrap_or(0);
        assert!(
            verified > 0,
            "run {run}: the go command kept no checksum-database state"
        );
    }
    let counts = db.counts();
    for target in targets {
        assert_eq!(
            counts.get(&format!("/lookup/{target}")),
            Some(&1),
            "{target}: {counts:?}"
        );
    }
    let tiles: Vec<&String> = counts.keys().filter(|p| p.starts_with("/tile/")).collect();
    assert!(
        tiles.iter().any(|t| !t.contains(".p/")) && tiles.iter().any(|t| t.contains(".p/")),
        "expected full and partial tiles: {counts:?}"
    );
    for (path, n) in &counts {
        assert_eq!(*n, 1, "{path} reached the database {n} times: {counts:?}");
    }
    // Full tiles are in storage, under the database's name; partial ones are not.
    for tile in &tiles {
        let key = s
            .server
            .storage_dir()
            .join(".modstash/sumdb/sum.test")
            .join(tile.trim_start_matches('/'));
        assert_eq!(key.is_file(), !tile.contains(".p/"), "{}", key.display());
    }

    // A private module is never looked up: 404, and nothing reaches the database.
    let private = get(&s
        .server
        .url("/sumdb/sum.test/lookup/example.com/legacy@v2.0.0+incompatible"))
    .await;
    assert_eq!(private.status, 404, "{}", private.text());
    assert!(!db.counts().keys().any(|p| p.contains("legacy")));
    // Databases not on the allow-list, and malformed paths, are 404 and never forwarded.
    let before = db.counts();
    for path in [
        "/sumdb/sum.golang.org/supported",
        "/sumdb/sum.golang.org/lookup/example.com/hello@v1.2.0",
        "/sumdb/sum.test/tile/8/0/0001",
        "/sumdb/sum.test/tile/8/0/../../x",
        "/sumdb/sum.test/lookup/example.com/hello@latest",
        "/sumdb/sum.test/lookup/Example.com/hello@v1.2.0",
        "/sumdb/sum.test/",
        "/sumdb/sum.test",
    ] {
        let answer = get(&s.server.url(path)).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.text());
    }
    assert_eq!(db.counts(), before);
    assert_eq!(
        get(&s.server.url("/sumdb/sum.test/supported")).await.status,
        200
    );
}

#[tokio::test]
async fn sumdb_off_answers_404_for_every_database() {
    let s = stack_with(|settings| settings.sumdb = "off".parse().unwrap()).await;
    for path in [
        "/sumdb/sum.golang.org/supported",
        "/sumdb/sum.golang.org/latest",
    ] {
        assert_eq!(get(&s.server.url(path)).await.status, 404, "{path}");
    }
}
