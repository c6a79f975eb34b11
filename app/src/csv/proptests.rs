//! Properties of the reader, the validator and the wire format over generated files.

use proptest::prelude::*;
use uuid::Uuid;

use super::{wire, FileProblem, FileReport, FileValidator, Record, RecordProblem, RecordReader, StagedRow, COLUMNS};

const MERCHANT: Uuid = Uuid::from_u128(0x5eed);

/// One record as compared here: its lines, problem and fields.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    line: u64,
    last_line: u64,
    problem: Option<RecordProblem>,
    fields: Vec<Vec<u8>>,
}

/// Everything a reader tells about an input: its records, blank lines and lines.
type Reading = (Vec<Seen>, u64, u64);

/// Reads `input` with `reader`, in slices whose sizes cycle through `slices` (whole when empty).
fn read_with(mut reader: RecordReader, input: &[u8], slices: &[usize]) -> Reading {
    let mut seen = Vec::new();
    let mut each = |r: Record<'_>| {
        let fields = r.fields().map(<[u8]>::to_vec).collect();
        seen.push(Seen { line: r.line, last_line: r.last_line, problem: r.problem, fields });
    };
    let mut rest = input;
    let mut sizes = slices.iter().copied().cycle();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        reader.feed(&rest[..size], &mut each);
        rest = &rest[size..];
    }
    reader.finish(&mut each);
    (seen, reader.blank_lines(), reader.lines())
}

/// The rule, byte by byte over the whole input at once: slow and plain, so that it can be
/// checked by reading it. No fast path, no slices, nothing kept: after a malformed record it
/// simply starts again after the first newline at or after the record's start.
fn reference(input: &[u8], delimiter: u8, max_bytes: usize, max_fields: usize) -> Reading {
    let input = input.strip_prefix(b"\xef\xbb\xbf").unwrap_or(input);
    let mut records = Vec::new();
    let mut blank = 0;
    let mut line = 1;
    let mut at = 0;
    while at < input.len() {
        if input[at] == b'\n' {
            blank += 1;
            line += 1;
            at += 1;
            continue;
        }
        match reference_record(&input[at..], delimiter, max_bytes, max_fields) {
            Ok((fields, length, newlines)) => {
                records.push(Seen { line, last_line: line + newlines, problem: None, fields });
                at += length;
                line += newlines + 1;
            }
            Err(problem) => {
                records.push(Seen { line, last_line: line, problem: Some(problem), fields: Vec::new() });
                at += input[at..].iter().position(|&b| b == b'\n').map_or(input.len() - at, |n| n + 1);
                line += 1;
            }
        }
    }
    let newlines = input.iter().filter(|&&b| b == b'\n').count() as u64;
    let lines = newlines + u64::from(input.last().is_some_and(|&b| b != b'\n'));
    (records, blank, lines)
}

/// The record at the start of `input` (which is not a newline): its fields, its length with its
/// newline, and the newlines inside its quoted fields.
fn reference_record(
    input: &[u8],
    delimiter: u8,
    max_bytes: usize,
    max_fields: usize,
) -> Result<(Vec<Vec<u8>>, usize, u64), RecordProblem> {
    #[derive(PartialEq)]
    enum In {
        FieldStart,
        Plain,
        Quotes,
        QuoteInQuotes,
        CrAfterClosingQuote,
    }
    let mut fields = Vec::new();
    let mut field = Vec::new();
    let mut state = In::FieldStart;
    let mut newlines = 0;
    for (offset, &byte) in input.iter().enumerate() {
        let ends_record = byte == b'\n' && state != In::Quotes;
        if offset >= max_bytes && !ends_record {
            return Err(if state == In::Quotes {
                RecordProblem::QuoteNotClosedWithinLimit
            } else {
                RecordProblem::TooLong
            });
        }
        let number = fields.len() as u32 + 1;
        if ends_record {
            fields.push(field);
            return Ok((fields, offset + 1, newlines));
        }
        if byte == delimiter && matches!(state, In::FieldStart | In::Plain | In::QuoteInQuotes) {
            fields.push(std::mem::take(&mut field));
            if fields.len() == max_fields {
                return Err(RecordProblem::TooManyFields);
            }
            state = In::FieldStart;
            continue;
        }
        state = match (state, byte) {
            (In::FieldStart, b'"') => In::Quotes,
            (In::Plain, b'"') => return Err(RecordProblem::QuoteInUnquotedField { field: number }),
            (In::FieldStart | In::Plain, _) => {
                field.push(byte);
                In::Plain
            }
            (In::Quotes, b'"') => In::QuoteInQuotes,
            (In::Quotes, _) => {
                newlines += u64::from(byte == b'\n');
                field.push(byte);
                In::Quotes
            }
            (In::QuoteInQuotes, b'"') => {
                field.push(b'"');
                In::Quotes
            }
            (In::QuoteInQuotes, b'\r') => In::CrAfterClosingQuote,
            (In::QuoteInQuotes | In::CrAfterClosingQuote, _) => {
                return Err(RecordProblem::TextAfterQuote { field: number })
            }
        };
    }
    if state == In::Quotes {
        return Err(RecordProblem::UnclosedQuote);
    }
    fields.push(field);
    Ok((fields, input.len(), newlines))
}

