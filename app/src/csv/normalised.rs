//! The form staged rows travel in from the browser to the server: CSV with a fixed header-less
//! layout `line,merchant_id,code,serial,sku,points,sku_name,batch_code,price`. The server
//! parses it with the same [`RecordReader`] and re-checks every row with [`check_row`].

use uuid::Uuid;

use super::{check_row, Column, HeaderMap, Record, RecordReader, RowOutcome, StagedRow, COLUMNS};

/// Appends one staged row from file line `line`.
pub fn write_row(out: &mut Vec<u8>, line: u64, row: &StagedRow<'_>) {
    out.extend_from_slice(line.to_string().as_bytes());
    out.push(b',');
    out.extend_from_slice(row.merchant_id.as_hyphenated().encode_lower(&mut Uuid::encode_buffer()).as_bytes());
    for column in &COLUMNS[1..] {
        out.push(b',');
        if let Some(value) = row.get(*column) {
            write_field(out, value);
        }
    }
    out.push(b'\n');
}

fn write_field(out: &mut Vec<u8>, value: &str) {
    if value.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) {
        out.push(b'"');
        for byte in value.bytes() {
            if byte == b'"' {
                out.push(b'"');
            }
            out.push(byte);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(value.as_bytes());
    }
}

/// Why a chunk was refused: its row (1-based within the chunk) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkError {
    pub row: u64,
    pub reason: String,
}

/// Parses and re-checks a chunk for an upload to `merchant`, calling `each` with every row's
/// file line. Fails on the first row that is not a valid staged row: the caller stores
/// nothing of such a chunk.
pub fn read_rows(chunk: &[u8], merchant: Uuid, each: &mut impl FnMut(u64, &StagedRow<'_>)) -> Result<u64, ChunkError> {
    let map = HeaderMap::normalised();
    let mut reader = RecordReader::new(b',');
    let mut rows = 0u64;
    let mut failure: Option<ChunkError> = None;
    let mut on_record = |record: Record<'_>| {
        if failure.is_some() {
            return;
        }
        rows += 1;
        let fail = |reason: String| Some(ChunkError { row: rows, reason });
        // What check_row would reject it for (a malformed record has no fields to count).
        if let Some(problem) = record.problem {
            failure = fail(problem.to_string());
            return;
        }
        if record.len() != map.width {
            failure = fail(format!("has {} fields, expected {}", record.len(), map.width));
            return;
        }
        let line = record
            .get(0)
            .and_then(|raw| std::str::from_utf8(raw).ok())
            .and_then(|text| text.parse::<u64>().ok())
            .filter(|&line| line > 1);
        let Some(line) = line else {
            failure = fail("does not start with a file line number".to_owned());
            return;
        };
        match check_row(&map, &record, merchant) {
            RowOutcome::Staged(row) if row.get(Column::Code).is_some() => each(line, &row),
            RowOutcome::Staged(_) | RowOutcome::SkippedBlankCode => failure = fail("has an empty code".to_owned()),
            RowOutcome::Rejected(reason) => failure = fail(reason),
            RowOutcome::NotUtf8 => failure = fail("is not UTF-8".to_owned()),
        }
    };
    reader.feed(chunk, &mut on_record);
    reader.finish(&mut on_record);
    if reader.blank_lines() > 0 && failure.is_none() {
        failure = Some(ChunkError { row: rows, reason: "the chunk has blank lines".to_owned() });
    }
    match failure {
        Some(error) => Err(error),
        None => Ok(rows),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MERCHANT: Uuid = Uuid::from_u128(0xabc);

    fn staged(code: &str, sku: Option<&str>) -> StagedRow<'static> {
        let code: &'static str = Box::leak(code.to_owned().into_boxed_str());
        let sku: Option<&'static str> = sku.map(|s| &*Box::leak(s.to_owned().into_boxed_str()));
        let mut fields = [None; 8];
        fields[1] = Some(code);
        fields[3] = sku;
        StagedRow { merchant_id: MERCHANT, fields }
    }

    #[test]
    fn rows_round_trip_through_the_normalised_form() {
        let mut chunk = Vec::new();
        write_row(&mut chunk, 2, &staged("A,1", Some("say \"hi\"")));
        write_row(&mut chunk, 9, &staged("multi\nline", None));
        let mut back = Vec::new();
        let rows = read_rows(&chunk, MERCHANT, &mut |line, row| {
            back.push((line, row.code().to_owned(), row.get(Column::Sku).map(str::to_owned)));
        })
        .unwrap();
        assert_eq!(rows, 2);
        assert_eq!(
            back,
            vec![(2, "A,1".to_owned(), Some("say \"hi\"".to_owned())), (9, "multi\nline".to_owned(), None)]
        );
    }

    #[test]
    fn a_forged_row_for_another_merchant_fails_the_chunk() {
        let mut chunk = Vec::new();
        write_row(&mut chunk, 2, &staged("A", None));
        let other = Uuid::from_u128(0xdef);
        chunk.extend_from_slice(format!("3,{other},B,,,,,,\n").as_bytes());
        let error = read_rows(&chunk, MERCHANT, &mut |_, _| {}).unwrap_err();
        assert_eq!(error.row, 2);
        assert!(error.reason.contains("not the merchant"), "{}", error.reason);
    }

    #[test]
    fn a_malformed_row_fails_the_chunk_and_no_row_after_it_is_taken_in() {
        let m = MERCHANT.to_string();
        for (bad, expected) in [
            ("3,{m},\"B,,,,,,\n", "never closed"),
            ("3,{m},B\"x,,,,,,\n", "a quote inside the unquoted field 3"),
            ("3,{m},\"B\"x,,,,,,\n", "text follows the closing quote of field 3"),
        ] {
            let mut chunk = Vec::new();
            write_row(&mut chunk, 2, &staged("A", None));
            chunk.extend_from_slice(bad.replace("{m}", &m).as_bytes());
            write_row(&mut chunk, 4, &staged("C", None));
            let mut seen = Vec::new();
            let error = read_rows(&chunk, MERCHANT, &mut |line, _| seen.push(line)).unwrap_err();
            assert_eq!(error.row, 2, "{bad}");
            assert!(error.reason.contains(expected), "{bad}: {}", error.reason);
            assert_eq!(seen, vec![2]);
        }
    }

    #[test]
    fn hostile_rows_fail_the_chunk_with_the_row_number() {
        let cases: [(&str, &str); 5] = [
            ("2,{m},,,,,,,\n", "empty code"),
            ("2,{m},A,,,x,,,\n", "points \"x\" is not a number"),
            ("2,{m},A\n", "has 3 fields"),
            ("zz,{m},A,,,,,,\n", "line number"),
            ("2,{m},A,,,,,,,extra\n", "has 10 fields"),
        ];
        for (row, expected) in cases {
            let chunk = row.replace("{m}", &MERCHANT.to_string());
            let error = read_rows(chunk.as_bytes(), MERCHANT, &mut |_, _| {}).unwrap_err();
            assert!(error.reason.contains(expected), "{row}: {}", error.reason);
            assert_eq!(error.row, 1);
        }
    }
}
