//! Forward-confirmed reverse DNS of a connecting client, for HAT sender
//! groups written as host names or domain suffixes: the PTR names of the
//! address, kept only if one of their A/AAAA records is that address (an
//! unconfirmed PTR name proves nothing: anyone who controls a reverse zone
//! can claim any name). Looked up only for listeners whose HAT has such
//! patterns, with the DNS timeout as the deadline; a failed lookup means
//! "no name", so the client matches only address-based groups.

use std::net::IpAddr;
use std::time::Duration;

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use portcullis_dane::dns::ResolverSettings;
use portcullis_policy::{DomainName, Hat, SenderPattern};

/// A plain (non-validating) resolver for the configured servers.
pub(crate) fn plain_resolver(dns: &ResolverSettings) -> Result<TokioResolver, String> {
    let servers = dns
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
    let mut builder = TokioResolver::builder_with_config(
        ResolverConfig::from_name_servers(servers),
        TokioRuntimeProvider::default(),
    );
    let opts = builder.options_mut();
    opts.use_hosts_file = ResolveHosts::Never;
    opts.timeout = dns.timeout;
    builder.build().map_err(|e| e.to_string())
}

/// Whether any sender group needs the client's name.
pub(crate) fn needs_names(hat: &Hat) -> bool {
    hat.groups().iter().any(|g| {
        g.patterns
            .iter()
            .any(|p| matches!(p, SenderPattern::Host(_) | SenderPattern::Suffix(_)))
    })
}

/// The client's forward-confirmed name, if any.
pub(crate) async fn lookup(
    resolver: &TokioResolver,
    ip: IpAddr,
    deadline: Duration,
) -> Option<DomainName> {
    tokio::time::timeout(deadline, confirm(resolver, ip))
        .await
        .ok()
        .flatten()
}

async fn confirm(resolver: &TokioResolver, ip: IpAddr) -> Option<DomainName> {
    let ptr = resolver.reverse_lookup(ip).await.ok()?;
    let names: Vec<String> = ptr
        .answers()
        .iter()
        .filter_map(|r| match &r.data {
            hickory_resolver::proto::rr::RData::PTR(p) => Some(p.0.to_ascii()),
            _ => None,
        })
        .take(10)
        .collect();
    for name in names {
        let Ok(forward) = resolver.lookup_ip(name.as_str()).await else {
            continue;
        };
        if forward
            .iter()
            .any(|a| portcullis_policy::canonical_ip(a) == ip)
        {
            return DomainName::parse(name.trim_end_matches('.')).ok();
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_policy::HatConfig;

    #[test]
    fn only_name_patterns_need_a_lookup() {
        let hat = |m: &str| {
            let cfg: HatConfig = toml::from_str(&format!(
                "[[sender-group]]\nname = \"G\"\nmatch = [{m}]\npolicy = \"P\"\n[policy.P]\naction = \"accept\"\n"
            ))
            .unwrap();
            Hat::from_config(&cfg, "t").unwrap()
        };
        assert!(!needs_names(&hat("\"10.0.0.0/8\", \"ALL\"")));
        assert!(needs_names(&hat("\"mail.example.com\"")));
        assert!(needs_names(&hat("\".example.com\"")));
    }
}
