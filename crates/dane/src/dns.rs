//! DNSSEC-validated lookups for DANE (RFC 7672 §2): MX for a domain, the
//! address records of an MX host, and its TLSA RRset at `_<port>._tcp.<host>`
//! with the CNAME rules of RFC 7672 §2.2.2.
//!
//! hickory-resolver validates every answer itself (from the root anchor, or
//! from the anchors the operator configures), so the classification does not
//! depend on an upstream resolver's AD bit. Each answer is an [`Answer`]:
//! records come wrapped in hickory's [`Proven`] (secure or insecure), a
//! denial of existence carries its [`Proof`], and a bogus answer or a failed
//! lookup is its own variant. A bogus or failed TLSA lookup is never "no
//! TLSA": the caller must defer, not fall back to unauthenticated TLS.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::dnssec::TrustAnchors;
pub use hickory_proto::dnssec::{Proof, Proven};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::{DnsError, NetError};
use thiserror::Error;

use crate::set::TlsaSet;
use crate::tlsa::TlsaRecord;

/// The outcome of one DNSSEC-validated lookup.
#[must_use]
#[derive(Debug, Clone)]
pub enum Answer<T> {
    /// Records exist; the proof is [`Proof::Secure`] or [`Proof::Insecure`]
    /// (never bogus). Take the value with `require(Proof::Secure)` where
    /// security matters.
    Records(Proven<T>),
    /// The name or type does not exist. `proof` says whether the denial was
    /// validated ([`Proof::Secure`]) or came from an unsigned zone.
    NoRecords {
        /// Proof of the denial.
        proof: Proof,
    },
    /// Validation failed: the data is forged or the zone is broken. Never
    /// deliver on the strength of it.
    Bogus {
        /// What hickory reported.
        detail: String,
    },
    /// No usable answer (timeout, SERVFAIL, refused, indeterminate proof).
    /// Not the same as "no records": retry later.
    LookupFailed {
        /// What went wrong.
        detail: String,
    },
}

impl<T> Answer<T> {
    /// The DNSSEC status of this answer, for logs and policy input.
    pub fn status(&self) -> DnssecStatus {
        match self {
            Self::Records(p) if p.proof().is_secure() => DnssecStatus::Secure,
            Self::Records(_) => DnssecStatus::Insecure,
            Self::NoRecords { proof } if proof.is_secure() => DnssecStatus::Secure,
            Self::NoRecords { .. } => DnssecStatus::Insecure,
            Self::Bogus { .. } => DnssecStatus::Bogus,
            Self::LookupFailed { .. } => DnssecStatus::LookupFailed,
        }
    }

    fn map<U>(self, f: impl FnOnce(T) -> U) -> Answer<U> {
        match self {
            Self::Records(p) => Answer::Records(p.map(f)),
            Self::NoRecords { proof } => Answer::NoRecords { proof },
            Self::Bogus { detail } => Answer::Bogus { detail },
            Self::LookupFailed { detail } => Answer::LookupFailed { detail },
        }
    }
}

/// The classification SPEC §3 asks for, flattened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnssecStatus {
    /// Validated from a trust anchor.
    Secure,
    /// Provably unsigned (no DS on the path).
    Insecure,
    /// Validation failed.
    Bogus,
    /// No answer could be obtained.
    LookupFailed,
}

/// Where to send queries and what to trust.
#[derive(Debug, Clone)]
pub struct ResolverSettings {
    /// Name servers (address and port). Queries go over UDP with TCP fallback.
    pub servers: Vec<SocketAddr>,
    /// A file of DNSKEY records (zone-file syntax) to use as trust anchors
    /// instead of the built-in root KSKs. Keys may be for any zone.
    pub trust_anchor_file: Option<PathBuf>,
    /// A name whose answer must validate as secure for [`DaneResolver::self_check`]
    /// (default: the root, `.`).
    pub probe_name: Option<String>,
    /// Per-query timeout.
    pub timeout: Duration,
}

