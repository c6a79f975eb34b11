use app::{
    auth::Role,
    csv::FileReport,
    staging::{chunk_path, ChunkAck, FileManifest, UploadState},
};
use uuid::Uuid;

use crate::helpers::{spawn_app, wire_chunk, TestApp};

fn manifest(name: &str, rows: i64) -> FileManifest {
    FileManifest {
        name: name.to_owned(),
        size: rows * 20,
        checksum: format!("sum-{name}"),
        rows,
        report: FileReport::default(),
        restage: false,
    }
}

/// A chunk of rows in the wire format: (file line, code).
fn chunk(merchant: Uuid, rows: &[(u64, &str)]) -> Vec<u8> {
    wire_chunk(
        rows.iter()
            .map(|(line, code)| format!("{line},{merchant},{code},S{line},SKU,10,Gift,B1,1.5\n"))
            .collect::<String>(),
    )
}

async fn start(app: &TestApp, client: &reqwest::Client, merchant: Uuid, files: &[FileManifest]) -> reqwest::Response {
    app.start_upload(client, merchant, files).await
}

async fn send(
    app: &TestApp,
    client: &reqwest::Client,
    upload: Uuid,
    file: i32,
    seq: i32,
    body: Vec<u8>,
) -> reqwest::Response {
    client.post(app.url(&chunk_path(upload, file, seq))).body(body).send().await.unwrap()
}

async fn staged(app: &TestApp, merchant: Uuid) -> Vec<(i64, String, String, i64)> {
    sqlx::query_as(
        "SELECT row_number, code, source_file, source_line FROM codes_check_temp
         WHERE merchant_id = $1 AND NOT internal_dup AND NOT existing_dup ORDER BY row_number",
    )
    .bind(merchant)
    .fetch_all(&app.pool)
    .await
    .unwrap()
}

struct Setup {
    app: TestApp,
    merchant: Uuid,
    admin: reqwest::Client,
}

async fn setup() -> Setup {
    let app = spawn_app().await;
    let merchant = app.merchant("NBD").await;
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;
    Setup { app, merchant, admin }
}

#[tokio::test]
async fn a_chunk_sent_twice_is_stored_once() {
    // Compressed, as the page sends it.
    let Setup { app, merchant, admin } = setup().await;
    let upload: UploadState = start(&app, &admin, merchant, &[manifest("a.csv", 3)]).await.json().await.unwrap();

    let first = send(&app, &admin, upload.id, 0, 0, chunk(merchant, &[(2, "A"), (3, "B")])).await;
    let replay = send(&app, &admin, upload.id, 0, 0, chunk(merchant, &[(2, "A"), (3, "B")])).await;

    assert_eq!(first.json::<ChunkAck>().await.unwrap(), ChunkAck { duplicate: false, rows_received: 2, next_seq: 1 });
    assert_eq!(replay.json::<ChunkAck>().await.unwrap(), ChunkAck { duplicate: true, rows_received: 2, next_seq: 1 });
    assert_eq!(staged(&app, merchant).await.len(), 2);
    send(&app, &admin, upload.id, 0, 1, chunk(merchant, &[(5, "C")])).await;
    let done = app.call(&admin, "finish-upload", &[("upload", upload.id.to_string())]).await;
    assert_eq!(done.json::<UploadState>().await.unwrap().status, app::staging::UploadStatus::Completed);
    let codes: Vec<String> = staged(&app, merchant).await.into_iter().map(|r| r.1).collect();
    assert_eq!(codes, vec!["A", "B", "C"]);
}

