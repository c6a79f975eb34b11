//! `server bench`: the project's benchmark. Generates a realistic batch at a given scale and
//! runs it through the code paths the app uses, printing one line per step with the floor
//! measured in the same run. Figures, not a test: nothing here asserts a speed.

use std::time::Instant;

use app::{
    auth::{ssr::Caller, CurrentUser, Role},
    csv::{FileReport, FileValidator},
    duplicates::DuplicateStats,
    reports::ReportKind,
    staging::{ssr as staging, ChunkBuilder, FileManifest},
};
use futures_util::StreamExt;
use sqlx::migrate::MigrateDatabase;
use sqlx::PgPool;
use uuid::Uuid;

mod generator;
mod original;

pub use generator::{Batch, Truth};
pub use original::ORIGINAL_SCHEMA;

const SLICE: usize = 4 * 1024 * 1024;
/// The generator's seed: every run stages the same batch.
const SEED: u64 = 0x5eed;

/// Which tables the app runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    /// The tables this app's migrations create on an empty database.
    App,
    /// The original system's tables, made before the migrations run, which adopt them.
    Original,
}

impl Schema {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "app" => Some(Self::App),
            "original" => Some(Self::Original),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Original => "original",
        }
    }
}

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub scale: f64,
    pub json: bool,
    pub schema: Schema,
}

/// One step's figures.
#[derive(Clone, Copy)]
struct Step {
    name: &'static str,
    rows: i64,
    seconds: f64,
    floor_seconds: Option<f64>,
    /// The original method's time for the same step on the same data, in the same run.
    original_seconds: Option<f64>,
    /// This process' peak resident memory during the step, and how far above the memory
    /// at its start that peak went (what the step itself needed).
    peak_rss_mb: f64,
    rss_growth_mb: f64,
}

/// The steps that make the user's journey from files to codes in production.
const JOURNEY: [&str; 4] = ["stage", "check duplicates", "pre-flight", "insert (with pre-flight)"];

/// Every count that differed from the generator's truth, by whom.
#[derive(Debug, Default)]
pub struct Mismatches(Vec<String>);

impl Mismatches {
    pub fn expect(&mut self, what: &str, got: i64, want: i64) {
        if got != want {
            self.0.push(format!("{what}: {got}, the generator made {want}"));
        }
    }

    /// The check's figures against the truth.
    pub fn expect_figures(&mut self, who: &str, figures: &DuplicateStats, truth: &Truth) {
        self.expect(&format!("{who}: staged rows"), figures.total_rows, truth.staged);
        self.expect(&format!("{who}: internal duplicates"), figures.internal_duplicates, truth.internal);
        self.expect(&format!("{who}: database duplicates"), figures.database_duplicates, truth.database);
        self.expect(&format!("{who}: both"), figures.both, truth.both);
        self.expect(&format!("{who}: clean"), figures.clean_count, truth.clean());
    }

    pub fn none(&self) -> bool {
        self.0.is_empty()
    }

    /// `Err` naming every mismatch, each also printed to stderr.
    pub fn verdict(&self) -> Result<(), String> {
        for mismatch in &self.0 {
            eprintln!("COUNT MISMATCH: {mismatch}");
        }
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(format!("the counts differ from the generator's: {}", self.0.join("; ")))
        }
    }
}

/// Peak resident memory of this process since the last [`reset_peak_rss`], in MiB.
pub fn peak_rss_mb() -> f64 {
    memory_status("VmHWM:")
}

/// Resident memory of this process now, in MiB.
fn rss_mb() -> f64 {
    memory_status("VmRSS:")
}

/// A `kB` line of `/proc/self/status` in MiB (0 where there is none).
fn memory_status(key: &str) -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|l| l.starts_with(key)).and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Starts a new peak: the kernel resets `VmHWM` to the current size (Linux 4.0+). Returns the
/// resident memory now, from which the step's growth is measured.
fn reset_peak_rss() -> f64 {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
    rss_mb()
}

/// Writes out every dirty buffer, so that the step timed next does not pay for the writes
/// the one before it (ours or the original method's) left behind.
async fn settle(pool: &PgPool) -> Result<(), String> {
    sqlx::query("CHECKPOINT").execute(pool).await.map(|_| ()).map_err(|e| e.to_string())
}

