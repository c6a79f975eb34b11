//! The benchmark's batch: files shaped like the merchants' (four column layouts and
//! delimiters, quoted names, blank lines and blank codes, a few CRLF files) with codes as real
//! ones are — random strings of 10 to 16 characters of Crockford's base32 — and the merchant's
//! existing codes, drawn the same way, so new and existing codes interleave over the whole key
//! range. What the batch holds (the truth every step is checked against) comes from the
//! generator's own bookkeeping, not from the code under test.

use std::collections::HashSet;

use uuid::Uuid;

/// The real batch: 63 files, 15,520,410 data rows, against 5,356,971 existing codes.
const FULL_FILES: f64 = 63.0;
const FULL_ROWS: f64 = 15_520_410.0;
const FULL_EXISTING: f64 = 5_356_971.0;

/// Crockford's base32, the merchants' code alphabet.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Product names as merchants' files carry them, some needing CSV quotes: commas, doubled
/// quotes and letters beyond ASCII.
const SKU_NAMES: [&str; 6] =
    ["Gift card", "\"Café crème, 250 g\"", "\"Say \"\"hi\"\"\"", "Größe XL", "\"Crêpe, sucrée\"", "Smørbrød"];

/// What the generator put in the batch, to check every step's counts against.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Truth {
    pub staged: i64,
    pub internal: i64,
    pub database: i64,
    pub both: i64,
}

impl Truth {
    pub fn clean(&self) -> i64 {
        self.staged - self.internal - self.database + self.both
    }

    pub fn duplicates(&self) -> i64 {
        self.internal + self.database - self.both
    }
}

/// A deterministic generator (SplitMix64), so every run with a seed makes the same batch.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// A random code as its key: 10 to 16 symbols.
    fn code(&mut self) -> Key {
        let len = 10 + (self.next() % 7) as u32;
        let symbols = (u128::from(self.next()) << 64 | u128::from(self.next())) & ((1u128 << (5 * len)) - 1);
        Key(u128::from(len) << 80 | symbols)
    }
}

/// A code as a number: its length above bit 80, its symbols' 5-bit values below (first
/// symbol highest). Two codes are equal exactly when their keys are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Key(u128);

impl Key {
    pub fn text(self) -> String {
        let len = (self.0 >> 80) as u32;
        (0..len).rev().map(|i| ALPHABET[((self.0 >> (5 * i)) & 31) as usize] as char).collect()
    }
}

/// The batch's shape at a scale: how many files, rows and existing codes.
pub struct Batch {
    pub files: usize,
    pub rows: u64,
    pub existing: u64,
}

/// A generated batch: the files as bytes, the merchant's existing codes, and the truth.
pub struct Generated {
    pub files: Vec<Vec<u8>>,
    pub existing: Vec<Key>,
    pub truth: Truth,
}

/// What the generator has drawn so far, across files.
struct Drawn {
    existing: Vec<Key>,
    in_production: HashSet<Key>,
    /// How many existing codes were drawn into the batch (each at most once, in the random
    /// order they were made in, so their keys spread over the whole range).
    next_existing: usize,
    /// Codes drawn so far (the first million), for internal repeats.
    earlier: Vec<Key>,
    /// Every code staged so far.
    staged: HashSet<Key>,
    truth: Truth,
}

impl Batch {
    pub fn at(scale: f64) -> Self {
        Self {
            files: ((FULL_FILES * scale).round() as usize).max(1),
            rows: (FULL_ROWS * scale).round() as u64,
            existing: (FULL_EXISTING * scale).round() as u64,
        }
    }

