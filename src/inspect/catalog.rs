//! The catalog: every committed `module@version`, a page at a time, for mirroring and auditing.
//!
//! Pages follow storage key order; the cursor is the last `.info` key of the previous page, given
//! to `list_with_offset`. Backends that list in key order (S3, memory) stop reading after one
//! page; a local directory lists in directory order, so each page scans every key after the cursor
//! and keeps the smallest (memory bounded by the page size).

use std::collections::BTreeMap;

use futures::TryStreamExt;
use object_store::path::Path;
use serde::Serialize;

use super::InspectError;
use super::keys::{KeyKind, classify_path};
use crate::storage::{Storage, StorageUrl, VersionFile};

/// Entries per page when the request names no limit.
pub const DEFAULT_LIMIT: usize = 1000;
/// The largest page.
pub const MAX_LIMIT: usize = 10_000;

/// Where a page starts: after this key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor(Path);

impl Cursor {
    /// Accepts any well-formed storage key.
    pub fn parse(s: &str) -> Result<Cursor, InspectError> {
        if s.is_empty() {
            return Err(InspectError::Cursor {
                cursor: s.to_owned(),
                reason: "empty".into(),
            });
        }
        Path::parse(s)
            .map(Cursor)
            .map_err(|e| InspectError::Cursor {
                cursor: s.to_owned(),
                reason: e.to_string(),
            })
    }
}

/// One stored version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogEntry {
    /// Module path (plain, not escaped).
    pub module: String,
    /// Version.
    pub version: String,
}

/// One page of the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CatalogPage {
    /// The versions on this page, in key order.
    pub modules: Vec<CatalogEntry>,
    /// The cursor of the next page; `None` on the last page.
    pub next: Option<String>,
}

/// The committed versions after `cursor`, at most `limit` (clamped to `1..=MAX_LIMIT`).
pub async fn page(
    storage: &Storage,
    cursor: Option<&Cursor>,
    limit: usize,
) -> Result<CatalogPage, InspectError> {
    let limit = limit.clamp(1, MAX_LIMIT);
    let store = storage.object_store();
    let mut listing = match cursor {
        Some(Cursor(offset)) => store.list_with_offset(None, offset),
        None => store.list(None),
    };
    let in_order = lists_in_key_order(storage.url());
    // The `limit + 1` smallest keys: one more than the page tells whether another page follows.
    let mut smallest: BTreeMap<String, CatalogEntry> = BTreeMap::new();
    while let Some(meta) = listing.try_next().await? {
        if cursor.is_some_and(|Cursor(c)| meta.location <= *c) {
            continue;
        }
        let KeyKind::Version(mv, VersionFile::Info) = classify_path(&meta.location) else {
            continue;
        };
        smallest.insert(
            meta.location.to_string(),
            CatalogEntry {
                module: mv.path().to_string(),
                version: mv.version().to_string(),
            },
        );
        if smallest.len() > limit + 1 {
            smallest.pop_last();
        }
        if in_order && smallest.len() > limit {
            break;
        }
    }
    let more = smallest.len() > limit;
    let mut modules = Vec::with_capacity(limit.min(smallest.len()));
    let mut last = None;
    for (key, entry) in smallest.into_iter().take(limit) {
        modules.push(entry);
        last = Some(key);
    }
    Ok(CatalogPage {
        modules,
        next: if more { last } else { None },
    })
}

/// Whether the backend's `list` returns keys in ascending order (S3 and memory do; a local
/// directory walk does not).
fn lists_in_key_order(url: &StorageUrl) -> bool {
    !matches!(url, StorageUrl::File(_))
}