/// A step's start: the time and the memory then (with the peak reset).
fn start_step() -> (Instant, f64) {
    let base = reset_peak_rss();
    (Instant::now(), base)
}

/// Runs the benchmark against a fresh database next to `database_url`'s, then drops it.
pub async fn run(database_url: &str, options: &Options) -> Result<(), String> {
    let base = database_url.rsplit_once('/').map_or(database_url, |(base, _)| base);
    let bench_url = format!("{base}/code_import_bench_{}", std::process::id());
    create_database(&bench_url, options.schema, true).await?;
    let pool = crate::prepare_database(&bench_url).await.map_err(|e| e.to_string())?;
    let result = steps(&pool, options).await;
    pool.close().await;
    // BENCH_KEEP_DB=1 keeps the database for EXPLAIN (ANALYZE, BUFFERS) afterwards.
    if std::env::var_os("BENCH_KEEP_DB").is_some() {
        eprintln!("kept database {}", bench_url.rsplit('/').next().unwrap_or_default());
    } else {
        let _ = sqlx::Postgres::force_drop_database(&bench_url).await;
    }
    let (steps, mismatches) = result?;
    print(&steps, mismatches.none(), options);
    mismatches.verdict()
}

/// Creates the database at `url`: for [`Schema::Original`] the original system's tables first,
/// with the original method's own (`peer`) beside them, both made before the migrations, which
/// adopt the original's tables as on a user's database.
async fn create_database(url: &str, schema: Schema, peer: bool) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    sqlx::Postgres::create_database(url).await.map_err(|e| fail(&e))?;
    let setup = PgPool::connect(url).await.map_err(|e| fail(&e))?;
    if schema == Schema::Original {
        sqlx::raw_sql(ORIGINAL_SCHEMA).execute(&setup).await.map_err(|e| fail(&e))?;
    }
    if peer {
        sqlx::raw_sql(sqlx::AssertSqlSafe(original::schema_in_original()))
            .execute(&setup)
            .await
            .map_err(|e| fail(&e))?;
    }
    setup.close().await;
    Ok(())
}

/// `server bench-batch --scale S [--schema app|original] --dir DIR`: the benchmark's batch for
/// a journey through the page. Creates `database_url`'s database as [`run`] creates its own
/// (without the original method's tables), a merchant "Bench" whose production holds the
/// batch's existing codes, and writes the batch's files into `dir` as `NBD_NN.csv`; prints one
/// JSON line: the merchant, the files' paths and the generator's counts.
pub async fn write_batch(database_url: &str, options: &Options, dir: &std::path::Path) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    create_database(database_url, options.schema, false).await?;
    let pool = crate::prepare_database(database_url).await.map_err(|e| e.to_string())?;
    let merchant = app::admin::ssr::create_merchant(&pool, "Bench").await.map_err(|e| fail(&e))?.id;
    let generated = Batch::at(options.scale).generate(merchant, SEED);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths = Vec::new();
    for (i, file) in generated.files.iter().enumerate() {
        let path = dir.join(file_name(i));
        std::fs::write(&path, file).map_err(|e| format!("{}: {e}", path.display()))?;
        paths.push(path.display().to_string());
    }
    load_existing(&pool, merchant, &generated.existing, &["codes"]).await.map_err(|e| fail(&e))?;
    sqlx::query("VACUUM ANALYZE codes").execute(&pool).await.map_err(|e| fail(&e))?;
    pool.close().await;
    let truth = &generated.truth;
    let counts = serde_json::json!({
        "staged": truth.staged, "internal": truth.internal, "database": truth.database,
        "both": truth.both, "clean": truth.clean(), "existing": generated.existing.len(),
    });
    println!("{}", serde_json::json!({ "merchant": merchant, "files": paths, "truth": counts }));
    Ok(())
}

/// The name the benchmark gives the batch's file `index`.
fn file_name(index: usize) -> String {
    format!("NBD_{:02}.csv", index + 1)
}

