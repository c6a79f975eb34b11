//! `/review?merchant=…`: the duplicate check of the merchant's staged rows — its progress,
//! figures, a chart and a table per file, and the rows themselves by status, file and code,
//! each duplicate with where its code was seen before (`&status=…&file=…&code=…&page=…`).

use chrono::{DateTime, Utc};
use leptos::{ev, prelude::*, task::spawn_local};
use leptos_router::{
    components::A,
    hooks::{use_navigate, use_query_map},
};
use uuid::Uuid;

use crate::{
    admin::list_merchants,
    batch::{Batch, BatchState},
    components::{
        activity::{ask_to_notify, follow_running, PageTitle},
        error::ErrorNotice,
        figures::{segment_count, Chart, FileTable, SEGMENTS},
        format::{counted, format_count},
        merchant_picker::MerchantPicker,
        poll::poll_while,
        scroll_box::ScrollBox,
    },
    duplicates::{
        load_review, preview_rows, start_check, CheckFigures, CodeSearch, DuplicateStats, PreviewPage, PreviewRow,
        ReviewState, ReviewView, RowFilter,
    },
    error::AppError,
    jobs::{above_duplicate_threshold, preflight_insert, start_insert, DUPLICATE_THRESHOLD_PERCENT},
    operations::{with_article, Operation},
    reports::{report_path, ReportKind},
    staging::clear_staging,
};

/// The review page for the merchant named in the query (or the user's only merchant).
#[component]
pub fn ReviewPage() -> impl IntoView {
    let query = use_query_map();
    let merchant = Memo::new(move |_| query.read().get("merchant").and_then(|m| Uuid::parse_str(&m).ok()));
    let merchants = Resource::new(|| (), |_| list_merchants());
    let navigate = use_navigate();
    let show = Callback::new(move |id: Uuid| navigate(&format!("/review?merchant={id}"), Default::default()));

    // A user with one merchant has it chosen for them.
    Effect::new(move |_| {
        if let Some(Ok(list)) = merchants.get() {
            if list.len() == 1 && merchant.get_untracked().is_none() {
                show.run(list[0].id);
            }
        }
    });

    view! {
        <PageTitle page="Review"/>
        <h1>"Review"</h1>
        <MerchantPicker merchants chosen=merchant on_choose=Callback::new(move |id: Option<Uuid>| if let Some(id) = id { show.run(id) })/>
        {move || merchant.get().map(|merchant| view! { <MerchantReview merchant in_url=true/> })}
    }
}

/// The check and its figures for one merchant; polls while an operation runs. With `in_url`, the
/// rows shown (filter, file, search, page) are the page's query string, so a view is a link.
#[component]
pub fn MerchantReview(merchant: Uuid, #[prop(optional)] in_url: bool) -> impl IntoView {
    let polls = RwSignal::new(0_u32);
    let review = Resource::new(move || polls.get(), move |_| load_review(merchant));

    let problem = RwSignal::new(None::<String>);
    let starting = RwSignal::new(false);

    poll_while(
        move || review.get(),
        |r: &ReviewState| r.check.as_ref().is_some_and(|c| c.is_running()) || r.running.is_some(),
        polls,
    );

    // The check's phase leads the tab's title while it runs; its end is notified.
    follow_running(
        move || {
            review
                .get()
                .and_then(Result::ok)
                .map(|r| r.check.filter(Operation::is_running).map(|c| check_words(&c.phase)))
        },
        move || review.get_untracked().and_then(Result::ok).map(|state| check_outcome(&state)),
    );

    let run = move |_| {
        ask_to_notify();
        starting.set(true);
        problem.set(None);
        spawn_local(async move {
            if let Err(error) = start_check(merchant).await {
                problem.set(Some(error.to_string()));
            }
            starting.set(false);
            polls.update(|n| *n += 1);
        });
    };

    view! {
        <Transition fallback=|| view! { <p class="muted">"Loading the check…"</p> }>
            {move || Suspend::new(async move {
                match review.await {
                    Ok(state) => view! { <ReviewBody state state_polls=polls run starting problem/> }.into_any(),
                    Err(error) => view! { <ErrorNotice error/> }.into_any(),
                }
            })}
        </Transition>
        <Preview merchant review in_url/>
    }
}

