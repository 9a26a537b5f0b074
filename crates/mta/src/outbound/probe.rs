//! The bridge `portcullis check DOMAIN` (`crate::check`) uses into
//! delivery's own code, so the check shows what delivery would do, not what
//! a second implementation thinks: next hops as delivery finds them
//! (`hops`), MTA-STS through the fetcher and policy's cache, the decision
//! for each hop (the outbound policy's `decide`, as delivery calls it) and
//! its plan (`plan`). One probe connection per address runs smtp-tls's
//! `establish` with STARTTLS always tried and every shortfall tolerated, so
//! the check sees as much as the peer offers; the decision's own verifier is
//! then run on the presented chain, and the decision's answer to what the
//! peer did is reported. No mail is sent.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use portcullis_dane::{PeerAuthentication, PeerVerifier, PkixRoots, TlsaSet};
use portcullis_policy::mta_sts::{
    MtaStsFacts, RefreshPlan, StsCache, StsFailure, StsPolicy, StsTxtRecord,
};
use portcullis_policy::{
    DomainName, HopFacts, HopRequirement, MessageTls, NextStep, PeerFailure, TlsExemptions,
};
use portcullis_smtp_tls::{
    ClientConfig, ClientConnection, ClientSession, OnShortfall, Shortfall, StartTlsPlan,
    TlsOutcome, establish, quit,
};
use rustls::client::danger::ServerCertVerifier;
use rustls::pki_types::{ServerName, UnixTime};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

pub(crate) use super::hops::{Hop, NextHops};
use super::hops::{HopLookup, resolve_with};
use super::plan::{Step, Trust, peer_failure};
use crate::dns::Resolver;
use crate::maillog::MailLog;
use crate::mta_sts_fetch::{FetchError, PolicyFetcher};
use crate::settings::DeliverySettings;

/// Next hops of `domain`, found exactly as delivery finds them.
pub(crate) async fn next_hops(
    settings: &DeliverySettings,
    resolver: Option<&Resolver>,
    log: &MailLog,
    domain: &DomainName,
) -> NextHops {
    let lookup = HopLookup {
        routes: &settings.routes,
        resolver,
        log,
        mx_port: settings.mx_port,
    };
    resolve_with(&lookup, &"check", domain).await
}

/// What the MTA-STS fetch found, and the facts the decision gets.
pub(crate) struct StsProbe {
    pub txt: Result<StsTxtRecord, portcullis_policy::MtaStsTxtError>,
    pub policy: Option<Result<StsPolicy, String>>,
    pub facts: MtaStsFacts,
}

/// The `_mta-sts` record and the policy, through delivery's fetcher and
/// policy's cache rules (a fresh cache: the check remembers nothing).
pub(crate) async fn mta_sts(
    settings: &DeliverySettings,
    resolver: &Resolver,
    domain: &DomainName,
) -> StsProbe {
    let txt = match resolver.mta_sts_txt(domain).await {
        Ok(records) => StsTxtRecord::select(records.iter().map(Vec::as_slice)),
        Err(_) => StsTxtRecord::select(std::iter::empty()),
    };
    let mut cache = StsCache::new();
    let now = SystemTime::now();
    let RefreshPlan::Fetch { id } = cache.plan(domain, &txt, now) else {
        return StsProbe {
            txt,
            policy: None,
            facts: MtaStsFacts::None,
        };
    };
    let https = match rustls::ClientConfig::builder_with_provider(settings.tls.provider.clone())
        .with_protocol_versions(&settings.tls.versions)
    {
        Ok(b) => b
            .with_root_certificates(settings.tls.roots.clone())
            .with_no_client_auth(),
        Err(e) => {
            return StsProbe {
                txt,
                policy: Some(Err(format!("MTA-STS HTTPS client: {e}"))),
                facts: MtaStsFacts::Unavailable(StsFailure::FetchError),
            };
        }
    };
    let mut fetcher = PolicyFetcher::new(Arc::new(https), settings.mta_sts.fetch_timeout)
        .with_resolver(resolver.clone());
    for (host, addr) in &settings.mta_sts.addresses {
        fetcher = fetcher.with_address(host, *addr);
    }
    let (policy, failure) = match fetcher.fetch(domain.as_str()).await {
        Ok(text) => match StsPolicy::parse(text.as_bytes()) {
            Ok(p) => (Ok(p), None),
            Err(e) => (
                Err(format!("the policy is invalid: {e}")),
                Some(StsFailure::PolicyInvalid),
            ),
        },
        Err(e) => {
            let failure = match e {
                FetchError::Tls { .. } => StsFailure::WebPkiInvalid,
                _ => StsFailure::FetchError,
            };
            (Err(e.to_string()), Some(failure))
        }
    };
    let facts = match (&policy, failure) {
        (Ok(p), _) => {
            cache.store(domain.clone(), id, p.clone(), now);
            cache.facts(domain, now)
        }
        (Err(_), Some(f)) => cache.facts_after_failure(domain, f, now),
        (Err(_), None) => MtaStsFacts::None,
    };
    StsProbe {
        txt,
        policy: Some(policy),
        facts,
    }
}

