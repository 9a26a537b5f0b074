//! Secrets in an exported configuration (SPEC §6 "export can mask or
//! encrypt secrets"). A secret is any value that grants access: the value
//! of a key named `token`, `password`, `passphrase`, `secret` or
//! `private-key` anywhere in the file (today: `[[admin.token]]` tokens;
//! sections added later are covered by the same rule).
//!
//! - **Masked**: the value becomes [`MASK`]. Such a file is refused on
//!   import, naming each masked value with its line.
//! - **Encrypted**: the value becomes `encrypted:v1:<salt>:<nonce>:<data>`
//!   (base64): a key derived from the passphrase with Argon2id (memory-hard;
//!   RFC 9106 parameters of the `argon2` crate's default: 19 MiB, 2 passes)
//!   and a fresh salt per value, XChaCha20-Poly1305 with the value's key
//!   path as associated data (a value moved to another key does not
//!   decrypt). The wrong passphrase fails authentication: nothing is
//!   imported.

use argon2::Argon2;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

use super::source::KeyPath;
use super::{ConfigReport, LoadedConfig};

/// What a masked secret reads in an exported file.
pub const MASK: &str = "*** masked by portcullis config export ***";

/// The start of an encrypted secret.
pub const ENCRYPTED: &str = "encrypted:v1:";

/// Key names whose values are secrets.
const SECRET_KEYS: [&str; 5] = ["token", "password", "passphrase", "secret", "private-key"];

/// How `config export` writes secrets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretHandling {
    /// As they are (admin tokens only, over the admin API).
    Plain,
    /// Replaced by [`MASK`].
    Mask,
}

fn is_secret(key: &str) -> bool {
    SECRET_KEYS.contains(&key)
}

/// Calls `f` with the path of every secret string value in `v`.
fn walk(
    v: &mut toml::Value,
    at: &KeyPath,
    f: &mut dyn FnMut(&KeyPath, &mut String) -> Result<(), String>,
) -> Result<(), String> {
    match v {
        toml::Value::Table(t) => {
            for (k, v) in t.iter_mut() {
                let here = at.key(k);
                match v {
                    toml::Value::String(s) if is_secret(k) => f(&here, s)?,
                    other => walk(other, &here, f)?,
                }
            }
        }
        toml::Value::Array(a) => {
            for (i, e) in a.iter_mut().enumerate() {
                walk(e, &at.index(i), f)?;
            }
        }
        _ => {}
    }
    Ok(())
}

fn header(how: &str) -> String {
    format!(
        "# Portcullis configuration exported {} UTC; secrets {how}.\n",
        crate::control::utc(crate::outbound::unix_now())
    )
}

/// The configuration as TOML, secrets as asked.
pub fn export(loaded: &LoadedConfig, handling: SecretHandling) -> Result<String, String> {
    let mut v = toml::Value::try_from(&loaded.config).map_err(|e| e.to_string())?;
    let how = match handling {
        SecretHandling::Plain => "in clear: keep this file private",
        SecretHandling::Mask => "masked (this file cannot be imported as it is)",
    };
    if handling == SecretHandling::Mask {
        walk(&mut v, &KeyPath::root(), &mut |_, s| {
            *s = MASK.to_owned();
            Ok(())
        })?;
    }
    let text = toml::to_string_pretty(&v).map_err(|e| e.to_string())?;
    Ok(header(how) + &text)
}

fn derive_key(passphrase: &str, salt: &[u8]) -> Result<[u8; 32], String> {
    let mut key = [0u8; 32];
    Argon2::default()
        .hash_password_into(passphrase.as_bytes(), salt, &mut key)
        .map_err(|e| format!("key derivation failed: {e}"))?;
    Ok(key)
}

fn random<const N: usize>() -> Result<[u8; N], String> {
    let mut b = [0u8; N];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut b)
        .map_err(|_| "the system's random number generator failed".to_owned())?;
    Ok(b)
}

/// Encrypts every secret of a plain exported file (`text`) under
/// `passphrase`; the rest of the file is unchanged in meaning.
pub fn encrypt(text: &str, passphrase: &str) -> Result<String, String> {
    if passphrase.chars().count() < 8 {
        return Err("the passphrase must have at least 8 characters".into());
    }
    let mut v: toml::Value = toml::from_str(text).map_err(|e| format!("not TOML: {e}"))?;
    walk(&mut v, &KeyPath::root(), &mut |path, s| {
        if s.starts_with(ENCRYPTED) {
            return Ok(());
        }
        if s == MASK {
            return Err(format!(
                "{path} is masked: export without --mask to encrypt it"
            ));
        }
        let salt = random::<16>()?;
        let nonce = random::<24>()?;
        let key = derive_key(passphrase, &salt)?;
        let aad = path.to_string();
        let sealed = XChaCha20Poly1305::new((&key).into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: s.as_bytes(),
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| format!("{path}: encryption failed"))?;
        *s = format!(
            "{ENCRYPTED}{}:{}:{}",
            B64.encode(salt),
            B64.encode(nonce),
            B64.encode(sealed)
        );
        Ok(())
    })?;
    let body = toml::to_string_pretty(&v).map_err(|e| e.to_string())?;
    Ok(header("encrypted with a passphrase (Argon2id, XChaCha20-Poly1305)") + &body)
}