/// "Checking duplicates: Writing the flags", for the tab's title.
fn check_words(phase: &str) -> String {
    if phase.is_empty() {
        "Checking duplicates".to_owned()
    } else {
        format!("Checking duplicates: {phase}")
    }
}

/// What the notification says of a check that has just ended.
fn check_outcome(state: &ReviewState) -> (&'static str, String) {
    match (&state.check, &state.figures) {
        (Some(check), _) if check.status == crate::operations::OperationStatus::Failed => {
            ("Duplicate check failed", check.error_message.clone().unwrap_or_default())
        }
        (_, Some(figures)) => {
            let stats = &figures.overall;
            (
                "Duplicate check finished",
                format!(
                    "Of {}: {} clean, {}. Review and insert.",
                    counted(stats.total_rows, "row", "rows"),
                    format_count(stats.clean_count),
                    counted(stats.total_rows - stats.clean_count, "duplicate", "duplicates")
                ),
            )
        }
        _ => ("Duplicate check finished", String::new()),
    }
}

/// The merchant's batch as it stands: nothing staged, cleared, lost, or staged with its check,
/// figures, insert and clear — each read from the batch, so nothing shown outlives it.
#[component]
fn ReviewBody(
    state: ReviewState,
    state_polls: RwSignal<u32>,
    run: impl Fn(ev::MouseEvent) + Clone + Send + Sync + 'static,
    starting: RwSignal<bool>,
    problem: RwSignal<Option<String>>,
) -> impl IntoView {
    let time = |t: DateTime<Utc>| t.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let Some(batch) = state.batch.clone() else {
        return view! {
            <section class="card" data-testid="batch-state">
                <h2>"Staged batch"</h2>
                <p class="empty" data-testid="batch-empty">
                    "Nothing is staged for this merchant — " <A href=format!("/upload?merchant={}", state.merchant_id)>"Upload files"</A>
                </p>
            </section>
        }
        .into_any();
    };
    match batch.state {
        BatchState::Cleared => {
            return view! {
                <section class="card" data-testid="batch-state">
                    <h2>"Staged batch"</h2>
                    <p class="success" role="status" data-testid="batch-cleared">
                        "Deleted " {format_count(batch.rows_cleared.unwrap_or(0))} " staged rows"
                        {batch.finished_at.map(|t| format!(" at {}", time(t)))} "."
                    </p>
                    <p class="muted">"Nothing is staged for this merchant. Upload files to start the next batch."</p>
                </section>
            }
            .into_any()
        }
        BatchState::Lost => {
            return view! {
                <section class="card" data-testid="batch-state">
                    <h2>"Staged batch"</h2>
                    <p class="warning" role="status" data-testid="batch-lost">{crate::staging::STAGING_LOST}</p>
                </section>
            }
            .into_any()
        }
        _ => {}
    }
    let running = state.check.as_ref().is_some_and(|c| c.is_running());
    let other = state.running.clone();
    let status = match &state.check {
        None => view! { <p data-testid="check-status">"Not checked yet."</p> }.into_any(),
        Some(check) if check.is_running() => view! {
            <p data-testid="check-status" role="status" class="running">
                "Checking… " {check.phase.clone()} " (started " {check.started_at.format("%H:%M:%S UTC").to_string()} ")"
            </p>
        }
        .into_any(),
        Some(check) if check.status == crate::operations::OperationStatus::Failed => view! {
            <p data-testid="check-status" role="alert" class="error">
                "The last check failed: " {check.error_message.clone().unwrap_or_default()}
            </p>
        }
        .into_any(),
        Some(_) => view! {
            <p data-testid="check-status" class=if state.stale.is_some() { "warning" } else { "success" }>
                "Checked at " {state.checked_at.map(time).unwrap_or_default()}
            </p>
        }
        .into_any(),
    };
    let nothing_staged = state.staged().is_none();
    let inserted = batch.state == BatchState::Inserted;
    let merchant = state.merchant_id;
    let job_link = |job: Uuid| view! { <A href=format!("/jobs/{job}")>{job.to_string()}</A> };
    let overall = state.figures.as_ref().map(|f| f.overall.clone()).unwrap_or_default();
    view! {
        <section class="card" data-testid="batch-state">
            <h2>"Staged batch"</h2>
            <p data-testid="batch-staged">
                {format_count(batch.rows_staged)} " rows staged from " {batch.files} " file(s); last staged "
                {time(batch.staged_at)} "."
            </p>
            {inserted.then(|| view! {
                <p class="success" role="status" data-testid="batch-inserted">
                    "Inserted as job " {batch.job_id.map(job_link)} ", "
                    {format_count(batch.codes_inserted.unwrap_or(0))} " codes. Clear staging to start the next batch."
                </p>
            })}
            {(batch.state == BatchState::Inserting).then(|| view! {
                <p class="running" role="status" data-testid="batch-inserting">
                    "The insert of job " {batch.job_id.map(job_link)} " is running."
                </p>
            })}
        </section>
        <section class="card">
            <h2>"Duplicate check"</h2>
            {status}
            {other.map(|op| view! {
                <p class="warning" role="status">{with_article(op.kind_name())} " is running for this merchant."</p>
            })}
            {state.stale.clone().map(|reason| view! {
                <p class="warning" role="status" data-testid="check-stale">{reason}</p>
            })}
            {nothing_staged.then(|| view! { <p class="muted">"Nothing is staged for this merchant. Upload files first."</p> })}
            {(!inserted).then(|| view! {
                <div class="actions">
                    <button class="primary" on:click=run data-testid="run-check"
                        prop:disabled=move || running || nothing_staged || starting.get()>
                        {if state.check.is_some() { "Check again" } else { "Check duplicates" }}
                    </button>
                </div>
            })}
            {move || problem.get().map(|text| view! { <p class="error" role="alert">{text}</p> })}
        </section>
        {state.figures.map(|figures| view! { <Figures merchant figures/> })}
        {(batch.state == BatchState::Checked && !nothing_staged).then(|| view! {
            <InsertCard merchant ready=!running && state.stale.is_none() && state.running.is_none() checked=overall/>
        })}
        {(!nothing_staged).then(|| view! { <ClearCard merchant polls=state_polls/> })}
    }
    .into_any()
}

