//! Settings: defaults < `modstash.toml` < `MODSTASH_*` env < flags, validated once at start into typed values.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use serde::Deserialize;

use crate::module::ModulePatterns;
use crate::policy::{DenyFile, Policy, RuleFile};
use crate::storage::StorageUrl;
use crate::sumdb::SumdbSpec;
use crate::upstream::{HostTokens, UpstreamSpec};

/// Errors in configuration, reported once at start-up.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML for our schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A value is out of range or malformed.
    #[error("invalid setting `{name}`: {message}")]
    Invalid {
        /// The setting's name as in the config file.
        name: &'static str,
        /// Why.
        message: String,
    },
}

/// Which lease backend coordinates cold fetches across processes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseSpec {
    /// In-process only: one replica.
    Memory,
    /// Lease objects in the module storage (conditional create): a fleet sharing a bucket or
    /// directory needs nothing else.
    Storage,
    /// A Redis server: `redis://[:password@]host:port[/db]`.
    Redis(url::Url),
}

impl LeaseSpec {
    /// The spec as text, any Redis password redacted.
    pub fn redacted(&self) -> String {
        match self {
            LeaseSpec::Memory => "memory".into(),
            LeaseSpec::Storage => "storage".into(),
            LeaseSpec::Redis(url) => crate::stash::lease::RedisLease::redacted_url(url),
        }
    }
}

impl FromStr for LeaseSpec {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "memory" => Ok(LeaseSpec::Memory),
            "storage" => Ok(LeaseSpec::Storage),
            other if other.starts_with("redis://") => parse_redis_url(other).map(LeaseSpec::Redis),
            other if other.starts_with("rediss://") => Err(format!(
                "lease backend {other:?}: TLS to Redis (rediss://) is not supported; use redis://"
            )),
            other => Err(format!(
                "unknown lease backend {other:?} (supported: memory, storage, redis://host:port[/db])"
            )),
        }
    }
}

