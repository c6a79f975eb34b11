//! `server bench`: the project's benchmark. Generates a realistic batch at a given scale and
//! runs it through the code paths the app uses, printing one line per step with the floor
//! measured in the same run. Figures, not a test: nothing here asserts a speed.

use std::time::Instant;

use app::{
    auth::{ssr::Caller, CurrentUser, Role},
    csv::{FileReport, FileValidator},
    reports::ReportKind,
    staging::{ssr as staging, ChunkBuilder, FileManifest},
};
use futures_util::StreamExt;
use sqlx::PgPool;
use uuid::Uuid;

/// The real batch: 63 files, 15,520,410 staged rows, against 5,356,971 existing codes.
const FULL_FILES: f64 = 63.0;
const FULL_ROWS: f64 = 15_520_410.0;
const FULL_EXISTING: f64 = 5_356_971.0;
const SLICE: usize = 4 * 1024 * 1024;

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub scale: f64,
    pub json: bool,
}

/// One step's figures.
#[derive(Clone, Copy)]
struct Step {
    name: &'static str,
    rows: i64,
    seconds: f64,
    floor_seconds: Option<f64>,
    /// This process' peak resident memory during the step, and how far above the memory
    /// at its start that peak went (what the step itself needed).
    peak_rss_mb: f64,
    rss_growth_mb: f64,
}

/// What the generator put in the batch, to check every step's counts against.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Truth {
    pub staged: i64,
    pub internal: i64,
    pub database: i64,
    pub both: i64,
}

impl Truth {
    pub fn clean(&self) -> i64 {
        self.staged - self.internal - self.database + self.both
    }

    pub fn duplicates(&self) -> i64 {
        self.internal + self.database - self.both
    }
}

/// A deterministic generator (SplitMix64), so every run stages the same batch.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// What the generator has drawn so far, across files.
#[derive(Default)]
struct Drawn {
    /// New codes are numbered after the existing ones.
    next_new: u64,
    /// How many existing codes were drawn.
    next_existing: u64,
    /// Codes drawn so far (the first million), for internal repeats.
    earlier: Vec<u64>,
    /// Codes staged so far, and what that makes of the batch.
    staged: std::collections::HashSet<u64>,
    truth: Truth,
}

/// A prime step through the existing codes; coprime with their count at every scale used.
const EXISTING_STRIDE: u64 = 2_654_435_761;

/// The batch's shape at a scale: how many files, rows and existing codes.
pub struct Batch {
    pub files: usize,
    pub rows: u64,
    pub existing: u64,
}

impl Batch {
    pub fn at(scale: f64) -> Self {
        Self {
            files: ((FULL_FILES * scale).round() as usize).max(1),
            rows: (FULL_ROWS * scale).round() as u64,
            existing: (FULL_EXISTING * scale).round() as u64,
        }
    }

    /// The code with number `n`: existing production codes are numbers below `existing`.
    pub fn code(n: u64) -> String {
        format!("NBD-{n:010}")
    }

