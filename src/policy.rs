//! Per-module policy from the config file: rules (`include` / `exclude` / `direct`, each with an
//! optional download mode) and a version deny list.
//!
//! Rules are tried in order and the first whose pattern matches a module decides for it; a
//! module no rule matches is included with the default download mode. A denied version is never
//! served (403) and is left out of `@v/list`, so `go get` does not pick it.

use std::fmt;
use std::str::FromStr;

use serde::Deserialize;

use crate::module::{ModulePath, ModulePatterns, ModuleVersion, Version};

/// What a rule does with the modules it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RuleAction {
    /// Served as usual.
    #[default]
    Include,
    /// Refused with 403 and the rule's reason.
    Exclude,
    /// Fetched only by the go command from the origin (like a private module).
    Direct,
}

/// How a request for something storage does not hold yet is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DownloadMode {
    /// Fetch, check, store, then serve (the client waits for the commit).
    #[default]
    Sync,
    /// Serve straight from upstream and store in the background.
    Async,
    /// Send the client to the upstream proxy (302) and store nothing; stored zips go to a
    /// presigned storage URL where the storage can sign one.
    Redirect,
    /// Serve only what storage holds; 404 otherwise.
    None,
}

impl FromStr for DownloadMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "sync" => Ok(DownloadMode::Sync),
            "async" => Ok(DownloadMode::Async),
            "redirect" => Ok(DownloadMode::Redirect),
            "none" => Ok(DownloadMode::None),
            other => Err(format!(
                "unknown download mode {other:?} (use sync, async, redirect or none)"
            )),
        }
    }
}

impl fmt::Display for DownloadMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            DownloadMode::Sync => "sync",
            DownloadMode::Async => "async",
            DownloadMode::Redirect => "redirect",
            DownloadMode::None => "none",
        })
    }
}

/// A `[[rule]]` table in `modstash.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct RuleFile {
    /// Module patterns in GOPRIVATE syntax.
    #[serde(rename = "match")]
    pub patterns: String,
    /// What to do with them.
    #[serde(default)]
    pub action: RuleAction,
    /// How misses are answered (default: the global `download-mode`).
    #[serde(default)]
    pub mode: Option<DownloadMode>,
    /// Shown to clients an `exclude` refuses.
    #[serde(default)]
    pub reason: Option<String>,
}

/// A `[[deny]]` table in `modstash.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct DenyFile {
    /// Module patterns in GOPRIVATE syntax.
    pub module: String,
    /// Versions: `v1.2.3` exactly, or `<v1.2.3`, `<=v1.2.3`, `>v1.2.3`, `>=v1.2.3`; empty denies all.
    #[serde(default)]
    pub versions: Vec<String>,
    /// Shown to clients.
    #[serde(default)]
    pub reason: Option<String>,
}

#[derive(Debug, Clone)]
struct Rule {
    patterns: ModulePatterns,
    action: RuleAction,
    mode: Option<DownloadMode>,
    reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum VersionMatch {
    Exactly(Version),
    Below(Version),
    AtMost(Version),
    Above(Version),
    AtLeast(Version),
}

impl VersionMatch {
    fn parse(s: &str) -> Result<VersionMatch, String> {
        let s = s.trim();
        let (ctor, rest): (fn(Version) -> VersionMatch, &str) =
            if let Some(rest) = s.strip_prefix("<=") {
                (VersionMatch::AtMost, rest)
            } else if let Some(rest) = s.strip_prefix(">=") {
                (VersionMatch::AtLeast, rest)
            } else if let Some(rest) = s.strip_prefix('<') {
                (VersionMatch::Below, rest)
            } else if let Some(rest) = s.strip_prefix('>') {
                (VersionMatch::Above, rest)
            } else {
                (VersionMatch::Exactly, s)
            };
        let version = Version::parse(rest.trim())
            .map_err(|e| format!("deny version {s:?}: not a canonical version ({e})"))?;
        Ok(ctor(version))
    }

