//! `/jobs`: the import job history.

use leptos::prelude::*;

use crate::components::{error::ErrorNotice, format::format_count};
use crate::jobs::{list_jobs, JobSummary};

/// Lists the import jobs, newest first, with a button that reloads the list in place.
#[component]
pub fn JobsPage() -> impl IntoView {
    let reloads = RwSignal::new(0_u32);
    let jobs = Resource::new(move || reloads.get(), |_| list_jobs(None, None, None, None, None, None));

    view! {
        <div class="page-head">
            <h1>"Jobs"</h1>
            <button type="button" data-testid="reload-jobs" on:click=move |_| reloads.update(|n| *n += 1)>
                "Refresh"
            </button>
        </div>
        <Transition fallback=|| view! { <p class="muted">"Loading jobs…"</p> }>
            {move || Suspend::new(async move {
                match jobs.await {
                    Ok(jobs) if jobs.is_empty() => {
                        view! { <p class="empty" data-testid="jobs-empty">"No imports yet"</p> }
                            .into_any()
                    }
                    Ok(jobs) => view! { <JobsTable jobs/> }.into_any(),
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
    }
}

/// One job in the history table.
#[component]
fn JobRow(job: JobSummary) -> impl IntoView {
    let inserted = match (job.codes_inserted, job.total_codes_to_insert) {
        (Some(inserted), _) => format_count(inserted),
        (None, Some(expected)) => format!("– of {}", format_count(expected)),
        (None, None) => "–".to_owned(),
    };
    let status_class = format!("status status-{}", job.status);
    view! {
        <tr data-testid="job-row" data-job-id=job.id.to_string()>
            <td>{job.created_at.format("%Y-%m-%d %H:%M UTC").to_string()}</td>
            <td>{job.merchant_name.clone().unwrap_or_else(|| job.merchant_id.to_string())}</td>
            <td><span class=status_class>{job.status.clone()}</span></td>
            <td class="num">{inserted}</td>
            <td>{job.created_by_email.clone().unwrap_or_default()}</td>
            <td>{job.files.join(", ")}</td>
            <td class="mono">{job.id.to_string()}</td>
        </tr>
    }
}
