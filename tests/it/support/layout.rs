//! Reads modstash's storage directory: which keys exist, and whether any breaks the GOPROXY-tree layout.
//!
//! The layout: `{escaped module}/@v/list` and `{escaped module}/@v/{escaped version}.{info,mod,zip,ziphash}`;
//! modstash's own leases and temporary objects live only under `.modstash/`.

use std::path::Path;

/// The directory holding modstash's private objects; everything else must follow the layout.
pub const PRIVATE_DIR: &str = ".modstash";

/// Every file under `dir` as a `/`-separated relative path, sorted (directories are not listed).
pub fn all_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// Every stored key outside `.modstash/`, sorted.
pub fn stored_keys(dir: &Path) -> Vec<String> {
    all_files(dir)
        .into_iter()
        .filter(|k| !k.starts_with(&format!("{PRIVATE_DIR}/")))
        .collect()
}

/// The keys that break the layout, each with the reason; empty when the storage is well-formed.
pub fn violations(dir: &Path) -> Vec<String> {
    stored_keys(dir)
        .into_iter()
        .filter_map(|key| check_key(&key).err().map(|why| format!("{key}: {why}")))
        .collect()
}

/// Whether `key` is one of the layout's names.
pub fn check_key(key: &str) -> Result<(), String> {
    let (module, file) = key
        .split_once("/@v/")
        .ok_or("not under {escaped module}/@v/")?;
    check_escaped_module(module)?;
    if file == "list" {
        return Ok(());
    }
    let (version, ext) = file
        .rsplit_once('.')
        .ok_or("neither `list` nor {version}.{ext}")?;
    if !matches!(ext, "info" | "mod" | "zip" | "ziphash") {
        return Err(format!("unexpected extension .{ext}"));
    }
    check_escaped_version(version)
}

/// Whether `path` (decoded, with its leading `/`) is a well-formed GOPROXY request for an upstream:
/// a layout key, `{module}/@latest`, or `{module}/@v/{query}.info` for a plain query like `main`.
///
/// modstash must reject malformed requests itself; only well-formed ones may be passed on.
pub fn check_upstream_path(path: &str) -> Result<(), String> {
    let rel = path.strip_prefix('/').ok_or("no leading /")?;
    if let Some(module) = rel.strip_suffix("/@latest") {
        return check_escaped_module(module);
    }
    if check_key(rel).is_ok() {
        return Ok(());
    }
    let (module, file) = rel
        .split_once("/@v/")
        .ok_or("not under {escaped module}/@v/")?;
    check_escaped_module(module)?;
    let query = file
        .strip_suffix(".info")
        .ok_or("neither a layout key nor a query .info")?;
    let plain = !query.is_empty()
        && !query.starts_with('.')
        && !query.contains("..")
        && query
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-._".contains(c));
    if plain {
        Ok(())
    } else {
        Err(format!("query {query:?} is not a plain token"))
    }
}

fn check_escaped_module(module: &str) -> Result<(), String> {
    let elements: Vec<&str> = module.split('/').collect();
    if !elements[0].contains('.') {
        return Err("first module path element has no dot".into());
    }
    for element in elements {
        if element.is_empty() || element.starts_with('.') || element.ends_with('.') {
            return Err(format!("bad module path element {element:?}"));
        }
        check_escaped_chars(element, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || "-._~".contains(c)
        })?;
    }
    Ok(())
}

fn check_escaped_version(version: &str) -> Result<(), String> {
    check_escaped_chars(version, |c| {
        c.is_ascii_lowercase() || c.is_ascii_digit() || "-.+".contains(c)
    })?;
    let unescaped = unescape(version);
    let bare = unescaped
        .strip_prefix('v')
        .ok_or("version does not start with v")?;
    let parsed =
        semver::Version::parse(bare).map_err(|e| format!("not a canonical version: {e}"))?;
    if !parsed.build.is_empty() && parsed.build.as_str() != "incompatible" {
        return Err("build metadata other than +incompatible".into());
    }
    Ok(())
}

/// Checks Go's escaping: no upper case, and `!` only before a lower-case letter.
fn check_escaped_chars(s: &str, allowed: impl Fn(char) -> bool) -> Result<(), String> {
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '!' {
            match chars.next() {
                Some(next) if next.is_ascii_lowercase() => {}
                _ => return Err(format!("`!` not followed by a lower-case letter in {s:?}")),
            }
        } else if !allowed(c) {
            return Err(format!("character {c:?} in {s:?}"));
        }
    }
    Ok(())
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut bang = false;
    for c in s.chars() {
        if c == '!' {
            bang = true;
        } else if bang {
            out.push(c.to_ascii_uppercase());
            bang = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries {
        let path = entry.expect("storage dir entry").path();
        let file_type = std::fs::symlink_metadata(&path)
            .expect("storage entry metadata")
            .file_type();
        if file_type.is_dir() {
            walk(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).expect("under root");
            out.push(
                rel.to_string_lossy()
                    .replace(std::path::MAIN_SEPARATOR, "/"),
            );
        }
    }
}

/// The bytes stored under `key`, or `None` if there is no such file.
pub fn read_key(dir: &Path, key: &str) -> Option<Vec<u8>> {
    std::fs::read(dir.join(key)).ok()
}
