//! The GOPROXY URL grammar: from a raw request path to a typed request, refusing everything else.

use super::error::ModuleError;
use super::escape::unescape;
use super::module_version::ModuleVersion;
use super::path::ModulePath;
use super::query::{VersionQuery, VersionRef};
use super::version::Version;

/// Longest raw request path considered at all; real ones are a few hundred bytes.
const MAX_RAW_PATH: usize = 8 * 1024;

/// One request of the GOPROXY protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProxyRequest {
    /// `/{module}/@v/list`: the known versions.
    List(ModulePath),
    /// `/{module}/@latest`: the latest version's info.
    Latest(ModulePath),
    /// `/{module}/@v/{version}.info`. A [`VersionRef::Canonical`] version here agrees with
    /// the path (`module.Check`); any other string, including a canonical version of the
    /// wrong major (the go command asks for `v2.0.0` expecting `v2.0.0+incompatible`), is a
    /// [`VersionRef::Query`] for upstream to resolve.
    Info(ModulePath, VersionRef),
    /// `/{module}/@v/{version}.mod`: the go.mod file.
    Mod(ModuleVersion),
    /// `/{module}/@v/{version}.zip`: the module zip.
    Zip(ModuleVersion),
}

impl ProxyRequest {
    /// The module the request is about.
    pub fn module_path(&self) -> &ModulePath {
        match self {
            ProxyRequest::List(p) | ProxyRequest::Latest(p) | ProxyRequest::Info(p, _) => p,
            ProxyRequest::Mod(mv) | ProxyRequest::Zip(mv) => mv.path(),
        }
    }

    /// The exact module version asked for, when the request names a canonical one.
    pub fn module_version(&self) -> Option<ModuleVersion> {
        match self {
            ProxyRequest::Mod(mv) | ProxyRequest::Zip(mv) => Some(mv.clone()),
            ProxyRequest::Info(p, VersionRef::Canonical(v)) => {
                ModuleVersion::new(p.clone(), v.clone()).ok()
            }
            _ => None,
        }
    }
}

fn bad(reason: &str) -> ModuleError {
    ModuleError::BadRequest {
        reason: reason.to_owned(),
    }
}

/// Parses a request path exactly as received (percent-encoded, starting with `/`).
///
/// The path is percent-decoded once (`+` stays `+`), split at the first `/@`, and each part
/// validated with the module rules; anything outside the protocol is an error whose
/// `Display` is a one-line reason.
pub fn parse_proxy_path(raw_path: &str) -> Result<ProxyRequest, ModuleError> {
    if raw_path.len() > MAX_RAW_PATH {
        return Err(bad("request path longer than 8192 bytes"));
    }
    let decoded = percent_decode_once(raw_path)?;
    let rest = decoded
        .strip_prefix('/')
        .ok_or_else(|| bad("path must start with \"/\""))?;
    // Module paths cannot contain '@', so the first "/@" ends the module part.
    let (module, endpoint) = rest
        .split_once("/@")
        .ok_or_else(|| bad("want /{module}/@v/... or /{module}/@latest"))?;
    let path = ModulePath::from_escaped(module)?;
    match endpoint {
        "latest" => return Ok(ProxyRequest::Latest(path)),
        "v/list" => return Ok(ProxyRequest::List(path)),
        _ => {}
    }
    let file = endpoint
        .strip_prefix("v/")
        .ok_or_else(|| bad("want @v/... or @latest after the module path"))?;
    if let Some(stem) = file.strip_suffix(".info") {
        let plain = unescape_version(stem)?;
        if let Ok(version) = Version::parse(&plain)
            && ModuleVersion::new(path.clone(), version.clone()).is_ok()
        {
            return Ok(ProxyRequest::Info(path, VersionRef::Canonical(version)));
        }
        let query = VersionQuery::from_plain(&plain)?;
        return Ok(ProxyRequest::Info(path, VersionRef::Query(query)));
    }
    let (stem, is_zip) = if let Some(stem) = file.strip_suffix(".mod") {
        (stem, false)
    } else if let Some(stem) = file.strip_suffix(".zip") {
        (stem, true)
    } else {
        return Err(bad(
            "want list, {version}.info, {version}.mod or {version}.zip after @v/",
        ));
    };
    let version = Version::parse(&unescape_version(stem)?)?;
    let mv = ModuleVersion::new(path, version)?;
    Ok(if is_zip {
        ProxyRequest::Zip(mv)
    } else {
        ProxyRequest::Mod(mv)
    })
}

