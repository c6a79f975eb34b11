//! Reports streamed end to end: `COPY … TO STDOUT (FORMAT csv)` on a connection of its own,
//! in 64 KiB pieces through a small channel to the response body. Memory stays flat however
//! many rows there are, and a client that goes away stops the `COPY`.

use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::{header, StatusCode},
    response::{IntoResponse, Response},
    Json,
};
use futures_util::{Stream, StreamExt};
use sqlx::{Connection, PgPool};
use uuid::Uuid;

use super::ReportKind;
use crate::{auth::ssr::Caller, error::AppError, state::AppState};

/// Bytes per piece sent to the client.
const PIECE: usize = 64 * 1024;
/// Pieces buffered between the database and the client.
const PIECES_IN_FLIGHT: usize = 4;
/// So that spreadsheets read the file as UTF-8.
const BOM: &[u8] = b"\xef\xbb\xbf";

/// A text column made formula-safe in SQL, as [`crate::csv::protect`] does.
macro_rules! protected {
    ($column:literal) => {
        concat!(
            "CASE WHEN left(",
            $column,
            ", 1) IN ('=', '+', '-', '@', E'\\t', E'\\r') THEN '''' || ",
            $column,
            " ELSE ",
            $column,
            " END AS ",
            $column
        )
    };
}

/// The `COPY` of a report. `merchant` is a parsed UUID: nothing in it needs quoting.
fn statement(merchant: Uuid, kind: ReportKind) -> String {
    let filter = match kind {
        ReportKind::Duplicates => " AND (internal_dup OR existing_dup)",
        ReportKind::Full => "",
    };
    let select = [
        "merchant_id",
        protected!("code"),
        protected!("serial"),
        protected!("sku"),
        "points",
        protected!("sku_name"),
        protected!("batch_code"),
        "price",
        "internal_dup",
        "existing_dup",
        "CASE WHEN internal_dup AND existing_dup THEN 'BOTH_DUPLICATE' WHEN internal_dup THEN 'INTERNAL_DUPLICATE'
              WHEN existing_dup THEN 'DATABASE_DUPLICATE' ELSE 'CLEAN' END AS status",
        protected!("source_file"),
        "source_line",
        "row_number",
    ]
    .join(", ");
    // Text columns are always quoted: spreadsheets that can keep quoted fields as text (such
    // as LibreOffice's "Format quoted field as text") then keep leading zeros and long digits.
    format!(
        "COPY (SELECT {select} FROM codes_check_temp WHERE merchant_id = '{merchant}'{filter} ORDER BY row_number)
         TO STDOUT WITH (FORMAT csv, HEADER true, FORCE_QUOTE (code, serial, sku, sku_name, batch_code, source_file))"
    )
}

/// The report as a stream of pieces. Fails before the first byte if the `COPY` cannot start.
pub async fn export(
    pool: &PgPool,
    merchant: Uuid,
    kind: ReportKind,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, AppError> {
    // Not a pooled connection: one dropped mid-`COPY` (the client went away) must be closed,
    // not handed to the next request.
    let mut conn = pool.acquire().await?.detach();
    let (pieces, received) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(PIECES_IN_FLIGHT);
    let (started, start) = tokio::sync::oneshot::channel::<Result<(), sqlx::Error>>();
    let sql = statement(merchant, kind);
    tokio::spawn(async move {
        let mut rows = match conn.copy_out_raw(&sql).await {
            Ok(rows) => rows,
            Err(error) => {
                let _ = started.send(Err(error));
                return;
            }
        };
        let _ = started.send(Ok(()));
        let mut piece = Vec::with_capacity(PIECE + 1024);
        piece.extend_from_slice(BOM);
        while let Some(row) = rows.next().await {
            match row {
                Ok(row) => {
                    piece.extend_from_slice(&row);
                    if piece.len() >= PIECE {
                        let full = std::mem::replace(&mut piece, Vec::with_capacity(PIECE + 1024));
                        if pieces.send(Ok(Bytes::from(full))).await.is_err() {
                            return; // The client went away; dropping the connection ends the COPY.
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(%merchant, %error, "a report stopped half-way");
                    let _ = pieces.send(Err(std::io::Error::other("the database stopped sending the report"))).await;
                    return;
                }
            }
        }
        if !piece.is_empty() {
            let _ = pieces.send(Ok(Bytes::from(piece))).await;
        }
        drop(rows);
        let _ = conn.close().await;
    });
    start.await.map_err(|_| AppError::Internal)??;
    Ok(futures_util::stream::unfold(received, |mut received| async move {
        received.recv().await.map(|piece| (piece, received))
    }))
}

/// The download's file name: the merchant's name, the report and the date.
pub fn file_name(merchant_name: &str, kind: ReportKind, date: chrono::NaiveDate) -> String {
    let mut slug = String::new();
    for c in merchant_name.chars() {
        if c.is_ascii_alphanumeric() {
            slug.push(c.to_ascii_lowercase());
        } else if !slug.ends_with('-') {
            slug.push('-');
        }
    }
    let slug = slug.trim_matches('-');
    let slug = if slug.is_empty() { "merchant" } else { slug };
    format!("code-import_{slug}_{}_{}.csv", kind.slug(), date.format("%Y-%m-%d"))
}

/// `GET /api/merchants/{merchant}/reports/{kind}.csv`: a report as a download.
pub async fn download(
    State(state): State<AppState>,
    caller: Caller,
    Path((merchant, file)): Path<(Uuid, String)>,
) -> Response {
    let answer = async {
        let kind =
            file.strip_suffix(".csv").and_then(ReportKind::from_slug).ok_or_else(|| AppError::not_found("report"))?;
        caller.may_act_for(merchant)?;
        let name: String = sqlx::query_scalar("SELECT name FROM merchants WHERE id = $1")
            .bind(merchant)
            .fetch_optional(&state.pool)
            .await?
            .ok_or_else(|| AppError::not_found("merchant"))?;
        let body = export(&state.pool, merchant, kind).await?;
        let disposition =
            format!("attachment; filename=\"{}\"", file_name(&name, kind, chrono::Utc::now().date_naive()));
        Ok::<_, AppError>(
            (
                [
                    (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                    (header::CONTENT_DISPOSITION, disposition),
                ],
                Body::from_stream(body),
            )
                .into_response(),
        )
    }
    .await;
    answer.unwrap_or_else(|error| {
        let status = StatusCode::from_u16(error.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        (status, Json(error)).into_response()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_name_names_the_merchant_the_report_and_the_date() {
        let date = chrono::NaiveDate::from_ymd_opt(2026, 11, 28).unwrap();
        assert_eq!(
            file_name("NBD Bank", ReportKind::Duplicates, date),
            "code-import_nbd-bank_duplicates_2026-11-28.csv"
        );
        assert_eq!(
            file_name("  Ünïcode / \"x\" ", ReportKind::Full, date),
            "code-import_n-code-x_full-report_2026-11-28.csv"
        );
        assert_eq!(file_name("", ReportKind::Full, date), "code-import_merchant_full-report_2026-11-28.csv");
    }
}
