//! The key layout: storage is a GOPROXY tree, so keys mirror the protocol's URL paths.

use object_store::path::Path;

use crate::module::{ModulePath, ModuleVersion};

/// The files stored for one module version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VersionFile {
    /// `{version}.info`: JSON; written last, it is the commit marker.
    Info,
    /// `{version}.mod`: the go.mod.
    Mod,
    /// `{version}.zip`: the module zip, as upstream sent it.
    Zip,
    /// `{version}.ziphash`: the `h1:` hash of the zip.
    ZipHash,
}

impl VersionFile {
    /// The file extension, also the protocol's.
    pub fn extension(self) -> &'static str {
        match self {
            VersionFile::Info => "info",
            VersionFile::Mod => "mod",
            VersionFile::Zip => "zip",
            VersionFile::ZipHash => "ziphash",
        }
    }
}

/// The root of everything that is not a module: leases, probes.
pub const INTERNAL_PREFIX: &str = ".modstash";

/// `{escaped-module}/@v/{escaped-version}.{ext}`
pub fn version_key(mv: &ModuleVersion, file: VersionFile) -> Path {
    key(format!(
        "{}/@v/{}.{}",
        mv.path().escaped(),
        mv.version().escaped(),
        file.extension()
    ))
}

/// `{escaped-module}/@v/list`
pub fn list_key(path: &ModulePath) -> Path {
    key(format!("{}/@v/list", path.escaped()))
}

/// `{escaped-module}/@v/`
pub fn version_dir(path: &ModulePath) -> Path {
    key(format!("{}/@v", path.escaped()))
}

/// `.modstash/{name}`: keys no module path can collide with (module paths cannot begin with `.`).
pub fn internal_key(parts: &[&str]) -> Path {
    Path::from_iter(std::iter::once(INTERNAL_PREFIX).chain(parts.iter().copied()))
}

fn key(raw: String) -> Path {
    // Validated module paths and versions have no empty, `.` or `..` elements and no control
    // characters, so `parse` keeps them verbatim (`Path::from` would percent-encode `~`, which
    // module paths may contain, and break the GOPROXY-tree layout). The fallback only ever
    // encodes more, so it stays inside the tree.
    Path::parse(&raw).unwrap_or_else(|_| Path::from(raw))
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::Version;

    #[test]
    fn keys_mirror_the_protocol_urls() {
        let mv = ModuleVersion::new(
            ModulePath::parse("github.com/Upper/Case").unwrap(),
            Version::parse("v1.0.0-RC.1").unwrap(),
        )
        .unwrap();
        assert_eq!(
            version_key(&mv, VersionFile::Zip).as_ref(),
            "github.com/!upper/!case/@v/v1.0.0-!r!c.1.zip"
        );
        assert_eq!(
            list_key(mv.path()).as_ref(),
            "github.com/!upper/!case/@v/list"
        );
        assert_eq!(
            internal_key(&["leases", "x"]).as_ref(),
            ".modstash/leases/x"
        );
    }
}