/// Runs every step, ours and then the original method's on the same data; the figures, and
/// every count that differed from the generator's truth.
async fn steps(pool: &PgPool, options: &Options) -> Result<(Vec<Step>, Mismatches), String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let batch = Batch::at(options.scale);
    let merchant = app::admin::ssr::create_merchant(pool, "Bench").await.map_err(|e| fail(&e))?.id;
    let user =
        app::auth::ssr::create_user(pool, "bench@example.com", "bench password, not secret".into(), Role::Ops, &[])
            .await
            .map_err(|e| fail(&e))?;
    let caller =
        Caller(CurrentUser { id: user, email: "bench@example.com".into(), role: Role::Ops, merchants: vec![] });
    let peer = original::Original { pool, merchant };
    if !options.json {
        eprintln!(
            "generating {} files, {} rows against {} existing codes (scale {}, {} schema) …",
            batch.files,
            batch.rows,
            batch.existing,
            options.scale,
            options.schema.name()
        );
    }
    let generated = batch.generate(merchant, SEED);
    let (files, existing, truth) = (generated.files, generated.existing, generated.truth);
    let mut mismatches = Mismatches::default();

    // Validation as the browser does it (here natively), slice by slice.
    let mut steps = Vec::new();
    settle(pool).await?;

    let started = start_step();
    let reports = validate_natively(&files, merchant);
    let staged_rows: i64 = reports.iter().map(|r| r.rows_staged).sum();
    steps.push(Step::done("validate (native)", staged_rows, started, None));
    mismatches.expect("rows validation stages", staged_rows, truth.staged);

    // Staging through the server's chunk path, file by file, chunk by chunk.
    settle(pool).await?;
    let started = start_step();
    let done = stage_batch(pool, &caller, merchant, user, &files, &reports).await?;
    let mut stage = Step::done("stage", staged_rows, started, None);
    if done.rows_received() != staged_rows {
        return Err(format!("staged {} rows, validation counted {staged_rows}", done.rows_received()));
    }
    settle(pool).await?;

    let started = Instant::now();
    let peer_staged = peer.stage(&files).await.map_err(|e| fail(&e))?;
    stage.original_seconds = Some(started.elapsed().as_secs_f64());
    mismatches.expect("original method: rows staged", peer_staged, truth.staged);
    let stage_step = steps.len();
    steps.push(stage);
    drop(files);

    // Production as it stood before the batch: the merchant's existing codes, in both
    // `codes` tables (not timed). Loaded in key order, as a bulk load leaves an index.
    load_existing(pool, merchant, &existing, &["codes", "original.codes"]).await.map_err(|e| fail(&e))?;
    drop(existing);
    // Production is vacuumed and analysed, as a table that has stood a while is. Staging is
    // neither vacuumed nor read before the check (staging's floor reads it after): through the
    // page nothing touches it between the upload and the check (the check analyses it
    // itself), and the original's scripts never did; vacuumed here, it hid what the
    // page's check paid for a staging table without statistics (121 s through the page where
    // this said 29 s) and still hides what rows just written cost.
    for table in ["codes", "original.codes", "original.codes_import_jobs"] {
        sqlx::query(sqlx::AssertSqlSafe(format!("VACUUM ANALYZE {table}")))
            .execute(pool)
            .await
            .map_err(|e| fail(&e))?;
    }

    // The duplicate check, as the page starts it: in the background, polled until done.
    settle(pool).await?;

    let started = start_step();
    app::duplicates::ssr::start_check(pool, merchant, Some(user)).await.map_err(|e| fail(&e))?;
    let check = finished(pool, merchant, "check").await?;
    let mut step = Step::done("check duplicates", staged_rows, started, None);
    let figures: app::duplicates::CheckFigures = serde_json::from_value(check).map_err(|e| fail(&e))?;
    let overall = &figures.overall;
    mismatches.expect_figures("check", overall, &truth);
    // Staging's floor reads the staged rows back, which sets their hint bits and warms the
    // page cache: done before the check, it took 1.5-2.5 s off the check that the page's check,
    // started the moment the upload ends, pays.
    steps[stage_step].floor_seconds = Some(staging_floor(pool, merchant, staged_rows).await.map_err(|e| fail(&e))?);
    settle(pool).await?;

    let started = Instant::now();
    let peer_figures = peer.check().await.map_err(|e| fail(&e))?;
    step.original_seconds = Some(started.elapsed().as_secs_f64());
    mismatches.expect_figures("original method: check", &peer_figures, &truth);
    steps.push(step);
    if !options.json {
        eprintln!(
            "check: {} rows, {} internal ({:.1} %), {} database ({:.1} %), {} both, {} clean",
            overall.total_rows,
            overall.internal_duplicates,
            overall.internal_duplicates as f64 * 100.0 / overall.total_rows.max(1) as f64,
            overall.database_duplicates,
            overall.database_duplicates as f64 * 100.0 / overall.total_rows.max(1) as f64,
            overall.both,
            overall.clean_count
        );
    }

    // The pre-flight, as the page runs it before asking for YES.
    settle(pool).await?;

    let started = start_step();
    let preflight = app::jobs::preflight::run_preflight(pool, merchant, Some(user)).await.map_err(|e| fail(&e))?;
    let mut step = Step::done("pre-flight", staged_rows, started, None);
    mismatches.expect("pre-flight clean codes", preflight.clean_count, truth.clean());
    if !preflight.errors.is_empty() {
        return Err(format!("the pre-flight refused: {:?}", preflight.errors));
    }
    settle(pool).await?;

    let started = Instant::now();
    let (peer_clean, peer_invalid) = peer.preflight().await.map_err(|e| fail(&e))?;
    step.original_seconds = Some(started.elapsed().as_secs_f64());
    mismatches.expect("original method: pre-flight clean codes", peer_clean, truth.clean());
    mismatches.expect("original method: rows refused by the pre-flight", peer_invalid, 0);
    steps.push(step);

    // The reports, streamed as the browser downloads them.
    for (name, kind, rows) in [
        ("export duplicates", ReportKind::Duplicates, truth.duplicates()),
        ("export full report", ReportKind::Full, truth.staged),
    ] {
        settle(pool).await?;

        let started = start_step();
        let slot = app::reports::ssr::reserve_download(user).map_err(|e| fail(&e))?;
        let mut stream =
            std::pin::pin!(app::reports::ssr::export(pool, merchant, kind, slot).await.map_err(|e| fail(&e))?);
        let mut lines = 0_i64;
        while let Some(piece) = stream.next().await {
            lines += piece.map_err(|e| fail(&e))?.iter().filter(|b| **b == b'\n').count() as i64;
        }
        let mut step = Step::done(name, lines - 1, started, None);
        mismatches.expect(name, lines - 1, rows);
        settle(pool).await?;

        let started = Instant::now();
        let peer_rows = peer.export(kind == ReportKind::Duplicates).await.map_err(|e| fail(&e))?;
        step.original_seconds = Some(started.elapsed().as_secs_f64());
        mismatches.expect(&format!("original method: {name}"), peer_rows, rows);
        steps.push(step);
    }

    // The insert, as the page starts it after YES: its own pre-flight, then the transaction.
    settle(pool).await?;

    let started = start_step();
    let job = app::jobs::ssr::start_insert(pool, merchant, user, "YES").await.map_err(|e| fail(&e))?;
    let inserted = finished(pool, merchant, "insert").await?;
    let mut insert = Step::done("insert (with pre-flight)", truth.clean(), started, None);
    let seconds = |key: &str| inserted.get(key).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    let insert_only = seconds("insert_seconds");
    mismatches.expect(
        "codes inserted",
        inserted.get("codes_inserted").and_then(serde_json::Value::as_i64).unwrap_or(-1),
        truth.clean(),
    );

    // The floor of the insert: a plain INSERT … SELECT of the same rows into an empty copy of
    // codes with its indexes.
    sqlx::query("CREATE TABLE bench_codes_floor (LIKE codes INCLUDING ALL)")
        .execute(pool)
        .await
        .map_err(|e| fail(&e))?;
    settle(pool).await?;

    let started = Instant::now();
    sqlx::query(
        "INSERT INTO bench_codes_floor (merchant_id, code, serial, sku, points, sku_name, batch_code, price, source, import_job_id)
         SELECT merchant_id, code, serial, sku, points, sku_name, batch_code, price, 'code-import', $2
         FROM codes_check_temp WHERE merchant_id = $1 AND NOT internal_dup AND NOT existing_dup",
    )
    .bind(merchant)
    .bind(job)
    .execute(pool)
    .await
    .map_err(|e| fail(&e))?;
    insert.floor_seconds = Some(started.elapsed().as_secs_f64());
    sqlx::query("DROP TABLE bench_codes_floor").execute(pool).await.map_err(|e| fail(&e))?;
    settle(pool).await?;

    let started = Instant::now();
    let (peer_job, peer_inserted) = peer.insert().await?;
    insert.original_seconds = Some(started.elapsed().as_secs_f64());
    mismatches.expect("original method: codes inserted", peer_inserted, truth.clean());
    let of_which =
        Step { name: "  of which INSERT", rows: truth.clean(), seconds: insert_only, original_seconds: None, ..insert };
    steps.push(insert);
    steps.push(of_which);

    settle(pool).await?;

    let started = start_step();
    let verified = app::jobs::ssr::verify_job(pool, job).await.map_err(|e| fail(&e))?;
    let mut step = Step::done("verify", verified.codes_found, started, None);
    mismatches.expect("codes verified", verified.codes_found, truth.clean());
    settle(pool).await?;

    let started = Instant::now();
    let peer_found = peer.verify(peer_job).await.map_err(|e| fail(&e))?;
    step.original_seconds = Some(started.elapsed().as_secs_f64());
    mismatches.expect("original method: codes verified", peer_found, truth.clean());
    steps.push(step);

    settle(pool).await?;

    let started = start_step();
    app::jobs::ssr::rollback_job(pool, job, user, "DELETE").await.map_err(|e| fail(&e))?;
    let mut step = Step::done("rollback", truth.clean(), started, None);
    settle(pool).await?;

    let started = Instant::now();
    let peer_deleted = peer.rollback(peer_job).await.map_err(|e| fail(&e))?;
    step.original_seconds = Some(started.elapsed().as_secs_f64());
    mismatches.expect("original method: codes rolled back", peer_deleted, truth.clean());
    steps.push(step);
    for (table, who) in
        [("codes", "codes after the rollback"), ("original.codes", "original method: codes after the rollback")]
    {
        let left: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!("SELECT count(*) FROM {table}")))
            .fetch_one(pool)
            .await
            .map_err(|e| fail(&e))?;
        mismatches.expect(who, left, batch.existing as i64);
    }

    settle(pool).await?;

    let started = start_step();
    let cleared = app::staging::ssr::clear_staging(pool, merchant, user).await.map_err(|e| fail(&e))?;
    let mut step = Step::done("clear staging", cleared, started, None);
    mismatches.expect("rows cleared", cleared, truth.staged);
    settle(pool).await?;

    let started = Instant::now();
    let peer_cleared = peer.clear().await.map_err(|e| fail(&e))?;
    step.original_seconds = Some(started.elapsed().as_secs_f64());
    mismatches.expect("original method: rows cleared", peer_cleared, truth.staged);
    steps.push(step);

    Ok((steps, mismatches))
}

