//! Module paths and in-module file paths, validated exactly as `golang.org/x/mod/module` does.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use super::error::{ModuleError, quoted, quoted_char};
use super::escape::{escape, unescape};
use super::letters::is_letter;

/// A valid Go module path in its plain (unescaped) form, such as `github.com/Azure/azure-sdk`.
///
/// Only [`ModulePath::parse`] and [`ModulePath::from_escaped`] make one, and both apply
/// `module.CheckPath`, so every value is a path the go command itself would accept.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModulePath(String);

impl ModulePath {
    /// Checks `s` as `module.CheckPath` does and wraps it.
    pub fn parse(s: &str) -> Result<ModulePath, ModuleError> {
        check_module_path(s).map_err(|reason| ModuleError::MalformedPath {
            path: s.to_owned(),
            reason,
        })?;
        Ok(ModulePath(s.to_owned()))
    }

    /// Decodes the escaped form used in proxy URLs (`github.com/!azure/x` is
    /// `github.com/Azure/x`), then checks it as [`ModulePath::parse`] does.
    pub fn from_escaped(s: &str) -> Result<ModulePath, ModuleError> {
        let plain = unescape(s).map_err(|reason| ModuleError::BadPathEscape {
            escaped: s.to_owned(),
            reason,
        })?;
        ModulePath::parse(&plain)
    }

    /// The plain path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The escaped form used in proxy URLs and storage keys (`module.EscapePath`).
    pub fn escaped(&self) -> String {
        escape(&self.0)
    }

    /// The `/vN` or gopkg.in `.vN` suffix that fixes the major version, if any
    /// (`module.SplitPathVersion`); empty for paths that allow v0 and v1.
    pub(crate) fn path_major(&self) -> &str {
        split_path_version(&self.0).map_or("", |(_, major)| major)
    }
}

impl fmt::Display for ModulePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for ModulePath {
    type Err = ModuleError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ModulePath::parse(s)
    }
}

impl TryFrom<String> for ModulePath {
    type Error = ModuleError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        check_module_path(&s).map_err(|reason| ModuleError::MalformedPath {
            path: s.clone(),
            reason,
        })?;
        Ok(ModulePath(s))
    }
}

impl From<ModulePath> for String {
    fn from(p: ModulePath) -> String {
        p.0
    }
}

/// Which rule set [`check_path`] applies: module paths are stricter than file names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum PathKind {
    /// A module path element (`modPathOK`, no leading dot, no `~N` short names).
    Module,
    /// A file name inside a module zip (`fileNameOK`).
    File,
}

/// Reserved device names on Windows; an element whose part before the first dot matches one
/// (in any case) cannot be created there.
const BAD_WINDOWS_NAMES: [&str; 22] = [
    "CON", "PRN", "AUX", "NUL", "COM1", "COM2", "COM3", "COM4", "COM5", "COM6", "COM7", "COM8",
    "COM9", "LPT1", "LPT2", "LPT3", "LPT4", "LPT5", "LPT6", "LPT7", "LPT8", "LPT9",
];

/// `module.CheckPath`, returning the reason (without the path) on failure.
pub(crate) fn check_module_path(path: &str) -> Result<(), String> {
    check_path(path, PathKind::Module)?;
    let first = path.split('/').next().unwrap_or_default();
    if first.is_empty() {
        return Err("leading slash".into());
    }
    if !first.contains('.') {
        return Err("missing dot in first path element".into());
    }
    if first.starts_with('-') {
        return Err("leading dash in first path element".into());
    }
    // The first element is a domain name: lower case only, so it never needs escaping.
    if let Some(c) = first
        .chars()
        .find(|&c| !(c == '-' || c == '.' || c.is_ascii_digit() || c.is_ascii_lowercase()))
    {
        return Err(format!(
            "invalid char {} in first path element",
            quoted_char(c)
        ));
    }
    if split_path_version(path).is_none() {
        return Err("invalid version".into());
    }
    Ok(())
}

/// `module.CheckFilePath`, returning the reason on failure.
pub(crate) fn check_file_path(path: &str) -> Result<(), String> {
    check_path(path, PathKind::File)
}

/// The rules shared by module paths and file paths (`module.checkPath`).
pub(crate) fn check_path(path: &str, kind: PathKind) -> Result<(), String> {
    if path.is_empty() {
        return Err("empty string".into());
    }
    if path.starts_with('-') && kind != PathKind::File {
        return Err("leading dash".into());
    }
    if path.contains("//") {
        return Err("double slash".into());
    }
    if path.ends_with('/') {
        return Err("trailing slash".into());
    }
    for elem in path.split('/') {
        check_elem(elem, kind)?;
    }
    Ok(())
}

