//! The frame around every page.

use leptos::prelude::*;
use leptos_router::components::A;

/// The top bar: product name and the links to each part of the journey.
#[component]
pub fn Navigation() -> impl IntoView {
    view! {
        <header class="topbar">
            <A href="/" attr:class="brand">"Code Import"</A>
            <nav aria-label="Main">
                <A href="/upload">"Upload"</A>
                <A href="/jobs">"Jobs"</A>
            </nav>
        </header>
    }
}
