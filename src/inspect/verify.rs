//! `modstash verify`: re-check every stored version and the bookkeeping around it, and with
//! `--repair` fix what can be fixed without touching a committed version's files.
//!
//! Problems found:
//! - corrupt committed versions: `.mod`/`.zip`/`.ziphash` missing, `.info` not JSON or naming
//!   another version, the zip failing the module zip checks, its `h1:` differing from `.ziphash`,
//!   `.mod` differing from the zip's go.mod. Reported only: `modstash rm` removes one so that the
//!   next request fetches it again.
//! - orphans: files of a version without `.info` (a crash before commit); repair deletes them.
//! - local staging leftovers (`{file}#{n}`); repair deletes them.
//! - storage-lease logs idle for longer than the grace period (housekeeping, not a problem);
//!   repair deletes them.
//! - `@v/list` files that miss committed tagged versions or name versions that are not committed
//!   (or pseudo-versions, or garbage lines); repair rewrites them from the committed versions.
//!
//! Orphans and staging files younger than the grace period may be a commit in progress and are
//! left alone: deleting the `.zip` of a version whose `.info` is about to be written would create
//! exactly the corruption this command looks for.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime};

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectMeta, ObjectStoreExt};
use serde::Serialize;
use tokio::io::AsyncWriteExt;

use super::InspectError;
use super::inventory::{Inventory, ModuleObjects, VersionObjects};
use super::staging;
use crate::module::{ModulePath, ModuleVersion, Version, ZipLimits, check_zip_file};
use crate::stash::lease::{StaleLogs, collect_stale_logs};
use crate::storage::{ListWrite, Storage, VersionFile};

/// How `verify` runs.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// Fix lists, delete orphans and staging leftovers.
    pub repair: bool,
    /// Orphans and staging files younger than this may be in progress: reported, never deleted.
    pub grace: Duration,
    /// Versions checked at once.
    pub concurrency: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        VerifyOptions {
            repair: false,
            grace: Duration::from_secs(3600),
            concurrency: 4,
        }
    }
}

/// What was done about a problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Found and left as it is: still a problem.
    Reported,
    /// Deleted or rewritten.
    Repaired,
    /// Younger than the grace period, so possibly a write in progress: left alone, not a problem.
    InProgress,
    /// Repair was attempted and failed: still a problem.
    Failed,
}

impl Action {
    fn remains(self) -> bool {
        matches!(self, Action::Reported | Action::Failed)
    }
}

/// A committed version whose files are not what the commit protocol promises.
#[derive(Debug, Clone, Serialize)]
pub struct CorruptVersion {
    /// Module path.
    pub module: String,
    /// Version.
    pub version: String,
    /// Each thing wrong with it.
    pub problems: Vec<String>,
}

/// A committed version that could not be checked (storage failed while reading it).
#[derive(Debug, Clone, Serialize)]
pub struct Unreadable {
    /// Module path.
    pub module: String,
    /// Version.
    pub version: String,
    /// The failure.
    pub error: String,
}

