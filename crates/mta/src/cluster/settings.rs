//! `[cluster]` checked and made ready to connect: the parsed database
//! address (shown without its password), the TLS client, the intervals.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use tokio_postgres::config::SslMode;

use super::seconds;
use crate::config::{ClusterConfig, DatabaseTls};

/// A node's cluster link, ready to use.
#[derive(Clone)]
pub struct ClusterSettings {
    /// This node's name.
    pub node: String,
    /// Where the database is.
    pub database: tokio_postgres::Config,
    /// The database for messages: `user@host:port/name`, no password.
    pub database_shown: String,
    /// TLS to the database; `None` with `database-tls = "off"`.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub poll: Duration,
    pub heartbeat: Duration,
    pub timeout: Duration,
    /// The node's data directory (its copy of the shared configuration).
    pub data_dir: PathBuf,
}

impl std::fmt::Debug for ClusterSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterSettings")
            .field("node", &self.node)
            .field("database", &self.database_shown)
            .field("tls", &self.tls.is_some())
            .finish_non_exhaustive()
    }
}

impl ClusterSettings {
    /// From `[cluster]` of a node whose data directory is `data_dir`: the
    /// database's certificate is checked against the CA lists enabled in
    /// the node's certificate store.
    pub fn for_node(config: &ClusterConfig, data_dir: &Path) -> Result<ClusterSettings, String> {
        let roots = match config.database_tls {
            DatabaseTls::Off => RootCertStore::empty(),
            DatabaseTls::Required => portcullis_certstore::Store::open(data_dir.join("certs"))
                .and_then(|s| s.root_store())
                .map_err(|e| {
                    format!("cluster.database-tls: the CA lists to check the database with: {e}")
                })?,
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        ClusterSettings::new(config, data_dir.to_owned(), Arc::new(roots), provider)
    }

    /// From `[cluster]`, checking the database with `roots`.
    pub fn new(
        config: &ClusterConfig,
        data_dir: PathBuf,
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<ClusterSettings, String> {
        check_node_name(&config.node).map_err(|e| format!("cluster.node: {e}"))?;
        let mut database =
            parse_database(&config.database).map_err(|e| format!("cluster.database: {e}"))?;
        let timeout = seconds(config.timeout_seconds);
        database.connect_timeout(timeout);
        database.application_name(format!("portcullis {}", config.node));
        let tls = match config.database_tls {
            DatabaseTls::Off => {
                database.ssl_mode(SslMode::Disable);
                None
            }
            DatabaseTls::Required => {
                database.ssl_mode(SslMode::Require);
                let tls = rustls::ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(|e| format!("cluster.database-tls: {e}"))?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(Arc::new(tls))
            }
        };
        Ok(ClusterSettings {
            node: config.node.clone(),
            database_shown: shown(&database),
            database,
            tls,
            poll: seconds(config.poll_seconds),
            heartbeat: seconds(config.heartbeat_seconds),
            timeout,
            data_dir,
        })
    }
}

/// Parses `cluster.database`; the error never repeats the password.
pub fn parse_database(text: &str) -> Result<tokio_postgres::Config, String> {
    let config = tokio_postgres::Config::from_str(text).map_err(|_| {
        "not a PostgreSQL address; write postgres://USER:PASSWORD@HOST:PORT/DATABASE".to_owned()
    })?;
    if config.get_hosts().is_empty() {
        return Err("names no host; write postgres://USER:PASSWORD@HOST:PORT/DATABASE".into());
    }
    if config.get_user().is_none() {
        return Err("names no user; write postgres://USER:PASSWORD@HOST:PORT/DATABASE".into());
    }
    Ok(config)
}

/// A node name: letters, digits, `.`, `-`, `_`; 1 to 64 of them.
pub fn check_node_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a node name: use 1 to 64 letters, digits, '.', '-' or '_'"
        ))
    }
}

fn shown(c: &tokio_postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => String::new(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!(
        "{}@{host}:{port}/{}",
        c.get_user().unwrap_or(""),
        c.get_dbname().unwrap_or("")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_addresses() {
        let c = parse_database("postgres://gw:secret@db.example:6432/mail").unwrap();
        assert_eq!(shown(&c), "gw@db.example:6432/mail");
        let e = parse_database("postgres://gw:secret@").unwrap_err();
        assert!(!e.contains("secret"), "{e}");
        assert!(parse_database("mysql://x").is_err());
    }

    #[test]
    fn node_names() {
        assert!(check_node_name("mx-1.example").is_ok());
        assert!(check_node_name("").is_err());
        assert!(check_node_name("a b").is_err());
    }
}
