//! Property tests for the module vocabulary: escaping round trips, version order laws, and nothing panicking on hostile input.

// A test crate: panicking on a broken fixture is the right failure, helpers included.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::cmp::Ordering;
use std::io::{Cursor, Write};

use modstash::module::{
    ModulePath, ModuleVersion, ProxyRequest, Version, VersionQuery, VersionRef, ZipLimits,
    check_zip_file, parse_proxy_path,
};
use proptest::prelude::*;

#[path = "it/support/hostile.rs"]
#[allow(dead_code)] // the table of whole targets is for the integration tests
mod hostile;
use hostile::hostile_path;
use zip::CompressionMethod;
use zip::write::SimpleFileOptions;

/// Module paths built from pieces likely to be valid, with upper case to escape; the few
/// invalid ones are filtered out by the property.
fn module_path_text() -> impl Strategy<Value = String> {
    (
        "[a-z0-9][a-z0-9-]{0,8}(\\.[a-z0-9][a-z0-9-]{0,8}){1,2}",
        proptest::collection::vec("[A-Za-z0-9][A-Za-z0-9._~-]{0,10}", 0..4),
        proptest::option::of(2u32..30),
    )
        .prop_map(|(domain, elems, major)| {
            let mut p = domain;
            for e in elems {
                p.push('/');
                p.push_str(&e);
            }
            if let Some(m) = major {
                p.push_str(&format!("/v{m}"));
            }
            p
        })
}

fn number() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => (0u64..20).prop_map(|n| n.to_string()),
        1 => any::<u64>().prop_map(|n| n.to_string()),
    ]
}

fn pre_ident() -> impl Strategy<Value = String> {
    prop_oneof![
        (0u64..12).prop_map(|n| n.to_string()),
        "[A-Za-z-][0-9A-Za-z-]{0,5}",
        "[0-9]{1,3}[A-Za-z-][0-9A-Za-z-]{0,3}",
    ]
}

/// Canonical versions, including pre-releases, `+incompatible` and pseudo-versions.
fn version_text() -> impl Strategy<Value = String> {
    let release = (number(), number(), number()).prop_map(|(a, b, c)| format!("v{a}.{b}.{c}"));
    (
        release,
        proptest::option::of(proptest::collection::vec(pre_ident(), 1..4)),
        any::<bool>(),
    )
        .prop_map(|(release, pre, inc)| {
            let mut v = release;
            if let Some(ids) = pre {
                v.push('-');
                v.push_str(&ids.join("."));
            }
            if inc {
                v.push_str("+incompatible");
            }
            v
        })
}

fn add_entries<W: Write + std::io::Seek>(
    w: &mut zip::ZipWriter<W>,
    entries: &[(String, Vec<u8>, bool)],
) {
    for (name, data, deflate) in entries {
        let method = if *deflate {
            CompressionMethod::Deflated
        } else {
            CompressionMethod::Stored
        };
        let opts = SimpleFileOptions::default().compression_method(method);
        if name.ends_with('/') {
            // The writer refuses to add a name twice; duplicates are simply dropped here.
            let _ = w.add_directory(name.as_str(), opts);
        } else if w.start_file(name.as_str(), opts).is_ok() {
            w.write_all(data).unwrap();
        }
    }
}

/// A zip of `entries`; `streamed` writes data descriptors after the contents, as Go's own
/// zip writer (and so every real module zip) does.
fn to_zip(entries: &[(String, Vec<u8>, bool)], streamed: bool) -> Vec<u8> {
    if streamed {
        let mut out = Vec::new();
        let mut w = zip::ZipWriter::new_stream(&mut out);
        add_entries(&mut w, entries);
        w.finish().unwrap();
        out
    } else {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        add_entries(&mut w, entries);
        w.finish().unwrap().into_inner()
    }
}

/// Small zips whose names are mostly under the right prefix.
fn zip_bytes() -> impl Strategy<Value = Vec<u8>> {
    let name = prop_oneof![
        4 => "[a-zA-Z0-9._/-]{1,12}".prop_map(|s| format!("example.com/m@v1.0.0/{s}")),
        1 => Just("example.com/m@v1.0.0/go.mod".to_owned()),
        1 => Just("example.com/m@v1.0.0/".to_owned()),
        1 => "[ -~]{0,20}",
    ];
    let entries = proptest::collection::vec(
        (
            name,
            proptest::collection::vec(any::<u8>(), 0..64),
            any::<bool>(),
        ),
        0..6,
    );
    (entries, any::<bool>()).prop_map(|(entries, streamed)| to_zip(&entries, streamed))
}

