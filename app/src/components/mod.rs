//! Reusable view pieces.

pub mod activity;
pub mod columns;
pub mod error;
pub mod format;
pub mod mapping;
pub mod poll;
pub mod scroll_box;
pub mod shell;
