//! Import jobs: the audit trail in `codes_import_jobs`.

#[cfg(feature = "ssr")]
pub mod ssr;

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AppError;

/// One row of the job history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct JobSummary {
    pub id: Uuid,
    pub merchant_id: Uuid,
    pub status: String,
    pub total_codes_to_insert: Option<i64>,
    pub codes_inserted: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub completed_at: Option<DateTime<Utc>>,
    pub rolled_back_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    /// File names from `source_info.files[].name`, in upload order.
    pub files: Vec<String>,
}

/// How many jobs one page of the history shows.
pub const JOBS_PAGE_SIZE: i64 = 100;

/// Lists the newest import jobs; fails only when the database does.
#[server(prefix = "/api", endpoint = "list-jobs")]
pub async fn list_jobs() -> Result<Vec<JobSummary>, AppError> {
    let state = crate::state::app_state()?;
    Ok(ssr::list_jobs(&state.pool, JOBS_PAGE_SIZE).await?)
}
