//! Next hops of a destination domain: an SMTP route when one matches (host
//! names resolved by the gateway's resolver, never the system's), else the
//! MX records from the DNSSEC-aware resolver (implicit MX when there are
//! none; a null MX refuses mail), in preference order, each with its
//! addresses and the facts policy needs: how the hop was learned
//! ([`MxOrigin`]) and its TLSA lookup ([`TlsaFacts`], mapped one-to-one from
//! `dane`'s [`TlsaFinding`]). TLSA records are looked up only where RFC 7672
//! §2.2 says they count: a secure MX answer (or implicit MX) and a secure
//! address answer.

use std::net::{IpAddr, SocketAddr};

use portcullis_dane::dns::{Answer, DaneResolver};
use portcullis_dane::{TlsaFinding, TlsaSet};
use portcullis_policy::{DestinationKey, DomainName, HopHost, MxOrigin, NextHop, TlsaFacts};
use rustls::pki_types::ServerName;

use super::delivery::{Context, Shortfall};
use crate::maillog::MailLog;
use crate::settings::SmtpRoute;
use crate::spool::MessageId;

/// One next-hop host.
#[derive(Debug, Clone)]
pub(crate) struct Hop {
    pub hop: NextHop,
    pub addrs: Vec<SocketAddr>,
    pub tlsa: TlsaFacts<TlsaSet>,
    /// SNI and the name rustls is given (the verifier decides what counts).
    pub server_name: ServerName<'static>,
}

pub(crate) enum NextHops {
    Hops(Vec<Hop>),
    None(Shortfall),
}

/// The most specific route for `domain`.
pub(crate) fn route_for<'a>(routes: &'a [SmtpRoute], domain: &DomainName) -> Option<&'a SmtpRoute> {
    routes
        .iter()
        .filter(|r| match &r.key {
            DestinationKey::Default => true,
            DestinationKey::Entry(p) => p.matches(domain),
        })
        .max_by_key(|r| match &r.key {
            DestinationKey::Default => (0, (false, 0)),
            DestinationKey::Entry(p) => (1, p.specificity()),
        })
}

fn server_name(host: &HopHost) -> ServerName<'static> {
    match host {
        HopHost::Name(n) => ServerName::try_from(n.as_str().to_owned())
            .unwrap_or(ServerName::IpAddress(IpAddr::from([0, 0, 0, 0]).into())),
        HopHost::Ip(ip) => ServerName::IpAddress((*ip).into()),
    }
}

/// What finding next hops needs: delivery's [`Context`], or the domain
/// check (`crate::check`), which has no spool.
pub(crate) struct HopLookup<'a> {
    pub routes: &'a [SmtpRoute],
    pub resolver: Option<&'a crate::dns::Resolver>,
    pub log: &'a MailLog,
    pub mx_port: u16,
}

pub(crate) async fn resolve(ctx: &Context, id: MessageId, domain: &DomainName) -> NextHops {
    let lookup = HopLookup {
        routes: &ctx.settings.routes,
        resolver: ctx.resolver.as_ref(),
        log: &ctx.log,
        mx_port: ctx.settings.mx_port,
    };
    resolve_with(&lookup, &id, domain).await
}

/// `id` names the message (or the check) in log lines.
pub(crate) async fn resolve_with(
    ctx: &HopLookup<'_>,
    id: &(dyn std::fmt::Display + Sync),
    domain: &DomainName,
) -> NextHops {
    if let Some(route) = route_for(ctx.routes, domain) {
        let mut hops = Vec::new();
        for h in &route.hosts {
            let addrs = match (&h.address, &h.host) {
                (Some(ip), _) => vec![SocketAddr::new(*ip, h.port)],
                (None, HopHost::Ip(ip)) => vec![SocketAddr::new(*ip, h.port)],
                (None, HopHost::Name(n)) => {
                    let found = match ctx.resolver {
                        Some(r) => r.host_addresses(n.as_str(), h.port).await,
                        None => Err("no DNS resolver is configured to resolve it".into()),
                    };
                    found.unwrap_or_else(|why| {
                        ctx.log
                            .line(format_args!("MID {id} to {domain}: route host {n}: {why}"));
                        Vec::new()
                    })
                }
            };
            if addrs.is_empty() {
                ctx.log.line(format_args!(
                    "MID {id} to {domain}: route host {} has no address",
                    h.host
                ));
                continue;
            }
            hops.push(Hop {
                hop: NextHop {
                    host: h.host.clone(),
                    address: None,
                    origin: MxOrigin::SmtpRoute,
                },
                addrs,
                tlsa: TlsaFacts::NotApplicable,
                server_name: server_name(&h.host),
            });
        }
        if hops.is_empty() {
            return NextHops::None(Shortfall::defer(
                "4.4.4",
                format!("no host of the SMTP route for {domain} has an address"),
            ));
        }
        return NextHops::Hops(hops);
    }
    let Some(resolver) = ctx.resolver else {
        return NextHops::None(Shortfall::defer(
            "4.4.3",
            format!("no SMTP route for {domain} and no DNS resolver configured for MX lookups"),
        ));
    };
    mx_hops(ctx, resolver.dane(), id, domain).await
}

