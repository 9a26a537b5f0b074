//! API tokens: who may use the admin interface, and for what ([`Role`]).
//!
//! Tokens made with `portcullis ctl token create` are kept in
//! `<data-dir>/admin/tokens.json` (owner-only) as SHA-256 hashes: the file
//! grants nothing to whoever reads it. A token is 32 random bytes, so a
//! plain hash is enough (no password-style KDF: there is nothing to guess).
//! At first start, when there is no token at all, one admin token is made
//! and written to `<data-dir>/admin/ctl-token` (owner-only), which
//! `portcullis ctl` reads: the local operator needs no set-up. Tokens given
//! in the configuration (`[[admin.token]]`) are hashed when loaded and
//! replaced at each reload.

use std::path::{Path, PathBuf};
use std::sync::RwLock;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use crate::config::schema::Role;
use crate::durable::write_atomically;

/// The token file `portcullis ctl` reads by default.
pub const CTL_TOKEN_FILE: &str = "ctl-token";
/// The hashed tokens.
pub const TOKENS_FILE: &str = "tokens.json";
/// The name of the token made at first start.
pub const FIRST_TOKEN_NAME: &str = "local-admin";

/// A token from the configuration file, hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigToken {
    pub name: String,
    pub role: Role,
    pub sha256: [u8; 32],
}

impl ConfigToken {
    /// Hashes a token given in the configuration.
    pub fn new(name: &str, role: Role, token: &str) -> Self {
        ConfigToken {
            name: name.to_owned(),
            role,
            sha256: hash(token),
        }
    }
}

/// One stored token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Stored {
    name: String,
    role: Role,
    /// Hex SHA-256 of the token.
    sha256: String,
    /// Unix seconds.
    created: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    tokens: Vec<Stored>,
}

/// A token as `ctl token list` shows it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenInfo {
    pub name: String,
    pub role: Role,
    /// Unix seconds; 0 for tokens from the configuration file.
    pub created: u64,
    /// `data-dir` (made with `ctl token create`) or `config`.
    pub source: String,
}

/// Who a valid token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub name: String,
    pub role: Role,
}

