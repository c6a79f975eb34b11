//! The one error type that crosses the wire to the browser.

use leptos::server_fn::{
    codec::JsonEncoding,
    error::{FromServerFnError, ServerFnErrorErr},
};
use serde::{Deserialize, Serialize};

/// What a server function tells the browser when it fails. User-fixable causes carry a
/// message; anything unexpected is `Internal`, logged once on the server and never detailed
/// here (no SQL text, no stack).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum AppError {
    /// No valid session: the page sends the user to sign in (HTTP 401).
    #[error("Sign in to continue.")]
    Unauthorized,
    /// Signed in, but not allowed to do this (HTTP 403).
    #[error("{0}")]
    Forbidden(String),
    /// Sign-in refused: unknown email or wrong password, never saying which (HTTP 401).
    #[error("The email or password is incorrect.")]
    BadCredentials,
    /// Too many failed sign-ins for this account or address (HTTP 429).
    #[error("{0}")]
    Throttled(String),
    /// The input cannot be used; the message says how to fix it (HTTP 400).
    #[error("{0}")]
    Invalid(String),
    /// No such thing — or none the caller may see: both get this same answer (HTTP 404).
    #[error("{0}")]
    NotFound(String),
    /// The request is larger than the server takes (HTTP 413).
    #[error("{0}")]
    TooLarge(String),
    /// The request clashes with what exists, e.g. an email already registered (HTTP 409).
    #[error("{0}")]
    Conflict(String),
    /// Another operation runs for the merchant (its message says which): the same request can
    /// succeed once that has ended (HTTP 409).
    #[error("{0}")]
    Busy(String),
    /// The server is at its bound for this kind of work (e.g. password hashes running at once);
    /// try again in a moment (HTTP 503 with `Retry-After`).
    #[error("{0}")]
    Overloaded(String),
    /// The database does not answer (restarting, unreachable, out of connections): the request
    /// may succeed a little later (HTTP 503 with `Retry-After`).
    #[error("{0}")]
    Unavailable(String),
    /// The database failed or something unexpected happened; details are in the server log.
    #[error("The server could not complete the request; try again, and tell ops if it persists.")]
    Internal,
    /// The request could not be sent, decoded or answered (network, encoding).
    #[error("The request failed: {0}")]
    Transport(String),
}

impl AppError {
    /// The HTTP status the server answers with for this error.
    pub fn status(&self) -> u16 {
        match self {
            AppError::Unauthorized | AppError::BadCredentials => 401,
            AppError::Forbidden(_) => 403,
            AppError::Throttled(_) => 429,
            AppError::Invalid(_) => 400,
            AppError::NotFound(_) => 404,
            AppError::TooLarge(_) => 413,
            AppError::Conflict(_) | AppError::Busy(_) => 409,
            AppError::Overloaded(_) | AppError::Unavailable(_) => 503,
            AppError::Internal | AppError::Transport(_) => 500,
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        AppError::Forbidden(message.into())
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        AppError::Invalid(message.into())
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        AppError::Conflict(message.into())
    }

    /// "There is no such `what`." — for an unknown id and for one that is not the caller's alike.
    pub fn not_found(what: &str) -> Self {
        AppError::NotFound(format!("There is no such {what}."))
    }

    /// Seconds a client should wait before trying again, for the answers that mean "later".
    pub fn retry_after_seconds(&self) -> Option<u32> {
        match self {
            AppError::Overloaded(_) => Some(1),
            AppError::Unavailable(_) => Some(2),
            AppError::Throttled(_) => Some(60),
            _ => None,
        }
    }

    /// Sets this error's status (and `Retry-After`) on the server function's response (a no-op
    /// outside a request). Server functions return errors through [`crate::auth::ssr::respond`].
    #[cfg(feature = "ssr")]
    pub fn set_response_status(&self) {
        if let Some(response) = leptos::prelude::use_context::<leptos_axum::ResponseOptions>() {
            if let Ok(status) = axum::http::StatusCode::from_u16(self.status()) {
                response.set_status(status);
            }
            if let Some(seconds) = self.retry_after_seconds() {
                response.insert_header(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(seconds));
            }
        }
    }
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        match value {
            // Arguments the server could not decode: the request is malformed (400), not a
            // fault of the server.
            ServerFnErrorErr::Args(_) | ServerFnErrorErr::MissingArg(_) => AppError::Invalid(value.to_string()),
            other => AppError::Transport(other.to_string()),
        }
    }
}

#[cfg(feature = "ssr")]
impl AppError {
    /// What a failure of the database is for the user, logging nothing: a database that cannot
    /// be reached (or is shutting down, or starting) is `Unavailable`, worth trying again;
    /// anything else is `Internal`.
    pub fn of_database(error: &sqlx::Error) -> Self {
        let unreachable = match error {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
            // SQLSTATE 08: connection exception; 57P: shutting down, starting up, terminated.
            sqlx::Error::Database(db) => {
                db.code().is_some_and(|code| code.starts_with("08") || code.starts_with("57P"))
            }
            _ => false,
        };
        if unreachable {
            AppError::Unavailable("The database is not answering just now; try again shortly.".into())
        } else {
            AppError::Internal
        }
    }

    /// [`AppError::of_database`], logged once in full (with the database's own text, which
    /// never goes further).
    pub fn logged(error: &sqlx::Error) -> Self {
        let shown = Self::of_database(error);
        if matches!(error, sqlx::Error::PoolTimedOut) {
            metrics::counter!("db_pool_timeouts_total").increment(1);
        }
        match shown {
            AppError::Unavailable(_) => tracing::warn!(%error, "the database is unavailable"),
            _ => tracing::error!(%error, "database error"),
        }
        shown
    }
}

#[cfg(feature = "ssr")]
impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        AppError::logged(&error)
    }
}

/// The answer of a plain route (chunks, downloads) that failed: the status the error calls
/// for, `Retry-After` where it means "later", and the error as JSON — the body server
/// functions answer with too.
#[cfg(feature = "ssr")]
impl axum::response::IntoResponse for AppError {
    fn into_response(self) -> axum::response::Response {
        let status =
            axum::http::StatusCode::from_u16(self.status()).unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = self.retry_after_seconds().map(|s| [(axum::http::header::RETRY_AFTER, s.to_string())]);
        (status, retry_after, axum::Json(self)).into_response()
    }
}
