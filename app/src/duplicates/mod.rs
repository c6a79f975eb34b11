//! The duplicate check: which staged rows repeat a code of the batch (internal) or one already
//! in production (database); its figures, the preview of rows by status, and the pre-flight
//! the insert runs.

#[cfg(feature = "ssr")]
pub mod ssr;
pub mod view;

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "ssr")]
use crate::auth::ssr::{context, respond};
use crate::{batch::Batch, error::AppError, operations::Operation};
pub use view::{CodeSearch, ReviewView, RowFilter};

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
    /// The figures per block of row numbers and file, in row order: where each page of the
    /// review starts, and how many pages there are, without counting rows again. Kept with the
    /// check's record; not sent to the page (which needs only the totals).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub blocks: Vec<BlockStats>,
}

/// Rows per block of [`BlockStats`]: a jump to a page counts at most this many rows.
pub const BLOCK_ROWS: i64 = 1 << 16;

/// One file's rows in one block of [`BLOCK_ROWS`] row numbers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    /// `row_number / BLOCK_ROWS`.
    pub block: i64,
    /// Index of the file in [`CheckFigures::files`].
    pub file: i64,
    pub stats: DuplicateStats,
}

impl CheckFigures {
    /// The overall figures as the sum of the files'.
    pub fn from_files(files: Vec<FileStats>, last_row: Option<i64>) -> Self {
        let mut overall = DuplicateStats::default();
        for file in &files {
            overall.add(&file.stats);
        }
        Self { overall, files, last_row, blocks: Vec::new() }
    }

    /// The files' figures and the overall ones as the sum of `blocks` (per file, in row order).
    pub fn from_blocks(names: Vec<String>, blocks: Vec<BlockStats>, last_row: Option<i64>) -> Self {
        let mut files: Vec<FileStats> =
            names.into_iter().map(|source_file| FileStats { source_file, stats: DuplicateStats::default() }).collect();
        for block in &blocks {
            files[block.file as usize].stats.add(&block.stats);
        }
        Self { blocks, ..Self::from_files(files, last_row) }
    }

    /// The figures without their blocks, as the page receives them.
    pub fn without_blocks(self) -> Self {
        Self { blocks: Vec::new(), ..self }
    }

    /// How many rows of the file named `file` (or of all) pass `filter`, in each block, in
    /// block order.
    pub fn matching_per_block(&self, filter: RowFilter, file: Option<&str>) -> Vec<(i64, i64)> {
        let mut per_block: Vec<(i64, i64)> = Vec::new();
        for entry in &self.blocks {
            if file.is_some_and(|name| self.files[entry.file as usize].source_file != name) {
                continue;
            }
            let count = filter.count(&entry.stats);
            match per_block.iter_mut().find(|(block, _)| *block == entry.block) {
                Some((_, total)) => *total += count,
                None => per_block.push((entry.block, count)),
            }
        }
        per_block.sort_unstable();
        per_block
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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

    /// Its name on the page.
    pub fn label(self) -> &'static str {
        match self {
            RowStatus::Clean => "Clean",
            RowStatus::InternalDuplicate => "Internal duplicate",
            RowStatus::DatabaseDuplicate => "Database duplicate",
            RowStatus::BothDuplicate => "Internal and database duplicate",
        }
    }
}

/// One staged row in the preview, with where its code was seen before: its first occurrence in
/// the batch (an internal duplicate) and the production row (a database duplicate).
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
    /// An internal duplicate's first occurrence: its row, file and line.
    pub first_row: Option<i64>,
    pub first_file: Option<String>,
    pub first_line: Option<i64>,
    /// A database duplicate's production row: when it was created, its `source`, its import
    /// job, and whether that job is in this app's job history.
    pub production_created_at: Option<DateTime<Utc>>,
    pub production_source: Option<String>,
    pub production_job: Option<Uuid>,
    pub production_job_known: bool,
}

impl PreviewRow {
    pub fn status(&self) -> RowStatus {
        RowStatus::of(self.internal_dup, self.existing_dup)
    }
}

/// One page of the preview, with the cursors of its neighbours (keyset on `row_number`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviewPage {
    pub rows: Vec<PreviewRow>,
    /// The page's number, from 1.
    pub page: i64,
    /// How many pages and rows the view has, when the check's figures tell (not for a search,
    /// nor when rows were staged after the check).
    pub pages: Option<i64>,
    pub matching: Option<i64>,
    /// The next page starts after this row, the previous one ends before this one.
    pub next_after: Option<i64>,
    pub previous_before: Option<i64>,
    /// The row the view asked to land on, when it is on this page.
    pub marked_row: Option<i64>,
}

/// Rows per preview page.
pub const PREVIEW_PAGE_SIZE: i64 = 50;

/// Starts the duplicate check of the merchant's staged rows in the background.
/// `Busy` while another operation runs for the merchant, `Conflict` while an upload does.
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

/// One page of the merchant's staged rows as `view` says: filtered by status, file and code,
/// at a page, a cursor or a row.
#[server(prefix = "/api", endpoint = "preview-rows", input = server_fn::codec::Json)]
pub async fn preview_rows(merchant: Uuid, view: ReviewView) -> Result<PreviewPage, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        Ok(ssr::preview(&state.pool, merchant, &view, PREVIEW_PAGE_SIZE).await?)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(total_rows: i64, internal_duplicates: i64, database_duplicates: i64, both: i64) -> DuplicateStats {
        let clean_count = total_rows - internal_duplicates - database_duplicates + both;
        DuplicateStats { total_rows, internal_duplicates, database_duplicates, both, clean_count }
    }

    #[test]
    fn the_blocks_add_up_to_the_files_and_count_a_filter_per_block() {
        // a.csv fills block 0 and starts block 1, b.csv ends block 1 and fills block 2.
        let blocks = vec![
            BlockStats { block: 0, file: 0, stats: stats(100, 10, 20, 5) },
            BlockStats { block: 1, file: 0, stats: stats(40, 4, 0, 0) },
            BlockStats { block: 1, file: 1, stats: stats(60, 0, 6, 0) },
            BlockStats { block: 2, file: 1, stats: stats(100, 1, 1, 1) },
        ];
        let figures = CheckFigures::from_blocks(vec!["a.csv".into(), "b.csv".into()], blocks, Some(300));
        assert_eq!(figures.files[0].stats, stats(140, 14, 20, 5));
        assert_eq!(figures.files[1].stats, stats(160, 1, 7, 1));
        assert_eq!(figures.overall, stats(300, 15, 27, 6));

        assert_eq!(figures.matching_per_block(RowFilter::All, None), [(0, 100), (1, 100), (2, 100)]);
        assert_eq!(figures.matching_per_block(RowFilter::Duplicates, None), [(0, 25), (1, 10), (2, 1)]);
        assert_eq!(figures.matching_per_block(RowFilter::Duplicates, Some("b.csv")), [(1, 6), (2, 1)]);
        assert_eq!(figures.matching_per_block(RowFilter::All, Some("c.csv")), []);
        assert!(figures.without_blocks().blocks.is_empty());
    }
}
