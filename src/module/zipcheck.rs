//! Module zip validation as `golang.org/x/mod/zip.CheckZip` does it, with the `h1:` hash computed while the content is read.

use std::collections::HashMap;
use std::collections::hash_map::Entry as MapEntry;
use std::fs::File;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::dirhash::hash1;
use super::error::quoted;
use super::module_version::ModuleVersion;
use super::path::check_file_path;
use super::zipread::{Archive, Entry};

/// Size limits for [`check_zip_file`]; the defaults are the go command's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipLimits {
    /// Largest zip file accepted (500 MiB).
    pub max_zip_size: u64,
    /// Largest root go.mod accepted (16 MiB).
    pub max_go_mod: u64,
    /// Largest root LICENSE accepted (16 MiB).
    pub max_license: u64,
    /// Largest total of file contents accepted (500 MiB).
    pub max_uncompressed_total: u64,
}

impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_zip_size: 500 << 20,
            max_go_mod: 16 << 20,
            max_license: 16 << 20,
            max_uncompressed_total: 500 << 20,
        }
    }
}

/// What [`check_zip_file`] learned about a valid module zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipSummary {
    /// The go.sum hash of the zip, `h1:` and base64.
    pub h1: String,
    /// The root go.mod, if the zip has one.
    pub go_mod: Option<Vec<u8>>,
    /// Number of file (non-directory) entries.
    pub files: usize,
    /// Total bytes of file content, as actually decompressed.
    pub uncompressed_size: u64,
}

