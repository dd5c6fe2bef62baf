//! `modstash prefetch`: fetch into storage every version a go.sum, go.mod or list file names,
//! through the same stasher (single flight, lease, checks, policy) as `serve`, so it is safe to
//! run beside a fleet; then check what is stored against go.sum's hashes.

pub mod targets;

use std::collections::BTreeMap;
use std::path::PathBuf;

use futures::StreamExt;
use serde::Serialize;

use crate::config::ConfigError;
use crate::http::AppState;
use crate::module::{ModuleVersion, hash_go_mod};
use crate::policy::RuleAction;
use crate::storage::VersionFile;
use targets::{FileKind, Target, TargetError};

/// Why prefetch stopped or failed.
#[derive(Debug, thiserror::Error)]
pub enum PrefetchError {
    /// Settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file names something that is not a module version.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Storage, upstream or lease could not be set up.
    #[error("{0}")]
    Setup(String),
    /// Some versions failed or do not match go.sum (listed in the output).
    #[error("{failed} of {total} versions failed or do not match go.sum")]
    Incomplete {
        /// How many.
        failed: usize,
        /// Of how many.
        total: usize,
    },
}

/// What happened to one version.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case", tag = "outcome", content = "detail")]
pub enum Outcome {
    /// Storage already had it.
    AlreadyStored,
    /// Fetched from upstream and stored now.
    Fetched,
    /// The policy refuses it (exclude rule or deny list).
    Refused(String),
    /// Fetching failed.
    Failed(String),
    /// Stored, but its hash differs from go.sum's.
    Mismatch(String),
}

/// One line of the report.
#[derive(Debug, Serialize)]
pub struct Line {
    /// `module@version`.
    pub module_version: String,
    /// What happened.
    #[serde(flatten)]
    pub outcome: Outcome,
}

/// Reads every file's targets, merged by version.
pub fn read_targets(files: &[PathBuf]) -> Result<Vec<Target>, PrefetchError> {
    let mut all = BTreeMap::new();
    for path in files {
        let text = std::fs::read_to_string(path).map_err(|source| PrefetchError::Read {
            path: path.clone(),
            source,
        })?;
        let name = path.display().to_string();
        targets::parse(FileKind::of(&name), &name, &text, &mut all)?;
    }
    Ok(all.into_values().collect())
}

/// Fetches `targets` with `jobs` at once; `progress` is told after each.
pub async fn prefetch(
    app: &AppState,
    targets: Vec<Target>,
    jobs: usize,
    progress: impl Fn(&Line),
) -> Vec<Line> {
    let mut lines: Vec<Line> = futures::stream::iter(targets)
        .map(|target| async move {
            let outcome = one(app, &target).await;
            Line {
                module_version: target.module_version.to_string(),
                outcome,
            }
        })
        .buffer_unordered(jobs.max(1))
        .inspect(|line| progress(line))
        .collect()
        .await;
    lines.sort_by(|a, b| a.module_version.cmp(&b.module_version));
    lines
}

async fn one(app: &AppState, target: &Target) -> Outcome {
    let mv: &ModuleVersion = &target.module_version;
    let policy = app.policy.for_module(mv.path());
    if policy.action == RuleAction::Exclude {
        return Outcome::Refused(
            policy
                .reason
                .unwrap_or_else(|| "excluded by the proxy's policy".into()),
        );
    }
    if let Some(why) = app.policy.denied(mv) {
        return Outcome::Refused(why);
    }
    let stasher = &app.stasher;
    let was_stored = match stasher.is_stored(mv).await {
        Ok(stored) => stored,
        Err(e) => return Outcome::Failed(e.to_string()),
    };
    if let Err(e) = stasher.ensure(mv).await {
        return Outcome::Failed(e.to_string());
    }
    if let Some(expected) = &target.zip_hash {
        match stasher.read_file(mv, VersionFile::ZipHash).await {
            Ok(stored) if String::from_utf8_lossy(&stored).trim() == expected => {}
            Ok(stored) => {
                return Outcome::Mismatch(format!(
                    "zip: go.sum has {expected}, stored {}",
                    String::from_utf8_lossy(&stored).trim()
                ));
            }
            Err(e) => return Outcome::Failed(e.to_string()),
        }
    }
    if let Some(expected) = &target.mod_hash {
        match stasher.read_file(mv, VersionFile::Mod).await {
            Ok(go_mod) if &hash_go_mod(&go_mod) == expected => {}
            Ok(go_mod) => {
                return Outcome::Mismatch(format!(
                    "go.mod: go.sum has {expected}, stored {}",
                    hash_go_mod(&go_mod)
                ));
            }
            Err(e) => return Outcome::Failed(e.to_string()),
        }
    }
    if was_stored {
        Outcome::AlreadyStored
    } else {
        Outcome::Fetched
    }
}

