//! A file's rejected rows as a CSV to fix and upload again: the file's own header plus
//! `error_line` and `error_reason`, and each row as it stood in the file, every cell
//! formula-neutralised as the reports are (the upload takes exactly that prefix off again).

use std::collections::{HashMap, HashSet};

use super::{protect, FileReport, RejectedRow, TextDecoder, TextEncoding, MAX_RECORD_BYTES};

/// A cell as the rejected-rows file writes it: neutralised, and quoted when it holds the
/// delimiter, a quote or a line break.
fn cell(value: &str, delimiter: char) -> String {
    let value = protect(value);
    if value.contains([delimiter, '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.into_owned()
    }
}

/// A well-formed row's fields as a line of the rejected-rows file.
pub(crate) fn row_line<'a>(fields: impl Iterator<Item = &'a str>, delimiter: char) -> String {
    fields.map(|f| cell(f, delimiter)).collect::<Vec<_>>().join(&delimiter.to_string())
}

/// A malformed line as it stood, each stretch between delimiters that starts like a formula
/// given the `'` prefix (its quoting is broken, so it cannot be re-quoted; the user fixes it).
fn neutralised_line(line: &str, delimiter: char) -> String {
    line.split(delimiter).map(|part| protect(part).into_owned()).collect::<Vec<_>>().join(&delimiter.to_string())
}

/// The columns a rejected-rows file adds after the file's own.
pub const REJECTS_COLUMNS: [&str; 2] = ["error_line", "error_reason"];

/// The rejected-rows file of a file with `report`: its header plus `error_line` and
/// `error_reason`, then every kept rejected row with its line and reason. A malformed row is
/// its line as found in `lines` (see [`LineFinder`]); UTF-8 with a BOM, in the file's delimiter.
pub fn rejected_rows_csv(report: &FileReport, rejects: &[RejectedRow], lines: &HashMap<i64, String>) -> String {
    let delimiter = report.delimiter.chars().next().unwrap_or(',');
    let d = delimiter.to_string();
    let mut out = String::from("\u{feff}");
    out.push_str(&row_line(report.header.iter().map(String::as_str), delimiter));
    for column in REJECTS_COLUMNS {
        out.push_str(&d);
        out.push_str(column);
    }
    out.push('\n');
    for row in rejects {
        let text = if row.malformed {
            lines.get(&row.line).map(|line| neutralised_line(line, delimiter)).unwrap_or_default()
        } else {
            row.raw.clone()
        };
        out.push_str(&format!("{text}{d}{}{d}{}\n", row.line, cell(&row.reason, delimiter)));
    }
    out
}

/// Finds the text of some lines of a file (its malformed rows' lines), read again slice by
/// slice in its encoding; each line kept up to [`MAX_RECORD_BYTES`] and a little.
pub struct LineFinder {
    wanted: HashSet<i64>,
    decoder: TextDecoder,
    line: i64,
    current: Vec<u8>,
    found: HashMap<i64, String>,
}

impl LineFinder {
    /// A finder of `lines` (1-based) in a file in `encoding` (`None`: UTF-8; a BOM decides).
    pub fn new(lines: impl IntoIterator<Item = i64>, encoding: Option<TextEncoding>) -> Self {
        Self {
            wanted: lines.into_iter().collect(),
            decoder: TextDecoder::new(encoding),
            line: 1,
            current: Vec::new(),
            found: HashMap::new(),
        }
    }

    /// Whether every wanted line is found (the rest of the file need not be read).
    pub fn is_done(&self) -> bool {
        self.found.len() == self.wanted.len()
    }

    /// Reads the next slice of the file.
    pub fn feed(&mut self, slice: &[u8]) {
        let mut decoder = std::mem::take(&mut self.decoder);
        let text = decoder.decode(slice, false);
        self.feed_text(text);
        self.decoder = decoder;
    }

    fn feed_text(&mut self, mut text: &[u8]) {
        while !text.is_empty() {
            let end = memchr::memchr(b'\n', text);
            let part = &text[..end.unwrap_or(text.len())];
            if self.wanted.contains(&self.line) {
                let room = (MAX_RECORD_BYTES + 16).saturating_sub(self.current.len());
                self.current.extend_from_slice(&part[..part.len().min(room)]);
            }
            let Some(end) = end else { return };
            self.end_line();
            text = &text[end + 1..];
        }
    }

