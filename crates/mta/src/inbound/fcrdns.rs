//! Whether a listener needs the forward-confirmed reverse DNS name of its
//! clients: only when its HAT has sender groups written as host names or
//! domain suffixes. The lookup itself (PTR names, kept only if one of their
//! A/AAAA records is the client's address) is the gateway resolver's job
//! ([`crate::dns::Resolver::forward_confirmed_name`]), with the DNS timeout
//! as the deadline; a failed lookup means "no name", so the client matches
//! only address-based groups.

use portcullis_policy::{Hat, SenderPattern};

/// Whether any sender group needs the client's name.
pub(crate) fn needs_names(hat: &Hat) -> bool {
    hat.groups().iter().any(|g| {
        g.patterns
            .iter()
            .any(|p| matches!(p, SenderPattern::Host(_) | SenderPattern::Suffix(_)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_policy::HatConfig;

    #[test]
    fn only_name_patterns_need_a_lookup() {
        let hat = |m: &str| {
            let cfg: HatConfig = toml::from_str(&format!(
                "[[sender-group]]\nname = \"G\"\nmatch = [{m}]\npolicy = \"P\"\n[policy.P]\naction = \"accept\"\n"
            ))
            .unwrap();
            Hat::from_config(&cfg, "t").unwrap()
        };
        assert!(!needs_names(&hat("\"10.0.0.0/8\", \"ALL\"")));
        assert!(needs_names(&hat("\"mail.example.com\"")));
        assert!(needs_names(&hat("\".example.com\"")));
    }
}
