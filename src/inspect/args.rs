//! The command-line flags of the inspection commands (`ls`, `verify`, `rm`).

use std::time::Duration;

use clap::Args;

use crate::config::{ConfigError, FileSettings, parse_duration, parse_named};
use crate::storage::StorageUrl;

/// The storage to inspect: the same setting, with the same precedence, as `serve`'s.
#[derive(Debug, Default, Args)]
pub struct StorageArgs {
    /// Storage URL: file://PATH, s3://BUCKET/PREFIX or memory:// [default: the config file's
    /// `storage`, else file://./storage].
    #[arg(long, env = "MODSTASH_STORAGE")]
    pub storage: Option<StorageUrl>,
}

impl StorageArgs {
    /// Flag or environment, else the config file, else the default.
    pub fn resolve(&self, file: &FileSettings) -> Result<StorageUrl, ConfigError> {
        match (&self.storage, &file.storage) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(s)) => parse_named("storage", s),
            (None, None) => Ok(StorageUrl::default()),
        }
    }
}

/// `modstash ls`.
#[derive(Debug, Default, Args)]
pub struct LsArgs {
    /// Storage to read.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Only modules whose path matches this glob (`*` also matches `/`), e.g. 'golang.org/x/*'.
    #[arg(value_name = "PATTERN")]
    pub pattern: Option<String>,
    /// Print one JSON array instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `modstash verify`.
#[derive(Debug, Default, Args)]
pub struct VerifyArgs {
    /// Storage to check.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// Rewrite wrong `@v/list` files and delete orphans and staging leftovers (never a committed
    /// version's files).
    #[arg(long)]
    pub repair: bool,
    /// Print one JSON object instead of text.
    #[arg(long)]
    pub json: bool,
    /// Orphans and staging files written more recently than this may be a commit in progress:
    /// reported, never deleted.
    #[arg(long, value_parser = parse_duration, default_value = "1h")]
    pub grace: Duration,
    /// Versions checked at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
}

/// `modstash rm`.
#[derive(Debug, Default, Args)]
pub struct RmArgs {
    /// Storage to delete from.
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The version to delete, e.g. golang.org/x/mod@v0.20.0.
    #[arg(value_name = "MODULE@VERSION")]
    pub module_version: String,
    /// Delete without asking (required when stdin is not a terminal).
    #[arg(long, short = 'y')]
    pub yes: bool,
}
