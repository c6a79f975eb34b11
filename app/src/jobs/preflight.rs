//! The insert's pre-flight: the check must describe every staged row; clean rows whose code
//! reached production since are flagged database duplicates now; the fields must fit
//! production's columns. It runs as an operation of its own before the user confirms, and
//! again inside the insert.

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::Preflight;
use crate::{
    batch::{ssr as batch, BatchState},
    duplicates::{
        ssr::{figures, last_row, CheckError},
        CheckFigures,
    },
    operations::ssr as operations,
};

/// What a pre-flight operation records: its answer and the figures after it.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct PreflightRecord {
    pub preflight: Preflight,
    pub figures: CheckFigures,
}

/// The pre-flight as an operation of its own (it holds the merchant's lock while it runs).
pub async fn run_preflight(pool: &PgPool, merchant: Uuid, user: Option<Uuid>) -> Result<Preflight, CheckError> {
    crate::staging::ssr::ensure_no_upload(pool, merchant, "inserting").await?;
    batch::refuse_if_inserted(pool, merchant).await?;
    let mut running = operations::begin(pool, merchant, "preflight", user).await?;
    running.phase(pool, "Re-checking database duplicates and fields").await;
    let outcome = async {
        let preflight = validate_clean_codes_for_insert(&mut running.conn, merchant).await?;
        let figures = figures(&mut running.conn, merchant).await?;
        batch::checked_by(&mut running.conn, merchant, running.id, &[BatchState::Checked]).await?;
        Ok::<_, CheckError>(preflight_record(preflight, figures))
    }
    .await;
    match outcome {
        Ok((preflight, record)) => {
            running.finish(Ok(record)).await;
            Ok(preflight)
        }
        Err(error) => {
            running.finish(Err(error.shown())).await;
            Err(error)
        }
    }
}

fn preflight_record(preflight: Preflight, figures: CheckFigures) -> (Preflight, serde_json::Value) {
    let record = PreflightRecord { preflight, figures };
    let value = serde_json::to_value(&record).unwrap_or_default();
    (record.preflight, value)
}

/// The insert's pre-flight, on a connection that holds the merchant's lock: the check must
/// describe every staged row; clean rows whose code reached production since are flagged
/// database duplicates now; clean rows must have a code. Returns the clean count and why an
/// insert cannot go ahead, if it cannot.
pub async fn validate_clean_codes_for_insert(conn: &mut PgConnection, merchant: Uuid) -> Result<Preflight, CheckError> {
    let mut errors = Vec::new();
    let staged_last = last_row(&mut *conn, merchant).await?;
    // The batch says whether a check saw exactly what is staged (an insert's own pre-flight
    // runs with its batch `inserting`).
    let batch = batch::latest(&mut *conn, merchant).await?.filter(|b| b.state.is_live());
    match (&batch, staged_last) {
        (None, _) | (_, None) => errors.push("Nothing is staged for this merchant.".to_owned()),
        (Some(b), _) if b.state == BatchState::Inserted => errors.push(format!(
            "This batch was inserted as job {}. Clear staging to start the next batch.",
            b.job_id.map(|j| j.to_string()).unwrap_or_default()
        )),
        (Some(b), _) if b.stale() => {
            errors.push("Rows were staged or removed after the last duplicate check: run the check again.".to_owned())
        }
        (Some(b), _) if b.state == BatchState::Open => errors.push("Run the duplicate check first.".to_owned()),
        _ => {}
    }

    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // One read-only pass, in parallel (see `mark_duplicates`), counts the clean rows and finds
    // whether any row not yet flagged has its code in production now; only then are those
    // rows flagged (an UPDATE cannot run in parallel, and usually has nothing to do).
    for setting in
        ["SET LOCAL work_mem = '256MB'", "SET LOCAL parallel_setup_cost = 0", "SET LOCAL parallel_tuple_cost = 0"]
    {
        sqlx::query(setting).execute(&mut *tx).await?;
    }
    /// The clean rows, the unflagged ones whose code is in production now, and the clean ones
    /// without a code.
    #[derive(sqlx::FromRow)]
    struct Counted {
        clean: i64,
        landed: i64,
        blank: i64,
    }
    let count = || {
        sqlx::query_as::<_, Counted>(
            "SELECT count(*) FILTER (WHERE c.code IS NULL AND NOT s.internal_dup) AS clean,
                    count(c.code) AS landed,
                    count(*) FILTER (WHERE c.code IS NULL AND NOT s.internal_dup AND btrim(s.code) = '') AS blank
             FROM codes_check_temp s
             LEFT JOIN (SELECT code FROM codes WHERE merchant_id = $1) c ON c.code = s.code
             WHERE s.merchant_id = $1 AND NOT s.existing_dup",
        )
        .bind(merchant)
    };
    let mut counted = count().fetch_one(&mut *tx).await?;
    let mut new_database_duplicates = 0;
    if counted.landed > 0 {
        new_database_duplicates = sqlx::query(
            "UPDATE codes_check_temp t SET existing_dup = true
             FROM codes c
             WHERE t.merchant_id = $1 AND NOT t.existing_dup AND c.merchant_id = $1 AND c.code = t.code",
        )
        .bind(merchant)
        .execute(&mut *tx)
        .await?
        .rows_affected() as i64;
        counted = count().fetch_one(&mut *tx).await?;
    }
    tx.commit().await?;
    let Counted { clean: clean_count, blank: blank_codes, .. } = counted;
    if blank_codes > 0 {
        errors.push(format!("{blank_codes} clean rows have no code."));
    }
    if clean_count == 0 && staged_last.is_some() {
        errors.push("No clean codes are left to insert.".to_owned());
    }
    errors.extend(numbers_production_cannot_hold(&mut *conn, merchant).await?);
    Ok(Preflight { clean_count, new_database_duplicates, errors })
}