/// The merchant's existing codes into each of `tables` (`codes` shaped), in key order.
async fn load_existing(
    pool: &PgPool,
    merchant: Uuid,
    existing: &[generator::Key],
    tables: &[&str],
) -> Result<(), sqlx::Error> {
    sqlx::raw_sql("CREATE UNLOGGED TABLE bench_existing (code text)").execute(pool).await?;
    let mut conn = pool.acquire().await?;
    let mut copy = conn.copy_in_raw("COPY bench_existing FROM STDIN").await?;
    for part in existing.chunks(100_000) {
        let mut text = String::with_capacity(part.len() * 17);
        for key in part {
            text.push_str(&key.text());
            text.push('\n');
        }
        copy.send(text.into_bytes()).await?;
    }
    copy.finish().await?;
    drop(conn);
    for table in tables {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO {table} (merchant_id, code, source) SELECT $1, code, 'bench' FROM bench_existing ORDER BY code"
        )))
        .bind(merchant)
        .execute(pool)
        .await?;
    }
    sqlx::raw_sql("DROP TABLE bench_existing").execute(pool).await?;
    Ok(())
}

impl Step {
    fn done(name: &'static str, rows: i64, (started, base_mb): (Instant, f64), floor_seconds: Option<f64>) -> Self {
        let peak = peak_rss_mb();
        Step {
            name,
            rows,
            seconds: started.elapsed().as_secs_f64(),
            floor_seconds,
            original_seconds: None,
            peak_rss_mb: peak,
            rss_growth_mb: (peak - base_mb).max(0.0),
        }
    }
}

