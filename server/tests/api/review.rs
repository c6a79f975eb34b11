//! The review of staged rows for ops: pages by keyset with a page count and jumps, filters by
//! status and file, search by code, where each duplicate's code was seen before; the duplicate
//! threshold before an insert; the job history's figures per job.

use app::{
    auth::Role,
    duplicates::{ssr, CodeSearch, PreviewPage, ReviewView, RowFilter, RowStatus},
    jobs::{JobDetail, JobStatus, JobSummary},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{spawn_app, wait_idle, TestApp};

/// Rows `1..=rows` staged in `a.csv` (the first half) and `b.csv`: row n has code `C-n`, except
/// every 10th, which repeats the code of row n - 5; the codes `C-k` with k a multiple of 7 are
/// in production, those with k a multiple of 14 from `job` (in the job history), the others
/// from a job the history does not know. Checked as the page checks.
async fn staged(app: &TestApp, rows: i64) -> (Uuid, Uuid) {
    let merchant = app.merchant(&format!("Review {}", Uuid::new_v4().simple())).await;
    let file = format!("CASE WHEN n <= {rows} / 2 THEN 'a.csv' ELSE 'b.csv' END");
    stage(app, merchant, rows, "'C-' || CASE WHEN n % 10 = 0 THEN n - 5 ELSE n END", &file).await;
    let job = Uuid::new_v4();
    sqlx::query(
        "INSERT INTO codes_import_jobs (id, merchant_id, status, codes_inserted) VALUES ($1, $2, 'completed', 0)",
    )
    .bind(job)
    .bind(merchant)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO codes (merchant_id, code, source, import_job_id, created_at)
         SELECT $1, 'C-' || k, 'legacy', CASE WHEN k % 14 = 0 THEN $3 ELSE gen_random_uuid() END,
                timestamptz '2026-11-02 10:00:00+00' + k * interval '1 second'
         FROM generate_series(7, $2, 7) AS k",
    )
    .bind(merchant)
    .bind(rows)
    .bind(job)
    .execute(&app.pool)
    .await
    .unwrap();
    check(app, merchant).await;
    (merchant, job)
}

/// Stages rows `1..=rows` of `merchant` with SQL, `code` and `file` expressions of `n` (the
/// line is n + 1), as one completed upload.
async fn stage(app: &TestApp, merchant: Uuid, rows: i64, code: &str, file: &str) {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO codes_check_temp (merchant_id, row_number, code, source_file, source_line)
         SELECT $1, n, {code}, {file}, n + 1 FROM generate_series(1, $2) AS n"
    )))
    .bind(merchant)
    .bind(rows)
    .execute(&app.pool)
    .await
    .unwrap();
    crate::helpers::register_staged(&app.pool, merchant).await;
}

/// Runs the duplicate check as the page starts it, and waits for it.
async fn check(app: &TestApp, merchant: Uuid) {
    ssr::start_check(&app.pool, merchant, None).await.unwrap();
    let check = crate::duplicates::finished_check(&app.pool, merchant).await;
    assert_eq!(check.status, "completed", "{:?}", check.error_message);
}

/// The status of row `n` of [`staged`], worked out on its own.
fn status_of(n: i64) -> RowStatus {
    let code = if n % 10 == 0 { n - 5 } else { n };
    RowStatus::of(n % 10 == 0, code % 7 == 0)
}

fn passes(filter: RowFilter, file: Option<&str>, rows: i64, n: i64) -> bool {
    let in_file = match file {
        Some("a.csv") => n <= rows / 2,
        Some(_) => n > rows / 2,
        None => true,
    };
    let status = status_of(n);
    in_file
        && match filter {
            RowFilter::Duplicates => status != RowStatus::Clean,
            RowFilter::Only(only) => status == only,
            RowFilter::All => true,
        }
}

fn numbers(page: &PreviewPage) -> Vec<i64> {
    page.rows.iter().map(|r| r.row_number).collect()
}

