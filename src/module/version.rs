//! Canonical Go module versions: Go's semver dialect, its precedence, and pseudo-version detection.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::ModuleError;
use super::escape::{escape, unescape};

/// A canonical Go module version: `v1.2.3`, `v1.2.3-pre.1`, `v2.0.0+incompatible`, or a
/// pseudo-version such as `v0.0.0-20191109021931-daa7c04131f5`.
///
/// Canonical means `module.CanonicalVersion(v) == v`: all three numbers present, no build
/// metadata except the `+incompatible` marker. Ordering is Go's `semver.Compare`, with ties
/// (which only differ in `+incompatible`) broken by the string so that `Ord` agrees with `Eq`.
#[derive(Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Version {
    text: String,
    /// Byte offsets into `text` where the minor number, patch number, pre-release (at its
    /// `-`) and build suffix (at its `+`, or the end) start.
    minor_at: usize,
    patch_at: usize,
    pre_at: usize,
    build_at: usize,
}

/// The pieces of a Go semantic version string (`semver.parse`), borrowed from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Parsed<'a> {
    major: &'a str,
    minor: &'a str,
    patch: &'a str,
    /// Set when minor or patch were missing (`v1`, `v1.2`), which is valid but not canonical.
    short: bool,
    /// With its leading `-`, or empty.
    prerelease: &'a str,
    /// With its leading `+`, or empty.
    build: &'a str,
}

/// Go's `semver.parse`: `v` MAJOR [`.` MINOR [`.` PATCH [`-` PRE] [`+` BUILD]]].
fn parse_semver(v: &str) -> Option<Parsed<'_>> {
    let rest = v.strip_prefix('v')?;
    let (major, rest) = parse_number(rest)?;
    let mut p = Parsed {
        major,
        minor: "0",
        patch: "0",
        short: false,
        prerelease: "",
        build: "",
    };
    if rest.is_empty() {
        p.short = true;
        return Some(p);
    }
    let (minor, rest) = parse_number(rest.strip_prefix('.')?)?;
    p.minor = minor;
    if rest.is_empty() {
        p.short = true;
        return Some(p);
    }
    let (patch, mut rest) = parse_number(rest.strip_prefix('.')?)?;
    p.patch = patch;
    if rest.starts_with('-') {
        let end = rest.find('+').unwrap_or(rest.len());
        let pre = &rest[..end];
        if !pre[1..]
            .split('.')
            .all(|id| valid_ident(id) && !bad_number(id))
        {
            return None;
        }
        p.prerelease = pre;
        rest = &rest[end..];
    }
    if rest.starts_with('+') {
        if !rest[1..].split('.').all(valid_ident) {
            return None;
        }
        p.build = rest;
        rest = "";
    }
    rest.is_empty().then_some(p)
}

/// A decimal number without leading zeros, and what follows it.
fn parse_number(s: &str) -> Option<(&str, &str)> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    let num = &s[..end];
    if num.is_empty() || (num.len() > 1 && num.starts_with('0')) {
        return None;
    }
    Some((num, &s[end..]))
}

/// A non-empty dot-separated identifier of `[0-9A-Za-z-]`.
fn valid_ident(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Numeric pre-release identifiers must not have leading zeros.
fn bad_number(id: &str) -> bool {
    id.len() > 1 && id.starts_with('0') && id.bytes().all(|b| b.is_ascii_digit())
}

/// Compares two decimal strings without leading zeros, of any length.
fn compare_number(x: &str, y: &str) -> Ordering {
    x.len().cmp(&y.len()).then_with(|| x.cmp(y))
}

/// Pre-release precedence (`semver.comparePrerelease`): no pre-release sorts last;
/// identifiers compare numerically when both are numbers, numbers sort before words, words
/// compare as bytes, and a shorter list sorts first when it is a prefix of the other.
fn compare_prerelease(x: &str, y: &str) -> Ordering {
    if x == y {
        return Ordering::Equal;
    }
    if x.is_empty() {
        return Ordering::Greater;
    }
    if y.is_empty() {
        return Ordering::Less;
    }
    let mut xs = x[1..].split('.');
    let mut ys = y[1..].split('.');
    loop {
        match (xs.next(), ys.next()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(a), Some(b)) if a == b => {}
            (Some(a), Some(b)) => {
                let a_num = a.bytes().all(|c| c.is_ascii_digit());
                let b_num = b.bytes().all(|c| c.is_ascii_digit());
                return match (a_num, b_num) {
                    (true, true) => compare_number(a, b),
                    (true, false) => Ordering::Less,
                    (false, true) => Ordering::Greater,
                    (false, false) => a.cmp(b),
                };
            }
        }
    }
}

