//! Checking files and cutting their chunks off the page's thread, on every core the browser
//! has: a pool of Web Workers, each running this same WASM bundle (`/pkg/worker.js` loads it
//! and hands every message to [`on_message`]). The page keeps the drawing and the requests;
//! a worker reads a file, checks its rows and compresses its chunks. Where the browser starts
//! no worker (or `?workers=0` asks for none), the same code runs on the page, as before.
//!
//! The page and a worker speak in plain objects: `{job, kind, …}`. The page asks `validate`
//! (a file, its merchant and read options) and hears `progress` and then `validated`; or asks
//! `chunks` (the same, and the first chunk wanted) and hears `chunk` after `chunk` — each one
//! cut while the page sends the one before, never more than one ahead (`more` asks for the
//! next) — and then `end`; `stop` ends a job early, `failed` says why a job ended.

use std::{
    cell::RefCell,
    collections::{HashMap, VecDeque},
    rc::Rc,
    task::{Poll, Waker},
};

use gloo_file::File;
use uuid::Uuid;
use web_sys::wasm_bindgen::{closure::Closure, JsCast, JsValue};

use super::client::{check, sleep_ms, Checked, Chunk, FileChunks};
use crate::csv::ReadOptions;

/// The most workers a page starts, whatever the browser's core count.
const MAX_WORKERS: usize = 4;
/// How long the workers may take to load the bundle before the page does their work itself.
const START_TIMEOUT_MS: i32 = 30_000;
/// What a job hears when its worker died under it.
const WORKER_DIED: &str = "the browser stopped the file checker (out of memory?); reload the page and try again";

/// Messages for one task, awaited one by one.
#[derive(Default)]
struct Mailbox {
    queue: VecDeque<JsValue>,
    waker: Option<Waker>,
    closed: bool,
}

type Inbox = Rc<RefCell<Mailbox>>;

fn deliver(inbox: &Inbox, message: JsValue) {
    let mut mailbox = inbox.borrow_mut();
    mailbox.queue.push_back(message);
    if let Some(waker) = mailbox.waker.take() {
        waker.wake();
    }
}

fn close(inbox: &Inbox) {
    let mut mailbox = inbox.borrow_mut();
    mailbox.closed = true;
    if let Some(waker) = mailbox.waker.take() {
        waker.wake();
    }
}

/// The next message, or `None` once the inbox is closed and empty.
async fn receive(inbox: &Inbox) -> Option<JsValue> {
    std::future::poll_fn(|cx| {
        let mut mailbox = inbox.borrow_mut();
        if let Some(message) = mailbox.queue.pop_front() {
            return Poll::Ready(Some(message));
        }
        if mailbox.closed {
            return Poll::Ready(None);
        }
        mailbox.waker = Some(cx.waker().clone());
        Poll::Pending
    })
    .await
}

fn message(job: u32, kind: &str, fields: &[(&str, &JsValue)]) -> JsValue {
    let object = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&object, &"job".into(), &JsValue::from(job));
    let _ = js_sys::Reflect::set(&object, &"kind".into(), &JsValue::from_str(kind));
    for (name, value) in fields {
        let _ = js_sys::Reflect::set(&object, &JsValue::from_str(name), value);
    }
    object.into()
}

fn field(message: &JsValue, name: &str) -> JsValue {
    js_sys::Reflect::get(message, &JsValue::from_str(name)).unwrap_or(JsValue::UNDEFINED)
}

fn text(message: &JsValue, name: &str) -> String {
    field(message, name).as_string().unwrap_or_default()
}

fn number(message: &JsValue, name: &str) -> f64 {
    field(message, name).as_f64().unwrap_or_default()
}

/// What a job is about: the file, its merchant and how it is read.
fn request(job: u32, kind: &str, file: &File, merchant: Uuid, options: &ReadOptions, skip: i32) -> JsValue {
    let options = serde_json::to_string(options).unwrap_or_default();
    let file: &web_sys::File = file.as_ref();
    message(
        job,
        kind,
        &[
            ("file", file),
            ("merchant", &JsValue::from_str(&merchant.to_string())),
            ("options", &JsValue::from_str(&options)),
            ("skip", &JsValue::from(skip)),
        ],
    )
}

fn read_request(message: &JsValue) -> Result<(File, Uuid, ReadOptions, i32), String> {
    let file = field(message, "file").dyn_into::<web_sys::File>().map_err(|_| "no file was given".to_owned())?;
    let merchant = text(message, "merchant").parse::<Uuid>().map_err(|e| e.to_string())?;
    let options = serde_json::from_str(&text(message, "options")).map_err(|e| e.to_string())?;
    Ok((File::from(file), merchant, options, number(message, "skip") as i32))
}