#[tokio::test]
async fn a_jump_to_any_page_shows_what_paging_there_shows_and_the_page_count_is_right() {
    let app = spawn_app().await;
    // Three blocks of row numbers, two files.
    let rows = 140_000;
    let (merchant, _) = staged(&app, rows).await;
    let limit = 4_000;
    let filters = [RowFilter::Duplicates, RowFilter::Only(RowStatus::BothDuplicate), RowFilter::All];
    for (filter, file) in filters.into_iter().flat_map(|f| [(f, None), (f, Some("b.csv"))]) {
        let first = ReviewView { filter, file: file.map(str::to_owned), page: 1, ..ReviewView::default() };
        // Page by keyset from the first page to the last.
        let mut pages = Vec::new();
        let mut view = first.clone();
        loop {
            let page = ssr::preview(&app.pool, merchant, &view, limit).await.unwrap();
            assert_eq!(page.page, pages.len() as i64 + 1, "{filter:?} {file:?}");
            pages.push(page.clone());
            match page.next_after {
                Some(after) => view = ReviewView { page: page.page + 1, after: Some(after), ..first.clone() },
                None => break,
            }
        }
        let wanted: Vec<i64> = (1..=rows).filter(|n| passes(filter, file, rows, *n)).collect();
        assert_eq!(pages.iter().flat_map(numbers).collect::<Vec<_>>(), wanted, "{filter:?} {file:?}: every row once");
        assert_eq!(pages[0].matching, Some(wanted.len() as i64), "{filter:?} {file:?}");
        assert_eq!(pages[0].pages, Some(pages.len() as i64), "{filter:?} {file:?}");

        // A jump to page N shows the page that paging reached as page N.
        for (index, paged) in pages.iter().enumerate() {
            let n = index as i64 + 1;
            let jumped =
                ssr::preview(&app.pool, merchant, &ReviewView { page: n, ..first.clone() }, limit).await.unwrap();
            assert_eq!((jumped.page, numbers(&jumped)), (n, numbers(paged)), "{filter:?} {file:?} page {n}");
        }
        // And back: the page before page 2's first row is page 1.
        if pages.len() > 1 {
            let before = pages[1].previous_before.expect("page 2 has a page before it");
            let back = ssr::preview(
                &app.pool,
                merchant,
                &ReviewView { page: 2 - 1, before: Some(before), ..first.clone() },
                limit,
            )
            .await
            .unwrap();
            assert_eq!((back.page, numbers(&back)), (1, numbers(&pages[0])));
        }
    }
}

#[tokio::test]
async fn a_link_to_a_row_lands_on_the_page_that_holds_it_with_the_row_marked() {
    let app = spawn_app().await;
    let rows = 140_000;
    let (merchant, _) = staged(&app, rows).await;
    for row in [1, 50, 51, 65_535, 65_536, 65_537, 131_072, 140_000] {
        let page = ssr::preview(&app.pool, merchant, &ReviewView::landing_on(row), 50).await.unwrap();
        assert_eq!(page.page, (row - 1) / 50 + 1, "row {row}");
        assert_eq!(page.pages, Some(rows / 50));
        assert_eq!(page.marked_row, Some(row));
        assert_eq!(page.rows.first().map(|r| r.row_number), Some((row - 1) / 50 * 50 + 1), "row {row}");
    }
}

#[tokio::test]
async fn each_duplicate_says_where_its_code_was_seen_before() {
    let app = spawn_app().await;
    let rows = 2_000;
    let (merchant, job) = staged(&app, rows).await;
    let view = ReviewView { filter: RowFilter::Duplicates, page: 1, ..ReviewView::default() };
    let page = ssr::preview(&app.pool, merchant, &view, 1_000).await.unwrap();
    assert!(page.rows.len() > 100);
    for row in &page.rows {
        let n = row.row_number;
        if row.internal_dup {
            // The first occurrence of C-(n-5) is row n - 5, in the file and on the line staged.
            let file = if n - 5 <= rows / 2 { "a.csv" } else { "b.csv" };
            assert_eq!(
                (row.first_row, row.first_file.as_deref(), row.first_line),
                (Some(n - 5), Some(file), Some(n - 4)),
                "row {n}"
            );
        } else {
            assert_eq!(row.first_row, None, "row {n}");
        }
        if row.existing_dup {
            let k: i64 = row.code.trim_start_matches("C-").parse().unwrap();
            let created =
                chrono::DateTime::parse_from_rfc3339("2026-11-02T10:00:00Z").unwrap() + chrono::Duration::seconds(k);
            assert_eq!(row.production_created_at, Some(created.to_utc()), "row {n}");
            assert_eq!(row.production_source.as_deref(), Some("legacy"));
            assert!(row.production_job.is_some());
            assert_eq!(row.production_job_known, k % 14 == 0, "row {n}");
            if k % 14 == 0 {
                assert_eq!(row.production_job, Some(job));
            }
        } else {
            assert_eq!((row.production_created_at, row.production_job), (None, None), "row {n}");
        }
    }
    // The check keeps the first occurrence current: a rerun changes nothing.
    let mut conn = app.pool.acquire().await.unwrap();
    assert_eq!(ssr::mark_duplicates(&mut conn, merchant, None).await.unwrap(), 0);
}

