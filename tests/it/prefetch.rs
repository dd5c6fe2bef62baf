//! `modstash prefetch` (the real binary) fills storage from a go.sum, go.mod or list file, and
//! checks what it stored against go.sum's hashes.

use std::path::Path;

use crate::support::fixture_tree::FixtureTree;
use crate::support::layout::read_key;
use crate::support::upstream::Upstream;

struct Run {
    status: std::process::ExitStatus,
    json: serde_json::Value,
    stderr: String,
}

async fn prefetch(storage: &Path, upstream: &Upstream, files: &[&Path]) -> Run {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_modstash"))
        .arg("prefetch")
        .args(["--storage", &format!("file://{}", storage.display())])
        .args(["--upstream", &upstream.url()])
        .arg("--json")
        .args(files)
        .output()
        .await
        .expect("run modstash prefetch");
    let stdout = String::from_utf8_lossy(&out.stdout);
    Run {
        status: out.status,
        json: serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("prefetch printed no JSON ({e}): {stdout}")),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

#[tokio::test]
async fn prefetch_stores_what_a_go_sum_names_and_checks_its_hashes() {
    let tree = FixtureTree::shared();
    let upstream = Upstream::start().await;
    let dir = tempfile::tempdir().unwrap();
    let storage = dir.path().join("storage");
    let chosen: Vec<_> = tree
        .versions()
        .iter()
        .filter(|v| v.tagged)
        .take(4)
        .collect();
    let go_sum: String = chosen.iter().map(|v| v.go_sum_lines()).collect();
    let sum_file = dir.path().join("go.sum");
    std::fs::write(&sum_file, go_sum).unwrap();
    // A list file naming one of them again and one more.
    let extra = tree
        .versions()
        .iter()
        .find(|v| !chosen.iter().any(|c| c.target() == v.target()))
        .unwrap();
    let list_file = dir.path().join("deps.txt");
    std::fs::write(
        &list_file,
        format!("# pinned\n{}\n{}\n", chosen[0].target(), extra.target()),
    )
    .unwrap();

    let first = prefetch(&storage, &upstream, &[&sum_file, &list_file]).await;
    assert!(first.status.success(), "{}\n{}", first.json, first.stderr);
    let n = chosen.len() + 1;
    assert_eq!(first.json["summary"]["total"], n);
    assert_eq!(first.json["summary"]["fetched"], n, "{}", first.json);
    for v in chosen.iter().chain([&extra]) {
        assert!(
            read_key(&storage, &v.key("info")).is_some(),
            "{} not stored",
            v.target()
        );
        assert_eq!(upstream.count(&v.path("zip")), 1, "{}", v.target());
    }

    // Again: nothing is fetched.
    let second = prefetch(&storage, &upstream, &[&sum_file]).await;
    assert!(second.status.success());
    assert_eq!(second.json["summary"]["already_stored"], chosen.len());
    for v in &chosen {
        assert_eq!(
            upstream.count(&v.path("zip")),
            1,
            "{} fetched twice",
            v.target()
        );
    }

    // A go.sum that disagrees, and a version upstream does not have: exit 1, each reported.
    let bad_sum = dir.path().join("bad.sum");
    std::fs::write(
        &bad_sum,
        format!(
            "{} {} h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nexample.com/nothere v1.0.0 h1:x=\n",
            chosen[1].module, chosen[1].version
        ),
    )
    .unwrap();
    let third = prefetch(&storage, &upstream, &[&bad_sum]).await;
    assert!(!third.status.success());
    assert_eq!(third.json["summary"]["mismatched"], 1, "{}", third.json);
    assert_eq!(third.json["summary"]["failed"], 1, "{}", third.json);
}

#[tokio::test]
async fn prefetch_refuses_a_malformed_file_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("deps.txt");
    std::fs::write(&list, "rsc.io/quote@v1.5.2\n../../etc/passwd@v1.0.0\n").unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_modstash"))
        .args(["prefetch", "--upstream", "off", "--storage", "memory://"])
        .arg(&list)
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("deps.txt:2:"), "{stderr}");
}
