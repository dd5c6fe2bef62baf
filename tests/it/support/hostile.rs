//! Hostile request paths, shared by `tests/it/bad_input.rs` (every one a plain 404 or 410),
//! `tests/reliability/hostile.rs` (the same plus methods, headers and huge requests) and, through
//! [`hostile_path`], the property and fuzz runs over the request parser.

/// Request targets that name no module file: modstash and a plain static server answer each with
/// 404 or 410, and modstash passes none of the malformed ones upstream.
pub fn hostile_targets() -> Vec<String> {
    let mut targets: Vec<String> = [
        // Dot segments, raw and percent-encoded (once and twice), aiming outside the storage root.
        "/../../../../etc/passwd",
        "/example.com/../../etc/passwd/@v/list",
        "/example.com/hello/@v/../../../../etc/passwd",
        "/example.com/hello/@v/../@v/list",
        "/%2e%2e/%2e%2e/etc/passwd",
        "/%2E%2E/%2E%2E/etc/passwd",
        "/example.com/%2e%2e/@v/list",
        "/example.com/hello/@v/%2e%2e%2f%2e%2e%2fx.info",
        "/example.com/hello/@v/%2E%2E/list",
        "/example.com/hello/@v/..%2f..%2fetc%2fpasswd.mod",
        "/example.com/hello/%2e/@v/list",
        "/%252e%252e/etc/passwd",
        "/example.com/%252e%252e/@v/list",
        "/example.com/./hello/@v/list",
        "/./example.com/hello/@v/list",
        "/example.com/hello/./@v/list",
        "/example.com/hello/@v/./v1.0.0.zip",
        "/example.com/hello/@v/v1.0.0.info/..",
        "/%2fetc%2fpasswd/@v/list",
        "/.modstash/@v/list",
        "/example.com/hello/@v/../../../.modstash/x",
        // Absolute and drive-letter paths.
        "/etc/passwd",
        "//etc/passwd",
        "/%2F%2Fetc/passwd/@v/list",
        "/C:/Windows/win.ini",
        "/c:%5cwindows/@v/list",
        "/example.com/hello/@v//etc/passwd.info",
        // Backslashes, raw and encoded.
        "/example.com\\hello/@v/list",
        "/example.com/hello/@v/..\\..\\x.info",
        "/example.com%5chello/@v/list",
        "/..%5c..%5cwindows/@v/list",
        "/example.com/hello/@v/%5c..%5cx.zip",
        // Escaping: upper case must be written as `!x`, and `!` only before a lower-case letter.
        "/github.com/Upper/Case/@v/list",
        "/github.com/!upper/!case/@v/V1.0.0.info",
        "/github.com/upper/Case/@v/v1.0.0.zip",
        "/EXAMPLE.COM/hello/@v/list",
        "/example.com/Hello/@v/list",
        "/example.com/hello/@v/v1.0.0-RC1.mod",
        "/example.com/hello/@LATEST",
        "/example.com/hello/@v/LIST",
        "/example.com/!!x/@v/list",
        "/example.com/x!/@v/list",
        "/example.com/!1x/@v/list",
        "/example.com/!/@v/list",
        // `@` inside the module path.
        "/example.com/hel@lo/@v/list",
        "/example.com/hello@v1.0.0/@v/list",
        "/example.com/hello@v/list",
        // Empty elements.
        "//example.com/hello/@v/list",
        "/example.com//hello/@v/list",
        "/example.com/hello/@v//v1.0.0.info",
        "/@v/list",
        "/@latest",
        // Control characters, percent-encoded (raw ones are refused by the HTTP parser).
        "/example.com/hello/@v/v1.0.0%00.info",
        "/example.com/hello%00/@v/list",
        "/example.com/hello/@v/list%00",
        "/example.com/hel%00lo/@v/v1.0.0.zip",
        "/example.com/hello/@v/v1.0.0.zip%00.info",
        "/example.com/hello%0a/@v/list",
        "/example.com/hello/@v/v1.0.0%0d%0a.info",
        "/example.com/hello%09/@v/list",
        "/example.com/hello%7f/@v/list",
        // Not UTF-8 once decoded: invalid bytes, overlong encodings of `.`, a surrogate.
        "/example.com/%ff%fe/@v/list",
        "/example.com/hello/@v/v1.0.0%c3%28.info",
        "/example.com/%c0%ae%c0%ae/@v/list",
        "/example.com/hello/@v/%e0%80%ae.info",
        "/example.com/%ed%a0%80/@v/list",
        // UTF-8, but outside the module path alphabet.
        "/example.com/h%c3%a9llo/@v/list",
        "/ex%e2%80%8bample.com/hello/@v/list",
        "/example.com/hello/@v/v1%ef%bc%8e0%ef%bc%8e0.zip",
        // Broken percent-encoding.
        "/example.com/hello/@v/list%",
        "/example.com/hello/@v/list%2",
        "/example.com/hello/@v/%zz.info",
        "/example.com/hel%lo/@v/list",
        // Versions that are not canonical, or not versions.
        "/example.com/hello/@v/v1.info",
        "/example.com/hello/@v/latest.zip",
        "/example.com/hello/@v/v1.2.3+meta.zip",
        "/example.com/hello/@v/v1.0.0+incompatible.info",
        "/example.com/hello/@v/v1.0.0-.info",
        "/example.com/hello/@v/.info",
        "/example.com/hello/@v/",
        "/example.com/hello/@v/v01.0.0.zip",
        "/example.com/hello/@v/v1.0.0-01.mod",
        "/example.com/hello/@v/v1.0.mod",
        "/example.com/hello/@v/1.0.0.zip",
        "/example.com/hello/@v/v1.0.0-a..b.zip",
        "/example.com/hello/@v/v-1.0.0.mod",
        "/example.com/hello/@v/vv1.0.0.zip",
        "/example.com/hello/@v/v1.0.0.0.mod",
        "/example.com/hello/@v/v18446744073709551616.0.0.zip",
        // `+` in versions and paths: build metadata is not canonical, `+` is no module path character.
        "/example.com/hello/@v/v1.0.0+build.1.mod",
        "/example.com/hello/@v/v1.0.0%2Bmeta.zip",
        "/example.com/hello/@v/v1.0.0+.zip",
        "/example.com/hello/@v/+v1.0.0.mod",
        "/example.com/he+llo/@v/list",
        // Major-version mismatch: /v2 paths take only v2 versions.
        "/example.com/hello/v2/@v/v1.0.0.info",
        "/example.com/hello/@v/v2.0.0.mod",
        // Trailing garbage, unknown suffixes and `/@v/` oddities.
        "/example.com/hello/@v/list/extra",
        "/example.com/hello/@v/list/",
        "/example.com/hello/@v/v1.0.0.zip/",
        "/example.com/hello/@v/v1.0.0.info.bak",
        "/example.com/hello/@v/v1.0.0.txt",
        "/example.com/hello/@v/v1.0.0.INFO",
        "/example.com/hello/@v/v1.0.0.zip.zip",
        "/example.com/hello/@v/.zip",
        "/example.com/hello/@v/.mod",
        "/example.com/hello/@v",
        "/example.com/hello/@v/@v/list",
        "/example.com/hello/@/v/list",
        "/example.com/hello/@latest/extra",
        "/example.com/hello/@latest/",
        "/example.com/hello/@V/list",
        // Invalid module path elements, Windows reserved names among them.
        "/-example.com/@v/list",
        "/example.com/hello./@v/list",
        "/example.com/.git/@v/list",
        "/example.com/con/@v/list",
        "/example.com/aux.txt/@v/list",
        "/localhost/hello/@v/list",
        // modstash's own objects and endpoints, reached sideways.
        "/.modstash/leases/x",
        "/.modstash/@v/v1.0.0.info",
        "/%2emodstash/leases/@v/list",
        "/healthz/x",
        "/catalog/../../etc/passwd",
        // The checksum-database proxy: databases not allowed, and paths outside its grammar.
        "/sumdb/evil.example.com/supported",
        "/sumdb/sum.golang.org/lookup/../../../etc/passwd@v1.0.0",
        "/sumdb/sum.golang.org/lookup/example.com/hello@latest",
        "/sumdb/sum.golang.org/tile/8/0/../../../x",
        "/sumdb/sum.golang.org/tile/99/0/000",
        "/sumdb/sum.golang.org/tile/8/0/000.p/0",
        "/sumdb/sum.golang.org/%2e%2e/%2e%2e/etc/passwd",
        "/sumdb/../../etc/passwd",
        // A parent-path probe: the go command sends these for package paths; no such module.
        "/example.com/@v/list",
    ]
    .into_iter()
    .map(str::to_owned)
    .collect();
    // Overlong elements and paths (the whole raw path is capped at 8 KiB before any work).
    targets.push(format!("/example.com/{}/@v/list", "a".repeat(10 * 1024)));
    targets.push(format!("/example.com/{}/@v/list", "a/".repeat(1000)));
    targets.push(format!(
        "/example.com/hello/@v/v1.0.0-{}.info",
        "a".repeat(500)
    ));
    targets
}

/// Strings made of the tokens hostile request paths are made of, for property and fuzz runs.
pub fn hostile_path() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    let token = prop_oneof![
        Just("/"),
        Just("@v"),
        Just("@latest"),
        Just("/@v/"),
        Just("list"),
        Just(".info"),
        Just(".mod"),
        Just(".zip"),
        Just("v1.2.3"),
        Just("v2.0.0+incompatible"),
        Just("example.com"),
        Just("gopkg.in/yaml.v2"),
        Just("!"),
        Just("!a"),
        Just("A"),
        Just(".."),
        Just("."),
        Just("%"),
        Just("%2e"),
        Just("%2F"),
        Just("%25"),
        Just("%00"),
        Just("%ff"),
        Just("%c3%a9"),
        Just("\\"),
        Just("+"),
        Just("-"),
        Just("~1"),
        Just("con"),
        Just("é"),
        Just("\n"),
        Just("m"),
        Just("v2"),
    ];
    proptest::collection::vec(token, 0..24).prop_map(|t| t.concat())
}
