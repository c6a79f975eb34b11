//! The server side of staging: upload records, chunk receipt and `COPY` into
//! `codes_check_temp`.

use axum::{
    body::Bytes,
    extract::{Path, State},
    http::StatusCode,
    response::{IntoResponse, Response},
    Json,
};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use super::{
    binary_copy, ChunkAck, FileManifest, FileProgress, StagedFile, UploadState, UploadStatus, MAX_CHUNK_INFLATED_BYTES,
    MAX_FILES, MAX_UPLOAD_BYTES, MAX_UPLOAD_ROWS, STAGING_LOST,
};
use crate::{
    auth::ssr::{constraint_of, Caller},
    batch::ssr::{self as batch, BatchError},
    csv::{wire, Column, COLUMNS},
    error::AppError,
    state::AppState,
};

/// Why a staging step refused or failed, with what is known of it: the server side of the
/// error policy. It becomes an [`AppError`] at the boundary (a server function, the chunk
/// route), where a fault of the server is logged once.
#[derive(Debug, thiserror::Error)]
pub enum StagingError {
    #[error("An upload has 1 to {MAX_FILES} files.")]
    FileCount,
    #[error("The file {0:?} is described wrongly.")]
    BadManifest(String),
    #[error("An upload stages at most {MAX_UPLOAD_ROWS} rows; split the files into several batches.")]
    TooManyRows,
    #[error("An upload takes at most {} GiB of files; split them into several batches.", MAX_UPLOAD_BYTES >> 30)]
    TooManyBytes,
    #[error("There is no such upload.")]
    NoSuchUpload,
    #[error("There is no such merchant.")]
    NoSuchMerchant,
    #[error("There is no such file in this upload.")]
    NoSuchFile,
    #[error(
        "An upload of {files} file(s) for this merchant is unfinished ({received} of {total} rows staged): \
         choose the same files to resume it, or cancel it first."
    )]
    Unfinished { files: usize, received: i64, total: i64 },
    #[error("An upload for this merchant is unfinished: finish or cancel it before {0}.")]
    UploadRunning(String),
    #[error("Another upload is starting; try again.")]
    Starting,
    #[error("This upload was cancelled.")]
    Cancelled,
    #[error("{name} has {received} of {expected} rows staged; send the rest first.")]
    Incomplete { name: String, received: i64, expected: i64 },
    #[error("{STAGING_LOST}")]
    Lost,
    #[error("This upload is {0}; it takes no more rows.")]
    Closed(String),
    #[error("Chunk {seq} arrived before chunk {next}; send {next} first.")]
    OutOfOrder { seq: i32, next: i32 },
    #[error("{name} was to stage {expected} rows; this chunk would make {would}.")]
    TooManyChunkRows { name: String, expected: i64, would: i64 },
    #[error("Row {row} of the chunk {reason}; nothing of this chunk was stored.")]
    BadRow { row: u64, reason: String },
    #[error("Row {row} of the chunk has a {column} the database cannot take; nothing of this chunk was stored.")]
    BadNumber { row: i64, column: &'static str },
    #[error("The chunk has no rows.")]
    EmptyChunk,
    /// The body is not a chunk of this format, is damaged or inflates past the cap.
    #[error(transparent)]
    Wire(#[from] wire::WireError),
    #[error(
        "{name} is staged in this batch already ({described}); choose to stage it again if that is what you want."
    )]
    AlreadyStaged { name: String, described: String },
    /// Another operation runs for the merchant (its own message says which).
    #[error(transparent)]
    Busy(#[from] crate::operations::ssr::OperationError),
    /// The merchant's batch takes no upload now (it was inserted and not cleared).
    #[error(transparent)]
    Batch(BatchError),
    #[error("the upload {0} vanished inside its own transaction")]
    Vanished(Uuid),
    #[error("a file's report could not be stored: {0}")]
    Report(#[from] serde_json::Error),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

impl From<StagingError> for AppError {
    fn from(error: StagingError) -> Self {
        use StagingError::*;
        match error {
            FileCount
            | BadManifest(_)
            | TooManyRows
            | TooManyBytes
            | Incomplete { .. }
            | TooManyChunkRows { .. }
            | BadRow { .. }
            | BadNumber { .. }
            | EmptyChunk => AppError::Invalid(error.to_string()),
            Wire(wire::WireError::TooLarge { .. }) => AppError::TooLarge(error.to_string()),
            Wire(_) => AppError::Invalid(error.to_string()),
            NoSuchUpload | NoSuchMerchant | NoSuchFile => AppError::NotFound(error.to_string()),
            Unfinished { .. }
            | UploadRunning(_)
            | Starting
            | Cancelled
            | Lost
            | Closed(_)
            | OutOfOrder { .. }
            | AlreadyStaged { .. } => AppError::Conflict(error.to_string()),
            Busy(error) => AppError::from(error),
            Batch(error) => AppError::from(error),
            Database(error) => AppError::from(error),
            Vanished(_) | Report(_) => {
                tracing::error!(%error, "staging failed");
                AppError::Internal
            }
        }
    }
}

/// After a crash of the database, which empties the unlogged staging table and
/// `staging_intact` with it: marks every upload whose rows were staged as `lost` and puts the
/// sentinel row back, once (concurrent callers wait on the table lock). Returns how many
/// uploads were marked; 0 when staging is intact, which costs one index probe.
pub async fn recover_lost_staging(pool: &PgPool) -> Result<u64, sqlx::Error> {
    if staging_intact(pool).await? {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    sqlx::query("LOCK TABLE staging_intact IN EXCLUSIVE MODE").execute(&mut *tx).await?;
    if staging_intact(&mut *tx).await? {
        return Ok(0);
    }
    let lost = sqlx::query(
        "UPDATE uploads SET status = 'lost', finished_at = COALESCE(finished_at, now()), updated_at = now()
         WHERE status <> 'lost'
           AND created_at > COALESCE((SELECT max(o.started_at) FROM merchant_operations o
                                      WHERE o.merchant_id = uploads.merchant_id AND o.kind = 'clear'
                                        AND o.status = 'completed'), '-infinity')",
    )
    .execute(&mut *tx)
    .await?
    .rows_affected();
    batch::lost(&mut *tx).await?;
    sqlx::query("INSERT INTO staging_intact VALUES (true)").execute(&mut *tx).await?;
    tx.commit().await?;
    tracing::warn!(uploads = lost, "staging was emptied by a crash of the database; its uploads are marked lost");
    Ok(lost)
}

/// Whether the staging table still holds what was staged: `staging_intact` keeps its row
/// unless a crash of the database emptied the unlogged tables.
async fn staging_intact(db: impl sqlx::PgExecutor<'_>) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT FROM staging_intact)").fetch_one(db).await
}

/// `Conflict` while an upload for the merchant is unfinished (its rows are still arriving);
/// `doing` says what waits for it ("checking duplicates").
pub async fn ensure_no_upload(pool: &PgPool, merchant: Uuid, doing: &str) -> Result<(), StagingError> {
    // What follows reads the staged rows: a crash of the database may have emptied them.
    recover_lost_staging(pool).await?;
    let uploading: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM uploads WHERE merchant_id = $1 AND status = 'uploading')")
            .bind(merchant)
            .fetch_one(pool)
            .await?;
    if uploading {
        return Err(StagingError::UploadRunning(doing.to_owned()));
    }
    Ok(())
}

/// The merchant an upload is for; `NoSuchUpload` for an unknown upload.
pub async fn merchant_of(pool: &PgPool, upload: Uuid) -> Result<Uuid, StagingError> {
    sqlx::query_scalar("SELECT merchant_id FROM uploads WHERE id = $1")
        .bind(upload)
        .fetch_optional(pool)
        .await?
        .ok_or(StagingError::NoSuchUpload)
}

/// An upload with its files, by id.
pub async fn load_upload(conn: &mut PgConnection, upload: Uuid) -> Result<Option<UploadState>, sqlx::Error> {
    #[derive(sqlx::FromRow)]
    struct Upload {
        id: Uuid,
        merchant_id: Uuid,
        #[sqlx(try_from = "String")]
        status: UploadStatus,
        total_rows: i64,
    }
    let Some(Upload { id, merchant_id, status, total_rows }) =
        sqlx::query_as("SELECT id, merchant_id, status, total_rows FROM uploads WHERE id = $1")
            .bind(upload)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(None);
    };
    let files = sqlx::query_as::<_, FileProgress>(
        r#"SELECT file_index AS "index", name, size, checksum, rows_expected, rows_received, next_seq
           FROM upload_files WHERE upload_id = $1 ORDER BY file_index"#,
    )
    .bind(upload)
    .fetch_all(&mut *conn)
    .await?;
    Ok(Some(UploadState { id, merchant_id, status, total_rows, files }))
}

/// The merchant's upload in progress, if any.
pub async fn unfinished_upload(pool: &PgPool, merchant: Uuid) -> Result<Option<UploadState>, sqlx::Error> {
    recover_lost_staging(pool).await?;
    let id: Option<Uuid> = sqlx::query_scalar("SELECT id FROM uploads WHERE merchant_id = $1 AND status = 'uploading'")
        .bind(merchant)
        .fetch_optional(pool)
        .await?;
    match id {
        Some(id) => load_upload(&mut *pool.acquire().await?, id).await,
        None => Ok(None),
    }
}

/// The merchant's latest upload if its staged rows were lost in a crash of the database.
pub async fn lost_upload(pool: &PgPool, merchant: Uuid) -> Result<Option<UploadState>, sqlx::Error> {
    let lost: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM (SELECT id, status FROM uploads WHERE merchant_id = $1 ORDER BY created_at DESC LIMIT 1) latest
         WHERE status = 'lost'",
    )
    .bind(merchant)
    .fetch_optional(pool)
    .await?;
    match lost {
        Some(id) => load_upload(&mut *pool.acquire().await?, id).await,
        None => Ok(None),
    }
}

