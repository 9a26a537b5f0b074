//! Would a peer accept this chain? `show` and `list` run the same path
//! validation an SMTP client doing `required-verify` runs (rustls-webpki,
//! server-auth usage, aws-lc-rs signature algorithms) against the enabled CA
//! lists, so an operator sees "peers will reject this" before the peers do.

use rustls_pki_types::{CertificateDer, UnixTime};

use crate::info::Timestamp;

/// `None` when the chain verifies against `trusted`; otherwise why not.
pub(crate) fn chain_problem(
    chain: &[CertificateDer<'static>],
    trusted: &[CertificateDer<'static>],
    now: Timestamp,
) -> Option<String> {
    let (leaf, intermediates) = chain.split_first()?;
    let anchors: Vec<_> = trusted
        .iter()
        .filter_map(|c| webpki::anchor_from_trusted_cert(c).ok())
        .collect();
    if anchors.is_empty() {
        return Some("no CA list is enabled, so no peer can be verified against them".into());
    }
    let ee = match webpki::EndEntityCert::try_from(leaf) {
        Ok(ee) => ee,
        Err(e) => return Some(format!("the certificate cannot be used for TLS: {e:?}")),
    };
    let algs = rustls::crypto::aws_lc_rs::default_provider()
        .signature_verification_algorithms
        .all;
    let time = UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now.unix).unwrap_or(0),
    ));
    match ee.verify_for_usage(
        algs,
        &anchors,
        intermediates,
        time,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    ) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "peers that verify certificates will reject this chain: it does not verify against the enabled CA lists ({e:?})"
        )),
    }
}
