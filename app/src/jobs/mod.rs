//! Import jobs: the audit trail in `codes_import_jobs`.

#[cfg(feature = "ssr")]
pub mod preflight;
#[cfg(feature = "ssr")]
pub mod ssr;

use chrono::{DateTime, NaiveDate, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "ssr")]
use crate::auth::ssr::{context, respond};
use crate::{components::format::format_count, error::AppError};

/// One row of the job history, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct JobSummary {
    pub id: Uuid,
    pub merchant_id: Uuid,
    pub merchant_name: Option<String>,
    #[cfg_attr(feature = "ssr", sqlx(try_from = "String"))]
    pub status: JobStatus,
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
    /// The rows its files staged (`source_info.files[].rows_staged`), when recorded.
    pub rows_staged: Option<i64>,
}

impl JobSummary {
    /// The job's short name: the first 8 hex digits of its id (the full id is in its link).
    pub fn short_id(&self) -> String {
        self.id.simple().to_string()[..8].to_owned()
    }

    /// The staged rows the insert left out as duplicates: staged less the clean ones.
    pub fn duplicates(&self) -> Option<i64> {
        Some(self.rows_staged? - self.total_codes_to_insert?).filter(|n| *n >= 0)
    }
}

/// Above this share of duplicates among the staged rows (in %), an insert needs the user's
/// explicit confirmation: the original system's wish list had "block CSV upload if > 50 %
/// duplicates".
pub const DUPLICATE_THRESHOLD_PERCENT: i64 = 50;

/// Whether the duplicates among `total` staged rows of which `clean` are clean exceed
/// [`DUPLICATE_THRESHOLD_PERCENT`].
pub fn above_duplicate_threshold(total: i64, clean: i64) -> bool {
    total > 0 && (total - clean) * 100 > total * DUPLICATE_THRESHOLD_PERCENT
}

/// One file of a job, as its `source_info` recorded it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobFile {
    pub name: String,
    pub size: Option<i64>,
    pub checksum: Option<String>,
    pub rows_staged: Option<i64>,
    /// Rows validation skipped (blank code, blank line) and rejected.
    pub rows_skipped: Option<i64>,
    pub rows_rejected: Option<i64>,
    /// Staged again in the same batch, by the user's choice.
    pub restaged: bool,
}

/// What a job's pre-flight recorded (`validation_passed`, `validation_errors`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightOutcome {
    pub passed: Option<bool>,
    pub clean_count: Option<i64>,
    pub new_database_duplicates: Option<i64>,
    /// Why it refused the insert, in words.
    pub problems: Vec<String>,
}

impl PreflightOutcome {
    /// The record in sentences.
    pub fn sentences(&self) -> Vec<String> {
        let codes = |n: i64| if n == 1 { "1 code".to_owned() } else { format!("{} codes", format_count(n)) };
        let mut said = Vec::new();
        match (self.passed, self.clean_count) {
            (None, _) => said.push("No pre-flight was recorded for this job.".to_owned()),
            (Some(true), Some(clean)) => said
                .push(format!("The pre-flight passed: {} to insert.", codes(clean).replacen("code", "clean code", 1))),
            (Some(true), None) => said.push("The pre-flight passed.".to_owned()),
            (Some(false), _) => said.push("The pre-flight refused the insert, so nothing was inserted.".to_owned()),
        }
        match self.new_database_duplicates {
            Some(0) => said.push("No code had reached production since the duplicate check.".to_owned()),
            Some(n) => said.push(format!(
                "{} had reached production since the duplicate check; those rows were flagged as database duplicates and left out.",
                codes(n)
            )),
            None => {}
        }
        said.extend(self.problems.iter().cloned());
        said
    }
}

/// How many jobs one page of the history shows.
pub const JOBS_PAGE_SIZE: i64 = 100;

/// The history's filters and its cursor: jobs older than `before` (created_at, id).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
    pub before: Option<(DateTime<Utc>, Uuid)>,
}

/// Where a job is in its life: pending → validating (the pre-flight) → processing (the insert)
/// → completed | failed; a completed job may become rolled back. Stored as text in
/// `codes_import_jobs.status`, whose CHECK constraint allows exactly these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Pending,
    Validating,
    Processing,
    Completed,
    Failed,
    RolledBack,
}

impl JobStatus {
    /// Every status, in the order of a job's life.
    pub const ALL: [JobStatus; 6] = [
        JobStatus::Pending,
        JobStatus::Validating,
        JobStatus::Processing,
        JobStatus::Completed,
        JobStatus::Failed,
        JobStatus::RolledBack,
    ];

