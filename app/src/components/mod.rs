//! Reusable view pieces.

pub mod columns;
pub mod error;
pub mod format;
pub mod mapping;
pub mod shell;
