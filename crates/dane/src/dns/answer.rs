//! One DNS answer, classified: [`Answer`] and the pure functions that turn
//! what a resolver returned into it. Three sources feed them: records
//! validated by hickory (each carrying its own proof), a response from a
//! validating resolver whose AD bit is trusted, and records that were not
//! validated at all (names outside every trust anchor, insecure domains).
//! The functions take bytes-derived values only, no I/O, so they are
//! fuzzed directly (`fuzz/fuzz_targets/dane_dns_answer.rs`). Details are
//! one short phrase each: they end up in deferral lines.

use std::net::IpAddr;

use hickory_proto::dnssec::{Proof, Proven};
use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::{Name, RData, Record, RecordType};

use crate::finding::{DnssecStatus, TlsaFinding};
use crate::set::TlsaSet;
use crate::tlsa::TlsaRecord;

/// The outcome of one DNSSEC-aware lookup.
#[must_use]
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Answer<T> {
    /// Records exist; the proof is [`Proof::Secure`], [`Proof::Insecure`],
    /// or [`Proof::Indeterminate`] for names outside every configured trust
    /// anchor (RFC 4035 §4.3: treated as insecure). Never bogus. Take the
    /// value with `require(Proof::Secure)` where security matters.
    Records(Proven<T>),
    /// The name or type does not exist. `proof` says whether the denial was
    /// validated ([`Proof::Secure`]) or came from an unsigned zone or from
    /// outside the trust anchors.
    NoRecords {
        /// Proof of the denial.
        proof: Proof,
    },
    /// Validation failed: the data is forged or the zone is broken. Never
    /// deliver on the strength of it.
    Bogus {
        /// What failed, in one phrase.
        detail: String,
    },
    /// No usable answer (timeout, SERVFAIL, refused, DNSSEC records that
    /// could not be fetched). Not the same as "no records": retry later.
    LookupFailed {
        /// What went wrong, in one phrase.
        detail: String,
    },
}

impl<T> Answer<T> {
    /// The DNSSEC status of this answer, for logs and policy input.
    pub fn status(&self) -> DnssecStatus {
        let of = |p: Proof| match p {
            Proof::Secure => DnssecStatus::Secure,
            Proof::Insecure => DnssecStatus::Insecure,
            Proof::Indeterminate => DnssecStatus::Indeterminate,
            Proof::Bogus => DnssecStatus::Bogus,
        };
        match self {
            Self::Records(p) => of(p.proof()),
            Self::NoRecords { proof } => of(*proof),
            Self::Bogus { .. } => DnssecStatus::Bogus,
            Self::LookupFailed { .. } => DnssecStatus::LookupFailed,
        }
    }

    /// The records' value transformed, status kept.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        match self {
            Self::Records(p) => Answer::Records(p.map(f)),
            Self::NoRecords { proof } => Answer::NoRecords { proof },
            Self::Bogus { detail } => Answer::Bogus { detail },
            Self::LookupFailed { detail } => Answer::LookupFailed { detail },
        }
    }
}

impl Answer<TlsaSet> {
    /// What this TLSA answer means for the hop ([`TlsaFinding`]).
    pub fn into_finding(self) -> TlsaFinding {
        let status = self.status();
        match self {
            Self::Records(p) => TlsaFinding::classify(status, p.into_parts().1, ""),
            Self::NoRecords { .. } => TlsaFinding::classify(status, TlsaSet::default(), ""),
            Self::Bogus { detail } | Self::LookupFailed { detail } => {
                TlsaFinding::classify(status, TlsaSet::default(), &detail)
            }
        }
    }
}

/// How much a proof counts, weakest first, for the proofs an answer may
/// carry (Indeterminate here means "outside the trust anchors").
fn strength(p: Proof) -> u8 {
    match p {
        Proof::Secure => 3,
        Proof::Insecure => 2,
        Proof::Indeterminate => 1,
        Proof::Bogus => 0,
    }
}

/// The weaker of two proofs.
pub fn weaker(a: Proof, b: Proof) -> Proof {
    if strength(a) <= strength(b) { a } else { b }
}

fn relevant(records: &[Record], rtype: RecordType) -> impl Iterator<Item = &Record> {
    records
        .iter()
        .filter(move |r| r.record_type() == rtype || r.record_type() == RecordType::CNAME)
}

fn answer_from(records: Vec<Record>, rtype: RecordType, proof: Proof) -> Answer<Vec<Record>> {
    let wanted: Vec<Record> = records
        .into_iter()
        .filter(|r| r.record_type() == rtype)
        .collect();
    if wanted.is_empty() {
        Answer::NoRecords { proof }
    } else {
        Answer::Records(Proven::new(proof, wanted))
    }
}

