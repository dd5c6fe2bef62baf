//! One recursive listing of the whole storage, grouped by module and version.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::ObjectMeta;

use super::InspectError;
use super::keys::{KeyKind, classify_path};
use crate::module::{ModulePath, ModuleVersion, Version};
use crate::storage::{Storage, VersionFile};

/// The objects of one stored version, by file.
#[derive(Debug, Clone, Default)]
pub struct VersionObjects {
    /// `.info`: present means committed.
    pub info: Option<ObjectMeta>,
    /// `.mod`.
    pub go_mod: Option<ObjectMeta>,
    /// `.zip`.
    pub zip: Option<ObjectMeta>,
    /// `.ziphash`.
    pub zip_hash: Option<ObjectMeta>,
}

impl VersionObjects {
    /// The object of one file, if stored.
    pub fn get(&self, file: VersionFile) -> Option<&ObjectMeta> {
        match file {
            VersionFile::Info => self.info.as_ref(),
            VersionFile::Mod => self.go_mod.as_ref(),
            VersionFile::Zip => self.zip.as_ref(),
            VersionFile::ZipHash => self.zip_hash.as_ref(),
        }
    }

    fn slot(&mut self, file: VersionFile) -> &mut Option<ObjectMeta> {
        match file {
            VersionFile::Info => &mut self.info,
            VersionFile::Mod => &mut self.go_mod,
            VersionFile::Zip => &mut self.zip,
            VersionFile::ZipHash => &mut self.zip_hash,
        }
    }

    /// True when the commit marker exists.
    pub fn is_committed(&self) -> bool {
        self.info.is_some()
    }

    /// The stored objects, in the order `rm` deletes them (`.info` first).
    pub fn present(&self) -> Vec<(VersionFile, &ObjectMeta)> {
        DELETE_ORDER
            .iter()
            .filter_map(|&f| self.get(f).map(|m| (f, m)))
            .collect()
    }
}

/// The order a version's files are deleted in: `.info` first, so the version stops being visible
/// before anything it promises disappears.
pub const DELETE_ORDER: [VersionFile; 4] = [
    VersionFile::Info,
    VersionFile::Zip,
    VersionFile::Mod,
    VersionFile::ZipHash,
];

/// What storage holds for one module.
#[derive(Debug, Clone, Default)]
pub struct ModuleObjects {
    /// `@v/list`, if stored.
    pub list: Option<ObjectMeta>,
    /// Files per version, committed or not, in Go's version order.
    pub versions: BTreeMap<Version, VersionObjects>,
}

/// Everything in storage outside `.modstash/`.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    /// Modules by path.
    pub modules: BTreeMap<ModulePath, ModuleObjects>,
    /// Objects that are not part of the key layout (never touched, only reported).
    pub strays: Vec<ObjectMeta>,
}

impl Inventory {
    /// Lists the whole storage once (recursively, from the root).
    pub async fn load(storage: &Storage) -> Result<Inventory, InspectError> {
        let mut inventory = Inventory::default();
        let mut listing = storage.object_store().list(None);
        while let Some(meta) = listing.try_next().await? {
            inventory.add(meta);
        }
        Ok(inventory)
    }

    fn add(&mut self, meta: ObjectMeta) {
        match classify_path(&meta.location) {
            KeyKind::Internal => {}
            KeyKind::Other => self.strays.push(meta),
            KeyKind::List(path) => self.modules.entry(path).or_default().list = Some(meta),
            KeyKind::Version(mv, file) => {
                let (path, version) = (mv.path().clone(), mv.version().clone());
                *self
                    .modules
                    .entry(path)
                    .or_default()
                    .versions
                    .entry(version)
                    .or_default()
                    .slot(file) = Some(meta);
            }
        }
    }

    /// Every version with its objects, committed or not.
    pub fn versions(&self) -> impl Iterator<Item = (ModuleVersion, &VersionObjects)> {
        self.modules.iter().flat_map(|(path, m)| {
            m.versions.iter().filter_map(move |(version, objects)| {
                // Keys only classify as version files when the pair is valid, so this never skips.
                ModuleVersion::new(path.clone(), version.clone())
                    .ok()
                    .map(|mv| (mv, objects))
            })
        })
    }
}
