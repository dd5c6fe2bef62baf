//! Validates the fixtures themselves, independent of modstash: the tree builder, the fixture upstream, the real go command.
//!
//! If these fail, every other test's expectations are suspect, so they must pass before the server exists.

use std::collections::BTreeSet;
use std::path::Path;

use crate::support::fixture_tree::{self, FixtureTree, escape_path, hash1, read_zip};
use crate::support::gocmd;
use crate::support::layout;
use crate::support::upstream::{Fault, Upstream};
use crate::support::{client, get, send};

const BRANCHY_PSEUDO: &str = "v0.0.0-20240102150405-abcdefabcdef";

#[test]
fn every_source_dir_is_in_the_manifest() {
    let tree = FixtureTree::shared();
    let mut on_disk = BTreeSet::new();
    find_version_dirs(
        &fixture_tree::fixtures_dir().join("modules"),
        "",
        &mut on_disk,
    );
    let in_manifest: BTreeSet<String> = tree.versions().iter().map(|v| v.target()).collect();
    assert_eq!(
        on_disk, in_manifest,
        "fixtures/modules/*@* and fixtures/modules.toml disagree"
    );
}

fn find_version_dirs(dir: &Path, prefix: &str, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).expect("read fixtures/modules") {
        let entry = entry.expect("entry");
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        if !entry.path().is_dir() {
            continue;
        }
        if name.contains('@') {
            out.insert(rel);
        } else {
            find_version_dirs(&entry.path(), &rel, out);
        }
    }
}

#[test]
fn the_required_modules_are_there() {
    let tree = FixtureTree::shared();
    let hello = tree.module("example.com/hello");
    assert_eq!(hello.list, ["v1.0.0", "v1.1.0", "v1.2.0"]);
    assert_eq!(hello.versions, hello.list, "every hello version is tagged");
    assert_eq!(hello.latest.as_deref(), Some("v1.2.0"));
    assert_eq!(hello.retracted, ["v1.0.0"]);
    assert_eq!(
        tree.module("github.com/Upper/Case").escaped,
        "github.com/!upper/!case"
    );
    assert_eq!(tree.module("example.com/hello/v2").list, ["v2.0.0"]);
    assert_eq!(tree.module("example.com/pre").list, ["v1.0.0-rc.1"]);
    assert_eq!(
        tree.module("example.com/pre").latest.as_deref(),
        Some("v1.0.0-rc.1")
    );

    let legacy = tree.version("example.com/legacy", "v2.0.0+incompatible");
    assert!(!legacy.has_go_mod_file);
    assert_eq!(legacy.go_mod, b"module example.com/legacy\n");

    let branchy = tree.module("example.com/branchy");
    assert!(branchy.list.is_empty(), "branchy has no tags");
    assert_eq!(branchy.versions, [BRANCHY_PSEUDO], "but it has content");
    assert_eq!(branchy.latest.as_deref(), Some(BRANCHY_PSEUDO));
    assert_eq!(
        branchy.queries.get("main").map(String::as_str),
        Some(BRANCHY_PSEUDO)
    );
    assert!(!tree.version("example.com/branchy", BRANCHY_PSEUDO).tagged);

    let big = tree.version("example.com/big", "v1.0.0");
    assert!(
        big.zip.len() > 3 * 1024 * 1024,
        "the big zip should not compress: {} bytes",
        big.zip.len()
    );
    assert!(
        tree.versions().iter().any(|v| v
            .zip_entries
            .iter()
            .any(|e| e.ends_with("/LICENSE") || e.ends_with("/README.md"))),
        "some fixture zips should carry a LICENSE or README"
    );
}