/// The files with rows staged in the merchant's live batch, in upload order — but not those of
/// the unfinished upload: choosing them again resumes it.
pub async fn staged_files(pool: &PgPool, merchant: Uuid) -> Result<Vec<StagedFile>, sqlx::Error> {
    // A crash of the database may have emptied staging: those files are staged no more.
    recover_lost_staging(pool).await?;
    files_in_batch(pool, merchant).await
}

async fn files_in_batch(db: impl sqlx::PgExecutor<'_>, merchant: Uuid) -> Result<Vec<StagedFile>, sqlx::Error> {
    sqlx::query_as(
        "SELECT f.name, f.size, f.checksum, f.rows_received AS rows_staged, f.rows_expected,
                u.created_at AS staged_at, u.status AS upload_status
         FROM staging_batches b JOIN uploads u ON u.batch_id = b.id JOIN upload_files f ON f.upload_id = u.id
         WHERE b.merchant_id = $1 AND b.state IN ('open', 'checked', 'inserting', 'inserted') AND f.rows_received > 0
           AND u.status <> 'uploading'
         ORDER BY u.created_at, f.file_index",
    )
    .bind(merchant)
    .fetch_all(db)
    .await
}

fn same_files(state: &UploadState, files: &[FileManifest]) -> bool {
    state.files.len() == files.len()
        && state.files.iter().zip(files).all(|(have, want)| {
            have.name == want.name
                && have.size == want.size
                && have.checksum == want.checksum
                && have.rows_expected == want.rows
        })
}