// ---- In the worker ----

thread_local! {
    /// The running `chunks` jobs of this worker, told `more` and `stop` through their inboxes.
    static RUNNING: RefCell<HashMap<u32, Inbox>> = RefCell::default();
}

fn post(message: &JsValue, transfer: Option<&JsValue>) {
    let scope: web_sys::DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let _ = match transfer {
        Some(buffer) => scope.post_message_with_transfer(message, &js_sys::Array::of1(buffer)),
        None => scope.post_message(message),
    };
}

/// Tells the page that this worker has loaded the bundle and takes jobs.
pub fn ready() {
    post(&message(0, "ready", &[]), None);
}

/// One message from the page, in the worker.
pub fn on_message(request: JsValue) {
    let job = number(&request, "job") as u32;
    match text(&request, "kind").as_str() {
        "validate" => wasm_bindgen_futures::spawn_local(async move {
            let checked = match read_request(&request) {
                Ok((file, merchant, options, _)) => {
                    check(&file, merchant, &options, |bytes| {
                        post(&message(job, "progress", &[("bytes", &JsValue::from(bytes as f64))]), None)
                    })
                    .await
                }
                Err(problem) => Err(problem),
            };
            let result = serde_json::to_string(&checked).unwrap_or_default();
            post(&message(job, "validated", &[("result", &JsValue::from_str(&result))]), None);
        }),
        "chunks" => {
            let inbox = Inbox::default();
            RUNNING.with_borrow_mut(|running| running.insert(job, inbox.clone()));
            wasm_bindgen_futures::spawn_local(async move {
                match read_request(&request) {
                    Ok((file, merchant, options, skip)) => {
                        cut_chunks(job, &inbox, &file, merchant, &options, skip).await
                    }
                    Err(problem) => post(&message(job, "failed", &[("problem", &JsValue::from_str(&problem))]), None),
                }
                RUNNING.with_borrow_mut(|running| running.remove(&job));
            });
        }
        "more" | "stop" => {
            if let Some(inbox) = RUNNING.with_borrow(|running| running.get(&job).cloned()) {
                deliver(&inbox, request);
            }
        }
        _ => {}
    }
}

/// Cuts the chunks of `file` from number `skip` on and posts each one, waiting for `more`
/// before cutting past the one the page has not taken yet.
async fn cut_chunks(job: u32, inbox: &Inbox, file: &File, merchant: Uuid, options: &ReadOptions, skip: i32) {
    let mut chunks = FileChunks::new(file, merchant, options);
    let mut wanted = 1u32;
    loop {
        while wanted == 0 {
            match receive(inbox).await {
                Some(asked) if text(&asked, "kind") == "more" => wanted += 1,
                _ => return,
            }
        }
        match chunks.next().await {
            Some(Ok((seq, body, rows))) if seq >= skip => {
                let body = js_sys::Uint8Array::from(body.as_slice());
                let chunk = message(
                    job,
                    "chunk",
                    &[("seq", &JsValue::from(seq)), ("rows", &JsValue::from(rows as f64)), ("body", &body)],
                );
                post(&chunk, Some(&body.buffer()));
                wanted -= 1;
            }
            Some(Ok(_)) => {}
            Some(Err(problem)) => {
                return post(&message(job, "failed", &[("problem", &JsValue::from_str(&problem))]), None);
            }
            None => return post(&message(job, "end", &[]), None),
        }
    }
}

// ---- On the page ----

/// The page's workers: which are free, who waits for one, and each job's inbox.
#[derive(Default)]
struct Pool {
    state: PoolState,
    workers: Vec<Option<web_sys::Worker>>,
    free: Vec<usize>,
    waiting: Vec<Waker>,
    /// Each job's worker and inbox.
    jobs: HashMap<u32, (usize, Inbox)>,
    next_job: u32,
    /// How many workers have loaded the bundle.
    loaded: usize,
}

#[derive(Default, Clone, Copy, PartialEq, Debug)]
enum PoolState {
    /// No worker asked for yet.
    #[default]
    Unstarted,
    /// Workers started, none ready yet.
    Starting,
    /// At least one worker took the bundle.
    Ready,
    /// None: the page does the work itself.
    Unavailable,
}

