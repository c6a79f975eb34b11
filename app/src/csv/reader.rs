//! Incremental, strict RFC 4180 parsing, fed in slices of any size.
//!
//! A field is quoted when its first byte is `"`; it ends at the next `"` that is not doubled
//! and may hold the delimiter, `""`, CR and LF (a row may span lines). After the closing quote
//! only the delimiter, the line's end (`\n`, `\r\n`) or the end of the file may follow. A `"`
//! anywhere in an unquoted field, a quote never closed, a row over [`MAX_RECORD_BYTES`] or
//! with more than [`MAX_FIELDS`] fields make the record malformed: it is returned with its
//! [`RecordProblem`] and no fields, and reading resumes at the start of the line after the one
//! it starts on, with no quote open, so a stray quote costs its own line and nothing else.

use std::fmt;

use memchr::{memchr, memchr2};
use serde::{Deserialize, Serialize};

/// The longest record accepted, in bytes as it stands in the file (without the newline that
/// ends it); a longer one is malformed.
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

/// Why a record is malformed. Fields are numbered from 1, as a person counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RecordProblem {
    /// A quoted field is still open at the end of the file.
    UnclosedQuote,
    /// A quoted field was still open when the record passed [`MAX_RECORD_BYTES`].
    QuoteNotClosedWithinLimit,
    /// Something other than the delimiter or the line's end follows a closing quote.
    TextAfterQuote { field: u32 },
    /// A `"` in a field that does not start with one.
    QuoteInUnquotedField { field: u32 },
    /// The record is longer than [`MAX_RECORD_BYTES`].
    TooLong,
    /// The record has more than [`MAX_FIELDS`] fields.
    TooManyFields,
}

impl fmt::Display for RecordProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kib = MAX_RECORD_BYTES / 1024;
        match self {
            RecordProblem::UnclosedQuote => write!(f, "a quote opens a field on this line and is never closed"),
            RecordProblem::QuoteNotClosedWithinLimit => {
                write!(f, "a quote opens a field on this line and is not closed within {kib} KiB")
            }
            RecordProblem::TextAfterQuote { field } => write!(
                f,
                "text follows the closing quote of field {field} (a quote inside a quoted field is written twice)"
            ),
            RecordProblem::QuoteInUnquotedField { field } => {
                write!(f, "a quote inside the unquoted field {field} (quote the whole field and double its quotes)")
            }
            RecordProblem::TooLong => write!(f, "the row is longer than {kib} KiB"),
            RecordProblem::TooManyFields => write!(f, "the row has more than {MAX_FIELDS} fields"),
        }
    }
}

/// One parsed record: its fields (raw bytes, quotes removed) and the lines it stands on.
#[derive(Debug, Clone, Copy)]
pub struct Record<'a> {
    /// The 1-based line of the file the record starts on.
    pub line: u64,
    /// The line it ends on: later than `line` only for a record whose quoted fields hold
    /// newlines.
    pub last_line: u64,
    /// Why the record is malformed, if it is; it then has no fields, and `last_line` is
    /// `line` (the lines after it are read again as records of their own).
    pub problem: Option<RecordProblem>,
    /// The fields joined by the delimiter.
    data: &'a [u8],
    /// Where each field ends in `data`; the next one starts one byte (the delimiter) later.
    ends: &'a [usize],
}

impl<'a> Record<'a> {
    fn malformed(line: u64, problem: RecordProblem) -> Self {
        Record { line, last_line: line, problem: Some(problem), data: &[], ends: &[] }
    }

    /// A record on `line` whose fields lie in `data` one byte apart, field `i` ending at
    /// `ends[i]` (how the wire format lays out a row).
    pub(crate) fn joined(line: u64, data: &'a [u8], ends: &'a [usize]) -> Self {
        Record { line, last_line: line, problem: None, data, ends }
    }

    pub fn len(&self) -> usize {
        self.ends.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    /// Field `i`, if the record has it.
    pub fn get(&self, i: usize) -> Option<&'a [u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] + 1 };
        Some(&self.data[start..end])
    }

