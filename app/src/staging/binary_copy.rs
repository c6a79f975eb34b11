//! PostgreSQL's binary `COPY` format for staged rows: the server sends values as PostgreSQL
//! stores them, so PostgreSQL parses no text. In the text format, reading each row's two
//! UUIDs (sixteen `strtoul` calls each), its numbers and its line was about a quarter of the
//! database's time while staging (measured with `perf`).
//!
//! Format: <https://www.postgresql.org/docs/15/sql-copy.html#id-1.9.3.55.9.4>; each value is
//! its type's `*_send` form (`uuid`: 16 bytes; `int8`: big-endian; `text`: UTF-8 bytes;
//! `numeric`: base-10000 digits, below).

use uuid::Uuid;

/// The signature, the flags (no OIDs) and an empty header extension.
pub const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";

/// The end of the rows.
pub const TRAILER: &[u8] = &(-1i16).to_be_bytes();

/// Starts a row of `fields` values.
pub fn row(out: &mut Vec<u8>, fields: i16) {
    out.extend_from_slice(&fields.to_be_bytes());
}

/// A NULL.
pub fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(&(-1i32).to_be_bytes());
}

pub fn uuid(out: &mut Vec<u8>, value: Uuid) {
    out.extend_from_slice(&16i32.to_be_bytes());
    out.extend_from_slice(value.as_bytes());
}

pub fn int8(out: &mut Vec<u8>, value: i64) {
    out.extend_from_slice(&8i32.to_be_bytes());
    out.extend_from_slice(&value.to_be_bytes());
}

/// A `text` value, or NULL. (A value is at most a field's size limit, far below `i32::MAX`.)
pub fn text(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => {
            out.extend_from_slice(&(value.len() as i32).to_be_bytes());
            out.extend_from_slice(value.as_bytes());
        }
        None => null(out),
    }
}

/// A `numeric` from a decimal the row checks accepted (`[+-]digits[.digits]`, at least one
/// digit, at most 40 bytes), or NULL. `None` for anything else, which the caller reports.
///
/// The value is written as `numeric_send` does: the number of base-10000 digits, the weight
/// of the first (its power of 10000), the sign, the display scale (digits after the point,
/// as written: `1.50` stays `1.50`), then the digits with leading and trailing zero digits
/// left out.
pub fn numeric(out: &mut Vec<u8>, value: Option<&str>) -> Option<()> {
    let Some(value) = value else {
        null(out);
        return Some(());
    };
    let (negative, unsigned) = match value.as_bytes().first()? {
        b'-' => (true, &value[1..]),
        b'+' => (false, &value[1..]),
        _ => (false, value),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.len() + fraction.len() == 0 || !all_digits(whole) || !all_digits(fraction) || value.len() > 40 {
        return None;
    }
    // Base-10000 digits, grouped from the point outwards: the whole part padded on the left,
    // the fraction on the right, to a multiple of four decimal digits.
    let lead = (4 - whole.len() % 4) % 4;
    let trail = (4 - fraction.len() % 4) % 4;
    let decimal: Vec<u8> = std::iter::repeat_n(0, lead)
        .chain(whole.bytes().map(|b| b - b'0'))
        .chain(fraction.bytes().map(|b| b - b'0'))
        .chain(std::iter::repeat_n(0, trail))
        .collect();
    let mut digits: Vec<i16> = decimal.chunks(4).map(|d| d.iter().fold(0i16, |n, &d| n * 10 + i16::from(d))).collect();
    let mut weight = ((lead + whole.len()) / 4) as i16 - 1;
    let leading_zeros = digits.iter().take_while(|&&d| d == 0).count();
    digits.drain(..leading_zeros);
    weight -= leading_zeros as i16;
    while digits.last() == Some(&0) {
        digits.pop();
    }
    let (sign, weight) =
        if digits.is_empty() { (0x0000u16, 0) } else { (if negative { 0x4000 } else { 0x0000 }, weight) };
    let length = 8 + 2 * digits.len();
    out.extend_from_slice(&(length as i32).to_be_bytes());
    out.extend_from_slice(&(digits.len() as i16).to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&(fraction.len() as u16).to_be_bytes());
    for digit in digits {
        out.extend_from_slice(&digit.to_be_bytes());
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (ndigits, weight, sign, dscale, digits) as written for `value`.
    fn parts(value: &str) -> (i16, i16, u16, u16, Vec<i16>) {
        let mut out = Vec::new();
        numeric(&mut out, Some(value)).unwrap();
        let be16 = |i: usize| [out[i], out[i + 1]];
        let length = i32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
        assert_eq!(length, out.len() - 4, "the length prefix counts the value's bytes");
        let digits = (12..out.len()).step_by(2).map(|i| i16::from_be_bytes(be16(i))).collect();
        (
            i16::from_be_bytes(be16(4)),
            i16::from_be_bytes(be16(6)),
            u16::from_be_bytes(be16(8)),
            u16::from_be_bytes(be16(10)),
            digits,
        )
    }

    #[test]
    fn numerics_are_base_10000_digits_with_weight_sign_and_scale() {
        assert_eq!(parts("10"), (1, 0, 0, 0, vec![10]));
        assert_eq!(parts("1.50"), (2, 0, 0, 2, vec![1, 5000]));
        assert_eq!(parts("-3"), (1, 0, 0x4000, 0, vec![3]));
        assert_eq!(parts("+.5"), (1, -1, 0, 1, vec![5000]));
        assert_eq!(parts("12345.678"), (3, 1, 0, 3, vec![1, 2345, 6780]));
        assert_eq!(parts("0.00001"), (1, -2, 0, 5, vec![1000]));
        assert_eq!(parts("100000000"), (1, 2, 0, 0, vec![1]));
        assert_eq!(parts("0007."), (1, 0, 0, 0, vec![7]));
    }

    #[test]
    fn zero_has_no_digits_and_no_sign_but_keeps_its_scale() {
        assert_eq!(parts("0"), (0, 0, 0, 0, vec![]));
        assert_eq!(parts("-0.00"), (0, 0, 0, 2, vec![]));
    }

    #[test]
    fn anything_but_a_plain_decimal_is_refused() {
        for bad in ["", "+", ".", "-.", "1e5", "1.2.3", "ten", " 1", &"9".repeat(41)] {
            assert_eq!(numeric(&mut Vec::new(), Some(bad)), None, "{bad:?}");
        }
    }
}
