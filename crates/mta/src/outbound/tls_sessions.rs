//! TLS session resumption for outbound connections: one small session
//! cache per next hop *and* certificate check (the hop plan's pool key:
//! address, host, STARTTLS and authentication demands, TLSA set and
//! reference names included), so a session is only ever resumed under the
//! very check that authenticated it in full. A resumed handshake carries no
//! certificate; the log then names the check of the full handshake that
//! created the session.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use rustls::client::{ClientSessionMemoryCache, Resumption};

/// Hops remembered; past this the caches start over (a bound on memory).
const MAX_HOPS: usize = 10_000;

/// Sessions kept per hop and check.
const SESSIONS_PER_HOP: usize = 4;

#[derive(Debug, Default)]
pub(crate) struct TlsSessions {
    hops: Mutex<HashMap<String, Hop>>,
}

#[derive(Debug)]
struct Hop {
    cache: Arc<ClientSessionMemoryCache>,
    /// How the last full handshake authenticated the server.
    authenticated: Option<String>,
}

impl TlsSessions {
    /// The resumption setting for a connection to the hop `key`.
    pub(crate) fn resumption(&self, key: &str) -> Resumption {
        let mut hops = self.hops.lock().unwrap_or_else(|p| p.into_inner());
        if hops.len() >= MAX_HOPS && !hops.contains_key(key) {
            hops.clear();
        }
        let hop = hops.entry(key.to_owned()).or_insert_with(|| Hop {
            cache: Arc::new(ClientSessionMemoryCache::new(SESSIONS_PER_HOP)),
            authenticated: None,
        });
        Resumption::store(hop.cache.clone())
    }

    /// A full handshake to `key` authenticated the server as `auth`.
    pub(crate) fn full_handshake(&self, key: &str, auth: &str) {
        let mut hops = self.hops.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(hop) = hops.get_mut(key) {
            hop.authenticated = Some(auth.to_owned());
        }
    }

    /// How the session resumed on `key` was authenticated when it was new.
    pub(crate) fn authenticated(&self, key: &str) -> Option<String> {
        let hops = self.hops.lock().unwrap_or_else(|p| p.into_inner());
        hops.get(key).and_then(|h| h.authenticated.clone())
    }
}