    /// Every field's bytes (quotes removed), joined by the delimiter.
    pub fn bytes(&self) -> &'a [u8] {
        &self.data[..self.ends.last().copied().unwrap_or(0)]
    }

    pub fn fields(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        (0..self.len()).filter_map(move |i| self.get(i))
    }
}

/// Where the parser stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Between records: at the start of a line, no quote open.
    Between,
    /// At the start of a field after a delimiter.
    FieldStart,
    Unquoted,
    Quoted,
    /// A `"` in a quoted field: its end, or the first of a doubled quote.
    QuoteInQuoted,
    /// A `\r` after a closing quote: only `\n` or the end of the file may follow.
    CrAfterQuote,
    /// Dropping the rest of a malformed record's line.
    SkipLine,
}

/// What the slow path leaves the main loop.
enum Step {
    /// Go on at this position of the current input.
    At(usize),
    /// A malformed record whose second line is in an earlier input: the kept bytes are to be
    /// read again, then the current input from its start.
    Replay,
}

/// Parses CSV fed in slices of any size (a record may span slices), calling back for every
/// complete record with the line it starts on. Blank lines are counted, not returned.
///
/// Lines without a quote, whole in the slice, are split where they stand, without a copy;
/// everything else goes through a state machine that copies the fields out. Memory stays
/// bounded: a record's fields (at most [`MAX_RECORD_BYTES`]), and, while a record that has
/// crossed a line spans slices, its bytes after its first line (as many), to read them again
/// should it turn out malformed.
pub struct RecordReader {
    delimiter: u8,
    /// [`MAX_RECORD_BYTES`] and [`MAX_FIELDS`], smaller in tests.
    max_bytes: usize,
    max_fields: usize,
    state: State,
    /// The current record's fields, joined by the delimiter (slow path).
    out: Vec<u8>,
    ends: Vec<usize>,
    /// The line of the next byte.
    line: u64,
    /// The line the current record starts on.
    record_line: u64,
    /// The current record's bytes so far.
    record_bytes: usize,
    /// True once the current record holds a newline (in a quoted field).
    crossed: bool,
    /// The bytes of a crossed record after its first line, from earlier slices.
    kept: Vec<u8>,
    blank_lines: u64,
    /// True when the last byte read is not a newline (the last line has no newline yet).
    mid_line: bool,
    finished: bool,
    /// The first bytes of the file, held until it is clear whether they are a BOM.
    head: Option<Vec<u8>>,
}

const BOM: &[u8] = b"\xef\xbb\xbf";

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The bytes of `word` equal to `byte`, each marked by its high bit (exact: no false ones).
#[inline(always)]
fn bytes_equal(word: u64, byte: u8) -> u64 {
    let x = word ^ (LOW_BITS * u64::from(byte));
    !(((x & !HIGH_BITS) + !HIGH_BITS) | x) & HIGH_BITS
}

/// Scans `input` for the end of its first line, eight bytes at a time: the newline's position
/// when the line ends before any quote (`None` when a quote or the end of the input comes
/// first), with the positions of the line's delimiters in `ends`: the first `most` of them,
/// enough to tell whether there are too many.
#[inline]
fn scan_line(input: &[u8], delimiter: u8, most: usize, ends: &mut Vec<usize>) -> Option<usize> {
    ends.clear();
    let mut at = 0;
    while let Some(chunk) = input.get(at..at + 8) {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
        let stops = bytes_equal(word, b'\n') | bytes_equal(word, b'"');
        let mut delimiters = bytes_equal(word, delimiter);
        if stops != 0 {
            // Only the delimiters before the first stop.
            delimiters &= (1u64 << stops.trailing_zeros()) - 1;
        }
        if ends.len() < most {
            while delimiters != 0 {
                ends.push(at + delimiters.trailing_zeros() as usize / 8);
                delimiters &= delimiters - 1;
            }
        }
        if stops != 0 {
            ends.truncate(most);
            let stop = at + stops.trailing_zeros() as usize / 8;
            return (input[stop] == b'\n').then_some(stop);
        }
        at += 8;
    }
    for (at, &byte) in input.iter().enumerate().skip(at) {
        match byte {
            b'\n' => {
                ends.truncate(most);
                return Some(at);
            }
            b'"' => return None,
            _ if byte == delimiter && ends.len() < most => ends.push(at),
            _ => {}
        }
    }
    None
}

