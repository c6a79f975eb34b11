//! Reports downloaded over HTTP: the rows and statuses equal the database's, formula cells are
//! made safe, uploading a report again stages the same codes, and only permitted callers get it.

use std::collections::HashMap;

use app::{
    auth::Role,
    csv::{FileValidator, Record, RecordReader},
    duplicates::ssr as duplicates,
    reports::{report_path, ReportKind, REPORT_COLUMNS},
};
use uuid::Uuid;

use crate::helpers::{spawn_app, TestApp};

/// Codes with every status, numbers that must stay text, and cells that would be formulas.
const CODES: [&str; 12] = [
    "A-1",
    "-5OFF",
    "=HYPERLINK(\"x\")",
    "+SALE",
    "@home",
    "000123",
    "1234567890123",
    "A-1",
    "-5OFF",
    "P-1",
    "P-1",
    "Q,\"1\"",
];

async fn staged_and_checked(app: &TestApp) -> Uuid {
    let merchant = app.merchant("Report Co").await;
    for (i, code) in CODES.iter().enumerate() {
        sqlx::query(
            "INSERT INTO codes_check_temp (merchant_id, row_number, code, sku_name, points, source_file, source_line)
             VALUES ($1, $2, $3, $4, $5, 'in.csv', $2 + 1)",
        )
        .bind(merchant)
        .bind(i as i64 + 1)
        .bind(code)
        .bind(if i == 3 { Some("=1+2") } else { None })
        .bind(if i == 4 { Some(-3) } else { None })
        .execute(&app.pool)
        .await
        .unwrap();
    }
    crate::helpers::register_staged(&app.pool, merchant).await;
    // P-1 and 000123 are in production already.
    sqlx::query("INSERT INTO codes (merchant_id, code) VALUES ($1, 'P-1'), ($1, '000123')")
        .bind(merchant)
        .execute(&app.pool)
        .await
        .unwrap();
    let mut conn = app.pool.acquire().await.unwrap();
    duplicates::mark_duplicates(&mut conn, merchant, None).await.unwrap();
    merchant
}

/// The CSV's records as strings, parsed by the app's own reader.
fn records(body: &[u8]) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let mut reader = RecordReader::new(b',');
    let mut each = |record: Record<'_>| {
        out.push((0..record.len()).map(|i| String::from_utf8(record.get(i).unwrap().to_vec()).unwrap()).collect())
    };
    reader.feed(body, &mut each);
    reader.finish(&mut each);
    out
}