/// Why a module zip was refused.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    /// The file could not be read.
    #[error("reading module zip: {0}")]
    Io(#[from] std::io::Error),
    /// The zip file itself is over [`ZipLimits::max_zip_size`].
    #[error("module zip file is too large ({size} bytes; limit is {limit} bytes)")]
    TooLarge {
        /// The file's size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// The files together are over [`ZipLimits::max_uncompressed_total`].
    #[error("total uncompressed size of module contents too large (max size is {limit} bytes)")]
    ContentTooLarge {
        /// The limit.
        limit: u64,
    },
    /// The archive structure is broken.
    #[error("not a valid zip file: {reason}")]
    Malformed {
        /// What is broken.
        reason: String,
    },
    /// One entry breaks the module zip rules or cannot be read.
    #[error("{}: {reason}", quoted(name))]
    BadEntry {
        /// The entry's full name in the zip.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Checks a module zip on disk as `golang.org/x/mod/zip.CheckZip` does and computes its
/// `h1:` hash (`dirhash.HashZip` with `Hash1`) from the same read.
///
/// Like `CheckZip` (and unlike `zip.Create`), nothing is silently omitted: files in vendor
/// directories are allowed, and any go.mod other than the root one is an error, so a zip
/// carrying a nested module is refused rather than trimmed. Every name must start with
/// `{path}@{version}/`; directory entries are allowed and hashed with empty content.
///
/// Declared sizes are checked before anything is inflated, and actual sizes are enforced
/// while inflating, so a zip bomb costs at most one 32 KiB piece per entry beyond what it
/// declares. The root go.mod is the only content kept in memory.
pub fn check_zip_file(
    path: &Path,
    mv: &ModuleVersion,
    limits: &ZipLimits,
) -> Result<ZipSummary, ZipError> {
    let file = File::open(path)?;
    let size = file.metadata()?.len();
    if size > limits.max_zip_size {
        return Err(ZipError::TooLarge {
            size,
            limit: limits.max_zip_size,
        });
    }
    let (mut archive, entries) = Archive::open(file, size)?;
    let prefix = format!("{}@{}/", mv.path(), mv.version());
    check_names_and_sizes(&entries, &prefix, limits)?;
    hash_contents(&mut archive, &entries, &prefix, limits)
}

/// The `CheckZip` pass over names and declared sizes. Like Go, a size problem is reported
/// in preference to a name problem; otherwise the first bad entry is.
fn check_names_and_sizes(
    entries: &[Entry],
    prefix: &str,
    limits: &ZipLimits,
) -> Result<(), ZipError> {
    let mut collisions = Collisions::default();
    let mut declared_total: u64 = 0;
    let mut size_error = None;
    let mut first_bad = None;
    for e in entries {
        let bad = |reason: String| ZipError::BadEntry {
            name: String::from_utf8_lossy(&e.name).into_owned(),
            reason,
        };
        let Some(rel) = e.name.strip_prefix(prefix.as_bytes()) else {
            first_bad.get_or_insert_with(|| {
                bad(format!("path does not have prefix {}", quoted(prefix)))
            });
            continue;
        };
        let Ok(rel) = std::str::from_utf8(rel) else {
            first_bad.get_or_insert_with(|| bad("malformed file path: invalid UTF-8".into()));
            continue;
        };
        if rel.is_empty() {
            continue;
        }
        let (rel, is_dir) = match rel.strip_suffix('/') {
            Some(dir) => (dir, true),
            None => (rel, false),
        };
        if !is_clean(rel) {
            first_bad.get_or_insert_with(|| bad("file path is not clean".into()));
            continue;
        }
        if let Err(reason) = check_file_path(rel) {
            first_bad.get_or_insert_with(|| {
                bad(format!("malformed file path {}: {reason}", quoted(rel)))
            });
            continue;
        }
        if let Err(reason) = collisions.check(rel, is_dir) {
            first_bad.get_or_insert_with(|| bad(reason));
            continue;
        }
        if is_dir {
            continue;
        }
        let base = rel.rsplit('/').next().unwrap_or(rel);
        // "go.mod" has no letters with non-ASCII case partners, so ASCII folding is exact.
        if base.eq_ignore_ascii_case("go.mod") {
            if base != rel {
                first_bad
                    .get_or_insert_with(|| bad("go.mod file not in module root directory".into()));
                continue;
            }
            if rel != "go.mod" {
                first_bad
                    .get_or_insert_with(|| bad("go.mod files must have lowercase names".into()));
                continue;
            }
        }
        let sz = e.uncompressed_size;
        match limits.max_uncompressed_total.checked_sub(declared_total) {
            Some(room) if sz <= room => declared_total += sz,
            _ => {
                size_error.get_or_insert(ZipError::ContentTooLarge {
                    limit: limits.max_uncompressed_total,
                });
            }
        }
        if rel == "go.mod" && sz > limits.max_go_mod {
            first_bad.get_or_insert_with(|| {
                bad(format!(
                    "go.mod file too large (max size is {} bytes)",
                    limits.max_go_mod
                ))
            });
            continue;
        }
        if rel == "LICENSE" && sz > limits.max_license {
            first_bad.get_or_insert_with(|| {
                bad(format!(
                    "LICENSE file too large (max size is {} bytes)",
                    limits.max_license
                ))
            });
            continue;
        }
    }
    match size_error.or(first_bad) {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Reads every entry once, hashing it for `h1:` and keeping the root go.mod.
fn hash_contents(
    archive: &mut Archive<File>,
    entries: &[Entry],
    prefix: &str,
    limits: &ZipLimits,
) -> Result<ZipSummary, ZipError> {
    // Go's HashZip opens each name through a map, so a repeated name (only possible for
    // directories once the checks passed) is read from its last entry every time.
    let mut last: HashMap<&[u8], usize> = HashMap::with_capacity(entries.len());
    for (i, e) in entries.iter().enumerate() {
        last.insert(&e.name, i);
    }
    let go_mod_name = format!("{prefix}go.mod");
    let mut digests: Vec<Option<[u8; 32]>> = vec![None; entries.len()];
    let mut go_mod = None;
    let mut files = 0usize;
    let mut total: u64 = 0;
    for (i, e) in entries.iter().enumerate() {
        if last.get(e.name.as_slice()) != Some(&i) {
            continue;
        }
        let mut hasher = Sha256::new();
        if e.is_dir() {
            archive.check_dir(e)?;
        } else {
            let keep = e.name == go_mod_name.as_bytes();
            let mut kept = Vec::new();
            archive.read_file(e, |chunk| {
                total = total.saturating_add(chunk.len() as u64);
                if total > limits.max_uncompressed_total {
                    return Err(ZipError::ContentTooLarge {
                        limit: limits.max_uncompressed_total,
                    });
                }
                hasher.update(chunk);
                if keep {
                    kept.extend_from_slice(chunk);
                }
                Ok(())
            })?;
            files += 1;
            if keep {
                go_mod = Some(kept);
            }
        }
        digests[i] = Some(hasher.finalize().into());
    }
    let mut listing = Vec::with_capacity(entries.len());
    for e in entries {
        let digest = last
            .get(e.name.as_slice())
            .and_then(|&j| digests[j])
            .ok_or_else(|| ZipError::Malformed {
                reason: "entry was not read".into(),
            })?;
        let name = String::from_utf8(e.name.clone()).map_err(|_| ZipError::Malformed {
            reason: "file name is not UTF-8".into(),
        })?;
        listing.push((name, digest));
    }
    let h1 = hash1(listing).ok_or_else(|| ZipError::Malformed {
        reason: "file name contains a newline".into(),
    })?;
    Ok(ZipSummary {
        h1,
        go_mod,
        files,
        uncompressed_size: total,
    })
}

/// Whether Go's `path.Clean` would leave `p` unchanged. Its fixed points are: `/`, `.`, or
/// non-empty elements joined by single slashes, without a trailing slash, with no `.`
/// elements, and with `..` only as a leading run in a relative path.
fn is_clean(p: &str) -> bool {
    if p == "/" || p == "." {
        return true;
    }
    if p.is_empty() || p.ends_with('/') {
        return false;
    }
    let (rooted, body) = match p.strip_prefix('/') {
        Some(rest) => (true, rest),
        None => (false, p),
    };
    let mut seen_name = false;
    for elem in body.split('/') {
        match elem {
            "" | "." => return false,
            ".." if rooted || seen_name => return false,
            ".." => {}
            _ => seen_name = true,
        }
    }
    true
}

/// Finds names equal under case folding and names used both as file and directory
/// (`collisionChecker`), including the implied parent directories of every entry.
#[derive(Default)]
struct Collisions {
    seen: HashMap<String, (String, bool)>,
}

impl Collisions {
    fn check(&mut self, path: &str, is_dir: bool) -> Result<(), String> {
        let mut p = path;
        let mut dir = is_dir;
        loop {
            match self.seen.entry(fold(p)) {
                MapEntry::Occupied(o) => {
                    let (other, other_dir) = o.get();
                    if other != p {
                        return Err(format!(
                            "case-insensitive file name collision: {} and {}",
                            quoted(other),
                            quoted(p)
                        ));
                    }
                    if *other_dir != dir {
                        return Err(format!(
                            "entry {} is both a file and a directory",
                            quoted(p)
                        ));
                    }
                    if !dir {
                        return Err(format!("multiple entries for file {}", quoted(p)));
                    }
                }
                MapEntry::Vacant(v) => {
                    v.insert((p.to_owned(), dir));
                }
            }
            match p.rfind('/') {
                Some(i) => {
                    p = &p[..i];
                    dir = true;
                }
                None => return Ok(()),
            }
        }
    }
}

/// A key equal for two strings exactly when Go's `strings.EqualFold` holds between them
/// (`strToFold`), for the letters file names may contain.
fn fold(s: &str) -> String {
    if !s.bytes().any(|b| b >= 0x80 || b.is_ascii_uppercase()) {
        return s.to_owned();
    }
    s.chars().map(fold_char).collect()
}

/// One representative per simple-case-folding orbit: the lower case of the upper case
/// where both are single characters. Checked against Go's `unicode.SimpleFold` over every
/// letter; the four exceptions are where Unicode's simple folding and its case mappings
/// disagree.
fn fold_char(c: char) -> char {
    match c {
        // Dotless i has no simple fold partner; its upper case is plain I.
        'ı' => 'ı',
        '\u{1FD3}' => '\u{0390}',
        '\u{1FE3}' => '\u{03B0}',
        '\u{FB06}' => '\u{FB05}',
        _ => {
            let upper = single(c.to_uppercase()).unwrap_or(c);
            single(upper.to_lowercase())
                .or_else(|| single(c.to_lowercase()))
                .unwrap_or(c)
        }
    }
}

fn single(mut it: impl Iterator<Item = char>) -> Option<char> {
    let c = it.next()?;
    it.next().is_none().then_some(c)
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use zip::CompressionMethod;
    use zip::write::SimpleFileOptions;

    use super::*;
    use crate::module::{ModulePath, Version};

    /// One entry to put in a test zip.
    enum E<'a> {
        /// Deflated file.
        F(&'a str, &'a [u8]),
        /// Stored file.
        S(&'a str, &'a [u8]),
        /// Directory entry.
        D(&'a str),
    }

    fn build(entries: &[E<'_>]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let deflated = SimpleFileOptions::default().compression_method(CompressionMethod::Deflated);
        let stored = SimpleFileOptions::default().compression_method(CompressionMethod::Stored);
        for e in entries {
            match e {
                E::F(name, data) => {
                    w.start_file(*name, deflated).unwrap();
                    w.write_all(data).unwrap();
                }
                E::S(name, data) => {
                    w.start_file(*name, stored).unwrap();
                    w.write_all(data).unwrap();
                }
                E::D(name) => w.add_directory(*name, stored).unwrap(),
            }
        }
        w.finish().unwrap().into_inner()
    }

    /// Replaces every occurrence of `from` by `to` (same length), to forge what a well-behaved
    /// writer refuses to produce.
    fn patch(bytes: &mut [u8], from: &[u8], to: &[u8]) {
        assert_eq!(from.len(), to.len());
        let mut n = 0;
        for i in 0..=bytes.len() - from.len() {
            if &bytes[i..i + from.len()] == from {
                bytes[i..i + from.len()].copy_from_slice(to);
                n += 1;
            }
        }
        assert!(n > 0, "pattern not found");
    }

    /// Offset of the central directory record of the entry called `name`.
    fn central_record(bytes: &[u8], name: &str) -> usize {
        let sig = [b'P', b'K', 1, 2];
        (0..bytes.len() - 46)
            .find(|&i| {
                bytes[i..i + 4] == sig && bytes[i + 46..].starts_with(name.as_bytes()) && {
                    let n = u16::from_le_bytes([bytes[i + 28], bytes[i + 29]]) as usize;
                    n == name.len()
                }
            })
            .expect("central record")
    }

    fn set_u32(bytes: &mut [u8], at: usize, v: u32) {
        bytes[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn mv(path: &str, version: &str) -> ModuleVersion {
        ModuleVersion::new(
            ModulePath::parse(path).unwrap(),
            Version::parse(version).unwrap(),
        )
        .unwrap()
    }

    fn check_with(bytes: &[u8], limits: &ZipLimits) -> Result<ZipSummary, ZipError> {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(bytes).unwrap();
        f.flush().unwrap();
        check_zip_file(f.path(), &mv("example.com/m", "v1.0.0"), limits)
    }

    fn check(bytes: &[u8]) -> Result<ZipSummary, ZipError> {
        check_with(bytes, &ZipLimits::default())
    }

    fn err(bytes: &[u8]) -> String {
        match check(bytes) {
            Ok(s) => panic!("accepted: {s:?}"),
            Err(e) => e.to_string(),
        }
    }

    const P: &str = "example.com/m@v1.0.0/";

    fn n(rel: &str) -> String {
        format!("{P}{rel}")
    }

    #[test]
    fn valid_zip_with_directories() {
        let go_mod = b"module example.com/m\n\ngo 1.21\n";
        let bytes = build(&[
            E::D(P),
            E::F(&n("go.mod"), go_mod),
            E::D(&n("sub/")),
            E::F(&n("sub/b.go"), b"package sub\n"),
            E::S(&n("a.go"), b"package m\n"),
            E::F(&n("LICENSE"), b"Public domain.\n"),
            E::F(&n("vendor/x/y.go"), b"package y\n"),
            E::F(&n("empty.txt"), b""),
        ]);
        let s = check(&bytes).unwrap();
        // Go's dirhash.HashZip over the same zip.
        assert_eq!(s.h1, "h1:tM4xtJRPtkxxUwfp1e2qd1juhAR39Lff/ewHrImb974=");
        assert_eq!(s.go_mod.as_deref(), Some(&go_mod[..]));
        assert_eq!(s.files, 6);
        assert_eq!(s.uncompressed_size, 30 + 12 + 10 + 15 + 10);
    }

    /// A module zip made by Go's `zip.CreateFromDir` (data descriptors, a UTF-8 name flag),
    /// with the `h1:` Go's `dirhash.HashZip` gives it.
    #[test]
    fn zip_made_by_go() {
        use base64::Engine as _;
        let b64 = concat!(
            "UEsDBBQACAAIAAAAAAAAAAAAAAAAAAAAAAAcAAAAZXhhbXBsZS5jb20vbUB2MS4wLjAvTElDRU5TRQAPAPD/UHVi",
            "bGljIGRvbWFpbi4KAwBQSwcIqY8bMRYAAAAPAAAAUEsDBBQACAAIAAAAAAAAAAAAAAAAAAAAAAAZAAAAZXhhbXBs",
            "ZS5jb20vbUB2MS4wLjAvYS5nbwAqANX/cGFja2FnZSBtCgpmdW5jIEEoKSBzdHJpbmcgeyByZXR1cm4gImEiIH0K",
            "AwBQSwcIJZrRrDEAAAAqAAAAUEsDBBQACAAIAAAAAAAAAAAAAAAAAAAAAAAbAAAAZXhhbXBsZS5jb20vbUB2MS4w",
            "LjAvZ28ubW9kAB4A4f9tb2R1bGUgZXhhbXBsZS5jb20vbQoKZ28gMS4yMQoDAFBLBwiSEZQrJQAAAB4AAABQSwME",
            "FAAIAAgAAAAAAAAAAAAAAAAAAAAAAB0AAABleGFtcGxlLmNvbS9tQHYxLjAuMC9zdWIvYi5nbwAMAPP/cGFja2Fn",
            "ZSBzdWIKAwBQSwcIOIglfRMAAAAMAAAAUEsDBBQACAgIAAAAAAAAAAAAAAAAAAAAAAAiAAAAZXhhbXBsZS5jb20v",
            "bUB2MS4wLjAvc3ViL8OJdMOpLnR4dAANAPL/dW5pY29kZSBuYW1lCgMAUEsHCEjQFGwUAAAADQAAAFBLAQIUABQA",
            "CAAIAAAAAACpjxsxFgAAAA8AAAAcAAAAAAAAAAAAAAAAAAAAAABleGFtcGxlLmNvbS9tQHYxLjAuMC9MSUNFTlNF",
            "UEsBAhQAFAAIAAgAAAAAACWa0awxAAAAKgAAABkAAAAAAAAAAAAAAAAAYAAAAGV4YW1wbGUuY29tL21AdjEuMC4w",
            "L2EuZ29QSwECFAAUAAgACAAAAAAAkhGUKyUAAAAeAAAAGwAAAAAAAAAAAAAAAADYAAAAZXhhbXBsZS5jb20vbUB2",
            "MS4wLjAvZ28ubW9kUEsBAhQAFAAIAAgAAAAAADiIJX0TAAAADAAAAB0AAAAAAAAAAAAAAAAARgEAAGV4YW1wbGUu",
            "Y29tL21AdjEuMC4wL3N1Yi9iLmdvUEsBAhQAFAAICAgAAAAAAEjQFGwUAAAADQAAACIAAAAAAAAAAAAAAAAApAEA",
            "AGV4YW1wbGUuY29tL21AdjEuMC4wL3N1Yi/DiXTDqS50eHRQSwUGAAAAAAUABQB1AQAACAIAAAAA",
        );
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .unwrap();
        let s = check(&bytes).unwrap();
        assert_eq!(s.h1, "h1:qfqc0FteXe+h5sd9d6TQnfv9/MSlMg0fJGX3uIcHb0Q=");
        assert_eq!(s.files, 5);
        assert_eq!(
            s.go_mod.as_deref(),
            Some(&b"module example.com/m\n\ngo 1.21\n"[..])
        );
        assert_eq!(s.uncompressed_size, 15 + 42 + 30 + 12 + 13);
    }

    #[test]
    fn empty_zip_and_zip_without_go_mod() {
        let s = check(&build(&[])).unwrap();
        assert_eq!(s.h1, "h1:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
        assert_eq!(s.files, 0);
        let s = check(&build(&[E::F(&n("a.go"), b"package m\n")])).unwrap();
        assert_eq!(s.go_mod, None);
        assert_eq!(s.files, 1);
    }

    #[test]
    fn name_rules() {
        let cases: &[(&str, &str)] = &[
            ("example.com/m@v1.0.1/a.go", "path does not have prefix"),
            ("example.com/m@v1.0.0a.go", "path does not have prefix"),
            ("other.com/m@v1.0.0/a.go", "path does not have prefix"),
            ("/etc/passwd", "path does not have prefix"),
            // path.Clean keeps a leading "..", so CheckFilePath is what refuses it.
            (
                "example.com/m@v1.0.0/../x.go",
                "invalid path element \"..\"",
            ),
            (
                "example.com/m@v1.0.0/a/../../x.go",
                "file path is not clean",
            ),
            ("example.com/m@v1.0.0/./x.go", "file path is not clean"),
            ("example.com/m@v1.0.0//abs.go", "empty path element"),
            ("example.com/m@v1.0.0/a\\b.go", "invalid char '\\\\'"),
            (
                "example.com/m@v1.0.0/con.go",
                "disallowed as path element component on Windows",
            ),
            ("example.com/m@v1.0.0/a:b.go", "invalid char ':'"),
            ("example.com/m@v1.0.0/x*.go", "invalid char '*'"),
            (
                "example.com/m@v1.0.0/trailing.",
                "trailing dot in path element",
            ),
            (
                "example.com/m@v1.0.0/sub/go.mod",
                "go.mod file not in module root directory",
            ),
            (
                "example.com/m@v1.0.0/GO.MOD",
                "go.mod files must have lowercase names",
            ),
            (
                "example.com/m@v1.0.0/sub/Go.Mod",
                "go.mod file not in module root directory",
            ),
        ];
        for (name, want) in cases {
            let bytes = build(&[E::F(&n("ok.go"), b"package m\n"), E::F(name, b"x")]);
            let got = err(&bytes);
            assert!(got.contains(want), "{name:?}: got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn case_collisions_and_duplicates() {
        let got = err(&build(&[E::F(&n("a.go"), b"1"), E::F(&n("A.go"), b"2")]));
        assert!(
            got.contains("case-insensitive file name collision"),
            "{got}"
        );
        let got = err(&build(&[
            E::F(&n("dir/a.go"), b"1"),
            E::F(&n("Dir/b.go"), b"2"),
        ]));
        assert!(
            got.contains("case-insensitive file name collision"),
            "{got}"
        );
        let got = err(&build(&[E::F(&n("x"), b"1"), E::F(&n("x/y.go"), b"2")]));
        assert!(got.contains("is both a file and a directory"), "{got}");
        // A writer will not make duplicates; forge one by renaming b.go to a.go.
        let mut bytes = build(&[E::F(&n("a.go"), b"1"), E::F(&n("b.go"), b"2")]);
        patch(&mut bytes, b"/b.go", b"/a.go");
        let got = err(&bytes);
        assert!(got.contains("multiple entries for file"), "{got}");
    }

    #[test]
    fn repeated_directory_entries_are_allowed_and_hashed_twice() {
        let mut bytes = build(&[E::D(&n("a/")), E::D(&n("b/")), E::F(&n("a/x.go"), b"x")]);
        patch(&mut bytes, b"/b/", b"/a/");
        let s = check(&bytes).unwrap();
        // Go's dirhash.HashZip lists the repeated name twice.
        assert_eq!(s.h1, "h1:4RcV1ML3U1m47SyLt3M7kPI1YAkrb/a9daO0li/a2Cw=");
    }

    #[test]
    fn size_limits() {
        let limits = ZipLimits {
            max_zip_size: 10_000,
            max_go_mod: 10,
            max_license: 20,
            max_uncompressed_total: 100,
        };
        let got = check_with(
            &build(&[E::F(&n("go.mod"), b"module example.com/m\n")]),
            &limits,
        );
        assert!(
            got.unwrap_err()
                .to_string()
                .contains("go.mod file too large (max size is 10 bytes)")
        );
        let got = check_with(&build(&[E::F(&n("LICENSE"), &[b'x'; 21])]), &limits);
        assert!(
            got.unwrap_err()
                .to_string()
                .contains("LICENSE file too large")
        );
        let got = check_with(&build(&[E::F(&n("LICENSE"), &[b'x'; 20])]), &limits);
        assert!(got.is_ok());
        let got = check_with(
            &build(&[E::F(&n("a"), &[b'x'; 60]), E::F(&n("b"), &[b'x'; 41])]),
            &limits,
        );
        assert!(
            matches!(got, Err(ZipError::ContentTooLarge { limit: 100 })),
            "{got:?}"
        );
        let got = check_with(
            &build(&[E::F(&n("a"), &[b'x'; 60]), E::F(&n("b"), &[b'x'; 40])]),
            &limits,
        );
        assert_eq!(got.unwrap().uncompressed_size, 100);
        // The size problem wins over a name problem, as in Go.
        let got = check_with(
            &build(&[E::F(&n("c:"), b""), E::F(&n("a"), &[b'x'; 101])]),
            &limits,
        );
        assert!(
            matches!(got, Err(ZipError::ContentTooLarge { .. })),
            "{got:?}"
        );
        let big = build(&[E::S(&n("a"), &[b'x'; 20_000])]);
        let got = check_with(&big, &limits);
        assert!(
            matches!(got, Err(ZipError::TooLarge { limit: 10_000, .. })),
            "{got:?}"
        );
    }

    #[test]
    fn zip_bomb_is_stopped_while_inflating() {
        // 8 MiB of zeros deflate to about 8 KiB; then claim it is 10 bytes.
        let zeros = vec![0u8; 8 << 20];
        let mut bytes = build(&[E::F(&n("go.mod"), &zeros)]);
        let rec = central_record(&bytes, &n("go.mod"));
        set_u32(&mut bytes, rec + 24, 10);
        let got = err(&bytes);
        assert!(got.contains("content larger than declared size"), "{got}");
        // And a lie in the other direction.
        let mut bytes = build(&[E::F(&n("a.go"), b"package m\n")]);
        let rec = central_record(&bytes, &n("a.go"));
        set_u32(&mut bytes, rec + 24, 11);
        let got = err(&bytes);
        assert!(got.contains("content shorter than declared size"), "{got}");
    }

    #[test]
    fn corrupt_content() {
        let mut bytes = build(&[E::F(&n("a.go"), b"package m\n")]);
        let rec = central_record(&bytes, &n("a.go"));
        set_u32(&mut bytes, rec + 16, 0xdead_beef);
        assert!(err(&bytes).contains("checksum error"));
        // A directory entry that carries data cannot be opened by Go.
        let mut bytes = build(&[E::F(&n("abcd"), b"data")]);
        patch(&mut bytes, b"/abcd", b"/abc/");
        assert!(err(&bytes).contains("directory entry has content"));
        // Unsupported compression method.
        let mut bytes = build(&[E::S(&n("a.go"), b"package m\n")]);
        let rec = central_record(&bytes, &n("a.go"));
        bytes[rec + 10] = 12;
        assert!(err(&bytes).contains("unsupported compression method 12"));
        // Local header that is not one.
        let mut bytes = build(&[E::S(&n("a.go"), b"package m\n")]);
        bytes[0] = b'X';
        assert!(err(&bytes).contains("bad local header signature"));
    }

    #[test]
    fn not_a_zip() {
        for bytes in [&b""[..], b"PK", b"hello world", &[0u8; 5000]] {
            assert!(
                matches!(check(bytes), Err(ZipError::Malformed { .. })),
                "{bytes:?}"
            );
        }
        // Truncated archive.
        let bytes = build(&[E::F(&n("a.go"), b"package m\n")]);
        assert!(check(&bytes[..bytes.len() - 30]).is_err());
    }

    #[test]
    fn prepended_data_is_tolerated_like_go() {
        let mut bytes = b"#!/bin/sh\nexit 0\n".to_vec();
        bytes.extend(build(&[E::F(&n("a.go"), b"package m\n")]));
        let s = check(&bytes).unwrap();
        assert_eq!(s.files, 1);
    }

    #[test]
    fn module_version_in_prefix_is_unescaped() {
        let bytes = build(&[E::F("github.com/Azure/x@v1.0.0-RC1/a.go", b"package x\n")]);
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&bytes).unwrap();
        let got = check_zip_file(
            f.path(),
            &mv("github.com/Azure/x", "v1.0.0-RC1"),
            &ZipLimits::default(),
        );
        assert_eq!(got.unwrap().files, 1);
    }

    #[test]
    fn clean_paths() {
        for p in [
            "a", "a/b", "/", ".", "..", "../a", "../../a", "/a", "a.b/c..d", ".a",
        ] {
            assert!(is_clean(p), "{p:?}");
        }
        for p in [
            "", "a/", "a//b", "./a", "a/.", "a/..", "a/../b", "/..", "/../a", "//a", "a/./b",
        ] {
            assert!(!is_clean(p), "{p:?}");
        }
    }

    #[test]
    fn folding() {
        assert_eq!(fold("a.go"), fold("A.GO"));
        assert_eq!(fold("k"), fold("\u{212A}"));
        assert_eq!(fold("s"), fold("ſ"));
        assert_eq!(fold("ß"), fold("ẞ"));
        assert_eq!(fold("σ"), fold("ς"));
        assert_eq!(fold("Σ"), fold("ς"));
        assert_ne!(fold("ı"), fold("i"));
        assert_ne!(fold("İ"), fold("i"));
        assert_eq!(fold("\u{1FD3}"), fold("\u{0390}"));
    }

    #[test]
    fn collisions() {
        let mut c = Collisions::default();
        assert!(c.check("a/b.go", false).is_ok());
        assert!(c.check("a/c.go", false).is_ok());
        assert!(c.check("a", true).is_ok());
        assert_eq!(
            c.check("A/d.go", false),
            Err("case-insensitive file name collision: \"a\" and \"A\"".into())
        );
        assert_eq!(
            c.check("a/b.go", false),
            Err("multiple entries for file \"a/b.go\"".into())
        );
        assert_eq!(
            c.check("a/b.go/x", false),
            Err("entry \"a/b.go\" is both a file and a directory".into())
        );
        assert_eq!(
            c.check("a", false),
            Err("entry \"a\" is both a file and a directory".into())
        );
    }
}
