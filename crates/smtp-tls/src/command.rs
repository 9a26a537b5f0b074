//! SMTP commands (server side): parsing one command line into a [`Command`],
//! and writing it back (`Display`) for the client and for round-trip tests.
//! A syntax error is a [`CommandError`] whose text is the grammar the client
//! should have used; [`CommandError::reply`] turns it into the 500/501/555
//! reply that goes on the wire.

use std::fmt;

use crate::address::{AddressError, ForwardPath, ReversePath, valid_address_literal, valid_domain};
use crate::envelope::{BodyType, MailParams};
use crate::reply::{EnhancedCode, Reply};

/// Longest command line, CRLF included: RFC 5321 §4.5.3.1.4 allows 512, and
/// each MAIL extension we offer raises it (SIZE +26 RFC 1870, BODY +14
/// RFC 6152, SMTPUTF8 +10 RFC 6531, REQUIRETLS +11 RFC 8689).
pub const MAX_COMMAND_LINE: usize = 512 + 26 + 14 + 10 + 11;

/// One client command.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Command {
    /// `EHLO domain`
    Ehlo(String),
    /// `HELO domain`
    Helo(String),
    /// `MAIL FROM:<path> params`
    Mail {
        /// The sender.
        from: ReversePath,
        /// Its parameters.
        params: MailParams,
    },
    /// `RCPT TO:<path>`
    Rcpt {
        /// The recipient.
        to: ForwardPath,
    },
    /// `DATA`
    Data,
    /// `RSET`
    Rset,
    /// `NOOP` (any argument is ignored, RFC 5321 §4.1.1.9)
    Noop,
    /// `QUIT`
    Quit,
    /// `VRFY string`
    Vrfy(String),
    /// `HELP [topic]`
    Help(Option<String>),
    /// `STARTTLS`
    StartTls,
}

impl Command {
    /// The verb, upper case.
    pub fn verb(&self) -> &'static str {
        match self {
            Self::Ehlo(_) => "EHLO",
            Self::Helo(_) => "HELO",
            Self::Mail { .. } => "MAIL",
            Self::Rcpt { .. } => "RCPT",
            Self::Data => "DATA",
            Self::Rset => "RSET",
            Self::Noop => "NOOP",
            Self::Quit => "QUIT",
            Self::Vrfy(_) => "VRFY",
            Self::Help(_) => "HELP",
            Self::StartTls => "STARTTLS",
        }
    }

    /// Parses one command line without its CRLF.
    pub fn parse(line: &[u8]) -> Result<Self, CommandError> {
        let line = std::str::from_utf8(line).map_err(|_| CommandError::NotUtf8)?;
        if line.chars().any(|c| c.is_control() && c != '\t') {
            return Err(CommandError::ControlCharacter);
        }
        let (verb, arg) = match line.split_once(' ') {
            Some((v, a)) => (v, a.trim_matches(' ')),
            None => (line, ""),
        };
        match verb.to_ascii_uppercase().as_str() {
            "EHLO" => parse_hello(arg, "EHLO").map(Self::Ehlo),
            "HELO" => parse_hello(arg, "HELO").map(Self::Helo),
            "MAIL" => parse_mail(arg),
            "RCPT" => parse_rcpt(arg),
            "DATA" => no_arg(arg, "DATA", Self::Data),
            "RSET" => no_arg(arg, "RSET", Self::Rset),
            "QUIT" => no_arg(arg, "QUIT", Self::Quit),
            "STARTTLS" => no_arg(arg, "STARTTLS", Self::StartTls),
            "NOOP" => Ok(Self::Noop),
            "VRFY" if arg.is_empty() => Err(CommandError::Syntax {
                grammar: "VRFY <string>",
                detail: "missing argument".into(),
            }),
            "VRFY" => Ok(Self::Vrfy(arg.to_string())),
            "HELP" => Ok(Self::Help((!arg.is_empty()).then(|| arg.to_string()))),
            _ => Err(CommandError::Unknown(verb.chars().take(16).collect())),
        }
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Ehlo(d) => write!(f, "EHLO {d}"),
            Self::Helo(d) => write!(f, "HELO {d}"),
            Self::Mail { from, params } => write!(f, "MAIL FROM:{from}{params}"),
            Self::Rcpt { to } => write!(f, "RCPT TO:{to}"),
            Self::Vrfy(s) => write!(f, "VRFY {s}"),
            Self::Help(Some(s)) => write!(f, "HELP {s}"),
            other => f.write_str(other.verb()),
        }
    }
}

