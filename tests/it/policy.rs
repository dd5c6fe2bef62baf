//! The config file's policy: `exclude` rules (403 with a reason), the version deny list, and the
//! download modes `none`, `redirect` (with presigned storage URLs on S3) and `async`.

use std::time::Duration;

use modstash::policy::{DenyFile, DownloadMode, Policy, RuleAction, RuleFile};

use crate::support::fixture_tree::{FixtureModule, FixtureTree, FixtureVersion};
use crate::support::fleet::Replica;
use crate::support::gocmd;
use crate::support::layout::read_key;
use crate::support::{self, HANG_GUARD};

/// A fixture module with two or more release tags, `@latest` its highest.
fn plain_module(tree: &FixtureTree) -> &FixtureModule {
    tree.modules()
        .iter()
        .find(|m| {
            m.list.len() >= 2
                && m.latest.as_ref() == m.list.last()
                && m.list.iter().all(|v| !v.contains('-'))
        })
        .expect("the fixture tree has a plain module with two tags")
}

fn rule(patterns: &str, action: RuleAction, mode: Option<DownloadMode>) -> RuleFile {
    RuleFile {
        patterns: patterns.into(),
        action,
        mode,
        reason: Some("blocked by policy test".into()),
    }
}

fn policy(rules: &[RuleFile], deny: &[DenyFile]) -> Policy {
    Policy::new(rules, deny, DownloadMode::Sync).unwrap()
}

/// A client that shows redirects instead of following them.
fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(HANG_GUARD)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

#[tokio::test]
async fn excluded_modules_are_403_with_the_reason_on_every_endpoint() {
    let tree = FixtureTree::shared();
    let module = plain_module(tree);
    let rules = [rule(&module.path, RuleAction::Exclude, None)];
    let s = support::stack_with(|s| s.policy = policy(&rules, &[])).await;
    let version = tree.version(&module.path, &module.list[0]);
    for path in [
        module.list_path(),
        module.latest_path(),
        version.path("info"),
        version.path("mod"),
        version.path("zip"),
    ] {
        let r = support::get(&s.server.url(&path)).await;
        assert_eq!(r.status, 403, "{path}: {}", r.text());
        assert!(
            r.text().contains("blocked by policy test"),
            "{path}: {}",
            r.text()
        );
    }
    assert_eq!(s.upstream.total(), 0, "an excluded module reached upstream");
    // Other modules are untouched (a pattern covers the path and all below it, /v2 too).
    let other = tree
        .versions()
        .iter()
        .find(|v| !v.module.starts_with(&module.path))
        .unwrap();
    assert_eq!(
        support::get(&s.server.url(&other.path("info")))
            .await
            .status,
        200
    );

    if let Some(go) = gocmd::go_or_skip("policy::excluded_modules_are_403") {
        let out = go
            .sandbox(&s.server.base_url())
            .run(&["mod", "download", &version.target()])
            .await;
        assert!(!out.status.success());
        assert!(
            out.stderr.contains("blocked by policy test"),
            "{}",
            out.stderr
        );
    }
}

#[tokio::test]
async fn denied_versions_are_403_hidden_from_the_list_and_skipped_by_latest() {
    let tree = FixtureTree::shared();
    let module = plain_module(tree);
    let newest = module.list.last().unwrap().clone();
    let deny = [DenyFile {
        module: module.path.clone(),
        versions: vec![newest.clone()],
        reason: Some("CVE-2026-0001".into()),
    }];
    let s = support::stack_with(|s| s.policy = policy(&[], &deny)).await;

    let denied = tree.version(&module.path, &newest);
    for ext in ["info", "mod", "zip"] {
        let r = support::get(&s.server.url(&denied.path(ext))).await;
        assert_eq!(r.status, 403, "{ext}: {}", r.text());
        assert!(r.text().contains("CVE-2026-0001"), "{}", r.text());
    }
    assert_eq!(s.upstream.count(&denied.path("zip")), 0);

    let list = support::get(&s.server.url(&module.list_path())).await;
    assert_eq!(list.status, 200);
    let listed: Vec<&str> = list
        .body
        .split(|b| *b == b'\n')
        .filter_map(|l| std::str::from_utf8(l).ok())
        .filter(|l| !l.is_empty())
        .collect();
    let expected: Vec<&str> = module
        .list
        .iter()
        .map(String::as_str)
        .filter(|v| *v != newest)
        .collect();
    assert_eq!(listed, expected);

    let latest = support::get(&s.server.url(&module.latest_path())).await;
    assert_eq!(latest.status, 200, "{}", latest.text());
    let info: serde_json::Value = serde_json::from_slice(&latest.body).unwrap();
    assert_eq!(info["Version"].as_str(), expected.last().copied());

    if let Some(go) = gocmd::go_or_skip("policy::denied_versions") {
        let sandbox = go.sandbox(&s.server.base_url());
        let out = sandbox.run(&["mod", "download", &denied.target()]).await;
        assert!(!out.status.success());
        assert!(out.stderr.contains("CVE-2026-0001"), "{}", out.stderr);
        // `@latest` resolves to the highest allowed version.
        let out = sandbox
            .run(&["list", "-m", &format!("{}@latest", module.path)])
            .await
            .success();
        assert_eq!(
            out.stdout.trim(),
            format!("{} {}", module.path, expected.last().unwrap())
        );
    }
}