/// Every token the admin interface accepts.
#[derive(Debug)]
pub struct TokenStore {
    dir: PathBuf,
    stored: RwLock<Vec<Stored>>,
    config: RwLock<Vec<ConfigToken>>,
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.trim().as_bytes()).into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares without stopping at the first difference.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A new random token: `pct_` and 32 random bytes, base64url.
pub fn new_token() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut bytes)
        .map_err(|_| "the system's random number generator failed".to_owned())?;
    Ok(format!(
        "pct_{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    ))
}

fn unix_now() -> u64 {
    crate::outbound::unix_now()
}

impl TokenStore {
    /// Opens `<data-dir>/admin`, making the first admin token when there is
    /// none at all (neither stored nor in `config`). Returns the store and,
    /// when it made one, where the first token was written.
    pub fn open(
        data_dir: &Path,
        config: Vec<ConfigToken>,
    ) -> Result<(TokenStore, Option<PathBuf>), String> {
        let dir = data_dir.join("admin");
        create_private_dir(&dir)?;
        let path = dir.join(TOKENS_FILE);
        let stored = match std::fs::read(&path) {
            Ok(bytes) => {
                let f: File = serde_json::from_slice(&bytes).map_err(|e| {
                    format!(
                        "{} is damaged ({e}); move it away to start with a new first token",
                        path.display()
                    )
                })?;
                f.tokens
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let store = TokenStore {
            dir,
            stored: RwLock::new(stored),
            config: RwLock::new(config),
        };
        let mut made = None;
        let empty = store.read_stored().is_empty();
        if empty && !path.exists() {
            let token = new_token()?;
            store.add(FIRST_TOKEN_NAME, Role::Admin, &token)?;
            let file = store.dir.join(CTL_TOKEN_FILE);
            write_atomically(&file, format!("{token}\n").as_bytes(), 0o600)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
            made = Some(file);
        }
        Ok((store, made))
    }

    fn read_stored(&self) -> Vec<Stored> {
        self.stored
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Who `token` belongs to, if anyone.
    pub fn check(&self, token: &str) -> Option<Caller> {
        let h = hash(token);
        let hx = hex(&h);
        let mut found = None;
        for t in self.config.read().unwrap_or_else(|p| p.into_inner()).iter() {
            if same(&t.sha256, &h) {
                found = Some(Caller {
                    name: t.name.clone(),
                    role: t.role,
                });
            }
        }
        for t in self.stored.read().unwrap_or_else(|p| p.into_inner()).iter() {
            if same(t.sha256.as_bytes(), hx.as_bytes()) {
                found = Some(Caller {
                    name: t.name.clone(),
                    role: t.role,
                });
            }
        }
        found
    }

    /// Makes a token; it is shown once and only its hash is kept.
    pub fn create(&self, name: &str, role: Role) -> Result<String, String> {
        let name = name.trim();
        if name.is_empty() || name.len() > 64 || name.chars().any(|c| c.is_control()) {
            return Err(format!(
                "{name:?} is not a token name (1 to 64 printable characters)"
            ));
        }
        let token = new_token()?;
        self.add(name, role, &token)?;
        Ok(token)
    }

    fn add(&self, name: &str, role: Role, token: &str) -> Result<(), String> {
        let mut stored = self.stored.write().unwrap_or_else(|p| p.into_inner());
        let taken = stored.iter().any(|t| t.name == name)
            || self
                .config
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|t| t.name == name);
        if taken {
            return Err(format!("there is already a token named {name:?}"));
        }
        let mut next = stored.clone();
        next.push(Stored {
            name: name.to_owned(),
            role,
            sha256: hex(&hash(token)),
            created: unix_now(),
        });
        self.save(&next)?;
        *stored = next;
        Ok(())
    }

    /// Removes the stored token `name` (tokens from the configuration file
    /// are removed by editing it).
    pub fn revoke(&self, name: &str) -> Result<String, String> {
        let mut stored = self.stored.write().unwrap_or_else(|p| p.into_inner());
        if !stored.iter().any(|t| t.name == name) {
            let in_config = self
                .config
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .any(|t| t.name == name);
            return Err(if in_config {
                format!(
                    "token {name:?} is given in the configuration file ([[admin.token]]); remove it there and reload"
                )
            } else {
                format!("there is no token named {name:?}")
            });
        }
        let next: Vec<Stored> = stored.iter().filter(|t| t.name != name).cloned().collect();
        self.save(&next)?;
        *stored = next;
        Ok(format!("token {name:?} revoked"))
    }

    /// Every token, without the tokens themselves.
    pub fn list(&self) -> Vec<TokenInfo> {
        let mut out: Vec<TokenInfo> = self
            .read_stored()
            .into_iter()
            .map(|t| TokenInfo {
                name: t.name,
                role: t.role,
                created: t.created,
                source: "data-dir".into(),
            })
            .collect();
        out.extend(
            self.config
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .iter()
                .map(|t| TokenInfo {
                    name: t.name.clone(),
                    role: t.role,
                    created: 0,
                    source: "config".into(),
                }),
        );
        out
    }

    /// The tokens of a reloaded configuration.
    pub fn set_config_tokens(&self, tokens: Vec<ConfigToken>) {
        *self.config.write().unwrap_or_else(|p| p.into_inner()) = tokens;
    }

    fn save(&self, tokens: &[Stored]) -> Result<(), String> {
        let path = self.dir.join(TOKENS_FILE);
        let bytes = serde_json::to_vec_pretty(&File {
            tokens: tokens.to_vec(),
        })
        .map_err(|e| e.to_string())?;
        write_atomically(&path, &bytes, 0o600)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))
    }
}

/// Creates `dir` owner-only (or tightens it).
pub(crate) fn create_private_dir(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(|e| format!("cannot restrict {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn first_start_writes_an_owner_only_admin_token_and_keeps_only_hashes() {
        let dir = tempfile::tempdir().unwrap();
        let (store, made) = TokenStore::open(dir.path(), Vec::new()).unwrap();
        let file = made.unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let token = std::fs::read_to_string(&file).unwrap();
        assert!(token.starts_with("pct_"));
        assert_eq!(store.check(&token).unwrap().role, Role::Admin);
        assert!(store.check("pct_wrong").is_none());
        let on_disk = std::fs::read_to_string(dir.path().join("admin/tokens.json")).unwrap();
        assert!(!on_disk.contains(token.trim()), "only the hash is stored");
        // A second start makes no new token.
        let (again, made) = TokenStore::open(dir.path(), Vec::new()).unwrap();
        assert!(made.is_none());
        assert!(again.check(&token).is_some());
    }

    #[test]
    fn create_list_revoke_and_config_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = vec![ConfigToken::new("mon", Role::Read, "x".repeat(40).as_str())];
        let (store, made) = TokenStore::open(dir.path(), cfg).unwrap();
        assert!(made.is_some());
        let t = store.create("ci", Role::Read).unwrap();
        assert_eq!(store.check(&t).unwrap().name, "ci");
        assert_eq!(store.check(&"x".repeat(40)).unwrap().role, Role::Read);
        assert!(store.create("mon", Role::Admin).is_err());
        assert_eq!(store.list().len(), 3);
        assert!(
            store
                .revoke("mon")
                .unwrap_err()
                .contains("configuration file")
        );
        store.revoke("ci").unwrap();
        assert!(store.check(&t).is_none());
        store.set_config_tokens(Vec::new());
        assert!(store.check(&"x".repeat(40)).is_none());
    }
}
