//! Reusable view pieces.

pub mod shell;
pub mod format;
