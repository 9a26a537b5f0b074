//! Where the running configuration comes from, so that a reload reads it
//! the same way the start did: the file given with `--config` (or the
//! built-in default), and the command line's overrides (`--data-dir`,
//! `--resolver`, and `--listen` for the built-in default's listener).
//!
//! Also the section operations of `config import --section` and `config
//! reset`: a section of the running file replaced by the one in another
//! file, or by the built-in default's.

use std::path::PathBuf;

use super::{ConfigReport, DEFAULT_LISTENER, LoadedConfig};
use crate::config::Config;

/// The file and overrides the gateway was started with.
#[derive(Debug, Clone, Default)]
pub struct ConfigOrigin {
    /// `--config FILE`; `None` runs the built-in default.
    pub file: Option<PathBuf>,
    /// `--data-dir`.
    pub data_dir: Option<PathBuf>,
    /// `--listen` (built-in default only).
    pub listen: Option<String>,
    /// `--resolver` (repeatable): replaces the configured resolvers.
    pub resolvers: Vec<String>,
}

/// The top-level tables a section operation accepts.
pub const SECTIONS: [&str; 12] = [
    "listener", "outbound", "delivery", "route", "dns", "mta-sts", "queue", "spool", "tls", "log",
    "admin", "health",
];

impl ConfigOrigin {
    /// Reads the file (or the built-in default), applies the overrides and
    /// runs every check.
    pub fn load(&self) -> Result<LoadedConfig, ConfigReport> {
        let loaded = match &self.file {
            Some(f) => self.load_file(f)?,
            None => LoadedConfig::builtin(),
        };
        self.finish(loaded)
    }

    /// The file; a cluster node's file (it has `[cluster]`) is put over the
    /// node's copy of the shared configuration.
    fn load_file(&self, file: &std::path::Path) -> Result<LoadedConfig, ConfigReport> {
        let name = file.display().to_string();
        let text = std::fs::read_to_string(file)
            .map_err(|e| ConfigReport::single(&name, "", format!("cannot read the file: {e}")))?;
        let Some(data_dir) = crate::cluster::shared_config::node_file(&text) else {
            return LoadedConfig::parse(&name, &text);
        };
        let data_dir = self
            .data_dir
            .clone()
            .or(data_dir)
            .unwrap_or_else(super::schema::default_data_dir);
        let shared = crate::cluster::shared_config::read_copy(&data_dir)
            .map_err(|e| ConfigReport::single(&name, "", e))?
            .ok_or_else(|| {
                ConfigReport::single(
                    &name,
                    "",
                    format!(
                        "this cluster node has no copy of the shared configuration in {} yet: start it once with the cluster database reachable, or run `portcullis cluster join`",
                        data_dir.display()
                    ),
                )
            })?;
        let merged = crate::cluster::shared_config::merge(&shared.document, &text)
            .map_err(|e| ConfigReport::single(&name, "", e))?;
        LoadedConfig::parse(
            &format!(
                "{name} over the cluster configuration version {}",
                shared.version
            ),
            &merged,
        )
    }

    /// Whether the file given is a cluster node's file.
    pub fn is_cluster_node(&self) -> bool {
        self.file
            .as_ref()
            .and_then(|f| std::fs::read_to_string(f).ok())
            .is_some_and(|t| crate::cluster::shared_config::node_file(&t).is_some())
    }

    /// Like [`ConfigOrigin::load`] for `text` (an import), named `name`.
    pub fn parse(&self, name: &str, text: &str) -> Result<LoadedConfig, ConfigReport> {
        let loaded = LoadedConfig::parse(name, text)?;
        loaded.check_secrets_present()?;
        self.finish(loaded)
    }

    fn finish(&self, mut loaded: LoadedConfig) -> Result<LoadedConfig, ConfigReport> {
        if let Some(listen) = &self.listen
            && self.file.is_none()
        {
            for l in &mut loaded.config.listener {
                if l.name == DEFAULT_LISTENER {
                    l.address = listen.clone();
                }
            }
        }
        if let Some(dir) = &self.data_dir {
            loaded.config.data_dir = dir.clone();
        }
        if !self.resolvers.is_empty() {
            loaded.config.dns.resolvers = self
                .resolvers
                .iter()
                .cloned()
                .map(super::ResolverEntry::Address)
                .collect();
        }
        loaded.validate()?;
        Ok(loaded)
    }
}

