//! A database of the original system, adopted whole: its production codes (row-level security
//! on), its jobs, its functions and a batch its scripts left in staging. The server starts on it,
//! keeps every row, carries the staged batch over as the README says, stages a new upload, and
//! verifies and rolls back an original job.

use std::collections::HashSet;

use app::{
    auth::Role,
    csv::FileReport,
    duplicates::{ssr as duplicates, DuplicateStats},
    jobs::{JobStatus, JobSummary, JobVerification},
    staging::{chunk_path, FileManifest, UploadState},
};
use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::{serve, wait_idle, wire_chunk, TestApp, TestDb};

pub const ORIGINAL_SCHEMA: &str = include_str!("../fixtures/original_schema.sql");

const MERCHANT_A: Uuid = Uuid::from_u128(0x7faab812_e179_48c2_9707_0d8a9b2f84ea);
const MERCHANT_B: Uuid = Uuid::from_u128(0x11111111_2222_4333_8444_555555555555);

/// Codes as the merchants' are: 10 to 16 characters of Crockford's base32, from a seeded
/// generator (xorshift), so a run is repeatable.
pub struct Codes(u64);

impl Codes {
    pub fn new(seed: u64) -> Self {
        Self(seed | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    pub fn code(&mut self) -> String {
        const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
        let len = 10 + (self.next() % 7) as usize;
        (0..len).map(|_| ALPHABET[(self.next() % 32) as usize] as char).collect()
    }
}

/// One row of the original staging table.
struct Staged {
    merchant: Option<Uuid>,
    code: Option<String>,
    points: Option<String>,
    price: Option<String>,
    sku_name: Option<String>,
}

/// What the fixture holds, and what the test expects of it.
struct Original {
    job_carried_codes: Uuid,
    job_with_claims: Uuid,
    existing_a: Vec<String>,
    staged: Vec<Staged>,
}

async fn fill(pool: &PgPool) -> Original {
    let mut codes = Codes::new(0x5eed_0013);
    let mut unique = HashSet::new();
    let mut fresh = |codes: &mut Codes| loop {
        let code = codes.code();
        if unique.insert(code.clone()) {
            return code;
        }
    };
    let existing_a: Vec<String> = (0..3000).map(|_| fresh(&mut codes)).collect();
    let existing_b: Vec<String> = (0..1000).map(|_| fresh(&mut codes)).collect();
    let (job_carried_codes, job_with_claims, job_rolled_back, job_failed) =
        (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    sqlx::query(
        "INSERT INTO codes_import_jobs (id, merchant_id, status, total_codes_to_insert, codes_inserted,
                                        validation_passed, created_at, completed_at, rolled_back_at, error_message,
                                        source_info)
         VALUES ($1, $5, 'completed', 400, 400, true, now() - interval '30 days', now() - interval '30 days', NULL, NULL,
                 '{\"source\": \"csv_import\", \"files\": [{\"name\": \"march.csv\"}]}'),
                ($2, $5, 'completed', 50, 50, true, now() - interval '20 days', now() - interval '20 days', NULL, NULL, '{}'),
                ($3, $5, 'rolled_back', 10, 10, true, now() - interval '10 days', now() - interval '10 days',
                 now() - interval '9 days', NULL, NULL),
                ($4, $6, 'failed', 5, 0, false, now() - interval '5 days', now() - interval '5 days', NULL,
                 'Validation failed', NULL)",
    )
    .bind(job_carried_codes)
    .bind(job_with_claims)
    .bind(job_rolled_back)
    .bind(job_failed)
    .bind(MERCHANT_A)
    .bind(MERCHANT_B)
    .execute(pool)
    .await
    .unwrap();
    // Codes of A: 400 of the first job, 50 of the second (5 claimed), the rest legacy (every
    // 10th claimed); codes of B legacy.
    let jobs: Vec<Option<Uuid>> = (0..3000)
        .map(|i| match i {
            0..400 => Some(job_carried_codes),
            400..450 => Some(job_with_claims),
            _ => None,
        })
        .collect();
    let claimed: Vec<bool> = (0..3000).map(|i| (400..405).contains(&i) || (i >= 450 && i % 10 == 0)).collect();
    sqlx::query(
        "INSERT INTO codes (merchant_id, code, sku, points, sku_name, price, claimed, import_job_id, source, created_at)
         SELECT $1, c, 'SKU' || (n % 7), n % 500, 'Café crème, 250 g', (n % 90) + 0.5, cl, j,
                CASE WHEN j IS NULL THEN 'legacy' ELSE 'csv_import' END, now() - make_interval(days => (n % 300)::int)
         FROM unnest($2::text[], $3::bool[], $4::uuid[]) WITH ORDINALITY AS t(c, cl, j, n)",
    )
    .bind(MERCHANT_A)
    .bind(&existing_a)
    .bind(&claimed)
    .bind(&jobs)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("INSERT INTO codes (merchant_id, code, source) SELECT $1, c, 'legacy' FROM unnest($2::text[]) AS c")
        .bind(MERCHANT_B)
        .bind(&existing_b)
        .execute(pool)
        .await
        .unwrap();

    // The batch the old scripts left in staging: A's rows first, then B's, numbered across
    // both; internal repeats, codes already in production, and rows the upload would refuse.
    let mut staged = Vec::new();
    let row = |merchant: Uuid, code: String| Staged {
        merchant: Some(merchant),
        code: Some(code),
        points: Some("10".into()),
        price: Some("1.50".into()),
        sku_name: Some("Gift, \"deluxe\"".into()),
    };
    let mut batch_a: Vec<String> = Vec::new();
    for i in 0..500 {
        let code = match i % 25 {
            7 => batch_a[i / 2].clone(),            // an internal duplicate
            13 => existing_a[i * 3 % 3000].clone(), // already in production
            _ => fresh(&mut codes),
        };
        batch_a.push(code.clone());
        staged.push(row(MERCHANT_A, code));
    }
    staged.push(Staged { code: Some("   ".into()), ..row(MERCHANT_A, String::new()) });
    staged.push(Staged { points: Some("ten".into()), ..row(MERCHANT_A, fresh(&mut codes)) });
    staged.push(Staged { merchant: None, ..row(MERCHANT_A, fresh(&mut codes)) });
    staged.push(Staged {
        points: None,
        price: Some(" ".into()),
        ..row(MERCHANT_A, format!("  {}  ", fresh(&mut codes)))
    });
    for _ in 0..100 {
        staged.push(row(MERCHANT_B, fresh(&mut codes)));
    }
    for (i, s) in staged.iter().enumerate() {
        sqlx::query(
            "INSERT INTO codes_check_temp (merchant_id, code, points, price, sku_name, row_number, internal_dup)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(s.merchant)
        .bind(&s.code)
        .bind(&s.points)
        .bind(&s.price)
        .bind(&s.sku_name)
        .bind(i as i32 + 1)
        .bind(i % 3 == 0) // flags the old scripts had set; the carried rows are checked again
        .execute(pool)
        .await
        .unwrap();
    }
    Original { job_carried_codes, job_with_claims, existing_a, staged }
}

/// The rows of an original-shaped staging table: their count and a digest of every value.
async fn original_staging(pool: &PgPool, table: &str) -> (i64, String) {
    let sql = format!(
        "SELECT count(*), md5(string_agg(concat_ws('|', merchant_id, code, points, price, sku_name, row_number,
                internal_dup, existing_dup), E'\\n' ORDER BY row_number)) FROM {table}"
    );
    sqlx::query_as(sqlx::AssertSqlSafe(sql)).fetch_one(pool).await.unwrap()
}

