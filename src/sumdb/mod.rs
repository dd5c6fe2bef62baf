//! The checksum-database proxy: `/sumdb/{name}/...` forwarded to an allow-list of databases,
//! full tiles kept in storage forever, everything else cached briefly in memory.

mod proxy;
mod request;
mod spec;

pub use proxy::{SumdbAnswer, SumdbError, SumdbProxy};

pub use request::{BadSumdbPath, SumdbRequest, TilePath, parse_sumdb_path};
pub use spec::SumdbSpec;