/// Checks `redis://[user:password@]host[:port][/db]`, so mistakes show at start, not at first use.
fn parse_redis_url(s: &str) -> Result<url::Url, String> {
    let url = url::Url::parse(s).map_err(|e| format!("invalid Redis URL: {e}"))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err("invalid Redis URL: no host (expected redis://host:port[/db])".into());
    }
    let db = url.path().trim_start_matches('/');
    if !db.is_empty() && db.parse::<u32>().is_err() {
        return Err(format!(
            "invalid Redis URL: the path must be a database number, not {db:?}"
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("invalid Redis URL: no query or fragment allowed".into());
    }
    Ok(url)
}

impl fmt::Display for LeaseSpec {
    /// Redacted: a Redis password never reaches logs through `Display`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// The effective, validated settings of `modstash serve`.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Where modules are stored.
    pub storage: StorageUrl,
    /// Where modules come from, in GOPROXY syntax.
    pub upstream: UpstreamSpec,
    /// Private modules, in GOPRIVATE syntax: always fetched `direct`, never looked up in a
    /// checksum database.
    pub private: ModulePatterns,
    /// How long an upstream `list`/`@latest` answer is reused.
    pub list_ttl: Duration,
    /// How long a failed or not-found upstream answer is remembered.
    pub negative_ttl: Duration,
    /// Timeout to connect to an upstream.
    pub upstream_connect_timeout: Duration,
    /// Timeout for a whole upstream answer of metadata (`list`, `.info`, `.mod`).
    pub upstream_timeout: Duration,
    /// Longest pause between two chunks of an upstream body (a stalled zip download fails after it).
    pub upstream_read_timeout: Duration,
    /// Upstream fetches running at once; separate from serving, so hits never queue behind misses.
    pub upstream_concurrency: usize,
    /// Rules, download modes and the version deny list (config file only).
    pub policy: Policy,
    /// The go command used for `direct` fetches.
    pub go_binary: PathBuf,
    /// Extra environment for the go command of `direct` fetches (`NETRC`, `GIT_CONFIG_GLOBAL`,
    /// `GONOSUMDB`...), on top of modstash's own environment. Values may hold secrets.
    pub direct_env: Vec<(String, String)>,
    /// go commands running at once for `direct` fetches.
    pub direct_concurrency: usize,
    /// Longest a `direct` fetch (one go command) may take.
    pub direct_timeout: Duration,
    /// Lease backend.
    pub lease: LeaseSpec,
    /// Lease time-to-live; the holder renews at a third of it.
    pub lease_ttl: Duration,
    /// How long shutdown waits for in-flight requests.
    pub shutdown_grace: Duration,
    /// Bytes of small files (`.info`, `.mod`) kept in memory.
    pub memory_cache_bytes: u64,
    /// Bytes per range request when streaming large objects from remote storage.
    pub storage_read_chunk: u64,
    /// Range requests in flight per download from remote storage.
    pub storage_read_window: usize,
    /// Bytes of range requests in flight across all downloads from remote storage (a chunk larger
    /// than the whole budget takes all of it).
    pub storage_read_budget: u64,
    /// Connections served at once; more wait in the kernel's accept backlog.
    pub max_connections: usize,
    /// How long a client may take to send its request headers.
    pub header_read_timeout: Duration,
    /// Checksum databases proxied under `/sumdb/{name}/`, by name.
    pub sumdb: SumdbSpec,
    /// A netrc file whose logins are sent to matching upstream hosts.
    pub upstream_netrc: Option<PathBuf>,
    /// Bearer tokens sent to upstream hosts.
    pub upstream_tokens: HostTokens,
    /// Client authentication: a file of `user:hash` lines (bcrypt or `sha256:HEX`).
    pub auth_users: Option<PathBuf>,
    /// Client authentication: a file of `name:sha256:HEX` lines, one per bearer token.
    pub auth_tokens: Option<PathBuf>,
    /// `/metrics` answers without credentials even when authentication is on.
    pub metrics_public: bool,
    /// Benchmarks only: latency added to every storage read (zero: none).
    pub inject_storage_latency: Duration,
    /// Benchmarks only: per-request read bandwidth of storage in bytes/s (zero: unlimited).
    pub inject_storage_bandwidth: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            listen: SocketAddr::from(([127, 0, 0, 1], 3000)),
            storage: StorageUrl::default(),
            upstream: UpstreamSpec::default(),
            private: ModulePatterns::default(),
            list_ttl: Duration::from_secs(60),
            negative_ttl: Duration::from_secs(5),
            upstream_connect_timeout: Duration::from_secs(10),
            upstream_timeout: Duration::from_secs(60),
            upstream_read_timeout: Duration::from_secs(30),
            upstream_concurrency: 64,
            policy: Policy::default(),
            go_binary: PathBuf::from("go"),
            direct_env: Vec::new(),
            direct_concurrency: 4,
            direct_timeout: Duration::from_secs(600),
            lease: LeaseSpec::Memory,
            lease_ttl: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(30),
            memory_cache_bytes: 64 * 1024 * 1024,
            storage_read_chunk: crate::storage::RangeReadOptions::default().chunk_size,
            storage_read_window: crate::storage::RangeReadOptions::default().window,
            storage_read_budget: 256 * 1024 * 1024,
            max_connections: 16_384,
            header_read_timeout: Duration::from_secs(10),
            sumdb: SumdbSpec::default(),
            upstream_netrc: None,
            upstream_tokens: HostTokens::default(),
            auth_users: None,
            auth_tokens: None,
            metrics_public: false,
            inject_storage_latency: Duration::ZERO,
            inject_storage_bandwidth: 0,
        }
    }
}

