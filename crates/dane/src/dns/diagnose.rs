//! Why DNSSEC does not work on this resolver path, in words an operator can
//! act on. When the probe name does not validate, one raw query (DO bit
//! set) shows what the servers actually return: nothing, an answer without
//! signatures (a path that strips DNSSEC), signatures that do not validate
//! (wrong anchor, clock), or, in trust-ad mode, an answer without the AD
//! bit (the server does not validate). Each text ends with the fix.

use hickory_proto::dnssec::rdata::DNSSECRData;
use hickory_proto::op::ResponseCode;
use hickory_proto::rr::{RData, Record, RecordType};

use super::DaneResolver;
use super::anchors::Anchors;
use super::answer::Answer;
use super::backend::raw_query;
use super::settings::DnssecMode;

fn has_signatures(answers: &[Record]) -> bool {
    answers.iter().any(|r| {
        matches!(
            &r.data,
            RData::DNSSEC(DNSSECRData::RRSIG(s)) if s.input().type_covered == RecordType::SOA
        )
    })
}

impl DaneResolver {
    /// The self-check's explanation for a probe answer that is not secure.
    pub(super) async fn diagnose(&self, answer: &Answer<Vec<Record>>) -> String {
        let s = &self.shared.settings;
        let probe = &self.shared.probe;
        let state = self.ready().await;
        let servers = state.routes.for_name(probe).servers();
        let raw = match raw_query(&servers, s.timeout, probe, RecordType::SOA).await {
            Ok(raw) => raw,
            Err(e) => {
                return format!(
                    "no DNS server answered for {probe} SOA ({e}). Fix: check that the servers in [dns] resolvers are reachable from this host and answer recursive queries"
                );
            }
        };
        let server = raw.server;
        let response = &raw.response;
        if s.dnssec == DnssecMode::TrustAd {
            return match response.metadata.response_code {
                ResponseCode::ServFail => format!(
                    "the resolver {server} answered SERVFAIL for {probe} SOA: its own DNSSEC validation fails (wrong trust anchor, clock) or it cannot reach the zone. Fix: check that resolver's configuration and log"
                ),
                _ => format!(
                    "the resolver {server} answered {probe} SOA without the AD bit: it does not validate DNSSEC (or has no trust anchor for {probe}), so every answer counts as insecure and DANE never applies. Fix: point [dns] resolvers at a validating resolver on this host (unbound, BIND or Knot Resolver with DNSSEC on), or set dns.dnssec = \"validate\""
                ),
            };
        }
        if !has_signatures(&response.answers) {
            return format!(
                "the DNS server {server} answered {probe} SOA without DNSSEC signatures (RRSIG): it, or something on the path, strips DNSSEC records, so no answer can be validated (lookups come back bogus) and mail to domains found through DNS is deferred. Fix: use resolvers that pass DNSSEC records (queries carry the DO bit; most recursive resolvers do, some forwarders and firewalls do not), or run a validating resolver on this host and set dns.dnssec = \"trust-ad\""
            );
        }
        let problems = state.priming.problems.join("; ");
        let what = match answer {
            Answer::Bogus { detail } | Answer::LookupFailed { detail } => detail.clone(),
            other => format!("it validated as {}", other.status()),
        };
        let fix = match self.shared.anchors {
            Anchors::BuiltinRoot => {
                "Fix: check the system clock; a server that rewrites answers also causes this"
            }
            Anchors::File(_) => {
                "Fix: check trust-anchor-file (the zone's current key-signing key or its DS record) and the system clock"
            }
        };
        if problems.is_empty() {
            format!(
                "{probe} SOA is signed, but does not validate from the trust anchor ({what}). {fix}"
            )
        } else {
            format!(
                "{probe} SOA is signed, but does not validate from the trust anchor: {problems}. {fix}"
            )
        }
    }
}