impl RecordReader {
    /// A reader for `delimiter`-separated fields with `"` quoting. A leading UTF-8 BOM is
    /// dropped. Records end at `\n`; a `\r` before it is left at the end of an unquoted last
    /// field, where trimming removes it (after a closing quote it is dropped).
    pub fn new(delimiter: u8) -> Self {
        Self::with_limits(delimiter, MAX_RECORD_BYTES, MAX_FIELDS)
    }

    /// A reader with other limits than [`MAX_RECORD_BYTES`] and [`MAX_FIELDS`] (the problems
    /// it reports still name those), so that tests reach them with small inputs.
    pub(crate) fn with_limits(delimiter: u8, max_bytes: usize, max_fields: usize) -> Self {
        Self {
            delimiter,
            max_bytes: max_bytes.max(1),
            max_fields: max_fields.max(1),
            state: State::Between,
            out: Vec::with_capacity(4 * 1024),
            ends: Vec::with_capacity(32),
            line: 1,
            record_line: 1,
            record_bytes: 0,
            crossed: false,
            kept: Vec::new(),
            blank_lines: 0,
            mid_line: false,
            finished: false,
            head: Some(Vec::with_capacity(3)),
        }
    }

    /// Blank lines seen so far between records (lines with nothing at all on them).
    pub fn blank_lines(&self) -> u64 {
        self.blank_lines
    }

