//! The configuration text as toml parsed it, with the byte span of every key
//! and value, so that any problem — a syntax error, a wrong type, or a
//! semantic error found later by `policy` — can be reported with the line,
//! column and key path it concerns. Also translates `policy`'s textual error
//! locations (`listener "in" hat sender-group[0] "ALL" match[1]`) into key
//! paths of this file (`listener[0].hat.sender-group[0].match[1]`).

use std::fmt;
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// A table key.
    Key(String),
    /// An array index.
    Index(usize),
}

/// A path from the document root to a key or array element.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyPath(pub Vec<Segment>);

impl KeyPath {
    /// The root.
    pub fn root() -> Self {
        KeyPath(Vec::new())
    }

    /// This path with a key appended.
    pub fn key(&self, k: &str) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Key(k.to_owned()));
        p
    }

    /// This path with an index appended.
    pub fn index(&self, i: usize) -> Self {
        let mut p = self.clone();
        p.0.push(Segment::Index(i));
        p
    }

    /// Appends a dotted, indexed path as `policy` writes it
    /// (`rat.accept[1]`, `max-connections`).
    pub fn dotted(&self, text: &str) -> Self {
        let mut p = self.clone();
        for part in text.split('.').filter(|s| !s.is_empty()) {
            let (name, indices) = match part.find('[') {
                Some(at) => part.split_at(at),
                None => (part, ""),
            };
            if !name.is_empty() {
                p.0.push(Segment::Key(name.to_owned()));
            }
            for ix in indices.split('[').filter(|s| !s.is_empty()) {
                match ix.trim_end_matches(']').parse::<usize>() {
                    Ok(n) => p.0.push(Segment::Index(n)),
                    Err(_) => p.0.push(Segment::Key(ix.trim_end_matches(']').to_owned())),
                }
            }
        }
        p
    }
}

impl fmt::Display for KeyPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, s) in self.0.iter().enumerate() {
            match s {
                Segment::Key(k) => {
                    if n > 0 {
                        f.write_str(".")?;
                    }
                    if k.chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                        && !k.is_empty()
                    {
                        f.write_str(k)?;
                    } else {
                        write!(f, "{k:?}")?;
                    }
                }
                Segment::Index(i) => write!(f, "[{i}]")?,
            }
        }
        Ok(())
    }
}

/// Converts a byte offset into a 1-based (line, column); the column counts
/// characters, as editors do.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, col)
}

/// Every key and value of a parsed document, with spans, in a flat list
/// (path, span start, span). Built once per report.
#[derive(Debug, Default)]
pub struct SpanIndex {
    nodes: Vec<(KeyPath, Range<usize>)>,
}

impl SpanIndex {
    /// Indexes a parsed document.
    pub fn new(doc: &Spanned<DeTable<'_>>) -> Self {
        let mut nodes = Vec::new();
        walk_table(doc.get_ref(), &KeyPath::root(), &mut nodes);
        SpanIndex { nodes }
    }

    /// The key path of the node an error span points into: the node whose
    /// span starts last at or before the error (the deepest on ties). Also
    /// right for syntax errors, which point between nodes: they get the key
    /// just before them.
    pub fn path_at(&self, span: &Range<usize>) -> KeyPath {
        let mut best: Option<&(KeyPath, Range<usize>)> = None;
        for n in &self.nodes {
            if n.1.start > span.start {
                continue;
            }
            best = match best {
                None => Some(n),
                Some(b) if n.1.start > b.1.start => Some(n),
                Some(b) if n.1.start == b.1.start && n.0.0.len() > b.0.0.len() => Some(n),
                keep => keep,
            };
        }
        best.map(|b| b.0.clone()).unwrap_or_default()
    }

    /// The span of `path`, or of its longest prefix the document writes
    /// (a missing key is reported at the table that should hold it).
    pub fn span_of(&self, path: &KeyPath) -> Option<Range<usize>> {
        let mut p = path.0.as_slice();
        loop {
            if let Some(n) = self.nodes.iter().find(|n| n.0.0.as_slice() == p) {
                return Some(n.1.clone());
            }
            match p.split_last() {
                Some((_, rest)) if !rest.is_empty() => p = rest,
                _ => return None,
            }
        }
    }
}

