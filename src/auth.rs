//! Client authentication: basic-auth users and bearer tokens from files, checked in constant time.
//!
//! Files hold hashes, never secrets. Users (`auth-users`), one per line:
//! `user:$2y$10$...` (bcrypt, as `htpasswd -B` writes) or `user:sha256:HEX` (for long random
//! passwords; unsalted, so not for human-chosen ones). Tokens (`auth-tokens`), one per line:
//! `name:sha256:HEX`, the SHA-256 of the token. `#` starts a comment line.
//!
//! bcrypt is slow on purpose, so a verified `Authorization` value is remembered (by its SHA-256)
//! for a few minutes: repeated requests of one go command cost a hash, not a bcrypt.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine;
use moka::future::Cache;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// How long a verified credential is trusted without checking it again.
const VERIFIED_TTL: Duration = Duration::from_secs(300);

/// A credentials file could not be used (reported at start).
#[derive(Debug, thiserror::Error)]
pub enum AuthFileError {
    /// The file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A line is malformed (its content is not shown: it may hold a secret by mistake).
    #[error("{path} line {line}: {message}")]
    Line {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        message: &'static str,
    },
}

/// Why a request is refused (all answered 401 alike).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// No usable `Authorization` header.
    #[error("authentication required")]
    Missing,
    /// Credentials were given but are not valid.
    #[error("invalid credentials")]
    Invalid,
}

#[derive(Clone)]
enum Secret {
    Sha256([u8; 32]),
    Bcrypt(String),
}

/// The users and tokens allowed in.
pub struct Authenticator {
    users: HashMap<String, Secret>,
    tokens: Vec<(String, [u8; 32])>,
    verified: Cache<[u8; 32], String>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("users", &self.users.len())
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

impl Authenticator {
    /// Reads the files that are named; `None` when neither is (authentication off).
    pub fn load(
        users: Option<&Path>,
        tokens: Option<&Path>,
    ) -> Result<Option<Authenticator>, AuthFileError> {
        if users.is_none() && tokens.is_none() {
            return Ok(None);
        }
        let mut auth = Authenticator {
            users: HashMap::new(),
            tokens: Vec::new(),
            verified: Cache::builder()
                .max_capacity(10_000)
                .time_to_live(VERIFIED_TTL)
                .build(),
        };
        if let Some(path) = users {
            for (line, name, secret) in entries(path)? {
                let bad = |message| AuthFileError::Line {
                    path: path.to_owned(),
                    line,
                    message,
                };
                let secret =
                    if secret.starts_with("$2") {
                        secret
                            .parse::<bcrypt::HashParts>()
                            .map_err(|_| bad("not a valid bcrypt hash"))?;
                        Secret::Bcrypt(secret)
                    } else {
                        Secret::Sha256(sha256_field(&secret).ok_or_else(|| {
                            bad("expected user:$2y$... (bcrypt) or user:sha256:HEX")
                        })?)
                    };
                if auth.users.insert(name.to_owned(), secret).is_some() {
                    return Err(bad("user named twice"));
                }
            }
        }
        if let Some(path) = tokens {
            for (line, name, secret) in entries(path)? {
                let digest = sha256_field(&secret).ok_or_else(|| AuthFileError::Line {
                    path: path.to_owned(),
                    line,
                    message: "expected name:sha256:HEX",
                })?;
                auth.tokens.push((name.to_owned(), digest));
            }
        }
        Ok(Some(auth))
    }

    /// Checks an `Authorization` header; returns the user or token name.
    pub async fn check(&self, authorization: Option<&[u8]>) -> Result<String, AuthError> {
        let value = authorization.ok_or(AuthError::Missing)?;
        let key: [u8; 32] = Sha256::digest(value).into();
        if let Some(name) = self.verified.get(&key).await {
            return Ok(name);
        }
        let text = std::str::from_utf8(value).map_err(|_| AuthError::Invalid)?;
        let (scheme, rest) = text.trim().split_once(' ').ok_or(AuthError::Invalid)?;
        let name = if scheme.eq_ignore_ascii_case("basic") {
            self.check_basic(rest.trim()).await?
        } else if scheme.eq_ignore_ascii_case("bearer") {
            self.check_bearer(rest.trim())?
        } else {
            return Err(AuthError::Invalid);
        };
        self.verified.insert(key, name.clone()).await;
        Ok(name)
    }

