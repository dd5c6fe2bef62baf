//! The `!`-for-upper-case escaping that keeps module paths and versions safe on case-insensitive file systems and URLs.

/// The escaped form of an already validated string: each upper-case ASCII letter becomes `!`
/// and its lower-case twin (`module.EscapePath`'s loop).
///
/// Callers pass only validated paths, versions and queries, which are ASCII and hold no `!`,
/// so the mapping is one-to-one.
pub(crate) fn escape(s: &str) -> String {
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return s.to_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Undoes [`escape`] (`module.unescapeString`): `!x` becomes `X`; a bare upper-case letter,
/// a `!` not followed by a lower-case letter, or any non-ASCII byte is refused.
pub(crate) fn unescape(escaped: &str) -> Result<String, &'static str> {
    let mut out = String::with_capacity(escaped.len());
    let mut bang = false;
    for c in escaped.chars() {
        if !c.is_ascii() {
            return Err("non-ASCII character");
        }
        if bang {
            bang = false;
            if !c.is_ascii_lowercase() {
                return Err("\"!\" must be followed by a lower-case letter");
            }
            out.push(c.to_ascii_uppercase());
        } else if c == '!' {
            bang = true;
        } else if c.is_ascii_uppercase() {
            return Err("upper-case letters must be escaped as \"!\" and the lower-case letter");
        } else {
            out.push(c);
        }
    }
    if bang {
        return Err("\"!\" must be followed by a lower-case letter");
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_table() {
        // (plain, escaped)
        let cases = [
            (
                "ascii.com/abcdefghijklmnopqrstuvwxyz.-/~_0123456789",
                "ascii.com/abcdefghijklmnopqrstuvwxyz.-/~_0123456789",
            ),
            (
                "github.com/GoogleCloudPlatform/omega",
                "github.com/!google!cloud!platform/omega",
            ),
            ("github.com/Azure/azure-sdk", "github.com/!azure/azure-sdk"),
            ("github.com/Sirupsen/logrus", "github.com/!sirupsen/logrus"),
            ("v1.0.0-RC1", "v1.0.0-!r!c1"),
            ("", ""),
        ];
        for (plain, esc) in cases {
            assert_eq!(escape(plain), esc, "escape({plain:?})");
            assert_eq!(unescape(esc).as_deref(), Ok(plain), "unescape({esc:?})");
        }
    }

    #[test]
    fn bad_unescapes() {
        for bad in [
            "github.com/GoogleCloudPlatform/omega",
            "github.com/!google!cloud!platform!/omega",
            "github.com/!0google!cloud!platform/omega",
            "github.com/!_google!cloud!platform/omega",
            "github.com/!!google!cloud!platform/omega",
            "github.com/x!",
            "github.com/!Azure",
            "github.com/é",
        ] {
            assert!(unescape(bad).is_err(), "unescape({bad:?}) should fail");
        }
    }
}
