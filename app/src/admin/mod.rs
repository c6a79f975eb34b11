//! Ops administration: merchants, users and which merchants each admin acts for.

#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "ssr")]
use crate::auth::ssr::{context, ops_context, respond};
use crate::{
    auth::{Merchant, Role},
    error::AppError,
};

/// A user as ops sees them on the admin page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSummary {
    pub id: Uuid,
    pub email: String,
    pub role: Role,
    pub disabled: bool,
    pub merchants: Vec<Merchant>,
}

/// The merchants the caller may act for (every merchant for ops), by name.
#[server(prefix = "/api", endpoint = "list-merchants")]
pub async fn list_merchants() -> Result<Vec<Merchant>, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        Ok(ssr::list_merchants(&state.pool, caller.visible_merchants().as_deref()).await?)
    })
    .await
}

/// Creates a merchant (ops only); `Conflict` if the name is taken.
#[server(prefix = "/api", endpoint = "create-merchant")]
pub async fn create_merchant(name: String) -> Result<Merchant, AppError> {
    respond(async move {
        let (state, _) = ops_context().await?;
        Ok(ssr::create_merchant(&state.pool, &name).await?)
    })
    .await
}

/// Every user with their merchants (ops only).
#[server(prefix = "/api", endpoint = "list-users")]
pub async fn list_users() -> Result<Vec<UserSummary>, AppError> {
    respond(async move {
        let (state, _) = ops_context().await?;
        Ok(ssr::list_users(&state.pool).await?)
    })
    .await
}

/// Creates a user (ops only). A merchant admin is bound to `merchant` at once.
#[server(prefix = "/api", endpoint = "create-user")]
pub async fn create_user(
    email: String,
    password: String,
    role: Role,
    merchant: Option<Uuid>,
) -> Result<Uuid, AppError> {
    respond(async move {
        let (state, _) = ops_context().await?;
        let merchants: Vec<Uuid> = merchant.into_iter().collect();
        Ok(crate::auth::ssr::create_user(&state.pool, &email, password, role, &merchants).await?)
    })
    .await
}

/// Lets merchant admin `user` act for `merchant` (ops only).
#[server(prefix = "/api", endpoint = "bind-merchant")]
pub async fn bind_merchant(user: Uuid, merchant: Uuid) -> Result<(), AppError> {
    respond(async move {
        let (state, _) = ops_context().await?;
        Ok(ssr::bind_merchant(&state.pool, user, merchant).await?)
    })
    .await
}

/// Disables or re-enables a user (ops only); a disabled user's sessions stop working at once.
#[server(prefix = "/api", endpoint = "set-user-disabled")]
pub async fn set_user_disabled(user: Uuid, disabled: bool) -> Result<(), AppError> {
    respond(async move {
        let (state, caller) = ops_context().await?;
        if user == caller.user_id() && disabled {
            return Err(AppError::invalid("You cannot disable your own account."));
        }
        Ok(ssr::set_user_disabled(&state.pool, user, disabled).await?)
    })
    .await
}
