#![recursion_limit = "256"]
//! Code Import: the Leptos application shared by the server (`ssr`) and the browser (`hydrate`).

pub mod admin;
pub mod auth;
pub mod components;
pub mod csv;
pub mod duplicates;
pub mod error;
pub mod jobs;
pub mod operations;
pub mod pages;
pub mod reports;
pub mod staging;
#[cfg(feature = "ssr")]
pub mod state;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

use components::shell::Navigation;
use pages::{
    admin::AdminPage,
    home::HomePage,
    jobs::{JobPage, JobsPage},
    login::LoginPage,
    not_found::NotFound,
    review::ReviewPage,
    upload::UploadPage,
};

/// The HTML document around the app, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <HydrationScripts options/>
                // A page restored from the back-forward cache after signing out must not show
                // data: reload it, and the server sends it to the sign-in page.
                <script>"addEventListener('pageshow', e => { if (e.persisted) location.reload(); });"</script>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The application: navigation and one page per route.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    mark_hydrated();

    view! {
        <Stylesheet id="app-style" href="/pkg/main.css"/>
        <Title text="Code Import"/>
        <Router>
            <Navigation/>
            <main class="page">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=HomePage/>
                    <Route path=path!("/upload") view=UploadPage/>
                    <Route path=path!("/review") view=ReviewPage/>
                    <Route path=path!("/jobs") view=JobsPage/>
                    <Route path=path!("/jobs/:id") view=JobPage/>
                    <Route path=path!("/admin") view=AdminPage/>
                    <Route path=path!("/login") view=LoginPage/>
                </Routes>
            </main>
        </Router>
    }
}

/// Sets `data-hydrated` on `<body>` once the WASM has taken over the page; effects run only in
/// the browser, so the attribute tells users of the page (and the browser tests) that clicks
/// are now handled client-side.
fn mark_hydrated() {
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}
