//! Reading the file: TOML syntax, then types and unknown keys, with every
//! error reported rather than the first.
//!
//! Syntax errors come from toml's recovering parser, all at once. serde
//! stops at the first type error, so the loader repeats: deserialize, and on
//! an error record it, remove the offending key (or array element) from the
//! parsed document, and try again until the rest deserializes. An error
//! caused only by an earlier removal (`missing field` for a key that was
//! removed because its value was wrong) is not reported twice. The
//! semantic checks then run on what is left, and their problems are kept
//! for the sections (top-level tables, elements of `[[listener]]`/`[[route]]`)
//! that had no type error, where they cannot be follow-on errors.
//!
//! A required key that is missing or was set aside gets a placeholder of a
//! type it accepts (a string, a boolean, an array or a table), so the rest
//! of its table is still checked. Limits, reported on the next run rather
//! than guessed: when no placeholder fits (a required enum such as a mail
//! flow policy's `action`), the table is set aside; and once a whole `[[…]]`
//! element is set aside, the semantic pass waits (later elements' indices
//! would no longer match the file).

use std::collections::BTreeSet;
use std::path::Path;

use std::borrow::Cow;
use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::report::{ConfigIssue, ConfigReport};
use super::schema::Config;
use super::source::{KeyPath, Segment, SpanIndex, line_col, remove_at};

/// A configuration and the text it was read from (for error positions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedConfig {
    /// The file name as the operator gave it, or `<built-in default>`.
    pub source_name: String,
    /// The file's text; empty for the built-in default.
    pub text: String,
    /// The parsed configuration.
    pub config: Config,
}

/// Name used in reports about the built-in default.
pub const BUILTIN: &str = "<built-in default>";

/// Most errors reported from one file; past this the file is probably not a
/// Portcullis configuration at all.
const MAX_ERRORS: usize = 200;

impl LoadedConfig {
    /// Reads and parses a file (syntax, types, unknown keys). Semantic
    /// validation is [`LoadedConfig::validate`].
    pub fn load(path: &Path) -> Result<LoadedConfig, ConfigReport> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigReport::single(&name, "", format!("cannot read the file: {e}")))?;
        LoadedConfig::parse(&name, &text)
    }

    /// Parses configuration text; `name` is used in error reports.
    pub fn parse(name: &str, text: &str) -> Result<LoadedConfig, ConfigReport> {
        let config = parse_config(name, text)?;
        Ok(LoadedConfig {
            source_name: name.to_owned(),
            text: text.to_owned(),
            config,
        })
    }

    /// The built-in default (see [`Config::builtin_default`]).
    pub fn builtin() -> LoadedConfig {
        LoadedConfig {
            source_name: BUILTIN.to_owned(),
            text: String::new(),
            config: Config::builtin_default(),
        }
    }

    /// Turns semantic problems (key path, message) into a report with the
    /// position of each key in the text (or of the nearest enclosing table
    /// the text writes).
    pub(crate) fn report(&self, problems: Vec<(KeyPath, String)>) -> ConfigReport {
        let index = if self.text.is_empty() {
            SpanIndex::default()
        } else {
            let (doc, _) = DeTable::parse_recoverable(&self.text);
            SpanIndex::new(&doc)
        };
        let mut report = ConfigReport {
            source: self.source_name.clone(),
            issues: problems
                .into_iter()
                .map(|(path, message)| ConfigIssue {
                    position: index.span_of(&path).map(|s| line_col(&self.text, s.start)),
                    path: path.to_string(),
                    message,
                })
                .collect(),
        };
        report.sort();
        report
    }
}

