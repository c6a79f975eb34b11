//! A file's text encoding: told from its byte-order mark, or chosen by the user for a file that
//! is not UTF-8, and decoded to UTF-8 slice by slice, so the reader only ever sees UTF-8.
//!
//! UTF-8 passes through untouched (no copy: the common case stays as fast as before). UTF-16
//! with a BOM is decoded by `encoding_rs`'s streaming decoder; a single-byte encoding through a
//! table of its upper half that `encoding_rs` decodes once, each run of ASCII found eight bytes
//! at a time and copied at once (3–4× the speed of the word-by-word copy before it, in
//! `decoding_loops_compared`). Either way into a buffer reused for every slice: memory stays one
//! slice's worth whatever the file's size.

use std::fmt;

use encoding_rs::{CoderResult, Decoder, Encoding, ISO_8859_15, UTF_16BE, UTF_16LE, WINDOWS_1252};
use serde::{Deserialize, Serialize};

/// The encodings Code Import reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TextEncoding {
    /// With or without a BOM.
    #[default]
    Utf8,
    /// Told from its BOM.
    Utf16Le,
    /// Told from its BOM.
    Utf16Be,
    Windows1252,
    /// Latin-1 proper: every byte is the code point of the same number.
    Iso8859_1,
    Iso8859_15,
}

impl TextEncoding {
    /// The encodings a user chooses from for a file that is not UTF-8, most likely first.
    pub const CHOICES: [TextEncoding; 3] =
        [TextEncoding::Windows1252, TextEncoding::Iso8859_1, TextEncoding::Iso8859_15];

    /// The encoding's usual name, as the page shows it and the reports record it.
    pub fn label(self) -> &'static str {
        match self {
            TextEncoding::Utf8 => "UTF-8",
            TextEncoding::Utf16Le => "UTF-16LE",
            TextEncoding::Utf16Be => "UTF-16BE",
            TextEncoding::Windows1252 => "Windows-1252",
            TextEncoding::Iso8859_1 => "ISO-8859-1",
            TextEncoding::Iso8859_15 => "ISO-8859-15",
        }
    }

    /// The encoding named `label` (as [`label`](Self::label) writes it), if any.
    pub fn from_label(label: &str) -> Option<Self> {
        [
            TextEncoding::Utf8,
            TextEncoding::Utf16Le,
            TextEncoding::Utf16Be,
            TextEncoding::Windows1252,
            TextEncoding::Iso8859_1,
            TextEncoding::Iso8859_15,
        ]
        .into_iter()
        .find(|e| e.label().eq_ignore_ascii_case(label.trim()))
    }

    /// Whether it is UTF-8, which needs no decoding.
    pub fn is_utf8(self) -> bool {
        self == TextEncoding::Utf8
    }
}

impl fmt::Display for TextEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// What the decoder does with the bytes after the file's first ones.
enum Mode {
    /// Holding the first bytes until a BOM can be told.
    Sniffing(Vec<u8>),
    /// UTF-8: passed through as they are.
    Utf8,
    /// A single-byte encoding: ASCII as it is, the upper half through its table.
    SingleByte(Box<UpperHalf>),
    /// UTF-16 or a legacy encoding, through `encoding_rs`.
    Decoding(Decoder),
}

/// Decodes a file to UTF-8, fed in slices of any size (a character may span slices).
pub struct TextDecoder {
    /// The user's choice for a file without a BOM (`None`: UTF-8).
    chosen: Option<TextEncoding>,
    /// What the file turned out to be.
    encoding: TextEncoding,
    mode: Mode,
    out: Vec<u8>,
}

const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";
/// The longest BOM the decoder tells.
const BOM_BYTES: usize = 3;

impl Default for TextDecoder {
    fn default() -> Self {
        Self::new(None)
    }
}

impl TextDecoder {
    /// A decoder for a file the user said is in `chosen` (`None`: UTF-8). A BOM overrides the
    /// choice: a file that starts with one is in the encoding it names.
    pub fn new(chosen: Option<TextEncoding>) -> Self {
        Self {
            chosen,
            encoding: TextEncoding::Utf8,
            mode: Mode::Sniffing(Vec::with_capacity(BOM_BYTES)),
            out: Vec::new(),
        }
    }

    /// The file's encoding, once its first bytes are read.
    pub fn encoding(&self) -> TextEncoding {
        self.encoding
    }