/// Starts an upload, or returns the unfinished one if it is of the same files (a resume).
pub async fn start_upload(
    pool: &PgPool,
    merchant: Uuid,
    user: Uuid,
    files: &[FileManifest],
) -> Result<UploadState, StagingError> {
    if files.is_empty() || files.len() > MAX_FILES {
        return Err(StagingError::FileCount);
    }
    if let Some(file) = files.iter().find(|f| f.rows < 0 || f.size < 0 || f.name.is_empty() || f.name.len() > 500) {
        return Err(StagingError::BadManifest(file.name.clone()));
    }
    // Checked sums: declared figures come from the client and must never wrap.
    let rows = files.iter().try_fold(0i64, |sum, f| sum.checked_add(f.rows)).filter(|&r| r <= MAX_UPLOAD_ROWS);
    if rows.is_none() {
        return Err(StagingError::TooManyRows);
    }
    let bytes = files.iter().try_fold(0i64, |sum, f| sum.checked_add(f.size)).filter(|&b| b <= MAX_UPLOAD_BYTES);
    if bytes.is_none() {
        return Err(StagingError::TooManyBytes);
    }
    if let Some(existing) = unfinished_upload(pool, merchant).await? {
        return if same_files(&existing, files) { Ok(existing) } else { Err(unfinished_conflict(&existing)) };
    }
    // New rows must not arrive under a running check or insert.
    crate::operations::ssr::ensure_idle(pool, merchant).await?;
    let id = Uuid::new_v4();
    let total: i64 = files.iter().map(|f| f.rows).sum();
    let mut tx = pool.begin().await?;
    let created = match batch::for_upload(&mut tx, merchant).await {
        Ok(batch) => {
            // A file staged in the batch already goes in again only by the user's choice.
            let staged = files_in_batch(&mut *tx, merchant).await?;
            if let Some((file, already)) = files
                .iter()
                .filter(|f| !f.restage)
                .find_map(|f| staged.iter().find(|s| s.is(f.size, &f.checksum)).map(|s| (f, s)))
            {
                return Err(StagingError::AlreadyStaged { name: file.name.clone(), described: already.described() });
            }
            sqlx::query(
                "INSERT INTO uploads (id, merchant_id, created_by, row_base, total_rows, batch_id)
                 SELECT $1, $2, $3, COALESCE(max(row_number), 0), $4, $5 FROM codes_check_temp WHERE merchant_id = $2",
            )
            .bind(id)
            .bind(merchant)
            .bind(user)
            .bind(total)
            .bind(batch)
            .execute(&mut *tx)
            .await
        }
        Err(BatchError::Database(error)) => Err(error),
        Err(refused) => return Err(StagingError::Batch(refused)),
    };
    if let Err(error) = created {
        return match constraint_of(&error) {
            // Another request started one at the same moment.
            Some("uploads_one_active_per_merchant" | "staging_batches_one_live_per_merchant") => {
                drop(tx);
                match unfinished_upload(pool, merchant).await? {
                    Some(existing) if same_files(&existing, files) => Ok(existing),
                    Some(existing) => Err(unfinished_conflict(&existing)),
                    None => Err(StagingError::Starting),
                }
            }
            Some("uploads_merchant_fk") => Err(StagingError::NoSuchMerchant),
            _ => Err(error.into()),
        };
    }
    let mut offset = 0i64;
    for (index, file) in files.iter().enumerate() {
        let report = serde_json::to_value(&file.report)?;
        sqlx::query(
            "INSERT INTO upload_files (upload_id, file_index, name, size, checksum, rows_expected, row_offset, report,
                                       restaged)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(id)
        .bind(index as i32)
        .bind(&file.name)
        .bind(file.size)
        .bind(&file.checksum)
        .bind(file.rows)
        .bind(offset)
        .bind(report)
        .bind(file.restage)
        .execute(&mut *tx)
        .await?;
        offset += file.rows;
    }
    let state = load_upload(&mut tx, id).await?.ok_or(StagingError::Vanished(id))?;
    tx.commit().await?;
    tracing::info!(upload = %id, %merchant, files = files.len(), rows = total, "upload started");
    Ok(state)
}

