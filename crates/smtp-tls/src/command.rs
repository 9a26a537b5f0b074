//! SMTP commands (server side): parsing one command line into a [`Command`],
//! and writing it back (`Display`) for the client and for round-trip tests.
//! A syntax error is a [`CommandError`] whose text is the grammar the client
//! should have used; [`CommandError::reply`] turns it into the 500/501/555
//! reply that goes on the wire.

use std::fmt;

use crate::address::{AddressError, ForwardPath, ReversePath, valid_address_literal, valid_domain};
use crate::envelope::{BodyType, MailParams, Notify, OriginalRecipient, RcptParams, Ret};
use crate::reply::{EnhancedCode, Reply};

/// Longest command line, CRLF included: RFC 5321 §4.5.3.1.4 allows 512, and
/// each extension we offer raises it. MAIL: SIZE +26 (RFC 1870), BODY +14
/// (RFC 6152), SMTPUTF8 +10 (RFC 6531), REQUIRETLS +11 (RFC 8689), RET +10
/// and ENVID +107 (RFC 3461). RCPT, the longer: NOTIFY +30 and ORCPT +507
/// (RFC 3461 §5).
pub const MAX_COMMAND_LINE: usize = 512 + 30 + 507;

/// Longest `ENVID` value (RFC 3461 §4.4).
const MAX_ENVID: usize = 100;
/// Longest `ORCPT` address part (RFC 3461 §4.2).
const MAX_ORCPT: usize = 500;

/// Verbs of SMTP extensions this crate does not implement: answered `502`
/// (command not implemented, RFC 5321 §4.2.4) rather than `500`.
const NOT_IMPLEMENTED: &[&str] = &[
    "EXPN", "ETRN", "TURN", "ATRN", "AUTH", "SEND", "SOML", "SAML", "XCLIENT", "XFORWARD",
];

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
    /// `RCPT TO:<path> params`
    Rcpt {
        /// The recipient.
        to: ForwardPath,
        /// Its parameters (RFC 3461 `NOTIFY`, `ORCPT`).
        params: RcptParams,
    },
    /// `BDAT size [LAST]` (RFC 3030): a chunk of `size` octets follows the
    /// command line.
    Bdat {
        /// Octets in the chunk.
        size: u64,
        /// The last chunk of the message.
        last: bool,
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
            Self::Bdat { .. } => "BDAT",
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
            "BDAT" => parse_bdat(arg),
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
            v if NOT_IMPLEMENTED.contains(&v) => Err(CommandError::NotImplemented(v.to_owned())),
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
            Self::Rcpt { to, params } => write!(f, "RCPT TO:{to}{params}"),
            Self::Bdat { size, last: true } => write!(f, "BDAT {size} LAST"),
            Self::Bdat { size, last: false } => write!(f, "BDAT {size}"),
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
    /// A verb of an SMTP extension this server does not implement (EXPN,
    /// ETRN, AUTH, …).
    #[error("command {0} not implemented")]
    NotImplemented(String),
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
            Self::NotImplemented(_) => (502, EnhancedCode::fixed(5, 5, 1)),
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

const MAIL_GRAMMAR: &str = "MAIL FROM:<address> [SIZE=<n>] [BODY=7BIT|8BITMIME] [SMTPUTF8] [REQUIRETLS] [RET=FULL|HDRS] [ENVID=<xtext>]";
const RCPT_GRAMMAR: &str =
    "RCPT TO:<address> [NOTIFY=NEVER|SUCCESS,FAILURE,DELAY] [ORCPT=<type>;<xtext>]";
const BDAT_GRAMMAR: &str = "BDAT <size> [LAST]";

/// Whether `s` is xtext (RFC 3461 §4): printable ASCII but `+` and `=`, with
/// `+XX` (upper-case hex) for any other octet. `utf8` also allows what
/// RFC 6533's utf-8-addr-xtext adds: non-ASCII characters and `\x{HEX}`.
fn valid_xtext(s: &str, utf8: bool) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        match c {
            b'+' => {
                let hex = b.get(i + 1..i + 3);
                if !hex.is_some_and(|h| {
                    h.iter()
                        .all(|d| d.is_ascii_digit() || (b'A'..=b'F').contains(d))
                }) {
                    return false;
                }
                i += 3;
            }
            b'=' => return false,
            33..=126 => i += 1,
            0x80.. if utf8 => i += 1,
            _ => return false,
        }
    }
    !s.is_empty()
}

fn parse_notify(v: &str) -> Option<Notify> {
    if v.eq_ignore_ascii_case("NEVER") {
        return Some(Notify::NEVER);
    }
    let mut n = Notify::NEVER;
    for word in v.split(',') {
        let slot = match word.to_ascii_uppercase().as_str() {
            "SUCCESS" => &mut n.success,
            "FAILURE" => &mut n.failure,
            "DELAY" => &mut n.delay,
            _ => return None,
        };
        if *slot {
            return None;
        }
        *slot = true;
    }
    Some(n)
}