/// Classifies the answer records of a lookup hickory validated. Records of
/// the wanted type and the CNAMEs that led there must all be secure for the
/// answer to be secure; records owned by names for which `outside` is true
/// lie outside every trust anchor, so their proof is indeterminate (treated
/// as insecure) whatever hickory concluded; a bogus record elsewhere makes
/// the answer bogus; an undetermined one makes it a failed lookup.
pub fn validated(
    name: &Name,
    rtype: RecordType,
    records: &[Record],
    outside: impl Fn(&Name) -> bool,
) -> Answer<Vec<Record>> {
    let mut proof = Proof::Secure;
    let mut kept = Vec::new();
    for r in relevant(records, rtype) {
        let p = if outside(&r.name) {
            Proof::Indeterminate
        } else {
            match r.proof {
                Proof::Bogus => {
                    return Answer::Bogus {
                        detail: format!(
                            "the signature over {} {} does not validate",
                            r.name,
                            r.record_type()
                        ),
                    };
                }
                Proof::Indeterminate => {
                    return Answer::LookupFailed {
                        detail: format!(
                            "the DNSSEC status of {name} {rtype} could not be determined (DNSSEC records missing)"
                        ),
                    };
                }
                p => p,
            }
        };
        proof = weaker(proof, p);
        let mut r = r.clone();
        r.proof = p;
        kept.push(r);
    }
    if kept.is_empty() && outside(name) {
        proof = Proof::Indeterminate;
    }
    answer_from(kept, rtype, proof)
}

/// Classifies records that were not validated: every record gets `proof`
/// ([`Proof::Insecure`] for a domain configured as insecure,
/// [`Proof::Indeterminate`] outside the trust anchors).
pub fn unvalidated(rtype: RecordType, records: &[Record], proof: Proof) -> Answer<Vec<Record>> {
    let kept = relevant(records, rtype)
        .map(|r| {
            let mut r = r.clone();
            r.proof = proof;
            r
        })
        .collect();
    answer_from(kept, rtype, proof)
}

/// Classifies a response of a validating resolver whose AD bit is trusted
/// (RFC 6840 §5.7): AD set means every record in it was validated, AD clear
/// means insecure. A validating resolver answers SERVFAIL for bogus data,
/// so SERVFAIL is a failed lookup (indistinguishable from an outage).
/// `trust_ad` false (an insecure domain) ignores the bit.
pub fn ad_response(
    name: &Name,
    rtype: RecordType,
    response: &Message,
    trust_ad: bool,
) -> Answer<Vec<Record>> {
    let code = response.metadata.response_code;
    if !matches!(code, ResponseCode::NoError | ResponseCode::NXDomain) {
        return Answer::LookupFailed {
            detail: match code {
                ResponseCode::ServFail => format!(
                    "the resolver answered SERVFAIL for {name} {rtype} (bogus DNSSEC data or a failure upstream)"
                ),
                code => format!("the resolver answered {code} for {name} {rtype}"),
            },
        };
    }
    let proof = if trust_ad && response.metadata.authentic_data {
        Proof::Secure
    } else {
        Proof::Insecure
    };
    unvalidated(rtype, &response.answers, proof)
}

/// Classifies a failed hickory lookup made with validation on. A validated
/// denial (NSEC/NSEC3 with the SOA) is no records, as strong as its weakest
/// proof; a denial that does not validate is bogus; everything else
/// (timeouts, SERVFAIL, missing DNSSEC records) is a failed lookup.
pub(crate) fn validation_error(
    name: &Name,
    rtype: RecordType,
    err: &hickory_resolver::net::NetError,
) -> Answer<Vec<Record>> {
    use hickory_resolver::net::{DnsError, NetError};
    match err {
        NetError::Dns(DnsError::Nsec { proof, .. }) => match proof {
            Proof::Bogus => Answer::Bogus {
                detail: format!("the denial of {name} {rtype} does not validate"),
            },
            Proof::Indeterminate => Answer::LookupFailed {
                detail: format!("the denial of {name} {rtype} could not be validated"),
            },
            proof => Answer::NoRecords { proof: *proof },
        },
        NetError::Dns(DnsError::NoRecordsFound(nr)) => {
            let proofs = nr.soa.iter().map(|soa| soa.proof).chain(
                nr.authorities
                    .iter()
                    .flat_map(|a| a.iter().map(|r| r.proof)),
            );
            match proofs.min() {
                Some(Proof::Bogus) => Answer::Bogus {
                    detail: format!("the denial of {name} {rtype} does not validate"),
                },
                Some(proof @ (Proof::Secure | Proof::Insecure)) => Answer::NoRecords { proof },
                Some(Proof::Indeterminate) | None => Answer::LookupFailed {
                    detail: format!("{name} {rtype}: negative answer without DNSSEC proof"),
                },
            }
        }
        NetError::Dns(DnsError::DnssecBogus) => Answer::Bogus {
            detail: format!("DNSSEC validation of {name} {rtype} failed"),
        },
        other => Answer::LookupFailed {
            detail: format!("{name} {rtype}: {other}"),
        },
    }
}