fn check_bytes(bytes: &[u8]) -> Result<modstash::module::ZipSummary, modstash::module::ZipError> {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    let mv = ModuleVersion::new(
        ModulePath::parse("example.com/m").unwrap(),
        Version::parse("v1.0.0").unwrap(),
    )
    .unwrap();
    let limits = ZipLimits {
        max_zip_size: 1 << 20,
        max_go_mod: 1 << 10,
        max_license: 1 << 10,
        max_uncompressed_total: 1 << 20,
    };
    check_zip_file(f.path(), &mv, &limits)
}

/// Precedence by the `semver` crate, for versions whose numbers it can hold.
fn semver_precedence(a: &Version, b: &Version) -> Option<Ordering> {
    let pa = semver::Version::parse(&a.as_str()[1..]).ok()?;
    let pb = semver::Version::parse(&b.as_str()[1..]).ok()?;
    Some(pa.cmp_precedence(&pb))
}

fn without_build(v: &Version) -> &str {
    v.as_str().split('+').next().unwrap()
}

proptest! {
    #[test]
    fn module_path_escape_round_trip(text in module_path_text()) {
        let Ok(path) = ModulePath::parse(&text) else {
            return Ok(());
        };
        let escaped = path.escaped();
        prop_assert!(!escaped.bytes().any(|b| b.is_ascii_uppercase()));
        prop_assert_eq!(ModulePath::from_escaped(&escaped).unwrap(), path.clone());
        prop_assert_eq!(path.as_str(), text.as_str());
        let json = serde_json::to_string(&path).unwrap();
        prop_assert_eq!(serde_json::from_str::<ModulePath>(&json).unwrap(), path);
    }

    #[test]
    fn version_escape_round_trip(text in version_text()) {
        let v = Version::parse(&text).unwrap();
        prop_assert_eq!(v.as_str(), text.as_str());
        let escaped = v.escaped();
        prop_assert!(!escaped.bytes().any(|b| b.is_ascii_uppercase()));
        prop_assert_eq!(Version::from_escaped(&escaped).unwrap(), v.clone());
        prop_assert_eq!(v.to_string().parse::<Version>().unwrap(), v);
    }

    #[test]
    fn version_order_is_total_and_matches_semver(
        a in version_text(),
        b in version_text(),
        c in version_text(),
    ) {
        let (a, b, c) = (
            Version::parse(&a).unwrap(),
            Version::parse(&b).unwrap(),
            Version::parse(&c).unwrap(),
        );
        for (x, y) in [(&a, &b), (&b, &c), (&a, &c)] {
            prop_assert_eq!(x.cmp(y), y.cmp(x).reverse());
            prop_assert_eq!(x.cmp(y) == Ordering::Equal, x == y);
            if let Some(prec) = semver_precedence(x, y) {
                if prec == Ordering::Equal {
                    prop_assert_eq!(without_build(x), without_build(y));
                } else {
                    prop_assert_eq!(x.cmp(y), prec, "{} vs {}", x, y);
                }
            }
        }
        if a <= b && b <= c {
            prop_assert!(a <= c);
        }
        if a >= b && b >= c {
            prop_assert!(a >= c);
        }
        let mut sorted = [a.clone(), b.clone(), c.clone()];
        sorted.sort();
        prop_assert!(sorted.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn accepted_requests_render_back_to_themselves(
        path in module_path_text(),
        version in version_text(),
        kind in 0..5u8,
    ) {
        let Ok(path) = ModulePath::parse(&path) else {
            return Ok(());
        };
        let v = Version::parse(&version).unwrap();
        let tail = match kind {
            0 => "@v/list".to_owned(),
            1 => "@latest".to_owned(),
            2 => format!("@v/{}.info", v.escaped()),
            3 => format!("@v/{}.mod", v.escaped()),
            _ => format!("@v/{}.zip", v.escaped()),
        };
        let raw = format!("/{}/{}", path.escaped(), tail);
        let got = parse_proxy_path(&raw);
        let agrees = ModuleVersion::new(path.clone(), v.clone()).is_ok();
        match (kind, got) {
            (0, Ok(ProxyRequest::List(p))) | (1, Ok(ProxyRequest::Latest(p))) => {
                prop_assert_eq!(p, path);
            }
            (2, Ok(ProxyRequest::Info(p, VersionRef::Canonical(got)))) => {
                prop_assert!(agrees);
                prop_assert_eq!(p, path);
                prop_assert_eq!(got, v);
            }
            (2, Ok(ProxyRequest::Info(p, VersionRef::Query(q)))) => {
                prop_assert!(!agrees);
                prop_assert_eq!(p, path);
                prop_assert_eq!(q.as_str(), v.as_str());
            }
            (3, Ok(ProxyRequest::Mod(mv))) | (4, Ok(ProxyRequest::Zip(mv))) => {
                prop_assert!(agrees);
                prop_assert_eq!(mv.path(), &path);
                prop_assert_eq!(mv.version(), &v);
            }
            (3 | 4, Err(_)) => prop_assert!(!agrees),
            (2, Err(e)) => {
                // Only queries our stricter rules refuse: long pre-releases.
                prop_assert!(!agrees && v.as_str().len() > 256, "{}: {}", raw, e);
            }
            (k, other) => prop_assert!(false, "kind {} {}: {:?}", k, raw, other),
        }
    }

    #[test]
    fn parsers_never_panic_on_any_string(s in any::<String>()) {
        let _ = parse_proxy_path(&s);
        let _ = parse_proxy_path(&format!("/{s}/@v/list"));
        let _ = parse_proxy_path(&format!("/example.com/m/@v/{s}.info"));
        let _ = Version::parse(&s);
        let _ = Version::from_escaped(&s);
        let _ = ModulePath::parse(&s);
        let _ = ModulePath::from_escaped(&s);
        let _ = VersionQuery::from_escaped(&s);
    }

    #[test]
    fn parsers_never_panic_on_hostile_paths(s in hostile_path()) {
        for raw in [s.clone(), format!("/{s}")] {
            if let Err(e) = parse_proxy_path(&raw) {
                let msg = e.to_string();
                prop_assert!(!msg.is_empty() && !msg.contains('\n'), "{:?}", msg);
            }
        }
        let _ = ModulePath::from_escaped(&s);
        let _ = Version::from_escaped(&s);
    }

    #[test]
    fn zip_check_never_panics_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = check_bytes(&bytes);
        // With an end record glued on, the reader gets past the first hurdle.
        let mut with_end = bytes.clone();
        with_end.extend_from_slice(b"PK\x05\x06\0\0\0\0\x01\0\x01\0\x2e\0\0\0\0\0\0\0");
        let _ = check_bytes(&with_end);
    }

    #[test]
    fn zip_check_never_panics_on_mutated_zips(
        bytes in zip_bytes(),
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..8),
    ) {
        let mut bytes = bytes;
        let original = check_bytes(&bytes);
        if let Ok(summary) = &original {
            prop_assert!(summary.h1.starts_with("h1:"));
            // Checking is deterministic.
            prop_assert_eq!(&check_bytes(&bytes).unwrap(), summary);
        }
        if !bytes.is_empty() {
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
        }
        let _ = check_bytes(&bytes);
    }
}

