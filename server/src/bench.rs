//! `server bench`: the project's benchmark. Generates a realistic batch at a given scale and
//! runs it through the code paths the app uses, printing one line per step with the floor
//! measured in the same run. Figures, not a test: nothing here asserts a speed.

use std::time::Instant;

use app::{
    auth::{ssr::Caller, CurrentUser, Role},
    csv::{FileReport, FileValidator},
    staging::{ssr as staging, ChunkBuilder, FileManifest},
};
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
struct Step {
    name: &'static str,
    rows: i64,
    seconds: f64,
    floor_seconds: Option<f64>,
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
        let Drawn { next_new, next_existing, earlier } = drawn;
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

/// Peak resident memory of this process so far, in MiB (Linux `VmHWM`).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
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
    let steps = result?;
    print(&steps, options);
    Ok(())
}

async fn steps(pool: &PgPool, options: &Options) -> Result<Vec<Step>, String> {
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
    let started = Instant::now();
    let mut reports: Vec<FileReport> = Vec::new();
    for file in &files {
        let mut validator = FileValidator::new(merchant);
        for slice in file.chunks(SLICE) {
            validator.feed(slice, &mut |_, _| {});
        }
        reports.push(validator.finish(&mut |_, _| {}).0);
    }
    let parse_seconds = started.elapsed().as_secs_f64();
    let staged_rows: i64 = reports.iter().map(|r| r.rows_staged).sum();

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
    let started = Instant::now();
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
    let stage_seconds = started.elapsed().as_secs_f64();
    let staged_in_db: i64 = sqlx::query_scalar("SELECT count(*) FROM codes_check_temp WHERE merchant_id = $1")
        .bind(merchant)
        .fetch_one(pool)
        .await
        .map_err(|e| fail(&e))?;
    if staged_in_db != staged_rows || done.rows_received() != staged_rows {
        return Err(format!("staged {staged_in_db} rows, validation counted {staged_rows}"));
    }

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
    sqlx::query("ANALYZE codes").execute(pool).await.map_err(|e| fail(&e))?;
    sqlx::query("ANALYZE codes_check_temp").execute(pool).await.map_err(|e| fail(&e))?;

    // The duplicate check, as the app runs it.
    let started = Instant::now();
    let mut conn = pool.acquire().await.map_err(|e| fail(&e))?;
    app::duplicates::ssr::mark_duplicates(&mut conn, merchant).await.map_err(|e| fail(&e))?;
    let check_seconds = started.elapsed().as_secs_f64();
    let figures = app::duplicates::ssr::stats(&mut conn, merchant).await.map_err(|e| fail(&e))?;
    drop(conn);
    if !options.json {
        eprintln!(
            "check: {} rows, {} internal, {} database, {} both, {} clean",
            figures.total_rows,
            figures.internal_duplicates,
            figures.database_duplicates,
            figures.both,
            figures.clean_count
        );
    }

    // The floor: the same rows in one bare COPY into an unlogged table without indexes.
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
    let floor_seconds = started.elapsed().as_secs_f64();

    Ok(vec![
        Step { name: "validate (native)", rows: staged_rows, seconds: parse_seconds, floor_seconds: None },
        Step { name: "stage", rows: staged_rows, seconds: stage_seconds, floor_seconds: Some(floor_seconds) },
        Step { name: "check duplicates", rows: staged_rows, seconds: check_seconds, floor_seconds: None },
    ])
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

fn print(steps: &[Step], options: &Options) {
    let peak = peak_rss_mb();
    if options.json {
        for step in steps {
            let floor = step.floor_seconds.map_or("null".to_owned(), |f| format!("{f:.3}"));
            println!(
                r#"{{"step": "{}", "rows": {}, "seconds": {:.3}, "floor_seconds": {floor}, "peak_rss_mb": {peak:.0}}}"#,
                step.name, step.rows, step.seconds
            );
        }
        return;
    }
    println!("{:<20} {:>12} {:>9} {:>12} {:>9} {:>8}", "step", "rows", "seconds", "rows/s", "floor s", "ratio");
    for step in steps {
        let rate = step.rows as f64 / step.seconds.max(1e-9);
        let (floor, ratio) = match step.floor_seconds {
            Some(f) => (format!("{f:.2}"), format!("{:.2}", step.seconds / f)),
            None => ("-".into(), "-".into()),
        };
        println!("{:<20} {:>12} {:>9.2} {:>12.0} {:>9} {:>8}", step.name, step.rows, step.seconds, rate, floor, ratio);
    }
    println!("peak server memory: {peak:.0} MiB");
}