/// `semver.Compare` for two parsed versions (build metadata ignored).
fn compare_parsed(a: &Parsed<'_>, b: &Parsed<'_>) -> Ordering {
    compare_number(a.major, b.major)
        .then_with(|| compare_number(a.minor, b.minor))
        .then_with(|| compare_number(a.patch, b.patch))
        .then_with(|| compare_prerelease(a.prerelease, b.prerelease))
}

/// `module.CanonicalVersion`: `semver.Canonical` but keeping a `+incompatible` build suffix.
fn canonical_of(p: &Parsed<'_>) -> String {
    let build = if p.build == "+incompatible" {
        p.build
    } else {
        ""
    };
    format!(
        "v{}.{}.{}{}{}",
        p.major, p.minor, p.patch, p.prerelease, build
    )
}

impl Version {
    /// Accepts exactly the canonical versions (see the type docs); refuses `v1`, `v1.2`,
    /// `v1.2.3+meta`, `1.2.3`, `latest` and everything else.
    pub fn parse(s: &str) -> Result<Version, ModuleError> {
        let malformed = |reason: String| ModuleError::MalformedVersion {
            version: s.to_owned(),
            reason,
        };
        let p = parse_semver(s).ok_or_else(|| malformed("not a semantic version".into()))?;
        let canonical = canonical_of(&p);
        if canonical != s {
            return Err(malformed(format!(
                "not canonical (should be {canonical:?})"
            )));
        }
        let minor_at = 1 + p.major.len() + 1;
        let patch_at = minor_at + p.minor.len() + 1;
        let pre_at = patch_at + p.patch.len();
        let build_at = pre_at + p.prerelease.len();
        Ok(Version {
            text: s.to_owned(),
            minor_at,
            patch_at,
            pre_at,
            build_at,
        })
    }

    /// Decodes the escaped form used in proxy URLs (`module.UnescapeVersion`, so
    /// `v1.0.0-!r!c1` is `v1.0.0-RC1`), then parses it as [`Version::parse`] does.
    pub fn from_escaped(s: &str) -> Result<Version, ModuleError> {
        let plain = unescape(s).map_err(|reason| ModuleError::BadVersionEscape {
            escaped: s.to_owned(),
            reason,
        })?;
        Version::parse(&plain)
    }

    /// The version string.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The escaped form used in proxy URLs and storage keys (`module.EscapeVersion`).
    pub fn escaped(&self) -> String {
        escape(&self.text)
    }

    /// Whether the version has a pre-release part (pseudo-versions do).
    pub fn is_prerelease(&self) -> bool {
        self.pre_at != self.build_at
    }

    /// Whether this is a pseudo-version naming a commit (`module.IsPseudoVersion`).
    pub fn is_pseudo(&self) -> bool {
        is_pseudo_version(&self.text)
    }

    /// Whether the version carries the `+incompatible` marker.
    pub fn is_incompatible(&self) -> bool {
        self.build_at != self.text.len()
    }

    /// The major version as in `semver.Major`, like `v2`.
    pub(crate) fn major(&self) -> &str {
        &self.text[..self.minor_at - 1]
    }

    fn parts(&self) -> Parsed<'_> {
        let t = &self.text;
        Parsed {
            major: &t[1..self.minor_at - 1],
            minor: &t[self.minor_at..self.patch_at - 1],
            patch: &t[self.patch_at..self.pre_at],
            short: false,
            prerelease: &t[self.pre_at..self.build_at],
            build: &t[self.build_at..],
        }
    }
}

