//! Verifies a server's certificate chain against TLSA records with
//! `portcullis-dane`, as a sending MTA does for a DANE peer (RFC 7672): the
//! records come from a DNSSEC-validated lookup of `_25._tcp.<mx-host>`, the
//! chain from the TLS handshake, the reference name is the MX host.
//!
//!     cargo run -p portcullis-examples --example dane-verify              # built-in demonstration
//!     cargo run -p portcullis-examples --example dane-verify -- chain.pem mx.example.net "3 1 1 <hex>" ...
//!
//! Exit status: 0 when the chain is authenticated, 1 otherwise.

use portcullis_dane::generate::tlsa_for_chain;
use portcullis_dane::pki_types::{CertificateDer, UnixTime};
use portcullis_dane::{
    MatchOptions, ReferenceNames, TlsaRecord, TlsaSet, Verdict, certs_from_pem_or_der, match_chain,
};

/// What the sending MTA does with the verdict.
fn action(verdict: &Verdict) -> &'static str {
    match verdict {
        Verdict::Matched(_) => "authenticated: send the message",
        Verdict::NoRecords => "DANE does not apply: the destination's other policy decides",
        Verdict::NoUsableRecords { .. } => "TLS is mandatory, without authentication",
        Verdict::Failed(_) => "not authenticated: do not send; try the next MX, then defer",
        // A verdict a newer crate version may add: never send on a guess.
        _ => "unknown verdict: do not send; defer",
    }
}

fn check(chain: &[CertificateDer<'_>], name: &str, records: &[TlsaRecord]) -> bool {
    let set: TlsaSet = records.iter().cloned().collect();
    let names = ReferenceNames::new([name]);
    let verdict = match_chain(
        &set,
        chain,
        &names,
        UnixTime::now(),
        &MatchOptions::default(),
    );
    let shown: Vec<String> = records
        .iter()
        .map(|r| format!("{:.20}…", r.to_string()))
        .collect();
    println!("TLSA [{}] for {name}:", shown.join(", "));
    println!("  {verdict}\n  → {}", action(&verdict));
    verdict.matched().is_some()
}

/// A CA and a server certificate for `mx.example.net` it signed; the server
/// presents [leaf, CA].
fn demo_chain() -> Result<Vec<CertificateDer<'static>>, rcgen::Error> {
    let mut ca = rcgen::CertificateParams::new(Vec::new())?;
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Example Mail CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca, rcgen::KeyPair::generate()?)?;
    let leaf = rcgen::CertificateParams::new(vec!["mx.example.net".into()])?
        .signed_by(&rcgen::KeyPair::generate()?, &ca)?;
    Ok(vec![leaf.der().clone(), ca.der().clone()])
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let [chain, name, records @ ..] = args.as_slice() {
        let chain = certs_from_pem_or_der(&std::fs::read(chain)?)?;
        let records = records
            .iter()
            .map(|r| r.parse::<TlsaRecord>())
            .collect::<Result<Vec<_>, _>>()?;
        std::process::exit(if check(&chain, name, &records) { 0 } else { 1 });
    }

    let chain = demo_chain()?;
    // What the MX operator publishes: the CA's key (DANE-TA, "2 1 1").
    let ta = tlsa_for_chain(&chain, 1, 2, 1, 1)?;
    check(&chain, "mx.example.net", std::slice::from_ref(&ta));
    // DANE-TA checks the name: the same chain is not valid for another host.
    check(&chain, "mx.other.example", std::slice::from_ref(&ta));
    // A DANE-EE record ("3 1 1") for some other key matches nothing.
    let other = demo_chain()?;
    check(
        &chain,
        "mx.example.net",
        &[tlsa_for_chain(&other, 0, 3, 1, 1)?],
    );
    // Records nobody can use: TLS stays mandatory (RFC 7672 §2.1.1).
    check(&chain, "mx.example.net", &["3 1 1 00".parse()?]);
    Ok(())
}
