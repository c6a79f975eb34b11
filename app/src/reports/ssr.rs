//! Reports streamed end to end: `COPY … TO STDOUT (FORMAT csv)` on a connection of its own,
//! in 64 KiB pieces through a small channel to the response body. Memory stays flat however
//! many rows there are, and a client that goes away stops the `COPY`.

use axum::{
    body::{Body, Bytes},
    extract::{Path, State},
    http::header,
    response::{IntoResponse, Response},
};
use futures_util::{Stream, StreamExt};
use sqlx::{Connection, PgPool};
use uuid::Uuid;

use super::ReportKind;
use crate::{auth::ssr::Caller, error::AppError, state::AppState};

/// Reports streaming at once in this process: each holds a database connection of its own
/// (outside the app's pool) for as long as it streams, so this bounds them. Over it: 503.
pub const MAX_DOWNLOADS: usize = 4;
/// Reports one user may stream at once. Over it: 429.
pub const MAX_DOWNLOADS_PER_USER: usize = 2;
/// A client that has taken no piece for this long has stopped reading: its `COPY` is ended
/// and its connection closed (24 downloads that never read once held 24 connections).
pub const STALLED_CLIENT: std::time::Duration = std::time::Duration::from_secs(15);

static DOWNLOADS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(MAX_DOWNLOADS);
static DOWNLOADS_BY_USER: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<Uuid, usize>>> =
    std::sync::LazyLock::new(Default::default);

/// The right to stream one report: held by the stream until it ends.
pub struct DownloadSlot {
    _permit: tokio::sync::SemaphorePermit<'static>,
    user: Uuid,
}

impl Drop for DownloadSlot {
    fn drop(&mut self) {
        if let Ok(mut by_user) = DOWNLOADS_BY_USER.lock() {
            if let Some(count) = by_user.get_mut(&self.user) {
                *count -= 1;
                if *count == 0 {
                    by_user.remove(&self.user);
                }
            }
        }
    }
}

/// Why a report cannot be sent, with what is known of it; an [`AppError`] at the boundary.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error("There is no such report.")]
    NoSuchReport,
    #[error("There is no such merchant.")]
    NoSuchMerchant,
    #[error("You are downloading {MAX_DOWNLOADS_PER_USER} reports already; wait for one to finish.")]
    TooManyOfYours,
    #[error("The server is sending as many reports as it can; try again in a moment.")]
    TooMany,
    #[error("the download counts' lock is poisoned")]
    Poisoned,
    #[error("the report's COPY ended before it started")]
    Vanished,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<ReportError> for AppError {
    fn from(error: ReportError) -> Self {
        match error {
            ReportError::NoSuchReport | ReportError::NoSuchMerchant => AppError::NotFound(error.to_string()),
            ReportError::TooManyOfYours => AppError::Throttled(error.to_string()),
            ReportError::TooMany => AppError::Overloaded(error.to_string()),
            ReportError::Database(error) => AppError::from(error),
            ReportError::Poisoned | ReportError::Vanished => {
                tracing::error!(%error, "a report failed");
                AppError::Internal
            }
        }
    }
}

/// Reserves a download for `user`: `TooManyOfYours` (429) past [`MAX_DOWNLOADS_PER_USER`] of
/// theirs, `TooMany` (503) past [`MAX_DOWNLOADS`] in all.
pub fn reserve_download(user: Uuid) -> Result<DownloadSlot, ReportError> {
    let mut by_user = DOWNLOADS_BY_USER.lock().map_err(|_| ReportError::Poisoned)?;
    let mine = by_user.entry(user).or_insert(0);
    if *mine >= MAX_DOWNLOADS_PER_USER {
        return Err(ReportError::TooManyOfYours);
    }
    let permit = DOWNLOADS.try_acquire().map_err(|_| ReportError::TooMany)?;
    *mine += 1;
    Ok(DownloadSlot { _permit: permit, user })
}

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

/// The report as a stream of pieces, holding `slot` until it ends. Fails before the first byte
/// if the `COPY` cannot start; ends the `COPY` when the client stops reading for
/// [`STALLED_CLIENT`].
pub async fn export(
    pool: &PgPool,
    merchant: Uuid,
    kind: ReportKind,
    slot: DownloadSlot,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, ReportError> {
    // Not a pooled connection: one dropped mid-`COPY` (the client went away) must be closed,
    // not handed to the next request.
    let mut conn = pool.acquire().await?.detach();
    let (pieces, received) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(PIECES_IN_FLIGHT);
    let (started, start) = tokio::sync::oneshot::channel::<Result<(), sqlx::Error>>();
    let sql = statement(merchant, kind);
    tokio::spawn(async move {
        let _slot = slot;
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
                        match tokio::time::timeout(STALLED_CLIENT, pieces.send(Ok(Bytes::from(full)))).await {
                            Ok(Ok(())) => {}
                            // The client went away; dropping the connection ends the COPY.
                            Ok(Err(_)) => return,
                            Err(_) => {
                                tracing::warn!(%merchant, "a report's client stopped reading; its COPY was ended");
                                return;
                            }
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
    start.await.map_err(|_| ReportError::Vanished)??;
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
        let kind = file.strip_suffix(".csv").and_then(ReportKind::from_slug).ok_or(ReportError::NoSuchReport)?;
        caller.may_act_for(merchant)?;
        let slot = reserve_download(caller.user_id())?;
        let name: String = sqlx::query_scalar("SELECT name FROM merchants WHERE id = $1")
            .bind(merchant)
            .fetch_optional(&state.pool)
            .await?
            .ok_or(ReportError::NoSuchMerchant)?;
        let body = export(&state.pool, merchant, kind, slot).await?;
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
    answer.unwrap_or_else(IntoResponse::into_response)
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
