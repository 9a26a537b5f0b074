//! Shared by the engine integration tests: a test PKI made with rcgen, a
//! small TLS-capable SMTP sink built on smtp-tls's server driver (records
//! each message with the TLS facts of its session), a mail-log capture, an
//! SMTP client over real TLS, and engine settings for loopback.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use portcullis_mta::engine::{
    DeliverySettings, EngineSettings, ListenerSettings, OutboundTls, RouteHost, SmtpRoute,
};
use portcullis_policy::{
    DestinationKey, DomainName, DomainPattern, HopHost, ListenerAccess, ListenerAccessConfig,
    OutboundConfig, OutboundPolicy,
};
use portcullis_smtp_tls::{
    ClientConfig, ClientConnection, ClientSession, Delivery, Envelope, ForwardPath, MailParams,
    ReversePath, ServerConfig, ServerConnection, ServerEvent, ServerSession, TlsInfo, TlsMode,
    TlsRequirement, deliver,
};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::{TlsAcceptor, TlsConnector};

/// Generous upper bound for waiting on asynchronous outcomes; never a
/// timing assertion, only a guard against hanging forever.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A test certificate authority.
pub struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A certificate chain and key.
pub struct Leaf {
    pub chain: Vec<CertificateDer<'static>>,
    key: Vec<u8>,
}

impl Leaf {
    pub fn key(&self) -> PrivateKeyDer<'static> {
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key.clone()))
    }

    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        Arc::new(
            rustls::ServerConfig::builder()
                .with_no_client_auth()
                .with_single_cert(self.chain.clone(), self.key())
                .unwrap(),
        )
    }
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.distinguished_name.push(DnType::CommonName, name);
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        Ca {
            issuer: CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap(),
        }
    }

    pub fn cert(&self) -> CertificateDer<'static> {
        self.issuer.der().clone()
    }

    pub fn roots(&self) -> rustls::RootCertStore {
        let mut r = rustls::RootCertStore::empty();
        r.add(self.cert()).unwrap();
        r
    }

    /// A leaf for `names`; `expired` makes it valid only in 2020.
    pub fn leaf(&self, names: &[&str], expired: bool) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
        p.distinguished_name.push(DnType::CommonName, names[0]);
        if expired {
            p.not_before = rcgen::date_time_ymd(2020, 1, 1);
            p.not_after = rcgen::date_time_ymd(2020, 12, 31);
        }
        let cert = p.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            chain: vec![cert.der().clone(), self.cert()],
            key: key.serialize_der(),
        }
    }

    /// A client connector trusting this CA.
    pub fn connector(&self) -> TlsConnector {
        TlsConnector::from(Arc::new(
            rustls::ClientConfig::builder()
                .with_root_certificates(self.roots())
                .with_no_client_auth(),
        ))
    }
}

/// One message as the sink saw it.
#[derive(Debug, Clone)]
pub struct SinkMessage {
    pub from: String,
    pub to: Vec<String>,
    pub body: Vec<u8>,
    pub tls: Option<TlsInfo>,
    pub requiretls: bool,
}

/// How the sink behaves.
#[derive(Clone, Default)]
pub struct SinkOptions {
    /// Offer STARTTLS with this certificate.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Answer every RCPT with this (code, enhanced, text).
    pub rcpt_reply: Option<(u16, &'static str, &'static str)>,
}

/// A TLS-capable SMTP sink on 127.0.0.1.
pub struct Sink {
    pub addr: SocketAddr,
    pub messages: Arc<Mutex<Vec<SinkMessage>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sink {
    pub async fn start(opts: SinkOptions) -> Sink {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        Sink::on(listener, opts)
    }

    pub fn on(listener: TcpListener, opts: SinkOptions) -> Sink {
        let addr = listener.local_addr().unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let m = messages.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(sink_session(stream, opts.clone(), m.clone()));
            }
        });
        Sink {
            addr,
            messages,
            task,
        }
    }

    pub fn received(&self) -> Vec<SinkMessage> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until `n` messages arrived (or PATIENCE passed).
    pub async fn wait_for(&self, n: usize) -> Vec<SinkMessage> {
        let start = Instant::now();
        while self.messages.lock().unwrap().len() < n && start.elapsed() < PATIENCE {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.received()
    }
}

async fn sink_session(
    stream: TcpStream,
    opts: SinkOptions,
    messages: Arc<Mutex<Vec<SinkMessage>>>,
) {
    let mut config = ServerConfig::new("sink.test");
    config.tls = if opts.tls.is_some() {
        TlsMode::Preferred
    } else {
        TlsMode::Off
    };
    let session = ServerSession::new(config, std::time::Instant::now());
    let acceptor = opts.tls.clone().map(TlsAcceptor::from);
    let mut conn = ServerConnection::new(stream, session, acceptor);
    loop {
        let r = match conn.next_event().await {
            Ok(ServerEvent::Mail { .. }) => conn.accept(),
            Ok(ServerEvent::Rcpt { .. }) => match opts.rcpt_reply {
                Some((code, e, text)) => {
                    conn.reject(portcullis_smtp_tls::Reply::new(code, e, text).unwrap())
                }
                None => conn.accept(),
            },
            Ok(ServerEvent::Message { envelope, body }) => {
                messages.lock().unwrap().push(SinkMessage {
                    from: envelope.from.to_string(),
                    to: envelope.to.iter().map(|t| t.to_string()).collect(),
                    body,
                    tls: conn.session().tls().cloned(),
                    requiretls: envelope.params.requiretls,
                });
                conn.accept()
            }
            Ok(ServerEvent::Closed(_)) | Err(_) => return,
            Ok(_) => Ok(()),
        };
        if r.is_err() {
            return;
        }
    }
}

