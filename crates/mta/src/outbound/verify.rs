//! The certificate check of one outbound hop, as the policy decision
//! demands it: none, PKIX against the enabled CA lists with the decision's
//! reference names (which may differ from the SNI/MX name: the destination
//! domain, `.domain`, the MX host), or DANE with the decision's TLSA set.
//!
//! One [`HopVerifier`] serves one connection. It records what it found —
//! which name or TLSA record authenticated the peer, or which check failed
//! — so the mail log can say exactly why; when the check is only reported
//! (opportunistic TLS) it records the failure and lets the handshake go on.

use std::sync::{Arc, Mutex};

use portcullis_dane::{DaneVerifier, ReferenceNames, TlsaSet};
use portcullis_policy::{Authentication, DomainName, DomainPattern};
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};

/// What the verifier concluded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AuthResult {
    /// No check was asked for.
    NotChecked,
    /// Passed: how (`pkix name=mx.example.com`, `dane 3 1 1 … depth 0`).
    Passed(String),
    /// Failed: which check and why.
    Failed(String),
}

/// The check kind, for log lines (`auth=pkix`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AuthKind {
    None,
    Pkix,
    Dane,
}

impl AuthKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            AuthKind::None => "none",
            AuthKind::Pkix => "pkix",
            AuthKind::Dane => "dane",
        }
    }
}

enum Check {
    None,
    Pkix(Vec<DomainPattern>),
    Dane(Arc<DaneVerifier>),
}

/// A rustls verifier for one hop.
pub(crate) struct HopVerifier {
    check: Check,
    enforce: bool,
    /// `None` when no CA list is enabled: every PKIX check fails.
    pkix: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
    outcome: Mutex<AuthResult>,
}

impl std::fmt::Debug for HopVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HopVerifier")
            .field("kind", &self.kind())
            .field("enforce", &self.enforce)
            .finish_non_exhaustive()
    }
}

impl HopVerifier {
    /// `enforce`: a failed check fails the handshake (mandatory TLS);
    /// otherwise it is only recorded (opportunistic TLS).
    pub(crate) fn new(
        auth: &Authentication<TlsaSet>,
        enforce: bool,
        pkix: Option<Arc<WebPkiServerVerifier>>,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        let check = match auth {
            Authentication::None => Check::None,
            Authentication::Pkix { reference_names } => Check::Pkix(reference_names.clone()),
            Authentication::Dane {
                tlsa,
                reference_names,
            } => Check::Dane(Arc::new(DaneVerifier::new(
                tlsa.clone(),
                ReferenceNames::new(reference_names.iter().map(DomainName::as_str)),
            ))),
            // A demand this build does not know (non_exhaustive): PKIX with
            // no acceptable name, which no certificate passes.
            _ => Check::Pkix(Vec::new()),
        };
        HopVerifier {
            check,
            enforce,
            pkix,
            provider,
            outcome: Mutex::new(AuthResult::NotChecked),
        }
    }

    pub(crate) fn kind(&self) -> AuthKind {
        match self.check {
            Check::None => AuthKind::None,
            Check::Pkix(_) => AuthKind::Pkix,
            Check::Dane(_) => AuthKind::Dane,
        }
    }

    /// What the last handshake found.
    pub(crate) fn result(&self) -> AuthResult {
        self.outcome
            .lock()
            .map(|g| g.clone())
            .unwrap_or(AuthResult::NotChecked)
    }

    /// A certificate is public: a check it passed authenticates the peer
    /// only once the handshake signature proves the peer holds its key.
    fn signature_checked<T>(&self, result: Result<T, Error>) -> Result<T, Error> {
        if result.is_err() && matches!(self.result(), AuthResult::Passed(_)) {
            self.record(AuthResult::Failed(
                "the server's handshake signature does not verify with its certificate's key"
                    .into(),
            ));
        }
        result
    }

    fn record(&self, r: AuthResult) {
        if let Ok(mut g) = self.outcome.lock() {
            *g = r;
        }
    }