#[tokio::test]
async fn row_numbers_follow_the_file_order_whatever_order_chunks_arrive_in() {
    let Setup { app, merchant, admin } = setup().await;
    let upload: UploadState =
        start(&app, &admin, merchant, &[manifest("01.csv", 2), manifest("02.csv", 2)]).await.json().await.unwrap();

    assert_eq!(send(&app, &admin, upload.id, 1, 0, chunk(merchant, &[(2, "C"), (4, "D")])).await.status(), 200);
    assert_eq!(send(&app, &admin, upload.id, 0, 0, chunk(merchant, &[(2, "A"), (3, "B")])).await.status(), 200);

    assert_eq!(
        staged(&app, merchant).await,
        vec![
            (1, "A".into(), "01.csv".into(), 2),
            (2, "B".into(), "01.csv".into(), 3),
            (3, "C".into(), "02.csv".into(), 2),
            (4, "D".into(), "02.csv".into(), 4),
        ]
    );
    let (serial, points, price): (String, String, String) =
        sqlx::query_as("SELECT serial, points::text, price::text FROM codes_check_temp WHERE code = 'D'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!((serial.as_str(), points.as_str(), price.as_str()), ("S4", "10", "1.5"));

    // A second upload numbers its rows after the first's.
    app.call(&admin, "finish-upload", &[("upload", upload.id.to_string())]).await;
    let second: UploadState = start(&app, &admin, merchant, &[manifest("03.csv", 1)]).await.json().await.unwrap();
    send(&app, &admin, second.id, 0, 0, chunk(merchant, &[(2, "E")])).await;
    assert_eq!(staged(&app, merchant).await.last().unwrap().0, 5);
}

#[tokio::test]
async fn an_interrupted_upload_resumes_and_ends_with_exactly_the_files_rows() {
    let Setup { app, merchant, admin } = setup().await;
    let files = [manifest("a.csv", 4), manifest("b.csv", 1)];
    let upload: UploadState = start(&app, &admin, merchant, &files).await.json().await.unwrap();
    send(&app, &admin, upload.id, 0, 0, chunk(merchant, &[(2, "A1"), (3, "A2")])).await;

    // The tab was closed. The page asks what is unfinished, and the same files resume it.
    let unfinished = app.call(&admin, "unfinished-upload", &[("merchant", merchant.to_string())]).await;
    let unfinished: Option<UploadState> = unfinished.json().await.unwrap();
    assert_eq!(unfinished.as_ref().map(|u| u.id), Some(upload.id));
    let resumed: UploadState = start(&app, &admin, merchant, &files).await.json().await.unwrap();
    assert_eq!(resumed.id, upload.id);
    assert_eq!((resumed.files[0].next_seq, resumed.files[0].rows_received), (1, 2));
    // Different files while it is unfinished are refused, saying why.
    let other = start(&app, &admin, merchant, &[manifest("c.csv", 9)]).await;
    assert_eq!(other.status(), 409);
    assert!(other.text().await.unwrap().contains("unfinished"));

    // The last chunk before the interruption may or may not have arrived: resending is safe.
    send(&app, &admin, upload.id, 0, 0, chunk(merchant, &[(2, "A1"), (3, "A2")])).await;
    send(&app, &admin, upload.id, 0, 1, chunk(merchant, &[(4, "A3"), (5, "A4")])).await;
    send(&app, &admin, upload.id, 1, 0, chunk(merchant, &[(2, "B1")])).await;
    let done: UploadState =
        app.call(&admin, "finish-upload", &[("upload", upload.id.to_string())]).await.json().await.unwrap();

    assert_eq!(done.rows_received(), 5);
    let codes: Vec<String> = staged(&app, merchant).await.into_iter().map(|r| r.1).collect();
    assert_eq!(codes, vec!["A1", "A2", "A3", "A4", "B1"]);
}

#[tokio::test]
async fn an_upload_asked_for_while_a_check_runs_is_refused_as_busy_and_starts_once_it_has_ended() {
    // Seen: the page refused a second upload while the check of the first ran (the check it
    // starts by itself), and the user had to notice and choose Upload again. The refusal must
    // say "busy", distinct from a conflict that waiting does not cure, for the page to wait.
    let Setup { app, merchant, admin } = setup().await;
    let holding = app::operations::ssr::begin(&app.pool, merchant, "check", None).await.unwrap();
    let refused = start(&app, &admin, merchant, &[manifest("b.csv", 1)]).await;
    assert_eq!(refused.status(), 409);
    let refused: app::error::AppError = refused.json().await.unwrap();
    assert_eq!(refused, app::error::AppError::Busy("A duplicate check is running for this merchant. Wait for it to finish.".into()));

    holding.finish(Ok(serde_json::json!(null))).await;
    let started = start(&app, &admin, merchant, &[manifest("b.csv", 1)]).await;
    assert_eq!(started.status(), 200, "once the check has ended the same request starts the upload");
    let upload: UploadState = started.json().await.unwrap();
    assert_eq!(upload.total_rows, 1);
}

#[tokio::test]
async fn a_chunk_for_another_merchant_is_refused_and_nothing_else_is_lost() {
    let Setup { app, merchant, admin } = setup().await;
    let other = app.merchant("Other").await;
    let other_admin = app.sign_in(&app.user(Role::MerchantAdmin, &[other]).await).await;
    let upload: UploadState = start(&app, &admin, merchant, &[manifest("a.csv", 3)]).await.json().await.unwrap();
    send(&app, &admin, upload.id, 0, 0, chunk(merchant, &[(2, "A")])).await;

    // The wire format names no merchant: a row is the upload's merchant's, or it is refused.
    let forged = wire_chunk(format!("3,{merchant},B,,,,,,\n4,{merchant},C,,,x,,,\n"));
    let refused = send(&app, &admin, upload.id, 0, 1, forged).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("Row 2 of the chunk"));

    let foreign = send(&app, &other_admin, upload.id, 0, 1, chunk(merchant, &[(3, "B")])).await;
    assert_eq!(foreign.status(), 404);
    let anonymous = send(&app, &TestApp::new_client(), upload.id, 0, 1, chunk(merchant, &[(3, "B")])).await;
    assert_eq!(anonymous.status(), 401);
    let start_for_other = start(&app, &admin, other, &[manifest("x.csv", 1)]).await;
    assert_eq!(start_for_other.status(), 404);

    assert_eq!(staged(&app, merchant).await.len(), 1, "the first chunk is intact");
    assert!(staged(&app, other).await.is_empty());
    let ok = send(&app, &admin, upload.id, 0, 1, chunk(merchant, &[(3, "B"), (4, "C")])).await;
    assert_eq!(ok.json::<ChunkAck>().await.unwrap().rows_received, 3);
}

