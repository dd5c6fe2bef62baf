//! The one error type of the module vocabulary, worded for Go users reading a 404 body.

use std::fmt::Write as _;

/// Why a module path, version, version query or proxy URL was refused.
///
/// `Display` is a single short line, fit to be sent to the go command as the reason for a 404.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// The module path breaks the rules of `module.CheckPath`.
    #[error("malformed module path {}: {reason}", quoted(path))]
    MalformedPath {
        /// The unescaped path as given.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The escaped (URL) form of a module path does not decode.
    #[error("invalid escaped module path {}: {reason}", quoted(escaped))]
    BadPathEscape {
        /// The escaped path as given.
        escaped: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The string is not a canonical Go module version.
    #[error("malformed version {}: {reason}", quoted(version))]
    MalformedVersion {
        /// The unescaped version as given.
        version: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The escaped (URL) form of a version or query does not decode.
    #[error("invalid escaped version {}: {reason}", quoted(escaped))]
    BadVersionEscape {
        /// The escaped version as given.
        escaped: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// Path and version are each valid but do not belong together (`module.Check`).
    #[error("{}@{}: invalid version: {reason}", clipped(path), clipped(version))]
    VersionMismatch {
        /// The module path.
        path: String,
        /// The version.
        version: String,
        /// Why they disagree.
        reason: String,
    },
    /// The non-canonical version query is not safe or not sensible to forward upstream.
    #[error("invalid version query {}: {reason}", quoted(query))]
    BadQuery {
        /// The unescaped query as given.
        query: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The URL path is not part of the GOPROXY protocol.
    #[error("invalid request path: {reason}")]
    BadRequest {
        /// What is wrong with it.
        reason: String,
    },
}

/// Longest stretch of user input echoed back in a message; the rest is elided so that a
/// hostile 8 KiB path does not come back as an 8 KiB error line.
const ECHO_LIMIT: usize = 160;

fn clip(s: &str) -> (&str, bool) {
    if s.len() <= ECHO_LIMIT {
        return (s, false);
    }
    let mut end = ECHO_LIMIT;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    (&s[..end], true)
}

/// `s` in double quotes with escapes (like Go's `%q`), elided past [`ECHO_LIMIT`].
pub(crate) fn quoted(s: &str) -> String {
    let (head, cut) = clip(s);
    let mut out = String::with_capacity(head.len() + 8);
    out.push('"');
    for c in head.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
            out.push(c);
        } else if c.is_control() {
            // Keep the message on one line whatever the input holds.
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
    if cut {
        out.push('…');
    }
    out.push('"');
    out
}

/// `s` unquoted but elided past [`ECHO_LIMIT`]; only for already validated strings.
pub(crate) fn clipped(s: &str) -> String {
    let (head, cut) = clip(s);
    if cut {
        format!("{head}…")
    } else {
        head.to_owned()
    }
}

/// A rune as Go's `%q` prints it, for "invalid char" reasons.
pub(crate) fn quoted_char(c: char) -> String {
    match c {
        '\'' => "'\\''".to_owned(),
        '\\' => "'\\\\'".to_owned(),
        c if c.is_control() => format!("'{}'", c.escape_default()),
        c => format!("'{c}'"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_messages_on_one_short_line() {
        assert_eq!(quoted("a\"b"), r#""a\"b""#);
        assert_eq!(quoted("a\nb\0"), r#""a\nb\u{0}""#);
        let long = "é".repeat(1000);
        let q = quoted(&long);
        assert!(q.len() < ECHO_LIMIT + 10, "{}", q.len());
        assert!(q.ends_with("…\""));
        assert_eq!(quoted_char('~'), "'~'");
        assert_eq!(quoted_char('\''), r"'\''");
        assert_eq!(quoted_char('\u{7f}'), r"'\u{7f}'");
    }

    #[test]
    fn display_is_one_line() {
        let e = ModuleError::MalformedPath {
            path: "Foo.com/x\n".into(),
            reason: "invalid char 'F' in first path element".into(),
        };
        let s = e.to_string();
        assert!(!s.contains('\n'));
        assert_eq!(
            s,
            r#"malformed module path "Foo.com/x\n": invalid char 'F' in first path element"#
        );
    }
}