/// Step 6: the pre-flight, then the insert once the user types YES — and, when duplicates are
/// above the threshold, once the user confirms that too (the server refuses it otherwise).
#[component]
fn InsertCard(merchant: Uuid, ready: bool, checked: DuplicateStats) -> impl IntoView {
    let preflight = Action::new(move |_: &()| preflight_insert(merchant));
    let confirmation = RwSignal::new(String::new());
    let duplicates_confirmed = RwSignal::new(false);
    let problem = RwSignal::new(None::<String>);
    let navigate = use_navigate();
    let open_job = Callback::new(move |job: Uuid| navigate(&format!("/jobs/{job}"), Default::default()));
    let insert = Action::new(move |(typed, confirmed): &(String, bool)| {
        let (typed, confirmed) = (typed.clone(), *confirmed);
        async move {
            match start_insert(merchant, typed, Some(confirmed)).await {
                Ok(job) => open_job.run(job),
                Err(error) => problem.set(Some(error.to_string())),
            }
        }
    });
    // The clean rows as last counted: by the pre-flight once it ran, else by the check.
    let total = checked.total_rows;
    let clean = Memo::new(move |_| match preflight.value().get() {
        Some(Ok(answer)) => answer.clean_count,
        _ => checked.clean_count,
    });
    let above = move || above_duplicate_threshold(total, clean.get());
    view! {
        <section class="card">
            <h2>"Insert into production"</h2>
            <p class="muted">
                "The pre-flight re-checks the clean rows against production (codes may have arrived since the check) \
                 and their fields. The insert then adds them in one transaction: all of them, or none."
            </p>
            {move || above().then(|| {
                let duplicates = total - clean.get();
                let share = DuplicateStats { total_rows: total, ..DuplicateStats::default() }.percent(duplicates);
                view! {
                    <div class="notice" role="alert" data-testid="duplicate-warning">
                        <p class="warning">
                            <strong data-testid="duplicate-share">{share}</strong>
                            " of the staged rows are duplicates (" {format_count(duplicates)} " of "
                            {format_count(total)} "), above the " {DUPLICATE_THRESHOLD_PERCENT} " % threshold. \
                             So many duplicates often mean a file was imported before, or the wrong files were chosen: \
                             review the rows below before inserting."
                        </p>
                        <label>
                            <input type="checkbox" data-testid="confirm-duplicates"
                                prop:checked=move || duplicates_confirmed.get()
                                on:change=move |event| duplicates_confirmed.set(event_target_checked(&event))/>
                            " I have reviewed the duplicates: insert the " {format_count(clean.get())} " clean codes anyway"
                        </label>
                    </div>
                }
            })}
            <button on:click=move |_| { preflight.dispatch(()); } data-testid="run-preflight"
                prop:disabled=move || !ready || preflight.pending().get()>
                {move || if preflight.pending().get() { "Checking…" } else { "Prepare the insert" }}
            </button>
            {move || preflight.value().get().map(|result| match result {
                Ok(answer) => view! {
                    <div class="preflight" data-testid="preflight">
                        {answer.ready().then(|| view! {
                            <p class="success" data-testid="preflight-ready">
                                "Ready to insert " {format_count(answer.clean_count)} " clean codes."
                            </p>
                        })}
                        {(answer.new_database_duplicates > 0).then(|| view! {
                            <p class="warning">
                                {format_count(answer.new_database_duplicates)}
                                " rows became database duplicates since the check: their codes reached production meanwhile."
                            </p>
                        })}
                        {(!answer.errors.is_empty()).then(|| view! {
                            <ul class="error" role="alert">{answer.errors.iter().map(|e| view! { <li>{e.clone()}</li> }).collect_view()}</ul>
                        })}
                        {answer.ready().then(|| view! {
                            <form class="inline-form" on:submit=move |event: ev::SubmitEvent| {
                                event.prevent_default();
                                ask_to_notify();
                                insert.dispatch((confirmation.get_untracked(), duplicates_confirmed.get_untracked()));
                            }>
                                <label>"Type YES to insert"
                                    <input data-testid="insert-confirmation" autocomplete="off"
                                        prop:value=move || confirmation.get()
                                        on:input=move |event| confirmation.set(event_target_value(&event))/>
                                </label>
                                <button type="submit" class="primary" data-testid="insert"
                                    prop:disabled=move || confirmation.get().trim() != "YES" || insert.pending().get()
                                        || (above() && !duplicates_confirmed.get())>
                                    "Insert " {format_count(answer.clean_count)} " codes"
                                </button>
                            </form>
                        })}
                    </div>
                }.into_any(),
                Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
            })}
            {move || problem.get().map(|text| view! { <p class="error" role="alert">{text}</p> })}
        </section>
    }
}