/// One path element (`module.checkElem`); also used on whole version strings, which must be
/// valid file names.
pub(crate) fn check_elem(elem: &str, kind: PathKind) -> Result<(), String> {
    if elem.is_empty() {
        return Err("empty path element".into());
    }
    if elem.bytes().all(|b| b == b'.') {
        return Err(format!("invalid path element {}", quoted(elem)));
    }
    if elem.starts_with('.') && kind == PathKind::Module {
        return Err("leading dot in path element".into());
    }
    if elem.ends_with('.') {
        return Err("trailing dot in path element".into());
    }
    let char_ok = match kind {
        PathKind::Module => module_char_ok,
        PathKind::File => file_char_ok,
    };
    if let Some(c) = elem.chars().find(|&c| !char_ok(c)) {
        return Err(format!("invalid char {}", quoted_char(c)));
    }
    let short = elem.split('.').next().unwrap_or_default();
    // The reserved names are plain ASCII letters and digits with no non-ASCII case partners,
    // so ASCII case-insensitivity is the same as Go's EqualFold here.
    if BAD_WINDOWS_NAMES
        .iter()
        .any(|bad| bad.eq_ignore_ascii_case(short))
    {
        return Err(format!(
            "{} disallowed as path element component on Windows",
            quoted(short)
        ));
    }
    if kind == PathKind::File {
        return Ok(());
    }
    // "x~1" may name the same file as a long name on Windows (8.3 short names).
    if let Some(tilde) = short.rfind('~') {
        let digits = &short[tilde + 1..];
        if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("trailing tilde and digits in path element".into());
        }
    }
    Ok(())
}

/// `modPathOK`: letters, digits and `- . _ ~`; no `+`, which would change meaning in a URL.
fn module_char_ok(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~')
}

/// `fileNameOK`: ASCII letters and digits, a set of harmless punctuation, space, and any
/// Unicode letter.
fn file_char_ok(c: char) -> bool {
    if c.is_ascii() {
        c.is_ascii_alphanumeric() || "!#$%&()+,-.=@[]^_{}~ ".contains(c)
    } else {
        is_letter(c)
    }
}

/// `module.SplitPathVersion`: splits off a `/vN` (N >= 2) or gopkg.in `.vN` suffix.
///
/// Returns `None` where the final element looks like a version but is not a valid one
/// (`/v1`, `/v0`, `/v2.0`, `/v02`, gopkg.in paths without `.vN`).
pub(crate) fn split_path_version(path: &str) -> Option<(&str, &str)> {
    if path.starts_with("gopkg.in/") {
        return split_gopkg_in(path);
    }
    let b = path.as_bytes();
    let mut i = b.len();
    let mut dot = false;
    while i > 0 && (b[i - 1].is_ascii_digit() || b[i - 1] == b'.') {
        dot |= b[i - 1] == b'.';
        i -= 1;
    }
    if i <= 1 || i == b.len() || b[i - 1] != b'v' || b[i - 2] != b'/' {
        return Some((path, ""));
    }
    let (prefix, major) = path.split_at(i - 2);
    if dot || major.len() <= 2 || major.as_bytes()[2] == b'0' || major == "/v1" {
        return None;
    }
    Some((prefix, major))
}