impl ResolverSettings {
    /// Settings for the given servers, root trust anchor.
    pub fn new(servers: Vec<SocketAddr>) -> Self {
        Self {
            servers,
            trust_anchor_file: None,
            probe_name: None,
            timeout: Duration::from_secs(5),
        }
    }
}

/// A resolver that cannot be set up.
#[derive(Debug, Error)]
pub enum DnsSetupError {
    /// No name server given.
    #[error("no DNS server configured for DANE lookups")]
    NoServers,
    /// The trust anchor file is unreadable or malformed.
    #[error("DNSSEC trust anchor file {path}: {detail}")]
    TrustAnchor {
        /// The file.
        path: PathBuf,
        /// Parser message.
        detail: String,
    },
    /// hickory refused the configuration.
    #[error("cannot start the DNS resolver: {0}")]
    Resolver(String),
    /// A name is not a valid DNS name.
    #[error("invalid DNS name {name:?}: {detail}")]
    BadName {
        /// The name.
        name: String,
        /// Parser message.
        detail: String,
    },
}

/// Result of the start-up self-check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SelfCheck {
    /// The probe name validated as secure: DANE can be used.
    Validating,
    /// The resolver path cannot validate DNSSEC: DANE is unavailable (not
    /// silently off). The text says why, for the operator.
    Unavailable(String),
}

/// The TLSA RRset for one MX host, with the names RFC 7672 §3.2.2 says a
/// DANE-TA certificate may carry.
#[derive(Debug)]
pub struct TlsaLookup {
    /// The TLSA answer.
    pub answer: Answer<TlsaSet>,
    /// The name the TLSA records were looked up under (without `_port._tcp.`):
    /// the CNAME-expanded host name when the expansion was secure.
    pub base_domain: String,
    /// Reference names for DANE-TA: the MX host name and the TLSA base domain.
    pub reference_names: Vec<String>,
    /// DNSSEC status of the host's address lookup (with CNAME expansion).
    /// RFC 7672 §2.2: TLSA records only apply when this is secure; callers
    /// must treat anything else as "no DANE" for this host (or defer when
    /// it is bogus or failed).
    pub address_status: DnssecStatus,
}

/// A DNSSEC-validating resolver for DANE lookups (tokio).
#[derive(Clone)]
pub struct DaneResolver {
    inner: TokioResolver,
    probe: Name,
}

impl std::fmt::Debug for DaneResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaneResolver")
            .field("probe", &self.probe)
            .finish_non_exhaustive()
    }
}

fn parse_name(name: &str) -> Result<Name, DnsSetupError> {
    let fqdn = if name.ends_with('.') {
        name.to_string()
    } else {
        format!("{name}.")
    };
    Name::from_ascii(&fqdn).map_err(|e| DnsSetupError::BadName {
        name: name.to_string(),
        detail: e.to_string(),
    })
}

impl DaneResolver {
    /// Builds a validating resolver. Must be called within a tokio runtime.
    pub fn new(settings: &ResolverSettings) -> Result<Self, DnsSetupError> {
        if settings.servers.is_empty() {
            return Err(DnsSetupError::NoServers);
        }
        let servers = settings
            .servers
            .iter()
            .map(|addr| {
                let mut udp = ConnectionConfig::udp();
                udp.port = addr.port();
                let mut tcp = ConnectionConfig::tcp();
                tcp.port = addr.port();
                NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
            })
            .collect();
        let config = ResolverConfig::from_name_servers(servers);
        let mut builder =
            TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
        let opts = builder.options_mut();
        opts.validate = true;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.timeout = settings.timeout;
        opts.attempts = 2;
        opts.edns0 = true;
        if let Some(path) = &settings.trust_anchor_file {
            let anchors =
                TrustAnchors::from_file(path).map_err(|e| DnsSetupError::TrustAnchor {
                    path: path.clone(),
                    detail: e.to_string(),
                })?;
            builder = builder.with_trust_anchor(Arc::new(anchors));
        }
        let inner = builder
            .build()
            .map_err(|e| DnsSetupError::Resolver(e.to_string()))?;
        let probe = parse_name(settings.probe_name.as_deref().unwrap_or("."))?;
        Ok(Self { inner, probe })
    }

