//! The PKIX check of a server certificate (RFC 6125 as SPEC §2 words it):
//! the chain ends at a CA in the enabled lists (rustls-webpki decides), and
//! the certificate carries one of the caller's reference identities — which
//! may differ from the SNI name: the destination domain, any name under it,
//! the MX host. The presented identity is the subjectAltName dNSNames, and
//! only when there are none, the subject CN.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::ServerCertVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, Error, RootCertStore};
use x509_cert::der::Decode;

use crate::names::ReferenceId;
use crate::words::rustls_words;

/// The enabled CA lists, ready to verify chains. Cheap to clone; build it
/// once and share it between connections.
#[derive(Debug, Clone)]
pub struct PkixRoots {
    /// `None` when no CA is enabled: every check fails, saying so.
    chains: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl PkixRoots {
    /// Chains are verified against `roots` with `provider`'s signature
    /// algorithms. An empty root store is allowed: every PKIX check then
    /// fails with an error that tells the operator to enable a CA list.
    pub fn new(roots: Arc<RootCertStore>, provider: Arc<CryptoProvider>) -> Result<Self, Error> {
        let chains = if roots.is_empty() {
            None
        } else {
            let verifier = WebPkiServerVerifier::builder_with_provider(roots, provider.clone())
                .build()
                .map_err(|e| Error::General(format!("cannot use the CA lists: {e}")))?;
            Some(verifier)
        };
        Ok(PkixRoots { chains, provider })
    }

    /// Whether no CA is enabled (every PKIX check fails).
    pub fn is_empty(&self) -> bool {
        self.chains.is_none()
    }

    pub(crate) fn provider(&self) -> &Arc<CryptoProvider> {
        &self.provider
    }

    /// Checks `end_entity` + `intermediates` against `names`; on success,
    /// the reference it matched (and the CN it matched through, if the
    /// certificate has no subjectAltName); on failure, which check failed.
    pub(crate) fn check(
        &self,
        names: &[ReferenceId],
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(String, Option<String>), String> {
        let Some(chains) = &self.chains else {
            return Err(
                "no CA list is enabled, so no certificate can be verified (enable the system or custom CA list)"
                    .into(),
            );
        };
        let presented = presented_names(end_entity);
        if presented.is_empty() {
            return cn_fallback(chains, names, end_entity, intermediates, now);
        }
        // webpki checks names itself; give it each reference in a form it
        // can check. `.base` becomes each presented name below `base`
        // (a wildcard `*.x.base` as `wildcard.x.base`).
        let mut candidates: Vec<(String, String)> = Vec::new();
        for reference in names {
            match reference {
                ReferenceId::Exact(n) => candidates.push((n.clone(), n.clone())),
                ReferenceId::Subdomains(_) => {
                    for p in &presented {
                        let name = match p.strip_prefix("*.") {
                            Some(rest) => format!("wildcard.{rest}"),
                            None => p.clone(),
                        };
                        if reference.accepts(&name) {
                            candidates.push((name, reference.to_string()));
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
            match chains.verify_server_cert(end_entity, intermediates, &server_name, &[], now) {
                Ok(_) => return Ok((label.clone(), None)),
                Err(e) if is_name_error(&e) => {}
                Err(e) => chain_error = Some(rustls_words(&e, end_entity)),
            }
        }
        if let Some(e) = chain_error {
            return Err(e);
        }
        // No candidate matched by name: say so, after checking the chain
        // alone so a bad chain is not reported as a name problem.
        if let Some(any) = presented.first().map(|p| p.replace('*', "wildcard"))
            && let Ok(sn) = ServerName::try_from(any)
            && let Err(e) = chains.verify_server_cert(end_entity, intermediates, &sn, &[], now)
            && !is_name_error(&e)
        {
            return Err(rustls_words(&e, end_entity));
        }
        Err(format!(
            "certificate name mismatch: presented names [{}] do not match [{}]",
            presented.join(", "),
            join(names)
        ))
    }
}

fn join(names: &[ReferenceId]) -> String {
    names
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn is_name_error(e: &Error) -> bool {
    matches!(
        e,
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. }
        )
    )
}

/// Without a subjectAltName dNSName, the subject CN is the presented
/// identity. webpki ignores the CN, so the name check is done here; the
/// chain check is still webpki's (a name-only error from it means the chain
/// itself verified).
fn cn_fallback(
    chains: &WebPkiServerVerifier,
    names: &[ReferenceId],
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<(String, Option<String>), String> {
    let cn = x509_cert::Certificate::from_der(end_entity.as_ref())
        .ok()
        .and_then(|c| c.tbs_certificate().subject().common_name().ok().flatten())
        .map(|d| String::from(d).trim_end_matches('.').to_ascii_lowercase());
    let Some(cn) = cn else {
        return Err("certificate has neither subjectAltName DNS names nor a subject CN".into());
    };
    let probe = names
        .iter()
        .find_map(|r| match r {
            ReferenceId::Exact(n) | ReferenceId::Subdomains(n) => {
                ServerName::try_from(n.clone()).ok()
            }
        })
        .ok_or_else(|| "no reference name to check".to_owned())?;
    match chains.verify_server_cert(end_entity, intermediates, &probe, &[], now) {
        Ok(_) => {}
        Err(e) if is_name_error(&e) => {}
        Err(e) => return Err(rustls_words(&e, end_entity)),
    }
    match names.iter().find(|r| r.accepts(&cn)) {
        Some(r) => Ok((r.to_string(), Some(cn))),
        None => Err(format!(
            "certificate name mismatch: subject CN {cn} (no subjectAltName) does not match [{}]",
            join(names)
        )),
    }
}

/// The DNS names a certificate presents (subjectAltName dNSName entries).
fn presented_names(end_entity: &CertificateDer<'_>) -> Vec<String> {
    webpki::EndEntityCert::try_from(end_entity)
        .map(|c| c.valid_dns_names().map(str::to_owned).collect())
        .unwrap_or_default()
}