/// Whether `text` holds encrypted secrets (so the passphrase is needed).
pub fn has_encrypted(text: &str) -> bool {
    text.contains(ENCRYPTED)
}

/// Decrypts every encrypted secret of `text`. A wrong passphrase (or a
/// changed value) is refused, naming the first value that did not
/// decrypt; nothing is returned half-decrypted.
pub fn decrypt(text: &str, passphrase: &str) -> Result<String, String> {
    let mut v: toml::Value = toml::from_str(text).map_err(|e| format!("not TOML: {e}"))?;
    walk(&mut v, &KeyPath::root(), &mut |path, s| {
        let Some(rest) = s.strip_prefix(ENCRYPTED) else {
            return Ok(());
        };
        let parts: Vec<&str> = rest.split(':').collect();
        let decoded: Vec<Vec<u8>> = parts
            .iter()
            .map(|p| B64.decode(p))
            .collect::<Result<_, _>>()
            .map_err(|_| format!("{path}: not a value written by `config export --encrypt`"))?;
        let [salt, nonce, sealed] = decoded.as_slice() else {
            return Err(format!(
                "{path}: not a value written by `config export --encrypt`"
            ));
        };
        if nonce.len() != 24 {
            return Err(format!(
                "{path}: not a value written by `config export --encrypt`"
            ));
        }
        let key = derive_key(passphrase, salt)?;
        let aad = path.to_string();
        let plain = XChaCha20Poly1305::new((&key).into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: sealed,
                    aad: aad.as_bytes(),
                },
            )
            .map_err(|_| {
                format!(
                    "{path} does not decrypt: wrong passphrase, or the value was changed after export; nothing was imported"
                )
            })?;
        *s =
            String::from_utf8(plain).map_err(|_| format!("{path}: decrypted value is not text"))?;
        Ok(())
    })?;
    toml::to_string_pretty(&v).map_err(|e| e.to_string())
}

impl LoadedConfig {
    /// Refuses a configuration with masked or still-encrypted secrets,
    /// naming each (`FILE:LINE:COL: admin.token[0].token: …`).
    pub fn check_secrets_present(&self) -> Result<(), ConfigReport> {
        let mut v = toml::Value::try_from(&self.config).map_err(|e| {
            ConfigReport::single(
                &self.source_name,
                "",
                format!("cannot read the values: {e}"),
            )
        })?;
        let mut problems = Vec::new();
        let _ = walk(&mut v, &KeyPath::root(), &mut |path, s| {
            if s == MASK {
                problems.push((
                    path.clone(),
                    "this secret was masked by `config export --mask`; put the real value back, or export with --encrypt to carry secrets".to_owned(),
                ));
            } else if s.starts_with(ENCRYPTED) {
                problems.push((
                    path.clone(),
                    "this secret is encrypted; import the file with its passphrase (`portcullis ctl config import FILE --passphrase-file PASSFILE`)".to_owned(),
                ));
            }
            Ok(())
        });
        if problems.is_empty() {
            Ok(())
        } else {
            Err(self.report(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LoadedConfig {
        let mut c = super::super::Config::builtin_default();
        if let Some(a) = c.admin.as_mut() {
            a.tokens.push(super::super::schema::AdminTokenConfig {
                name: "mon".into(),
                role: super::super::schema::Role::Read,
                token: "s3cret-s3cret-s3cret-s3cret-s3cret!".into(),
            });
        }
        let text = toml::to_string(&c).unwrap();
        LoadedConfig::parse("p.toml", &text).unwrap()
    }

    #[test]
    fn masked_exports_are_refused_with_the_line_of_each_secret() {
        let plain = export(&sample(), SecretHandling::Plain).unwrap();
        assert!(plain.contains("s3cret-s3cret"));
        let masked = export(&sample(), SecretHandling::Mask).unwrap();
        assert!(!masked.contains("s3cret") && masked.contains(MASK));
        let back = LoadedConfig::parse("m.toml", &masked).unwrap();
        let e = back.check_secrets_present().unwrap_err().to_string();
        let line = masked.lines().position(|l| l.contains(MASK)).unwrap() + 1;
        assert!(
            e.starts_with(&format!("m.toml:{line}:"))
                && e.contains("admin.token[0].token: this secret was masked"),
            "{e}"
        );
    }

    #[test]
    fn encryption_round_trips_and_a_wrong_passphrase_is_refused() {
        let plain = export(&sample(), SecretHandling::Plain).unwrap();
        let sealed = encrypt(&plain, "correct horse").unwrap();
        assert!(!sealed.contains("s3cret") && has_encrypted(&sealed));
        let refused = LoadedConfig::parse("e.toml", &sealed).unwrap();
        assert!(refused.check_secrets_present().is_err());
        let opened = decrypt(&sealed, "correct horse").unwrap();
        let a = LoadedConfig::parse("a", &opened).unwrap().config;
        let b = LoadedConfig::parse("b", &plain).unwrap().config;
        assert_eq!(a, b);
        let e = decrypt(&sealed, "wrong horse!").unwrap_err();
        assert!(
            e.contains("admin.token[0].token does not decrypt: wrong passphrase"),
            "{e}"
        );
    }
}