/// Bytes biased toward what makes CSV hard, now and then a long run to pass the limits.
fn tricky_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        6 => Just(&b"a"[..]),
        4 => Just(&b","[..]),
        2 => Just(&b";"[..]),
        4 => Just(&b"\""[..]),
        1 => Just(&b"\"\""[..]),
        4 => Just(&b"\n"[..]),
        2 => Just(&b"\r"[..]),
        1 => Just(&b"\r\n"[..]),
        2 => Just(&b" "[..]),
        1 => Just("é".as_bytes()),
        1 => Just(&b"\xff"[..]),
        1 => Just(&b"\xef\xbb\xbf"[..]),
    ];
    (any::<bool>(), prop::collection::vec(piece, 0..120)).prop_map(|(bom, pieces)| {
        let mut bytes = if bom { b"\xef\xbb\xbf".to_vec() } else { Vec::new() };
        pieces.into_iter().for_each(|p| bytes.extend_from_slice(p));
        bytes
    })
}

/// Slice sizes, mostly tiny.
fn slicings() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![4 => 1usize..8, 1 => 8usize..300], 1..6)
}

/// Small limits (so that generated inputs pass them), or the real ones.
fn limits() -> impl Strategy<Value = (usize, usize)> {
    prop_oneof![
        1 => Just((super::MAX_RECORD_BYTES, super::MAX_FIELDS)),
        3 => (1usize..40, 1usize..6),
    ]
}

/// A data row of a `code,sku,points` file, its line ending not included.
fn row() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => (0u32..1000).prop_map(|n| format!("C{n},S{n},{}", n % 50)),
        2 => (0u32..1000).prop_map(|n| format!("\"Q,{n}\",\"say \"\"hi\"\"\",{n}")),
        2 => Just(",S,10".to_owned()),
        2 => Just(String::new()),
        1 => Just("   ".to_owned()),
        2 => Just("A,\"foo,1".to_owned()),
        2 => Just("A,12\" screen,3".to_owned()),
        2 => Just("A,\"abc\"def,3".to_owned()),
        2 => Just("A, \"x, y\",3".to_owned()),
        2 => Just("A,S,ten".to_owned()),
        1 => Just("A,1,2,3".to_owned()),
        2 => (0u32..1000).prop_map(|n| format!("É{n},café,{n}")),
        2 => Just("M,\"two\nlines\",3".to_owned()),
        1 => Just("M,\"three\r\n\r\nlines\",3".to_owned()),
        1 => Just("\"\",S,1".to_owned()),
    ]
}

/// A `code,sku,points` file: rows with LF or CRLF endings, a final newline or not.
fn file() -> impl Strategy<Value = Vec<u8>> {
    (prop::collection::vec((row(), any::<bool>()), 0..40), any::<bool>()).prop_map(|(rows, final_newline)| {
        let mut text = "code,sku,points\n".to_owned();
        let count = rows.len();
        for (i, (row, crlf)) in rows.into_iter().enumerate() {
            text.push_str(&row);
            if i + 1 < count || final_newline {
                text.push_str(if crlf { "\r\n" } else { "\n" });
            }
        }
        text.into_bytes()
    })
}

