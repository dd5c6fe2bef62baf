//! `modstash rm`: delete one version's files (`.info` first) and take it out of `@v/list`.

use object_store::ObjectStoreExt;

use super::InspectError;
use super::inventory::DELETE_ORDER;
use crate::module::{ModulePath, ModuleVersion, Version};
use crate::storage::{ListWrite, Storage, VersionFile, layout};

/// Parses `MODULE@VERSION` (plain, not escaped; a canonical version).
pub fn parse_module_version(arg: &str) -> Result<ModuleVersion, InspectError> {
    let Some((path, version)) = arg.rsplit_once('@') else {
        return Err(InspectError::Argument {
            arg: arg.to_owned(),
            reason: "expected MODULE@VERSION, e.g. golang.org/x/mod@v0.20.0".into(),
        });
    };
    let path = ModulePath::parse(path)?;
    let version = Version::parse(version)?;
    Ok(ModuleVersion::new(path, version)?)
}

/// The files of `mv` present in storage, in deletion order.
pub async fn stored_files(
    storage: &Storage,
    mv: &ModuleVersion,
) -> Result<Vec<VersionFile>, InspectError> {
    let mut present = Vec::new();
    for file in DELETE_ORDER {
        if storage
            .head(&layout::version_key(mv, file))
            .await?
            .is_some()
        {
            present.push(file);
        }
    }
    Ok(present)
}

/// What `remove` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Files deleted, in order.
    pub files: Vec<VersionFile>,
    /// True when `@v/list` named the version and was rewritten without it.
    pub list_updated: bool,
}

/// Deletes `mv`'s files, `.info` first so the version stops being visible before anything it
/// promises disappears, then `.zip`, `.mod`, `.ziphash`; then removes it from `@v/list`.
/// A version with no files at all is [`InspectError::NotStored`].
pub async fn remove(storage: &Storage, mv: &ModuleVersion) -> Result<Removed, InspectError> {
    // Found with `head` first: S3 answers a delete of a missing key with success.
    let files = stored_files(storage, mv).await?;
    for &file in &files {
        match storage
            .object_store()
            .delete(&layout::version_key(mv, file))
            .await
        {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let list_updated = remove_from_list(storage, mv).await?;
    if files.is_empty() && !list_updated {
        return Err(InspectError::NotStored(mv.to_string()));
    }
    Ok(Removed {
        files,
        list_updated,
    })
}

/// Takes `mv` out of `@v/list` with a conditional update (retried on conflict); `false` when the
/// list does not name it.
async fn remove_from_list(storage: &Storage, mv: &ModuleVersion) -> Result<bool, InspectError> {
    for _ in 0..5 {
        let stored = storage.read_list(mv.path()).await?;
        if !stored.versions.contains(mv.version()) {
            return Ok(false);
        }
        let kept: Vec<Version> = stored
            .versions
            .into_iter()
            .filter(|v| v != mv.version())
            .collect();
        match storage.write_list(mv.path(), &kept, stored.token).await? {
            ListWrite::Written => return Ok(true),
            ListWrite::Conflict => continue,
        }
    }
    Err(InspectError::ListContended(mv.path().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_checked() {
        let mv = parse_module_version("github.com/Azure/x@v1.2.3").unwrap();
        assert_eq!(mv.to_string(), "github.com/Azure/x@v1.2.3");
        for bad in [
            "example.com/m",
            "example.com/m@v1",
            "example.com/m@latest",
            "example.com/m@v2.0.0",
            "Example/m@v1.0.0",
            "@v1.0.0",
        ] {
            let err = parse_module_version(bad).unwrap_err().to_string();
            assert!(!err.is_empty(), "{bad}");
        }
    }
}
