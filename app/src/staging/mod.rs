//! Staging: resumable uploads of validated rows into `codes_check_temp`.
//!
//! The browser validates every file, then starts an upload with the files' manifest (name,
//! size, checksum and the rows each will stage), and posts each file's rows in numbered chunks
//! of the wire format ([`crate::csv::wire`]) to [`chunk_path`]. The server re-checks every row and stores a chunk
//! in the transaction that counts it, so a chunk sent twice is stored once and an interrupted
//! upload resumes from the last acknowledged chunk.

#[cfg(feature = "ssr")]
mod binary_copy;
pub mod client;
#[cfg(feature = "ssr")]
pub mod ssr;
pub mod uploader;
pub mod worker;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "ssr")]
use crate::auth::ssr::{context, respond};
use crate::{
    csv::{wire::ChunkWriter, FileReport},
    error::AppError,
};

/// The largest chunk body (compressed) the server accepts.
pub const MAX_CHUNK_BYTES: usize = 32 * 1024 * 1024;
/// The most bytes a chunk may inflate to on the server; past it the chunk is refused (413)
/// before a row of it is read. Twice what the page ever puts in one ([`CHUNK_BYTES`] and a row).
pub const MAX_CHUNK_INFLATED_BYTES: usize = 2 * CHUNK_BYTES;
/// The most files one upload may have.
pub const MAX_FILES: usize = 1000;
/// The most rows one upload may stage (the real batches are ~15 M).
pub const MAX_UPLOAD_ROWS: i64 = 100_000_000;
/// The most bytes of CSV one upload may declare: 20 GiB.
pub const MAX_UPLOAD_BYTES: i64 = 20 << 30;
/// Staged rows per chunk (the last chunk of a file may have fewer). Fixed, so that a resumed
/// upload cuts a file into the same chunks: about 4 MB of rows before compression, large
/// enough that the per-request and per-`COPY` costs vanish.
pub const CHUNK_ROWS: usize = 100_000;
/// A chunk is also cut once its rows reach this many bytes before compression (only rows with
/// long fields get there first); the same bytes cut the same way on a resume.
pub const CHUNK_BYTES: usize = 16 * 1024 * 1024;
/// How hard the page compresses chunks (flate2's levels 0–9): measured in BENCHMARKS.md.
pub const CHUNK_COMPRESSION: u32 = 2;

/// Cuts staged rows into compressed chunks of [`CHUNK_ROWS`] rows (or [`CHUNK_BYTES`]).
pub struct ChunkBuilder {
    writer: ChunkWriter,
    rows_per_chunk: usize,
    /// Finished chunks (their bodies) and their row counts, in order.
    pub ready: Vec<(Vec<u8>, usize)>,
}

impl Default for ChunkBuilder {
    fn default() -> Self {
        Self::with_rows(CHUNK_ROWS)
    }
}

impl ChunkBuilder {
    /// A builder cutting chunks of `rows_per_chunk` rows (the app always uses [`CHUNK_ROWS`];
    /// the benchmark measures others).
    pub fn with_rows(rows_per_chunk: usize) -> Self {
        Self { writer: ChunkWriter::default(), rows_per_chunk: rows_per_chunk.max(1), ready: Vec::new() }
    }

    /// Adds a staged row from file line `line`.
    pub fn push(&mut self, line: u64, row: &crate::csv::StagedRow<'_>) {
        self.writer.push(line, row);
        if self.writer.rows() as usize == self.rows_per_chunk || self.writer.payload_len() >= CHUNK_BYTES {
            self.cut();
        }
    }

    /// Ends the current chunk, if it has rows.
    pub fn cut(&mut self) {
        if self.writer.rows() > 0 {
            let rows = self.writer.rows() as usize;
            self.ready.push((std::mem::take(&mut self.writer).finish(CHUNK_COMPRESSION), rows));
        }
    }
}

/// A 64-bit checksum of a file's bytes (FNV-1a over 8-byte words), fed slice by slice in
/// any sizes; tells a re-selected file from a different one of the same name and size.
#[derive(Debug, Clone, Copy)]
pub struct Checksum {
    hash: u64,
    pending: [u8; 8],
    pending_len: usize,
}

impl Default for Checksum {
    fn default() -> Self {
        Checksum { hash: 0xcbf2_9ce4_8422_2325, pending: [0; 8], pending_len: 0 }
    }
}

impl Checksum {
    fn word(&mut self, word: [u8; 8]) {
        self.hash = (self.hash ^ u64::from_le_bytes(word)).wrapping_mul(0x0000_0100_0000_01b3).rotate_left(29);
    }

