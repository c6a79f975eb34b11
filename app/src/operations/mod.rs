//! Long operations on a merchant's staged rows — the duplicate check, the insert, a rollback,
//! clearing staging — run one at a time per merchant, in the background, with their progress
//! and outcome in `merchant_operations` so any server process can report them.

#[cfg(feature = "ssr")]
pub mod ssr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Where an operation stands. Stored in `merchant_operations.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperationStatus {
    Running,
    Completed,
    /// It failed, or its server stopped while it ran.
    Failed,
}

impl OperationStatus {
    pub const ALL: [OperationStatus; 3] =
        [OperationStatus::Running, OperationStatus::Completed, OperationStatus::Failed];

    /// The name stored in `merchant_operations.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            OperationStatus::Running => "running",
            OperationStatus::Completed => "completed",
            OperationStatus::Failed => "failed",
        }
    }

    /// Reads `merchant_operations.status`; anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == value)
    }
}

impl TryFrom<String> for OperationStatus {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value).ok_or_else(|| format!("{value:?} is not an operation status"))
    }
}

/// Compares with the stored name (`status == "failed"`).
impl PartialEq<&str> for OperationStatus {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// One operation as the page shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct Operation {
    pub id: Uuid,
    pub merchant_id: Uuid,
    /// `check`, `insert`, `rollback` or `clear`.
    pub kind: String,
    #[cfg_attr(feature = "ssr", sqlx(try_from = "String"))]
    pub status: OperationStatus,
    pub phase: String,
    pub started_by_email: Option<String>,
    pub started_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error_message: Option<String>,
}

impl Operation {
    pub fn is_running(&self) -> bool {
        self.status == OperationStatus::Running
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
