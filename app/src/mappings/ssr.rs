//! The SQL of remembered column mappings.

use sqlx::{types::Json, PgPool};
use uuid::Uuid;

use super::SavedMapping;
use crate::csv::{Column, ColumnMapping};

/// The merchant's remembered mappings, by layout.
pub async fn column_mappings(pool: &PgPool, merchant: Uuid) -> Result<Vec<SavedMapping>, sqlx::Error> {
    let rows: Vec<(String, Json<Vec<Option<Column>>>)> =
        sqlx::query_as("SELECT layout, fields FROM column_mappings WHERE merchant_id = $1 ORDER BY layout")
            .bind(merchant)
            .fetch_all(pool)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(layout, fields)| SavedMapping { layout, mapping: ColumnMapping { fields: fields.0 } })
        .collect())
}

/// Stores `mapping` for the merchant's `layout`, replacing the one before.
pub async fn save_column_mapping(
    pool: &PgPool,
    merchant: Uuid,
    layout: &str,
    mapping: &ColumnMapping,
    user: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO column_mappings (merchant_id, layout, fields, updated_by) VALUES ($1, $2, $3, $4)
         ON CONFLICT ON CONSTRAINT column_mappings_pkey
         DO UPDATE SET fields = EXCLUDED.fields, updated_by = EXCLUDED.updated_by, updated_at = now()",
    )
    .bind(merchant)
    .bind(layout)
    .bind(Json(&mapping.fields))
    .bind(user)
    .execute(pool)
    .await?;
    Ok(())
}
