//! `/upload`: choose files, validate them in the browser, and stage them, resumably.

use leptos::{ev, prelude::*, task::spawn_local};
use leptos_router::components::A;
use uuid::Uuid;

use crate::{
    admin::list_merchants,
    components::{
        activity::{ask_to_notify, follow_running, PageTitle},
        columns::ColumnRules,
        error::ErrorNotice,
        file_table::{percent, BatchTotals, FileEntry, FilesTable},
        format::{format_bytes, format_count},
        mapping::MappingGroup,
        merchant_picker::MerchantPicker,
        progress::ProgressBar,
    },
    csv::{layout_key, sample, suggest, ColumnMapping, ReadOptions},
    duplicates::start_check,
    mappings::{column_mappings, save_column_mapping},
    pages::review::MerchantReview,
    staging::{
        cancel_upload, client, staged_files, unfinished_upload,
        uploader::{self, RunEnd, RunView},
        worker, FileManifest, StagedFile, UploadState,
    },
};

/// Where the page is in the journey.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Choosing,
    Uploading,
    Done(UploadState),
    /// Sending stopped at the user's request: they choose whether its rows stay staged.
    Stopping(UploadState),
    Cancelled(UploadState),
    Failed(String),
}

/// Upload progress over the whole batch.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Progress {
    total_rows: i64,
    rows_done: i64,
    /// Bytes of request bodies gone out (a resent chunk counts again).
    bytes_sent: i64,
    rows_at_start: i64,
    started_ms: f64,
    now_ms: f64,
}

impl Progress {
    fn rows_per_second(&self) -> f64 {
        let seconds = (self.now_ms - self.started_ms) / 1000.0;
        if seconds <= 0.0 {
            0.0
        } else {
            (self.rows_done - self.rows_at_start) as f64 / seconds
        }
    }
}

/// Draws an upload run ([`uploader::run`]) on the page's signals.
struct RunOnPage {
    files: RwSignal<Vec<FileEntry>>,
    progress: RwSignal<Progress>,
    notice: RwSignal<Option<String>>,
    cancel_requested: RwSignal<bool>,
}

impl RunOnPage {
    fn update_file(&self, name: &str, change: impl FnOnce(&mut FileEntry)) {
        self.files.update(|all| {
            if let Some(entry) = all.iter_mut().find(|f| f.name == name) {
                change(entry);
            }
        });
    }
}

impl RunView for RunOnPage {
    fn started(&self, state: &UploadState) {
        let now = client::now_ms();
        self.progress.set(Progress {
            total_rows: state.total_rows,
            rows_done: state.rows_received(),
            bytes_sent: 0,
            rows_at_start: state.rows_received(),
            started_ms: now,
            now_ms: now,
        });
        for part in &state.files {
            self.update_file(&part.name, |entry| {
                entry.rows_sent = part.rows_received;
                entry.upload_error = None;
            });
        }
    }

    fn bytes_sent(&self, bytes: i64) {
        self.progress.update(|p| {
            p.bytes_sent += bytes;
            p.now_ms = client::now_ms();
        });
    }

    fn chunk_stored(&self, name: &str, rows: i64) {
        self.progress.update(|p| {
            p.rows_done += rows;
            p.now_ms = client::now_ms();
        });
        self.update_file(name, |entry| entry.rows_sent += rows);
    }

    fn file_failed(&self, name: &str, problem: &str) {
        self.update_file(name, |entry| entry.upload_error = Some(problem.to_owned()));
    }

    fn notice(&self, notice: Option<String>) {
        self.notice.set(notice);
    }

    fn stop_requested(&self) -> bool {
        self.cancel_requested.get_untracked()
    }

    fn options(&self, name: &str) -> ReadOptions {
        self.files
            .with_untracked(|all| all.iter().find(|f| f.name == name).map(|f| f.options.clone()).unwrap_or_default())
    }
}

