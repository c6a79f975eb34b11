//! Accounts and sessions: who is calling, and for which merchants they may act.

#[cfg(feature = "ssr")]
pub mod session_store;
#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::AppError;

/// What a user may do: `ops` acts for every merchant, a merchant admin for their own only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Ops,
    MerchantAdmin,
}

impl Role {
    /// The name stored in `users.role`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Ops => "ops",
            Role::MerchantAdmin => "merchant_admin",
        }
    }

    /// Reads `users.role`; anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        match value {
            "ops" => Some(Role::Ops),
            "merchant_admin" => Some(Role::MerchantAdmin),
            _ => None,
        }
    }

    /// How the role reads on the page.
    pub fn label(self) -> &'static str {
        match self {
            Role::Ops => "Ops",
            Role::MerchantAdmin => "Merchant admin",
        }
    }
}

/// A merchant as shown to users: id and name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(sqlx::FromRow))]
pub struct Merchant {
    pub id: Uuid,
    pub name: String,
}

/// The signed-in user, as the user menu shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentUser {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    /// The merchants a merchant admin is bound to; empty for ops, who act for all.
    pub merchants: Vec<Merchant>,
}

impl CurrentUser {
    /// Whether this user may stage, insert, report on or roll back merchant `merchant`'s codes.
    pub fn may_act_for(&self, merchant: Uuid) -> bool {
        self.role == Role::Ops || self.merchants.iter().any(|m| m.id == merchant)
    }
}

/// The shortest password accepted, after OWASP's advice for accounts without MFA.
pub const MIN_PASSWORD_LEN: usize = 12;
/// The longest accepted, so a request cannot make the server hash megabytes.
pub const MAX_PASSWORD_LEN: usize = 256;

/// Where to go after signing in: `next` if it is a path on this site, else the home page.
/// Refuses `//host` and `/\host`, which browsers treat as other sites (no open redirect).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(path)
            if path.starts_with('/')
                && !path.starts_with("//")
                && !path.starts_with("/\\")
                && !path.chars().any(char::is_control) =>
        {
            path.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The sign-in page that leads back to `target` (a path with its query) afterwards.
pub fn login_path(target: &str) -> String {
    let mut path = String::from("/login?next=");
    for byte in target.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            path.push(byte as char);
        } else {
            path.push_str(&format!("%{byte:02X}"));
        }
    }
    path
}

/// Signs in with email and password, then sends the browser to `next` (a local path).
/// Fails with `BadCredentials` (never saying whether the email exists), `Throttled` after
/// repeated failures, or `Forbidden` for a disabled account.
#[server(prefix = "/api", endpoint = "login")]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<(), AppError> {
    ssr::respond(async move {
        let state = crate::state::app_state()?;
        let session = ssr::request_session().await?;
        let client = ssr::client_address().await;
        let user = ssr::sign_in(&state.pool, &email, &password, client.as_deref()).await?;
        ssr::start_session(&session, user).await?;
        leptos_axum::redirect(&safe_next(next.as_deref()));
        Ok(())
    })
    .await
}

/// Ends the session on the server (the cookie becomes worthless) and goes to the sign-in page.
#[server(prefix = "/api", endpoint = "logout")]
pub async fn logout() -> Result<(), AppError> {
    ssr::respond(async move {
        let session = ssr::request_session().await?;
        ssr::end_session(&session).await?;
        leptos_axum::redirect("/login");
        Ok(())
    })
    .await
}

/// The signed-in user, or `None` without a valid session.
#[server(prefix = "/api", endpoint = "signed-in-user")]
pub async fn signed_in_user() -> Result<Option<CurrentUser>, AppError> {
    ssr::respond(async move {
        let state = crate::state::app_state()?;
        let session = ssr::request_session().await?;
        Ok(ssr::resolve_user(&state.pool, &session).await?)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_followed_after_sign_in() {
        assert_eq!(safe_next(Some("/jobs?status=failed")), "/jobs?status=failed");
        assert_eq!(safe_next(Some("https://evil.example/")), "/");
        assert_eq!(safe_next(Some("//evil.example/")), "/");
        assert_eq!(safe_next(Some("/\\evil.example/")), "/");
        assert_eq!(safe_next(Some("/jobs\r\nSet-Cookie: x")), "/");
        assert_eq!(safe_next(None), "/");
    }

    #[test]
    fn the_page_to_return_to_is_encoded_in_the_query() {
        assert_eq!(login_path("/jobs?status=failed&x=1"), "/login?next=/jobs%3Fstatus%3Dfailed%26x%3D1");
    }

    #[test]
    fn ops_act_for_every_merchant_and_admins_for_their_own() {
        let own = Uuid::from_u128(1);
        let other = Uuid::from_u128(2);
        let admin = CurrentUser {
            id: Uuid::from_u128(9),
            email: "a@example.com".into(),
            role: Role::MerchantAdmin,
            merchants: vec![Merchant { id: own, name: "Own".into() }],
        };
        assert!(admin.may_act_for(own));
        assert!(!admin.may_act_for(other));
        let ops = CurrentUser { role: Role::Ops, merchants: vec![], ..admin };
        assert!(ops.may_act_for(other));
    }
}
