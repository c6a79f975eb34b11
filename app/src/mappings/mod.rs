//! The column mappings a merchant chose, remembered per header layout: the next file with a
//! known layout is mapped as last time, without asking.

#[cfg(feature = "ssr")]
pub mod ssr;

use leptos::prelude::*;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[cfg(feature = "ssr")]
use crate::auth::ssr::{context, respond};
use crate::{
    csv::{Column, ColumnMapping, MAX_FIELDS},
    error::AppError,
};

/// A mapping remembered for one header layout (see [`crate::csv::layout_key`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedMapping {
    pub layout: String,
    pub mapping: ColumnMapping,
}

/// Whether `mapping` may be remembered: it stages a code, no column twice, and has no more
/// columns than a row may; `Invalid` with the reason otherwise.
pub fn check_mapping(layout: &str, mapping: &ColumnMapping) -> Result<(), AppError> {
    if layout.is_empty() || layout.len() > 64 * 1024 {
        return Err(AppError::invalid("the header layout is empty or too long"));
    }
    if mapping.fields.len() > MAX_FIELDS || mapping.fields.len() != layout.split('\u{1f}').count() {
        return Err(AppError::invalid("the mapping does not have one choice per column of the header"));
    }
    if !mapping.has_code() {
        return Err(AppError::invalid("the mapping has no code column"));
    }
    if let Some(column) = mapping.duplicate() {
        return Err(AppError::invalid(format!("the mapping stages {} twice", Column::name(column))));
    }
    Ok(())
}

/// The mappings the merchant's users chose before, one per header layout.
#[server(prefix = "/api", endpoint = "column-mappings")]
pub async fn column_mappings(merchant: Uuid) -> Result<Vec<SavedMapping>, AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        Ok(ssr::column_mappings(&state.pool, merchant).await?)
    })
    .await
}

/// Remembers `mapping` for the merchant's files whose header has `layout`, replacing the one
/// before; `Invalid` for a mapping that stages no code or a column twice.
#[server(prefix = "/api", endpoint = "save-column-mapping", input = server_fn::codec::Json)]
pub async fn save_column_mapping(merchant: Uuid, layout: String, mapping: ColumnMapping) -> Result<(), AppError> {
    respond(async move {
        let (state, caller) = context().await?;
        caller.may_act_for(merchant)?;
        check_mapping(&layout, &mapping)?;
        Ok(ssr::save_column_mapping(&state.pool, merchant, &layout, &mapping, caller.0.id).await?)
    })
    .await
}
