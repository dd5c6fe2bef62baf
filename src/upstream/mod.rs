//! Where modules come from: the GOPROXY client chain.

mod spec;

pub use spec::{Fallthrough, ProxyEntry, UpstreamSpec};