    pub fn update(&mut self, mut bytes: &[u8]) {
        if self.pending_len > 0 {
            let take = (8 - self.pending_len).min(bytes.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&bytes[..take]);
            self.pending_len += take;
            bytes = &bytes[take..];
            if self.pending_len < 8 {
                return;
            }
            self.word(self.pending);
            self.pending_len = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.word(word.try_into().unwrap_or_default());
        }
        let rest = words.remainder();
        self.pending[..rest.len()].copy_from_slice(rest);
        self.pending_len = rest.len();
    }

    /// The checksum of everything fed so far.
    pub fn hex(&self) -> String {
        let mut last = *self;
        let mut tail = [0u8; 8];
        tail[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
        tail[7] = self.pending_len as u8 | 0x80;
        last.word(tail);
        format!("fnv64w:{:016x}", last.hash)
    }
}

/// One file of an upload as the browser describes it after validation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileManifest {
    pub name: String,
    pub size: i64,
    /// A checksum of the file's bytes, so that a resumed upload gets the same file.
    pub checksum: String,
    /// The rows validation will stage from this file.
    pub rows: i64,
    pub report: FileReport,
    /// Stage it although the same file (checksum and size) is staged in the batch already: the
    /// user's explicit choice. Without it such a file is refused.
    #[serde(default)]
    pub restage: bool,
}

/// A file whose rows are staged in the merchant's live batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct StagedFile {
    pub name: String,
    pub size: i64,
    pub checksum: String,
    pub rows_staged: i64,
    pub rows_expected: i64,
    /// When its upload started, and how it ended (a cancelled one may have staged part).
    pub staged_at: chrono::DateTime<chrono::Utc>,
    #[cfg_attr(feature = "ssr", sqlx(try_from = "String"))]
    pub upload_status: UploadStatus,
}

impl StagedFile {
    /// Whether `name`, `size` and `checksum` are this file's bytes (the name may differ).
    pub fn is(&self, size: i64, checksum: &str) -> bool {
        self.size == size && self.checksum == checksum
    }

    /// "on 2026-12-01 10:02 UTC as codes.csv (24,000 of 252,000 rows, cancelled)".
    pub fn described(&self) -> String {
        let rows = if self.rows_staged == self.rows_expected {
            format!("{} rows", crate::components::format::format_count(self.rows_staged))
        } else {
            format!(
                "{} of {} rows, {}",
                crate::components::format::format_count(self.rows_staged),
                crate::components::format::format_count(self.rows_expected),
                self.upload_status.as_str()
            )
        };
        format!("on {} as {} ({rows})", self.staged_at.format("%Y-%m-%d %H:%M UTC"), self.name)
    }
}

/// Where one file of an upload stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct FileProgress {
    pub index: i32,
    pub name: String,
    pub size: i64,
    pub checksum: String,
    pub rows_expected: i64,
    pub rows_received: i64,
    /// The sequence number of the next chunk the server will take.
    pub next_seq: i32,
}

/// Where an upload stands. Stored in `uploads.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UploadStatus {
    /// Its chunks are arriving (or will, when it resumes).
    Uploading,
    /// Every file's rows arrived.
    Completed,
    /// Stopped by the user; what it staged was kept or removed, as they chose.
    Cancelled,
    /// A crash of the database emptied staging (unlogged) under it.
    Lost,
}

impl UploadStatus {
    pub const ALL: [UploadStatus; 4] =
        [UploadStatus::Uploading, UploadStatus::Completed, UploadStatus::Cancelled, UploadStatus::Lost];

    /// The name stored in `uploads.status`.
    pub fn as_str(self) -> &'static str {
        match self {
            UploadStatus::Uploading => "uploading",
            UploadStatus::Completed => "completed",
            UploadStatus::Cancelled => "cancelled",
            UploadStatus::Lost => "lost",
        }
    }

    /// Reads `uploads.status`; anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == value)
    }
}

impl TryFrom<String> for UploadStatus {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        Self::parse(&value).ok_or_else(|| format!("{value:?} is not an upload status"))
    }
}

/// An upload and its files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UploadState {
    pub id: Uuid,
    pub merchant_id: Uuid,
    pub status: UploadStatus,
    pub total_rows: i64,
    pub files: Vec<FileProgress>,
}

impl UploadState {
    pub fn rows_received(&self) -> i64 {
        self.files.iter().map(|f| f.rows_received).sum()
    }
}

/// The server's answer to a chunk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkAck {
    /// The chunk had been stored before; nothing was stored again.
    pub duplicate: bool,
    pub rows_received: i64,
    pub next_seq: i32,
}

/// What the user is told when a crash of the database emptied the staging table.
pub const STAGING_LOST: &str = "The database restarted after a crash, and staged rows do not survive that \
     (staging is kept out of the database's write-ahead log for speed): the rows of this merchant's \
     uploads until then are gone. Nothing in production was touched. Upload the files again.";

#[cfg(test)]
mod tests {
    use super::Checksum;

