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
use super::zipread::Archive;

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
    let mut archive = Archive::open(file, size)?;
    let prefix = format!("{}@{}/", mv.path(), mv.version());
    check_names_and_sizes(archive.entries(), &prefix, limits)?;
    hash_contents(&mut archive, &prefix, limits)
}

/// The `CheckZip` pass over names and declared sizes. Like Go, a size problem is reported
/// in preference to a name problem; otherwise the first bad entry is.
fn check_names_and_sizes(
    entries: &[super::zipread::Entry],
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
    prefix: &str,
    limits: &ZipLimits,
) -> Result<ZipSummary, ZipError> {
    let entries = archive.entries().to_vec();
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
            archive.check_dir(i)?;
        } else {
            let keep = e.name == go_mod_name.as_bytes();
            let mut kept = Vec::new();
            archive.read_file(i, |chunk| {
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
    for e in &entries {
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
    use super::*;

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
