//! Which columns a file has, and what becomes of each row.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Record, RecordProblem};

/// The longest field accepted, in bytes after trimming.
pub const MAX_FIELD_BYTES: usize = 1024;

/// A column Code Import knows. Every other column is listed as unknown and ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Column {
    MerchantId,
    Code,
    Serial,
    Sku,
    Points,
    SkuName,
    BatchCode,
    Price,
}

/// The known columns, in the order of [`StagedRow::fields`].
pub const COLUMNS: [Column; 8] = [
    Column::MerchantId,
    Column::Code,
    Column::Serial,
    Column::Sku,
    Column::Points,
    Column::SkuName,
    Column::BatchCode,
    Column::Price,
];

impl Column {
    /// The column's name in files and in `codes_check_temp`.
    pub fn name(self) -> &'static str {
        match self {
            Column::MerchantId => "merchant_id",
            Column::Code => "code",
            Column::Serial => "serial",
            Column::Sku => "sku",
            Column::Points => "points",
            Column::SkuName => "sku_name",
            Column::BatchCode => "batch_code",
            Column::Price => "price",
        }
    }

    /// The column a header names, matched case-insensitively after trimming; `batch_id` is
    /// `batch_code`.
    pub fn from_header(header: &str) -> Option<Self> {
        let header = header.trim().to_ascii_lowercase();
        if header == "batch_id" {
            return Some(Column::BatchCode);
        }
        COLUMNS.into_iter().find(|c| c.name() == header)
    }

    fn index(self) -> usize {
        self as usize
    }

    /// What the page says of the column: whether a file must have it, what it holds, an example.
    pub fn rule(self) -> ColumnRule {
        let (required, holds, example) = match self {
            Column::Code => (true, "text, the code itself; a row without one is skipped", "X7KQ-2M9P-4TZA"),
            Column::MerchantId => {
                (false, "UUID of the merchant; left out, the merchant chosen on this page", "leave it out")
            }
            Column::Serial => (false, "text", "SN-000123"),
            Column::Sku => (false, "text", "GIFT-50"),
            Column::Points => (false, "number (digits, one point, maybe a sign)", "500"),
            Column::SkuName => (false, "text", "Gift card 50"),
            Column::BatchCode => (false, "text (also read from a batch_id column)", "SPRING-2026"),
            Column::Price => (false, "number (digits, one point, maybe a sign)", "49.90"),
        };
        ColumnRule { column: self, required, holds, example }
    }
}

/// One column's line in the rules the upload page shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnRule {
    pub column: Column,
    pub required: bool,
    pub holds: &'static str,
    pub example: &'static str,
}

/// The columns of the downloadable template, in file order: every column but `merchant_id`
/// (the page's merchant is the rows' merchant).
pub const TEMPLATE_COLUMNS: [Column; 7] =
    [Column::Code, Column::Serial, Column::Sku, Column::Points, Column::SkuName, Column::BatchCode, Column::Price];

/// A template CSV: the header and two example rows that stage as they are.
pub fn template_csv() -> String {
    let header: Vec<&str> = TEMPLATE_COLUMNS.iter().map(|c| c.name()).collect();
    format!(
        "{}\nX7KQ-2M9P-4TZA,SN-000123,GIFT-50,500,Gift card 50,SPRING-2026,49.90\n\
         R3DV-8WQN-6LHC,SN-000124,GIFT-20,200,Gift card 20,SPRING-2026,19.90\n",
        header.join(",")
    )
}

/// Why a whole file cannot be staged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum FileProblem {
    #[error("the file is empty")]
    Empty,
    #[error("the file has a header but no rows")]
    NoRows,
    #[error("there is no code column (columns found: {found})")]
    MissingCode { found: String },
    #[error("the column {0} appears more than once")]
    DuplicateColumn(String),
    #[error("line {line}: the file is not UTF-8 text: choose the encoding it was saved in")]
    NotUtf8 { line: u64 },
    /// The header record breaks the quoting rules or the limits.
    #[error("line {line}, the header: {problem}")]
    MalformedHeader { line: u64, problem: RecordProblem },
}

/// Where each known column sits in a file's rows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderMap {
    positions: [Option<usize>; 8],
    /// The file's column count.
    pub width: usize,
    /// The recognised columns, in file order, by their canonical names.
    pub known: Vec<String>,
    /// Headers that name no known column, as written.
    pub unknown: Vec<String>,
}

