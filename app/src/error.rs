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
    /// The database could not be reached or answered an error; details are in the server log.
    #[error("the server could not complete the request; try again, and tell ops if it persists")]
    Internal,
    /// The request could not be sent, decoded or answered (network, encoding).
    #[error("the request failed: {0}")]
    Transport(String),
}

impl FromServerFnError for AppError {
    type Encoder = JsonEncoding;

    fn from_server_fn_error(value: ServerFnErrorErr) -> Self {
        AppError::Transport(value.to_string())
    }
}

#[cfg(feature = "ssr")]
impl From<sqlx::Error> for AppError {
    fn from(error: sqlx::Error) -> Self {
        tracing::error!(%error, "database error");
        AppError::Internal
    }
}
