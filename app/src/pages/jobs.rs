//! `/jobs`: the import job history, filtered and paged, with each job's figures, verify and
//! rollback; `/jobs/:id`: one job's audit record, with verify and rollback.

use std::time::Duration;

use chrono::{DateTime, Utc};
use leptos::{ev, prelude::*};
use leptos_router::{components::A, hooks::use_params_map};
use uuid::Uuid;

use crate::{
    admin::list_merchants,
    components::{
        activity::{follow_running, PageTitle},
        error::ErrorNotice,
        format::{counted, format_bytes, format_count},
        merchant_picker::MerchantPicker,
        poll::poll_while,
        progress::ProgressBar,
        scroll_box::ScrollBox,
    },
    error::AppError,
    jobs::{
        elapsed_words, get_job, list_jobs, progress_words, rollback_job, verify_job, JobDetail, JobFile, JobProgress,
        JobStatus, JobSummary, JobVerification, JOBS_PAGE_SIZE, JOB_STATUSES,
    },
};

/// The history's filters as the form holds them.
#[derive(Debug, Clone, Default, PartialEq)]
struct Filters {
    merchant: Option<Uuid>,
    status: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// Lists the import jobs, newest first, filtered by merchant, status and dates, a page at a
/// time; Refresh reloads in place.
#[component]
pub fn JobsPage() -> impl IntoView {
    let reloads = RwSignal::new(0_u32);
    let filters = RwSignal::new(Filters::default());
    // The cursor of each page shown so far (the last job of the page before).
    let pages = RwSignal::new(vec![None::<(DateTime<Utc>, Uuid)>]);
    let merchants = Resource::new(|| (), |_| list_merchants());
    let jobs = Resource::new(
        move || (reloads.get(), filters.get(), pages.with(|p| p.last().cloned().flatten())),
        |(_, f, before)| list_jobs(f.merchant, f.status, f.from, f.to, before.map(|b| b.0), before.map(|b| b.1)),
    );
    let set = move |change: fn(&mut Filters, String)| {
        move |event: ev::Event| {
            let value = event_target_value(&event);
            filters.update(|f| change(f, value));
            pages.set(vec![None]);
        }
    };

    view! {
        <PageTitle page="Jobs"/>
        <div class="page-head">
            <h1>"Jobs"</h1>
            <button type="button" data-testid="reload-jobs" on:click=move |_| reloads.update(|n| *n += 1)>
                "Refresh"
            </button>
        </div>
        <div class="inline-form filters">
            <MerchantPicker merchants chosen=Signal::derive(move || filters.with(|f| f.merchant)) none="All"
                testid="filter-merchant" class=""
                on_choose=Callback::new(move |merchant: Option<Uuid>| {
                    filters.update(|f| f.merchant = merchant);
                    pages.set(vec![None]);
                })/>
            <label>"Status"
                <select data-testid="filter-status" on:change=set(|f, v| f.status = Some(v).filter(|v| !v.is_empty()))>
                    <option value="">"All"</option>
                    {JOB_STATUSES.iter().map(|s| view! { <option value=*s>{*s}</option> }).collect_view()}
                </select>
            </label>
            <label>"From" <input type="date" data-testid="filter-from" on:change=set(|f, v| f.from = Some(v).filter(|v| !v.is_empty()))/></label>
            <label>"To" <input type="date" data-testid="filter-to" on:change=set(|f, v| f.to = Some(v).filter(|v| !v.is_empty()))/></label>
        </div>
        <Transition fallback=|| view! { <p class="muted">"Loading jobs…"</p> }>
            {move || Suspend::new(async move {
                match jobs.await {
                    Ok(jobs) if jobs.is_empty() && pages.with(|p| p.len() == 1) && filters.with(|f| *f == Filters::default()) => {
                        view! {
                            <p class="empty" data-testid="jobs-empty">"No imports yet — " <A href="/upload">"Upload files"</A></p>
                        }.into_any()
                    }
                    Ok(jobs) if jobs.is_empty() => view! { <p class="empty">"No jobs match."</p> }.into_any(),
                    Ok(jobs) => {
                        let full = jobs.len() as i64 == JOBS_PAGE_SIZE;
                        let cursor = jobs.last().map(|j| (j.created_at, j.id));
                        view! {
                            <JobsTable jobs reloads/>
                            <div class="actions pager">
                                <button prop:disabled=move || pages.with(|p| p.len() <= 1)
                                    on:click=move |_| pages.update(|p| { p.pop(); })>"Newer jobs"</button>
                                <button prop:disabled=!full
                                    on:click=move |_| pages.update(|p| p.push(cursor))>"Older jobs"</button>
                            </div>
                        }.into_any()
                    }
                    Err(error) => view! { <ErrorNotice error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// The job history as a table: per job its files, rows staged, duplicates and codes inserted,
/// and verify and roll back in place.
#[component]
fn JobsTable(jobs: Vec<JobSummary>, reloads: RwSignal<u32>) -> impl IntoView {
    view! {
        <ScrollBox label="Import jobs">
        <table class="jobs" data-testid="jobs-table">
            <thead>
                <tr>
                    <th scope="col">"Job"</th>
                    <th scope="col">"Merchant"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col">"Files"</th>
                    <th scope="col" class="num">"Rows staged"</th>
                    <th scope="col" class="num">"Duplicates"</th>
                    <th scope="col" class="num">"Codes inserted"</th>
                    <th scope="col">"By"</th>
                    <th scope="col">"Actions"</th>
                </tr>
            </thead>
            <tbody>
                {jobs.into_iter().map(|job| view! { <JobRow job reloads/> }).collect_view()}
            </tbody>
        </table>
        </ScrollBox>
    }
}

fn inserted_text(job: &JobSummary) -> String {
    match (job.codes_inserted, job.total_codes_to_insert) {
        (Some(inserted), _) => format_count(inserted),
        (None, Some(expected)) => format!("– of {}", format_count(expected)),
        (None, None) => "–".to_owned(),
    }
}

fn count_or_dash(count: Option<i64>) -> String {
    count.map(format_count).unwrap_or_else(|| "–".to_owned())
}

/// "1 file" or "N files".
fn files_text(files: usize) -> String {
    if files == 1 {
        "1 file".to_owned()
    } else {
        format!("{files} files")
    }
}

/// One job in the history table, and below it, once asked for, its recount and its rollback.
#[component]
fn JobRow(job: JobSummary, reloads: RwSignal<u32>) -> impl IntoView {
    let status_class = format!("status status-{}", job.status);
    let id = job.id;
    let verify = Action::new(move |_: &()| verify_job(id));
    // The rollback's form needs the job's claimed codes, counted when it is asked for.
    let rolling_back = RwSignal::new(false);
    let detail = Resource::new(
        move || rolling_back.get(),
        move |asked| async move {
            if asked {
                get_job(id).await.map(Some)
            } else {
                Ok(None)
            }
        },
    );
    let can_roll_back = job.status == JobStatus::Completed;
    let can_verify = !job.status.is_running();
    let short_id = job.short_id();
    let open = move || verify.value().get().is_some() || verify.pending().get() || rolling_back.get();
    view! {
        <tr data-testid="job-row" data-job-id=id.to_string()>
            <td>
                <A href=format!("/jobs/{id}") attr:class="mono" attr:title=id.to_string() attr:data-testid="job-link">{short_id}</A>
                <div class="muted">{job.created_at.format("%Y-%m-%d %H:%M UTC").to_string()}</div>
            </td>
            <td>{job.merchant_name.clone().unwrap_or_else(|| job.merchant_id.to_string())}</td>
            <td><span class=status_class data-testid="job-status">{job.status.as_str()}</span></td>
            <td data-testid="job-files">
                {files_text(job.files.len())}
                <div class="muted">{job.files.join(", ")}</div>
            </td>
            <td class="num" data-testid="job-rows-staged">{count_or_dash(job.rows_staged)}</td>
            <td class="num" data-testid="job-duplicates">{count_or_dash(job.duplicates())}</td>
            <td class="num" data-testid="job-inserted">{inserted_text(&job)}</td>
            <td>{job.created_by_email.clone().unwrap_or_default()}</td>
            <td>
                <div class="actions">
                    {can_verify.then(|| view! {
                        <button type="button" data-testid="verify" on:click=move |_| { verify.dispatch(()); }>"Verify"</button>
                    })}
                    {can_roll_back.then(|| view! {
                        <button type="button" data-testid="open-rollback" on:click=move |_| rolling_back.set(true)
                            prop:disabled=move || rolling_back.get()>"Roll back…"</button>
                    })}
                </div>
            </td>
        </tr>
        <Show when=open>
            <tr class="details" data-testid="job-actions" data-job-id=id.to_string()>
                <td colspan="9">
                    <VerificationResult verify/>
                    <Transition fallback=|| ()>
                        {move || Suspend::new(async move {
                            match detail.await {
                                Ok(Some(detail)) => view! {
                                    <RollbackForm job=id claimed=detail.claimed_codes.unwrap_or(0)
                                        inserted=detail.summary.codes_inserted done=reloads/>
                                }.into_any(),
                                Ok(None) => ().into_any(),
                                Err(error) => view! { <ErrorNotice error/> }.into_any(),
                            }
                        })}
                    </Transition>
                </td>
            </tr>
        </Show>
    }
}

/// `/jobs/:id`: the audit record, verify, and rollback; follows a job in progress.
#[component]
pub fn JobPage() -> impl IntoView {
    let params = use_params_map();
    let job = Memo::new(move |_| params.read().get("id").and_then(|id| Uuid::parse_str(&id).ok()));
    let polls = RwSignal::new(0_u32);
    let detail = Resource::new(
        move || (job.get(), polls.get()),
        |(job, _)| async move {
            match job {
                Some(job) => get_job(job).await,
                None => Err(crate::error::AppError::not_found("job")),
            }
        },
    );
    // The insert's step leads the tab's title while it runs; its end is notified.
    follow_running(
        move || {
            detail
                .get()
                .and_then(Result::ok)
                .map(|d| Some(d.summary.status).filter(|s| s.is_running()).map(insert_words))
        },
        move || detail.get_untracked().and_then(Result::ok).map(|detail| insert_outcome(&detail.summary)),
    );
    let short_id = move || job.get().map(|id| id.to_string()[..8].to_owned()).unwrap_or_default();
    poll_while(move || detail.get(), |d: &JobDetail| d.summary.status.is_running(), polls);
    view! {
        {move || view! { <PageTitle page=format!("Job {}", short_id())/> }}
        <p><A href="/jobs">"← All jobs"</A></p>
        <Transition fallback=|| view! { <p class="muted">"Loading the job…"</p> }>
            {move || Suspend::new(async move {
                match detail.await {
                    Ok(detail) => view! { <JobRecord detail polls/> }.into_any(),
                    Err(error) => view! { <ErrorNotice error/> }.into_any(),
                }
            })}
        </Transition>
    }
}

/// "Insert 2 of 2: inserting", for the tab's title.
fn insert_words(status: JobStatus) -> String {
    match status {
        JobStatus::Validating => "Insert 1 of 2: pre-flight".to_owned(),
        JobStatus::Processing => "Insert 2 of 2: inserting".to_owned(),
        _ => "Insert starting".to_owned(),
    }
}

/// What the notification says of an insert that has just ended.
fn insert_outcome(job: &JobSummary) -> (&'static str, String) {
    match job.status {
        JobStatus::Completed => (
            "Insert finished",
            format!(
                "{} inserted. Verify or roll back on the job's page.",
                counted(job.codes_inserted.unwrap_or(0), "code", "codes")
            ),
        ),
        _ => ("Insert failed", job.error_message.clone().unwrap_or_else(|| "Nothing was inserted.".to_owned())),
    }
}

/// The audit record, then what can be done with the job in its state: follow it while it runs,
/// verify it once it has finished, roll it back once it has completed.
#[component]
fn JobRecord(detail: JobDetail, polls: RwSignal<u32>) -> impl IntoView {
    let job = detail.summary.clone();
    let id = job.id;
    let status = job.status;
    let time =
        |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or("–".into());
    view! {
        <h1>"Import job " <span class="mono" title=id.to_string()>{job.short_id()}</span></h1>
        <section class="card">
            <dl class="record" data-testid="job-record">
                <dt>"Job"</dt><dd class="mono">{id.to_string()}</dd>
                <dt>"Merchant"</dt><dd>{job.merchant_name.clone().unwrap_or_else(|| job.merchant_id.to_string())}</dd>
                <dt>"Status"</dt>
                <dd><span class=format!("status status-{status}") data-testid="job-status">{status.as_str()}</span></dd>
                <dt>"Codes to insert"</dt>
                <dd data-testid="job-expected">{job.total_codes_to_insert.map(format_count).unwrap_or("–".into())}</dd>
                <dt>"Codes inserted"</dt><dd data-testid="job-inserted">{inserted_text(&job)}</dd>
                <dt>"Started by"</dt><dd>{job.created_by_email.clone().unwrap_or_default()}</dd>
                <dt>"Created"</dt><dd>{time(Some(job.created_at))}</dd>
                <dt>"Completed"</dt><dd>{time(job.completed_at)}</dd>
                <dt>"Rolled back"</dt><dd>{time(job.rolled_back_at)}</dd>
                <dt>"Rows staged"</dt><dd data-testid="job-rows-staged">{count_or_dash(job.rows_staged)}</dd>
                <dt>"Duplicates left out"</dt><dd data-testid="job-duplicates">{count_or_dash(job.duplicates())}</dd>
            </dl>
            {job.error_message.clone().map(|message| view! { <p class="error" role="alert" data-testid="job-error">{message}</p> })}
            {(status == JobStatus::RolledBack).then(|| view! {
                <p class="success" data-testid="rollback-done">{rolled_back_text(detail.codes_deleted)}</p>
            })}
        </section>
        <section class="card">
            <h2>"Pre-flight"</h2>
            <ul data-testid="preflight-record">
                {detail.preflight.sentences().into_iter().map(|sentence| view! { <li>{sentence}</li> }).collect_view()}
            </ul>
        </section>
        <JobFiles files=detail.files.clone()/>
        {status.is_running().then(|| view! {
            <RunningInsert status expected=job.total_codes_to_insert progress=detail.progress.clone()/>
        })}
        {(!status.is_running()).then(|| view! { <VerifyCard job=id/> })}
        {(status == JobStatus::Completed).then(|| view! {
            <RollbackCard job=id claimed=detail.claimed_codes.unwrap_or(0) inserted=job.codes_inserted polls/>
        })}
    }
}

/// The job's files as it recorded them: sizes, rows staged, skipped and rejected, checksums.
#[component]
fn JobFiles(files: Vec<JobFile>) -> impl IntoView {
    let count = |n: Option<i64>| view! { <td class="num">{count_or_dash(n)}</td> };
    view! {
        <section class="card">
            <h2>"Files"</h2>
            {if files.is_empty() {
                view! { <p class="muted">"No files were recorded for this job."</p> }.into_any()
            } else {
                view! {
                    <div class="table-scroll">
                    <table data-testid="job-files-table">
                        <thead>
                            <tr>
                                <th scope="col">"File"</th>
                                <th scope="col" class="num">"Size"</th>
                                <th scope="col" class="num">"Rows staged"</th>
                                <th scope="col" class="num">"Skipped"</th>
                                <th scope="col" class="num">"Rejected"</th>
                                <th scope="col">"Checksum"</th>
                            </tr>
                        </thead>
                        <tbody>
                            {files.into_iter().map(|file| view! {
                                <tr data-testid="job-file">
                                    <td>{file.name} {file.restaged.then_some(" (staged again)")}</td>
                                    <td class="num">{file.size.map(|s| format_bytes(s.max(0) as u64)).unwrap_or_else(|| "–".into())}</td>
                                    {count(file.rows_staged)}
                                    {count(file.rows_skipped)}
                                    {count(file.rows_rejected)}
                                    <td class="mono" title=file.checksum.clone()>
                                        {file.checksum.as_deref().map(|c| c.chars().take(12).collect::<String>()).unwrap_or_default()}
                                    </td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                    </div>
                }.into_any()
            }}
        </section>
    }
}

/// What a rolled-back job's record says it did.
fn rolled_back_text(deleted: Option<i64>) -> String {
    match deleted {
        Some(1) => "Rolled back: 1 code deleted.".to_owned(),
        Some(n) => format!("Rolled back: {} codes deleted.", format_count(n)),
        // Rolled back by the original system's function, which kept no count.
        None => "Rolled back; the number of codes deleted was not recorded.".to_owned(),
    }
}

/// A running insert: its step in words, its phase, and the time since it started — from the
/// server's timestamps at the last poll, ticking each second in between.
#[component]
fn RunningInsert(status: JobStatus, expected: Option<i64>, progress: Option<JobProgress>) -> impl IntoView {
    let ticks = RwSignal::new(0_i64);
    Effect::new(move |_| {
        let tick = move || {
            ticks.try_update(|t| *t += 1);
        };
        if let Ok(handle) = set_interval_with_handle(tick, Duration::from_secs(1)) {
            on_cleanup(move || handle.clear());
        }
    });
    let since = progress.as_ref().map(JobProgress::elapsed_seconds);
    let written = progress.as_ref().and_then(|p| p.rows_done).zip(expected);
    let phase = progress.map(|p| p.phase).filter(|p| !p.is_empty()).unwrap_or_else(|| "Starting".to_owned());
    view! {
        <section class="card" data-testid="job-running" aria-live="polite">
            <h2 class="running">"In progress"</h2>
            <p data-testid="job-progress">{progress_words(status, expected)}</p>
            {written.map(|(done, total)| view! {
                <ProgressBar done total testid="job-written">
                    {format_count(done)} " of " {format_count(total)} " codes written"
                </ProgressBar>
            })}
            <dl class="record">
                <dt>"Phase"</dt><dd data-testid="job-phase">{phase}</dd>
                <dt>"Elapsed"</dt>
                <dd data-testid="job-elapsed">{move || since.map(|s| elapsed_words(s + ticks.get())).unwrap_or("–".into())}</dd>
            </dl>
            <p class="muted">"Verify and roll back are offered once the insert has finished. This page may be closed: the insert goes on."</p>
        </section>
    }
}

/// Recounts the job's codes in production, against what the job recorded (none, once rolled
/// back).
#[component]
fn VerifyCard(job: Uuid) -> impl IntoView {
    let verify = Action::new(move |_: &()| verify_job(job));
    view! {
        <section class="card">
            <h2>"Verify"</h2>
            <button on:click=move |_| { verify.dispatch(()); } data-testid="verify">"Recount the job's codes"</button>
            <VerificationResult verify/>
        </section>
    }
}

/// The recount's answer, once there is one.
#[component]
fn VerificationResult(verify: Action<(), Result<JobVerification, AppError>>) -> impl IntoView {
    move || {
        verify.value().get().map(|result| match result {
            Ok(v) => view! {
                <p data-testid="verification" class=if v.matches() { "success" } else { "warning" }>{v.words()}</p>
            }
            .into_any(),
            Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
        })
    }
}

/// Rollback of a completed job, as a card of the job's page.
#[component]
fn RollbackCard(job: Uuid, claimed: i64, inserted: Option<i64>, polls: RwSignal<u32>) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"Roll back"</h2>
            <RollbackForm job claimed inserted done=polls/>
        </section>
    }
}

/// Rollback of a completed job: how many of its codes are claimed, first; with none claimed,
/// the rollback once the user types DELETE (a claim that lands meanwhile still refuses it on
/// the server). `done` is bumped once it has rolled back. The job's page and the history use
/// the same form.
#[component]
fn RollbackForm(job: Uuid, claimed: i64, inserted: Option<i64>, done: RwSignal<u32>) -> impl IntoView {
    let of_codes = inserted.map(|n| format!(" of {} codes", format_count(n))).unwrap_or_default();
    if claimed > 0 {
        return view! {
            <p class="warning" data-testid="claimed-codes">
                {format!("{} claimed{of_codes} by customers: a rollback would be refused, so it is not offered. \
                          Claimed codes are never deleted.", format_count(claimed))}
            </p>
        }
        .into_any();
    }
    let typed = RwSignal::new(String::new());
    let rollback = Action::new(move |typed: &String| rollback_job(job, typed.clone()));
    Effect::new(move |_| {
        if let Some(Ok(_)) = rollback.value().get() {
            done.update(|n| *n += 1);
        }
    });
    view! {
        <p class="muted" data-testid="claimed-codes">
            {format!("0 claimed{of_codes}: a rollback deletes every code this job inserted, in one transaction.")}
        </p>
        <form class="inline-form" on:submit=move |event: ev::SubmitEvent| {
            event.prevent_default();
            rollback.dispatch(typed.get_untracked());
        }>
            <label>"Type DELETE to roll back"
                <input data-testid="rollback-confirmation" autocomplete="off"
                    prop:value=move || typed.get() on:input=move |event| typed.set(event_target_value(&event))/>
            </label>
            <button type="submit" class="danger" data-testid="rollback"
                prop:disabled=move || typed.get().trim() != "DELETE" || rollback.pending().get()>"Roll back"</button>
        </form>
        {move || rollback.value().get().and_then(Result::err).map(|error| view! {
            <p class="error" role="alert">{error.to_string()}</p>
        })}
    }
    .into_any()
}
