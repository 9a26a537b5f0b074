//! Trust anchors: the operator's file (DNSKEY or DS records, zone-file
//! syntax, any zones), which names they cover, and priming — validating a
//! zone's whole DNSKEY RRset from its anchors before handing it to hickory.
//!
//! Why priming: hickory 0.26 treats a non-root DNSKEY RRset as anchored only
//! when *every* key in it is an anchor; otherwise it asks the parent for DS
//! records, which a private zone does not have, and every answer turns
//! bogus. So a file holding only the KSK (the usual form) or a DS record
//! (what a parent publishes) used to break everything without a word.
//! Priming fetches `<zone> DNSKEY`, checks that a key matching an anchor
//! (same public key, or the digest of a DS) signed the RRset with a
//! signature valid now (RFC 4035 §5.3), and then trusts exactly that RRset,
//! for at most its TTL. The check here is a pure function of the records
//! and the time.

use std::collections::BTreeMap;
use std::path::Path;

use hickory_proto::dnssec::rdata::{DNSKEY, DNSSECRData, DS, RRSIG};
use hickory_proto::dnssec::{Algorithm, DigestType};
use hickory_proto::dnssec::{PublicKey, TrustAnchors, Verifier};
use hickory_proto::rr::{LowerName, Name, RData, Record, RecordType, SerialNumber};
use hickory_proto::serialize::txt::trust_anchor::{Entry, Parser as TrustAnchorParser};

use super::settings::DnsSetupError;

/// The anchors of one zone, as the file gives them.
#[derive(Debug, Clone, Default)]
pub(crate) struct ZoneAnchors {
    pub keys: Vec<DNSKEY>,
    pub ds: Vec<DS>,
}

/// What the resolver trusts.
#[derive(Debug, Clone)]
pub(crate) enum Anchors {
    /// hickory's built-in root KSKs: everything is inside the tree.
    BuiltinRoot,
    /// An operator's file, by zone (lower-case names).
    File(BTreeMap<Name, ZoneAnchors>),
}

impl Anchors {
    /// Reads a trust anchor file: DNSKEY and DS records in zone-file syntax
    /// (absolute owner names; a missing TTL is fine). Anything else, or
    /// nothing at all, is an error naming the file.
    pub(crate) fn from_file(path: &Path) -> Result<Self, DnsSetupError> {
        let err = |detail: String| DnsSetupError::TrustAnchor {
            path: path.to_path_buf(),
            detail,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Self::parse(&text).map_err(err)
    }

    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut zones: BTreeMap<Name, ZoneAnchors> = BTreeMap::new();
        for (line, record) in logical_records(text)? {
            let at = |e: String| format!("line {line}: {e}");
            let (owner, rtype, rdata) = split_record(&record).map_err(at)?;
            let zone = Name::from_ascii(owner)
                .map_err(|e| at(format!("{owner:?} is not a domain name: {e}")))?
                .to_lowercase();
            let entry = zones.entry(zone.clone()).or_default();
            match rtype.to_ascii_uppercase().as_str() {
                // hickory's trust anchor parser reads the key (base64,
                // algorithm) exactly as its validator will use it.
                "DNSKEY" => {
                    let entries = TrustAnchorParser::new(format!("{owner} IN DNSKEY {rdata}\n"))
                        .parse()
                        .map_err(|e| at(format!("bad DNSKEY record: {e}")))?;
                    for e in entries {
                        if let Entry::DNSKEY(r) = e {
                            entry.keys.push(r.data().clone());
                        }
                    }
                }
                "DS" => entry.ds.push(parse_ds(rdata).map_err(at)?),
                other => {
                    return Err(at(format!(
                        "{owner} {other} is not a trust anchor: only DNSKEY and DS records are"
                    )));
                }
            }
        }
        if zones.is_empty() {
            return Err("no DNSKEY or DS record in the file".into());
        }
        Ok(Self::File(zones))
    }

    /// Whether `name` is at or below some anchor (or the root is anchored).
    pub(crate) fn covers(&self, name: &Name) -> bool {
        match self {
            Self::BuiltinRoot => true,
            Self::File(zones) => zones.keys().any(|z| z.zone_of(name)),
        }
    }

