//! The browser side of an upload: reading files in slices, validating them, and posting their
//! rows in chunks with retries. Called only in the browser (from event handlers and tasks).

use std::{cell::Cell, collections::VecDeque, rc::Rc};

use gloo_file::{Blob, File};
use uuid::Uuid;
use wasm_bindgen_futures::JsFuture;
use web_sys::wasm_bindgen::{closure::Closure, JsCast, JsValue};

use super::{chunk_path, Checksum, ChunkAck, ChunkBuilder};
use crate::{
    csv::{rejected_rows_csv, FileReport, FileValidator, LineFinder, ReadOptions, RejectedRow},
    error::AppError,
};

thread_local! {
    /// The files chosen on the page and their rejected rows, by name. Browser objects cannot
    /// live in reactive state (which the server also creates), so they wait here; the browser
    /// runs the page on one thread.
    static CHOSEN: std::cell::RefCell<std::collections::HashMap<String, (File, Vec<RejectedRow>)>> =
        Default::default();
}

/// Keeps a chosen file under `name` (replacing one of the same name).
pub fn remember(name: String, file: File) {
    CHOSEN.with_borrow_mut(|chosen| {
        chosen.insert(name, (file, Vec::new()));
    });
}

/// The name a file is listed, staged and resumed under: its path inside the folder the user
/// chose or dropped (`a/codes.csv` and `b/codes.csv` are two files), without that folder's own
/// name, so that a flat folder's files are named as when picked one by one. `path` is the
/// browser's `webkitRelativePath` or entry path; empty for a file picked on its own.
pub fn name_in_folder(path: &str, file_name: &str) -> String {
    let path = path.trim_start_matches('/');
    match path.split_once('/') {
        Some((_folder, inside)) if !inside.is_empty() => inside.to_owned(),
        _ => file_name.to_owned(),
    }
}

/// A picked file with its name (see [`name_in_folder`]).
pub fn picked(file: web_sys::File) -> (String, File) {
    let path = js_sys::Reflect::get(&file, &JsValue::from_str("webkitRelativePath"))
        .ok()
        .and_then(|p| p.as_string())
        .unwrap_or_default();
    let name = name_in_folder(&path, &file.name());
    (name, File::from(file))
}

/// The chosen file named `name`.
pub fn chosen(name: &str) -> Option<File> {
    CHOSEN.with_borrow(|chosen| chosen.get(name).map(|(file, _)| file.clone()))
}

/// Drops a chosen file.
pub fn forget(name: &str) {
    CHOSEN.with_borrow_mut(|chosen| {
        chosen.remove(name);
    });
}

fn keep_rejects(name: &str, rejects: Vec<RejectedRow>) {
    CHOSEN.with_borrow_mut(|chosen| {
        if let Some(entry) = chosen.get_mut(name) {
            entry.1 = rejects;
        }
    });
}

/// Offers every kept rejected row of file `name` (validated as `report` says, read as
/// `options` say) as a CSV to fix and upload again (see [`rejected_rows_csv`]). A malformed
/// row's line is read again from the file, slice by slice, up to the last one wanted.
pub async fn download_rejects(name: &str, report: &FileReport, options: &ReadOptions) -> Result<(), String> {
    let (file, rejects) =
        CHOSEN.with_borrow(|chosen| chosen.get(name).cloned()).ok_or_else(|| format!("{name} is no longer chosen"))?;
    let mut finder = LineFinder::new(rejects.iter().filter(|r| r.malformed).map(|r| r.line), options.encoding);
    let mut slices = Slices::new(&file);
    while !finder.is_done() {
        let Some(slice) = slices.next().await else { break };
        finder.feed(&slice?);
    }
    let text = rejected_rows_csv(report, &rejects, &finder.finish());
    download(&format!("{}.rejected.csv", name.trim_end_matches(".csv")), &text);
    Ok(())
}