/// Clearing the merchant's staging, after a second click.
#[component]
fn ClearCard(merchant: Uuid, polls: RwSignal<u32>) -> impl IntoView {
    let asking = RwSignal::new(false);
    let clear = Action::new(move |_: &()| clear_staging(merchant));
    Effect::new(move |_| {
        if let Some(Ok(_)) = clear.value().get() {
            asking.set(false);
            polls.update(|n| *n += 1);
        }
    });
    view! {
        <section class="card">
            <h2>"Clear staging"</h2>
            <p class="muted">"Deletes this merchant's staged rows (production is not touched), to start a new batch."</p>
            <Show when=move || asking.get() fallback=move || view! {
                <button on:click=move |_| asking.set(true) data-testid="clear-staging">"Clear staging…"</button>
            }>
                <p class="warning" role="alert">
                    "Delete every staged row of this merchant? Uploaded files must be uploaded again to stage them."
                </p>
                <div class="actions">
                    <button class="danger" on:click=move |_| { clear.dispatch(()); } data-testid="confirm-clear"
                        prop:disabled=move || clear.pending().get()>"Delete the staged rows"</button>
                    <button on:click=move |_| asking.set(false)>"Keep them"</button>
                </div>
            </Show>
            {move || clear.value().get().map(|result| match result {
                Ok(deleted) => view! { <p class="success" role="status">"Deleted " {format_count(deleted)} " staged rows."</p> }.into_any(),
                Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
            })}
        </section>
    }
}

