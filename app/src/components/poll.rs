//! Asking the server again while an operation runs.

use leptos::{prelude::*, task::spawn_local};

use crate::staging::client::sleep_ms;

/// Moves `polls` (the source of the resource that `read` reads) while what it read is running:
/// a second after each answer that says so, and five seconds after a failed read (the server
/// restarting, a dropped connection), so that a page never stops at an error while the
/// operation goes on. In the browser only: effects do not run on the server.
pub fn poll_while<T, E>(
    read: impl Fn() -> Option<Result<T, E>> + Send + Sync + 'static,
    running: impl Fn(&T) -> bool + Send + Sync + 'static,
    polls: RwSignal<u32>,
) {
    Effect::new(move |_| {
        let again = match read() {
            Some(Ok(value)) => running(&value).then_some(1_000),
            Some(Err(_)) => Some(5_000),
            None => None,
        };
        if let Some(ms) = again {
            spawn_local(async move {
                sleep_ms(ms).await;
                // The page may have gone meanwhile.
                polls.try_update(|n| *n += 1);
            });
        }
    });
}