/// Files of a version that has no `.info`.
#[derive(Debug, Clone, Serialize)]
pub struct Orphan {
    /// Module path.
    pub module: String,
    /// Version.
    pub version: String,
    /// Storage keys of the files.
    pub keys: Vec<String>,
    /// What was done.
    pub action: Action,
    /// Why the repair failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A local staging file left behind.
#[derive(Debug, Clone, Serialize)]
pub struct StagingLeftover {
    /// Its path relative to the storage root.
    pub key: String,
    /// Seconds since it was last written.
    pub age_secs: u64,
    /// What was done.
    pub action: Action,
    /// Why the repair failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// An `@v/list` that disagrees with the committed versions.
#[derive(Debug, Clone, Serialize)]
pub struct ListProblem {
    /// Module path.
    pub module: String,
    /// Committed tagged versions the list does not name.
    pub missing: Vec<String>,
    /// Versions the list names that are not committed.
    pub not_committed: Vec<String>,
    /// Committed pseudo-versions the list names (lists hold tagged versions only).
    pub pseudo: Vec<String>,
    /// Lines that are not versions.
    pub invalid_lines: Vec<String>,
    /// What was done.
    pub action: Action,
    /// Why the repair failed, if it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Everything `verify` found and did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct VerifyReport {
    /// Committed versions.
    pub versions: usize,
    /// Committed versions that passed every check.
    pub verified: usize,
    /// Corrupt committed versions.
    pub corrupt: Vec<CorruptVersion>,
    /// Committed versions that could not be read.
    pub unreadable: Vec<Unreadable>,
    /// Versions without `.info`.
    pub orphans: Vec<Orphan>,
    /// Local staging leftovers.
    pub staging: Vec<StagingLeftover>,
    /// Lists that disagree with the committed versions.
    pub lists: Vec<ListProblem>,
    /// Keys outside the layout: reported, never touched, not a problem.
    pub strays: Vec<String>,
    /// Storage-lease logs at rest for longer than the grace period (housekeeping, not a
    /// problem); `--repair` deletes them.
    pub stale_lease_logs: StaleLogs,
}

/// The counts of the summary line.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Committed versions.
    pub versions: usize,
    /// Committed versions that passed every check.
    pub verified: usize,
    /// Corrupt committed versions.
    pub corrupt: usize,
    /// Versions without `.info` found.
    pub orphans: usize,
    /// Lists rewritten.
    pub lists_fixed: usize,
    /// Lists found disagreeing with the committed versions.
    pub lists_wrong: usize,
    /// Staging leftovers found.
    pub staging_files: usize,
    /// Committed versions that could not be read.
    pub unreadable: usize,
    /// Problems not repaired (exit status 1 when non-zero).
    pub problems_remaining: usize,
}

impl VerifyReport {
    /// Problems that are still there: corrupt and unreadable versions, and whatever was not
    /// (or could not be) repaired.
    pub fn problems_remaining(&self) -> usize {
        self.corrupt.len()
            + self.unreadable.len()
            + self.orphans.iter().filter(|o| o.action.remains()).count()
            + self.staging.iter().filter(|s| s.action.remains()).count()
            + self.lists.iter().filter(|l| l.action.remains()).count()
    }

    /// The counts.
    pub fn summary(&self) -> Summary {
        Summary {
            versions: self.versions,
            verified: self.verified,
            corrupt: self.corrupt.len(),
            orphans: self.orphans.len(),
            lists_fixed: self
                .lists
                .iter()
                .filter(|l| l.action == Action::Repaired)
                .count(),
            lists_wrong: self.lists.len(),
            staging_files: self.staging.len(),
            unreadable: self.unreadable.len(),
            problems_remaining: self.problems_remaining(),
        }
    }