/// The totals, a stacked bar per file, and the per-file table with a totals row.
#[component]
fn Figures(merchant: Uuid, figures: CheckFigures) -> impl IntoView {
    let overall = figures.overall.clone();
    let card = |label: &'static str, id: &'static str, count: i64, stats: &DuplicateStats| {
        view! {
            <div class="figure" data-testid=id>
                <span class="figure-label">{label}</span>
                <span class="figure-count">{format_count(count)}</span>
                <span class="muted">{stats.percent(count)}</span>
            </div>
        }
    };
    view! {
        <section class="card">
            <h2>"Figures"</h2>
            <div class="figures">
                {card("Staged rows", "figure-total", overall.total_rows, &overall)}
                {SEGMENTS.iter().map(|(status, label, _, id)| card(label, id, segment_count(&overall, *status), &overall)).collect_view()}
            </div>
            <p class="muted" data-testid="figures-sum">
                "Clean, internal only, database only and both add up to the staged rows. In all, "
                {format_count(overall.internal_duplicates)} " rows repeat a code of the batch and "
                {format_count(overall.database_duplicates)} " have a code already in production ("
                {format_count(overall.both)} " are both)."
            </p>
            <Chart figures=figures.clone()/>
            <FileTable figures/>
        </section>
        <section class="card">
            <h2>"Reports"</h2>
            <p class="muted">
                "CSV with every column, the flags, the status, and the source file and line of each row. Cells that \
                 a spreadsheet would run as formulas start with ' (uploading the file again removes it)."
            </p>
            <div class="actions">
                {ReportKind::ALL.into_iter().map(|kind| view! {
                    <a class="button" href=report_path(merchant, kind) download data-testid=format!("report-{}", kind.slug())>
                        {kind.label()}
                    </a>
                }).collect_view()}
            </div>
        </section>
    }
}

