//! The DATA-mode receiver: consumes message text up to `<CRLF>.<CRLF>` and
//! nothing else, undoes dot-stuffing, and notes every reason to refuse the
//! message while still reading to the real end so the session stays in step
//! with the client.
//!
//! SMTP smuggling relies on a receiver that ends DATA at a variant such as
//! `<LF>.<LF>` or `<CR>.<CR>`, so that the rest of the "message" is read as
//! commands. Here only `<CRLF>.<CRLF>` ends DATA (`.` after a line that ended
//! with a bare LF does not count either), and any bare CR or bare LF marks the
//! message for refusal: text behind a smuggled terminator stays inside the
//! refused message and is never executed.

/// Longest text line, CRLF included (RFC 5321 §4.5.3.1.6).
pub const MAX_TEXT_LINE: usize = 1000;

/// Why a complete message is refused. Checked in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DataFault {
    BareLineEnding,
    LineTooLong,
    TooBig,
}

#[derive(Debug)]
pub(crate) struct DataReceiver {
    body: Vec<u8>,
    /// The current line, capped at `MAX_TEXT_LINE + 1` bytes (enough to
    /// recognise the terminator and the dot of dot-stuffing).
    line: Vec<u8>,
    line_len: usize,
    last_cr: bool,
    /// The previous line ended with CRLF; true at the start, since the DATA
    /// command itself ended with CRLF.
    prev_crlf: bool,
    max_size: u64,
    bare_line_ending: bool,
    line_too_long: bool,
    too_big: bool,
    eight_bit: bool,
}

pub(crate) enum DataStatus {
    /// All input consumed; the message continues.
    NeedMore,
    /// The terminator ended at `used` bytes into the input.
    Done { used: usize },
}

impl DataReceiver {
    pub(crate) fn new(max_size: u64) -> Self {
        Self {
            body: Vec::new(),
            line: Vec::new(),
            line_len: 0,
            last_cr: false,
            prev_crlf: true,
            max_size,
            bare_line_ending: false,
            line_too_long: false,
            too_big: false,
            eight_bit: false,
        }
    }

    pub(crate) fn feed(&mut self, input: &[u8]) -> DataStatus {
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' {
                let crlf = self.last_cr;
                if !crlf {
                    self.bare_line_ending = true;
                }
                if crlf && self.prev_crlf && self.line == b".\r" {
                    return DataStatus::Done { used: i + 1 };
                }
                if self.line_len + usize::from(!crlf) + 1 > MAX_TEXT_LINE {
                    self.line_too_long = true;
                }
                self.commit_line(crlf);
                self.prev_crlf = crlf;
                continue;
            }
            if self.last_cr {
                // A CR not followed by LF.
                self.bare_line_ending = true;
            }
            if b >= 0x80 {
                self.eight_bit = true;
            }
            self.line_len += 1;
            if self.line.len() <= MAX_TEXT_LINE {
                self.line.push(b);
            }
            self.last_cr = b == b'\r';
        }
        DataStatus::NeedMore
    }

    fn commit_line(&mut self, crlf: bool) {
        if self.fault().is_none() {
            let content = if crlf {
                self.line.strip_suffix(b"\r").unwrap_or(&self.line)
            } else {
                &self.line[..]
            };
            // RFC 5321 §4.5.2: a leading dot was added by the sender.
            let content = content.strip_prefix(b".").unwrap_or(content);
            let new_len = self.body.len() as u64 + content.len() as u64 + 2;
            if new_len > self.max_size {
                self.too_big = true;
                self.body = Vec::new();
            } else {
                self.body.extend_from_slice(content);
                self.body.extend_from_slice(b"\r\n");
            }
        }
        self.line.clear();
        self.line_len = 0;
        self.last_cr = false;
    }

    pub(crate) fn fault(&self) -> Option<DataFault> {
        if self.bare_line_ending {
            Some(DataFault::BareLineEnding)
        } else if self.line_too_long {
            Some(DataFault::LineTooLong)
        } else if self.too_big {
            Some(DataFault::TooBig)
        } else {
            None
        }
    }

    pub(crate) fn has_8bit(&self) -> bool {
        self.eight_bit
    }

    pub(crate) fn into_body(self) -> Vec<u8> {
        self.body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(input: &[u8]) -> (Option<usize>, DataReceiver) {
        let mut rx = DataReceiver::new(1 << 20);
        let used = match rx.feed(input) {
            DataStatus::Done { used } => Some(used),
            DataStatus::NeedMore => None,
        };
        (used, rx)
    }

    #[test]
    fn unstuffs_and_ends_only_at_crlf_dot_crlf() {
        let (used, rx) = run(b"a\r\n..b\r\n.\r\nRSET\r\n");
        assert_eq!(used, Some(11));
        assert_eq!(rx.fault(), None);
        assert_eq!(rx.into_body(), b"a\r\n.b\r\n");
        let (used, rx) = run(b".\r\n");
        assert_eq!((used, rx.into_body()), (Some(3), vec![]));
    }

    #[test]
    fn smuggling_variants_do_not_end_data_and_taint_the_message() {
        for variant in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"] {
            let mut input = b"x".to_vec();
            input.extend_from_slice(variant);
            input.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\n");
            let (used, rx) = run(&input);
            assert_eq!(used, None, "{variant:?} ended DATA");
            assert_eq!(rx.fault(), Some(DataFault::BareLineEnding), "{variant:?}");
        }
    }

    #[test]
    fn byte_by_byte_matches_one_chunk() {
        let input = b"Subject: t\r\n\r\n..dot\r\nline\r\n.\r\n";
        let mut rx = DataReceiver::new(1 << 20);
        let mut done = None;
        for (i, b) in input.iter().enumerate() {
            if let DataStatus::Done { used } = rx.feed(std::slice::from_ref(b)) {
                done = Some((i, used));
            }
        }
        assert_eq!(done, Some((input.len() - 1, 1)));
        assert_eq!(rx.into_body(), b"Subject: t\r\n\r\n.dot\r\nline\r\n");
    }

    #[test]
    fn limits() {
        let mut long = vec![b'a'; 998];
        long.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(run(&long).1.fault(), None);
        let mut long = vec![b'a'; 999];
        long.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(run(&long).1.fault(), Some(DataFault::LineTooLong));
        let mut rx = DataReceiver::new(10);
        assert!(matches!(
            rx.feed(b"0123456789\r\n.\r\n"),
            DataStatus::Done { .. }
        ));
        assert_eq!(rx.fault(), Some(DataFault::TooBig));
        assert!(run(b"caf\xc3\xa9\r\n.\r\n").1.has_8bit());
    }
}
