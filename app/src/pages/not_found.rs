//! The page for unknown routes.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::components::activity::PageTitle;

/// Says the page does not exist; the server answers 404 with it.
#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        response.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <PageTitle page="Page not found"/>
        <h1>"Page not found"</h1>
        <p>"There is no page at this address. " <A href="/">"Go to the start page"</A> "."</p>
    }
}