/// Waits for the merchant's latest operation of `kind` and returns its result.
async fn finished(pool: &PgPool, merchant: Uuid, kind: &str) -> Result<serde_json::Value, String> {
    loop {
        let op = app::operations::ssr::latest(pool, merchant, kind).await.map_err(|e| e.to_string())?;
        match op {
            Some(op) if op.status == "completed" => break,
            Some(op) if op.status == "failed" => return Err(format!("the {kind} failed: {:?}", op.error_message)),
            _ => tokio::time::sleep(std::time::Duration::from_millis(20)).await,
        }
    }
    let (_, result) = app::operations::ssr::latest_result(pool, merchant, kind)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the {kind} left no result"))?;
    Ok(result)
}

/// Every file's report, validated as the browser does it (here natively), slice by slice.
fn validate_natively(files: &[Vec<u8>], merchant: Uuid) -> Vec<FileReport> {
    files
        .iter()
        .map(|file| {
            let mut validator = FileValidator::new(merchant);
            for slice in file.chunks(SLICE) {
                validator.feed(slice, &mut |_, _| {});
            }
            validator.finish(&mut |_, _| {}).0
        })
        .collect()
}

/// Stages `files` (validated as `reports` say) for `merchant` through the server's chunk path,
/// file by file and chunk by chunk — two files at a time, as the page sends them: one file's
/// rows are parsed while the other's chunk is being stored — and finishes the upload.
async fn stage_batch(
    pool: &PgPool,
    caller: &Caller,
    merchant: Uuid,
    user: Uuid,
    files: &[Vec<u8>],
    reports: &[FileReport],
) -> Result<app::staging::UploadState, String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let manifests: Vec<FileManifest> = reports
        .iter()
        .enumerate()
        .map(|(i, report)| FileManifest {
            name: file_name(i),
            size: files[i].len() as i64,
            checksum: format!("bench-{i}"),
            rows: report.rows_staged,
            report: report.clone(),
            restage: false,
        })
        .collect();
    let upload = staging::start_upload(pool, merchant, user, &manifests).await.map_err(|e| fail(&e))?;
    let next_file = std::sync::atomic::AtomicUsize::new(0);
    // BENCH_CHUNK_ROWS measures other chunk sizes than the app's.
    let chunk_rows =
        std::env::var("BENCH_CHUNK_ROWS").ok().and_then(|v| v.parse().ok()).unwrap_or(app::staging::CHUNK_ROWS);
    let worker = || async {
        loop {
            let index = next_file.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let Some(file) = files.get(index) else {
                return Ok::<(), String>(());
            };
            let mut validator = FileValidator::new(merchant);
            let mut chunks = ChunkBuilder::with_rows(chunk_rows);
            let mut seq = 0;
            for slice in file.chunks(SLICE) {
                validator.feed(slice, &mut |line, row| chunks.push(line, row));
                for (chunk, _) in chunks.ready.drain(..) {
                    staging::store_chunk(pool, caller, upload.id, index as i32, seq, &chunk)
                        .await
                        .map_err(|e| fail(&e))?;
                    seq += 1;
                }
            }
            validator.finish(&mut |line, row| chunks.push(line, row));
            chunks.cut();
            for (chunk, _) in chunks.ready.drain(..) {
                staging::store_chunk(pool, caller, upload.id, index as i32, seq, &chunk).await.map_err(|e| fail(&e))?;
                seq += 1;
            }
        }
    };
    let (first, second) = tokio::join!(worker(), worker());
    first?;
    second?;
    staging::finish_upload(pool, upload.id).await.map_err(|e| fail(&e))
}