/// How much of a file is read and parsed at a time: small enough that the page stays
/// responsive (a slice parses in tens of milliseconds), large enough to read fast.
pub const SLICE_BYTES: u64 = 4 * 1024 * 1024;
/// The first slice's size. Each next one is as large as all before it, up to [`SLICE_BYTES`]:
/// parsing starts after a short read, and most of a file still comes in large reads.
const FIRST_SLICE_BYTES: u64 = 256 * 1024;
/// How many slices are read ahead of the one being parsed. A thread that parses takes in the
/// bytes of its reads only between its tasks, so one read ahead kept a worker waiting 40-100 ms
/// per 26 MiB file; three, with the small first slices, cut the validation's time by a tenth
/// (BENCHMARKS.md, "Reading ahead").
const READ_AHEAD: usize = 3;
/// How much of a file is checked between two looks at the clock.
const PROGRESS_BYTES: usize = 1024 * 1024;
/// How often a file's check reports its progress: often enough that the bar moves smoothly,
/// rarely enough that drawing it costs the page little. (Reported every mebibyte, two
/// workers' reports came ~100 times a second: the page's thread used 0.29-0.30 of the two
/// cores and the workers got 0.88-0.92 between them; at this pace 0.19 and 1.05-1.10.)
const PROGRESS_EVERY_MS: f64 = 100.0;
/// How often a chunk is retried while no answer comes or the server asks to wait.
const MAX_ATTEMPTS: u32 = 12;
/// How many of a file's chunks are under way at once (sent, not yet acknowledged). The server
/// keeps a chunk that comes before its turn waiting for the one before it.
const IN_FLIGHT: usize = 2;

/// Reads a file slice by slice, the next slices' reads already under way while the caller
/// parses the current one (the browser reads them off the thread that parses).
pub(super) struct Slices {
    file: File,
    position: u64,
    ahead: VecDeque<JsFuture>,
}

impl Slices {
    pub(super) fn new(file: &File) -> Self {
        Self { file: file.clone(), position: 0, ahead: VecDeque::new() }
    }

    /// Starts reading the slice at `position`, if there is one, and moves past it.
    fn start_next(&mut self) -> Option<JsFuture> {
        let size = self.file.size();
        if self.position >= size {
            return None;
        }
        let end = (self.position + self.position.clamp(FIRST_SLICE_BYTES, SLICE_BYTES)).min(size);
        let blob: &web_sys::Blob = self.file.as_ref();
        let slice = blob.slice_with_f64_and_f64(self.position as f64, end as f64).ok()?;
        self.position = end;
        Some(JsFuture::from(slice.array_buffer()))
    }

    /// Starts reads until [`READ_AHEAD`] are under way (or the file has no more slices).
    fn read_ahead(&mut self) {
        while self.ahead.len() < READ_AHEAD {
            let Some(reading) = self.start_next() else { break };
            self.ahead.push_back(reading);
        }
    }

    pub(super) async fn next(&mut self) -> Option<Result<Vec<u8>, String>> {
        self.read_ahead();
        let read = self.ahead.pop_front()?.await;
        // Before the caller parses this slice, so that three reads go on beside its parse.
        self.read_ahead();
        Some(
            read.map(|buffer| js_sys::Uint8Array::new(&buffer).to_vec())
                .map_err(|e| format!("{} could not be read: {}", self.file.name(), describe(e))),
        )
    }
}

/// A validated file: its report and its checksum (its rejected rows are kept for download).
#[derive(Debug, Clone)]
pub struct Validated {
    pub report: FileReport,
    pub checksum: String,
}

/// What checking every row of a file found: its report, its checksum and its rejected rows.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Checked {
    pub report: FileReport,
    pub checksum: String,
    pub rejects: Vec<RejectedRow>,
}

/// Validates every row of `file`, read as `options` say, for an upload to `merchant` — in a
/// worker when the page has them (see [`super::worker`]), else here; `on_bytes` hears how far
/// it is. The rejected rows are kept for download under `name`.
pub async fn validate(
    name: &str,
    file: &File,
    merchant: Uuid,
    options: &ReadOptions,
    on_bytes: impl FnMut(u64),
) -> Result<Validated, String> {
    let checked = match super::worker::lease().await {
        Some(lease) => lease.check(file, merchant, options, on_bytes).await?,
        None => check(file, merchant, options, on_bytes).await?,
    };
    keep_rejects(name, checked.rejects);
    Ok(Validated { report: checked.report, checksum: checked.checksum })
}