#[tokio::test]
async fn a_report_holds_the_databases_rows_and_statuses_with_formula_cells_made_safe() {
    let app = spawn_app().await;
    let merchant = staged_and_checked(&app).await;
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;

    let response = admin.get(app.url(&report_path(merchant, ReportKind::Full))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/csv; charset=utf-8");
    let disposition = response.headers()["content-disposition"].to_str().unwrap().to_owned();
    let today = chrono::Utc::now().format("%Y-%m-%d");
    assert_eq!(disposition, format!("attachment; filename=\"code-import_report-co_full-report_{today}.csv\""));
    let body = response.bytes().await.unwrap();
    assert!(body.starts_with(b"\xef\xbb\xbfmerchant_id,code,"), "a BOM, then the header");
    // Codes are quoted (kept as text by spreadsheets that can), numbers not.
    assert!(body.windows(10).any(|w| w == b",\"000123\","), "{}", String::from_utf8_lossy(&body));

    let rows = records(&body);
    assert_eq!(rows[0], REPORT_COLUMNS);
    let column = |name: &str| REPORT_COLUMNS.iter().position(|c| *c == name).unwrap();
    let expected: HashMap<i64, (bool, bool)> =
        sqlx::query_as::<_, (i64, bool, bool)>("SELECT row_number, internal_dup, existing_dup FROM codes_check_temp")
            .fetch_all(&app.pool)
            .await
            .unwrap()
            .into_iter()
            .map(|(row, i, e)| (row, (i, e)))
            .collect();
    assert_eq!(rows.len() - 1, CODES.len());
    let mut statuses = Vec::new();
    for row in &rows[1..] {
        let number: i64 = row[column("row_number")].parse().unwrap();
        let (internal, existing) = expected[&number];
        assert_eq!(row[column("internal_dup")], if internal { "t" } else { "f" });
        assert_eq!(row[column("existing_dup")], if existing { "t" } else { "f" });
        let status = app::duplicates::RowStatus::of(internal, existing).as_str();
        assert_eq!(row[column("status")], status);
        assert_eq!(row[column("merchant_id")], merchant.to_string());
        assert_eq!(row[column("source_file")], "in.csv");
        assert_eq!(row[column("source_line")], (number + 1).to_string());
        statuses.push(status);
    }
    for status in ["CLEAN", "INTERNAL_DUPLICATE", "DATABASE_DUPLICATE", "BOTH_DUPLICATE"] {
        assert!(statuses.contains(&status), "{status} is present");
    }
    let codes: Vec<&str> = rows[1..].iter().map(|r| r[column("code")].as_str()).collect();
    assert_eq!(
        codes,
        [
            "A-1",
            "'-5OFF",
            "'=HYPERLINK(\"x\")",
            "'+SALE",
            "'@home",
            "000123",
            "1234567890123",
            "A-1",
            "'-5OFF",
            "P-1",
            "P-1",
            "Q,\"1\""
        ]
    );
    assert_eq!(rows[4][column("sku_name")], "'=1+2");
    assert_eq!(rows[5][column("points")], "-3", "numbers are not prefixed");

    // Duplicates only: the rows that are not clean, in row order.
    let response = admin.get(app.url(&report_path(merchant, ReportKind::Duplicates))).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let duplicates = records(&response.bytes().await.unwrap());
    let wanted: Vec<&Vec<String>> = rows[1..].iter().filter(|r| r[column("status")] != "CLEAN").collect();
    assert_eq!(duplicates[1..].iter().collect::<Vec<_>>(), wanted);
}

#[tokio::test]
async fn a_report_uploaded_again_stages_exactly_the_original_codes() {
    let app = spawn_app().await;
    let merchant = staged_and_checked(&app).await;
    let ops = app.sign_in(&app.user(Role::Ops, &[]).await).await;
    let body = ops.get(app.url(&report_path(merchant, ReportKind::Full))).send().await.unwrap().bytes().await.unwrap();

    // The upload's own validation, as the browser runs it.
    let mut validator = FileValidator::new(merchant);
    let mut staged = Vec::new();
    validator.feed(&body, &mut |_, row| {
        staged.push((row.code().to_owned(), row.get(app::csv::Column::SkuName).map(str::to_owned)))
    });
    let (report, _) = validator.finish(&mut |_, row| staged.push((row.code().to_owned(), None)));
    assert!(report.is_valid(), "{report:?}");
    assert_eq!(report.rows_rejected, 0);
    let codes: Vec<&str> = staged.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(codes, CODES);
    assert_eq!(staged[3].1.as_deref(), Some("=1+2"));
    assert_eq!(
        report.unknown_columns,
        ["internal_dup", "existing_dup", "status", "source_file", "source_line", "row_number"]
    );
}

#[tokio::test]
async fn only_a_caller_who_may_act_for_the_merchant_gets_its_report() {
    let app = spawn_app().await;
    let merchant = staged_and_checked(&app).await;
    let other = app.merchant("Other").await;
    let path = report_path(merchant, ReportKind::Duplicates);
    assert_eq!(TestApp::new_client().get(app.url(&path)).send().await.unwrap().status(), 401);
    let stranger = app.sign_in(&app.user(Role::MerchantAdmin, &[other]).await).await;
    assert_eq!(stranger.get(app.url(&path)).send().await.unwrap().status(), 404);
    let mine = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;
    assert_eq!(mine.get(app.url(&path)).send().await.unwrap().status(), 200);
    let wrong = format!("/api/merchants/{merchant}/reports/everything.csv");
    assert_eq!(mine.get(app.url(&wrong)).send().await.unwrap().status(), 404, "there is no such report");
}

#[tokio::test]
async fn pages_go_out_compressed_and_reports_as_they_are() {
    // Seen: every response uncompressed, the 13 MB debug WASM included.
    let app = spawn_app().await;
    let merchant = staged_and_checked(&app).await;
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;
    let get =
        |path: String, encoding: &'static str| admin.get(app.url(&path)).header("accept-encoding", encoding).send();

    for encoding in ["br", "gzip"] {
        let page = get("/upload".into(), encoding).await.unwrap();
        assert_eq!(page.status(), 200);
        assert_eq!(page.headers()["content-encoding"], encoding, "/upload with accept-encoding: {encoding}");
    }
    let plain = admin.get(app.url("/upload")).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none(), "no accept-encoding, no compression");

    // A report streams millions of rows: compressing it would bound the export by one core.
    let report = get(report_path(merchant, ReportKind::Full), "gzip, br").await.unwrap();
    assert_eq!(report.status(), 200);
    assert!(report.headers().get("content-encoding").is_none());
    assert!(report.bytes().await.unwrap().starts_with(b"\xef\xbb\xbfmerchant_id,code,"));
}
