//! The Go module vocabulary: module paths, versions, the GOPROXY URL grammar, zip checks and `h1:` hashes.

mod dirhash;
mod error;
mod escape;
mod letters;
mod module_version;
mod path;
mod pattern;
mod query;
mod request;
mod version;
mod zipcheck;
mod zipread;

pub use dirhash::hash_go_mod;
pub use error::ModuleError;
pub use module_version::ModuleVersion;
pub use path::ModulePath;
pub use pattern::ModulePatterns;
pub use query::{VersionQuery, VersionRef};
pub use request::{ProxyRequest, parse_proxy_path};
pub use version::Version;
pub use zipcheck::{ZipError, ZipLimits, ZipSummary, check_zip_file};
