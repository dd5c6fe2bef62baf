//! Errors of the upstream layer.

/// An upstream request failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// Every upstream said 404/410 (or, after `|`, failed): the module or version does not exist there.
    #[error("{0}")]
    NotFound(String),
    /// No upstream is configured (`off`).
    #[error("not found: upstream is off, and storage does not have it")]
    Off,
    /// An upstream answered with an unexpected status.
    #[error("upstream {url} answered {status}")]
    Status {
        /// The URL asked.
        url: String,
        /// The HTTP status.
        status: u16,
    },
    /// Connecting, sending or reading failed.
    #[error("upstream {url}: {message}")]
    Transport {
        /// The URL asked.
        url: String,
        /// What went wrong (secrets never included: URLs are redacted).
        message: String,
        /// The failure was a timeout.
        timeout: bool,
    },
    /// The answer exceeds what such a file may hold.
    #[error("upstream {url}: answer larger than {limit} bytes")]
    TooLarge {
        /// The URL asked.
        url: String,
        /// The limit.
        limit: u64,
    },
}

impl UpstreamError {
    /// True when the chain should treat this as "not here" (and our client should see 404).
    pub fn is_not_found(&self) -> bool {
        matches!(self, UpstreamError::NotFound(_) | UpstreamError::Off)
    }

    /// True for timeouts (mapped to 504).
    pub fn is_timeout(&self) -> bool {
        matches!(self, UpstreamError::Transport { timeout: true, .. })
    }
}

/// Longest reason passed on to clients.
const MAX_REASON: usize = 300;

/// The first non-empty line of a message (without `prefix`), cut to a length a client is shown.
pub(super) fn reason_line(text: &str, prefix: &str) -> String {
    let line = text
        .lines()
        .map(|l| l.trim().trim_start_matches(prefix).trim())
        .find(|l| !l.is_empty())
        .unwrap_or("");
    line.chars().take(MAX_REASON).collect()
}
