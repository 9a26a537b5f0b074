//! TLS session resumption for outbound connections to hops whose decision
//! demands a certificate check. rustls resumes a session only under the
//! very verifier instance that authenticated it in full, so the verifier
//! and client configuration of a hop are kept for reuse, per hop *and*
//! check (the hop plan's pool key: address, host, STARTTLS and
//! authentication demands, TLSA set and reference names included): a
//! session is never resumed under a different check. A verifier serves one
//! handshake at a time: it is checked out for a connection and returned
//! only after a TLS session it authenticated (or resumed) came up, so its
//! recorded outcome is that of the session being resumed. A resumed
//! handshake carries no certificate; the log then names the check of the
//! full handshake that created the session.
//!
//! Hops without a certificate check share one client configuration (the
//! context's plain connector), which resumes by server name on its own.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use portcullis_dane::PeerVerifier;

/// Hops remembered; past this the caches start over (a bound on memory).
const MAX_HOPS: usize = 10_000;

/// Idle verifier/configuration pairs kept per hop and check.
const IDLE_PER_HOP: usize = 4;

/// A verifier with the client configuration (and so the session cache)
/// built around it.
pub(crate) type Checked = (Arc<PeerVerifier>, Arc<rustls::ClientConfig>);

#[derive(Debug, Default)]
pub(crate) struct TlsSessions {
    hops: Mutex<HashMap<String, Hop>>,
}

#[derive(Debug, Default)]
struct Hop {
    idle: Vec<Checked>,
    /// How the last full handshake authenticated the server.
    authenticated: Option<String>,
}

impl TlsSessions {
    /// An idle verifier and configuration for the hop `key`, if one is kept.
    pub(crate) fn checkout(&self, key: &str) -> Option<Checked> {
        let mut hops = self.hops.lock().unwrap_or_else(|p| p.into_inner());
        hops.get_mut(key).and_then(|h| h.idle.pop())
    }

    /// Returns a pair after a TLS session it authenticated came up; `auth`
    /// is how a full handshake authenticated the server (`None` for a
    /// resumed one).
    pub(crate) fn checkin(&self, key: &str, pair: Checked, auth: Option<&str>) {
        let mut hops = self.hops.lock().unwrap_or_else(|p| p.into_inner());
        if hops.len() >= MAX_HOPS && !hops.contains_key(key) {
            hops.clear();
        }
        let hop = hops.entry(key.to_owned()).or_default();
        if let Some(auth) = auth {
            hop.authenticated = Some(auth.to_owned());
        }
        if hop.idle.len() < IDLE_PER_HOP {
            hop.idle.push(pair);
        }
    }

    /// How the session resumed on `key` was authenticated when it was new.
    pub(crate) fn authenticated(&self, key: &str) -> Option<String> {
        let hops = self.hops.lock().unwrap_or_else(|p| p.into_inner());
        hops.get(key).and_then(|h| h.authenticated.clone())
    }
}