    /// The file's physical lines, once [`finish`](Self::finish) has run: its newlines, and one
    /// more when the last line has no newline.
    pub fn lines(&self) -> u64 {
        self.line - 1 + u64::from(self.mid_line)
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
            self.feed_raw(&head, each);
        }
        if self.finished {
            return;
        }
        self.finished = true;
        loop {
            match self.state {
                State::Between | State::SkipLine => return,
                State::Quoted => {
                    if let Step::Replay = self.malformed(RecordProblem::UnclosedQuote, 0, &mut None, each) {
                        self.replay(each);
                    }
                }
                State::FieldStart | State::Unquoted | State::QuoteInQuoted | State::CrAfterQuote => {
                    self.ends.push(self.out.len());
                    self.emit(each);
                    return;
                }
            }
        }
    }

    fn feed_raw(&mut self, input: &[u8], each: &mut impl FnMut(Record<'_>)) {
        let Some(&last) = input.last() else {
            return;
        };
        self.mid_line = last != b'\n';
        while self.parse(input, each) {
            self.replay(each);
        }
    }

    /// Reads the kept bytes of a malformed record again, from the start of its second line.
    fn replay(&mut self, each: &mut impl FnMut(Record<'_>)) {
        let kept = std::mem::take(&mut self.kept);
        // A record read from the kept bytes starts in them, and so does its second line.
        let again = self.parse(&kept, each);
        debug_assert!(!again, "a replay never asks for a replay");
        if self.kept.is_empty() {
            self.kept = kept;
            self.kept.clear();
        }
    }

    /// Parses `input` from its start; true when the kept bytes are to be read again first
    /// (see [`Step::Replay`]).
    fn parse(&mut self, input: &[u8], each: &mut impl FnMut(Record<'_>)) -> bool {
        let mut i = 0;
        // The second line of the current record, when it starts in `input`.
        let mut second_line: Option<usize> = None;
        while i < input.len() {
            match self.state {
                State::Between => {
                    // A line that ends before any quote is split where it stands.
                    if let Some(n) = scan_line(&input[i..], self.delimiter, self.max_fields, &mut self.ends) {
                        self.whole_line(&input[i..i + n], each);
                        self.line += 1;
                        i += n + 1;
                        continue;
                    }
                    self.record_line = self.line;
                    self.record_bytes = 0;
                    self.out.clear();
                    self.ends.clear();
                    self.state = State::FieldStart;
                }
                State::SkipLine => match memchr(b'\n', &input[i..]) {
                    Some(n) => {
                        i += n + 1;
                        self.line += 1;
                        self.state = State::Between;
                    }
                    None => i = input.len(),
                },
                _ => match self.bytes(input, i, &mut second_line, each) {
                    Step::At(next) => i = next,
                    Step::Replay => return true,
                },
            }
        }
        if self.crossed && !matches!(self.state, State::Between | State::SkipLine) {
            self.kept.extend_from_slice(&input[second_line.unwrap_or(0)..]);
        }
        false
    }

    /// A whole line without a quote (its newline not included), its delimiters in `ends` (as
    /// [`scan_line`] leaves them).
    #[inline]
    fn whole_line(&mut self, line: &[u8], each: &mut impl FnMut(Record<'_>)) {
        if line.is_empty() {
            self.blank_lines += 1;
            return;
        }
        // The delimiter that would start one field too many, if there is one.
        let extra = self.ends.get(self.max_fields - 1).copied();
        // Whichever limit the bytes pass first, as the byte by byte path would tell.
        let problem = match extra {
            Some(at) if at < self.max_bytes => Some(RecordProblem::TooManyFields),
            _ if line.len() > self.max_bytes => Some(RecordProblem::TooLong),
            _ => None,
        };
        if let Some(problem) = problem {
            each(Record::malformed(self.line, problem));
            return;
        }
        self.ends.push(line.len());
        each(Record { line: self.line, last_line: self.line, problem: None, data: line, ends: &self.ends });
    }

    /// The state machine, from `input[i]` until the record ends or the input does. Runs of
    /// plain bytes inside a field are copied whole.
    fn bytes(
        &mut self,
        input: &[u8],
        mut i: usize,
        second_line: &mut Option<usize>,
        each: &mut impl FnMut(Record<'_>),
    ) -> Step {
        let delimiter = self.delimiter;
        let mut state = self.state;
        let entry = i;
        // The record is too long if it takes the byte at `stop`, unless that byte ends it.
        let stop = input.len().min(i.saturating_add(self.max_bytes - self.record_bytes));
        loop {
            if i >= stop {
                if i == input.len() {
                    break;
                }
                if input[i] == b'\n' && state != State::Quoted {
                    return self.end_record(i, second_line, each);
                }
                let problem = if state == State::Quoted {
                    RecordProblem::QuoteNotClosedWithinLimit
                } else {
                    RecordProblem::TooLong
                };
                return self.malformed(problem, i, second_line, each);
            }
            let byte = input[i];
            match state {
                State::FieldStart if byte == b'"' => {
                    state = State::Quoted;
                    i += 1;
                }
                State::FieldStart | State::Unquoted => {
                    let run = input[i..stop].iter().position(|&b| b == delimiter || b == b'\n' || b == b'"');
                    let run_end = run.map_or(stop, |n| i + n);
                    self.out.extend_from_slice(&input[i..run_end]);
                    if run_end > i {
                        state = State::Unquoted;
                    }
                    i = run_end;
                    if i >= stop {
                        continue;
                    }
                    match input[i] {
                        b'\n' => return self.end_record(i, second_line, each),
                        b'"' => {
                            let problem = RecordProblem::QuoteInUnquotedField { field: self.ends.len() as u32 + 1 };
                            return self.malformed(problem, i, second_line, each);
                        }
                        _ => {
                            if let Some(step) = self.end_field(i, second_line, each) {
                                return step;
                            }
                            state = State::FieldStart;
                            i += 1;
                        }
                    }
                }
                State::Quoted => {
                    let run_end = memchr2(b'"', b'\n', &input[i..stop]).map_or(stop, |n| i + n);
                    self.out.extend_from_slice(&input[i..run_end]);
                    i = run_end;
                    if i >= stop {
                        continue;
                    }
                    if input[i] == b'"' {
                        state = State::QuoteInQuoted;
                    } else {
                        self.out.push(b'\n');
                        self.line += 1;
                        if !self.crossed {
                            self.crossed = true;
                            *second_line = Some(i + 1);
                        }
                    }
                    i += 1;
                }
                State::QuoteInQuoted => match byte {
                    b'"' => {
                        self.out.push(b'"');
                        state = State::Quoted;
                        i += 1;
                    }
                    b'\r' => {
                        state = State::CrAfterQuote;
                        i += 1;
                    }
                    b'\n' => return self.end_record(i, second_line, each),
                    _ if byte == delimiter => {
                        if let Some(step) = self.end_field(i, second_line, each) {
                            return step;
                        }
                        state = State::FieldStart;
                        i += 1;
                    }
                    _ => {
                        let problem = RecordProblem::TextAfterQuote { field: self.ends.len() as u32 + 1 };
                        return self.malformed(problem, i, second_line, each);
                    }
                },
                State::CrAfterQuote => {
                    if byte == b'\n' {
                        return self.end_record(i, second_line, each);
                    }
                    let problem = RecordProblem::TextAfterQuote { field: self.ends.len() as u32 + 1 };
                    return self.malformed(problem, i, second_line, each);
                }
                State::Between | State::SkipLine => unreachable!("the main loop handles {state:?}"),
            }
        }
        self.state = state;
        self.record_bytes += i - entry;
        Step::At(i)
    }

    /// Ends the current field at the delimiter `input[i]`; a step when that makes too many.
    #[inline]
    fn end_field(
        &mut self,
        i: usize,
        second_line: &mut Option<usize>,
        each: &mut impl FnMut(Record<'_>),
    ) -> Option<Step> {
        self.ends.push(self.out.len());
        if self.ends.len() == self.max_fields {
            return Some(self.malformed(RecordProblem::TooManyFields, i, second_line, each));
        }
        self.out.push(self.delimiter);
        None
    }

    /// Ends the current record at the newline `input[i]`.
    fn end_record(&mut self, i: usize, second_line: &mut Option<usize>, each: &mut impl FnMut(Record<'_>)) -> Step {
        self.ends.push(self.out.len());
        self.emit(each);
        *second_line = None;
        self.line += 1;
        Step::At(i + 1)
    }

    /// The current record, complete (its last field ended).
    fn emit(&mut self, each: &mut impl FnMut(Record<'_>)) {
        each(Record { line: self.record_line, last_line: self.line, problem: None, data: &self.out, ends: &self.ends });
        self.state = State::Between;
        if self.crossed {
            self.crossed = false;
            self.kept.clear();
        }
    }

    /// Reports the current record as malformed (at `input[i]`, not consumed) and resyncs: the
    /// rest of its first line is dropped, or, when the record has crossed a line, reading goes
    /// back to its second line.
    fn malformed(
        &mut self,
        problem: RecordProblem,
        i: usize,
        second_line: &mut Option<usize>,
        each: &mut impl FnMut(Record<'_>),
    ) -> Step {
        each(Record::malformed(self.record_line, problem));
        self.out.clear();
        self.ends.clear();
        if !self.crossed {
            self.state = State::SkipLine;
            return Step::At(i);
        }
        self.crossed = false;
        self.state = State::Between;
        self.line = self.record_line + 1;
        match second_line.take() {
            Some(start) => Step::At(start),
            None => Step::Replay,
        }
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

    /// One record as the tests compare them: lines, problem and fields.
    #[derive(Debug, Clone, PartialEq, Eq)]
    struct Seen {
        line: u64,
        last_line: u64,
        problem: Option<RecordProblem>,
        fields: Vec<String>,
    }

    /// Every record of `input` read in slices of `slice` bytes, and the reader's blank lines and
    /// lines.
    fn read(input: &[u8], slice: usize) -> (Vec<Seen>, u64, u64) {
        let mut reader = RecordReader::new(b',');
        let mut seen = Vec::new();
        let mut each = |r: Record<'_>| {
            let fields = r.fields().map(|f| String::from_utf8_lossy(f).into_owned()).collect();
            seen.push(Seen { line: r.line, last_line: r.last_line, problem: r.problem, fields });
        };
        for part in input.chunks(slice.clamp(1, input.len().max(1))) {
            reader.feed(part, &mut each);
        }
        reader.finish(&mut each);
        (seen, reader.blank_lines(), reader.lines())
    }

    const SLICES: [usize; 7] = [1, 2, 3, 7, 64, 4096, usize::MAX];

    /// `read` at every slice size, checked to agree with the whole input read at once.
    fn read_sliced(input: &[u8]) -> (Vec<Seen>, u64, u64) {
        let whole = read(input, usize::MAX);
        for slice in SLICES {
            assert_eq!(read(input, slice), whole, "slice {slice}");
        }
        whole
    }

    fn ok(line: u64, fields: &[&str]) -> Seen {
        Seen { line, last_line: line, problem: None, fields: fields.iter().map(|f| f.to_string()).collect() }
    }

    fn bad(line: u64, problem: RecordProblem) -> Seen {
        Seen { line, last_line: line, problem: Some(problem), fields: Vec::new() }
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
        let (records, _) = parse(b"\xef\xbb\xbfcode;sku\r\nA;1\r\n\"B\";\"2\"\r\n", b';', 2);
        assert_eq!(records[0].1, vec!["code", "sku\r"]);
        assert_eq!(records[1], (2, vec!["A".to_owned(), "1\r".to_owned()]));
        assert_eq!(records[2], (3, vec!["B".to_owned(), "2".to_owned()]), "after a closing quote the CR goes");
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
        let mut each = |r: Record<'_>| seen.push((r.line, r.problem, r.get(0).map(<[u8]>::to_vec)));
        reader.feed(&input, &mut each);
        reader.finish(&mut each);
        assert_eq!(seen.len(), 3);
        assert_eq!(seen[1], (2, Some(RecordProblem::TooLong), None));
        assert_eq!(seen[2], (3, None, Some(b"B".to_vec())));
    }

    #[test]
    fn the_delimiter_is_detected_from_the_header() {
        assert_eq!(detect_delimiter(b"code,sku,points\nA;B;C"), b',');
        assert_eq!(detect_delimiter(b"code;sku;points\n"), b';');
        assert_eq!(detect_delimiter(b"code\tsku\n"), b'\t');
        assert_eq!(detect_delimiter(b"\"a;b\",c\n"), b',');
        assert_eq!(detect_delimiter(b"code\n"), b',');
    }

    #[test]
    fn an_unterminated_quote_is_malformed_and_the_next_lines_are_records_of_their_own() {
        let (seen, _, lines) = read_sliced(b"code,points\nA,\"foo,1\nB,2\nC,3\n");
        assert_eq!(
            seen,
            vec![
                ok(1, &["code", "points"]),
                bad(2, RecordProblem::UnclosedQuote),
                ok(3, &["B", "2"]),
                ok(4, &["C", "3"])
            ]
        );
        assert_eq!(lines, 4);
    }

    #[test]
    fn a_quote_in_an_unquoted_field_or_text_after_a_closing_quote_is_malformed() {
        let input =
            b"A,12\" screen,3\nA,\"abc\"def,3\nA, \"x, y\",3\n\"x\"\r\n\"x\"\ry\n\"x\"\r,y\n\"a\"\"b\",\"\"\nz\"";
        let (seen, _, lines) = read_sliced(input);
        assert_eq!(
            seen,
            vec![
                bad(1, RecordProblem::QuoteInUnquotedField { field: 2 }),
                bad(2, RecordProblem::TextAfterQuote { field: 2 }),
                bad(3, RecordProblem::QuoteInUnquotedField { field: 2 }),
                ok(4, &["x"]),
                bad(5, RecordProblem::TextAfterQuote { field: 1 }),
                bad(6, RecordProblem::TextAfterQuote { field: 1 }),
                ok(7, &["a\"b", ""]),
                bad(8, RecordProblem::QuoteInUnquotedField { field: 1 }),
            ]
        );
        assert_eq!(lines, 8);
    }

    #[test]
    fn a_row_spanning_lines_keeps_its_lines_and_a_malformed_one_gives_its_later_lines_back() {
        // Line 2's row closes its quote on line 3, then breaks the rule: lines 3 and 4 are read
        // again as rows of their own (line 3 has a stray quote of its own).
        let input = b"a,b\n\"x\ny\"z,1\n\"q\n\nr\",2\nc,\"d\ne\"\n\"f\nlast\"";
        let (seen, blank, lines) = read_sliced(input);
        let span = |line, last_line, fields: &[&str]| Seen {
            line,
            last_line,
            problem: None,
            fields: fields.iter().map(|f| f.to_string()).collect(),
        };
        assert_eq!(
            seen,
            vec![
                ok(1, &["a", "b"]),
                bad(2, RecordProblem::TextAfterQuote { field: 1 }),
                bad(3, RecordProblem::QuoteInUnquotedField { field: 1 }),
                span(4, 6, &["q\n\nr", "2"]),
                span(7, 8, &["c", "d\ne"]),
                span(9, 10, &["f\nlast"]),
            ]
        );
        assert_eq!((blank, lines), (0, 10));
    }

    #[test]
    fn lines_inside_an_unterminated_quote_are_read_again_however_the_input_is_sliced() {
        let input = b"h\n\"a\nb\nc\"x\nd\n\ne,\"f\ng";
        let (seen, blank, lines) = read_sliced(input);
        assert_eq!(
            seen,
            vec![
                ok(1, &["h"]),
                bad(2, RecordProblem::TextAfterQuote { field: 1 }),
                ok(3, &["b"]),
                bad(4, RecordProblem::QuoteInUnquotedField { field: 1 }),
                ok(5, &["d"]),
                bad(7, RecordProblem::UnclosedQuote),
                ok(8, &["g"]),
            ]
        );
        assert_eq!((blank, lines), (1, 8));
    }

    #[test]
    fn a_line_over_the_limit_is_malformed_whether_or_not_a_quote_is_open_and_the_next_lines_are_whole() {
        for (start, problem) in [
            ("", RecordProblem::TooLong),
            ("\"", RecordProblem::QuoteNotClosedWithinLimit),
            ("A,\"x\"\"", RecordProblem::QuoteNotClosedWithinLimit),
            ("\"x\",", RecordProblem::TooLong),
        ] {
            let mut input = b"code,n\n".to_vec();
            input.extend_from_slice(start.as_bytes());
            input.extend(std::iter::repeat_n(b'x', MAX_RECORD_BYTES + 10));
            input.extend_from_slice(b"\"\"\nB,2\n\"C\",3\n");
            let (seen, _, lines) = read_sliced(&input);
            assert_eq!(seen, vec![ok(1, &["code", "n"]), bad(2, problem), ok(3, &["B", "2"]), ok(4, &["C", "3"])]);
            assert_eq!(lines, 4);
        }
    }

    #[test]
    fn a_quote_left_open_for_more_than_the_limit_gives_back_every_line_after_its_own() {
        let mut input = b"code,n\nA,\"never closed\n".to_vec();
        let rows = 2 * MAX_RECORD_BYTES / 10;
        for i in 0..rows {
            input.extend_from_slice(format!("r{i:06},x\n").as_bytes());
        }
        for slice in [1, 3, 4096, usize::MAX] {
            let (seen, _, lines) = read(&input, slice);
            assert_eq!(seen.len(), rows + 2, "slice {slice}");
            assert_eq!(seen[1], bad(2, RecordProblem::QuoteNotClosedWithinLimit));
            assert_eq!(seen[2], ok(3, &["r000000", "x"]));
            assert_eq!(seen[rows + 1], ok(rows as u64 + 2, &[&format!("r{:06}", rows - 1), "x"]));
            assert_eq!(lines, rows as u64 + 2);
        }
    }

    #[test]
    fn a_row_of_more_than_the_fields_allowed_is_malformed() {
        let most = vec!["x"; MAX_FIELDS].join(",");
        let all_but_one = vec!["x"; MAX_FIELDS - 1].join(",");
        let input = format!("{most}\n{most},x\n\"{most}\",{all_but_one}\n{most},\"x\"\nok");
        let (seen, _, _) = read_sliced(input.as_bytes());
        let problems: Vec<Option<RecordProblem>> = seen.iter().map(|s| s.problem).collect();
        let too_many = Some(RecordProblem::TooManyFields);
        assert_eq!(problems, vec![None, too_many, None, too_many, None]);
        assert_eq!(seen[0].fields.len(), MAX_FIELDS);
        assert_eq!(seen[2].fields.len(), MAX_FIELDS);
    }
}
