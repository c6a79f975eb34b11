//! The duplicate check: which staged rows repeat a code of the batch (internal) or one already
//! in production (database); its figures, the preview of rows by status, and the pre-flight
//! the insert runs.

#[cfg(feature = "ssr")]
pub mod ssr;

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "ssr")]
use crate::auth::ssr::{context, respond};
use crate::{batch::Batch, error::AppError, operations::Operation};

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

impl DuplicateStats {
    /// Rows that are internal duplicates only (not also in the database).
    pub fn internal_only(&self) -> i64 {
        self.internal_duplicates - self.both
    }

    /// Rows that are database duplicates only.
    pub fn database_only(&self) -> i64 {
        self.database_duplicates - self.both
    }

    /// `part` as a percentage of the rows, with one decimal ("12.3 %").
    pub fn percent(&self, part: i64) -> String {
        if self.total_rows == 0 {
            return "–".into();
        }
        format!("{:.1} %", part as f64 * 100.0 / self.total_rows as f64)
    }

    fn add(&mut self, other: &DuplicateStats) {
        self.total_rows += other.total_rows;
        self.internal_duplicates += other.internal_duplicates;
        self.database_duplicates += other.database_duplicates;
        self.both += other.both;
        self.clean_count += other.clean_count;
    }
}

/// One source file's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStats {
    pub source_file: String,
    pub stats: DuplicateStats,
}

/// What a completed check found: overall, per file (in row order), and the last row it saw.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckFigures {
    pub overall: DuplicateStats,
    pub files: Vec<FileStats>,
    /// The highest `row_number` staged when the check ran: rows staged later are unchecked.
    pub last_row: Option<i64>,
}

impl CheckFigures {
    /// The overall figures as the sum of the files'.
    pub fn from_files(files: Vec<FileStats>, last_row: Option<i64>) -> Self {
        let mut overall = DuplicateStats::default();
        for file in &files {
            overall.add(&file.stats);
        }
        Self { overall, files, last_row }
    }
}

/// What the review page shows for a merchant: all of it read from the merchant's batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReviewState {
    pub merchant_id: Uuid,
    /// The merchant's latest batch: the live one, or what became of the last one.
    pub batch: Option<Batch>,
    /// The batch's latest check (running, completed or failed).
    pub check: Option<Operation>,
    /// The figures of the check (or of a pre-flight after it) that describe the batch, and
    /// when they were made.
    pub figures: Option<CheckFigures>,
    pub checked_at: Option<DateTime<Utc>>,
    /// Why those figures no longer describe what is staged, if they do not.
    pub stale: Option<String>,
    /// Another operation (insert, rollback, clear) running for the merchant.
    pub running: Option<Operation>,
}

impl ReviewState {
    /// The live batch, if rows are staged in it.
    pub fn staged(&self) -> Option<&Batch> {
        self.batch.as_ref().filter(|b| b.state.is_live() && b.rows_staged > 0)
    }
}

/// A staged row's status, as the preview filter and the reports name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum RowStatus {
    Clean,
    InternalDuplicate,
    DatabaseDuplicate,
    BothDuplicate,
}

impl RowStatus {
    pub const ALL: [RowStatus; 4] =
        [RowStatus::Clean, RowStatus::InternalDuplicate, RowStatus::DatabaseDuplicate, RowStatus::BothDuplicate];

    pub fn of(internal_dup: bool, existing_dup: bool) -> Self {
        match (internal_dup, existing_dup) {
            (false, false) => RowStatus::Clean,
            (true, false) => RowStatus::InternalDuplicate,
            (false, true) => RowStatus::DatabaseDuplicate,
            (true, true) => RowStatus::BothDuplicate,
        }
    }

    /// The flags a row of this status has: (internal_dup, existing_dup).
    pub fn flags(self) -> (bool, bool) {
        match self {
            RowStatus::Clean => (false, false),
            RowStatus::InternalDuplicate => (true, false),
            RowStatus::DatabaseDuplicate => (false, true),
            RowStatus::BothDuplicate => (true, true),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RowStatus::Clean => "CLEAN",
            RowStatus::InternalDuplicate => "INTERNAL_DUPLICATE",
            RowStatus::DatabaseDuplicate => "DATABASE_DUPLICATE",
            RowStatus::BothDuplicate => "BOTH_DUPLICATE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// One staged row in the preview.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct PreviewRow {
    pub row_number: i64,
    pub code: String,
    pub serial: Option<String>,
    pub sku: Option<String>,
    pub points: Option<String>,
    pub sku_name: Option<String>,
    pub batch_code: Option<String>,
    pub price: Option<String>,
    pub internal_dup: bool,
    pub existing_dup: bool,
    pub source_file: Option<String>,
    pub source_line: Option<i64>,
}

impl PreviewRow {
    pub fn status(&self) -> RowStatus {
        RowStatus::of(self.internal_dup, self.existing_dup)
    }
}

/// One page of the preview; `next_after` continues it (keyset on `row_number`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewPage {
    pub rows: Vec<PreviewRow>,
    pub next_after: Option<i64>,
}

/// Rows per preview page.
pub const PREVIEW_PAGE_SIZE: i64 = 50;

/// Starts the duplicate check of the merchant's staged rows in the background.
/// `Conflict` while another operation or an upload runs for the merchant.
#[server(prefix = "/api", endpoint = "start-check")]
pub async fn start_check(merchant: Uuid) -> Result<Operation, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        Ok(ssr::start_check(&state.pool, merchant, Some(caller.user_id())).await?)
    })
    .await
}

/// The latest check of the merchant's staged rows and its figures.
#[server(prefix = "/api", endpoint = "load-review")]
pub async fn load_review(merchant: Uuid) -> Result<ReviewState, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        ssr::review_state(&state.pool, merchant).await
    })
    .await
}

/// Staged rows after `after` in row order, of one status or all.
#[server(prefix = "/api", endpoint = "preview-rows")]
pub async fn preview_rows(merchant: Uuid, status: Option<RowStatus>, after: i64) -> Result<PreviewPage, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        Ok(ssr::preview(&state.pool, merchant, status, after, PREVIEW_PAGE_SIZE).await?)
    })
    .await
}
