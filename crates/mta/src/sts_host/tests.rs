//! The policy host against real components: configuration text loaded as
//! the gateway loads it, certificates from a real store (issued by a test
//! CA, one per policy host), our own MTA-STS fetcher and parser over HTTPS
//! on loopback, and raw HTTP requests for the refusals.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use portcullis_certstore::Store;
use portcullis_policy::mta_sts::{StsMode, StsPolicy};
use portcullis_testkit::pki::TestPki;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::StsHostServer;
use crate::config::LoadedConfig;
use crate::mta_sts_fetch::PolicyFetcher;

/// Every network wait of these tests ends by this.
const DEADLINE: Duration = Duration::from_secs(20);

fn config_text(data_dir: &std::path::Path, hosting: &str) -> String {
    format!(
        r#"hostname = "mx.example.com"
data-dir = "{}"

[[listener]]
name = "inbound"
address = "127.0.0.1:2525"
rat.accept = ["example.com"]

{hosting}"#,
        data_dir.display()
    )
}

const HOSTING: &str = r#"[mta-sts.hosting]
address = "127.0.0.1:0"

[[mta-sts.hosting.domain]]
domain = "example.com"
mode = "enforce"
mx = ["mx1.example.com", "*.mx.example.com"]
max-age-seconds = 86400
certificate = "sts-com"

[[mta-sts.hosting.domain]]
domain = "Example.NET"
mode = "testing"
mx = ["mx.example.net"]
certificate = "sts-net"
tls-report-rua = ["mailto:tlsrpt@example.net"]
"#;