/// What production's `points` and `price` columns cannot hold of the clean rows: an adopted
/// `codes` may type them narrower than staging's `numeric` (the original has `points integer`,
/// some have `price numeric(10,2)`), and the insert's cast would round 10.5 to 11 or fail on
/// overflow. Costs nothing where production's columns are `numeric` too.
async fn numbers_production_cannot_hold(conn: &mut PgConnection, merchant: Uuid) -> Result<Vec<String>, sqlx::Error> {
    /// A production column's type, and a `numeric`'s precision and scale if it has them.
    #[derive(sqlx::FromRow)]
    struct ColumnType {
        column: String,
        type_name: String,
        precision: Option<i32>,
        scale: Option<i32>,
    }
    let types: Vec<ColumnType> = sqlx::query_as(
        "SELECT a.attname::text AS column, t.typname::text AS type_name,
                CASE WHEN t.typname = 'numeric' AND a.atttypmod > 0 THEN ((a.atttypmod - 4) >> 16) & 65535 END AS precision,
                CASE WHEN t.typname = 'numeric' AND a.atttypmod > 0 THEN (a.atttypmod - 4) & 65535 END AS scale
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
         WHERE a.attrelid = 'codes'::regclass AND a.attname IN ('points', 'price') AND NOT a.attisdropped
         ORDER BY a.attname",
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut problems = Vec::new();
    for ColumnType { column, type_name, precision, scale } in types {
        // A condition true for a value the column cannot hold exactly; the column name is one of
        // two literals above, the bounds are numbers from the catalogue.
        let cannot_hold = match (type_name.as_str(), precision, scale) {
            ("int2", ..) => format!("({column} <> trunc({column}) OR {column} NOT BETWEEN -32768 AND 32767)"),
            ("int4", ..) => {
                format!("({column} <> trunc({column}) OR {column} NOT BETWEEN -2147483648 AND 2147483647)")
            }
            ("int8", ..) => format!(
                "({column} <> trunc({column}) OR {column} NOT BETWEEN -9223372036854775808 AND 9223372036854775807)"
            ),
            ("numeric", Some(precision), Some(scale)) => {
                format!(
                    "(round({column}, {scale}) <> {column} OR abs({column}) >= 10::numeric ^ {})",
                    precision - scale
                )
            }
            _ => continue,
        };
        let sql = format!(
            "SELECT count(*) FROM codes_check_temp
             WHERE merchant_id = $1 AND NOT internal_dup AND NOT existing_dup AND {column} IS NOT NULL AND {cannot_hold}"
        );
        let rows: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).bind(merchant).fetch_one(&mut *conn).await?;
        if rows > 0 {
            let shown = match (precision, scale) {
                (Some(p), Some(s)) => format!("numeric({p},{s})"),
                _ => type_name.replace("int2", "smallint").replace("int4", "integer").replace("int8", "bigint"),
            };
            problems.push(format!(
                "{rows} clean rows have a {column} that production's {column} column ({shown}) cannot hold exactly; \
                 fix them in the files (the full report lists every row) and stage again."
            ));
        }
    }
    Ok(problems)
}