    fn end_line(&mut self) {
        if self.wanted.contains(&self.line) {
            let line = String::from_utf8_lossy(&self.current);
            self.found.insert(self.line, line.strip_suffix('\r').unwrap_or(&line).to_owned());
            self.current.clear();
        }
        self.line += 1;
    }

    /// Ends the file: the lines found, by number.
    pub fn finish(mut self) -> HashMap<i64, String> {
        let mut decoder = std::mem::take(&mut self.decoder);
        let text = decoder.decode(&[], true);
        self.feed_text(text);
        if !self.current.is_empty() || self.wanted.contains(&self.line) {
            self.end_line();
        }
        self.found
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::csv::{FileValidator, ReadOptions, StagedRow};

    /// The rejected-rows file of `bytes`, read as `options` say.
    fn rejects_file(bytes: &[u8], options: &ReadOptions) -> String {
        let mut validator = FileValidator::with_options(Uuid::from_u128(5), options);
        let mut ignore = |_: u64, _: &StagedRow<'_>| {};
        validator.feed(bytes, &mut ignore);
        let (report, rejects) = validator.finish(&mut ignore);
        let mut finder = LineFinder::new(rejects.iter().filter(|r| r.malformed).map(|r| r.line), options.encoding);
        for part in bytes.chunks(3) {
            finder.feed(part);
        }
        rejected_rows_csv(&report, &rejects, &finder.finish())
    }

    #[test]
    fn the_file_has_its_own_header_the_rows_as_they_were_and_each_rows_line_and_reason() {
        let file = "Code;Points;Name\r\nA1;5;ok\r\nA2;many;\"Fish; chips\"\r\nA3;\"unclosed;1\r\nA4;6;ok\r\n=SUM(A1);x;@me\r\n";
        assert_eq!(
            rejects_file(file.as_bytes(), &ReadOptions::default()),
            "\u{feff}Code;Points;Name;error_line;error_reason\n\
             A2;many;\"Fish; chips\";3;points \"\"many\"\" is not a number\n\
             A3;\"unclosed;1;4;a quote opens a field on this line and is never closed\n\
             '=SUM(A1);x;'@me;6;points \"\"x\"\" is not a number\n"
                .replace("is not a number\n", "is not a number\"\n")
                .replace(";points \"\"", ";\"points \"\"")
        );
    }

    #[test]
    fn fixed_and_uploaded_again_the_rows_stage_and_the_error_columns_are_ignored() {
        let file = "code,points\nA1,5\nA2,many\nA3,\"unclosed,1\nA4,6\n";
        let rejects = rejects_file(file.as_bytes(), &ReadOptions::default());
        let fixed = rejects.replace("A2,many", "A2,7").replace("A3,\"unclosed,1", "A3,1");
        let mut staged = Vec::new();
        let mut validator = FileValidator::new(Uuid::from_u128(5));
        let mut each = |_: u64, row: &StagedRow<'_>| {
            staged.push((row.code().to_owned(), row.get(crate::csv::Column::Points).map(str::to_owned)))
        };
        validator.feed(fixed.as_bytes(), &mut each);
        let (report, _) = validator.finish(&mut each);
        assert_eq!(report.unknown_columns, vec!["error_line", "error_reason"]);
        assert_eq!(report.rows_rejected, 0, "{fixed}");
        assert_eq!(staged, vec![("A2".to_owned(), Some("7".to_owned())), ("A3".to_owned(), Some("1".to_owned()))]);
    }

    #[test]
    fn a_malformed_line_of_a_windows_1252_file_is_found_decoded() {
        let file = b"code,sku_name\nA1,\"Caf\xe9\nA2,ok\n";
        let options = ReadOptions { encoding: Some(TextEncoding::Windows1252), ..ReadOptions::default() };
        assert_eq!(
            rejects_file(file, &options),
            "\u{feff}code,sku_name,error_line,error_reason\nA1,\"Café,2,a quote opens a field on this line and is never closed\n"
        );
    }

    #[test]
    fn the_last_line_without_a_newline_is_found() {
        let mut finder = LineFinder::new([2, 3], None);
        finder.feed(b"h\r\nsecond\r\nthi");
        finder.feed(b"rd");
        let found = finder.finish();
        assert_eq!((found[&2].as_str(), found[&3].as_str()), ("second", "third"));
    }
}