#[tokio::test]
async fn a_search_by_code_finds_the_code_exactly_or_by_its_prefix_through_the_server_function() {
    let app = spawn_app().await;
    let rows = 20_000;
    let (merchant, _) = staged(&app, rows).await;
    let ops = app.sign_in(&app.user(Role::Ops, &[]).await).await;
    let search = |code: &str, prefix: bool, filter: RowFilter| ReviewView {
        filter,
        search: Some(CodeSearch { code: code.to_owned(), prefix }),
        page: 1,
        ..ReviewView::default()
    };
    let call = |view: ReviewView| {
        let request = ops
            .post(app.url("/api/preview-rows"))
            .json(&serde_json::json!({ "merchant": merchant, "view": view }))
            .send();
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<PreviewPage>().await.unwrap()
        }
    };

    // Row 14,973 is on page 300 of all rows; its code is there once.
    let found = call(search("C-14973", false, RowFilter::All)).await;
    assert_eq!(numbers(&found), [14_973]);
    // C-12345 is row 12,345's code, and row 12,350 repeats it.
    assert_eq!(numbers(&call(search("C-12345", false, RowFilter::All)).await), [12_345, 12_350]);
    assert_eq!(numbers(&call(search("C-12345", false, RowFilter::Duplicates)).await), [12_350], "filters combine");
    assert_eq!(numbers(&call(search("c-12345", false, RowFilter::All)).await), Vec::<i64>::new(), "case counts");

    // Every code that starts with C-1234, once, page by page, each page saying of how many.
    let wanted: Vec<(i64, String)> = (1..=rows)
        .map(|n| (n, format!("C-{}", if n % 10 == 0 { n - 5 } else { n })))
        .filter(|(_, code)| code.starts_with("C-1234"))
        .collect();
    let pages = (wanted.len() as i64 + 3) / 4;
    let mut seen = Vec::new();
    let mut view = search("C-1234", true, RowFilter::All);
    loop {
        let page = ssr::preview(&app.pool, merchant, &view, 4).await.unwrap();
        assert_eq!((page.matching, page.pages), (Some(wanted.len() as i64), Some(pages)), "page {}", page.page);
        seen.extend(page.rows.iter().map(|r| (r.row_number, r.code.clone())));
        match page.next_after {
            Some(after) => view = ReviewView { page: page.page + 1, after: Some(after), ..view },
            None => break,
        }
    }
    assert_eq!(seen, wanted);

    // A jump to a page of the search, and past its last page, by number alone.
    let on = |page: i64| ReviewView { page, ..search("C-1234", true, RowFilter::All) };
    assert!(pages >= 3, "{} rows found", wanted.len());
    let second = ssr::preview(&app.pool, merchant, &on(2), 4).await.unwrap();
    assert_eq!((second.page, numbers(&second)), (2, wanted[4..8].iter().map(|(n, _)| *n).collect::<Vec<_>>()));
    let last = ssr::preview(&app.pool, merchant, &on(pages + 7), 4).await.unwrap();
    let tail: Vec<i64> = wanted[(pages as usize - 1) * 4..].iter().map(|(n, _)| *n).collect();
    assert_eq!((last.page, numbers(&last)), (pages, tail));
    // A search that finds nothing is one empty page.
    let none = call(search("NO-SUCH-CODE", false, RowFilter::All)).await;
    assert_eq!((none.matching, none.pages, none.rows.len()), (Some(0), Some(1), 0));
}

