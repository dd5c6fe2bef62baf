//! What to prefetch: `module@version`s read from a go.sum, a go.mod or a plain list file.
//!
//! go.sum lines carry the hashes the go command expects, so prefetch can check what it stored;
//! a `/go.mod`-only line still names a version the go command will ask the `.mod` of (and
//! modstash stores a version whole), so it is a target too.

use std::collections::BTreeMap;

use crate::module::{ModulePath, ModuleVersion, Version};

/// One version to prefetch, with the hashes go.sum expects (if it came from a go.sum).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The version.
    pub module_version: ModuleVersion,
    /// `h1:` of the zip, from go.sum.
    pub zip_hash: Option<String>,
    /// `h1:` of the go.mod, from go.sum's `/go.mod` line.
    pub mod_hash: Option<String>,
}

/// A line that names no valid version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}:{line}: {message}")]
pub struct TargetError {
    /// The file.
    pub file: String,
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

/// Which grammar a file is read with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `module version h1:...` and `module version/go.mod h1:...` lines.
    GoSum,
    /// `require` (single or block) and `replace ... => module version` directives.
    GoMod,
    /// `module@version` per line; `#` starts a comment.
    List,
}

impl FileKind {
    /// By file name: `go.sum`, `go.mod` (or `*.sum`, `*.mod`), else a list.
    pub fn of(name: &str) -> FileKind {
        let base = name.rsplit('/').next().unwrap_or(name);
        if base.ends_with(".sum") {
            FileKind::GoSum
        } else if base.ends_with(".mod") {
            FileKind::GoMod
        } else {
            FileKind::List
        }
    }
}

/// Collects targets from `text` into `into` (keyed by version, merging go.sum's two lines).
pub fn parse(
    kind: FileKind,
    file: &str,
    text: &str,
    into: &mut BTreeMap<String, Target>,
) -> Result<(), TargetError> {
    let mut in_require = false;
    for (index, raw) in text.lines().enumerate() {
        let error = |message: String| TargetError {
            file: file.to_owned(),
            line: index + 1,
            message,
        };
        // go.sum has no comments (base64 hashes may hold `//`); go.mod's are `//`, lists' `#`.
        let line = match kind {
            FileKind::List => raw.split('#').next().unwrap_or(""),
            FileKind::GoMod => raw.split("//").next().unwrap_or(""),
            FileKind::GoSum => raw,
        }
        .trim();
        if line.is_empty() {
            continue;
        }
        match kind {
            FileKind::List => {
                let (path, version) = line
                    .split_once('@')
                    .ok_or_else(|| error(format!("{line:?} is not module@version")))?;
                add(into, path, version, None, None).map_err(error)?;
            }
            FileKind::GoSum => {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [path, version, hash] = fields[..] else {
                    return Err(error(format!("{line:?} is not `module version hash`")));
                };
                match version.strip_suffix("/go.mod") {
                    Some(v) => add(into, path, v, None, Some(hash)),
                    None => add(into, path, version, Some(hash), None),
                }
                .map_err(error)?;
            }
            FileKind::GoMod => {
                let words: Vec<&str> = line.split_whitespace().collect();
                if in_require {
                    if line == ")" {
                        in_require = false;
                    } else if let [path, version, ..] = words[..] {
                        add(into, path, version, None, None).map_err(error)?;
                    }
                    continue;
                }
                match words[..] {
                    ["require", "("] => in_require = true,
                    ["require", path, version, ..] => {
                        add(into, path, version, None, None).map_err(error)?;
                    }
                    ["replace", .., "=>", path, version] if !is_local(path) => {
                        add(into, path, version, None, None).map_err(error)?;
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

fn is_local(path: &str) -> bool {
    path.starts_with('.') || path.starts_with('/')
}

fn add(
    into: &mut BTreeMap<String, Target>,
    path: &str,
    version: &str,
    zip_hash: Option<&str>,
    mod_hash: Option<&str>,
) -> Result<(), String> {
    let path = ModulePath::parse(path.trim_matches('"')).map_err(|e| e.to_string())?;
    let version = Version::parse(version.trim_matches('"')).map_err(|e| e.to_string())?;
    let mv = ModuleVersion::new(path, version).map_err(|e| e.to_string())?;
    let target = into.entry(mv.to_string()).or_insert_with(|| Target {
        module_version: mv,
        zip_hash: None,
        mod_hash: None,
    });
    if let Some(h) = zip_hash {
        target.zip_hash = Some(h.to_owned());
    }
    if let Some(h) = mod_hash {
        target.mod_hash = Some(h.to_owned());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn targets(kind: FileKind, text: &str) -> Vec<(String, Option<String>, Option<String>)> {
        let mut into = BTreeMap::new();
        parse(kind, "f", text, &mut into).unwrap();
        into.into_values()
            .map(|t| (t.module_version.to_string(), t.zip_hash, t.mod_hash))
            .collect()
    }

    #[test]
    fn go_sum_lines_merge_per_version() {
        let got = targets(
            FileKind::GoSum,
            "golang.org/x/mod v0.20.0 h1:zip=\ngolang.org/x/mod v0.20.0/go.mod h1:mod=\n\
             rsc.io/quote v1.5.2/go.mod h1:q=\n",
        );
        assert_eq!(
            got,
            vec![
                (
                    "golang.org/x/mod@v0.20.0".into(),
                    Some("h1:zip=".into()),
                    Some("h1:mod=".into())
                ),
                ("rsc.io/quote@v1.5.2".into(), None, Some("h1:q=".into())),
            ]
        );
    }

    #[test]
    fn go_mod_requires_and_module_replacements() {
        let got = targets(
            FileKind::GoMod,
            "module example.com/app\n\ngo 1.22\n\nrequire golang.org/x/mod v0.20.0\n\
             require (\n\trsc.io/quote v1.5.2 // indirect\n\t\"github.com/Upper/Case\" v1.0.0\n)\n\
             replace example.com/old => example.com/new v1.1.0\n\
             replace example.com/local => ../local\n\
             exclude example.com/bad v0.1.0\n",
        );
        let names: Vec<&str> = got.iter().map(|t| t.0.as_str()).collect();
        assert_eq!(
            names,
            vec![
                "example.com/new@v1.1.0",
                "github.com/Upper/Case@v1.0.0",
                "golang.org/x/mod@v0.20.0",
                "rsc.io/quote@v1.5.2",
            ]
        );
    }

    #[test]
    fn list_files_and_their_errors() {
        let got = targets(FileKind::List, "# deps\nrsc.io/quote@v1.5.2  # pinned\n\n");
        assert_eq!(got.len(), 1);
        let mut into = BTreeMap::new();
        let err = parse(
            FileKind::List,
            "deps.txt",
            "ok.com/a@v1.0.0\nnot a target\n",
            &mut into,
        )
        .unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().starts_with("deps.txt:2:"), "{err}");
        for bad in ["x.com/a@latest", "../etc@v1.0.0", "x.com/a@v1"] {
            assert!(
                parse(FileKind::List, "f", bad, &mut BTreeMap::new()).is_err(),
                "{bad}"
            );
        }
        assert_eq!(FileKind::of("app/go.sum"), FileKind::GoSum);
        assert_eq!(FileKind::of("go.mod"), FileKind::GoMod);
        assert_eq!(FileKind::of("deps.txt"), FileKind::List);
    }
}
