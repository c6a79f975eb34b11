//! What runs, told to a user who looks at another tab: the tab's title leads with it ("Uploading
//! 37% · Upload · Code Import"), and a browser notification says when it has finished.

use leptos::prelude::*;
use leptos_meta::Title;

/// What runs on the page now (an upload, a check, an insert) in a few words, for the title.
#[derive(Debug, Clone, Copy)]
struct Running(RwSignal<Option<String>>);

/// Gives the pages one place to say what runs; called once, by the app.
pub fn provide_running() {
    provide_context(Running(RwSignal::new(None)));
}

/// Follows what runs on a page for a user in another tab: `words` — `None` while not yet known,
/// `Some(None)` when nothing runs, else what runs in a few words — leads the tab's title, and
/// when it stops running, `outcome` (a title and a body, if there is something to say) is
/// notified.
pub fn follow_running(
    words: impl Fn() -> Option<Option<String>> + Copy + Send + Sync + 'static,
    outcome: impl Fn() -> Option<(&'static str, String)> + 'static,
) {
    show_running(move || words().flatten());
    when_finished(
        move || words().map(|running| running.is_some()),
        move || {
            if let Some((title, body)) = outcome() {
                notify(title, &body);
            }
        },
    );
}

/// Puts what `words` says runs (`None`: nothing) at the head of the tab's title while the calling
/// component is on the page. In the browser only: the server renders the page's plain title.
fn show_running(words: impl Fn() -> Option<String> + Send + Sync + 'static) {
    let Some(Running(slot)) = use_context() else { return };
    Effect::new(move |_| slot.set(words()));
    on_cleanup(move || {
        slot.try_set(None);
    });
}

/// The tab's title for page `page` ("" for the home page), led by what runs on it.
#[component]
pub fn PageTitle(#[prop(into)] page: String) -> impl IntoView {
    let running = use_context::<Running>();
    let text = move || title_text(&page, running.and_then(|Running(slot)| slot.get()).as_deref());
    view! { <Title text/> }
}

/// "Uploading 37% · Upload · Code Import"; "Code Import" for the home page with nothing running.
pub fn title_text(page: &str, running: Option<&str>) -> String {
    [running.unwrap_or(""), page, "Code Import"]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" · ")
}

/// Whether the browser has the Notification API (it has not on a page served over plain HTTP
/// from another machine: notifications need a secure context).
fn notifications_available() -> bool {
    js_sys::Reflect::has(&window(), &"Notification".into()).unwrap_or(false)
}

/// Asks the user, once, whether the app may notify them when something finishes. Called from a
/// click (browsers ignore a request that no user action led to); a user who answered is not
/// asked again.
pub fn ask_to_notify() {
    if notifications_available() && web_sys::Notification::permission() == web_sys::NotificationPermission::Default {
        let _ = web_sys::Notification::request_permission();
    }
}

/// Shows a notification saying `title`, with `body` under it, if the user allowed them and is
/// looking elsewhere: a tab in view says it itself.
fn notify(title: &str, body: &str) {
    if !notifications_available() || web_sys::Notification::permission() != web_sys::NotificationPermission::Granted {
        return;
    }
    if document().visibility_state() == web_sys::VisibilityState::Visible {
        return;
    }
    let options = web_sys::NotificationOptions::new();
    options.set_body(body);
    options.set_icon("/pkg/favicon.svg");
    let _ = web_sys::Notification::new_with_options(title, &options);
}

/// Calls `finished` once when `running` turns from true to false while the page watches (a page
/// opened after the end says so itself, with no notification).
fn when_finished(running: impl Fn() -> Option<bool> + 'static, finished: impl Fn() + 'static) {
    Effect::new(move |before: Option<Option<bool>>| {
        let now = running();
        if before.flatten() == Some(true) && now == Some(false) {
            finished();
        }
        now.or(before.flatten())
    });
}

#[cfg(test)]
mod tests {
    use super::title_text;

    #[test]
    fn a_title_names_what_runs_then_the_page_then_the_app() {
        assert_eq!(title_text("", None), "Code Import");
        assert_eq!(title_text("Upload", None), "Upload · Code Import");
        assert_eq!(title_text("Upload", Some("Uploading 37%")), "Uploading 37% · Upload · Code Import");
    }
}