    fn matches(&self, v: &Version) -> bool {
        match self {
            VersionMatch::Exactly(x) => v == x,
            VersionMatch::Below(x) => v < x,
            VersionMatch::AtMost(x) => v <= x,
            VersionMatch::Above(x) => v > x,
            VersionMatch::AtLeast(x) => v >= x,
        }
    }
}

#[derive(Debug, Clone)]
struct Deny {
    patterns: ModulePatterns,
    versions: Vec<VersionMatch>,
    reason: Option<String>,
}

/// What the policy says about one module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModulePolicy {
    /// Include, exclude or direct.
    pub action: RuleAction,
    /// How misses are answered.
    pub mode: DownloadMode,
    /// Why, for an exclude.
    pub reason: Option<String>,
}

/// Rules and deny list, validated.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    rules: Vec<Rule>,
    deny: Vec<Deny>,
    default_mode: DownloadMode,
}

impl Policy {
    /// Builds the policy from the config file's tables.
    pub fn new(
        rules: &[RuleFile],
        deny: &[DenyFile],
        default_mode: DownloadMode,
    ) -> Result<Policy, String> {
        let rules = rules
            .iter()
            .map(|r| {
                Ok(Rule {
                    patterns: non_empty_patterns(&r.patterns, "a [[rule]] has an empty `match`")?,
                    action: r.action,
                    mode: r.mode,
                    reason: r.reason.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        let deny = deny
            .iter()
            .map(|d| {
                Ok(Deny {
                    patterns: non_empty_patterns(&d.module, "a [[deny]] has an empty `module`")?,
                    versions: d
                        .versions
                        .iter()
                        .map(|v| VersionMatch::parse(v))
                        .collect::<Result<_, _>>()?,
                    reason: d.reason.clone(),
                })
            })
            .collect::<Result<_, String>>()?;
        Ok(Policy {
            rules,
            deny,
            default_mode,
        })
    }

    /// The first matching rule's verdict, or include with the default mode.
    pub fn for_module(&self, path: &ModulePath) -> ModulePolicy {
        match self
            .rules
            .iter()
            .find(|r| r.patterns.matches(path.as_str()))
        {
            Some(rule) => ModulePolicy {
                action: rule.action,
                mode: rule.mode.unwrap_or(self.default_mode),
                reason: rule.reason.clone(),
            },
            None => ModulePolicy {
                action: RuleAction::Include,
                mode: self.default_mode,
                reason: None,
            },
        }
    }

    /// Why `mv` is denied, if it is.
    pub fn denied(&self, mv: &ModuleVersion) -> Option<String> {
        self.deny
            .iter()
            .find(|d| {
                d.patterns.matches(mv.path().as_str())
                    && (d.versions.is_empty() || d.versions.iter().any(|m| m.matches(mv.version())))
            })
            .map(|d| {
                let why = d
                    .reason
                    .as_deref()
                    .unwrap_or("denied by the proxy's policy");
                format!("forbidden: {mv}: {why}")
            })
    }

    /// True when some version of `path` may be denied (so lists need filtering).
    pub fn has_denials_for(&self, path: &ModulePath) -> bool {
        self.deny.iter().any(|d| d.patterns.matches(path.as_str()))
    }

    /// Patterns of the `direct` rules, in GOPRIVATE syntax.
    pub fn direct_patterns(&self) -> Vec<String> {
        self.rules
            .iter()
            .filter(|r| r.action == RuleAction::Direct)
            .map(|r| r.patterns.to_string())
            .collect()
    }

    /// The default download mode.
    pub fn default_mode(&self) -> DownloadMode {
        self.default_mode
    }

    /// Number of rules and deny entries, for `config show`.
    pub fn sizes(&self) -> (usize, usize) {
        (self.rules.len(), self.deny.len())
    }
}

fn non_empty_patterns(text: &str, if_empty: &str) -> Result<ModulePatterns, String> {
    let patterns: ModulePatterns = text.parse()?;
    if patterns.is_empty() {
        return Err(if_empty.to_owned());
    }
    Ok(patterns)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The policy tables of a config file.
    #[derive(Deserialize)]
    struct File {
        #[serde(default)]
        rule: Vec<RuleFile>,
        #[serde(default)]
        deny: Vec<DenyFile>,
    }

    fn policy(toml_text: &str) -> Policy {
        let f: File = toml::from_str(toml_text).unwrap();
        Policy::new(&f.rule, &f.deny, DownloadMode::Sync).unwrap()
    }

    fn path(s: &str) -> ModulePath {
        ModulePath::parse(s).unwrap()
    }

    fn mv(p: &str, v: &str) -> ModuleVersion {
        ModuleVersion::new(path(p), Version::parse(v).unwrap()).unwrap()
    }

    #[test]
    fn the_first_matching_rule_decides() {
        let p = policy(
            r#"
            [[rule]]
            match = "github.com/acme/public"
            mode = "none"
            [[rule]]
            match = "github.com/acme/*"
            action = "exclude"
            reason = "ask #platform"
            [[rule]]
            match = "*.corp.example.com"
            action = "direct"
            "#,
        );
        let public = p.for_module(&path("github.com/acme/public/v2"));
        assert_eq!(public.action, RuleAction::Include);
        assert_eq!(public.mode, DownloadMode::None);
        let other = p.for_module(&path("github.com/acme/secret"));
        assert_eq!(other.action, RuleAction::Exclude);
        assert_eq!(other.reason.as_deref(), Some("ask #platform"));
        assert_eq!(
            p.for_module(&path("golang.org/x/mod")),
            ModulePolicy {
                action: RuleAction::Include,
                mode: DownloadMode::Sync,
                reason: None
            }
        );
        assert_eq!(p.direct_patterns(), vec!["*.corp.example.com".to_owned()]);
    }

    #[test]
    fn deny_matches_exact_and_ranges() {
        let p = policy(
            r#"
            [[deny]]
            module = "github.com/foo/bar"
            versions = ["v1.2.3", "<v1.0.5", ">=v3.0.0-rc.1"]
            reason = "CVE-2026-0001"
            [[deny]]
            module = "github.com/evil/*"
            "#,
        );
        let denied = |m, v| p.denied(&mv(m, v)).is_some();
        assert!(denied("github.com/foo/bar", "v1.2.3"));
        assert!(denied("github.com/foo/bar", "v1.0.4"));
        assert!(denied("github.com/foo/bar", "v0.1.0"));
        assert!(!denied("github.com/foo/bar", "v1.0.5"));
        assert!(!denied("github.com/foo/bar", "v1.2.4"));
        assert!(denied("github.com/evil/x", "v0.0.1"));
        assert!(!denied("github.com/foo/baz", "v1.2.3"));
        let why = p.denied(&mv("github.com/foo/bar", "v1.2.3")).unwrap();
        assert!(why.contains("CVE-2026-0001"), "{why}");
    }

    #[test]
    fn bad_tables_are_refused() {
        for bad in [
            "[[rule]]\nmatch = \"\"",
            "[[rule]]\nmatch = \"a b\"",
            "[[deny]]\nmodule = \"x.com/y\"\nversions = [\"1.2\"]",
            "[[deny]]\nmodule = \"x.com/y\"\nversions = [\"<=latest\"]",
        ] {
            let f: File = toml::from_str(bad).unwrap();
            assert!(
                Policy::new(&f.rule, &f.deny, DownloadMode::Sync).is_err(),
                "{bad}"
            );
        }
        for bad in [
            "[[rule]]\nmatch = \"x\"\naction = \"block\"",
            "[[rule]]\nmatch = \"x\"\nmode = \"lazy\"",
            "[[rule]]\nmatchh = \"x\"",
        ] {
            assert!(toml::from_str::<File>(bad).is_err(), "{bad}");
        }
    }
}
