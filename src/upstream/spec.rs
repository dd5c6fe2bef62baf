//! `UpstreamSpec`: the upstream chain in GOPROXY syntax (`https://a,https://b|https://c`, `off`).

use std::fmt;
use std::str::FromStr;

use url::Url;

/// When the chain moves past an upstream to the next one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallthrough {
    /// After `,`: only on 404 or 410 (the module is not there).
    OnNotFound,
    /// After `|`: on any error.
    OnAnyError,
}

/// One upstream proxy in the chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyEntry {
    /// Base URL without trailing slash.
    pub url: Url,
    /// When to fall through to the next entry if this one fails.
    pub fallthrough: Fallthrough,
}

impl ProxyEntry {
    /// The base URL with any user and password replaced by `REDACTED`, for logs, error
    /// messages and `config show`.
    pub fn redacted_url(&self) -> String {
        super::credentials::redact_url(&self.url)
    }
}

/// The parsed upstream chain; no proxies and no `direct` means `off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpstreamSpec {
    entries: Vec<ProxyEntry>,
    /// The chain ends in `direct`: what the proxies do not have is fetched from its VCS origin
    /// by the go command (after the last proxy's separator allows falling through).
    direct: bool,
}

impl Default for UpstreamSpec {
    fn default() -> Self {
        // A literal that is known to parse; building it by hand avoids a fallible parse here.
        UpstreamSpec {
            entries: Url::parse("https://proxy.golang.org")
                .map(|url| {
                    vec![ProxyEntry {
                        url,
                        fallthrough: Fallthrough::OnNotFound,
                    }]
                })
                .unwrap_or_default(),
            direct: false,
        }
    }
}

impl UpstreamSpec {
    /// The proxies in order.
    pub fn entries(&self) -> &[ProxyEntry] {
        &self.entries
    }

    /// True for `off`: nothing is fetched, only storage is served.
    pub fn is_off(&self) -> bool {
        self.entries.is_empty() && !self.direct
    }

    /// True when the chain ends in `direct`.
    pub fn ends_in_direct(&self) -> bool {
        self.direct
    }

    /// True when the chain falls through to `direct` after its proxies failed with `not_found`
    /// (true) or another error (false): `,` before `direct` passes only not-found on, `|` all.
    pub fn falls_to_direct(&self, not_found: bool) -> bool {
        self.direct
            && (not_found
                || self
                    .entries
                    .last()
                    .is_none_or(|e| e.fallthrough == Fallthrough::OnAnyError))
    }

    /// The spec for display, with any user:password in URLs hidden.
    pub fn redacted(&self) -> String {
        if self.is_off() {
            return "off".into();
        }
        let mut out = String::new();
        for (i, e) in self.entries.iter().enumerate() {
            out.push_str(&e.redacted_url());
            if i + 1 < self.entries.len() || self.direct {
                out.push(match e.fallthrough {
                    Fallthrough::OnNotFound => ',',
                    Fallthrough::OnAnyError => '|',
                });
            }
        }
        if self.direct {
            out.push_str("direct");
        }
        out
    }
}

impl FromStr for UpstreamSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err("upstream is empty (use a proxy URL, or `off`)".into());
        }
        let mut entries: Vec<ProxyEntry> = Vec::new();
        let mut rest = s;
        loop {
            let end = rest.find([',', '|']).unwrap_or(rest.len());
            let item = rest[..end].trim();
            let separator = rest[end..].chars().next();
            match item {
                "" => return Err(format!("upstream {s:?} has an empty entry")),
                "off" => {
                    // Like the go command: `off` ends the chain; anything before it is still tried.
                    return Ok(UpstreamSpec {
                        entries,
                        direct: false,
                    });
                }
                "direct" => {
                    let tail = rest[end..].trim_start_matches([',', '|']).trim();
                    if separator.is_some() && tail != "off" {
                        return Err(format!(
                            "upstream {s:?}: `direct` must be the last entry (only `off` may follow it)"
                        ));
                    }
                    return Ok(UpstreamSpec {
                        entries,
                        direct: true,
                    });
                }
                _ => {}
            }
            let url = Url::parse(item).map_err(|e| format!("upstream {item:?}: {e}"))?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(format!(
                    "upstream {item:?}: only http and https proxies are supported"
                ));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(format!(
                    "upstream {item:?}: must not have a query or fragment"
                ));
            }
            entries.push(ProxyEntry {
                url,
                fallthrough: match separator {
                    Some('|') => Fallthrough::OnAnyError,
                    _ => Fallthrough::OnNotFound,
                },
            });
            match separator {
                Some(_) => rest = &rest[end + 1..],
                None => break,
            }
        }
        Ok(UpstreamSpec {
            entries,
            direct: false,
        })
    }
}

impl fmt::Display for UpstreamSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_goproxy_syntax() {
        let spec: UpstreamSpec = "https://a.example,https://b.example|http://c.example/x"
            .parse()
            .unwrap();
        let e = spec.entries();
        assert_eq!(e.len(), 3);
        assert_eq!(e[0].fallthrough, Fallthrough::OnNotFound);
        assert_eq!(e[1].fallthrough, Fallthrough::OnAnyError);
        assert_eq!(e[2].url.as_str(), "http://c.example/x");
        assert!("off".parse::<UpstreamSpec>().unwrap().is_off());
    }

    #[test]
    fn refuses_bad_entries() {
        for bad in [
            "",
            "https://a,,https://b",
            "direct,https://a",
            "https://a,direct|https://b",
            "ftp://x",
            "notaurl",
        ] {
            assert!(bad.parse::<UpstreamSpec>().is_err(), "{bad}");
        }
    }

    #[test]
    fn direct_ends_the_chain() {
        let spec: UpstreamSpec = "https://a.example,direct".parse().unwrap();
        assert!(spec.ends_in_direct() && !spec.is_off());
        assert!(spec.falls_to_direct(true) && !spec.falls_to_direct(false));
        assert_eq!(spec.redacted(), "https://a.example,direct");
        let spec: UpstreamSpec = "https://a.example|direct,off".parse().unwrap();
        assert!(spec.falls_to_direct(false));
        assert_eq!(spec.redacted(), "https://a.example|direct");
        let spec: UpstreamSpec = "direct".parse().unwrap();
        assert!(spec.entries().is_empty() && spec.falls_to_direct(false));
        assert_eq!(spec.to_string(), "direct");
    }

    #[test]
    fn redacts_credentials() {
        let spec: UpstreamSpec = "https://user:secret@a.example".parse().unwrap();
        assert!(!spec.redacted().contains("secret"));
        assert!(!spec.redacted().contains("user"));
    }
}