/// The staged rows as a [`ReviewView`] says — by status (duplicates first), file and code, a page
/// at a time, with a page count and a jump when the check's figures tell them. With `in_url`
/// the view is the page's query string; else it lives here.
#[component]
fn Preview(merchant: Uuid, review: Resource<Result<ReviewState, AppError>>, in_url: bool) -> impl IntoView {
    let query = use_query_map();
    let local = RwSignal::new(ReviewView::default());
    let view =
        Memo::new(move |_| if in_url { query.with(|q| ReviewView::from_query(|key| q.get(key))) } else { local.get() });
    let navigate = use_navigate();
    let show = Callback::new(move |next: ReviewView| {
        if in_url {
            navigate(&format!("/review?{}", next.query_string(merchant)), Default::default());
        } else {
            local.set(next);
        }
    });
    // The rows change with the batch (rows staged or cleared, a check or a pre-flight that ends,
    // an insert): they are read again when it changes, not at every poll of a running
    // operation. On a full batch each read scans the merchant's staged rows; read each second,
    // beside the check, they slowed it.
    // (Counted in an effect, which runs in the browser only: the server renders the rows once.)
    let batch_changes = RwSignal::new(0_u32);
    Effect::new(move |seen: Option<Option<Option<Batch>>>| {
        // `None` until a review has been read; then the batch it showed.
        let seen = seen.flatten();
        let Some(Ok(state)) = review.get() else { return seen };
        if seen.as_ref().is_some_and(|batch| *batch != state.batch) {
            batch_changes.update(|n| *n += 1);
        }
        Some(state.batch)
    });
    let rows = Resource::new(move || (view.get(), batch_changes.get()), move |(view, _)| preview_rows(merchant, view));
    let choose_filter = move |event: ev::Event| {
        let filter = RowFilter::from_slug(&event_target_value(&event)).unwrap_or_default();
        show.run(ReviewView { filter, ..view.get_untracked().first_page() });
    };
    let choose_file = move |event: ev::Event| {
        let file = Some(event_target_value(&event)).filter(|f| !f.is_empty());
        show.run(ReviewView { file, ..view.get_untracked().first_page() });
    };
    let code = RwSignal::new(view.get_untracked().search.map(|s| s.code).unwrap_or_default());
    let prefix = RwSignal::new(view.get_untracked().search.is_some_and(|s| s.prefix));
    let search = move |event: ev::SubmitEvent| {
        event.prevent_default();
        let typed = code.get_untracked().trim().to_owned();
        let search = (!typed.is_empty()).then(|| CodeSearch { code: typed, prefix: prefix.get_untracked() });
        show.run(ReviewView { search, ..view.get_untracked().first_page() });
    };
    view! {
        <section class="card" data-testid="staged-rows">
            <h2>"Staged rows"</h2>
            // Below an upload the view is the section's own: a link gives it an address.
            {(!in_url).then(|| view! {
                <p class="muted">
                    <a href=move || format!("/review?{}", view.get().query_string(merchant)) data-testid="view-link">
                        "This view on the Review page"
                    </a>
                    ", to share it or come back to it"
                </p>
            })}
            // The choices name the check's counts and files: read with the review, on the server too.
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    let figures = review.await.ok().and_then(|r| r.figures);
                    let count_of = |filter: RowFilter| {
                        figures.as_ref().map(|f| format!(" ({})", format_count(filter.count(&f.overall)))).unwrap_or_default()
                    };
                    let mut files: Vec<String> =
                        figures.iter().flat_map(|f| f.files.iter().map(|file| file.source_file.clone())).collect();
                    files.dedup();
                    view! {
                        <div class="inline-form filters">
                            <label>"Show"
                                <select on:change=choose_filter data-testid="status-filter">
                                    {RowFilter::ALL.into_iter().map(|filter| view! {
                                        <option value=filter.slug() selected=move || view.get().filter == filter>
                                            {filter.label()} {count_of(filter)}
                                        </option>
                                    }).collect_view()}
                                </select>
                            </label>
                            <label>"File"
                                <select on:change=choose_file data-testid="file-filter">
                                    <option value="" selected=move || view.get().file.is_none()>"All files"</option>
                                    {files.into_iter().map(|name| {
                                        let value = name.clone();
                                        view! {
                                            <option value=value.clone() selected=move || view.get().file.as_deref() == Some(value.as_str())>{name}</option>
                                        }
                                    }).collect_view()}
                                </select>
                            </label>
                        </div>
                    }
                })}
            </Transition>
            <form class="inline-form filters" role="search" on:submit=search>
                <label>"Code"
                    <input type="search" data-testid="code-search" autocomplete="off" prop:value=move || code.get()
                        on:input=move |event| code.set(event_target_value(&event))/>
                </label>
                <label>"Match"
                    <select data-testid="code-match" on:change=move |event| prefix.set(event_target_value(&event) == "prefix")>
                        <option value="exact" selected=move || !prefix.get()>"Exactly"</option>
                        <option value="prefix" selected=move || prefix.get()>"Starts with"</option>
                    </select>
                </label>
                <button type="submit" data-testid="search-code">"Search"</button>
                {move || view.get().search.is_some().then(|| view! {
                    <button type="button" data-testid="clear-search" on:click=move |_| {
                        code.set(String::new());
                        show.run(ReviewView { search: None, ..view.get_untracked().first_page() });
                    }>"Clear the search"</button>
                })}
            </form>
            {move || view.get().search.map(|s| view! {
                <p class="muted" data-testid="search-note">
                    {if s.prefix { "Codes that start with " } else { "The code " }} <span class="mono">{s.code}</span>
                    ": a search reads all of the merchant's staged rows (staging has no index on codes, which would \
                     slow every upload), so on millions of rows it takes a few seconds."
                </p>
            })}
            <Transition fallback=|| view! { <p class="muted">"Loading rows…"</p> }>
                {move || Suspend::new(async move {
                    match rows.await {
                        Ok(page) => view! { <PreviewTable merchant page view show/> }.into_any(),
                        Err(error) => view! { <ErrorNotice error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// Where a row's code was seen before: its first occurrence in the batch (a link that lands on
/// it) and its production row (with a link to its job when the job is in the history).
fn seen_before(merchant: Uuid, row: &PreviewRow) -> impl IntoView {
    let first = row.first_row.map(|first| {
        let place = match (&row.first_file, row.first_line) {
            (Some(file), Some(line)) => format!(" ({file}:{line})"),
            _ => String::new(),
        };
        let href = format!("/review?{}", ReviewView::landing_on(first).query_string(merchant));
        view! {
            <div data-testid="first-occurrence">
                "First seen at " <A href=href attr:data-testid="first-occurrence-link">"row " {format_count(first)} {place}</A>
            </div>
        }
    });
    let production = row.existing_dup.then(|| {
        let since = row
            .production_created_at
            .map(|t| format!("In production since {}", t.format("%Y-%m-%d %H:%M UTC")))
            .unwrap_or_else(|| "In production".to_owned());
        let source = row.production_source.clone().map(|s| format!(" · source {s}"));
        let job = row.production_job.map(|job| {
            let short = job.simple().to_string()[..8].to_owned();
            if row.production_job_known {
                view! { " · job " <A href=format!("/jobs/{job}") attr:data-testid="production-job-link" attr:title=job.to_string()>{short}</A> }.into_any()
            } else {
                view! { " · job " <span class="mono" title=job.to_string()>{short}</span> " (not in this history)" }.into_any()
            }
        });
        view! { <div data-testid="production-origin">{since} {source} {job}</div> }
    });
    view! { {first} {production} }
}

#[component]
fn PreviewTable(
    merchant: Uuid,
    page: PreviewPage,
    view: Memo<ReviewView>,
    show: Callback<ReviewView>,
) -> impl IntoView {
    let pager = view! { <Pager page=page.clone() view show/> };
    if page.rows.is_empty() {
        // Without figures (no check yet, or rows staged after it) a view of flags may be empty
        // only because no check has flagged the rows: say so, not just that none match.
        let unflagged = page.matching.is_none() && view.get_untracked().filter != RowFilter::All;
        return view! {
            <p class="empty" data-testid="preview-empty">
                "No staged rows match this view. "
                {unflagged.then(|| view! {
                    <span data-testid="preview-unchecked">
                        "Duplicates are flagged by the check, and no check has seen the rows staged now. "
                    </span>
                })}
                <button type="button" class="link" on:click=move |_| show.run(ReviewView { filter: RowFilter::All, ..ReviewView::default() })>
                    "Show all rows"
                </button>
            </p>
        }
        .into_any();
    }
    let marked = page.marked_row;
    // The row a link landed on is scrolled into view (effects run in the browser only).
    Effect::new(move |_| {
        if let Some(row) = marked {
            // After the frame in which the new page replaces the old one.
            request_animation_frame(move || {
                if let Some(element) = document().get_element_by_id(&format!("row-{row}")) {
                    element.scroll_into_view();
                }
            });
        }
    });
    let optional = |value: Option<String>| value.unwrap_or_default();
    view! {
        {pager}
        <ScrollBox label="Staged rows">
        <table class="preview" data-testid="preview">
            <thead>
                <tr>
                    <th scope="col" class="num">"Row"</th>
                    <th scope="col">"Code"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Source"</th>
                    <th scope="col">"Seen before"</th>
                    <th scope="col">"Serial"</th>
                    <th scope="col">"SKU"</th>
                    <th scope="col" class="num">"Points"</th>
                    <th scope="col">"Batch"</th>
                    <th scope="col" class="num">"Price"</th>
                </tr>
            </thead>
            <tbody>
                {page.rows.into_iter().map(|row| {
                    let status = row.status();
                    let source = format!("{}:{}", row.source_file.clone().unwrap_or_default(),
                        row.source_line.map(|l| l.to_string()).unwrap_or_default());
                    let is_marked = marked == Some(row.row_number);
                    let seen = seen_before(merchant, &row);
                    let here = format!("/review?{}", ReviewView::landing_on(row.row_number).query_string(merchant));
                    view! {
                        <tr id=format!("row-{}", row.row_number) data-testid="preview-row" data-status=status.as_str()
                            data-row=row.row_number.to_string() class:marked=is_marked
                            aria-current=is_marked.then_some("true")>
                            <td class="num"><A href=here attr:title="This row among all rows">{format_count(row.row_number)}</A></td>
                            <td class="mono" data-testid="preview-code">{row.code}</td>
                            <td><span class=format!("status status-{}", status.as_str().to_lowercase())>{status.label()}</span></td>
                            <td class="mono">{source}</td>
                            <td>{seen}</td>
                            <td>{optional(row.serial)}</td>
                            <td>{optional(row.sku)}</td>
                            <td class="num">{optional(row.points)}</td>
                            <td>{optional(row.batch_code)}</td>
                            <td class="num">{optional(row.price)}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        </ScrollBox>
    }
    .into_any()
}

/// First, previous, next and last page, the page's number (of how many, when known) and a jump
/// to page N.
#[component]
fn Pager(page: PreviewPage, view: Memo<ReviewView>, show: Callback<ReviewView>) -> impl IntoView {
    let at = page.page;
    let pages = page.pages;
    let to_page = move |n: i64| show.run(ReviewView { page: n, ..view.get_untracked().first_page() });
    let next = page.next_after.map(|after| ReviewView {
        page: at + 1,
        after: Some(after),
        ..view.get_untracked().first_page()
    });
    let previous = page.previous_before.map(|before| ReviewView {
        page: at - 1,
        before: Some(before),
        ..view.get_untracked().first_page()
    });
    let jump = RwSignal::new(String::new());
    let (next_view, previous_view) = (next.clone(), previous.clone());
    view! {
        <div class="actions pager" data-testid="pager">
            <button type="button" on:click=move |_| to_page(1) prop:disabled={at <= 1} data-testid="first-page">"First page"</button>
            <button type="button" on:click=move |_| { if let Some(v) = previous_view.clone() { show.run(v); } }
                prop:disabled=previous.is_none() data-testid="previous-page">"Previous page"</button>
            <span data-testid="page-of">
                "Page " {format_count(at)}
                {pages.map(|n| format!(" of {}", format_count(n)))}
                {page.matching.map(|n| format!(" · {}", counted(n, "row", "rows")))}
            </span>
            <button type="button" on:click=move |_| { if let Some(v) = next_view.clone() { show.run(v); } }
                prop:disabled=next.is_none() data-testid="next-page">"Next page"</button>
            {pages.map(|last| view! {
                <button type="button" on:click=move |_| to_page(last) prop:disabled={at >= last} data-testid="last-page">"Last page"</button>
                <form class="inline-form" on:submit=move |event: ev::SubmitEvent| {
                    event.prevent_default();
                    if let Ok(n) = jump.get_untracked().trim().replace(',', "").parse::<i64>() {
                        to_page(n.clamp(1, last));
                    }
                }>
                    <label>"Go to page"
                        <input type="number" min="1" max=last.to_string() data-testid="jump-page" class="page-number"
                            prop:value=move || jump.get() on:input=move |event| jump.set(event_target_value(&event))/>
                    </label>
                    <button type="submit" data-testid="jump">"Go"</button>
                </form>
            })}
        </div>
    }
}