fn parse_config(name: &str, text: &str) -> Result<Config, ConfigReport> {
    let mut report = ConfigReport {
        source: name.to_owned(),
        issues: Vec::new(),
    };
    let (doc, syntax) = DeTable::parse_recoverable(text);
    let index = SpanIndex::new(&doc);
    let issue = |span: Option<std::ops::Range<usize>>, message: &str| {
        let (position, path) = match span {
            Some(s) => (Some(line_col(text, s.start)), index.path_at(&s).to_string()),
            None => (None, String::new()),
        };
        ConfigIssue {
            position,
            path,
            message: message.trim().to_owned(),
        }
    };
    if !syntax.is_empty() {
        report.issues = syntax
            .iter()
            .take(MAX_ERRORS)
            .map(|e| {
                let mut i = issue(e.span(), e.message());
                // A syntax error is not about a key; the key before it only
                // helps to find the place.
                if !i.path.is_empty() {
                    i.message = format!("TOML syntax error: {} (after key {})", i.message, i.path);
                } else {
                    i.message = format!("TOML syntax error: {}", i.message);
                }
                i.path = String::new();
                i
            })
            .collect();
        report.sort();
        return Err(report);
    }

    let mut working = doc.clone();
    let mut removed: BTreeSet<KeyPath> = BTreeSet::new();
    let mut sections: BTreeSet<Section> = BTreeSet::new();
    let mut element_removed = false;
    let mut rounds = 0;
    loop {
        let attempt = Config::deserialize(toml::de::Deserializer::from(working.clone()));
        let err = match attempt {
            Ok(config) if report.issues.is_empty() => return Ok(config),
            Ok(rest) => {
                // What is left parsed: its semantic problems are real as
                // long as they are in sections that had no type error (the
                // removals there would cause artifacts). When a whole array
                // element went, later elements' indices no longer match the
                // file, so the semantic pass waits for the next run.
                if !element_removed && let Err(problems) = super::validate::check(&rest) {
                    for (path, message) in problems {
                        if sections.contains(&section(&path)) {
                            continue;
                        }
                        let span = index.span_of(&path);
                        report.issues.push(ConfigIssue {
                            position: span.map(|s| line_col(text, s.start)),
                            path: path.to_string(),
                            message,
                        });
                    }
                }
                break;
            }
            Err(e) => e,
        };
        let Some(span) = err.span() else {
            report.issues.push(issue(None, err.message()));
            break;
        };
        // Where the error is in the original text (for the report) and in
        // the working copy (for the removal: indices shift as elements go).
        let original = index.path_at(&span);
        let working_path = SpanIndex::new(&working).path_at(&span);
        let artifact = missing_field(err.message())
            .is_some_and(|field| removed.contains(&original.key(field)));
        if !artifact {
            report.issues.push(issue(Some(span.clone()), err.message()));
        }
        sections.insert(section(&original));
        rounds += 1;
        if report.issues.len() >= MAX_ERRORS || rounds > MAX_ROUNDS {
            break;
        }
        // A required key is missing (or was set aside above): give it a
        // placeholder of a type it accepts, so the rest of its table is
        // still checked; only when none fits is the table set aside.
        if let Some(field) = missing_field(err.message())
            && let Some(filled) = fill_placeholder(&working, &working_path, field, &span)
        {
            working = filled;
            continue;
        }
        element_removed |= matches!(working_path.0.last(), Some(Segment::Index(_)));
        if working_path.0.is_empty() || !remove_at(working.get_mut(), &working_path.0) {
            break;
        }
        // Removing an array element shifts the ones after it; remember the
        // original path only for keys, which is what `missing field` names.
        if matches!(original.0.last(), Some(Segment::Key(_))) {
            removed.insert(original);
        }
    }
    report.sort();
    Err(report)
}

/// Deserialization attempts per file at most (each sets one key aside or
/// fills one placeholder, so a real file needs far fewer).
const MAX_ROUNDS: usize = 2000;

