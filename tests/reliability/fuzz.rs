//! A fixed-budget randomized run (issue 6, part 4) over the two parsers hostile bytes reach: the
//! request parser and the zip checker. No input may panic either; every accepted request must
//! map to storage keys that fit the layout; every accepted zip must satisfy the module zip rules
//! (checked here independently of modstash) and hash to what the go command would compute.
//!
//! Zips are structured mutations of the fixture modules' real zips: byte flips, truncation,
//! entries renamed out of the prefix or into case collisions, duplicated names.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use modstash::module::{
    ModuleVersion, ProxyRequest, VersionRef, ZipLimits, check_zip_file, parse_proxy_path,
};
use modstash::storage::VersionFile;
use modstash::storage::layout::{list_key, version_key};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

use crate::report::{Line, Report};
use crate::support::fixture_tree::{
    FixtureTree, FixtureVersion, hash1, try_read_zip, try_write_zip,
};
use crate::support::hostile::hostile_path;
use crate::support::layout;
use crate::{Mode, Outcome, ScenarioFuture};

const SCENARIO: &str = "fuzz_budget";

/// The scenario, for `scenarios()`.
pub fn fuzz_budget(report: &Report, mode: Mode) -> ScenarioFuture<'_> {
    Box::pin(async move { run(report, mode) })
}

fn run(report: &Report, mode: Mode) -> Outcome {
    let (paths, zips, max_zip) = match mode {
        Mode::Short => (20_000, 1_500, 256 << 10),
        Mode::Long => (500_000, 30_000, usize::MAX),
    };
    budgeted(report, "request paths", paths, request_path(), |raw| {
        check_request(&raw)
    });
    budgeted(report, "zips", zips, mutated_zip(max_zip), |(v, bytes)| {
        check_zip(v, &bytes)
    });
    Outcome::Ran
}

/// Runs `property` over `cases` inputs from `strategy`; a failure (shrunk by proptest) is
/// printed and tallied.
fn budgeted<S: Strategy>(
    report: &Report,
    what: &str,
    cases: u32,
    strategy: S,
    property: impl Fn(S::Value) -> Result<(), TestCaseError>,
) {
    let ran = AtomicU64::new(0);
    // Seeded (`MODSTASH_RELIABILITY_SEED`) so a run, and a failure, can be repeated exactly;
    // a different seed explores different inputs.
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&crate::seed().to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &seed);
    let mut runner = TestRunner::new_with_rng(
        Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        },
        rng,
    );
    let verdict = runner.run(&strategy, |input| {
        ran.fetch_add(1, Ordering::Relaxed);
        property(input)
    });
    let ran = ran.load(Ordering::Relaxed);
    match &verdict {
        Ok(()) => eprintln!("   {what}: {ran} inputs, none mishandled"),
        Err(e) => eprintln!("   {what}: FAILED after {ran} inputs: {e}"),
    }
    report.record(
        Line::BadInputs,
        SCENARIO,
        ran,
        ran - u64::from(verdict.is_err()),
    );
}

fn request_path() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => hostile_path(),
        2 => hostile_path().prop_map(|p| format!("/{p}")),
        1 => any::<String>(),
        1 => "/[ -~]{0,80}",
    ]
}

/// An accepted request names only keys of the storage layout; a refused one says why in a line.
fn check_request(raw: &str) -> Result<(), TestCaseError> {
    let request = match parse_proxy_path(raw) {
        Ok(request) => request,
        Err(e) => {
            let reason = e.to_string();
            prop_assert!(!reason.is_empty() && !reason.contains('\n'), "{:?}", reason);
            return Ok(());
        }
    };
    let list = list_key(request.module_path()).to_string();
    prop_assert!(layout::check_key(&list).is_ok(), "{:?} -> {}", raw, list);
    let mv = match &request {
        ProxyRequest::Mod(mv) | ProxyRequest::Zip(mv) => Some(mv.clone()),
        ProxyRequest::Info(path, VersionRef::Canonical(v)) => {
            ModuleVersion::new(path.clone(), v.clone()).ok()
        }
        _ => None,
    };
    if let Some(mv) = mv {
        for file in [
            VersionFile::Info,
            VersionFile::Mod,
            VersionFile::Zip,
            VersionFile::ZipHash,
        ] {
            let key = version_key(&mv, file).to_string();
            let fits = layout::check_key(&key);
            prop_assert!(fits.is_ok(), "{:?} -> {}: {:?}", raw, key, fits);
        }
    }
    Ok(())
}

/// How one fixture zip is damaged.
#[derive(Debug, Clone)]
enum Mutation {
    /// Set bytes at these positions (taken modulo the length).
    Flip(Vec<(usize, u8)>),
    /// Keep only this many bytes (modulo the length).
    Truncate(usize),
    /// Rename entry `i` (modulo the count) to this name, relative to the prefix.
    Rename(usize, String),
    /// Add an entry whose name differs from entry `i`'s only in case.
    CaseCollide(usize),
    /// Give entry `i` the same name as entry `j` (bytes replaced in both headers).
    Duplicate(usize, usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let name = prop_oneof![
        Just("../x.go".to_owned()),
        Just("../../../etc/passwd".to_owned()),
        Just("/abs.go".to_owned()),
        Just("a\\b.go".to_owned()),
        Just("./x.go".to_owned()),
        Just("x/../../y.go".to_owned()),
        Just("".to_owned()),
        Just("dir/".to_owned()),
        Just(".git/config".to_owned()),
        Just("GO.MOD".to_owned()),
        "[a-zA-Z0-9._/-]{1,16}",
    ];
    prop_oneof![
        3 => proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8).prop_map(Mutation::Flip),
        1 => any::<usize>().prop_map(Mutation::Truncate),
        2 => (any::<usize>(), name).prop_map(|(i, n)| Mutation::Rename(i, n)),
        1 => any::<usize>().prop_map(Mutation::CaseCollide),
        1 => (any::<usize>(), any::<usize>()).prop_map(|(i, j)| Mutation::Duplicate(i, j)),
    ]
}

