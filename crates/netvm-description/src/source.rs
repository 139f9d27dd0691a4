//! The description as written: a format-neutral document tree that keeps
//! the byte span of every key and value.
//!
//! TOML and JSON are both read into [`Node`]s so that the rest of the crate
//! (typed reading, validation, error locations) never cares which format a
//! file used. Syntax errors are returned as [`SyntaxError`]s with a byte
//! span. Nothing here panics: nesting depth is bounded by the underlying
//! parsers (toml's own limit; serde_json's 128 levels, checked before the
//! span-keeping JSON parser runs).

use std::fmt;
use std::ops::Range;

/// The file formats a description may be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// TOML (the format people write by hand).
    Toml,
    /// JSON with the same structure (what Nix's `builtins.toJSON` emits).
    Json,
}

impl Format {
    /// The format implied by a file name: `.json` is JSON, anything else TOML.
    pub fn from_file_name(name: &str) -> Format {
        if name.to_ascii_lowercase().ends_with(".json") {
            Format::Json
        } else {
            Format::Toml
        }
    }
}

/// One step of a path into the document: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Segment {
    /// A key of a table (object).
    Key(String),
    /// An index into an array.
    Index(usize),
}

/// Where a value sits in the document, e.g. `vm[2].allow[0].to`.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct FieldPath(Vec<Segment>);

impl FieldPath {
    /// The document root.
    pub fn root() -> FieldPath {
        FieldPath(Vec::new())
    }

    /// This path extended by a table key.
    pub fn key(&self, key: &str) -> FieldPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Key(key.to_owned()));
        FieldPath(segments)
    }

    /// This path extended by an array index.
    pub fn index(&self, index: usize) -> FieldPath {
        let mut segments = self.0.clone();
        segments.push(Segment::Index(index));
        FieldPath(segments)
    }

    /// The steps of this path, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.0
    }

    /// The path one step up, or `None` at the root.
    pub fn parent(&self) -> Option<FieldPath> {
        let (_, rest) = self.0.split_last()?;
        Some(FieldPath(rest.to_vec()))
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(top level)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                Segment::Key(key) if i == 0 => f.write_str(key)?,
                Segment::Key(key) => write!(f, ".{key}")?,
                Segment::Index(index) => write!(f, "[{index}]")?,
            }
        }
        Ok(())
    }
}

/// A table entry: the key as written, where the key is, and its value.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key.
    pub key: String,
    /// Byte span of the key.
    pub key_span: Range<usize>,
    /// The value.
    pub value: Node,
}

/// What a node holds.
#[derive(Debug, Clone)]
pub enum NodeKind {
    /// A table (TOML) or object (JSON), entries in file order.
    Table(Vec<Entry>),
    /// An array.
    Array(Vec<Node>),
    /// A string, number, boolean or null.
    Scalar(serde_json::Value),
}

/// A value of the document with the byte span it was read from.
#[derive(Debug, Clone)]
pub struct Node {
    /// Byte span in the source text.
    pub span: Range<usize>,
    /// The value.
    pub kind: NodeKind,
}

/// A syntax error: what is wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// The parser's message.
    pub message: String,
    /// Byte span, when the parser knows it.
    pub span: Option<Range<usize>>,
}

impl Node {
    /// Parses `text` in `format` into a tree; on failure returns every
    /// syntax error the parser could find.
    pub fn parse(text: &str, format: Format) -> Result<Node, Vec<SyntaxError>> {
        match format {
            Format::Toml => toml_tree::parse(text),
            Format::Json => json_tree::parse(text),
        }
    }