#[test]
fn zips_hold_exactly_the_sources_under_the_module_prefix() {
    let tree = FixtureTree::shared();
    for v in tree.versions() {
        let entries = read_zip(&v.zip);
        let names: Vec<&str> = entries.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, v.zip_entries, "{}: entry names", v.target());
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(names, sorted, "{}: entries are sorted", v.target());
        let prefix = format!("{}@{}/", v.module, v.version);
        for name in &names {
            assert!(name.starts_with(&prefix), "{}: entry {name}", v.target());
            assert!(
                !name.ends_with('/'),
                "{}: directory entry {name}",
                v.target()
            );
        }
        let go_mod_entry = entries
            .iter()
            .find(|(n, _)| *n == format!("{prefix}go.mod"));
        assert_eq!(go_mod_entry.is_some(), v.has_go_mod_file, "{}", v.target());
        if let Some((_, content)) = go_mod_entry {
            assert_eq!(
                content,
                &v.go_mod,
                "{}: .mod is the zip's go.mod",
                v.target()
            );
        }
        let rehashed = hash1(entries.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
        assert_eq!(rehashed, v.h1, "{}: h1 of the zip as read back", v.target());
        let compressed = zip::ZipArchive::new(std::io::Cursor::new(&v.zip))
            .expect("open zip")
            .by_index(0)
            .expect("entry")
            .compression();
        assert_eq!(
            compressed,
            zip::CompressionMethod::Deflated,
            "{}",
            v.target()
        );
    }
}

#[test]
fn the_tree_is_deterministic() {
    let shared = FixtureTree::shared();
    let dir = tempfile::tempdir().expect("tempdir");
    let again = FixtureTree::build_into(dir.path());
    for (a, b) in shared.versions().iter().zip(again.versions()) {
        assert_eq!(a.target(), b.target());
        assert!(
            a.zip == b.zip,
            "{}: zip bytes differ between builds",
            a.target()
        );
        assert_eq!(a.h1, b.h1);
    }
    assert_eq!(
        layout::all_files(shared.dir()),
        layout::all_files(again.dir())
    );
}

#[test]
fn tree_files_are_the_protocol_answers() {
    let tree = FixtureTree::shared();
    let read = |rel: &str| {
        std::fs::read(tree.dir().join(rel.trim_start_matches('/')))
            .unwrap_or_else(|e| panic!("tree file {rel}: {e}"))
    };
    for m in tree.modules() {
        assert_eq!(read(&m.list_path()), m.list_body().as_bytes(), "{}", m.path);
        if let Some(latest) = &m.latest {
            assert_eq!(
                read(&m.latest_path()),
                tree.version(&m.path, latest).info,
                "{}",
                m.path
            );
        }
        for (query, version) in &m.queries {
            assert_eq!(
                read(&m.query_info_path(query)),
                tree.version(&m.path, version).info
            );
        }
    }
    for v in tree.versions() {
        assert_eq!(read(&v.path("info")), v.info);
        assert_eq!(read(&v.path("mod")), v.go_mod);
        assert_eq!(read(&v.path("zip")), v.zip);
        let info: serde_json::Value = serde_json::from_slice(&v.info).expect(".info is JSON");
        assert_eq!(info["Version"], v.version.as_str());
        assert_eq!(info["Time"], v.time.as_str());
    }
    assert!(
        tree.dir()
            .join("github.com/!upper/!case/@v/v1.0.0.zip")
            .is_file()
    );
}

#[test]
fn retractions_live_in_the_latest_go_mod() {
    let tree = FixtureTree::shared();
    for m in tree.modules().iter().filter(|m| !m.retracted.is_empty()) {
        let latest = m
            .latest
            .as_deref()
            .expect("a module with retractions has a latest");
        let go_mod = String::from_utf8_lossy(&tree.version(&m.path, latest).go_mod).into_owned();
        for r in &m.retracted {
            assert!(
                go_mod.contains(&format!("retract {r}")),
                "{}@{latest} go.mod should retract {r}:\n{go_mod}",
                m.path
            );
        }
    }
}

#[test]
fn escaping_and_hash1_follow_go() {
    assert_eq!(
        escape_path("github.com/Upper/Case"),
        "github.com/!upper/!case"
    );
    assert_eq!(escape_path("v1.0.0-RC1"), "v1.0.0-!r!c1");
    assert_eq!(escape_path("example.com/hello"), "example.com/hello");
    // Hash1 sorts lines, so the order files are given in must not matter.
    assert_eq!(
        hash1([("a", b"1".as_slice()), ("b", b"2".as_slice())]),
        hash1([("b", b"2".as_slice()), ("a", b"1".as_slice())])
    );
    assert_ne!(
        hash1([("a", b"1".as_slice())]),
        hash1([("a", b"2".as_slice())])
    );
    let generated = fixture_tree::generate_bytes(7, 1000);
    assert_eq!(generated.len(), 1000);
    assert_eq!(generated, fixture_tree::generate_bytes(7, 1000));
    assert_ne!(generated, fixture_tree::generate_bytes(8, 1000));
}

