#![recursion_limit = "256"]
//! Code Import: the Leptos application shared by the server (`ssr`) and the browser (`hydrate`).

pub mod admin;
pub mod auth;
pub mod batch;
pub mod components;
pub mod csv;
pub mod duplicates;
pub mod error;
pub mod jobs;
pub mod mappings;
pub mod operations;
pub mod pages;
pub mod reports;
pub mod staging;
#[cfg(feature = "ssr")]
pub mod state;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet};
use leptos_router::{
    components::{Route, Router, Routes},
    path,
};

use components::{activity::provide_running, shell::Navigation};
use pages::{
    admin::AdminPage,
    home::HomePage,
    jobs::{JobPage, JobsPage},
    login::LoginPage,
    not_found::NotFound,
    review::ReviewPage,
    upload::UploadPage,
};

/// The HTML document around the app, rendered on the server. No inline script: the page's
/// one script is `/pkg/boot.js` (it loads the WASM and hydrates), so the
/// Content-Security-Policy can forbid inline scripts altogether.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let pkg = format!("/{}", options.site_pkg_dir);
    let name = options.output_name.clone();
    #[cfg(feature = "ssr")]
    content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <link rel="icon" href=format!("{pkg}/favicon.svg") r#type="image/svg+xml"/>
                <link rel="modulepreload" href=format!("{pkg}/{name}.js")/>
                <link rel="preload" href=format!("{pkg}/{name}_bg.wasm") r#as="fetch" r#type="application/wasm" crossorigin=""/>
                <script type="module" src=format!("{pkg}/boot.js")></script>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// What a page may load and run: its own scripts and WebAssembly, and inline scripts only with
/// this response's nonce (Leptos streams its resources' data in such scripts; the app has none
/// of its own); its own styles (style attributes for the chart's widths); no frames, no plugins.
#[cfg(feature = "ssr")]
pub fn content_security_policy_for(nonce: Option<&str>) -> String {
    let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{nonce}; style-src 'self'; \
         style-src-attr 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; object-src 'none'; \
         base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// Puts the policy with this render's nonce on the page's response.
#[cfg(feature = "ssr")]
fn content_security_policy() {
    let nonce = leptos::nonce::use_nonce();
    if let Some(response) = use_context::<leptos_axum::ResponseOptions>() {
        let policy = content_security_policy_for(nonce.as_deref());
        if let Ok(value) = axum::http::HeaderValue::from_str(&policy) {
            response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, value);
        }
    }
}

/// The application: navigation and one page per route.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_running();
    mark_hydrated();

    view! {
        <Stylesheet id="app-style" href="/pkg/main.css"/>
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
