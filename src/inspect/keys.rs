//! Storage keys read back into module terms: the inverse of `storage::layout`.

use object_store::path::Path;

use crate::module::{ModulePath, ModuleVersion, Version};
use crate::storage::VersionFile;
use crate::storage::layout::INTERNAL_PREFIX;

/// What a storage key is, by the key layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyKind {
    /// Under `.modstash/`: leases, probes; not ours to judge.
    Internal,
    /// `{module}/@v/list`.
    List(ModulePath),
    /// `{module}/@v/{version}.{info|mod|zip|ziphash}`.
    Version(ModuleVersion, VersionFile),
    /// Anything else: not part of the layout.
    Other,
}

/// Classifies a key (as `Path::as_ref` spells it).
pub fn classify(key: &str) -> KeyKind {
    if key == INTERNAL_PREFIX
        || key
            .strip_prefix(INTERNAL_PREFIX)
            .is_some_and(|rest| rest.starts_with('/'))
    {
        return KeyKind::Internal;
    }
    let Some((module, file)) = key.split_once("/@v/") else {
        return KeyKind::Other;
    };
    let Ok(path) = ModulePath::from_escaped(module) else {
        return KeyKind::Other;
    };
    if file == "list" {
        return KeyKind::List(path);
    }
    let Some((version, ext)) = file.rsplit_once('.') else {
        return KeyKind::Other;
    };
    let file = match ext {
        "info" => VersionFile::Info,
        "mod" => VersionFile::Mod,
        "zip" => VersionFile::Zip,
        "ziphash" => VersionFile::ZipHash,
        _ => return KeyKind::Other,
    };
    match Version::from_escaped(version).map(|v| ModuleVersion::new(path, v)) {
        Ok(Ok(mv)) => KeyKind::Version(mv, file),
        _ => KeyKind::Other,
    }
}

/// Classifies an object_store path.
pub fn classify_path(key: &Path) -> KeyKind {
    classify(key.as_ref())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_the_layout_are_recognised() {
        let KeyKind::Version(mv, file) = classify("github.com/!azure/x/@v/v1.0.0-!r!c.1.ziphash")
        else {
            panic!("not a version file")
        };
        assert_eq!(mv.to_string(), "github.com/Azure/x@v1.0.0-RC.1");
        assert_eq!(file, VersionFile::ZipHash);
        assert_eq!(
            classify("example.com/m/@v/list"),
            KeyKind::List(ModulePath::parse("example.com/m").unwrap())
        );
        assert_eq!(classify(".modstash/leases/x/1"), KeyKind::Internal);
        for other in [
            "README",
            ".modstashx/a",
            "example.com/m/@v/v1.0.0.tmp",
            "example.com/m/@v/v1.0.zip",
            "example.com/m/@v/v2.0.0.zip",
            "Example.com/m/@v/v1.0.0.zip",
            "example.com/m/@latest",
        ] {
            assert_eq!(classify(other), KeyKind::Other, "{other}");
        }
    }
}
