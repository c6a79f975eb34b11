//! The staged batch through the real routes: its states as the user's steps move it, what the
//! review says in each, and no file staged twice without the user's choice.

use app::{
    auth::Role,
    batch::{Batch, BatchState},
    csv::FileReport,
    duplicates::ReviewState,
    staging::{chunk_path, FileManifest, UploadState, UploadStatus},
};
use uuid::Uuid;

use crate::helpers::{spawn_app, wait_idle, wire_chunk, TestApp};

struct Journey {
    app: TestApp,
    merchant: Uuid,
    admin: reqwest::Client,
}

fn file(name: &str, rows: i64) -> FileManifest {
    FileManifest {
        name: name.to_owned(),
        size: rows * 31,
        checksum: format!("fnv64w:{name}"),
        rows,
        report: FileReport::default(),
        restage: false,
    }
}

/// A chunk of rows `first..first + rows` of a file: (line, code).
fn rows(merchant: Uuid, prefix: &str, first: u64, count: u64) -> Vec<u8> {
    wire_chunk(
        (first..first + count).map(|n| format!("{},{merchant},{prefix}{n:08},,,,,,\n", n + 1)).collect::<String>(),
    )
}

impl Journey {
    async fn new() -> Self {
        let app = spawn_app().await;
        let merchant = app.merchant("Batch Co").await;
        let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;
        Journey { app, merchant, admin }
    }

