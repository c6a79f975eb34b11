//! The form staged rows travel in from the browser to the server: a chunk is one gzip member
//! (RFC 1952, whose CRC-32 and length catch a corrupted or truncated body) of
//!
//! ```text
//! "CIW1"  varint(rows)  row*
//! row  := varint(line - previous line)  varint(len) × 7  field (0x1F field) × 6
//! ```
//!
//! with the seven staged columns (`COLUMNS[1..]`: code, serial, sku, points, sku_name,
//! batch_code, price) in that order, an empty field standing for a missing value. Nothing per
//! row is sent that the upload already knows: not the merchant (every staged row is the
//! upload's), and the file line only as its distance from the previous row's (the first row's
//! from 0). The server inflates a chunk up to a cap, parses it and re-checks every row with
//! [`recheck_row`]: the browser's checks again, on the values as the browser left them.

use std::io::{Read, Write};

use flate2::{bufread::GzDecoder, write::GzEncoder, Compression};
use uuid::Uuid;

use super::{recheck_row, Column, HeaderMap, Record, RowOutcome, StagedRow, COLUMNS};

/// What an inflated chunk starts with: the format and its version.
pub const MAGIC: &[u8; 4] = b"CIW1";
/// Between a row's fields, so that they lie in the chunk as a record's fields lie in a line.
const SEPARATOR: u8 = 0x1f;
/// The staged columns, in the order a row carries them.
const WIRE_COLUMNS: usize = COLUMNS.len() - 1;

/// Builds one chunk: rows in, a compressed body out.
#[derive(Debug, Default)]
pub struct ChunkWriter {
    rows: u64,
    last_line: u64,
    payload: Vec<u8>,
}

impl ChunkWriter {
    /// Appends one staged row from file line `line` (later than the previous row's).
    pub fn push(&mut self, line: u64, row: &StagedRow<'_>) {
        varint(&mut self.payload, line.saturating_sub(self.last_line));
        self.last_line = line;
        let fields = COLUMNS[1..].iter().map(|&column| row.get(column).unwrap_or_default());
        for field in fields.clone() {
            varint(&mut self.payload, field.len() as u64);
        }
        for (i, field) in fields.enumerate() {
            if i > 0 {
                self.payload.push(SEPARATOR);
            }
            self.payload.extend_from_slice(field.as_bytes());
        }
        self.rows += 1;
    }

    /// The rows pushed so far.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The rows' bytes before compression.
    pub fn payload_len(&self) -> usize {
        self.payload.len()
    }

    /// The chunk's body: the header and the rows, compressed at `level` (0–9).
    pub fn finish(self, level: u32) -> Vec<u8> {
        let mut head = MAGIC.to_vec();
        varint(&mut head, self.rows);
        let mut gzip = GzEncoder::new(Vec::with_capacity(self.payload.len() / 3 + 64), Compression::new(level));
        // Writing into a Vec cannot fail.
        let _ = gzip.write_all(&head);
        let _ = gzip.write_all(&self.payload);
        gzip.finish().unwrap_or_default()
    }
}

fn varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push(value as u8 | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Why a chunk's body could not be read at all: nothing of it is stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Not gzip: an uncompressed body, or one of an older page.
    #[error("The chunk is not compressed as this app sends chunks (gzip); reload the page and upload again.")]
    NotCompressed,
    /// Gzip, but not of this format (an older page's rows).
    #[error("The chunk is not in this app's chunk format (CIW1); reload the page and upload again.")]
    OldFormat,
    /// It inflates past the cap.
    #[error("The chunk inflates to more than {} MiB; nothing of it was stored.", .cap >> 20)]
    TooLarge { cap: usize },
    /// Truncated, corrupted or malformed.
    #[error("The chunk is damaged ({0}); nothing of it was stored. Upload again to resend it.")]
    Damaged(String),
}

