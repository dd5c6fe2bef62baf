//! Errors of the inspection layer.

use crate::config::ConfigError;
use crate::module::ModuleError;
use crate::storage::StorageError;

/// An inspection command or catalog request failed.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Reading or writing storage failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Local file I/O failed (temporary files, local staging files).
    #[error("local I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The storage named does not exist (inspection never creates it).
    #[error("storage {0} does not exist")]
    NoStorage(String),
    /// A module path pattern is not a valid glob.
    #[error("invalid module pattern {pattern:?}: {reason}")]
    Pattern {
        /// The pattern as given.
        pattern: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A `MODULE@VERSION` argument is malformed.
    #[error("invalid argument {arg:?}: {reason}")]
    Argument {
        /// The argument as given.
        arg: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A module path, version or the pair is invalid.
    #[error(transparent)]
    Module(#[from] ModuleError),
    /// The version asked for has no files in storage.
    #[error("{0} is not stored")]
    NotStored(String),
    /// A catalog cursor is not a storage key.
    #[error("invalid cursor {cursor:?}: {reason}")]
    Cursor {
        /// The cursor as given.
        cursor: String,
        /// Why it is invalid.
        reason: String,
    },
    /// `@v/list` kept changing under a conditional update.
    #[error("@v/list of {0} kept changing while being rewritten; try again")]
    ListContended(String),
    /// The settings (config file, environment, flags) are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A deletion was not confirmed.
    #[error("{0}")]
    Refused(String),
    /// `verify` found problems it did not (or could not) repair.
    #[error("verify: {0} problem(s) remain")]
    ProblemsRemain(usize),
    /// A background task died (a panic in the zip check).
    #[error("internal error: {0}")]
    Task(String),
}

impl From<object_store::Error> for InspectError {
    fn from(e: object_store::Error) -> Self {
        InspectError::Storage(StorageError::from(e))
    }
}
