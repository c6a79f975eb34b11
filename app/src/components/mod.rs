//! Reusable view pieces.

pub mod activity;
pub mod columns;
pub mod error;
pub mod figures;
pub mod file_table;
pub mod format;
pub mod mapping;
pub mod merchant_picker;
pub mod poll;
pub mod progress;
pub mod scroll_box;
pub mod shell;