fn unfinished_conflict(existing: &UploadState) -> StagingError {
    StagingError::Unfinished {
        files: existing.files.len(),
        received: existing.rows_received(),
        total: existing.total_rows,
    }
}

/// Completes an upload whose files have all arrived.
pub async fn finish_upload(pool: &PgPool, upload: Uuid) -> Result<UploadState, StagingError> {
    let mut tx = pool.begin().await?;
    let state = load_upload(&mut tx, upload).await?.ok_or(StagingError::NoSuchUpload)?;
    match state.status {
        UploadStatus::Completed => return Ok(state),
        UploadStatus::Cancelled => return Err(StagingError::Cancelled),
        UploadStatus::Uploading | UploadStatus::Lost => {}
    }
    if let Some(file) = state.files.iter().find(|f| f.rows_received != f.rows_expected) {
        return Err(StagingError::Incomplete {
            name: file.name.clone(),
            received: file.rows_received,
            expected: file.rows_expected,
        });
    }
    sqlx::query("UPDATE uploads SET status = 'completed', finished_at = now(), updated_at = now() WHERE id = $1")
        .bind(upload)
        .execute(&mut *tx)
        .await?;
    let state = load_upload(&mut tx, upload).await?.ok_or(StagingError::Vanished(upload))?;
    tx.commit().await?;
    tracing::info!(%upload, rows = state.rows_received(), "upload complete");
    Ok(state)
}

