//! The storage inspection commands (`ls`, `verify`, `rm`) run as the real binary against storage
//! filled through the library, and `GET /catalog` paged through on an in-process server.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use bytes::Bytes;
use modstash::Settings;
use modstash::module::{ModulePath, ModuleVersion, Version, ZipLimits, check_zip_file};
use modstash::storage::{StagedVersion, Storage, StorageUrl, VersionFile, layout};

/// Versions every test stores: tagged ones are listed, the pseudo-version is not.
const STORED: &[(&str, &str)] = &[
    ("example.com/alpha", "v1.0.0"),
    ("example.com/alpha", "v1.1.0"),
    ("example.com/alpha", "v1.1.1-0.20240102030405-abcdefabcdef"),
    ("example.com/beta/v2", "v2.0.0"),
    ("github.com/Azure/x", "v1.0.0"),
    ("golang.org/x/mod", "v0.20.0"),
    ("golang.org/x/text", "v0.1.0"),
];

fn mv(path: &str, version: &str) -> ModuleVersion {
    ModuleVersion::new(
        ModulePath::parse(path).unwrap(),
        Version::parse(version).unwrap(),
    )
    .unwrap()
}

/// A module zip as `go mod download` would get it: `{module}@{version}/go.mod` and a `.go` file.
fn write_zip(path: &Path, mv: &ModuleVersion) -> Vec<u8> {
    let go_mod = format!("module {}\n\ngo 1.21\n", mv.path()).into_bytes();
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    let prefix = format!("{}@{}", mv.path(), mv.version());
    w.start_file(format!("{prefix}/go.mod"), options).unwrap();
    w.write_all(&go_mod).unwrap();
    w.start_file(format!("{prefix}/lib.go"), options).unwrap();
    let source = format!(
        "package lib\n\n// Version is {}.\nconst Version = {:?}\n",
        mv.version(),
        mv.version().as_str()
    );
    w.write_all(source.repeat(20).as_bytes()).unwrap();
    std::fs::write(path, w.finish().unwrap().into_inner()).unwrap();
    go_mod
}

/// A `file://` storage holding `STORED`, committed through the library, with `@v/list` files.
struct Store {
    dir: tempfile::TempDir,
    storage: Storage,
}

impl Store {
    async fn new() -> Store {
        let dir = tempfile::Builder::new()
            .prefix("modstash-inspect-")
            .tempdir()
            .unwrap();
        let storage = Storage::open(&StorageUrl::File(dir.path().to_owned())).unwrap();
        Store::fill(dir, storage).await
    }

    /// `STORED` in memory storage (the directory only holds spooled zips).
    async fn in_memory() -> Store {
        let dir = tempfile::tempdir().unwrap();
        Store::fill(dir, Storage::open(&StorageUrl::Memory).unwrap()).await
    }

    async fn fill(dir: tempfile::TempDir, storage: Storage) -> Store {
        let store = Store { dir, storage };
        for (path, version) in STORED {
            store.commit(&mv(path, version)).await;
        }
        for path in STORED.iter().map(|(p, _)| *p).collect::<BTreeSet<_>>() {
            let path = ModulePath::parse(path).unwrap();
            let tagged: Vec<Version> = STORED
                .iter()
                .filter(|(p, _)| *p == path.as_str())
                .map(|(_, v)| Version::parse(v).unwrap())
                .filter(|v| !v.is_pseudo())
                .collect();
            store
                .storage
                .write_list(&path, &tagged, None)
                .await
                .unwrap();
        }
        store
    }

    async fn commit(&self, mv: &ModuleVersion) {
        let spool = tempfile::NamedTempFile::new().unwrap().into_temp_path();
        let go_mod = write_zip(&spool, mv);
        let summary = check_zip_file(&spool, mv, &ZipLimits::default()).unwrap();
        let info = format!(
            r#"{{"Version":"{}","Time":"2024-01-02T03:04:05Z"}}"#,
            mv.version()
        );
        self.storage
            .commit(&StagedVersion {
                module_version: mv.clone(),
                info: Bytes::from(info),
                go_mod: Bytes::from(go_mod),
                zip_file: spool.to_path_buf(),
                zip_hash: summary.h1,
            })
            .await
            .unwrap();
    }

    fn url(&self) -> String {
        format!("file://{}", self.dir.path().display())
    }

    /// The file on disk of a version's file.
    fn file(&self, mv: &ModuleVersion, file: VersionFile) -> PathBuf {
        self.dir.path().join(layout::version_key(mv, file).as_ref())
    }

