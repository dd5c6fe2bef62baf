//! The `modstash` command line: `serve`, `config show`, and the storage inspection commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::config::{
    ConfigError, FileSettings, LeaseSpec, Settings, parse_duration, parse_env_pair, parse_named,
    parse_named_duration,
};
use crate::module::ModulePatterns;
use crate::policy::{DownloadMode, Policy};
use crate::storage::StorageUrl;
use crate::sumdb::SumdbSpec;
use crate::upstream::{HostTokens, UpstreamSpec};

/// A Go module proxy that fetches each module@version once and keeps it forever.
#[derive(Debug, Parser)]
#[command(name = "modstash", version, about)]
pub struct Cli {
    /// Config file (TOML). Missing is fine unless named explicitly.
    #[arg(long, global = true, env = "MODSTASH_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Log format.
    #[arg(long, global = true, env = "MODSTASH_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format (the filter comes from `RUST_LOG`, default `info`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the GOPROXY protocol.
    Serve(ServeArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// List stored modules and versions, with zip size and fetch time.
    Ls(crate::inspect::args::LsArgs),
    /// Check stored versions, lists, orphans and leftovers (exit status 1 if problems remain).
    ///
    /// `--repair` rewrites wrong lists and deletes orphans and staging leftovers, never a
    /// committed version's files.
    Verify(crate::inspect::args::VerifyArgs),
    /// Delete one stored version and take it out of `@v/list`.
    Rm(crate::inspect::args::RmArgs),
    /// Fetch into storage every version a go.sum, go.mod or list file names (exit status 1 if
    /// any fails or does not match go.sum).
    Prefetch(PrefetchArgs),
}

/// `modstash prefetch`.
#[derive(Debug, Args)]
pub struct PrefetchArgs {
    /// go.sum, go.mod, or list files (`module@version` per line, `#` comments).
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
    /// Versions fetched at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub jobs: u16,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Storage, upstream, lease and the rest, as for `serve`.
    #[command(flatten)]
    pub settings: ServeArgs,
}

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings (defaults < file < env < flags) as TOML, secrets redacted.
    Show(ServeArgs),
}