/// `server bench-stage FILE…`: the server's own staging rate for the files the browser's
/// benchmark uploads, in the same run: the files validated (not timed), then staged through the
/// chunk path as [`steps`] stages them, for a merchant of their own in `database_url`'s
/// database; the staged rows are cleared after. Prints one line (JSON with `json`).
pub async fn stage_files(database_url: &str, paths: &[std::path::PathBuf], json: bool) -> Result<(), String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let files = paths
        .iter()
        .map(|path| std::fs::read(path).map_err(|e| format!("{}: {e}", path.display())))
        .collect::<Result<Vec<_>, _>>()?;
    let pool = crate::prepare_database(database_url).await.map_err(|e| e.to_string())?;
    let name = format!("Bench staging {}", std::process::id());
    let merchant = app::admin::ssr::create_merchant(&pool, &name).await.map_err(|e| fail(&e))?.id;
    let email = format!("bench-stage-{}@example.com", std::process::id());
    let user = app::auth::ssr::create_user(&pool, &email, "bench password, not secret".into(), Role::Ops, &[])
        .await
        .map_err(|e| fail(&e))?;
    let caller = Caller(CurrentUser { id: user, email, role: Role::Ops, merchants: vec![] });
    let reports = validate_natively(&files, merchant);
    let rows: i64 = reports.iter().map(|r| r.rows_staged).sum();
    settle(&pool).await?;
    let started = Instant::now();
    let done = stage_batch(&pool, &caller, merchant, user, &files, &reports).await?;
    let seconds = started.elapsed().as_secs_f64();
    let cleared = staging::clear_staging(&pool, merchant, user).await.map_err(|e| fail(&e))?;
    if done.rows_received() != rows || cleared != rows {
        return Err(format!("staged {} rows and cleared {cleared}, validation counted {rows}", done.rows_received()));
    }
    if json {
        println!("{}", serde_json::json!({ "step": "server staging", "rows": rows, "seconds": seconds }));
    } else {
        println!("server staging {rows} rows {seconds:.2} s {:.0} rows/s", rows as f64 / seconds);
    }
    Ok(())
}

