//! A whole file through the rules, slice by slice, with the figures the page shows.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    check_row, detect_delimiter, ColumnMapping, FileProblem, HeaderMap, Record, RecordReader, RowOutcome, StagedRow,
    TextDecoder, TextEncoding,
};

/// How many errors a file's report shows.
pub const MAX_SHOWN_ERRORS: usize = 20;
/// How many rejected rows are kept for the downloadable list; past this only counted.
pub const MAX_KEPT_REJECTS: usize = 100_000;
/// How many of a file's first lines its report keeps, decoded, for the page's preview.
pub const PREVIEW_LINES: usize = 6;
/// The most bytes of one preview line kept.
const PREVIEW_LINE_BYTES: usize = 300;

/// What the user chose about how a file is read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReadOptions {
    /// The encoding of a file that is not UTF-8 (a BOM overrides it); `None`: UTF-8.
    pub encoding: Option<TextEncoding>,
    /// What the file's columns are staged as, when the user mapped them (else the header's
    /// names decide).
    #[serde(default)]
    pub mapping: Option<ColumnMapping>,
}

/// A row that will not be staged, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRow {
    pub line: i64,
    pub reason: String,
    /// The row's fields as a line of the rejected-rows file: in the file's delimiter, each cell
    /// formula-neutralised and quoted when it needs to be. Empty for a malformed row, whose
    /// line is read again from the file when the rows are downloaded.
    pub raw: String,
    /// True when the row breaks the quoting rules or the limits (its fields are unknown).
    #[serde(default)]
    pub malformed: bool,
}

/// What validating one file found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileReport {
    /// `,`, `;` or `\t`.
    pub delimiter: String,
    /// The encoding the file was read in (told from its BOM, or chosen by the user).
    #[serde(default)]
    pub encoding: TextEncoding,
    /// True when the file's first line is Excel's `sep=X`, which set the delimiter (it is
    /// not the header).
    #[serde(default)]
    pub sep_line: bool,
    /// The file's first lines as decoded, for the page to show (a wrong encoding shows).
    #[serde(default)]
    pub preview: Vec<String>,
    pub columns: Vec<String>,
    pub unknown_columns: Vec<String>,
    /// The header's fields as written in the file.
    #[serde(default)]
    pub header: Vec<String>,
    /// The mapping the file was read with, when its columns were mapped.
    #[serde(default)]
    pub mapping: Option<ColumnMapping>,
    pub rows_staged: i64,
    pub rows_skipped_blank_code: i64,
    pub rows_skipped_blank_line: i64,
    pub rows_rejected: i64,
    /// The file's lines after the header (a final newline starts no new line).
    #[serde(default)]
    pub data_lines: i64,
    /// The lines inside quoted fields of well-formed rows that span lines: each such row's
    /// second line and on.
    #[serde(default)]
    pub continuation_lines: i64,
    /// The first rejected rows, for the page.
    pub first_errors: Vec<RejectedRow>,
    /// Why the whole file is excluded, if it is.
    pub problem: Option<FileProblem>,
    pub bytes: i64,
}

impl FileReport {
    /// A file goes on to upload unless something excludes it whole.
    pub fn is_valid(&self) -> bool {
        self.problem.is_none()
    }

    pub fn rows_skipped(&self) -> i64 {
        self.rows_skipped_blank_code + self.rows_skipped_blank_line
    }

    /// Whether the user is to say how the file's columns map, before it is staged: its header
    /// names no `code` column, or names columns Code Import does not know, whose values would
    /// otherwise be left out without a word (`Product SKU` beside `code`). The two columns a
    /// rejected-rows file adds are its own, not the merchant's, and are left out silently. Once
    /// read with a mapping, it is mapped.
    pub fn needs_mapping(&self) -> bool {
        if self.mapping.is_some() || self.header.is_empty() {
            return false;
        }
        match &self.problem {
            Some(FileProblem::MissingCode { .. }) => true,
            None => self.unknown_columns.iter().any(|c| !super::rejects::REJECTS_COLUMNS.contains(&c.as_str())),
            Some(_) => false,
        }
    }

    /// The lines after the header that the counts account for: each is a row's first line
    /// (staged, skipped or rejected), a blank line, or a continuation line. Equal to
    /// [`data_lines`](Self::data_lines) for every file read to its end (no `problem`, or
    /// `NoRows`): no line goes missing, whatever its quotes.
    pub fn lines_accounted(&self) -> i64 {
        self.rows_staged
            + self.rows_skipped_blank_code
            + self.rows_skipped_blank_line
            + self.rows_rejected
            + self.continuation_lines
    }
}