/// The optional `modstash.toml`; every field may be omitted.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case")]
pub struct FileSettings {
    /// See [`Settings::listen`].
    pub listen: Option<String>,
    /// See [`Settings::storage`].
    pub storage: Option<String>,
    /// See [`Settings::upstream`].
    pub upstream: Option<String>,
    /// See [`Settings::private`].
    pub private: Option<String>,
    /// See [`Settings::list_ttl`].
    pub list_ttl: Option<String>,
    /// See [`Settings::negative_ttl`].
    pub negative_ttl: Option<String>,
    /// See [`Settings::upstream_connect_timeout`].
    pub upstream_connect_timeout: Option<String>,
    /// See [`Settings::upstream_timeout`].
    pub upstream_timeout: Option<String>,
    /// See [`Settings::upstream_read_timeout`].
    pub upstream_read_timeout: Option<String>,
    /// See [`Settings::upstream_concurrency`].
    pub upstream_concurrency: Option<usize>,
    /// The default download mode (see [`Settings::policy`]).
    pub download_mode: Option<String>,
    /// `[[rule]]` tables.
    pub rule: Option<Vec<RuleFile>>,
    /// `[[deny]]` tables.
    pub deny: Option<Vec<DenyFile>>,
    /// See [`Settings::go_binary`].
    pub go_binary: Option<PathBuf>,
    /// See [`Settings::direct_env`]: `["KEY=value", ...]`.
    pub direct_env: Option<Vec<String>>,
    /// See [`Settings::direct_concurrency`].
    pub direct_concurrency: Option<usize>,
    /// See [`Settings::direct_timeout`].
    pub direct_timeout: Option<String>,
    /// See [`Settings::lease`].
    pub lease: Option<String>,
    /// See [`Settings::lease_ttl`].
    pub lease_ttl: Option<String>,
    /// See [`Settings::shutdown_grace`].
    pub shutdown_grace: Option<String>,
    /// See [`Settings::memory_cache_bytes`].
    pub memory_cache_bytes: Option<u64>,
    /// See [`Settings::storage_read_chunk`].
    pub storage_read_chunk: Option<u64>,
    /// See [`Settings::storage_read_window`].
    pub storage_read_window: Option<usize>,
    /// See [`Settings::storage_read_budget`].
    pub storage_read_budget: Option<u64>,
    /// See [`Settings::max_connections`].
    pub max_connections: Option<usize>,
    /// See [`Settings::header_read_timeout`].
    pub header_read_timeout: Option<String>,
    /// See [`Settings::sumdb`]: `"off"`, `"name=url,..."` or a table of name = url.
    pub sumdb: Option<Pairs>,
    /// See [`Settings::upstream_netrc`].
    pub upstream_netrc: Option<PathBuf>,
    /// See [`Settings::upstream_tokens`]: `"host=token,..."` or a table of host = token.
    pub upstream_tokens: Option<Pairs>,
    /// See [`Settings::auth_users`].
    pub auth_users: Option<PathBuf>,
    /// See [`Settings::auth_tokens`].
    pub auth_tokens: Option<PathBuf>,
    /// See [`Settings::metrics_public`].
    pub metrics_public: Option<bool>,
}

/// Builds a setting from `key = value` pairs.
pub(crate) type FromPairs<T> = fn(&[(&str, &str)]) -> Result<T, String>;

/// A file value written either as `"key=value,key=value"` text or as a TOML table.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum Pairs {
    /// `"key=value,key=value"` (or a word such as `off`).
    Text(String),
    /// `[table]` of key = "value".
    Table(BTreeMap<String, String>),
}

impl Pairs {
    /// Parses into a setting: text through `FromStr`, a table through `from_pairs`.
    pub(crate) fn parse<T>(
        &self,
        name: &'static str,
        from_pairs: FromPairs<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self {
            Pairs::Text(text) => parse_named(name, text),
            Pairs::Table(table) => from_pairs(
                &table
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect::<Vec<_>>(),
            )
            .map_err(|message| ConfigError::Invalid { name, message }),
        }
    }
}

/// Splits `key=value,key=value` (spaces around items allowed); a key or value may not be empty.
pub fn split_pairs(s: &str) -> Result<Vec<(&str, &str)>, String> {
    s.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && !v.trim().is_empty() => {
                Ok((k.trim(), v.trim()))
            }
            _ => Err(format!(
                "expected key=value, got {:?}",
                item.split('=').next().unwrap_or("")
            )),
        })
        .collect::<Result<Vec<_>, String>>()
        .and_then(|pairs| {
            if pairs.is_empty() {
                Err("expected key=value pairs separated by commas".into())
            } else {
                Ok(pairs)
            }
        })
}