impl HeaderMap {
    /// Reads the header record; fails without a `code` column or with a column twice.
    pub fn new(header: &Record<'_>) -> Result<Self, FileProblem> {
        Self::read(header, |_, name| Column::from_header(name))
    }

    /// Reads the header record as `mapping` says (column `i` of the file is `mapping.fields[i]`,
    /// ignored when `None` or past its end); fails when the mapping stages no code or one
    /// column twice.
    pub fn mapped(header: &Record<'_>, mapping: &super::ColumnMapping) -> Result<Self, FileProblem> {
        if let Some(column) = mapping.duplicate() {
            return Err(FileProblem::DuplicateColumn(column.name().to_owned()));
        }
        Self::read(header, |i, _| mapping.fields.get(i).copied().flatten())
    }

    /// Reads the header record, `column_of` naming the column (if any) of each position and its
    /// header text; fails without a `code` column or with a column twice.
    fn read(header: &Record<'_>, column_of: impl Fn(usize, &str) -> Option<Column>) -> Result<Self, FileProblem> {
        if let Some(problem) = header.problem {
            return Err(FileProblem::MalformedHeader { line: header.line, problem });
        }
        let mut positions = [None; 8];
        let mut known = Vec::new();
        let mut unknown = Vec::new();
        for (i, raw) in header.fields().enumerate() {
            let name = std::str::from_utf8(raw).map_err(|_| FileProblem::NotUtf8 { line: header.line })?;
            match column_of(i, name) {
                Some(column) if positions[column.index()].is_some() => {
                    return Err(FileProblem::DuplicateColumn(column.name().to_owned()));
                }
                Some(column) => {
                    positions[column.index()] = Some(i);
                    known.push(column.name().to_owned());
                }
                None if name.trim().is_empty() => {}
                None => unknown.push(name.trim().to_owned()),
            }
        }
        if positions[Column::Code.index()].is_none() {
            let found = known.iter().chain(&unknown).cloned().collect::<Vec<_>>().join(", ");
            return Err(FileProblem::MissingCode { found });
        }
        Ok(Self { positions, width: header.len(), known, unknown })
    }

    /// A map for the wire format's rows: the known columns but the merchant, in [`COLUMNS`]
    /// order (every staged row is the upload's merchant's).
    pub fn wire() -> Self {
        let mut positions = [None; 8];
        for (i, column) in COLUMNS[1..].iter().enumerate() {
            positions[column.index()] = Some(i);
        }
        Self {
            positions,
            width: COLUMNS.len() - 1,
            known: COLUMNS[1..].iter().map(|c| c.name().to_owned()).collect(),
            unknown: Vec::new(),
        }
    }

    pub fn has(&self, column: Column) -> bool {
        self.positions[column.index()].is_some()
    }

    fn position(&self, column: Column) -> Option<usize> {
        self.positions[column.index()]
    }
}

/// A row that will be staged: the merchant and every known field, trimmed, `None` when empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagedRow<'a> {
    pub merchant_id: Uuid,
    /// Indexed like [`COLUMNS`]; `fields[0]` (merchant id) is always `None` here.
    pub fields: [Option<&'a str>; 8],
}

impl<'a> StagedRow<'a> {
    pub fn get(&self, column: Column) -> Option<&'a str> {
        self.fields[column.index()]
    }

    /// The code (never empty in a staged row).
    pub fn code(&self) -> &'a str {
        self.get(Column::Code).unwrap_or_default()
    }
}

/// What becomes of one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RowOutcome<'a> {
    Staged(StagedRow<'a>),
    /// A row with an empty code (or nothing at all): left out, not an error.
    SkippedBlankCode,
    /// Not staged, with the reason a person can act on.
    Rejected(String),
    /// The row is not UTF-8: the whole file is refused.
    NotUtf8,
}

/// Checks one data row of a file whose header is `map`, for an upload to `merchant`: each cell
/// trimmed, and a report's formula prefix taken off ([`unprotect`]).
pub fn check_row<'a>(map: &HeaderMap, record: &Record<'a>, merchant: Uuid) -> RowOutcome<'a> {
    check_cells::<true>(map, record, merchant)
}

