//! The CSV rules of Code Import, pure and shared: the browser validates files with them (WASM)
//! and the server re-checks every uploaded row with the same code. No I/O here.
//!
//! - [`RecordReader`] parses RFC 4180 records incrementally, slice by slice, and flags the
//!   malformed ones (the rule is at the top of `reader.rs`).
//! - [`HeaderMap`] recognises the columns.
//! - [`check_row`] decides whether a row is staged, skipped or rejected.
//! - [`FileValidator`] runs a whole file through them and keeps the figures a person checks.
//! - [`TextDecoder`] turns a file in another encoding into UTF-8 on the way in.
//! - [`wire`] is the compact, compressed form staged rows travel in to the server.

#[cfg(test)]
mod bench;
mod encoding;
mod mapping;
#[cfg(test)]
mod proptests;
mod reader;
mod rejects;
mod rules;
mod validator;
pub mod wire;

pub use encoding::{TextDecoder, TextEncoding};
pub use mapping::{column_named, layout_key, normalise, sample, suggest, ColumnMapping};
pub use reader::{detect_delimiter, Record, RecordProblem, RecordReader, MAX_FIELDS, MAX_RECORD_BYTES};
pub use rejects::{rejected_rows_csv, LineFinder};
pub use rules::{
    check_row, protect, recheck_row, template_csv, unprotect, Column, ColumnRule, FileProblem, HeaderMap, RowOutcome,
    StagedRow, COLUMNS, FORMULA_STARTS, MAX_FIELD_BYTES, TEMPLATE_COLUMNS,
};
pub use validator::{
    FileReport, FileValidator, ReadOptions, RejectedRow, MAX_KEPT_REJECTS, MAX_SHOWN_ERRORS, PREVIEW_LINES,
};
