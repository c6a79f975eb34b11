//! Import jobs: the audit trail in `codes_import_jobs`.

#[cfg(feature = "ssr")]
pub mod ssr;

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "ssr")]
use crate::auth::ssr::{context, respond};
use crate::error::AppError;

/// One row of the job history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct JobSummary {
    pub id: Uuid,
    pub merchant_id: Uuid,
    pub merchant_name: Option<String>,
    pub status: String,
    pub total_codes_to_insert: Option<i64>,
    pub codes_inserted: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub created_by: Option<Uuid>,
    pub created_by_email: Option<String>,
    pub completed_at: Option<DateTime<Utc>>,
    pub rolled_back_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
    /// File names from `source_info.files[].name`, in upload order.
    pub files: Vec<String>,
}

/// How many jobs one page of the history shows.
pub const JOBS_PAGE_SIZE: i64 = 100;

/// Lists the newest import jobs of `merchant`, or of every merchant the caller may see.
/// `Forbidden` for a merchant the caller may not act for.
#[server(prefix = "/api", endpoint = "list-jobs")]
pub async fn list_jobs(merchant: Option<Uuid>) -> Result<Vec<JobSummary>, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        let merchants = match merchant {
            Some(merchant) => {
                caller.may_act_for(merchant)?;
                Some(vec![merchant])
            }
            None => caller.visible_merchants(),
        };
        Ok(ssr::list_jobs(&state.pool, merchants.as_deref(), JOBS_PAGE_SIZE).await?)
    })
    .await
}
