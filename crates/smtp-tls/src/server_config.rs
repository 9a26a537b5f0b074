//! What an embedder sets for one server session: the announced name, the TLS
//! mode, limits, how message text is handed over, and the embedder's own
//! EHLO keywords. Usually built per connection from the listener's settings
//! and the client's access-table entry.

use std::time::Duration;

use crate::ehlo::{EhloExtension, ExtensionError, check_addition};
#[cfg(doc)]
use crate::server_event::ServerEvent;
use crate::tls::TlsMode;

/// Settings of one server session (from the listener and its HAT entry).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The name announced in the greeting and EHLO reply.
    pub hostname: String,
    /// Whether STARTTLS is offered or required.
    pub tls: TlsMode,
    /// Largest message accepted, in octets (advertised as `SIZE`).
    pub max_message_size: u64,
    /// Most recipients per message (RFC 5321 §4.5.3.1.8 asks for ≥ 100).
    pub max_recipients: usize,
    /// Errors tolerated before the session is closed with 421.
    pub max_errors: u32,
    /// Inactivity after which the session is closed with 421 (RFC 5321
    /// §4.5.3.2.7: at least 5 minutes). Each command and each piece of
    /// message text must arrive within it.
    pub idle_timeout: Duration,
    /// Longest TLS handshake after the `220` to STARTTLS (no RFC value; the
    /// idle timeout does not apply while the handshake runs). Default 60 s.
    pub tls_handshake_timeout: Duration,
    /// Longest DATA or BDAT transfer, from the DATA (or first BDAT) command
    /// to the end of the message, however busy the client keeps the line
    /// (a client sending a byte a second never meets the idle timeout).
    /// Default 30 minutes.
    pub data_timeout: Duration,
    /// Longest session, whatever happens in it. Default 1 hour.
    pub session_timeout: Duration,
    /// Offer CHUNKING and accept BDAT (RFC 3030); BDAT messages reach the
    /// embedder through the same events as DATA ones, with the same checks.
    /// Off by default (then BDAT gets `502`).
    pub chunking: bool,
    /// Offer DSN and accept its parameters (RFC 3461: `RET`, `ENVID`,
    /// `NOTIFY`, `ORCPT`, found in [`crate::Envelope`]). Off by default:
    /// turn it on only if the embedder honours them (passes them on, or
    /// reports as they ask).
    pub dsn: bool,
    /// Hand message text over as it arrives ([`ServerEvent::MessageStart`],
    /// [`ServerEvent::MessageData`], [`ServerEvent::MessageEnd`]) instead of
    /// one [`ServerEvent::Message`] with the whole body. Off by default.
    pub stream_message_data: bool,
    /// The embedder's EHLO keywords (see [`ServerConfig::advertise`]).
    extensions: Vec<EhloExtension>,
}

impl ServerConfig {
    /// Defaults: TLS off, 25 MiB messages, 100 recipients, 10 errors, 5
    /// minutes idle, 60 s for a TLS handshake, 30 minutes for a message
    /// transfer, 1 hour for a session, CHUNKING and DSN off.
    pub fn new(hostname: impl Into<String>) -> Self {
        Self {
            hostname: hostname.into(),
            tls: TlsMode::Off,
            max_message_size: 25 * 1024 * 1024,
            max_recipients: 100,
            max_errors: 10,
            idle_timeout: Duration::from_secs(300),
            tls_handshake_timeout: Duration::from_secs(60),
            data_timeout: Duration::from_secs(30 * 60),
            session_timeout: Duration::from_secs(3600),
            chunking: false,
            dsn: false,
            stream_message_data: false,
            extensions: Vec::new(),
        }
    }

    /// Adds an EHLO keyword to what the session advertises, in the TLS
    /// state(s) the extension names. The session only advertises it: the
    /// extension's commands and parameters must be ones the session parses.
    ///
    /// ```
    /// use portcullis_smtp_tls::{Advertise, EhloExtension, ServerConfig};
    /// let mut config = ServerConfig::new("mx.example.org");
    /// config.advertise(EhloExtension::new("X-EXAMPLE", Advertise::Always)?)?;
    /// assert!(config.advertise(EhloExtension::new("x-example", Advertise::WithTls)?).is_err());
    /// # Ok::<(), portcullis_smtp_tls::ExtensionError>(())
    /// ```
    pub fn advertise(&mut self, extension: EhloExtension) -> Result<(), ExtensionError> {
        check_addition(&self.extensions, &extension)?;
        self.extensions.push(extension);
        Ok(())
    }

    /// The embedder's EHLO keywords, in the order they are advertised.
    pub fn extensions(&self) -> &[EhloExtension] {
        &self.extensions
    }
}
