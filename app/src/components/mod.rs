//! Reusable view pieces.

pub mod error;
pub mod format;
pub mod shell;
