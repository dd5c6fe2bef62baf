//! Builds the GOPROXY tree of the fixture modules (`fixtures/`) and knows every answer it must give.
//!
//! The tree is built from source at test time, so the expected bytes and `h1:` hashes here are
//! computed independently of modstash: a test compares what modstash serves against these.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use base64::Engine;
use serde::Deserialize;
use sha2::{Digest, Sha256};

/// The fixtures directory of this repository.
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// `fixtures/modules.toml`, as documented in `fixtures/README.md`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Manifest {
    module: Vec<ManifestModule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestModule {
    path: String,
    #[serde(default)]
    retracted: Vec<String>,
    latest: Option<String>,
    #[serde(default)]
    queries: BTreeMap<String, String>,
    version: Vec<ManifestVersion>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ManifestVersion {
    version: String,
    time: String,
    #[serde(default = "yes")]
    tagged: bool,
    #[serde(default)]
    generated: Vec<Generated>,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Generated {
    file: String,
    size: usize,
    seed: u64,
}

/// One fixture module and the answers its module-level URLs must give.
#[derive(Debug)]
pub struct FixtureModule {
    /// Module path, unescaped (`github.com/Upper/Case`).
    pub path: String,
    /// Module path as it appears in URLs and storage keys (`github.com/!upper/!case`).
    pub escaped: String,
    /// Every version with content, tagged or not, in manifest (ascending) order.
    pub versions: Vec<String>,
    /// The tagged versions: exactly the lines of `@v/list`.
    pub list: Vec<String>,
    /// The version `@latest` answers, if the module has one.
    pub latest: Option<String>,
    /// Non-canonical queries (branch names) and the version each resolves to.
    pub queries: BTreeMap<String, String>,
    /// Versions retracted by the module's own go.mod.
    pub retracted: Vec<String>,
}

impl FixtureModule {
    /// The URL path (and tree-relative path, with a leading `/`) of `@v/list`.
    pub fn list_path(&self) -> String {
        format!("/{}/@v/list", self.escaped)
    }

    /// The URL path of `@latest`.
    pub fn latest_path(&self) -> String {
        format!("/{}/@latest", self.escaped)
    }

    /// The URL path of `@v/{query}.info` for a non-canonical query such as `main`.
    pub fn query_info_path(&self, query: &str) -> String {
        format!("/{}/@v/{}.info", self.escaped, escape_path(query))
    }

    /// The body `@v/list` must have.
    pub fn list_body(&self) -> String {
        self.list.iter().map(|v| format!("{v}\n")).collect()
    }
}

/// One fixture `module@version` and the bytes of its four files.
#[derive(Debug)]
pub struct FixtureVersion {
    /// Module path, unescaped.
    pub module: String,
    /// Module path, escaped.
    pub escaped_module: String,
    /// Canonical version, unescaped.
    pub version: String,
    /// Whether `@v/list` names it (false for a pseudo-version).
    pub tagged: bool,
    /// The commit time, RFC 3339.
    pub time: String,
    /// The `.info` body.
    pub info: Vec<u8>,
    /// The `.mod` body: the go.mod file, or `module M\n` when the module has none.
    pub go_mod: Vec<u8>,
    /// Whether the zip holds a go.mod file.
    pub has_go_mod_file: bool,
    /// The `.zip` body.
    pub zip: Vec<u8>,
    /// The zip's entry names, sorted.
    pub zip_entries: Vec<String>,
    /// `h1:` hash of the zip, as the go command writes it to go.sum.
    pub h1: String,
    /// `h1:` hash of the `.mod` file, go.sum's `/go.mod` line.
    pub go_mod_h1: String,
}

impl FixtureVersion {
    /// `module@version`, unescaped, as the go command takes it on its command line.
    pub fn target(&self) -> String {
        format!("{}@{}", self.module, self.version)
    }

    /// The URL path of one of the version's files: `ext` is `info`, `mod`, `zip` or `ziphash`.
    pub fn path(&self, ext: &str) -> String {
        format!("/{}", self.key(ext))
    }

    /// The version's two go.sum lines (zip and `/go.mod` hashes), as the go command writes them.
    pub fn go_sum_lines(&self) -> String {
        format!(
            "{m} {v} {h}\n{m} {v}/go.mod {g}\n",
            m = self.module,
            v = self.version,
            h = self.h1,
            g = self.go_mod_h1
        )
    }

    /// The storage key (tree-relative path) of one of the version's files.
    pub fn key(&self, ext: &str) -> String {
        format!(
            "{}/@v/{}.{ext}",
            self.escaped_module,
            escape_path(&self.version)
        )
    }
}

/// A GOPROXY tree on disk plus the expected answers for everything in it.
#[derive(Debug)]
pub struct FixtureTree {
    dir: PathBuf,
    modules: Vec<FixtureModule>,
    versions: Vec<FixtureVersion>,
}

static SHARED: OnceLock<FixtureTree> = OnceLock::new();

impl FixtureTree {
    /// The tree every test of this process reads; built once, because deflating the big module is slow.
    ///
    /// It lives in cargo's per-target scratch directory, named by process id, and trees left
    /// by processes that are gone are removed first, so runs do not pile up in `/tmp`.
    pub fn shared() -> &'static FixtureTree {
        SHARED.get_or_init(|| {
            let scratch = Path::new(env!("CARGO_TARGET_TMPDIR"));
            remove_stale_trees(scratch);
            let dir = scratch.join(format!("fixture-tree-{}", std::process::id()));
            if dir.exists() {
                std::fs::remove_dir_all(&dir).expect("remove an old fixture tree");
            }
            FixtureTree::build_into(&dir)
        })
    }

    /// Builds the tree into `dir` (created if missing; should be empty).
    pub fn build_into(dir: &Path) -> FixtureTree {
        let manifest_path = fixtures_dir().join("modules.toml");
        let text = std::fs::read_to_string(&manifest_path).expect("read fixtures/modules.toml");
        let manifest: Manifest = toml::from_str(&text).expect("parse fixtures/modules.toml");
        let sources = fixtures_dir().join("modules");

        let mut modules = Vec::new();
        let mut versions = Vec::new();
        for m in manifest.module {
            let escaped = escape_path(&m.path);
            let mut built: Vec<FixtureVersion> = Vec::new();
            for v in &m.version {
                let src = sources.join(format!("{}@{}", m.path, v.version));
                built.push(build_version(&m.path, v, &src));
            }
            let list: Vec<String> = built
                .iter()
                .filter(|v| v.tagged)
                .map(|v| v.version.clone())
                .collect();
            let latest = m.latest.clone().or_else(|| latest_of(&list));
            let module = FixtureModule {
                path: m.path.clone(),
                escaped,
                versions: built.iter().map(|v| v.version.clone()).collect(),
                list,
                latest,
                queries: m.queries.clone(),
                retracted: m.retracted.clone(),
            };
            write_module(dir, &module, &built);
            modules.push(module);
            versions.extend(built);
        }
        FixtureTree {
            dir: dir.to_owned(),
            modules,
            versions,
        }
    }

    /// The tree's root directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `file:///abs/path`: the tree as a GOPROXY the go command reads directly.
    pub fn file_url(&self) -> String {
        format!("file://{}", self.dir.display())
    }

    /// Every module.
    pub fn modules(&self) -> &[FixtureModule] {
        &self.modules
    }

    /// Every module@version.
    pub fn versions(&self) -> &[FixtureVersion] {
        &self.versions
    }

    /// One module; panics naming it if the fixtures lack it.
    pub fn module(&self, path: &str) -> &FixtureModule {
        self.modules
            .iter()
            .find(|m| m.path == path)
            .unwrap_or_else(|| panic!("no fixture module {path}"))
    }

    /// One module@version; panics naming it if the fixtures lack it.
    pub fn version(&self, module: &str, version: &str) -> &FixtureVersion {
        self.versions
            .iter()
            .find(|v| v.module == module && v.version == version)
            .unwrap_or_else(|| panic!("no fixture version {module}@{version}"))
    }
}

fn build_version(module: &str, v: &ManifestVersion, src: &Path) -> FixtureVersion {
    assert!(
        src.is_dir(),
        "fixtures/modules.toml names {module}@{} but {} is missing",
        v.version,
        src.display()
    );
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    collect_files(src, src, &mut files);
    for g in &v.generated {
        let previous = files.insert(g.file.clone(), generate_bytes(g.seed, g.size));
        assert!(
            previous.is_none(),
            "{module}@{}: generated file {} is also committed",
            v.version,
            g.file
        );
    }
    let has_go_mod_file = files.contains_key("go.mod");
    let go_mod = match files.get("go.mod") {
        Some(bytes) => bytes.clone(),
        None => format!("module {module}\n").into_bytes(),
    };
    let prefix = format!("{module}@{}/", v.version);
    let entries: Vec<(String, Vec<u8>)> = files
        .into_iter()
        .map(|(rel, bytes)| (format!("{prefix}{rel}"), bytes))
        .collect();
    let zip = write_zip(&entries);
    let h1 = hash1(entries.iter().map(|(n, b)| (n.as_str(), b.as_slice())));
    let go_mod_h1 = hash1([("go.mod", go_mod.as_slice())]);
    let info = serde_json::to_vec(&serde_json::json!({"Version": v.version, "Time": v.time}))
        .expect("serialise .info");
    FixtureVersion {
        module: module.to_owned(),
        escaped_module: escape_path(module),
        version: v.version.clone(),
        tagged: v.tagged,
        time: v.time.clone(),
        info,
        go_mod,
        has_go_mod_file,
        zip,
        zip_entries: entries.into_iter().map(|(n, _)| n).collect(),
        h1,
        go_mod_h1,
    }
}

fn write_module(root: &Path, module: &FixtureModule, versions: &[FixtureVersion]) {
    let at_v = root.join(&module.escaped).join("@v");
    std::fs::create_dir_all(&at_v).expect("create @v dir");
    write(&at_v.join("list"), module.list_body().as_bytes());
    for v in versions {
        let stem = escape_path(&v.version);
        write(&at_v.join(format!("{stem}.info")), &v.info);
        write(&at_v.join(format!("{stem}.mod")), &v.go_mod);
        write(&at_v.join(format!("{stem}.zip")), &v.zip);
    }
    let info_of = |version: &str| {
        &versions
            .iter()
            .find(|v| v.version == version)
            .unwrap_or_else(|| panic!("{}: {version} has no content", module.path))
            .info
    };
    if let Some(latest) = &module.latest {
        write(&root.join(&module.escaped).join("@latest"), info_of(latest));
    }
    for (query, version) in &module.queries {
        write(
            &at_v.join(format!("{}.info", escape_path(query))),
            info_of(version),
        );
    }
}

fn write(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// The highest release in `list`, else the highest pre-release: what a proxy's `@latest` answers.
fn latest_of(list: &[String]) -> Option<String> {
    let parse = |v: &String| {
        let s = v.strip_prefix('v').expect("versions start with v");
        (v.clone(), semver::Version::parse(s).expect("semver"))
    };
    let parsed: Vec<(String, semver::Version)> = list.iter().map(parse).collect();
    let best = |pre: bool| {
        parsed
            .iter()
            .filter(|(_, s)| s.pre.is_empty() != pre)
            .max_by(|a, b| a.1.cmp_precedence(&b.1))
            .map(|(v, _)| v.clone())
    };
    best(false).or_else(|| best(true))
}

fn collect_files(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("read fixture dir")
        .map(|e| e.expect("dir entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect_files(root, &path, out);
        } else {
            let rel = path
                .strip_prefix(root)
                .expect("under root")
                .to_str()
                .expect("fixture file names are UTF-8")
                .replace(std::path::MAIN_SEPARATOR, "/");
            out.insert(rel, std::fs::read(&path).expect("read fixture file"));
        }
    }
}

/// Writes a module zip the way `golang.org/x/mod/zip.Create` does: files only, deflated.
///
/// Entries come sorted and with a fixed timestamp, so the same fixtures give the same bytes.
pub fn write_zip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    try_write_zip(entries).expect("write zip")
}

/// [`write_zip`], for entries that may be refused (duplicate names).
pub fn try_write_zip(entries: &[(String, Vec<u8>)]) -> zip::result::ZipResult<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default())
        .unix_permissions(0o644);
    for (name, bytes) in entries {
        w.start_file(name.as_str(), options)?;
        w.write_all(bytes)?;
    }
    Ok(w.finish()?.into_inner())
}