/// Validates one file fed in slices. `each_staged` sees every row that will be staged, with
/// its line (the upload pass encodes them; the validation pass only counts).
pub struct FileValidator {
    merchant: Uuid,
    reader: Option<RecordReader>,
    map: Option<HeaderMap>,
    /// The lines the header starts and ends on.
    header_lines: (u64, u64),
    report: FileReport,
    rejects: Vec<RejectedRow>,
    delimiter: u8,
    /// The file's start, held until the header line is whole so the delimiter can be told.
    start: Vec<u8>,
    decoder: TextDecoder,
    /// True until the `sep=` line (when the file has one) has gone by.
    sep_pending: bool,
    /// The preview line being read.
    preview_line: Vec<u8>,
    mapping: Option<ColumnMapping>,
}

/// How much of a file's start is read to find the header line before the delimiter is
/// guessed from what there is.
const HEADER_SNIFF_BYTES: usize = 64 * 1024;

impl FileValidator {
    /// A validator for an upload to `merchant` (the merchant of rows without a `merchant_id`).
    pub fn new(merchant: Uuid) -> Self {
        Self::with_options(merchant, &ReadOptions::default())
    }

    /// A validator for an upload to `merchant` of a file read as `options` say.
    pub fn with_options(merchant: Uuid, options: &ReadOptions) -> Self {
        Self {
            merchant,
            reader: None,
            map: None,
            header_lines: (0, 0),
            report: FileReport::default(),
            rejects: Vec::new(),
            delimiter: b',',
            start: Vec::new(),
            decoder: TextDecoder::new(options.encoding),
            sep_pending: false,
            preview_line: Vec::new(),
            mapping: options.mapping.clone(),
        }
    }

    /// Whether the file's reading is over (a problem excludes it whole).
    pub fn is_excluded(&self) -> bool {
        self.report.problem.is_some()
    }