impl FileSettings {
    /// Reads a config file; a missing default file is not an error, a missing named file is.
    pub fn load(path: &Path, must_exist: bool) -> Result<FileSettings, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !must_exist => {
                return Ok(FileSettings::default());
            }
            Err(source) => {
                return Err(ConfigError::Read {
                    path: path.to_owned(),
                    source,
                });
            }
        };
        toml::from_str(&text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string(),
        })
    }
}

/// Parses a duration such as `500ms`, `30s`, `5m`, `1h` (a bare number means seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 500ms, 30s, 5m or 1h"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "" | "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n.saturating_mul(60)),
        "h" => Duration::from_secs(n.saturating_mul(3600)),
        _ => return Err(format!("{s:?} has an unknown unit (use ms, s, m or h)")),
    };
    Ok(d)
}

/// Parses `KEY=value` for the go command's environment.
pub fn parse_env_pair(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not KEY=value"))?;
    let valid = !key.is_empty()
        && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !key.starts_with(|c: char| c.is_ascii_digit());
    if !valid {
        return Err(format!("{key:?} is not an environment variable name"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// Formats a duration the way [`parse_duration`] reads it.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_millis() != 0 || d.as_secs() == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{}s", d.as_secs())
    }
}

/// Parses a file value of type `T` into a setting, naming the setting on failure.
pub(crate) fn parse_named<T>(name: &'static str, value: &str) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    value.parse().map_err(|e: T::Err| ConfigError::Invalid {
        name,
        message: e.to_string(),
    })
}

/// Parses a file duration into a setting, naming the setting on failure.
pub(crate) fn parse_named_duration(
    name: &'static str,
    value: &str,
) -> Result<Duration, ConfigError> {
    parse_duration(value).map_err(|message| ConfigError::Invalid { name, message })
}

impl Settings {
    /// Modules fetched only by the go command: the private patterns and the `direct` rules.
    pub fn always_direct(&self) -> ModulePatterns {
        let mut all = vec![self.private.to_string()];
        all.extend(self.policy.direct_patterns());
        // Each part was parsed as patterns already, so their union parses too.
        all.join(",")
            .parse()
            .unwrap_or_else(|_| self.private.clone())
    }

