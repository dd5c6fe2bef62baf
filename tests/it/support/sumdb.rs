//! A real, signed checksum database for tests: `fixtures/sumdb/main.go` built with the go command
//! against the golang.org/x/mod it vendors (`$GOROOT/src/cmd/vendor`), so no network is needed.
//!
//! It holds a record for every fixture version (plus 300 fillers: one full tile and a partial
//! one) and reports each request it serves, so tests can count what reached it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, BufReader};

use super::fixture_tree::FixtureTree;
use super::gocmd::Go;

/// A running checksum database; killed when dropped.
pub struct SumdbFixture {
    /// The verifier key, for `GOSUMDB`.
    pub vkey: String,
    /// `http://127.0.0.1:PORT`
    pub url: String,
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
    _child: tokio::process::Child,
}

impl SumdbFixture {
    /// Builds (once per machine and source) and starts the database `name` with a record for
    /// every version of `tree`.
    pub async fn start(go: &Go, name: &str, tree: &FixtureTree) -> SumdbFixture {
        let bin = build(go).await;
        let dir = tempfile::tempdir().unwrap();
        let gosum = dir.path().join("go.sum");
        let lines: String = tree.versions().iter().map(|v| v.go_sum_lines()).collect();
        std::fs::write(&gosum, lines).unwrap();
        let mut child = tokio::process::Command::new(&bin)
            .arg(name)
            .arg(&gosum)
            .stdout(Stdio::piped())
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("start the sumdb fixture");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut field = async |key: &str| {
            let line = lines
                .next_line()
                .await
                .unwrap()
                .expect("sumdb fixture output");
            line.strip_prefix(&format!("{key} "))
                .unwrap_or_else(|| panic!("expected `{key} ...`, got {line:?}"))
                .to_owned()
        };
        let vkey = field("vkey").await;
        let addr = field("addr").await;
        let counts = Arc::new(Mutex::new(BTreeMap::new()));
        let seen = Arc::clone(&counts);
        tokio::spawn(async move {
            // The gosum file must outlive the child's start-up only; keep it until the end.
            let _dir = dir;
            while let Ok(Some(line)) = lines.next_line().await {
                if let Some(path) = line.strip_prefix("GET ") {
                    *seen.lock().unwrap().entry(path.to_owned()).or_insert(0) += 1;
                }
            }
        });
        SumdbFixture {
            vkey,
            url: format!("http://{addr}"),
            counts,
            _child: child,
        }
    }

    /// Requests served so far, per path (`/lookup/...`, `/tile/...`, `/latest`).
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.counts.lock().unwrap().clone()
    }
}

static BUILT: tokio::sync::OnceCell<PathBuf> = tokio::sync::OnceCell::const_new();

async fn build(go: &Go) -> PathBuf {
    BUILT
        .get_or_init(|| async {
            let go = go.clone();
            tokio::task::spawn_blocking(move || build_blocking(&go))
                .await
                .unwrap()
        })
        .await
        .clone()
}

/// `go build` in a scratch module whose golang.org/x/mod is replaced by GOROOT's vendored copy.
fn build_blocking(go: &Go) -> PathBuf {
    let source = super::fixture_tree::fixtures_dir()
        .join("sumdb")
        .join("main.go");
    let main_go = std::fs::read(&source).unwrap();
    let key = format!(
        "{:016x}",
        main_go
            .iter()
            .chain(go.version().as_bytes())
            .fold(0xcbf29ce484222325u64, |h, b| (h ^ u64::from(*b))
                .wrapping_mul(0x100000001b3))
    );
    let bin = std::env::temp_dir().join(format!("modstash-test-sumdb-{key}"));
    if bin.is_file() {
        return bin;
    }
    let goroot = go_output(go, &["env", "GOROOT"], Path::new("."));
    let vendored = Path::new(goroot.trim()).join("src/cmd/vendor/golang.org/x/mod");
    assert!(
        vendored.is_dir(),
        "no vendored x/mod at {}",
        vendored.display()
    );
    let scratch = tempfile::tempdir().unwrap();
    let xmod = scratch.path().join("xmod");
    copy_dir(&vendored, &xmod);
    std::fs::write(xmod.join("go.mod"), "module golang.org/x/mod\n\ngo 1.25\n").unwrap();
    let app = scratch.path().join("app");
    std::fs::create_dir_all(&app).unwrap();
    std::fs::write(app.join("main.go"), &main_go).unwrap();
    std::fs::write(
        app.join("go.mod"),
        "module modstash.test/sumdb\n\ngo 1.25\n\nrequire golang.org/x/mod v0.0.0\n\nreplace golang.org/x/mod => ../xmod\n",
    )
    .unwrap();
    // Built beside the target, then renamed: concurrent test processes never see half a file.
    let partial = scratch.path().join("sumdb");
    go_output(go, &["build", "-o", partial.to_str().unwrap(), "."], &app);
    std::fs::copy(&partial, bin.with_extension("tmp")).unwrap();
    std::fs::rename(bin.with_extension("tmp"), &bin).unwrap();
    bin
}

fn go_output(go: &Go, args: &[&str], dir: &Path) -> String {
    let out = std::process::Command::new(go.bin())
        .args(args)
        .current_dir(dir)
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=mod")
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GOWORK", "off")
        .env("GOCACHE", super::gocmd::shared_gocache())
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null())
        .output()
        .expect("run go");
    assert!(
        out.status.success(),
        "go {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}
