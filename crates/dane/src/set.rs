//! A TLSA RRset and which of its records count, given the options: unknown
//! values, bad digest lengths, PKIX usages when SMTP rules apply, and SHA-256
//! records superseded by SHA-512 ones (digest agility, RFC 7671 §9).

use crate::tlsa::{MatchingType, TlsaRecord, Unusable, Usage};

/// The TLSA records published at one name (order as received).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsaSet {
    records: Vec<TlsaRecord>,
}

impl TlsaSet {
    /// Wraps records; nothing is dropped, unusable records stay visible.
    pub fn new(records: Vec<TlsaRecord>) -> Self {
        Self { records }
    }

    /// All records, usable or not.
    pub fn records(&self) -> &[TlsaRecord] {
        &self.records
    }

    /// Whether the RRset is empty (no DANE at all, as opposed to unusable).
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Each record paired with why it is unusable under these rules, or
    /// `None` when it takes part in matching.
    pub fn classify(&self, pkix_enabled: bool) -> Vec<(&TlsaRecord, Option<Unusable>)> {
        let base: Vec<Option<Unusable>> = self
            .records
            .iter()
            .map(|r| {
                r.intrinsic_unusable().or(match (r.usage(), pkix_enabled) {
                    (Usage::PkixTa | Usage::PkixEe, false) => Some(Unusable::PkixUsageDisabled),
                    _ => None,
                })
            })
            .collect();
        self.records
            .iter()
            .zip(base.iter())
            .map(|(r, why)| {
                if why.is_none() && r.matching() == MatchingType::Sha256 {
                    let stronger_exists = self.records.iter().zip(base.iter()).any(|(o, w)| {
                        w.is_none()
                            && o.usage() == r.usage()
                            && o.selector() == r.selector()
                            && o.matching() == MatchingType::Sha512
                    });
                    if stronger_exists {
                        return (r, Some(Unusable::WeakerDigest));
                    }
                }
                (r, *why)
            })
            .collect()
    }

    /// The records that take part in matching.
    pub fn usable(&self, pkix_enabled: bool) -> Vec<&TlsaRecord> {
        self.classify(pkix_enabled)
            .into_iter()
            .filter_map(|(r, why)| why.is_none().then_some(r))
            .collect()
    }
}

impl FromIterator<TlsaRecord> for TlsaSet {
    fn from_iter<T: IntoIterator<Item = TlsaRecord>>(iter: T) -> Self {
        Self::new(iter.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(s: &str) -> TlsaRecord {
        s.parse().unwrap()
    }

    #[test]
    fn digest_agility_prefers_sha512_per_usage_and_selector() {
        let h256 = "11".repeat(32);
        let h512 = "22".repeat(64);
        let set = TlsaSet::new(vec![
            rec(&format!("3 1 1 {h256}")),
            rec(&format!("3 1 2 {h512}")),
            rec(&format!("3 0 1 {h256}")),
            rec(&format!("2 1 1 {h256}")),
        ]);
        let why: Vec<_> = set.classify(false).into_iter().map(|(_, w)| w).collect();
        assert_eq!(why, vec![Some(Unusable::WeakerDigest), None, None, None]);
        // A malformed SHA-512 record does not displace a good SHA-256 one.
        let set = TlsaSet::new(vec![rec(&format!("3 1 1 {h256}")), rec("3 1 2 00")]);
        assert_eq!(set.usable(false).len(), 1);
    }

    #[test]
    fn pkix_usages_need_the_option() {
        let set = TlsaSet::new(vec![rec(&format!("1 1 1 {}", "aa".repeat(32)))]);
        assert!(set.usable(false).is_empty());
        assert_eq!(set.usable(true).len(), 1);
    }
}