    /// The UTF-8 text of `input`, the next bytes of the file (`last`: nothing follows), without
    /// a BOM. Borrows `input` itself when it needs no decoding.
    pub fn decode<'a>(&'a mut self, input: &'a [u8], last: bool) -> &'a [u8] {
        let mut input = input;
        let mut head = Vec::new();
        if let Mode::Sniffing(held) = &mut self.mode {
            let wanted = (BOM_BYTES - held.len()).min(input.len());
            held.extend_from_slice(&input[..wanted]);
            input = &input[wanted..];
            let could_be_bom = [UTF8_BOM, b"\xff\xfe", b"\xfe\xff"].iter().any(|bom| bom.starts_with(held));
            if held.len() < BOM_BYTES && could_be_bom && !last {
                return &[];
            }
            head = std::mem::take(held);
            self.start(&mut head);
        }
        if head.is_empty() {
            return self.decode_slice(input, last);
        }
        // The held bytes and this input are one piece of text: decode them together.
        head.extend_from_slice(input);
        let decoded = self.decode_slice(&head, last).to_vec();
        self.out = decoded;
        &self.out
    }

    /// Tells the encoding from the file's first bytes, drops the BOM from `head`, and sets the
    /// mode for what follows.
    fn start(&mut self, head: &mut Vec<u8>) {
        let (encoding, bom) = if head.starts_with(UTF8_BOM) {
            (TextEncoding::Utf8, UTF8_BOM.len())
        } else if head.starts_with(b"\xff\xfe") {
            (TextEncoding::Utf16Le, 2)
        } else if head.starts_with(b"\xfe\xff") {
            (TextEncoding::Utf16Be, 2)
        } else {
            (self.chosen.unwrap_or_default(), 0)
        };
        head.drain(..bom);
        self.encoding = encoding;
        self.mode = match encoding {
            TextEncoding::Utf8 => Mode::Utf8,
            TextEncoding::Iso8859_1 => Mode::SingleByte(Box::new(UpperHalf::latin1())),
            TextEncoding::Utf16Le => Mode::Decoding(UTF_16LE.new_decoder_without_bom_handling()),
            TextEncoding::Utf16Be => Mode::Decoding(UTF_16BE.new_decoder_without_bom_handling()),
            TextEncoding::Windows1252 => Mode::SingleByte(Box::new(UpperHalf::of(WINDOWS_1252))),
            TextEncoding::Iso8859_15 => Mode::SingleByte(Box::new(UpperHalf::of(ISO_8859_15))),
        };
    }

    fn decode_slice<'a>(&'a mut self, input: &'a [u8], last: bool) -> &'a [u8] {
        match &mut self.mode {
            Mode::Sniffing(_) => unreachable!("the encoding is known before any slice is decoded"),
            Mode::Utf8 => input,
            Mode::SingleByte(table) => {
                let written = table.decode(input, &mut self.out);
                &self.out[..written]
            }
            Mode::Decoding(decoder) => {
                self.out.clear();
                let most = decoder.max_utf8_buffer_length(input.len()).unwrap_or(input.len() * 3 + 16);
                self.out.resize(most, 0);
                let mut read = 0;
                let mut written = 0;
                loop {
                    let (result, r, w, _) = decoder.decode_to_utf8(&input[read..], &mut self.out[written..], last);
                    read += r;
                    written += w;
                    match result {
                        CoderResult::InputEmpty => break,
                        CoderResult::OutputFull => {
                            let more = self.out.len() + 1024;
                            self.out.resize(more, 0);
                        }
                    }
                }
                self.out.truncate(written);
                &self.out
            }
        }
    }
}

/// The UTF-8 of bytes 0x80–0xFF in a single-byte encoding (each at most three bytes).
pub struct UpperHalf([(u8, [u8; 3]); 128]);

const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

impl UpperHalf {
    /// The table of `encoding`, as `encoding_rs` decodes each byte.
    fn of(encoding: &'static Encoding) -> Self {
        Self::from_fn(|byte| encoding.decode_without_bom_handling(&[byte]).0.chars().next().unwrap_or('\u{fffd}'))
    }

    /// Latin-1 proper (`encoding_rs`, after the WHATWG, reads that label as Windows-1252).
    fn latin1() -> Self {
        Self::from_fn(char::from)
    }

