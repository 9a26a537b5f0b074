//! Issue 10 end to end: the real `portcullis` binary between a raw SMTP
//! client on loopback and recording sinks. What a peer MTA or an attacker
//! meets: NUL smuggling variants refused and never relayed, refusals in the
//! mail log, `<Postmaster>` accepted, `Received` for HELO sessions, DSN
//! parameters passed on (and a relay notice when the next hop cannot take
//! them, no bounce for NOTIFY=NEVER), BDAT, the next hop's SIZE, stalled
//! handshakes and slow DATA cut off at short configured deadlines, TLS
//! success logged when the handshake ends, and TLS sessions resumed in
//! both directions.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_testkit::gateway::{GatewayFixture, destination, relay_hat, route};
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::runner::Gateway;
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATIENCE: Duration = Duration::from_secs(60);

/// A raw SMTP client: writes what the test says, reads whole replies.
struct Raw {
    tcp: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    async fn connect(addr: SocketAddr) -> Raw {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut raw = Raw {
            tcp,
            buf: Vec::new(),
        };
        let greeting = raw.reply().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        raw
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.tcp.write_all(bytes).await.unwrap();
    }

    /// The next complete reply (all its lines), or "" at end of stream.
    async fn reply(&mut self) -> String {
        let read = async {
            loop {
                if let Some(end) = complete_reply(&self.buf) {
                    let r: Vec<u8> = self.buf.drain(..end).collect();
                    return String::from_utf8_lossy(&r).into_owned();
                }
                let mut chunk = [0u8; 4096];
                match self.tcp.read(&mut chunk).await {
                    Ok(0) | Err(_) => return String::new(),
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("no reply within the test's patience")
    }

    /// Sends `line` and returns its reply.
    async fn cmd(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }
}

/// The length of the first complete reply in `buf` (its last line has a
/// space after the code).
fn complete_reply(buf: &[u8]) -> Option<usize> {
    let mut start = 0;
    while let Some(lf) = buf[start..].iter().position(|&b| b == b'\n') {
        let line = &buf[start..start + lf + 1];
        start += lf + 1;
        if line.get(3) == Some(&b' ') || line.len() <= 5 {
            return Some(start);
        }
    }
    None
}

async fn plain_sink(options: SinkOptions) -> Sink {
    Sink::start(options).await.unwrap()
}

fn fixture(sink: &Sink) -> GatewayFixture {
    let mut f = GatewayFixture::new().unwrap();
    f.extra = route("example.net", &[sink.addr().to_string()])
        + &route("local.test", &[sink.addr().to_string()])
        + &route("origin.test", &[sink.addr().to_string()]);
    f
}

async fn start(f: &GatewayFixture) -> Gateway {
    f.start().unwrap()
}

async fn envelope(raw: &mut Raw, from: &str, to: &str) {
    assert!(raw.cmd("EHLO client.test").await.starts_with("250"));
    let r = raw.cmd(&format!("MAIL FROM:<{from}>")).await;
    assert!(r.starts_with("250"), "{r}");
    let r = raw.cmd(&format!("RCPT TO:<{to}>")).await;
    assert!(r.starts_with("250"), "{r}");
}

#[tokio::test]
async fn nul_smuggling_variants_are_refused_logged_and_never_relayed() {
    let sink = plain_sink(SinkOptions::new(SinkTls::NotOffered)).await;
    let f = fixture(&sink);
    let gw = start(&f).await;
    for variant in [&b"\r\n\0.\r\n"[..], b"\r\n.\0\r\n"] {
        let mut raw = Raw::connect(f.listen).await;
        envelope(&mut raw, "alice@origin.test", "bob@example.net").await;
        assert!(raw.cmd("DATA").await.starts_with("354"));
        let mut data = b"Subject: smuggle\r\n\r\nfirst".to_vec();
        data.extend_from_slice(variant);
        data.extend_from_slice(
            b"MAIL FROM:<evil@origin.test>\r\nRCPT TO:<victim@example.net>\r\nDATA\r\nSubject: smuggled\r\n\r\n.\r\n",
        );
        raw.send(&data).await;
        let r = raw.reply().await;
        assert!(r.starts_with("554 5.6.0 "), "{variant:?}: {r}");
        // A clean message on the same connection still goes through.
        envelope_again(&mut raw).await;
        assert!(raw.cmd("QUIT").await.starts_with("221"));
    }
    let got = sink.wait_for_messages(2, PATIENCE).await.unwrap();
    assert_eq!(got.len(), 2);
    for m in &got {
        assert_eq!(m.rcpt_to, ["<bob@example.net>"]);
        assert!(
            m.body_text().contains("Subject: clean"),
            "{}",
            m.body_text()
        );
        assert!(!m.body_text().contains('\0'));
    }
    let line = gw
        .wait_for_line(&["refused: NUL character in message data"], PATIENCE)
        .await
        .unwrap();
    assert!(
        line.contains("ICID") && line.contains("554 5.6.0"),
        "{line}"
    );
}

async fn envelope_again(raw: &mut Raw) {
    assert!(
        raw.cmd("MAIL FROM:<alice@origin.test>")
            .await
            .starts_with("250")
    );
    assert!(
        raw.cmd("RCPT TO:<bob@example.net>")
            .await
            .starts_with("250")
    );
    assert!(raw.cmd("DATA").await.starts_with("354"));
    raw.send(b"Subject: clean\r\n\r\nhello\r\n.\r\n").await;
    let r = raw.reply().await;
    assert!(r.starts_with("250"), "{r}");
}

#[tokio::test]
async fn refusals_are_logged_with_connection_command_code_and_reason() {
    let sink = plain_sink(SinkOptions::new(SinkTls::NotOffered)).await;
    let f = fixture(&sink);
    let gw = start(&f).await;
    let mut raw = Raw::connect(f.listen).await;
    assert!(raw.cmd("RCPT TO:<x@example.net>").await.starts_with("503"));
    assert!(raw.cmd("EHLO client.test").await.starts_with("250"));
    assert!(
        raw.cmd("MAIL FROM:<a@origin.test> SIZE=999999999999")
            .await
            .starts_with("552")
    );
    assert!(
        raw.cmd("MAIL FROM:no-brackets@origin.test")
            .await
            .starts_with("501")
    );
    assert!(
        raw.cmd("MAIL FROM:<jörg@origin.test>")
            .await
            .starts_with("553")
    );
    assert!(raw.cmd("EXPN staff").await.starts_with("502"));
    assert!(
        raw.cmd(&format!("NOOP {}", "x".repeat(1200)))
            .await
            .starts_with("500")
    );
    for (needle, code) in [
        ("refused \"RCPT TO:<x@example.net>\": 503 5.5.1", "503"),
        (
            "refused \"MAIL FROM:<a@origin.test> SIZE=999999999999\": 552 5.3.4",
            "552",
        ),
        (
            "refused \"MAIL FROM:no-brackets@origin.test\": 501 5.5.4",
            "501",
        ),
        ("refused \"MAIL FROM:<jörg@origin.test>\": 553 5.6.7", "553"),
        ("refused \"EXPN staff\": 502 5.5.1", "502"),
        ("refused \"NOOP xxxx", "500"),
    ] {
        let line = gw.wait_for_line(&[needle], PATIENCE).await.unwrap();
        assert!(line.contains("ICID") && line.contains(code), "{line}");
    }
    assert!(raw.cmd("QUIT").await.starts_with("221"));
}

#[tokio::test]
async fn required_tls_refusals_and_postmaster_and_helo_received() {
    let sink = plain_sink(SinkOptions::new(SinkTls::NotOffered)).await;
    let mut f = fixture(&sink);
    f.hat = relay_hat("required");
    let gw = start(&f).await;
    let mut raw = Raw::connect(f.listen).await;
    assert!(raw.cmd("EHLO client.test").await.starts_with("250"));
    for cmd in [
        "AUTH PLAIN AGJvYgBwdw==",
        "EXPN staff",
        "ETRN example.net",
        "BDAT 0 LAST",
    ] {
        let r = raw.cmd(cmd).await;
        assert!(r.starts_with("530 5.7.0"), "{cmd}: {r}");
    }
    gw.wait_for_line(&["refused \"EXPN staff\": 530 5.7.0"], PATIENCE)
        .await
        .unwrap();
    drop(raw);

    // <Postmaster> without a domain, over a HELO session: accepted and
    // delivered to postmaster@ the listener's first domain.
    let sink2 = plain_sink(SinkOptions::new(SinkTls::NotOffered)).await;
    let f2 = fixture(&sink2);
    let gw2 = start(&f2).await;
    let mut raw = Raw::connect(f2.listen).await;
    assert!(raw.cmd("HELO client.test").await.starts_with("250"));
    assert!(
        raw.cmd("MAIL FROM:<alice@origin.test>")
            .await
            .starts_with("250")
    );
    let r = raw.cmd("RCPT TO:<POSTMASTER>").await;
    assert!(r.starts_with("250"), "{r}");
    assert!(raw.cmd("DATA").await.starts_with("354"));
    raw.send(b"Subject: to the postmaster\r\n\r\nhi\r\n.\r\n")
        .await;
    assert!(raw.reply().await.starts_with("250"));
    let got = sink2.wait_for_messages(1, PATIENCE).await.unwrap();
    assert_eq!(got[0].rcpt_to, ["<postmaster@local.test>"]);
    let received = got[0].header("Received").unwrap();
    assert!(
        received.contains("from client.test ([127.0.0.1])") && received.contains(" with SMTP id "),
        "{received}"
    );
    gw2.wait_for_line(
        &["RCPT <Postmaster> accepted for postmaster@local.test"],
        PATIENCE,
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn dsn_parameters_reach_a_dsn_next_hop_and_notices_follow_notify() {
    let mut opts = SinkOptions::new(SinkTls::NotOffered);
    opts.dsn = true;
    let dsn_sink = plain_sink(opts).await;
    let f = fixture(&dsn_sink);
    let _gw = start(&f).await;
    let mut raw = Raw::connect(f.listen).await;
    let ehlo = raw.cmd("EHLO client.test").await;
    assert!(
        ehlo.contains("DSN\r\n") && ehlo.contains("CHUNKING\r\n"),
        "{ehlo}"
    );
    assert!(
        raw.cmd("MAIL FROM:<alice@origin.test> RET=HDRS ENVID=QQ+2B1")
            .await
            .starts_with("250")
    );
    let r = raw
        .cmd("RCPT TO:<bob@example.net> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+40example.net")
        .await;
    assert!(r.starts_with("250"), "{r}");
    assert!(raw.cmd("DATA").await.starts_with("354"));
    raw.send(b"Subject: dsn\r\n\r\nhi\r\n.\r\n").await;
    assert!(raw.reply().await.starts_with("250"));
    let got = dsn_sink.wait_for_messages(1, PATIENCE).await.unwrap();
    // SIZE is the gateway's own estimate; the DSN parameters follow it.
    assert!(
        got[0].mail_params.ends_with(" RET=HDRS ENVID=QQ+2B1"),
        "{}",
        got[0].mail_params
    );
    assert_eq!(
        got[0].rcpt_params,
        [" NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob+40example.net"]
    );

    // A next hop without DSN: the parameters stay behind, and the sender
    // who asked NOTIFY=SUCCESS gets a "relayed" notice.
    let plain = plain_sink(SinkOptions::new(SinkTls::NotOffered)).await;
    let f = fixture(&plain);
    let gw = start(&f).await;
    let mut raw = Raw::connect(f.listen).await;
    assert!(raw.cmd("EHLO client.test").await.starts_with("250"));
    assert!(
        raw.cmd("MAIL FROM:<alice@origin.test> ENVID=E1")
            .await
            .starts_with("250")
    );
    assert!(
        raw.cmd("RCPT TO:<bob@example.net> NOTIFY=SUCCESS")
            .await
            .starts_with("250")
    );
    assert!(raw.cmd("DATA").await.starts_with("354"));
    raw.send(b"Subject: relay me\r\n\r\nhi\r\n.\r\n").await;
    assert!(raw.reply().await.starts_with("250"));
    let got = plain.wait_for_messages(2, PATIENCE).await.unwrap();
    let original = got
        .iter()
        .find(|m| m.mail_from == "<alice@origin.test>")
        .unwrap();
    assert!(
        !original.mail_params.contains("ENVID"),
        "{}",
        original.mail_params
    );
    assert!(original.rcpt_params.iter().all(String::is_empty));
    let notice = got.iter().find(|m| m.mail_from == "<>").unwrap();
    assert_eq!(notice.rcpt_to, ["<alice@origin.test>"]);
    let text = notice.body_text();
    assert!(
        text.contains("Action: relayed") && text.contains("Original-Envelope-Id: E1"),
        "{text}"
    );
    gw.wait_for_line(&["queued relay notice"], PATIENCE)
        .await
        .unwrap();
}

#[tokio::test]
async fn notify_never_gets_no_bounce() {
    let mut opts = SinkOptions::new(SinkTls::NotOffered);
    opts.rcpt_rules = vec![(
        "nobody".into(),
        portcullis_smtp_tls::Reply::new(550, "5.1.1", "No such user").unwrap(),
    )];
    let sink = plain_sink(opts).await;
    let f = fixture(&sink);
    let gw = start(&f).await;
    let mut raw = Raw::connect(f.listen).await;
    assert!(raw.cmd("EHLO client.test").await.starts_with("250"));
    assert!(
        raw.cmd("MAIL FROM:<alice@origin.test>")
            .await
            .starts_with("250")
    );
    assert!(
        raw.cmd("RCPT TO:<nobody@example.net> NOTIFY=NEVER")
            .await
            .starts_with("250")
    );
    assert!(raw.cmd("DATA").await.starts_with("354"));
    raw.send(b"Subject: x\r\n\r\nhi\r\n.\r\n").await;
    assert!(raw.reply().await.starts_with("250"));
    gw.wait_for_line(
        &["no bounce sent: the sender asked for no failure notice"],
        PATIENCE,
    )
    .await
    .unwrap();
    assert!(sink.messages().iter().all(|m| m.mail_from != "<>"));
}

#[tokio::test]
async fn bdat_messages_are_queued_and_relayed_like_data() {
    let sink = plain_sink(SinkOptions::new(SinkTls::NotOffered)).await;
    let f = fixture(&sink);
    let gw = start(&f).await;
    let mut raw = Raw::connect(f.listen).await;
    assert!(raw.cmd("EHLO client.test").await.starts_with("250"));
    // Pipelined: envelope and both chunks in one write.
    raw.send(b"MAIL FROM:<alice@origin.test>\r\nRCPT TO:<bob@example.net>\r\nBDAT 16\r\nSubject: chunk\r\nBDAT 10 LAST\r\n\r\n.hello\r\n")
        .await;
    let mut replies = Vec::new();
    for _ in 0..4 {
        replies.push(raw.reply().await);
    }
    assert!(replies[2].starts_with("250 2.0.0 16 octets"), "{replies:?}");
    assert!(
        replies[3].starts_with("250 2.0.0 Ok: queued as "),
        "{replies:?}"
    );
    // BDAT 0 LAST alone.
    assert!(
        raw.cmd("MAIL FROM:<alice@origin.test>")
            .await
            .starts_with("250")
    );
    assert!(
        raw.cmd("RCPT TO:<carol@example.net>")
            .await
            .starts_with("250")
    );
    assert!(
        raw.cmd("BDAT 0 LAST")
            .await
            .starts_with("250 2.0.0 Ok: queued")
    );
    let got = sink.wait_for_messages(2, PATIENCE).await.unwrap();
    let chunked = got
        .iter()
        .find(|m| m.rcpt_to == ["<bob@example.net>"])
        .unwrap();
    assert!(
        chunked
            .body_text()
            .ends_with("Subject: chunk\r\n\r\n.hello\r\n"),
        "{}",
        chunked.body_text()
    );
    gw.wait_for_line(&["queued from <alice@origin.test>"], PATIENCE)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_message_over_the_next_hops_size_bounces_at_once() {
    let mut opts = SinkOptions::new(SinkTls::NotOffered);
    // Room for the bounce (headers only), not for the message.
    opts.max_message_size = Some(4000);
    let sink = plain_sink(opts).await;
    let f = fixture(&sink);
    let gw = start(&f).await;
    let mut raw = Raw::connect(f.listen).await;
    envelope(&mut raw, "alice@origin.test", "bob@example.net").await;
    assert!(raw.cmd("DATA").await.starts_with("354"));
    let body = format!(
        "Subject: big\r\n\r\n{}.\r\n",
        format!("{}\r\n", "y".repeat(70)).repeat(100)
    );
    raw.send(body.as_bytes()).await;
    assert!(raw.reply().await.starts_with("250"));
    let line = gw
        .wait_for_line(&["bounced <bob@example.net>", "5.3.4"], PATIENCE)
        .await
        .unwrap();
    assert!(line.contains("accepts at most 4000"), "{line}");
    // The bounce itself (small) reaches the sender through the same sink.
    let got = sink.wait_for_messages(1, PATIENCE).await.unwrap();
    assert_eq!(got[0].mail_from, "<>");
    assert!(got[0].body_text().contains("Status: 5.3.4"));
}

#[tokio::test]
async fn stalled_handshakes_and_slow_data_are_cut_off_at_their_deadlines() {
    let sink = plain_sink(SinkOptions::new(SinkTls::NotOffered)).await;
    let mut f = fixture(&sink);
    f.hat = relay_hat("preferred");
    f.listener
        .push_str("tls-handshake-timeout-seconds = 1\ndata-timeout-seconds = 2\n");
    let gw = start(&f).await;
    // STARTTLS, then nothing: the gateway closes the connection.
    let mut raw = Raw::connect(f.listen).await;
    assert!(raw.cmd("EHLO client.test").await.starts_with("250"));
    assert!(raw.cmd("STARTTLS").await.starts_with("220"));
    assert_eq!(raw.reply().await, "", "the connection was not closed");
    gw.wait_for_line(&["the TLS handshake did not complete in time"], PATIENCE)
        .await
        .unwrap();
    // DATA at one byte every 300 ms: never idle, but over the DATA deadline.
    let mut raw = Raw::connect(f.listen).await;
    envelope(&mut raw, "alice@origin.test", "bob@example.net").await;
    assert!(raw.cmd("DATA").await.starts_with("354"));
    let dribble = async {
        loop {
            if raw.tcp.write_all(b"z").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut probe = [0u8; 512];
            if let Ok(Ok(n)) =
                tokio::time::timeout(Duration::from_millis(1), raw.tcp.read(&mut probe)).await
            {
                return String::from_utf8_lossy(&probe[..n]).into_owned();
            }
        }
        String::new()
    };
    let reply = tokio::time::timeout(PATIENCE, dribble).await.unwrap();
    assert!(reply.starts_with("421 4.4.2"), "{reply}");
    gw.wait_for_line(&["the message transfer took too long"], PATIENCE)
        .await
        .unwrap();
    assert!(sink.messages().is_empty());
}

/// A client TLS config that trusts any server: these tests look at what
/// the gateway logs and resumes, not at its certificate.
fn any_server() -> Arc<rustls::ClientConfig> {
    #[derive(Debug)]
    struct Any(Arc<rustls::crypto::CryptoProvider>);
    impl rustls::client::danger::ServerCertVerifier for Any {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }
        fn verify_tls12_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls12_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn verify_tls13_signature(
            &self,
            m: &[u8],
            c: &rustls::pki_types::CertificateDer<'_>,
            d: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            rustls::crypto::verify_tls13_signature(
                m,
                c,
                d,
                &self.0.signature_verification_algorithms,
            )
        }
        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            self.0.signature_verification_algorithms.supported_schemes()
        }
    }
    let provider = portcullis_testkit::provider();
    Arc::new(
        rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Any(provider)))
            .with_no_client_auth(),
    )
}

#[tokio::test]
async fn tls_success_is_logged_when_the_handshake_completes() {
    let sink = plain_sink(SinkOptions::new(SinkTls::NotOffered)).await;
    let mut f = fixture(&sink);
    f.hat = relay_hat("preferred");
    let gw = start(&f).await;
    let mut raw = Raw::connect(f.listen).await;
    assert!(raw.cmd("EHLO client.test").await.starts_with("250"));
    assert!(raw.cmd("STARTTLS").await.starts_with("220"));
    let connector = tokio_rustls::TlsConnector::from(any_server());
    let name = rustls::pki_types::ServerName::try_from("gateway.test").unwrap();
    let tls = connector.connect(name, raw.tcp).await.unwrap();
    // No command after the handshake: the line must be there already.
    let line = gw
        .wait_for_line(&["TLS success protocol TLSv1.3 cipher TLS_"], PATIENCE)
        .await
        .unwrap();
    assert!(line.contains("ICID"), "{line}");
    drop(tls);
    // The listener on the demonstration certificate says so, and the
    // connection line names the mail flow policy.
    gw.wait_for_line(
        &["STARTTLS certificate: the built-in demonstration certificate (testing only)"],
        PATIENCE,
    )
    .await
    .unwrap();
    gw.wait_for_line(
        &["policy RELAYED tls=preferred (mail flow policy \"RELAYED\")"],
        PATIENCE,
    )
    .await
    .unwrap();
}

/// `openssl s_client -sess_out`, then `-sess_in`: the second handshake
/// with the gateway's listener is a resumed one.
#[tokio::test(flavor = "multi_thread")]
async fn openssl_resumes_its_session_with_the_gateway() {
    let sink = plain_sink(SinkOptions::new(SinkTls::NotOffered)).await;
    let mut f = fixture(&sink);
    f.hat = relay_hat("preferred");
    let _gw = start(&f).await;
    let sess = f.dir().join("openssl.sess");
    let run = |args: Vec<String>| {
        let mut child = std::process::Command::new("openssl")
            .args(["s_client", "-starttls", "smtp", "-connect"])
            .arg(f.listen.to_string())
            .args(["-tls1_3", "-ign_eof"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("openssl is part of the test machine");
        // Keep the session open long enough to receive the tickets.
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let _ = std::io::Write::write_all(&mut stdin, b"QUIT\r\n");
        drop(stdin);
        let out = child.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let first =
        tokio::task::block_in_place(|| run(vec!["-sess_out".into(), sess.display().to_string()]));
    assert!(first.contains("New, TLSv1.3"), "{first}");
    let second =
        tokio::task::block_in_place(|| run(vec!["-sess_in".into(), sess.display().to_string()]));
    assert!(second.contains("Reused, TLSv1.3"), "{second}");
}

/// The gateway resumes its own TLS sessions with a next hop, under the
/// same certificate check, and says so.
#[tokio::test(flavor = "multi_thread")]
async fn the_gateway_resumes_tls_sessions_with_a_next_hop() {
    let pki = TestPki::new().unwrap();
    // The certificate names the destination domain: required-verify
    // accepts it for a route host given by address.
    let leaf = Arc::new(pki.leaf(&["example.net"]).unwrap());
    let sink = plain_sink(SinkOptions::new(SinkTls::Offered(leaf))).await;
    let mut f = GatewayFixture::new().unwrap();
    f.trust_ca(&pki.root_pem()).unwrap();
    f.extra = format!(
        "{}max-messages-per-connection = 1\n{}",
        destination("example.net", "required-verify", "none", false),
        route("example.net", &[sink.addr().to_string()])
    );
    let gw = start(&f).await;
    for i in 0..2 {
        let mut raw = Raw::connect(f.listen).await;
        envelope(&mut raw, "alice@origin.test", &format!("u{i}@example.net")).await;
        assert!(raw.cmd("DATA").await.starts_with("354"));
        raw.send(b"Subject: again\r\n\r\nhi\r\n.\r\n").await;
        assert!(raw.reply().await.starts_with("250"));
        sink.wait_for_sessions(i + 1, PATIENCE).await.unwrap();
    }
    let sessions = sink.wait_for_sessions(2, PATIENCE).await.unwrap();
    assert!(
        !sessions[0].tls_resumed && sessions[1].tls_resumed,
        "{sessions:?}"
    );
    gw.wait_for_line(
        &["delivered to <u1@example.net>", "(resumed session)"],
        PATIENCE,
    )
    .await
    .unwrap();
}

/// A message that outlives the queue lifetime bounces with 5.4.7 (RFC
/// 3463: delivery time expired), whatever the last deferral said.
#[tokio::test]
async fn an_expired_message_bounces_with_5_4_7() {
    let sink = plain_sink(SinkOptions::new(SinkTls::NotOffered)).await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let mut f = GatewayFixture::new().unwrap();
    f.queue = "lifetime-seconds = 1\nretry-first-seconds = 1\nretry-max-seconds = 1\n".into();
    f.extra = route("example.net", &[closed.to_string()])
        + &route("origin.test", &[sink.addr().to_string()]);
    let gw = start(&f).await;
    let mut raw = Raw::connect(f.listen).await;
    envelope(&mut raw, "alice@origin.test", "bob@example.net").await;
    assert!(raw.cmd("DATA").await.starts_with("354"));
    raw.send(b"Subject: late\r\n\r\nhi\r\n.\r\n").await;
    assert!(raw.reply().await.starts_with("250"));
    gw.wait_for_line(
        &["bounced <bob@example.net>: 5.4.7 message expired"],
        PATIENCE,
    )
    .await
    .unwrap();
    let got = sink.wait_for_messages(1, PATIENCE).await.unwrap();
    let text = got[0].body_text();
    assert!(text.contains("Status: 5.4.7\r\n"), "{text}");
    assert!(text.contains("Message-ID: <"), "{text}");
    // The host, not `host[address]:port`.
    assert!(text.contains("Remote-MTA: dns; [127.0.0.1]\r\n"), "{text}");
}
