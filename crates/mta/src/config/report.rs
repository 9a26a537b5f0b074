//! What `portcullis config validate` prints: every problem in a
//! configuration, each with the file, line, column and key path it concerns
//! (`portcullis.toml:12:9: listener[0].hat.sender-group[1].match[0]: …`), so
//! an operator can fix them all in one pass.

use std::fmt;

/// One problem in a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// 1-based line and column in the file; `None` for the built-in default
    /// or a key that the file does not write at all and has no enclosing
    /// table in the file.
    pub position: Option<(usize, usize)>,
    /// Key path in dotted form (`listener[0].certificate`); empty when the
    /// problem is in the document as a whole.
    pub path: String,
    /// What is wrong, for a mail operator.
    pub message: String,
}

/// Every problem found while loading or validating one configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigReport {
    /// The file name as given (or `<built-in default>`).
    pub source: String,
    /// The problems, in file order where positions are known.
    pub issues: Vec<ConfigIssue>,
}

impl ConfigReport {
    /// A report with a single problem that has no position (I/O errors,
    /// problems found while opening the certificate store or the spool).
    pub fn single(source: &str, path: &str, message: impl Into<String>) -> Self {
        ConfigReport {
            source: source.to_owned(),
            issues: vec![ConfigIssue {
                position: None,
                path: path.to_owned(),
                message: message.into(),
            }],
        }
    }

    /// Sorts the issues by position (unpositioned last), keeping the
    /// discovery order among equals.
    pub(crate) fn sort(&mut self) {
        self.issues
            .sort_by_key(|i| i.position.unwrap_or((usize::MAX, usize::MAX)));
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.path.is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}

impl fmt::Display for ConfigReport {
    /// One line per problem: `FILE:LINE:COL: key.path: message`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, issue) in self.issues.iter().enumerate() {
            if n > 0 {
                f.write_str("\n")?;
            }
            match issue.position {
                Some((line, col)) => write!(f, "{}:{line}:{col}: {issue}", self.source)?,
                None => write!(f, "{}: {issue}", self.source)?,
            }
        }
        Ok(())
    }
}

impl std::error::Error for ConfigReport {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_line_per_issue() {
        let r = ConfigReport {
            source: "p.toml".into(),
            issues: vec![
                ConfigIssue {
                    position: Some((3, 7)),
                    path: "listener[0].address".into(),
                    message: "bad".into(),
                },
                ConfigIssue {
                    position: None,
                    path: String::new(),
                    message: "whole".into(),
                },
            ],
        };
        assert_eq!(
            r.to_string(),
            "p.toml:3:7: listener[0].address: bad\np.toml: whole"
        );
    }
}
