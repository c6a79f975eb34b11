use sqlx::PgPool;

use crate::helpers::TestDb;

async fn exists(pool: &PgPool, sql: &str, name: &str) -> bool {
    sqlx::query_scalar::<_, bool>(sqlx::AssertSqlSafe(sql.to_owned())).bind(name).fetch_one(pool).await.unwrap()
}

async fn constraint_exists(pool: &PgPool, name: &str) -> bool {
    exists(pool, "SELECT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = $1)", name).await
}

async fn index_exists(pool: &PgPool, name: &str) -> bool {
    exists(pool, "SELECT EXISTS (SELECT 1 FROM pg_indexes WHERE indexname = $1)", name).await
}

async fn columns_of(pool: &PgPool, table: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = 'public' AND table_name = $1 ORDER BY column_name",
    )
    .bind(table)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn the_server_creates_and_migrates_a_database_that_does_not_exist() {
    let db = TestDb::unique();
    let pool = server::prepare_database(&db.url).await.expect("first start");

    let mut codes = columns_of(&pool, "codes").await;
    codes.sort();
    for column in [
        "activated",
        "batch_code",
        "claimed",
        "claimed_customer_id",
        "code",
        "created_at",
        "deactivated",
        "id",
        "import_job_id",
        "merchant_id",
        "points",
        "price",
        "serial",
        "sku",
        "sku_name",
        "source",
        "window_end",
        "window_start",
    ] {
        assert!(codes.contains(&column.to_owned()), "codes lacks {column}: {codes:?}");
    }
    let staging = columns_of(&pool, "codes_check_temp").await;
    for column in
        ["row_number", "internal_dup", "existing_dup", "created_at", "upload_id", "source_file", "source_line"]
    {
        assert!(staging.contains(&column.to_owned()), "codes_check_temp lacks {column}");
    }
    let jobs = columns_of(&pool, "codes_import_jobs").await;
    for column in [
        "id",
        "merchant_id",
        "status",
        "total_codes_to_insert",
        "codes_inserted",
        "validation_passed",
        "validation_errors",
        "created_at",
        "created_by",
        "completed_at",
        "rolled_back_at",
        "error_message",
        "source_info",
    ] {
        assert!(jobs.contains(&column.to_owned()), "codes_import_jobs lacks {column}");
    }
    assert!(constraint_exists(&pool, "codes_code_merchant_id_unique").await);
    assert!(constraint_exists(&pool, "codes_import_jobs_status_check").await);
    assert!(index_exists(&pool, "idx_codes_import_job_id").await);
    assert!(constraint_exists(&pool, "codes_check_temp_pkey").await);
    assert!(!index_exists(&pool, "idx_codes_check_temp_merchant_code").await, "staging keeps no secondary index");

    // The unique constraint really holds.
    let merchant = uuid::Uuid::new_v4();
    let insert = "INSERT INTO codes (merchant_id, code) VALUES ($1, 'ABC')";
    sqlx::query(insert).bind(merchant).execute(&pool).await.unwrap();
    let err = sqlx::query(insert).bind(merchant).execute(&pool).await.unwrap_err();
    let constraint = err.as_database_error().and_then(|e| e.constraint().map(str::to_owned));
    assert_eq!(constraint.as_deref(), Some("codes_code_merchant_id_unique"));

    // A restart finds everything applied and changes nothing.
    pool.close().await;
    let pool = server::prepare_database(&db.url).await.expect("second start");
    let applied: i64 =
        sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&pool).await.unwrap();
    assert_eq!(applied, server::MIGRATOR.iter().count() as i64);
    pool.close().await;
}

/// The shape of `codes` in the system Code Import replaces: no `import_job_id`, a uuid id,
/// and its own name for the unique constraint.
const ORIGINAL_CODES: &str = r#"
    CREATE TABLE codes (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        merchant_id uuid NOT NULL,
        code text NOT NULL,
        serial text, sku text, points integer, sku_name text, batch_code text, price numeric(10,2),
        window_start timestamptz, window_end timestamptz,
        activated boolean DEFAULT true, deactivated boolean DEFAULT false,
        claimed boolean DEFAULT false, claimed_customer_id uuid,
        source text, created_at timestamptz DEFAULT now(),
        CONSTRAINT codes_code_merchant_id_key UNIQUE (code, merchant_id)
    );
    CREATE INDEX idx_codes_merchant_code ON codes (merchant_id, code);
"#;