/// A staged row as compared here: its file line, merchant and fields.
type Row = (u64, Uuid, Vec<Option<String>>);

fn owned(line: u64, row: &StagedRow<'_>) -> Row {
    (line, row.merchant_id, COLUMNS.iter().map(|&c| row.get(c).map(str::to_owned)).collect())
}

/// The validator's report of `bytes` read in `slices`, and the rows it stages.
fn validate(bytes: &[u8], slices: &[usize]) -> (FileReport, Vec<Row>, Vec<u8>) {
    let mut validator = FileValidator::new(MERCHANT);
    let mut staged = Vec::new();
    let mut chunk = wire::ChunkWriter::default();
    let mut each = |line: u64, row: &StagedRow<'_>| {
        staged.push(owned(line, row));
        chunk.push(line, row);
    };
    let mut rest = bytes;
    let mut sizes = slices.iter().copied().cycle();
    while !rest.is_empty() {
        let size = sizes.next().unwrap_or(rest.len()).clamp(1, rest.len());
        validator.feed(&rest[..size], &mut each);
        rest = &rest[size..];
    }
    let (report, _) = validator.finish(&mut each);
    (report, staged, chunk.finish(1))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn the_reader_never_panics_and_reads_the_same_records_however_the_input_is_sliced(
        input in tricky_bytes(),
        slices in slicings(),
        delimiter in prop_oneof![Just(b','), Just(b';')],
        (max_bytes, max_fields) in limits(),
    ) {
        let whole = read_with(RecordReader::with_limits(delimiter, max_bytes, max_fields), &input, &[]);
        let sliced = read_with(RecordReader::with_limits(delimiter, max_bytes, max_fields), &input, &slices);
        prop_assert_eq!(sliced, whole);
    }

    #[test]
    fn the_reader_agrees_with_a_plain_reference_parser_of_the_rule(
        input in tricky_bytes(),
        slices in slicings(),
        delimiter in prop_oneof![Just(b','), Just(b';')],
        (max_bytes, max_fields) in limits(),
    ) {
        let expected = reference(&input, delimiter, max_bytes, max_fields);
        let got = read_with(RecordReader::with_limits(delimiter, max_bytes, max_fields), &input, &slices);
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn every_line_after_the_header_is_accounted_for(bytes in file(), slices in slicings()) {
        let (report, _, _) = validate(&bytes, &slices);
        prop_assert!(matches!(report.problem, None | Some(FileProblem::NoRows)), "{:?}", report.problem);
        let lines = bytes.iter().filter(|&&b| b == b'\n').count() as i64 + i64::from(bytes.last() != Some(&b'\n'));
        prop_assert_eq!(report.data_lines, lines - 1);
        prop_assert_eq!(report.lines_accounted(), report.data_lines, "{:?}", report);
    }

    #[test]
    fn the_server_reads_back_exactly_the_rows_the_browser_staged(bytes in file(), slices in slicings()) {
        let (_, staged, chunk) = validate(&bytes, &slices);
        let mut back = Vec::new();
        let payload = wire::inflate(&chunk, usize::MAX >> 1).unwrap();
        let rows = wire::read_rows(&payload, MERCHANT, &mut |line, row| back.push(owned(line, row)));
        prop_assert_eq!(rows, Ok(staged.len() as u64));
        prop_assert_eq!(back, staged);
    }
}

#[test]
fn the_reference_parser_reads_the_examples_of_the_rule() {
    let input = b"a,\"b,\"\"c\"\"\"\n\nA,\"foo,1\nx\"y\nz,\"open\nlast";
    let (records, blank, lines) = reference(input, b',', 100, 10);
    let problems: Vec<_> = records.iter().map(|r| (r.line, r.problem)).collect();
    assert_eq!(
        problems,
        vec![
            (1, None),
            (3, Some(RecordProblem::TextAfterQuote { field: 2 })),
            (4, Some(RecordProblem::QuoteInUnquotedField { field: 1 })),
            (5, Some(RecordProblem::UnclosedQuote)),
            (6, None),
        ]
    );
    assert_eq!(records[0].fields, vec![b"a".to_vec(), b"b,\"c\"".to_vec()]);
    assert_eq!(records[4].fields, vec![b"last".to_vec()]);
    assert_eq!((blank, lines), (1, 6));
}