/// Checks every row of `file` on this thread (the page's, or a worker's).
pub(super) async fn check(
    file: &File,
    merchant: Uuid,
    options: &ReadOptions,
    mut on_bytes: impl FnMut(u64),
) -> Result<Checked, String> {
    let mut validator = FileValidator::with_options(merchant, options);
    let mut checksum = Checksum::default();
    let mut slices = Slices::new(file);
    let mut ignore = |_: u64, _: &crate::csv::StagedRow<'_>| {};
    let mut checked = 0u64;
    // The first mebibyte is reported at once: a small file's bar moves before it is done.
    let mut reported_at = f64::NEG_INFINITY;
    while let Some(slice) = slices.next().await {
        let slice = slice?;
        checksum.update(&slice);
        for part in slice.chunks(PROGRESS_BYTES) {
            validator.feed(part, &mut ignore);
            checked += part.len() as u64;
            let now = js_sys::Date::now();
            if now - reported_at >= PROGRESS_EVERY_MS {
                reported_at = now;
                on_bytes(checked);
            }
        }
    }
    let (report, rejects) = validator.finish(&mut ignore);
    Ok(Checked { report, checksum: checksum.hex(), rejects })
}

/// A file's staged rows as chunk bodies, cut on this thread (the page's, or a worker's) as the
/// file is read: the chunk's number, its body and its rows.
pub(super) struct FileChunks {
    validator: Option<FileValidator>,
    slices: Slices,
    chunks: ChunkBuilder,
    next_seq: i32,
}

/// One chunk of a file's rows: its number in the file, its body and its row count.
pub(super) type Chunk = (i32, Vec<u8>, usize);

impl FileChunks {
    pub(super) fn new(file: &File, merchant: Uuid, options: &ReadOptions) -> Self {
        Self {
            validator: Some(FileValidator::with_options(merchant, options)),
            slices: Slices::new(file),
            chunks: ChunkBuilder::default(),
            next_seq: 0,
        }
    }

    /// The next chunk, parsing as much of the file as it takes; `None` after the last.
    pub(super) async fn next(&mut self) -> Option<Result<Chunk, String>> {
        loop {
            if !self.chunks.ready.is_empty() {
                let (body, rows) = self.chunks.ready.remove(0);
                self.next_seq += 1;
                return Some(Ok((self.next_seq - 1, body, rows)));
            }
            let validator = self.validator.as_mut()?;
            match self.slices.next().await {
                Some(Ok(slice)) => validator.feed(&slice, &mut |line, row| self.chunks.push(line, row)),
                Some(Err(problem)) => return Some(Err(problem)),
                None => {
                    let last = self.validator.take()?;
                    let _ = last.finish(&mut |line, row| self.chunks.push(line, row));
                    self.chunks.cut();
                }
            }
        }
    }
}

/// Where a file's chunks are cut: in a worker, or on the page when it has none.
enum ChunkSource {
    Worker(super::worker::Chunks),
    Here(Box<FileChunks>),
}

impl ChunkSource {
    async fn next(&mut self) -> Option<Result<Chunk, String>> {
        match self {
            ChunkSource::Worker(chunks) => chunks.next().await,
            ChunkSource::Here(chunks) => chunks.next().await,
        }
    }
}

/// What the upload of one file reports after each stored chunk: its rows, now acknowledged.
#[derive(Debug, Clone, Copy)]
pub struct ChunkSent {
    pub rows: i64,
}

/// Hears how many more bytes of a request's body went out (resent ones too).
pub type OnBytesSent = Rc<dyn Fn(i64)>;

