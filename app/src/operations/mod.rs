//! Long operations on a merchant's staged rows — the duplicate check, the insert, a rollback,
//! clearing staging — run one at a time per merchant, in the background, with their progress
//! and outcome in `merchant_operations` so any server process can report them.

#[cfg(feature = "ssr")]
pub mod ssr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One operation as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct Operation {
    pub id: Uuid,
    pub merchant_id: Uuid,
    /// `check`, `insert`, `rollback` or `clear`.
    pub kind: String,
    /// `running`, `completed` or `failed`.
    pub status: String,
    pub phase: String,
    pub started_by_email: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
}

impl Operation {
    pub fn is_running(&self) -> bool {
        self.status == "running"
    }

    /// The operation in words: "duplicate check", "insert", …
    pub fn kind_name(&self) -> &'static str {
        kind_name(&self.kind)
    }
}

pub fn kind_name(kind: &str) -> &'static str {
    match kind {
        "check" => "duplicate check",
        "preflight" => "pre-flight check",
        "insert" => "insert",
        "rollback" => "rollback",
        "clear" => "clearing of staging",
        _ => "operation",
    }
}

/// "A duplicate check", "An insert".
pub fn with_article(name: &str) -> String {
    let article = if name.starts_with(['a', 'e', 'i', 'o', 'u']) { "An" } else { "A" };
    format!("{article} {name}")
}