    fn pkix_check(
        &self,
        names: &[DomainPattern],
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<String, String> {
        let Some(pkix) = &self.pkix else {
            return Err(
                "no CA list is enabled, so no certificate can be verified (enable the system or custom CA list)"
                    .into(),
            );
        };
        let presented = presented_names(end_entity);
        if presented.is_empty() {
            return cn_fallback(pkix, names, end_entity, intermediates, now);
        }
        let mut candidates: Vec<(String, String)> = Vec::new();
        for pattern in names {
            match pattern {
                DomainPattern::Exact(n) => candidates.push((n.as_str().to_owned(), n.to_string())),
                DomainPattern::Subdomains(base) => {
                    for p in &presented {
                        // A wildcard `*.x.base` covers names strictly under
                        // base; check the chain with one such name.
                        let name = match p.strip_prefix("*.") {
                            Some(rest) => format!("wildcard.{rest}"),
                            None => p.clone(),
                        };
                        if DomainName::parse(&name).is_ok_and(|n| n.is_strictly_under(base)) {
                            candidates.push((name, format!(".{base}")));
                        }
                    }
                }
            }
        }
        let mut chain_error = None;
        for (name, label) in &candidates {
            let Ok(server_name) = ServerName::try_from(name.as_str()) else {
                continue;
            };
            match pkix.verify_server_cert(end_entity, intermediates, &server_name, &[], now) {
                Ok(_) => return Ok(format!("pkix name={label}")),
                Err(Error::InvalidCertificate(CertificateError::NotValidForName))
                | Err(Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                    ..
                })) => {}
                Err(e) => chain_error = Some(describe(&e)),
            }
        }
        if let Some(e) = chain_error {
            return Err(e);
        }
        // No candidate matched by name: say so, after checking the chain
        // alone so a bad chain is not reported as a name problem.
        let wanted: Vec<String> = names.iter().map(ToString::to_string).collect();
        if let Some(any) = presented.first().map(|p| p.replace('*', "wildcard"))
            && let Ok(sn) = ServerName::try_from(any)
            && let Err(e) = pkix.verify_server_cert(end_entity, intermediates, &sn, &[], now)
            && !matches!(
                e,
                Error::InvalidCertificate(
                    CertificateError::NotValidForName
                        | CertificateError::NotValidForNameContext { .. }
                )
            )
        {
            return Err(describe(&e));
        }
        Err(format!(
            "certificate name mismatch: presented names [{}] do not match [{}]",
            presented.join(", "),
            wanted.join(", ")
        ))
    }
}