/// Sends the staged rows of `file` as chunks `skip..` (the ones before were acknowledged
/// already), stopping early when `cancelled()` says so. Returns whether the file is complete.
/// `on_bytes` hears the bodies going out, `on_chunk` each chunk the server stored.
#[allow(clippy::too_many_arguments)]
pub async fn upload_file(
    file: &File,
    merchant: Uuid,
    options: &ReadOptions,
    upload: Uuid,
    index: i32,
    skip: i32,
    on_bytes: OnBytesSent,
    mut on_chunk: impl FnMut(ChunkSent),
    mut on_retry: impl FnMut(Option<String>),
    cancelled: impl Fn() -> bool,
) -> Result<bool, String> {
    // A cancelled upload stops between chunks; `Ok(false)` says it did not finish.
    let mut source = match super::worker::lease().await {
        Some(lease) => ChunkSource::Worker(lease.chunks(file, merchant, options, skip)),
        None => ChunkSource::Here(Box::new(FileChunks::new(file, merchant, options))),
    };
    let mut in_flight = VecDeque::<InFlight>::new();
    // Each chunk is sent as soon as it is cut, behind the one before it while that one is still
    // being sent or stored: the link and the server never wait for the page to cut the next.
    // At most [`IN_FLIGHT`] of a file's chunks are under way; the oldest is awaited first, so
    // they are acknowledged in the file's order.
    let mut stopped = false;
    while let Some(chunk) = source.next().await {
        let (seq, body, rows) = chunk?;
        if seq < skip {
            continue;
        }
        if in_flight.len() == IN_FLIGHT {
            if let Some(oldest) = in_flight.pop_front() {
                on_chunk(oldest.complete(&mut on_retry).await?);
            }
        }
        if cancelled() {
            stopped = true;
            break;
        }
        let behind = !in_flight.is_empty();
        in_flight.push_back(InFlight::start(chunk_path(upload, index, seq), body, rows, behind, on_bytes.clone())?);
    }
    // What is under way is awaited, after a stop too, so the count is exact.
    while let Some(oldest) = in_flight.pop_front() {
        on_chunk(oldest.complete(&mut on_retry).await?);
    }
    Ok(!stopped)
}

/// A chunk whose request has been sent and whose answer is awaited later.
struct InFlight {
    path: String,
    body: Vec<u8>,
    rows: usize,
    /// Sent while the file's chunk before it was still under way.
    behind: bool,
    posting: Posting,
    on_bytes: OnBytesSent,
}

impl InFlight {
    fn start(path: String, body: Vec<u8>, rows: usize, behind: bool, on_bytes: OnBytesSent) -> Result<Self, String> {
        let posting = Posting::start(&path, &body, on_bytes.clone())?;
        Ok(Self { path, body, rows, behind, posting, on_bytes })
    }

    /// The chunk's acknowledgement (awaited after the one before it was acknowledged); a first
    /// attempt that got no answer, or an answer that says "later" (503, 429), goes on with
    /// retries. Any other answer is final — but for a 409 to a chunk sent behind another: it
    /// came before its turn (the one before was resent), and is sent again now that it is.
    async fn complete(self, on_retry: &mut impl FnMut(Option<String>)) -> Result<ChunkSent, String> {
        let sent = ChunkSent { rows: self.rows as i64 };
        let answer = self.posting.answer().await;
        if self.behind && matches!(&answer, Ok(answer) if answer.status == 409) {
            return send_chunk(&self.path, &self.body, &self.on_bytes, on_retry).await.map(|_| sent);
        }
        match Attempt::of(answer) {
            Attempt::Stored(_) => Ok(sent),
            Attempt::Refused(message) => Err(message),
            Attempt::SignedOut => Err(signed_out()),
            Attempt::Later { .. } => send_chunk(&self.path, &self.body, &self.on_bytes, on_retry).await.map(|_| sent),
        }
    }
}

/// What one attempt to post a chunk came to.
#[derive(Debug, Clone, PartialEq)]
enum Attempt {
    /// 200: stored (or stored before), with the server's acknowledgement.
    Stored(String),
    /// Worth trying again: no answer came (the connection dropped, the server is down), or
    /// the server said it is overloaded (503) or throttling (429), maybe with `Retry-After`.
    Later { problem: String, retry_after_ms: Option<i32> },
    /// Any other answer: the server looked at the chunk and will not store it as sent. Its
    /// message is final — sending the same bytes again cannot change it.
    Refused(String),
    /// 401: the session ended. The user signs in again (and comes back to resume).
    SignedOut,
}