/// Every row of every table the original system had, and the definitions of its functions.
async fn fingerprint(pool: &PgPool) -> Vec<String> {
    let queries = [
        "SELECT count(*)::text || ':' || md5(string_agg(concat_ws('|', id, merchant_id, code, sku, points, sku_name,
                batch_code, serial, price, window_start, window_end, activated, deactivated, claimed,
                claimed_customer_id, import_job_id, source, created_at), E'\\n' ORDER BY id)) FROM codes",
        "SELECT count(*)::text || ':' || md5(string_agg(concat_ws('|', id, merchant_id, status, total_codes_to_insert,
                codes_inserted, validation_passed, validation_errors, created_at, created_by, completed_at,
                rolled_back_at, error_message, source_info), E'\\n' ORDER BY id)) FROM codes_import_jobs",
        "SELECT string_agg(n.nspname || '.' || p.proname || ':' || md5(p.prosrc) || ':' || p.prosecdef::text, ','
                           ORDER BY n.nspname, p.proname)
         FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
         WHERE (n.nspname = 'public' AND p.proname IN ('mark_duplicates_in_temp', 'validate_clean_codes_for_insert',
                'insert_clean_codes_to_production', 'rollback_import_job', 'verify_import_job',
                'get_duplicate_report'))
            OR (n.nspname = 'auth' AND p.proname = 'uid')",
        "SELECT relrowsecurity::text || ':' || (SELECT string_agg(polname || ':' || pg_get_expr(polqual, polrelid), ',')
                FROM pg_policy WHERE polrelid = 'codes'::regclass) FROM pg_class WHERE oid = 'codes'::regclass",
    ];
    let mut out = Vec::new();
    for sql in queries {
        out.push(sqlx::query_scalar::<_, String>(sql).fetch_one(pool).await.unwrap());
    }
    out
}

