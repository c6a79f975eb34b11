//! The staged batch: what a merchant has staged, with one state in the database that every
//! page reads — what is staged, whether the check is current, whether it was inserted (as
//! which job) or cleared. A merchant has at most one live batch; uploads, the check and the
//! insert name it.

#[cfg(feature = "ssr")]
pub mod ssr;

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "ssr")]
use crate::auth::ssr::{context, respond};
use crate::{auth::Merchant, error::AppError, operations::Operation};

/// Where a batch stands. Stored in `staging_batches.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BatchState {
    /// Uploads arrive (or arrived) and no check has seen exactly what is staged.
    Open,
    /// A check saw exactly the staged rows; its figures describe them.
    Checked,
    /// The insert of its job runs.
    Inserting,
    /// Its job inserted the clean rows; the staged rows wait to be cleared.
    Inserted,
    /// Its staged rows were deleted.
    Cleared,
    /// A crash of the database emptied staging under it.
    Lost,
}

impl BatchState {
    pub const ALL: [BatchState; 6] = [
        BatchState::Open,
        BatchState::Checked,
        BatchState::Inserting,
        BatchState::Inserted,
        BatchState::Cleared,
        BatchState::Lost,
    ];

    /// The name stored in `staging_batches.state`.
    pub fn as_str(self) -> &'static str {
        match self {
            BatchState::Open => "open",
            BatchState::Checked => "checked",
            BatchState::Inserting => "inserting",
            BatchState::Inserted => "inserted",
            BatchState::Cleared => "cleared",
            BatchState::Lost => "lost",
        }
    }

    /// Reads `staging_batches.state`; anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|state| state.as_str() == value)
    }

    /// Whether the batch still holds staged rows (or is about to): a merchant has one such.
    pub fn is_live(self) -> bool {
        !matches!(self, BatchState::Cleared | BatchState::Lost)
    }
}

impl TryFrom<String> for BatchState {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value).ok_or_else(|| format!("{value:?} is not a batch state"))
    }
}

/// A merchant's batch as the pages show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct Batch {
    pub id: Uuid,
    pub merchant_id: Uuid,
    #[cfg_attr(feature = "ssr", sqlx(try_from = "String"))]
    pub state: BatchState,
    pub created_at: DateTime<Utc>,
    /// When rows were last staged into it or removed from it.
    pub staged_at: DateTime<Utc>,
    /// Rows staged now (the uploads' counted rows); the rows it held when cleared or lost.
    pub rows_staged: i64,
    /// Files with staged rows.
    pub files: i64,
    /// The check (or pre-flight) whose figures describe it, if one ran.
    pub figures_operation: Option<Uuid>,
    /// When that check (or pre-flight) finished.
    pub checked_at: Option<DateTime<Utc>>,
    /// The job inserting or that inserted it, with the codes it inserted.
    pub job_id: Option<Uuid>,
    pub codes_inserted: Option<i64>,
    /// Rows deleted by clearing it.
    pub rows_cleared: Option<i64>,
    /// When it was cleared or lost.
    pub finished_at: Option<DateTime<Utc>>,
}

impl Batch {
    /// Whether the batch has figures that no longer describe it: rows were staged or removed
    /// after its check.
    pub fn stale(&self) -> bool {
        self.state == BatchState::Open && self.figures_operation.is_some()
    }
}

/// Where one merchant's batch stands, for the home page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MerchantBatch {
    pub merchant: Merchant,
    /// Its latest batch, if it ever staged one.
    pub batch: Option<Batch>,
    /// The operation running for it, if any.
    pub running: Option<Operation>,
    /// Seconds since the batch's figures were made, as the server counts (the page says
    /// "checked 2 min ago" without a clock of its own).
    pub checked_seconds_ago: Option<i64>,
}

/// Each of the caller's merchants with where its batch stands. Four queries whatever the
/// number of merchants.
#[server(prefix = "/api", endpoint = "batch-overview")]
pub async fn batch_overview() -> Result<Vec<MerchantBatch>, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        let only = caller.visible_merchants();
        // A crash of the database may have emptied staging under a batch (one index probe).
        crate::staging::ssr::recover_lost_staging(&state.pool).await?;
        let merchants = crate::admin::ssr::list_merchants(&state.pool, only.as_deref()).await?;
        let mut batches = ssr::latest_of(&state.pool, only.as_deref()).await?;
        let mut running = crate::operations::ssr::running_of(&state.pool, only.as_deref()).await?;
        Ok(merchants
            .into_iter()
            .map(|merchant| {
                let batch = batches.iter().position(|b| b.merchant_id == merchant.id).map(|i| batches.swap_remove(i));
                let running = running.iter().position(|o| o.merchant_id == merchant.id).map(|i| running.swap_remove(i));
                let checked_seconds_ago =
                    batch.as_ref().and_then(|b| b.checked_at).map(|at| (Utc::now() - at).num_seconds().max(0));
                MerchantBatch { merchant, batch, running, checked_seconds_ago }
            })
            .collect())
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::BatchState;

    #[test]
    fn a_state_reads_back_as_itself_and_nothing_else_reads_as_a_state() {
        for state in BatchState::ALL {
            assert_eq!(BatchState::parse(state.as_str()), Some(state));
        }
        assert_eq!(BatchState::parse("complete"), None);
        assert_eq!(BatchState::ALL.iter().filter(|s| s.is_live()).count(), 4);
    }
}