impl Attempt {
    fn of(answer: Result<Answer, String>) -> Self {
        match answer {
            Err(problem) => Attempt::Later { problem, retry_after_ms: None },
            Ok(answer) if answer.status == 200 => Attempt::Stored(answer.text),
            Ok(answer) if answer.status == 401 => Attempt::SignedOut,
            Ok(answer) if answer.status == 503 || answer.status == 429 => Attempt::Later {
                problem: format!("the server answered {} ({})", answer.status, refusal(&answer)),
                retry_after_ms: answer.retry_after_ms,
            },
            Ok(answer) => Attempt::Refused(refusal(&answer)),
        }
    }
}

/// Sends the user to sign in (the session ended mid-upload; what is staged stays staged, and
/// choosing the same files after signing in resumes) and says so.
fn signed_out() -> String {
    #[cfg(target_arch = "wasm32")]
    crate::components::error::send_to_sign_in();
    AppError::Unauthorized.to_string()
}

/// The message of a refused chunk: the server's own words (its JSON error), else its status.
fn refusal(answer: &Answer) -> String {
    match serde_json::from_str::<AppError>(&answer.text) {
        Ok(error) => error.to_string(),
        Err(_) if answer.text.trim().is_empty() || answer.text.len() > 300 => {
            format!("the server answered {}", answer.status)
        }
        Err(_) => format!("the server answered {}: {}", answer.status, answer.text.trim()),
    }
}

/// Posts a chunk, retrying with backoff while no answer comes or the server asks to wait (503,
/// 429, honouring `Retry-After`); every other answer is final and its message returned.
async fn send_chunk(
    path: &str,
    body: &[u8],
    on_bytes: &OnBytesSent,
    on_retry: &mut impl FnMut(Option<String>),
) -> Result<ChunkAck, String> {
    let mut delay_ms = 500;
    let mut last_problem = String::new();
    for attempt in 1..=MAX_ATTEMPTS {
        let answer = match Posting::start(path, body, on_bytes.clone()) {
            Ok(posting) => posting.answer().await,
            Err(problem) => Err(problem),
        };
        match Attempt::of(answer) {
            Attempt::Stored(text) => {
                on_retry(None);
                return serde_json::from_str(&text).map_err(|e| format!("unexpected answer from the server: {e}"));
            }
            Attempt::Refused(message) => {
                on_retry(None);
                return Err(message);
            }
            Attempt::SignedOut => {
                on_retry(None);
                return Err(signed_out());
            }
            Attempt::Later { problem, retry_after_ms } => {
                let wait = retry_after_ms.unwrap_or(delay_ms).clamp(100, 120_000);
                on_retry(Some(format!(
                    "Connection problem ({problem}); retry {attempt} of {MAX_ATTEMPTS} in {:.1} s…",
                    wait as f64 / 1000.0
                )));
                last_problem = problem;
                sleep_ms(wait).await;
                delay_ms = (delay_ms * 2).min(15_000);
            }
        }
    }
    Err(format!("The upload stopped: {last_problem}. Choose Upload again to resume where it stopped."))
}

fn describe(e: JsValue) -> String {
    e.as_string().unwrap_or_else(|| format!("{e:?}"))
}

/// An answer to a POST: its status, body text and `Retry-After` (seconds, as milliseconds).
struct Answer {
    status: u16,
    text: String,
    retry_after_ms: Option<i32>,
}

/// A POST of bytes under way (an `XMLHttpRequest`: unlike `fetch`, it tells how much of the
/// body has gone out), reporting its progress until it is answered.
struct Posting {
    request: web_sys::XmlHttpRequest,
    ended: JsFuture,
    body_len: f64,
    reported: Rc<Cell<f64>>,
    on_bytes: OnBytesSent,
    /// Kept alive while the request runs.
    _progress: Closure<dyn FnMut(web_sys::ProgressEvent)>,
}

