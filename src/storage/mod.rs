//! Where modules live: typed operations over `object_store` with the GOPROXY-tree key layout.

mod url;

pub use url::StorageUrl;