/// A command line that could not be parsed, with the text for the reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The verb is not one we know.
    #[error("command {0:?} not recognized")]
    Unknown(String),
    /// The line is not UTF-8.
    #[error("command line is not valid UTF-8")]
    NotUtf8,
    /// The line contains a control character (a bare CR, NUL, …).
    #[error("command line contains a control character")]
    ControlCharacter,
    /// The line did not end in CRLF.
    #[error("command line must end with CRLF, not a bare LF")]
    BareLf,
    /// The line exceeded [`MAX_COMMAND_LINE`].
    #[error("command line longer than {MAX_COMMAND_LINE} octets (RFC 5321 section 4.5.3.1.4)")]
    LineTooLong,
    /// Arguments do not fit the command's grammar.
    #[error("syntax: {grammar} ({detail})")]
    Syntax {
        /// The grammar the client should follow.
        grammar: &'static str,
        /// What was wrong.
        detail: String,
    },
    /// A bad sender or recipient address.
    #[error("{which} address: {error}")]
    Address {
        /// "sender" or "recipient".
        which: &'static str,
        /// What was wrong.
        error: AddressError,
    },
    /// A MAIL parameter we do not support, or a bad value.
    #[error("unsupported or malformed parameter {0:?}")]
    Parameter(String),
}

impl CommandError {
    /// The reply a server sends for this error.
    pub fn reply(&self) -> Reply {
        let (code, e) = match self {
            Self::Unknown(_) | Self::LineTooLong => (500, EnhancedCode::fixed(5, 5, 2)),
            Self::NotUtf8 | Self::ControlCharacter | Self::BareLf => {
                (500, EnhancedCode::fixed(5, 5, 2))
            }
            Self::Syntax { .. } => (501, EnhancedCode::fixed(5, 5, 4)),
            Self::Address {
                which: "sender", ..
            } => (501, EnhancedCode::fixed(5, 1, 7)),
            Self::Address { .. } => (501, EnhancedCode::fixed(5, 1, 3)),
            Self::Parameter(_) => (555, EnhancedCode::fixed(5, 5, 4)),
        };
        Reply::fixed(code, Some(e), &capitalize(&self.to_string()))
    }
}

fn capitalize(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(first) => first.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

fn no_arg(arg: &str, verb: &'static str, cmd: Command) -> Result<Command, CommandError> {
    if arg.is_empty() {
        Ok(cmd)
    } else {
        Err(CommandError::Syntax {
            grammar: verb,
            detail: "no argument allowed".into(),
        })
    }
}

fn parse_hello(arg: &str, verb: &'static str) -> Result<String, CommandError> {
    let grammar = if verb == "EHLO" {
        "EHLO <hostname>"
    } else {
        "HELO <hostname>"
    };
    if arg.is_empty() {
        return Err(CommandError::Syntax {
            grammar,
            detail: "missing hostname".into(),
        });
    }
    // Windows hosts announce names with '_'; accept them rather than refuse mail.
    let name = arg.replace('_', "-");
    if valid_domain(&name) || valid_address_literal(arg) {
        Ok(arg.to_string())
    } else {
        Err(CommandError::Syntax {
            grammar,
            detail: "hostname is not a domain or address literal".into(),
        })
    }
}

/// Splits `"FROM:<a@b> SIZE=1"` after the `FROM:` keyword into path and
/// parameters. A space after the colon is tolerated (common in practice).
fn split_path<'a>(
    arg: &'a str,
    keyword: &str,
    grammar: &'static str,
) -> Result<(&'a str, &'a str), CommandError> {
    let bad = |detail: &str| CommandError::Syntax {
        grammar,
        detail: detail.into(),
    };
    let head = arg
        .get(..keyword.len())
        .filter(|h| h.eq_ignore_ascii_case(keyword));
    let rest = match head {
        Some(_) => arg
            .get(keyword.len()..)
            .unwrap_or_default()
            .trim_start_matches(' '),
        None => return Err(bad(&format!("expected {keyword}"))),
    };
    if !rest.starts_with('<') {
        return Err(bad("address must be enclosed in <>"));
    }
    // The path ends at the first '>' outside a quoted local part.
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in rest.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '>' if !quoted => {
                let (path, params) = rest.split_at(i + 1);
                if !params.is_empty() && !params.starts_with(' ') {
                    return Err(bad("parameters must be separated by a space"));
                }
                return Ok((path, params.trim_start_matches(' ')));
            }
            _ => {}
        }
    }
    Err(bad("missing closing >"))
}

