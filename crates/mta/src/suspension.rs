//! What the operator suspended (SPEC §6 "Suspend / resume"): listeners by
//! name, and delivery for a domain (`example.com`), the domains below one
//! (`.example.com`) or `ALL`. The set survives a restart: it is kept in
//! `suspended.json` in the data directory, rewritten atomically (temporary
//! file, fsync, rename, fsync of the directory) on every change, and read
//! when the engine starts.

use std::collections::BTreeMap;
use std::path::Path;

use portcullis_policy::DomainName;

use crate::durable::write_atomically;
use serde::{Deserialize, Serialize};

/// The file in the data directory.
pub const FILE_NAME: &str = "suspended.json";

/// Which deliveries a suspension stops.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum DeliveryTarget {
    /// Every destination.
    All,
    /// This domain only.
    Domain(DomainName),
    /// Every domain below this one (not the domain itself).
    Below(DomainName),
}

impl DeliveryTarget {
    /// `ALL`, `example.com` or `.example.com`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let t = text.trim().trim_end_matches('.');
        if t.eq_ignore_ascii_case("all") {
            return Ok(DeliveryTarget::All);
        }
        let (below, name) = match t.strip_prefix('.') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let name = DomainName::parse(name).map_err(|e| {
            format!("{text:?} is not ALL, a domain (example.com) or a subdomain pattern (.example.com): {e}")
        })?;
        Ok(if below {
            DeliveryTarget::Below(name)
        } else {
            DeliveryTarget::Domain(name)
        })
    }

    /// Whether delivery to `domain` (lower case) is stopped by this target.
    pub fn covers(&self, domain: &str) -> bool {
        match self {
            DeliveryTarget::All => true,
            DeliveryTarget::Domain(d) => d.as_str().eq_ignore_ascii_case(domain),
            DeliveryTarget::Below(d) => domain
                .len()
                .checked_sub(d.as_str().len() + 1)
                .and_then(|cut| domain.get(cut..))
                .and_then(|tail| tail.strip_prefix('.'))
                .is_some_and(|tail| tail.eq_ignore_ascii_case(d.as_str())),
        }
    }
}

impl std::fmt::Display for DeliveryTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeliveryTarget::All => f.write_str("ALL"),
            DeliveryTarget::Domain(d) => write!(f, "{d}"),
            DeliveryTarget::Below(d) => write!(f, ".{d}"),
        }
    }
}

/// The delivery suspensions in force, as the scheduler reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliverySuspensions {
    targets: Vec<DeliveryTarget>,
}

impl DeliverySuspensions {
    /// From the targets.
    pub fn new(targets: Vec<DeliveryTarget>) -> Self {
        DeliverySuspensions { targets }
    }

    /// Whether delivery to `domain` is suspended.
    pub fn covers(&self, domain: &str) -> bool {
        self.targets.iter().any(|t| t.covers(domain))
    }

    /// True when nothing is suspended (the common case: one branch).
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// Everything suspended, with the time (Unix seconds) each began.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suspended {
    /// Listener names.
    #[serde(default)]
    pub listeners: BTreeMap<String, u64>,
    /// Delivery targets as written (`ALL`, `example.com`, `.example.com`).
    #[serde(default)]
    pub delivery: BTreeMap<String, u64>,
    /// Delivery targets suspended for the whole cluster, as this node last
    /// read them from the cluster database (kept here so that a node that
    /// starts while the database is away still applies them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub cluster: BTreeMap<String, u64>,
}

impl Suspended {
    /// Reads the file of `data_dir`; no file means nothing is suspended.
    pub fn load(data_dir: &Path) -> Result<Suspended, String> {
        let path = data_dir.join(FILE_NAME);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Suspended::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let s: Suspended = serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{} is damaged ({e}); fix or remove it (it lists the suspended listeners and deliveries)",
                path.display()
            )
        })?;
        for target in s.delivery.keys().chain(s.cluster.keys()) {
            DeliveryTarget::parse(target).map_err(|e| format!("{}: {e}", path.display()))?;
        }
        Ok(s)
    }

    /// Writes the file of `data_dir` atomically.
    pub fn save(&self, data_dir: &Path) -> Result<(), String> {
        let path = data_dir.join(FILE_NAME);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        write_atomically(&path, &bytes, 0o644)
            .map_err(|e| format!("cannot save {}: {e}", path.display()))
    }

    /// The delivery suspensions for the scheduler: this node's and the
    /// cluster's.
    pub fn delivery_suspensions(&self) -> DeliverySuspensions {
        DeliverySuspensions::new(
            self.delivery
                .keys()
                .chain(self.cluster.keys())
                .filter_map(|t| DeliveryTarget::parse(t).ok())
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_and_match() {
        let all = DeliveryTarget::parse("ALL").unwrap();
        let one = DeliveryTarget::parse("Example.COM.").unwrap();
        let below = DeliveryTarget::parse(".example.com").unwrap();
        assert_eq!(one.to_string(), "example.com");
        assert_eq!(below.to_string(), ".example.com");
        assert!(all.covers("anything.example"));
        assert!(one.covers("example.com") && !one.covers("a.example.com"));
        assert!(below.covers("a.example.com") && below.covers("b.a.example.com"));
        assert!(!below.covers("example.com") && !below.covers("badexample.com"));
        assert!(DeliveryTarget::parse("bad..name").is_err());
    }

    #[test]
    fn the_file_round_trips_and_damage_is_named() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Suspended::load(dir.path()).unwrap(), Suspended::default());
        let mut s = Suspended::default();
        s.listeners.insert("inbound".into(), 1);
        s.delivery.insert(".example.com".into(), 2);
        s.save(dir.path()).unwrap();
        let back = Suspended::load(dir.path()).unwrap();
        assert_eq!(back, s);
        assert!(back.delivery_suspensions().covers("mx.example.com"));
        // Cluster-wide ones are kept and stop delivery like the node's own.
        s.cluster.insert("example.net".into(), 3);
        s.save(dir.path()).unwrap();
        let back = Suspended::load(dir.path()).unwrap();
        assert_eq!(back, s);
        assert!(back.delivery_suspensions().covers("example.net"));
        std::fs::write(dir.path().join(FILE_NAME), b"{oops").unwrap();
        let e = Suspended::load(dir.path()).unwrap_err();
        assert!(e.contains("suspended.json is damaged"), "{e}");
    }
}
