//! Reports: the merchant's staged rows with their duplicate status as CSV, streamed from
//! PostgreSQL to the browser. Cells that a spreadsheet would run as formulas are prefixed
//! with `'` (see [`crate::csv::protect`]); the upload takes the prefix off again.

#[cfg(feature = "ssr")]
pub mod ssr;

use uuid::Uuid;

/// Which rows a report holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportKind {
    /// Internal or database duplicates, or both.
    Duplicates,
    /// Every staged row.
    Full,
}

impl ReportKind {
    pub const ALL: [ReportKind; 2] = [ReportKind::Duplicates, ReportKind::Full];

    /// The last part of its path, and of its file name.
    pub fn slug(self) -> &'static str {
        match self {
            ReportKind::Duplicates => "duplicates",
            ReportKind::Full => "full-report",
        }
    }

    pub fn from_slug(slug: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.slug() == slug)
    }

    pub fn label(self) -> &'static str {
        match self {
            ReportKind::Duplicates => "Duplicates only",
            ReportKind::Full => "Full report",
        }
    }
}

/// The report's columns, in order: the CSV columns, the flags, the status, and where each
/// row came from.
pub const REPORT_COLUMNS: [&str; 14] = [
    "merchant_id",
    "code",
    "serial",
    "sku",
    "points",
    "sku_name",
    "batch_code",
    "price",
    "internal_dup",
    "existing_dup",
    "status",
    "source_file",
    "source_line",
    "row_number",
];

/// Where the browser downloads a report.
pub fn report_path(merchant: Uuid, kind: ReportKind) -> String {
    format!("/api/merchants/{merchant}/reports/{}.csv", kind.slug())
}