fn parse_orcpt(v: &str) -> Option<OriginalRecipient> {
    let (addr_type, xtext) = v.split_once(';')?;
    let type_ok = !addr_type.is_empty()
        && addr_type.len() <= 20
        && addr_type
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-');
    let utf8 = addr_type.eq_ignore_ascii_case("utf-8");
    (type_ok && xtext.len() <= MAX_ORCPT && valid_xtext(xtext, utf8)).then(|| OriginalRecipient {
        addr_type: addr_type.to_owned(),
        xtext: xtext.to_owned(),
    })
}

fn parse_bdat(arg: &str) -> Result<Command, CommandError> {
    let bad = |detail: &str| CommandError::Syntax {
        grammar: BDAT_GRAMMAR,
        detail: detail.into(),
    };
    let mut words = arg.split(' ').filter(|w| !w.is_empty());
    let size = words.next().ok_or_else(|| bad("missing chunk size"))?;
    if size.len() > 20 || !size.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad("chunk size must be a decimal number"));
    }
    let size = size
        .parse()
        .map_err(|_| bad("chunk size must be a decimal number"))?;
    let last = match words.next() {
        None => false,
        Some(w) if w.eq_ignore_ascii_case("LAST") => true,
        Some(_) => return Err(bad("only LAST may follow the size")),
    };
    if words.next().is_some() {
        return Err(bad("only LAST may follow the size"));
    }
    Ok(Command::Bdat { size, last })
}

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
            ("RET", Some(v)) if params.ret.is_none() => {
                params.ret = Some(match v.to_ascii_uppercase().as_str() {
                    "FULL" => Ret::Full,
                    "HDRS" => Ret::Headers,
                    _ => return Err(bad()),
                });
            }
            ("ENVID", Some(v)) if params.envid.is_none() => {
                if v.len() > MAX_ENVID || !valid_xtext(v, false) {
                    return Err(bad());
                }
                params.envid = Some(v.to_owned());
            }
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
    let mut params = RcptParams::default();
    for p in rest.split(' ').filter(|p| !p.is_empty()) {
        let bad = || CommandError::Parameter(p.chars().take(40).collect());
        let (key, value) = p.split_once('=').ok_or_else(bad)?;
        match key.to_ascii_uppercase().as_str() {
            "NOTIFY" if params.notify.is_none() => {
                params.notify = Some(parse_notify(value).ok_or_else(bad)?);
            }
            "ORCPT" if params.orcpt.is_none() => {
                params.orcpt = Some(parse_orcpt(value).ok_or_else(bad)?);
            }
            _ => return Err(bad()),
        }
    }
    Ok(Command::Rcpt { to, params })
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
                    requiretls: true,
                    ret: None,
                    envid: None,
                }
            })
        );
        assert_eq!(
            Command::parse(b"RCPT TO:<\"x>y\"@b.example>"),
            Ok(Command::Rcpt {
                to: ForwardPath::Mailbox(mbox("\"x>y\"@b.example")),
                params: RcptParams::default(),
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
            Command::parse(b"RCPT TO:<a@b.example> NOTIFY=NEVER,SUCCESS")
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
            502
        );
        assert_eq!(Command::parse(b"FOO bar").unwrap_err().reply().code(), 500);
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
            proptest::option::of(prop_oneof![Just(Ret::Full), Just(Ret::Headers)]),
            proptest::option::of("([!-*,-<>-~]|\\+[0-9A-F]{2}){1,30}"),
        )
            .prop_map(
                |(size, body, smtputf8, requiretls, ret, envid)| MailParams {
                    size,
                    body,
                    smtputf8,
                    requiretls,
                    ret,
                    envid,
                },
            );
        let rcpt_params = (
            proptest::option::of((any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
                |(success, failure, delay)| Notify {
                    success,
                    failure,
                    delay,
                },
            )),
            proptest::option::of(
                ("rfc822|utf-8", "([!-*,-<>-~]|\\+[0-9A-F]{2}){1,30}")
                    .prop_map(|(addr_type, xtext)| OriginalRecipient { addr_type, xtext }),
            ),
        )
            .prop_map(|(notify, orcpt)| RcptParams { notify, orcpt });
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
            (
                prop_oneof![
                    Just(ForwardPath::Postmaster),
                    mailbox().prop_map(ForwardPath::Mailbox)
                ],
                rcpt_params
            )
                .prop_map(|(to, params)| Command::Rcpt { to, params }),
            (any::<u64>(), any::<bool>()).prop_map(|(size, last)| Command::Bdat { size, last }),
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
