//! `direct`: private modules fetched by the real go command from local git repositories, stored
//! and served like any other, with the go command as the client.

use modstash::policy::{DownloadMode, Policy, RuleAction, RuleFile};

use crate::support::git_origin::{GitOrigin, HOST, git_available};
use crate::support::gocmd::{self, Go};
use crate::support::layout::read_key;
use crate::support::{self, Stack};

/// The go command and git, or a skip (a failure under `MODSTASH_E2E=require`).
fn tools_or_skip(test: &str) -> Option<Go> {
    let go = gocmd::go_or_skip(test)?;
    if !git_available() {
        assert!(
            std::env::var("MODSTASH_E2E").as_deref() != Ok("require"),
            "{test}: MODSTASH_E2E=require but git is missing"
        );
        eprintln!("skipped: {test} needs git");
        return None;
    }
    Some(go)
}

/// How the fake git host is sent to the go command.
#[derive(Clone, Copy)]
enum Via {
    /// The `private` patterns.
    Private,
    /// A `[[rule]]` with `action = "direct"`.
    Rule,
    /// The chain's trailing `direct`, after the proxy said 404.
    ChainEnd,
}

async fn direct_stack(go: &Go, origin: &GitOrigin, via: Via) -> Stack {
    let go_binary = go.bin().to_owned();
    let gitconfig = origin.gitconfig();
    support::stack_with(move |s| {
        match via {
            Via::Private => s.private = HOST.parse().unwrap(),
            Via::Rule => {
                let rule = RuleFile {
                    patterns: HOST.into(),
                    action: RuleAction::Direct,
                    mode: None,
                    reason: None,
                };
                s.policy = Policy::new(&[rule], &[], DownloadMode::Sync).unwrap();
            }
            Via::ChainEnd => s.upstream = format!("{},direct", s.upstream).parse().unwrap(),
        }
        s.go_binary = go_binary;
        s.direct_env = vec![
            ("GIT_CONFIG_GLOBAL".into(), gitconfig.display().to_string()),
            // Not private, so the go command would ask sum.golang.org: not for this host.
            ("GONOSUMDB".into(), HOST.into()),
        ];
    })
    .await
}

fn corp(rest: &str) -> String {
    format!("{HOST}/{rest}")
}

#[tokio::test]
async fn private_modules_are_fetched_direct_and_served_to_the_go_command() {
    let test = "direct::private_modules_are_fetched_direct_and_served_to_the_go_command";
    let Some(go) = tools_or_skip(test) else {
        return;
    };
    let origin = GitOrigin::create();
    let s = direct_stack(&go, &origin, Via::Private).await;
    let client = go.sandbox(&s.server.base_url());

    let targets = [
        corp("team/repo.git@v1.0.0"),
        corp("team/repo.git@v1.1.0"),
        corp("team/mono.git/sub@v1.0.0"),
        corp("team/major.git/v2@v2.0.0"),
    ];
    let target_refs: Vec<&str> = targets.iter().map(String::as_str).collect();
    let downloads = client.download_json(&target_refs).await;
    assert_eq!(downloads.len(), targets.len());
    for d in &downloads {
        // What the client hashed is what modstash stored (h1 over the stored zip).
        let key = format!("{}/@v/{}.ziphash", d.path, d.version);
        let stored =
            read_key(s.server.storage_dir(), &key).unwrap_or_else(|| panic!("{key} not stored"));
        assert_eq!(
            Some(String::from_utf8_lossy(&stored).trim().to_owned()),
            d.sum,
            "{key}"
        );
        let info = format!("{}/@v/{}.info", d.path, d.version);
        assert!(
            read_key(s.server.storage_dir(), &info).is_some(),
            "{info} not committed"
        );
    }

    // Tags through the go command's own `list`.
    let out = client
        .run(&["list", "-m", "-versions", &corp("team/repo.git")])
        .await
        .success();
    assert_eq!(
        out.stdout.trim(),
        format!("{} v1.0.0 v1.1.0", corp("team/repo.git"))
    );

    // An untagged commit gets a pseudo-version naming it.
    let head = origin.rev("team/repo", "HEAD");
    let pseudo = client
        .download_json(&[&format!("{}@{head}", corp("team/repo.git"))])
        .await;
    assert!(
        pseudo[0].version.starts_with("v1.1.1-0.") && pseudo[0].version.ends_with(&head[..12]),
        "{:?}",
        pseudo[0].version
    );

    // `@latest` of a repository without tags is a pseudo-version of its head.
    let untagged_head = origin.rev("team/untagged", "HEAD");
    let out = client
        .run(&[
            "list",
            "-m",
            "-json",
            &format!("{}@latest", corp("team/untagged.git")),
        ])
        .await
        .success();
    let latest: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let version = latest["Version"].as_str().unwrap();
    assert!(
        version.starts_with("v0.0.0-") && version.ends_with(&untagged_head[..12]),
        "{version}"
    );

    // Private modules never reach the proxy upstream.
    let leaked: Vec<String> = s
        .upstream
        .counts()
        .into_keys()
        .filter(|p| p.contains(HOST))
        .collect();
    assert!(
        leaked.is_empty(),
        "private paths asked upstream: {leaked:?}"
    );
}

