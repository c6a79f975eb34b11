//! A quick native measure of the reader and the validator (not run by default):
//! `cargo test --release -p app --lib -- --ignored bench --nocapture`.

use std::time::Instant;

use uuid::Uuid;

use super::{FileValidator, ReadOptions, Record, RecordReader, StagedRow, TextDecoder, TextEncoding};

/// `rows` data rows after a header; every `quoted_every`-th row has a quoted name with a comma
/// (0: none).
fn file(rows: usize, quoted_every: usize) -> Vec<u8> {
    let mut out = b"code,sku,points,sku_name,batch_code,price\n".to_vec();
    for i in 0..rows {
        if quoted_every != 0 && i % quoted_every == 0 {
            out.extend_from_slice(format!("CODE{i:07},SKU{},10,\"Name, with comma\",B1,9.50\n", i % 7).as_bytes());
        } else {
            out.extend_from_slice(format!("CODE{i:07},SKU{},10,Name without comma,B1,9.50\n", i % 7).as_bytes());
        }
    }
    out
}

/// The best of five runs of `run`, in rows per second.
fn best(rows: usize, mut run: impl FnMut() -> usize) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let start = Instant::now();
        let seen = run();
        assert!(seen >= rows, "{seen} < {rows}");
        best = best.min(start.elapsed().as_secs_f64());
    }
    rows as f64 / best
}

const SLICE: usize = 1 << 20;

fn read_all(bytes: &[u8]) -> usize {
    let mut reader = RecordReader::new(b',');
    let mut count = 0usize;
    let mut each = |r: Record<'_>| count += r.len();
    for part in bytes.chunks(SLICE) {
        reader.feed(part, &mut each);
    }
    reader.finish(&mut each);
    count / 6
}

fn validate_all(bytes: &[u8]) -> usize {
    validate_as(bytes, &ReadOptions::default())
}

fn validate_as(bytes: &[u8], options: &ReadOptions) -> usize {
    let mut validator = FileValidator::with_options(Uuid::from_u128(1), options);
    let mut staged = 0usize;
    let mut each = |_: u64, _: &StagedRow<'_>| staged += 1;
    for part in bytes.chunks(SLICE) {
        validator.feed(part, &mut each);
    }
    validator.finish(&mut each);
    staged
}

#[test]
#[ignore]
fn bench_reader_and_validator_rows_per_second() {
    // BENCH_ROWS=... for a shorter run (under a profiler, say).
    let rows: usize = std::env::var("BENCH_ROWS").ok().and_then(|n| n.parse().ok()).unwrap_or(2_000_000);
    for (label, quoted_every) in [("no quotes", 0), ("half quoted", 2), ("all quoted", 1)] {
        let bytes = file(rows, quoted_every);
        let read = best(rows, || read_all(&bytes));
        let validated = best(rows, || validate_all(&bytes));
        let mib = bytes.len() as f64 / (1 << 20) as f64;
        println!(
            "bench {label:>11}: {mib:.0} MiB, reader {:.2} M rows/s ({:.0} MiB/s), validator {:.2} M rows/s",
            read / 1e6,
            read * mib / rows as f64,
            validated / 1e6
        );
    }
    // The same rows with an accent in every name, in Windows-1252, against the plain file.
    let plain = file(rows, 0);
    let latin: Vec<u8> = String::from_utf8(plain.clone())
        .unwrap_or_default()
        .replace("Name without comma", "Nom sans virgule é")
        .chars()
        .map(|c| if c == 'é' { 0xe9 } else { c as u8 })
        .collect();
    let accented =
        String::from_utf8(plain.clone()).unwrap_or_default().replace("Name without comma", "Nom sans virgule é");
    let same_in_utf8 = best(rows, || validate_all(accented.as_bytes()));
    let options = ReadOptions { encoding: Some(TextEncoding::Windows1252), ..ReadOptions::default() };
    let base = best(rows, || validate_all(&plain));
    let decoded = best(rows, || validate_as(&latin, &options));
    let decode_only = best(rows, || {
        let mut decoder = TextDecoder::new(Some(TextEncoding::Windows1252));
        let written: usize = latin.chunks(SLICE).map(|part| decoder.decode(part, false).len()).sum();
        written * rows / latin.len()
    });
    println!(
        "bench Windows-1252: validator {:.2} M rows/s, {:.2}x the plain UTF-8 file's, {:.2}x the same text's in UTF-8; \
         decoding alone {:.0} MiB/s",
        decoded / 1e6,
        decoded / base,
        decoded / same_in_utf8,
        decode_only * latin.len() as f64 / rows as f64 / (1 << 20) as f64
    );
}

/// The chunk sizes and encoding speed of the wire format at each compression level, on the
/// rows of the browser benchmark's files (`end2end/bench/browser-upload.mjs`):
/// `cargo test --release -p app --lib -- --ignored bench_wire --nocapture`.
#[test]
#[ignore]
fn bench_wire_compression_levels() {
    let rows = 100_000usize;
    // Codes as the merchants' are: random, 10 to 16 characters of Crockford's base32 (a
    // counter's shared prefixes would flatter deflate).
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut csv = b"code,serial,sku,points,sku_name,batch_code,price\n".to_vec();
    for i in 1..=rows {
        let length = 10 + (next() % 7) as usize;
        let code: String = (0..length).map(|_| ALPHABET[(next() % 32) as usize] as char).collect();
        csv.extend_from_slice(
            format!("{code},S{i},SKU-{},{},Gift card {},B1,{}.50\n", i % 50, i % 500, i % 50, i % 90).as_bytes(),
        );
    }
    let mut staged = Vec::new();
    let mut validator = FileValidator::new(Uuid::from_u128(1));
    let mut keep = |line: u64, row: &StagedRow<'_>| {
        let owned: Vec<Option<String>> = row.fields.iter().map(|f| f.map(str::to_owned)).collect();
        staged.push((line, owned));
    };
    validator.feed(&csv, &mut keep);
    validator.finish(&mut keep);
    let chunk = |level: u32| {
        let mut writer = super::wire::ChunkWriter::default();
        for (line, fields) in &staged {
            let mut all = [None; 8];
            for (slot, value) in all.iter_mut().zip(fields) {
                *slot = value.as_deref();
            }
            writer.push(*line, &StagedRow { merchant_id: Uuid::from_u128(1), fields: all });
        }
        let payload = writer.payload_len();
        (writer.finish(level), payload)
    };
    for level in [0, 1, 2, 3, 6, 9] {
        let mut seconds = f64::MAX;
        let mut size = (0, 0);
        for _ in 0..3 {
            let start = Instant::now();
            let (body, payload) = chunk(level);
            seconds = seconds.min(start.elapsed().as_secs_f64());
            size = (body.len(), payload);
        }
        println!(
            "bench wire level {level}: CSV {} B, rows {} B, body {} B = {:.3}x the CSV, {:.1} M rows/s",
            csv.len(),
            size.1,
            size.0,
            size.0 as f64 / csv.len() as f64,
            rows as f64 / seconds / 1e6
        );
    }
}