    /// The zones whose DNSKEY RRset must be validated before use: every
    /// zone with DS anchors, and every non-root zone (hickory accepts a
    /// root RRset signed by an anchored key, but no other).
    pub(crate) fn to_prime(&self) -> Vec<Name> {
        match self {
            Self::BuiltinRoot => Vec::new(),
            Self::File(zones) => zones
                .iter()
                .filter(|(z, a)| !a.ds.is_empty() || !z.is_root())
                .map(|(z, _)| z.clone())
                .collect(),
        }
    }

    /// The zone a self-check asks about: the first anchored zone, or the root.
    pub(crate) fn probe_zone(&self) -> Name {
        match self {
            Self::BuiltinRoot => Name::root(),
            Self::File(zones) => zones.keys().next().cloned().unwrap_or_else(Name::root),
        }
    }

    pub(crate) fn zone(&self, zone: &Name) -> Option<&ZoneAnchors> {
        match self {
            Self::BuiltinRoot => None,
            Self::File(zones) => zones.get(zone),
        }
    }

    /// The anchors for hickory: the file's DNSKEYs, and for each primed
    /// zone its validated RRset.
    pub(crate) fn for_hickory(&self, primed: &BTreeMap<Name, Vec<DNSKEY>>) -> TrustAnchors {
        let Self::File(zones) = self else {
            return TrustAnchors::default();
        };
        let mut anchors = TrustAnchors::empty();
        for (zone, a) in zones {
            for key in primed.get(zone).into_iter().flatten().chain(&a.keys) {
                anchors.insert_with_name(key.public_key(), LowerName::from(zone.clone()));
            }
        }
        anchors
    }
}

/// The records of a zone-file text, one string each, with the line they
/// start on: comments dropped, parenthesised continuations joined.
fn logical_records(text: &str) -> Result<Vec<(usize, String)>, String> {
    let mut out = Vec::new();
    let mut open: Option<(usize, String)> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.split(';').next().unwrap_or("");
        let (start, mut acc) = open.take().unwrap_or((n + 1, String::new()));
        acc.push(' ');
        acc.push_str(line);
        let depth = acc.matches('(').count() as isize - acc.matches(')').count() as isize;
        if depth > 0 {
            open = Some((start, acc));
            continue;
        }
        if depth < 0 {
            return Err(format!("line {}: unbalanced parenthesis", n + 1));
        }
        let joined = acc.replace(['(', ')'], " ");
        if !joined.trim().is_empty() {
            out.push((start, joined.trim().to_owned()));
        }
    }
    if let Some((start, _)) = open {
        return Err(format!("line {start}: parenthesis not closed"));
    }
    Ok(out)
}

/// `owner [ttl] [class] type rdata…` → (owner, type, rdata text).
fn split_record(record: &str) -> Result<(&str, &str, &str), String> {
    if record.starts_with('$') {
        return Err(format!(
            "{record:?}: directives are not supported in a trust anchor file"
        ));
    }
    let mut rest = record;
    let mut next = || {
        let t = rest.trim_start();
        let end = t.find(char::is_whitespace).unwrap_or(t.len());
        let (token, tail) = t.split_at(end);
        rest = tail;
        token
    };
    let owner = next();
    let mut token = next();
    // Optional TTL and class, in either order.
    for _ in 0..2 {
        if token.chars().all(|c| c.is_ascii_digit()) || token.eq_ignore_ascii_case("IN") {
            token = next();
        }
    }
    if token.is_empty() {
        return Err(format!("{record:?}: no record type"));
    }
    if !owner.ends_with('.') {
        return Err(format!(
            "{owner:?}: owner names must be absolute (end with a dot)"
        ));
    }
    Ok((owner, token, rest.trim()))
}

