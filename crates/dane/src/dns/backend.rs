//! The only place hickory is set up, and the one raw query path.
//!
//! [`build_hickory`] makes a caching hickory resolver for one priority level
//! of servers, validating (with the given trust anchors) or plain; every
//! resolver the crate (and the gateway) uses comes from it. [`raw_query`]
//! asks the servers of a route directly, priority level by level, with the
//! DO and AD bits set, and returns the whole response with its header: the
//! AD bit for [`DnssecMode::TrustAd`](super::DnssecMode::TrustAd), and the
//! DNSKEY/RRSIG records priming and the self-check need. hickory's resolver
//! cannot serve those: it drops the header of negative answers and strips
//! DNSSEC records unless it validates itself.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::dnssec::TrustAnchors;
use hickory_proto::op::{DnsRequest, DnsRequestOptions, DnsResponse, Query, ResponseCode};
use hickory_proto::rr::{Name, RecordType};
use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ServerOrderingStrategy,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::tcp::TcpClientStream;
use hickory_resolver::net::udp::UdpClientStream;
use hickory_resolver::net::xfer::FirstAnswer;
use hickory_resolver::net::{DnsHandle, NetError};

use super::settings::DnsSetupError;

/// A hickory resolver for one priority level of servers: validating from
/// `anchors` when given, plain otherwise. Must be called within a tokio
/// runtime.
pub(crate) fn build_hickory(
    servers: &[SocketAddr],
    timeout: Duration,
    anchors: Option<Arc<TrustAnchors>>,
) -> Result<TokioResolver, DnsSetupError> {
    if servers.is_empty() {
        return Err(DnsSetupError::NoServers);
    }
    let servers = servers
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
    let mut builder = TokioResolver::builder_with_config(config, TokioRuntimeProvider::default());
    let opts = builder.options_mut();
    // Never /etc/hosts, never the system resolver: only the configured servers.
    opts.use_hosts_file = ResolveHosts::Never;
    opts.timeout = timeout;
    opts.attempts = 2;
    opts.edns0 = true;
    opts.server_ordering_strategy = ServerOrderingStrategy::QueryStatistics;
    opts.validate = anchors.is_some();
    if let Some(anchors) = anchors {
        builder = builder.with_trust_anchor(anchors);
    }
    builder
        .build()
        .map_err(|e| DnsSetupError::Resolver(e.to_string()))
}

/// A response from one server, with who sent it.
#[derive(Debug)]
pub(crate) struct RawAnswer {
    pub server: SocketAddr,
    pub response: DnsResponse,
}

/// Asks the servers level by level, each server in turn, until one gives
/// an answer that is not SERVFAIL or REFUSED (those, timeouts and network
/// errors move on to the next server). The query has RD, AD and DO set, so
/// a validating resolver reports its verdict in the AD bit and passes
/// DNSSEC records. The error names the last server's failure.
pub(crate) async fn raw_query(
    levels: &[Vec<SocketAddr>],
    timeout: Duration,
    name: &Name,
    rtype: RecordType,
) -> Result<RawAnswer, String> {
    let mut last = format!("no DNS server to ask for {name} {rtype}");
    let mut servfail = None;
    for server in levels.iter().flatten() {
        match ask(*server, timeout, name, rtype).await {
            Ok(response) => match response.metadata.response_code {
                ResponseCode::ServFail => {
                    servfail = Some(RawAnswer {
                        server: *server,
                        response,
                    })
                }
                ResponseCode::Refused => last = format!("{server} refused {name} {rtype}"),
                _ => {
                    return Ok(RawAnswer {
                        server: *server,
                        response,
                    });
                }
            },
            Err(e) => last = format!("{server}: {e}"),
        }
    }
    // Every server failed; a SERVFAIL is an answer in its own right (a
    // validator's verdict on bogus data), so it wins over silence.
    servfail.ok_or(last)
}

async fn ask(
    server: SocketAddr,
    timeout: Duration,
    name: &Name,
    rtype: RecordType,
) -> Result<DnsResponse, NetError> {
    let request = || {
        let mut options = DnsRequestOptions::default();
        options.use_edns = true;
        options.edns_set_dnssec_ok = true;
        options.recursion_desired = true;
        let mut request = DnsRequest::from_query(Query::query(name.clone(), rtype), options);
        request.metadata.authentic_data = true;
        request
    };
    let provider = TokioRuntimeProvider::default();
    let udp = UdpClientStream::builder(server, provider.clone())
        .with_timeout(Some(timeout))
        .with_max_retries(1)
        .exchange();
    let response = udp.send(request()).first_answer().await?;
    if !response.metadata.truncation {
        return Ok(response);
    }
    let tcp = TcpClientStream::exchange(server, None, timeout, None, provider).await?;
    tcp.send(request()).first_answer().await
}