impl Posting {
    /// Sends a POST of `body` to `path` now; `on_bytes` hears its body go out.
    fn start(path: &str, body: &[u8], on_bytes: OnBytesSent) -> Result<Self, String> {
        let request = web_sys::XmlHttpRequest::new().map_err(describe)?;
        request.open_with_async("POST", path, true).map_err(describe)?;
        request.set_request_header("content-type", "application/octet-stream").map_err(describe)?;
        let reported = Rc::new(Cell::new(0.0));
        let progress = {
            let (reported, on_bytes) = (reported.clone(), on_bytes.clone());
            Closure::<dyn FnMut(web_sys::ProgressEvent)>::new(move |event: web_sys::ProgressEvent| {
                let loaded = event.loaded();
                if loaded > reported.get() {
                    on_bytes((loaded - reported.get()) as i64);
                    reported.set(loaded);
                }
            })
        };
        request.upload().map_err(describe)?.set_onprogress(Some(progress.as_ref().unchecked_ref()));
        // `loadend` follows an answer, an error and an abort alike.
        let ended = js_sys::Promise::new(&mut |resolve, _| request.set_onloadend(Some(&resolve)));
        // Sent as a Blob: Chromium's `send` of a Uint8Array of a chunk's size (~1.7 MB) kept
        // the page's thread 16-80 ms, of a Blob of the same bytes 2-5 ms (made included).
        let bytes = js_sys::Array::of1(&js_sys::Uint8Array::from(body));
        let blob = web_sys::Blob::new_with_u8_array_sequence(&bytes).map_err(describe)?;
        request.send_with_opt_blob(Some(&blob)).map_err(describe)?;
        Ok(Self {
            request,
            ended: JsFuture::from(ended),
            body_len: body.len() as f64,
            reported,
            on_bytes,
            _progress: progress,
        })
    }

    /// The answer: its status, body text and `Retry-After`; or why no answer came.
    async fn answer(self) -> Result<Answer, String> {
        let _ = self.ended.await;
        let status = self.request.status().unwrap_or(0);
        if status == 0 {
            return Err("the connection was lost".to_owned());
        }
        // Answered: the whole body went out, whether or not every progress event came.
        if self.body_len > self.reported.get() {
            (self.on_bytes)((self.body_len - self.reported.get()) as i64);
        }
        let retry_after_ms = self
            .request
            .get_response_header("retry-after")
            .ok()
            .flatten()
            .and_then(|value| value.trim().parse::<f64>().ok())
            .map(|seconds| (seconds * 1000.0).min(120_000.0) as i32);
        let text = self.request.response_text().ok().flatten().unwrap_or_default();
        Ok(Answer { status, text, retry_after_ms })
    }
}

/// The entries a drop brings (files and folders). Taken while the drop event is handled:
/// afterwards the browser no longer gives them out.
pub fn dropped_entries(transfer: &web_sys::DataTransfer) -> Vec<web_sys::FileSystemEntry> {
    let items = transfer.items();
    (0..items.length())
        .filter_map(|i| items.get(i))
        .filter_map(|item| item.webkit_get_as_entry().ok().flatten())
        .collect()
}

/// Every file among `entries` with its name (see [`name_in_folder`]), reading dropped folders
/// (and their sub-folders) to the end.
pub async fn files_of(entries: Vec<web_sys::FileSystemEntry>) -> Vec<(String, File)> {
    let mut pending = entries;
    let mut files = Vec::new();
    while let Some(entry) = pending.pop() {
        if entry.is_file() {
            let entry: web_sys::FileSystemFileEntry = entry.unchecked_into();
            let file = callback(|ok, fail| {
                entry.file_with_callback_and_callback(ok, fail);
                Ok(())
            })
            .await;
            if let Ok(file) = file {
                let file = file.unchecked_into::<web_sys::File>();
                files.push((name_in_folder(&entry.full_path(), &file.name()), File::from(file)));
            }
        } else if entry.is_directory() {
            let reader = entry.unchecked_into::<web_sys::FileSystemDirectoryEntry>().create_reader();
            // A folder's entries come in batches until an empty one.
            while let Ok(batch) = callback(|ok, fail| reader.read_entries_with_callback_and_callback(ok, fail)).await {
                let batch: js_sys::Array = batch.unchecked_into();
                if batch.length() == 0 {
                    break;
                }
                pending.extend(batch.iter().map(|entry| entry.unchecked_into()));
            }
        }
    }
    files
}