/// Collects mail-log lines of one engine.
#[derive(Clone, Default)]
pub struct LogCapture(pub Arc<Mutex<Vec<String>>>);

impl LogCapture {
    pub fn observer(&self) -> portcullis_mta::maillog::LogObserver {
        let lines = self.0.clone();
        Arc::new(move |l: &str| lines.lock().unwrap().push(l.to_string()))
    }

    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub fn dump(&self) -> String {
        self.lines().join("\n")
    }

    /// The first line containing every one of `parts`.
    pub fn find(&self, parts: &[&str]) -> Option<String> {
        self.lines()
            .into_iter()
            .find(|l| parts.iter().all(|p| l.contains(p)))
    }

    /// Waits for a line containing every one of `parts`; panics with the
    /// whole log if none appears.
    pub async fn wait_for(&self, parts: &[&str]) -> String {
        let start = Instant::now();
        loop {
            if let Some(l) = self.find(parts) {
                return l;
            }
            if start.elapsed() > PATIENCE {
                panic!("no log line with {parts:?}; log:\n{}", self.dump());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub fn access(toml_text: &str) -> ListenerAccess {
    let cfg: ListenerAccessConfig = toml::from_str(toml_text).unwrap();
    ListenerAccess::from_config(&cfg, "test").unwrap()
}

pub fn policy(toml_text: &str) -> OutboundPolicy {
    let cfg: OutboundConfig = toml::from_str(toml_text).unwrap();
    OutboundPolicy::from_config(&cfg).unwrap()
}

/// A private loopback listener relaying for 127.0.0.1 with the given
/// inbound TLS setting, accepting `local.test` for everyone else.
pub fn relay_access(tls: &str) -> ListenerAccess {
    access(&format!(
        r#"
        kind = "private"
        rat.accept = ["local.test"]
        [[hat.sender-group]]
        name = "LOOPBACK"
        match = ["127.0.0.1"]
        policy = "RELAYED"
        [hat.policy.RELAYED]
        action = "relay"
        tls = "{tls}"
        "#
    ))
}

/// A route for `domain` to `mx_name` at `addr`.
pub fn route(domain: &str, mx_name: &str, addr: SocketAddr) -> SmtpRoute {
    SmtpRoute {
        key: DestinationKey::Entry(DomainPattern::parse(domain).unwrap()),
        hosts: vec![RouteHost {
            host: HopHost::Name(DomainName::parse(mx_name).unwrap()),
            address: Some(addr.ip()),
            port: addr.port(),
        }],
    }
}

/// Engine settings: one listener on 127.0.0.1:0 with `access` and the
/// server certificate, outbound `policy` trusting `roots`.
pub fn settings(
    dir: &Path,
    access: ListenerAccess,
    server: Option<Arc<rustls::ServerConfig>>,
    policy: OutboundPolicy,
    roots: rustls::RootCertStore,
    log: &LogCapture,
) -> EngineSettings {
    let mut l = ListenerSettings::new("test", "127.0.0.1:0".parse().unwrap(), access);
    l.hostname = "gw.test".into();
    l.tls = server;
    let tls = OutboundTls::new(roots, &portcullis_certstore::TlsSettings::default()).unwrap();
    let mut delivery = DeliverySettings::new(policy, tls);
    delivery.retry.first = Duration::from_secs(3600);
    delivery.connect_timeout = Duration::from_secs(10);
    EngineSettings {
        hostname: "gw.test".into(),
        listeners: vec![l],
        spool_dir: dir.join("spool"),
        spool: Default::default(),
        data_dir: dir.join("data"),
        delivery,
        log_observer: Some(log.observer()),
        health: Default::default(),
    }
}

/// Sends one message; `tls` = (connector trusting the gateway, requirement).
pub async fn send(
    addr: SocketAddr,
    connector: TlsConnector,
    requirement: TlsRequirement,
    from: &str,
    to: &[&str],
    body: &[u8],
) -> Result<Delivery, portcullis_smtp_tls::Error> {
    send_with(
        addr,
        connector,
        requirement,
        from,
        to,
        body,
        MailParams::default(),
    )
    .await
}

/// [`send`] with MAIL parameters (e.g. REQUIRETLS).
pub async fn send_with(
    addr: SocketAddr,
    connector: TlsConnector,
    requirement: TlsRequirement,
    from: &str,
    to: &[&str],
    body: &[u8],
    params: MailParams,
) -> Result<Delivery, portcullis_smtp_tls::Error> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let session = ClientSession::new(ClientConfig::new("client.test"), std::time::Instant::now());
    let conn = ClientConnection::new(
        tcp,
        session,
        connector,
        ServerName::try_from("gw.test").unwrap(),
    );
    let envelope = Envelope {
        from: ReversePath::parse(&format!("<{from}>")).unwrap(),
        params,
        to: to
            .iter()
            .map(|t| ForwardPath::parse(&format!("<{t}>")).unwrap())
            .collect(),
    };
    deliver(conn, requirement, envelope, body).await
}

pub fn loopback() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}