    #[test]
    fn the_checksum_does_not_depend_on_how_the_file_is_sliced() {
        let file: Vec<u8> = (0..1000u32).flat_map(|i| format!("NBD-{i},x\n").into_bytes()).collect();
        let mut whole = Checksum::default();
        whole.update(&file);
        for size in [1, 3, 7, 8, 13, 4096] {
            let mut sliced = Checksum::default();
            for part in file.chunks(size) {
                sliced.update(part);
            }
            assert_eq!(whole.hex(), sliced.hex(), "slices of {size}");
        }
        let mut other = Checksum::default();
        other.update(&file[..file.len() - 1]);
        assert_ne!(whole.hex(), other.hex(), "a shorter file differs");
        let mut changed = file.clone();
        changed[500] ^= 1;
        let mut third = Checksum::default();
        third.update(&changed);
        assert_ne!(whole.hex(), third.hex(), "one changed bit differs");
    }

    #[test]
    fn files_are_named_by_their_path_inside_the_chosen_folder() {
        use super::client::name_in_folder;
        // Picked one by one: no path.
        assert_eq!(name_in_folder("", "codes.csv"), "codes.csv");
        // A dropped file: its entry path is just its name.
        assert_eq!(name_in_folder("/codes.csv", "codes.csv"), "codes.csv");
        // A flat folder, picked or dropped: the names are those of its files.
        assert_eq!(name_in_folder("batch/NBD_01.csv", "NBD_01.csv"), "NBD_01.csv");
        assert_eq!(name_in_folder("/batch/NBD_01.csv", "NBD_01.csv"), "NBD_01.csv");
        // Files of the same name in two sub-folders stay two files.
        assert_eq!(name_in_folder("batch/a/codes.csv", "codes.csv"), "a/codes.csv");
        assert_eq!(name_in_folder("/batch/b/codes.csv", "codes.csv"), "b/codes.csv");
    }
}

/// Where the browser posts chunk `seq` of file `file` of upload `upload`.
pub fn chunk_path(upload: Uuid, file: i32, seq: i32) -> String {
    format!("/api/uploads/{upload}/files/{file}/chunks/{seq}")
}

/// Starts an upload of `files` for `merchant`, or returns the merchant's unfinished upload
/// of the same files to resume. `Conflict` if another unfinished upload exists; `Busy` while
/// an operation (a check, an insert) runs for the merchant.
#[server(prefix = "/api", endpoint = "start-upload", input = server_fn::codec::Json)]
pub async fn start_upload(merchant: Uuid, files: Vec<FileManifest>) -> Result<UploadState, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        Ok(ssr::start_upload(&state.pool, merchant, caller.user_id(), &files).await?)
    })
    .await
}

/// The merchant's unfinished upload, if there is one; otherwise its latest upload if a crash
/// of the database lost its staged rows (status `lost`), so the page can say so.
#[server(prefix = "/api", endpoint = "unfinished-upload")]
pub async fn unfinished_upload(merchant: Uuid) -> Result<Option<UploadState>, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        match ssr::unfinished_upload(&state.pool, merchant).await? {
            Some(unfinished) => Ok(Some(unfinished)),
            None => Ok(ssr::lost_upload(&state.pool, merchant).await?),
        }
    })
    .await
}

/// Deletes the merchant's staged rows (its batch becomes cleared); returns how many.
#[server(prefix = "/api", endpoint = "clear-staging")]
pub async fn clear_staging(merchant: Uuid) -> Result<i64, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        Ok(ssr::clear_staging(&state.pool, merchant, caller.user_id()).await?)
    })
    .await
}

/// The files staged in the merchant's live batch, so the page can mark a file chosen again.
#[server(prefix = "/api", endpoint = "staged-files")]
pub async fn staged_files(merchant: Uuid) -> Result<Vec<StagedFile>, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        Ok(ssr::staged_files(&state.pool, merchant).await?)
    })
    .await
}

/// Marks an upload complete once every file's rows have arrived; `Invalid` before that.
#[server(prefix = "/api", endpoint = "finish-upload")]
pub async fn finish_upload(upload: Uuid) -> Result<UploadState, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        let merchant = ssr::merchant_of(&state.pool, upload).await?;
        caller.may_see(merchant, "upload")?;
        Ok(ssr::finish_upload(&state.pool, upload).await?)
    })
    .await
}

/// Stops an upload. The rows it staged stay staged, or with `remove_rows` are deleted (the
/// answer's files then count 0 rows received).
#[server(prefix = "/api", endpoint = "cancel-upload")]
pub async fn cancel_upload(upload: Uuid, remove_rows: bool) -> Result<UploadState, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        let merchant = ssr::merchant_of(&state.pool, upload).await?;
        caller.may_see(merchant, "upload")?;
        Ok(ssr::cancel_upload(&state.pool, upload, remove_rows).await?)
    })
    .await
}