#[tokio::test]
async fn the_original_database_is_adopted_whole_and_its_staged_batch_carried_over() {
    let db = TestDb::create().await;
    let (original, before, staged_before) = {
        let pool = db.connect().await;
        sqlx::raw_sql(ORIGINAL_SCHEMA).execute(&pool).await.unwrap();
        let original = fill(&pool).await;
        let staged_before = original_staging(&pool, "codes_check_temp").await;
        let before = fingerprint(&pool).await;
        pool.close().await;
        (original, before, staged_before)
    };
    assert!(before[3].starts_with("true:codes_merchant_isolation"), "the fixture has RLS on: {}", before[3]);

    let pool = server::prepare_database(&db.url).await.expect("the server starts on the original database");

    // Production, jobs, functions and the policy: exactly as they were.
    assert_eq!(fingerprint(&pool).await, before);
    // The original staging table is kept whole, logged, with its indexes.
    assert_eq!(original_staging(&pool, "codes_check_temp_original").await, staged_before);
    let persistence: String = sqlx::query_scalar(
        "SELECT relpersistence::text FROM pg_class WHERE oid = 'codes_check_temp_original'::regclass",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(persistence, "p", "the kept table is logged again");
    let indexes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_indexes WHERE tablename = 'codes_check_temp_original'
         AND indexname IN ('idx_codes_check_temp_code_merchant', 'idx_codes_check_temp_flags')",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(indexes, 2);

    // What the upload would have staged is carried into staging, per merchant, in order, trimmed,
    // flags reset; the rest is not.
    let expected: Vec<(Uuid, String, Option<String>, i64)> = original
        .staged
        .iter()
        .enumerate()
        .filter(|(_, s)| s.merchant.is_some())
        .filter(|(_, s)| s.code.as_deref().is_some_and(|c| !c.trim().is_empty()))
        .filter(|(_, s)| s.points.as_deref().is_none_or(|p| p.trim().parse::<f64>().is_ok()))
        .map(|(i, s)| {
            let price = s.price.as_deref().map(str::trim).filter(|p| !p.is_empty()).map(str::to_owned);
            (s.merchant.unwrap(), s.code.as_deref().unwrap().trim().to_owned(), price, i as i64 + 1)
        })
        .collect();
    assert_eq!(expected.len(), 500 + 1 + 100, "500 + the padded code + B's 100");
    let carried: Vec<(Uuid, String, Option<String>, i64)> = sqlx::query_as(
        "SELECT merchant_id, code, price::text, source_line FROM codes_check_temp
         WHERE NOT internal_dup AND NOT existing_dup AND source_file = 'codes_check_temp_original'
         ORDER BY merchant_id DESC, row_number",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(carried, expected);
    let numbers: Vec<i64> =
        sqlx::query_scalar("SELECT row_number FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number")
            .bind(MERCHANT_A)
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(numbers, (1..=501).collect::<Vec<i64>>());
    let note = server::database::original_staging_note(&pool).await.unwrap().expect("a note while the table is kept");
    assert!(note.contains("601 of its rows were carried into the staging of 2 merchant(s)"), "{note}");
    assert!(note.contains("3 that cannot be staged"), "{note}");

    // The app serves it: the original jobs are in the history and can be verified and rolled back.
    let addr = serve(&db, pool.clone()).await;
    let app = TestApp { addr, pool: pool.clone(), client: TestApp::new_client(), db };
    let ops = app.sign_in(&app.user(Role::Ops, &[]).await).await;
    let jobs: Vec<JobSummary> = app.call(&ops, "list-jobs", &[]).await.json().await.unwrap();
    assert_eq!(jobs.len(), 4);
    let named = jobs.iter().find(|j| j.id == original.job_carried_codes).unwrap();
    assert_eq!(named.files, vec!["march.csv"]);
    assert_eq!(named.merchant_name.as_deref(), Some(format!("Merchant {MERCHANT_A}").as_str()));
    let verified: JobVerification =
        app.call(&ops, "verify-job", &[("job", original.job_carried_codes.to_string())]).await.json().await.unwrap();
    assert_eq!(verified, JobVerification { status: JobStatus::Completed, codes_inserted: Some(400), codes_found: 400 });
    let refused = app
        .call(&ops, "rollback-job", &[("job", original.job_with_claims.to_string()), ("confirmation", "DELETE".into())])
        .await;
    assert!(!refused.status().is_success(), "a job with claimed codes is not rolled back");
    assert!(refused.text().await.unwrap().contains('5'), "the refusal says how many are claimed");
    let rolled = app
        .call(
            &ops,
            "rollback-job",
            &[("job", original.job_carried_codes.to_string()), ("confirmation", "DELETE".into())],
        )
        .await;
    assert!(rolled.status().is_success(), "{}", rolled.text().await.unwrap());
    wait_idle(&pool, MERCHANT_A).await;
    let (status, left): (String, i64) = sqlx::query_as(
        "SELECT status, (SELECT count(*) FROM codes WHERE import_job_id = $1) FROM codes_import_jobs WHERE id = $1",
    )
    .bind(original.job_carried_codes)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!((status.as_str(), left), ("rolled_back", 0));

    // The carried batch is checked like any other: internal repeats and codes in production.
    duplicates::start_check(&pool, MERCHANT_A, None).await.unwrap();
    wait_idle(&pool, MERCHANT_A).await;
    let in_production: HashSet<&str> = original.existing_a[400..].iter().map(String::as_str).collect();
    let mut seen = HashSet::new();
    let mut truth = DuplicateStats::default();
    for (_, code, _, _) in expected.iter().filter(|e| e.0 == MERCHANT_A) {
        let internal = !seen.insert(code.as_str());
        let database = in_production.contains(code.as_str());
        truth.total_rows += 1;
        truth.internal_duplicates += internal as i64;
        truth.database_duplicates += database as i64;
        truth.both += (internal && database) as i64;
        truth.clean_count += (!internal && !database) as i64;
    }
    let figures = duplicates::review_state(&pool, MERCHANT_A).await.unwrap().figures.expect("figures");
    assert_eq!(figures.overall, truth);

    // A new upload stages after the carried rows.
    let manifest = FileManifest {
        name: "new.csv".into(),
        size: 40,
        checksum: "sum-new".into(),
        rows: 2,
        report: FileReport::default(),
        restage: false,
    };
    let upload: UploadState = app.start_upload(&ops, MERCHANT_A, &[manifest]).await.json().await.unwrap();
    let body = format!("2,{MERCHANT_A},NEWCODE0001,,,,,,\n3,{MERCHANT_A},NEWCODE0002,,,7,Crème,,\n");
    let sent = ops.post(app.url(&chunk_path(upload.id, 0, 0))).body(wire_chunk(body)).send().await.unwrap();
    assert_eq!(sent.status(), 200, "{}", sent.text().await.unwrap());
    let last: (i64, String) = sqlx::query_as(
        "SELECT row_number, code FROM codes_check_temp WHERE merchant_id = $1 ORDER BY row_number DESC LIMIT 1",
    )
    .bind(MERCHANT_A)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(last, (503, "NEWCODE0002".to_owned()));
}

#[tokio::test]
async fn a_role_that_row_level_security_applies_to_is_refused_at_start_up_in_one_line() {
    let db = TestDb::create().await;
    let role = format!("ci_rls_{}", Uuid::new_v4().simple());
    {
        let pool = db.connect().await;
        sqlx::raw_sql(ORIGINAL_SCHEMA).execute(&pool).await.unwrap();
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "CREATE ROLE {role} LOGIN; GRANT ALL ON ALL TABLES IN SCHEMA public TO {role};
             GRANT ALL ON SCHEMA public TO {role}; GRANT CREATE ON DATABASE \"{}\" TO {role};",
            db.name
        )))
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let url = db.url.replacen("postgres@", &format!("{role}@"), 1);
    let error = server::prepare_database(&url).await.err().expect("refused");
    let line = error.to_string();
    assert!(line.contains("row-level security applies to role") && line.contains("codes"), "{line}");
    assert!(!line.contains('\n'));
    let untouched: bool = sqlx::query_scalar("SELECT to_regclass('_sqlx_migrations') IS NULL")
        .fetch_one(&db.connect().await)
        .await
        .unwrap();
    assert!(untouched, "nothing was migrated");
    let admin = db.connect().await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP OWNED BY {role}; DROP ROLE {role};")))
        .execute(&admin)
        .await
        .unwrap();
}

