//! What the alert tests share: the receivers an alert goes to (the
//! testkit's SMTP sink with STARTTLS, and an HTTPS webhook receiver started
//! here), alert settings pointing at them, and the parsing of what arrived
//! (the mail with Python's `email` package, the webhook's JSON with serde).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use portcullis_mta::alerts::settings::WebhookSettings;
use portcullis_mta::alerts::{AlertSettings, Delivery, Recipient, Subscription};
use portcullis_mta::settings::{OutboundTls, RouteHost};
use portcullis_policy::HopHost;
use portcullis_testkit::pki::TestPki;
use portcullis_testkit::sink::{ReceivedMessage, Sink, SinkOptions, SinkTls};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub const WAIT: Duration = Duration::from_secs(30);

/// An HTTPS server on loopback that records each JSON POST.
pub struct Webhook {
    pub addr: SocketAddr,
    pub received: Arc<Mutex<Vec<(String, String, Value)>>>,
    /// Answer this many posts with 503 (not recorded) before accepting.
    pub refuse: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Webhook {
    pub async fn start(pki: &TestPki) -> Webhook {
        let leaf = pki.leaf(&["hooks.test"]).unwrap();
        let acceptor = TlsAcceptor::from(leaf.server_config().unwrap());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received: Arc<Mutex<Vec<(String, String, Value)>>> = Arc::default();
        let store = received.clone();
        let refuse: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let refusing = refuse.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let acceptor = acceptor.clone();
                let store = store.clone();
                let refusing = refusing.clone();
                tokio::spawn(async move {
                    let Ok(tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let service = hyper::service::service_fn(
                        move |req: hyper::Request<hyper::body::Incoming>| {
                            let store = store.clone();
                            let refusing = refusing.clone();
                            async move {
                                use std::sync::atomic::Ordering;
                                let refused = refusing
                                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                                        n.checked_sub(1)
                                    })
                                    .is_ok();
                                if refused {
                                    let mut busy = hyper::Response::new(Full::new(
                                        Bytes::from_static(b"busy"),
                                    ));
                                    *busy.status_mut() = hyper::StatusCode::SERVICE_UNAVAILABLE;
                                    return Ok(busy);
                                }
                                let path = req.uri().path().to_owned();
                                let ctype = req
                                    .headers()
                                    .get(hyper::header::CONTENT_TYPE)
                                    .and_then(|v| v.to_str().ok())
                                    .unwrap_or_default()
                                    .to_owned();
                                let body = req.into_body().collect().await?.to_bytes();
                                let json: Value =
                                    serde_json::from_slice(&body).unwrap_or(Value::Null);
                                store.lock().unwrap().push((path, ctype, json));
                                Ok::<_, hyper::Error>(hyper::Response::new(Full::new(
                                    Bytes::from_static(b"ok"),
                                )))
                            }
                        },
                    );
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service)
                        .await;
                });
            }
        });
        Webhook {
            addr,
            received,
            refuse,
            task,
        }
    }

    /// Waits for at least `n` posts; returns the JSON documents.
    pub async fn wait_for(&self, n: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let got = self.received.lock().unwrap().clone();
            if got.len() >= n {
                for (path, ctype, _) in &got {
                    assert_eq!(path, "/hook/portcullis");
                    assert_eq!(ctype, "application/json");
                }
                return got.into_iter().map(|(_, _, j)| j).collect();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{n} webhook post(s) expected, got {}",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn count(&self) -> usize {
        self.received.lock().unwrap().len()
    }
}

/// The two receivers and the PKI they use.
pub struct Receivers {
    pub pki: TestPki,
    pub sink: Sink,
    pub webhook: Webhook,
}

impl Receivers {
    pub async fn start() -> Receivers {
        let pki = TestPki::new().unwrap();
        let leaf = pki.leaf(&["smarthost.test"]).unwrap();
        let sink = Sink::start(SinkOptions::new(SinkTls::Offered(Arc::new(leaf))))
            .await
            .unwrap();
        let webhook = Webhook::start(&pki).await;
        Receivers { pki, sink, webhook }
    }

