//! `<data-dir>/admin/endpoint.json`: where the running gateway's admin
//! listener is (its port may have been chosen at start) and the SHA-256 of
//! the certificate it presents, so that `portcullis ctl` on the same host
//! connects with no set-up and pins exactly that certificate (the
//! demonstration certificate verifies against no CA). Written at start and
//! after a reload that changes the certificate; removed at shutdown.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::durable::write_atomically;

/// The file name under `<data-dir>/admin`.
pub const ENDPOINT_FILE: &str = "endpoint.json";

/// Where `ctl` finds the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// `https://127.0.0.1:8443`.
    pub url: String,
    /// Hex SHA-256 of the presented leaf certificate (DER).
    pub certificate_sha256: String,
}

/// The path of the file in `data_dir`.
pub fn path(data_dir: &Path) -> PathBuf {
    data_dir.join("admin").join(ENDPOINT_FILE)
}

/// Hex SHA-256 of a certificate.
pub fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Endpoint {
    /// Writes the file.
    pub fn save(&self, data_dir: &Path) -> Result<(), String> {
        let p = path(data_dir);
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| e.to_string())?;
        write_atomically(&p, &bytes, 0o600)
            .map_err(|e| format!("cannot write {}: {e}", p.display()))
    }

    /// Reads the file of a running gateway.
    pub fn load(data_dir: &Path) -> Result<Endpoint, String> {
        let p = path(data_dir);
        let bytes = std::fs::read(&p).map_err(|e| {
            format!(
                "cannot read {} ({e}): is the gateway running with [admin] enabled and this data directory?",
                p.display()
            )
        })?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{} is damaged: {e}", p.display()))
    }
}