async fn mx_hops(
    ctx: &HopLookup<'_>,
    resolver: &DaneResolver,
    id: &(dyn std::fmt::Display + Sync),
    domain: &DomainName,
) -> NextHops {
    let mx = match resolver.mx(domain.as_str()).await {
        Ok(a) => a,
        Err(e) => return NextHops::None(Shortfall::defer("4.4.3", e.to_string())),
    };
    let status = mx.status();
    let (secure, hosts): (bool, Vec<(u16, String)>) = match mx {
        Answer::Records(p) => {
            let (proof, list) = p.into_parts();
            (proof.is_secure(), list)
        }
        // No MX: the domain itself is the implicit MX (RFC 5321 §5.1).
        Answer::NoRecords { proof } => (proof.is_secure(), vec![(0, domain.to_string())]),
        Answer::Bogus { detail } => {
            return NextHops::None(Shortfall::defer(
                "4.7.5",
                format!("MX lookup for {domain} is bogus (DNSSEC validation failed): {detail}"),
            ));
        }
        Answer::LookupFailed { detail } => {
            return NextHops::None(Shortfall::defer(
                "4.4.3",
                format!("MX lookup for {domain} failed: {detail}"),
            ));
        }
        // An answer this build does not know: never deliver on it.
        _ => {
            return NextHops::None(Shortfall::defer(
                "4.4.3",
                format!("MX lookup for {domain} gave no usable answer"),
            ));
        }
    };
    let hosts = shuffle_equal_preferences(hosts, seed());
    if hosts.len() == 1 && hosts.first().is_some_and(|(_, h)| h == "." || h.is_empty()) {
        return NextHops::None(Shortfall {
            disposition: portcullis_policy::Disposition::Bounce,
            status: "5.1.10".into(),
            diagnostic: format!("{domain} publishes a null MX: it accepts no mail"),
            remote: None,
            tls_refused: None,
        });
    }
    ctx.log.line(format_args!(
        "MID {id} MX for {domain} ({}): {}",
        if secure {
            "DNSSEC secure".to_owned()
        } else {
            status.to_string()
        },
        hosts
            .iter()
            .map(|(p, h)| format!("{p} {h}"))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let mut hops = Vec::new();
    for (_, host) in hosts {
        let Ok(name) = DomainName::parse(host.trim_end_matches('.')) else {
            ctx.log.line(format_args!(
                "MID {id} MX host {host:?} is not a valid name; skipped"
            ));
            continue;
        };
        let (addr_secure, ips) = match resolver.addresses(name.as_str()).await {
            Ok(Answer::Records(p)) => {
                let (proof, (_, ips)) = p.into_parts();
                (proof.is_secure(), ips)
            }
            Ok(Answer::Bogus { detail }) => {
                ctx.log.warn(format_args!(
                    "MID {id} addresses of MX {name} are bogus ({detail}); host skipped"
                ));
                continue;
            }
            Ok(other) => {
                ctx.log.line(format_args!(
                    "MID {id} MX {name} has no usable address ({}); host skipped",
                    other.status()
                ));
                continue;
            }
            Err(e) => {
                ctx.log
                    .line(format_args!("MID {id} MX {name}: {e}; host skipped"));
                continue;
            }
        };
        let tlsa = if secure && addr_secure {
            tlsa_facts(ctx, resolver, id, &name).await
        } else {
            if secure {
                // The MX line said "DNSSEC secure": say why DANE still
                // does not apply to this host (RFC 7672 §2.2.2).
                ctx.log.line(format_args!(
                    "MID {id} MX {name}: its addresses are DNSSEC-insecure, so its TLSA records are not looked up (no DANE for this host)"
                ));
            }
            TlsaFacts::NotApplicable
        };
        let host = HopHost::Name(name.clone());
        hops.push(Hop {
            server_name: server_name(&host),
            hop: NextHop::mx(
                name,
                if secure {
                    MxOrigin::DnssecSecure
                } else {
                    MxOrigin::Insecure
                },
            ),
            addrs: ips
                .into_iter()
                .map(|ip| SocketAddr::new(ip, ctx.mx_port))
                .collect(),
            tlsa,
        });
    }
    if hops.is_empty() {
        return NextHops::None(Shortfall::defer(
            "4.4.4",
            format!("no MX host of {domain} has a usable address"),
        ));
    }
    NextHops::Hops(hops)
}

fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9e37_79b9_7f4a_7c15)
        | 1
}