    /// Parses the next slice of the file.
    pub fn feed(&mut self, slice: &[u8], each_staged: &mut impl FnMut(u64, &StagedRow<'_>)) {
        self.report.bytes += slice.len() as i64;
        // An excluded file is read on only as far as its preview needs.
        if self.report.problem.is_some() && self.report.preview.len() >= PREVIEW_LINES {
            return;
        }
        let mut decoder = std::mem::take(&mut self.decoder);
        let text = decoder.decode(slice, false);
        self.feed_text(text, each_staged);
        self.decoder = decoder;
    }

    /// Keeps the first lines of the decoded text for the preview.
    fn preview(&mut self, mut text: &[u8]) {
        while self.report.preview.len() < PREVIEW_LINES && !text.is_empty() {
            let end = memchr::memchr(b'\n', text);
            let line = &text[..end.unwrap_or(text.len())];
            let room = PREVIEW_LINE_BYTES.saturating_sub(self.preview_line.len());
            self.preview_line.extend_from_slice(&line[..line.len().min(room)]);
            let Some(end) = end else { return };
            self.end_preview_line();
            text = &text[end + 1..];
        }
    }

    fn end_preview_line(&mut self) {
        let line = String::from_utf8_lossy(&self.preview_line);
        self.report.preview.push(line.trim_end_matches('\r').to_owned());
        self.preview_line.clear();
    }

    /// Parses the next slice of the file's text, decoded to UTF-8.
    fn feed_text(&mut self, slice: &[u8], each_staged: &mut impl FnMut(u64, &StagedRow<'_>)) {
        if self.report.preview.len() < PREVIEW_LINES {
            self.preview(slice);
        }
        if self.report.problem.is_some() {
            return;
        }
        match self.reader.take() {
            Some(mut reader) => {
                reader.feed(slice, &mut |record| self.record(record, each_staged));
                self.reader = Some(reader);
            }
            None => {
                self.start.extend_from_slice(slice);
                if self.start.contains(&b'\n') || self.start.len() >= HEADER_SNIFF_BYTES {
                    self.start_reading(each_staged);
                }
            }
        }
    }

    /// Tells the delimiter from the file's start and parses what was held back.
    fn start_reading(&mut self, each_staged: &mut impl FnMut(u64, &StagedRow<'_>)) {
        let start = std::mem::take(&mut self.start);
        let start_text = start.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&start);
        match sep_line(start_text) {
            Some(delimiter) => {
                self.delimiter = delimiter;
                self.sep_pending = true;
                self.report.sep_line = true;
            }
            None => self.delimiter = detect_delimiter(start_text),
        }
        let mut reader = RecordReader::new(self.delimiter);
        reader.feed(&start, &mut |record| self.record(record, each_staged));
        self.reader = Some(reader);
    }

    /// Ends the file and returns its report and every rejected row kept.
    pub fn finish(mut self, each_staged: &mut impl FnMut(u64, &StagedRow<'_>)) -> (FileReport, Vec<RejectedRow>) {
        if self.report.problem.is_none() || self.report.preview.len() < PREVIEW_LINES {
            let mut decoder = std::mem::take(&mut self.decoder);
            let text = decoder.decode(&[], true);
            self.feed_text(text, each_staged);
            self.decoder = decoder;
        }
        if !self.preview_line.is_empty() && self.report.preview.len() < PREVIEW_LINES {
            self.end_preview_line();
        }
        self.report.encoding = self.decoder.encoding();
        if self.reader.is_none() && !self.start.is_empty() {
            self.start_reading(each_staged);
        }
        if let Some(mut reader) = self.reader.take() {
            if self.report.problem.is_none() {
                reader.finish(&mut |record| self.record(record, each_staged));
            }
            self.report.rows_skipped_blank_line += reader.blank_lines() as i64;
            if self.map.is_some() {
                let (first, last) = self.header_lines;
                // Only blank lines (and the `sep=` line) come before the header: they are not
                // rows of the file.
                let sep = u64::from(self.report.sep_line);
                self.report.rows_skipped_blank_line -= (first - 1 - sep) as i64;
                self.report.data_lines = (reader.lines() - last) as i64;
            }
        }
        let data_rows = self.report.rows_staged + self.report.rows_skipped_blank_code + self.report.rows_rejected;
        if self.report.problem.is_none() {
            if self.map.is_none() {
                self.report.problem = Some(FileProblem::Empty);
            } else if data_rows == 0 {
                self.report.problem = Some(FileProblem::NoRows);
            }
        }
        self.report.delimiter = (self.delimiter as char).to_string();
        (self.report, self.rejects)
    }

    fn record(&mut self, record: Record<'_>, each_staged: &mut impl FnMut(u64, &StagedRow<'_>)) {
        if self.report.problem.is_some() {
            return;
        }
        if self.sep_pending {
            self.sep_pending = false;
            return;
        }
        let Some(map) = &self.map else {
            let map = match &self.mapping {
                Some(mapping) => HeaderMap::mapped(&record, mapping),
                None => HeaderMap::new(&record),
            };
            self.report.mapping = self.mapping.clone();
            self.report.header =
                record.fields().map(|f| String::from_utf8_lossy(f).trim_end_matches('\r').to_owned()).collect();
            match map {
                Ok(map) => {
                    self.header_lines = (record.line, record.last_line);
                    self.report.columns = map.known.clone();
                    self.report.unknown_columns = map.unknown.clone();
                    self.map = Some(map);
                }
                Err(problem) => self.report.problem = Some(problem),
            }
            return;
        };
        // A well-formed row's later lines are its own (a malformed row's are read again).
        self.report.continuation_lines += (record.last_line - record.line) as i64;
        // A CRLF file's empty line reaches here as one field holding `\r`.
        if record.len() == 1 && record.fields().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
            self.report.rows_skipped_blank_line += 1;
            return;
        }
        match check_row(map, &record, self.merchant) {
            RowOutcome::Staged(row) => {
                self.report.rows_staged += 1;
                each_staged(record.line, &row);
            }
            RowOutcome::SkippedBlankCode => self.report.rows_skipped_blank_code += 1,
            RowOutcome::Rejected(reason) => {
                self.report.rows_rejected += 1;
                let keep = self.rejects.len() < MAX_KEPT_REJECTS;
                let show = self.report.first_errors.len() < MAX_SHOWN_ERRORS;
                if keep || show {
                    let last = record.len().saturating_sub(1);
                    let fields: Vec<std::borrow::Cow<'_, str>> = record.fields().map(String::from_utf8_lossy).collect();
                    // A CRLF file's `\r` is the line's end, not the row's content.
                    let fields =
                        fields.iter().enumerate().map(|(i, f)| if i == last { f.trim_end_matches('\r') } else { f });
                    let raw = super::rejects::row_line(fields, self.delimiter as char);
                    let rejected =
                        RejectedRow { line: record.line as i64, reason, raw, malformed: record.problem.is_some() };
                    if show {
                        self.report.first_errors.push(rejected.clone());
                    }
                    if keep {
                        self.rejects.push(rejected);
                    }
                }
            }
            RowOutcome::NotUtf8 => self.report.problem = Some(FileProblem::NotUtf8 { line: record.line }),
        }
    }
}

/// The delimiter Excel's `sep=X` line names, when the file's text `start` opens with one (as
/// Excel writes it, quoted or not, maybe followed by more of the same delimiter).
fn sep_line(start: &[u8]) -> Option<u8> {
    let line = start.split(|&b| b == b'\n').next()?;
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let line = line.strip_prefix(b"\"").and_then(|l| l.strip_suffix(b"\"")).unwrap_or(line);
    if line.len() < 5 || !line[..4].eq_ignore_ascii_case(b"sep=") {
        return None;
    }
    match line[4..] {
        [delimiter @ (b',' | b';' | b'\t' | b'|'), ref rest @ ..] if rest.iter().all(|&b| b == delimiter) => {
            Some(delimiter)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MERCHANT: Uuid = Uuid::from_u128(7);

    fn validate(bytes: &[u8], slice: usize) -> (FileReport, Vec<(u64, String)>) {
        let mut staged = Vec::new();
        let mut each = |line: u64, row: &StagedRow<'_>| staged.push((line, row.code().to_owned()));
        let mut validator = FileValidator::new(MERCHANT);
        for part in bytes.chunks(slice.max(1)) {
            validator.feed(part, &mut each);
        }
        let (report, _) = validator.finish(&mut each);
        (report, staged)
    }

    #[test]
    fn a_mixed_file_is_counted_row_by_row_with_file_lines_in_the_errors() {
        let file = b"\xef\xbb\xbfCode;Points;Batch_ID;Extra\r\nA;1;B1;x\r\n\r\n;2;B1;x\r\nB;two;B1;x\r\nC;3;B2;x;y\r\n\"D;1\";4;B2;x\r\n";
        for slice in [1, 5, 64, 4096] {
            let (report, staged) = validate(file, slice);
            assert_eq!(report.delimiter, ";");
            assert_eq!(report.columns, vec!["code", "points", "batch_code"]);
            assert_eq!(report.unknown_columns, vec!["Extra"]);
            assert_eq!(report.rows_staged, 2, "slice {slice}");
            assert_eq!(report.rows_skipped_blank_line, 1);
            assert_eq!(report.rows_skipped_blank_code, 1);
            assert_eq!(report.rows_rejected, 2);
            assert_eq!(staged, vec![(2, "A".to_owned()), (7, "D;1".to_owned())]);
            let errors: Vec<(i64, &str)> = report.first_errors.iter().map(|e| (e.line, e.reason.as_str())).collect();
            assert_eq!(
                errors,
                vec![(5, "points \"two\" is not a number"), (6, "the row has 5 fields, the header has 4")]
            );
            assert_eq!(report.first_errors[0].raw, "B;two;B1;x");
            assert_eq!((report.data_lines, report.lines_accounted()), (6, 6));
            assert!(report.is_valid());
        }
    }

    #[test]
    fn a_file_that_is_not_utf8_is_refused_with_the_line() {
        let (report, _) = validate(b"code,name\nA,ok\nB,Caf\xe9\nC,ok\n", 4);
        assert_eq!(report.problem, Some(FileProblem::NotUtf8 { line: 3 }));
        assert!(!report.is_valid());
        assert!(report.problem.unwrap().to_string().contains("not UTF-8"));
    }

    /// The report and the staged (line, code, sku_name) of `bytes` read as `options` say, at
    /// every slice size (which must all agree).
    fn read_as(bytes: &[u8], options: &ReadOptions) -> (FileReport, Vec<(u64, String, Option<String>)>) {
        let run = |slice: usize| {
            let mut staged = Vec::new();
            let mut each = |line: u64, row: &StagedRow<'_>| {
                staged.push((line, row.code().to_owned(), row.get(super::super::Column::SkuName).map(str::to_owned)))
            };
            let mut validator = FileValidator::with_options(MERCHANT, options);
            for part in bytes.chunks(slice.clamp(1, bytes.len().max(1))) {
                validator.feed(part, &mut each);
            }
            let (report, _) = validator.finish(&mut each);
            (report, staged)
        };
        let whole = run(usize::MAX);
        for slice in [1, 2, 3, 5, 64] {
            let (report, staged) = run(slice);
            // An excluded file's counts are where reading stopped; its preview is whole.
            if whole.0.is_valid() {
                assert_eq!((&report, &staged), (&whole.0, &whole.1), "slice {slice}");
            }
            assert_eq!((report.preview, report.bytes), (whole.0.preview.clone(), whole.0.bytes), "slice {slice}");
        }
        whole
    }

    fn encoded(encoding: Option<TextEncoding>) -> ReadOptions {
        ReadOptions { encoding, ..ReadOptions::default() }
    }

    #[test]
    fn a_utf16_file_with_a_bom_is_read_little_or_big_endian() {
        let text = "\u{feff}code;sku_name\r\nA1;Café crème\r\nB2;Noël\r\n";
        let le: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        let be: Vec<u8> = text.encode_utf16().flat_map(u16::to_be_bytes).collect();
        for (bytes, encoding) in [(le, TextEncoding::Utf16Le), (be, TextEncoding::Utf16Be)] {
            let (report, staged) = read_as(&bytes, &ReadOptions::default());
            assert!(report.is_valid(), "{:?}", report.problem);
            assert_eq!(report.encoding, encoding);
            assert_eq!(report.delimiter, ";");
            assert_eq!(
                staged,
                vec![
                    (2, "A1".to_owned(), Some("Café crème".to_owned())),
                    (3, "B2".to_owned(), Some("Noël".to_owned()))
                ]
            );
            assert_eq!((report.data_lines, report.lines_accounted()), (2, 2));
            assert_eq!(report.bytes, bytes.len() as i64, "bytes as in the file");
        }
    }

    #[test]
    fn a_file_that_is_not_utf8_asks_for_its_encoding_and_previews_what_it_has() {
        let file = b"code,sku_name\nA1,Caf\xe9 cr\xe8me\nB2,ok\n";
        let (report, _) = read_as(file, &ReadOptions::default());
        assert_eq!(report.problem, Some(FileProblem::NotUtf8 { line: 2 }));
        assert_eq!(report.preview[0], "code,sku_name");
        assert_eq!(report.preview[1], "A1,Caf\u{fffd} cr\u{fffd}me", "the page shows what is wrong");
    }

    #[test]
    fn each_encoding_a_user_chooses_stages_its_text_as_utf8() {
        for (encoding, bytes, name) in [
            (TextEncoding::Windows1252, &b"Caf\xe9 cr\xe8me \x80"[..], "Café crème €"),
            (TextEncoding::Iso8859_1, &b"Caf\xe9 cr\xe8me \xa4"[..], "Café crème ¤"),
            (TextEncoding::Iso8859_15, &b"Caf\xe9 cr\xe8me \xa4"[..], "Café crème €"),
        ] {
            let mut file = b"code,sku_name\r\nA1,".to_vec();
            file.extend_from_slice(bytes);
            file.extend_from_slice(b"\r\n\"B\xe92\",x\r\n");
            let (report, staged) = read_as(&file, &encoded(Some(encoding)));
            assert!(report.is_valid(), "{encoding}: {:?}", report.problem);
            assert_eq!(report.encoding, encoding);
            assert_eq!(report.preview[1], format!("A1,{name}"));
            assert_eq!(
                staged,
                vec![(2, "A1".to_owned(), Some(name.to_owned())), (3, "Bé2".to_owned(), Some("x".to_owned()))]
            );
        }
    }

    #[test]
    fn a_utf8_file_stays_utf8_whatever_encoding_was_chosen_when_it_has_a_bom() {
        let (report, staged) =
            read_as(b"\xef\xbb\xbfcode,sku_name\nA1,Caf\xc3\xa9\n", &encoded(Some(TextEncoding::Windows1252)));
        assert_eq!(report.encoding, TextEncoding::Utf8);
        assert_eq!(staged, vec![(2, "A1".to_owned(), Some("Café".to_owned()))]);
        assert_eq!(report.columns, vec!["code", "sku_name"], "the BOM is not part of the first header");
    }

    #[test]
    fn excels_sep_line_sets_the_delimiter_and_is_not_the_header() {
        for file in [
            &b"sep=;\ncode;sku_name\nA1;x,y\n"[..],
            b"sep=;\r\ncode;sku_name\r\nA1;x,y\r\n",
            b"\"sep=;\"\ncode;sku_name\nA1;x,y\n",
            b"SEP=;;\ncode;sku_name\nA1;x,y",
            b"\xef\xbb\xbfsep=;\ncode;sku_name\nA1;x,y\n",
        ] {
            let (report, staged) = read_as(file, &ReadOptions::default());
            assert!(report.is_valid(), "{:?}: {:?}", String::from_utf8_lossy(file), report.problem);
            assert!(report.sep_line);
            assert_eq!(report.delimiter, ";");
            assert_eq!(report.columns, vec!["code", "sku_name"]);
            assert_eq!(staged, vec![(3, "A1".to_owned(), Some("x,y".to_owned()))], "line numbers count the sep line");
            assert_eq!((report.data_lines, report.lines_accounted(), report.rows_skipped_blank_line), (1, 1, 0));
        }
        let (report, staged) = read_as(b"sep=\t\ncode\tsku_name\n\nA1\tx;y\n", &ReadOptions::default());
        assert_eq!((report.delimiter.as_str(), report.sep_line), ("\t", true));
        assert_eq!(staged, vec![(4, "A1".to_owned(), Some("x;y".to_owned()))]);
        assert_eq!((report.data_lines, report.lines_accounted(), report.rows_skipped_blank_line), (2, 2, 1));
    }

    #[test]
    fn a_sep_line_in_a_windows_1252_file_works_too() {
        let (report, staged) =
            read_as(b"sep=,\ncode,sku_name\nA1,Caf\xe9\n", &encoded(Some(TextEncoding::Windows1252)));
        assert!(report.sep_line);
        assert_eq!(staged, vec![(3, "A1".to_owned(), Some("Café".to_owned()))]);
    }

    #[test]
    fn a_file_with_columns_code_import_does_not_know_is_to_be_mapped_before_it_is_staged() {
        let needs = |file: &str, options: &ReadOptions| read_as(file.as_bytes(), options).0.needs_mapping();
        let plain = ReadOptions::default();
        assert!(!needs("code,sku,points\nA1,S1,5\n", &plain), "every column known");
        assert!(needs("Voucher Code,Points\nA1,5\n", &plain), "no code column");
        assert!(needs("code,Product SKU,Loyalty Points\nA1,S1,5\n", &plain), "a SKU left out otherwise");
        assert!(!needs("code,sku_name,error_line,error_reason\nA1,N,2,why\n", &plain), "a rejected-rows file");
        assert!(needs("code,error_line,Colour\nA1,2,red\n", &plain), "a rejected-rows file with another column");
        let mapped = ReadOptions {
            mapping: Some(ColumnMapping {
                fields: vec![Some(super::super::Column::Code), Some(super::super::Column::Sku), None],
            }),
            ..ReadOptions::default()
        };
        assert!(!needs("code,Product SKU,Colour\nA1,S1,red\n", &mapped), "mapped, Colour ignored by choice");
        assert!(!needs("", &plain), "no header to map");
    }

    #[test]
    fn a_mapping_stages_the_files_own_columns_as_it_says_and_is_recorded() {
        use super::super::Column::*;
        let file = "Voucher Code,Product SKU,Loyalty Points,Batch,Note\nV1,S1,10,B1,x\nV2,S2,many,B1,y\n,S3,5,B2,z\n";
        let mapping = ColumnMapping { fields: vec![Some(Code), Some(Sku), Some(Points), Some(BatchCode), None] };
        let options = ReadOptions { mapping: Some(mapping.clone()), ..ReadOptions::default() };
        let mut staged = Vec::new();
        let mut validator = FileValidator::with_options(MERCHANT, &options);
        let mut each = |line: u64, row: &StagedRow<'_>| {
            staged.push((line, [Code, Sku, Points, BatchCode, SkuName].map(|c| row.get(c).map(str::to_owned))))
        };
        validator.feed(file.as_bytes(), &mut each);
        let (report, _) = validator.finish(&mut each);
        assert!(report.is_valid(), "{:?}", report.problem);
        assert_eq!(report.columns, vec!["code", "sku", "points", "batch_code"]);
        assert_eq!(report.unknown_columns, vec!["Note"]);
        assert_eq!(report.mapping, Some(mapping));
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(staged, vec![(2, [some("V1"), some("S1"), some("10"), some("B1"), None])]);
        assert_eq!((report.rows_rejected, report.rows_skipped_blank_code), (1, 1), "the same checks as ever");
        assert_eq!((report.data_lines, report.lines_accounted()), (3, 3));
        // Without it the file has no code column.
        let (plain, _) = read_as(file.as_bytes(), &ReadOptions::default());
        assert!(matches!(plain.problem, Some(FileProblem::MissingCode { .. })));
        // A mapping without a code, or with a column twice, excludes the file.
        for fields in [vec![None, Some(Sku)], vec![Some(Code), Some(Code)]] {
            let options = ReadOptions { mapping: Some(ColumnMapping { fields }), ..ReadOptions::default() };
            assert!(!read_as(file.as_bytes(), &options).0.is_valid());
        }
    }

    #[test]
    fn a_first_line_that_only_looks_like_a_sep_line_is_the_header() {
        for file in [&b"sep=:\nA\n"[..], b"sep=\nA\n", b"separator\nA\n", b"sep=;x\nA\n"] {
            let (report, _) = read_as(file, &ReadOptions::default());
            assert!(!report.sep_line, "{:?}", String::from_utf8_lossy(file));
            assert!(matches!(report.problem, Some(FileProblem::MissingCode { .. })), "{:?}", report.problem);
        }
    }

    #[test]
    fn empty_and_header_only_files_are_refused() {
        assert_eq!(validate(b"", 10).0.problem, Some(FileProblem::Empty));
        assert_eq!(validate(b"\n\n", 10).0.problem, Some(FileProblem::Empty));
        assert_eq!(validate(b"code,sku\n", 10).0.problem, Some(FileProblem::NoRows));
        assert_eq!(validate(b"code,sku", 10).0.problem, Some(FileProblem::NoRows));
    }

    #[test]
    fn a_file_without_a_code_column_is_refused() {
        let (report, _) = validate(b"sku,points\nA,1\n", 100);
        assert!(matches!(report.problem, Some(FileProblem::MissingCode { .. })));
    }

    #[test]
    fn quoted_newlines_do_not_shift_later_line_numbers() {
        let (report, staged) = validate(b"code,note\n\"A\",\"two\nlines\"\nB,x\nC,\"\"\"q\"\"\"\n", 3);
        assert_eq!(report.rows_staged, 3);
        assert_eq!(staged, vec![(2, "A".to_owned()), (4, "B".to_owned()), (5, "C".to_owned())]);
    }
}

#[cfg(test)]
mod malformed_quoting {
    use super::*;

