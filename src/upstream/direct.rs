//! `direct`: modules fetched from their version-control origin by the go command itself.
//!
//! Every invocation runs in a fresh temporary GOPATH and module cache (nothing is shared between
//! fetches, so one bad repository cannot poison another), with `GOPROXY=direct`, under a bounded
//! worker pool and a timeout. The rest of the environment (git credentials through `NETRC`,
//! `GIT_CONFIG_*`, `GOPRIVATE`, `GONOSUMDB`, `GOSUMDB`...) is modstash's own, passed through, so
//! an operator configures private access exactly as for a developer machine.
//!
//! The three files of a version come from one `go mod download -json`; the fetcher keeps the
//! result for a minute so the concurrent `.info`/`.mod`/`.zip` requests of one flight share it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt};
use moka::future::Cache;
use serde::Deserialize;
use tokio::sync::Semaphore;

use super::error::{UpstreamError, reason_line};
use crate::module::{ModulePath, ModulePatterns, ModuleVersion, Version, VersionQuery};

/// Largest output accepted from one go command (its JSON is small; errors are one line).
const MAX_OUTPUT: usize = 4 << 20;

/// How the go command is run for `direct` fetches.
#[derive(Debug, Clone)]
pub struct DirectOptions {
    /// The go binary (a name on `PATH` or a path).
    pub go_binary: PathBuf,
    /// go commands running at once.
    pub concurrency: usize,
    /// Longest one go command may run.
    pub timeout: Duration,
    /// Private patterns, handed to the go command as `GOPRIVATE` (no checksum database for them).
    pub private: ModulePatterns,
    /// Extra environment (credentials, git configuration).
    pub env: Vec<(String, String)>,
}

/// One version downloaded by the go command; its temporary directory lives as long as this.
struct Downloaded {
    _dir: tempfile::TempDir,
    info: Bytes,
    go_mod: Bytes,
    zip: PathBuf,
    zip_size: u64,
}

/// Fetches modules with the go command.
#[derive(Clone)]
pub struct DirectFetcher {
    options: Arc<DirectOptions>,
    permits: Arc<Semaphore>,
    downloads: Cache<ModuleVersion, Arc<Downloaded>>,
}

impl std::fmt::Debug for DirectFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectFetcher")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What `go mod download -json` prints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DownloadJson {
    #[serde(default)]
    info: Option<PathBuf>,
    #[serde(default)]
    go_mod: Option<PathBuf>,
    #[serde(default)]
    zip: Option<PathBuf>,
    #[serde(default)]
    error: Option<String>,
}

/// What `go list -m -json` prints (with `-versions`, the tags).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListJson {
    #[serde(default)]
    version: Option<String>,
    #[serde(default)]
    time: Option<String>,
    #[serde(default)]
    versions: Vec<String>,
    #[serde(default)]
    error: Option<ListError>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListError {
    err: String,
}

impl DirectFetcher {
    /// A fetcher running the go command as `options` say.
    pub fn new(options: DirectOptions) -> DirectFetcher {
        DirectFetcher {
            permits: Arc::new(Semaphore::new(options.concurrency.max(1))),
            options: Arc::new(options),
            downloads: Cache::builder()
                .max_capacity(256)
                .time_to_live(Duration::from_secs(60))
                .build(),
        }
    }

    /// Tagged versions (`go list -m -versions`).
    pub async fn list(&self, path: &ModulePath) -> Result<Vec<Version>, UpstreamError> {
        let target = path.to_string();
        let out = self
            .run_list(&["list", "-m", "-versions", "-json", &target], &target)
            .await?;
        let mut versions: Vec<Version> = out
            .versions
            .iter()
            .filter_map(|v| Version::parse(v).ok())
            .filter(|v| !v.is_pseudo())
            .collect();
        versions.sort();
        versions.dedup();
        Ok(versions)
    }

    /// `@latest` as `.info` JSON: the highest tag, or a pseudo-version of the default branch.
    pub async fn latest(&self, path: &ModulePath) -> Result<Bytes, UpstreamError> {
        self.query(path, "latest").await
    }

    /// A non-canonical query (branch, commit, `v1.2`) as `.info` JSON naming the canonical version.
    pub async fn query_info(
        &self,
        path: &ModulePath,
        query: &VersionQuery,
    ) -> Result<Bytes, UpstreamError> {
        self.query(path, query.as_str()).await
    }

    async fn query(&self, path: &ModulePath, query: &str) -> Result<Bytes, UpstreamError> {
        let target = format!("{path}@{query}");
        let out = self
            .run_list(&["list", "-m", "-json", &target], &target)
            .await?;
        match (out.version, out.time) {
            (Some(version), Some(time)) => Ok(Bytes::from(
                serde_json::json!({ "Version": version, "Time": time }).to_string(),
            )),
            _ => Err(UpstreamError::NotFound(format!(
                "not found: {target}: the go command found no version"
            ))),
        }
    }