/// Reads every file entry of a zip: (name, content), in archive order.
pub fn read_zip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    try_read_zip(bytes).expect("read zip")
}

/// [`read_zip`], for bytes that may not be a zip.
pub fn try_read_zip(bytes: &[u8]) -> zip::result::ZipResult<Vec<(String, Vec<u8>)>> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))?;
    let mut out = Vec::new();
    for i in 0..archive.len() {
        let mut f = archive.by_index(i)?;
        let mut content = Vec::new();
        std::io::copy(&mut f, &mut content)?;
        out.push((f.name().to_owned(), content));
    }
    Ok(out)
}

/// Go's `dirhash.Hash1`: sha256 over `"{hex sha256}  {name}\n"` lines in file-name order, base64, `h1:` prefix.
pub fn hash1<'a>(files: impl IntoIterator<Item = (&'a str, &'a [u8])>) -> String {
    let mut files: Vec<(&str, &[u8])> = files.into_iter().collect();
    // Go sorts the names, not the lines: sorting lines would order by content hash.
    files.sort_by(|a, b| a.0.cmp(b.0));
    let mut h = Sha256::new();
    for (name, bytes) in files {
        assert!(!name.contains('\n'), "Hash1 refuses names with newlines");
        h.update(format!("{}  {name}\n", hex::encode(Sha256::digest(bytes))).as_bytes());
    }
    format!(
        "h1:{}",
        base64::engine::general_purpose::STANDARD.encode(h.finalize())
    )
}

/// Go's module path/version escaping: each upper-case letter becomes `!` and its lower case.
pub fn escape_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_ascii_uppercase() {
            out.push('!');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Bytes from splitmix64: deterministic across platforms and crate versions, and incompressible.
pub fn generate_bytes(seed: u64, size: usize) -> Vec<u8> {
    let mut state = seed;
    let mut out = Vec::with_capacity(size + 8);
    while out.len() < size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(size);
    out
}

/// Removes `fixture-tree-{pid}` directories whose process has exited (Linux: no `/proc/{pid}`).
fn remove_stale_trees(scratch: &Path) {
    let Ok(entries) = std::fs::read_dir(scratch) else {
        return;
    };
    if !Path::new("/proc/self").exists() {
        return;
    }
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("fixture-tree-")) else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            // Best effort: another process may be removing the same stale tree.
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}