/// SPEC §2: only when a certificate has no subjectAltName dNSName does
/// its subject CN count as the presented identity (webpki ignores the CN,
/// so the name check is done here; the chain check is still webpki's: a
/// name-only error from it means the chain itself verified).
fn cn_fallback(
    pkix: &WebPkiServerVerifier,
    names: &[DomainPattern],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<String, String> {
    use x509_cert::der::Decode;
    let cn = x509_cert::Certificate::from_der(end_entity.as_ref())
        .ok()
        .and_then(|c| c.tbs_certificate().subject().common_name().ok().flatten())
        .map(|d| String::from(d).trim_end_matches('.').to_ascii_lowercase());
    let Some(cn) = cn else {
        return Err("certificate has neither subjectAltName DNS names nor a subject CN".into());
    };
    let probe = names
        .iter()
        .find_map(|p| match p {
            DomainPattern::Exact(n) | DomainPattern::Subdomains(n) => {
                ServerName::try_from(n.as_str().to_owned()).ok()
            }
        })
        .ok_or_else(|| "no reference name to check".to_owned())?;
    match pkix.verify_server_cert(end_entity, intermediates, &probe, &[], now) {
        Ok(_)
        | Err(Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        )) => {}
        Err(e) => return Err(describe(&e)),
    }
    match names.iter().find(|p| cn_matches(&cn, p)) {
        Some(p) => Ok(format!(
            "pkix name={p} (subject CN {cn}, no subjectAltName)"
        )),
        None => Err(format!(
            "certificate name mismatch: subject CN {cn} (no subjectAltName) does not match [{}]",
            names
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// RFC 6125 matching of one presented name (a wildcard covers exactly one
/// left-most label) against a reference pattern.
fn cn_matches(cn: &str, pattern: &DomainPattern) -> bool {
    let (wild, rest) = match cn.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, cn),
    };
    let Ok(rest) = DomainName::parse(rest) else {
        return false;
    };
    match (pattern, wild) {
        (DomainPattern::Exact(n), false) => *n == rest,
        (DomainPattern::Exact(n), true) => n.parent().is_some_and(|p| p == rest),
        (DomainPattern::Subdomains(base), false) => rest.is_strictly_under(base),
        (DomainPattern::Subdomains(base), true) => rest == *base || rest.is_strictly_under(base),
    }
}

/// The DNS names a certificate presents (subjectAltName dNSName entries).
fn presented_names(end_entity: &CertificateDer<'_>) -> Vec<String> {
    webpki::EndEntityCert::try_from(end_entity)
        .map(|c| c.valid_dns_names().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// Which PKIX check failed, in an operator's words.
fn describe(e: &Error) -> String {
    match e {
        Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => {
                "certificate chain does not end at a trusted CA (unknown issuer)".into()
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                format!("certificate has expired ({c:?})")
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                format!("certificate is not yet valid ({c:?})")
            }
            CertificateError::BadSignature => "certificate signature is invalid".into(),
            CertificateError::UnsupportedSignatureAlgorithmContext { .. } => {
                "certificate uses an unacceptable signature algorithm".into()
            }
            CertificateError::Revoked => "certificate is revoked".into(),
            other => format!("certificate rejected: {other:?}"),
        },
        other => format!("certificate rejected: {other}"),
    }
}

impl ServerCertVerifier for HopVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let result = match &self.check {
            Check::None => Ok("none".to_owned()),
            Check::Pkix(names) => self.pkix_check(names, end_entity, intermediates, now),
            Check::Dane(v) => {
                match v.verify_server_cert(
                    end_entity,
                    intermediates,
                    server_name,
                    ocsp_response,
                    now,
                ) {
                    Ok(_) => match v.take_verified() {
                        Some(Ok(token)) => Ok(format!(
                            "dane record {} at depth {}",
                            token.matched().record(),
                            token.matched().depth()
                        )),
                        _ => Ok("dane".to_owned()),
                    },
                    Err(e) => Err(match v.take_verified() {
                        Some(Err(verdict)) => format!("DANE: {verdict}"),
                        _ => format!("DANE: {e}"),
                    }),
                }
            }
        };
        match result {
            Ok(how) => {
                self.record(if matches!(self.check, Check::None) {
                    AuthResult::NotChecked
                } else {
                    AuthResult::Passed(how)
                });
                Ok(ServerCertVerified::assertion())
            }
            Err(why) => {
                self.record(AuthResult::Failed(why.clone()));
                if self.enforce {
                    Err(Error::InvalidCertificate(CertificateError::Other(
                        OtherError(Arc::new(Rejected(why))),
                    )))
                } else {
                    Ok(ServerCertVerified::assertion())
                }
            }
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signature_checked(verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        ))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.signature_checked(verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        ))
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[derive(Debug)]
struct Rejected(String);

impl std::fmt::Display for Rejected {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Rejected {}

/// The verifier as the trait object rustls wants, and the handle to read
/// its result.
pub(crate) fn client_config(
    verifier: Arc<HopVerifier>,
    tls: &crate::settings::OutboundTls,
) -> Result<rustls::ClientConfig, Error> {
    let builder = rustls::ClientConfig::builder_with_provider(tls.provider.clone())
        .with_protocol_versions(&tls.versions)?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    Ok(match &tls.client_certificate {
        Some(key) => builder.with_client_cert_resolver(Arc::new(ClientCert(key.clone()))),
        None => builder.with_no_client_auth(),
    })
}

#[derive(Debug)]
struct ClientCert(Arc<rustls::sign::CertifiedKey>);

impl rustls::client::ResolvesClientCert for ClientCert {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(self.0.clone())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_dane::generate::tlsa_for_chain;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    struct Pki {
        chain: Vec<CertificateDer<'static>>,
        roots: Arc<rustls::RootCertStore>,
    }

    fn pki(names: &[&str]) -> Pki {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let leaf = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        Pki {
            chain: vec![leaf.der().clone(), ca.der().clone()],
            roots: Arc::new(roots),
        }
    }

    fn verifier(p: &Pki, auth: &Authentication<TlsaSet>, enforce: bool) -> HopVerifier {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let pkix = WebPkiServerVerifier::builder_with_provider(p.roots.clone(), provider.clone())
            .build()
            .unwrap();
        HopVerifier::new(auth, enforce, Some(pkix), provider)
    }

    fn run(v: &HopVerifier, p: &Pki) -> Result<ServerCertVerified, Error> {
        let sni = ServerName::try_from("sni.unrelated.test").unwrap();
        v.verify_server_cert(&p.chain[0], &p.chain[1..], &sni, &[], UnixTime::now())
    }

    #[test]
    fn pkix_uses_the_decision_names_not_the_sni() {
        let p = pki(&["mx1.example.net"]);
        let exact = Authentication::Pkix {
            reference_names: vec![DomainPattern::parse("mx1.example.net").unwrap()],
        };
        let v = verifier(&p, &exact, true);
        assert!(run(&v, &p).is_ok());
        assert_eq!(
            v.result(),
            AuthResult::Passed("pkix name=mx1.example.net".into())
        );
        let sub = Authentication::Pkix {
            reference_names: vec![
                DomainPattern::parse("example.net").unwrap(),
                DomainPattern::parse(".example.net").unwrap(),
            ],
        };
        let v = verifier(&p, &sub, true);
        assert!(run(&v, &p).is_ok());
        assert_eq!(
            v.result(),
            AuthResult::Passed("pkix name=.example.net".into())
        );
        let other = Authentication::Pkix {
            reference_names: vec![DomainPattern::parse("example.org").unwrap()],
        };
        let v = verifier(&p, &other, true);
        assert!(run(&v, &p).is_err());
        let AuthResult::Failed(why) = v.result() else {
            panic!()
        };
        assert!(why.contains("presented names [mx1.example.net]"), "{why}");
        // Report only: the handshake goes on, the failure is recorded.
        let v = verifier(&p, &other, false);
        assert!(run(&v, &p).is_ok());
        assert!(matches!(v.result(), AuthResult::Failed(_)));
    }

    #[test]
    fn subject_cn_counts_only_without_subject_alt_names() {
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let mut lp = CertificateParams::new(Vec::<String>::new()).unwrap();
        lp.distinguished_name
            .push(rcgen::DnType::CommonName, "*.example.net");
        let leaf = lp.signed_by(&key, &ca).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(ca.der().clone()).unwrap();
        let p = Pki {
            chain: vec![leaf.der().clone(), ca.der().clone()],
            roots: Arc::new(roots),
        };
        let auth = |n: &str| Authentication::Pkix {
            reference_names: vec![DomainPattern::parse(n).unwrap()],
        };
        let v = verifier(&p, &auth("mx.example.net"), true);
        assert!(run(&v, &p).is_ok(), "{:?}", v.result());
        let AuthResult::Passed(how) = v.result() else {
            panic!()
        };
        assert!(how.contains("subject CN *.example.net"), "{how}");
        let v = verifier(&p, &auth("a.b.example.net"), true);
        assert!(run(&v, &p).is_err(), "a wildcard covers one label only");
        let v = verifier(&p, &auth(".example.net"), true);
        assert!(run(&v, &p).is_ok());
        // The chain is still checked: another CA's roots fail whatever the CN.
        let other = pki(&["unrelated.test"]);
        let q = Pki {
            chain: p.chain.clone(),
            roots: other.roots.clone(),
        };
        let v = verifier(&q, &auth("mx.example.net"), true);
        assert!(run(&v, &q).is_err());
        let AuthResult::Failed(why) = v.result() else {
            panic!()
        };
        assert!(!why.contains("name mismatch"), "{why}");
    }

    #[test]
    fn dane_matches_the_tlsa_set_and_names_the_record() {
        let p = pki(&["mx.example.net"]);
        let good = tlsa_for_chain(&p.chain, 0, 3, 1, 1).unwrap();
        let auth = Authentication::Dane {
            tlsa: TlsaSet::new(vec![good.clone()]),
            reference_names: vec![DomainName::parse("mx.example.net").unwrap()],
        };
        let v = verifier(&p, &auth, true);
        assert!(run(&v, &p).is_ok());
        let AuthResult::Passed(how) = v.result() else {
            panic!("{:?}", v.result())
        };
        assert!(how.starts_with("dane record 3 1 1 "), "{how}");
        // A record for another certificate does not match.
        let q = pki(&["mx.example.net"]);
        let v = verifier(&q, &auth, true);
        assert!(run(&v, &q).is_err());
        let AuthResult::Failed(why) = v.result() else {
            panic!()
        };
        assert!(why.starts_with("DANE: "), "{why}");
    }

    /// Runs a handshake in memory between a client using `v` and a server
    /// that presents `chain` but signs with a key of its own.
    fn handshake_with_impostor(
        v: Arc<HopVerifier>,
        chain: Vec<CertificateDer<'static>>,
        version: &'static rustls::SupportedProtocolVersion,
    ) -> Result<(), Error> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let key = KeyPair::generate().unwrap();
        let key = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
        let signer = provider.key_provider.load_private_key(key).unwrap();
        let certified = rustls::sign::CertifiedKey::new(chain, signer);
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&[version])
            .unwrap()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified)));
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[version])
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(v)
            .with_no_client_auth();
        let sni = ServerName::try_from("mx1.example.net").unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client), sni).unwrap();
        let mut server = rustls::ServerConnection::new(Arc::new(server)).unwrap();
        while client.is_handshaking() {
            let mut buf = Vec::new();
            client.write_tls(&mut buf).unwrap();
            server.read_tls(&mut buf.as_slice()).unwrap();
            let _ = server.process_new_packets();
            buf.clear();
            server.write_tls(&mut buf).unwrap();
            if buf.is_empty() && !client.wants_write() {
                return Err(Error::General("handshake stalled".into()));
            }
            client.read_tls(&mut buf.as_slice()).unwrap();
            client.process_new_packets()?;
        }
        Ok(())
    }

    #[test]
    fn a_passed_check_is_withdrawn_when_the_handshake_signature_fails() {
        let p = pki(&["mx1.example.net"]);
        let pkix = Authentication::Pkix {
            reference_names: vec![DomainPattern::parse("mx1.example.net").unwrap()],
        };
        let dane = Authentication::Dane {
            tlsa: TlsaSet::new(vec![tlsa_for_chain(&p.chain, 0, 3, 1, 1).unwrap()]),
            reference_names: vec![DomainName::parse("mx1.example.net").unwrap()],
        };
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            for auth in [&pkix, &dane] {
                let v = Arc::new(verifier(&p, auth, true));
                let err = handshake_with_impostor(v.clone(), p.chain.clone(), version)
                    .expect_err("a server without the certificate's key must fail");
                assert!(err.to_string().contains("ignature"), "{err}");
                let AuthResult::Failed(why) = v.result() else {
                    panic!("{version:?} {:?}: {:?}", v.kind(), v.result())
                };
                assert!(why.contains("handshake signature"), "{why}");
            }
        }
    }
}