    /// `.info` of a canonical version, as the go command stored it.
    pub async fn info(&self, mv: &ModuleVersion) -> Result<Bytes, UpstreamError> {
        Ok(self.download(mv).await?.info.clone())
    }

    /// `.mod` of a canonical version.
    pub async fn go_mod(&self, mv: &ModuleVersion) -> Result<Bytes, UpstreamError> {
        Ok(self.download(mv).await?.go_mod.clone())
    }

    /// The zip of a canonical version as a stream of its file, and its size. The download's
    /// directory lives until the stream is dropped.
    pub async fn zip(
        &self,
        mv: &ModuleVersion,
    ) -> Result<
        (
            futures::stream::BoxStream<'static, Result<Bytes, UpstreamError>>,
            u64,
        ),
        UpstreamError,
    > {
        let downloaded = self.download(mv).await?;
        let file = tokio::fs::File::open(&downloaded.zip)
            .await
            .map_err(|e| direct_failure(mv.to_string(), format!("cannot open its zip: {e}")))?;
        let size = downloaded.zip_size;
        let label = mv.to_string();
        let stream = tokio_util::io::ReaderStream::with_capacity(file, 256 * 1024)
            .map_err(move |e| direct_failure(label.clone(), format!("reading its zip: {e}")))
            // Holding the download keeps its directory (and so the zip) until the stream ends.
            .inspect(move |_| {
                let _ = &downloaded;
            })
            .boxed();
        Ok((stream, size))
    }

    async fn download(&self, mv: &ModuleVersion) -> Result<Arc<Downloaded>, UpstreamError> {
        let this = self.clone();
        let key = mv.clone();
        self.downloads
            .try_get_with(mv.clone(), async move { this.download_now(&key).await })
            .await
            .map_err(|e: Arc<UpstreamError>| e.as_ref().clone())
    }

    async fn download_now(&self, mv: &ModuleVersion) -> Result<Arc<Downloaded>, UpstreamError> {
        let target = mv.to_string();
        let dir = work_dir(&target)?;
        let output = self
            .run_go(dir.path(), &["mod", "download", "-json", &target], &target)
            .await?;
        // On failure the go command exits non-zero and explains in the JSON's `Error`.
        let out = match serde_json::from_slice::<DownloadJson>(&output.stdout) {
            Ok(DownloadJson {
                error: Some(error), ..
            }) => return Err(classify(&target, &error)),
            Ok(out) if output.status.success() => out,
            _ => return Err(classify(&target, &String::from_utf8_lossy(&output.stderr))),
        };
        let (Some(info), Some(go_mod), Some(zip)) = (out.info, out.go_mod, out.zip) else {
            return Err(direct_failure(
                target,
                "the go command reported no files".into(),
            ));
        };
        // The go command only writes inside the directory we gave it.
        for file in [&info, &go_mod, &zip] {
            if !file.starts_with(dir.path()) {
                return Err(direct_failure(
                    target,
                    "the go command wrote outside its work directory".into(),
                ));
            }
        }
        let read = |p: PathBuf| async move { tokio::fs::read(&p).await.map(Bytes::from) };
        let (info_bytes, mod_bytes, zip_meta) =
            tokio::try_join!(read(info), read(go_mod), tokio::fs::metadata(&zip)).map_err(|e| {
                direct_failure(target.clone(), format!("cannot read its files: {e}"))
            })?;
        Ok(Arc::new(Downloaded {
            _dir: dir,
            info: info_bytes,
            go_mod: mod_bytes,
            zip,
            zip_size: zip_meta.len(),
        }))
    }

    /// `go list -m -json ...`: its JSON, or the error it printed (on stderr or in `Error`).
    async fn run_list(&self, args: &[&str], target: &str) -> Result<ListJson, UpstreamError> {
        let dir = work_dir(target)?;
        let output = self.run_go(dir.path(), args, target).await?;
        match serde_json::from_slice::<ListJson>(&output.stdout) {
            Ok(ListJson {
                error: Some(error), ..
            }) => Err(classify(target, &error.err)),
            Ok(parsed) if output.status.success() => Ok(parsed),
            _ => Err(classify(target, &String::from_utf8_lossy(&output.stderr))),
        }
    }

