//! Remembered column mappings: one per merchant and header layout, only for the merchant's own
//! users (and ops), re-checked on save.

use app::{
    auth::Role,
    csv::{layout_key, Column, ColumnMapping},
    mappings::SavedMapping,
};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp};

fn voucher_layout() -> String {
    layout_key(&["Voucher Code", "Product SKU", "Loyalty Points", "Batch"].map(str::to_owned))
}

fn voucher_mapping() -> ColumnMapping {
    ColumnMapping { fields: vec![Some(Column::Code), Some(Column::Sku), Some(Column::Points), Some(Column::BatchCode)] }
}

async fn save(app: &TestApp, client: &reqwest::Client, merchant: Uuid, mapping: &ColumnMapping) -> u16 {
    client
        .post(app.url("/api/save-column-mapping"))
        .json(&serde_json::json!({ "merchant": merchant, "layout": voucher_layout(), "mapping": mapping }))
        .send()
        .await
        .expect("request")
        .status()
        .as_u16()
}

async fn list(app: &TestApp, client: &reqwest::Client, merchant: Uuid) -> (u16, Option<Vec<SavedMapping>>) {
    let response = app.call(client, "column-mappings", &[("merchant", merchant.to_string())]).await;
    let status = response.status().as_u16();
    (status, if status == 200 { Some(response.json().await.expect("json")) } else { None })
}

#[tokio::test]
async fn a_mapping_saved_for_a_layout_is_read_back_and_replaced_by_the_next() {
    let app = spawn_app().await;
    let merchant = app.merchant("A").await;
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;
    assert_eq!(list(&app, &admin, merchant).await, (200, Some(vec![])));
    assert_eq!(save(&app, &admin, merchant, &voucher_mapping()).await, 200);
    let saved = SavedMapping { layout: voucher_layout(), mapping: voucher_mapping() };
    assert_eq!(list(&app, &admin, merchant).await, (200, Some(vec![saved])));

    let mut changed = voucher_mapping();
    changed.fields[3] = None;
    assert_eq!(save(&app, &admin, merchant, &changed).await, 200);
    let (_, Some(now)) = list(&app, &admin, merchant).await else { panic!("listed") };
    assert_eq!(now, vec![SavedMapping { layout: voucher_layout(), mapping: changed }], "one per layout");
}

#[tokio::test]
async fn a_merchant_admin_can_neither_read_nor_save_another_merchants_mappings() {
    let app = spawn_app().await;
    let (a, b) = (app.merchant("A").await, app.merchant("B").await);
    let admin_a = app.sign_in(&app.user(Role::MerchantAdmin, &[a]).await).await;
    let admin_b = app.sign_in(&app.user(Role::MerchantAdmin, &[b]).await).await;
    let ops = app.sign_in(&app.user(Role::Ops, &[]).await).await;
    assert_eq!(save(&app, &admin_a, a, &voucher_mapping()).await, 200);

    assert_eq!(list(&app, &admin_b, a).await, (404, None), "as for a merchant that does not exist");
    assert_eq!(
        save(&app, &admin_b, a, &ColumnMapping { fields: vec![Some(Column::Code), None, None, None] }).await,
        404
    );
    assert_eq!(list(&app, &admin_b, b).await, (200, Some(vec![])), "B's list holds nothing of A's");
    let (_, Some(a_list)) = list(&app, &ops, a).await else { panic!("ops reads A's") };
    assert_eq!(a_list[0].mapping, voucher_mapping(), "B's refused save changed nothing");
    assert_eq!(save(&app, &TestApp::new_client(), a, &voucher_mapping()).await, 401);
}

#[tokio::test]
async fn a_mapping_without_a_code_with_a_column_twice_or_of_another_width_is_refused() {
    let app = spawn_app().await;
    let merchant = app.merchant("A").await;
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;
    for fields in [
        vec![None, Some(Column::Sku), Some(Column::Points), None],
        vec![Some(Column::Code), Some(Column::Code), None, None],
        vec![Some(Column::Code)],
    ] {
        assert_eq!(save(&app, &admin, merchant, &ColumnMapping { fields: fields.clone() }).await, 400, "{fields:?}");
    }
    assert_eq!(list(&app, &admin, merchant).await, (200, Some(vec![])));
}