/// Flags of `serve`; each also reads a `MODSTASH_*` variable and overrides `modstash.toml`.
#[derive(Debug, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on [default: 127.0.0.1:3000].
    #[arg(long, env = "MODSTASH_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Storage URL: file://PATH, s3://BUCKET/PREFIX or memory:// [default: file://./storage].
    #[arg(long, env = "MODSTASH_STORAGE")]
    pub storage: Option<StorageUrl>,
    /// Upstream proxies in GOPROXY syntax (`,` falls through on 404/410, `|` on any error; `off`)
    /// [default: https://proxy.golang.org].
    #[arg(long, env = "MODSTASH_UPSTREAM")]
    pub upstream: Option<UpstreamSpec>,
    /// How long upstream list/@latest answers are reused [default: 60s].
    #[arg(long, env = "MODSTASH_LIST_TTL", value_parser = parse_duration)]
    pub list_ttl: Option<Duration>,
    /// How long upstream "not found" answers are remembered [default: 5s].
    #[arg(long, env = "MODSTASH_NEGATIVE_TTL", value_parser = parse_duration)]
    pub negative_ttl: Option<Duration>,
    /// Timeout to connect to an upstream [default: 10s].
    #[arg(long, env = "MODSTASH_UPSTREAM_CONNECT_TIMEOUT", value_parser = parse_duration)]
    pub upstream_connect_timeout: Option<Duration>,
    /// Timeout for a whole upstream metadata answer (list, .info, .mod) [default: 60s].
    #[arg(long, env = "MODSTASH_UPSTREAM_TIMEOUT", value_parser = parse_duration)]
    pub upstream_timeout: Option<Duration>,
    /// Longest pause inside an upstream body before it counts as stalled [default: 30s].
    #[arg(long, env = "MODSTASH_UPSTREAM_READ_TIMEOUT", value_parser = parse_duration)]
    pub upstream_read_timeout: Option<Duration>,
    /// Upstream requests at once (serving stored modules never waits for these) [default: 64].
    #[arg(long, env = "MODSTASH_UPSTREAM_CONCURRENCY")]
    pub upstream_concurrency: Option<usize>,
    /// Private module patterns in GOPRIVATE syntax (`*.corp.example.com,github.com/acme/*`):
    /// always fetched `direct` with the go command, never looked up in a checksum database.
    #[arg(long, env = "MODSTASH_PRIVATE")]
    pub private: Option<ModulePatterns>,
    /// How misses are answered when no `[[rule]]` says otherwise: sync, async, redirect or none
    /// [default: sync].
    #[arg(long, env = "MODSTASH_DOWNLOAD_MODE")]
    pub download_mode: Option<DownloadMode>,
    /// The go command for `direct` fetches [default: go, from PATH].
    #[arg(long, env = "MODSTASH_GO_BINARY")]
    pub go_binary: Option<PathBuf>,
    /// Extra environment for the go command of `direct` fetches, `KEY=value` (repeatable; in the
    /// variable, comma-separated), e.g. `GIT_CONFIG_GLOBAL=/etc/modstash/gitconfig`.
    #[arg(long, env = "MODSTASH_DIRECT_ENV", value_parser = parse_env_pair, value_delimiter = ',')]
    pub direct_env: Vec<(String, String)>,
    /// go commands running at once for `direct` fetches [default: 4].
    #[arg(long, env = "MODSTASH_DIRECT_CONCURRENCY")]
    pub direct_concurrency: Option<usize>,
    /// Longest one `direct` fetch may take [default: 10m].
    #[arg(long, env = "MODSTASH_DIRECT_TIMEOUT", value_parser = parse_duration)]
    pub direct_timeout: Option<Duration>,
    /// Lease backend: `memory` (one process), `storage` (lease objects in the shared storage) or
    /// `redis://[:password@]host:port[/db]` [default: memory].
    #[arg(long, env = "MODSTASH_LEASE")]
    pub lease: Option<LeaseSpec>,
    /// Lease time-to-live; renewed at a third of it [default: 30s].
    #[arg(long, env = "MODSTASH_LEASE_TTL", value_parser = parse_duration)]
    pub lease_ttl: Option<Duration>,
    /// How long shutdown waits for in-flight requests [default: 30s].
    #[arg(long, env = "MODSTASH_SHUTDOWN_GRACE", value_parser = parse_duration)]
    pub shutdown_grace: Option<Duration>,
    /// Bytes of small files (.info, .mod) kept in memory [default: 67108864].
    #[arg(long, env = "MODSTASH_MEMORY_CACHE_BYTES")]
    pub memory_cache_bytes: Option<u64>,
    /// Bytes per range request when streaming zips from remote storage [default: 4194304].
    #[arg(long, env = "MODSTASH_STORAGE_READ_CHUNK")]
    pub storage_read_chunk: Option<u64>,
    /// Range requests in flight per zip download from remote storage [default: 8].
    #[arg(long, env = "MODSTASH_STORAGE_READ_WINDOW")]
    pub storage_read_window: Option<usize>,
    /// Bytes of range requests in flight across all downloads from remote storage
    /// [default: 268435456].
    #[arg(long, env = "MODSTASH_STORAGE_READ_BUDGET")]
    pub storage_read_budget: Option<u64>,
    /// Connections served at once; more wait in the accept backlog [default: 16384].
    #[arg(long, env = "MODSTASH_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// How long a client may take to send its request headers [default: 10s].
    #[arg(long, env = "MODSTASH_HEADER_READ_TIMEOUT", value_parser = parse_duration)]
    pub header_read_timeout: Option<Duration>,
    /// Checksum databases proxied under /sumdb/NAME/: `name=url,...` or `off`
    /// [default: sum.golang.org=https://sum.golang.org].
    #[arg(long, env = "MODSTASH_SUMDB")]
    pub sumdb: Option<SumdbSpec>,
    /// A netrc file: its logins are sent (basic auth) to matching upstream hosts.
    #[arg(long, env = "MODSTASH_UPSTREAM_NETRC", value_name = "FILE")]
    pub upstream_netrc: Option<PathBuf>,
    /// Bearer tokens for upstream hosts, `host=token,...` (prefer the env or the file to a flag:
    /// flags show in `ps`).
    #[arg(long, env = "MODSTASH_UPSTREAM_TOKENS", hide_env_values = true)]
    pub upstream_tokens: Option<HostTokens>,
    /// Client authentication: basic-auth users, `user:HASH` lines (bcrypt `$2y$...` or
    /// `sha256:HEX`).
    #[arg(long, env = "MODSTASH_AUTH_USERS", value_name = "FILE")]
    pub auth_users: Option<PathBuf>,
    /// Client authentication: bearer tokens, `name:sha256:HEX` lines.
    #[arg(long, env = "MODSTASH_AUTH_TOKENS", value_name = "FILE")]
    pub auth_tokens: Option<PathBuf>,
    /// Serve /metrics without credentials even when authentication is on [default: false].
    #[arg(long, env = "MODSTASH_METRICS_PUBLIC", num_args = 0..=1, default_missing_value = "true")]
    pub metrics_public: Option<bool>,
    /// Benchmarks only: latency added to every storage read, to stand in for a remote bucket.
    #[arg(long, env = "MODSTASH_INJECT_STORAGE_LATENCY", value_parser = parse_duration, hide = true)]
    pub inject_storage_latency: Option<Duration>,
    /// Benchmarks only: per-request storage read bandwidth in bytes/s (S3-like per-connection limits).
    #[arg(long, env = "MODSTASH_INJECT_STORAGE_BANDWIDTH", hide = true)]
    pub inject_storage_bandwidth: Option<u64>,
}