/// Cancels an unfinished upload. What it staged stays staged, or with `remove_rows` is deleted
/// (its rows are numbered after `row_base`, so the primary key finds them) and its files count
/// no row received; its batch's check, if any, then no longer describes the batch.
pub async fn cancel_upload(pool: &PgPool, upload: Uuid, remove_rows: bool) -> Result<UploadState, StagingError> {
    let mut tx = pool.begin().await?;
    // The lock waits for a chunk being stored, so the answer counts it.
    sqlx::query("SELECT 1 FROM upload_files WHERE upload_id = $1 FOR UPDATE").bind(upload).execute(&mut *tx).await?;
    /// The rows a cancelled upload numbered, and its batch.
    #[derive(sqlx::FromRow)]
    struct Cancelled {
        merchant_id: Uuid,
        row_base: i64,
        total_rows: i64,
        batch_id: Option<Uuid>,
    }
    let cancelled: Option<Cancelled> = sqlx::query_as(
        "UPDATE uploads SET status = 'cancelled', finished_at = now(), updated_at = now()
         WHERE id = $1 AND status = 'uploading'
         RETURNING merchant_id, row_base, total_rows, batch_id",
    )
    .bind(upload)
    .fetch_optional(&mut *tx)
    .await?;
    if let (true, Some(Cancelled { merchant_id: merchant, row_base, total_rows, batch_id: batch })) =
        (remove_rows, cancelled)
    {
        let removed = sqlx::query(
            "DELETE FROM codes_check_temp WHERE merchant_id = $1 AND row_number > $2 AND row_number <= $2 + $3
               AND upload_id = $4",
        )
        .bind(merchant)
        .bind(row_base)
        .bind(total_rows)
        .bind(upload)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        sqlx::query("UPDATE upload_files SET rows_received = 0 WHERE upload_id = $1")
            .bind(upload)
            .execute(&mut *tx)
            .await?;
        if let Some(batch) = batch {
            batch::rows_removed(&mut *tx, batch).await?;
        }
        tracing::info!(%upload, removed, "removed the rows of a cancelled upload");
    }
    let state = load_upload(&mut tx, upload).await?.ok_or(StagingError::NoSuchUpload)?;
    tx.commit().await?;
    tracing::info!(%upload, rows = state.rows_received(), "upload cancelled");
    Ok(state)
}

/// Deletes the merchant's staged rows and marks its batch cleared, as an operation (one at a
/// time per merchant); refused while an upload is unfinished or another operation runs.
/// Returns how many rows were deleted.
pub async fn clear_staging(pool: &PgPool, merchant: Uuid, user: Uuid) -> Result<i64, StagingError> {
    ensure_no_upload(pool, merchant, "clearing staging").await?;
    let mut running = crate::operations::ssr::begin(pool, merchant, "clear", Some(user)).await?;
    running.phase(pool, "Deleting the staged rows").await;
    let outcome = async {
        let mut tx = sqlx::Connection::begin(&mut running.conn).await?;
        let deleted = sqlx::query("DELETE FROM codes_check_temp WHERE merchant_id = $1")
            .bind(merchant)
            .execute(&mut *tx)
            .await?
            .rows_affected() as i64;
        batch::cleared(&mut *tx, merchant, deleted).await?;
        tx.commit().await?;
        Ok::<_, sqlx::Error>(deleted)
    }
    .await;
    let recorded = match &outcome {
        Ok(deleted) => Ok(serde_json::json!({ "rows_deleted": deleted })),
        Err(error) => Err(AppError::of_database(error)),
    };
    running.finish(recorded).await;
    Ok(outcome?)
}