thread_local! {
    static POOL: RefCell<Pool> = RefCell::default();
    /// The workers' message and error handlers, alive as long as the page.
    static HANDLERS: RefCell<Vec<JsValue>> = RefCell::default();
}

/// How many workers the page runs: one per core the browser reports (at most
/// [`MAX_WORKERS`]), or as many as `?workers=` asks (0: none, the page does the work).
pub fn planned_workers() -> usize {
    let asked = leptos::prelude::window()
        .location()
        .search()
        .ok()
        .and_then(|query| {
            query.trim_start_matches('?').split('&').find_map(|pair| pair.strip_prefix("workers=").map(str::to_owned))
        })
        .and_then(|n| n.parse::<usize>().ok());
    let cores = leptos::prelude::window().navigator().hardware_concurrency() as usize;
    asked.unwrap_or(cores).min(MAX_WORKERS)
}

/// How many files the page checks at once: one per worker, or one on the page itself.
pub fn lanes() -> usize {
    POOL.with_borrow(|pool| match pool.state {
        PoolState::Unavailable => 1,
        PoolState::Ready => pool.workers.iter().flatten().count().max(1),
        _ => planned_workers().max(1),
    })
}

fn wake_all(pool: &mut Pool) {
    for waker in pool.waiting.drain(..) {
        waker.wake();
    }
}

fn start_workers() {
    let count = planned_workers();
    if count == 0 {
        POOL.with_borrow_mut(|pool| pool.state = PoolState::Unavailable);
        return;
    }
    POOL.with_borrow_mut(|pool| pool.state = PoolState::Starting);
    let options = web_sys::WorkerOptions::new();
    options.set_type(web_sys::WorkerType::Module);
    for index in 0..count {
        let Ok(worker) = web_sys::Worker::new_with_options("/pkg/worker.js", &options) else { continue };
        let on_message = Closure::<dyn FnMut(web_sys::MessageEvent)>::new(move |event: web_sys::MessageEvent| {
            let data = event.data();
            POOL.with_borrow_mut(|pool| {
                if text(&data, "kind") == "ready" {
                    pool.state = PoolState::Ready;
                    pool.free.push(index);
                    wake_all(pool);
                    // How many workers took the bundle, for whoever watches the page (the
                    // benchmark times checks with the workers loaded, as a user meets them).
                    pool.loaded += 1;
                    if let Some(body) = leptos::prelude::document().body() {
                        let _ = body.set_attribute("data-workers-ready", &pool.loaded.to_string());
                    }
                } else if let Some((_, inbox)) = pool.jobs.get(&(number(&data, "job") as u32)) {
                    deliver(inbox, data);
                }
            });
        });
        let on_error = Closure::<dyn FnMut(web_sys::Event)>::new(move |_: web_sys::Event| worker_died(index));
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        HANDLERS.with_borrow_mut(|handlers| {
            handlers.push(on_message.into_js_value());
            handlers.push(on_error.into_js_value());
        });
        POOL.with_borrow_mut(|pool| {
            pool.workers.resize(index + 1, None);
            pool.workers[index] = Some(worker);
        });
    }
    // Workers that never load (a blocked script, a browser without module workers) leave the
    // work to the page.
    wasm_bindgen_futures::spawn_local(async {
        sleep_ms(START_TIMEOUT_MS).await;
        POOL.with_borrow_mut(|pool| {
            if pool.state == PoolState::Starting {
                pool.state = PoolState::Unavailable;
                wake_all(pool);
            }
        });
    });
}

/// Starts the page's workers now (if they are not started yet), so that they have loaded the
/// bundle by the time the user chooses a file: the first check then does not wait for them.
pub fn warm_up() {
    if POOL.with_borrow(|pool| pool.state) == PoolState::Unstarted {
        start_workers();
    }
}

/// A worker failed (its script did not load, or its bundle trapped): it is stopped, its jobs
/// end with [`WORKER_DIED`], and the others carry on; with none left the page works alone.
fn worker_died(index: usize) {
    POOL.with_borrow_mut(|pool| {
        if let Some(worker) = pool.workers.get_mut(index).and_then(Option::take) {
            worker.terminate();
        }
        pool.free.retain(|&i| i != index);
        for (worker, inbox) in pool.jobs.values() {
            if *worker == index {
                deliver(inbox, message(0, "failed", &[("problem", &JsValue::from_str(WORKER_DIED))]));
                close(inbox);
            }
        }
        if pool.workers.iter().all(Option::is_none) {
            pool.state = PoolState::Unavailable;
        }
        wake_all(pool);
    });
}