    /// One line per finding, then the summary line.
    pub fn render_text(&self) -> String {
        let mut out = String::new();
        let mut line = |kind: &str, text: String| {
            out.push_str(&format!("{kind:<10} {text}\n"));
        };
        for c in &self.corrupt {
            for p in &c.problems {
                line("corrupt", format!("{}@{}: {p}", c.module, c.version));
            }
            line(
                "",
                format!(
                    "(remove it with `modstash rm {}@{}`; the next request fetches it again)",
                    c.module, c.version
                ),
            );
        }
        for u in &self.unreadable {
            line(
                "unreadable",
                format!("{}@{}: {}", u.module, u.version, u.error),
            );
        }
        for o in &self.orphans {
            line(
                "orphan",
                format!(
                    "{}@{}: {} without .info{}",
                    o.module,
                    o.version,
                    o.keys.join(", "),
                    action_note(o.action, "deleted", o.error.as_deref())
                ),
            );
        }
        for s in &self.staging {
            line(
                "staging",
                format!(
                    "{} (last written {}s ago){}",
                    s.key,
                    s.age_secs,
                    action_note(s.action, "deleted", s.error.as_deref())
                ),
            );
        }
        for l in &self.lists {
            let mut parts = Vec::new();
            if !l.missing.is_empty() {
                parts.push(format!("misses {}", l.missing.join(" ")));
            }
            if !l.not_committed.is_empty() {
                parts.push(format!("names uncommitted {}", l.not_committed.join(" ")));
            }
            if !l.pseudo.is_empty() {
                parts.push(format!("names pseudo-versions {}", l.pseudo.join(" ")));
            }
            if !l.invalid_lines.is_empty() {
                parts.push(format!("has invalid lines {:?}", l.invalid_lines));
            }
            line(
                "list",
                format!(
                    "{}/@v/list {}{}",
                    l.module,
                    parts.join("; "),
                    action_note(l.action, "rewritten", l.error.as_deref())
                ),
            );
        }
        for s in &self.strays {
            line("stray", format!("{s} (not part of the layout; left alone)"));
        }
        let leases = self.stale_lease_logs;
        if leases.found > 0 {
            line(
                "leases",
                format!(
                    "{} lease logs idle for longer than the grace period{}",
                    leases.found,
                    if leases.deleted > 0 {
                        format!(" [{} deleted]", leases.deleted)
                    } else {
                        " (--repair deletes them)".into()
                    }
                ),
            );
        }
        let s = self.summary();
        out.push_str(&format!(
            "versions {}, verified {}, corrupt {}, orphans {}, lists fixed {}, lists wrong {}, staging files {}, unreadable {}\n",
            s.versions,
            s.verified,
            s.corrupt,
            s.orphans,
            s.lists_fixed,
            s.lists_wrong,
            s.staging_files,
            s.unreadable
        ));
        out
    }
}

fn action_note(action: Action, repaired: &str, error: Option<&str>) -> String {
    match action {
        Action::Reported => String::new(),
        Action::Repaired => format!(" [{repaired}]"),
        Action::InProgress => {
            " [younger than the grace period: may be in progress; left alone]".into()
        }
        Action::Failed => format!(" [repair failed: {}]", error.unwrap_or("unknown error")),
    }
}

/// Checks (and with `repair`, fixes) everything in storage.
pub async fn verify(
    storage: &Storage,
    options: &VerifyOptions,
) -> Result<VerifyReport, InspectError> {
    let inventory = Inventory::load(storage).await?;
    let staging_files = staging::find(storage.url()).await?;
    let mut report = VerifyReport {
        strays: inventory
            .strays
            .iter()
            .map(|m| m.location.to_string())
            .collect(),
        ..VerifyReport::default()
    };

    let committed: Vec<(ModuleVersion, &VersionObjects)> = inventory
        .versions()
        .filter(|(_, objects)| objects.is_committed())
        .collect();
    report.versions = committed.len();
    let mut checks = futures::stream::iter(committed)
        .map(|(mv, objects)| async move {
            let result = check_version(storage, &mv, objects).await;
            (mv, result)
        })
        .buffer_unordered(options.concurrency.max(1));
    while let Some((mv, result)) = checks.next().await {
        match result {
            Ok(problems) if problems.is_empty() => report.verified += 1,
            Ok(problems) => report.corrupt.push(CorruptVersion {
                module: mv.path().to_string(),
                version: mv.version().to_string(),
                problems,
            }),
            Err(e) => report.unreadable.push(Unreadable {
                module: mv.path().to_string(),
                version: mv.version().to_string(),
                error: e.to_string(),
            }),
        }
    }
    report
        .corrupt
        .sort_by(|a, b| (&a.module, &a.version).cmp(&(&b.module, &b.version)));
    report
        .unreadable
        .sort_by(|a, b| (&a.module, &a.version).cmp(&(&b.module, &b.version)));

    for (mv, objects) in inventory.versions().filter(|(_, o)| !o.is_committed()) {
        report
            .orphans
            .push(handle_orphan(storage, options, &mv, objects).await);
    }

    for file in staging_files {
        let mut leftover = StagingLeftover {
            key: file.key.clone(),
            age_secs: file.age.as_secs(),
            action: Action::Reported,
            error: None,
        };
        if file.age < options.grace {
            leftover.action = Action::InProgress;
        } else if options.repair {
            match staging::delete(&file).await {
                Ok(()) => leftover.action = Action::Repaired,
                Err(e) => {
                    leftover.action = Action::Failed;
                    leftover.error = Some(e.to_string());
                }
            }
        }
        report.staging.push(leftover);
    }

    for (path, module) in &inventory.modules {
        let Some(mut problem) = check_list(storage, path, module).await? else {
            continue;
        };
        if options.repair {
            match rewrite_list(storage, path).await {
                Ok(()) => problem.action = Action::Repaired,
                Err(e) => {
                    problem.action = Action::Failed;
                    problem.error = Some(e.to_string());
                }
            }
        }
        report.lists.push(problem);
    }
    report.stale_lease_logs = collect_stale_logs(storage, options.grace, options.repair)
        .await
        .map_err(|e| InspectError::Task(format!("lease logs: {e}")))?;
    Ok(report)
}

/// Everything wrong with one committed version; `Err` only when storage cannot be read.
async fn check_version(
    storage: &Storage,
    mv: &ModuleVersion,
    objects: &VersionObjects,
) -> Result<Vec<String>, InspectError> {
    let mut problems = Vec::new();
    for file in [VersionFile::Mod, VersionFile::Zip, VersionFile::ZipHash] {
        if objects.get(file).is_none() {
            problems.push(format!(".{} is missing", file.extension()));
        }
    }
    match storage.read_version_file(mv, VersionFile::Info).await? {
        None => problems.push(".info disappeared while verifying (removed meanwhile?)".into()),
        Some(bytes) => problems.extend(info_problem(mv, &bytes)),
    }
    let zip_hash = match objects.zip_hash {
        Some(_) => storage
            .read_version_file(mv, VersionFile::ZipHash)
            .await?
            .map(|b| String::from_utf8_lossy(&b).trim().to_owned()),
        None => None,
    };
    let Some(zip) = &objects.zip else {
        return Ok(problems);
    };
    let summary = match check_stored_zip(storage, mv, zip).await? {
        Ok(summary) => summary,
        Err(reason) => {
            problems.push(format!("zip fails the module zip checks: {reason}"));
            return Ok(problems);
        }
    };
    if let Some(stored) = &zip_hash
        && *stored != summary.h1
    {
        problems.push(format!(
            "zip hashes to {} but .ziphash says {stored}",
            summary.h1
        ));
    }
    if let (Some(zip_go_mod), Some(_)) = (&summary.go_mod, &objects.go_mod)
        && let Some(go_mod) = storage.read_version_file(mv, VersionFile::Mod).await?
        && zip_go_mod.as_slice() != go_mod.as_ref()
    {
        problems.push(".mod differs from the go.mod inside the zip".into());
    }
    Ok(problems)
}

/// What is wrong with a stored `.info`, if anything.
fn info_problem(mv: &ModuleVersion, bytes: &[u8]) -> Option<String> {
    let value: serde_json::Value = match serde_json::from_slice(bytes) {
        Ok(v) => v,
        Err(e) => return Some(format!(".info is not valid JSON: {e}")),
    };
    match value.get("Version").and_then(|v| v.as_str()) {
        None => Some(".info has no Version".into()),
        Some(v) if v != mv.version().as_str() => Some(format!(".info names version {v:?}")),
        Some(_) if value.get("Time").and_then(|t| t.as_str()).is_none() => {
            Some(".info has no Time".into())
        }
        Some(_) => None,
    }
}

/// Downloads the zip to a temporary file and runs the module zip checks on it. The outer `Err`
/// is a storage failure; the inner one, a zip that fails the checks.
async fn check_stored_zip(
    storage: &Storage,
    mv: &ModuleVersion,
    zip: &ObjectMeta,
) -> Result<Result<crate::module::ZipSummary, String>, InspectError> {
    let temp = tempfile::Builder::new()
        .prefix("modstash-verify-")
        .suffix(".zip")
        .tempfile()?
        .into_temp_path();
    {
        let mut file = tokio::fs::File::create(&temp).await?;
        if zip.size > 0 {
            let mut body = storage.stream_range(&zip.location, 0..zip.size).await?;
            while let Some(chunk) = body.try_next().await? {
                file.write_all(&chunk).await?;
            }
        }
        file.flush().await?;
    }
    let path = temp.to_path_buf();
    let mv = mv.clone();
    let checked =
        tokio::task::spawn_blocking(move || check_zip_file(&path, &mv, &ZipLimits::default()))
            .await
            .map_err(|e| InspectError::Task(e.to_string()))?;
    drop(temp);
    Ok(checked.map_err(|e| e.to_string()))
}

async fn handle_orphan(
    storage: &Storage,
    options: &VerifyOptions,
    mv: &ModuleVersion,
    objects: &VersionObjects,
) -> Orphan {
    let present = objects.present();
    let mut orphan = Orphan {
        module: mv.path().to_string(),
        version: mv.version().to_string(),
        keys: present
            .iter()
            .map(|(_, m)| m.location.to_string())
            .collect(),
        action: Action::Reported,
        error: None,
    };
    let young = present.iter().any(|(_, m)| age(m) < options.grace);
    if young {
        orphan.action = Action::InProgress;
    } else if options.repair {
        match delete_orphan(storage, options, mv, objects).await {
            Ok(true) => orphan.action = Action::Repaired,
            Ok(false) => orphan.action = Action::InProgress,
            Err(e) => {
                orphan.action = Action::Failed;
                orphan.error = Some(e.to_string());
            }
        }
    }
    orphan
}

/// Deletes an orphan's files after checking again that it is still uncommitted and idle;
/// `Ok(false)` when it no longer is (a commit is happening now).
async fn delete_orphan(
    storage: &Storage,
    options: &VerifyOptions,
    mv: &ModuleVersion,
    objects: &VersionObjects,
) -> Result<bool, InspectError> {
    if storage.is_committed(mv).await? {
        return Ok(false);
    }
    for (_, meta) in objects.present() {
        match storage.head(&meta.location).await? {
            None => continue,
            Some(now) if age(&now) < options.grace => return Ok(false),
            Some(_) => {}
        }
    }
    for (_, meta) in objects.present() {
        match storage.object_store().delete(&meta.location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

fn age(meta: &ObjectMeta) -> Duration {
    let modified: SystemTime = meta.last_modified.into();
    SystemTime::now()
        .duration_since(modified)
        .unwrap_or_default()
}

/// Compares a module's `@v/list` with its committed tagged versions.
async fn check_list(
    storage: &Storage,
    path: &ModulePath,
    module: &ModuleObjects,
) -> Result<Option<ListProblem>, InspectError> {
    let committed: BTreeSet<&Version> = module
        .versions
        .iter()
        .filter(|(_, o)| o.is_committed())
        .map(|(v, _)| v)
        .collect();
    let tagged: BTreeSet<&Version> = committed
        .iter()
        .copied()
        .filter(|v| !v.is_pseudo())
        .collect();
    let text = match &module.list {
        Some(meta) => storage.read(&meta.location).await?.unwrap_or_default(),
        None => Default::default(),
    };
    let mut listed = BTreeSet::new();
    let mut invalid_lines = Vec::new();
    for line in String::from_utf8_lossy(&text).lines() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match Version::parse(line) {
            Ok(v) => {
                listed.insert(v);
            }
            Err(_) => invalid_lines.push(line.to_owned()),
        }
    }
    let missing: Vec<String> = tagged
        .iter()
        .filter(|v| !listed.contains(**v))
        .map(|v| v.to_string())
        .collect();
    let not_committed: Vec<String> = listed
        .iter()
        .filter(|v| !committed.contains(v))
        .map(|v| v.to_string())
        .collect();
    let pseudo: Vec<String> = listed
        .iter()
        .filter(|v| committed.contains(v) && v.is_pseudo())
        .map(|v| v.to_string())
        .collect();
    if missing.is_empty()
        && not_committed.is_empty()
        && pseudo.is_empty()
        && invalid_lines.is_empty()
    {
        return Ok(None);
    }
    Ok(Some(ListProblem {
        module: path.to_string(),
        missing,
        not_committed,
        pseudo,
        invalid_lines,
        action: Action::Reported,
        error: None,
    }))
}

/// Rewrites `@v/list` to the committed tagged versions, read fresh; a conditional update where the
/// backend has one, so a version a server appends meanwhile is not lost.
pub async fn rewrite_list(storage: &Storage, path: &ModulePath) -> Result<(), InspectError> {
    for _ in 0..5 {
        let stored = storage.read_list(path).await?;
        let tagged: Vec<Version> = storage
            .committed_versions(path)
            .await?
            .into_iter()
            .filter(|v| !v.is_pseudo())
            .collect();
        match storage.write_list(path, &tagged, stored.token).await? {
            ListWrite::Written => return Ok(()),
            ListWrite::Conflict => continue,
        }
    }
    Err(InspectError::ListContended(path.to_string()))
}
