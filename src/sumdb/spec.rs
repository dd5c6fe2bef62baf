//! `SumdbSpec`: which checksum databases `/sumdb/{name}/...` forwards to, by name.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use url::Url;

/// The allow-list of checksum databases; empty means `off` (every `/sumdb/` path is 404).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SumdbSpec {
    databases: BTreeMap<String, Url>,
}

impl Default for SumdbSpec {
    fn default() -> Self {
        // A literal known to parse; built by hand to avoid a fallible parse in `default`.
        let databases = Url::parse("https://sum.golang.org")
            .map(|url| BTreeMap::from([("sum.golang.org".to_owned(), url)]))
            .unwrap_or_default();
        SumdbSpec { databases }
    }
}

impl SumdbSpec {
    /// No database: `off`.
    pub fn off() -> SumdbSpec {
        SumdbSpec {
            databases: BTreeMap::new(),
        }
    }

    /// Builds the spec from `(name, url)` pairs, checking each.
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<SumdbSpec, String> {
        let mut databases = BTreeMap::new();
        for &(name, url) in pairs {
            check_name(name)?;
            let url = Url::parse(url.trim()).map_err(|e| format!("sumdb {name}: {e}"))?;
            if url.scheme() != "http" && url.scheme() != "https" {
                return Err(format!("sumdb {name}: only http and https URLs"));
            }
            if url.query().is_some() || url.fragment().is_some() {
                return Err(format!("sumdb {name}: no query or fragment allowed"));
            }
            if databases.insert(name.to_owned(), url).is_some() {
                return Err(format!("sumdb {name} is named twice"));
            }
        }
        Ok(SumdbSpec { databases })
    }

    /// The URL a database `name` is forwarded to, if allowed.
    pub fn url(&self, name: &str) -> Option<&Url> {
        self.databases.get(name)
    }

    /// True when no database is allowed.
    pub fn is_off(&self) -> bool {
        self.databases.is_empty()
    }

    /// The databases, by name.
    pub fn databases(&self) -> impl Iterator<Item = (&str, &Url)> {
        self.databases.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// For display: any credentials in a URL hidden.
    pub fn redacted(&self) -> String {
        if self.is_off() {
            return "off".into();
        }
        self.databases
            .iter()
            .map(|(name, url)| format!("{name}={}", crate::upstream::redact_url(url)))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// A database name becomes a storage key element: a host name (letters, digits, `.`, `-`).
fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && !name.starts_with(['.', '-'])
        && !name.contains("..")
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "sumdb name {name:?} must be a lower-case host name like sum.golang.org"
        ))
    }
}

impl FromStr for SumdbSpec {
    type Err = String;

    /// `off`, or `name=url,name=url`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "off" {
            return Ok(SumdbSpec::off());
        }
        let pairs = crate::config::split_pairs(s)?;
        SumdbSpec::from_pairs(&pairs)
    }
}

impl fmt::Display for SumdbSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_parse() {
        let spec: SumdbSpec =
            "sum.golang.org=https://sum.golang.org, sum.example.com=http://127.0.0.1:9/x"
                .parse()
                .unwrap();
        assert_eq!(
            spec.url("sum.example.com").unwrap().as_str(),
            "http://127.0.0.1:9/x"
        );
        assert!(spec.url("other").is_none());
        assert!("off".parse::<SumdbSpec>().unwrap().is_off());
        for bad in [
            "",
            "x",
            "Sum.Golang.org=https://a",
            "../x=https://a",
            "a=ftp://b",
            "a=https://b,a=https://c",
        ] {
            assert!(bad.parse::<SumdbSpec>().is_err(), "{bad}");
        }
        assert_eq!(
            SumdbSpec::default().redacted(),
            "sum.golang.org=https://sum.golang.org"
        );
    }
}