/// `module.IsPseudoVersion`: the text matches
/// `^v[0-9]+\.(0\.0-|\d+\.\d+-([^+]*\.)?0\.)\d{14}-[A-Za-z0-9]+(\+[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*)?$`
/// and is a valid semantic version. Matched by hand: the shape is fixed enough that a regex
/// engine buys nothing.
pub(crate) fn is_pseudo_version(v: &str) -> bool {
    if v.bytes().filter(|&b| b == b'-').count() < 2 || parse_semver(v).is_none() {
        return false;
    }
    // Build metadata is already known to be well formed by the semver parse.
    let main = v.split('+').next().unwrap_or_default();
    let Some((head, rev)) = main.rsplit_once('-') else {
        return false;
    };
    if rev.is_empty() || !rev.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let Some(stamp_at) = head.len().checked_sub(14) else {
        return false;
    };
    if !head.is_char_boundary(stamp_at) || !head[stamp_at..].bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let base = &head[..stamp_at];
    let Some(rest) = base.strip_prefix('v') else {
        return false;
    };
    let Some((_, rest)) = leading_digits(rest) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix('.') else {
        return false;
    };
    // Form vX.0.0-yyyymmddhhmmss-rev: no base version.
    if rest == "0.0-" {
        return true;
    }
    // Forms vX.Y.(Z+1)-0.yyyymmddhhmmss-rev and vX.Y.Z-pre.0.yyyymmddhhmmss-rev.
    let Some((_, rest)) = leading_digits(rest) else {
        return false;
    };
    let Some(rest) = rest.strip_prefix('.') else {
        return false;
    };
    let Some((_, rest)) = leading_digits(rest) else {
        return false;
    };
    let Some(pre) = rest.strip_prefix('-') else {
        return false;
    };
    pre == "0." || pre.ends_with(".0.")
}

/// Splits a non-empty run of ASCII digits off the front.
fn leading_digits(s: &str) -> Option<(&str, &str)> {
    let end = s
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    (end > 0).then(|| s.split_at(end))
}

impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Version {}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state);
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        compare_parsed(&self.parts(), &other.parts()).then_with(|| self.text.cmp(&other.text))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Version").field(&self.text).finish()
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl FromStr for Version {
    type Err = ModuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse(s)
    }
}

impl TryFrom<String> for Version {
    type Error = ModuleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Version::parse(&s)
    }
}