/// Inflates a chunk's body, refusing one that would inflate past `cap` bytes, is not gzip or
/// not this format, or is damaged (a bad checksum, a truncated stream, bytes after its end).
pub fn inflate(body: &[u8], cap: usize) -> Result<Vec<u8>, WireError> {
    if !body.starts_with(&[0x1f, 0x8b]) {
        return Err(WireError::NotCompressed);
    }
    let mut decoder = GzDecoder::new(body);
    let mut payload = Vec::with_capacity((body.len() * 3).min(cap));
    (&mut decoder)
        .take(cap as u64 + 1)
        .read_to_end(&mut payload)
        .map_err(|error| WireError::Damaged(error.to_string()))?;
    if payload.len() > cap {
        return Err(WireError::TooLarge { cap });
    }
    if !decoder.into_inner().is_empty() {
        return Err(WireError::Damaged("bytes follow the compressed rows".to_owned()));
    }
    if !payload.starts_with(MAGIC) {
        return Err(WireError::OldFormat);
    }
    Ok(payload)
}

/// Why a chunk was refused: its row (1-based within the chunk) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError {
    pub row: u64,
    pub reason: String,
}

/// Reads the varint at `*at`, moving past it; `None` when the payload ends inside it or it
/// overflows 64 bits.
fn read_varint(payload: &[u8], at: &mut usize) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *payload.get(*at)?;
        *at += 1;
        value |= u64::from(byte & 0x7f).checked_shl(shift)?;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Parses and re-checks an inflated chunk ([`inflate`]) for an upload to `merchant`, calling