/// The document with `field` added to the table at `table` as a
/// placeholder its type accepts, or `None` when no placeholder fits.
fn fill_placeholder<'i>(
    working: &Spanned<DeTable<'i>>,
    table: &KeyPath,
    field: &str,
    span: &Range<usize>,
) -> Option<Spanned<DeTable<'i>>> {
    let at = table.key(field);
    // An empty span at the end of the table: no key of the file starts
    // there, so errors about the table itself (its span starts earlier) are
    // never attributed to the placeholder, and errors about the placeholder
    // are recognised.
    let span = span.end..span.end;
    let candidates = [
        DeValue::String(Cow::Borrowed("")),
        DeValue::Boolean(false),
        DeValue::Array(DeArray::new()),
        DeValue::Table(DeTable::new()),
    ];
    for value in candidates {
        let mut doc = working.clone();
        let t = table_at(doc.get_mut(), &table.0)?;
        t.insert(
            Spanned::new(span.clone(), Cow::Owned(field.to_owned())),
            Spanned::new(span.clone(), value),
        );
        match Config::deserialize(toml::de::Deserializer::from(doc.clone())) {
            Ok(_) => return Some(doc),
            Err(e) => {
                let other_missing = missing_field(e.message()).is_some_and(|f| f != field);
                let about_placeholder = !other_missing
                    && e.span()
                        .is_some_and(|s| SpanIndex::new(&doc).path_at(&s) == at);
                if !about_placeholder {
                    return Some(doc);
                }
            }
        }
    }
    None
}

/// The table at `path` (the root for an empty path).
fn table_at<'a, 'i>(doc: &'a mut DeTable<'i>, path: &[Segment]) -> Option<&'a mut DeTable<'i>> {
    let mut value: Option<&'a mut DeValue<'i>> = None;
    let mut table: Option<&'a mut DeTable<'i>> = Some(doc);
    for seg in path {
        let next = match (seg, table.take(), value.take()) {
            (Segment::Key(k), Some(t), _) => t.get_mut(k.as_str()).map(|v| v.get_mut()),
            (Segment::Index(i), None, Some(DeValue::Array(a))) => {
                a.get_mut(*i).map(|v| v.get_mut())
            }
            _ => None,
        }?;
        match next {
            DeValue::Table(t) => table = Some(t),
            other => value = Some(other),
        }
    }
    table
}

/// A top-level table, or one element of a top-level array of tables: the
/// unit within which a removed key can cause follow-on semantic problems.
type Section = (String, Option<usize>);

fn section(path: &KeyPath) -> Section {
    match path.0.as_slice() {
        [Segment::Key(k), Segment::Index(i), ..] => (k.clone(), Some(*i)),
        [Segment::Key(k), ..] => (k.clone(), None),
        _ => (String::new(), None),
    }
}