/// Calls a callback-style browser API and waits for its success or error callback.
async fn callback(
    call: impl FnOnce(&js_sys::Function, &js_sys::Function) -> Result<(), JsValue>,
) -> Result<JsValue, JsValue> {
    let mut call = Some(call);
    let mut failed = None;
    let promise = js_sys::Promise::new(&mut |resolve, reject| {
        if let Some(call) = call.take() {
            if let Err(error) = call(&resolve, &reject) {
                failed = Some(error);
            }
        }
    });
    if let Some(error) = failed {
        return Err(error);
    }
    JsFuture::from(promise).await
}

/// Waits `ms` milliseconds without blocking the page.
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = leptos::prelude::window().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

/// Milliseconds since the page loaded, for rates.
pub fn now_ms() -> f64 {
    leptos::prelude::window().performance().map(|p| p.now()).unwrap_or_default()
}

/// Offers `text` as a download named `name`.
pub fn download(name: &str, text: &str) {
    let blob = Blob::new_with_options(text, Some("text/csv;charset=utf-8"));
    let url = gloo_file::ObjectUrl::from(blob);
    let document = leptos::prelude::document();
    if let Ok(link) = document.create_element("a") {
        let _ = link.set_attribute("href", &url);
        let _ = link.set_attribute("download", name);
        if let Some(link) = link.dyn_ref::<web_sys::HtmlElement>() {
            link.click();
        }
    }
    // Revoking the URL at once could cut the download short; a minute later it is done.
    leptos::task::spawn_local(async move {
        sleep_ms(60_000).await;
        drop(url);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, text: &str, retry_after_ms: Option<i32>) -> Result<Answer, String> {
        Ok(Answer { status, text: text.to_owned(), retry_after_ms })
    }

    fn json(error: AppError) -> String {
        serde_json::to_string(&error).unwrap()
    }

    #[test]
    fn a_server_error_with_a_message_is_final_and_shows_that_message() {
        // Seen: a chunk answered 500 was retried 12 times over 2.5 minutes as a "connection problem".
        let attempt = Attempt::of(answer(500, &json(AppError::Internal), None));
        assert_eq!(attempt, Attempt::Refused(AppError::Internal.to_string()));
        let attempt = Attempt::of(answer(500, "column upload_id does not exist", None));
        assert_eq!(attempt, Attempt::Refused("the server answered 500: column upload_id does not exist".into()));
    }

    #[test]
    fn refusals_of_the_chunk_are_final() {
        for (status, error) in [
            (400, AppError::invalid("Row 3 of the chunk has an empty code")),
            (403, AppError::forbidden("not yours")),
            (409, AppError::conflict("This upload is cancelled")),
            (413, AppError::invalid("too large")),
        ] {
            assert_eq!(Attempt::of(answer(status, &json(error.clone()), None)), Attempt::Refused(error.to_string()));
        }
    }

    #[test]
    fn no_answer_or_an_answer_asking_to_wait_is_retried_honouring_retry_after() {
        assert_eq!(
            Attempt::of(Err("the connection was lost".into())),
            Attempt::Later { problem: "the connection was lost".into(), retry_after_ms: None }
        );
        let busy = Attempt::of(answer(503, "", Some(3000)));
        assert!(matches!(busy, Attempt::Later { retry_after_ms: Some(3000), .. }), "{busy:?}");
        let throttled = Attempt::of(answer(429, &json(AppError::Throttled("slow down".into())), None));
        assert!(matches!(&throttled, Attempt::Later { problem, .. } if problem.contains("slow down")), "{throttled:?}");
        assert_eq!(Attempt::of(answer(200, "{}", None)), Attempt::Stored("{}".into()));
    }

    #[test]
    fn an_ended_session_is_told_apart_so_the_page_sends_the_user_to_sign_in() {
        assert_eq!(Attempt::of(answer(401, &json(AppError::Unauthorized), None)), Attempt::SignedOut);
    }
}