/// Counts per outcome, for the summary line.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct Summary {
    /// Versions named.
    pub total: usize,
    /// Fetched now.
    pub fetched: usize,
    /// Already stored.
    pub already_stored: usize,
    /// Refused by the policy.
    pub refused: usize,
    /// Failed.
    pub failed: usize,
    /// Not matching go.sum.
    pub mismatched: usize,
}

impl Summary {
    /// Tallies `lines`.
    pub fn of(lines: &[Line]) -> Summary {
        let mut s = Summary {
            total: lines.len(),
            ..Summary::default()
        };
        for line in lines {
            match line.outcome {
                Outcome::AlreadyStored => s.already_stored += 1,
                Outcome::Fetched => s.fetched += 1,
                Outcome::Refused(_) => s.refused += 1,
                Outcome::Failed(_) => s.failed += 1,
                Outcome::Mismatch(_) => s.mismatched += 1,
            }
        }
        s
    }
}

/// The command end to end: read targets, fetch with a progress bar, print, decide the exit.
pub fn run(
    args: &crate::cli::PrefetchArgs,
    file: &crate::config::FileSettings,
) -> Result<(), PrefetchError> {
    let settings = args.settings.resolve(file)?;
    let targets = read_targets(&args.files)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| PrefetchError::Setup(e.to_string()))?;
    let total = targets.len();
    let lines = runtime.block_on(async {
        let app = AppState::build(&settings)
            .await
            .map_err(|e| PrefetchError::Setup(e.to_string()))?;
        // Drawn only on a terminal (indicatif hides it otherwise); --json keeps stderr quiet.
        let bar = if args.json {
            indicatif::ProgressBar::hidden()
        } else {
            indicatif::ProgressBar::new(total as u64)
        };
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{bar:30} {pos}/{len} {elapsed_precise} {wide_msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let lines = prefetch(&app, targets, usize::from(args.jobs), |line| {
            bar.set_message(line.module_version.clone());
            bar.inc(1);
        })
        .await;
        bar.finish_and_clear();
        Ok::<_, PrefetchError>(lines)
    })?;
    let summary = Summary::of(&lines);
    if args.json {
        let json = serde_json::json!({ "versions": lines, "summary": summary });
        println!("{json:#}");
    } else {
        for line in &lines {
            let (what, detail) = match &line.outcome {
                Outcome::AlreadyStored => ("stored", ""),
                Outcome::Fetched => ("fetched", ""),
                Outcome::Refused(why) => ("refused", why.as_str()),
                Outcome::Failed(why) => ("FAILED", why.as_str()),
                Outcome::Mismatch(why) => ("MISMATCH", why.as_str()),
            };
            println!("{what:<9} {} {detail}", line.module_version);
        }
        println!(
            "{} versions: {} fetched, {} already stored, {} refused, {} failed, {} mismatched",
            summary.total,
            summary.fetched,
            summary.already_stored,
            summary.refused,
            summary.failed,
            summary.mismatched
        );
    }
    let bad = summary.failed + summary.mismatched;
    if bad > 0 {
        return Err(PrefetchError::Incomplete {
            failed: bad,
            total: summary.total,
        });
    }
    Ok(())
}
