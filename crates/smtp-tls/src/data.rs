//! Message text on the server side: the DATA-mode receiver, the BDAT
//! receiver (RFC 3030), and the [`MessageText`] both write into.
//!
//! The DATA receiver consumes input up to `<CRLF>.<CRLF>` and nothing else,
//! undoes dot-stuffing, and notes every reason to refuse the message while
//! still reading to the real end so the session stays in step with the
//! client. It hands over whole lines only, as they complete, so an embedder
//! can store the message while it arrives.
//!
//! SMTP smuggling relies on a receiver that ends DATA at a variant such as
//! `<LF>.<LF>` or `<CR>.<CR>`, so that the rest of the "message" is read as
//! commands. Here only `<CRLF>.<CRLF>` ends DATA (`.` after a line that ended
//! with a bare LF does not count either), and any bare CR or bare LF marks the
//! message for refusal: text behind a smuggled terminator stays inside the
//! refused message and is never executed. Once a message is marked, no more
//! of its text is handed over. A NUL octet marks the message as well: a next
//! hop that strips NUL would turn `<CRLF>.<NUL><CRLF>` into a terminator.
//!
//! BDAT chunks are framed by length, so no text can end the message early;
//! the same line checks still apply (a line may span chunks), since the
//! message is relayed onwards with DATA.

use std::fmt;

use crate::reply::{EnhancedCode, Reply};

/// Longest text line, CRLF included (RFC 5321 §4.5.3.1.6).
pub const MAX_TEXT_LINE: usize = 1000;

/// Why the session refused a message by itself, after reading it to its end.
/// The reply is already queued; text handed over for it must be discarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MessageRefusal {
    /// A bare CR or bare LF in the text (SMTP smuggling protection):
    /// `554 5.6.0`.
    BareLineEnding,
    /// A NUL octet in the text (a next hop that strips NUL could see a
    /// terminator in `<CRLF>.<NUL><CRLF>`): `554 5.6.0`.
    NulCharacter,
    /// A line longer than [`MAX_TEXT_LINE`]: `554 5.6.0`.
    LineTooLong,
    /// More than the configured maximum size: `552 5.3.4`.
    TooBig,
    /// Octets above 127 without `BODY=8BITMIME` or `SMTPUTF8`: `554 5.6.1`.
    Undeclared8Bit,
}

impl MessageRefusal {
    /// The reply the session sent.
    pub fn reply(self) -> Reply {
        let (code, e, text) = match self {
            Self::BareLineEnding => (
                554,
                (5, 6, 0),
                "Message refused: bare CR or LF in message data (SMTP smuggling protection, RFC 5321 section 2.3.8)",
            ),
            Self::NulCharacter => (
                554,
                (5, 6, 0),
                "Message refused: NUL character in message data (SMTP smuggling protection)",
            ),
            Self::LineTooLong => (
                554,
                (5, 6, 0),
                "Message refused: a line exceeds 1000 octets (RFC 5321 section 4.5.3.1.6)",
            ),
            Self::TooBig => (
                552,
                (5, 3, 4),
                "Message size exceeds fixed maximum message size",
            ),
            Self::Undeclared8Bit => (
                554,
                (5, 6, 1),
                "Message refused: 8-bit data needs BODY=8BITMIME (RFC 6152)",
            ),
        };
        Reply::fixed(code, Some(EnhancedCode::fixed(e.0, e.1, e.2)), text)
    }
}

impl fmt::Display for MessageRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BareLineEnding => {
                "bare CR or LF in message data (possible SMTP smuggling attempt)"
            }
            Self::NulCharacter => "NUL character in message data (possible SMTP smuggling attempt)",
            Self::LineTooLong => "a line exceeds 1000 octets",
            Self::TooBig => "message exceeds the maximum size",
            Self::Undeclared8Bit => "8-bit data without BODY=8BITMIME or SMTPUTF8",
        })
    }
}

/// The text of the message being received: what has not been handed to the
/// embedder yet, and the checks that span the whole message (size, 8-bit).
/// One per message, whichever receiver frames it.
#[derive(Debug)]
pub(crate) struct MessageText {
    unread: Vec<u8>,
    size: u64,
    max_size: u64,
    too_big: bool,
    eight_bit: bool,
}

impl MessageText {
    pub(crate) fn new(max_size: u64) -> Self {
        Self {
            unread: Vec::new(),
            size: 0,
            max_size,
            too_big: false,
            eight_bit: false,
        }
    }