/// A store holding one certificate per policy host, the server started
/// from `HOSTING`, and a client configuration trusting the test CA.
async fn start_host(
    dir: &std::path::Path,
) -> (StsHostServer, LoadedConfig, Arc<rustls::ClientConfig>) {
    let pki = TestPki::new().unwrap();
    let store = Store::open_or_create(dir.join("certs")).unwrap();
    for (name, host) in [
        ("sts-com", "mta-sts.example.com"),
        ("sts-net", "mta-sts.example.net"),
    ] {
        let leaf = pki.leaf(&[host]).unwrap();
        store
            .import_pem(
                name,
                leaf.chain_pem().as_bytes(),
                Some(leaf.key_pem().as_bytes()),
                "test leaf",
                false,
            )
            .unwrap();
    }
    let loaded = LoadedConfig::parse("portcullis.toml", &config_text(dir, HOSTING)).unwrap();
    loaded.validate().unwrap();
    let settings = loaded.sts_host_settings().unwrap().unwrap();
    let server = StsHostServer::start(&settings).await.unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(portcullis_testkit::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(pki.root_store().unwrap())
        .with_no_client_auth();
    (server, loaded, Arc::new(tls))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_policy_host_serves_each_domain_to_our_fetcher() {
    let dir = tempfile::tempdir().unwrap();
    let (server, loaded, tls) = start_host(dir.path()).await;
    let addr = server.local_addr();
    let fetcher = PolicyFetcher::new(tls, DEADLINE)
        .with_address("mta-sts.example.com", addr)
        .with_address("mta-sts.example.net", addr);

    // Each host's certificate names only that host: both fetches verifying
    // shows the certificate is chosen per SNI.
    let com = fetcher.fetch("example.com").await.unwrap();
    assert_eq!(
        com,
        "version: STSv1\r\nmode: enforce\r\nmx: mx1.example.com\r\nmx: *.mx.example.com\r\nmax_age: 86400\r\n"
    );
    let parsed = StsPolicy::parse(com.as_bytes()).unwrap();
    assert_eq!(parsed.mode(), StsMode::Enforce);
    assert_eq!(parsed.max_age(), 86400);

    let net = fetcher.fetch("example.net").await.unwrap();
    let parsed = StsPolicy::parse(net.as_bytes()).unwrap();
    assert_eq!(parsed.mode(), StsMode::Testing);
    assert_eq!(parsed.max_age(), 604_800, "the default max-age");
    let policies = loaded.hosted_policies().unwrap();
    assert_eq!(policies[1].policy, parsed);
    assert_eq!(policies[1].policy_text(), net);
    server.shutdown().await;
}

/// Sends one HTTP/1.1 request over TLS to `addr` (SNI `sni`) and returns
/// the status line and the body.
async fn request(
    tls: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    sni: &str,
    head: &str,
) -> (String, String) {
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        let name = ServerName::try_from(sni.to_owned()).unwrap();
        let mut stream = tokio_rustls::TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        // The server may end TLS without close_notify after `Connection: close`.
        let _ = stream.read_to_end(&mut response).await;
        String::from_utf8(response).unwrap()
    };
    let response = tokio::time::timeout(DEADLINE, exchange).await.unwrap();
    let status = response.lines().next().unwrap_or_default().to_owned();
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sts_policy_host_refuses_unknown_hosts_and_paths() {
    let dir = tempfile::tempdir().unwrap();
    let (server, _loaded, tls) = start_host(dir.path()).await;
    let addr = server.local_addr();
    let get = |host: &str, path: &str| {
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
    };
    let sni = "mta-sts.example.com";

    let (status, body) = request(
        tls.clone(),
        addr,
        sni,
        &get("MTA-STS.example.com.:443", "/.well-known/mta-sts.txt"),
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    assert!(
        body.starts_with("version: STSv1\r\nmode: enforce\r\n"),
        "{body:?}"
    );

    for (host, path) in [
        ("mta-sts.example.org", "/.well-known/mta-sts.txt"),
        ("example.com", "/.well-known/mta-sts.txt"),
        ("mta-sts.example.com", "/"),
        ("mta-sts.example.com", "/.well-known/mta-sts.txt.bak"),
    ] {
        let (status, _) = request(tls.clone(), addr, sni, &get(host, path)).await;
        assert!(status.starts_with("HTTP/1.1 404"), "{host}{path}: {status}");
    }
    let post = "POST /.well-known/mta-sts.txt HTTP/1.1\r\nHost: mta-sts.example.com\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    let (status, _) = request(tls.clone(), addr, sni, post).await;
    assert!(status.starts_with("HTTP/1.1 405"), "{status}");
    server.shutdown().await;
}

/// The one-line report of `hosting` (inside a valid file), semantic
/// checks only.
fn problems(hosting: &str) -> String {
    let dir = std::path::Path::new("/nonexistent-portcullis-test");
    let loaded = LoadedConfig::parse("portcullis.toml", &config_text(dir, hosting)).unwrap();
    match loaded.hosted_policies() {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(report) => report.to_string(),
    }
}

#[test]
fn sts_hosting_config_errors_name_file_line_and_key() {
    // The hosting section starts on line 9 of config_text's file.
    let bad = problems(
        r#"[mta-sts.hosting]
address = "127.0.0.1:0"
certificate = "sts"
[[mta-sts.hosting.domain]]
domain = "example.com"
mode = "strict"
mx = ["mx.example.com"]
[[mta-sts.hosting.domain]]
domain = "example.net"
mode = "enforce"
[[mta-sts.hosting.domain]]
domain = "example.org"
mode = "testing"
mx = ["mx..example.org", "a.*.example.org"]
max-age-seconds = 40000000
tls-report-rua = ["ftp://example.org/reports"]
[[mta-sts.hosting.domain]]
domain = "EXAMPLE.com"
mode = "none"
"#,
    );
    for expected in [
        "portcullis.toml:14:1: mta-sts.hosting.domain[0].mode: \"strict\" is not a mode; write enforce, testing or none",
        "portcullis.toml:16:1: mta-sts.hosting.domain[1].mx: mode enforce requires at least one mx field",
        "portcullis.toml:22:7: mta-sts.hosting.domain[2].mx[0]: mx \"mx..example.org\"",
        "portcullis.toml:22:26: mta-sts.hosting.domain[2].mx[1]: mx \"a.*.example.org\"",
        "portcullis.toml:23:1: mta-sts.hosting.domain[2].max-age-seconds: max_age \"40000000\"",
        "portcullis.toml:24:1: mta-sts.hosting.domain[2].tls-report-rua: report address \"ftp://example.org/reports\" is neither mailto: nor https:",
        "portcullis.toml:26:1: mta-sts.hosting.domain[3].domain: example.com already has a policy in mta-sts.hosting.domain[0]",
    ] {
        assert!(bad.contains(expected), "missing {expected:?} in:\n{bad}");
    }

    let no_certificate = problems(
        "[mta-sts.hosting]\naddress = \"127.0.0.1:0\"\n[[mta-sts.hosting.domain]]\ndomain = \"example.com\"\nmode = \"none\"\n",
    );
    assert!(
        no_certificate.contains("portcullis.toml:11:1: mta-sts.hosting.domain[0]")
            && no_certificate.contains("no certificate for this domain's policy host"),
        "{no_certificate}"
    );
    let clash = problems(
        "[mta-sts.hosting]\naddress = \"127.0.0.1:2525\"\ncertificate = \"x\"\n[[mta-sts.hosting.domain]]\ndomain = \"example.com\"\nmode = \"none\"\n",
    );
    assert!(
        clash.contains("portcullis.toml:10:1: mta-sts.hosting.address: 127.0.0.1:2525 is already the address of an SMTP listener"),
        "{clash}"
    );
    let no_domain =
        problems("[mta-sts.hosting]\naddress = \"localhost:443\"\ncertificate = \"x\"\n");
    assert!(
        no_domain
            .contains("mta-sts.hosting.address: \"localhost:443\" is not an IP address and port")
            && no_domain.contains("add a [[mta-sts.hosting.domain]]"),
        "{no_domain}"
    );
}

#[test]
fn sts_policy_id_follows_the_policy_text() {
    let hosted = |mode: StsMode, mx: &[&str], rua: &[&str]| super::HostedPolicy {
        domain: portcullis_policy::DomainName::parse("example.com").unwrap(),
        policy: StsPolicy::new(
            mode,
            86400,
            mx.iter()
                .map(|m| portcullis_policy::mta_sts::MxPattern::parse(m).unwrap())
                .collect(),
        )
        .unwrap(),
        tls_report_rua: rua.iter().map(|r| r.to_string()).collect(),
    };
    let a = hosted(StsMode::Enforce, &["mx.example.com"], &[]);
    let (name, value) = a.sts_record();
    assert_eq!(name, "_mta-sts.example.com");
    let id = a.policy_id();
    assert_eq!(value, format!("v=STSv1; id={id};"));
    portcullis_policy::mta_sts::StsTxtRecord::parse(value.as_bytes()).unwrap();
    assert_eq!(a.tlsrpt_record(), None);

    // Same policy, same id (report addresses are not part of the policy).
    let b = hosted(
        StsMode::Enforce,
        &["mx.example.com"],
        &["mailto:r@example.com"],
    );
    assert_eq!(b.policy_id(), id);
    assert_eq!(
        b.tlsrpt_record(),
        Some((
            "_smtp._tls.example.com".to_owned(),
            "v=TLSRPTv1; rua=mailto:r@example.com".to_owned()
        ))
    );
    assert_ne!(
        hosted(StsMode::Testing, &["mx.example.com"], &[]).policy_id(),
        id
    );
    assert_ne!(
        hosted(StsMode::Enforce, &["mx2.example.com"], &[]).policy_id(),
        id
    );
}

mod generated {
    //! Whatever `[[mta-sts.hosting.domain]]` says, checking never panics;
    //! a refusal points inside the file; and what is accepted is served as
    //! a policy our own parser reads back unchanged, announced by a record
    //! our own TXT parser accepts.

    use proptest::prelude::*;

    use super::*;

    fn value() -> impl Strategy<Value = String> {
        // No quote or backslash: the text stays a valid TOML string, so
        // every case reaches the semantic checks.
        prop_oneof![
            Just("example.com".to_owned()),
            Just("*.mx.example.com".to_owned()),
            Just("mx1.example.com".to_owned()),
            "[a-z0-9*.-]{0,12}",
            "\\PC{0,8}".prop_map(|s| s.replace(['"', '\\'], "")),
        ]
    }

    proptest! {
        #[test]
        fn sts_hosting_accepts_only_policies_it_can_serve(
            domain in value(),
            mode in prop::sample::select(vec!["enforce", "testing", "none", "Enforce", ""]),
            mx in proptest::collection::vec(value(), 0..3),
            max_age in any::<u32>(),
            rua in prop::sample::select(vec!["", "\"mailto:r@example.com\"", "\"https://r.example.com/x\"", "\"ftp://x\"", "\"mailto:\""]),
        ) {
            let mx = mx.iter().map(|m| format!("\"{m}\"")).collect::<Vec<_>>().join(", ");
            let hosting = format!(
                "[mta-sts.hosting]\naddress = \"127.0.0.1:0\"\ncertificate = \"sts\"\n\
                 [[mta-sts.hosting.domain]]\ndomain = \"{domain}\"\nmode = \"{mode}\"\n\
                 mx = [{mx}]\nmax-age-seconds = {max_age}\ntls-report-rua = [{rua}]\n"
            );
            let text = config_text(std::path::Path::new("/nonexistent-portcullis-test"), &hosting);
            let loaded = LoadedConfig::parse("p.toml", &text).unwrap();
            match loaded.hosted_policies() {
                Ok(policies) => {
                    prop_assert_eq!(policies.len(), 1);
                    let p = &policies[0];
                    prop_assert_eq!(&StsPolicy::parse(p.policy_text().as_bytes()).unwrap(), &p.policy);
                    let (_, record) = p.sts_record();
                    portcullis_policy::mta_sts::StsTxtRecord::parse(record.as_bytes()).unwrap();
                    if let Some((_, record)) = p.tlsrpt_record() {
                        portcullis_policy::TlsRptTxtRecord::parse(record.as_bytes()).unwrap();
                    }
                }
                Err(report) => {
                    prop_assert!(!report.issues.is_empty());
                    let lines = text.split('\n').count();
                    for issue in &report.issues {
                        let (line, col) = issue.position.unwrap();
                        prop_assert!(line >= 9 && line <= lines && col >= 1, "{issue:?}");
                    }
                }
            }
        }
    }
}