    /// The name stored in `codes_import_jobs.status`.
    pub const fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Validating => "validating",
            JobStatus::Processing => "processing",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::RolledBack => "rolled_back",
        }
    }

    /// Reads `codes_import_jobs.status`; anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == value)
    }

    /// Whether the insert is still at work (its page follows it; nothing can be verified yet).
    pub fn is_running(self) -> bool {
        matches!(self, JobStatus::Pending | JobStatus::Validating | JobStatus::Processing)
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status name that is not a [`JobStatus`] (a row the CHECK constraint would have refused).
#[derive(Debug, thiserror::Error)]
#[error("{0:?} is not a job status")]
pub struct UnknownJobStatus(String);

impl TryFrom<String> for JobStatus {
    type Error = UnknownJobStatus;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value).ok_or(UnknownJobStatus(value))
    }
}

/// Every status name a job can have, in the order of its life (the history's filter).
pub const JOB_STATUSES: [&str; 6] = {
    let mut names = [""; 6];
    let mut i = 0;
    while i < names.len() {
        names[i] = JobStatus::ALL[i].as_str();
        i += 1;
    }
    names
};

/// A job's full audit record, with what its page says beside it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobDetail {
    pub summary: JobSummary,
    /// The pre-flight's record, and the job's files, as `codes_import_jobs` keeps them.
    pub preflight: PreflightOutcome,
    pub files: Vec<JobFile>,
    /// While the job runs: what its insert is doing, and since when.
    pub progress: Option<JobProgress>,
    /// For a completed job: how many of its codes customers have claimed (any refuses the
    /// rollback).
    pub claimed_codes: Option<i64>,
    /// For a rolled-back job: how many codes its rollback deleted, as the rollback recorded it
    /// (`None` for a rollback done outside Code Import).
    pub codes_deleted: Option<i64>,
}

/// A running insert as its merchant operation records it, with the database's clock, so the
/// page counts the time elapsed from the server's timestamps and not from the browser's clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct JobProgress {
    pub phase: String,
    /// The codes written so far, once the insert proper has begun.
    pub rows_done: Option<i64>,
    pub started_at: DateTime<Utc>,
    /// The database's time when the record was read.
    pub now: DateTime<Utc>,
}

impl JobProgress {
    /// Whole seconds since the insert started, at the time of the read.
    pub fn elapsed_seconds(&self) -> i64 {
        (self.now - self.started_at).num_seconds().max(0)
    }
}

/// What a running job is doing, in words: the step of the insert its status names.
pub fn progress_words(status: JobStatus, expected: Option<i64>) -> String {
    let codes = match expected {
        Some(n) => format!("{} codes", format_count(n)),
        None => "the clean codes".to_owned(),
    };
    match status {
        JobStatus::Pending => "Waiting to start.".to_owned(),
        JobStatus::Validating => {
            format!("Step 1 of 2: the pre-flight re-checks {codes} against production. Nothing is inserted yet.")
        }
        JobStatus::Processing => {
            format!("Step 2 of 2: inserting {codes} in one transaction. They appear all at once when it commits.")
        }
        _ => String::new(),
    }
}

/// A duration in words, to the second: `"45 s"`, `"2 min 05 s"`, `"1 h 02 min"`.
pub fn elapsed_words(seconds: i64) -> String {
    let seconds = seconds.max(0);
    match (seconds / 3600, seconds % 3600 / 60, seconds % 60) {
        (0, 0, s) => format!("{s} s"),
        (0, m, s) => format!("{m} min {s:02} s"),
        (h, m, _) => format!("{h} h {m:02} min"),
    }
}

/// A job's codes counted again in production, against what the job recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobVerification {
    /// The job's status when counted: a rolled-back job should have none left.
    pub status: JobStatus,
    pub codes_inserted: Option<i64>,
    pub codes_found: i64,
}

impl JobVerification {
    /// How many of the job's codes production should hold.
    pub fn expected(&self) -> i64 {
        match self.status {
            JobStatus::RolledBack => 0,
            _ => self.codes_inserted.unwrap_or(0),
        }
    }

    /// Whether production holds what it should of the job.
    pub fn matches(&self) -> bool {
        self.expected() == self.codes_found
    }