    /// File `index` as bytes: one of four column layouts, ~28 % codes that exist in
    /// production, ~2 % repeats of earlier codes of the batch, and a few blank lines and blank
    /// codes. `drawn` carries the codes drawn across files.
    fn file(&self, index: usize, merchant: Uuid, rng: &mut Rng, drawn: &mut Drawn) -> Vec<u8> {
        let Drawn { next_new, next_existing, earlier, staged, truth } = drawn;
        let rows = self.rows / self.files as u64 + u64::from((index as u64) < self.rows % self.files as u64);
        let mut out = Vec::with_capacity(rows as usize * 70);
        let layout = index % 4;
        out.extend_from_slice(match layout {
            0 => b"code,serial,sku,points,sku_name,batch_code,price\n".as_slice(),
            1 => b"merchant_id,code,sku,points,batch_id\n".as_slice(),
            2 => b"\xef\xbb\xbfCode;SKU;Points;Batch_Code\r\n".as_slice(),
            _ => b"code\tserial\tprice\n".as_slice(),
        });
        let mut written = 0;
        while written < rows {
            if rng.chance(0.003) {
                out.extend_from_slice(if layout == 2 { b"\r\n" } else { b"\n" });
                continue;
            }
            written += 1;
            let number = if !earlier.is_empty() && rng.chance(0.02) {
                earlier[(rng.next() % earlier.len() as u64) as usize]
            } else if self.existing > 0 && rng.chance(0.28) {
                // Each existing code at most once (a stride coprime with their count walks them
                // all), so repeats within the batch come from the 2 % above alone.
                *next_existing += 1;
                (*next_existing * EXISTING_STRIDE) % self.existing
            } else {
                *next_new += 1;
                self.existing + *next_new
            };
            if earlier.len() < 1_000_000 {
                earlier.push(number);
            }
            let code = if rng.chance(0.002) { String::new() } else { Self::code(number) };
            if !code.is_empty() {
                let internal = !staged.insert(number);
                let database = number < self.existing;
                truth.staged += 1;
                truth.internal += i64::from(internal);
                truth.database += i64::from(database);
                truth.both += i64::from(internal && database);
            }
            let line = match layout {
                0 => format!(
                    "{code},S{number},SKU-{},{},Gift card {},B{},{}.{:02}\n",
                    number % 50,
                    number % 500,
                    number % 50,
                    index,
                    number % 90,
                    number % 100
                ),
                1 => format!("{merchant},{code},SKU-{},{},B{}\n", number % 50, number % 500, index),
                2 => format!("{code};SKU-{};{};B{}\r\n", number % 50, number % 500, index),
                _ => format!("{code}\tS{number}\t{}.50\n", number % 90),
            };
            out.extend_from_slice(line.as_bytes());
        }
        out
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

/// A step's start: the time and the memory then (with the peak reset).
fn start_step() -> (Instant, f64) {
    let base = reset_peak_rss();
    (Instant::now(), base)
}

/// Runs the benchmark against a fresh database next to `database_url`'s, then drops it.
pub async fn run(database_url: &str, options: &Options) -> Result<(), String> {
    let base = database_url.rsplit_once('/').map_or(database_url, |(base, _)| base);
    let bench_url = format!("{base}/code_import_bench_{}", std::process::id());
    let pool = crate::prepare_database(&bench_url).await.map_err(|e| e.to_string())?;
    let result = steps(&pool, options).await;
    pool.close().await;
    // BENCH_KEEP_DB=1 keeps the database for EXPLAIN (ANALYZE, BUFFERS) afterwards.
    if std::env::var_os("BENCH_KEEP_DB").is_some() {
        eprintln!("kept database {}", bench_url.rsplit('/').next().unwrap_or_default());
    } else {
        use sqlx::migrate::MigrateDatabase;
        let _ = sqlx::Postgres::force_drop_database(&bench_url).await;
    }
    let (steps, counts_match) = result?;
    print(&steps, counts_match, options);
    if counts_match {
        Ok(())
    } else {
        Err("the counts differ from the generator's (see above)".to_owned())
    }
}

/// Runs every step; the figures, and whether every count matched the generator's truth.
async fn steps(pool: &PgPool, options: &Options) -> Result<(Vec<Step>, bool), String> {
    let fail = |e: &dyn std::fmt::Display| e.to_string();
    let batch = Batch::at(options.scale);
    let merchant = app::admin::ssr::create_merchant(pool, "Bench").await.map_err(|e| fail(&e))?.id;
    let user =
        app::auth::ssr::create_user(pool, "bench@example.com", "bench password, not secret".into(), Role::Ops, &[])
            .await
            .map_err(|e| fail(&e))?;
    let caller =
        Caller(CurrentUser { id: user, email: "bench@example.com".into(), role: Role::Ops, merchants: vec![] });
    if !options.json {
        eprintln!("generating {} files, {} rows (scale {}) …", batch.files, batch.rows, options.scale);
    }
    let mut rng = Rng(0x5eed);
    let mut drawn = Drawn::default();
    let files: Vec<Vec<u8>> = (0..batch.files).map(|i| batch.file(i, merchant, &mut rng, &mut drawn)).collect();

    // Validation as the browser does it (here natively), slice by slice.
    let truth = drawn.truth.clone();
    drop(drawn);
    let mut steps = Vec::new();
    let started = start_step();
    let mut reports: Vec<FileReport> = Vec::new();
    for file in &files {
        let mut validator = FileValidator::new(merchant);
        for slice in file.chunks(SLICE) {
            validator.feed(slice, &mut |_, _| {});
        }
        reports.push(validator.finish(&mut |_, _| {}).0);
    }
    let staged_rows: i64 = reports.iter().map(|r| r.rows_staged).sum();
    steps.push(Step::done("validate (native)", staged_rows, started, None));

    // Staging through the server's chunk path, file by file, chunk by chunk.
    let manifests: Vec<FileManifest> = reports
        .iter()
        .enumerate()
        .map(|(i, report)| FileManifest {
            name: format!("NBD_{:02}.csv", i + 1),
            size: files[i].len() as i64,
            checksum: format!("bench-{i}"),
            rows: report.rows_staged,
            report: report.clone(),
        })
        .collect();
    let started = start_step();
    let upload = staging::start_upload(pool, merchant, user, &manifests).await.map_err(|e| fail(&e))?;
    // Two files at a time, as the page sends them: one file's rows are parsed while the
    // other's chunk is being stored.
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
                    staging::store_chunk(pool, &caller, upload.id, index as i32, seq, &chunk)
                        .await
                        .map_err(|e| fail(&e))?;
                    seq += 1;
                }
            }
            validator.finish(&mut |line, row| chunks.push(line, row));
            chunks.cut();
            for (chunk, _) in chunks.ready.drain(..) {
                staging::store_chunk(pool, &caller, upload.id, index as i32, seq, &chunk)
                    .await
                    .map_err(|e| fail(&e))?;
                seq += 1;
            }
        }
    };
    let (first, second) = tokio::join!(worker(), worker());
    first?;
    second?;
    let done = staging::finish_upload(pool, upload.id).await.map_err(|e| fail(&e))?;
    let mut stage = Step::done("stage", staged_rows, started, None);
    drop(files);
    let staged_in_db: i64 = sqlx::query_scalar("SELECT count(*) FROM codes_check_temp WHERE merchant_id = $1")
        .bind(merchant)
        .fetch_one(pool)
        .await
        .map_err(|e| fail(&e))?;
    if staged_in_db != staged_rows || done.rows_received() != staged_rows {
        return Err(format!("staged {staged_in_db} rows, validation counted {staged_rows}"));
    }

    // The floor of staging: the same rows in one bare COPY into an unlogged table without
    // indexes.
    let copy_text = floor_copy_text(pool, merchant).await.map_err(|e| fail(&e))?;
    sqlx::raw_sql(
        "CREATE UNLOGGED TABLE bench_floor (merchant_id uuid, row_number bigint, code text, serial text,
             sku text, points numeric, sku_name text, batch_code text, price numeric, upload_id uuid,
             source_file text, source_line bigint)",
    )
    .execute(pool)
    .await
    .map_err(|e| fail(&e))?;
    let started = Instant::now();
    let mut conn = pool.acquire().await.map_err(|e| fail(&e))?;
    let mut copy = conn.copy_in_raw("COPY bench_floor FROM STDIN").await.map_err(|e| fail(&e))?;
    for part in copy_text.chunks(8 * 1024 * 1024) {
        copy.send(part).await.map_err(|e| fail(&e))?;
    }
    copy.finish().await.map_err(|e| fail(&e))?;
    stage.floor_seconds = Some(started.elapsed().as_secs_f64());
    drop(conn);
    drop(copy_text);
    sqlx::query("DROP TABLE bench_floor").execute(pool).await.map_err(|e| fail(&e))?;
    steps.push(stage);

    // Production as it stood before the batch: the merchant's existing codes (not timed).
    sqlx::query(
        "INSERT INTO codes (merchant_id, code, source)
         SELECT $1, 'NBD-' || lpad(n::text, 10, '0'), 'bench' FROM generate_series(0, $2 - 1) AS n",
    )
    .bind(merchant)
    .bind(batch.existing as i64)
    .execute(pool)
    .await
    .map_err(|e| fail(&e))?;
    for table in ["VACUUM ANALYZE codes", "VACUUM ANALYZE codes_check_temp"] {
        sqlx::query(table).execute(pool).await.map_err(|e| fail(&e))?;
    }

    let mut mismatches = Vec::new();
    let mut expect = |what: &str, got: i64, want: i64| {
        if got != want {
            mismatches.push(format!("{what}: {got}, the generator made {want}"));
        }
    };

    // The duplicate check, as the page starts it: in the background, polled until done.
    let started = start_step();
    app::duplicates::ssr::start_check(pool, merchant, Some(user)).await.map_err(|e| fail(&e))?;
    let check = finished(pool, merchant, "check").await?;
    steps.push(Step::done("check duplicates", staged_rows, started, None));
    let figures: app::duplicates::CheckFigures = serde_json::from_value(check).map_err(|e| fail(&e))?;
    let overall = &figures.overall;
    expect("staged rows", overall.total_rows, truth.staged);
    expect("internal duplicates", overall.internal_duplicates, truth.internal);
    expect("database duplicates", overall.database_duplicates, truth.database);
    expect("both", overall.both, truth.both);
    expect("clean", overall.clean_count, truth.clean());
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
    let started = start_step();
    let preflight = app::duplicates::ssr::run_preflight(pool, merchant, Some(user)).await.map_err(|e| fail(&e))?;
    steps.push(Step::done("pre-flight", staged_rows, started, None));
    expect("pre-flight clean codes", preflight.clean_count, truth.clean());
    if !preflight.errors.is_empty() {
        return Err(format!("the pre-flight refused: {:?}", preflight.errors));
    }

    // The reports, streamed as the browser downloads them.
    for (name, kind, rows) in [
        ("export duplicates", ReportKind::Duplicates, truth.duplicates()),
        ("export full report", ReportKind::Full, truth.staged),
    ] {
        let started = start_step();
        let mut stream = std::pin::pin!(app::reports::ssr::export(pool, merchant, kind).await.map_err(|e| fail(&e))?);
        let mut lines = 0_i64;
        while let Some(piece) = stream.next().await {
            lines += piece.map_err(|e| fail(&e))?.iter().filter(|b| **b == b'\n').count() as i64;
        }
        steps.push(Step::done(name, lines - 1, started, None));
        expect(name, lines - 1, rows);
    }

    // The insert, as the page starts it after YES: its own pre-flight, then the transaction.
    let started = start_step();
    let job = app::jobs::ssr::start_insert(pool, merchant, user, "YES").await.map_err(|e| fail(&e))?;
    let inserted = finished(pool, merchant, "insert").await?;
    let mut insert = Step::done("insert (with pre-flight)", truth.clean(), started, None);
    let seconds = |key: &str| inserted.get(key).and_then(serde_json::Value::as_f64).unwrap_or(f64::NAN);
    let insert_only = seconds("insert_seconds");
    expect(
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
    let of_which = Step { name: "  of which INSERT", rows: truth.clean(), seconds: insert_only, ..insert };
    steps.push(insert);
    steps.push(of_which);

    let started = start_step();
    let verified = app::jobs::ssr::verify_job(pool, job).await.map_err(|e| fail(&e))?;
    steps.push(Step::done("verify", verified.codes_found, started, None));
    expect("codes verified", verified.codes_found, truth.clean());

    let started = start_step();
    app::jobs::ssr::rollback_job(pool, job, user, "DELETE").await.map_err(|e| fail(&e))?;
    steps.push(Step::done("rollback", truth.clean(), started, None));
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM codes").fetch_one(pool).await.map_err(|e| fail(&e))?;
    expect("codes after the rollback", left, batch.existing as i64);

    let started = start_step();
    let cleared = app::jobs::ssr::clear_staging(pool, merchant, user).await.map_err(|e| fail(&e))?;
    steps.push(Step::done("clear staging", cleared, started, None));
    expect("rows cleared", cleared, truth.staged);

    for mismatch in &mismatches {
        eprintln!("COUNT MISMATCH: {mismatch}");
    }
    Ok((steps, mismatches.is_empty()))
}

