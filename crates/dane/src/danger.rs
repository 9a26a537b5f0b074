//! Options that weaken a verifier. Each one is a deliberate policy choice
//! that the caller must be able to justify in its logs.

use crate::verifier::PeerVerifier;

/// Makes a failed check only recorded, not fatal: the handshake goes on and
/// [`PeerVerifier::outcome`] says what failed. This is opportunistic TLS
/// with verification attempted for reporting (SPEC §2 `preferred-verify`,
/// MTA-STS `testing`): the peer is encrypted to but not authenticated.
/// Handshake signatures are still enforced.
pub fn report_only(verifier: PeerVerifier) -> PeerVerifier {
    verifier.into_report_only()
}