const MAIL_GRAMMAR: &str =
    "MAIL FROM:<address> [SIZE=<n>] [BODY=7BIT|8BITMIME] [SMTPUTF8] [REQUIRETLS]";
const RCPT_GRAMMAR: &str = "RCPT TO:<address>";

fn parse_mail(arg: &str) -> Result<Command, CommandError> {
    let (path, rest) = split_path(arg, "FROM:", MAIL_GRAMMAR)?;
    let from = ReversePath::parse(path).map_err(|error| CommandError::Address {
        which: "sender",
        error,
    })?;
    let mut params = MailParams::default();
    for p in rest.split(' ').filter(|p| !p.is_empty()) {
        let (key, value) = match p.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (p, None),
        };
        let bad = || CommandError::Parameter(p.chars().take(40).collect());
        match (key.to_ascii_uppercase().as_str(), value) {
            ("SIZE", Some(v)) if params.size.is_none() => {
                if v.is_empty() || v.len() > 20 || !v.bytes().all(|b| b.is_ascii_digit()) {
                    return Err(bad());
                }
                params.size = Some(v.parse().map_err(|_| bad())?);
            }
            ("BODY", Some(v)) if params.body.is_none() => {
                params.body = Some(match v.to_ascii_uppercase().as_str() {
                    "7BIT" => BodyType::SevenBit,
                    "8BITMIME" => BodyType::EightBitMime,
                    _ => return Err(bad()),
                });
            }
            ("SMTPUTF8", None) if !params.smtputf8 => params.smtputf8 = true,
            ("REQUIRETLS", None) if !params.requiretls => params.requiretls = true,
            _ => return Err(bad()),
        }
    }
    Ok(Command::Mail { from, params })
}

