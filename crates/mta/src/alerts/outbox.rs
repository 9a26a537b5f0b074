//! The alert outbox: one small JSON file per pending delivery (an alert to
//! one recipient domain, to the smarthost, or to the webhook) in
//! `<data-dir>/alerts/outbox/`, written with write, fsync and rename and
//! removed once delivered. It is not the main spool: alerts still go out
//! when the queue is suspended, full or damaged. A file that cannot be read
//! back is moved aside (`.damaged`) and reported, never deleted.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::Notice;
use super::recent::write_durably;

/// Where one pending delivery goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Target {
    /// Mail to these recipients (one domain, or all of them through the
    /// smarthost).
    Mail { recipients: Vec<String> },
    /// The HTTPS webhook.
    Webhook,
}

impl Target {
    /// For the log and listings: `the webhook`, or the recipients.
    pub fn describe(&self) -> String {
        match self {
            Target::Webhook => "the webhook".into(),
            Target::Mail { recipients } => recipients.join(", "),
        }
    }
}

/// One pending delivery, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub notice: Notice,
    pub target: Target,
    /// Failed attempts so far.
    #[serde(default)]
    pub attempts: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl Pending {
    /// The file name: the notice id, then what the target is.
    pub fn file_name(&self) -> String {
        let what = match &self.target {
            Target::Webhook => "webhook".to_owned(),
            Target::Mail { recipients } => {
                let domain = recipients
                    .first()
                    .and_then(|r| r.rsplit_once('@'))
                    .map(|(_, d)| d)
                    .unwrap_or("mail");
                let safe: String = domain
                    .chars()
                    .map(|c| {
                        if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                            c.to_ascii_lowercase()
                        } else {
                            '_'
                        }
                    })
                    .collect();
                format!("mail-{safe}")
            }
        };
        format!("{}-{what}.json", self.notice.id)
    }
}

/// The outbox directory.
#[derive(Debug, Clone)]
pub struct Outbox {
    dir: PathBuf,
}

impl Outbox {
    /// Creates the directory if needed and reads what is pending (oldest
    /// first), with a warning for each file that could not be read.
    pub fn open(dir: &Path) -> std::io::Result<(Outbox, Vec<Pending>, Vec<String>)> {
        std::fs::create_dir_all(dir)?;
        let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        names.sort();
        let mut pending = Vec::new();
        let mut warnings = Vec::new();
        for path in names {
            match read(&path) {
                Ok(p) => pending.push(p),
                Err(why) => {
                    let aside = path.with_extension("json.damaged");
                    let moved = std::fs::rename(&path, &aside)
                        .map(|()| format!("moved to {}", aside.display()))
                        .unwrap_or_else(|e| format!("could not be moved aside: {e}"));
                    warnings.push(format!(
                        "alerts: outbox file {} is unreadable ({why}); {moved}",
                        path.display()
                    ));
                }
            }
        }
        Ok((
            Outbox {
                dir: dir.to_path_buf(),
            },
            pending,
            warnings,
        ))
    }

    /// Stores (or rewrites) one pending delivery durably.
    pub fn put(&self, pending: &Pending) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(pending).map_err(std::io::Error::other)?;
        write_durably(&self.dir.join(pending.file_name()), &bytes)
    }

    /// Forgets a delivered one.
    pub fn remove(&self, pending: &Pending) -> std::io::Result<()> {
        match std::fs::remove_file(self.dir.join(pending.file_name())) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// What is pending now (for `ctl alerts`), oldest first.
    pub fn list(dir: &Path) -> Vec<Pending> {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return Vec::new();
        };
        let mut paths: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        paths.sort();
        paths.iter().filter_map(|p| read(p).ok()).collect()
    }
}

fn read(path: &Path) -> Result<Pending, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    serde_json::from_slice(&bytes).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alerts::{Alert, AlertClass, Severity};

    fn pending(id: &str, target: Target) -> Pending {
        Pending {
            notice: Notice {
                id: id.into(),
                at: 1_800_000_000,
                alert: Alert::new(AlertClass::Tls, Severity::Warning, "tls:example.com", "x"),
                repeats: 0,
            },
            target,
            attempts: 0,
            last_error: None,
        }
    }

    #[test]
    fn pending_deliveries_survive_a_reopen_and_go_when_removed() {
        let dir = tempfile::tempdir().unwrap();
        let (outbox, before, _) = Outbox::open(dir.path()).unwrap();
        assert!(before.is_empty());
        let a = pending(
            "01",
            Target::Mail {
                recipients: vec!["ops@Example.com".into()],
            },
        );
        let b = pending("02", Target::Webhook);
        outbox.put(&a).unwrap();
        outbox.put(&b).unwrap();
        assert_eq!(a.file_name(), "01-mail-example.com.json");
        std::fs::write(dir.path().join("03-webhook.json"), b"torn").unwrap();
        let (outbox, again, warnings) = Outbox::open(dir.path()).unwrap();
        assert_eq!(again, vec![a.clone(), b]);
        assert_eq!(warnings.len(), 1);
        assert!(dir.path().join("03-webhook.json.damaged").exists());
        outbox.remove(&a).unwrap();
        assert_eq!(Outbox::list(dir.path()).len(), 1);
    }
}
