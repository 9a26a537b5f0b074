//! DNSSEC-validated lookups (placeholder while the module is written).