/// MX records as (preference, exchange), sorted by preference.
pub fn mx_records(records: &[Record]) -> Vec<(u16, String)> {
    let mut mx: Vec<(u16, String)> = records
        .iter()
        .filter_map(|r| match &r.data {
            RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
            _ => None,
        })
        .collect();
    mx.sort();
    mx
}

/// Addresses of A/AAAA records, with the owner name of the first (the name
/// reached after CNAME expansion).
pub fn address_records(records: &[Record]) -> (Option<Name>, Vec<IpAddr>) {
    let mut owner = None;
    let mut ips = Vec::new();
    for r in records {
        let ip = match &r.data {
            RData::A(a) => IpAddr::from(a.0),
            RData::AAAA(a) => IpAddr::from(a.0),
            _ => continue,
        };
        owner.get_or_insert_with(|| r.name.clone());
        ips.push(ip);
    }
    (owner, ips)
}

/// The TLSA records among `records`, unusable ones included.
pub fn tlsa_records(records: &[Record]) -> TlsaSet {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::TLSA(t) => Some(TlsaRecord::from(t)),
            _ => None,
        })
        .collect()
}

/// The text of TXT records, each record's strings concatenated.
pub fn txt_records(records: &[Record]) -> Vec<Vec<u8>> {
    records
        .iter()
        .filter_map(|r| match &r.data {
            RData::TXT(t) => Some(t.txt_data.iter().flat_map(|s| s.iter().copied()).collect()),
            _ => None,
        })
        .collect()
}

