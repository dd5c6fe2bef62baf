//! Module path patterns in GOPRIVATE syntax: comma-separated globs, each matching a path prefix.
//!
//! As the go command's `module.MatchPrefixPatterns`: a glob with n `/`-separated elements is
//! matched (with `path.Match` rules: `*` and `?` never cross `/`) against the first n elements of
//! the module path, so `github.com/acme` covers `github.com/acme/lib/v2` and `*.corp.example.com`
//! covers `git.corp.example.com/team/repo`.

use std::fmt;
use std::str::FromStr;

use globset::{GlobBuilder, GlobMatcher};

/// A list of module path patterns; empty matches nothing.
#[derive(Clone, Default)]
pub struct ModulePatterns {
    text: String,
    globs: Vec<(usize, GlobMatcher)>,
}

impl ModulePatterns {
    /// True when some pattern matches a prefix of `path` made of whole path elements.
    pub fn matches(&self, path: &str) -> bool {
        self.globs.iter().any(|(elements, glob)| {
            let mut end = 0;
            let mut seen = 0;
            for (i, c) in path.char_indices() {
                if c == '/' {
                    seen += 1;
                    if seen == *elements {
                        end = i;
                        break;
                    }
                }
            }
            let prefix = if seen == *elements {
                &path[..end]
            } else {
                path
            };
            // A pattern longer than the path cannot match it.
            (seen + 1 >= *elements) && glob.is_match(prefix)
        })
    }

    /// True when there are no patterns.
    pub fn is_empty(&self) -> bool {
        self.globs.is_empty()
    }

    /// The patterns as written (normalised: no empty entries).
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl FromStr for ModulePatterns {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut globs = Vec::new();
        let mut kept = Vec::new();
        for raw in s.split(',') {
            let pattern = raw.trim().trim_end_matches('/');
            if pattern.is_empty() {
                continue;
            }
            if pattern.chars().any(|c| c.is_whitespace() || c == '\\') {
                return Err(format!(
                    "module pattern {pattern:?}: no spaces or backslashes allowed"
                ));
            }
            let glob = GlobBuilder::new(pattern)
                .literal_separator(true)
                .backslash_escape(false)
                .empty_alternates(false)
                .build()
                .map_err(|e| format!("module pattern {pattern:?}: {e}"))?;
            if pattern.contains('{') || pattern.contains("**") {
                return Err(format!(
                    "module pattern {pattern:?}: only *, ? and [...] are allowed (GOPRIVATE syntax)"
                ));
            }
            globs.push((pattern.split('/').count(), glob.compile_matcher()));
            kept.push(pattern);
        }
        Ok(ModulePatterns {
            text: kept.join(","),
            globs,
        })
    }
}

impl fmt::Display for ModulePatterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for ModulePatterns {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ModulePatterns({:?})", self.text)
    }
}

impl PartialEq for ModulePatterns {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ModulePatterns {
        s.parse().unwrap()
    }

    #[test]
    fn prefixes_of_whole_elements_match() {
        let pats = p("*.corp.example.com,github.com/acme/*, rsc.io/private ");
        for yes in [
            "git.corp.example.com",
            "git.corp.example.com/team/repo",
            "github.com/acme/lib",
            "github.com/acme/lib/v2",
            "rsc.io/private",
            "rsc.io/private/quote",
        ] {
            assert!(pats.matches(yes), "{yes}");
        }
        for no in [
            "corp.example.com",
            "github.com/acme",
            "github.com/acmex/lib",
            "rsc.io/privateer",
            "rsc.io",
            "example.com/git.corp.example.com",
        ] {
            assert!(!pats.matches(no), "{no}");
        }
        assert_eq!(
            pats.as_str(),
            "*.corp.example.com,github.com/acme/*,rsc.io/private"
        );
    }

    #[test]
    fn stars_do_not_cross_slashes_and_classes_work() {
        let pats = p("example.com/*/x,example.com/v[0-9]");
        assert!(pats.matches("example.com/a/x/y"));
        assert!(!pats.matches("example.com/a/b/x"));
        assert!(pats.matches("example.com/v2/m"));
        assert!(!pats.matches("example.com/vx"));
    }

    #[test]
    fn empty_matches_nothing_and_junk_is_refused() {
        assert!(p("").is_empty());
        assert!(p(" , ,").is_empty());
        assert!(!p("").matches("example.com"));
        for bad in ["a b", "example.com/{a,b}", "example.com/**", "[", "a\\b"] {
            assert!(bad.parse::<ModulePatterns>().is_err(), "{bad}");
        }
    }
}