/// Writes a corpus of inputs with this crate's verdicts, for comparison against
/// `golang.org/x/mod` run over the same inputs. Each line of `oracle_input.tsv` is a
/// tab-separated command (`checkpath`, `unescapepath`, `canon`, `compare`, `zip`) and its
/// arguments; the matching line of `ours.txt` is this crate's answer. Run with
/// `MODSTASH_CROSSCHECK_DIR=/some/dir cargo test --test module_props -- --ignored`.
#[test]
#[ignore = "writes a cross-check corpus; needs MODSTASH_CROSSCHECK_DIR"]
fn dump_cross_check_corpus() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    use std::fmt::Write as _;

    let Ok(dir) = std::env::var("MODSTASH_CROSSCHECK_DIR") else {
        return;
    };
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut runner = TestRunner::deterministic();
    fn sample<S: Strategy>(runner: &mut TestRunner, s: S) -> S::Value {
        s.new_tree(runner).unwrap().current()
    }
    let pseudo_like = "v[0-9]{1,2}\\.[0-9]\\.[0-9]{1,2}(-([a-z0-9]{1,3}\\.){0,2}0?\\.?)?[.-]?\
                       [0-9]{13,15}-[a-zA-Z0-9_]{0,4}(\\+incompatible|\\+x)?";
    let strings: Vec<String> = (0..30_000)
        .map(|i| match i % 5 {
            0 => sample(&mut runner, module_path_text()),
            1 => sample(&mut runner, hostile_path()),
            2 => sample(&mut runner, "[ -~]{0,30}"),
            3 => sample(&mut runner, pseudo_like),
            _ => sample(&mut runner, version_text()),
        })
        .filter(|s| !s.contains(['\t', '\n', '\r']))
        .collect();
    let mut input = String::new();
    let mut ours = String::new();
    let verdict = |ok: bool| if ok { "ok" } else { "err" };
    for s in &strings {
        writeln!(input, "checkpath\t{s}").unwrap();
        writeln!(ours, "{}", verdict(ModulePath::parse(s).is_ok())).unwrap();
        writeln!(input, "unescapepath\t{s}").unwrap();
        let got = ModulePath::from_escaped(s).map(|p| p.as_str().to_owned());
        writeln!(ours, "{}", got.unwrap_or_else(|_| "err".to_owned())).unwrap();
        writeln!(input, "canon\t{s}").unwrap();
        let v = Version::parse(s);
        writeln!(
            ours,
            "{} {}",
            verdict(v.is_ok()),
            v.as_ref().is_ok_and(|v| v.is_pseudo())
        )
        .unwrap();
    }
    let versions: Vec<Version> = strings
        .iter()
        .filter_map(|s| Version::parse(s).ok())
        .collect();
    for pair in versions.windows(2) {
        writeln!(input, "compare\t{}\t{}", pair[0], pair[1]).unwrap();
        let c = pair[0].cmp(&pair[1]);
        let c = if without_build(&pair[0]) == without_build(&pair[1]) {
            Ordering::Equal
        } else {
            c
        };
        writeln!(ours, "{}", c as i8).unwrap();
    }
    let zips: usize = std::env::var("MODSTASH_CROSSCHECK_ZIPS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(3000);
    for i in 0..zips {
        let mut bytes = sample(&mut runner, zip_bytes());
        // Damage two of every three: one bit, or a byte anywhere (headers included).
        if !bytes.is_empty() {
            let at = (i * 7919) % bytes.len();
            match i % 3 {
                0 => bytes[at] ^= 0x20,
                1 => bytes[at] = (i % 251) as u8,
                _ => {}
            }
        }
        let file = dir.join(format!("zip_{i}.zip"));
        std::fs::write(&file, &bytes).unwrap();
        writeln!(input, "zip\texample.com/m\tv1.0.0\t{}", file.display()).unwrap();
        match check_bytes(&bytes) {
            Ok(s) => writeln!(ours, "ok {}", s.h1).unwrap(),
            Err(_) => writeln!(ours, "err").unwrap(),
        }
    }
    std::fs::write(dir.join("oracle_input.tsv"), input).unwrap();
    std::fs::write(dir.join("ours.txt"), ours).unwrap();
}