/// `each` with every row's file line. Fails on the first row that is not a valid staged row,
/// or on a chunk that is cut short, has bytes after its last row or another count of rows
/// than it says: the caller stores nothing of such a chunk.
pub fn read_rows(
    payload: &[u8],
    merchant: Uuid,
    each: &mut impl FnMut(u64, &StagedRow<'_>),
) -> Result<u64, ChunkError> {
    let map = HeaderMap::wire();
    let mut at = MAGIC.len();
    let damaged = |row: u64, what: &str| ChunkError { row, reason: format!("is damaged: {what}") };
    let count = read_varint(payload, &mut at).ok_or_else(|| damaged(0, "no row count"))?;
    let mut line = 0u64;
    let mut ends = [0usize; WIRE_COLUMNS];
    for row in 1..=count {
        let delta = read_varint(payload, &mut at).ok_or_else(|| damaged(row, "cut short"))?;
        line = line
            .checked_add(delta)
            .filter(|&l| delta > 0 && l > 1)
            .ok_or_else(|| ChunkError { row, reason: "does not follow the previous row's file line".to_owned() })?;
        let mut end = 0usize;
        for (i, slot) in ends.iter_mut().enumerate() {
            let len = read_varint(payload, &mut at).ok_or_else(|| damaged(row, "cut short"))?;
            let len = usize::try_from(len).map_err(|_| damaged(row, "a field's length"))?;
            end = end
                .checked_add(len)
                .and_then(|end| end.checked_add(usize::from(i > 0)))
                .ok_or_else(|| damaged(row, "a field's length"))?;
            *slot = end;
        }
        let data =
            at.checked_add(end).and_then(|stop| payload.get(at..stop)).ok_or_else(|| damaged(row, "cut short"))?;
        if ends[..WIRE_COLUMNS - 1].iter().any(|&e| data[e] != SEPARATOR) {
            return Err(damaged(row, "its fields are not where their lengths say"));
        }
        at += end;
        let record = Record::joined(line, data, &ends);
        match recheck_row(&map, &record, merchant) {
            RowOutcome::Staged(staged) if staged.get(Column::Code).is_some() => each(line, &staged),
            RowOutcome::Staged(_) | RowOutcome::SkippedBlankCode => {
                return Err(ChunkError { row, reason: "has an empty code".to_owned() })
            }
            RowOutcome::Rejected(reason) => return Err(ChunkError { row, reason }),
            RowOutcome::NotUtf8 => return Err(ChunkError { row, reason: "is not UTF-8".to_owned() }),
        }
    }
    if at != payload.len() {
        return Err(damaged(count, "bytes follow its last row"));
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::MAX_FIELD_BYTES;

    const MERCHANT: Uuid = Uuid::from_u128(0xabc);
    const CAP: usize = 1 << 20;

    /// A staged row of `fields` (code, serial, sku, points, sku_name, batch_code, price; "" is
    /// missing).
    fn staged<'a>(fields: [&'a str; 7]) -> StagedRow<'a> {
        let mut all = [None; 8];
        for (slot, value) in all[1..].iter_mut().zip(fields) {
            *slot = Some(value).filter(|v| !v.is_empty());
        }
        StagedRow { merchant_id: MERCHANT, fields: all }
    }

    fn chunk(rows: &[(u64, [&str; 7])]) -> Vec<u8> {
        let mut writer = ChunkWriter::default();
        for (line, fields) in rows {
            writer.push(*line, &staged(*fields));
        }
        writer.finish(6)
    }

    /// The rows the server reads from `body`: their lines and fields ("" for missing).
    fn read(body: &[u8]) -> Result<Vec<(u64, Vec<String>)>, String> {
        let payload = inflate(body, CAP).map_err(|e| e.to_string())?;
        let mut back = Vec::new();
        read_rows(&payload, MERCHANT, &mut |line, row| {
            back.push((line, COLUMNS[1..].iter().map(|&c| row.get(c).unwrap_or_default().to_owned()).collect()));
        })
        .map_err(|e| format!("row {}: {}", e.row, e.reason))?;
        Ok(back)
    }

    #[test]
    fn every_value_the_csv_rules_allow_round_trips() {
        let longest = "é".repeat(MAX_FIELD_BYTES / 2);
        let longest_ascii = "Z".repeat(MAX_FIELD_BYTES);
        let rows: Vec<(u64, [&str; 7])> = vec![
            (2, ["A", "", "", "", "", "", ""]),
            (3, ["B,1", "say \"hi\"", "tab\there", "10", "multi\nline\r\nname", "back\\slash", "1.50"]),
            // A quoted record spanning lines: the next row starts several lines later.
            (7, ["Ünïcödé-€", "日本語", "🎟️", "-3", "Café, crème", "\u{1f}unit", "+.5"]),
            (8, [longest.as_str(), longest_ascii.as_str(), "", "", longest.as_str(), "", ""]),
            (1_000_000_000, ["far", "", "", "12345678901234567890.123456789", "", "", "-0.00"]),
            // A cell the browser read as `'=SUM(A1)` (a report's protected cell) stages as `=SUM(A1)`.
            (1_000_000_001, ["=SUM(A1)", ",", "\"", "", "inner  spaces", "-starts-with-minus", ""]),
            // The browser has taken the report's prefix off already: a value that still starts
            // with `'` and a formula character (the file's cell was `''=SUM(A1)`) keeps it.
            (1_000_000_002, ["'=SUM(A1)", "'-5", "'+x", "", "'@home", "'\tTAB", ""]),
        ];
        let back = read(&chunk(&rows)).unwrap();
        let expected: Vec<(u64, Vec<String>)> =
            rows.iter().map(|(line, fields)| (*line, fields.iter().map(|f| (*f).to_owned()).collect())).collect();
        assert_eq!(back, expected);
    }

    #[test]
    fn a_row_carries_no_merchant_and_its_line_as_a_small_delta() {
        let mut writer = ChunkWriter::default();
        for line in 2..1002 {
            writer.push(line, &staged(["NBD-0000000001", "", "", "", "", "", ""]));
        }
        // One byte of line, seven of lengths, 14 of code, six separators.
        assert_eq!(writer.payload_len(), 1000 * (1 + 7 + 14 + 6));
    }

    #[test]
    fn a_truncated_or_corrupted_chunk_is_refused_whole() {
        let rows: Vec<(u64, [&str; 7])> =
            (2..500).map(|line| (line, ["CODE", "S", "SKU", "5", "Gift card", "B1", "9.50"])).collect();
        let body = chunk(&rows);
        for cut in [body.len() - 1, body.len() - 4, body.len() - 8, body.len() / 2, 11, 3] {
            let error = read(&body[..cut]).unwrap_err();
            assert!(error.contains("damaged"), "cut at {cut}: {error}");
        }
        // A flipped bit is refused, or changed nothing the rows are made of (the header's time
        // stamp, the padding after the last deflate block): never read as other rows.
        let rows = read(&body).unwrap();
        let mut refused = 0;
        for at in 0..body.len() {
            for bit in [0x01u8, 0x10, 0x80] {
                let mut corrupted = body.clone();
                corrupted[at] ^= bit;
                match read(&corrupted) {
                    Err(_) => refused += 1,
                    Ok(same) => assert_eq!(same, rows, "byte {at} bit {bit:#x} was read as other rows"),
                }
            }
        }
        assert!(refused > body.len() * 3 * 9 / 10, "{refused} of {} flips refused", body.len() * 3);
        let mut longer = body.clone();
        longer.push(0);
        assert!(read(&longer).unwrap_err().contains("bytes follow the compressed rows"));
    }

    #[test]
    fn a_well_compressed_payload_that_lies_about_its_rows_is_refused() {
        let compress = |payload: &[u8]| {
            let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
            gzip.write_all(payload).unwrap();
            gzip.finish().unwrap()
        };
        let mut writer = ChunkWriter::default();
        writer.push(2, &staged(["A", "", "", "", "", "", ""]));
        writer.push(3, &staged(["B", "", "", "", "", "", ""]));
        let rows = writer.payload.clone();
        for (count, tail, expected) in [
            (3u8, &[][..], "row 3: is damaged: cut short"),
            (1, &[][..], "row 1: is damaged: bytes follow its last row"),
            (2, &[1u8, 0, 0, 0, 0, 0, 0, 0][..], "row 2: is damaged: bytes follow its last row"),
        ] {
            let mut payload = MAGIC.to_vec();
            payload.push(count);
            payload.extend_from_slice(&rows);
            payload.extend_from_slice(tail);
            assert_eq!(read(&compress(&payload)).unwrap_err(), expected);
        }
        // A length pointing past the separators, and a line that goes backwards.
        let mut payload = MAGIC.to_vec();
        payload.extend_from_slice(&[1, 2, 3, 0, 0, 0, 0, 0, 0]);
        payload.extend_from_slice(b"AB\x1fC\x1f\x1f\x1f\x1f\x1f");
        assert_eq!(
            read(&compress(&payload)).unwrap_err(),
            "row 1: is damaged: its fields are not where their lengths say"
        );
        let mut payload = MAGIC.to_vec();
        payload.extend_from_slice(&[1, 0, 1, 0, 0, 0, 0, 0, 0]);
        payload.extend_from_slice(b"A\x1f\x1f\x1f\x1f\x1f\x1f");
        assert_eq!(read(&compress(&payload)).unwrap_err(), "row 1: does not follow the previous row's file line");
    }

    #[test]
    fn rows_the_browser_would_have_rejected_fail_the_chunk_with_their_row() {
        for (fields, expected) in [
            (["A", "", "", "x", "", "", ""], "points \"x\" is not a number"),
            (["", "S", "", "", "", "", ""], "empty code"),
            (["A\0B", "", "", "", "", "", ""], "code contains a NUL character"),
        ] {
            let body = chunk(&[(2, ["OK", "", "", "", "", "", ""]), (3, fields)]);
            let error = read(&body).unwrap_err();
            assert!(error.starts_with("row 2: ") && error.contains(expected), "{error}");
        }
        let too_long = "x".repeat(MAX_FIELD_BYTES + 1);
        let error = read(&chunk(&[(2, [too_long.as_str(), "", "", "", "", "", ""])])).unwrap_err();
        assert!(error.contains("longer than"), "{error}");
    }

    #[test]
    fn an_uncompressed_an_old_format_or_an_oversized_chunk_is_told_apart() {
        let old = format!("2,{MERCHANT},A,,,,,,\n");
        assert_eq!(inflate(old.as_bytes(), CAP), Err(WireError::NotCompressed));
        let mut gzip = GzEncoder::new(Vec::new(), Compression::fast());
        gzip.write_all(old.as_bytes()).unwrap();
        assert_eq!(inflate(&gzip.finish().unwrap(), CAP), Err(WireError::OldFormat));
        let mut gzip = GzEncoder::new(Vec::new(), Compression::best());
        gzip.write_all(MAGIC).unwrap();
        gzip.write_all(&vec![0u8; CAP]).unwrap();
        let bomb = gzip.finish().unwrap();
        assert!(bomb.len() < 4096, "{} bytes", bomb.len());
        assert_eq!(inflate(&bomb, CAP), Err(WireError::TooLarge { cap: CAP }));
    }
}