const FILL_ORIGINAL_CODES: &str = r#"
    INSERT INTO codes (merchant_id, code, serial, sku, points, sku_name, batch_code, price,
                       claimed, claimed_customer_id, source, created_at)
    SELECT CASE WHEN g % 3 = 0 THEN '7faab812-e179-48c2-9707-0d8a9b2f84ea'::uuid
                ELSE '11111111-2222-4333-8444-555555555555'::uuid END,
           'NBD-' || lpad(g::text, 8, '0'), 'S' || g, 'SKU' || (g % 7), g % 500,
           'Gift ' || (g % 7), 'B' || (g % 11), (g % 90) + 0.5,
           g % 10 = 0, CASE WHEN g % 10 = 0 THEN gen_random_uuid() END,
           'legacy', now() - make_interval(days => g % 300)
    FROM generate_series(1, 5000) AS g
"#;

/// Every column of every row, in a stable order, as one fingerprint.
const FINGERPRINT: &str = r#"
    SELECT count(*)::bigint,
           md5(string_agg(concat_ws('|', id, merchant_id, code, serial, sku, points, sku_name,
                                    batch_code, price, window_start, window_end, activated,
                                    deactivated, claimed, claimed_customer_id, source, created_at),
                          E'\n' ORDER BY id))
    FROM codes
"#;

#[tokio::test]
async fn migrations_adopt_an_original_codes_table_and_keep_every_row() {
    let db = TestDb::create().await;
    let before = {
        let pool = db.connect().await;
        sqlx::raw_sql(ORIGINAL_CODES).execute(&pool).await.unwrap();
        sqlx::raw_sql(FILL_ORIGINAL_CODES).execute(&pool).await.unwrap();
        let fingerprint: (i64, String) = sqlx::query_as(FINGERPRINT).fetch_one(&pool).await.unwrap();
        pool.close().await;
        fingerprint
    };
    assert_eq!(before.0, 5000);

    let pool = server::prepare_database(&db.url).await.expect("migrations adopt the table");

    let after: (i64, String) = sqlx::query_as(FINGERPRINT).fetch_one(&pool).await.unwrap();
    assert_eq!(after, before, "every row and every value is still there");
    let unstamped: i64 =
        sqlx::query_scalar("SELECT count(*) FROM codes WHERE import_job_id IS NULL").fetch_one(&pool).await.unwrap();
    assert_eq!(unstamped, 5000, "import_job_id was added, empty, to every row");
    assert!(index_exists(&pool, "idx_codes_import_job_id").await);
    assert!(index_exists(&pool, "idx_codes_merchant_code").await, "existing indexes are kept");
    assert!(constraint_exists(&pool, "codes_code_merchant_id_key").await);
    assert!(
        !constraint_exists(&pool, "codes_code_merchant_id_unique").await,
        "an equivalent unique constraint is not added twice"
    );
    // The adopted table accepts an import-stamped row and still refuses a duplicate.
    let job = uuid::Uuid::new_v4();
    sqlx::query("INSERT INTO codes (merchant_id, code, import_job_id) VALUES ('7faab812-e179-48c2-9707-0d8a9b2f84ea', 'NEW-1', $1)")
        .bind(job)
        .execute(&pool)
        .await
        .unwrap();
    let duplicate = sqlx::query(
        "INSERT INTO codes (merchant_id, code) VALUES ('7faab812-e179-48c2-9707-0d8a9b2f84ea', 'NBD-00000003')",
    )
    .execute(&pool)
    .await;
    assert!(duplicate.is_err(), "the unique (code, merchant_id) still holds");
    pool.close().await;
}

#[tokio::test]
async fn migrations_add_the_unique_constraint_to_an_original_table_that_lacks_it() {
    let db = TestDb::create().await;
    {
        let pool = db.connect().await;
        let without_unique =
            ORIGINAL_CODES.replace(",\n        CONSTRAINT codes_code_merchant_id_key UNIQUE (code, merchant_id)", "");
        sqlx::raw_sql(sqlx::AssertSqlSafe(without_unique)).execute(&pool).await.unwrap();
        sqlx::raw_sql(FILL_ORIGINAL_CODES).execute(&pool).await.unwrap();
        pool.close().await;
    }

    let pool = server::prepare_database(&db.url).await.expect("migrations adopt the table");

    assert!(constraint_exists(&pool, "codes_code_merchant_id_unique").await);
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM codes").fetch_one(&pool).await.unwrap();
    assert_eq!(rows, 5000);
    pool.close().await;
}
