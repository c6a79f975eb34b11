//! The insert's pre-flight: the check must describe every staged row; clean rows whose code
//! reached production since are flagged database duplicates now; the fields must fit
//! production's columns. It runs as an operation of its own before the user confirms, and
//! again inside the insert.

use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use super::Preflight;
use crate::{
    batch::{ssr as batch, BatchState},
    duplicates::{
        ssr::{current_figures, figures, last_row, CheckError},
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
        let figures = match figures_unchanged(pool, merchant, &preflight).await? {
            Some(figures) => figures,
            None => figures(&mut running.conn, merchant).await?,
        };
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

/// The figures the batch's check recorded, when the pre-flight changed no flag: they are then
/// the figures of the rows as they are (the merchant's lock keeps every other writer off them),
/// and counting them again would be another pass over staging (5.5 s at full scale).
async fn figures_unchanged(
    pool: &PgPool,
    merchant: Uuid,
    preflight: &Preflight,
) -> Result<Option<CheckFigures>, sqlx::Error> {
    if preflight.new_database_duplicates > 0 {
        return Ok(None);
    }
    current_figures(pool, merchant).await
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

    // What production's number columns cannot hold, as conditions on a staged row (read from
    // the catalogue first: the pass below counts them with the rest).
    let unfit = numbers_production_cannot_hold(&mut *conn).await?;
    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
    // One read-only pass, in parallel (see `mark_duplicates`), counts the clean rows, those
    // without a code and those with a number production cannot hold, and finds whether any row
    // not yet flagged has its code in production now; only then are those rows flagged (an
    // UPDATE cannot run in parallel, and usually has nothing to do) and counted again.
    crate::duplicates::ssr::for_big_reads(&mut tx).await?;
    // The conditions are built from two column names and numbers from the catalogue.
    let unfit_counts: String = unfit
        .iter()
        .map(|u| {
            format!(
                ", count(*) FILTER (WHERE c.code IS NULL AND NOT s.internal_dup AND s.{} IS NOT NULL AND {})",
                u.column, u.condition
            )
        })
        .collect();
    let count_sql = format!(
        "SELECT count(*) FILTER (WHERE c.code IS NULL AND NOT s.internal_dup) AS clean,
                count(c.code) AS landed,
                count(*) FILTER (WHERE c.code IS NULL AND NOT s.internal_dup AND btrim(s.code) = '') AS blank
                {unfit_counts}
         FROM codes_check_temp s
         LEFT JOIN (SELECT code FROM codes WHERE merchant_id = $1) c ON c.code = s.code
         WHERE s.merchant_id = $1 AND NOT s.existing_dup"
    );
    /// The clean rows, the unflagged ones whose code is in production now, the clean ones
    /// without a code, and the clean ones with each unfit number.
    struct Counted {
        clean: i64,
        landed: i64,
        blank: i64,
        unfit: Vec<i64>,
    }
    let count = async |tx: &mut PgConnection| -> Result<Counted, sqlx::Error> {
        let row = sqlx::query(sqlx::AssertSqlSafe(count_sql.as_str())).bind(merchant).fetch_one(tx).await?;
        Ok(Counted {
            clean: row.try_get(0)?,
            landed: row.try_get(1)?,
            blank: row.try_get(2)?,
            unfit: (3..3 + unfit.len()).map(|i| row.try_get(i)).collect::<Result<_, _>>()?,
        })
    };
    let mut counted = count(&mut tx).await?;
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
        counted = count(&mut tx).await?;
    }
    tx.commit().await?;
    let Counted { clean: clean_count, blank: blank_codes, unfit: unfit_rows, .. } = counted;
    if blank_codes > 0 {
        errors.push(format!("{blank_codes} clean rows have no code."));
    }
    if clean_count == 0 && staged_last.is_some() {
        errors.push("No clean codes are left to insert.".to_owned());
    }
    for (Unfit { column, shown, .. }, rows) in unfit.iter().zip(unfit_rows).filter(|(_, rows)| *rows > 0) {
        errors.push(format!(
            "{rows} clean rows have a {column} that production's {column} column ({shown}) cannot hold exactly; \
             fix them in the files (the full report lists every row) and stage again."
        ));
    }
    Ok(Preflight { clean_count, new_database_duplicates, errors })
}

/// A number column of production that cannot hold every value staging's `numeric` can.
struct Unfit {
    /// `points` or `price`.
    column: &'static str,
    /// Production's type, as the user reads it.
    shown: String,
    /// True for a staged value the column cannot hold exactly (SQL, of the column alone).
    condition: String,
}

/// What production's `points` and `price` columns cannot hold of the clean rows: an adopted
/// `codes` may type them narrower than staging's `numeric` (the original has `points integer`,
/// some have `price numeric(10,2)`), and the insert's cast would round 10.5 to 11 or fail on
/// overflow. None where production's columns are `numeric` too. One read of the catalogue.
async fn numbers_production_cannot_hold(conn: &mut PgConnection) -> Result<Vec<Unfit>, sqlx::Error> {
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
    let mut unfit = Vec::new();
    for ColumnType { column, type_name, precision, scale } in types {
        // One of the two literals above, so that only they reach the SQL.
        let column = if column == "points" { "points" } else { "price" };
        let column_sql = format!("s.{column}");
        let condition = match (type_name.as_str(), precision, scale) {
            ("int2", ..) => format!("({column_sql} <> trunc({column_sql}) OR {column_sql} NOT BETWEEN -32768 AND 32767)"),
            ("int4", ..) => format!(
                "({column_sql} <> trunc({column_sql}) OR {column_sql} NOT BETWEEN -2147483648 AND 2147483647)"
            ),
            ("int8", ..) => format!(
                "({column_sql} <> trunc({column_sql}) OR {column_sql} NOT BETWEEN -9223372036854775808 AND 9223372036854775807)"
            ),
            ("numeric", Some(precision), Some(scale)) => format!(
                "(round({column_sql}, {scale}) <> {column_sql} OR abs({column_sql}) >= 10::numeric ^ {})",
                precision - scale
            ),
            _ => continue,
        };
        let shown = match (precision, scale) {
            (Some(p), Some(s)) => format!("numeric({p},{s})"),
            _ => type_name.replace("int2", "smallint").replace("int4", "integer").replace("int8", "bigint"),
        };
        unfit.push(Unfit { column, shown, condition });
    }
    Ok(unfit)
}