    /// Appends the parts as one piece of text, unless the message passed its
    /// size limit (then nothing more is kept: it will be refused).
    pub(crate) fn append(&mut self, parts: &[&[u8]]) {
        if self.too_big {
            return;
        }
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        if self.size + len > self.max_size {
            self.too_big = true;
            self.unread = Vec::new();
            return;
        }
        self.size += len;
        for p in parts {
            self.eight_bit |= p.iter().any(|&b| b >= 0x80);
            self.unread.extend_from_slice(p);
        }
    }

    /// The text received since the last call.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.unread)
    }

    pub(crate) fn too_big(&self) -> bool {
        self.too_big
    }

    pub(crate) fn has_8bit(&self) -> bool {
        self.eight_bit
    }
}

/// The DATA-mode receiver (one per DATA command).
#[derive(Debug)]
pub(crate) struct DataReceiver {
    /// The current line, capped at `MAX_TEXT_LINE + 1` bytes (enough to
    /// recognise the terminator and the dot of dot-stuffing).
    line: Vec<u8>,
    line_len: usize,
    last_cr: bool,
    /// The previous line ended with CRLF; true at the start, since the DATA
    /// command itself ended with CRLF.
    prev_crlf: bool,
    faults: LineFaults,
}

/// What the line checks found in a message so far; any of them taints it.
#[derive(Debug, Default, Clone, Copy)]
struct LineFaults {
    bare_line_ending: bool,
    nul: bool,
    line_too_long: bool,
}

impl LineFaults {
    fn tainted(self) -> bool {
        self.bare_line_ending || self.nul || self.line_too_long
    }

    /// Framing faults first (they are attacks or broken clients), then size.
    fn refusal(self, text: &MessageText) -> Option<MessageRefusal> {
        if self.bare_line_ending {
            Some(MessageRefusal::BareLineEnding)
        } else if self.nul {
            Some(MessageRefusal::NulCharacter)
        } else if self.line_too_long {
            Some(MessageRefusal::LineTooLong)
        } else if text.too_big() {
            Some(MessageRefusal::TooBig)
        } else {
            None
        }
    }
}

impl DataReceiver {
    pub(crate) fn new() -> Self {
        Self {
            line: Vec::new(),
            line_len: 0,
            last_cr: false,
            prev_crlf: true,
            faults: LineFaults::default(),
        }
    }

    /// Consumes `input`, appending complete lines to `text`. Returns how many
    /// bytes ended with the terminator, or `None` when all of `input` was
    /// consumed and the message goes on (incomplete input is not an error).
    pub(crate) fn receive(&mut self, input: &[u8], text: &mut MessageText) -> Option<usize> {
        for (i, &b) in input.iter().enumerate() {
            if b == b'\n' {
                let crlf = self.last_cr;
                if !crlf {
                    self.faults.bare_line_ending = true;
                }
                if crlf && self.prev_crlf && self.line == b".\r" {
                    return Some(i + 1);
                }
                if self.line_len + usize::from(!crlf) + 1 > MAX_TEXT_LINE {
                    self.faults.line_too_long = true;
                }
                self.commit_line(crlf, text);
                self.prev_crlf = crlf;
                continue;
            }
            if self.last_cr {
                // A CR not followed by LF.
                self.faults.bare_line_ending = true;
            }
            if b == 0 {
                self.faults.nul = true;
            }
            self.line_len += 1;
            if self.line.len() <= MAX_TEXT_LINE {
                self.line.push(b);
            }
            self.last_cr = b == b'\r';
        }
        None
    }

    fn commit_line(&mut self, crlf: bool, text: &mut MessageText) {
        if !self.faults.tainted() {
            let content = if crlf {
                self.line.strip_suffix(b"\r").unwrap_or(&self.line)
            } else {
                &self.line[..]
            };
            // RFC 5321 §4.5.2: a leading dot was added by the sender.
            let content = content.strip_prefix(b".").unwrap_or(content);
            text.append(&[content, b"\r\n"]);
        }
        self.line.clear();
        self.line_len = 0;
        self.last_cr = false;
    }

    /// Why the message must be refused, checked in this order: framing
    /// faults first (they are attacks or broken clients), then size.
    pub(crate) fn refusal(&self, text: &MessageText) -> Option<MessageRefusal> {
        self.faults.refusal(text)
    }
}