fn parse_rcpt(arg: &str) -> Result<Command, CommandError> {
    let (path, rest) = split_path(arg, "TO:", RCPT_GRAMMAR)?;
    let to = ForwardPath::parse(path).map_err(|error| CommandError::Address {
        which: "recipient",
        error,
    })?;
    if let Some(p) = rest.split(' ').find(|p| !p.is_empty()) {
        return Err(CommandError::Parameter(p.chars().take(40).collect()));
    }
    Ok(Command::Rcpt { to })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::Mailbox;
    use proptest::prelude::*;

    fn mbox(s: &str) -> Mailbox {
        Mailbox::parse(s).unwrap()
    }

    #[test]
    fn parses_commands_case_insensitively() {
        assert_eq!(
            Command::parse(b"ehlo client.example"),
            Ok(Command::Ehlo("client.example".into()))
        );
        assert_eq!(
            Command::parse(b"HELO [192.0.2.1]"),
            Ok(Command::Helo("[192.0.2.1]".into()))
        );
        assert_eq!(
            Command::parse(b"mail from: <a@b.example> size=100 body=8bitmime SMTPUTF8 REQUIRETLS"),
            Ok(Command::Mail {
                from: ReversePath::Mailbox(mbox("a@b.example")),
                params: MailParams {
                    size: Some(100),
                    body: Some(BodyType::EightBitMime),
                    smtputf8: true,
                    requiretls: true
                }
            })
        );
        assert_eq!(
            Command::parse(b"RCPT TO:<\"x>y\"@b.example>"),
            Ok(Command::Rcpt {
                to: ForwardPath::Mailbox(mbox("\"x>y\"@b.example"))
            })
        );
        assert_eq!(Command::parse(b"NOOP anything"), Ok(Command::Noop));
        assert_eq!(Command::parse(b"StartTLS"), Ok(Command::StartTls));
        assert_eq!(Command::parse(b"HELP"), Ok(Command::Help(None)));
    }

    #[test]
    fn errors_carry_grammar_for_the_501() {
        let e = Command::parse(b"MAIL FROM:a@b.example").unwrap_err();
        let r = e.reply();
        assert_eq!(r.code(), 501);
        assert!(r.text().contains("MAIL FROM:<address>"), "{r}");
        assert_eq!(
            Command::parse(b"RCPT TO:<a@b.example> NOTIFY=NEVER")
                .unwrap_err()
                .reply()
                .code(),
            555
        );
        assert_eq!(
            Command::parse(b"MAIL FROM:<> BODY=BINARYMIME")
                .unwrap_err()
                .reply()
                .code(),
            555
        );
        assert_eq!(
            Command::parse(b"MAIL FROM:<> SIZE=1 SIZE=2")
                .unwrap_err()
                .reply()
                .code(),
            555
        );
        assert_eq!(
            Command::parse(b"EXPN staff").unwrap_err().reply().code(),
            500
        );
        assert_eq!(Command::parse(b"DATA now").unwrap_err().reply().code(), 501);
        assert_eq!(Command::parse(b"EHLO").unwrap_err().reply().code(), 501);
        assert_eq!(
            Command::parse(b"EHLO bad host").unwrap_err().reply().code(),
            501
        );
        assert_eq!(
            Command::parse(b"NOOP \r x"),
            Err(CommandError::ControlCharacter)
        );
        assert_eq!(Command::parse(b"\xff"), Err(CommandError::NotUtf8));
        assert_eq!(
            Command::parse(b"RCPT TO:<a@b.example").unwrap_err(),
            CommandError::Syntax {
                grammar: RCPT_GRAMMAR,
                detail: "missing closing >".into()
            }
        );
    }

    fn atom() -> impl Strategy<Value = String> {
        "[a-zA-Z0-9!#$%&'*+/=?^_`{|}~-]{1,10}|[a-zäöüß]{1,6}"
    }

    fn mailbox() -> impl Strategy<Value = Mailbox> {
        let local = prop_oneof![
            proptest::collection::vec(atom(), 1..3).prop_map(|v| v.join(".")),
            "\"[ a-z@>.]{0,10}\"",
        ];
        let domain =
            proptest::collection::vec("[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?|[a-zé]{1,5}", 1..4)
                .prop_map(|v| v.join("."));
        (local, domain).prop_map(|(l, d)| Mailbox::parse(&format!("{l}@{d}")).unwrap())
    }

    fn command() -> impl Strategy<Value = Command> {
        let params = (
            proptest::option::of(any::<u64>()),
            proptest::option::of(prop_oneof![
                Just(BodyType::SevenBit),
                Just(BodyType::EightBitMime)
            ]),
            any::<bool>(),
            any::<bool>(),
        )
            .prop_map(|(size, body, smtputf8, requiretls)| MailParams {
                size,
                body,
                smtputf8,
                requiretls,
            });
        prop_oneof![
            "[a-z]{1,10}(\\.[a-z]{1,10}){0,3}".prop_map(Command::Ehlo),
            "[a-z]{1,10}".prop_map(Command::Helo),
            (
                prop_oneof![
                    Just(ReversePath::Null),
                    mailbox().prop_map(ReversePath::Mailbox)
                ],
                params
            )
                .prop_map(|(from, params)| Command::Mail { from, params }),
            prop_oneof![
                Just(ForwardPath::Postmaster),
                mailbox().prop_map(ForwardPath::Mailbox)
            ]
            .prop_map(|to| Command::Rcpt { to }),
            Just(Command::Data),
            Just(Command::Rset),
            Just(Command::Noop),
            Just(Command::Quit),
            Just(Command::StartTls),
            "[a-z][a-z ]{0,10}[a-z]".prop_map(Command::Vrfy),
            proptest::option::of("[a-z]{1,8}").prop_map(Command::Help),
        ]
    }

    proptest! {
        #[test]
        fn command_round_trips(cmd in command()) {
            let line = cmd.to_string();
            prop_assert_eq!(Command::parse(line.as_bytes()), Ok(cmd));
        }

        #[test]
        fn command_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = Command::parse(&bytes);
        }

        #[test]
        fn command_parser_never_panics_on_near_commands(
            s in "(MAIL FROM:|RCPT TO:|EHLO |VRFY )[<>@\"\\\\.a-zé: =]{0,40}"
        ) {
            if let Err(e) = Command::parse(s.as_bytes()) {
                let _ = e.reply();
            }
        }
    }
}