/// The floor of staging: the merchant's `staged_rows` rows, read back from staging as `COPY`
/// text (not timed; their count checked), in one bare `COPY` into an unlogged table without
/// indexes; its seconds.
async fn staging_floor(pool: &PgPool, merchant: Uuid, staged_rows: i64) -> Result<f64, Box<dyn std::error::Error>> {
    let copy_text = floor_copy_text(pool, merchant).await?;
    // COPY's text format writes a row a line (a newline inside a field is escaped): the rows in
    // the database, counted without a second read of staging.
    let staged_in_db = copy_text.iter().filter(|b| **b == b'\n').count() as i64;
    if staged_in_db != staged_rows {
        return Err(format!("staged {staged_in_db} rows, validation counted {staged_rows}").into());
    }
    sqlx::raw_sql(
        "CREATE UNLOGGED TABLE bench_floor (merchant_id uuid, row_number bigint, code text, serial text,
             sku text, points numeric, sku_name text, batch_code text, price numeric, upload_id uuid,
             source_file text, source_line bigint)",
    )
    .execute(pool)
    .await?;
    settle(pool).await?;

    let started = Instant::now();
    let mut conn = pool.acquire().await?;
    let mut copy = conn.copy_in_raw("COPY bench_floor FROM STDIN").await?;
    for part in copy_text.chunks(8 * 1024 * 1024) {
        copy.send(part).await?;
    }
    copy.finish().await?;
    let seconds = started.elapsed().as_secs_f64();
    drop(conn);
    sqlx::query("DROP TABLE bench_floor").execute(pool).await?;
    Ok(seconds)
}

/// The staged rows as `COPY` text, read back from the table (not timed).
async fn floor_copy_text(pool: &PgPool, merchant: Uuid) -> Result<Vec<u8>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let mut out = Vec::new();
    // A uuid formatted by Rust: nothing to quote.
    let statement = format!(
        "COPY (SELECT merchant_id, row_number, code, serial, sku, points, sku_name, batch_code, price,
                      upload_id, source_file, source_line
               FROM codes_check_temp WHERE merchant_id = '{merchant}') TO STDOUT"
    );
    let mut stream = conn.copy_out_raw(&statement).await?;
    use futures_util::StreamExt;
    while let Some(bytes) = stream.next().await {
        out.extend_from_slice(&bytes?);
    }
    Ok(out)
}