fn walk_table(t: &DeTable<'_>, at: &KeyPath, out: &mut Vec<(KeyPath, Range<usize>)>) {
    for (k, v) in t.iter() {
        let p = at.key(k.get_ref());
        // The key's span first: a key's own position is where an operator
        // looks; the value span is pushed too so type errors land on it.
        out.push((p.clone(), k.span()));
        walk_value(v, &p, out);
    }
}

fn walk_value(v: &Spanned<DeValue<'_>>, at: &KeyPath, out: &mut Vec<(KeyPath, Range<usize>)>) {
    match v.get_ref() {
        DeValue::Table(t) => {
            // The span of a `[header]` table is its header: only index it
            // when it does not precede the key (inline tables do not).
            out.push((at.clone(), v.span()));
            walk_table(t, at, out);
        }
        DeValue::Array(a) => {
            out.push((at.clone(), v.span()));
            for (i, e) in a.iter().enumerate() {
                let p = at.index(i);
                out.push((p.clone(), e.span()));
                walk_value(e, &p, out);
            }
        }
        _ => out.push((at.clone(), v.span())),
    }
}

/// Removes the node at `path` from a document (a table entry or an array
/// element). Returns false when there is nothing to remove there.
pub fn remove_at<'i>(doc: &mut DeTable<'i>, path: &[Segment]) -> bool {
    match path {
        [] => false,
        [Segment::Key(k)] => doc.remove(k.as_str()).is_some(),
        [Segment::Index(_)] => false,
        [Segment::Key(k), rest @ ..] => match doc.get_mut(k.as_str()) {
            Some(v) => remove_in_value(v.get_mut(), rest),
            None => false,
        },
        [Segment::Index(_), ..] => false,
    }
}

fn remove_in_value<'i>(v: &mut DeValue<'i>, path: &[Segment]) -> bool {
    match (v, path) {
        (DeValue::Table(t), p) => remove_at(t, p),
        (DeValue::Array(a), [Segment::Index(i)]) => {
            if *i >= a.len() {
                return false;
            }
            let mut rebuilt: toml::de::DeArray<'i> = toml::de::DeArray::new();
            let old = std::mem::replace(a, toml::de::DeArray::new());
            for (n, e) in old.iter().enumerate() {
                if n != *i {
                    rebuilt.push(e.clone());
                }
            }
            *a = rebuilt;
            true
        }
        (DeValue::Array(a), [Segment::Index(i), rest @ ..]) => match a.get_mut(*i) {
            Some(e) => remove_in_value(e.get_mut(), rest),
            None => false,
        },
        _ => false,
    }
}

/// Translates a `policy` error location into a key path below `base`.
///
/// `policy` writes locations as space-separated parts: field names with
/// indices (`sender-group[0]`, `rat.accept[1]`), each optionally followed by
/// a quoted label. A label after an indexed part names the element for the
/// reader (`sender-group[0] "ALL"`) and is dropped; a label after a bare
/// name is a table key (`policy "RELAYED"` → `policy.RELAYED`).
pub fn policy_location(base: &KeyPath, location: &str) -> KeyPath {
    let mut path = base.clone();
    let mut last_indexed = true;
    for token in tokens(location) {
        match token {
            Token::Quoted(label) => {
                if !last_indexed {
                    path.0.push(Segment::Key(label));
                }
                last_indexed = true;
            }
            Token::Word(w) => {
                last_indexed = w.ends_with(']');
                path = path.dotted(&w);
            }
        }
    }
    path
}

enum Token {
    Word(String),
    Quoted(String),
}