/// Combines the A and AAAA answers for one host: bogus or failed if either
/// is; no records if both have none; otherwise the addresses of both, as
/// strong as the weaker proof, named after the CNAME-expanded owner.
pub fn combine_addresses(
    host: &Name,
    v4: Answer<Vec<Record>>,
    v6: Answer<Vec<Record>>,
) -> Answer<(String, Vec<IpAddr>)> {
    match (v4, v6) {
        (Answer::Bogus { detail }, _) | (_, Answer::Bogus { detail }) => Answer::Bogus { detail },
        (Answer::LookupFailed { detail }, _) | (_, Answer::LookupFailed { detail }) => {
            Answer::LookupFailed { detail }
        }
        (Answer::NoRecords { proof: p4 }, Answer::NoRecords { proof: p6 }) => Answer::NoRecords {
            proof: weaker(p4, p6),
        },
        (a, b) => {
            let mut proof = Proof::Secure;
            let mut owner = None;
            let mut ips = Vec::new();
            for ans in [a, b] {
                match ans {
                    Answer::Records(p) => {
                        let (pf, recs) = p.into_parts();
                        proof = weaker(proof, pf);
                        let (o, mut i) = address_records(&recs);
                        owner = owner.or(o);
                        ips.append(&mut i);
                    }
                    Answer::NoRecords { proof: pf } => proof = weaker(proof, pf),
                    Answer::Bogus { .. } | Answer::LookupFailed { .. } => {}
                }
            }
            let owner = owner.unwrap_or_else(|| host.clone());
            Answer::Records(Proven::new(proof, (owner.to_ascii(), ips)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode};
    use hickory_proto::rr::rdata::{A, CNAME, MX};

    fn name(s: &str) -> Name {
        Name::from_ascii(s).unwrap()
    }

    fn rec(owner: &str, data: RData, proof: Proof) -> Record {
        let mut r = Record::from_rdata(name(owner), 300, data);
        r.proof = proof;
        r
    }

    fn a(owner: &str, proof: Proof) -> Record {
        rec(owner, RData::A(A::new(192, 0, 2, 1)), proof)
    }

    #[test]
    fn validated_answers_are_as_strong_as_their_weakest_record() {
        let q = name("mx.a.test.");
        let inside = |_: &Name| false;
        let secure = validated(&q, RecordType::A, &[a("mx.a.test.", Proof::Secure)], inside);
        assert_eq!(secure.status(), DnssecStatus::Secure);
        let cname = rec(
            "mx.a.test.",
            RData::CNAME(CNAME(name("t.b.test."))),
            Proof::Insecure,
        );
        let mixed = validated(
            &q,
            RecordType::A,
            &[cname.clone(), a("t.b.test.", Proof::Secure)],
            inside,
        );
        assert_eq!(mixed.status(), DnssecStatus::Insecure);
        let bogus = validated(&q, RecordType::A, &[a("mx.a.test.", Proof::Bogus)], inside);
        assert!(matches!(bogus, Answer::Bogus { .. }));
        let unknown = validated(
            &q,
            RecordType::A,
            &[a("mx.a.test.", Proof::Indeterminate)],
            inside,
        );
        assert!(matches!(unknown, Answer::LookupFailed { .. }));
        // Records of other types do not count; none wanted left: no records.
        let mx = rec(
            "mx.a.test.",
            RData::MX(MX::new(10, name("x.test."))),
            Proof::Bogus,
        );
        let none = validated(&q, RecordType::A, &[mx], inside);
        assert!(matches!(
            none,
            Answer::NoRecords {
                proof: Proof::Secure
            }
        ));
    }

    #[test]
    fn names_outside_the_trust_anchors_are_indeterminate_not_bogus() {
        let anchor = name("test.");
        let outside = |n: &Name| !anchor.zone_of(n);
        // hickory calls a record outside a private anchor bogus (its chain
        // ends at a root it has no key for): that is RFC 4035 "indeterminate".
        let q = name("mx.outside.example.");
        let ans = validated(
            &q,
            RecordType::A,
            &[a("mx.outside.example.", Proof::Bogus)],
            outside,
        );
        assert_eq!(ans.status(), DnssecStatus::Indeterminate);
        // A secure CNAME inside leading outside: indeterminate as a whole.
        let cname = rec(
            "mx.a.test.",
            RData::CNAME(CNAME(name("mx.outside.example."))),
            Proof::Secure,
        );
        let ans = validated(
            &name("mx.a.test."),
            RecordType::A,
            &[cname, a("mx.outside.example.", Proof::Bogus)],
            outside,
        );
        assert_eq!(ans.status(), DnssecStatus::Indeterminate);
        let empty = validated(&q, RecordType::A, &[], outside);
        assert_eq!(empty.status(), DnssecStatus::Indeterminate);
    }

    #[test]
    fn the_ad_bit_decides_and_servfail_is_a_failure() {
        let q = name("mx.a.test.");
        let mut m = Message::new(1, MessageType::Response, OpCode::Query);
        m.answers.push(a("mx.a.test.", Proof::Indeterminate));
        assert_eq!(
            ad_response(&q, RecordType::A, &m, true).status(),
            DnssecStatus::Insecure
        );
        m.metadata.authentic_data = true;
        assert_eq!(
            ad_response(&q, RecordType::A, &m, true).status(),
            DnssecStatus::Secure
        );
        assert_eq!(
            ad_response(&q, RecordType::A, &m, false).status(),
            DnssecStatus::Insecure,
            "an insecure domain ignores the bit"
        );
        m.answers.clear();
        assert!(matches!(
            ad_response(&q, RecordType::A, &m, true),
            Answer::NoRecords {
                proof: Proof::Secure
            }
        ));
        m.metadata.response_code = ResponseCode::ServFail;
        let failed = ad_response(&q, RecordType::A, &m, true);
        assert!(
            matches!(&failed, Answer::LookupFailed { detail } if detail.contains("SERVFAIL")),
            "{failed:?}"
        );
    }

    #[test]
    fn addresses_combine_to_the_weaker_proof() {
        let host = name("h.test.");
        let v4 = Answer::Records(Proven::new(
            Proof::Secure,
            vec![a("h.test.", Proof::Secure)],
        ));
        let v6 = Answer::NoRecords {
            proof: Proof::Insecure,
        };
        let both = combine_addresses(&host, v4.clone(), v6);
        assert_eq!(both.status(), DnssecStatus::Insecure);
        let failed = combine_addresses(
            &host,
            v4,
            Answer::LookupFailed {
                detail: "timeout".into(),
            },
        );
        assert!(matches!(failed, Answer::LookupFailed { .. }));
        assert!(matches!(
            combine_addresses(
                &host,
                Answer::NoRecords {
                    proof: Proof::Secure
                },
                Answer::NoRecords {
                    proof: Proof::Indeterminate
                }
            ),
            Answer::NoRecords {
                proof: Proof::Indeterminate
            }
        ));
    }
}
