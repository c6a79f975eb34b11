//! `/upload`: choosing and staging files.

use leptos::prelude::*;

/// The upload page. Staging arrives with the upload feature; until then the page says so
/// rather than offering controls that do nothing.
#[component]
pub fn UploadPage() -> impl IntoView {
    view! {
        <h1>"Upload"</h1>
        <p class="notice">"Uploading files is not available in this version yet."</p>
    }
}
