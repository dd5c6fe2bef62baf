//! Storage inspection: what is stored (`ls`), whether it is sound (`verify`), removing a version
//! (`rm`) and the paged `/catalog` listing. Works on any storage URL through `object_store`.
//!
//! Read-only unless asked: only `verify --repair` and `rm` write, and nothing here ever deletes a
//! committed version's files except `rm`, which exists to do exactly that.

pub mod args;
pub mod catalog;
mod error;
pub mod inventory;
pub mod keys;
pub mod ls;
pub mod rm;
pub mod run;
pub mod staging;
pub mod verify;

pub use error::InspectError;