// --- Chunks ----------------------------------------------------------------------------------

/// `POST /api/uploads/{upload}/files/{file}/chunks/{seq}`: stores chunk `seq` of a file.
/// 200 with a [`ChunkAck`]; 401/403 for a caller who may not act for the upload's merchant;
/// 400 for a chunk with a bad row, a damaged one or one not in the wire format (nothing of it
/// is stored); 413 for one that inflates past [`MAX_CHUNK_INFLATED_BYTES`]; 409 for a chunk
/// out of order or an upload no longer open.
pub async fn receive_chunk(
    State(state): State<AppState>,
    caller: Caller,
    Path((upload, file, seq)): Path<(Uuid, i32, i32)>,
    body: Bytes,
) -> Response {
    // Stored in a task of its own: a client that goes away mid-`COPY` (a reload, a dropped
    // connection) must not cancel it half-way, which would leave the connection mid-protocol.
    // The chunk is then stored, and a resend is acknowledged as a duplicate.
    let started = std::time::Instant::now();
    metrics::counter!("upload_bytes_received_total").increment(body.len() as u64);
    let stored = tokio::spawn(async move { store_chunk(&state.pool, &caller, upload, file, seq, &body).await }).await;
    match stored {
        Ok(Ok(ack)) => {
            metrics::histogram!("upload_chunk_seconds").record(started.elapsed().as_secs_f64());
            if !ack.duplicate {
                metrics::counter!("upload_chunks_stored_total").increment(1);
            }
            Json(ack).into_response()
        }
        Ok(Err(error)) => AppError::from(error).into_response(),
        Err(join_error) => {
            tracing::error!(%join_error, "storing a chunk failed");
            (StatusCode::INTERNAL_SERVER_ERROR, Json(AppError::Internal)).into_response()
        }
    }
}

/// Checks, then stores a chunk; see [`receive_chunk`].
pub async fn store_chunk(
    pool: &PgPool,
    caller: &Caller,
    upload: Uuid,
    file: i32,
    seq: i32,
    body: &[u8],
) -> Result<ChunkAck, StagingError> {
    let merchant = merchant_of(pool, upload).await?;
    // Another merchant's upload is answered as one that does not exist.
    caller.may_see(merchant, "upload").map_err(|_| StagingError::NoSuchUpload)?;

    // The file's row lock orders its chunks; other files' chunks proceed in parallel.
    /// The file's place in its upload, locked.
    #[derive(sqlx::FromRow)]
    struct Receiving {
        #[sqlx(try_from = "String")]
        status: UploadStatus,
        row_base: i64,
        name: String,
        row_offset: i64,
        rows_expected: i64,
        rows_received: i64,
        next_seq: i32,
    }
    // The page keeps two of a file's chunks in flight, and the second may come in before the
    // first is stored (or while it is): it waits its turn, at most `TURN_WAIT`. Still early
    // then, it is refused below with 409, and the page sends it again once the one before is
    // stored.
    let waiting_since = std::time::Instant::now();
    let (mut tx, Receiving { status, row_base, name, row_offset, rows_expected, rows_received, next_seq }) = loop {
        let mut tx = pool.begin().await?;
        let receiving: Option<Receiving> = sqlx::query_as(
            "SELECT u.status, u.row_base, f.name, f.row_offset, f.rows_expected, f.rows_received, f.next_seq
             FROM upload_files f JOIN uploads u ON u.id = f.upload_id
             WHERE f.upload_id = $1 AND f.file_index = $2
             FOR UPDATE OF f",
        )
        .bind(upload)
        .bind(file)
        .fetch_optional(&mut *tx)
        .await?;
        match receiving {
            None => return Err(StagingError::NoSuchFile),
            Some(early) if early.next_seq == seq - 1 && waiting_since.elapsed() < TURN_WAIT => {
                drop(tx);
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            Some(receiving) => break (tx, receiving),
        }
    };
    if seq < next_seq {
        return Ok(ChunkAck { duplicate: true, rows_received, next_seq });
    }
    // Checked in the chunk's own transaction: rows must not be added to a staging table that
    // a crash of the database emptied since the upload's earlier chunks.
    if status == UploadStatus::Lost || !staging_intact(&mut *tx).await? {
        drop(tx);
        recover_lost_staging(pool).await?;
        return Err(StagingError::Lost);
    }
    if status != UploadStatus::Uploading {
        return Err(StagingError::Closed(status.as_str().to_owned()));
    }
    if seq > next_seq {
        return Err(StagingError::OutOfOrder { seq, next: next_seq });
    }

    let first_row_number = row_base + row_offset + rows_received + 1;
    let (data, count) = copy_data(body, merchant, upload, &name, first_row_number)?;
    if rows_received + count > rows_expected {
        return Err(StagingError::TooManyChunkRows { name, expected: rows_expected, would: rows_received + count });
    }
    let mut copy = tx
        .copy_in_raw(
            "COPY codes_check_temp (merchant_id, row_number, code, serial, sku, points, sku_name,
                                    batch_code, price, upload_id, source_file, source_line)
             FROM STDIN (FORMAT binary)",
        )
        .await?;
    copy.send(data).await?;
    copy.finish().await?;
    sqlx::query(
        "UPDATE upload_files SET rows_received = rows_received + $3, next_seq = next_seq + 1
         WHERE upload_id = $1 AND file_index = $2",
    )
    .bind(upload)
    .bind(file)
    .bind(count)
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE uploads SET updated_at = now() WHERE id = $1").bind(upload).execute(&mut *tx).await?;
    tx.commit().await?;
    metrics::counter!("upload_rows_stored_total").increment(count as u64);
    Ok(ChunkAck { duplicate: false, rows_received: rows_received + count, next_seq: next_seq + 1 })
}

