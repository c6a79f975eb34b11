//! The duplicate check: which staged rows repeat a code of the batch (internal) or one already
//! in production (database).

#[cfg(feature = "ssr")]
pub mod ssr;

use serde::{Deserialize, Serialize};

/// The check's figures over a set of staged rows (the merchant's, or one file's).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct DuplicateStats {
    pub total_rows: i64,
    /// Rows whose code appeared earlier in the batch (2nd, 3rd, … occurrence).
    pub internal_duplicates: i64,
    /// Rows whose (code, merchant) is already in `codes`.
    pub database_duplicates: i64,
    /// Rows that are both.
    pub both: i64,
    /// Rows that are neither: what an insert would add.
    pub clean_count: i64,
}