    /// Runs the go command in `dir` (its GOPATH and module cache live there).
    async fn run_go(
        &self,
        dir: &Path,
        args: &[&str],
        target: &str,
    ) -> Result<std::process::Output, UpstreamError> {
        let _permit = Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .map_err(|_| direct_failure(target.to_owned(), "shutting down".into()))?;
        let options = &self.options;
        let mut command = tokio::process::Command::new(&options.go_binary);
        command
            .args(args)
            .current_dir(dir)
            .env("GOPATH", dir.join("gopath"))
            .env("GOMODCACHE", dir.join("modcache"))
            .env("GOCACHE", dir.join("gocache"))
            .env("GOPROXY", "direct")
            .env("GOFLAGS", "-mod=mod -modcacherw")
            .env("GO111MODULE", "on")
            .env("GOTOOLCHAIN", "local")
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_SSH_COMMAND", "ssh -o BatchMode=yes")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .envs(options.env.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true);
        if !options.private.is_empty() {
            let configured = options
                .env
                .iter()
                .find(|(k, _)| k == "GOPRIVATE")
                .map(|(_, v)| v.clone());
            let merged = match configured.map_or_else(|| std::env::var("GOPRIVATE"), Ok) {
                Ok(own) if !own.trim().is_empty() => format!("{own},{}", options.private),
                _ => options.private.to_string(),
            };
            command.env("GOPRIVATE", merged);
        }
        tracing::info!(command = %args.join(" "), "running the go command");
        let child = command.spawn().map_err(|e| {
            direct_failure(
                target.to_owned(),
                format!("cannot run {}: {e}", options.go_binary.display()),
            )
        })?;
        let output = tokio::time::timeout(options.timeout, child.wait_with_output())
            .await
            .map_err(|_| UpstreamError::Transport {
                url: format!("direct {target}"),
                message: format!("the go command timed out after {:?}", options.timeout),
                timeout: true,
            })?
            .map_err(|e| {
                direct_failure(target.to_owned(), format!("the go command failed: {e}"))
            })?;
        if output.stdout.len() > MAX_OUTPUT {
            return Err(direct_failure(
                target.to_owned(),
                "the go command printed too much".into(),
            ));
        }
        Ok(output)
    }
}

fn work_dir(target: &str) -> Result<tempfile::TempDir, UpstreamError> {
    tempfile::Builder::new()
        .prefix("modstash-direct-")
        .tempdir()
        .map_err(|e| direct_failure(target.to_owned(), format!("cannot make a work dir: {e}")))
}

/// The go command's verdict: "this does not exist" (404, the client may try elsewhere) or a
/// failure of ours or the origin (502).
fn classify(target: &str, text: &str) -> UpstreamError {
    let mut reason = reason_line(text, "go: ");
    if reason.is_empty() {
        reason = "the go command failed without a message".into();
    }
    let reason = redact(reason);
    const MISSING: [&str; 12] = [
        "unknown revision",
        "invalid version",
        "not found",
        "no matching versions",
        "no secure protocol found",
        "does not exist",
        "repository not found",
        "malformed module path",
        "unrecognized import path",
        "module declares its path as",
        "no such file",
        "disabled by GOPROXY",
    ];
    if MISSING.iter().any(|m| reason.contains(m)) {
        UpstreamError::NotFound(format!("not found: {reason}"))
    } else {
        direct_failure(target.to_owned(), reason)
    }
}

fn direct_failure(target: String, message: String) -> UpstreamError {
    UpstreamError::Transport {
        url: format!("direct {target}"),
        message,
        timeout: false,
    }
}

/// Hides `user:password@` in any URL the go command or git echoed.
fn redact(text: String) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text.as_str();
    while let Some(i) = rest.find("://") {
        out.push_str(&rest[..i + 3]);
        rest = &rest[i + 3..];
        let end = rest
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(rest.len());
        if let Some(at) = rest[..end].rfind('@') {
            out.push_str("REDACTED@");
            rest = &rest[at + 1..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_in_echoed_urls_are_hidden() {
        let text =
            "git ls-remote https://bob:s3cret@git.example.com/x failed; see http://h/y".into();
        let shown = redact(text);
        assert!(
            !shown.contains("s3cret") && !shown.contains("bob"),
            "{shown}"
        );
        assert!(
            shown.contains("https://REDACTED@git.example.com/x"),
            "{shown}"
        );
        assert!(shown.contains("http://h/y"), "{shown}");
    }

    #[test]
    fn missing_things_are_not_found_and_the_rest_fails() {
        let e = classify(
            "m@v1",
            "go: m@v1.9.0: invalid version: unknown revision v1.9.0\n",
        );
        assert!(e.is_not_found(), "{e}");
        assert!(e.to_string().contains("unknown revision v1.9.0"), "{e}");
        let e = classify("m@v1", "go: m@v1: signal: killed");
        assert!(!e.is_not_found(), "{e}");
    }
}
