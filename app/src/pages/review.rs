//! `/review?merchant=…`: the duplicate check of the merchant's staged rows — its progress,
//! figures, a chart and a table per file, and a preview of the rows by status.

use chrono::{DateTime, Utc};
use leptos::{ev, prelude::*, task::spawn_local};
use leptos_router::{
    components::A,
    hooks::{use_navigate, use_query_map},
};
use uuid::Uuid;

use crate::{
    admin::list_merchants,
    batch::BatchState,
    components::{
        activity::{ask_to_notify, notify, show_running, when_finished, PageTitle},
        error::ErrorNotice,
        format::{counted, format_count},
        scroll_box::ScrollBox,
    },
    duplicates::{
        load_review, preview_rows, start_check, CheckFigures, DuplicateStats, PreviewPage, ReviewState, RowStatus,
    },
    jobs::{preflight_insert, start_insert},
    operations::{with_article, Operation},
    reports::{report_path, ReportKind},
    staging::{clear_staging, client::sleep_ms},
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
    let choose = move |event: ev::Event| {
        if let Ok(id) = event_target_value(&event).parse() {
            show.run(id);
        }
    };

    view! {
        <PageTitle page="Review"/>
        <h1>"Review"</h1>
        <Transition fallback=|| view! { <p class="muted">"Loading merchants…"</p> }>
            {move || Suspend::new(async move {
                match merchants.await {
                    Ok(list) => view! {
                        <label class="field">
                            "Merchant"
                            <select on:change=choose data-testid="merchant">
                                <option value="" selected=move || merchant.get().is_none()>"Choose a merchant"</option>
                                {list.into_iter().map(|m| {
                                    let id = m.id;
                                    view! { <option value=id.to_string() selected=move || merchant.get() == Some(id)>{m.name}</option> }
                                }).collect_view()}
                            </select>
                        </label>
                    }.into_any(),
                    Err(error) => view! { <ErrorNotice error/> }.into_any(),
                }
            })}
        </Transition>
        {move || merchant.get().map(|merchant| view! { <MerchantReview merchant/> })}
    }
}

/// The check and its figures for one merchant; polls while an operation runs.
#[component]
pub fn MerchantReview(merchant: Uuid) -> impl IntoView {
    let polls = RwSignal::new(0_u32);
    let review = Resource::new(move || polls.get(), move |_| load_review(merchant));
    let problem = RwSignal::new(None::<String>);
    let starting = RwSignal::new(false);

    // While something runs, ask again every second (in the browser only: effects do not run
    // on the server).
    Effect::new(move |_| {
        let busy = review
            .get()
            .and_then(Result::ok)
            .is_some_and(|r| r.check.as_ref().is_some_and(|c| c.is_running()) || r.running.is_some());
        if busy {
            spawn_local(async move {
                sleep_ms(1_000).await;
                polls.update(|n| *n += 1);
            });
        }
    });

    // The check's phase leads the tab's title while it runs; its end is notified.
    let running_check = move || review.get().and_then(Result::ok).map(|r| r.check.filter(Operation::is_running));
    show_running(move || running_check().flatten().map(|check| check_words(&check.phase)));
    when_finished(
        move || running_check().map(|check| check.is_some()),
        move || {
            if let Some(Ok(state)) = review.get_untracked() {
                let (title, body) = check_outcome(&state);
                notify(title, &body);
            }
        },
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
        <Preview merchant polls/>
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
            <InsertCard merchant ready=!running && state.stale.is_none() && state.running.is_none()/>
        })}
        {(!nothing_staged).then(|| view! { <ClearCard merchant polls=state_polls/> })}
    }
    .into_any()
}