/// RFC 5321 §5.1: hosts of equal preference are tried in random order, so
/// load spreads across them; lower preferences still come first. `hosts`
/// is sorted by preference.
fn shuffle_equal_preferences(mut hosts: Vec<(u16, String)>, mut state: u64) -> Vec<(u16, String)> {
    let mut start = 0;
    while start < hosts.len() {
        let pref = hosts.get(start).map(|h| h.0);
        let end = hosts
            .iter()
            .skip(start)
            .position(|h| Some(h.0) != pref)
            .map_or(hosts.len(), |n| start + n);
        // Fisher-Yates with xorshift64: unpredictability is not needed, only spread.
        if let Some(group) = hosts.get_mut(start..end) {
            for i in (1..group.len()).rev() {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                group.swap(i, (state % (i as u64 + 1)) as usize);
            }
        }
        start = end;
    }
    hosts
}

async fn tlsa_facts(
    ctx: &HopLookup<'_>,
    resolver: &DaneResolver,
    id: &(dyn std::fmt::Display + Sync),
    host: &DomainName,
) -> TlsaFacts<TlsaSet> {
    let lookup = match resolver.tlsa(host.as_str(), ctx.mx_port).await {
        Ok(l) => l,
        Err(e) => {
            ctx.log.line(format_args!(
                "MID {id} TLSA _{}._tcp.{host}: {e}",
                ctx.mx_port
            ));
            return TlsaFacts::Failed;
        }
    };
    let finding = lookup.answer.into_finding();
    ctx.log.line(format_args!(
        "MID {id} DANE TLSA _{}._tcp.{} {finding}",
        ctx.mx_port, lookup.base_domain
    ));
    facts_for_policy(finding)
}

/// `dane`'s finding, as policy names it.
fn facts_for_policy(finding: TlsaFinding) -> TlsaFacts<TlsaSet> {
    match finding {
        TlsaFinding::SecureUsable(set) => TlsaFacts::SecureUsable(set),
        TlsaFinding::SecureAllUnusable { .. } => TlsaFacts::SecureAllUnusable,
        TlsaFinding::Insecure { .. } => TlsaFacts::Insecure,
        TlsaFinding::Bogus { .. } => TlsaFacts::Bogus,
        TlsaFinding::Failed { .. } => TlsaFacts::Failed,
        // A finding this gateway does not know yet: no DANE decision can
        // rest on it, so it counts as a failed lookup (the mail waits).
        _ => TlsaFacts::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_preferences_are_shuffled_but_order_by_preference_holds() {
        let hosts: Vec<(u16, String)> = [
            (10, "a"),
            (10, "b"),
            (10, "c"),
            (20, "d"),
            (30, "e"),
            (30, "f"),
        ]
        .iter()
        .map(|(p, h)| (*p, h.to_string()))
        .collect();
        let mut firsts = std::collections::BTreeSet::new();
        for seed in 1..64u64 {
            let out = shuffle_equal_preferences(hosts.clone(), seed);
            let prefs: Vec<u16> = out.iter().map(|h| h.0).collect();
            assert_eq!(prefs, [10, 10, 10, 20, 30, 30]);
            let mut names: Vec<&str> = out.iter().map(|h| h.1.as_str()).collect();
            firsts.insert(names[0].to_string());
            names.sort();
            assert_eq!(names, ["a", "b", "c", "d", "e", "f"]);
        }
        assert!(firsts.len() > 1, "the first host varies");
        assert!(shuffle_equal_preferences(Vec::new(), 1).is_empty());
    }
}