/// The field name of serde's `missing field `x`` message.
fn missing_field(message: &str) -> Option<&str> {
    message
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        let r = LoadedConfig::parse("t.toml", text).unwrap_err();
        r.to_string().lines().map(str::to_owned).collect()
    }

    #[test]
    fn empty_file_is_a_valid_parse() {
        let c = LoadedConfig::parse("t.toml", "").unwrap();
        assert_eq!(c.config.hostname, "localhost");
        assert_eq!(c.config.shutdown_grace_seconds, 30);
    }

    #[test]
    fn every_type_error_is_reported_with_its_line() {
        let e = errors(
            "hostname = 5\n\
             [[listener]]\n\
             name = \"a\"\n\
             address = \"127.0.0.1:25\"\n\
             max-concurrency = \"lots\"\n\
             colour = \"blue\"\n\
             [[listener]]\n\
             address = \"127.0.0.1:26\"\n\
             [log]\n\
             level = 3\n",
        );
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(
            e[0].starts_with("t.toml:1:12: hostname: invalid type"),
            "{e:#?}"
        );
        assert!(
            e[1].starts_with("t.toml:5:19: listener[0].max-concurrency: invalid type"),
            "{e:#?}"
        );
        assert!(
            e[2].starts_with("t.toml:6:1: listener[0].colour: unknown field `colour`"),
            "{e:#?}"
        );
        assert!(
            e[3].starts_with("t.toml:7:1: listener[1]: missing field `name`"),
            "{e:#?}"
        );
        assert!(
            e[4].starts_with("t.toml:10:9: log.level: invalid type"),
            "{e:#?}"
        );
    }

    #[test]
    fn semantic_problems_in_untouched_sections_come_with_type_errors() {
        let e = errors(
            "[[listener]]\nname = \"in\"\naddress = \"nowhere\"\nrat.accept = [\"example.com\"]\n\
             [queue]\nlifetime-seconds = \"long\"\n\
             [[route]]\ndomain = \"bad..example\"\nhosts = [\"127.0.0.1\"]\n",
        );
        assert_eq!(e.len(), 3, "{e:#?}");
        assert!(
            e[0].starts_with("t.toml:3:1: listener[0].address: \"nowhere\""),
            "{e:#?}"
        );
        assert!(
            e[1].starts_with("t.toml:6:20: queue.lifetime-seconds: invalid type"),
            "{e:#?}"
        );
        assert!(e[2].starts_with("t.toml:8:1: route[0].domain:"), "{e:#?}");
        // A type error inside the listener hides that listener's semantic
        // problems (they could be follow-on errors) but not the route's.
        let e = errors(
            "[[listener]]\nname = \"in\"\naddress = \"nowhere\"\nbacklog = \"x\"\n\
             [[route]]\ndomain = \"bad..example\"\nhosts = [\"127.0.0.1\"]\n",
        );
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e[0].contains("listener[0].backlog"), "{e:#?}");
        assert!(e[1].contains("route[0].domain"), "{e:#?}");
    }

    #[test]
    fn a_missing_required_key_does_not_hide_the_rest_of_its_table() {
        let e = errors(
            "[[listener]]\naddress = 25\nbacklog = \"x\"\n[[listener]]\nname = \"b\"\naddress = \"127.0.0.1:0\"\nrat.accept = [\"ALL\"]\n",
        );
        assert_eq!(e.len(), 4, "{e:#?}");
        assert!(
            e[0].starts_with("t.toml:1:1: listener[0]: missing field `name`"),
            "{e:#?}"
        );
        assert!(
            e[1].starts_with("t.toml:2:11: listener[0].address: invalid type"),
            "{e:#?}"
        );
        assert!(
            e[2].starts_with("t.toml:3:11: listener[0].backlog: invalid type"),
            "{e:#?}"
        );
        // The second listener had no type error: its open relay is reported.
        assert!(
            e[3].starts_with("t.toml:7:5: listener[1].rat.accept: ALL"),
            "{e:#?}"
        );
    }

    #[test]
    fn removed_required_key_is_not_reported_twice() {
        let e = errors("[[route]]\ndomain = 7\nhosts = [\"a\"]\n");
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(e[0].starts_with("t.toml:2:10: route[0].domain:"), "{e:#?}");
        assert!(e[1].starts_with("t.toml: listener: no listener"), "{e:#?}");
    }

    #[test]
    fn syntax_errors_all_reported() {
        let e = errors("hostname = \"x\nport = \n[log\n");
        assert!(e.len() >= 2, "{e:#?}");
        assert!(e.iter().all(|l| l.contains("TOML syntax error")), "{e:#?}");
        assert!(e[0].starts_with("t.toml:1:"), "{e:#?}");
    }

    #[test]
    fn policy_types_are_checked_inside_listeners() {
        let e = errors(
            "[[listener]]\nname = \"in\"\naddress = \"127.0.0.1:25\"\n\
             [[listener.hat.sender-group]]\nname = \"ALL\"\nmatch = [\"ALL\"]\npolicy = \"A\"\n\
             [listener.hat.policy.A]\naction = \"accept\"\ntls = \"maybe\"\nmax-message-size = \"big\"\n",
        );
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e[0].starts_with("t.toml:10:7: listener[0].hat.policy.A.tls: unknown variant"),
            "{e:#?}"
        );
        assert!(
            e[1].starts_with(
                "t.toml:11:20: listener[0].hat.policy.A.max-message-size: invalid type"
            ),
            "{e:#?}"
        );
    }
}
