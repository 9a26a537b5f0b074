//! Who is asking: the API token from `Authorization: Bearer …` (or, for the
//! status page in a browser, the `portcullis_token` cookie), its role, and
//! the limit on failed authentications: after [`MAX_FAILURES`] within
//! [`WINDOW`] from one address, that address gets `429` until the window
//! ends. Every failure is logged with the client's address (the first
//! few per window; then one line says further ones are not logged).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::HeaderMap;

use super::tokens::{Caller, Role, TokenStore};
use crate::maillog::MailLog;

/// Failed authentications allowed per address and window.
pub(crate) const MAX_FAILURES: u32 = 10;
/// The window.
pub(crate) const WINDOW: Duration = Duration::from_secs(60);
/// The cookie the status page uses.
pub(crate) const COOKIE: &str = "portcullis_token";

/// Why a request was not let through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No token, or one nobody has.
    Unauthenticated(String),
    /// A valid token whose role is too low.
    Forbidden(String),
    /// Too many failures from this address.
    Limited { retry_after: u64 },
}

/// Failed authentications per client address.
#[derive(Debug, Default)]
pub(crate) struct FailureLimit {
    failures: Mutex<HashMap<IpAddr, (u32, Instant)>>,
}

impl FailureLimit {
    fn limited(&self, ip: IpAddr, now: Instant) -> Option<u64> {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        map.retain(|_, (_, start)| now.duration_since(*start) < WINDOW);
        match map.get(&ip) {
            Some((n, start)) if *n >= MAX_FAILURES => Some(
                WINDOW
                    .saturating_sub(now.duration_since(*start))
                    .as_secs()
                    .max(1),
            ),
            _ => None,
        }
    }

    /// Counts a failure; returns the count in this window.
    fn fail(&self, ip: IpAddr, now: Instant) -> u32 {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let e = map.entry(ip).or_insert((0, now));
        e.0 += 1;
        e.0
    }
}

/// The token a request carries.
pub(crate) fn token_of(headers: &HeaderMap) -> Option<String> {
    if let Some(v) = headers.get(axum::http::header::AUTHORIZATION) {
        let v = v.to_str().ok()?;
        let (scheme, token) = v.split_once(' ')?;
        return scheme
            .eq_ignore_ascii_case("bearer")
            .then(|| token.trim().to_owned());
    }
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Checks the token of a request for `role`.
pub(crate) fn authorize(
    tokens: &TokenStore,
    limit: &FailureLimit,
    log: &MailLog,
    ip: IpAddr,
    token: Option<&str>,
    role: Role,
    what: &str,
) -> Result<Caller, Denied> {
    let now = Instant::now();
    if let Some(retry_after) = limit.limited(ip, now) {
        return Err(Denied::Limited { retry_after });
    }
    let caller = match token {
        Some(t) => tokens.check(t),
        None => None,
    };
    let Some(caller) = caller else {
        let n = limit.fail(ip, now);
        let why = if token.is_some() {
            "unknown token"
        } else {
            "no token"
        };
        if n <= 3 {
            log.warn(format_args!(
                "admin: authentication failed from {ip} ({why}) for {what} ({n} in the last {}s)",
                WINDOW.as_secs()
            ));
        } else if n == MAX_FAILURES {
            log.warn(format_args!(
                "admin: {n} failed authentications from {ip} within {}s: refusing it with 429 until the window ends (further failures not logged)",
                WINDOW.as_secs()
            ));
        }
        return Err(Denied::Unauthenticated(format!(
            "{why}: send an API token as `Authorization: Bearer TOKEN` (make one with `portcullis ctl token create`)"
        )));
    };
    if caller.role < role {
        return Err(Denied::Forbidden(format!(
            "token {:?} is {}-only; {what} needs an {} token",
            caller.name,
            caller.role.as_str(),
            role.as_str()
        )));
    }
    Ok(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_limited_per_address_and_window() {
        let l = FailureLimit::default();
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let b: IpAddr = "127.0.0.2".parse().unwrap();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert!(l.limited(a, t0).is_none());
            l.fail(a, t0);
        }
        assert!(l.limited(a, t0).is_some());
        assert!(l.limited(b, t0).is_none());
        assert!(l.limited(a, t0 + WINDOW).is_none());
    }

    #[test]
    fn tokens_come_from_the_header_or_the_cookie() {
        let mut h = HeaderMap::new();
        h.insert("cookie", "a=b; portcullis_token=pct_x".parse().unwrap());
        assert_eq!(token_of(&h).as_deref(), Some("pct_x"));
        h.insert("authorization", "Bearer pct_y".parse().unwrap());
        assert_eq!(token_of(&h).as_deref(), Some("pct_y"));
        h.insert("authorization", "Basic abc".parse().unwrap());
        assert_eq!(token_of(&h), None);
    }
}
