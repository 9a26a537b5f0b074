//! The sink's behaviours, driven by the real smtp-tls client over loopback
//! with real rustls: what the client sees (its `TlsOutcome`, the replies)
//! and what the sink records must agree.

use std::sync::Arc;
use std::time::Duration;

use portcullis_smtp_tls::{
    ClientConfig, ClientConnection, ClientSession, Envelope, Error as SmtpError, ForwardPath,
    MailParams, Reply, ReversePath, TlsOutcome, TlsRequirement, deliver,
};
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::sink::{Sink, SinkOptions, SinkTls};
use rustls_pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

const WAIT: Duration = Duration::from_secs(20);

fn envelope(to: &[&str]) -> Envelope {
    Envelope {
        from: ReversePath::parse("<sender@origin.test>").unwrap(),
        params: MailParams::default(),
        to: to
            .iter()
            .map(|t| ForwardPath::parse(&format!("<{t}>")).unwrap())
            .collect(),
    }
}

async fn send(
    sink: &Sink,
    pki: &TestPki,
    name: &str,
    requirement: TlsRequirement,
    to: &[&str],
) -> Result<portcullis_smtp_tls::Delivery, SmtpError> {
    let socket = TcpStream::connect(sink.addr()).await.unwrap();
    let session = ClientSession::new(ClientConfig::new("client.test"), std::time::Instant::now());
    let conn = ClientConnection::new(
        socket,
        session,
        TlsConnector::from(pki.client_config().unwrap()),
        ServerName::try_from(name.to_string()).unwrap(),
    );
    deliver(
        conn,
        requirement,
        envelope(to),
        b"Subject: hello\r\n\r\nbody line\r\n",
    )
    .await
}

#[tokio::test]
async fn good_tls_records_protocol_cipher_and_sni() {
    let pki = TestPki::new().unwrap();
    let leaf = Arc::new(pki.leaf(&["mx.good.test"]).unwrap());
    let sink = Sink::start(SinkOptions::new(SinkTls::Offered(leaf)))
        .await
        .unwrap();
    let d = send(
        &sink,
        &pki,
        "mx.good.test",
        TlsRequirement::Required,
        &["rcpt@good.test"],
    )
    .await
    .unwrap();
    assert!(d.tls.is_established(), "{:?}", d.tls);
    assert!(d.result.is_accepted());
    let msgs = sink.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    assert_eq!(m.mail_from, "<sender@origin.test>");
    assert_eq!(m.rcpt_to, vec!["<rcpt@good.test>".to_string()]);
    assert_eq!(m.header("subject").as_deref(), Some("hello"));
    assert_eq!(m.helo.as_deref(), Some("client.test"));
    let tls = m.tls.as_ref().expect("TLS facts");
    assert_eq!(tls.protocol, "TLSv1.3");
    assert!(tls.cipher.starts_with("TLS_"), "{}", tls.cipher);
    assert_eq!(tls.sni.as_deref(), Some("mx.good.test"));
    let s = sink.wait_for_sessions(1, WAIT).await.unwrap();
    assert!(s[0].starttls_attempted);
    assert_eq!(s[0].messages, 1);
}

#[tokio::test]
async fn untrusted_chain_fails_the_clients_verification() {
    let pki = TestPki::new().unwrap();
    let other = TestPki::new().unwrap();
    let leaf = Arc::new(other.leaf(&["mx.good.test"]).unwrap());
    let sink = Sink::start(SinkOptions::new(SinkTls::Offered(leaf)))
        .await
        .unwrap();
    let e = send(
        &sink,
        &pki,
        "mx.good.test",
        TlsRequirement::Required,
        &["r@good.test"],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, SmtpError::TlsRequired(TlsOutcome::HandshakeFailed(ref why)) if why.contains("UnknownIssuer")),
        "{e:?}"
    );
    let s = sink.wait_for_sessions(1, WAIT).await.unwrap();
    assert!(s[0].tls.is_none());
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn not_offered_is_cleartext() {
    let pki = TestPki::new().unwrap();
    let sink = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let d = send(
        &sink,
        &pki,
        "mx.test",
        TlsRequirement::Preferred,
        &["r@x.test"],
    )
    .await
    .unwrap();
    assert_eq!(d.tls, TlsOutcome::StartTlsNotOffered);
    let msgs = sink.wait_for_messages(1, WAIT).await.unwrap();
    assert!(msgs[0].tls.is_none());
    let e = send(
        &sink,
        &pki,
        "mx.test",
        TlsRequirement::Required,
        &["r@x.test"],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(e, SmtpError::TlsRequired(TlsOutcome::StartTlsNotOffered)),
        "{e:?}"
    );
    assert_eq!(sink.messages().len(), 1);
}

