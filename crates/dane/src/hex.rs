//! Hexadecimal encoding and decoding for TLSA certificate association data.
//!
//! Kept local (a dozen lines) so the parsers have no dependency whose error
//! type leaks into ours; decoding never panics on any input.

/// Decodes hex digits (either case). An odd number of digits is
/// [`HexError::OddLength`]; otherwise the byte offset of the first non-hex
/// character is [`HexError::BadDigit`].
pub(crate) fn decode(digits: &str) -> Result<Vec<u8>, HexError> {
    let bytes = digits.as_bytes();
    if !bytes.len().is_multiple_of(2) {
        return Err(HexError::OddLength(bytes.len()));
    }
    let mut out = Vec::with_capacity(bytes.len() / 2);
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = nibble(pair[0]).ok_or(HexError::BadDigit(i * 2))?;
        let lo = nibble(pair[1]).ok_or(HexError::BadDigit(i * 2 + 1))?;
        out.push((hi << 4) | lo);
    }
    Ok(out)
}

/// Why hex decoding failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum HexError {
    OddLength(usize),
    BadDigit(usize),
}

fn nibble(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Lower-case hex, as zone files conventionally carry it.
pub(crate) fn encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        assert_eq!(decode("00ffAb").unwrap(), vec![0, 0xff, 0xab]);
        assert_eq!(encode(&[0, 0xff, 0xab]), "00ffab");
        assert_eq!(decode("abc"), Err(HexError::OddLength(3)));
        assert_eq!(decode("zz"), Err(HexError::BadDigit(0)));
        assert_eq!(decode("aé"), Err(HexError::OddLength(3)));
    }
}