    async fn call(&self, endpoint: &str, form: &[(&str, String)]) -> (u16, String) {
        let response = self.app.call(&self.admin, endpoint, form).await;
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn start(&self, files: &[FileManifest]) -> Result<UploadState, (u16, String)> {
        let response = self.app.start_upload(&self.admin, self.merchant, files).await;
        match response.status().as_u16() {
            200 => Ok(response.json().await.unwrap()),
            status => Err((status, response.text().await.unwrap())),
        }
    }

    async fn send(&self, upload: &UploadState, file: i32, seq: i32, body: Vec<u8>) {
        let url = self.app.url(&chunk_path(upload.id, file, seq));
        let response = self.admin.post(url).body(body).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }

    /// Stages each file's rows (codes `prefix` + row) in one chunk and finishes the upload.
    async fn upload(&self, files: &[FileManifest], prefix: &str) -> UploadState {
        let upload = self.start(files).await.expect("the upload starts");
        for (i, f) in files.iter().enumerate() {
            self.send(&upload, i as i32, 0, rows(self.merchant, &format!("{prefix}{i}-"), 1, f.rows as u64)).await;
        }
        let (status, body) = self.call("finish-upload", &[("upload", upload.id.to_string())]).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn review(&self) -> ReviewState {
        let (status, body) = self.call("load-review", &[("merchant", self.merchant.to_string())]).await;
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    async fn batch(&self) -> Batch {
        self.review().await.batch.expect("a batch")
    }

    async fn check(&self) {
        let (status, body) = self.call("start-check", &[("merchant", self.merchant.to_string())]).await;
        assert_eq!(status, 200, "{body}");
        wait_idle(&self.app.pool, self.merchant).await;
    }

    /// Starts the insert and waits for it; the job's id.
    async fn insert(&self) -> Uuid {
        let (status, body) = self.call("start-insert", &self.insert_form()).await;
        assert_eq!(status, 200, "{body}");
        wait_idle(&self.app.pool, self.merchant).await;
        serde_json::from_str(&body).unwrap()
    }

    fn insert_form(&self) -> [(&'static str, String); 2] {
        [("merchant", self.merchant.to_string()), ("confirmation", "YES".into())]
    }

    async fn staged_rows(&self) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM codes_check_temp WHERE merchant_id = $1")
            .bind(self.merchant)
            .fetch_one(&self.app.pool)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn the_batch_moves_through_its_states_and_the_review_says_only_what_is_true_of_it() {
    let j = Journey::new().await;
    assert!(j.review().await.batch.is_none(), "nothing staged: no batch");

    j.upload(&[file("a.csv", 300), file("b.csv", 200)], "A").await;
    let open = j.batch().await;
    assert_eq!((open.state, open.rows_staged, open.files), (BatchState::Open, 500, 2));

    j.check().await;
    let review = j.review().await;
    let checked = review.batch.clone().unwrap();
    assert_eq!((checked.id, checked.state), (open.id, BatchState::Checked));
    assert_eq!(review.figures.as_ref().map(|f| f.overall.total_rows), Some(500));
    assert_eq!(review.stale, None);

    // More rows: the same batch, open again, its figures stale — and the review says why.
    j.upload(&[file("c.csv", 40)], "C").await;
    let review = j.review().await;
    let batch = review.batch.clone().unwrap();
    assert_eq!((batch.id, batch.state, batch.rows_staged), (open.id, BatchState::Open, 540));
    let reason = review.stale.expect("stale figures say why");
    assert!(reason.starts_with("40 rows were staged after this check"), "{reason}");
    let (status, body) = j.call("start-insert", &j.insert_form()).await;
    assert_eq!(status, 409, "an open batch is not inserted: {body}");
    assert!(body.contains("run it again before inserting"), "{body}");

    j.check().await;
    let job = j.insert().await;
    let inserted = j.batch().await;
    assert_eq!(
        (inserted.state, inserted.job_id, inserted.codes_inserted),
        (BatchState::Inserted, Some(job), Some(540))
    );
    let files: serde_json::Value = sqlx::query_scalar("SELECT source_info FROM codes_import_jobs WHERE id = $1")
        .bind(job)
        .fetch_one(&j.app.pool)
        .await
        .unwrap();
    assert_eq!(files["batch"], serde_json::json!(open.id.to_string()), "the job names its batch");
    assert_eq!(files["files"].as_array().map(Vec::len), Some(3));

    // An inserted batch takes no more files: they would mix with the next batch's.
    let (status, body) = j.start(&[file("d.csv", 10)]).await.unwrap_err();
    assert_eq!(status, 409);
    assert!(body.contains(&format!("This batch was inserted as job {job}. Clear staging")), "{body}");

    // Cleared: the review says so and nothing else — no check, no figures.
    let (status, body) = j.call("clear-staging", &[("merchant", j.merchant.to_string())]).await;
    assert_eq!((status, body.as_str()), (200, "540"));
    let review = j.review().await;
    let cleared = review.batch.clone().unwrap();
    assert_eq!((cleared.id, cleared.state, cleared.rows_cleared), (open.id, BatchState::Cleared, Some(540)));
    assert!(review.check.is_none() && review.figures.is_none() && review.stale.is_none() && review.staged().is_none());
    assert_eq!(j.staged_rows().await, 0);

    // The next upload starts the next batch.
    j.upload(&[file("d.csv", 10)], "D").await;
    let next = j.batch().await;
    assert_ne!(next.id, open.id);
    assert_eq!((next.state, next.rows_staged), (BatchState::Open, 10));
    assert!(j.review().await.check.is_none(), "the last batch's check is not this one's");
}

#[tokio::test]
async fn a_file_staged_in_the_batch_is_refused_again_unless_the_user_chooses_to_stage_it_again() {
    // Seen: the same file on a fresh page after a finished upload was staged a second time,
    // silently; the per-file table and the job's files listed it twice.
    let j = Journey::new().await;
    j.upload(&[file("codes.csv", 100)], "A").await;
    let (status, body) = j.call("staged-files", &[("merchant", j.merchant.to_string())]).await;
    assert_eq!(status, 200, "{body}");
    let staged: Vec<app::staging::StagedFile> = serde_json::from_str(&body).unwrap();
    assert_eq!(staged.iter().map(|f| (f.name.as_str(), f.rows_staged)).collect::<Vec<_>>(), [("codes.csv", 100)]);

    // The same bytes under another name are the same file.
    let again = FileManifest { name: "copy of codes.csv".into(), ..file("codes.csv", 100) };
    let (status, body) = j.start(std::slice::from_ref(&again)).await.unwrap_err();
    assert_eq!(status, 409);
    assert!(
        body.contains("copy of codes.csv is staged in this batch already (on ")
            && body.contains("as codes.csv (100 rows)"),
        "{body}"
    );
    assert_eq!(j.staged_rows().await, 100, "nothing was staged");

    // Chosen explicitly, it is staged again, and the job's files say so.
    j.upload(&[FileManifest { restage: true, ..again }], "B").await;
    assert_eq!(j.staged_rows().await, 200);
    j.check().await;
    let job = j.insert().await;
    let restaged: Vec<bool> = sqlx::query_scalar(
        "SELECT (f ->> 'restaged')::boolean FROM codes_import_jobs, jsonb_array_elements(source_info -> 'files') f
         WHERE id = $1",
    )
    .bind(job)
    .fetch_all(&j.app.pool)
    .await
    .unwrap();
    assert_eq!(restaged, [false, true]);
    let shown = app::jobs::ssr::job_detail(&j.app.pool, job).await.unwrap().unwrap().summary.files;
    assert_eq!(shown, ["codes.csv", "copy of codes.csv (staged again)"], "the job's files say which was staged again");
}

#[tokio::test]
async fn a_cancelled_upload_keeps_or_removes_its_rows_as_the_user_chooses_and_upload_again_never_doubles_them() {
    // Seen: cancelling a 63-file upload at 24,000 of 252,000 rows and pressing Upload again
    // staged all 252,000 again: 276,000 staged, nothing said.
    let j = Journey::new().await;
    let files = [file("a.csv", 300), file("b.csv", 300)];
    let upload = j.start(&files).await.unwrap();
    j.send(&upload, 0, 0, rows(j.merchant, "A0-", 1, 300)).await;
    // While the upload is unfinished its files are not "staged already": choosing them resumes it.
    let (_, body) = j.call("staged-files", &[("merchant", j.merchant.to_string())]).await;
    assert_eq!(body, "[]");
    assert_eq!(j.start(&files).await.map(|resumed| resumed.id), Ok(upload.id));
    let form = |remove: bool| [("upload", upload.id.to_string()), ("remove_rows", remove.to_string())];
    let (status, body) = j.call("cancel-upload", &form(false)).await;
    assert_eq!(status, 200, "{body}");
    let kept: UploadState = serde_json::from_str(&body).unwrap();
    assert_eq!((kept.status, kept.rows_received()), (UploadStatus::Cancelled, 300));
    assert_eq!(j.staged_rows().await, 300);
    // Upload again with the same files: the one staged is refused unless chosen again.
    let (status, body) = j.start(&files).await.unwrap_err();
    assert_eq!(status, 409);
    assert!(body.contains("a.csv is staged in this batch already"), "{body}");
    j.upload(&files[1..], "B").await;
    assert_eq!(j.staged_rows().await, 600, "a.csv once, b.csv once");

    // Removing: a second, cancelled upload takes its rows with it; the check no longer holds.
    j.check().await;
    let more = [file("c.csv", 50)];
    let upload = j.start(&more).await.unwrap();
    j.send(&upload, 0, 0, rows(j.merchant, "C0-", 1, 20)).await;
    let (status, body) =
        j.call("cancel-upload", &[("upload", upload.id.to_string()), ("remove_rows", "true".into())]).await;
    assert_eq!(status, 200, "{body}");
    let removed: UploadState = serde_json::from_str(&body).unwrap();
    assert_eq!((removed.status, removed.rows_received()), (UploadStatus::Cancelled, 0));
    assert_eq!(j.staged_rows().await, 600);
    let review = j.review().await;
    assert_eq!(review.batch.as_ref().map(|b| (b.state, b.rows_staged)), Some((BatchState::Open, 600)));
    let reason = review.stale.expect("the check no longer describes the batch");
    assert!(reason.starts_with("The staged rows changed after this check"), "{reason}");
    // …and the removed file is not "staged already".
    j.upload(&more, "C").await;
    assert_eq!(j.staged_rows().await, 650);
}

#[tokio::test]
async fn every_state_round_trips_through_its_enum_and_the_sql_constraint() {
    let app = spawn_app().await;
    for state in BatchState::ALL {
        let merchant = app.merchant(&format!("M {}", state.as_str())).await;
        // A checked batch names the operation whose figures describe it; an inserting or
        // inserted one its job: the constraints say so.
        let operation: Uuid = sqlx::query_scalar(
            "INSERT INTO merchant_operations (id, merchant_id, kind, status) VALUES ($1, $2, 'check', 'completed')
             RETURNING id",
        )
        .bind(Uuid::new_v4())
        .bind(merchant)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        let stored: String = sqlx::query_scalar(
            "INSERT INTO staging_batches (id, merchant_id, state, job_id, figures_operation)
             VALUES ($1, $2, $3, CASE WHEN $3 IN ('inserting', 'inserted') THEN gen_random_uuid() END,
                     CASE WHEN $3 = 'checked' THEN $4 END)
             RETURNING state",
        )
        .bind(Uuid::new_v4())
        .bind(merchant)
        .bind(state.as_str())
        .bind(operation)
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(BatchState::parse(&stored), Some(state));
    }
    let refused = sqlx::query("INSERT INTO staging_batches (id, merchant_id, state) VALUES ($1, $2, 'complete')")
        .bind(Uuid::new_v4())
        .bind(app.merchant("Other").await)
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert_eq!(refused.as_database_error().and_then(|e| e.constraint()), Some("staging_batches_state_check"));

    let merchant = app.merchant("Uploads").await;
    for status in UploadStatus::ALL {
        let stored: String = sqlx::query_scalar(
            "INSERT INTO uploads (id, merchant_id, status, row_base, total_rows) VALUES ($1, $2, $3, 0, 0) RETURNING status",
        )
        .bind(Uuid::new_v4())
        .bind(merchant)
        .bind(status.as_str())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(UploadStatus::parse(&stored), Some(status));
    }
    let merchant_of_operations = app.merchant("Operations").await;
    for status in app::operations::OperationStatus::ALL {
        let stored: String = sqlx::query_scalar(
            "INSERT INTO merchant_operations (id, merchant_id, kind, status) VALUES ($1, $2, 'check', $3) RETURNING status",
        )
        .bind(Uuid::new_v4())
        .bind(merchant_of_operations)
        .bind(status.as_str())
        .fetch_one(&app.pool)
        .await
        .unwrap();
        assert_eq!(app::operations::OperationStatus::parse(&stored), Some(status));
    }
    // 'complete' (uploads) beside 'completed' (operations, jobs) is gone.
    let refused = sqlx::query(
        "INSERT INTO uploads (id, merchant_id, status, row_base, total_rows) VALUES ($1, $2, 'complete', 0, 0)",
    )
    .bind(Uuid::new_v4())
    .bind(merchant)
    .execute(&app.pool)
    .await
    .unwrap_err();
    assert_eq!(refused.as_database_error().and_then(|e| e.constraint()), Some("uploads_status_check"));
}