/// The upload page: merchant, files, the validation table, and the upload with its progress.
#[component]
pub fn UploadPage() -> impl IntoView {
    let merchants = Resource::new(|| (), |_| list_merchants());
    let merchant = RwSignal::new(None::<Uuid>);
    let files = RwSignal::new(Vec::<FileEntry>::new());
    let phase = RwSignal::new(Phase::Choosing);
    let progress = RwSignal::new(Progress::default());
    let cancel_requested = RwSignal::new(false);
    let notice = RwSignal::new(None::<String>);
    // Files staged in the merchant's batch already: a file chosen again is marked, not resent.
    let staged = RwSignal::new(Vec::<StagedFile>::new());
    let refresh_staged = move || {
        spawn_local(async move {
            let list = match merchant.get_untracked() {
                Some(merchant) => staged_files(merchant).await.unwrap_or_default(),
                None => Vec::new(),
            };
            staged.set(list);
        })
    };
    Effect::new(move |_| {
        merchant.track();
        refresh_staged();
    });
    // The file checkers load while the user chooses files.
    Effect::new(move |_| worker::warm_up());
    let picked_again = RwSignal::new(Vec::<String>::new());
    let unfinished = Resource::new(
        move || (merchant.get(), phase.get() == Phase::Choosing),
        |(merchant, _)| async move {
            match merchant {
                Some(merchant) => unfinished_upload(merchant).await,
                None => Ok(None),
            }
        },
    );

    // A user with one merchant has it chosen for them, and `?merchant=` (from the home page)
    // chooses one (in the browser, once the list is known).
    let query = leptos_router::hooks::use_query_map();
    Effect::new(move |_| {
        if let Some(Ok(list)) = merchants.get() {
            let asked = query.read_untracked().get("merchant").and_then(|m| m.parse::<Uuid>().ok());
            let chosen = asked.filter(|id| list.iter().any(|m| m.id == *id));
            if merchant.get_untracked().is_none() {
                match (chosen, list.len()) {
                    (Some(id), _) => merchant.set(Some(id)),
                    (None, 1) => merchant.set(Some(list[0].id)),
                    _ => {}
                }
            }
        }
    });

    // Checks one chosen file (`name`, not being checked already) and puts what it found in
    // its entry — unless the file changed meanwhile (its options, the merchant): then it stays
    // pending, to be checked again.
    let check_file = move |merchant: Uuid, name: String, file: gloo_file::File| async move {
        let update = |change: &dyn Fn(&mut FileEntry)| {
            files.update(|all| {
                if let Some(entry) = all.iter_mut().find(|f| f.name == name) {
                    change(entry);
                }
            })
        };
        let (options, checks) = files.with_untracked(|all| {
            all.iter().find(|f| f.name == name).map(|f| (f.options.clone(), f.checks)).unwrap_or_default()
        });
        let result =
            client::validate(&name, &file, merchant, &options, |bytes| update(&|e| e.checked_bytes = bytes)).await;
        let stale = files.with_untracked(|all| all.iter().find(|f| f.name == name).map(|f| f.checks)) != Some(checks);
        if stale || merchant_changed(merchant, merchant.into()) {
            return;
        }
        // A file whose columns are to be mapped is mapped as last time, if its layout was
        // mapped before (and checked again with it).
        if let Ok(validated) = &result {
            if validated.report.needs_mapping() && options.mapping.is_none() {
                let layout = layout_key(&validated.report.header);
                let saved = column_mappings(merchant).await.unwrap_or_default();
                if let Some(saved) = saved.into_iter().find(|s| s.layout == layout) {
                    update(&|e| {
                        e.options.mapping = Some(saved.mapping.clone());
                        e.remembered = true;
                        e.checks += 1;
                    });
                    return;
                }
            }
        }
        match result {
            Ok(validated) => {
                update(&|e| {
                    e.report = Some(validated.report.clone());
                    e.checksum = Some(validated.checksum.clone());
                });
            }
            Err(problem) => update(&|e| e.read_error = Some(problem.clone())),
        }
    };

    // The files are checked as many at a time as the page has workers (one on the page itself
    // without them); asked again while they run, the running loops pick up the newly pending
    // files themselves. A file being checked is never taken by a second loop.
    let checking = StoredValue::new(Vec::<String>::new());
    let loops = StoredValue::new(0usize);
    let validate_all_pending = move || async move {
        loop {
            let Some(merchant) = merchant.get_untracked() else {
                return;
            };
            let next = files.with_untracked(|all| {
                checking.with_value(|busy| {
                    all.iter().find(|f| !f.is_checked() && !busy.contains(&f.name)).map(|f| f.name.clone())
                })
            });
            let Some(name) = next else { return };
            let Some(file) = client::chosen(&name) else {
                return;
            };
            checking.update_value(|busy| busy.push(name.clone()));
            check_file(merchant, name.clone(), file).await;
            checking.update_value(|busy| busy.retain(|n| *n != name));
        }
    };
    let validate_pending = move || {
        while loops.get_value() < worker::lanes() {
            loops.update_value(|n| *n += 1);
            spawn_local(async move {
                validate_all_pending().await;
                loops.update_value(|n| *n -= 1);
            });
        }
    };

    let add_files = move |picked: Vec<(String, gloo_file::File)>| {
        let mut added = false;
        let mut again = Vec::new();
        for (name, file) in picked {
            if !name.to_lowercase().ends_with(".csv") {
                continue;
            }
            if files.with_untracked(|all| all.iter().any(|f| f.name == name)) {
                again.push(name);
                continue;
            }
            files.update(|all| {
                all.push(FileEntry::chosen(name.clone(), file.size()));
                all.sort_by(|a, b| a.name.cmp(&b.name));
            });
            client::remember(name, file);
            added = true;
        }
        picked_again.set(again);
        if added {
            phase.set(Phase::Choosing);
            // What the batch holds now, not when the page opened: another tab may have staged
            // since, or a crash of the database emptied staging (read once the page said so).
            refresh_staged();
            validate_pending();
        }
    };

    let on_pick = move |event: ev::Event| {
        let input: web_sys::HtmlInputElement = event_target(&event);
        if let Some(list) = input.files() {
            add_files((0..list.length()).filter_map(|i| list.get(i)).map(client::picked).collect());
        }
        input.set_value("");
    };
    let on_drop = move |event: ev::DragEvent| {
        event.prevent_default();
        if merchant.get_untracked().is_none() || phase.get_untracked() == Phase::Uploading {
            return;
        }
        // Dropped folders are read to the end; only `.csv` files are kept.
        if let Some(transfer) = event.data_transfer() {
            let entries = client::dropped_entries(&transfer);
            spawn_local(async move { add_files(client::files_of(entries).await) });
        }
    };
    let remove = move |name: String| {
        files.update(|all| all.retain(|f| f.name != name));
        client::forget(&name);
    };
    // One decision per header layout: every file with that layout is checked again with it,
    // and the merchant's next files with it are mapped the same way without asking.
    let apply_mapping = move |layout: String, mapping: ColumnMapping| {
        files.update(|all| {
            for entry in all.iter_mut().filter(|f| f.mapping_layout().as_deref() == Some(layout.as_str())) {
                entry.options.mapping = Some(mapping.clone());
                entry.remembered = false;
                entry.check_again();
            }
        });
        validate_pending();
        if let Some(merchant) = merchant.get_untracked() {
            spawn_local(async move {
                if let Err(error) = save_column_mapping(merchant, layout, mapping).await {
                    notice.set(Some(format!("The mapping could not be remembered: {error}")));
                }
            });
        }
    };
    let mapping_groups = Memo::new(move |_| files.with(|all| mapping_groups(all)));

    // A file read again as the user now says (its encoding): checked anew.
    let read_as = move |name: String, options: ReadOptions| {
        files.update(|all| {
            if let Some(entry) = all.iter_mut().find(|f| f.name == name) {
                entry.options = options;
                entry.check_again();
            }
        });
        validate_pending();
    };
    let choose_merchant = Callback::new(move |chosen: Option<Uuid>| {
        merchant.set(chosen);
        // Validation depends on the merchant: check every file again.
        files.update(|all| {
            for entry in all.iter_mut() {
                entry.check_again();
            }
        });
        validate_pending();
    });

    // Once staging completes, the merchant whose check and review show below.
    let review = RwSignal::new(None::<Uuid>);
    let check_refused = RwSignal::new(None::<String>);
    let start = move |_| {
        let Some(merchant) = merchant.get_untracked() else {
            return;
        };
        let already = staged.get_untracked();
        let chosen: Vec<FileEntry> = files.get_untracked().into_iter().filter(|f| f.to_send(&already)).collect();
        let manifests: Vec<FileManifest> = chosen
            .iter()
            .filter_map(|f| {
                let report = f.report.clone()?;
                Some(FileManifest {
                    name: f.name.clone(),
                    size: f.size as i64,
                    checksum: f.checksum.clone()?,
                    rows: report.rows_staged,
                    report,
                    restage: f.already_staged(&already).is_some(),
                })
            })
            .collect();
        cancel_requested.set(false);
        notice.set(None);
        phase.set(Phase::Uploading);
        let view = std::rc::Rc::new(RunOnPage { files, progress, notice, cancel_requested });
        spawn_local(async move {
            match uploader::run(merchant, manifests, view).await {
                RunEnd::Done(state) => {
                    phase.set(Phase::Done(state));
                    refresh_staged();
                    // The journey goes on: the duplicate check starts, and the review shows
                    // below (with what runs, if the check was refused as busy, and why).
                    check_refused.set(start_check(merchant).await.err().map(|error| error.to_string()));
                    review.set(Some(merchant));
                }
                RunEnd::Stopped(state) => phase.set(Phase::Stopping(state)),
                RunEnd::Failed(problem) => phase.set(Phase::Failed(problem)),
            }
        });
    };

    // `webkitdirectory` has no typed attribute in Leptos; set it once the input exists.
    let folder_input = NodeRef::<leptos::html::Input>::new();
    Effect::new(move |_| {
        if let Some(input) = folder_input.get() {
            let _ = input.set_attribute("webkitdirectory", "");
        }
    });

    let can_upload = move || {
        merchant.get().is_some()
            // After a finished upload the same files would be staged twice: choose files anew.
            && !matches!(phase.get(), Phase::Uploading | Phase::Done(_))
            && !matches!(phase.get(), Phase::Stopping(_))
            && staged.with(|already| {
                files.with(|all| all.iter().all(FileEntry::is_checked) && all.iter().any(|f| f.to_send(already)))
            })
    };
    let uploading = move || phase.get() == Phase::Uploading;
    // What the server kept of a cancelled upload is what each file has sent now.
    let after_cancel = move |state: &UploadState| {
        files.update(|all| {
            for entry in all.iter_mut() {
                if let Some(part) = state.files.iter().find(|f| f.name == entry.name) {
                    entry.rows_sent = part.rows_received;
                }
            }
        });
        refresh_staged();
    };

    // A user in another tab sees the upload's progress in this tab's title, and is notified when
    // it ends.
    follow_running(
        move || {
            Some((phase.get() == Phase::Uploading).then(|| {
                let p = progress.get();
                format!("Uploading {}%", percent(p.rows_done, p.total_rows))
            }))
        },
        move || match phase.get_untracked() {
            Phase::Done(state) => Some((
                "Upload finished",
                format!(
                    "Staged {} rows from {} file(s). The duplicate check has started.",
                    format_count(state.rows_received()),
                    state.files.len()
                ),
            )),
            Phase::Failed(problem) => Some(("Upload stopped", problem)),
            _ => None,
        },
    );

    view! {
        <PageTitle page="Upload"/>
        <h1>"Upload"</h1>
        <section class="card">
            <h2>"1. Merchant and files"</h2>
            <MerchantPicker merchants chosen=merchant on_choose=choose_merchant disabled=Signal::derive(uploading)/>
            <UnfinishedNotice unfinished phase/>
            <div
                class="drop-zone"
                class:disabled=move || merchant.get().is_none() || uploading()
                on:dragover=|event: ev::DragEvent| event.prevent_default()
                on:drop=on_drop
            >
                <p>"Drop CSV files here, or"</p>
                <label class="button">
                    "Choose files"
                    <input type="file" accept=".csv,text/csv" multiple on:change=on_pick
                        prop:disabled=move || merchant.get().is_none() || uploading() data-testid="pick-files"/>
                </label>
                <label class="button">
                    "Choose a folder"
                    <input type="file" multiple node_ref=folder_input on:change=on_pick data-testid="pick-folder"
                        prop:disabled=move || merchant.get().is_none() || uploading()/>
                </label>
                <p class="muted">"Files are staged in name order. Every row is checked here, in your browser, before anything is sent."</p>
            </div>
            <ColumnRules/>
        </section>

        <Show when=move || files.with(|f| !f.is_empty())>
            <section class="card">
                <h2>"2. Check and upload"</h2>
                {move || (!picked_again.get().is_empty()).then(|| view! {
                    <p class="muted" role="status" data-testid="picked-again">
                        {picked_again.get().join(", ")} " chosen already: each file is listed once."
                    </p>
                })}
                {move || mapping_groups.get().into_iter().enumerate().map(|(group, g)| {
                    let layout = g.layout.clone();
                    view! {
                        <MappingGroup group files=g.files header=g.header rows=g.rows initial=g.mapping
                            applied=g.applied remembered=g.remembered
                            on_apply=move |mapping| apply_mapping(layout.clone(), mapping)/>
                    }
                }).collect_view()}
                {move || notice.get().filter(|_| !uploading()).map(|text| view! { <p class="warning" role="status">{text}</p> })}
                // Over a long list of files, the totals and the upload stay in view (and come
                // first for the keyboard).
                <div class="action-bar" data-testid="action-bar">
                    <BatchTotals files staged/>
                    <div class="actions">
                        <button class="primary" on:click=move |event| { ask_to_notify(); start(event) }
                            prop:disabled=move || !can_upload()>"Upload"</button>
                        <Show when=uploading>
                            <button on:click=move |_| cancel_requested.set(true) prop:disabled=move || cancel_requested.get()>
                                "Cancel"
                            </button>
                        </Show>
                    </div>
                    <Show when=move || !matches!(phase.get(), Phase::Choosing)>
                        <ProgressView progress/>
                    </Show>
                    {move || notice.get().filter(|_| uploading()).map(|text| view! {
                        <p class="warning" role="status" data-testid="upload-notice">{text}</p>
                    })}
                </div>
                {move || match phase.get() {
                    Phase::Done(state) => view! {
                        <p class="success" role="status" data-testid="upload-done">
                            "Staged " {format_count(state.rows_received())} " rows from " {state.files.len()} " file(s)."
                        </p>
                    }.into_any(),
                    Phase::Stopping(state) => view! { <CancelChoice state phase on_done=after_cancel/> }.into_any(),
                    Phase::Cancelled(state) => view! {
                        <p class="warning" role="status" data-testid="upload-cancelled">
                            "Upload cancelled. " {format_count(state.rows_received())} " of "
                            {format_count(state.total_rows)} " rows are staged"
                            {(state.rows_received() > 0).then_some(": choosing the same files again marks them staged already")}
                            "."
                        </p>
                    }.into_any(),
                    Phase::Failed(problem) => view! { <p class="error" role="alert">{problem}</p> }.into_any(),
                    _ => ().into_any(),
                }}
                <FilesTable files remove read_as staged
                    choosing=Signal::derive(move || phase.get() == Phase::Choosing)
                    uploading=Signal::derive(uploading)
                    sending=Signal::derive(move || matches!(phase.get(), Phase::Uploading | Phase::Done(_)))/>
            </section>
        </Show>
        {move || review.get().map(|merchant| view! {
            <h2 class="step">"3. Review"</h2>
            <p class="muted">"Also at " <A href=format!("/review?merchant={merchant}")>"Review"</A> ", any time later."</p>
            {move || check_refused.get().map(|text| view! {
                <p class="error" role="alert" data-testid="check-refused">"The duplicate check did not start: " {text}</p>
            })}
            <MerchantReview merchant/>
        })}
    }
}

