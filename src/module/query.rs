//! Non-canonical version queries (branch names, commit hashes, `v1.2`) that may be forwarded upstream, and the canonical-or-query choice.

use std::fmt;

use super::error::ModuleError;
use super::escape::{escape, unescape};
use super::path::{PathKind, check_elem};
use super::version::Version;

/// Longest query we forward; commit hashes and branch names are far shorter.
const MAX_QUERY_LEN: usize = 256;

/// A version query the go command may send as `@v/{query}.info`: a branch name (`main`), a
/// commit hash, a version prefix (`v1.2`) or a non-canonical version (`v1.2.3+meta`).
///
/// Held in plain (unescaped) form. Every value is safe to splice into an upstream URL path
/// after [`VersionQuery::escaped`]: it is a single path element of `[A-Za-z0-9._~+-]`, with
/// no `..`, no leading `-` or `.`, and at most 256 bytes. Queries with `/` are refused because
/// the go command cannot send them (`module.EscapeVersion` forbids path separators).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct VersionQuery(String);

impl VersionQuery {
    /// Decodes the escaped form from a proxy URL (`!m!a!i!n` is `MAIN`) and checks it.
    pub fn from_escaped(s: &str) -> Result<VersionQuery, ModuleError> {
        let plain = unescape(s).map_err(|reason| ModuleError::BadVersionEscape {
            escaped: s.to_owned(),
            reason,
        })?;
        VersionQuery::from_plain(&plain)
    }

    /// Checks an already unescaped query.
    pub(crate) fn from_plain(q: &str) -> Result<VersionQuery, ModuleError> {
        check_query(q).map_err(|reason| ModuleError::BadQuery {
            query: q.to_owned(),
            reason,
        })?;
        Ok(VersionQuery(q.to_owned()))
    }

    /// The plain query.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The escaped form to put in an upstream URL (`module.EscapeVersion`).
    pub fn escaped(&self) -> String {
        escape(&self.0)
    }
}

impl fmt::Display for VersionQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn check_query(q: &str) -> Result<(), String> {
    if q.is_empty() {
        return Err("empty".into());
    }
    if q.len() > MAX_QUERY_LEN {
        return Err(format!("longer than {MAX_QUERY_LEN} bytes"));
    }
    if q == "latest" {
        return Err("use @latest to ask for the latest version".into());
    }
    if let Some(c) = q
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '+' | '-')))
    {
        return Err(format!("invalid char {}", super::error::quoted_char(c)));
    }
    if q.starts_with('-') {
        return Err("leading dash".into());
    }
    // Git refuses ref names starting with a dot; upstream path handling may treat them
    // specially.
    if q.starts_with('.') {
        return Err("leading dot".into());
    }
    if q.contains("..") {
        return Err("double dot".into());
    }
    // The go command only sends what module.EscapeVersion accepts: a valid file name.
    check_elem(q, PathKind::File)
}

/// What an `.info` request asks for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum VersionRef {
    /// A canonical version; inside [`super::ProxyRequest::Info`] it is also known to agree
    /// with the module path.
    Canonical(Version),
    /// Anything else, to be resolved by upstream.
    Query(VersionQuery),
}

impl VersionRef {
    /// The version or query string, unescaped.
    pub fn as_str(&self) -> &str {
        match self {
            VersionRef::Canonical(v) => v.as_str(),
            VersionRef::Query(q) => q.as_str(),
        }
    }

    /// The escaped form for URLs and storage keys.
    pub fn escaped(&self) -> String {
        match self {
            VersionRef::Canonical(v) => v.escaped(),
            VersionRef::Query(q) => q.escaped(),
        }
    }
}

impl fmt::Display for VersionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_accept_reject() {
        let good = [
            "master",
            "main",
            "v1.2",
            "v1",
            "v1.2.3+meta",
            "v2.0.0",
            "daa7c04131f5",
            "0123456789abcdef0123456789abcdef01234567",
            "release-1.0",
            "feature_x",
            "v1.0.0-rc.1~x",
            "a+b",
            "latestx",
            "HEAD",
        ];
        for q in good {
            let got = VersionQuery::from_plain(q);
            assert!(got.is_ok(), "{q:?}: {got:?}");
        }
        let long = "a".repeat(257);
        let bad = [
            "",
            "latest",
            "..",
            "a..b",
            ".",
            ".hidden",
            "-rf",
            "feature/x",
            "/etc",
            "a\\b",
            "a b",
            "a\tb",
            "a\0b",
            "a%2fb",
            "a%b",
            "a@b",
            "a:b",
            "a!b",
            "é",
            "con",
            "CON.x",
            "trailing.",
            long.as_str(),
        ];
        for q in bad {
            assert!(
                VersionQuery::from_plain(q).is_err(),
                "{q:?} should be refused"
            );
        }
        assert!(VersionQuery::from_plain(&"a".repeat(256)).is_ok());
    }

    #[test]
    fn escaping() {
        let q = VersionQuery::from_escaped("!h!e!a!d").unwrap();
        assert_eq!(q.as_str(), "HEAD");
        assert_eq!(q.escaped(), "!h!e!a!d");
        assert_eq!(q.to_string(), "HEAD");
        assert!(VersionQuery::from_escaped("HEAD").is_err());
        assert!(VersionQuery::from_escaped("!").is_err());
        let r = VersionRef::Query(q);
        assert_eq!(r.escaped(), "!h!e!a!d");
        assert_eq!(
            VersionQuery::from_plain("a/b").unwrap_err().to_string(),
            "invalid version query \"a/b\": invalid char '/'"
        );
    }
}
