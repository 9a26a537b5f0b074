//! The rollover half of the certificate tasks: one look at a staged next
//! key's TLSA records ([`rollover_step`], also run by `portcullis dane
//! rollover --status`), and the watcher that looks at every entry with a
//! staged next key and switches it once the next key's record has been
//! seen, DNSSEC-validated, without a break for twice its TTL.

use std::time::Duration;

use portcullis_certstore::{Store, Timestamp};

use crate::dane_check;
use crate::dns::Resolver;
use crate::maillog::MailLog;

/// What one look at a rollover found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloverProgress {
    /// The next key has no certificate yet.
    NoCertificate,
    /// Some MX name does not show the next key's record (securely).
    NotPublished {
        /// The names that do not.
        missing: Vec<String>,
    },
    /// Seen since then; switching needs this many more seconds.
    Waiting {
        /// Since when it has been seen.
        since: Timestamp,
        /// The largest TTL seen.
        ttl: u32,
        /// Seconds still to wait.
        remaining: i64,
    },
    /// The entry now serves the next key.
    Switched {
        /// The TTL the wait was based on.
        ttl: u32,
    },
}

/// One step of the rollover of `name` at `now`: look up the next key's
/// records, record the sighting, switch when it has been seen for twice
/// the TTL.
pub async fn rollover_step(
    store: &Store,
    resolver: &Resolver,
    name: &str,
    port: u16,
    now: Timestamp,
) -> Result<RolloverProgress, portcullis_certstore::Error> {
    let entry = store.entry(name)?;
    let Some(next) = &entry.next else {
        return Err(portcullis_certstore::Error::InvalidRequest(format!(
            "no key rollover of {name:?} is under way"
        )));
    };
    if next.chain.is_empty() {
        return Ok(RolloverProgress::NoCertificate);
    }
    // The names the next certificate is for are the MX names whose TLSA
    // records must show it.
    let probe = portcullis_certstore::Entry {
        chain: next.chain.clone(),
        ..entry.clone()
    };
    let hosts = dane_check::host_names(&probe);
    let mut missing = Vec::new();
    let mut ttl = 0u32;
    for host in &hosts {
        let check = dane_check::check_host(resolver, &entry, host, port).await;
        if check.shows_next_key() {
            ttl = ttl.max(check.ttl.unwrap_or(0));
        } else {
            missing.push(host.clone());
        }
    }
    if hosts.is_empty() {
        missing.push("(the next certificate names no host)".to_owned());
    }
    let seen = missing.is_empty();
    let Some(since) = store.note_next_tlsa(name, seen, now)? else {
        return Ok(RolloverProgress::NotPublished { missing });
    };
    let remaining = since.unix + 2 * i64::from(ttl) - now.unix;
    if remaining > 0 {
        return Ok(RolloverProgress::Waiting {
            since,
            ttl,
            remaining,
        });
    }
    store.complete_rollover(name)?;
    Ok(RolloverProgress::Switched { ttl })
}

pub(super) async fn watch_rollovers(
    store: Store,
    resolver: Resolver,
    every: Duration,
    port: u16,
    log: MailLog,
) {
    let mut last: std::collections::HashMap<String, RolloverProgress> = Default::default();
    loop {
        let names = store.names().unwrap_or_default();
        for name in names {
            let Ok(entry) = store.entry(&name) else {
                continue;
            };
            if entry.next.is_none() {
                last.remove(&name);
                continue;
            }
            let progress = rollover_step(&store, &resolver, &name, port, Timestamp::now()).await;
            match progress {
                Ok(RolloverProgress::Switched { ttl }) => {
                    let served = store
                        .entry(&name)
                        .map(|e| dane_check::tlsa_data(&e.key.spki_sha256()))
                        .unwrap_or_default();
                    log.line(format_args!(
                        "DANE: rollover of {name}: the next key's TLSA record was seen for twice its TTL ({ttl}s); now serving key {served}; remove the old key's record from the TLSA RRset"
                    ));
                    last.remove(&name);
                }
                Ok(p) => {
                    // One line per change of state, not per look.
                    let changed = match (last.get(&name), &p) {
                        (
                            Some(RolloverProgress::Waiting { since: a, .. }),
                            RolloverProgress::Waiting { since: b, .. },
                        ) => a != b,
                        (Some(old), new) => old != new,
                        (None, _) => true,
                    };
                    if changed {
                        log.line(format_args!("DANE: rollover of {name}: {}", describe(&p)));
                    }
                    last.insert(name, p);
                }
                Err(e) => log.warn(format_args!("DANE: rollover of {name}: {e}")),
            }
        }
        tokio::time::sleep(every).await;
    }
}

/// The operator's words for a rollover's state.
pub fn describe(p: &RolloverProgress) -> String {
    match p {
        RolloverProgress::NoCertificate => {
            "waiting for the next key's certificate (cert acme --next-key, or install-signed)"
                .into()
        }
        RolloverProgress::NotPublished { missing } => format!(
            "waiting for the next key's TLSA record (DNSSEC-secure) at {}",
            missing.join(", ")
        ),
        RolloverProgress::Waiting {
            since,
            ttl,
            remaining,
        } => format!(
            "the next key's TLSA record is published (seen since {since}, TTL {ttl}s); switching in {remaining}s"
        ),
        RolloverProgress::Switched { ttl } => {
            format!("switched to the next key after twice the TTL ({ttl}s)")
        }
    }
}
