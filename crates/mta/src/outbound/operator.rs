//! What the operator reads and clears in delivery's shared state: the
//! temporary STARTTLS exemptions (`ctl tls exemptions list|clear`) and the
//! MTA-STS policy cache (`ctl mta-sts cache list|flush`). Rows are plain
//! serialisable values for the admin API and the command line.

use std::time::SystemTime;

use portcullis_policy::{DomainName, HopHost};
use serde::{Deserialize, Serialize};

use super::context::Context;

/// One host exempt from STARTTLS after a failed handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExemptionRow {
    /// Host name, or `[address]`.
    pub host: String,
    /// Unix seconds when the exemption ends.
    pub until: u64,
    /// Seconds left.
    pub seconds_left: u64,
}

/// One cached MTA-STS policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StsCacheRow {
    pub domain: String,
    /// The policy id of the `_mta-sts` TXT record it was fetched for.
    pub id: String,
    /// `enforce`, `testing` or `none`.
    pub mode: String,
    /// MX patterns.
    pub mx: Vec<String>,
    pub max_age: u32,
    /// Unix seconds when it was fetched and when it expires.
    pub fetched_at: u64,
    pub expires_at: u64,
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads a host as an operator writes it: a name, an address, `[address]`.
pub(crate) fn parse_host(text: &str) -> Result<HopHost, String> {
    let t = text.trim();
    let inner = t
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .unwrap_or(t);
    if let Ok(ip) = inner.parse::<std::net::IpAddr>() {
        return Ok(HopHost::ip(ip));
    }
    DomainName::parse(inner)
        .map(HopHost::Name)
        .map_err(|e| format!("{text:?} is not a host name or address: {e}"))
}

impl Context {
    /// The exemptions still in force, soonest to end first.
    pub(crate) fn exemption_rows(&self) -> Vec<ExemptionRow> {
        let now = SystemTime::now();
        let mut ex = self.exemptions.lock().unwrap_or_else(|p| p.into_inner());
        ex.purge(now);
        let mut rows: Vec<ExemptionRow> = ex
            .entries()
            .map(|(h, until)| ExemptionRow {
                host: h.to_string(),
                until: unix(until),
                seconds_left: unix(until).saturating_sub(unix(now)),
            })
            .collect();
        rows.sort_by(|a, b| (a.until, &a.host).cmp(&(b.until, &b.host)));
        rows
    }

    /// Ends the exemption of `host`, or every one; says what it did.
    pub(crate) fn clear_exemptions(&self, host: Option<&str>) -> Result<String, String> {
        let now = SystemTime::now();
        let mut ex = self.exemptions.lock().unwrap_or_else(|p| p.into_inner());
        ex.purge(now);
        let line = match host {
            None => {
                let n = ex.len();
                ex.clear_all();
                format!("{n} STARTTLS exemption(s) cleared: those hosts are sent STARTTLS again")
            }
            Some(text) => {
                let h = parse_host(text)?;
                if ex.expiry(&h).is_none() {
                    return Err(format!("{h} has no STARTTLS exemption"));
                }
                ex.clear(&h);
                format!("STARTTLS exemption of {h} cleared: it is sent STARTTLS again")
            }
        };
        self.log.line(format_args!("operator: {line}"));
        Ok(line)
    }
}