/// A free worker, for one job; `None` when the page has none and does the work itself. Waits
/// while every worker is busy.
pub async fn lease() -> Option<Lease> {
    if POOL.with_borrow(|pool| pool.state) == PoolState::Unstarted {
        start_workers();
    }
    std::future::poll_fn(|cx| {
        POOL.with_borrow_mut(|pool| {
            if let Some(worker) = pool.free.pop() {
                return Poll::Ready(Some(Lease { worker }));
            }
            if pool.state == PoolState::Unavailable {
                return Poll::Ready(None);
            }
            pool.waiting.push(cx.waker().clone());
            Poll::Pending
        })
    })
    .await
}

/// One worker, kept for one job and given back when dropped.
pub struct Lease {
    worker: usize,
}

impl Drop for Lease {
    fn drop(&mut self) {
        POOL.with_borrow_mut(|pool| {
            if pool.workers.get(self.worker).is_some_and(Option::is_some) {
                pool.free.push(self.worker);
            }
            wake_all(pool);
        });
    }
}

/// A job on a leased worker: its number and the inbox its answers arrive in.
struct Job {
    id: u32,
    inbox: Inbox,
    lease: Lease,
}

impl Job {
    fn start(lease: Lease, request: impl FnOnce(u32) -> JsValue) -> Self {
        let inbox = Inbox::default();
        let id = POOL.with_borrow_mut(|pool| {
            pool.next_job += 1;
            pool.jobs.insert(pool.next_job, (lease.worker, inbox.clone()));
            pool.next_job
        });
        let job = Self { id, inbox, lease };
        job.send(&request(id));
        job
    }

    fn send(&self, message: &JsValue) {
        POOL.with_borrow(|pool| {
            if let Some(Some(worker)) = pool.workers.get(self.lease.worker) {
                let _ = worker.post_message(message);
            }
        });
    }

    /// The next answer; after the last, or when the worker died, a `failed` one.
    async fn receive(&self) -> JsValue {
        match receive(&self.inbox).await {
            Some(answer) => answer,
            None => message(self.id, "failed", &[("problem", &JsValue::from_str(WORKER_DIED))]),
        }
    }
}

impl Drop for Job {
    fn drop(&mut self) {
        self.send(&message(self.id, "stop", &[]));
        POOL.with_borrow_mut(|pool| pool.jobs.remove(&self.id));
    }
}

impl Lease {
    /// Checks every row of `file` in this worker; `on_bytes` hears how far it is.
    pub async fn check(
        self,
        file: &File,
        merchant: Uuid,
        options: &ReadOptions,
        mut on_bytes: impl FnMut(u64),
    ) -> Result<Checked, String> {
        let job = Job::start(self, |id| request(id, "validate", file, merchant, options, 0));
        loop {
            let answer = job.receive().await;
            match text(&answer, "kind").as_str() {
                "progress" => on_bytes(number(&answer, "bytes") as u64),
                "validated" => {
                    let result: Result<Checked, String> = serde_json::from_str(&text(&answer, "result"))
                        .map_err(|e| format!("unexpected answer from the file checker: {e}"))?;
                    return result;
                }
                _ => return Err(text(&answer, "problem")),
            }
        }
    }

    /// The chunks of `file` from number `skip` on, cut in this worker.
    pub fn chunks(self, file: &File, merchant: Uuid, options: &ReadOptions, skip: i32) -> Chunks {
        Chunks { job: Job::start(self, |id| request(id, "chunks", file, merchant, options, skip)) }
    }
}

/// A file's chunks as a worker cuts them (see [`Lease::chunks`]).
pub struct Chunks {
    job: Job,
}

impl Chunks {
    /// The next chunk; `None` after the last. Taking one lets the worker cut the next.
    pub async fn next(&mut self) -> Option<Result<Chunk, String>> {
        let answer = self.job.receive().await;
        match text(&answer, "kind").as_str() {
            "chunk" => {
                self.job.send(&message(self.job.id, "more", &[]));
                let body = field(&answer, "body").dyn_into::<js_sys::Uint8Array>().map(|b| b.to_vec());
                match body {
                    Ok(body) => Some(Ok((number(&answer, "seq") as i32, body, number(&answer, "rows") as usize))),
                    Err(_) => Some(Err("unexpected answer from the file checker: no chunk".to_owned())),
                }
            }
            "end" => None,
            _ => Some(Err(text(&answer, "problem"))),
        }
    }
}
