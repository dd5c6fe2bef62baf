//! The real go command against modstash (`GOPROXY=http://127.0.0.1:PORT`): download, build, retractions, queries.
//!
//! Every `h1:` the go command writes to go.sum must equal the `.ziphash` modstash stored.
//! Skips without a go command unless `MODSTASH_E2E=require`.

use crate::support::fixture_tree::FixtureTree;
use crate::support::gocmd::{self, GoSandbox};
use crate::support::server::TestServer;
use crate::support::{layout, stack};

const BRANCHY_PSEUDO: &str = "v0.0.0-20240102150405-abcdefabcdef";

/// Checks every go.sum line of `sandbox` against modstash's storage and the fixtures; returns how many.
#[track_caller]
fn check_go_sum(sandbox: &GoSandbox, server: &TestServer, tree: &FixtureTree) -> usize {
    let sums = sandbox.go_sum();
    for (module, version, hash) in &sums {
        let (version, go_mod_only) = match version.strip_suffix("/go.mod") {
            Some(v) => (v, true),
            None => (version.as_str(), false),
        };
        let v = tree.version(module, version);
        if go_mod_only {
            assert_eq!(hash, &v.go_mod_h1, "go.sum {module} {version}/go.mod");
            continue;
        }
        assert_eq!(hash, &v.h1, "go.sum {module} {version}");
        let stored =
            layout::read_key(server.storage_dir(), &v.key("ziphash")).unwrap_or_else(|| {
                panic!(
                    "{} not stored although go fetched the zip",
                    v.key("ziphash")
                )
            });
        assert_eq!(
            String::from_utf8_lossy(&stored).trim(),
            hash,
            "go.sum and modstash's {} disagree",
            v.key("ziphash")
        );
    }
    sums.len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_builds_a_program_through_modstash() {
    let Some(go) = gocmd::go_or_skip("e2e_go::go_builds_a_program_through_modstash") else {
        return;
    };
    let s = stack().await;
    let sandbox = go.sandbox(&s.server.base_url());
    sandbox.write_main_module(
        r#"module example.com/app

go 1.21

require (
	example.com/hello v1.2.0
	example.com/hello/v2 v2.0.0
	example.com/legacy v2.0.0+incompatible
	example.com/pre v1.0.0-rc.1
	example.com/shared v1.0.0
	github.com/Upper/Case v1.0.0
)
"#,
        r#"package main

import (
	"fmt"

	"example.com/hello"
	hellov2 "example.com/hello/v2"
	"example.com/legacy"
	"example.com/pre"
	"example.com/shared"
	casing "github.com/Upper/Case"
)

func main() {
	fmt.Println(hello.Greet())
	fmt.Println(hellov2.Greet())
	fmt.Println(legacy.Name())
	fmt.Println(pre.Stage())
	fmt.Println(shared.Answer)
	fmt.Println(casing.Name())
}
"#,
    );
    sandbox.run(&["build", "-o", "app", "."]).await.success();
    let app = sandbox.work_dir().join("app");
    let out = tokio::process::Command::new(&app)
        .output()
        .await
        .expect("run the built program");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "hello from v1.2.0\nhello from v2.0.0\nlegacy v2.0.0+incompatible\nrc.1\n42\ngithub.com/Upper/Case\n"
    );
    let checked = check_go_sum(&sandbox, &s.server, s.tree);
    assert!(
        checked >= 12,
        "go.sum has a zip and a go.mod line per module"
    );
    assert_eq!(
        layout::violations(s.server.storage_dir()),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_downloads_every_fixture_version_through_modstash() {
    let Some(go) = gocmd::go_or_skip("e2e_go::go_downloads_every_fixture_version_through_modstash")
    else {
        return;
    };
    let s = stack().await;
    let sandbox = go.sandbox(&s.server.base_url());
    let targets: Vec<String> = s.tree.versions().iter().map(|v| v.target()).collect();
    let targets: Vec<&str> = targets.iter().map(String::as_str).collect();
    let downloads = sandbox.download_json(&targets).await;
    assert_eq!(downloads.len(), s.tree.versions().len());
    for d in downloads {
        let v = s.tree.version(&d.path, &d.version);
        assert_eq!(d.sum.as_deref(), Some(v.h1.as_str()), "{} Sum", v.target());
        assert_eq!(
            d.go_mod_sum.as_deref(),
            Some(v.go_mod_h1.as_str()),
            "{} GoModSum",
            v.target()
        );
        let stored = layout::read_key(s.server.storage_dir(), &v.key("ziphash"))
            .unwrap_or_else(|| panic!("{} not stored", v.key("ziphash")));
        assert_eq!(
            String::from_utf8_lossy(&stored).trim(),
            v.h1,
            "{}",
            v.key("ziphash")
        );
    }
    assert_eq!(
        layout::violations(s.server.storage_dir()),
        Vec::<String>::new()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_sees_the_retraction_through_modstash() {
    let Some(go) = gocmd::go_or_skip("e2e_go::go_sees_the_retraction_through_modstash") else {
        return;
    };
    let s = stack().await;
    let sandbox = go.sandbox(&s.server.base_url());
    sandbox.write_main_module(
        "module example.com/app\n\ngo 1.21\n",
        "package main\n\nfunc main() {}\n",
    );
    let visible = sandbox
        .run(&["list", "-m", "-versions", "example.com/hello"])
        .await
        .success();
    assert_eq!(visible.stdout.trim(), "example.com/hello v1.1.0 v1.2.0");
    let all = sandbox
        .run(&["list", "-m", "-retracted", "-versions", "example.com/hello"])
        .await
        .success();
    assert_eq!(all.stdout.trim(), "example.com/hello v1.0.0 v1.1.0 v1.2.0");
    let json = sandbox
        .run(&[
            "list",
            "-m",
            "-retracted",
            "-json",
            "example.com/hello@v1.0.0",
        ])
        .await
        .success();
    let module: serde_json::Value = serde_json::from_str(&json.stdout).expect("go list -json");
    assert_eq!(module["Version"], "v1.0.0");
    assert_eq!(
        module["Retracted"],
        serde_json::json!(["broken"]),
        "{}",
        json.stdout
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn go_get_resolves_latest_and_a_branch_through_modstash() {
    let Some(go) =
        gocmd::go_or_skip("e2e_go::go_get_resolves_latest_and_a_branch_through_modstash")
    else {
        return;
    };
    let s = stack().await;
    let sandbox = go.sandbox(&s.server.base_url());
    sandbox.write_main_module(
        "module example.com/app\n\ngo 1.21\n",
        r#"package main

import (
	"fmt"

	"example.com/branchy"
	"example.com/hello"
)

func main() { fmt.Println(hello.Greet(), branchy.Branch()) }
"#,
    );
    sandbox
        .run(&["get", "example.com/hello@latest"])
        .await
        .success();
    sandbox
        .run(&["get", "example.com/branchy@main"])
        .await
        .success();
    let resolved = sandbox
        .run(&["list", "-m", "example.com/hello", "example.com/branchy"])
        .await
        .success();
    assert_eq!(
        resolved.stdout.trim(),
        format!("example.com/hello v1.2.0\nexample.com/branchy {BRANCHY_PSEUDO}")
    );
    sandbox.run(&["build", "-o", "app", "."]).await.success();
    check_go_sum(&sandbox, &s.server, s.tree);

    let keys = layout::stored_keys(s.server.storage_dir());
    assert!(
        !keys.iter().any(|k| k.contains("main")),
        "the branch name is not a storage key: {keys:#?}"
    );
    assert!(
        s.upstream.count("/example.com/branchy/@v/main.info") >= 1,
        "the query reached the upstream as a query: {:#?}",
        s.upstream.counts()
    );
}