#[tokio::test]
async fn a_bad_or_out_of_order_chunk_leaves_earlier_chunks_as_they_were() {
    let Setup { app, merchant, admin } = setup().await;
    let upload: UploadState = start(&app, &admin, merchant, &[manifest("a.csv", 3)]).await.json().await.unwrap();
    send(&app, &admin, upload.id, 0, 0, chunk(merchant, &[(2, "A"), (3, "B")])).await;

    let bad_points = wire_chunk(format!("4,{merchant},C,,,lots,,,\n"));
    let refused = send(&app, &admin, upload.id, 0, 1, bad_points).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("points \\\"lots\\\" is not a number"));
    // Valid UTF-8 that PostgreSQL's text cannot hold: refused with the reason, not a 500.
    let nul = wire_chunk(format!("4,{merchant},C\0D,,,,,,\n"));
    let refused = send(&app, &admin, upload.id, 0, 1, nul).await;
    assert_eq!(refused.status(), 400);
    assert!(refused.text().await.unwrap().contains("code contains a NUL character (0x00)"));
    let skipped_ahead = send(&app, &admin, upload.id, 0, 2, chunk(merchant, &[(4, "C")])).await;
    assert_eq!(skipped_ahead.status(), 409);
    let too_many = send(&app, &admin, upload.id, 0, 1, chunk(merchant, &[(4, "C"), (5, "D")])).await;
    assert_eq!(too_many.status(), 400, "more rows than validation announced");
    let huge = send(&app, &admin, upload.id, 0, 1, vec![b'x'; app::staging::MAX_CHUNK_BYTES + 1]).await;
    assert_eq!(huge.status(), 413);

    assert_eq!(staged(&app, merchant).await.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), vec!["A", "B"]);
    let state: Option<UploadState> =
        app.call(&admin, "unfinished-upload", &[("merchant", merchant.to_string())]).await.json().await.unwrap();
    assert_eq!(state.unwrap().files[0].next_seq, 1);
}