/// The hosts of the SMTP route delivery would use for `domain`, if any.
pub(crate) fn route_hosts(
    routes: &[crate::settings::SmtpRoute],
    domain: &DomainName,
) -> Option<Vec<String>> {
    super::hops::route_for(routes, domain).map(|r| {
        r.hosts
            .iter()
            .map(|h| match h.address {
                Some(ip) => format!("{} [{ip}]:{}", h.host, h.port),
                None => format!("{}:{}", h.host, h.port),
            })
            .collect()
    })
}

/// The decision for one address of a hop, for an ordinary message.
pub(crate) fn decide(
    settings: &DeliverySettings,
    domain: &DomainName,
    hop: &Hop,
    addr: SocketAddr,
    mta_sts: &MtaStsFacts,
) -> HopRequirement<TlsaSet> {
    let next = hop.hop.clone().at(addr.ip());
    settings.policy.decide(
        &TlsExemptions::new(),
        &HopFacts {
            domain,
            hop: &next,
            tlsa: &hop.tlsa,
            mta_sts,
            message: MessageTls::Default,
            now: SystemTime::now(),
        },
    )
}

/// What one probe connection saw.
#[derive(Debug, Default)]
pub(crate) struct Probe {
    pub connect_ms: Option<u128>,
    pub banner: Option<String>,
    pub ehlo: Vec<String>,
    pub ehlo_after_tls: Vec<String>,
    pub tls: Option<TlsOutcome>,
    pub requiretls: bool,
    /// The connection failed (refused, timed out, greeting refused…).
    pub error: Option<String>,
    /// The decision's own certificate check on the presented chain:
    /// `(passed, what)`; `None` when the decision asks for none.
    pub decision_check: Option<(bool, String)>,
    /// What the decision does with what the peer did.
    pub next_step: Option<NextStep>,
    /// The decision does not connect at all (its reason).
    pub skipped: Option<String>,
}

