//! Line framing shared by the command receiver and the reply parser: find the
//! next LF within a length limit. Whether a bare LF is acceptable is the
//! caller's decision, so the terminator kind is reported, not judged here.

/// Result of looking for one line at the front of a buffer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A whole line. `line` excludes the LF but keeps a preceding CR;
    /// `crlf` says whether the LF was preceded by CR.
    Complete {
        line: &'a [u8],
        used: usize,
        crlf: bool,
    },
    /// No LF yet and still within the limit.
    Incomplete,
    /// No LF within `max` bytes (terminator included).
    TooLong,
}

/// Looks for a line of at most `max` bytes including its CRLF.
pub(crate) fn take_line(buf: &[u8], max: usize) -> Line<'_> {
    let window = &buf[..buf.len().min(max)];
    match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let line = &buf[..lf];
            Line::Complete {
                line,
                used: lf + 1,
                crlf: line.last() == Some(&b'\r'),
            }
        }
        None if buf.len() >= max => Line::TooLong,
        None => Line::Incomplete,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_lines_and_limits() {
        assert_eq!(
            take_line(b"ab\r\ncd", 10),
            Line::Complete {
                line: b"ab\r",
                used: 4,
                crlf: true
            }
        );
        assert_eq!(
            take_line(b"ab\ncd", 10),
            Line::Complete {
                line: b"ab",
                used: 3,
                crlf: false
            }
        );
        assert_eq!(take_line(b"abc", 10), Line::Incomplete);
        assert_eq!(take_line(b"abcd", 4), Line::TooLong);
        assert!(matches!(take_line(b"ab\r\n", 4), Line::Complete { .. }));
        assert_eq!(take_line(b"abc\r\n", 4), Line::TooLong);
    }
}
