//! How far a long step has come, drawn: the upload's rows stored, the insert's codes written.

use leptos::prelude::*;

/// A bar of `done` out of `total` with `children` beside it (the figures in words); `testid`
/// names the whole.
#[component]
pub fn ProgressBar(done: i64, total: i64, testid: &'static str, children: Children) -> impl IntoView {
    view! {
        <div class="progress" data-testid=testid>
            <progress max=total.max(1) value=done.clamp(0, total.max(1))></progress>
            <span>{children()}</span>
        </div>
    }
}
