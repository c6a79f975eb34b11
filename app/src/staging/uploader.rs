//! One upload run in the browser: starts (or resumes) the upload of validated files, sends
//! their chunks two files at a time and finishes it. It tells a [`RunView`] what happens; the
//! page only draws that.

use std::{cell::RefCell, collections::VecDeque, rc::Rc};

use uuid::Uuid;

use super::{client, finish_upload, start_upload, FileManifest, FileProgress, UploadState};
use crate::{components::format::format_count, csv::ReadOptions, error::AppError};

/// What an upload run tells the page, and asks of it.
pub trait RunView {
    /// The upload started, or resumed with what the server holds of it.
    fn started(&self, state: &UploadState);
    /// More bytes of chunk bodies went out.
    fn bytes_sent(&self, bytes: i64);
    /// The server stored a chunk of file `name`: `rows` more of its rows are staged.
    fn chunk_stored(&self, name: &str, rows: i64);
    /// The server refused a chunk of file `name`: that file stops, the others go on.
    fn file_failed(&self, name: &str, problem: &str);
    /// A connection problem and the retry it waits for; `None` once it passed.
    fn notice(&self, notice: Option<String>);
    /// Whether the user asked to stop (checked between chunks).
    fn stop_requested(&self) -> bool;
    /// How file `name` is read (its encoding, its mapping).
    fn options(&self, name: &str) -> ReadOptions;
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum RunEnd {
    /// Every file's rows are staged and the upload is complete.
    Done(UploadState),
    /// Stopped at the user's request; the state counts the rows each file had staged.
    Stopped(UploadState),
    /// It could not start or finish, or a file's chunk was refused: why, in words.
    Failed(String),
}

/// Uploads the files of `manifests` for `merchant` (resuming the merchant's unfinished upload
/// of the same files), telling `view` as it goes.
pub async fn run(merchant: Uuid, manifests: Vec<FileManifest>, view: Rc<impl RunView + 'static>) -> RunEnd {
    let state = match start(merchant, manifests, view.as_ref()).await {
        Ok(state) => state,
        Err(problem) => return RunEnd::Failed(problem),
    };
    view.started(&state);
    // Rows staged per file, from what the server held at the start.
    let staged: RefCell<Vec<(String, i64)>> =
        RefCell::new(state.files.iter().map(|f| (f.name.clone(), f.rows_received)).collect());
    // Two files at a time (each sends two of its chunks at once, see `client::upload_file`):
    // while one file's chunk is being stored, the next chunks of both are cut and sent.
    let queue: RefCell<VecDeque<FileProgress>> =
        RefCell::new(state.files.iter().filter(|p| p.rows_received < p.rows_expected).cloned().collect());
    let failures = RefCell::new(Vec::<(String, String)>::new());
    let worker = || async {
        while let Some(part) = {
            let next = queue.borrow_mut().pop_front();
            next
        } {
            if view.stop_requested() {
                return;
            }
            let name = part.name.clone();
            let Some(file) = client::chosen(&name) else {
                failures.borrow_mut().push((name, "the file is no longer chosen".to_owned()));
                continue;
            };
            let on_bytes: client::OnBytesSent = {
                let view = view.clone();
                Rc::new(move |bytes: i64| view.bytes_sent(bytes))
            };
            let sent = client::upload_file(
                &file,
                merchant,
                &view.options(&name),
                state.id,
                part.index,
                part.next_seq,
                on_bytes,
                |chunk| {
                    if let Some(entry) = staged.borrow_mut().iter_mut().find(|(n, _)| *n == name) {
                        entry.1 += chunk.rows;
                    }
                    view.chunk_stored(&name, chunk.rows);
                },
                |retry| view.notice(retry),
                || view.stop_requested(),
            )
            .await;
            if let Err(problem) = sent {
                view.file_failed(&name, &problem);
                failures.borrow_mut().push((name, problem));
            }
        }
    };
    futures_util::future::join(worker(), worker()).await;
    let staged = staged.take();
    let failures = failures.take();
    if !failures.is_empty() {
        let stopped = failures.iter().map(|(name, problem)| format!("{name} stopped: {problem}")).collect::<Vec<_>>();
        return RunEnd::Failed(format!(
            "{} {} of {} rows are staged and kept; the other files are complete. \
             Choose Upload again to resume, or cancel the upload.",
            stopped.join(" "),
            format_count(staged.iter().map(|(_, rows)| rows).sum()),
            format_count(state.total_rows)
        ));
    }
    if view.stop_requested() {
        let mut stopped = state.clone();
        for file in &mut stopped.files {
            if let Some((_, rows)) = staged.iter().find(|(name, _)| *name == file.name) {
                file.rows_received = *rows;
            }
        }
        return RunEnd::Stopped(stopped);
    }
    match finish_upload(state.id).await {
        Ok(state) => RunEnd::Done(state),
        Err(error) => RunEnd::Failed(error.to_string()),
    }
}

/// How often a start refused by a running operation (an upload's check, say) asks again.
const BUSY_RETRY_MS: i32 = 1_000;

/// Starts (or resumes) the upload. While another operation runs for the merchant (the check
/// of the upload before, which new rows must not land under), it says so and asks again until
/// that ends or the user stops.
async fn start(merchant: Uuid, manifests: Vec<FileManifest>, view: &impl RunView) -> Result<UploadState, String> {
    loop {
        match start_upload(merchant, manifests.clone()).await {
            Ok(state) => {
                view.notice(None);
                return Ok(state);
            }
            Err(AppError::Busy(running)) if !view.stop_requested() => {
                view.notice(Some(format!("{running} The upload starts by itself when it has ended.")));
                client::sleep_ms(BUSY_RETRY_MS).await;
            }
            Err(AppError::Busy(running)) => {
                view.notice(None);
                return Err(format!("The upload did not start; nothing was staged. {running}"));
            }
            Err(error) => return Err(error.to_string()),
        }
    }
}