#[tokio::test]
async fn a_chunk_that_comes_in_just_before_the_one_it_follows_waits_for_it() {
    // The page keeps two of a file's chunks in flight: the second can reach the server first.
    // Seen before it waited: the second answered 409 at once, and the file stopped.
    let Setup { app, merchant, admin } = setup().await;
    let upload: UploadState =
        start(&app, &admin, merchant, &[manifest("a.csv", 4), manifest("b.csv", 2)]).await.json().await.unwrap();
    let second = send(&app, &admin, upload.id, 0, 1, chunk(merchant, &[(4, "C"), (5, "D")]));
    let first = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        send(&app, &admin, upload.id, 0, 0, chunk(merchant, &[(2, "A"), (3, "B")])).await
    };
    let (second, first) = tokio::join!(second, first);
    assert_eq!(first.json::<ChunkAck>().await.unwrap(), ChunkAck { duplicate: false, rows_received: 2, next_seq: 1 });
    assert_eq!(second.json::<ChunkAck>().await.unwrap(), ChunkAck { duplicate: false, rows_received: 4, next_seq: 2 });
    let rows = staged(&app, merchant).await;
    assert_eq!(
        rows.iter().map(|r| (r.0, r.1.as_str(), r.3)).collect::<Vec<_>>(),
        vec![(1, "A", 2), (2, "B", 3), (3, "C", 4), (4, "D", 5)],
        "stored in the file's order, numbered as if sent one by one"
    );

    // One that never gets its turn (the one before it was lost) is refused after the wait, and
    // nothing of it is stored; sent again after the one before, it is taken.
    let early = send(&app, &admin, upload.id, 1, 1, chunk(merchant, &[(3, "F")])).await;
    assert_eq!(early.status(), 409);
    assert!(early.text().await.unwrap().contains("Chunk 1 arrived before chunk 0"));
    send(&app, &admin, upload.id, 1, 0, chunk(merchant, &[(2, "E")])).await;
    let again = send(&app, &admin, upload.id, 1, 1, chunk(merchant, &[(3, "F")])).await;
    assert_eq!(again.json::<ChunkAck>().await.unwrap(), ChunkAck { duplicate: false, rows_received: 2, next_seq: 2 });
    assert_eq!(staged(&app, merchant).await.len(), 6);
}

#[tokio::test]
async fn a_chunk_that_inflates_past_the_cap_is_refused_with_413_and_earlier_chunks_stay() {
    use std::io::Write;
    let Setup { app, merchant, admin } = setup().await;
    let upload: UploadState = start(&app, &admin, merchant, &[manifest("a.csv", 3)]).await.json().await.unwrap();
    send(&app, &admin, upload.id, 0, 0, chunk(merchant, &[(2, "A")])).await;

    // Small on the wire, past the cap once inflated: the format's header, then zeros.
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gzip.write_all(app::csv::wire::MAGIC).unwrap();
    gzip.write_all(&vec![0; app::staging::MAX_CHUNK_INFLATED_BYTES + 1]).unwrap();
    let bomb = gzip.finish().unwrap();
    assert!(bomb.len() < app::staging::MAX_CHUNK_INFLATED_BYTES / 500, "{} bytes", bomb.len());
    let refused = send(&app, &admin, upload.id, 0, 1, bomb).await;
    assert_eq!(refused.status(), 413);
    assert!(refused.text().await.unwrap().contains("inflates to more than 32 MiB; nothing of it was stored"));

    assert_eq!(staged(&app, merchant).await.iter().map(|r| r.1.as_str()).collect::<Vec<_>>(), vec!["A"]);
    let ok = send(&app, &admin, upload.id, 0, 1, chunk(merchant, &[(3, "B"), (4, "C")])).await;
    assert_eq!(ok.json::<ChunkAck>().await.unwrap(), ChunkAck { duplicate: false, rows_received: 3, next_seq: 2 });
}