#[test]
fn layout_checker_accepts_the_tree_and_rejects_the_rest() {
    let tree = FixtureTree::shared();
    for v in tree.versions() {
        for ext in ["info", "mod", "zip", "ziphash"] {
            layout::check_key(&v.key(ext)).unwrap_or_else(|e| panic!("{}: {e}", v.key(ext)));
        }
    }
    for m in tree.modules() {
        let key = m.list_path();
        layout::check_key(key.trim_start_matches('/')).expect("list key");
    }
    for bad in [
        "example.com/branchy/@v/main.info",
        "example.com/branchy/@latest",
        "github.com/Upper/Case/@v/list",
        "example.com/!!x/@v/list",
        "example.com/hello/@v/v1.0.0.zip.tmp",
        "example.com/hello/@v/v1.0.0.txt",
        "example.com/hello/@v/v1.2.3+meta.zip",
        "example.com/hello/@v/latest.zip",
        "example.com/hello/@v/v1.info",
        "example.com/../x/@v/list",
        "hello/@v/list",
        "tmp-upload-1234",
    ] {
        assert!(layout::check_key(bad).is_err(), "{bad} should be rejected");
    }
    for ok in [
        "/example.com/branchy/@v/main.info",
        "/example.com/branchy/@latest",
        "/github.com/!upper/!case/@v/v1.0.0.zip",
        "/example.com/hello/@v/list",
    ] {
        layout::check_upstream_path(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for bad in [
        "/example.com/../x/@v/list",
        "/github.com/Upper/Case/@v/list",
        "/example.com/hello/@v/../../x.info",
        "/example.com/hello/@v/v1.0.0\0.info",
        "/example.com/hello/@v/latest.zip",
        "/example.com/hello/@v/v1.0.0.txt",
        "//example.com/hello/@v/list",
    ] {
        assert!(
            layout::check_upstream_path(bad).is_err(),
            "{bad} should be rejected"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixture_upstream_serves_counts_and_misbehaves() {
    let tree = FixtureTree::shared();
    let up = Upstream::start().await;
    let hello = tree.module("example.com/hello");
    let v = tree.version("example.com/hello", "v1.1.0");

    let list = get(&format!("{}{}", up.url(), hello.list_path())).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.text(), hello.list_body());
    assert_eq!(
        list.header("content-type"),
        Some("text/plain; charset=utf-8")
    );

    let zip = get(&format!("{}{}", up.url(), v.path("zip"))).await;
    assert_eq!(zip.status, 200);
    assert!(zip.body == v.zip, "zip bytes");
    assert_eq!(zip.header("content-type"), Some("application/zip"));

    // Percent-decoded once: an escaped `!` and the raw one count as the same path.
    let upper = tree.version("github.com/Upper/Case", "v1.0.0");
    let encoded = upper.path("info").replace('!', "%21");
    let info = get(&format!("{}{encoded}", up.url())).await;
    assert_eq!(info.status, 200);
    assert_eq!(info.body, upper.info);
    assert_eq!(info.header("content-type"), Some("application/json"));
    assert_eq!(up.count(&upper.path("info")), 1);

    let missing = get(&format!("{}/example.com/nope/@v/list", up.url())).await;
    assert_eq!(missing.status, 404);
    assert!(
        missing
            .header("content-type")
            .is_some_and(|t| t.starts_with("text/plain"))
    );

    up.set_fault(&v.path("mod"), Fault::Status(500));
    assert_eq!(
        get(&format!("{}{}", up.url(), v.path("mod"))).await.status,
        500
    );
    up.clear_fault(&v.path("mod"));
    let cleared = get(&format!("{}{}", up.url(), v.path("mod"))).await;
    assert_eq!(
        (cleared.status, cleared.body.clone()),
        (200, v.go_mod.clone())
    );

    up.set_fault(&v.path("zip"), Fault::ResetMidBody);
    let response = client()
        .get(format!("{}{}", up.url(), v.path("zip")))
        .send()
        .await
        .expect("headers arrive before the reset");
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        response.bytes().await.is_err(),
        "a reset mid-body must surface as a body error"
    );
    up.clear_fault(&v.path("zip"));

    up.set_delay(std::time::Duration::from_millis(20));
    up.set_down(true);
    assert_eq!(
        get(&format!("{}{}", up.url(), hello.list_path()))
            .await
            .status,
        503
    );
    up.set_down(false);
    up.set_delay(std::time::Duration::ZERO);
    assert_eq!(
        get(&format!("{}{}", up.url(), hello.list_path()))
            .await
            .status,
        200
    );

    assert_eq!(up.count(&hello.list_path()), 3);
    assert_eq!(up.count(&v.path("mod")), 2);
    assert_eq!(up.count(&v.path("zip")), 2);
    assert_eq!(up.count("/example.com/nope/@v/list"), 1);
    assert_eq!(up.total(), up.counts().values().sum::<usize>());
    assert_eq!(up.total(), 9);

    // HEAD goes through the same handler and must not carry a body.
    let head = send(client().head(format!("{}{}", up.url(), v.path("zip")))).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_reads_the_tree_and_agrees_on_every_hash() {
    let Some(go) =
        gocmd::go_or_skip("fixture_tree_test::go_reads_the_tree_and_agrees_on_every_hash")
    else {
        return;
    };
    eprintln!("using {} ({})", go.bin().display(), go.version());
    let tree = FixtureTree::shared();
    let sandbox = go.sandbox(&tree.file_url());
    check_go_downloads(tree, &sandbox).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_downloads_through_the_fixture_upstream() {
    let Some(go) =
        gocmd::go_or_skip("fixture_tree_test::go_downloads_through_the_fixture_upstream")
    else {
        return;
    };
    let tree = FixtureTree::shared();
    let up = Upstream::start().await;
    let sandbox = go.sandbox(&up.url());
    check_go_downloads(tree, &sandbox).await;
    assert!(
        up.count("/example.com/branchy/@v/main.info") >= 1,
        "the go command asked the upstream for the branch query: {:#?}",
        up.counts()
    );
}

/// Downloads every fixture version plus the queries and checks the go command's hashes against ours.
async fn check_go_downloads(tree: &FixtureTree, sandbox: &gocmd::GoSandbox) {
    let targets: Vec<String> = tree.versions().iter().map(|v| v.target()).collect();
    let target_refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    let downloads = sandbox.download_json(&target_refs).await;
    assert_eq!(downloads.len(), tree.versions().len(), "{downloads:#?}");
    for d in &downloads {
        let v = tree.version(&d.path, &d.version);
        assert_eq!(d.sum.as_deref(), Some(v.h1.as_str()), "{}: Sum", v.target());
        assert_eq!(
            d.go_mod_sum.as_deref(),
            Some(v.go_mod_h1.as_str()),
            "{}: GoModSum",
            v.target()
        );
    }

    let queries = sandbox
        .download_json(&[
            "example.com/branchy@main",
            "example.com/branchy@latest",
            "example.com/hello@latest",
            "example.com/pre@latest",
            "github.com/Upper/Case@latest",
        ])
        .await;
    let resolved: Vec<(&str, &str)> = queries
        .iter()
        .map(|d| (d.path.as_str(), d.version.as_str()))
        .collect();
    assert_eq!(
        resolved,
        [
            ("example.com/branchy", BRANCHY_PSEUDO),
            ("example.com/branchy", BRANCHY_PSEUDO),
            ("example.com/hello", "v1.2.0"),
            ("example.com/pre", "v1.0.0-rc.1"),
            ("github.com/Upper/Case", "v1.0.0"),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_sees_the_retraction_in_the_tree() {
    let Some(go) = gocmd::go_or_skip("fixture_tree_test::go_sees_the_retraction_in_the_tree")
    else {
        return;
    };
    let tree = FixtureTree::shared();
    let sandbox = go.sandbox(&tree.file_url());
    sandbox.write_main_module(
        "module example.com/app\n\ngo 1.21\n",
        "package main\n\nfunc main() {}\n",
    );
    let versions = sandbox
        .run(&["list", "-m", "-versions", "example.com/hello"])
        .await
        .success();
    assert_eq!(versions.stdout.trim(), "example.com/hello v1.1.0 v1.2.0");
    let all = sandbox
        .run(&["list", "-m", "-retracted", "-versions", "example.com/hello"])
        .await
        .success();
    assert_eq!(all.stdout.trim(), "example.com/hello v1.0.0 v1.1.0 v1.2.0");
}
