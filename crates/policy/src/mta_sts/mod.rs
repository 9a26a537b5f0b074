//! MTA-STS (RFC 8461) without the network: the `_mta-sts` TXT record, the
//! policy file, `mx` pattern matching and cache semantics. The gateway does
//! the DNS lookup and the HTTPS fetch and feeds the results in; the
//! decision function reads the resulting [`MtaStsFacts`].

mod cache;
mod facts;
mod policy;
mod txt;

pub use cache::{CachedPolicy, RefreshPlan, StsCache};
pub use facts::{MtaStsFacts, StsFailure};
pub use policy::{MAX_MAX_AGE, MAX_POLICY_BYTES, MxPattern, StsMode, StsPolicy};
pub use txt::StsTxtRecord;
