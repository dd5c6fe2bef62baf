//! `modstash ls`: the committed versions in storage, optionally filtered by a module path glob.

use serde::Serialize;

use super::InspectError;
use super::inventory::Inventory;
use crate::module::ModulePath;

/// A glob over plain module paths: `*` matches any run of characters (`/` included), `?` one
/// character, `[abc]` a class, `{a,b}` alternatives. Case-sensitive, like module paths.
#[derive(Debug, Clone)]
pub struct ModulePattern {
    matcher: globset::GlobMatcher,
}

impl ModulePattern {
    /// Compiles a pattern.
    pub fn parse(pattern: &str) -> Result<ModulePattern, InspectError> {
        let invalid = |reason: String| InspectError::Pattern {
            pattern: pattern.to_owned(),
            reason,
        };
        if pattern.is_empty() {
            return Err(invalid("empty pattern".into()));
        }
        let glob = globset::GlobBuilder::new(pattern)
            .literal_separator(false)
            .backslash_escape(true)
            .build()
            .map_err(|e| invalid(e.kind().to_string()))?;
        Ok(ModulePattern {
            matcher: glob.compile_matcher(),
        })
    }

    /// True when `path` matches.
    pub fn matches(&self, path: &ModulePath) -> bool {
        self.matcher.is_match(path.as_str())
    }
}

/// One committed version, as `ls` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ListedVersion {
    /// The module path (plain, not escaped).
    pub module: String,
    /// The version.
    pub version: String,
    /// Size of the stored zip in bytes; `None` when the zip is missing (`verify` reports it).
    pub zip_size: Option<u64>,
    /// When the `.info` object was written to storage (its last-modified time, UTC, RFC 3339):
    /// the moment modstash committed the version, not the version's own `Time`.
    pub fetched: String,
}

/// The committed versions of every module `pattern` matches (all without one), by module path
/// and then in Go's version order.
pub fn list_versions(inventory: &Inventory, pattern: Option<&ModulePattern>) -> Vec<ListedVersion> {
    inventory
        .modules
        .iter()
        .filter(|(path, _)| pattern.is_none_or(|p| p.matches(path)))
        .flat_map(|(path, module)| {
            module
                .versions
                .iter()
                .filter_map(move |(version, objects)| {
                    let info = objects.info.as_ref()?;
                    Some(ListedVersion {
                        module: path.to_string(),
                        version: version.to_string(),
                        zip_size: objects.zip.as_ref().map(|z| z.size),
                        fetched: info.last_modified.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                    })
                })
        })
        .collect()
}

/// Renders versions as an aligned table with a header line.
pub fn render_table(versions: &[ListedVersion]) -> String {
    let header = ["MODULE", "VERSION", "ZIP BYTES", "FETCHED (UTC)"];
    let rows: Vec<[String; 4]> = versions
        .iter()
        .map(|v| {
            [
                v.module.clone(),
                v.version.clone(),
                v.zip_size.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                v.fetched.clone(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: [&str; 4]| {
        let [module, version, size, fetched] = cells;
        let text = format!(
            "{module:<w0$}  {version:<w1$}  {size:>w2$}  {fetched}",
            w0 = widths[0],
            w1 = widths[1],
            w2 = widths[2],
        );
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header);
    for row in &rows {
        line([&row[0], &row[1], &row[2], &row[3]]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> ModulePath {
        ModulePath::parse(p).unwrap()
    }

    #[test]
    fn globs_match_module_paths() {
        let p = ModulePattern::parse("golang.org/x/*").unwrap();
        assert!(p.matches(&path("golang.org/x/mod")));
        assert!(p.matches(&path("golang.org/x/tools/gopls")));
        assert!(!p.matches(&path("golang.org/y/mod")));
        let exact = ModulePattern::parse("example.com/m").unwrap();
        assert!(exact.matches(&path("example.com/m")));
        assert!(!exact.matches(&path("example.com/m/v2")));
        assert!(ModulePattern::parse("").is_err());
        assert!(ModulePattern::parse("a/[b").is_err());
    }

    #[test]
    fn table_columns_align() {
        let v = |m: &str, ver: &str, size| ListedVersion {
            module: m.into(),
            version: ver.into(),
            zip_size: size,
            fetched: "2024-01-02T03:04:05Z".into(),
        };
        let table = render_table(&[
            v("example.com/long/module", "v1.0.0", Some(12345)),
            v("example.com/m", "v1.10.0-rc.1", None),
        ]);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3);
        let at = |l: &str, s: &str| l.find(s).unwrap();
        assert_eq!(at(lines[0], "VERSION"), at(lines[1], "v1.0.0"));
        assert_eq!(at(lines[1], "v1.0.0"), at(lines[2], "v1.10.0-rc.1"));
        assert_eq!(at(lines[1], "2024"), at(lines[2], "2024"));
        assert!(lines[2].contains(" - "), "{table}");
    }
}