/// Splits on spaces, keeping Rust-debug-quoted strings (with `\"` and `\\`
/// escapes) as single tokens.
fn tokens(s: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c == ' ' {
            chars.next();
        } else if c == '"' {
            chars.next();
            let mut q = String::new();
            while let Some(c) = chars.next() {
                match c {
                    '\\' => {
                        if let Some(n) = chars.next() {
                            q.push(n);
                        }
                    }
                    '"' => break,
                    c => q.push(c),
                }
            }
            out.push(Token::Quoted(q));
        } else {
            let mut w = String::new();
            while let Some(&c) = chars.peek() {
                if c == ' ' {
                    break;
                }
                w.push(c);
                chars.next();
            }
            out.push(Token::Word(w));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> KeyPath {
        KeyPath::root().key("listener").index(2)
    }

    #[test]
    fn policy_locations_become_key_paths() {
        let cases = [
            (
                "hat sender-group[0] \"ALL\" match[1]",
                "listener[2].hat.sender-group[0].match[1]",
            ),
            (
                "hat policy \"RELAYED\" max-message-size",
                "listener[2].hat.policy.RELAYED.max-message-size",
            ),
            ("rat.accept[3]", "listener[2].rat.accept[3]"),
            ("rat.accept", "listener[2].rat.accept"),
            (
                "hat sender-group[1] \"a \\\"b\\\"\" policy",
                "listener[2].hat.sender-group[1].policy",
            ),
        ];
        for (loc, want) in cases {
            assert_eq!(policy_location(&base(), loc).to_string(), want, "{loc}");
        }
        let out = KeyPath::root().key("outbound");
        assert_eq!(
            policy_location(&out, "starttls.exclude[0] \"x.example\"").to_string(),
            "outbound.starttls.exclude[0]"
        );
        assert_eq!(
            policy_location(&out, "destination[4] \"bad..name\" max-connections").to_string(),
            "outbound.destination[4].max-connections"
        );
        assert_eq!(
            policy_location(&out, "requiretls sender-domains[0]").to_string(),
            "outbound.requiretls.sender-domains[0]"
        );
    }

    #[test]
    fn odd_keys_are_quoted_in_display() {
        let p = KeyPath::root().key("hat").key("policy").key("my policy");
        assert_eq!(p.to_string(), "hat.policy.\"my policy\"");
    }

    #[test]
    fn line_and_column() {
        let t = "a = 1\nbé = 2\n";
        assert_eq!(line_col(t, 0), (1, 1));
        assert_eq!(line_col(t, 6), (2, 1));
        assert_eq!(line_col(t, 9), (2, 3));
        assert_eq!(line_col(t, 999), (3, 1));
    }

    #[test]
    fn spans_and_paths_round_trip() {
        let text = "x = 1\n[[listener]]\nname = \"a\"\n[listener.hat]\nk = [1, 2]\n";
        let (doc, errs) = DeTable::parse_recoverable(text);
        assert!(errs.is_empty());
        let idx = SpanIndex::new(&doc);
        let p = KeyPath::root()
            .key("listener")
            .index(0)
            .key("hat")
            .key("k")
            .index(1);
        let span = idx.span_of(&p).unwrap();
        assert_eq!(line_col(text, span.start), (5, 9));
        assert_eq!(idx.path_at(&span), p);
        let missing = KeyPath::root().key("listener").index(0).key("nope");
        let span = idx.span_of(&missing).unwrap();
        assert_eq!(line_col(text, span.start).0, 2);
    }

    #[test]
    fn removal() {
        let text = "[[l]]\na = 1\n[[l]]\na = 2\nb = 3\n";
        let (mut doc, _) = DeTable::parse_recoverable(text);
        let p = KeyPath::root().key("l").index(1).key("b");
        assert!(remove_at(doc.get_mut(), &p.0));
        assert!(remove_at(
            doc.get_mut(),
            &KeyPath::root().key("l").index(0).0
        ));
        let arr = doc
            .get_ref()
            .get("l")
            .unwrap()
            .get_ref()
            .as_array()
            .unwrap();
        assert_eq!(arr.len(), 1);
        assert!(!remove_at(doc.get_mut(), &KeyPath::root().key("zz").0));
    }
}