/// DS RDATA: key tag, algorithm, digest type, digest in hex (may be split).
fn parse_ds(rdata: &str) -> Result<DS, String> {
    let mut parts = rdata.split_whitespace();
    let mut number = |what: &str| -> Result<u64, String> {
        parts
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| format!("DS record: bad or missing {what}"))
    };
    let key_tag = u16::try_from(number("key tag")?).map_err(|_| "DS record: key tag too large")?;
    let algorithm = u8::try_from(number("algorithm")?).map_err(|_| "DS record: bad algorithm")?;
    let digest_type =
        u8::try_from(number("digest type")?).map_err(|_| "DS record: bad digest type")?;
    let digest: String = parts.collect();
    let digest = crate::hex::decode(&digest)
        .map_err(|_| "DS record: the digest is not an even number of hex digits".to_owned())?;
    if digest.is_empty() {
        return Err("DS record: no digest".into());
    }
    Ok(DS::new(
        key_tag,
        Algorithm::from_u8(algorithm),
        DigestType::from(digest_type),
        digest,
    ))
}

/// A DNSKEY RRset validated from its anchors, trusted for `ttl` seconds.
#[derive(Debug, Clone)]
pub(crate) struct Primed {
    pub keys: Vec<DNSKEY>,
    pub ttl: u32,
}

fn same_key(a: &DNSKEY, b: &DNSKEY) -> bool {
    a.algorithm() == b.algorithm() && a.public_key().public_bytes() == b.public_key().public_bytes()
}