proptest! {
    /// Prefetch target files: whatever the text, parsing returns (no panic); and a go.sum
    /// rendered from valid versions parses back to exactly those versions and hashes.
    #[test]
    fn prefetch_files_parse_without_panics(text in "(\\PC|\n|\t| |@|/|=>|\\(|\\)){0,300}") {
        use modstash::prefetch::targets::{FileKind, parse};
        for kind in [FileKind::GoSum, FileKind::GoMod, FileKind::List] {
            let _ = parse(kind, "f", &text, &mut std::collections::BTreeMap::new());
        }
    }

    #[test]
    fn go_sum_round_trip(
        entries in proptest::collection::vec((module_path_text(), version_text(), "[A-Za-z0-9+/]{43}="), 0..8)
    ) {
        use modstash::prefetch::targets::{FileKind, parse};
        let mut expected = std::collections::BTreeMap::new();
        let mut text = String::new();
        for (path, version, hash) in &entries {
            let (Ok(p), Ok(v)) = (ModulePath::parse(path), Version::parse(version)) else {
                continue;
            };
            if ModuleVersion::new(p, v).is_err() {
                continue;
            }
            text.push_str(&format!("{path} {version} h1:{hash}\n"));
            expected.insert(format!("{path}@{version}"), format!("h1:{hash}"));
        }
        let mut got = std::collections::BTreeMap::new();
        parse(FileKind::GoSum, "go.sum", &text, &mut got).unwrap();
        let got: std::collections::BTreeMap<String, String> = got
            .into_iter()
            .map(|(k, t)| (k, t.zip_hash.unwrap()))
            .collect();
        prop_assert_eq!(got, expected);
    }
}