impl ServeArgs {
    /// Layers flags/env over the file over the defaults, and validates the result.
    pub fn resolve(&self, file: &FileSettings) -> Result<Settings, ConfigError> {
        let d = Settings::default();
        let dur = |flag: Option<Duration>, file: &Option<String>, name, default| match (flag, file)
        {
            (Some(v), _) => Ok(v),
            (None, Some(s)) => parse_named_duration(name, s),
            (None, None) => Ok(default),
        };
        let settings = Settings {
            listen: match (self.listen, &file.listen) {
                (Some(v), _) => v,
                (None, Some(s)) => parse_named("listen", s)?,
                (None, None) => d.listen,
            },
            storage: match (&self.storage, &file.storage) {
                (Some(v), _) => v.clone(),
                (None, Some(s)) => parse_named("storage", s)?,
                (None, None) => d.storage,
            },
            upstream: match (&self.upstream, &file.upstream) {
                (Some(v), _) => v.clone(),
                (None, Some(s)) => parse_named("upstream", s)?,
                (None, None) => d.upstream,
            },
            private: match (&self.private, &file.private) {
                (Some(v), _) => v.clone(),
                (None, Some(s)) => parse_named("private", s)?,
                (None, None) => d.private,
            },
            list_ttl: dur(self.list_ttl, &file.list_ttl, "list-ttl", d.list_ttl)?,
            negative_ttl: dur(
                self.negative_ttl,
                &file.negative_ttl,
                "negative-ttl",
                d.negative_ttl,
            )?,
            upstream_connect_timeout: dur(
                self.upstream_connect_timeout,
                &file.upstream_connect_timeout,
                "upstream-connect-timeout",
                d.upstream_connect_timeout,
            )?,
            upstream_timeout: dur(
                self.upstream_timeout,
                &file.upstream_timeout,
                "upstream-timeout",
                d.upstream_timeout,
            )?,
            upstream_read_timeout: dur(
                self.upstream_read_timeout,
                &file.upstream_read_timeout,
                "upstream-read-timeout",
                d.upstream_read_timeout,
            )?,
            upstream_concurrency: self
                .upstream_concurrency
                .or(file.upstream_concurrency)
                .unwrap_or(d.upstream_concurrency),
            policy: {
                let mode = match (self.download_mode, &file.download_mode) {
                    (Some(m), _) => m,
                    (None, Some(s)) => parse_named("download-mode", s)?,
                    (None, None) => DownloadMode::default(),
                };
                Policy::new(
                    file.rule.as_deref().unwrap_or_default(),
                    file.deny.as_deref().unwrap_or_default(),
                    mode,
                )
                .map_err(|message| ConfigError::Invalid {
                    name: "rule",
                    message,
                })?
            },
            go_binary: self
                .go_binary
                .clone()
                .or_else(|| file.go_binary.clone())
                .unwrap_or(d.go_binary),
            direct_env: if !self.direct_env.is_empty() {
                self.direct_env.clone()
            } else {
                file.direct_env
                    .iter()
                    .flatten()
                    .map(|pair| {
                        parse_env_pair(pair).map_err(|message| ConfigError::Invalid {
                            name: "direct-env",
                            message,
                        })
                    })
                    .collect::<Result<_, _>>()?
            },
            direct_concurrency: self
                .direct_concurrency
                .or(file.direct_concurrency)
                .unwrap_or(d.direct_concurrency),
            direct_timeout: dur(
                self.direct_timeout,
                &file.direct_timeout,
                "direct-timeout",
                d.direct_timeout,
            )?,
            lease: match (&self.lease, &file.lease) {
                (Some(v), _) => v.clone(),
                (None, Some(s)) => parse_named("lease", s)?,
                (None, None) => d.lease,
            },
            lease_ttl: dur(self.lease_ttl, &file.lease_ttl, "lease-ttl", d.lease_ttl)?,
            shutdown_grace: dur(
                self.shutdown_grace,
                &file.shutdown_grace,
                "shutdown-grace",
                d.shutdown_grace,
            )?,
            memory_cache_bytes: self
                .memory_cache_bytes
                .or(file.memory_cache_bytes)
                .unwrap_or(d.memory_cache_bytes),
            storage_read_chunk: self
                .storage_read_chunk
                .or(file.storage_read_chunk)
                .unwrap_or(d.storage_read_chunk),
            storage_read_window: self
                .storage_read_window
                .or(file.storage_read_window)
                .unwrap_or(d.storage_read_window),
            storage_read_budget: self
                .storage_read_budget
                .or(file.storage_read_budget)
                .unwrap_or(d.storage_read_budget),
            max_connections: self
                .max_connections
                .or(file.max_connections)
                .unwrap_or(d.max_connections),
            header_read_timeout: dur(
                self.header_read_timeout,
                &file.header_read_timeout,
                "header-read-timeout",
                d.header_read_timeout,
            )?,
            sumdb: match (&self.sumdb, &file.sumdb) {
                (Some(v), _) => v.clone(),
                (None, Some(p)) => p.parse("sumdb", SumdbSpec::from_pairs)?,
                (None, None) => d.sumdb,
            },
            upstream_netrc: self.upstream_netrc.clone().or(file.upstream_netrc.clone()),
            upstream_tokens: match (&self.upstream_tokens, &file.upstream_tokens) {
                (Some(v), _) => v.clone(),
                (None, Some(p)) => p.parse("upstream-tokens", HostTokens::from_pairs)?,
                (None, None) => d.upstream_tokens,
            },
            auth_users: self.auth_users.clone().or(file.auth_users.clone()),
            auth_tokens: self.auth_tokens.clone().or(file.auth_tokens.clone()),
            metrics_public: self
                .metrics_public
                .or(file.metrics_public)
                .unwrap_or(d.metrics_public),
            inject_storage_latency: self.inject_storage_latency.unwrap_or_default(),
            inject_storage_bandwidth: self.inject_storage_bandwidth.unwrap_or_default(),
        };
        settings.validate()?;
        Ok(settings)
    }
}

