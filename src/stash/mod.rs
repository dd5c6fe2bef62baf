//! stash
