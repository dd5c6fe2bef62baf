//! Where modules come from: the GOPROXY client chain.

mod client;
mod credentials;
mod direct;
mod error;
mod spec;

pub use client::{MAX_GO_MOD, UpstreamClient, ZipBody};
pub use credentials::{Credentials, CredentialsError, HostTokens, redact_url};
pub use direct::{DirectFetcher, DirectOptions};
pub use error::UpstreamError;
pub use spec::{Fallthrough, ProxyEntry, UpstreamSpec};
