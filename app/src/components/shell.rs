//! The frame around every page.

use leptos::prelude::*;
use leptos_router::components::A;

use crate::auth::{signed_in_user, CurrentUser, Logout, Role};

/// The top bar: product name, the links to each part of the journey, and who is signed in.
#[component]
pub fn Navigation() -> impl IntoView {
    let user = Resource::new(|| (), |_| signed_in_user());
    view! {
        <header class="topbar">
            <A href="/" attr:class="brand">"Code Import"</A>
            <Transition fallback=|| ()>
                {move || Suspend::new(async move {
                    match user.await {
                        Ok(Some(user)) => view! { <MainLinks user=user.clone()/><UserMenu user/> }.into_any(),
                        _ => ().into_any(),
                    }
                })}
            </Transition>
        </header>
    }
}

/// The journey's pages, plus Admin for ops.
#[component]
fn MainLinks(user: CurrentUser) -> impl IntoView {
    view! {
        <nav aria-label="Main">
            <A href="/upload">"Upload"</A>
            <A href="/review">"Review"</A>
            <A href="/jobs">"Jobs"</A>
            {(user.role == Role::Ops).then(|| view! { <A href="/admin">"Admin"</A> })}
        </nav>
    }
}

/// Who is signed in, for which merchants, and the sign-out button.
#[component]
fn UserMenu(user: CurrentUser) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    // A full page load after signing out leaves nothing of the session in the page.
    Effect::new(move |_| {
        if let Some(Ok(())) = logout.value().get() {
            let _ = window().location().set_href("/login");
        }
    });
    let merchants = match user.role {
        Role::Ops => "All merchants".to_owned(),
        Role::MerchantAdmin => user.merchants.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(", "),
    };
    view! {
        <div class="user-menu" data-testid="user-menu">
            <span class="who">
                <strong data-testid="user-email">{user.email.clone()}</strong>
                <span class="muted">" · " {user.role.label()} " · "</span>
            </span>
            <span class="merchants" data-testid="user-merchants">{merchants}</span>
            <ActionForm action=logout>
                <button type="submit">"Sign out"</button>
            </ActionForm>
        </div>
    }
}