impl Step {
    fn done(name: &'static str, rows: i64, (started, base_mb): (Instant, f64), floor_seconds: Option<f64>) -> Self {
        let peak = peak_rss_mb();
        Step {
            name,
            rows,
            seconds: started.elapsed().as_secs_f64(),
            floor_seconds,
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

fn print(steps: &[Step], counts_match: bool, options: &Options) {
    if options.json {
        for step in steps {
            let floor = step.floor_seconds.map_or("null".to_owned(), |f| format!("{f:.3}"));
            println!(
                r#"{{"step": "{}", "rows": {}, "seconds": {:.3}, "floor_seconds": {floor}, "peak_rss_mb": {:.0}, "rss_growth_mb": {:.0}}}"#,
                step.name.trim(),
                step.rows,
                step.seconds,
                step.peak_rss_mb,
                step.rss_growth_mb
            );
        }
        println!(r#"{{"counts_match": {counts_match}}}"#);
        return;
    }
    println!(
        "{:<26} {:>11} {:>9} {:>11} {:>9} {:>7} {:>9} {:>7}",
        "step", "rows", "seconds", "rows/s", "floor s", "ratio", "peak MiB", "+MiB"
    );
    for step in steps {
        let rate = step.rows as f64 / step.seconds.max(1e-9);
        let (floor, ratio) = match step.floor_seconds {
            Some(f) => (format!("{f:.2}"), format!("{:.2}", step.seconds / f)),
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<26} {:>11} {:>9.2} {:>11.0} {:>9} {:>7} {:>9.0} {:>7.0}",
            step.name, step.rows, step.seconds, rate, floor, ratio, step.peak_rss_mb, step.rss_growth_mb
        );
    }
    let journey: f64 = steps
        .iter()
        .filter(|s| ["stage", "check duplicates", "pre-flight", "insert (with pre-flight)"].contains(&s.name))
        .map(|s| s.seconds)
        .sum();
    println!("journey (stage, check, pre-flight, insert): {journey:.1} s");
    println!("peak MiB: this process' peak during the step; +MiB: how far above its memory at the step's start");
    println!("counts match the generator: {}", if counts_match { "yes" } else { "NO" });
}
