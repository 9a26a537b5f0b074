//! What DNS publishes for a certificate's MX names against the keys the
//! store holds: for each host, the TLSA RRset at `_<port>._tcp.<host>`
//! (through the gateway's one resolver, DNSSEC-validated, CNAME rules of
//! RFC 7672 §2.2.2), each record matched against the served chain and the
//! staged next key's chain with `dane`'s matcher, and what to fix. `portcullis
//! dane check` prints it; the rollover watcher in `cert_manager` uses the
//! same look-up to decide when the next key's record is in DNS.

use portcullis_certstore::{Entry, Store};
use portcullis_dane::generate::zone_line;
use portcullis_dane::pki_types::{CertificateDer, UnixTime};
use portcullis_dane::{
    DnssecStatus, MatchOptions, MatchingType, ReferenceNames, Selector, TlsaRecord, TlsaSet, Usage,
    match_chain,
};
use serde::Serialize;

use crate::dns::Resolver;

/// One TLSA record and which key it matches.
#[derive(Debug, Clone, Serialize)]
pub struct RecordCheck {
    /// The record in presentation form (`3 1 1 <hex>`).
    pub record: String,
    /// It authenticates the served chain.
    pub matches_current: bool,
    /// It authenticates the next key's chain (during a rollover).
    pub matches_next: bool,
}

/// One MX host's TLSA records.
#[derive(Debug, Clone, Serialize)]
pub struct HostCheck {
    /// The host name.
    pub host: String,
    /// The name the records were found under (after a secure CNAME).
    pub tlsa_name: String,
    /// DNSSEC status of the TLSA answer (`secure`, `insecure`, `bogus`, …).
    pub dnssec: String,
    /// DNSSEC status of the host's address records (RFC 7672 §2.2: TLSA
    /// records count only when it is secure too).
    pub address_dnssec: String,
    /// The RRset TTL, when there are records.
    pub ttl: Option<u32>,
    /// Each record.
    pub records: Vec<RecordCheck>,
    /// What is wrong and how to fix it (empty: nothing).
    pub problems: Vec<String>,
}

impl HostCheck {
    /// Secure records (and addresses) with one that matches the next key.
    pub fn shows_next_key(&self) -> bool {
        self.secure() && self.records.iter().any(|r| r.matches_next)
    }

    /// Secure records with one that matches the served key.
    pub fn shows_current_key(&self) -> bool {
        self.secure() && self.records.iter().any(|r| r.matches_current)
    }

    fn secure(&self) -> bool {
        self.dnssec == DnssecStatus::Secure.to_string()
            && self.address_dnssec == DnssecStatus::Secure.to_string()
    }
}

/// A store fingerprint (`AB:CD:…`) as TLSA record data (`abcd…`).
pub fn tlsa_data(fingerprint: &str) -> String {
    fingerprint.replace(':', "").to_ascii_lowercase()
}