    /// Alert settings sending through the sink as smarthost and to the
    /// webhook, trusting the test PKI, quick retries.
    pub fn settings(&self, data_dir: &Path) -> AlertSettings {
        let tls = OutboundTls::new(self.pki.root_store().unwrap(), &Default::default()).unwrap();
        let mut s = AlertSettings::new(
            "gw.test",
            portcullis_mta::alerts::alerts_dir(data_dir),
            tls.clone(),
        );
        s.recipients = vec![
            Recipient {
                address: "ops@example.test".into(),
                subscription: Subscription::default(),
            },
            Recipient {
                address: "pki@example.test".into(),
                subscription: Subscription {
                    classes: vec![portcullis_mta::alerts::AlertClass::Certificate],
                    severities: vec![],
                },
            },
        ];
        s.delivery = Delivery::Smarthost(vec![RouteHost {
            host: HopHost::Name(portcullis_policy::DomainName::parse("smarthost.test").unwrap()),
            address: Some(self.sink.addr().ip()),
            port: self.sink.addr().port(),
        }]);
        let client = rustls::ClientConfig::builder_with_provider(tls.provider.clone())
            .with_protocol_versions(&tls.versions)
            .unwrap()
            .with_root_certificates(tls.roots.clone())
            .with_no_client_auth();
        s.webhook = Some(WebhookSettings {
            url: format!(
                "https://hooks.test:{}/hook/portcullis",
                self.webhook.addr.port()
            ),
            host: "hooks.test".into(),
            port: self.webhook.addr.port(),
            path: "/hook/portcullis".into(),
            address: Some(self.webhook.addr),
            tls: Arc::new(client),
        });
        s.retry_first = Duration::from_millis(200);
        s.retry_max = Duration::from_secs(1);
        s.attempt_timeout = Duration::from_secs(10);
        s
    }

    /// Waits for `n` alert mails; each parsed.
    pub async fn mails(&self, n: usize) -> Vec<ParsedMail> {
        let got = self.sink.wait_for_messages(n, WAIT).await.unwrap();
        got.iter().map(parse_mail).collect()
    }
}

/// An alert mail as Python's `email` package reads it, with its session.
#[derive(Debug, Clone)]
pub struct ParsedMail {
    pub json: Value,
    pub rcpt_to: Vec<String>,
    pub mail_from: String,
    pub tls: bool,
}

impl ParsedMail {
    pub fn header(&self, k: &str) -> &str {
        self.json[k].as_str().unwrap_or_default()
    }
    /// The value of `name=` in the X-Portcullis-Alert header.
    pub fn alert_field(&self, name: &str) -> String {
        self.header("x_alert")
            .split(';')
            .filter_map(|p| p.trim().split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.to_owned())
            .unwrap_or_default()
    }
    pub fn body(&self) -> &str {
        self.header("body")
    }
}

pub fn parse_mail(m: &ReceivedMessage) -> ParsedMail {
    use std::io::Write;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/alerts_support/parse_alert.py");
    let mut child = std::process::Command::new("python3")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 runs the mail parser");
    child.stdin.take().unwrap().write_all(&m.body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python3 could not parse:\n{}",
        m.body_text()
    );
    ParsedMail {
        json: serde_json::from_slice(&out.stdout).unwrap(),
        rcpt_to: m.rcpt_to.clone(),
        mail_from: m.mail_from.clone(),
        tls: m.tls.is_some(),
    }
}

/// The alerts that arrived by mail and by webhook for one key, checked to
/// agree with each other.
pub fn for_key<'a>(mails: &'a [ParsedMail], key: &str) -> Vec<&'a ParsedMail> {
    mails
        .iter()
        .filter(|m| m.body().contains(&format!("Key: {key}")))
        .collect()
}

pub fn hooks_for_key(hooks: &[Value], key: &str) -> Vec<Value> {
    hooks.iter().filter(|h| h["key"] == key).cloned().collect()
}

/// Mail log lines, collected.
#[derive(Clone, Default)]
pub struct Log(pub Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn observer(&self) -> portcullis_mta::maillog::LogObserver {
        let lines = self.0.clone();
        Arc::new(move |l: &str| lines.lock().unwrap().push(l.to_owned()))
    }
    pub fn mail_log(&self) -> portcullis_mta::maillog::MailLog {
        portcullis_mta::maillog::MailLog::with_observer(Some(self.observer()))
    }
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
    pub async fn wait_for(&self, part: &str) -> String {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.contains(part)) {
                return l;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line with {part:?}:\n{}",
                self.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
