//! What `portcullis check DOMAIN` found, as plain serialisable values: the
//! JSON of `--json` and the input of the findings table. Field names are
//! the JSON keys scripts read.

use serde::Serialize;

/// Everything the check found.
#[derive(Debug, Clone, Serialize)]
pub struct DomainReport {
    /// The domain.
    pub domain: String,
    /// The destination entry that applies, with its `tls`, `dane` and
    /// `mta-sts` settings (the gateway's configured level for this domain).
    pub policy: String,
    /// The MX lookup.
    pub mx: MxReport,
    /// Each next-hop host, in the order delivery tries them.
    pub hosts: Vec<HostReport>,
    /// MTA-STS.
    pub mta_sts: MtaStsReport,
    /// TLS-RPT.
    pub tls_rpt: TlsRptReport,
}

/// The MX lookup.
#[derive(Debug, Clone, Serialize)]
pub struct MxReport {
    /// `secure`, `insecure`, `bogus`, `lookup failed`, … (or `route`).
    pub dnssec: String,
    /// `preference host`, or the route's hosts.
    pub records: Vec<String>,
    /// Why there are no usable next hops, if so.
    pub error: Option<String>,
}

/// One next-hop host.
#[derive(Debug, Clone, Serialize)]
pub struct HostReport {
    /// Host name (or address of a route).
    pub host: String,
    /// How delivery learned it: `dnssec-secure`, `insecure`, `route`.
    pub origin: String,
    /// The TLSA lookup.
    pub tlsa: TlsaReport,
    /// Each address.
    pub addresses: Vec<AddressReport>,
}

/// The TLSA records of a host.
#[derive(Debug, Clone, Serialize)]
pub struct TlsaReport {
    /// Where they were looked up (`_25._tcp.host`), if they were.
    pub name: Option<String>,
    /// DNSSEC status of the answer.
    pub dnssec: String,
    /// Each record, with `usable` and why not.
    pub records: Vec<TlsaRecordReport>,
    /// What delivery makes of them (`secure usable`, `insecure`, …).
    pub finding: String,
}

/// One TLSA record.
#[derive(Debug, Clone, Serialize)]
pub struct TlsaRecordReport {
    /// `3 1 1 <hex>`.
    pub record: String,
    /// Usable for SMTP (RFC 7672).
    pub usable: bool,
    /// Why not, when not.
    pub unusable_reason: Option<String>,
}

/// One address of a host: the probe and the decision.
#[derive(Debug, Clone, Serialize, Default)]
pub struct AddressReport {
    /// `IP:port`.
    pub address: String,
    /// Milliseconds to connect.
    pub connect_ms: Option<u128>,
    /// The `220` greeting.
    pub banner: Option<String>,
    /// EHLO keywords before STARTTLS.
    pub ehlo: Vec<String>,
    /// `offered`, `not offered`, `no ESMTP`, `refused: …`, `handshake failed: …`.
    pub starttls: Option<String>,
    /// TLS facts, when TLS came up.
    pub tls: Option<TlsReport>,
    /// REQUIRETLS advertised after STARTTLS.
    pub requiretls: bool,
    /// The connection failed before SMTP said anything useful.
    pub error: Option<String>,
    /// The decision for this address.
    pub decision: DecisionReport,
}

/// TLS on one connection.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TlsReport {
    /// `TLSv1.3`, `TLSv1.2`.
    pub protocol: String,
    /// IANA name: `TLS_AES_256_GCM_SHA384`.
    pub cipher: String,
    /// EHLO keywords after STARTTLS.
    pub ehlo: Vec<String>,
    /// The presented chain, leaf first.
    pub chain: Vec<CertReport>,
    /// The chain verifies (enabled CA lists) for the MX host name.
    pub pkix_valid: bool,
    /// Why not, or how.
    pub pkix_detail: String,
    /// Whole days until the leaf expires (negative: expired).
    pub days_to_expiry: Option<i64>,
    /// DANE: `None` when no usable secure TLSA records apply.
    pub dane_match: Option<bool>,
    /// Which record matched, or why none did.
    pub dane_detail: Option<String>,
}

/// One certificate of a chain.
#[derive(Debug, Clone, Serialize, Default)]
pub struct CertReport {
    /// Subject DN.
    pub subject: String,
    /// Issuer DN.
    pub issuer: String,
    /// DNS names.
    pub names: Vec<String>,
    /// End of validity (RFC 3339).
    pub not_after: String,
    /// SHA-256 of the certificate (`AB:CD:…`).
    pub sha256: String,
    /// SHA-256 of its public key (`AB:CD:…`, the `3 1 1` data).
    pub spki_sha256: String,
}

/// What delivery would do at this address.
#[derive(Debug, Clone, Serialize, Default)]
pub struct DecisionReport {
    /// The deciding rule (`R7`).
    pub rule: String,
    /// Its reason.
    pub reason: String,
    /// `deliver`, `deliver in cleartext`, `deliver, authentication only reported`,
    /// `retry in cleartext`, `next host, then defer|bounce`, `do not connect`.
    pub outcome: String,
    /// Whether a message would be sent over this address.
    pub delivers: bool,
    /// The decision's own certificate check, when it makes one.
    pub authentication: Option<String>,
}

/// MTA-STS.
#[derive(Debug, Clone, Serialize, Default)]
pub struct MtaStsReport {
    /// Whether the gateway uses MTA-STS for this domain.
    pub enabled: bool,
    /// The `_mta-sts` record, or why there is none usable.
    pub txt: Option<String>,
    /// The TXT problem, if any.
    pub txt_error: Option<String>,
    /// Policy `mode`.
    pub mode: Option<String>,
    /// Policy `mx` patterns.
    pub mx: Vec<String>,
    /// Policy `max_age`.
    pub max_age: Option<u32>,
    /// Why the policy could not be obtained.
    pub policy_error: Option<String>,
    /// Every MX host matches a policy pattern.
    pub mx_listed: Option<bool>,
}

/// TLS-RPT.
#[derive(Debug, Clone, Serialize, Default)]
pub struct TlsRptReport {
    /// The report addresses.
    pub rua: Vec<String>,
    /// Why the record is missing or unusable.
    pub error: Option<String>,
}
