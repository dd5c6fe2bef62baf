//! The Go module vocabulary: module paths, versions, the GOPROXY URL grammar, zip checks and `h1:` hashes.
//! TEMPORARY STUB: replaced by the full implementation from branch module-vocab.
#![allow(missing_docs, clippy::unwrap_used)]

use std::fmt;
use std::io::Read;

#[derive(Debug, thiserror::Error)]
pub enum ModuleError {
    #[error("{0}")]
    Invalid(String),
}
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    #[error("{0}")]
    Invalid(String),
    #[error("reading zip: {0}")]
    Io(#[from] std::io::Error),
}

fn unescape(s: &str) -> Result<String, ModuleError> {
    let mut out = String::new();
    let mut bang = false;
    for c in s.chars() {
        if bang {
            if !c.is_ascii_lowercase() {
                return Err(ModuleError::Invalid(format!("bad escape in {s:?}")));
            }
            out.push(c.to_ascii_uppercase());
            bang = false;
        } else if c == '!' {
            bang = true;
        } else if c.is_ascii_uppercase() {
            return Err(ModuleError::Invalid(format!(
                "invalid escaped path {s:?}: upper case"
            )));
        } else {
            out.push(c);
        }
    }
    if bang {
        return Err(ModuleError::Invalid("trailing !".into()));
    }
    Ok(out)
}
fn escape(s: &str) -> String {
    let mut out = String::new();
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

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ModulePath(String);
impl ModulePath {
    pub fn parse(s: &str) -> Result<ModulePath, ModuleError> {
        let ok = !s.is_empty()
            && s.split('/')
                .next()
                .is_some_and(|f| f.contains('.') && !f.starts_with('.'))
            && s.split('/').all(|e| {
                !e.is_empty() && e != "." && e != ".." && !e.starts_with('.') && !e.ends_with('.')
            })
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-._~/".contains(c))
            && !s
                .split('/')
                .next()
                .unwrap_or("")
                .chars()
                .any(|c| c.is_ascii_uppercase());
        if ok {
            Ok(ModulePath(s.to_owned()))
        } else {
            Err(ModuleError::Invalid(format!("malformed module path {s:?}")))
        }
    }
    pub fn from_escaped(s: &str) -> Result<ModulePath, ModuleError> {
        Self::parse(&unescape(s)?)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn escaped(&self) -> String {
        escape(&self.0)
    }
}
impl fmt::Display for ModulePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Version(String, semver::Version);
impl Version {
    pub fn parse(s: &str) -> Result<Version, ModuleError> {
        let bad = || ModuleError::Invalid(format!("invalid version {s:?}: not canonical"));
        let rest = s.strip_prefix('v').ok_or_else(bad)?;
        let v = semver::Version::parse(rest).map_err(|_| bad())?;
        if !v.build.is_empty() && v.build.as_str() != "incompatible" {
            return Err(bad());
        }
        Ok(Version(s.to_owned(), v))
    }
    pub fn from_escaped(s: &str) -> Result<Version, ModuleError> {
        Self::parse(&unescape(s)?)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn escaped(&self) -> String {
        escape(&self.0)
    }
    pub fn is_prerelease(&self) -> bool {
        !self.1.pre.is_empty()
    }
    pub fn is_pseudo(&self) -> bool {
        self.1
            .pre
            .as_str()
            .split('.')
            .next_back()
            .is_some_and(|l| l.len() == 12 && l.contains('-'))
            || self.1.pre.as_str().len() > 26
    }
    pub fn is_incompatible(&self) -> bool {
        self.1.build.as_str() == "incompatible"
    }
}
impl PartialOrd for Version {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Version {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        self.1.cmp_precedence(&o.1).then_with(|| self.0.cmp(&o.0))
    }
}
impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModuleVersion {
    path: ModulePath,
    version: Version,
}
impl ModuleVersion {
    pub fn new(path: ModulePath, version: Version) -> Result<ModuleVersion, ModuleError> {
        Ok(ModuleVersion { path, version })
    }
    pub fn path(&self) -> &ModulePath {
        &self.path
    }
    pub fn version(&self) -> &Version {
        &self.version
    }
}
impl fmt::Display for ModuleVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.path, self.version)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct VersionQuery(String);
impl VersionQuery {
    pub fn from_escaped(s: &str) -> Result<VersionQuery, ModuleError> {
        let u = unescape(s)?;
        if u.is_empty()
            || u.contains("..")
            || !u
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "._~+/-".contains(c))
        {
            return Err(ModuleError::Invalid(format!("invalid version query {s:?}")));
        }
        Ok(VersionQuery(u))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn escaped(&self) -> String {
        escape(&self.0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    Canonical(Version),
    Query(VersionQuery),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProxyRequest {
    List(ModulePath),
    Latest(ModulePath),
    Info(ModulePath, VersionRef),
    Mod(ModuleVersion),
    Zip(ModuleVersion),
}

pub fn parse_proxy_path(raw_path: &str) -> Result<ProxyRequest, ModuleError> {
    let bad = |m: &str| ModuleError::Invalid(m.to_owned());
    if raw_path.len() > 8192 {
        return Err(bad("path too long"));
    }
    let decoded = percent_encoding::percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| bad("invalid utf-8"))?;
    let p = decoded
        .strip_prefix('/')
        .ok_or_else(|| bad("no leading /"))?;
    let (m, rest) = p
        .split_once("/@")
        .ok_or_else(|| bad("missing /@v/ or /@latest"))?;
    let path = ModulePath::from_escaped(m)?;
    if rest == "latest" {
        return Ok(ProxyRequest::Latest(path));
    }
    let file = rest
        .strip_prefix("v/")
        .ok_or_else(|| bad("unknown endpoint"))?;
    if file == "list" {
        return Ok(ProxyRequest::List(path));
    }
    let (v, ext) = file.rsplit_once('.').ok_or_else(|| bad("unknown file"))?;
    match ext {
        "info" => match Version::from_escaped(v) {
            Ok(v) => Ok(ProxyRequest::Info(path, VersionRef::Canonical(v))),
            Err(_) => Ok(ProxyRequest::Info(
                path,
                VersionRef::Query(VersionQuery::from_escaped(v)?),
            )),
        },
        "mod" => Ok(ProxyRequest::Mod(ModuleVersion::new(
            path,
            Version::from_escaped(v)?,
        )?)),
        "zip" => Ok(ProxyRequest::Zip(ModuleVersion::new(
            path,
            Version::from_escaped(v)?,
        )?)),
        _ => Err(bad("unknown file extension")),
    }
}

#[derive(Debug, Clone)]
pub struct ZipLimits {
    pub max_zip_size: u64,
    pub max_go_mod: u64,
    pub max_license: u64,
    pub max_uncompressed_total: u64,
}
impl Default for ZipLimits {
    fn default() -> Self {
        ZipLimits {
            max_zip_size: 500 << 20,
            max_go_mod: 16 << 20,
            max_license: 16 << 20,
            max_uncompressed_total: 500 << 20,
        }
    }
}
pub struct ZipSummary {
    pub h1: String,
    pub go_mod: Option<Vec<u8>>,
    pub files: usize,
    pub uncompressed_size: u64,
}

pub fn check_zip_file(
    path: &std::path::Path,
    mv: &ModuleVersion,
    _limits: &ZipLimits,
) -> Result<ZipSummary, ZipError> {
    use sha2::Digest;
    let mut z = zip::ZipArchive::new(std::fs::File::open(path)?)
        .map_err(|e| ZipError::Invalid(e.to_string()))?;
    let prefix = format!("{mv}/");
    let mut lines = Vec::new();
    let mut go_mod = None;
    let mut total = 0;
    for i in 0..z.len() {
        let mut f = z
            .by_index(i)
            .map_err(|e| ZipError::Invalid(e.to_string()))?;
        let name = f.name().to_owned();
        if !name.starts_with(&prefix) || name.contains("..") {
            return Err(ZipError::Invalid(format!("bad entry {name:?}")));
        }
        let mut buf = Vec::new();
        f.read_to_end(&mut buf)?;
        total += buf.len() as u64;
        if name == format!("{prefix}go.mod") {
            go_mod = Some(buf.clone());
        }
        lines.push((name, hex::encode(sha2::Sha256::digest(&buf))));
    }
    lines.sort();
    let mut h = sha2::Sha256::new();
    for (n, d) in &lines {
        h.update(format!("{d}  {n}\n"));
    }
    use base64::Engine;
    Ok(ZipSummary {
        h1: format!(
            "h1:{}",
            base64::engine::general_purpose::STANDARD.encode(h.finalize())
        ),
        go_mod,
        files: lines.len(),
        uncompressed_size: total,
    })
}