/// The journey's seconds, ours and the original method's.
fn journey(steps: &[Step]) -> (f64, f64) {
    let of_journey = || steps.iter().filter(|s| JOURNEY.contains(&s.name));
    (of_journey().map(|s| s.seconds).sum(), of_journey().map(|s| s.original_seconds.unwrap_or(f64::NAN)).sum())
}

fn print(steps: &[Step], counts_match: bool, options: &Options) {
    let (journey, original_journey) = journey(steps);
    let seconds = |value: Option<f64>| value.map_or("null".to_owned(), |f| format!("{f:.3}"));
    if options.json {
        for step in steps {
            println!(
                r#"{{"step": "{}", "rows": {}, "seconds": {:.3}, "floor_seconds": {}, "original_seconds": {}, "peak_rss_mb": {:.0}, "rss_growth_mb": {:.0}}}"#,
                step.name.trim(),
                step.rows,
                step.seconds,
                seconds(step.floor_seconds),
                seconds(step.original_seconds),
                step.peak_rss_mb,
                step.rss_growth_mb
            );
        }
        println!(r#"{{"step": "journey", "seconds": {journey:.3}, "original_seconds": {original_journey:.3}}}"#);
        println!(r#"{{"counts_match": {counts_match}}}"#);
        return;
    }
    println!(
        "schema: {}; original: the original method on tables of its shape, same data, same run",
        options.schema.name()
    );
    println!(
        "{:<26} {:>11} {:>9} {:>11} {:>9} {:>7} {:>10} {:>7} {:>9} {:>7}",
        "step", "rows", "seconds", "rows/s", "floor s", "ratio", "original s", "ratio", "peak MiB", "+MiB"
    );
    let ratio = |value: Option<f64>, seconds: f64| match value {
        Some(f) => (format!("{f:.2}"), format!("{:.3}", seconds / f)),
        None => ("-".into(), "-".into()),
    };
    for step in steps {
        let rate = step.rows as f64 / step.seconds.max(1e-9);
        let (floor, floor_ratio) = ratio(step.floor_seconds, step.seconds);
        let (original, original_ratio) = ratio(step.original_seconds, step.seconds);
        println!(
            "{:<26} {:>11} {:>9.2} {:>11.0} {:>9} {:>7} {:>10} {:>7} {:>9.0} {:>7.0}",
            step.name,
            step.rows,
            step.seconds,
            rate,
            floor,
            floor_ratio,
            original,
            original_ratio,
            step.peak_rss_mb,
            step.rss_growth_mb
        );
    }
    println!(
        "journey (stage, check, pre-flight, insert): {journey:.1} s; the original method: {original_journey:.1} s \
         (ratio {:.3})",
        journey / original_journey
    );
    println!("ratio: our seconds over the floor's, or over the original method's");
    println!("peak MiB: this process' peak during the step; +MiB: how far above its memory at the step's start");
    println!("counts match the generator: {}", if counts_match { "yes" } else { "NO" });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_count_that_differs_from_the_truth_fails_the_run_and_says_which() {
        let truth = Truth { staged: 100, internal: 2, database: 28, both: 1 };
        let right = DuplicateStats {
            total_rows: 100,
            internal_duplicates: 2,
            database_duplicates: 28,
            both: 1,
            clean_count: truth.clean(),
        };
        let mut mismatches = Mismatches::default();
        mismatches.expect_figures("check", &right, &truth);
        mismatches.expect("codes inserted", truth.clean(), 71);
        assert!(mismatches.verdict().is_ok());

        let wrong = DuplicateStats { database_duplicates: 27, clean_count: truth.clean() + 1, ..right };
        mismatches.expect_figures("original method: check", &wrong, &truth);
        let error = mismatches.verdict().unwrap_err();
        assert!(error.contains("original method: check: database duplicates: 27, the generator made 28"), "{error}");
        assert!(error.contains("original method: check: clean: 72, the generator made 71"), "{error}");
    }
}