    fn list_file(&self, path: &str) -> PathBuf {
        self.dir
            .path()
            .join(layout::list_key(&ModulePath::parse(path).unwrap()).as_ref())
    }

    fn list(&self, path: &str) -> String {
        std::fs::read_to_string(self.list_file(path)).unwrap()
    }

    /// Runs the binary on this storage (named by `MODSTASH_STORAGE`), stdin not a terminal.
    fn run(&self, args: &[&str]) -> Run {
        let out = Command::new(env!("CARGO_BIN_EXE_modstash"))
            .args(args)
            .env("MODSTASH_STORAGE", self.url())
            .env_remove("MODSTASH_CONFIG")
            .env("RUST_LOG", "warn")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run::from(out)
    }
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Run {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8(out.stdout).unwrap(),
            stderr: String::from_utf8(out.stderr).unwrap(),
        }
    }
}

impl std::fmt::Debug for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

/// The `(module, version)` pairs of `ls --json` output.
fn json_versions(stdout: &str) -> Vec<(String, String)> {
    let rows: Vec<serde_json::Value> = serde_json::from_str(stdout).unwrap();
    rows.iter()
        .map(|r| {
            (
                r["module"].as_str().unwrap().to_owned(),
                r["version"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn stored_pairs() -> Vec<(String, String)> {
    STORED
        .iter()
        .map(|(p, v)| ((*p).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn ls_shows_every_committed_version_as_a_table_and_as_json() {
    let store = Store::new().await;
    let table = store.run(&["ls"]);
    assert_eq!(table.code, Some(0), "{table:?}");
    let lines: Vec<&str> = table.stdout.lines().collect();
    assert!(lines[0].starts_with("MODULE"), "{table:?}");
    assert_eq!(lines.len(), 1 + STORED.len(), "{table:?}");
    for ((path, version), line) in STORED.iter().zip(&lines[1..]) {
        let cells: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(&cells[..2], &[*path, *version], "{table:?}");
        let size = std::fs::metadata(store.file(&mv(path, version), VersionFile::Zip))
            .unwrap()
            .len();
        assert_eq!(cells[2], size.to_string(), "{table:?}");
        assert!(cells[3].ends_with('Z'), "{table:?}");
    }
    let version_column = lines[0].find("VERSION").unwrap();
    assert!(
        lines[1..]
            .iter()
            .all(|l| l.find(" v").unwrap() + 1 == version_column),
        "columns are aligned: {table:?}"
    );

    let json = store.run(&["ls", "--json"]);
    assert_eq!(json.code, Some(0), "{json:?}");
    assert_eq!(json_versions(&json.stdout), stored_pairs());
    let rows: Vec<serde_json::Value> = serde_json::from_str(&json.stdout).unwrap();
    assert!(rows.iter().all(|r| r["zip_size"].as_u64().unwrap() > 0));
    assert!(
        rows.iter()
            .all(|r| r["fetched"].as_str().unwrap().len() == 20)
    );
}

#[tokio::test]
async fn ls_filters_by_glob_and_takes_the_storage_flag() {
    let store = Store::new().await;
    let x = store.run(&["ls", "--json", "golang.org/x/*"]);
    assert_eq!(x.code, Some(0), "{x:?}");
    let x = json_versions(&x.stdout);
    assert_eq!(
        x,
        vec![
            ("golang.org/x/mod".into(), "v0.20.0".into()),
            ("golang.org/x/text".into(), "v0.1.0".into()),
        ]
    );
    let exact = store.run(&["ls", "--json", "github.com/Azure/x"]);
    assert_eq!(
        json_versions(&exact.stdout),
        vec![("github.com/Azure/x".into(), "v1.0.0".into())]
    );
    let none = store.run(&["ls", "nothing.example/*"]);
    assert_eq!(none.code, Some(0), "{none:?}");
    assert_eq!(none.stdout, "");
    assert!(none.stderr.contains("no versions"), "{none:?}");

    let bad = store.run(&["ls", "golang.org/[x"]);
    assert_eq!(bad.code, Some(1), "{bad:?}");
    assert!(bad.stderr.contains("invalid module pattern"), "{bad:?}");

    // --storage wins over MODSTASH_STORAGE; a missing directory is an error, not created.
    let missing = store.dir.path().join("no-such-dir");
    let flag = format!("file://{}", missing.display());
    let gone = store.run(&["ls", "--storage", &flag]);
    assert_eq!(gone.code, Some(1), "{gone:?}");
    assert!(gone.stderr.contains("does not exist"), "{gone:?}");
    assert!(!missing.exists());
    let memory = store.run(&["ls", "--json", "--storage", "memory://"]);
    assert_eq!(memory.code, Some(0), "{memory:?}");
    assert_eq!(json_versions(&memory.stdout), vec![]);
}

#[tokio::test]
async fn verify_is_clean_on_a_good_store() {
    let store = Store::new().await;
    let run = store.run(&["verify"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout.lines().last().unwrap(),
        "versions 7, verified 7, corrupt 0, orphans 0, lists fixed 0, lists wrong 0, staging files 0, unreadable 0",
        "{run:?}"
    );
    let json = store.run(&["verify", "--json"]);
    assert_eq!(json.code, Some(0), "{json:?}");
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["summary"]["verified"], 7);
    assert_eq!(report["summary"]["problems_remaining"], 0);
}

#[tokio::test]
async fn verify_reports_every_problem_and_repair_fixes_all_but_corrupt_versions() {
    let store = Store::new().await;
    let alpha_1_0 = mv("example.com/alpha", "v1.0.0");
    let x_mod = mv("golang.org/x/mod", "v0.20.0");
    let x_text = mv("golang.org/x/text", "v0.1.0");
    let azure = mv("github.com/Azure/x", "v1.0.0");
    let beta = mv("example.com/beta/v2", "v2.0.0");

    // A flipped byte in a stored zip.
    let zip = store.file(&alpha_1_0, VersionFile::Zip);
    let mut bytes = std::fs::read(&zip).unwrap();
    // Inside the first entry's compressed data (after its local header, name and extra field):
    // the `h1:` covers contents, so a flip in a header field the readers ignore would go unseen.
    let name_len = usize::from(u16::from_le_bytes([bytes[26], bytes[27]]));
    let extra_len = usize::from(u16::from_le_bytes([bytes[28], bytes[29]]));
    bytes[30 + name_len + extra_len + 1] ^= 0x55;
    std::fs::write(&zip, bytes).unwrap();
    // A .ziphash that does not match.
    std::fs::write(
        store.file(&beta, VersionFile::ZipHash),
        "h1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )
    .unwrap();
    // A committed version without its .mod.
    std::fs::remove_file(store.file(&x_mod, VersionFile::Mod)).unwrap();
    // .info that is not JSON, and .info naming another version.
    std::fs::write(store.file(&x_text, VersionFile::Info), "not json").unwrap();
    std::fs::write(
        store.file(&azure, VersionFile::Info),
        r#"{"Version":"v1.0.1","Time":"2024-01-02T03:04:05Z"}"#,
    )
    .unwrap();
    // Orphans: files of a version whose commit never happened, in a listed and a new module.
    let orphan = mv("example.com/alpha", "v1.2.0");
    std::fs::write(store.file(&orphan, VersionFile::Zip), "partial zip").unwrap();
    std::fs::write(
        store.file(&orphan, VersionFile::Mod),
        "module example.com/alpha\n",
    )
    .unwrap();
    let lone = mv("example.com/lone", "v0.1.0");
    std::fs::create_dir_all(store.file(&lone, VersionFile::Zip).parent().unwrap()).unwrap();
    std::fs::write(store.file(&lone, VersionFile::Zip), "partial zip").unwrap();
    // object_store's local staging file left by a crash.
    let staging = PathBuf::from(format!(
        "{}#3",
        store.file(&alpha_1_0, VersionFile::Zip).display()
    ));
    std::fs::write(&staging, "half written").unwrap();
    // A list that misses a committed version, and one that names a version never committed.
    std::fs::write(store.list_file("example.com/alpha"), "v1.0.0\n").unwrap();
    std::fs::write(store.list_file("example.com/beta/v2"), "v2.0.0\nv2.9.9\n").unwrap();
    // Something that is not part of the layout: reported, never touched.
    std::fs::write(store.dir.path().join("NOTES.txt"), "hello").unwrap();

    let run = store.run(&["verify", "--grace", "0s"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    let out = &run.stdout;
    let has = |kind: &str, what: &str| out.lines().any(|l| l.starts_with(kind) && l.contains(what));
    assert!(
        has("corrupt", "example.com/alpha@v1.0.0: zip fails"),
        "{run:?}"
    );
    assert!(
        has("corrupt", "example.com/beta/v2@v2.0.0: zip hashes to h1:"),
        "{run:?}"
    );
    assert!(
        has("corrupt", "golang.org/x/mod@v0.20.0: .mod is missing"),
        "{run:?}"
    );
    assert!(
        has(
            "corrupt",
            "golang.org/x/text@v0.1.0: .info is not valid JSON"
        ),
        "{run:?}"
    );
    assert!(
        has(
            "corrupt",
            "github.com/Azure/x@v1.0.0: .info names version \"v1.0.1\""
        ),
        "{run:?}"
    );
    assert!(has("orphan", "example.com/alpha@v1.2.0"), "{run:?}");
    assert!(has("orphan", "example.com/lone@v0.1.0"), "{run:?}");
    assert!(
        has("staging", "example.com/alpha/@v/v1.0.0.zip#3"),
        "{run:?}"
    );
    assert!(
        has("list", "example.com/alpha/@v/list misses v1.1.0"),
        "{run:?}"
    );
    assert!(
        has(
            "list",
            "example.com/beta/v2/@v/list names uncommitted v2.9.9"
        ),
        "{run:?}"
    );
    assert!(has("stray", "NOTES.txt"), "{run:?}");
    assert_eq!(
        out.lines().last().unwrap(),
        "versions 7, verified 2, corrupt 5, orphans 2, lists fixed 0, lists wrong 2, staging files 1, unreadable 0",
        "{run:?}"
    );
    assert!(run.stderr.contains("problem(s) remain"), "{run:?}");
    // Reporting changes nothing.
    assert!(staging.exists());
    assert!(store.file(&orphan, VersionFile::Zip).exists());
    assert_eq!(store.list("example.com/alpha"), "v1.0.0\n");

    let json = store.run(&["verify", "--json", "--grace", "0s"]);
    assert_eq!(json.code, Some(1), "{json:?}");
    let report: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(report["summary"]["corrupt"], 5);
    assert_eq!(report["summary"]["problems_remaining"], 10);
    assert_eq!(report["lists"][0]["missing"][0], "v1.1.0");
    assert_eq!(report["orphans"][0]["action"], "reported");

    let repair = store.run(&["verify", "--repair", "--grace", "0s"]);
    assert_eq!(repair.code, Some(1), "corrupt versions remain: {repair:?}");
    assert!(
        repair
            .stdout
            .lines()
            .last()
            .unwrap()
            .contains("lists fixed 2"),
        "{repair:?}"
    );
    assert!(!staging.exists(), "{repair:?}");
    assert!(!store.file(&orphan, VersionFile::Zip).exists());
    assert!(!store.file(&orphan, VersionFile::Mod).exists());
    assert!(!store.file(&lone, VersionFile::Zip).exists());
    assert_eq!(store.list("example.com/alpha"), "v1.0.0\nv1.1.0\n");
    assert_eq!(store.list("example.com/beta/v2"), "v2.0.0\n");
    // Corrupt committed versions are reported, never deleted.
    for mv in [&alpha_1_0, &beta, &x_text, &azure] {
        for file in [
            VersionFile::Info,
            VersionFile::Zip,
            VersionFile::ZipHash,
            VersionFile::Mod,
        ] {
            assert!(store.file(mv, file).exists(), "{mv} {file:?} kept");
        }
    }
    assert!(store.file(&x_mod, VersionFile::Zip).exists());
    assert!(store.dir.path().join("NOTES.txt").exists());

    let after = store.run(&["verify", "--grace", "0s"]);
    assert_eq!(after.code, Some(1), "{after:?}");
    assert_eq!(
        after.stdout.lines().last().unwrap(),
        "versions 7, verified 2, corrupt 5, orphans 0, lists fixed 0, lists wrong 0, staging files 0, unreadable 0",
        "{after:?}"
    );

    // The remedy the report suggests: remove the corrupt versions (the next request refetches).
    for mv in [&alpha_1_0, &beta, &x_mod, &x_text, &azure] {
        let rm = store.run(&["rm", "--yes", &mv.to_string()]);
        assert_eq!(rm.code, Some(0), "{rm:?}");
    }
    std::fs::remove_file(store.dir.path().join("NOTES.txt")).unwrap();
    let clean = store.run(&["verify"]);
    assert_eq!(clean.code, Some(0), "{clean:?}");
    assert!(
        clean
            .stdout
            .starts_with("versions 2, verified 2, corrupt 0,"),
        "{clean:?}"
    );
}

#[tokio::test]
async fn repair_leaves_recent_orphans_and_staging_files_alone() {
    let store = Store::new().await;
    let orphan = mv("example.com/alpha", "v1.2.0");
    std::fs::write(store.file(&orphan, VersionFile::Zip), "being uploaded").unwrap();
    let staging = PathBuf::from(format!(
        "{}#7",
        store.file(&orphan, VersionFile::Mod).display()
    ));
    std::fs::write(&staging, "being written").unwrap();

    // Default grace (1h): a fresh orphan may be a commit in progress.
    let run = store.run(&["verify", "--repair"]);
    assert_eq!(run.code, Some(0), "in progress is not a problem: {run:?}");
    assert!(run.stdout.contains("may be in progress"), "{run:?}");
    assert!(store.file(&orphan, VersionFile::Zip).exists());
    assert!(staging.exists());
}

#[tokio::test]
async fn rm_refuses_without_yes_when_stdin_is_not_a_terminal() {
    let store = Store::new().await;
    let target = mv("example.com/alpha", "v1.1.0");
    let run = store.run(&["rm", "example.com/alpha@v1.1.0"]);
    assert_eq!(run.code, Some(1), "{run:?}");
    assert!(run.stderr.contains("--yes"), "{run:?}");
    assert!(run.stderr.contains("not a terminal"), "{run:?}");
    for file in [
        VersionFile::Info,
        VersionFile::Zip,
        VersionFile::Mod,
        VersionFile::ZipHash,
    ] {
        assert!(store.file(&target, file).exists());
    }
    assert_eq!(store.list("example.com/alpha"), "v1.0.0\nv1.1.0\n");
}

#[tokio::test]
async fn rm_yes_deletes_the_version_and_its_list_entry() {
    let store = Store::new().await;
    let target = mv("example.com/alpha", "v1.0.0");
    let run = store.run(&["rm", "--yes", "example.com/alpha@v1.0.0"]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        run.stdout,
        "deleted example.com/alpha@v1.0.0: .info .zip .mod .ziphash; removed from @v/list\n"
    );
    for file in [
        VersionFile::Info,
        VersionFile::Zip,
        VersionFile::Mod,
        VersionFile::ZipHash,
    ] {
        assert!(!store.file(&target, file).exists(), "{file:?}");
    }
    assert_eq!(store.list("example.com/alpha"), "v1.1.0\n");
    let ls = store.run(&["ls", "--json"]);
    let mut expected = stored_pairs();
    expected.retain(|(p, v)| !(p == "example.com/alpha" && v == "v1.0.0"));
    assert_eq!(json_versions(&ls.stdout), expected);
    let clean = store.run(&["verify"]);
    assert_eq!(clean.code, Some(0), "{clean:?}");

    let again = store.run(&["rm", "--yes", "example.com/alpha@v1.0.0"]);
    assert_eq!(again.code, Some(1), "{again:?}");
    assert!(again.stderr.contains("is not stored"), "{again:?}");
}

#[tokio::test]
async fn rm_refuses_bad_arguments_clearly() {
    let store = Store::new().await;
    for (arg, says) in [
        ("example.com/alpha", "expected MODULE@VERSION"),
        ("example.com/alpha@latest", "malformed version"),
        ("example.com/alpha@v1", "not canonical"),
        ("Alpha@v1.0.0", "malformed module path"),
        ("example.com/alpha@v2.0.0", "should be v0 or v1"),
    ] {
        let run = store.run(&["rm", "--yes", arg]);
        assert_eq!(run.code, Some(1), "{arg}: {run:?}");
        assert!(run.stderr.contains(says), "{arg}: {run:?}");
    }
    assert_eq!(
        json_versions(&store.run(&["ls", "--json"]).stdout),
        stored_pairs()
    );
}

#[tokio::test]
async fn catalog_pages_through_every_stored_version_once() {
    let store = Store::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let settings = Settings {
        storage: StorageUrl::File(store.dir.path().to_owned()),
        upstream: "off".parse().unwrap(),
        ..Settings::default()
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(modstash::serve(listener, settings, async {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut url = url::Url::parse(&format!("{base}/catalog")).unwrap();
        url.query_pairs_mut().append_pair("limit", "2");
        if let Some(c) = &cursor {
            url.query_pairs_mut().append_pair("cursor", c);
        }
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let page: serde_json::Value =
            serde_json::from_str(&response.text().await.unwrap()).unwrap();
        let modules = page["modules"].as_array().unwrap();
        assert!(modules.len() <= 2, "{page}");
        for m in modules {
            seen.push((
                m["module"].as_str().unwrap().to_owned(),
                m["version"].as_str().unwrap().to_owned(),
            ));
        }
        pages += 1;
        assert!(pages <= STORED.len(), "paging does not end: {page}");
        match page["next"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(page["next"].is_null());
                break;
            }
        }
    }
    let unique: BTreeSet<_> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "each version once: {seen:?}");
    assert_eq!(unique, stored_pairs().into_iter().collect::<BTreeSet<_>>());
    assert_eq!(pages, STORED.len().div_ceil(2));

    let all = client
        .get(format!("{base}/catalog"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let all: serde_json::Value = serde_json::from_str(&all).unwrap();
    assert_eq!(all["modules"].as_array().unwrap().len(), STORED.len());
    assert!(all["next"].is_null());

    for bad in ["limit=0", "limit=10001", "limit=ten", "cursor="] {
        let response = client
            .get(format!("{base}/catalog?{bad}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 400, "{bad}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let reason = response.text().await.unwrap();
        assert!(!reason.trim().is_empty(), "{bad}");
    }

    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
}

/// Local directories list in directory order, memory (like S3) in key order: both page the same.
#[tokio::test]
async fn catalog_pages_in_key_order_on_every_backend() {
    use modstash::inspect::catalog::{Cursor, page};
    for store in [Store::new().await, Store::in_memory().await] {
        let mut keys = Vec::new();
        let mut seen = Vec::new();
        let mut cursor = None;
        loop {
            let p = page(&store.storage, cursor.as_ref(), 3).await.unwrap();
            assert!(p.modules.len() <= 3);
            seen.extend(
                p.modules
                    .iter()
                    .map(|e| (e.module.clone(), e.version.clone())),
            );
            match p.next {
                Some(next) => {
                    keys.push(next.clone());
                    cursor = Some(Cursor::parse(&next).unwrap());
                }
                None => break,
            }
        }
        assert_eq!(seen, stored_pairs(), "{}", store.storage.url());
        assert_eq!(
            keys,
            vec![
                "example.com/alpha/@v/v1.1.1-0.20240102030405-abcdefabcdef.info",
                "golang.org/x/mod/@v/v0.20.0.info",
            ],
            "{}",
            store.storage.url()
        );
    }
}

#[tokio::test]
async fn repair_deletes_idle_lease_logs_and_leaves_held_leases() {
    use modstash::stash::lease::{Lease, StorageLease};
    let store = Store::new().await;
    let leases = StorageLease::new(store.storage.clone());
    let ttl = std::time::Duration::from_secs(600);
    // One key fetched and released long ago (as far as a zero grace is concerned), one held now.
    let released = leases
        .try_acquire("fetch/done@v1.0.0", ttl)
        .await
        .unwrap()
        .unwrap();
    released.release().await.unwrap();
    let mut held = leases
        .try_acquire("fetch/busy@v1.0.0", ttl)
        .await
        .unwrap()
        .unwrap();
    let log_of = |key: &str| {
        store
            .dir
            .path()
            .join(StorageLease::key_dir(key).to_string())
    };
    assert!(log_of("fetch/done@v1.0.0").exists());

    let report = store.run(&["verify", "--json", "--grace", "0s"]);
    assert_eq!(
        report.code,
        Some(0),
        "idle lease logs are not a problem: {report:?}"
    );
    let json: serde_json::Value = serde_json::from_str(&report.stdout).unwrap();
    assert_eq!(json["stale_lease_logs"]["found"], 1, "{json}");
    assert_eq!(json["stale_lease_logs"]["deleted"], 0, "{json}");

    let repair = store.run(&["verify", "--repair", "--grace", "0s"]);
    assert_eq!(repair.code, Some(0), "{repair:?}");
    assert!(repair.stdout.contains("1 lease logs idle"), "{repair:?}");
    let empty = std::fs::read_dir(log_of("fetch/done@v1.0.0"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true);
    assert!(empty, "the idle log is still there");
    // The held lease is untouched: its holder still renews it, and nobody else can take it.
    held.renew().await.unwrap();
    assert!(
        leases
            .try_acquire("fetch/busy@v1.0.0", ttl)
            .await
            .unwrap()
            .is_none()
    );
    // The collected key can be leased again.
    assert!(
        leases
            .try_acquire("fetch/done@v1.0.0", ttl)
            .await
            .unwrap()
            .is_some()
    );
}