/// A merchant with `rows` staged codes of which `in_production` are already in production, checked.
async fn batch_with_duplicates(app: &TestApp, rows: i64, in_production: i64) -> Uuid {
    let merchant = app.merchant(&format!("Threshold {}", Uuid::new_v4().simple())).await;
    stage(app, merchant, rows, "'T-' || n", "'codes.csv'").await;
    sqlx::query("INSERT INTO codes (merchant_id, code) SELECT $1, 'T-' || n FROM generate_series(1, $2) AS n")
        .bind(merchant)
        .bind(in_production)
        .execute(&app.pool)
        .await
        .unwrap();
    check(app, merchant).await;
    merchant
}

async fn jobs_of(pool: &PgPool, merchant: Uuid) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM codes_import_jobs WHERE merchant_id = $1")
        .bind(merchant)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn above_the_duplicate_threshold_the_insert_is_refused_until_the_user_confirms_it() {
    let app = spawn_app().await;
    let merchant = batch_with_duplicates(&app, 8, 5).await;
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;
    let insert = |confirmed: Option<bool>| {
        let mut form = vec![("merchant", merchant.to_string()), ("confirmation", "YES".to_owned())];
        form.extend(confirmed.map(|c| ("duplicates_confirmed", c.to_string())));
        let request = admin.post(app.url("/api/start-insert")).form(&form).send();
        async move { request.await.unwrap() }
    };

    for confirmed in [None, Some(false)] {
        let refused = insert(confirmed).await;
        assert_eq!(refused.status(), 400, "{confirmed:?}");
        let said = refused.text().await.unwrap();
        assert!(said.contains("5 of the 8 staged rows are duplicates, above the 50 % threshold"), "{said}");
    }
    assert_eq!(jobs_of(&app.pool, merchant).await, 0, "no job was started");

    let started = insert(Some(true)).await;
    assert_eq!(started.status(), 200);
    let job: Uuid = started.json().await.unwrap();
    wait_idle(&app.pool, merchant).await;
    let detail = app::jobs::ssr::job_detail(&app.pool, job).await.unwrap().unwrap();
    assert_eq!((detail.summary.status, detail.summary.codes_inserted), (JobStatus::Completed, Some(3)));
}

#[tokio::test]
async fn at_or_below_the_duplicate_threshold_the_insert_needs_no_second_confirmation() {
    let app = spawn_app().await;
    let merchant = batch_with_duplicates(&app, 8, 4).await;
    let admin = app.sign_in(&app.user(Role::MerchantAdmin, &[merchant]).await).await;
    let started =
        app.call(&admin, "start-insert", &[("merchant", merchant.to_string()), ("confirmation", "YES".into())]).await;
    assert_eq!(started.status(), 200, "exactly half is not above the threshold");
    wait_idle(&app.pool, merchant).await;
}

#[tokio::test]
async fn the_job_history_tells_each_jobs_files_rows_staged_duplicates_and_codes_inserted() {
    let app = spawn_app().await;
    let merchant = batch_with_duplicates(&app, 10, 3).await;
    let user = app.user(Role::MerchantAdmin, &[merchant]).await;
    let job = app::jobs::ssr::start_insert(&app.pool, merchant, user.id, "YES").await.unwrap();
    wait_idle(&app.pool, merchant).await;
    let admin = app.sign_in(&user).await;

    let listed = app.call(&admin, "list-jobs", &[("merchant", merchant.to_string())]).await;
    let jobs: Vec<JobSummary> = listed.json().await.unwrap();
    let listed = jobs.iter().find(|j| j.id == job).expect("the job is listed");
    assert_eq!(listed.files, ["codes.csv"]);
    assert_eq!((listed.rows_staged, listed.duplicates(), listed.codes_inserted), (Some(10), Some(3), Some(7)));
    assert_eq!(listed.short_id(), job.simple().to_string()[..8]);

    let detail: JobDetail = app.call(&admin, "get-job", &[("job", job.to_string())]).await.json().await.unwrap();
    assert_eq!(detail.files.len(), 1);
    let file = &detail.files[0];
    assert_eq!((file.name.as_str(), file.size, file.rows_staged), ("codes.csv", Some(10), Some(10)));
    assert_eq!(
        detail.preflight.sentences(),
        [
            "The pre-flight passed: 7 clean codes to insert.",
            "No code had reached production since the duplicate check."
        ]
    );
}