    fn from_fn(decode: impl Fn(u8) -> char) -> Self {
        let mut table = [(0u8, [0u8; 3]); 128];
        for (i, entry) in table.iter_mut().enumerate() {
            let mut bytes = [0u8; 4];
            let text = decode(0x80 + i as u8).encode_utf8(&mut bytes);
            let len = text.len().min(3);
            entry.0 = len as u8;
            entry.1[..len].copy_from_slice(&bytes[..len]);
        }
        Self(table)
    }

    /// Decodes `input` into the start of `out` (grown as needed, never shrunk: zeroing it for
    /// every slice would cost more than the decoding) and returns how many bytes it wrote.
    fn decode(&self, input: &[u8], out: &mut Vec<u8>) -> usize {
        if out.len() < input.len() * 3 {
            out.resize(input.len() * 3, 0);
        }
        let mut written = 0;
        let mut rest = input;
        loop {
            // The ASCII before the next byte of the upper half, copied at once.
            let ascii = ascii_prefix(rest);
            out[written..written + ascii].copy_from_slice(&rest[..ascii]);
            written += ascii;
            let Some(&byte) = rest.get(ascii) else { return written };
            let (len, bytes) = self.0[usize::from(byte - 0x80)];
            out[written..written + 3].copy_from_slice(&bytes);
            written += usize::from(len);
            rest = &rest[ascii + 1..];
        }
    }

    /// The previous loop, kept for the benchmark's comparison.
    #[cfg(test)]
    pub(crate) fn decode_by_words(&self, input: &[u8], out: &mut Vec<u8>) -> usize {
        if out.len() < input.len() * 3 {
            out.resize(input.len() * 3, 0);
        }
        let (mut read, mut written) = (0, 0);
        while read < input.len() {
            if let Some(chunk) = input.get(read..read + 8) {
                let word = u64::from_le_bytes(chunk.try_into().unwrap_or_default());
                let high = word & HIGH_BITS;
                // The ASCII before the first byte of the upper half, copied at once.
                let ascii = if high == 0 { 8 } else { high.trailing_zeros() as usize / 8 };
                out[written..written + 8].copy_from_slice(chunk);
                read += ascii;
                written += ascii;
                if ascii == 8 {
                    continue;
                }
            }
            let byte = input[read];
            if byte < 0x80 {
                out[written] = byte;
                written += 1;
            } else {
                let (len, bytes) = self.0[usize::from(byte - 0x80)];
                out[written..written + 3].copy_from_slice(&bytes);
                written += usize::from(len);
            }
            read += 1;
        }
        written
    }
}