/// The files whose columns are to be mapped, one group per header layout, in name order.
#[derive(Debug, Clone, PartialEq)]
struct LayoutGroup {
    layout: String,
    files: Vec<String>,
    header: Vec<String>,
    /// The first rows of the group's first file, for the preview of what is staged.
    rows: Vec<Vec<String>>,
    /// The mapping applied, else the suggestions.
    mapping: ColumnMapping,
    applied: bool,
    remembered: bool,
}

fn mapping_groups(all: &[FileEntry]) -> Vec<LayoutGroup> {
    let mut groups: Vec<LayoutGroup> = Vec::new();
    for entry in all {
        let (Some(layout), Some(report)) = (entry.mapping_layout(), entry.report.as_ref()) else { continue };
        if let Some(group) = groups.iter_mut().find(|g| g.layout == layout) {
            group.files.push(entry.name.clone());
            continue;
        }
        let delimiter = report.delimiter.bytes().next().unwrap_or(b',');
        let (_, rows) = sample(&report.preview, delimiter, report.sep_line, 5);
        let mapping = entry.options.mapping.clone().unwrap_or_else(|| suggest(&report.header, &rows));
        groups.push(LayoutGroup {
            layout,
            files: vec![entry.name.clone()],
            header: report.header.clone(),
            rows,
            mapping,
            applied: entry.options.mapping.is_some(),
            remembered: entry.remembered,
        });
    }
    groups
}