/// The `3 1 1` record of a certificate's key (what the gateway asks
/// operators to publish: it survives renewals with the same key).
pub fn spki_record(chain: &[CertificateDer<'_>]) -> Option<TlsaRecord> {
    let leaf = chain.first()?;
    let info = portcullis_certstore::CertInfo::from_der(leaf, "certificate").ok()?;
    let hex = tlsa_data(&info.spki_sha256);
    let digest = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    Some(TlsaRecord::new(
        Usage::DaneEe,
        Selector::Spki,
        MatchingType::Sha256,
        digest,
    ))
}

/// The MX names a certificate is for: its DNS subject alternative names
/// (wildcards skipped: TLSA records live at real host names).
pub fn host_names(entry: &Entry) -> Vec<String> {
    let Some(leaf) = entry.chain.first() else {
        return Vec::new();
    };
    let Ok(info) = portcullis_certstore::CertInfo::from_der(leaf, &entry.name) else {
        return Vec::new();
    };
    let mut names: Vec<String> = info
        .dns_names()
        .filter(|n| !n.starts_with('*'))
        .map(str::to_owned)
        .collect();
    if names.is_empty()
        && let Some(cn) = info.common_name
    {
        names.push(cn);
    }
    names
}

fn matches(record: &TlsaRecord, chain: &[CertificateDer<'_>], host: &str) -> bool {
    if chain.is_empty() {
        return false;
    }
    let set = TlsaSet::new(vec![record.clone()]);
    match_chain(
        &set,
        chain,
        &ReferenceNames::new([host]),
        UnixTime::now(),
        &MatchOptions::default(),
    )
    .matched()
    .is_some()
}

/// Looks up and judges the TLSA records of `host` for `entry`.
pub async fn check_host(resolver: &Resolver, entry: &Entry, host: &str, port: u16) -> HostCheck {
    let next_chain: &[CertificateDer<'static>] = entry
        .next
        .as_ref()
        .map(|n| n.chain.as_slice())
        .unwrap_or(&[]);
    let owner = format!("_{port}._tcp.{host}");
    let mut check = HostCheck {
        host: host.to_owned(),
        tlsa_name: owner.clone(),
        dnssec: DnssecStatus::LookupFailed.to_string(),
        address_dnssec: DnssecStatus::LookupFailed.to_string(),
        ttl: None,
        records: Vec::new(),
        problems: Vec::new(),
    };
    let lookup = match resolver.dane().tlsa(host, port).await {
        Ok(l) => l,
        Err(e) => {
            check.problems.push(format!("{owner}: {e}"));
            return check;
        }
    };
    check.tlsa_name = format!("_{port}._tcp.{}", lookup.base_domain);
    check.dnssec = lookup.answer.status().to_string();
    check.address_dnssec = lookup.address_status.to_string();
    check.ttl = lookup.ttl;
    let publish = |chain: &[CertificateDer<'_>]| {
        spki_record(chain)
            .map(|r| zone_line(&r, Some(&format!("{owner}."))))
            .unwrap_or_default()
    };
    let set = match lookup.answer {
        portcullis_dane::dns::Answer::Records(p) => p.into_parts().1,
        portcullis_dane::dns::Answer::NoRecords { .. } => TlsaSet::default(),
        portcullis_dane::dns::Answer::Bogus { detail } => {
            check.problems.push(format!(
                "{owner} is bogus (DNSSEC validation failed: {detail}): senders will not deliver; fix the zone's signatures"
            ));
            return check;
        }
        portcullis_dane::dns::Answer::LookupFailed { detail } => {
            check
                .problems
                .push(format!("{owner}: lookup failed: {detail}"));
            return check;
        }
        _ => {
            check.problems.push(format!("{owner}: no usable answer"));
            return check;
        }
    };
    for r in set.records() {
        check.records.push(RecordCheck {
            record: r.to_string(),
            matches_current: matches(r, &entry.chain, host),
            matches_next: matches(r, next_chain, host),
        });
    }
    if !lookup.address_status.is_secure() {
        check.problems.push(format!(
            "the address records of {host} are {} (not DNSSEC-secure): senders ignore its TLSA records; sign the zone of {host}",
            lookup.address_status
        ));
    }
    if check.records.is_empty() {
        check.problems.push(format!(
            "no TLSA records at {owner}: DANE is not in use for {host}; to use it, publish {}",
            publish(&entry.chain)
        ));
        return check;
    }
    if check.dnssec != DnssecStatus::Secure.to_string() {
        check.problems.push(format!(
            "the TLSA records at {owner} are {} (not DNSSEC-secure): senders ignore them; sign the zone",
            check.dnssec
        ));
    }
    if !check.records.iter().any(|r| r.matches_current) {
        check.problems.push(format!(
            "no TLSA record at {owner} matches the certificate being served: senders that use DANE will not deliver to {host}; publish {} now",
            publish(&entry.chain)
        ));
    }
    if !next_chain.is_empty() && !check.records.iter().any(|r| r.matches_next) {
        check.problems.push(format!(
            "a key rollover is waiting for the next key's record: publish {} beside the current one",
            publish(next_chain)
        ));
    }
    for r in check
        .records
        .iter()
        .filter(|r| !r.matches_current && !r.matches_next)
    {
        check.problems.push(format!(
            "{owner} {} matches no key of this certificate: remove it unless another server uses it",
            r.record
        ));
    }
    check
}

/// `portcullis dane check`: every host of the entry (or the given ones).
pub async fn check_entry(
    resolver: &Resolver,
    store: &Store,
    name: &str,
    hosts: &[String],
    port: u16,
) -> Result<Vec<HostCheck>, portcullis_certstore::Error> {
    let entry = store.entry(name)?;
    let hosts = if hosts.is_empty() {
        host_names(&entry)
    } else {
        hosts.to_vec()
    };
    let mut out = Vec::new();
    for h in hosts {
        out.push(check_host(resolver, &entry, h.trim_end_matches('.'), port).await);
    }
    Ok(out)
}