    /// The recount in words.
    pub fn words(&self) -> String {
        let count = |n: i64| if n == 1 { "1 code".to_owned() } else { format!("{} codes", format_count(n)) };
        match (self.status, self.matches()) {
            (JobStatus::RolledBack, true) => "Rolled back: 0 codes remain, as expected.".to_owned(),
            (JobStatus::RolledBack, false) => {
                format!("Rolled back, yet {} of this job remain in production (none should).", count(self.codes_found))
            }
            (_, matches) => format!(
                "Recorded {} · found in production {} · {}",
                self.codes_inserted.map_or("–".to_owned(), format_count),
                format_count(self.codes_found),
                if matches { "they match." } else { "they differ." }
            ),
        }
    }
}

/// Lists import jobs, newest first: of `merchant`, or of every merchant the caller may see;
/// filtered by status and by creation date (`YYYY-MM-DD`, both days included); older than
/// the cursor `before_at`/`before_id` (the last job of the previous page).
#[server(prefix = "/api", endpoint = "list-jobs")]
pub async fn list_jobs(
    merchant: Option<Uuid>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before_at: Option<DateTime<Utc>>,
    before_id: Option<Uuid>,
) -> Result<Vec<JobSummary>, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        let merchants = match merchant {
            Some(merchant) => {
                caller.may_act_for(merchant)?;
                Some(vec![merchant])
            }
            None => caller.visible_merchants(),
        };
        let date = |text: Option<String>| -> Result<Option<NaiveDate>, AppError> {
            match text.as_deref().map(str::trim).filter(|t| !t.is_empty()) {
                None => Ok(None),
                Some(t) => NaiveDate::parse_from_str(t, "%Y-%m-%d")
                    .map(Some)
                    .map_err(|_| AppError::invalid(format!("{t:?} is not a date (YYYY-MM-DD)."))),
            }
        };
        let status = match status.as_deref().filter(|s| !s.is_empty()) {
            None => None,
            Some(name) => Some(
                JobStatus::parse(name).ok_or_else(|| AppError::invalid(format!("{name:?} is not a job status.")))?,
            ),
        };
        let filter = JobFilter { status, from: date(from)?, to: date(to)?, before: before_at.zip(before_id) };
        Ok(ssr::list_jobs(&state.pool, merchants.as_deref(), &filter, JOBS_PAGE_SIZE).await?)
    })
    .await
}

/// A job's full record; `Forbidden` for another merchant's job.
#[server(prefix = "/api", endpoint = "get-job")]
pub async fn get_job(job: Uuid) -> Result<JobDetail, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_see(ssr::merchant_of(&state.pool, job).await?, "job")?;
        ssr::job_detail(&state.pool, job).await?.ok_or_else(|| AppError::not_found("job"))
    })
    .await
}

/// Starts inserting the merchant's clean staged codes (`confirmation` must be `YES`, and
/// `duplicates_confirmed` true when duplicates are above [`DUPLICATE_THRESHOLD_PERCENT`]);
/// returns the job's id. The job's page follows its progress.
#[server(prefix = "/api", endpoint = "start-insert")]
pub async fn start_insert(
    merchant: Uuid,
    confirmation: String,
    duplicates_confirmed: Option<bool>,
) -> Result<Uuid, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        let confirmed = duplicates_confirmed.unwrap_or(false);
        Ok(ssr::start_insert_confirmed(&state.pool, merchant, caller.user_id(), &confirmation, confirmed).await?)
    })
    .await
}

/// Recounts a job's codes in production.
#[server(prefix = "/api", endpoint = "verify-job")]
pub async fn verify_job(job: Uuid) -> Result<JobVerification, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_see(ssr::merchant_of(&state.pool, job).await?, "job")?;
        Ok(ssr::verify_job(&state.pool, job).await?)
    })
    .await
}

