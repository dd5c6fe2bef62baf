//! A module path and canonical version that belong together (`module.Check`, plus the `+incompatible` rules of the go command).

use std::fmt;

use super::error::ModuleError;
use super::path::ModulePath;
use super::version::Version;

/// A module path with a canonical version whose major version the path allows.
///
/// Beyond `module.Check`, `+incompatible` is accepted only where the go command would ever
/// produce it: major version 2 or higher on a path with no major-version suffix.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModuleVersion {
    path: ModulePath,
    version: Version,
}

impl ModuleVersion {
    /// Pairs `path` and `version` if they agree.
    pub fn new(path: ModulePath, version: Version) -> Result<ModuleVersion, ModuleError> {
        if let Err(reason) = check_path_major(&path, &version) {
            return Err(ModuleError::VersionMismatch {
                path: path.as_str().to_owned(),
                version: version.as_str().to_owned(),
                reason,
            });
        }
        Ok(ModuleVersion { path, version })
    }

    /// The module path.
    pub fn path(&self) -> &ModulePath {
        &self.path
    }

    /// The version.
    pub fn version(&self) -> &Version {
        &self.version
    }
}

impl fmt::Display for ModuleVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.path, self.version)
    }
}

/// `module.CheckPathMajor` and the `+incompatible` restrictions.
fn check_path_major(path: &ModulePath, version: &Version) -> Result<(), String> {
    let mut path_major = path.path_major();
    let major = version.major();
    if version.is_incompatible() {
        if !path_major.is_empty() {
            return Err(
                "+incompatible suffix not allowed: module path has a major version suffix".into(),
            );
        }
        if major == "v0" || major == "v1" {
            return Err(format!(
                "+incompatible suffix not allowed: major version {major} is compatible"
            ));
        }
        return Ok(());
    }
    if path_major.starts_with(".v") {
        path_major = path_major.strip_suffix("-unstable").unwrap_or(path_major);
        // Early vgo wrote v0.0.0 pseudo-versions for gopkg.in .v1 paths; go.mod files
        // still require them (gopkg.in/yaml.v2 v2.2.1 requires such a check.v1).
        if path_major == ".v1" && version.as_str().starts_with("v0.0.0-") {
            return Ok(());
        }
    }
    let want = if path_major.is_empty() {
        if major == "v0" || major == "v1" {
            return Ok(());
        }
        "v0 or v1"
    } else {
        let want = &path_major[1..];
        if major == want {
            return Ok(());
        }
        want
    };
    Err(format!("should be {want}, not {major}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(path: &str, version: &str) -> Result<ModuleVersion, ModuleError> {
        ModuleVersion::new(
            ModulePath::parse(path).unwrap(),
            Version::parse(version).unwrap(),
        )
    }

    /// golang.org/x/mod's Check table as data, plus our `+incompatible` rules.
    #[test]
    fn check_table() {
        let cases = [
            ("github.com/go-yaml/yaml", "v0.8.0", true),
            ("github.com/go-yaml/yaml", "v1.0.0", true),
            ("github.com/go-yaml/yaml", "v2.0.0", false),
            ("github.com/go-yaml/yaml", "v2.1.5", false),
            ("github.com/go-yaml/yaml", "v3.0.0", false),
            ("github.com/go-yaml/yaml/v2", "v1.0.0", false),
            ("github.com/go-yaml/yaml/v2", "v2.0.0", true),
            ("github.com/go-yaml/yaml/v2", "v2.1.5", true),
            ("github.com/go-yaml/yaml/v2", "v3.0.0", false),
            ("gopkg.in/yaml.v0", "v0.8.0", true),
            ("gopkg.in/yaml.v0", "v1.0.0", false),
            ("gopkg.in/yaml.v0", "v2.0.0", false),
            ("gopkg.in/yaml.v0", "v2.1.5", false),
            ("gopkg.in/yaml.v0", "v3.0.0", false),
            ("gopkg.in/yaml.v1", "v0.8.0", false),
            ("gopkg.in/yaml.v1", "v1.0.0", true),
            ("gopkg.in/yaml.v1", "v2.0.0", false),
            ("gopkg.in/yaml.v1", "v2.1.5", false),
            ("gopkg.in/yaml.v1", "v3.0.0", false),
            ("gopkg.in/check.v1", "v0.0.0", false),
            (
                "gopkg.in/check.v1",
                "v0.0.0-20160102150405-abcdef123456",
                true,
            ),
            ("gopkg.in/yaml.v2", "v1.0.0", false),
            ("gopkg.in/yaml.v2", "v2.0.0", true),
            ("gopkg.in/yaml.v2", "v2.1.5", true),
            ("gopkg.in/yaml.v2", "v2.4.0", true),
            ("gopkg.in/yaml.v2", "v3.0.0", false),
            ("gopkg.in/yaml.v2-unstable", "v2.0.0", true),
            ("gopkg.in/yaml.v2-unstable", "v1.0.0", false),
            ("rsc.io/quote", "v17.0.0", false),
            ("rsc.io/quote", "v17.0.0+incompatible", true),
            // Ours: +incompatible only for v2+ without a suffix.
            ("example.com/m", "v2.0.0+incompatible", true),
            ("example.com/m", "v2.0.0-rc.1+incompatible", true),
            ("example.com/m", "v1.0.0+incompatible", false),
            ("example.com/m", "v0.1.0+incompatible", false),
            ("example.com/m/v2", "v2.0.0+incompatible", false),
            ("gopkg.in/yaml.v2", "v2.0.0+incompatible", false),
            (
                "example.com/m/v2",
                "v2.0.0-20191109021931-daa7c04131f5",
                true,
            ),
            ("example.com/m", "v2.0.0-20191109021931-daa7c04131f5", false),
            ("example.com/m/v3", "v2.0.0", false),
        ];
        for (path, version, ok) in cases {
            let got = check(path, version);
            assert_eq!(got.is_ok(), ok, "Check({path:?}, {version:?}) = {got:?}");
        }
    }

    #[test]
    fn messages() {
        assert_eq!(
            check("example.com/m/v2", "v1.0.0").unwrap_err().to_string(),
            "example.com/m/v2@v1.0.0: invalid version: should be v2, not v1"
        );
        assert_eq!(
            check("example.com/m", "v2.0.0").unwrap_err().to_string(),
            "example.com/m@v2.0.0: invalid version: should be v0 or v1, not v2"
        );
        assert_eq!(
            check("gopkg.in/yaml.v2", "v3.0.0").unwrap_err().to_string(),
            "gopkg.in/yaml.v2@v3.0.0: invalid version: should be v2, not v3"
        );
        let mv = check("github.com/Azure/x", "v1.2.3").unwrap();
        assert_eq!(mv.to_string(), "github.com/Azure/x@v1.2.3");
        assert_eq!(mv.path().as_str(), "github.com/Azure/x");
        assert_eq!(mv.version().as_str(), "v1.2.3");
    }
}