#[tokio::test]
async fn an_uncompressed_old_format_or_damaged_chunk_is_refused_with_a_clear_400() {
    use std::io::Write;
    let Setup { app, merchant, admin } = setup().await;
    let upload: UploadState = start(&app, &admin, merchant, &[manifest("a.csv", 2)]).await.json().await.unwrap();
    // What the page sent before the wire format: CSV text with the merchant and line per row.
    let old = format!("2,{merchant},A,S2,SKU,10,Gift,B1,1.5\n3,{merchant},B,S3,SKU,10,Gift,B1,1.5\n");
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gzip.write_all(old.as_bytes()).unwrap();
    let old_compressed = gzip.finish().unwrap();
    let good = chunk(merchant, &[(2, "A"), (3, "B")]);

    for (body, expected) in [
        (old.into_bytes(), "The chunk is not compressed as this app sends chunks (gzip); reload the page"),
        (old_compressed, "The chunk is not in this app's chunk format (CIW1); reload the page"),
        (good[..good.len() - 3].to_vec(), "The chunk is damaged"),
    ] {
        let refused = send(&app, &admin, upload.id, 0, 0, body).await;
        assert_eq!(refused.status(), 400);
        let text = refused.text().await.unwrap();
        assert!(text.contains(expected), "{text}");
    }
    assert!(staged(&app, merchant).await.is_empty());
    let ok = send(&app, &admin, upload.id, 0, 0, good).await;
    assert_eq!(ok.json::<ChunkAck>().await.unwrap().rows_received, 2);
}

#[tokio::test]
async fn cancelling_stops_the_upload_and_says_what_is_staged() {
    let Setup { app, merchant, admin } = setup().await;
    let upload: UploadState = start(&app, &admin, merchant, &[manifest("a.csv", 3)]).await.json().await.unwrap();
    send(&app, &admin, upload.id, 0, 0, chunk(merchant, &[(2, "A")])).await;

    let cancelled: UploadState = app
        .call(&admin, "cancel-upload", &[("upload", upload.id.to_string()), ("remove_rows", "false".into())])
        .await
        .json()
        .await
        .unwrap();

    assert_eq!((cancelled.status.as_str(), cancelled.rows_received()), ("cancelled", 1));
    let late = send(&app, &admin, upload.id, 0, 1, chunk(merchant, &[(3, "B")])).await;
    assert_eq!(late.status(), 409);
    let unfinished: Option<UploadState> =
        app.call(&admin, "unfinished-upload", &[("merchant", merchant.to_string())]).await.json().await.unwrap();
    assert_eq!(unfinished, None);
    assert_eq!(staged(&app, merchant).await.len(), 1);
}