/// The BDAT receiver (RFC 3030): one per message, across its chunks. Each
/// chunk's octets are taken as they are (no dot-stuffing); complete lines
/// are checked as in DATA and handed over as they complete.
#[derive(Debug)]
pub(crate) struct BdatReceiver {
    /// The current line, capped at `MAX_TEXT_LINE + 1` bytes.
    line: Vec<u8>,
    line_len: usize,
    last_cr: bool,
    faults: LineFaults,
}

impl BdatReceiver {
    pub(crate) fn new() -> Self {
        Self {
            line: Vec::new(),
            line_len: 0,
            last_cr: false,
            faults: LineFaults::default(),
        }
    }

    /// Consumes chunk octets (all of `input`), appending complete lines to
    /// `text`.
    pub(crate) fn receive(&mut self, input: &[u8], text: &mut MessageText) {
        for &b in input {
            if b == b'\n' {
                if !self.last_cr {
                    self.faults.bare_line_ending = true;
                }
                if self.line_len + usize::from(!self.last_cr) + 1 > MAX_TEXT_LINE {
                    self.faults.line_too_long = true;
                }
                self.commit_line(text);
                continue;
            }
            if self.last_cr {
                self.faults.bare_line_ending = true;
            }
            if b == 0 {
                self.faults.nul = true;
            }
            self.line_len += 1;
            if self.line.len() <= MAX_TEXT_LINE {
                self.line.push(b);
            }
            self.last_cr = b == b'\r';
        }
    }

    fn commit_line(&mut self, text: &mut MessageText) {
        if !self.faults.tainted() {
            let content = self.line.strip_suffix(b"\r").unwrap_or(&self.line);
            text.append(&[content, b"\r\n"]);
        }
        self.line.clear();
        self.line_len = 0;
        self.last_cr = false;
    }