/// Times the review's reads at `REVIEW_ROWS` staged rows (default 2,000,000) against the
/// reference a page would cost with OFFSET and a count, in the same run:
/// `REVIEW_ROWS=2000000 cargo test -p server --test api --release -- --ignored --nocapture measure_review`.
#[tokio::test]
#[ignore = "a measurement, run by hand"]
async fn measure_review_reads() {
    let rows: i64 = std::env::var("REVIEW_ROWS").ok().and_then(|r| r.parse().ok()).unwrap_or(2_000_000);
    let app = spawn_app().await;
    let merchant = app.merchant("Measured").await;
    // Random codes of 12 characters; every 50th row repeats an earlier code; 28 % in production.
    let code = "CASE WHEN n % 50 = 0 THEN left(md5((n - 25)::text), 12) ELSE left(md5(n::text), 12) END";
    stage(&app, merchant, rows, code, "'file-' || (n / 250000) || '.csv'").await;
    sqlx::query(
        "INSERT INTO codes (merchant_id, code, source) SELECT $1, left(md5(n::text), 12), 'legacy'
         FROM generate_series(1, $2) AS n WHERE n % 25 < 7",
    )
    .bind(merchant)
    .bind(rows)
    .execute(&app.pool)
    .await
    .unwrap();
    sqlx::query("VACUUM ANALYZE codes").execute(&app.pool).await.unwrap();
    let started = std::time::Instant::now();
    check(&app, merchant).await;
    println!("{rows} rows staged; check {:.2} s", started.elapsed().as_secs_f64());
    sqlx::query("VACUUM ANALYZE codes_check_temp").execute(&app.pool).await.unwrap();

    let figures = ssr::current_figures(&app.pool, merchant).await.unwrap().unwrap();
    let duplicates = RowFilter::Duplicates.count(&figures.overall);
    let last = (duplicates + 49) / 50;
    let view = |page: i64| ReviewView { page, ..ReviewView::default() };
    let near_end = ssr::preview(&app.pool, merchant, &view(last - 1), 50).await.unwrap();
    let search = |code: &str, prefix: bool| ReviewView {
        filter: RowFilter::All,
        search: Some(CodeSearch { code: code.to_owned(), prefix }),
        ..view(1)
    };
    let late = rows - 17;
    let late_code: String =
        sqlx::query_scalar("SELECT code FROM codes_check_temp WHERE merchant_id = $1 AND row_number = $2")
            .bind(merchant)
            .bind(late)
            .fetch_one(&app.pool)
            .await
            .unwrap();
    let cases: Vec<(&str, ReviewView)> = vec![
        ("duplicates, page 1", view(1)),
        ("duplicates, jump to the last page", view(last)),
        ("duplicates, next page by keyset near the end", ReviewView { after: near_end.next_after, ..view(last) }),
        ("all rows, land on a row near the end", ReviewView::landing_on(late)),
        ("file-3.csv, jump to page 100", ReviewView { file: Some("file-3.csv".into()), ..view(100) }),
        ("search a code exactly", search(&late_code, false)),
        ("search a code prefix", search("abcd", true)),
    ];
    for (what, view) in cases {
        let timed = std::time::Instant::now();
        let page = ssr::preview(&app.pool, merchant, &view, 50).await.unwrap();
        println!(
            "{what}: {:.1} ms ({} rows, page {})",
            timed.elapsed().as_secs_f64() * 1e3,
            page.rows.len(),
            page.page
        );
    }
    for (what, sql) in [
        (
            "reference: the last page of duplicates by OFFSET",
            "SELECT row_number FROM codes_check_temp WHERE merchant_id = $1 AND (internal_dup OR existing_dup)
             ORDER BY row_number OFFSET $2 LIMIT 50",
        ),
        (
            "reference: count(*) of the duplicates",
            "SELECT count(*) FROM codes_check_temp WHERE merchant_id = $1 AND (internal_dup OR existing_dup) AND $2 >= 0",
        ),
    ] {
        let timed = std::time::Instant::now();
        sqlx::query(sql).bind(merchant).bind((last - 1) * 50).fetch_all(&app.pool).await.unwrap();
        println!("{what}: {:.1} ms", timed.elapsed().as_secs_f64() * 1e3);
    }
}
