//! SHA-256 fingerprints in the colon-separated upper-case hex that
//! `openssl x509 -fingerprint -sha256` prints, so operators can compare them.

use sha2::{Digest, Sha256};

/// SHA-256 of `data` as `AB:CD:...`.
pub fn sha256_hex(data: &[u8]) -> String {
    let digest = Sha256::digest(data);
    let mut out = String::with_capacity(digest.len() * 3);
    for (i, b) in digest.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(&format!("{b:02X}"));
    }
    out
}

/// Normalise a fingerprint typed by an operator: drop colons and spaces, upper-case.
pub fn normalise(s: &str) -> String {
    s.chars()
        .filter(|c| !matches!(c, ':' | ' '))
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_matches_openssl_style() {
        let fp = sha256_hex(b"abc");
        assert!(fp.starts_with("BA:78:16:BF:"), "{fp}");
        assert_eq!(fp.len(), 32 * 3 - 1);
        assert_eq!(normalise("ba:78 16"), "BA7816");
    }
}