    /// Checks that answers from the configured path validate: the probe
    /// name's SOA must come back secure. Run at start-up; if it fails, report
    /// DANE as unavailable.
    pub async fn self_check(&self) -> SelfCheck {
        match self.query(self.probe.clone(), RecordType::SOA).await {
            Answer::Records(p) if p.proof().is_secure() => SelfCheck::Validating,
            Answer::Records(p) => SelfCheck::Unavailable(format!(
                "the SOA of {} validated as {} instead of secure: check the trust anchor and that the DNS server returns DNSSEC records (DO bit)",
                self.probe,
                p.proof()
            )),
            Answer::NoRecords { proof } => {
                SelfCheck::Unavailable(format!("no SOA for {} (denial {proof})", self.probe))
            }
            Answer::Bogus { detail } => SelfCheck::Unavailable(format!(
                "the SOA of {} is bogus ({detail}): wrong trust anchor, clock skew or a middlebox stripping DNSSEC records",
                self.probe
            )),
            Answer::LookupFailed { detail } => SelfCheck::Unavailable(format!(
                "cannot query {} ({detail}): the DNS server is unreachable or refuses DNSSEC",
                self.probe
            )),
        }
    }

    /// MX records of `domain`, sorted by preference.
    pub async fn mx(&self, domain: &str) -> Result<Answer<Vec<(u16, String)>>, DnsSetupError> {
        let name = parse_name(domain)?;
        Ok(self.query(name, RecordType::MX).await.map(|records| {
            let mut mx: Vec<(u16, String)> = records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect();
            mx.sort();
            mx
        }))
    }

    /// IPv4 and IPv6 addresses of `host`, with the final name after CNAME
    /// expansion. The proof is the weaker of the two lookups.
    pub async fn addresses(
        &self,
        host: &str,
    ) -> Result<Answer<(String, Vec<IpAddr>)>, DnsSetupError> {
        let name = parse_name(host)?;
        let v4 = self.query(name.clone(), RecordType::A).await;
        let v6 = self.query(name.clone(), RecordType::AAAA).await;
        let extract = |records: &[Record]| -> (Option<String>, Vec<IpAddr>) {
            let mut owner = None;
            let mut ips = Vec::new();
            for r in records {
                let ip = match &r.data {
                    RData::A(a) => IpAddr::from(a.0),
                    RData::AAAA(a) => IpAddr::from(a.0),
                    _ => continue,
                };
                owner = Some(r.name.to_ascii());
                ips.push(ip);
            }
            (owner, ips)
        };
        Ok(match (v4, v6) {
            (Answer::Bogus { detail }, _) | (_, Answer::Bogus { detail }) => {
                Answer::Bogus { detail }
            }
            (Answer::LookupFailed { detail }, _) | (_, Answer::LookupFailed { detail }) => {
                Answer::LookupFailed { detail }
            }
            (Answer::NoRecords { proof: p4 }, Answer::NoRecords { proof: p6 }) => {
                Answer::NoRecords { proof: p4.min(p6) }
            }
            (a, b) => {
                let mut proof = Proof::Secure;
                let mut owner = None;
                let mut ips = Vec::new();
                for ans in [a, b] {
                    match ans {
                        Answer::Records(p) => {
                            let (pf, recs) = p.into_parts();
                            proof = proof.min(pf);
                            let (o, mut i) = extract(&recs);
                            owner = owner.or(o);
                            ips.append(&mut i);
                        }
                        Answer::NoRecords { proof: pf } => proof = proof.min(pf),
                        Answer::Bogus { .. } | Answer::LookupFailed { .. } => {}
                    }
                }
                Answer::Records(Proven::new(
                    proof,
                    (owner.unwrap_or_else(|| name.to_ascii()), ips),
                ))
            }
        })
    }