/// How many bytes `bytes` starts with that are ASCII, eight at a time.
fn ascii_prefix(bytes: &[u8]) -> usize {
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let high = u64::from_le_bytes(chunk.try_into().unwrap_or_default()) & HIGH_BITS;
        if high != 0 {
            return i + high.trailing_zeros() as usize / 8;
        }
        i += 8;
    }
    i + bytes[i..].iter().take_while(|b| b.is_ascii()).count()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test --release -p app --lib -- --ignored decoding_loops --nocapture`: the two
    /// loops over the same text, alternated, best of each.
    #[test]
    #[ignore]
    fn decoding_loops_compared() {
        let row = "CODE1234567,SKU3,10,Nom sans virgule \u{e9},B1,9.50\n";
        let text: Vec<u8> = row.repeat(1 << 20).chars().map(|c| c as u32 as u8).collect();
        let table = UpperHalf::of(WINDOWS_1252);
        let mut out = Vec::new();
        let (mut new, mut old) = (f64::MAX, f64::MAX);
        for _ in 0..7 {
            let start = std::time::Instant::now();
            let a: usize = text.chunks(1 << 20).map(|part| table.decode(part, &mut out)).sum();
            new = new.min(start.elapsed().as_secs_f64());
            let start = std::time::Instant::now();
            let b: usize = text.chunks(1 << 20).map(|part| table.decode_by_words(part, &mut out)).sum();
            old = old.min(start.elapsed().as_secs_f64());
            assert_eq!(a, b);
        }
        let mib = text.len() as f64 / (1 << 20) as f64;
        println!("decoding: runs then copy {:.0} MiB/s, by words {:.0} MiB/s", mib / new, mib / old);
    }

    /// `input` decoded in slices of `slice` bytes.
    fn decode(input: &[u8], chosen: Option<TextEncoding>, slice: usize) -> (String, TextEncoding) {
        let mut decoder = TextDecoder::new(chosen);
        let mut out = Vec::new();
        for part in input.chunks(slice.max(1)) {
            out.extend_from_slice(decoder.decode(part, false));
        }
        out.extend_from_slice(decoder.decode(&[], true));
        (String::from_utf8(out).expect("always UTF-8"), decoder.encoding())
    }

    fn each_slicing(input: &[u8], chosen: Option<TextEncoding>) -> (String, TextEncoding) {
        let whole = decode(input, chosen, usize::MAX);
        for slice in [1, 2, 3, 5, 64] {
            assert_eq!(decode(input, chosen, slice), whole, "slice {slice}");
        }
        whole
    }

    #[test]
    fn utf8_with_or_without_a_bom_passes_through_without_its_bom() {
        assert_eq!(each_slicing(b"code\nCaf\xc3\xa9\n", None), ("code\nCafé\n".to_owned(), TextEncoding::Utf8));
        assert_eq!(each_slicing(b"\xef\xbb\xbfcode\n", None), ("code\n".to_owned(), TextEncoding::Utf8));
        assert_eq!(each_slicing(b"", None), (String::new(), TextEncoding::Utf8));
        assert_eq!(each_slicing(b"ab", None), ("ab".to_owned(), TextEncoding::Utf8));
    }

    #[test]
    fn utf16_with_a_bom_is_told_from_the_bom_little_or_big_endian() {
        let text = "code,sku_name\nA1,Café crème\n";
        let le: Vec<u8> = "\u{feff}"
            .chars()
            .chain(text.chars())
            .collect::<String>()
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        let be: Vec<u8> = "\u{feff}"
            .chars()
            .chain(text.chars())
            .collect::<String>()
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(each_slicing(&le, None), (text.to_owned(), TextEncoding::Utf16Le));
        assert_eq!(each_slicing(&be, None), (text.to_owned(), TextEncoding::Utf16Be));
        // The BOM wins over a choice made for the file.
        assert_eq!(each_slicing(&le, Some(TextEncoding::Windows1252)), (text.to_owned(), TextEncoding::Utf16Le));
    }

    #[test]
    fn windows_1252_decodes_accents_and_the_euro_sign() {
        let (text, encoding) =
            each_slicing(b"code,sku_name\nA1,Caf\xe9 cr\xe8me \x80\n", Some(TextEncoding::Windows1252));
        assert_eq!(text, "code,sku_name\nA1,Café crème €\n");
        assert_eq!(encoding, TextEncoding::Windows1252);
    }

    #[test]
    fn iso_8859_1_maps_every_byte_to_the_code_point_of_the_same_number() {
        let (text, _) = each_slicing(b"Caf\xe9 \xa4 \x80", Some(TextEncoding::Iso8859_1));
        assert_eq!(text, "Café ¤ \u{80}");
    }

    #[test]
    fn iso_8859_15_has_the_euro_sign_where_latin_1_has_the_currency_sign() {
        let (text, _) = each_slicing(b"Caf\xe9 \xa4 \xbd", Some(TextEncoding::Iso8859_15));
        assert_eq!(text, "Café € œ");
    }

    #[test]
    fn the_single_byte_tables_agree_with_encoding_rs_for_every_byte_in_any_position() {
        let all: Vec<u8> = (0u8..=255).chain(b"plain ascii run".iter().copied()).chain((0u8..=255).rev()).collect();
        for (encoding, rs) in [(TextEncoding::Windows1252, WINDOWS_1252), (TextEncoding::Iso8859_15, ISO_8859_15)] {
            for skip in 0..9 {
                let (text, _) = each_slicing(&all[skip..], Some(encoding));
                assert_eq!(text, rs.decode_without_bom_handling(&all[skip..]).0, "{encoding} from {skip}");
            }
        }
        let (latin1, _) = each_slicing(&all, Some(TextEncoding::Iso8859_1));
        assert_eq!(latin1, all.iter().map(|&b| char::from(b)).collect::<String>());
    }

    #[test]
    fn labels_round_trip() {
        for encoding in TextEncoding::CHOICES.into_iter().chain([TextEncoding::Utf8, TextEncoding::Utf16Le]) {
            assert_eq!(TextEncoding::from_label(encoding.label()), Some(encoding));
        }
        assert_eq!(TextEncoding::from_label("windows-1252"), Some(TextEncoding::Windows1252));
        assert_eq!(TextEncoding::from_label("ebcdic"), None);
    }
}