/// Validates the DNSKEY RRset of `zone` (the answer section of a `zone
/// DNSKEY` query made with the DO bit) from the zone's anchors at `now`
/// (seconds since the epoch). The error says, for the operator, what does
/// not fit.
pub(crate) fn validate_dnskey_rrset(
    zone: &Name,
    anchors: &ZoneAnchors,
    answers: &[Record],
    now: u32,
) -> Result<Primed, String> {
    let dnskeys: Vec<&Record> = answers
        .iter()
        .filter(|r| r.record_type() == RecordType::DNSKEY && r.name.to_lowercase() == *zone)
        .collect();
    if dnskeys.is_empty() {
        return Err(format!("the servers returned no DNSKEY records for {zone}"));
    }
    let key = |r: &&Record| match &r.data {
        RData::DNSSEC(DNSSECRData::DNSKEY(k)) => Some(k.clone()),
        _ => None,
    };
    let keys: Vec<DNSKEY> = dnskeys.iter().filter_map(key).collect();
    let anchored: Vec<&DNSKEY> = keys
        .iter()
        .filter(|k| k.zone_key() && !k.revoke())
        .filter(|k| {
            anchors.keys.iter().any(|a| same_key(a, k))
                || anchors
                    .ds
                    .iter()
                    .any(|ds| ds.covers(zone, k).unwrap_or(false))
        })
        .collect();
    if anchored.is_empty() {
        let tags = |ks: &mut dyn Iterator<Item = u16>| {
            ks.map(|t| t.to_string()).collect::<Vec<_>>().join(", ")
        };
        let served = tags(&mut keys.iter().filter_map(|k| k.calculate_key_tag().ok()));
        let wanted = tags(
            &mut anchors
                .keys
                .iter()
                .filter_map(|k| k.calculate_key_tag().ok())
                .chain(anchors.ds.iter().map(DS::key_tag)),
        );
        return Err(format!(
            "none of the DNSKEY records of {zone} (key tags {served}) matches the trust anchor (key tags {wanted}): the anchor is outdated or for another zone"
        ));
    }
    let rrsigs: Vec<&RRSIG> = answers
        .iter()
        .filter(|r| r.name.to_lowercase() == *zone)
        .filter_map(|r| match &r.data {
            RData::DNSSEC(DNSSECRData::RRSIG(s))
                if s.input().type_covered == RecordType::DNSKEY =>
            {
                Some(s)
            }
            _ => None,
        })
        .collect();
    if rrsigs.is_empty() {
        return Err(format!(
            "the DNSKEY records of {zone} came without signatures (RRSIG): the servers strip DNSSEC records"
        ));
    }
    let now_serial = SerialNumber::new(now);
    let mut why = "no signature over them was made by an anchored key";
    for sig in rrsigs {
        let input = sig.input();
        let Some(signer) = anchored.iter().find(|k| {
            k.algorithm() == input.algorithm && k.calculate_key_tag().ok() == Some(input.key_tag)
        }) else {
            continue;
        };
        if input.signer_name.to_lowercase() != *zone {
            continue;
        }
        if !(now_serial >= input.sig_inception && now_serial <= input.sig_expiration) {
            why = "the signature by the anchored key is expired or not yet valid (check the zone's signing and the system clock)";
            continue;
        }
        if signer
            .verify_rrsig(
                zone,
                hickory_proto::rr::DNSClass::IN,
                sig,
                dnskeys.iter().copied(),
            )
            .is_err()
        {
            why = "the signature by the anchored key does not verify";
            continue;
        }
        let rrset_ttl = dnskeys.iter().map(|r| r.ttl).min().unwrap_or(0);
        let ttl = rrset_ttl
            .min(input.original_ttl)
            .min(input.sig_expiration.get().saturating_sub(now));
        return Ok(Primed { keys, ttl });
    }
    Err(format!(
        "the DNSKEY records of {zone} cannot be trusted: {why}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_hold_dnskey_or_ds_records_for_any_zone() {
        let ksk = "test.\tIN\tDNSKEY\t257 3 13 +2IiiMxuvtMqzPb5pMmIFuZ/zxfRIuk7o+U1PgMpEDFt7P7GyRTJllJMFhn/ZjaTvMUuAujQIEe4qWV3PBllvQ== ;{id = 43500 (ksk), size = 256b}";
        let ds = "test.\t3600\tIN\tDS\t43500 13 2 60d0b03836ba1bcb299cbe951cb3518ac671c1fadbe63a981bdba623dbff23e4";
        let a = Anchors::parse(&format!("{ksk}\n{ds}\n")).unwrap();
        let zone = Name::from_ascii("test.").unwrap();
        let z = a.zone(&zone).unwrap();
        assert_eq!((z.keys.len(), z.ds.len()), (1, 1));
        assert_eq!(z.keys[0].calculate_key_tag().unwrap(), 43500);
        assert!(a.covers(&Name::from_ascii("mx.a.test.").unwrap()));
        assert!(!a.covers(&Name::from_ascii("mx.example.").unwrap()));
        assert_eq!(a.to_prime(), vec![zone.clone()]);
        assert_eq!(a.probe_zone(), zone);
        // The DS is the digest of that KSK.
        assert!(z.ds[0].covers(&zone, &z.keys[0]).unwrap());

        // Multi-line keys as `dig` prints them, any case, TTL and class.
        let multi = "; root.key\ntest. 3600 in dnskey 257 3 13 (\n +2IiiMxuvtMqzPb5pMmIFuZ/zxfRIuk7o+U1PgMpEDFt7P7G\n yRTJllJMFhn/ZjaTvMUuAujQIEe4qWV3PBllvQ== ) ; KSK\n";
        let m = Anchors::parse(multi).unwrap();
        assert_eq!(m.zone(&zone).unwrap().keys, z.keys);

        let bad = Anchors::parse("test. IN A 192.0.2.1\n").unwrap_err();
        assert!(
            bad.contains("line 1") && bad.contains("only DNSKEY and DS records"),
            "{bad}"
        );
        assert!(
            Anchors::parse("; nothing\n")
                .unwrap_err()
                .contains("no DNSKEY")
        );
        assert!(Anchors::parse("garbage here\n").is_err());
        assert!(
            Anchors::parse("test IN DS 1 13 2 ab\n")
                .unwrap_err()
                .contains("absolute")
        );
        assert!(
            Anchors::parse("test. IN DS 1 13 2 zz\n")
                .unwrap_err()
                .contains("digest")
        );
        assert!(
            Anchors::parse("test. IN DS 1 13\n")
                .unwrap_err()
                .contains("digest type")
        );
        assert!(
            Anchors::parse("test. IN DNSKEY ( 257 3\n")
                .unwrap_err()
                .contains("not closed")
        );
        assert!(
            Anchors::parse("$ORIGIN test.\n")
                .unwrap_err()
                .contains("directives")
        );
        assert!(Anchors::BuiltinRoot.covers(&zone));
    }
}