/// Mutations of the fixture zips up to `max_size` bytes (re-deflating the 3 MiB one dominates a run).
fn mutated_zip(max_size: usize) -> impl Strategy<Value = (&'static FixtureVersion, Vec<u8>)> {
    let versions: Vec<&'static FixtureVersion> = FixtureTree::shared()
        .versions()
        .iter()
        .filter(|v| v.zip.len() <= max_size)
        .collect();
    (
        0..versions.len(),
        proptest::collection::vec(mutation(), 0..3),
    )
        .prop_map(move |(i, mutations)| {
            let v = versions[i];
            let bytes = mutations
                .iter()
                .fold(v.zip.clone(), |bytes, m| apply(v, bytes, m));
            (v, bytes)
        })
}

/// A zip's entries as (name, content).
type Entries = Vec<(String, Vec<u8>)>;

fn apply(v: &FixtureVersion, mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    if bytes.is_empty() {
        return bytes;
    }
    let prefix = format!("{}@{}/", v.module, v.version);
    let rebuilt = |f: &dyn Fn(&mut Entries)| {
        let mut entries = try_read_zip(&bytes).ok()?;
        if entries.is_empty() {
            return None;
        }
        f(&mut entries);
        try_write_zip(&entries).ok()
    };
    match m {
        Mutation::Flip(flips) => {
            let len = bytes.len();
            for (at, value) in flips {
                bytes[at % len] = *value;
            }
            bytes
        }
        Mutation::Truncate(n) => {
            bytes.truncate(n % bytes.len());
            bytes
        }
        Mutation::Rename(i, name) => rebuilt(&|entries| {
            let at = i % entries.len();
            entries[at].0 = format!("{prefix}{name}");
        })
        .unwrap_or(bytes),
        Mutation::CaseCollide(i) => rebuilt(&|entries| {
            let (name, data) = entries[i % entries.len()].clone();
            let flipped: String = name
                .chars()
                .map(|c| match c {
                    'a'..='z' => c.to_ascii_uppercase(),
                    'A'..='Z' => c.to_ascii_lowercase(),
                    _ => c,
                })
                .collect();
            entries.push((
                format!(
                    "{prefix}{}",
                    flipped.get(prefix.len()..).unwrap_or(&flipped)
                ),
                data,
            ));
        })
        .unwrap_or(bytes),
        Mutation::Duplicate(i, j) => {
            let Ok(entries) = try_read_zip(&bytes) else {
                return bytes;
            };
            let names: Vec<&String> = entries.iter().map(|(n, _)| n).collect();
            if names.len() < 2 {
                return bytes;
            }
            let (from, to) = (names[i % names.len()], names[j % names.len()]);
            if from.len() != to.len() {
                return bytes;
            }
            replace_all(bytes, from.as_bytes(), to.as_bytes())
        }
    }
}

fn replace_all(mut bytes: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut at = 0;
    while at + from.len() <= bytes.len() {
        if &bytes[at..at + from.len()] == from {
            bytes[at..at + from.len()].copy_from_slice(to);
            at += from.len();
        } else {
            at += 1;
        }
    }
    bytes
}

/// No panic; an accepted zip follows the module zip rules and hashes as the go command would.
fn check_zip(v: &FixtureVersion, bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(bytes).expect("write zip");
    let mv = ModuleVersion::new(
        modstash::module::ModulePath::parse(&v.module).expect("fixture module path"),
        modstash::module::Version::parse(&v.version).expect("fixture version"),
    )
    .expect("fixture module version");
    let Ok(summary) = check_zip_file(file.path(), &mv, &ZipLimits::default()) else {
        return Ok(());
    };
    // The `zip` crate is the independent reader, but Go's reader (the go command's, which
    // modstash follows) is more lenient: it ignores the end record's disk fields and the
    // encryption flag, and reads directory records until one fails to parse. Where the two
    // readers see different entries, there is nothing to compare; where they see the same number
    // of files, names, go.mod and hash must agree exactly.
    let entries = match try_read_zip(bytes) {
        Ok(entries)
            if entries.iter().filter(|(n, _)| !n.ends_with('/')).count() == summary.files =>
        {
            entries
        }
        _ => return Ok(()),
    };
    let prefix = format!("{}@{}/", v.module, v.version);
    let mut folded = std::collections::BTreeSet::new();
    for (name, _) in &entries {
        let rel = name.strip_prefix(&prefix);
        prop_assert!(rel.is_some(), "accepted {:?} outside {}", name, prefix);
        let rel = rel.unwrap_or_default();
        prop_assert!(
            !rel.is_empty()
                && !rel.starts_with('/')
                && !rel.contains('\\')
                && rel
                    .split('/')
                    .all(|e| !e.is_empty() && e != "." && e != ".."),
            "accepted unclean name {:?}",
            name
        );
        prop_assert!(
            folded.insert(name.to_lowercase()),
            "accepted a case collision on {:?}",
            name
        );
    }
    let go_mod = entries
        .iter()
        .find(|(n, _)| *n == format!("{prefix}go.mod"))
        .map(|(_, b)| b.clone());
    prop_assert_eq!(&summary.go_mod, &go_mod);
    let expected = hash1(entries.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    prop_assert_eq!(&summary.h1, &expected);
    Ok(())
}
