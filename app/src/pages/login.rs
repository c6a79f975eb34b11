//! `/login`: signing in.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::{
    auth::{safe_next, Login},
    components::activity::PageTitle,
};

/// The sign-in form. After signing in the browser goes to `?next=` (a local path) or home.
#[component]
pub fn LoginPage() -> impl IntoView {
    let login = ServerAction::<Login>::new();
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    Effect::new(move |_| {
        if let Some(Ok(())) = login.value().get() {
            let target = safe_next(Some(&next()));
            let _ = window().location().set_href(&target);
        }
    });
    let error = move || login.value().get().and_then(Result::err).map(|e| e.to_string());

    view! {
        <PageTitle page="Sign in"/>
        <section class="login">
            <h1>"Sign in"</h1>
            <ActionForm action=login>
                <label>
                    "Email"
                    <input type="email" name="email" autocomplete="username" required/>
                </label>
                <label>
                    "Password"
                    <input type="password" name="password" autocomplete="current-password" required/>
                </label>
                <input type="hidden" name="next" value=next/>
                <button type="submit" class="primary" disabled=move || login.pending().get()>
                    "Sign in"
                </button>
            </ActionForm>
            {move || error().map(|message| view! { <p class="error" role="alert">{message}</p> })}
        </section>
    }
}