    /// The node at `path`, if the document has one there.
    pub fn get(&self, path: &FieldPath) -> Option<&Node> {
        let mut node = self;
        for segment in path.segments() {
            node = match (segment, &node.kind) {
                (Segment::Key(key), NodeKind::Table(entries)) => {
                    &entries.iter().find(|e| &e.key == key)?.value
                }
                (Segment::Index(i), NodeKind::Array(items)) => items.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// The span of the key that names the value at `path`, if any.
    pub fn key_span(&self, path: &FieldPath) -> Option<Range<usize>> {
        let (Segment::Key(key), parent) = (path.segments().last()?, path.parent()?) else {
            return None;
        };
        match &self.get(&parent)?.kind {
            NodeKind::Table(entries) => entries
                .iter()
                .find(|e| &e.key == key)
                .map(|e| e.key_span.clone()),
            _ => None,
        }
    }

    /// The plain JSON value of this node (spans dropped).
    #[cfg(test)]
    pub fn to_json(&self) -> serde_json::Value {
        match &self.kind {
            NodeKind::Scalar(value) => value.clone(),
            NodeKind::Array(items) => items.iter().map(Node::to_json).collect(),
            NodeKind::Table(entries) => entries
                .iter()
                .map(|e| (e.key.clone(), e.value.to_json()))
                .collect::<serde_json::Map<_, _>>()
                .into(),
        }
    }
}

/// TOML via `toml`'s span-keeping parser.
mod toml_tree {
    use super::{Entry, Node, NodeKind, SyntaxError};
    use toml::de::{DeTable, DeValue};
    use toml::Spanned;

    pub(super) fn parse(text: &str) -> Result<Node, Vec<SyntaxError>> {
        let (root, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            return Err(errors
                .into_iter()
                .map(|e| SyntaxError {
                    message: e.message().trim().to_owned(),
                    span: e.span(),
                })
                .collect());
        }
        let span = root.span();
        Ok(Node {
            span,
            kind: table(root.get_ref()),
        })
    }

    fn table(table: &DeTable<'_>) -> NodeKind {
        let mut entries: Vec<Entry> = table
            .iter()
            .map(|(key, value)| Entry {
                key: key.get_ref().to_string(),
                key_span: key.span(),
                value: node(value),
            })
            .collect();
        // Tables defined by headers may be listed out of file order.
        entries.sort_by_key(|e| e.key_span.start);
        NodeKind::Table(entries)
    }

    fn node(value: &Spanned<DeValue<'_>>) -> Node {
        let kind = match value.get_ref() {
            DeValue::String(s) => NodeKind::Scalar(s.to_string().into()),
            DeValue::Integer(i) => {
                let digits = i.as_str();
                NodeKind::Scalar(match i64::from_str_radix(digits, i.radix()) {
                    Ok(n) => n.into(),
                    // Out of i64 range: keep the text so typed reading says why.
                    Err(_) => format!("integer {digits} (too large)").into(),
                })
            }
            DeValue::Float(f) => NodeKind::Scalar(
                f.as_str()
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number),
            ),
            DeValue::Boolean(b) => NodeKind::Scalar((*b).into()),
            DeValue::Datetime(d) => NodeKind::Scalar(format!("datetime {d}").into()),
            DeValue::Array(items) => NodeKind::Array(items.iter().map(node).collect()),
            DeValue::Table(t) => table(t),
        };
        Node {
            span: value.span(),
            kind,
        }
    }
}

/// JSON: validated by serde_json (depth-limited), spans from jsonc-parser.
mod json_tree {
    use super::{Entry, Node, NodeKind, SyntaxError};
    use jsonc_parser::ast::{ObjectPropName, Value};
    use jsonc_parser::{CollectOptions, ParseOptions};

    pub(super) fn parse(text: &str) -> Result<Node, Vec<SyntaxError>> {
        if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(text) {
            let message = e.to_string();
            // serde_json appends " at line L column C"; we show our own location.
            let message = match message.rfind(" at line ") {
                Some(cut) => message[..cut].to_owned(),
                None => message,
            };
            let at = offset_of(text, e.line(), e.column());
            let after_comma = at
                .and_then(|at| text.get(..at))
                .is_some_and(|before| before.trim_end().ends_with(','));
            let message = if after_comma
                && matches!(text.get(at.unwrap_or(0)..), Some(t) if t.starts_with(['}', ']']))
            {
                "trailing comma: JSON allows none before `}` or `]`".to_owned()
            } else {
                message
            };
            return Err(vec![SyntaxError {
                message,
                span: at.map(|at| at..at + 1),
            }]);
        }
        let strict = ParseOptions {
            allow_comments: false,
            allow_loose_object_property_names: false,
            allow_trailing_commas: false,
            allow_missing_commas: false,
            allow_single_quoted_strings: false,
            allow_hexadecimal_numbers: false,
            allow_unary_plus_numbers: false,
            allow_bare_decimal_point_numbers: false,
            allow_non_finite_numbers: false,
            allow_extended_string_escapes: false,
        };
        let parsed = jsonc_parser::parse_to_ast(text, &CollectOptions::default(), &strict)
            .map_err(|e| {
                vec![SyntaxError {
                    message: e.kind().to_string(),
                    span: Some(e.range().start..e.range().end),
                }]
            })?;
        let Some(value) = parsed.value else {
            return Err(vec![SyntaxError {
                message: "the file holds no JSON value".to_owned(),
                span: None,
            }]);
        };
        let mut duplicates = Vec::new();
        let root = node(&value, &mut duplicates);
        if duplicates.is_empty() {
            Ok(root)
        } else {
            Err(duplicates)
        }
    }

    fn node(value: &Value<'_>, duplicates: &mut Vec<SyntaxError>) -> Node {
        let (range, kind) = match value {
            Value::StringLit(s) => (s.range, NodeKind::Scalar(s.value.to_string().into())),
            Value::NumberLit(n) => (
                n.range,
                // serde_json already accepted this number text.
                NodeKind::Scalar(serde_json::from_str(n.value).unwrap_or(serde_json::Value::Null)),
            ),
            Value::BooleanLit(b) => (b.range, NodeKind::Scalar(b.value.into())),
            Value::NullKeyword(n) => (n.range, NodeKind::Scalar(serde_json::Value::Null)),
            Value::Array(a) => (
                a.range,
                NodeKind::Array(a.elements.iter().map(|e| node(e, duplicates)).collect()),
            ),
            Value::Object(o) => {
                let mut entries: Vec<Entry> = Vec::with_capacity(o.properties.len());
                for prop in &o.properties {
                    let (key, key_range) = match &prop.name {
                        ObjectPropName::String(s) => (s.value.to_string(), s.range),
                        ObjectPropName::Word(w) => (w.value.to_owned(), w.range),
                    };
                    if entries.iter().any(|e| e.key == key) {
                        duplicates.push(SyntaxError {
                            message: format!("duplicate key `{key}`"),
                            span: Some(key_range.start..key_range.end),
                        });
                        continue;
                    }
                    entries.push(Entry {
                        key,
                        key_span: key_range.start..key_range.end,
                        value: node(&prop.value, duplicates),
                    });
                }
                (o.range, NodeKind::Table(entries))
            }
        };
        Node {
            span: range.start..range.end,
            kind,
        }
    }

    /// Byte offset of a 1-based line and column as serde_json counts them
    /// (column counts bytes; 0 means "before the first character").
    fn offset_of(text: &str, line: usize, column: usize) -> Option<usize> {
        let line_start = if line <= 1 {
            0
        } else {
            text.match_indices('\n').nth(line - 2)?.0 + 1
        };
        let line_len = text[line_start..]
            .find('\n')
            .unwrap_or(text.len() - line_start);
        let mut at = line_start + column.saturating_sub(1).min(line_len);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        Some(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOML: &str =
        "[network]\nsubnet = \"10.0.0.0/24\"\n\n[[vm]]\nname = \"a\"\n\n[[vm]]\nname = \"b\"\n";
    const JSON: &str =
        "{\n  \"network\": { \"subnet\": \"10.0.0.0/24\" },\n  \"vm\": [ { \"name\": \"a\" }, { \"name\": \"b\" } ]\n}";

    #[test]
    fn toml_and_json_give_the_same_value() {
        let toml = Node::parse(TOML, Format::Toml).expect("valid toml");
        let json = Node::parse(JSON, Format::Json).expect("valid json");
        assert_eq!(toml.to_json(), json.to_json());
    }

    #[test]
    fn spans_point_at_values_and_keys() {
        for (text, format) in [(TOML, Format::Toml), (JSON, Format::Json)] {
            let root = Node::parse(text, format).expect("valid");
            let path = FieldPath::root().key("vm").index(1).key("name");
            let span = root.get(&path).expect("present").span.clone();
            assert_eq!(&text[span], "\"b\"");
            let key = root.key_span(&path).expect("key");
            assert!(text[key].contains("name"));
        }
    }

    #[test]
    fn paths_display_like_they_are_written() {
        let path = FieldPath::root()
            .key("vm")
            .index(2)
            .key("allow")
            .index(0)
            .key("to");
        assert_eq!(path.to_string(), "vm[2].allow[0].to");
    }

    #[test]
    fn json_duplicate_keys_are_syntax_errors() {
        let errors = Node::parse("{\"a\": 1, \"a\": 2}", Format::Json).expect_err("duplicate");
        assert_eq!(errors[0].message, "duplicate key `a`");
        assert_eq!(errors[0].span, Some(9..12));
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let deep = "[".repeat(100_000);
        assert!(Node::parse(&deep, Format::Json).is_err());
        let deep_toml = format!("a = {}", "[".repeat(100_000));
        assert!(Node::parse(&deep_toml, Format::Toml).is_err());
    }
}
