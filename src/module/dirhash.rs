//! The `h1:` hash of go.sum (`dirhash.Hash1`): SHA-256 over a sorted listing of file SHA-256s.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest, Sha256};

/// Builds an `h1:` hash from `(file name, SHA-256 of its content)` pairs in any order.
///
/// Returns `None` if a name contains a newline, which the listing format cannot express
/// (Go's `Hash1` fails the same way).
pub(crate) fn hash1(mut files: Vec<(String, [u8; 32])>) -> Option<String> {
    // Stable, so equal names keep their relative order; their digests are equal anyway by
    // the time callers get here.
    files.sort_by(|a, b| a.0.cmp(&b.0));
    let mut summary = Sha256::new();
    for (name, digest) in &files {
        if name.contains('\n') {
            return None;
        }
        summary.update(hex::encode(digest));
        summary.update(b"  ");
        summary.update(name.as_bytes());
        summary.update(b"\n");
    }
    Some(format!("h1:{}", STANDARD.encode(summary.finalize())))
}

/// The go.sum hash of a go.mod file (the `/go.mod h1:` line): `Hash1` over one file named
/// `go.mod`.
pub fn hash_go_mod(bytes: &[u8]) -> String {
    let digest: [u8; 32] = Sha256::digest(bytes).into();
    // A fixed name without a newline cannot fail; the fallback keeps this total anyway.
    hash1(vec![("go.mod".to_owned(), digest)]).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(b: &[u8]) -> [u8; 32] {
        Sha256::digest(b).into()
    }

    #[test]
    fn go_mod_vectors() {
        assert_eq!(
            hash_go_mod(b""),
            "h1:G7mAYYxgmS0lVkHyy2hEOLQCFB0DlQFTMLWggykrydY="
        );
        // Vectors computed with Go's dirhash.Hash1 over a single go.mod.
        assert_eq!(
            hash_go_mod(b"module rsc.io/quote\n"),
            "h1:XlB+e70VC7gDa0v7/5nngb/cb1VWDr292yT8rt7ya4k="
        );
        assert_eq!(
            hash_go_mod(b"module example.com/m\n\ngo 1.21\n"),
            "h1:ONeDgCa5UF/jJRjGzpOKmUiezgFEk4IPFZ96frvroW0="
        );
    }

    #[test]
    fn listing_is_sorted_and_exact() {
        // Vector computed with Go's dirhash.Hash1 over these three files.
        let files = vec![
            ("m@v1.0.0/b.go".to_owned(), sha(b"package b\n")),
            ("m@v1.0.0/a/".to_owned(), sha(b"")),
            ("m@v1.0.0/go.mod".to_owned(), sha(b"module m\n")),
        ];
        let mut reversed = files.clone();
        reversed.reverse();
        let h = hash1(files).unwrap();
        assert_eq!(hash1(reversed).unwrap(), h);
        assert_eq!(h, "h1:oeZfJ3zfDp1DUOYvPGnw/q+56K5JvRTCVt6r7t1f0Kc=");
        assert_eq!(hash1(vec![("a\nb".to_owned(), sha(b""))]), None);
    }
}