/// Checks again, on the server, a row the browser has checked and sent: its values are as
/// [`check_row`] left them, so nothing is taken off a second time (a file's `''=x` was staged
/// by the browser as `'=x`, and is stored as `'=x`).
pub fn recheck_row<'a>(map: &HeaderMap, record: &Record<'a>, merchant: Uuid) -> RowOutcome<'a> {
    check_cells::<false>(map, record, merchant)
}

/// [`check_row`] with `FROM_FILE`, or [`recheck_row`] without (a constant: no test per cell).
fn check_cells<'a, const FROM_FILE: bool>(map: &HeaderMap, record: &Record<'a>, merchant: Uuid) -> RowOutcome<'a> {
    if let Some(problem) = record.problem {
        return RowOutcome::Rejected(problem.to_string());
    }
    if record.len() > map.width {
        return RowOutcome::Rejected(format!("the row has {} fields, the header has {}", record.len(), map.width));
    }
    // One pass over the whole row is faster than one per field, and covers ignored columns.
    if std::str::from_utf8(record.bytes()).is_err() {
        return RowOutcome::NotUtf8;
    }
    let has_nul = record.bytes().contains(&0);
    let mut fields: [Option<&'a str>; 8] = [None; 8];
    for column in COLUMNS {
        let Some(raw) = map.position(column).and_then(|i| record.get(i)) else {
            continue;
        };
        let Ok(text) = std::str::from_utf8(raw) else {
            return RowOutcome::NotUtf8;
        };
        let text = if FROM_FILE { unprotect(text.trim()) } else { text.trim() };
        if !text.is_empty() {
            fields[column.index()] = Some(text);
        }
    }
    if fields[Column::Code.index()].is_none() {
        return RowOutcome::SkippedBlankCode;
    }
    for column in COLUMNS {
        if let Some(value) = fields[column.index()] {
            if value.len() > MAX_FIELD_BYTES {
                return RowOutcome::Rejected(format!("{} is longer than {MAX_FIELD_BYTES} bytes", column.name()));
            }
            // Valid UTF-8, but PostgreSQL's text cannot hold it: the database would refuse the
            // whole chunk with an encoding error. (Looked for per field only in a row that has
            // one: one pass over the row is cheaper than one per field.)
            if has_nul && value.contains('\0') {
                return RowOutcome::Rejected(format!("{} contains a NUL character (0x00)", column.name()));
            }
        }
    }
    let merchant_id = match fields[Column::MerchantId.index()].take() {
        None => merchant,
        Some(text) => match Uuid::try_parse(text) {
            Err(_) => return RowOutcome::Rejected(format!("merchant_id {text:?} is not a UUID")),
            Ok(id) if id != merchant => {
                return RowOutcome::Rejected(format!("merchant_id {id} is not the merchant this upload is for"))
            }
            Ok(id) => id,
        },
    };
    for column in [Column::Points, Column::Price] {
        if let Some(value) = fields[column.index()] {
            if !is_decimal(value) {
                return RowOutcome::Rejected(format!("{} {value:?} is not a number", column.name()));
            }
        }
    }
    RowOutcome::Staged(StagedRow { merchant_id, fields })
}

