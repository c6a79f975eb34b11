//! SQL for merchants and users.

use sqlx::PgPool;
use uuid::Uuid;

use super::UserSummary;
use crate::auth::{
    ssr::{constraint_of, AccountError},
    Merchant, Role,
};

/// Merchants by name: all of them, or only those in `only`.
pub async fn list_merchants(pool: &PgPool, only: Option<&[Uuid]>) -> Result<Vec<Merchant>, sqlx::Error> {
    sqlx::query_as::<_, Merchant>(
        "SELECT id, name FROM merchants WHERE $1::uuid[] IS NULL OR id = ANY($1) ORDER BY name",
    )
    .bind(only)
    .fetch_all(pool)
    .await
}

fn merchant_name(name: &str) -> Result<&str, AccountError> {
    let name = name.trim();
    if name.is_empty() || name.len() > 200 {
        return Err(AccountError::BadMerchantName);
    }
    Ok(name)
}

/// Renames merchant `id` (e.g. one adopted from an original database, named after its id);
/// `BadMerchantName` for a blank name, `NoSuchMerchant`, `MerchantTaken` if the name is taken.
pub async fn rename_merchant(pool: &PgPool, id: Uuid, name: &str) -> Result<Merchant, AccountError> {
    let name = merchant_name(name)?;
    let renamed = sqlx::query("UPDATE merchants SET name = $2 WHERE id = $1").bind(id).bind(name).execute(pool).await;
    match renamed {
        Err(error) if constraint_of(&error) == Some("merchants_name_unique") => {
            Err(AccountError::MerchantTaken(name.to_owned()))
        }
        Err(error) => Err(error.into()),
        Ok(done) if done.rows_affected() == 0 => Err(AccountError::NoSuchMerchant),
        Ok(_) => Ok(Merchant { id, name: name.to_owned() }),
    }
}

/// Creates a merchant named `name` (trimmed); `BadMerchantName` if blank, `MerchantTaken` if
/// taken.
pub async fn create_merchant(pool: &PgPool, name: &str) -> Result<Merchant, AccountError> {
    let name = merchant_name(name)?;
    let merchant = Merchant { id: Uuid::new_v4(), name: name.to_owned() };
    let inserted = sqlx::query("INSERT INTO merchants (id, name) VALUES ($1, $2)")
        .bind(merchant.id)
        .bind(&merchant.name)
        .execute(pool)
        .await;
    match inserted {
        Err(error) if constraint_of(&error) == Some("merchants_name_unique") => {
            Err(AccountError::MerchantTaken(name.to_owned()))
        }
        other => other.map(|_| merchant).map_err(AccountError::from),
    }
}

/// Every user by email, with their merchants.
pub async fn list_users(pool: &PgPool) -> Result<Vec<UserSummary>, sqlx::Error> {
    let rows = sqlx::query_as::<_, (Uuid, String, String, bool, sqlx::types::Json<Vec<Merchant>>)>(
        r#"SELECT u.id, u.email, u.role, u.disabled,
                  COALESCE(jsonb_agg(jsonb_build_object('id', m.id, 'name', m.name) ORDER BY m.name)
                           FILTER (WHERE m.id IS NOT NULL), '[]')
           FROM users u
           LEFT JOIN user_merchants um ON um.user_id = u.id
           LEFT JOIN merchants m ON m.id = um.merchant_id
           GROUP BY u.id
           ORDER BY u.email"#,
    )
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, email, role, disabled, merchants)| {
            Some(UserSummary { id, email, role: Role::parse(&role)?, disabled, merchants: merchants.0 })
        })
        .collect())
}

/// Binds a merchant admin to a merchant; `NoSuchUser`, `NoSuchMerchant`, or `OpsBound` for an
/// ops user (who acts for every merchant anyway).
pub async fn bind_merchant(pool: &PgPool, user: Uuid, merchant: Uuid) -> Result<(), AccountError> {
    let role: Option<String> =
        sqlx::query_scalar("SELECT role FROM users WHERE id = $1").bind(user).fetch_optional(pool).await?;
    match role.as_deref().and_then(Role::parse) {
        None => Err(AccountError::NoSuchUser),
        Some(Role::Ops) => Err(AccountError::OpsBound),
        Some(Role::MerchantAdmin) => {
            let mut conn = pool.acquire().await?;
            crate::auth::ssr::bind_merchants(&mut conn, user, &[merchant]).await
        }
    }
}

/// Sets a user's disabled flag; `NoSuchUser` for an unknown user.
pub async fn set_user_disabled(pool: &PgPool, user: Uuid, disabled: bool) -> Result<(), AccountError> {
    let updated =
        sqlx::query("UPDATE users SET disabled = $2 WHERE id = $1").bind(user).bind(disabled).execute(pool).await?;
    if updated.rows_affected() == 0 {
        return Err(AccountError::NoSuchUser);
    }
    tracing::info!(%user, disabled, "changed a user's disabled flag");
    Ok(())
}