fn parse_table(name: &str, text: &str) -> Result<toml::Table, String> {
    toml::from_str(text).map_err(|e| format!("{name}: not TOML: {}", e.message()))
}

fn known(section: &str) -> Result<(), String> {
    if SECTIONS.contains(&section) {
        Ok(())
    } else {
        Err(format!(
            "{section:?} is not a section; sections are {}",
            SECTIONS.join(", ")
        ))
    }
}

/// `running` (TOML text) with its `section` replaced by the one in `file`,
/// which must hold exactly that one section (complete and unambiguous). An
/// empty section clears it: the section's defaults apply.
pub fn replace_section(
    running: &str,
    name: &str,
    file: &str,
    section: &str,
) -> Result<String, String> {
    known(section)?;
    let mut current = parse_table("the running configuration", running)?;
    let incoming = parse_table(name, file)?;
    let others: Vec<&String> = incoming.keys().filter(|k| *k != section).collect();
    if !others.is_empty() {
        return Err(format!(
            "{name} holds {} besides [{section}]; a section import loads exactly one section",
            others
                .iter()
                .map(|k| format!("[{k}]"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    let Some(value) = incoming.get(section) else {
        return Err(format!(
            "{name} has no [{section}] section (write an empty [{section}] to clear it)"
        ));
    };
    let empty = match value {
        toml::Value::Table(t) => t.is_empty(),
        toml::Value::Array(a) => a.is_empty(),
        _ => false,
    };
    if empty {
        current.remove(section);
    } else {
        current.insert(section.to_owned(), value.clone());
    }
    toml::to_string_pretty(&current).map_err(|e| e.to_string())
}

/// `running` with `section` returned to the built-in default's.
pub fn reset_section(running: &str, section: &str) -> Result<String, String> {
    known(section)?;
    let mut current = parse_table("the running configuration", running)?;
    let default = toml::Table::try_from(Config::builtin_default()).map_err(|e| e.to_string())?;
    match default.get(section) {
        Some(v) => current.insert(section.to_owned(), v.clone()),
        None => current.remove(section),
    };
    toml::to_string_pretty(&current).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNNING: &str = "hostname = \"gw.example\"\n[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:0\"\n[outbound]\n[[outbound.destination]]\ndomain = \"example.com\"\ntls = \"required\"\n[queue]\nlifetime-seconds = 60\n";

    #[test]
    fn one_section_is_replaced_and_an_empty_one_clears_it() {
        let t = replace_section(
            RUNNING,
            "o.toml",
            "[queue]\nlifetime-seconds = 99\n",
            "queue",
        )
        .unwrap();
        assert!(
            t.contains("lifetime-seconds = 99") && t.contains("example.com"),
            "{t}"
        );
        let t = replace_section(RUNNING, "o.toml", "[outbound]\n", "outbound").unwrap();
        assert!(
            !t.contains("example.com") && t.contains("lifetime-seconds = 60"),
            "{t}"
        );
        let e = replace_section(RUNNING, "o.toml", "[queue]\n[dns]\n", "queue").unwrap_err();
        assert!(e.contains("holds [dns] besides [queue]"), "{e}");
        let e = replace_section(RUNNING, "o.toml", "", "queue").unwrap_err();
        assert!(e.contains("has no [queue] section"), "{e}");
        assert!(replace_section(RUNNING, "o.toml", "", "nope").is_err());
    }

    #[test]
    fn reset_returns_the_default() {
        let t = reset_section(RUNNING, "queue").unwrap();
        assert!(!t.contains("lifetime-seconds = 60"), "{t}");
        let t = reset_section(RUNNING, "listener").unwrap();
        assert!(t.contains("127.0.0.1:2525"), "{t}");
    }
}