/// Whether the merchant changed while a file was being validated (its result is stale).
fn merchant_changed(used: Uuid, now: Signal<Option<Uuid>>) -> bool {
    now.get_untracked() != Some(used)
}

/// After the user stopped an upload: keep the rows it staged, or remove them. Either way the
/// upload is cancelled; kept rows' files are then marked staged if chosen again.
#[component]
fn CancelChoice(
    state: UploadState,
    phase: RwSignal<Phase>,
    on_done: impl Fn(&UploadState) + Copy + Send + Sync + 'static,
) -> impl IntoView {
    let id = state.id;
    let cancel = Action::new_local(move |remove: &bool| {
        let remove = *remove;
        async move {
            match cancel_upload(id, remove).await {
                Ok(state) => {
                    on_done(&state);
                    phase.set(Phase::Cancelled(state));
                }
                Err(error) => phase.set(Phase::Failed(error.to_string())),
            }
        }
    });
    view! {
        <div class="notice" role="alertdialog" data-testid="cancel-choice">
            <p>
                <strong>"Upload stopped. "</strong>
                {format_count(state.rows_received())} " of " {format_count(state.total_rows)}
                " rows are staged. Keep them staged, or remove them?"
            </p>
            <div class="actions">
                <button data-testid="cancel-keep" on:click=move |_| { cancel.dispatch(false); }
                    prop:disabled=move || cancel.pending().get()>"Keep the staged rows"</button>
                <button class="danger" data-testid="cancel-remove" on:click=move |_| { cancel.dispatch(true); }
                    prop:disabled=move || cancel.pending().get()>"Remove them"</button>
            </div>
        </div>
    }
}

