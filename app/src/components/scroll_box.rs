//! The box a wide table scrolls in.

use leptos::prelude::*;

/// Holds a table that may be wider than a phone's screen: the box scrolls sideways, the page
/// never does. It takes the keyboard's focus (and says what it holds), so that it can be
/// scrolled without a mouse.
#[component]
pub fn ScrollBox(#[prop(into)] label: String, children: Children) -> impl IntoView {
    view! {
        <div class="table-scroll" role="region" aria-label=label tabindex="0">
            {children()}
        </div>
    }
}