#[tokio::test]
async fn staging_emptied_by_a_crash_of_the_database_marks_the_upload_lost_and_a_new_one_starts_clean() {
    let Setup { app, merchant, admin } = setup().await;
    // Staging is unlogged (a crash of the database empties it); production is not.
    let persistence: Vec<(String, String)> = sqlx::query_as(
        "SELECT relname::text, relpersistence::text FROM pg_class
         WHERE relname IN ('codes', 'codes_import_jobs', 'uploads', 'codes_check_temp', 'staging_intact')
         ORDER BY relname",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let logged = |name: &str| persistence.iter().find(|(n, _)| n == name).map(|(_, p)| p == "p");
    assert_eq!(
        ["codes", "codes_import_jobs", "uploads", "codes_check_temp", "staging_intact"].map(logged),
        [Some(true), Some(true), Some(true), Some(false), Some(false)]
    );
    let upload: UploadState = start(&app, &admin, merchant, &[manifest("a.csv", 3)]).await.json().await.unwrap();
    send(&app, &admin, upload.id, 0, 0, chunk(merchant, &[(2, "A"), (3, "B")])).await;

    // What crash recovery does to unlogged tables: resets them to empty.
    sqlx::query("TRUNCATE codes_check_temp, staging_intact").execute(&app.pool).await.unwrap();

    let late = send(&app, &admin, upload.id, 0, 1, chunk(merchant, &[(4, "C")])).await;
    assert_eq!(late.status(), 409);
    assert!(late.text().await.unwrap().contains("restarted after a crash"));
    let shown: Option<UploadState> =
        app.call(&admin, "unfinished-upload", &[("merchant", merchant.to_string())]).await.json().await.unwrap();
    assert_eq!(shown.map(|s| (s.id, s.status)), Some((upload.id, app::staging::UploadStatus::Lost)));
    let sentinel: i64 = sqlx::query_scalar("SELECT count(*) FROM staging_intact").fetch_one(&app.pool).await.unwrap();
    assert_eq!(sentinel, 1);

    // The same file again is a new upload, numbered from the first row.
    let again: UploadState = start(&app, &admin, merchant, &[manifest("a.csv", 3)]).await.json().await.unwrap();
    assert_ne!(again.id, upload.id);
    send(&app, &admin, again.id, 0, 0, chunk(merchant, &[(2, "A"), (3, "B"), (4, "C")])).await;
    let done = app.call(&admin, "finish-upload", &[("upload", again.id.to_string())]).await;
    assert_eq!(done.json::<UploadState>().await.unwrap().status, app::staging::UploadStatus::Completed);
    let rows: Vec<(i64, String)> = staged(&app, merchant).await.into_iter().map(|r| (r.0, r.1)).collect();
    assert_eq!(rows, vec![(1, "A".into()), (2, "B".into()), (3, "C".into())]);
    let shown: Option<UploadState> =
        app.call(&admin, "unfinished-upload", &[("merchant", merchant.to_string())]).await.json().await.unwrap();
    assert_eq!(shown, None);
}

#[tokio::test]
async fn staged_values_read_back_as_the_database_reads_the_same_text() {
    let Setup { app, merchant, admin } = setup().await;
    // Numbers in every form the row checks accept, and text the COPY text format would
    // have to escape.
    let values = [
        ("10", "1.50"),
        ("-3", "+.5"),
        ("0", "-0.00"),
        ("0007.", "0.00001"),
        ("12345678901234567890.123456789", "100000000"),
        ("-9999.9999", "10000"),
    ];
    let mut body = String::new();
    for (i, (points, price)) in values.iter().enumerate() {
        body.push_str(&format!(
            "{},{merchant},C{i},\"tab\there\",\"back\\slash\",{points},\"line\nbreak\",,{price}\n",
            i + 2
        ));
    }
    let upload: UploadState =
        start(&app, &admin, merchant, &[manifest("odd\tname.csv", values.len() as i64)]).await.json().await.unwrap();
    let sent = send(&app, &admin, upload.id, 0, 0, wire_chunk(body)).await;
    assert_eq!(sent.status(), 200, "{}", sent.text().await.unwrap());

    let rows: Vec<(String, String, String, Option<String>, String, String, String, bool, bool)> = sqlx::query_as(
        "SELECT s.code, s.serial, s.sku, s.batch_code, s.sku_name, s.source_file,
                s.points::text || '|' || s.price::text || '|' || s.source_line || '|' || s.row_number,
                s.points = v.points::numeric AND s.price = v.price::numeric
                    AND s.points::text = v.points::numeric::text AND s.price::text = v.price::numeric::text,
                s.upload_id = $2
         FROM codes_check_temp s
         JOIN unnest($3::text[], $4::text[]) WITH ORDINALITY AS v(points, price, n) ON s.row_number = v.n
         WHERE s.merchant_id = $1 ORDER BY s.row_number",
    )
    .bind(merchant)
    .bind(upload.id)
    .bind(values.iter().map(|v| v.0).collect::<Vec<_>>())
    .bind(values.iter().map(|v| v.1).collect::<Vec<_>>())
    .fetch_all(&app.pool)
    .await
    .unwrap();
    assert_eq!(rows.len(), values.len());
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(&row.0, &format!("C{i}"));
        assert_eq!((row.1.as_str(), row.2.as_str(), row.3.as_deref()), ("tab\there", "back\\slash", None));
        assert_eq!((row.4.as_str(), row.5.as_str()), ("line\nbreak", "odd\tname.csv"));
        assert!(row.7, "row {i}: {} differs from how the database reads {:?}", row.6, values[i]);
        assert!(row.8, "row {i} names its upload");
    }
    let shown: Vec<&str> = rows.iter().map(|r| r.6.as_str()).collect();
    assert_eq!(
        shown,
        [
            "10|1.50|2|1",
            "-3|0.5|3|2",
            "0|0.00|4|3",
            "7|0.00001|5|4",
            "12345678901234567890.123456789|100000000|6|5",
            "-9999.9999|10000|7|6"
        ]
    );
}
