//! `/`: what the app does and where to start.

use leptos::prelude::*;
use leptos_router::components::A;

/// The landing page: the journey in one screen.
#[component]
pub fn HomePage() -> impl IntoView {
    view! {
        <h1>"Code Import"</h1>
        <p class="lead">
            "Bulk-import promotional codes from CSV files: see every duplicate before anything "
            "touches production, insert the clean codes in one audited job, and roll any job back."
        </p>
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
