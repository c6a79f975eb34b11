//! Incremental RFC 4180 parsing on top of `csv-core` (the `csv` crate's engine).

use csv_core::{ReadRecordResult, Reader, ReaderBuilder, Terminator};

/// The longest record accepted (all its fields together); a longer line is rejected whole.
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// The most fields a record may have.
pub const MAX_FIELDS: usize = 256;

/// The delimiter of a file, from its first line: whichever of comma, semicolon and tab occurs
/// most often outside quotes (comma on a tie or when none occurs).
pub fn detect_delimiter(start: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &byte in start {
        match byte {
            b'"' => quoted = !quoted,
            b'\n' if !quoted => break,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let candidates = [b',', b';', b'\t'];
    let best = (0..3).max_by_key(|&i| (counts[i], std::cmp::Reverse(i))).unwrap_or(0);
    if counts[best] == 0 {
        b','
    } else {
        candidates[best]
    }
}

/// One parsed record: its fields (raw bytes, quotes removed) and the line it starts on.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The 1-based line of the file the record starts on.
    pub line: u64,
    /// True when the record broke [`MAX_RECORD_BYTES`] or [`MAX_FIELDS`]; its fields are then
    /// incomplete and must not be used.
    pub oversized: bool,
    data: &'a [u8],
    ends: &'a [usize],
}

impl<'a> Record<'a> {
    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i`, if the record has it.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..end])
    }

    /// Every field's bytes, back to back (quotes and delimiters removed).
    pub fn bytes(&self) -> &'a [u8] {
        &self.data[..self.ends.last().copied().unwrap_or(0)]
    }

    pub fn fields(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }
}

/// Parses CSV fed in slices of any size (a record may span slices), calling back for every
/// complete record with the line it starts on. Blank lines are counted, not returned.
pub struct RecordReader {
    core: Reader,
    out: Vec<u8>,
    ends: Vec<usize>,
    nout: usize,
    nend: usize,
    oversized: bool,
    /// The line the next record may start on.
    next_line: u64,
    blank_lines: u64,
    finished: bool,
    /// The first bytes of the file, held until it is clear whether they are a BOM.
    head: Option<Vec<u8>>,
}

const BOM: &[u8] = b"\xef\xbb\xbf";

impl RecordReader {
    /// A reader for `delimiter`-separated fields with `"` quoting. A leading UTF-8 BOM is
    /// dropped. Records end at `\n`; a `\r` before it is left at the end of the last field,
    /// where trimming removes it.
    pub fn new(delimiter: u8) -> Self {
        let core = ReaderBuilder::new().delimiter(delimiter).terminator(Terminator::Any(b'\n')).build();
        Self {
            core,
            out: vec![0; 4 * 1024],
            ends: vec![0; 32],
            nout: 0,
            nend: 0,
            oversized: false,
            next_line: 1,
            blank_lines: 0,
            finished: false,
            head: Some(Vec::with_capacity(3)),
        }
    }

    /// Blank lines seen so far between records (lines with nothing at all on them).
    pub fn blank_lines(&self) -> u64 {
        self.blank_lines
    }

    /// Parses `input`, the next bytes of the file, calling `each` for every record it
    /// completes.
    pub fn feed(&mut self, mut input: &[u8], each: &mut impl FnMut(Record<'_>)) {
        if let Some(mut head) = self.head.take() {
            let wanted = (BOM.len() - head.len()).min(input.len());
            head.extend_from_slice(&input[..wanted]);
            input = &input[wanted..];
            if head.len() < BOM.len() && BOM.starts_with(&head) {
                self.head = Some(head);
                return;
            }
            if head != BOM {
                self.feed_raw(&head, each);
            }
        }
        self.feed_raw(input, each);
    }

    /// Ends the file: the last record (without a final newline) is returned too.
    pub fn finish(&mut self, each: &mut impl FnMut(Record<'_>)) {
        if let Some(head) = self.head.take() {
            // Fewer than three bytes in the whole file: whatever they are, they are data.
            self.head = None;
            self.feed_raw(&head, each);
        }
        if !self.finished {
            self.finished = true;
            while !self.step_final(each) {}
        }
    }

    fn feed_raw(&mut self, mut input: &[u8], each: &mut impl FnMut(Record<'_>)) {
        while !input.is_empty() {
            let consumed = self.step(input, each);
            input = &input[consumed..];
        }
    }

    /// One call into csv-core on non-empty input; returns the bytes consumed.
    fn step(&mut self, input: &[u8], each: &mut impl FnMut(Record<'_>)) -> usize {
        let (result, nin, nout, nend) =
            self.core.read_record(input, &mut self.out[self.nout..], &mut self.ends[self.nend..]);
        self.advance(nout, nend);
        match result {
            ReadRecordResult::Record => self.emit(true, each),
            ReadRecordResult::OutputFull => self.grow_output(),
            ReadRecordResult::OutputEndsFull => self.grow_ends(),
            ReadRecordResult::InputEmpty | ReadRecordResult::End => {}
        }
        nin
    }

    /// One call with empty input (end of file); true once csv-core says it is done.
    fn step_final(&mut self, each: &mut impl FnMut(Record<'_>)) -> bool {
        let (result, _, nout, nend) =
            self.core.read_record(&[], &mut self.out[self.nout..], &mut self.ends[self.nend..]);
        self.advance(nout, nend);
        match result {
            ReadRecordResult::Record => {
                self.emit(false, each);
                false
            }
            ReadRecordResult::OutputFull => {
                self.grow_output();
                false
            }
            ReadRecordResult::OutputEndsFull => {
                self.grow_ends();
                false
            }
            ReadRecordResult::InputEmpty | ReadRecordResult::End => true,
        }
    }

    fn advance(&mut self, nout: usize, nend: usize) {
        // Ends are positions in one contiguous record, even across OutputFull; when an
        // oversized record's bytes are dropped the positions no longer matter.
        self.nout += nout;
        self.nend += nend;
    }

    /// An oversized record keeps being parsed (to find where it ends) into the same space.
    fn grow_output(&mut self) {
        if self.out.len() < MAX_RECORD_BYTES {
            let size = (self.out.len() * 2).min(MAX_RECORD_BYTES);
            self.out.resize(size, 0);
        } else {
            self.oversized = true;
            self.nout = 0;
        }
    }

    fn grow_ends(&mut self) {
        if self.ends.len() < MAX_FIELDS {
            let size = (self.ends.len() * 2).min(MAX_FIELDS);
            self.ends.resize(size, 0);
        } else {
            self.oversized = true;
            self.nend = 0;
        }
    }

    fn emit(&mut self, terminated: bool, each: &mut impl FnMut(Record<'_>)) {
        let data = &self.out[..self.nout];
        let quoted_newlines = data.iter().filter(|&&b| b == b'\n').count() as u64;
        let last_line = if terminated { self.core.line() - 1 } else { self.core.line() };
        let first_line = last_line.saturating_sub(quoted_newlines).max(self.next_line);
        self.blank_lines += first_line - self.next_line;
        self.next_line = last_line + 1;
        // An oversized record's bytes were partly dropped: it carries no fields.
        let ends = if self.oversized { &[][..] } else { &self.ends[..self.nend] };
        each(Record { line: first_line, oversized: self.oversized, data, ends });
        self.nout = 0;
        self.nend = 0;
        self.oversized = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (line, fields) of every record, feeding `input` in slices of `slice` bytes.
    fn parse(input: &[u8], delimiter: u8, slice: usize) -> (Vec<(u64, Vec<String>)>, u64) {
        let mut reader = RecordReader::new(delimiter);
        let mut records = Vec::new();
        let mut each = |r: Record<'_>| {
            records.push((r.line, r.fields().map(|f| String::from_utf8_lossy(f).into_owned()).collect()));
        };
        for part in input.chunks(slice.max(1)) {
            reader.feed(part, &mut each);
        }
        reader.finish(&mut each);
        (records, reader.blank_lines())
    }

    fn rows(v: &[&[&str]]) -> Vec<Vec<String>> {
        v.iter().map(|r| r.iter().map(|s| s.to_string()).collect()).collect()
    }

    #[test]
    fn quoted_commas_quotes_and_newlines_are_one_field_at_any_slice_size() {
        let input = b"code,sku\n\"A,1\",\"say \"\"hi\"\"\"\n\"multi\nline\",x\nlast,y";
        for slice in [1, 2, 3, 7, 1024] {
            let (records, _) = parse(input, b',', slice);
            let lines: Vec<u64> = records.iter().map(|r| r.0).collect();
            let fields: Vec<Vec<String>> = records.into_iter().map(|r| r.1).collect();
            assert_eq!(
                fields,
                rows(&[&["code", "sku"], &["A,1", "say \"hi\""], &["multi\nline", "x"], &["last", "y"]]),
                "slice {slice}"
            );
            assert_eq!(lines, vec![1, 2, 3, 5], "slice {slice}");
        }
    }

    #[test]
    fn a_bom_is_dropped_and_crlf_leaves_a_trailing_cr_to_trim() {
        let (records, _) = parse(b"\xef\xbb\xbfcode;sku\r\nA;1\r\n", b';', 2);
        assert_eq!(records[0].1, vec!["code", "sku\r"]);
        assert_eq!(records[1], (2, vec!["A".to_owned(), "1\r".to_owned()]));
    }

    #[test]
    fn blank_lines_are_counted_and_line_numbers_stay_true() {
        let (records, blank) = parse(b"code\nA\n\n\nB\n\nC", b',', 3);
        assert_eq!(records.iter().map(|r| r.0).collect::<Vec<_>>(), vec![1, 2, 5, 7]);
        assert_eq!(blank, 3);
    }

    #[test]
    fn a_record_longer_than_the_limit_is_marked_and_the_next_one_is_whole() {
        let mut input = b"code\n".to_vec();
        input.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
        input.extend(b"\nB\n");
        let mut reader = RecordReader::new(b',');
        let mut seen = Vec::new();
        let mut each = |r: Record<'_>| seen.push((r.line, r.oversized, r.get(0).map(<[u8]>::to_vec)));
        reader.feed(&input, &mut each);
        reader.finish(&mut each);
        assert_eq!(seen.len(), 3);
        assert!(seen[1].1, "line 2 is oversized");
        assert_eq!(seen[2], (3, false, Some(b"B".to_vec())));
    }

    #[test]
    fn the_delimiter_is_detected_from_the_header() {
        assert_eq!(detect_delimiter(b"code,sku,points\nA;B;C"), b',');
        assert_eq!(detect_delimiter(b"code;sku;points\n"), b';');
        assert_eq!(detect_delimiter(b"code\tsku\n"), b'\t');
        assert_eq!(detect_delimiter(b"\"a;b\",c\n"), b',');
        assert_eq!(detect_delimiter(b"code\n"), b',');
    }
}
