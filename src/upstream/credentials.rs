//! Credentials modstash sends upstream: per-host bearer tokens and a netrc file.
//!
//! Secrets never reach logs, error messages or `config show`: [`HostTokens`] prints tokens as
//! `REDACTED`, and [`Credentials`] has no `Debug` that shows them.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use url::Url;

/// Per-host bearer tokens for upstream requests (`upstream-tokens`: `host=token,host=token`).
#[derive(Clone, Default, PartialEq, Eq)]
pub struct HostTokens(BTreeMap<String, String>);

impl HostTokens {
    /// Builds the tokens from `(host, token)` pairs; a host may carry a port (`host:8443`).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Result<HostTokens, String> {
        let mut map = BTreeMap::new();
        for &(host, token) in pairs {
            let host = host.trim().to_ascii_lowercase();
            let token = token.trim();
            if host.is_empty() || host.contains(['/', '@', ' ']) {
                return Err(format!("upstream-tokens: {host:?} is not a host name"));
            }
            if token.is_empty() || token.chars().any(|c| c.is_control() || c == ' ') {
                return Err(format!(
                    "upstream-tokens: the token for {host} is empty or has spaces"
                ));
            }
            map.insert(host, token.to_owned());
        }
        Ok(HostTokens(map))
    }

    /// True when no token is configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `host=REDACTED,...`: the hosts, never the tokens.
    pub fn redacted(&self) -> String {
        self.0
            .keys()
            .map(|h| format!("{h}=REDACTED"))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn for_url(&self, url: &Url) -> Option<&str> {
        let host = url.host_str()?.to_ascii_lowercase();
        let with_port = url.port().map(|p| format!("{host}:{p}"));
        with_port
            .and_then(|hp| self.0.get(&hp))
            .or_else(|| self.0.get(&host))
            .map(String::as_str)
    }
}

impl fmt::Debug for HostTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostTokens({})", self.redacted())
    }
}

impl FromStr for HostTokens {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        HostTokens::from_pairs(&crate::config::split_pairs(s)?)
    }
}

/// A netrc or token file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    /// The file could not be read.
    #[error("cannot read netrc file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid netrc (the offending text is not shown: it may be a password).
    #[error("invalid netrc file {path} near line {line}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Where.
        line: usize,
    },
}

/// A login and password from netrc.
#[derive(Clone)]
struct Login {
    user: String,
    password: Option<String>,
}

/// What the upstream clients add to each request, by host.
#[derive(Clone, Default)]
pub struct Credentials {
    tokens: HostTokens,
    machines: BTreeMap<String, Login>,
    default: Option<Login>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("tokens", &self.tokens)
            .field("netrc_hosts", &self.machines.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Reads the netrc file, if one is named, and keeps the tokens.
    pub fn load(
        tokens: &HostTokens,
        netrc: Option<&Path>,
    ) -> Result<Credentials, CredentialsError> {
        let mut creds = Credentials {
            tokens: tokens.clone(),
            ..Credentials::default()
        };
        if let Some(path) = netrc {
            let file = std::fs::File::open(path).map_err(|source| CredentialsError::Read {
                path: path.to_owned(),
                source,
            })?;
            let parsed =
                netrc::Netrc::parse(std::io::BufReader::new(file)).map_err(|e| match e {
                    netrc::Error::Io(source) => CredentialsError::Read {
                        path: path.to_owned(),
                        source,
                    },
                    netrc::Error::Parse(_, line) => CredentialsError::Parse {
                        path: path.to_owned(),
                        line,
                    },
                })?;
            for (host, machine) in parsed.hosts {
                // Like curl and the go command: the first entry for a host wins.
                creds
                    .machines
                    .entry(host.to_ascii_lowercase())
                    .or_insert(Login {
                        user: machine.login,
                        password: machine.password,
                    });
            }
            creds.default = parsed.default.map(|m| Login {
                user: m.login,
                password: m.password,
            });
        }
        Ok(creds)
    }

    /// Adds authentication for `url` to `request`: credentials in the URL itself win (reqwest
    /// sends them), then a bearer token for the host, then netrc's machine, then its default.
    pub fn apply(&self, request: reqwest::RequestBuilder, url: &Url) -> reqwest::RequestBuilder {
        if !url.username().is_empty() || url.password().is_some() {
            return request;
        }
        if let Some(token) = self.tokens.for_url(url) {
            return request.bearer_auth(token);
        }
        let login = url
            .host_str()
            .and_then(|h| self.machines.get(&h.to_ascii_lowercase()))
            .or(self.default.as_ref());
        match login {
            Some(l) => request.basic_auth(&l.user, l.password.as_ref()),
            None => request,
        }
    }
}

/// `url` with any user and password replaced by `REDACTED`, without a trailing slash.
pub fn redact_url(url: &Url) -> String {
    let mut url = url.clone();
    if !url.username().is_empty() || url.password().is_some() {
        let _ = url.set_username("REDACTED");
        let _ = url.set_password(None);
    }
    url.as_str().trim_end_matches('/').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(creds: &Credentials, url: &str) -> Option<String> {
        let url = Url::parse(url).unwrap();
        let request = creds
            .apply(reqwest::Client::new().get(url.clone()), &url)
            .build()
            .unwrap();
        request
            .headers()
            .get(reqwest::header::AUTHORIZATION)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    #[test]
    fn tokens_then_netrc_machine_then_default() {
        let dir = tempfile::tempdir().unwrap();
        let netrc = dir.path().join("netrc");
        std::fs::write(
            &netrc,
            "machine proxy.corp login alice password s3cret\ndefault login anon password guest\n",
        )
        .unwrap();
        let tokens: HostTokens = "goproxy.io=tok1, other.example:8443=tok2".parse().unwrap();
        let creds = Credentials::load(&tokens, Some(&netrc)).unwrap();
        assert_eq!(
            header(&creds, "https://goproxy.io/x").unwrap(),
            "Bearer tok1"
        );
        assert_eq!(
            header(&creds, "https://other.example:8443/").unwrap(),
            "Bearer tok2"
        );
        // alice:s3cret
        assert_eq!(
            header(&creds, "https://proxy.corp/").unwrap(),
            "Basic YWxpY2U6czNjcmV0"
        );
        // anon:guest
        assert_eq!(
            header(&creds, "https://else.example/").unwrap(),
            "Basic YW5vbjpndWVzdA=="
        );
        // u:p from the URL itself, not netrc
        assert_eq!(
            header(&creds, "https://u:p@proxy.corp/").unwrap(),
            "Basic dTpw"
        );
        assert!(header(&Credentials::default(), "https://proxy.corp/").is_none());
    }

    #[test]
    fn secrets_are_never_shown() {
        let tokens: HostTokens = "goproxy.io=hunter2".parse().unwrap();
        assert!(!format!("{tokens:?} {}", tokens.redacted()).contains("hunter2"));
        let creds = Credentials::load(&tokens, None).unwrap();
        assert!(!format!("{creds:?}").contains("hunter2"));
        let dir = tempfile::tempdir().unwrap();
        let netrc = dir.path().join("netrc");
        std::fs::write(&netrc, "machine a login b password hunter2 bogus\n").unwrap();
        if let Err(e) = Credentials::load(&tokens, Some(&netrc)) {
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
        assert!("=x".parse::<HostTokens>().is_err());
        assert!("h=".parse::<HostTokens>().is_err());
    }
}