    const MERCHANT: Uuid = Uuid::from_u128(7);
    const SLICES: [usize; 7] = [1, 2, 3, 7, 64, 4096, usize::MAX];

    /// The report, the staged (line, code) and the rejected (line, reason), feeding `bytes` in
    /// slices of `slice` bytes.
    fn validate(bytes: &[u8], slice: usize) -> (FileReport, Vec<(u64, String)>, Vec<(i64, String)>) {
        let mut staged = Vec::new();
        let mut each = |line: u64, row: &StagedRow<'_>| staged.push((line, row.code().to_owned()));
        let mut validator = FileValidator::new(MERCHANT);
        for part in bytes.chunks(slice.clamp(1, bytes.len().max(1))) {
            validator.feed(part, &mut each);
        }
        let (report, rejects) = validator.finish(&mut each);
        let rejected = rejects.into_iter().map(|r| (r.line, r.reason)).collect();
        (report, staged, rejected)
    }

    fn codes(v: &[(u64, &str)]) -> Vec<(u64, String)> {
        v.iter().map(|(line, code)| (*line, code.to_string())).collect()
    }

    #[test]
    fn an_unterminated_quote_rejects_its_line_and_the_lines_after_it_are_rows_of_their_own() {
        let file = b"code,sku,points\nA,\"foo,1\nB,S,2\nC,S,3\n";
        for slice in SLICES {
            let (report, staged, rejected) = validate(file, slice);
            assert_eq!(staged, codes(&[(3, "B"), (4, "C")]), "slice {slice}");
            assert_eq!(rejected, vec![(2, "a quote opens a field on this line and is never closed".to_owned())]);
            assert_eq!((report.rows_staged, report.rows_rejected, report.rows_skipped()), (2, 1, 0));
            assert_eq!((report.data_lines, report.continuation_lines, report.lines_accounted()), (3, 0, 3));
        }
    }