/// How long a chunk that came right behind the one before it waits for that one to be stored
/// (see [`store_chunk`]).
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// Inflates a chunk, re-checks every row for `merchant` and writes it in `COPY … FROM STDIN`
/// binary format, numbered from `first_row_number`; the data and the row count, or the error
/// naming the first bad row or what is wrong with the body (then nothing of it is stored).
fn copy_data(
    body: &[u8],
    merchant: Uuid,
    upload: Uuid,
    file_name: &str,
    first_row_number: i64,
) -> Result<(Vec<u8>, i64), StagingError> {
    let payload = wire::inflate(body, MAX_CHUNK_INFLATED_BYTES)?;
    let mut out = Vec::with_capacity(payload.len() * 2);
    out.extend_from_slice(binary_copy::HEADER);
    let mut row_number = first_row_number;
    let mut bad_number = None;
    wire::read_rows(&payload, merchant, &mut |line, row| {
        binary_copy::row(&mut out, 12);
        binary_copy::uuid(&mut out, merchant);
        binary_copy::int8(&mut out, row_number);
        for column in &COLUMNS[1..] {
            if matches!(column, Column::Points | Column::Price) {
                if binary_copy::numeric(&mut out, row.get(*column)).is_none() {
                    bad_number.get_or_insert((row_number - first_row_number + 1, *column));
                    binary_copy::null(&mut out);
                }
            } else {
                binary_copy::text(&mut out, row.get(*column));
            }
        }
        binary_copy::uuid(&mut out, upload);
        binary_copy::text(&mut out, Some(file_name));
        binary_copy::int8(&mut out, line as i64);
        row_number += 1;
    })
    .map_err(|error| StagingError::BadRow { row: error.row, reason: error.reason })?;
    // The row checks accept only plain decimals: one that is not means those checks and this
    // encoder disagree, and nothing of the chunk is stored.
    if let Some((row, column)) = bad_number {
        return Err(StagingError::BadNumber { row, column: column.name() });
    }
    out.extend_from_slice(binary_copy::TRAILER);
    let count = row_number - first_row_number;
    if count == 0 {
        return Err(StagingError::EmptyChunk);
    }
    Ok((out, count))
}