#[tokio::test]
async fn mode_none_serves_only_what_storage_holds() {
    let tree = FixtureTree::shared();
    let module = plain_module(tree);
    let version = tree.version(&module.path, &module.list[0]);
    // A sync server stores one version; a `none` server on the same storage serves only it.
    let filler = support::stack().await;
    assert_eq!(
        support::get(&filler.server.url(&version.path("zip")))
            .await
            .status,
        200
    );
    let storage = filler.server.storage_dir().to_owned();
    let rules = [rule(
        &module.path,
        RuleAction::Include,
        Some(DownloadMode::None),
    )];
    let s = support::stack_with(|s| {
        s.policy = policy(&rules, &[]);
        s.storage = format!("file://{}", storage.display()).parse().unwrap();
    })
    .await;
    let zip = support::get(&s.server.url(&version.path("zip"))).await;
    assert_eq!(zip.status, 200);
    assert_eq!(zip.body, version.zip);
    let list = support::get(&s.server.url(&module.list_path())).await;
    assert_eq!(list.text(), format!("{}\n", version.version));

    let other = tree.version(&module.path, module.list.last().unwrap());
    for path in [
        other.path("info"),
        other.path("zip"),
        module.query_info_path("main"),
    ] {
        let r = support::get(&s.server.url(&path)).await;
        assert_eq!(r.status, 404, "{path}");
        assert!(r.text().contains("download mode none"), "{}", r.text());
    }
    assert_eq!(s.upstream.total(), 0, "mode none asked upstream");
}

#[tokio::test]
async fn mode_redirect_sends_misses_to_the_upstream_and_stores_nothing() {
    let tree = FixtureTree::shared();
    let module = plain_module(tree);
    let version = tree.version(&module.path, &module.list[0]);
    let rules = [rule(
        &module.path,
        RuleAction::Include,
        Some(DownloadMode::Redirect),
    )];
    let s = support::stack_with(|s| s.policy = policy(&rules, &[])).await;
    for ext in ["info", "mod", "zip"] {
        let r = support::send(no_redirects().get(s.server.url(&version.path(ext)))).await;
        assert_eq!(r.status, 302, "{ext}");
        assert_eq!(
            r.header("location"),
            Some(format!("{}{}", s.upstream.url(), version.path(ext)).as_str())
        );
    }
    // The go command follows the redirect and gets the module from upstream.
    if let Some(go) = gocmd::go_or_skip("policy::mode_redirect") {
        let downloads = go
            .sandbox(&s.server.base_url())
            .download_json(&[&version.target()])
            .await;
        assert_eq!(downloads[0].sum.as_deref(), Some(version.h1.as_str()));
    }
    assert!(read_key(s.server.storage_dir(), &version.key("info")).is_none());
}

#[tokio::test]
async fn mode_async_serves_from_upstream_and_stores_in_the_background() {
    let tree = FixtureTree::shared();
    let module = plain_module(tree);
    let version: &FixtureVersion = tree.version(&module.path, &module.list[0]);
    let rules = [rule(
        &module.path,
        RuleAction::Include,
        Some(DownloadMode::Async),
    )];
    let s = support::stack_with(|s| s.policy = policy(&rules, &[])).await;
    let zip = support::get(&s.server.url(&version.path("zip"))).await;
    assert_eq!(zip.status, 200);
    assert_eq!(zip.body, version.zip);
    // The background fetch commits it; poll storage for the commit marker.
    let deadline = tokio::time::Instant::now() + HANG_GUARD;
    while read_key(s.server.storage_dir(), &version.key("info")).is_none() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never stored in the background"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        read_key(s.server.storage_dir(), &version.key("zip")).unwrap(),
        version.zip
    );
    // Now a hit, served from storage with the immutable headers.
    let again = support::get(&s.server.url(&version.path("zip"))).await;
    assert_eq!(again.status, 200);
    assert!(
        again
            .header("cache-control")
            .unwrap_or("")
            .contains("immutable")
    );
}

#[tokio::test]
async fn mode_redirect_sends_stored_zips_to_a_presigned_storage_url() {
    let test = "policy::mode_redirect_sends_stored_zips_to_a_presigned_storage_url";
    let Some(setup) = crate::fleet::s3_setup("memory", test) else {
        return;
    };
    let tree = FixtureTree::shared();
    let module = plain_module(tree);
    let version = tree.version(&module.path, &module.list[0]);
    let upstream = crate::support::upstream::Upstream::start().await;
    let args = |mode: &str| {
        vec![
            "--storage".to_owned(),
            setup.storage_url.clone(),
            "--upstream".to_owned(),
            upstream.url(),
            "--download-mode".to_owned(),
            mode.to_owned(),
        ]
    };
    // Stored through a sync replica, then asked of a redirect replica.
    let filler = Replica::start(&args("sync"), &setup.env).await;
    let stored = support::get(&format!("{}{}", filler.base, version.path("zip"))).await;
    assert_eq!(stored.status, 200);
    filler.kill().await;
    let replica = Replica::start(&args("redirect"), &setup.env).await;
    let r =
        support::send(no_redirects().get(format!("{}{}", replica.base, version.path("zip")))).await;
    assert_eq!(r.status, 302, "{}", r.text());
    let location = r.header("location").unwrap().to_owned();
    assert!(location.contains("X-Amz-Signature="), "{location}");
    let direct = support::get(&location).await;
    assert_eq!(direct.status, 200, "{location}: {}", direct.text());
    assert_eq!(direct.body, version.zip);
    replica.kill().await;
}