    #[test]
    fn an_unterminated_quote_at_line_4013_of_5001_costs_that_line_only() {
        let mut file = b"code,sku,points\n".to_vec();
        for line in 2..=5001 {
            let row = match line {
                4013 => "X,\"never closed,1\n".to_owned(),
                _ if line % 3 == 0 => format!(",S{line},1\n"),
                _ => format!("C{line},S,1\n"),
            };
            file.extend_from_slice(row.as_bytes());
        }
        for slice in SLICES {
            let (report, staged, rejected) = validate(&file, slice);
            assert_eq!(rejected, vec![(4013, "a quote opens a field on this line and is never closed".to_owned())]);
            let blank_codes = (2..=5001).filter(|line| line % 3 == 0).count() as i64;
            assert_eq!(report.rows_skipped_blank_code, blank_codes, "slice {slice}");
            assert_eq!(report.rows_staged, 5000 - blank_codes - 1);
            assert_eq!(report.rows_staged + report.rows_skipped() + report.rows_rejected, 5000);
            assert_eq!((report.data_lines, report.lines_accounted()), (5000, 5000));
            assert_eq!(staged.last(), Some(&(5000, "C5000".to_owned())), "line 5001 has a blank code");
        }
    }

    #[test]
    fn a_quote_inside_an_unquoted_field_or_text_after_a_closing_quote_rejects_the_row() {
        let file = b"code,sku,points\nA,12\" screen,3\nB,\"abc\"def,3\nC, \"x, y\",3\nD,\"ok, fine\",4\n";
        for slice in SLICES {
            let (_, staged, rejected) = validate(file, slice);
            assert_eq!(staged, codes(&[(5, "D")]), "slice {slice}");
            assert_eq!(
                rejected,
                vec![
                    (2, "a quote inside the unquoted field 2 (quote the whole field and double its quotes)".to_owned()),
                    (
                        3,
                        "text follows the closing quote of field 2 (a quote inside a quoted field is written twice)"
                            .to_owned()
                    ),
                    (4, "a quote inside the unquoted field 2 (quote the whole field and double its quotes)".to_owned()),
                ]
            );
        }
    }

