//! A DNSSEC-signed `test.` zone on loopback, for DANE and MX tests.
//!
//! Records are collected with [`ZoneBuilder`], signed with `ldns-keygen` +
//! `ldns-signzone`, served by `knotd` on a free 127.0.0.1 port, and, on
//! request, validated by `unbound` in front of it (trust anchor: the zone's
//! DNSKEY RRset). Names under `insecure.test.` live in an unsigned child
//! zone delegated without DS (so they validate as insecure); TLSA sets named
//! with [`ZoneBuilder::bogus_tlsa`] get a corrupted RRSIG (bogus). Names
//! under `outside.example.` live in a third, unsigned zone outside the
//! trust anchor's tree (RFC 4035 §4.3: indeterminate). The trust anchor
//! comes in three forms: the whole DNSKEY RRset, the KSK alone, or the
//! KSK's DS record. [`ZoneBuilder::without_signatures`] serves the zone
//! without its DNSSEC records, as a resolver path that strips them would.
//! The same recipe as `crates/dane/tests/dnssec_zone.rs`, made reusable;
//! that test could later call this fixture instead of its own copy.
//!
//! Records can be added after start: [`DnsZone::add`] then
//! [`DnsZone::publish`] re-signs with the same keys and reloads knotd.
//! Child processes are killed when the fixture is dropped.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use portcullis_dane::generate::tlsa_for_chain;
use rustls_pki_types::CertificateDer;

use crate::Error;

/// The signed parent zone.
pub const ZONE: &str = "test.";
/// The unsigned child zone (delegated without DS).
pub const INSECURE_ZONE: &str = "insecure.test.";
/// An unsigned zone outside the signed tree (not below any trust anchor).
pub const OUTSIDE_ZONE: &str = "outside.example.";

/// Records for the zones, before they are signed and served.
#[derive(Debug, Clone, Default)]
pub struct ZoneBuilder {
    /// Zone-file lines with absolute owner names.
    records: Vec<String>,
    /// Owner names (absolute) whose TLSA RRSIG gets corrupted.
    bogus: Vec<String>,
    validating_resolver: bool,
    unsigned: bool,
}

fn absolute(name: &str) -> String {
    if name.ends_with('.') {
        name.to_ascii_lowercase()
    } else {
        format!("{}.", name.to_ascii_lowercase())
    }
}

fn tlsa_owner(host: &str, port: u16) -> String {
    format!("_{port}._tcp.{}", absolute(host))
}

impl ZoneBuilder {
    /// An empty zone (SOA, NS and the delegation are always added).
    pub fn new() -> Self {
        Self::default()
    }

    /// Also start `unbound` as a validating resolver in front of knotd.
    pub fn with_validating_resolver(mut self) -> Self {
        self.validating_resolver = true;
        self
    }

    /// Serves the `test.` zone without its DNSSEC records (no RRSIG, DNSKEY
    /// or NSEC), while the trust anchor files still name its keys: what a
    /// validator sees behind a resolver or middlebox that strips DNSSEC.
    pub fn without_signatures(mut self) -> Self {
        self.unsigned = true;
        self
    }

    /// Adds a raw record: `owner` (absolute or relative to the root), type
    /// and data, e.g. `("x.test", "TXT", "\"hi\"")`.
    pub fn record(mut self, owner: &str, rtype: &str, data: &str) -> Self {
        self.push(owner, rtype, data);
        self
    }

    /// Any record with its own TTL (a key rollover waits twice the TTL).
    pub fn record_ttl(mut self, owner: &str, ttl: u32, rtype: &str, data: &str) -> Self {
        self.records
            .push(format!("{} {ttl} IN {rtype} {data}", absolute(owner)));
        self
    }

    fn push(&mut self, owner: &str, rtype: &str, data: &str) {
        self.records
            .push(format!("{} 300 IN {rtype} {data}", absolute(owner)));
    }

    /// `domain MX preference host`.
    pub fn mx(self, domain: &str, preference: u16, host: &str) -> Self {
        let host = absolute(host);
        self.record(domain, "MX", &format!("{preference} {host}"))
    }

