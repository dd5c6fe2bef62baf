//! `StorageUrl`: where modules are stored, as a URL (`file://PATH`, `s3://bucket/prefix`, `memory://`).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// A parsed storage location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageUrl {
    /// A local directory (created if missing).
    File(PathBuf),
    /// Process memory: lost on exit; for tests and trials.
    Memory,
    /// An S3-compatible bucket with an optional key prefix.
    S3 {
        /// Bucket name.
        bucket: String,
        /// Key prefix inside the bucket, without leading or trailing `/`.
        prefix: String,
    },
}

impl Default for StorageUrl {
    fn default() -> Self {
        StorageUrl::File(PathBuf::from("./storage"))
    }
}

impl FromStr for StorageUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "memory://" || s == "memory" {
            return Ok(StorageUrl::Memory);
        }
        if let Some(path) = s.strip_prefix("file://") {
            if path.is_empty() {
                return Err("file:// needs a directory, e.g. file://./storage".into());
            }
            return Ok(StorageUrl::File(PathBuf::from(path)));
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err("s3:// needs a bucket, e.g. s3://my-bucket/modules".into());
            }
            return Ok(StorageUrl::S3 {
                bucket: bucket.to_owned(),
                prefix: prefix.trim_matches('/').to_owned(),
            });
        }
        if s.contains("://") {
            return Err(format!(
                "unsupported storage URL {s:?} (use file://PATH, s3://BUCKET/PREFIX or memory://)"
            ));
        }
        // A bare path is the natural thing to type for a local directory.
        Ok(StorageUrl::File(PathBuf::from(s)))
    }
}

impl fmt::Display for StorageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StorageUrl::File(p) => write!(f, "file://{}", p.display()),
            StorageUrl::Memory => f.write_str("memory://"),
            StorageUrl::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            StorageUrl::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
        }
    }
}

impl StorageUrl {
    /// The URL for display; storage URLs carry no secrets (credentials come from the environment).
    pub fn redacted(&self) -> String {
        self.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_scheme() {
        assert_eq!(
            "file://./storage".parse::<StorageUrl>().unwrap(),
            StorageUrl::File("./storage".into())
        );
        assert_eq!(
            "memory://".parse::<StorageUrl>().unwrap(),
            StorageUrl::Memory
        );
        assert_eq!(
            "s3://b/p/q/".parse::<StorageUrl>().unwrap(),
            StorageUrl::S3 {
                bucket: "b".into(),
                prefix: "p/q".into()
            }
        );
        assert!("gs://b".parse::<StorageUrl>().is_err());
        assert!("s3://".parse::<StorageUrl>().is_err());
        assert!("file://".parse::<StorageUrl>().is_err());
    }

    #[test]
    fn display_round_trips() {
        for s in ["file:///tmp/x", "memory://", "s3://b", "s3://b/p"] {
            assert_eq!(s.parse::<StorageUrl>().unwrap().to_string(), s);
        }
    }
}