#[tokio::test]
async fn refused_starttls_gets_the_configured_reply() {
    let pki = TestPki::new().unwrap();
    let sink = Sink::start(SinkOptions::new(SinkTls::Refused(
        "454 4.7.0 TLS not available due to local problem".into(),
    )))
    .await
    .unwrap();
    let d = send(
        &sink,
        &pki,
        "mx.test",
        TlsRequirement::Preferred,
        &["r@x.test"],
    )
    .await
    .unwrap();
    match &d.tls {
        TlsOutcome::StartTlsRefused(r) => {
            assert_eq!(r.code(), 454);
            assert!(r.to_string().contains("local problem"), "{r}");
        }
        other => panic!("{other:?}"),
    }
    let msgs = sink.wait_for_messages(1, WAIT).await.unwrap();
    assert!(msgs[0].tls.is_none());
    let s = sink.wait_for_sessions(1, WAIT).await.unwrap();
    assert!(s[0].starttls_attempted);
}

#[tokio::test]
async fn handshake_failure_breaks_the_connection() {
    let pki = TestPki::new().unwrap();
    let sink = Sink::start(SinkOptions::new(SinkTls::HandshakeFails))
        .await
        .unwrap();
    let e = send(
        &sink,
        &pki,
        "mx.test",
        TlsRequirement::Preferred,
        &["r@x.test"],
    )
    .await
    .unwrap_err();
    assert!(
        matches!(
            e,
            SmtpError::Handshake(_) | SmtpError::Io(_) | SmtpError::ConnectionClosed(_)
        ),
        "{e:?}"
    );
    let s = sink.wait_for_sessions(1, WAIT).await.unwrap();
    assert!(s[0].starttls_attempted);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn no_esmtp_means_helo_and_cleartext() {
    let pki = TestPki::new().unwrap();
    let sink = Sink::start(SinkOptions::new(SinkTls::NoEsmtp))
        .await
        .unwrap();
    let d = send(
        &sink,
        &pki,
        "mx.test",
        TlsRequirement::Preferred,
        &["r@x.test"],
    )
    .await
    .unwrap();
    assert_eq!(d.tls, TlsOutcome::NoEsmtp);
    let msgs = sink.wait_for_messages(1, WAIT).await.unwrap();
    assert!(msgs[0].tls.is_none());
}

#[tokio::test]
async fn rcpt_and_data_refusals_use_the_given_replies() {
    let pki = TestPki::new().unwrap();
    let mut o = SinkOptions::new(SinkTls::NotOffered);
    o.rcpt_rules = vec![(
        "unknown@".into(),
        Reply::new(550, "5.1.1", "No such user").unwrap(),
    )];
    let sink = Sink::start(o).await.unwrap();
    let d = send(
        &sink,
        &pki,
        "mx.test",
        TlsRequirement::None,
        &["unknown@x.test", "known@x.test"],
    )
    .await
    .unwrap();
    let codes: Vec<_> = d
        .result
        .recipients
        .iter()
        .map(|(_, r)| r.as_ref().map(|r| r.code()))
        .collect();
    assert_eq!(codes, vec![Some(550), Some(250)]);
    let msgs = sink.wait_for_messages(1, WAIT).await.unwrap();
    assert_eq!(msgs[0].rcpt_to, vec!["<known@x.test>".to_string()]);

    let mut o = SinkOptions::new(SinkTls::NotOffered);
    o.data_reply = Some(Reply::new(451, "4.3.0", "Try again later").unwrap());
    let sink = Sink::start(o).await.unwrap();
    let d = send(&sink, &pki, "mx.test", TlsRequirement::None, &["a@x.test"])
        .await
        .unwrap();
    assert_eq!(d.result.data.as_ref().map(|r| r.code()), Some(451));
    let s = sink.wait_for_sessions(1, WAIT).await.unwrap();
    assert_eq!(s[0].refused_messages, 1);
    assert!(sink.messages().is_empty());
}

#[tokio::test]
async fn waiting_for_more_messages_than_arrive_times_out_with_a_count() {
    let sink = Sink::start(SinkOptions::new(SinkTls::NotOffered))
        .await
        .unwrap();
    let e = sink
        .wait_for_messages(1, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("have 0 message(s)"), "{e}");
}

#[tokio::test]
async fn sinks_listen_on_loopback_only() {
    let e = Sink::start_on(
        "0.0.0.0:0".parse().unwrap(),
        SinkOptions::new(SinkTls::NotOffered),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("loopback only"), "{e}");
}