fn unescape_version(stem: &str) -> Result<String, ModuleError> {
    if stem.is_empty() {
        return Err(bad("missing version before the file extension"));
    }
    unescape(stem).map_err(|reason| ModuleError::BadVersionEscape {
        escaped: stem.to_owned(),
        reason,
    })
}

/// Decodes `%XX` escapes once. Malformed escapes, and anything decoding to a control
/// character, a backslash or invalid UTF-8, are refused outright: no valid request needs
/// them, and letting them through would only move the problem to a later layer.
fn percent_decode_once(raw: &str) -> Result<String, ModuleError> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let hi = bytes.get(i + 1).copied().and_then(hex_value);
            let lo = bytes.get(i + 2).copied().and_then(hex_value);
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(bad("malformed percent-encoding"));
            };
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    let s = String::from_utf8(out).map_err(|_| bad("path is not valid UTF-8"))?;
    if s.chars().any(char::is_control) {
        return Err(bad("path contains a control character"));
    }
    if s.contains('\\') {
        return Err(bad("path contains a backslash"));
    }
    Ok(s)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mv(path: &str, version: &str) -> ModuleVersion {
        ModuleVersion::new(
            ModulePath::parse(path).unwrap(),
            Version::parse(version).unwrap(),
        )
        .unwrap()
    }

    fn mp(path: &str) -> ModulePath {
        ModulePath::parse(path).unwrap()
    }

    fn canonical(path: &str, version: &str) -> ProxyRequest {
        ProxyRequest::Info(
            mp(path),
            VersionRef::Canonical(Version::parse(version).unwrap()),
        )
    }

    fn query(path: &str, q: &str) -> ProxyRequest {
        ProxyRequest::Info(
            mp(path),
            VersionRef::Query(VersionQuery::from_plain(q).unwrap()),
        )
    }

    #[test]
    fn valid_requests() {
        let cases = [
            (
                "/example.com/@v/list",
                ProxyRequest::List(mp("example.com")),
            ),
            (
                "/example.com/m/@v/list",
                ProxyRequest::List(mp("example.com/m")),
            ),
            (
                "/example.com/m/@latest",
                ProxyRequest::Latest(mp("example.com/m")),
            ),
            (
                "/github.com/%21azure/x/@v/v1.0.0.zip",
                ProxyRequest::Zip(mv("github.com/Azure/x", "v1.0.0")),
            ),
            (
                "/github.com/!azure/x/@v/v1.0.0.zip",
                ProxyRequest::Zip(mv("github.com/Azure/x", "v1.0.0")),
            ),
            (
                "/gopkg.in/yaml.v2/@v/v2.4.0.mod",
                ProxyRequest::Mod(mv("gopkg.in/yaml.v2", "v2.4.0")),
            ),
            (
                "/example.com/m/v2/@v/v2.0.0.info",
                canonical("example.com/m/v2", "v2.0.0"),
            ),
            (
                "/example.com/m/@v/v2.0.0+incompatible.info",
                canonical("example.com/m", "v2.0.0+incompatible"),
            ),
            (
                "/example.com/m/@v/v2.0.0%2Bincompatible.zip",
                ProxyRequest::Zip(mv("example.com/m", "v2.0.0+incompatible")),
            ),
            (
                "/example.com/m/@v/v1.0.0-!r!c1.mod",
                ProxyRequest::Mod(mv("example.com/m", "v1.0.0-RC1")),
            ),
            (
                "/example.com/m/@v/v0.0.0-20191109021931-daa7c04131f5.zip",
                ProxyRequest::Zip(mv("example.com/m", "v0.0.0-20191109021931-daa7c04131f5")),
            ),
            (
                "/example.com/m/@v/master.info",
                query("example.com/m", "master"),
            ),
            (
                "/example.com/m/@v/v1.2.info",
                query("example.com/m", "v1.2"),
            ),
            (
                "/example.com/m/@v/v1.2.3+meta.info",
                query("example.com/m", "v1.2.3+meta"),
            ),
            (
                "/example.com/m/@v/!h!e!a!d.info",
                query("example.com/m", "HEAD"),
            ),
            (
                "/example.com/m/@v/daa7c04131f5.info",
                query("example.com/m", "daa7c04131f5"),
            ),
            // A canonical version of the wrong major is still a fair question for upstream.
            (
                "/example.com/m/@v/v2.0.0.info",
                query("example.com/m", "v2.0.0"),
            ),
            (
                "/example.com/m/@v/list.info",
                query("example.com/m", "list"),
            ),
            (
                "/example%2ecom/m/@v/list",
                ProxyRequest::List(mp("example.com/m")),
            ),
            (
                "/example.com/m/v2/@latest",
                ProxyRequest::Latest(mp("example.com/m/v2")),
            ),
        ];
        for (raw, want) in cases {
            assert_eq!(parse_proxy_path(raw), Ok(want), "{raw}");
        }
    }

    #[test]
    fn hostile_and_invalid_requests() {
        let ten_kb = format!("/example.com/{}/@v/list", "a".repeat(10 * 1024));
        let long_ok_len = format!("/example.com/{}/@v/list", "a".repeat(7000));
        let cases: Vec<&str> = vec![
            "",
            "/",
            "example.com/m/@v/list",
            "/example.com/m",
            "/example.com/m/",
            "/example.com/m/@v/",
            "/example.com/m/@v/list/",
            "/example.com/m/@v/list.txt",
            "/example.com/m/@v/v1.0.0.txt",
            "/x.com/m/@v/v1.0.0.txt",
            "/example.com/m/@v/.info",
            "/example.com/m/@v/.zip",
            "/example.com/m/@latest/",
            "/example.com/m/@latest.info",
            "/example.com/m/@v/latest.zip",
            "/example.com/m/@v/latest.info",
            "/example.com/m/@v/latest.mod",
            "/x.com/m/@v/v1.info.zip",
            "/x.com/m/@v/v1.zip",
            "/example.com/m/@v/v1.2.3+meta.zip",
            "/example.com/m/@v/v1.2.3+meta.mod",
            "/example.com/m/@v/v1.2.zip",
            "/example.com/m/@v/v2.0.0.zip",
            "/example.com/m/v2/@v/v1.0.0.zip",
            "/example.com/m/v2/@v/v2.0.0+incompatible.zip",
            "/example.com/m/@v/v1.0.0+incompatible.zip",
            "/example.com/../m/@v/list",
            "/example.com/%2e%2e/m/@v/list",
            "/example.com/%2E%2E/@v/list",
            "/example.com/m/@v/..%2f..%2fetc.info",
            "/example.com/m/@v/%2e%2e.info",
            "/example.com/m/@v/%252e%252e.info",
            "/example.com/m/@v/a%25b.info",
            "/example.com%5cm/@v/list",
            "/example.com\\m/@v/list",
            "/example.com/m/@v/v1.0.0%5c.zip",
            "/github.com/Azure/x/@v/list",
            "/github.com/!!azure/x/@v/list",
            "/github.com/!Azure/x/@v/list",
            "/github.com/!/x/@v/list",
            "/github.com/x!/@v/list",
            "/example.com/m/@v/v1.0.0-RC1.zip",
            "/example.com/m/@v/v1.0.0-!!r.zip",
            "/example.com/m/@v/!.info",
            "/example.com/m@v1/@v/list",
            "/example.com/m@v1.0.0/@v/v1.0.0.zip",
            "/@v/list",
            "//example.com/m/@v/list",
            "/example.com//m/@v/list",
            "/example.com/m//@v/list",
            "/example.com/m/@v//v1.0.0.zip",
            "/example.com/m/@v/v1.0.0.zip%00",
            "/example.com%00/m/@v/list",
            "/example.com/m/@v/ma%0aster.info",
            "/example.com/m/@v/%zz.info",
            "/example.com/m/@v/%2.info",
            "/example.com/m/@v/%",
            "/example.com/m/@v/%ff.info",
            "/example.com/m/@v/feature/x.info",
            "/example.com/m/@v/feature%2fx.info",
            "/example.com/m/@v/-rf.info",
            "/example.com/m/@v/a b.info",
            "/example.com/m/@v/a+b+.info/..",
            "/example.com/m/@v/list?x=1",
            "/example.com/m/@x/list",
            "/example.com/m/@V/list",
            "/example.com/m/@LATEST",
            "/Example.com/m/@v/list",
            "/example.com/con/@v/list",
            "/example.com/x~1/@v/list",
            "/example.com/.git/@v/list",
            "/example.com/m/v1/@v/list",
            "/gopkg.in/yaml/@v/list",
            "/gopkg.in/yaml.v2/@v/v3.0.0.zip",
            "/localhost/m/@v/list",
            "/é.com/m/@v/list",
            "/%c3%a9.com/m/@v/list",
            ten_kb.as_str(),
        ];
        assert!(cases.len() >= 40);
        for raw in cases {
            let got = parse_proxy_path(raw);
            let err = match got {
                Ok(req) => panic!("{raw:?} was accepted as {req:?}"),
                Err(e) => e.to_string(),
            };
            assert!(!err.contains('\n') && !err.is_empty(), "{raw:?}: {err:?}");
            assert!(err.len() < 400, "{raw:?}: message too long: {err}");
        }
        // Long but within the cap is judged on its merits, not refused for length.
        assert!(parse_proxy_path(&long_ok_len).is_ok());
    }

    #[test]
    fn messages() {
        let msg = |raw: &str| parse_proxy_path(raw).unwrap_err().to_string();
        assert_eq!(
            msg("/github.com/Azure/x/@v/list"),
            "invalid escaped module path \"github.com/Azure/x\": upper-case letters must be \
             escaped as \"!\" and the lower-case letter"
        );
        assert_eq!(
            msg("/example.com/m/@v/v1.2.3+meta.zip"),
            "malformed version \"v1.2.3+meta\": not canonical (should be \"v1.2.3\")"
        );
        assert_eq!(
            msg("/example.com/m/@v/v2.0.0.zip"),
            "example.com/m@v2.0.0: invalid version: should be v0 or v1, not v2"
        );
        assert_eq!(
            msg("/example.com/%2e%2e/@v/list"),
            "malformed module path \"example.com/..\": invalid path element \"..\""
        );
        assert_eq!(
            msg("/example.com/m/@v/%00.info"),
            "invalid request path: path contains a control character"
        );
        assert_eq!(
            msg("/example.com/m/@v/x.txt"),
            "invalid request path: want list, {version}.info, {version}.mod or {version}.zip \
             after @v/"
        );
    }

    #[test]
    fn helpers() {
        let req = parse_proxy_path("/example.com/m/@v/v1.0.0.info").unwrap();
        assert_eq!(req.module_path().as_str(), "example.com/m");
        assert_eq!(req.module_version(), Some(mv("example.com/m", "v1.0.0")));
        let req = parse_proxy_path("/example.com/m/@v/main.info").unwrap();
        assert_eq!(req.module_version(), None);
        let req = parse_proxy_path("/example.com/m/@v/v1.0.0.zip").unwrap();
        assert_eq!(req.module_version(), Some(mv("example.com/m", "v1.0.0")));
    }
}