    /// The batch for `merchant` from `seed`: files of ~28 % codes that exist in production,
    /// ~2 % repeats of earlier codes of the batch, the rest new codes, and a few blank lines
    /// and blank codes.
    pub fn generate(&self, merchant: Uuid, seed: u64) -> Generated {
        let mut rng = Rng(seed);
        let mut in_production = HashSet::with_capacity(self.existing as usize);
        let mut existing = Vec::with_capacity(self.existing as usize);
        while existing.len() < self.existing as usize {
            let key = rng.code();
            if in_production.insert(key) {
                existing.push(key);
            }
        }
        let mut drawn = Drawn {
            existing,
            in_production,
            next_existing: 0,
            earlier: Vec::new(),
            staged: HashSet::with_capacity(self.rows as usize),
            truth: Truth::default(),
        };
        let files = (0..self.files).map(|i| self.file(i, merchant, &mut rng, &mut drawn)).collect();
        Generated { files, existing: drawn.existing, truth: drawn.truth }
    }

    /// File `index` as bytes, in one of four column layouts; every tenth file (and every file
    /// of the `;` layout) ends its lines with CRLF.
    fn file(&self, index: usize, merchant: Uuid, rng: &mut Rng, drawn: &mut Drawn) -> Vec<u8> {
        let rows = self.rows / self.files as u64 + u64::from((index as u64) < self.rows % self.files as u64);
        let mut out = Vec::with_capacity(rows as usize * 70);
        let layout = index % 4;
        let eol = if layout == 2 || index % 10 == 7 { "\r\n" } else { "\n" };
        let header = match layout {
            0 => "code,serial,sku,points,sku_name,batch_code,price",
            1 => "merchant_id,code,sku,points,batch_id",
            2 => "\u{feff}Code;SKU;Points;Batch_Code",
            _ => "code\tserial\tprice",
        };
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(eol.as_bytes());
        let mut written = 0;
        while written < rows {
            if rng.chance(0.003) {
                out.extend_from_slice(eol.as_bytes());
                continue;
            }
            written += 1;
            let key = if !drawn.earlier.is_empty() && rng.chance(0.02) {
                drawn.earlier[(rng.next() % drawn.earlier.len() as u64) as usize]
            } else if drawn.next_existing < drawn.existing.len() && rng.chance(0.28) {
                drawn.next_existing += 1;
                drawn.existing[drawn.next_existing - 1]
            } else {
                loop {
                    let key = rng.code();
                    if !drawn.in_production.contains(&key) && !drawn.staged.contains(&key) {
                        break key;
                    }
                }
            };
            if drawn.earlier.len() < 1_000_000 {
                drawn.earlier.push(key);
            }
            let code = if rng.chance(0.002) { String::new() } else { key.text() };
            if !code.is_empty() {
                let internal = !drawn.staged.insert(key);
                let database = drawn.in_production.contains(&key);
                let truth = &mut drawn.truth;
                truth.staged += 1;
                truth.internal += i64::from(internal);
                truth.database += i64::from(database);
                truth.both += i64::from(internal && database);
            }
            let n = rng.next();
            let line = match layout {
                0 => format!(
                    "{code},S{n},SKU-{},{},{},B{index},{}.{:02}",
                    n % 50,
                    n % 500,
                    SKU_NAMES[(n % SKU_NAMES.len() as u64) as usize],
                    n % 90,
                    n % 100
                ),
                1 => format!("{merchant},{code},SKU-{},{},B{index}", n % 50, n % 500),
                2 => format!("{code};SKU-{};{};B{index}", n % 50, n % 500),
                _ => format!("{code}\tS{n}\t{}.50", n % 90),
            };
            out.extend_from_slice(line.as_bytes());
            out.extend_from_slice(eol.as_bytes());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// Counts what a batch holds by reading its files naively: lines split on their
    /// delimiter, the code column found by name (no quoted field comes before it in any
    /// layout), codes compared as text.
    fn count_by_reading(generated: &Generated) -> Truth {
        let in_production: HashSet<String> = generated.existing.iter().map(|k| k.text()).collect();
        let mut seen: HashMap<String, ()> = HashMap::new();
        let mut truth = Truth::default();
        for file in &generated.files {
            let text = std::str::from_utf8(file).expect("UTF-8");
            let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
            let header = lines.next().unwrap().trim_start_matches('\u{feff}');
            let delimiter = [';', '\t'].into_iter().find(|d| header.contains(*d)).unwrap_or(',');
            let column = header.split(delimiter).position(|h| h.eq_ignore_ascii_case("code")).unwrap();
            for line in lines {
                let code = line.split(delimiter).nth(column).unwrap_or("").trim();
                if code.is_empty() {
                    continue;
                }
                let internal = seen.insert(code.to_owned(), ()).is_some();
                let database = in_production.contains(code);
                truth.staged += 1;
                truth.internal += i64::from(internal);
                truth.database += i64::from(database);
                truth.both += i64::from(internal && database);
            }
        }
        truth
    }

    #[test]
    fn the_generators_truth_is_what_its_files_hold() {
        let batch = Batch { files: 12, rows: 60_000, existing: 20_000 };
        let generated = batch.generate(Uuid::from_u128(1), 0x5eed);
        let truth = &generated.truth;
        assert_eq!(&count_by_reading(&generated), truth);
        // The proportions the batch is meant to have.
        let share = |n: i64| n as f64 / truth.staged as f64;
        assert!((0.015..0.03).contains(&share(truth.internal)), "{truth:?}");
        assert!((0.25..0.31).contains(&share(truth.database)), "{truth:?}");
        assert!(truth.both > 0 && truth.staged < 60_000, "{truth:?}");
    }

    #[test]
    fn codes_are_random_base32_of_10_to_16_characters_and_interleave_with_existing_ones() {
        let batch = Batch { files: 4, rows: 20_000, existing: 10_000 };
        let generated = batch.generate(Uuid::from_u128(1), 7);
        let existing: Vec<String> = generated.existing.iter().map(|k| k.text()).collect();
        let mut lengths = HashSet::new();
        for code in &existing {
            assert!(code.bytes().all(|b| ALPHABET.contains(&b)), "{code}");
            lengths.insert(code.len());
        }
        assert_eq!(lengths, (10..=16).collect());
        // In key order, existing codes are spread over the whole range: each tenth of the
        // sorted existing codes holds about a tenth of the new codes too.
        let mut sorted = existing.clone();
        sorted.sort();
        let text = String::from_utf8(generated.files[3].clone()).unwrap();
        let new: Vec<&str> = text
            .lines()
            .skip(1)
            .filter_map(|l| l.split('\t').next())
            .filter(|c| !c.is_empty() && sorted.binary_search(&c.to_string()).is_err())
            .collect();
        for tenth in 0..10 {
            let (low, high) = (&sorted[tenth * 1000], &sorted[tenth * 1000 + 999]);
            let inside = new.iter().filter(|c| **c >= low.as_str() && **c <= high.as_str()).count();
            let share = inside as f64 / new.len() as f64;
            assert!((0.07..0.13).contains(&share), "tenth {tenth}: {share}");
        }
    }

    #[test]
    fn the_same_seed_makes_the_same_batch() {
        let batch = Batch { files: 2, rows: 1_000, existing: 500 };
        let (a, b) = (batch.generate(Uuid::from_u128(1), 3), batch.generate(Uuid::from_u128(1), 3));
        assert_eq!((a.files, a.existing, a.truth), (b.files, b.existing, b.truth));
    }

    #[test]
    fn some_files_end_lines_with_crlf_and_names_need_quotes() {
        let batch = Batch { files: 12, rows: 12_000, existing: 1_000 };
        let generated = batch.generate(Uuid::from_u128(1), 3);
        let crlf = generated.files.iter().filter(|f| f.windows(2).any(|w| w == b"\r\n")).count();
        assert_eq!(crlf, 4, "the three ; files and file 7");
        let first = String::from_utf8(generated.files[0].clone()).unwrap();
        assert!(first.contains("\"Café crème, 250 g\"") && first.contains("\"Say \"\"hi\"\"\""));
    }
}
