//! The `/sumdb/{name}/...` grammar: what a go command may ask a checksum database through a proxy.
//!
//! Everything is validated before it reaches a storage key or an upstream URL: lookups must name
//! a valid `module@version` (escaped, as the go command sends them) and tiles must be in
//! golang.org/x/mod/sumdb/tlog's canonical form (`tile/H/L/[xNNN/]*NNN[.p/W]`, `L` may be `data`).

use crate::module::{ModulePath, ModuleVersion, Version};

/// Longest tile path accepted: far above any real tree (a 10^21-leaf index has 7 elements).
const MAX_TILE_ELEMENTS: usize = 7;
/// `tlog`'s tile index base: each path element holds three decimal digits.
const PATH_BASE: u64 = 1000;

/// One valid request below `/sumdb/{name}/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SumdbRequest {
    /// `supported`: the go command asks whether we proxy this database.
    Supported,
    /// `latest`: the current signed tree head.
    Latest,
    /// `lookup/{module}@{version}`.
    Lookup(ModuleVersion),
    /// `tile/...`.
    Tile(TilePath),
}

/// A tile in canonical form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TilePath {
    path: String,
    partial: bool,
}

impl TilePath {
    /// The canonical path, starting with `tile/`.
    pub fn as_str(&self) -> &str {
        &self.path
    }

    /// True for `.p/W` tiles: not yet full, superseded as the tree grows.
    pub fn is_partial(&self) -> bool {
        self.partial
    }
}

/// Why a `/sumdb/` path is refused (always answered 404).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a checksum database request: {0}")]
pub struct BadSumdbPath(pub String);

/// Parses the part of the path after `/sumdb/{name}/` (raw, percent-decoded once here).
pub fn parse_sumdb_path(raw: &str) -> Result<SumdbRequest, BadSumdbPath> {
    let bad = || BadSumdbPath(raw.chars().take(200).collect());
    let decoded = percent_encoding::percent_decode_str(raw)
        .decode_utf8()
        .map_err(|_| bad())?;
    let rest: &str = &decoded;
    match rest {
        "supported" => return Ok(SumdbRequest::Supported),
        "latest" => return Ok(SumdbRequest::Latest),
        _ => {}
    }
    if let Some(target) = rest.strip_prefix("lookup/") {
        let (path, version) = target.split_once('@').ok_or_else(bad)?;
        let path = ModulePath::from_escaped(path).map_err(|_| bad())?;
        let version = Version::from_escaped(version).map_err(|_| bad())?;
        let mv = ModuleVersion::new(path, version).map_err(|_| bad())?;
        return Ok(SumdbRequest::Lookup(mv));
    }
    if rest.starts_with("tile/") {
        return parse_tile(rest).map(SumdbRequest::Tile).ok_or_else(bad);
    }
    Err(bad())
}

/// `tlog.ParseTilePath`, accepting only what `Tile.Path` would print back.
fn parse_tile(path: &str) -> Option<TilePath> {
    let mut f: Vec<&str> = path.split('/').collect();
    if f.len() < 4 || f[0] != "tile" {
        return None;
    }
    let h = small_number(f[1])?;
    if !(1..=30).contains(&h) {
        return None;
    }
    let level = match f[2] {
        "data" => None,
        l => Some(small_number(l).filter(|l| *l <= 63)?),
    };
    let full = 1u64 << h;
    let mut width = full;
    let last = f.len() - 2;
    if let Some(index) = f[last].strip_suffix(".p") {
        let w = small_number(f[last + 1])?;
        if w == 0 || w >= full {
            return None;
        }
        width = w;
        f[last] = index;
        f.pop();
    }
    let elements = &f[3..];
    if elements.len() > MAX_TILE_ELEMENTS {
        return None;
    }
    let mut n: u64 = 0;
    for (i, e) in elements.iter().enumerate() {
        let digits = if i + 1 < elements.len() {
            e.strip_prefix('x')?
        } else {
            e
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        n = n
            .checked_mul(PATH_BASE)?
            .checked_add(digits.parse().ok()?)?;
    }
    let canonical = format_tile(h, level, n, width, full);
    (canonical == path).then_some(TilePath {
        path: canonical,
        partial: width != full,
    })
}

/// `tlog.Tile.Path`.
fn format_tile(h: u64, level: Option<u64>, n: u64, width: u64, full: u64) -> String {
    let mut n_str = format!("{:03}", n % PATH_BASE);
    let mut rest = n;
    while rest >= PATH_BASE {
        rest /= PATH_BASE;
        n_str = format!("x{:03}/{n_str}", rest % PATH_BASE);
    }
    let level = level.map_or_else(|| "data".to_owned(), |l| l.to_string());
    let partial = if width == full {
        String::new()
    } else {
        format!(".p/{width}")
    };
    format!("tile/{h}/{level}/{n_str}{partial}")
}

/// A decimal without sign or leading zeros, small enough for the tile grammar.
fn small_number(s: &str) -> Option<u64> {
    let canonical = !s.is_empty()
        && s.len() <= 10
        && s.bytes().all(|b| b.is_ascii_digit())
        && (s == "0" || !s.starts_with('0'));
    canonical.then(|| s.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tile(p: &str) -> Option<TilePath> {
        match parse_sumdb_path(p) {
            Ok(SumdbRequest::Tile(t)) => Some(t),
            _ => None,
        }
    }

    #[test]
    fn tiles_in_canonical_form_parse() {
        for (p, partial) in [
            ("tile/8/0/000", false),
            ("tile/8/0/x001/234", false),
            ("tile/8/1/x123/x456/789.p/12", true),
            ("tile/8/data/001.p/255", true),
            ("tile/8/data/x002/000", false),
        ] {
            let t = tile(p).unwrap_or_else(|| panic!("{p} refused"));
            assert_eq!(t.as_str(), p);
            assert_eq!(t.is_partial(), partial, "{p}");
        }
    }

    #[test]
    fn non_canonical_or_hostile_tiles_are_refused() {
        for p in [
            "tile/8/0/",
            "tile/8/0/1",
            "tile/8/0/0001",
            "tile/8/0/001/002",
            "tile/8/0/x000/002",
            "tile/08/0/001",
            "tile/0/0/001",
            "tile/31/0/001",
            "tile/8/64/001",
            "tile/8/0/001.p/0",
            "tile/8/0/001.p/256",
            "tile/8/0/001.p/",
            "tile/8/0/../001",
            "tile/8/-1/001",
            "tile/8/0/001/",
            "tile/8/0/x001/x002/x003/x004/x005/x006/x007/008",
            "tiles/8/0/001",
        ] {
            assert!(tile(p).is_none(), "{p} accepted");
        }
    }

    #[test]
    fn lookups_need_a_valid_escaped_module_version() {
        let Ok(SumdbRequest::Lookup(mv)) = parse_sumdb_path("lookup/github.com/!upper/case@v1.0.0")
        else {
            panic!("refused")
        };
        assert_eq!(mv.to_string(), "github.com/Upper/case@v1.0.0");
        for p in [
            "lookup/github.com/Upper/case@v1.0.0",
            "lookup/example.com/m",
            "lookup/example.com/m@latest",
            "lookup/example.com/m/v2@v1.0.0",
            "lookup/../x@v1.0.0",
            "lookup/",
            "supported/x",
            "",
        ] {
            assert!(parse_sumdb_path(p).is_err(), "{p} accepted");
        }
        assert_eq!(parse_sumdb_path("supported"), Ok(SumdbRequest::Supported));
        assert_eq!(parse_sumdb_path("latest"), Ok(SumdbRequest::Latest));
    }
}
