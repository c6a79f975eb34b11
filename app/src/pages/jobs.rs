//! `/jobs`: the import job history, filtered and paged; `/jobs/:id`: one job's audit record,
//! with verify and rollback.

use std::time::Duration;

use chrono::{DateTime, Utc};
use leptos::{ev, prelude::*, task::spawn_local};
use leptos_router::{components::A, hooks::use_params_map};
use uuid::Uuid;

use crate::{
    admin::list_merchants,
    components::{
        activity::{notify, show_running, when_finished, PageTitle},
        error::ErrorNotice,
        format::{counted, format_count},
        scroll_box::ScrollBox,
    },
    jobs::{
        elapsed_words, get_job, list_jobs, progress_words, rollback_job, verify_job, JobDetail, JobProgress, JobStatus,
        JobSummary, JOBS_PAGE_SIZE, JOB_STATUSES,
    },
    staging::client::sleep_ms,
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
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    let list = merchants.await.unwrap_or_default();
                    view! {
                        <label>"Merchant"
                            <select data-testid="filter-merchant" on:change=set(|f, v| f.merchant = v.parse().ok())>
                                <option value="">"All"</option>
                                {list.into_iter().map(|m| view! { <option value=m.id.to_string()>{m.name}</option> }).collect_view()}
                            </select>
                        </label>
                    }
                })}
            </Transition>
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
                            <JobsTable jobs/>
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

/// The job history as a table.
#[component]
fn JobsTable(jobs: Vec<JobSummary>) -> impl IntoView {
    view! {
        <ScrollBox label="Import jobs">
        <table class="jobs" data-testid="jobs-table">
            <thead>
                <tr>
                    <th scope="col">"Created"</th>
                    <th scope="col">"Merchant"</th>
                    <th scope="col">"Status"</th>
                    <th scope="col" class="num">"Codes inserted"</th>
                    <th scope="col">"By"</th>
                    <th scope="col">"Files"</th>
                    <th scope="col">"Job"</th>
                </tr>
            </thead>
            <tbody>
                {jobs.into_iter().map(|job| view! { <JobRow job/> }).collect_view()}
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

/// One job in the history table.
#[component]
fn JobRow(job: JobSummary) -> impl IntoView {
    let status_class = format!("status status-{}", job.status);
    view! {
        <tr data-testid="job-row" data-job-id=job.id.to_string()>
            <td>{job.created_at.format("%Y-%m-%d %H:%M UTC").to_string()}</td>
            <td>{job.merchant_name.clone().unwrap_or_else(|| job.merchant_id.to_string())}</td>
            <td><span class=status_class data-testid="job-status">{job.status.as_str()}</span></td>
            <td class="num">{inserted_text(&job)}</td>
            <td>{job.created_by_email.clone().unwrap_or_default()}</td>
            <td>{job.files.join(", ")}</td>
            <td class="mono"><A href=format!("/jobs/{}", job.id)>{job.id.to_string()}</A></td>
        </tr>
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
    let status = move || detail.get().and_then(Result::ok).map(|d| d.summary.status);
    show_running(move || status().filter(|s| s.is_running()).map(insert_words));
    when_finished(
        move || status().map(|s| s.is_running()),
        move || {
            if let Some(Ok(detail)) = detail.get_untracked() {
                let (title, body) = insert_outcome(&detail.summary);
                notify(title, &body);
            }
        },
    );
    let short_id = move || job.get().map(|id| id.to_string()[..8].to_owned()).unwrap_or_default();
    Effect::new(move |_| {
        let in_progress = detail.get().and_then(Result::ok).is_some_and(|d| d.summary.status.is_running());
        if in_progress {
            spawn_local(async move {
                sleep_ms(1_000).await;
                polls.update(|n| *n += 1);
            });
        }
    });
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
        <h1>"Import job"</h1>
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
                <dt>"Files"</dt><dd>{job.files.join(", ")}</dd>
                <dt>"Pre-flight passed"</dt><dd>{detail.validation_passed.map(|p| if p { "yes" } else { "no" }).unwrap_or("–")}</dd>
            </dl>
            {job.error_message.clone().map(|message| view! { <p class="error" role="alert" data-testid="job-error">{message}</p> })}
            {(status == JobStatus::RolledBack).then(|| view! {
                <p class="success" data-testid="rollback-done">{rolled_back_text(detail.codes_deleted)}</p>
            })}
            <details>
                <summary>"Pre-flight record"</summary>
                <pre>{detail.validation_errors.clone().unwrap_or_default()}</pre>
            </details>
            <details>
                <summary>"Source files"</summary>
                <pre>{detail.source_info.clone().unwrap_or_default()}</pre>
            </details>
        </section>
        {status.is_running().then(|| view! {
            <RunningInsert status expected=job.total_codes_to_insert progress=detail.progress.clone()/>
        })}
        {(!status.is_running()).then(|| view! { <VerifyCard job=id/> })}
        {(status == JobStatus::Completed).then(|| view! {
            <RollbackCard job=id claimed=detail.claimed_codes.unwrap_or(0) inserted=job.codes_inserted polls/>
        })}
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
    let phase = progress.map(|p| p.phase).filter(|p| !p.is_empty()).unwrap_or_else(|| "Starting".to_owned());
    view! {
        <section class="card" data-testid="job-running" aria-live="polite">
            <h2 class="running">"In progress"</h2>
            <p data-testid="job-progress">{progress_words(status, expected)}</p>
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
            {move || verify.value().get().map(|result| match result {
                Ok(v) => view! {
                    <p data-testid="verification" class=if v.matches() { "success" } else { "warning" }>{v.words()}</p>
                }.into_any(),
                Err(error) => view! { <p class="error" role="alert">{error.to_string()}</p> }.into_any(),
            })}
        </section>
    }
}

/// Rollback of a completed job: how many of its codes are claimed, first; with none claimed,
/// the rollback once the user types DELETE (a claim that lands meanwhile still refuses it on
/// the server).
#[component]
fn RollbackCard(job: Uuid, claimed: i64, inserted: Option<i64>, polls: RwSignal<u32>) -> impl IntoView {
    let of_codes = inserted.map(|n| format!(" of {} codes", format_count(n))).unwrap_or_default();
    if claimed > 0 {
        return view! {
            <section class="card">
                <h2>"Roll back"</h2>
                <p class="warning" data-testid="claimed-codes">
                    {format!("{} claimed{of_codes} by customers: a rollback would be refused, so it is not offered. \
                              Claimed codes are never deleted.", format_count(claimed))}
                </p>
            </section>
        }
        .into_any();
    }
    let typed = RwSignal::new(String::new());
    let rollback = Action::new(move |typed: &String| rollback_job(job, typed.clone()));
    Effect::new(move |_| {
        if let Some(Ok(_)) = rollback.value().get() {
            polls.update(|n| *n += 1);
        }
    });
    view! {
        <section class="card">
            <h2>"Roll back"</h2>
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
        </section>
    }
    .into_any()
}