/// The unfinished upload of the chosen merchant, with how to resume or cancel it.
#[component]
fn UnfinishedNotice(
    unfinished: Resource<Result<Option<UploadState>, crate::error::AppError>>,
    phase: RwSignal<Phase>,
) -> impl IntoView {
    view! {
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                match unfinished.await {
                    Ok(Some(state)) if state.status == crate::staging::UploadStatus::Lost && phase.get_untracked() == Phase::Choosing => {
                        let names = state.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ");
                        view! {
                            <div class="notice" data-testid="lost-upload">
                                <p><strong>{crate::staging::STAGING_LOST}</strong></p>
                                <p>"The last upload was of " {names} "."</p>
                            </div>
                        }.into_any()
                    }
                    Ok(Some(state)) if phase.get_untracked() == Phase::Choosing => {
                        let names = state.files.iter().map(|f| f.name.as_str()).collect::<Vec<_>>().join(", ");
                        let id = state.id;
                        view! {
                            <div class="notice" data-testid="unfinished-upload">
                                <p>
                                    <strong>"An upload is unfinished: "</strong>
                                    {format_count(state.rows_received())} " of " {format_count(state.total_rows)}
                                    " rows are staged from " {names} "."
                                </p>
                                <p>"Choose the same files to resume it, or cancel it: keep the rows it staged, or remove them."</p>
                                <div class="actions">
                                    <button data-testid="cancel-keep" on:click=move |_| {
                                        spawn_local(async move {
                                            let _ = cancel_upload(id, false).await;
                                            unfinished.refetch();
                                        });
                                    }>"Cancel it, keep its rows"</button>
                                    <button class="danger" data-testid="cancel-remove" on:click=move |_| {
                                        spawn_local(async move {
                                            let _ = cancel_upload(id, true).await;
                                            unfinished.refetch();
                                        });
                                    }>"Cancel it, remove its rows"</button>
                                </div>
                            </div>
                        }.into_any()
                    }
                    Ok(_) => ().into_any(),
                    Err(error) => view! { <ErrorNotice error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Overall upload progress: the rows the server stored (acknowledged), the bytes gone out as
/// the requests' bodies leave the browser, the rate and the time left.
#[component]
fn ProgressView(progress: RwSignal<Progress>) -> impl IntoView {
    view! {
        {move || {
            let p = progress.get();
            let rate = p.rows_per_second();
            let left = if rate > 0.0 { ((p.total_rows - p.rows_done) as f64 / rate).ceil() as i64 } else { 0 };
            view! {
                <ProgressBar done=p.rows_done total=p.total_rows testid="upload-progress">
                    {format_count(p.rows_done)} " of " {format_count(p.total_rows)} " rows stored · "
                    <span data-testid="bytes-sent">{format_bytes(p.bytes_sent as u64)}</span> " sent"
                    {(rate > 0.0).then(|| format!(" · {} rows/s", format_count(rate as i64)))}
                    {(left > 0).then(|| format!(" · about {left} s left"))}
                </ProgressBar>
            }
        }}
    }
}