    /// Checks cross-field rules that single values cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.max_connections == 0 || self.header_read_timeout.is_zero() {
            return Err(ConfigError::Invalid {
                name: "max-connections",
                message: "max-connections and header-read-timeout must be above zero".into(),
            });
        }
        if self.direct_concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "direct-concurrency",
                message: "must be at least 1".into(),
            });
        }
        if self.upstream_concurrency == 0 {
            return Err(ConfigError::Invalid {
                name: "upstream-concurrency",
                message: "must be at least 1".into(),
            });
        }
        if self.storage_read_chunk < 64 * 1024 || self.storage_read_window == 0 {
            return Err(ConfigError::Invalid {
                name: "storage-read-chunk",
                message: "chunks must be at least 64 KiB and the window at least 1".into(),
            });
        }
        let injecting = !self.inject_storage_latency.is_zero() || self.inject_storage_bandwidth > 0;
        if injecting && matches!(self.storage, StorageUrl::File(_)) {
            return Err(ConfigError::Invalid {
                name: "inject-storage-latency",
                message: "injected storage latency is for s3:// and memory:// storage only".into(),
            });
        }
        if self.lease_ttl < Duration::from_secs(1) {
            return Err(ConfigError::Invalid {
                name: "lease-ttl",
                message: "must be at least 1s (the holder renews at a third of it)".into(),
            });
        }
        Ok(())
    }

    /// The effective settings as `modstash.toml` text, secrets redacted.
    pub fn to_toml(&self) -> String {
        let lines = [
            ("listen", self.listen.to_string()),
            ("storage", self.storage.redacted()),
            ("upstream", self.upstream.redacted()),
            ("private", self.private.to_string()),
            ("list-ttl", format_duration(self.list_ttl)),
            ("negative-ttl", format_duration(self.negative_ttl)),
            (
                "upstream-connect-timeout",
                format_duration(self.upstream_connect_timeout),
            ),
            ("upstream-timeout", format_duration(self.upstream_timeout)),
            (
                "upstream-read-timeout",
                format_duration(self.upstream_read_timeout),
            ),
            ("download-mode", self.policy.default_mode().to_string()),
            ("go-binary", self.go_binary.display().to_string()),
            ("direct-timeout", format_duration(self.direct_timeout)),
            (
                "direct-env",
                // Names only: values may be tokens.
                self.direct_env
                    .iter()
                    .map(|(k, _)| format!("{k}=REDACTED"))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            ("lease", self.lease.redacted()),
            ("sumdb", self.sumdb.redacted()),
            ("lease-ttl", format_duration(self.lease_ttl)),
            ("shutdown-grace", format_duration(self.shutdown_grace)),
            (
                "header-read-timeout",
                format_duration(self.header_read_timeout),
            ),
        ];
        let (rules, denials) = self.policy.sizes();
        let mut out =
            format!("# {rules} [[rule]] and {denials} [[deny]] tables (from the config file)\n");
        for (k, v) in lines {
            out.push_str(&format!("{k} = {v:?}\n"));
        }
        for (k, v) in [
            ("upstream-concurrency", self.upstream_concurrency as u64),
            ("direct-concurrency", self.direct_concurrency as u64),
            ("memory-cache-bytes", self.memory_cache_bytes),
            ("storage-read-chunk", self.storage_read_chunk),
            ("storage-read-window", self.storage_read_window as u64),
            ("storage-read-budget", self.storage_read_budget),
            ("max-connections", self.max_connections as u64),
        ] {
            out.push_str(&format!("{k} = {v}\n"));
        }
        // Files are shown by path only: their contents are secrets.
        for (k, v) in [
            ("upstream-netrc", &self.upstream_netrc),
            ("auth-users", &self.auth_users),
            ("auth-tokens", &self.auth_tokens),
        ] {
            if let Some(path) = v {
                out.push_str(&format!("{k} = {:?}\n", path.display().to_string()));
            }
        }
        if !self.upstream_tokens.is_empty() {
            out.push_str(&format!(
                "upstream-tokens = {:?}\n",
                self.upstream_tokens.redacted()
            ));
        }
        out.push_str(&format!("metrics-public = {}\n", self.metrics_public));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_round_trip() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("30").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("5m").unwrap(), Duration::from_secs(300));
        assert!(parse_duration("5 minutes").is_err());
        assert!(parse_duration("").is_err());
        for d in [Duration::from_millis(1500), Duration::from_secs(60)] {
            assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }

    #[test]
    fn lease_specs_parse() {
        assert_eq!("memory".parse::<LeaseSpec>().unwrap(), LeaseSpec::Memory);
        assert_eq!("storage".parse::<LeaseSpec>().unwrap(), LeaseSpec::Storage);
        for ok in [
            "redis://127.0.0.1:6379",
            "redis://cache:6380/2",
            "redis://:pw@cache/0",
        ] {
            let spec: LeaseSpec = ok.parse().unwrap();
            assert!(matches!(spec, LeaseSpec::Redis(_)), "{ok}");
        }
        for bad in [
            "redis://",
            "redis://host/notanumber",
            "redis://host:6379/1?x=y",
            "rediss://host",
            "etcd://host",
            "",
        ] {
            assert!(bad.parse::<LeaseSpec>().is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn lease_redis_password_is_redacted() {
        let spec: LeaseSpec = "redis://user:hunter2@cache:6379/3".parse().unwrap();
        assert!(!spec.to_string().contains("hunter2"));
        let settings = Settings {
            lease: spec.clone(),
            ..Settings::default()
        };
        let text = settings.to_toml();
        assert!(!text.contains("hunter2"), "{text}");
        assert!(
            text.contains("lease = \"redis://user:REDACTED@cache:6379/3\""),
            "{text}"
        );
        // The spec keeps the password for connecting.
        let LeaseSpec::Redis(url) = spec else {
            panic!("not redis")
        };
        assert_eq!(url.password(), Some("hunter2"));
    }

    #[test]
    fn unknown_file_keys_are_refused() {
        let err = toml::from_str::<FileSettings>("listne = \"x\"").unwrap_err();
        assert!(err.to_string().contains("listne"));
    }
}
