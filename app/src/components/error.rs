//! How a failed request reads on the page.

use leptos::prelude::*;

use crate::error::AppError;

/// Shows an error. An expired or missing session sends the browser to the sign-in page,
/// which brings the user back here afterwards.
#[component]
pub fn ErrorNotice(error: AppError) -> impl IntoView {
    if error == AppError::Unauthorized {
        Effect::new(move |_| {
            let location = window().location();
            let here = location.pathname().unwrap_or_default() + &location.search().unwrap_or_default();
            let _ = location.set_href(&crate::auth::login_path(&here));
        });
    }
    view! { <p class="error" role="alert">{error.to_string()}</p> }
}