    #[test]
    fn a_quoted_field_spanning_lines_is_one_row_and_later_lines_keep_their_numbers() {
        let file = b"code,sku,points\r\nA,\"two\r\nlines\",1\r\n\"B\",\"x\"\"y\",2\r\nC,\"three\n\nlines\",3\r\nD,S,4";
        for slice in SLICES {
            let (report, staged, rejected) = validate(file, slice);
            assert_eq!(staged, codes(&[(2, "A"), (4, "B"), (5, "C"), (8, "D")]), "slice {slice}");
            assert!(rejected.is_empty(), "{rejected:?}");
            assert_eq!(report.rows_skipped(), 0);
            assert_eq!((report.data_lines, report.continuation_lines, report.lines_accounted()), (7, 3, 7));
        }
    }

    #[test]
    fn blank_lines_before_the_header_are_not_rows_of_the_file() {
        for slice in SLICES {
            let (report, staged, _) = validate(b"\n\ncode\nA\n\nB\n", slice);
            assert_eq!(staged, codes(&[(4, "A"), (6, "B")]));
            assert_eq!(report.rows_skipped_blank_line, 1, "slice {slice}");
            assert_eq!((report.data_lines, report.lines_accounted()), (3, 3));
        }
    }

    #[test]
    fn a_malformed_header_refuses_the_file_with_its_line_and_problem() {
        let (report, staged, _) = validate(b"code,\"sku\nA,1\n", 4);
        assert!(staged.is_empty());
        let problem = report.problem.unwrap();
        assert_eq!(
            problem,
            FileProblem::MalformedHeader { line: 1, problem: super::super::RecordProblem::UnclosedQuote }
        );
        assert_eq!(problem.to_string(), "line 1, the header: a quote opens a field on this line and is never closed");
    }

    #[test]
    fn a_line_over_64_kib_is_rejected_and_the_lines_after_it_are_rows() {
        for start in ["", "\"", "A,\""] {
            let mut file = b"code,sku\nA,1\n".to_vec();
            file.extend_from_slice(start.as_bytes());
            file.extend(std::iter::repeat_n(b'x', super::super::MAX_RECORD_BYTES + 10));
            file.extend_from_slice(b"\nB,2\n\"C\",3\n");
            for slice in SLICES {
                let (report, staged, rejected) = validate(&file, slice);
                assert_eq!(staged, codes(&[(2, "A"), (4, "B"), (5, "C")]), "{start:?} slice {slice}");
                assert_eq!((report.data_lines, report.lines_accounted()), (4, 4));
                assert_eq!(rejected.len(), 1);
                assert_eq!(rejected[0].0, 3);
            }
        }
    }
}
