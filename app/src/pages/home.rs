//! `/`: where each of the user's merchants stands, and the journey in one screen.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::{
    batch::{batch_overview, BatchState, MerchantBatch},
    components::{activity::PageTitle, error::ErrorNotice, format::format_count},
    operations::with_article,
};

/// The landing page: each merchant's batch, then the journey.
#[component]
pub fn HomePage() -> impl IntoView {
    let overview = Resource::new(|| (), |_| batch_overview());
    view! {
        <PageTitle page=""/>
        <h1>"Code Import"</h1>
        <p class="lead">
            "Bulk-import promotional codes from CSV files: see every duplicate before anything "
            "touches production, insert the clean codes in one audited job, and roll any job back."
        </p>
        <section class="card">
            <h2>"Your merchants"</h2>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match overview.await {
                        Ok(list) if list.is_empty() => view! {
                            <p class="empty" data-testid="merchants-empty">
                                "No merchant yet — ops create them under " <A href="/admin">"Admin"</A> "."
                            </p>
                        }.into_any(),
                        Ok(list) => view! {
                            <ul class="merchant-batches" data-testid="merchant-batches">
                                {list.into_iter().map(|entry| view! { <MerchantLine entry/> }).collect_view()}
                            </ul>
                        }.into_any(),
                        Err(error) => view! { <ErrorNotice error/> }.into_any(),
                    }
                })}
            </Transition>
        </section>
        <ol class="journey">
            <li>"Choose the CSV files and let the browser validate them."</li>
            <li>"Upload them to staging."</li>
            <li>"Review internal and database duplicates."</li>
            <li>"Insert the clean codes after typing YES."</li>
            <li>"Verify or roll back the job from the job history."</li>
        </ol>
        <p>
            <A href="/jobs">"See the import jobs"</A>
        </p>
    }
}

/// "NBD: 1,552,041 rows staged, checked 2 min ago — review and insert".
#[component]
fn MerchantLine(entry: MerchantBatch) -> impl IntoView {
    let merchant = entry.merchant.id;
    let review = format!("/review?merchant={merchant}");
    let (status, link, href) = line(&entry);
    let href = href.unwrap_or(review);
    view! {
        <li data-testid="merchant-batch" data-merchant=merchant.to_string()>
            <strong>{entry.merchant.name.clone()}</strong> ": "
            <span data-testid="merchant-batch-status">{status}</span> " — "
            <A href=href>{link}</A>
        </li>
    }
}

/// What the line says, the link's words, and where it goes if not to the review.
fn line(entry: &MerchantBatch) -> (String, &'static str, Option<String>) {
    let upload = Some(format!("/upload?merchant={}", entry.merchant.id));
    if let Some(op) = &entry.running {
        let phase = if op.phase.is_empty() { String::new() } else { format!(": {}", op.phase) };
        return (format!("{} is running{phase}", with_article(op.kind_name())), "follow it", None);
    }
    let Some(batch) = &entry.batch else { return ("nothing staged".into(), "upload files", upload) };
    let rows = format_count(batch.rows_staged);
    match batch.state {
        BatchState::Cleared => (
            format!(
                "nothing staged (the last batch, {} rows, was cleared)",
                format_count(batch.rows_cleared.unwrap_or(0))
            ),
            "upload files",
            upload,
        ),
        BatchState::Lost => {
            ("the staged rows were lost in a restart of the database".into(), "upload them again", upload)
        }
        BatchState::Open if batch.rows_staged == 0 => ("nothing staged".into(), "upload files", upload),
        BatchState::Open if batch.stale() => {
            (format!("{rows} rows staged, changed after the check"), "check again", None)
        }
        BatchState::Open => (format!("{rows} rows staged, not checked yet"), "check duplicates", None),
        BatchState::Checked => {
            let ago = entry.checked_seconds_ago.map(ago).unwrap_or_default();
            (format!("{rows} rows staged, checked {ago}"), "review and insert", None)
        }
        BatchState::Inserting => (format!("{rows} rows staged, insert running"), "follow it", None),
        BatchState::Inserted => (
            format!(
                "inserted as a job of {} codes; {rows} rows still staged",
                format_count(batch.codes_inserted.unwrap_or(0))
            ),
            "see the job",
            batch.job_id.map(|job| format!("/jobs/{job}")),
        ),
    }
}

/// 42 → "just now", 150 → "2 min ago", 7300 → "2 h ago", 200000 → "2 days ago".
fn ago(seconds: i64) -> String {
    match seconds {
        s if s < 60 => "just now".into(),
        s if s < 3600 => format!("{} min ago", s / 60),
        s if s < 86_400 => format!("{} h ago", s / 3600),
        s => format!("{} days ago", s / 86_400),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ages_read_as_people_say_them() {
        assert_eq!(super::ago(42), "just now");
        assert_eq!(super::ago(150), "2 min ago");
        assert_eq!(super::ago(7_300), "2 h ago");
        assert_eq!(super::ago(200_000), "2 days ago");
    }
}