impl Cli {
    /// Reads the config file this invocation names (or the default `modstash.toml`, if present).
    pub fn file_settings(&self) -> Result<FileSettings, ConfigError> {
        match &self.config {
            Some(path) => FileSettings::load(path, true),
            None => FileSettings::load(std::path::Path::new("modstash.toml"), false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_which_overrides_defaults() {
        let file: FileSettings =
            toml::from_str("listen = \"0.0.0.0:9000\"\nlist-ttl = \"5m\"\nupstream = \"off\"")
                .unwrap();
        let cli = Cli::try_parse_from(["modstash", "serve", "--list-ttl", "10s"]).unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let s = args.resolve(&file).unwrap();
        assert_eq!(s.listen.to_string(), "0.0.0.0:9000");
        assert_eq!(s.list_ttl, Duration::from_secs(10));
        assert!(s.upstream.is_off());
        assert_eq!(s.lease_ttl, Settings::default().lease_ttl);
    }

    #[test]
    fn bad_file_values_name_the_setting() {
        let file: FileSettings = toml::from_str("list-ttl = \"soon\"").unwrap();
        let err = ServeArgs::default().resolve(&file).unwrap_err().to_string();
        assert!(err.contains("list-ttl"), "{err}");
        let file: FileSettings = toml::from_str("upstream = \"direct,https://a.example\"").unwrap();
        let err = ServeArgs::default().resolve(&file).unwrap_err().to_string();
        assert!(err.contains("direct"), "{err}");
    }

    #[test]
    fn direct_settings_and_policy_come_from_the_file_and_secrets_stay_hidden() {
        let file: FileSettings = toml::from_str(
            "upstream = \"https://proxy.golang.org,direct\"\nprivate = \"*.corp.example.com\"\n\
             direct-env = [\"NETRC=/etc/netrc\", \"GITHUB_TOKEN=ghp_secret\"]\n\
             download-mode = \"async\"\n\
             [[rule]]\nmatch = \"github.com/acme\"\naction = \"direct\"\n",
        )
        .unwrap();
        let s = ServeArgs::default().resolve(&file).unwrap();
        assert!(s.upstream.ends_in_direct());
        assert!(s.always_direct().matches("git.corp.example.com/x"));
        assert!(s.always_direct().matches("github.com/acme/lib"));
        assert_eq!(
            s.direct_env[1],
            ("GITHUB_TOKEN".into(), "ghp_secret".into())
        );
        let shown = s.to_toml();
        assert!(!shown.contains("ghp_secret"), "{shown}");
        assert!(shown.contains("GITHUB_TOKEN=REDACTED"), "{shown}");
        assert!(shown.contains("download-mode = \"async\""), "{shown}");
        let bad: FileSettings = toml::from_str("direct-env = [\"NOEQUALS\"]").unwrap();
        assert!(ServeArgs::default().resolve(&bad).is_err());
    }

    #[test]
    fn sumdb_and_tokens_come_as_text_or_tables() {
        let file: FileSettings = toml::from_str(
            "metrics-public = true\n[sumdb]\n\"sum.example.com\" = \"http://127.0.0.1:1\"\n[upstream-tokens]\n\"proxy.corp\" = \"hunter2\"\n",
        )
        .unwrap();
        let s = ServeArgs::default().resolve(&file).unwrap();
        assert!(s.sumdb.url("sum.example.com").is_some());
        assert!(s.sumdb.url("sum.golang.org").is_none());
        assert!(s.metrics_public);
        let shown = s.to_toml();
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(
            shown.contains("upstream-tokens = \"proxy.corp=REDACTED\""),
            "{shown}"
        );
        let file: FileSettings = toml::from_str("sumdb = \"off\"").unwrap();
        assert!(ServeArgs::default().resolve(&file).unwrap().sumdb.is_off());
        let cli = Cli::try_parse_from([
            "modstash",
            "serve",
            "--sumdb",
            "a.example=https://a.example",
        ])
        .unwrap();
        let Command::Serve(args) = cli.command else {
            panic!("not serve")
        };
        let s = args.resolve(&FileSettings::default()).unwrap();
        assert!(s.sumdb.url("a.example").is_some());
        let file: FileSettings = toml::from_str("sumdb = \"Bad Name=x\"").unwrap();
        let err = ServeArgs::default().resolve(&file).unwrap_err().to_string();
        assert!(err.contains("sumdb"), "{err}");
    }

    #[test]
    fn bad_flags_are_refused_by_the_parser() {
        for args in [
            ["modstash", "serve", "--listen", "nowhere"],
            ["modstash", "serve", "--storage", "gs://x"],
            ["modstash", "serve", "--lease-ttl", "ages"],
            ["modstash", "serve", "--upstream", "ftp://x"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
    }
}