    /// TLSA records for an MX host (RFC 7672 §2.2.2): when the host's
    /// address records were reached through a secure CNAME chain, the TLSA
    /// base domain is the expanded name, and the original name is tried if
    /// the expanded one has no TLSA records.
    pub async fn tlsa(&self, host: &str, port: u16) -> Result<TlsaLookup, DnsSetupError> {
        let original = parse_name(host)?.to_lowercase();
        let mut base = original.clone();
        let mut addr = self.query(original.clone(), RecordType::A).await;
        if matches!(addr, Answer::NoRecords { .. }) {
            addr = self.query(original.clone(), RecordType::AAAA).await;
        }
        let address_status = addr.status();
        if let Answer::Records(p) = addr
            && p.proof().is_secure()
        {
            let (_, records) = p.into_parts();
            if let Some(r) = records
                .iter()
                .find(|r| matches!(r.data, RData::A(_) | RData::AAAA(_)))
            {
                base = r.name.to_lowercase();
            }
        }
        let mut answer = self.tlsa_at(&base, port).await?;
        if base != original && matches!(answer, Answer::NoRecords { .. }) {
            answer = self.tlsa_at(&original, port).await?;
            base = original.clone();
        }
        let trim = |n: &Name| n.to_ascii().trim_end_matches('.').to_string();
        let mut reference_names = vec![trim(&original)];
        if base != original {
            reference_names.push(trim(&base));
        }
        Ok(TlsaLookup {
            answer,
            base_domain: trim(&base),
            reference_names,
            address_status,
        })
    }

    async fn tlsa_at(&self, base: &Name, port: u16) -> Result<Answer<TlsaSet>, DnsSetupError> {
        let text = format!("_{port}._tcp.{}", base.to_ascii());
        let name = parse_name(&text)?;
        Ok(self.query(name, RecordType::TLSA).await.map(|records| {
            records
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TLSA(t) => Some(TlsaRecord::from(t)),
                    _ => None,
                })
                .collect()
        }))
    }

    /// One query, classified. Answers of the wanted type and the CNAMEs that
    /// led there must all be secure for the answer to be secure.
    async fn query(&self, name: Name, rtype: RecordType) -> Answer<Vec<Record>> {
        match self.inner.lookup(name.clone(), rtype).await {
            Ok(lookup) => {
                let relevant: Vec<&Record> = lookup
                    .answers()
                    .iter()
                    .filter(|r| r.record_type() == rtype || r.record_type() == RecordType::CNAME)
                    .collect();
                if relevant.iter().any(|r| r.proof.is_bogus()) {
                    return Answer::Bogus {
                        detail: format!("a signature for {name} {rtype} does not validate"),
                    };
                }
                let wanted: Vec<Record> = relevant
                    .iter()
                    .filter(|r| r.record_type() == rtype)
                    .map(|r| (*r).clone())
                    .collect();
                let proof = relevant
                    .iter()
                    .map(|r| r.proof)
                    .min()
                    .unwrap_or(Proof::Indeterminate);
                if proof.is_indeterminate() {
                    return Answer::LookupFailed {
                        detail: format!("DNSSEC status of {name} {rtype} could not be determined"),
                    };
                }
                if wanted.is_empty() {
                    return Answer::NoRecords { proof };
                }
                Answer::Records(Proven::new(proof, wanted))
            }
            Err(err) => classify_error(&name, rtype, err),
        }
    }
}

fn classify_error(name: &Name, rtype: RecordType, err: NetError) -> Answer<Vec<Record>> {
    match err {
        NetError::Dns(DnsError::Nsec { proof, .. }) => match proof {
            Proof::Bogus => Answer::Bogus {
                detail: format!("the denial of {name} {rtype} does not validate"),
            },
            Proof::Indeterminate => Answer::LookupFailed {
                detail: format!("the denial of {name} {rtype} could not be validated"),
            },
            proof => Answer::NoRecords { proof },
        },
        // A validated negative answer: the SOA and NSEC/NSEC3 records that
        // prove it carry hickory's proof; the denial is as strong as the
        // weakest of them.
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
                    detail: format!("{name} {rtype}: negative answer without proof"),
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