    async fn check_basic(&self, encoded: &str) -> Result<String, AuthError> {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| AuthError::Invalid)?;
        let decoded = String::from_utf8(decoded).map_err(|_| AuthError::Invalid)?;
        let (user, password) = decoded.split_once(':').ok_or(AuthError::Invalid)?;
        let ok = match self.users.get(user) {
            Some(Secret::Sha256(want)) => {
                let got: [u8; 32] = Sha256::digest(password.as_bytes()).into();
                bool::from(got.ct_eq(want))
            }
            Some(Secret::Bcrypt(hash)) => {
                let (password, hash) = (password.to_owned(), hash.clone());
                tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
                    .await
                    .ok()
                    .and_then(Result::ok)
                    .unwrap_or(false)
            }
            None => false,
        };
        if ok {
            Ok(user.to_owned())
        } else {
            Err(AuthError::Invalid)
        }
    }

    fn check_bearer(&self, token: &str) -> Result<String, AuthError> {
        let got: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        // Every token is compared, so the time taken does not say which one came close.
        let mut found = None;
        for (name, want) in &self.tokens {
            if bool::from(got.ct_eq(want)) {
                found = Some(name.clone());
            }
        }
        found.ok_or(AuthError::Invalid)
    }
}

/// `(line number, name, secret)` of each entry of a `name:secret` file.
fn entries(path: &Path) -> Result<Vec<(usize, String, String)>, AuthFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| AuthFileError::Read {
        path: path.to_owned(),
        source,
    })?;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.split_once(':') {
            Some((name, secret)) if !name.is_empty() && !secret.is_empty() => {
                out.push((i + 1, name.to_owned(), secret.to_owned()));
            }
            _ => {
                return Err(AuthFileError::Line {
                    path: path.to_owned(),
                    line: i + 1,
                    message: "expected name:hash",
                });
            }
        }
    }
    Ok(out)
}

/// `sha256:HEX` with 64 hex digits.
fn sha256_field(s: &str) -> Option<[u8; 32]> {
    let hex_digits = s.strip_prefix("sha256:")?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_digits, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn basic(user: &str, password: &str) -> Vec<u8> {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        format!("Basic {encoded}").into_bytes()
    }

    fn files(users: &str, tokens: &str) -> (tempfile::TempDir, Authenticator) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("users"), users).unwrap();
        std::fs::write(dir.path().join("tokens"), tokens).unwrap();
        let auth = Authenticator::load(
            Some(&dir.path().join("users")),
            Some(&dir.path().join("tokens")),
        )
        .unwrap()
        .unwrap();
        (dir, auth)
    }

    #[tokio::test]
    async fn users_and_tokens_are_checked() {
        let bcrypted = bcrypt::hash("open sesame", 4).unwrap();
        let users = format!(
            "# comment\nalice:{bcrypted}\nbob:sha256:{}\n",
            hex::encode(Sha256::digest(b"hunter2"))
        );
        let tokens = format!("ci:sha256:{}\n", hex::encode(Sha256::digest(b"tok-123")));
        let (_dir, auth) = files(&users, &tokens);
        assert_eq!(
            auth.check(Some(&basic("alice", "open sesame")))
                .await
                .unwrap(),
            "alice"
        );
        // Again: now from the verified cache.
        assert_eq!(
            auth.check(Some(&basic("alice", "open sesame")))
                .await
                .unwrap(),
            "alice"
        );
        assert_eq!(
            auth.check(Some(&basic("bob", "hunter2"))).await.unwrap(),
            "bob"
        );
        assert_eq!(auth.check(Some(b"Bearer tok-123")).await.unwrap(), "ci");
        for bad in [
            basic("alice", "open sesam"),
            basic("bob", "hunter3"),
            basic("carol", "hunter2"),
            b"Bearer tok-124".to_vec(),
            b"Basic !!!".to_vec(),
            b"Digest x".to_vec(),
            b"Bearer".to_vec(),
        ] {
            assert_eq!(auth.check(Some(&bad)).await, Err(AuthError::Invalid));
        }
        assert_eq!(auth.check(None).await, Err(AuthError::Missing));
    }

    #[test]
    fn bad_files_name_the_line_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users");
        std::fs::write(&path, "alice:sha256:abc\n").unwrap();
        let err = Authenticator::load(Some(&path), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 1") && !err.contains("abc"), "{err}");
        std::fs::write(&path, "plaintext-password-line\n").unwrap();
        let err = Authenticator::load(Some(&path), None)
            .unwrap_err()
            .to_string();
        assert!(!err.contains("plaintext"), "{err}");
        assert!(Authenticator::load(None, None).unwrap().is_none());
    }
}
