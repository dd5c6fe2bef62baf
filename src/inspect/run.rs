//! The inspection commands end to end: open storage, run, print, decide the outcome.

use std::io::{BufRead, IsTerminal, Write};

use super::InspectError;
use super::args::{LsArgs, RmArgs, StorageArgs, VerifyArgs};
use super::inventory::Inventory;
use super::ls::{ModulePattern, list_versions, render_table};
use super::rm::{parse_module_version, remove, stored_files};
use super::verify::{VerifyOptions, verify as verify_storage};
use crate::config::FileSettings;
use crate::storage::{Storage, StorageUrl};

/// `modstash ls`.
pub fn ls(args: &LsArgs, file: &FileSettings) -> Result<(), InspectError> {
    let pattern = args
        .pattern
        .as_deref()
        .map(ModulePattern::parse)
        .transpose()?;
    let storage = open(&args.storage, file)?;
    let inventory = runtime()?.block_on(Inventory::load(&storage))?;
    let versions = list_versions(&inventory, pattern.as_ref());
    if args.json {
        let json = serde_json::to_string_pretty(&versions).map_err(std::io::Error::other)?;
        emit(&format!("{json}\n"))
    } else if versions.is_empty() {
        eprintln!("no versions stored in {}", storage.url());
        Ok(())
    } else {
        emit(&render_table(&versions))
    }
}

/// `modstash verify`: `Err(ProblemsRemain)` (exit status 1) unless clean or fully repaired.
pub fn verify(args: &VerifyArgs, file: &FileSettings) -> Result<(), InspectError> {
    let storage = open(&args.storage, file)?;
    let options = VerifyOptions {
        repair: args.repair,
        grace: args.grace,
        concurrency: usize::from(args.concurrency),
    };
    let report = runtime()?.block_on(verify_storage(&storage, &options))?;
    if args.json {
        #[derive(serde::Serialize)]
        struct Json<'a> {
            #[serde(flatten)]
            report: &'a super::verify::VerifyReport,
            summary: super::verify::Summary,
        }
        let json = serde_json::to_string_pretty(&Json {
            report: &report,
            summary: report.summary(),
        })
        .map_err(std::io::Error::other)?;
        emit(&format!("{json}\n"))?;
    } else {
        emit(&report.render_text())?;
    }
    match report.problems_remaining() {
        0 => Ok(()),
        n => Err(InspectError::ProblemsRemain(n)),
    }
}

/// `modstash rm`: asks first on a terminal; without one, only with `--yes`.
pub fn rm(args: &RmArgs, file: &FileSettings) -> Result<(), InspectError> {
    let mv = parse_module_version(&args.module_version)?;
    let storage = open(&args.storage, file)?;
    let runtime = runtime()?;
    let files = runtime.block_on(stored_files(&storage, &mv))?;
    let listed = runtime
        .block_on(storage.read_list(mv.path()))?
        .versions
        .contains(mv.version());
    if files.is_empty() && !listed {
        return Err(InspectError::NotStored(mv.to_string()));
    }
    if !args.yes {
        let what: Vec<String> = files
            .iter()
            .map(|f| format!(".{}", f.extension()))
            .collect();
        confirm(&format!(
            "delete {mv} ({}{}) from {}?",
            what.join(" "),
            if listed { ", @v/list entry" } else { "" },
            storage.url()
        ))?;
    }
    let removed = runtime.block_on(remove(&storage, &mv))?;
    let deleted: Vec<String> = removed
        .files
        .iter()
        .map(|f| format!(".{}", f.extension()))
        .collect();
    emit(&format!(
        "deleted {mv}: {}{}\n",
        if deleted.is_empty() {
            "no files".to_owned()
        } else {
            deleted.join(" ")
        },
        if removed.list_updated {
            "; removed from @v/list"
        } else {
            ""
        }
    ))
}

fn confirm(question: &str) -> Result<(), InspectError> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Err(InspectError::Refused(format!(
            "refusing to {}: stdin is not a terminal, so nobody can confirm; pass --yes",
            question.trim_end_matches('?')
        )));
    }
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    stdin.lock().read_line(&mut answer)?;
    match answer.trim() {
        "y" | "Y" | "yes" | "YES" | "Yes" => Ok(()),
        _ => Err(InspectError::Refused(
            "not confirmed; nothing deleted".into(),
        )),
    }
}

/// Opens the storage the arguments name; a local directory must exist (inspection never
/// creates one, so a mistyped path is an error, not an empty store).
fn open(args: &StorageArgs, file: &FileSettings) -> Result<Storage, InspectError> {
    let url = args.resolve(file)?;
    if let StorageUrl::File(dir) = &url
        && !dir.is_dir()
    {
        return Err(InspectError::NoStorage(url.to_string()));
    }
    Ok(Storage::open(&url)?)
}

fn runtime() -> Result<tokio::runtime::Runtime, InspectError> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

/// Writes to stdout; a closed pipe (`modstash ls | head`) is not an error.
fn emit(text: &str) -> Result<(), InspectError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}