impl From<Version> for String {
    fn from(v: Version) -> String {
        v.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn canonical_accept_reject() {
        let good = [
            "v0.0.0",
            "v1.2.3",
            "v1.0.0-alpha",
            "v1.0.0-alpha.1",
            "v1.0.0-0.3.7",
            "v1.0.0-x.7.z.92",
            "v1.0.0--",
            "v1.0.0-RC1",
            "v2.0.0+incompatible",
            "v2.0.0-pre+incompatible",
            "v0.0.0-20191109021931-daa7c04131f5",
            "v1.2.4-0.20191109021931-daa7c04131f5",
            "v123456789012345678901234567890.0.0",
        ];
        for s in good {
            let got = Version::parse(s);
            assert!(got.is_ok(), "{s:?}: {got:?}");
            assert_eq!(got.unwrap().as_str(), s);
        }
        let bad = [
            "",
            "v",
            "v1",
            "v1.2",
            "v1.2.3+meta",
            "v1.2.3+incompatible.1",
            "1.2.3",
            "latest",
            "master",
            "V1.2.3",
            "v01.2.3",
            "v1.02.3",
            "v1.2.03",
            "v1.2.3-01",
            "v1.2.3-",
            "v1.2.3-a..b",
            "v1.2.3-a+",
            "v1.2.3.4",
            "v1.2.3 ",
            " v1.2.3",
            "v1.2.3-é",
            "v1.2.3-a_b",
            "v-1.2.3",
            "v1.2.3++incompatible",
        ];
        for s in bad {
            assert!(Version::parse(s).is_err(), "{s:?} should be refused");
        }
        assert_eq!(
            Version::parse("v1.2").unwrap_err().to_string(),
            "malformed version \"v1.2\": not canonical (should be \"v1.2.0\")"
        );
        assert_eq!(
            Version::parse("latest").unwrap_err().to_string(),
            "malformed version \"latest\": not a semantic version"
        );
    }

    #[test]
    fn flags() {
        assert!(v("v1.0.0-rc.1").is_prerelease());
        assert!(!v("v1.0.0").is_prerelease());
        assert!(!v("v2.0.0+incompatible").is_prerelease());
        assert!(v("v2.0.0+incompatible").is_incompatible());
        assert!(v("v2.0.0-rc.1+incompatible").is_incompatible());
        assert!(!v("v2.0.0-rc.1").is_incompatible());
        assert_eq!(v("v12.3.4-x").major(), "v12");
    }

    /// Pseudo-version cases, from x/mod's pseudo tests and the regex's corners.
    #[test]
    fn pseudo_versions() {
        let yes = [
            "v0.0.0-20060102150405-hash",
            "v0.0.0-20191109021931-daa7c04131f5",
            "v1.2.4-0.20191109021931-daa7c04131f5",
            "v1.2.3-pre.0.20060102150405-hash",
            "v1.2.3-pre.0.20060102150405-hash+incompatible",
            "v2.0.0-20060102150405-hash+incompatible",
            "v1.3.0-alpha.0.20060102150405-hash",
            "v2.0.1-0.20060102150405-hash+incompatible",
            "v1.0.0-a-b.c.0.20060102150405-hash",
        ];
        for s in yes {
            assert!(is_pseudo_version(s), "{s:?}");
        }
        let no = [
            "v1.0.0",
            "v1.0.0-rc1",
            "v0.0.0-2006010215040-hash",
            "v0.0.0-200601021504055-hash",
            "v1.2.3-20060102150405-hash",
            "v1.2.3-pre.20060102150405-hash",
            "v1.2.3-1.20060102150405-hash",
            "v0.0.0-20060102150405-",
            "v0.0.0-20060102150405-ha_sh",
            "v0.0.0-20060102150405-hash+",
            "v0.0-20060102150405-hash",
            "0.0.0-20060102150405-hash",
            "v1.2.3-x0.20060102150405-hash",
        ];
        for s in no {
            assert!(!is_pseudo_version(s), "{s:?}");
        }
        assert!(v("v0.0.0-20191109021931-daa7c04131f5").is_pseudo());
        assert!(!v("v1.0.0-rc.1").is_pseudo());
    }

    /// golang.org/x/mod's semver table as data: each input and its `semver.Canonical` form
    /// ("" when invalid), listed in increasing precedence; equal canonical forms compare equal.
    const SEMVER_TABLE: &[(&str, &str)] = &[
        ("bad", ""),
        ("v1-alpha.beta.gamma", ""),
        ("v1-pre", ""),
        ("v1+meta", ""),
        ("v1-pre+meta", ""),
        ("v1.2-pre", ""),
        ("v1.2+meta", ""),
        ("v1.2-pre+meta", ""),
        ("v1.0.0-alpha", "v1.0.0-alpha"),
        ("v1.0.0-alpha.1", "v1.0.0-alpha.1"),
        ("v1.0.0-alpha.beta", "v1.0.0-alpha.beta"),
        ("v1.0.0-beta", "v1.0.0-beta"),
        ("v1.0.0-beta.2", "v1.0.0-beta.2"),
        ("v1.0.0-beta.11", "v1.0.0-beta.11"),
        ("v1.0.0-rc.1", "v1.0.0-rc.1"),
        ("v1", "v1.0.0"),
        ("v1.0", "v1.0.0"),
        ("v1.0.0", "v1.0.0"),
        ("v1.2", "v1.2.0"),
        ("v1.2.0", "v1.2.0"),
        ("v1.2.3-456", "v1.2.3-456"),
        ("v1.2.3-456.789", "v1.2.3-456.789"),
        ("v1.2.3-456-789", "v1.2.3-456-789"),
        ("v1.2.3-456a", "v1.2.3-456a"),
        ("v1.2.3-pre", "v1.2.3-pre"),
        ("v1.2.3-pre+meta", "v1.2.3-pre"),
        ("v1.2.3-pre.1", "v1.2.3-pre.1"),
        ("v1.2.3-zzz", "v1.2.3-zzz"),
        ("v1.2.3", "v1.2.3"),
        ("v1.2.3+meta", "v1.2.3"),
        ("v1.2.3+meta-pre", "v1.2.3"),
        ("v1.2.3+meta-pre.sha.256a", "v1.2.3"),
    ];

    /// `semver.Compare` on arbitrary strings: invalid ones sort first and equal each other.
    fn go_compare(a: &str, b: &str) -> Ordering {
        match (parse_semver(a), parse_semver(b)) {
            (None, None) => Ordering::Equal,
            (None, Some(_)) => Ordering::Less,
            (Some(_), None) => Ordering::Greater,
            (Some(x), Some(y)) => compare_parsed(&x, &y),
        }
    }

    #[test]
    fn go_semver_table() {
        for &(input, canonical) in SEMVER_TABLE {
            let parsed = parse_semver(input);
            assert_eq!(
                parsed.is_some(),
                !canonical.is_empty(),
                "IsValid({input:?})"
            );
            if let Some(p) = parsed {
                let mut want = canonical.to_owned();
                if p.build == "+incompatible" {
                    want.push_str(p.build);
                }
                assert_eq!(canonical_of(&p), want, "Canonical({input:?})");
                assert_eq!(
                    Version::parse(input).is_ok(),
                    input == canonical,
                    "{input:?}"
                );
            }
        }
        for (i, &(a, ca)) in SEMVER_TABLE.iter().enumerate() {
            for (j, &(b, cb)) in SEMVER_TABLE.iter().enumerate() {
                let want = if ca == cb { Ordering::Equal } else { i.cmp(&j) };
                assert_eq!(go_compare(a, b), want, "Compare({a:?}, {b:?})");
            }
        }
        assert_eq!(go_compare("v1.19", "v1.2"), Ordering::Greater);
        assert_eq!(go_compare("v2", "v1"), Ordering::Greater);
    }

    #[test]
    fn canonical_versions_in_order() {
        let ordered = [
            "v0.0.0-20191109021931-daa7c04131f5",
            "v0.0.0",
            "v0.1.0",
            "v0.1.1",
            "v1.0.0-alpha",
            "v1.0.0-alpha.1",
            "v1.0.0-alpha.beta",
            "v1.0.0-beta",
            "v1.0.0-beta.2",
            "v1.0.0-beta.11",
            "v1.0.0-rc.1",
            "v1.0.0",
            "v1.2.0-pre",
            "v1.2.0",
            "v1.2.3-pre",
            "v1.2.3",
            "v1.2.4-0.20191109021931-daa7c04131f5",
            "v1.2.4",
            "v2.0.0-alpha",
            "v2.0.0",
            "v2.0.0+incompatible",
            "v10.0.0",
            "v99999999999999999999999.0.0",
        ];
        for (i, a) in ordered.iter().enumerate() {
            for (j, b) in ordered.iter().enumerate() {
                assert_eq!(v(a).cmp(&v(b)), i.cmp(&j), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn incompatible_ties_break_by_text() {
        let plain = v("v2.0.0");
        let inc = v("v2.0.0+incompatible");
        assert_ne!(plain, inc);
        assert_eq!(
            compare_parsed(&plain.parts(), &inc.parts()),
            Ordering::Equal
        );
        assert_eq!(plain.cmp(&inc), Ordering::Less);
    }

    #[test]
    fn escaped_versions() {
        let ver = Version::from_escaped("v1.0.0-!r!c1").unwrap();
        assert_eq!(ver.as_str(), "v1.0.0-RC1");
        assert_eq!(ver.escaped(), "v1.0.0-!r!c1");
        assert!(Version::from_escaped("v1.0.0-RC1").is_err());
        assert!(Version::from_escaped("v1.0.0-!").is_err());
        assert!(Version::from_escaped("v1.0.0-!!r").is_err());
    }

    #[test]
    fn serde_round_trip() {
        let ver = v("v2.0.0+incompatible");
        let json = serde_json::to_string(&ver).unwrap();
        assert_eq!(json, "\"v2.0.0+incompatible\"");
        assert_eq!(serde_json::from_str::<Version>(&json).unwrap(), ver);
        assert!(serde_json::from_str::<Version>("\"v1.2\"").is_err());
    }
}
