//! The gateway's one resolver: every DNS question the gateway asks goes
//! through the [`Resolver`] the engine builds once from the `[dns]` settings
//! ([`DeliverySettings::dns`](crate::settings::DeliverySettings::dns)) and
//! hands to the listeners and the delivery scheduler. It wraps
//! `portcullis-dane`'s [`DaneResolver`] (where the hickory set-up lives) and
//! adds what only a gateway asks: the addresses of an SMTP route host or an
//! MTA-STS policy host, the `_mta-sts` TXT record, and the forward-confirmed
//! reverse name of a connecting client. Nothing here, or anywhere in the
//! gateway, falls back to the system resolver: without `[dns]` servers, names
//! cannot be resolved and the log says so where it matters.
//!
//! At start the resolver checks once that DNSSEC works through the servers
//! ([`DaneResolver::self_check`]) and writes the verdict to the mail log:
//! one line when it works, one warning with the cause and the fix when it
//! does not (the deferrals that follow then carry only a short reason).

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use portcullis_dane::dns::{
    Answer, DaneResolver, DnsSetupError, DnssecMode, LookupFailed, ResolverSettings, SelfCheck,
};
use portcullis_policy::DomainName;

use crate::maillog::MailLog;

/// The gateway's resolver. Cheap to clone; clones share caches.
#[derive(Debug, Clone)]
pub struct Resolver {
    dane: DaneResolver,
    settings: ResolverSettings,
}

impl Resolver {
    /// Builds the resolver. Must be called within a tokio runtime.
    pub fn new(settings: &ResolverSettings) -> Result<Self, DnsSetupError> {
        Ok(Resolver {
            dane: DaneResolver::new(settings)?,
            settings: settings.clone(),
        })
    }

    /// The DNSSEC-aware lookups (MX, addresses, TLSA).
    pub fn dane(&self) -> &DaneResolver {
        &self.dane
    }

    /// Drops every cached answer (the next lookups ask the servers again).
    pub fn flush(&self) -> Result<(), DnsSetupError> {
        self.dane.flush_cache()
    }

    /// Runs the DNSSEC self-check in the background and logs its verdict
    /// once.
    pub(crate) fn check_at_start(&self, log: MailLog, alerts: crate::alerts::AlertSink) {
        let resolver = self.clone();
        tokio::spawn(async move { resolver.check_and_log(&log, &alerts).await });
    }

    async fn check_and_log(&self, log: &MailLog, alerts: &crate::alerts::AlertSink) {
        let s = &self.settings;
        let levels = std::iter::once(&s.servers)
            .chain(&s.fallback_servers)
            .filter(|l| !l.is_empty())
            .map(|l| {
                l.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(", then ");
        let mode = if s.dnssec == DnssecMode::TrustAd {
            "taken from the resolvers' AD bit"
        } else {
            "validated here"
        };
        log.line(format_args!(
            "DNS: servers {levels}; {} per-domain entr{}; DNSSEC {mode}",
            s.domains.len(),
            if s.domains.len() == 1 { "y" } else { "ies" }
        ));
        if s.dnssec == DnssecMode::TrustAd
            && let Some(far) = s
                .servers
                .iter()
                .chain(s.fallback_servers.iter().flatten())
                .find(|a| !a.ip().is_loopback())
        {
            log.warn(format_args!(
                "DNS: dnssec = \"trust-ad\" trusts the AD bit of {far}, which is not on this host: anyone on the path can set that bit; use a validating resolver on this host"
            ));
        }
        match self.dane.self_check().await {
            SelfCheck::Validating => log.line(format_args!(
                "DNS: DNSSEC check passed: {} SOA validated as secure",
                self.dane.probe_name()
            )),
            SelfCheck::Unavailable(why) => {
                log.warn(format_args!(
                    "DNS: DNSSEC does not work through the configured resolvers, so DANE cannot be used: {why}"
                ));
                crate::alerts::sources::dnssec_broken(alerts, &levels, &why.to_string());
            }
            _ => log.warn(format_args!(
                "DNS: the DNSSEC start-up check gave a result this version cannot describe; DANE may not work"
            )),
        }
    }

    /// The addresses of a host the gateway connects to by name (an SMTP
    /// route host, an MTA-STS policy host), with `port`. Validated where
    /// DNSSEC applies, but unsigned answers count: the TLS check
    /// authenticates these hosts. A bogus answer is never used.
    pub async fn host_addresses(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        match self.dane.addresses(host).await {
            Ok(Answer::Records(p)) => {
                let (_, (_, ips)) = p.into_parts();
                if ips.is_empty() {
                    return Err(format!("{host} has no address records"));
                }
                Ok(ips
                    .into_iter()
                    .map(|ip| SocketAddr::new(ip, port))
                    .collect())
            }
            Ok(Answer::NoRecords { .. }) => Err(format!("{host} has no address records")),
            Ok(Answer::Bogus { detail }) => {
                Err(format!("DNSSEC validation of {host} failed: {detail}"))
            }
            Ok(Answer::LookupFailed { detail }) => Err(detail),
            // An answer this build does not know: not usable.
            Ok(_) => Err(format!("no usable answer for {host}")),
            Err(e) => Err(e.to_string()),
        }
    }

    /// The TXT records at `_mta-sts.<domain>` (RFC 8461 §3.1), not
    /// validated (MTA-STS rests on the policy host's certificate).
    pub async fn mta_sts_txt(&self, domain: &DomainName) -> Result<Vec<Vec<u8>>, LookupFailed> {
        let name = format!("_mta-sts.{}.", domain.as_str().trim_end_matches('.'));
        self.dane.txt(&name).await
    }

    /// The client's forward-confirmed name, if any: a PTR name of `ip` one
    /// of whose A/AAAA records is `ip` (an unconfirmed PTR name proves
    /// nothing: anyone who controls a reverse zone can claim any name).
    /// At most 10 names are tried; `deadline` bounds the whole search, and
    /// a failure means "no name".
    pub(crate) async fn forward_confirmed_name(
        &self,
        ip: IpAddr,
        deadline: Duration,
    ) -> Option<DomainName> {
        tokio::time::timeout(deadline, self.confirm(ip))
            .await
            .ok()
            .flatten()
    }

    async fn confirm(&self, ip: IpAddr) -> Option<DomainName> {
        let names = self.dane.reverse(ip).await.ok()?;
        for name in names.into_iter().take(10) {
            let Ok(forward) = self.dane.unvalidated_addresses(&name).await else {
                continue;
            };
            if forward
                .into_iter()
                .any(|a| portcullis_policy::canonical_ip(a) == ip)
            {
                return DomainName::parse(name.trim_end_matches('.')).ok();
            }
        }
        None
    }

    /// The per-query timeout (also the deadline of a reverse lookup).
    pub fn timeout(&self) -> Duration {
        self.settings.timeout
    }
}