#[tokio::test]
async fn points_that_the_original_integer_column_cannot_hold_stop_the_insert_before_it_rounds_them() {
    // The original `codes.points` is integer; staging keeps numeric: 10.5 would be inserted as 11.
    let db = TestDb::create().await;
    {
        let pool = db.connect().await;
        sqlx::raw_sql(ORIGINAL_SCHEMA).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let pool = server::prepare_database(&db.url).await.unwrap();
    let merchant = app::admin::ssr::create_merchant(&pool, "Points").await.unwrap().id;
    sqlx::query(
        "INSERT INTO codes_check_temp (merchant_id, row_number, code, points, price, source_file, source_line)
         VALUES ($1, 1, 'WHOLE000001', 10, 1.25, 'p.csv', 2), ($1, 2, 'HALF0000002', 10.5, NULL, 'p.csv', 3),
                ($1, 3, 'HUGE0000003', 3000000000, NULL, 'p.csv', 4), ($1, 4, 'NONE0000004', NULL, NULL, 'p.csv', 5)",
    )
    .bind(merchant)
    .execute(&pool)
    .await
    .unwrap();
    crate::helpers::register_staged(&pool, merchant).await;
    duplicates::start_check(&pool, merchant, None).await.unwrap();
    wait_idle(&pool, merchant).await;

    let preflight = app::jobs::preflight::run_preflight(&pool, merchant, None).await.unwrap();
    assert_eq!(preflight.errors.len(), 1, "{:?}", preflight.errors);
    assert!(preflight.errors[0].starts_with("2 clean rows have a points"), "{:?}", preflight.errors);
    assert!(preflight.errors[0].contains("(integer)"), "{:?}", preflight.errors);

    sqlx::query("UPDATE codes_check_temp SET points = 7 WHERE code IN ('HALF0000002', 'HUGE0000003')")
        .execute(&pool)
        .await
        .unwrap();
    let preflight = app::jobs::preflight::run_preflight(&pool, merchant, None).await.unwrap();
    assert!(preflight.errors.is_empty(), "{:?}", preflight.errors);
}

#[tokio::test]
async fn an_empty_original_staging_table_is_adopted_and_the_log_says_it_was_empty() {
    let db = TestDb::create().await;
    {
        let pool = db.connect().await;
        sqlx::raw_sql(ORIGINAL_SCHEMA).execute(&pool).await.unwrap();
        pool.close().await;
    }
    let pool = server::prepare_database(&db.url).await.unwrap();
    let note = server::database::original_staging_note(&pool).await.unwrap().unwrap();
    assert!(note.contains("was empty when it was adopted"), "{note}");
    let staged: i64 = sqlx::query_scalar("SELECT count(*) FROM codes_check_temp").fetch_one(&pool).await.unwrap();
    assert_eq!(staged, 0);
    // A restart adopts nothing twice and starts as cleanly.
    pool.close().await;
    let pool = server::prepare_database(&db.url).await.unwrap();
    assert!(server::database::original_staging_note(&pool).await.unwrap().unwrap().contains("was empty"));
}