/// The gopkg.in flavour of [`split_path_version`]: `.vN` (any N, including 0) with an
/// optional `-unstable`, and required.
fn split_gopkg_in(path: &str) -> Option<(&str, &str)> {
    let b = path.as_bytes();
    let mut i = b.len();
    if path.ends_with("-unstable") {
        i -= "-unstable".len();
    }
    while i > 0 && b[i - 1].is_ascii_digit() {
        i -= 1;
    }
    if i <= 1 || b[i - 1] != b'v' || b[i - 2] != b'.' {
        return None;
    }
    let (prefix, major) = path.split_at(i - 2);
    if major.len() <= 2 || (major.as_bytes()[2] == b'0' && major != ".v0") {
        return None;
    }
    Some((prefix, major))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// golang.org/x/mod's CheckPath table as data: (path, module path ok, file path ok),
    /// plus cases of our own.
    const CHECK_PATH_TABLE: &[(&str, bool, bool)] = &[
        ("x.y/z", true, true),
        ("x.y", true, true),
        ("", false, false),
        ("/x.y/z", false, false),
        ("x./z", false, false),
        (".x/z", false, true),
        ("-x/z", false, true),
        ("x..y/z", true, true),
        ("x.y/z/../../w", false, false),
        ("x.y//z", false, false),
        ("x.y/z//w", false, false),
        ("x.y/z/", false, false),
        ("x.y/z/v0", false, true),
        ("x.y/z/v1", false, true),
        ("x.y/z/v2", true, true),
        ("x.y/z/v2.0", false, true),
        ("X.y/z", false, true),
        ("!x.y/z", false, true),
        ("_x.y/z", false, true),
        ("x.y!/z", false, true),
        ("x.y\"/z", false, false),
        ("x.y#/z", false, true),
        ("x.y$/z", false, true),
        ("x.y%/z", false, true),
        ("x.y&/z", false, true),
        ("x.y'/z", false, false),
        ("x.y(/z", false, true),
        ("x.y)/z", false, true),
        ("x.y*/z", false, false),
        ("x.y+/z", false, true),
        ("x.y,/z", false, true),
        ("x.y-/z", true, true),
        ("x.y./zt", false, false),
        ("x.y:/z", false, false),
        ("x.y;/z", false, false),
        ("x.y</z", false, false),
        ("x.y=/z", false, true),
        ("x.y>/z", false, false),
        ("x.y?/z", false, false),
        ("x.y@/z", false, true),
        ("x.y[/z", false, true),
        ("x.y\\/z", false, false),
        ("x.y]/z", false, true),
        ("x.y^/z", false, true),
        ("x.y_/z", false, true),
        ("x.y`/z", false, false),
        ("x.y{/z", false, true),
        ("x.y}/z", false, true),
        ("x.y~/z", false, true),
        ("x.y/z!", false, true),
        ("x.y/z\"", false, false),
        ("x.y/z#", false, true),
        ("x.y/z$", false, true),
        ("x.y/z%", false, true),
        ("x.y/z&", false, true),
        ("x.y/z'", false, false),
        ("x.y/z(", false, true),
        ("x.y/z)", false, true),
        ("x.y/z*", false, false),
        ("x.y/z+", false, true),
        ("x.y/z,", false, true),
        ("x.y/z-", true, true),
        ("x.y/z.t", true, true),
        ("x.y/z/t", true, true),
        ("x.y/z:", false, false),
        ("x.y/z;", false, false),
        ("x.y/z<", false, false),
        ("x.y/z=", false, true),
        ("x.y/z>", false, false),
        ("x.y/z?", false, false),
        ("x.y/z@", false, true),
        ("x.y/z[", false, true),
        ("x.y/z\\", false, false),
        ("x.y/z]", false, true),
        ("x.y/z^", false, true),
        ("x.y/z_", true, true),
        ("x.y/z`", false, false),
        ("x.y/z{", false, true),
        ("x.y/z}", false, true),
        ("x.y/z~", true, true),
        ("x.y/x.foo", true, true),
        ("x.y/aux.foo", false, false),
        ("x.y/prn", false, false),
        ("x.y/prn2", true, true),
        ("x.y/com", true, true),
        ("x.y/com1", false, false),
        ("x.y/com1.txt", false, false),
        ("x.y/calm1", true, true),
        ("x.y/z~0", false, true),
        ("x.y/z~09", false, true),
        ("x.y/z09", true, true),
        ("x.y/z09~", true, true),
        ("x.y/z09~09z", true, true),
        ("x.y/z09~09z~09", false, true),
        ("github.com/!123/logrus", false, true),
        ("github.com/user/unicode/испытание", false, true),
        ("../x", false, false),
        ("./y", false, false),
        ("x:y", false, false),
        ("\\temp\\foo", false, false),
        (".gitignore", false, true),
        (".github/ISSUE_TEMPLATE", false, true),
        ("x☺y", false, false),
        // Ours.
        ("example.com/con", false, false),
        ("example.com/CON", false, false),
        ("example.com/Con.go", false, false),
        ("example.com/lpt9.x", false, false),
        ("example.com/lpt0", true, true),
        ("example.com/x~1", false, true),
        ("example.com/.hidden", false, true),
        ("example.com/x/", false, false),
        ("example.com", true, true),
        ("localhost/x", false, true),
        ("com/x", false, true),
        ("-example.com/x", false, true),
        ("ex_ample.com/x", false, true),
        ("exa~mple.com/x", false, true),
        ("Example.com/x", false, true),
        ("example.com/Azure/x", true, true),
        ("example.com/x y", false, true),
        ("example.com/x\ty", false, false),
        ("example.com/x\u{0}", false, false),
        ("example.com/é", false, true),
        ("example.com/\u{301}", false, false),
        ("example.com/m/v2", true, true),
        ("example.com/m/v02", false, true),
        ("example.com/m/v10", true, true),
        ("example.com/m/v2.1", false, true),
        ("example.com/v2", true, true),
        ("example.com/m/vv2", true, true),
        ("example.com/m.v2", true, true),
        ("gopkg.in/yaml.v2", true, true),
        ("gopkg.in/yaml.v0", true, true),
        ("gopkg.in/yaml.v1", true, true),
        ("gopkg.in/yaml.v01", false, true),
        ("gopkg.in/yaml", false, true),
        ("gopkg.in/yaml/v2", false, true),
        ("gopkg.in/yaml.v2-unstable", true, true),
        ("gopkg.in/user/pkg.v3", true, true),
        ("gopkg.in/v2", false, true),
    ];

    #[test]
    fn check_path_table() {
        for &(path, module_ok, file_ok) in CHECK_PATH_TABLE {
            let got = check_module_path(path);
            assert_eq!(got.is_ok(), module_ok, "CheckPath({path:?}) = {got:?}");
            let got = check_file_path(path);
            assert_eq!(got.is_ok(), file_ok, "CheckFilePath({path:?}) = {got:?}");
            assert_eq!(ModulePath::parse(path).is_ok(), module_ok);
        }
        assert!(CHECK_PATH_TABLE.len() >= 40);
    }

    #[test]
    fn check_path_reasons_match_go() {
        let cases = [
            ("", "empty string"),
            ("x.y/z/", "trailing slash"),
            ("x.y//z", "double slash"),
            ("-x/z", "leading dash"),
            ("x", "missing dot in first path element"),
            ("X.y/z", "invalid char 'X' in first path element"),
            ("x.y/z+", "invalid char '+'"),
            ("x.y/.z", "leading dot in path element"),
            ("x.y/z.", "trailing dot in path element"),
            ("x.y/../z", "invalid path element \"..\""),
            (
                "x.y/com1.go",
                "\"com1\" disallowed as path element component on Windows",
            ),
            ("x.y/z~09", "trailing tilde and digits in path element"),
            ("x.y/z/v1", "invalid version"),
            ("gopkg.in/yaml", "invalid version"),
        ];
        for (path, want) in cases {
            assert_eq!(check_module_path(path), Err(want.to_owned()), "{path:?}");
        }
        let err = ModulePath::parse("Foo.com/x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "malformed module path \"Foo.com/x\": invalid char 'F' in first path element"
        );
    }

    #[test]
    fn split_path_version_table() {
        let cases = [
            ("x.y/z", Some(("x.y/z", ""))),
            ("x.y/z/v2", Some(("x.y/z", "/v2"))),
            ("x.y/z/v3", Some(("x.y/z", "/v3"))),
            ("x.y/v", Some(("x.y/v", ""))),
            ("gopkg.in/yaml.v0", Some(("gopkg.in/yaml", ".v0"))),
            ("gopkg.in/yaml.v1", Some(("gopkg.in/yaml", ".v1"))),
            ("gopkg.in/yaml.v2", Some(("gopkg.in/yaml", ".v2"))),
            ("gopkg.in/yaml.v3", Some(("gopkg.in/yaml", ".v3"))),
            (
                "gopkg.in/yaml.v2-unstable",
                Some(("gopkg.in/yaml", ".v2-unstable")),
            ),
            ("x.y/z/v1", None),
            ("x.y/z/v0", None),
            ("x.y/z/v2.0", None),
            ("gopkg.in/yaml", None),
        ];
        for (path, want) in cases {
            assert_eq!(split_path_version(path), want, "{path:?}");
        }
    }

    #[test]
    fn escaped_forms() {
        let p = ModulePath::from_escaped("github.com/!azure/azure-sdk").unwrap();
        assert_eq!(p.as_str(), "github.com/Azure/azure-sdk");
        assert_eq!(p.escaped(), "github.com/!azure/azure-sdk");
        assert_eq!(p.to_string(), "github.com/Azure/azure-sdk");
        for bad in [
            "github.com/Azure/azure-sdk",
            "github.com/!!azure",
            "github.com/!",
            "github.com/!0x",
            "",
            "github.com/!azure/",
        ] {
            assert!(ModulePath::from_escaped(bad).is_err(), "{bad:?}");
        }
        // Every path Go refuses is refused in escaped form too.
        for &(path, module_ok, _) in CHECK_PATH_TABLE {
            if !module_ok {
                assert!(ModulePath::from_escaped(path).is_err(), "{path:?}");
            }
        }
    }

    #[test]
    fn serde_round_trip_and_refusal() {
        let p = ModulePath::parse("github.com/Azure/x").unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(json, "\"github.com/Azure/x\"");
        let back: ModulePath = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert!(serde_json::from_str::<ModulePath>("\"Foo.com/x\"").is_err());
    }

    #[test]
    fn letters_follow_go() {
        for c in ['é', 'ß', 'и', 'ж', '中', 'ǅ', 'ʰ'] {
            assert!(file_char_ok(c), "{c:?}");
        }
        for c in ['\u{301}', '☺', '٣', 'Ⅻ', '\u{93f}', '\u{200b}', '€'] {
            assert!(!file_char_ok(c), "{c:?}");
        }
    }
}