/// The characters that make a spreadsheet read a cell as a formula (OWASP CSV injection).
pub const FORMULA_STARTS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell as this app's reports write it: prefixed with `'` when it starts like a formula.
/// Codes can start with `-` or `+`, so the upload takes exactly that prefix off again
/// ([`unprotect`]): a report uploaded again stages the same codes.
pub fn protect(cell: &str) -> std::borrow::Cow<'_, str> {
    if cell.starts_with(FORMULA_STARTS) {
        format!("'{cell}").into()
    } else {
        cell.into()
    }
}

/// The inverse of [`protect`]: `'` followed by a formula character loses the `'`.
pub fn unprotect(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_STARTS) => rest,
        _ => cell,
    }
}

/// A plain decimal number: optional sign, digits with at most one point, at most 40 chars.
fn is_decimal(value: &str) -> bool {
    let digits = value.strip_prefix(['+', '-']).unwrap_or(value);
    let mut seen_digit = false;
    let mut seen_point = false;
    for byte in digits.bytes() {
        match byte {
            b'0'..=b'9' => seen_digit = true,
            b'.' if !seen_point => seen_point = true,
            _ => return false,
        }
    }
    seen_digit && value.len() <= 40
}

#[cfg(test)]
mod template {
    use super::*;
    use crate::csv::FileValidator;

    #[test]
    fn the_template_stages_its_example_rows_as_they_are() {
        let merchant = Uuid::from_u128(3);
        let mut staged = Vec::new();
        let mut validator = FileValidator::new(merchant);
        let mut each = |line: u64, row: &StagedRow<'_>| {
            staged.push((line, row.code().to_owned(), row.fields.iter().skip(1).all(Option::is_some)))
        };
        validator.feed(template_csv().as_bytes(), &mut each);
        let (report, _) = validator.finish(&mut each);
        assert!(report.is_valid() && report.unknown_columns.is_empty(), "{report:?}");
        assert_eq!((report.rows_staged, report.rows_rejected, report.rows_skipped()), (2, 0, 0));
        assert_eq!(report.columns, TEMPLATE_COLUMNS.iter().map(|c| c.name()).collect::<Vec<_>>());
        assert!(staged.iter().all(|(_, _, filled)| *filled), "every column filled: {staged:?}");
    }

    #[test]
    fn every_column_has_a_rule_and_only_code_is_required() {
        let required: Vec<&str> = COLUMNS.iter().filter(|c| c.rule().required).map(|c| c.name()).collect();
        assert_eq!(required, vec!["code"]);
        assert!(COLUMNS.iter().all(|c| !c.rule().holds.is_empty() && !c.rule().example.is_empty()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csv::RecordReader;

    const MERCHANT: Uuid = Uuid::from_u128(0x7faab812_e179_48c2_9707_0d8a9b2f84ea);

    /// Runs `check_row` over every data row of `csv`, rendering each outcome as text.
    fn outcomes(csv: &str) -> Vec<String> {
        let mut reader = RecordReader::new(super::super::detect_delimiter(csv.as_bytes()));
        let mut map = None;
        let mut out = Vec::new();
        let mut each = |r: Record<'_>| match &map {
            None => map = Some(HeaderMap::new(&r).unwrap()),
            Some(map) => out.push(match check_row(map, &r, MERCHANT) {
                RowOutcome::Staged(row) => {
                    format!(
                        "staged {}",
                        COLUMNS.iter().skip(1).map(|&c| row.get(c).unwrap_or("-")).collect::<Vec<_>>().join("|")
                    )
                }
                RowOutcome::SkippedBlankCode => "skipped".to_owned(),
                RowOutcome::Rejected(reason) => format!("rejected: {reason}"),
                RowOutcome::NotUtf8 => "not utf-8".to_owned(),
            }),
        };
        reader.feed(csv.as_bytes(), &mut each);
        reader.finish(&mut each);
        out
    }

    fn header(csv: &str) -> Result<HeaderMap, FileProblem> {
        let mut reader = RecordReader::new(b',');
        let mut found = None;
        let mut each = |r: Record<'_>| {
            if found.is_none() {
                found = Some(HeaderMap::new(&r));
            }
        };
        reader.feed(csv.as_bytes(), &mut each);
        reader.finish(&mut each);
        found.unwrap()
    }

    #[test]
    fn headers_match_case_insensitively_and_batch_id_is_batch_code() {
        let map = header(" Code ,SKU,Batch_ID,colour\n").unwrap();
        assert_eq!(map.known, vec!["code", "sku", "batch_code"]);
        assert_eq!(map.unknown, vec!["colour"]);
        assert!(map.has(Column::BatchCode));
        assert!(!map.has(Column::MerchantId));
    }

    #[test]
    fn a_file_without_a_code_column_or_with_a_column_twice_is_refused() {
        assert_eq!(header("sku,points\n"), Err(FileProblem::MissingCode { found: "sku, points".into() }));
        assert_eq!(header("code,batch_id,batch_code\n"), Err(FileProblem::DuplicateColumn("batch_code".into())));
    }

    #[test]
    fn missing_optional_columns_are_null_and_fields_are_trimmed() {
        assert_eq!(outcomes("code,points\n  ABC-1 , 10 \n"), vec!["staged ABC-1|-|-|10|-|-|-"]);
    }

    #[test]
    fn semicolon_and_tab_files_read_like_comma_files() {
        assert_eq!(outcomes("code;sku;price\nA;S1;9.5\n"), vec!["staged A|-|S1|-|-|-|9.5"]);
        assert_eq!(outcomes("code\tsku\tprice\nA\tS1\t9.5\n"), vec!["staged A|-|S1|-|-|-|9.5"]);
    }

    #[test]
    fn blank_codes_are_skipped_not_rejected() {
        assert_eq!(outcomes("code,sku\n,S1\n   ,S2\n,\n"), vec!["skipped", "skipped", "skipped"]);
    }

    #[test]
    fn an_invalid_merchant_id_or_another_merchants_row_is_rejected() {
        let other = Uuid::from_u128(42);
        let csv = format!("code,merchant_id\nA,not-a-uuid\nB,{other}\nC,{MERCHANT}\nD,\n");
        let got = outcomes(&csv);
        assert_eq!(got[0], "rejected: merchant_id \"not-a-uuid\" is not a UUID");
        assert!(
            got[1].starts_with("rejected: merchant_id 00000000-0000-0000-0000-00000000002a is not the merchant"),
            "{}",
            got[1]
        );
        assert_eq!(got[2], "staged C|-|-|-|-|-|-");
        assert_eq!(got[3], "staged D|-|-|-|-|-|-", "an empty merchant_id means the upload's merchant");
    }

    #[test]
    fn non_numeric_points_or_price_are_rejected() {
        let got = outcomes("code,points,price\nA,10,1.50\nB,ten,1\nC,1,1,5\nD,1e5,\nE,-3,+.5\n");
        assert_eq!(got[0], "staged A|-|-|10|-|-|1.50");
        assert_eq!(got[1], "rejected: points \"ten\" is not a number");
        assert_eq!(got[2], "rejected: the row has 4 fields, the header has 3");
        assert_eq!(got[3], "rejected: points \"1e5\" is not a number");
        assert_eq!(got[4], "staged E|-|-|-3|-|-|+.5");
    }

    #[test]
    fn a_nul_character_in_a_kept_column_is_rejected_and_in_an_ignored_one_is_not() {
        let got = outcomes("code,sku,note\nA,x\0y,fine\nB,ok,x\0y\n");
        assert_eq!(got, vec!["rejected: sku contains a NUL character (0x00)", "staged B|-|ok|-|-|-|-"]);
    }

    #[test]
    fn a_row_with_fewer_fields_than_the_header_has_nulls() {
        assert_eq!(outcomes("code,sku,points\nA\n"), vec!["staged A|-|-|-|-|-|-"]);
    }

    #[test]
    fn a_field_over_the_limit_is_rejected() {
        let csv = format!("code,sku\nA,{}\n", "s".repeat(MAX_FIELD_BYTES + 1));
        assert_eq!(outcomes(&csv), vec![format!("rejected: sku is longer than {MAX_FIELD_BYTES} bytes")]);
    }

    #[test]
    fn non_utf8_bytes_anywhere_in_a_row_are_reported() {
        let mut reader = RecordReader::new(b',');
        let mut map = None;
        let mut got = Vec::new();
        let mut each = |r: Record<'_>| match &map {
            None => map = Some(HeaderMap::new(&r).unwrap()),
            Some(map) => got.push(matches!(check_row(map, &r, MERCHANT), RowOutcome::NotUtf8)),
        };
        reader.feed(b"code,notes\nA,caf\xe9\n\xff\xfe,x\n", &mut each);
        reader.finish(&mut each);
        assert_eq!(got, vec![true, true]);
    }

    #[test]
    fn a_formula_prefix_from_a_report_comes_off_and_nothing_else_does() {
        for code in ["-5OFF", "+SALE", "=SUM(A1)", "@home", "\tTAB", "plain", "'quoted", "'", "a'-b"] {
            assert_eq!(unprotect(&protect(code)), code, "{code:?}");
        }
        assert_eq!(protect("-5OFF"), "'-5OFF");
        assert_eq!(protect("plain"), "plain");
        assert_eq!(protect("'quoted"), "'quoted");
        // A report uploaded again: its cells lose exactly the prefix the report added.
        assert_eq!(
            outcomes("code,points,status\n'-5OFF,-3,CLEAN\n'=1+1,2,CLEAN\n'plain,1,CLEAN\n"),
            ["staged -5OFF|-|-|-3|-|-|-", "staged =1+1|-|-|2|-|-|-", "staged 'plain|-|-|1|-|-|-"]
        );
    }
}
