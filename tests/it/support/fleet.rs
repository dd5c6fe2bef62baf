//! Fleets of real modstash processes (the built binary) sharing one storage, and a generated
//! upstream tree of many small versions for them to fetch.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use super::fixture_tree::{escape_path, generate_bytes, write_zip};
use crate::services::free_port;

/// One module with `count` versions, written as a GOPROXY tree.
pub struct GeneratedModule {
    /// Module path.
    pub path: String,
    /// Versions, canonical.
    pub versions: Vec<String>,
}

impl GeneratedModule {
    /// Writes `count` versions of `path` (each with a go.mod and a data file) under `root`.
    pub fn write(root: &Path, path: &str, count: usize, seed: u64) -> GeneratedModule {
        let dir = root.join(escape_path(path)).join("@v");
        std::fs::create_dir_all(&dir).unwrap();
        let mut versions = Vec::new();
        for i in 0..count {
            let version = format!("v1.{i}.0");
            let go_mod = format!("module {path}\n\ngo 1.21\n");
            let prefix = format!("{path}@{version}/");
            let entries = vec![
                (
                    format!("{prefix}data.bin"),
                    generate_bytes(seed + i as u64, 64 * 1024),
                ),
                (format!("{prefix}go.mod"), go_mod.clone().into_bytes()),
            ];
            let zip = write_zip(&entries);
            let esc = escape_path(&version);
            std::fs::write(dir.join(format!("{esc}.zip")), &zip).unwrap();
            std::fs::write(dir.join(format!("{esc}.mod")), &go_mod).unwrap();
            std::fs::write(
                dir.join(format!("{esc}.info")),
                format!(
                    r#"{{"Version":"{version}","Time":"2024-03-0{}T10:00:00Z"}}"#,
                    1 + i % 9
                ),
            )
            .unwrap();
            versions.push(version);
        }
        std::fs::write(dir.join("list"), versions.join("\n") + "\n").unwrap();
        GeneratedModule {
            path: path.to_owned(),
            versions,
        }
    }

    /// `/{module}/@v/{version}.{ext}`
    pub fn url_path(&self, version: &str, ext: &str) -> String {
        format!(
            "/{}/@v/{}.{ext}",
            escape_path(&self.path),
            escape_path(version)
        )
    }
}

/// A modstash process.
pub struct Replica {
    /// `http://127.0.0.1:PORT`
    pub base: String,
    child: tokio::process::Child,
}

impl Replica {
    /// Starts the binary with `args` after `serve`, waits until `/healthz` answers.
    pub async fn start(args: &[String], env: &[(String, String)]) -> Replica {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let log_dir = std::env::temp_dir().join("modstash-fleet-logs");
        std::fs::create_dir_all(&log_dir).unwrap();
        let log = std::fs::File::create(log_dir.join(format!("replica-{port}.log"))).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_modstash"))
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "warn,modstash=info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("start modstash");
        let replica = Replica { base, child };
        replica.wait_healthy().await;
        replica
    }

    async fn wait_healthy(&self) {
        let client = super::client();
        for _ in 0..400 {
            if let Ok(r) = client.get(format!("{}/healthz", self.base)).send().await
                && r.status().is_success()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!("modstash at {} never became healthy", self.base);
    }

    /// The process id, to read its `/proc` status.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("a running replica has a pid")
    }

    /// SIGKILL: no shutdown, no lease release.
    pub async fn kill(mut self) {
        self.child.start_kill().expect("kill modstash");
        let _ = self.child.wait().await;
    }
}

/// A temporary directory that lives as long as the returned guard.
pub fn temp_dir(prefix: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir().unwrap();
    let path = dir.path().to_owned();
    (dir, path)
}
