//! docker-compose.yml cannot run here (no Docker engine), so it is checked: against the compose
//! spec's JSON schema, and every modstash variable and flag it sets must be accepted by modstash.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use clap::CommandFactory;
use modstash::cli::Cli;

fn compose_text() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml"))
        .expect("docker-compose.yml is in the repository root")
}

/// `KEY: value` lines of the file whose key starts with `MODSTASH_` (commented ones too: the
/// file offers them as alternatives, so they must be valid as well).
fn modstash_env(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .filter_map(|l| l.split_once(": "))
        .filter(|(k, _)| k.starts_with("MODSTASH_") || k.starts_with("RUST_LOG"))
        .map(|(k, v)| (k.to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect()
}

fn serve_envs() -> Vec<String> {
    let mut cli = Cli::command();
    cli.build();
    let mut names: Vec<String> = cli
        .get_arguments()
        .filter_map(|a| a.get_env())
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    if let Some(serve) = cli.find_subcommand("serve") {
        names.extend(
            serve
                .get_arguments()
                .filter_map(|a| a.get_env())
                .map(|e| e.to_string_lossy().into_owned()),
        );
    }
    names
}

#[test]
fn every_modstash_variable_in_compose_exists() {
    let known = serve_envs();
    let used = modstash_env(&compose_text());
    assert!(
        used.len() >= 4,
        "found too few MODSTASH_ settings: {used:?}"
    );
    for (name, _) in &used {
        if name == "RUST_LOG" {
            continue;
        }
        assert!(
            known.contains(name),
            "docker-compose.yml sets {name}, which modstash does not read"
        );
    }
}

#[test]
fn compose_settings_are_accepted_by_config_show() {
    // Each alternative the file offers (a duplicated key is a commented variant) must resolve.
    let mut variants: Vec<BTreeMap<String, String>> = vec![BTreeMap::new()];
    for (k, v) in modstash_env(&compose_text()) {
        if variants.last().is_some_and(|m| m.contains_key(&k)) {
            let mut alt = variants[0].clone();
            alt.insert(k, v);
            variants.push(alt);
        } else {
            for m in &mut variants {
                m.insert(k.clone(), v.clone());
            }
        }
    }
    for env in variants {
        let out = Command::new(env!("CARGO_BIN_EXE_modstash"))
            .args(["config", "show"])
            .env_clear()
            .envs(&env)
            .output()
            .expect("run modstash config show");
        assert!(
            out.status.success(),
            "modstash refused the compose settings {env:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn compose_file_matches_the_compose_spec() {
    let checker = Command::new("check-jsonschema")
        .args(["--builtin-schema", "vendor.compose-spec"])
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("docker-compose.yml"))
        .output();
    match checker {
        Ok(out) => assert!(
            out.status.success(),
            "docker-compose.yml does not match the compose spec:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) if std::env::var("MODSTASH_E2E").as_deref() != Ok("require") => {
            eprintln!(
                "skipped: compose_file_matches_the_compose_spec needs check-jsonschema (pip install check-jsonschema; set MODSTASH_E2E=require to fail instead)"
            );
        }
        Err(e) => panic!("MODSTASH_E2E=require but check-jsonschema cannot run: {e}"),
    }
}