/// Step 6: the pre-flight, then the insert once the user types YES.
#[component]
fn InsertCard(merchant: Uuid, ready: bool) -> impl IntoView {
    let preflight = Action::new(move |_: &()| preflight_insert(merchant));
    let confirmation = RwSignal::new(String::new());
    let problem = RwSignal::new(None::<String>);
    let navigate = use_navigate();
    let open_job = Callback::new(move |job: Uuid| navigate(&format!("/jobs/{job}"), Default::default()));
    let insert = Action::new(move |typed: &String| {
        let typed = typed.clone();
        async move {
            match start_insert(merchant, typed).await {
                Ok(job) => open_job.run(job),
                Err(error) => problem.set(Some(error.to_string())),
            }
        }
    });
    view! {
        <section class="card">
            <h2>"Insert into production"</h2>
            <p class="muted">
                "The pre-flight re-checks the clean rows against production (codes may have arrived since the check) \
                 and their fields. The insert then adds them in one transaction: all of them, or none."
            </p>
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
                                insert.dispatch(confirmation.get_untracked());
                            }>
                                <label>"Type YES to insert"
                                    <input data-testid="insert-confirmation" autocomplete="off"
                                        prop:value=move || confirmation.get()
                                        on:input=move |event| confirmation.set(event_target_value(&event))/>
                                </label>
                                <button type="submit" class="primary" data-testid="insert"
                                    prop:disabled=move || confirmation.get().trim() != "YES" || insert.pending().get()>
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

/// The four statuses with their labels and chart colours, in chart order.
const SEGMENTS: [(RowStatus, &str, &str); 4] = [
    (RowStatus::Clean, "Clean", "seg-clean"),
    (RowStatus::InternalDuplicate, "Internal duplicate only", "seg-internal"),
    (RowStatus::DatabaseDuplicate, "Database duplicate only", "seg-database"),
    (RowStatus::BothDuplicate, "Both", "seg-both"),
];

fn segment_count(stats: &DuplicateStats, status: RowStatus) -> i64 {
    match status {
        RowStatus::Clean => stats.clean_count,
        RowStatus::InternalDuplicate => stats.internal_only(),
        RowStatus::DatabaseDuplicate => stats.database_only(),
        RowStatus::BothDuplicate => stats.both,
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
                {card("Clean: will be inserted", "figure-clean", overall.clean_count, &overall)}
                {card("Internal duplicates", "figure-internal", overall.internal_duplicates, &overall)}
                {card("Database duplicates", "figure-database", overall.database_duplicates, &overall)}
                {card("Both", "figure-both", overall.both, &overall)}
            </div>
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

/// One stacked bar per file and one for the batch: clean, internal only, database only, both.
#[component]
fn Chart(figures: CheckFigures) -> impl IntoView {
    let bar = |label: String, stats: DuplicateStats| {
        let summary = SEGMENTS
            .iter()
            .map(|(status, name, _)| format!("{name} {}", stats.percent(segment_count(&stats, *status))))
            .collect::<Vec<_>>()
            .join(", ");
        let total = stats.total_rows.max(1) as f64;
        view! {
            <div class="bar-row">
                <span class="bar-label" title=label.clone()>{label.clone()}</span>
                <div class="bar" role="img" aria-label=format!("{label}: {summary}")>
                    {SEGMENTS.iter().map(|(status, name, class)| {
                        let count = segment_count(&stats, *status);
                        let width = format!("width: {:.3}%", count as f64 * 100.0 / total);
                        view! { <span class=format!("segment {class}") style=width title=format!("{name}: {}", format_count(count))></span> }
                    }).collect_view()}
                </div>
            </div>
        }
    };
    view! {
        <div class="chart" data-testid="chart">
            <div class="legend">
                {SEGMENTS.iter().map(|(_, name, class)| view! {
                    <span class="legend-item"><span class=format!("swatch {class}")></span>{*name}</span>
                }).collect_view()}
            </div>
            {bar("All files".to_owned(), figures.overall.clone())}
            {figures.files.into_iter().map(|file| bar(file.source_file, file.stats)).collect_view()}
        </div>
    }
}

/// The figures per file, with the batch's totals in the footer.
#[component]
fn FileTable(figures: CheckFigures) -> impl IntoView {
    let cells = |stats: &DuplicateStats| {
        view! {
            <td class="num">{format_count(stats.total_rows)}</td>
            <td class="num">{format_count(stats.internal_duplicates)}</td>
            <td class="num">{format_count(stats.database_duplicates)}</td>
            <td class="num">{format_count(stats.both)}</td>
            <td class="num">{format_count(stats.clean_count)}</td>
            <td class="num">{stats.percent(stats.clean_count)}</td>
        }
    };
    view! {
        <ScrollBox label="Figures per file">
        <table class="file-figures" data-testid="file-figures">
            <thead>
                <tr>
                    <th scope="col">"File"</th>
                    <th scope="col" class="num">"Rows"</th>
                    <th scope="col" class="num">"Internal"</th>
                    <th scope="col" class="num">"Database"</th>
                    <th scope="col" class="num">"Both"</th>
                    <th scope="col" class="num">"Clean"</th>
                    <th scope="col" class="num">"Clean %"</th>
                </tr>
            </thead>
            <tbody>
                {figures.files.iter().map(|file| view! {
                    <tr data-testid="file-figures-row"><td>{file.source_file.clone()}</td>{cells(&file.stats)}</tr>
                }).collect_view()}
            </tbody>
            <tfoot>
                <tr data-testid="file-figures-total"><th scope="row">"Total"</th>{cells(&figures.overall)}</tr>
            </tfoot>
        </table>
        </ScrollBox>
    }
}

/// Staged rows by status, a page at a time (keyset: each page starts after the last row of
/// the one before).
#[component]
fn Preview(merchant: Uuid, polls: RwSignal<u32>) -> impl IntoView {
    let status = RwSignal::new(None::<RowStatus>);
    // The `after` of each page shown so far; the last one is the current page.
    let pages = RwSignal::new(vec![0_i64]);
    let rows = Resource::new(
        move || (status.get(), pages.with(|p| *p.last().unwrap_or(&0)), polls.get()),
        move |(status, after, _)| preview_rows(merchant, status, after),
    );
    let choose = move |event: ev::Event| {
        status.set(RowStatus::parse(&event_target_value(&event)));
        pages.set(vec![0]);
    };
    view! {
        <section class="card">
            <h2>"Staged rows"</h2>
            <label class="field">
                "Show"
                <select on:change=choose data-testid="status-filter">
                    <option value="">"All rows"</option>
                    {RowStatus::ALL.into_iter().map(|s| view! { <option value=s.as_str()>{s.as_str()}</option> }).collect_view()}
                </select>
            </label>
            <Transition fallback=|| view! { <p class="muted">"Loading rows…"</p> }>
                {move || Suspend::new(async move {
                    match rows.await {
                        Ok(page) => view! { <PreviewTable page pages/> }.into_any(),
                        Err(error) => view! { <ErrorNotice error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

#[component]
fn PreviewTable(page: PreviewPage, pages: RwSignal<Vec<i64>>) -> impl IntoView {
    if page.rows.is_empty() {
        return view! { <p class="empty" data-testid="preview-empty">"No rows with this status."</p> }.into_any();
    }
    let next = page.next_after;
    let optional = |value: Option<String>| value.unwrap_or_default();
    view! {
        <ScrollBox label="Staged rows">
        <table class="preview" data-testid="preview">
            <thead>
                <tr>
                    <th scope="col" class="num">"Row"</th>
                    <th scope="col">"Code"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Serial"</th>
                    <th scope="col">"SKU"</th>
                    <th scope="col" class="num">"Points"</th>
                    <th scope="col">"Batch"</th>
                    <th scope="col" class="num">"Price"</th>
                    <th scope="col">"Source"</th>
                </tr>
            </thead>
            <tbody>
                {page.rows.into_iter().map(|row| {
                    let status = row.status().as_str();
                    let source = format!("{}:{}", row.source_file.clone().unwrap_or_default(),
                        row.source_line.map(|l| l.to_string()).unwrap_or_default());
                    view! {
                        <tr data-testid="preview-row" data-status=status>
                            <td class="num">{format_count(row.row_number)}</td>
                            <td class="mono">{row.code}</td>
                            <td><span class=format!("status status-{}", status.to_lowercase())>{status}</span></td>
                            <td>{optional(row.serial)}</td>
                            <td>{optional(row.sku)}</td>
                            <td class="num">{optional(row.points)}</td>
                            <td>{optional(row.batch_code)}</td>
                            <td class="num">{optional(row.price)}</td>
                            <td class="mono">{source}</td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        </ScrollBox>
        <div class="actions pager">
            <button on:click=move |_| pages.set(vec![0]) prop:disabled=move || pages.with(|p| p.len() <= 1)>"First page"</button>
            <button on:click=move |_| pages.update(|p| { if p.len() > 1 { p.pop(); } })
                prop:disabled=move || pages.with(|p| p.len() <= 1) data-testid="previous-page">"Previous page"</button>
            <button on:click=move |_| { if let Some(after) = next { pages.update(|p| p.push(after)); } }
                prop:disabled=next.is_none() data-testid="next-page">"Next page"</button>
            <span class="muted">"Page " {move || pages.with(Vec::len)}</span>
        </div>
    }
    .into_any()
}