/// Rolls a completed job back (`confirmation` must be `DELETE`); returns how many codes it
/// deleted.
#[server(prefix = "/api", endpoint = "rollback-job")]
pub async fn rollback_job(job: Uuid, confirmation: String) -> Result<i64, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_see(ssr::merchant_of(&state.pool, job).await?, "job")?;
        Ok(ssr::rollback_job(&state.pool, job, caller.user_id(), &confirmation).await?)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_status_reads_back_as_itself_in_storage_and_on_the_wire() {
        for status in JobStatus::ALL {
            assert_eq!(JobStatus::parse(status.as_str()), Some(status));
            assert_eq!(JobStatus::try_from(status.as_str().to_owned()).unwrap(), status);
            let wire = serde_json::to_string(&status).unwrap();
            assert_eq!(wire, format!("\"{}\"", status.as_str()));
            assert_eq!(serde_json::from_str::<JobStatus>(&wire).unwrap(), status);
        }
        assert_eq!(JOB_STATUSES, JobStatus::ALL.map(JobStatus::as_str));
        assert_eq!(JobStatus::parse("complete"), None, "the staging's word is not a job's");
    }

    #[test]
    fn only_pending_validating_and_processing_jobs_are_running() {
        let running: Vec<_> = JobStatus::ALL.into_iter().filter(|s| s.is_running()).collect();
        assert_eq!(running, [JobStatus::Pending, JobStatus::Validating, JobStatus::Processing]);
    }

    fn verification(status: JobStatus, found: i64) -> JobVerification {
        JobVerification { status, codes_inserted: Some(5), codes_found: found }
    }

    #[test]
    fn a_rolled_back_job_with_no_codes_left_verifies_as_expected() {
        let v = verification(JobStatus::RolledBack, 0);
        assert!(v.matches());
        assert_eq!(v.words(), "Rolled back: 0 codes remain, as expected.");
    }

    #[test]
    fn a_rolled_back_job_with_codes_left_is_a_difference_with_the_number() {
        let v = verification(JobStatus::RolledBack, 3);
        assert!(!v.matches());
        assert_eq!(v.words(), "Rolled back, yet 3 codes of this job remain in production (none should).");
    }

    #[test]
    fn a_completed_job_is_recounted_against_what_it_recorded() {
        assert_eq!(verification(JobStatus::Completed, 5).words(), "Recorded 5 · found in production 5 · they match.");
        assert_eq!(verification(JobStatus::Completed, 4).words(), "Recorded 5 · found in production 4 · they differ.");
    }

    #[test]
    fn elapsed_time_reads_in_seconds_then_minutes_then_hours() {
        assert_eq!(elapsed_words(0), "0 s");
        assert_eq!(elapsed_words(59), "59 s");
        assert_eq!(elapsed_words(125), "2 min 05 s");
        assert_eq!(elapsed_words(3_720), "1 h 02 min");
    }

    #[test]
    fn the_duplicate_threshold_is_crossed_only_above_half_of_the_rows() {
        assert!(!above_duplicate_threshold(4, 2), "exactly 50 % is not above it");
        assert!(above_duplicate_threshold(4, 1));
        assert!(!above_duplicate_threshold(1_000_001, 500_001));
        assert!(above_duplicate_threshold(1_000_001, 500_000));
        assert!(!above_duplicate_threshold(0, 0), "nothing staged");
    }

    #[test]
    fn a_pre_flight_record_reads_as_sentences() {
        let passed = PreflightOutcome {
            passed: Some(true),
            clean_count: Some(1_200),
            new_database_duplicates: Some(3),
            problems: vec![],
        };
        assert_eq!(
            passed.sentences(),
            [
                "The pre-flight passed: 1,200 clean codes to insert.",
                "3 codes had reached production since the duplicate check; those rows were flagged as database duplicates and left out."
            ]
        );
        let refused = PreflightOutcome {
            passed: Some(false),
            problems: vec!["Run the duplicate check first.".into()],
            ..PreflightOutcome::default()
        };
        assert_eq!(
            refused.sentences(),
            ["The pre-flight refused the insert, so nothing was inserted.", "Run the duplicate check first."]
        );
        assert_eq!(PreflightOutcome::default().sentences(), ["No pre-flight was recorded for this job."]);
    }

    #[test]
    fn a_running_job_says_which_step_of_the_insert_it_is_at() {
        assert!(progress_words(JobStatus::Validating, Some(1_200))
            .starts_with("Step 1 of 2: the pre-flight re-checks 1,200 codes"));
        assert!(progress_words(JobStatus::Processing, None).starts_with("Step 2 of 2: inserting the clean codes"));
    }
}

/// The pre-flight's answer: what an insert would add now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preflight {
    pub clean_count: i64,
    /// Clean rows whose code reached production since the check; now flagged.
    pub new_database_duplicates: i64,
    /// Why an insert cannot go ahead; empty when it can.
    pub errors: Vec<String>,
}

impl Preflight {
    pub fn ready(&self) -> bool {
        self.errors.is_empty() && self.clean_count > 0
    }
}

/// The pre-flight of an insert: re-checks database duplicates and the fields of the clean
/// rows, and says how many codes an insert would add.
#[server(prefix = "/api", endpoint = "preflight-insert")]
pub async fn preflight_insert(merchant: Uuid) -> Result<Preflight, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        Ok(preflight::run_preflight(&state.pool, merchant, Some(caller.user_id())).await?)
    })
    .await
}