#[tokio::test]
async fn a_missing_private_version_is_a_404_with_the_go_commands_reason() {
    let test = "direct::a_missing_private_version_is_a_404_with_the_go_commands_reason";
    let Some(go) = tools_or_skip(test) else {
        return;
    };
    let origin = GitOrigin::create();
    let s = direct_stack(&go, &origin, Via::Private).await;
    let missing = support::get(
        &s.server
            .url(&format!("/{}/@v/v9.9.9.info", corp("team/repo.git"))),
    )
    .await;
    assert_eq!(missing.status, 404, "{}", missing.text());
    assert!(
        missing.text().contains("unknown revision v9.9.9"),
        "{}",
        missing.text()
    );
    let unknown_repo = support::get(
        &s.server
            .url(&format!("/{}/@v/list", corp("team/nothere.git"))),
    )
    .await;
    assert_eq!(unknown_repo.status, 404, "{}", unknown_repo.text());

    // The go command prints the reason.
    let client = go.sandbox(&s.server.base_url());
    let out = client
        .run(&[
            "mod",
            "download",
            &format!("{}@v9.9.9", corp("team/repo.git")),
        ])
        .await;
    assert!(!out.status.success());
    assert!(
        out.stderr.contains("unknown revision v9.9.9"),
        "{}",
        out.stderr
    );
}

#[tokio::test]
async fn a_chain_ending_in_direct_falls_through_after_the_proxies() {
    let test = "direct::a_chain_ending_in_direct_falls_through_after_the_proxies";
    let Some(go) = tools_or_skip(test) else {
        return;
    };
    let origin = GitOrigin::create();
    let s = direct_stack(&go, &origin, Via::ChainEnd).await;
    let client = go.sandbox(&s.server.base_url());
    let target = corp("team/repo.git@v1.1.0");
    let downloads = client.download_json(&[&target]).await;
    assert_eq!(downloads[0].version, "v1.1.0");
    // The proxy was asked first and said 404; then the go command fetched it.
    let asked = s
        .upstream
        .counts()
        .into_keys()
        .filter(|p| p.contains(HOST))
        .count();
    assert!(asked > 0, "the proxy before `direct` was never asked");
    // Fixture modules still come from the proxy.
    let fixture = &s.tree.versions()[0];
    let r = support::get(&s.server.url(&fixture.path("info"))).await;
    assert_eq!(r.status, 200, "{}", r.text());
}

#[tokio::test]
async fn a_direct_rule_sends_its_modules_to_the_go_command() {
    let test = "direct::a_direct_rule_sends_its_modules_to_the_go_command";
    let Some(go) = tools_or_skip(test) else {
        return;
    };
    let origin = GitOrigin::create();
    let s = direct_stack(&go, &origin, Via::Rule).await;
    let downloads = go
        .sandbox(&s.server.base_url())
        .download_json(&[&corp("team/repo.git@v1.0.0")])
        .await;
    assert_eq!(downloads[0].version, "v1.0.0");
    assert_eq!(
        s.upstream.total(),
        0,
        "a direct-rule module reached the proxy"
    );
}