/// Connects to `addr` and looks at everything, then asks the decision.
pub(crate) async fn probe(
    settings: &DeliverySettings,
    pkix: &PkixRoots,
    helo: &str,
    hop: &Hop,
    addr: SocketAddr,
    req: &HopRequirement<TlsaSet>,
    timeout: Duration,
) -> Probe {
    let mut out = Probe::default();
    let trust = Trust {
        pkix,
        provider: &settings.tls.provider,
    };
    let plan = match Step::new(req, &trust) {
        Step::Skip { .. } => {
            out.skipped = Some(req.rule.to_string());
            None
        }
        Step::Connect(plan) => Some(plan),
    };
    let started = Instant::now();
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            out.error = Some(format!("connect to {addr} failed: {e}"));
            return out;
        }
        Err(_) => {
            out.error = Some(format!(
                "connect to {addr} timed out after {}s",
                timeout.as_secs()
            ));
            return out;
        }
    };
    out.connect_ms = Some(started.elapsed().as_millis());
    let connector = match Arc::new(PeerVerifier::any_certificate(settings.tls.provider.clone()))
        .client_config(
            &settings.tls.versions,
            settings.tls.client_certificate.clone(),
        ) {
        Ok(c) => TlsConnector::from(Arc::new(c)),
        Err(e) => {
            out.error = Some(format!("outbound TLS settings: {e}"));
            return out;
        }
    };
    let mut config = ClientConfig::new(helo);
    config.command_timeout = timeout;
    let session = ClientSession::new(config, Instant::now());
    let mut conn = ClientConnection::new(tcp, session, connector, hop.server_name.clone());
    let everything = StartTlsPlan {
        starttls: true,
        require_requiretls: false,
    };
    let established = tokio::time::timeout(
        timeout,
        establish(&mut conn, everything, |_| OnShortfall::Continue),
    )
    .await;
    let session = conn.session_mut();
    out.banner = session
        .greeting()
        .map(|r| r.to_string().trim_end().to_owned());
    out.ehlo = session
        .capabilities_before_tls()
        .map(|c| c.keywords.clone())
        .unwrap_or_default();
    let tls = match established {
        Err(_) => {
            out.error = Some(format!("no answer within {}s", timeout.as_secs()));
            return out;
        }
        Ok(Err(portcullis_smtp_tls::EstablishError::Shortfall(Shortfall::HandshakeFailed(e)))) => {
            TlsOutcome::HandshakeFailed(e)
        }
        Ok(Err(e)) => {
            out.error = Some(e.to_string());
            return out;
        }
        Ok(Ok(ready)) => {
            if ready.tls.is_established() {
                out.ehlo_after_tls = ready.capabilities.keywords.clone();
                out.requiretls = ready.capabilities.requiretls;
            }
            ready.tls
        }
    };
    if tls.is_established() {
        let _ = tokio::time::timeout(timeout, quit(&mut conn)).await;
    }
    out.tls = Some(tls.clone());
    let Some(plan) = plan else {
        return out;
    };
    // What the peer did, in the decision's terms, and the decision's answer.
    let shortfall = match &tls {
        TlsOutcome::Established(info) => {
            if let Some(v) = &plan.verifier {
                let passed = run_verifier(v, &info.peer_certificates, &hop.server_name);
                out.decision_check = Some(passed);
            }
            None
        }
        TlsOutcome::StartTlsRefused(r) => Some(Shortfall::Refused(r.clone())),
        TlsOutcome::HandshakeFailed(e) => Some(Shortfall::HandshakeFailed(e.clone())),
        other => Some(Shortfall::NotOffered(other.clone())),
    };
    let failure = match (&shortfall, &out.decision_check) {
        (Some(s), _) => Some(peer_failure(s, None)),
        (None, Some((false, _))) => Some(PeerFailure::AuthenticationFailed),
        (None, _) if plan.starttls.require_requiretls && !out.requiretls => {
            Some(PeerFailure::RequireTlsNotOffered)
        }
        _ => None,
    };
    out.next_step = failure.map(|f| plan.next_step(f));
    out
}

fn describe(m: &portcullis_dane::Method) -> String {
    match m {
        portcullis_dane::Method::Pkix {
            reference,
            subject_cn: None,
        } => format!("chain to a trusted CA, name {reference} matched"),
        portcullis_dane::Method::Pkix {
            reference,
            subject_cn: Some(cn),
        } => format!("chain to a trusted CA, name {reference} matched the subject CN {cn}"),
        portcullis_dane::Method::Dane(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

/// Runs a verifier on a presented chain, the way the handshake would have.
pub(crate) fn run_verifier(
    verifier: &PeerVerifier,
    chain: &[rustls::pki_types::CertificateDer<'static>],
    server_name: &ServerName<'static>,
) -> (bool, String) {
    let Some((leaf, rest)) = chain.split_first() else {
        return (false, "the server presented no certificate".into());
    };
    let result = verifier.verify_server_cert(leaf, rest, server_name, &[], UnixTime::now());
    match (result, verifier.outcome()) {
        (_, PeerAuthentication::Verified(v)) => (true, describe(v.method())),
        (_, PeerAuthentication::Failed(why)) => (false, why.to_string()),
        (Err(e), _) => (false, e.to_string()),
        (Ok(_), other) => (true, format!("{other:?}")),
    }
}
