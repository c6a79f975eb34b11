//! How a failed request reads on the page.

use leptos::prelude::*;

use crate::error::AppError;

/// Shows an error. An expired or missing session sends the browser to the sign-in page,
/// which brings the user back here afterwards.
#[component]
pub fn ErrorNotice(error: AppError) -> impl IntoView {
    if error == AppError::Unauthorized {
        Effect::new(move |_| send_to_sign_in());
    }
    view! { <p class="error" role="alert">{error.to_string()}</p> }
}

/// Sends the browser to the sign-in page, which brings the user back to this page afterwards.
/// Called in the browser only (an effect, an event handler, an upload's task).
pub fn send_to_sign_in() {
    let location = window().location();
    let here = location.pathname().unwrap_or_default() + &location.search().unwrap_or_default();
    let _ = location.set_href(&crate::auth::login_path(&here));
}