    /// `host A ip`.
    pub fn a(self, host: &str, ip: std::net::Ipv4Addr) -> Self {
        self.record(host, "A", &ip.to_string())
    }

    /// `alias CNAME target`.
    pub fn cname(self, alias: &str, target: &str) -> Self {
        let target = absolute(target);
        self.record(alias, "CNAME", &target)
    }

    /// `owner TXT "text"`.
    pub fn txt(self, owner: &str, text: &str) -> Self {
        self.record(owner, "TXT", &format!("\"{text}\""))
    }

    /// `_port._tcp.host TLSA` with the given presentation data
    /// (`"3 1 1 <hex>"`).
    pub fn tlsa(self, host: &str, port: u16, data: &str) -> Self {
        let owner = tlsa_owner(host, port);
        self.record(&owner, "TLSA", data)
    }

    /// A TLSA record computed from `chain[depth]`; `[usage, selector,
    /// matching]` as in RFC 6698, e.g. `[3, 1, 1]` at depth 0 for a sink's
    /// leaf, `[2, 1, 1]` at depth 1 for its issuer.
    pub fn tlsa_for(
        self,
        host: &str,
        port: u16,
        chain: &[CertificateDer<'_>],
        depth: usize,
        [usage, selector, matching]: [u8; 3],
    ) -> Result<Self, Error> {
        let record = tlsa_for_chain(chain, depth, usage, selector, matching)?;
        Ok(self.tlsa(host, port, &record.to_string()))
    }

    /// Corrupts the signature over `_port._tcp.host TLSA` after signing:
    /// validators must call the answer bogus.
    pub fn bogus_tlsa(mut self, host: &str, port: u16) -> Self {
        self.bogus.push(tlsa_owner(host, port));
        self
    }

    /// Signs the zones and starts the servers.
    pub fn start(self) -> Result<DnsZone, Error> {
        DnsZone::start(self)
    }
}

/// A child process killed on drop.
#[derive(Debug)]
struct Daemon(Child);

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The running zone: knotd (authoritative) and optionally unbound
/// (validating resolver). Stops both when dropped.
#[derive(Debug)]
pub struct DnsZone {
    builder: ZoneBuilder,
    serial: u32,
    ksk: String,
    zsk: String,
    authoritative: SocketAddr,
    resolver: Option<SocketAddr>,
    // Drop order: daemons first, then the directory they use.
    knot: Option<Daemon>,
    unbound: Option<Daemon>,
    dir: tempfile::TempDir,
}

fn run(cmd: &mut Command) -> Result<String, Error> {
    let program = format!("{:?}", cmd.get_program());
    let out = cmd.output().map_err(|e| Error::Program {
        program: program.clone(),
        detail: e.to_string(),
    })?;
    if !out.status.success() {
        return Err(Error::Program {
            program: format!("{cmd:?}"),
            detail: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr)),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// A port free for both UDP and TCP on 127.0.0.1.
pub fn free_udp_tcp_port() -> Result<u16, Error> {
    for _ in 0..100 {
        let udp = UdpSocket::bind("127.0.0.1:0").map_err(Error::io("binding a UDP probe"))?;
        let port = udp
            .local_addr()
            .map_err(Error::io("reading a UDP probe address"))?
            .port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(Error::Other(
        "no port free for both UDP and TCP on 127.0.0.1".into(),
    ))
}

fn wait_tcp(addr: SocketAddr, what: &str, child: &mut Child) -> Result<(), Error> {
    let timeout = Duration::from_secs(20);
    let deadline = Instant::now() + timeout;
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Program {
                program: what.into(),
                detail: format!("exited with {status} before listening on {addr}"),
            });
        }
        if Instant::now() > deadline {
            return Err(Error::Timeout(
                timeout,
                format!("{what} to listen on {addr}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(Error::io(format!("writing {}", path.display())))
}

/// Flips one base64 character of the RRSIG over each named TLSA set.
fn corrupt(signed: &str, owners: &[String]) -> Result<String, Error> {
    let mut out = String::with_capacity(signed.len());
    let mut corrupted = Vec::new();
    for line in signed.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let owner = f
            .first()
            .map(|o| o.to_ascii_lowercase())
            .unwrap_or_default();
        if owners.contains(&owner)
            && f.get(3) == Some(&"RRSIG")
            && f.get(4) == Some(&"TLSA")
            && let Some(sig) = f.last()
            && sig.len() > 10
        {
            let mut chars: Vec<char> = sig.chars().collect();
            if let Some(c) = chars.get_mut(10) {
                *c = if *c == 'A' { 'B' } else { 'A' };
            }
            let flipped: String = chars.into_iter().collect();
            out.push_str(&line.replacen(sig, &flipped, 1));
            corrupted.push(owner);
        } else {
            out.push_str(line);
        }
        out.push('\n');
    }
    for o in owners {
        if !corrupted.contains(o) {
            return Err(Error::Other(format!(
                "no RRSIG over the TLSA set of {o} to corrupt (add the TLSA record first)"
            )));
        }
    }
    Ok(out)
}

impl DnsZone {
    fn start(builder: ZoneBuilder) -> Result<Self, Error> {
        let dir = tempfile::tempdir().map_err(Error::io("creating the zone directory"))?;
        let keygen = |ksk: bool| {
            let mut c = Command::new("ldns-keygen");
            c.current_dir(dir.path()).args(["-a", "ECDSAP256SHA256"]);
            if ksk {
                c.arg("-k");
            }
            run(c.arg(ZONE))
        };
        let ksk = keygen(true)?;
        let zsk = keygen(false)?;
        // Three forms of the same anchor: the whole DNSKEY RRset (what
        // unbound here and hickory alone accept), the KSK alone and its DS
        // (which the gateway's resolver turns into the RRset by validating
        // it from them).
        let read = |p: PathBuf| {
            std::fs::read_to_string(&p).map_err(Error::io(format!("reading {}", p.display())))
        };
        let ksk_key = read(dir.path().join(format!("{ksk}.key")))?;
        let anchor = ksk_key.clone() + &read(dir.path().join(format!("{zsk}.key")))?;
        write(&dir.path().join("anchor.keys"), &anchor)?;
        write(&dir.path().join("anchor-ksk.keys"), &ksk_key)?;
        let ds = run(Command::new("ldns-key2ds").current_dir(dir.path()).args([
            "-n",
            "-2",
            &format!("{ksk}.key"),
        ]))?;
        write(&dir.path().join("anchor-ds.keys"), &format!("{ds}\n"))?;

        let port = free_udp_tcp_port()?;
        let authoritative = SocketAddr::from(([127, 0, 0, 1], port));
        let mut zone = Self {
            builder,
            serial: 0,
            ksk,
            zsk,
            authoritative,
            resolver: None,
            knot: None,
            unbound: None,
            dir,
        };
        zone.write_zones()?;
        let d = zone.dir.path().display().to_string();
        let served = if zone.builder.unsigned {
            "test.zone"
        } else {
            "test.zone.signed"
        };
        std::fs::create_dir_all(zone.dir.path().join("db"))
            .map_err(Error::io("creating knot's db"))?;
        let conf = format!(
            "server:\n    rundir: \"{d}\"\n    listen: 127.0.0.1@{port}\n\
             database:\n    storage: \"{d}/db\"\n\
             control:\n    listen: \"{d}/knot.sock\"\n\
             template:\n  - id: default\n    storage: \"{d}\"\n    zonefile-sync: -1\n    zonefile-load: whole\n    journal-content: none\n    semantic-checks: off\n\
             zone:\n  - domain: {ZONE}\n    file: {served}\n  - domain: {INSECURE_ZONE}\n    file: insecure.test.zone\n  - domain: {OUTSIDE_ZONE}\n    file: outside.example.zone\n\
             log:\n  - target: stderr\n    any: warning\n"
        );
        write(&zone.dir.path().join("knot.conf"), &conf)?;
        let mut knot = Command::new("knotd")
            .arg("-c")
            .arg(zone.dir.path().join("knot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| Error::Program {
                program: "knotd".into(),
                detail: e.to_string(),
            })?;
        wait_tcp(authoritative, "knotd", &mut knot)?;
        zone.knot = Some(Daemon(knot));
        if zone.builder.validating_resolver {
            zone.start_unbound()?;
        }
        Ok(zone)
    }

    fn start_unbound(&mut self) -> Result<(), Error> {
        let port = free_udp_tcp_port()?;
        let d = self.dir.path().display().to_string();
        let auth = self.authoritative.port();
        let conf = format!(
            "server:\n  interface: 127.0.0.1\n  port: {port}\n  do-ip6: no\n  username: \"\"\n  chroot: \"\"\n  directory: \"{d}\"\n  pidfile: \"{d}/unbound.pid\"\n  use-syslog: no\n  logfile: \"\"\n  verbosity: 0\n  access-control: 127.0.0.0/8 allow\n  do-not-query-localhost: no\n  local-zone: \"test.\" nodefault\n  trust-anchor-file: \"{d}/anchor.keys\"\n  val-log-level: 2\n  cache-max-ttl: 1\n  cache-max-negative-ttl: 1\n  module-config: \"validator iterator\"\n\
             remote-control:\n  control-enable: no\n\
             stub-zone:\n  name: \"{ZONE}\"\n  stub-addr: 127.0.0.1@{auth}\n\
             stub-zone:\n  name: \"{INSECURE_ZONE}\"\n  stub-addr: 127.0.0.1@{auth}\n\
             stub-zone:\n  name: \"{OUTSIDE_ZONE}\"\n  stub-addr: 127.0.0.1@{auth}\n"
        );
        let path = self.dir.path().join("unbound.conf");
        write(&path, &conf)?;
        let mut child = Command::new("unbound")
            .arg("-d")
            .arg("-c")
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Program {
                program: "unbound".into(),
                detail: e.to_string(),
            })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        wait_tcp(addr, "unbound", &mut child)?;
        self.unbound = Some(Daemon(child));
        self.resolver = Some(addr);
        Ok(())
    }

    /// Writes and signs the zone files from the builder's records.
    fn write_zones(&mut self) -> Result<(), Error> {
        self.serial += 1;
        let serial = self.serial;
        let mut parent = format!(
            "$ORIGIN {ZONE}\n$TTL 300\n\
             @ IN SOA ns.test. hostmaster.test. {serial} 3600 600 86400 1\n\
             @ IN NS ns.test.\n\
             ns IN A 127.0.0.1\n\
             insecure IN NS ns.insecure.test.\n\
             ns.insecure IN A 127.0.0.1\n"
        );
        let mut child = format!(
            "$ORIGIN {INSECURE_ZONE}\n$TTL 300\n\
             @ IN SOA ns.insecure.test. hostmaster.test. {serial} 3600 600 86400 1\n\
             @ IN NS ns.insecure.test.\n\
             ns IN A 127.0.0.1\n"
        );
        let mut outside = format!(
            "$ORIGIN {OUTSIDE_ZONE}\n$TTL 300\n\
             @ IN SOA ns.outside.example. hostmaster.outside.example. {serial} 3600 600 86400 1\n\
             @ IN NS ns.outside.example.\n\
             ns IN A 127.0.0.1\n"
        );
        let under = |owner: &str, zone: &str| owner == zone || owner.ends_with(&format!(".{zone}"));
        for line in &self.builder.records {
            let owner = line.split_whitespace().next().unwrap_or_default();
            if under(owner, OUTSIDE_ZONE) {
                outside.push_str(line);
                outside.push('\n');
            } else if under(owner, INSECURE_ZONE) {
                child.push_str(line);
                child.push('\n');
            } else if under(owner, ZONE) {
                parent.push_str(line);
                parent.push('\n');
            } else {
                return Err(Error::Other(format!(
                    "record {line:?} is outside the test zones {ZONE} and {OUTSIDE_ZONE}"
                )));
            }
        }
        let dir = self.dir.path();
        write(&dir.join("test.zone"), &parent)?;
        write(&dir.join("insecure.test.zone"), &child)?;
        write(&dir.join("outside.example.zone"), &outside)?;
        run(Command::new("ldns-signzone").current_dir(dir).args([
            "-o",
            ZONE,
            "test.zone",
            &self.zsk,
            &self.ksk,
        ]))?;
        if !self.builder.bogus.is_empty() {
            let path = dir.join("test.zone.signed");
            let signed =
                std::fs::read_to_string(&path).map_err(Error::io("reading the signed zone"))?;
            write(&path, &corrupt(&signed, &self.builder.bogus)?)?;
        }
        Ok(())
    }

    /// Where knotd answers (authoritative, no validation).
    pub fn authoritative_addr(&self) -> SocketAddr {
        self.authoritative
    }

    /// Where unbound answers (validating), if started with
    /// [`ZoneBuilder::with_validating_resolver`].
    pub fn resolver_addr(&self) -> Option<SocketAddr> {
        self.resolver
    }

    /// A file of DNSKEY records (zone-file syntax): the zone's trust anchor
    /// (the whole DNSKEY RRset, KSK and ZSK).
    pub fn trust_anchor_file(&self) -> PathBuf {
        self.dir.path().join("anchor.keys")
    }

    /// The zone's trust anchor as its key-signing key alone (one DNSKEY
    /// record), the form most operators copy from a zone's KSK.
    pub fn ksk_anchor_file(&self) -> PathBuf {
        self.dir.path().join("anchor-ksk.keys")
    }

    /// The zone's trust anchor as the DS record of its KSK (SHA-256 digest,
    /// made by `ldns-key2ds`), the form a parent zone publishes.
    pub fn ds_anchor_file(&self) -> PathBuf {
        self.dir.path().join("anchor-ds.keys")
    }

    /// The directory holding the zone files (for debugging).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds records (with the builder's methods) for the next [`publish`].
    ///
    /// [`publish`]: DnsZone::publish
    pub fn add(
        &mut self,
        f: impl FnOnce(ZoneBuilder) -> Result<ZoneBuilder, Error>,
    ) -> Result<(), Error> {
        let b = std::mem::take(&mut self.builder);
        self.builder = f(b)?;
        Ok(())
    }

    /// Re-signs the zones with the same keys and makes knotd reload them.
    /// Resolver caches may still hold old answers for their TTL (1 s in
    /// unbound here).
    pub fn publish(&mut self) -> Result<(), Error> {
        self.write_zones()?;
        let sock = self.dir.path().join("knot.sock");
        run(Command::new("knotc")
            .arg("-s")
            .arg(&sock)
            .args(["-b", "zone-reload"]))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_flips_only_the_named_rrsig() {
        let signed = "_25._tcp.mx.a.test.\t300\tIN\tRRSIG\tTLSA 13 5 300 x y 1 test. ABCDEFGHIJKLMNOP\n\
                      _25._tcp.mx.b.test.\t300\tIN\tRRSIG\tTLSA 13 5 300 x y 1 test. ABCDEFGHIJKLMNOP\n";
        let out = corrupt(signed, &["_25._tcp.mx.a.test.".into()]).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert!(lines[0].ends_with("ABCDEFGHIJALMNOP"), "{}", lines[0]);
        assert!(lines[1].ends_with("ABCDEFGHIJKLMNOP"));
        assert!(corrupt(signed, &["_25._tcp.mx.c.test.".into()]).is_err());
    }

    #[test]
    fn names_become_absolute_and_lower_case() {
        assert_eq!(absolute("MX.Example.test"), "mx.example.test.");
        assert_eq!(
            tlsa_owner("mx.example.test.", 25),
            "_25._tcp.mx.example.test."
        );
        let b = ZoneBuilder::new().mx("example.test", 10, "mx.example.test");
        assert_eq!(
            b.records,
            vec!["example.test. 300 IN MX 10 mx.example.test."]
        );
    }
}