    /// The last chunk is in: a final line without CRLF gets one (the text is
    /// relayed with DATA, which needs it); a final bare CR is a bare line
    /// ending. Then why the message must be refused, if it must.
    pub(crate) fn finish(&mut self, text: &mut MessageText) -> Option<MessageRefusal> {
        if self.last_cr {
            self.faults.bare_line_ending = true;
        }
        if self.line_len > 0 {
            if self.line_len + 2 > MAX_TEXT_LINE {
                self.faults.line_too_long = true;
            }
            self.commit_line(text);
        }
        self.faults.refusal(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in one piece: (bytes used, text, refusal).
    fn run(input: &[u8]) -> (Option<usize>, Vec<u8>, Option<MessageRefusal>) {
        let mut rx = DataReceiver::new();
        let mut text = MessageText::new(1 << 20);
        let used = rx.receive(input, &mut text);
        (used, text.take(), rx.refusal(&text))
    }

    #[test]
    fn unstuffs_and_ends_only_at_crlf_dot_crlf() {
        assert_eq!(
            run(b"a\r\n..b\r\n.\r\nRSET\r\n"),
            (Some(11), b"a\r\n.b\r\n".to_vec(), None)
        );
        assert_eq!(run(b".\r\n"), (Some(3), vec![], None));
    }

    #[test]
    fn smuggling_variants_do_not_end_data_and_taint_the_message() {
        for variant in [&b"\n.\n"[..], b"\r.\r", b"\n.\r\n", b"\r\n.\n", b"\r.\r\n"] {
            let mut input = b"x".to_vec();
            input.extend_from_slice(variant);
            input.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\n");
            let (used, _, refusal) = run(&input);
            assert_eq!(used, None, "{variant:?} ended DATA");
            assert_eq!(refusal, Some(MessageRefusal::BareLineEnding), "{variant:?}");
        }
    }

    #[test]
    fn nul_variants_do_not_end_data_and_taint_the_message() {
        // smtpsmug's NUL variants: a next hop that strips NUL would see
        // <CRLF>.<CRLF> in both.
        for variant in [&b"\r\n\0.\r\n"[..], b"\r\n.\0\r\n"] {
            let mut input = b"x".to_vec();
            input.extend_from_slice(variant);
            input.extend_from_slice(b"MAIL FROM:<evil@example.org>\r\n");
            let (used, text, refusal) = run(&input);
            assert_eq!(used, None, "{variant:?} ended DATA");
            assert_eq!(refusal, Some(MessageRefusal::NulCharacter), "{variant:?}");
            assert_eq!(text, b"x\r\n", "text from the NUL on is not handed over");
        }
        assert_eq!(
            MessageRefusal::NulCharacter.reply().to_string(),
            "554 5.6.0 Message refused: NUL character in message data (SMTP smuggling protection)\r\n"
        );
    }

    #[test]
    fn bdat_lines_span_chunks_and_get_the_same_checks() {
        let mut rx = BdatReceiver::new();
        let mut text = MessageText::new(1 << 20);
        rx.receive(b"Subject: a\r", &mut text);
        assert_eq!(text.take(), b"");
        rx.receive(b"\n.dot stays\r\nlast", &mut text);
        assert_eq!(text.take(), b"Subject: a\r\n.dot stays\r\n");
        assert_eq!(rx.finish(&mut text), None);
        assert_eq!(text.take(), b"last\r\n", "a final line gets its CRLF");
        for (input, refusal) in [
            (&b"a\nb\r\n"[..], MessageRefusal::BareLineEnding),
            (b"a\rb\r\n", MessageRefusal::BareLineEnding),
            (b"a\r", MessageRefusal::BareLineEnding),
            (b"a\r\n\0.\r\n", MessageRefusal::NulCharacter),
            (b"a\r\n.\0\r\n", MessageRefusal::NulCharacter),
        ] {
            let mut rx = BdatReceiver::new();
            let mut text = MessageText::new(1 << 20);
            rx.receive(input, &mut text);
            assert_eq!(rx.finish(&mut text), Some(refusal), "{input:?}");
        }
        let mut rx = BdatReceiver::new();
        let mut text = MessageText::new(1 << 20);
        rx.receive(&vec![b'a'; 999], &mut text);
        assert_eq!(rx.finish(&mut text), Some(MessageRefusal::LineTooLong));
    }

    #[test]
    fn no_text_is_handed_over_once_the_message_is_tainted() {
        let mut rx = DataReceiver::new();
        let mut text = MessageText::new(1 << 20);
        assert_eq!(rx.receive(b"clean\r\n", &mut text), None);
        assert_eq!(text.take(), b"clean\r\n");
        assert_eq!(rx.receive(b"bare\nMAIL FROM:<x@y.z>\r\n", &mut text), None);
        assert_eq!(text.take(), b"", "text behind a bare LF was handed over");
        assert_eq!(rx.receive(b".\r\n", &mut text), Some(3));
        assert_eq!(rx.refusal(&text), Some(MessageRefusal::BareLineEnding));
    }

    #[test]
    fn byte_by_byte_hands_over_each_line_as_it_completes() {
        let input = b"Subject: t\r\n\r\n..dot\r\nline\r\n.\r\n";
        let mut rx = DataReceiver::new();
        let mut text = MessageText::new(1 << 20);
        let mut done = None;
        let mut pieces = Vec::new();
        for (i, b) in input.iter().enumerate() {
            if let Some(used) = rx.receive(std::slice::from_ref(b), &mut text) {
                done = Some((i, used));
            }
            let piece = text.take();
            if !piece.is_empty() {
                pieces.push((i, piece));
            }
        }
        assert_eq!(done, Some((input.len() - 1, 1)));
        assert_eq!(
            pieces,
            [
                (11, b"Subject: t\r\n".to_vec()),
                (13, b"\r\n".to_vec()),
                (20, b".dot\r\n".to_vec()),
                (26, b"line\r\n".to_vec()),
            ]
        );
    }

    #[test]
    fn limits() {
        let mut long = vec![b'a'; 998];
        long.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(run(&long).2, None);
        let mut long = vec![b'a'; 999];
        long.extend_from_slice(b"\r\n.\r\n");
        assert_eq!(run(&long).2, Some(MessageRefusal::LineTooLong));
        let mut rx = DataReceiver::new();
        let mut text = MessageText::new(10);
        assert!(rx.receive(b"0123456789\r\n.\r\n", &mut text).is_some());
        assert_eq!(rx.refusal(&text), Some(MessageRefusal::TooBig));
        assert!(
            text.take().is_empty(),
            "text of a too-big message is dropped"
        );
        let mut rx = DataReceiver::new();
        let mut text = MessageText::new(100);
        rx.receive(b"caf\xc3\xa9\r\n.\r\n", &mut text);
        assert!(text.has_8bit());
    }
}
