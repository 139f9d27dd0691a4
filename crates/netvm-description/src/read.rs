//! Reading the document tree into the typed file format ([`RawSystem`]),
//! collecting every unknown key and every badly written value rather than
//! stopping at the first.
//!
//! Unknown keys are found by walking the tree beside the JSON Schema (so a
//! hint can name the closest known key) and are left out of what serde
//! reads. A value serde rejects is reported and left out too, and reading
//! is tried again, so one run reports them all.

use crate::diagnostic::{Diagnostic, Problem};
use crate::raw::RawSystem;
use crate::source::{FieldPath, Node, NodeKind, Segment};
use serde_json::Value;
use std::collections::BTreeSet;
use std::sync::LazyLock;

/// The JSON Schema of the file format, built once.
pub(crate) static SCHEMA: LazyLock<Value> =
    LazyLock::new(|| serde_json::to_value(schemars::schema_for!(RawSystem)).unwrap_or_default());

/// Reading gives up after this many bad values (each costs one retry).
const MAX_BAD_VALUES: usize = 200;

/// What reading found.
pub(crate) struct Reading {
    /// The typed description, with any badly written value left out
    /// (defaults in its place); `None` when too much was wrong to read it.
    pub raw: Option<RawSystem>,
    /// Unknown keys and badly written values.
    pub diagnostics: Vec<Diagnostic>,
    /// True when every value left out was local to one VM (not its name)
    /// or to the DNS records, so checking how the rest relates is still
    /// meaningful and will not report problems that are only echoes of
    /// the ones already found.
    pub checkable: bool,
}

/// Reads the tree into the file format, collecting every problem.
pub(crate) fn read(text: &str, root: &Node) -> Reading {
    let mut diagnostics = Vec::new();
    let mut left_out = BTreeSet::new();
    unknown_keys(
        text,
        root,
        root,
        &SCHEMA,
        &FieldPath::root(),
        &mut diagnostics,
        &mut left_out,
    );

    let mut bad_values: Vec<FieldPath> = Vec::new();
    loop {
        let value = without(root, &FieldPath::root(), &left_out);
        let error = match serde_path_to_error::deserialize::<_, RawSystem>(value) {
            Ok(raw) => {
                let checkable = bad_values.iter().all(is_local);
                return Reading {
                    raw: Some(raw),
                    diagnostics,
                    checkable,
                };
            }
            Err(error) => error,
        };
        let path = original_path(root, error.path(), &left_out);
        let message = error.into_inner().to_string();
        let missing = message
            .strip_prefix("missing field `")
            .and_then(|rest| rest.strip_suffix('`'));
        // A required key whose bad value was left out is missing now:
        // that was reported already.
        let echo = missing.is_some_and(|field| left_out.contains(&path.key(field)));
        if !echo {
            let message = match missing {
                Some(field) => format!("missing key `{field}`"),
                None => message,
            };
            let problem = Problem::InvalidValue { message };
            diagnostics.push(Diagnostic::at_path(
                text,
                root,
                problem,
                path.clone(),
                false,
            ));
        }
        bad_values.push(path.clone());
        if path == FieldPath::root() || !left_out.insert(path) || bad_values.len() >= MAX_BAD_VALUES
        {
            return Reading {
                raw: None,
                diagnostics,
                checkable: false,
            };
        }
    }
}

/// True for a path inside one VM entry (but not its name) or the DNS table.
fn is_local(path: &FieldPath) -> bool {
    match path.segments() {
        [Segment::Key(dns), ..] if dns == "dns" => true,
        [Segment::Key(vm), Segment::Index(_), Segment::Key(field), ..] => {
            vm == "vm" && field != "name"
        }
        _ => false,
    }
}

/// Reports keys the schema does not have at their place in the tree and
/// records them in `left_out`.
fn unknown_keys(
    text: &str,
    root: &Node,
    node: &Node,
    schema: &Value,
    path: &FieldPath,
    out: &mut Vec<Diagnostic>,
    left_out: &mut BTreeSet<FieldPath>,
) {
    match &node.kind {
        NodeKind::Table(entries) => {
            let Some(properties) = find(schema, "properties").and_then(Value::as_object) else {
                return;
            };
            for entry in entries {
                let child = path.key(&entry.key);
                match properties.get(&entry.key) {
                    Some(sub) => unknown_keys(text, root, &entry.value, sub, &child, out, left_out),
                    None => {
                        let expected: Vec<String> = properties.keys().cloned().collect();
                        let problem = Problem::UnknownKey {
                            key: entry.key.clone(),
                            suggestion: closest(&entry.key, expected.iter().map(String::as_str)),
                            expected,
                        };
                        out.push(Diagnostic::at_path(
                            text,
                            root,
                            problem,
                            child.clone(),
                            true,
                        ));
                        left_out.insert(child);
                    }
                }
            }
        }
        NodeKind::Array(items) => {
            if let Some(item_schema) = find(schema, "items") {
                for (i, item) in items.iter().enumerate() {
                    unknown_keys(text, root, item, item_schema, &path.index(i), out, left_out);
                }
            }
        }
        NodeKind::Scalar(_) => {}
    }
}

/// Finds `field` in `schema`, following `$ref`s and `anyOf`/`oneOf`
/// branches (how schemars writes `Option<T>`), to a small fixed depth.
fn find<'a>(schema: &'a Value, field: &str) -> Option<&'a Value> {
    fn resolve(schema: &Value, depth: u8) -> Option<&Value> {
        let reference = schema.get("$ref").and_then(Value::as_str);
        match reference.and_then(|r| r.strip_prefix("#/$defs/")) {
            Some(name) if depth < 8 => resolve(SCHEMA.get("$defs")?.get(name)?, depth + 1),
            _ => Some(schema),
        }
    }
    fn search<'a>(schema: &'a Value, field: &str, depth: u8) -> Option<&'a Value> {
        let schema = resolve(schema, 0)?;
        if let Some(found) = schema.get(field) {
            return Some(found);
        }
        if depth >= 4 {
            return None;
        }
        ["anyOf", "oneOf", "allOf"]
            .iter()
            .filter_map(|k| schema.get(*k)?.as_array())
            .flatten()
            .find_map(|branch| search(branch, field, depth + 1))
    }
    search(schema, field, 0)
}

/// The closest candidate to `word` by edit distance, if close enough to be
/// a likely typo.
pub(crate) fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    candidates
        .map(|c| (strsim::levenshtein(word, c), c))
        .filter(|(distance, c)| *distance <= 2.max(c.len() / 3))
        .min()
        .map(|(_, c)| c.to_owned())
}

/// The JSON value of `node` without the entries at `left_out` paths.
fn without(node: &Node, path: &FieldPath, left_out: &BTreeSet<FieldPath>) -> Value {
    match &node.kind {
        NodeKind::Scalar(value) => value.clone(),
        NodeKind::Array(items) => items
            .iter()
            .enumerate()
            .map(|(i, item)| (path.index(i), item))
            .filter(|(p, _)| !left_out.contains(p))
            .map(|(p, item)| without(item, &p, left_out))
            .collect(),
        NodeKind::Table(entries) => entries
            .iter()
            .map(|e| (path.key(&e.key), e))
            .filter(|(p, _)| !left_out.contains(p))
            .map(|(p, e)| (e.key.clone(), without(&e.value, &p, left_out)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    }
}

/// Maps a serde path (whose array indices count only the entries not left
/// out) back to the path in the file.
fn original_path(
    root: &Node,
    path: &serde_path_to_error::Path,
    left_out: &BTreeSet<FieldPath>,
) -> FieldPath {
    use serde_path_to_error::Segment as S;
    let mut result = FieldPath::root();
    let mut node = Some(root);
    for segment in path.iter() {
        match segment {
            S::Map { key } => {
                result = result.key(key);
                node = node.and_then(|n| n.get(&FieldPath::root().key(key)));
            }
            S::Seq { index } => {
                let original = match node.map(|n| &n.kind) {
                    Some(NodeKind::Array(items)) => (0..items.len())
                        .filter(|i| !left_out.contains(&result.index(*i)))
                        .nth(*index)
                        .unwrap_or(*index),
                    _ => *index,
                };
                result = result.index(original);
                node = node.and_then(|n| n.get(&FieldPath::root().index(original)));
            }
            S::Enum { .. } | S::Unknown => {}
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Format;

    fn read_toml(text: &str) -> Reading {
        let root = Node::parse(text, Format::Toml).expect("valid toml");
        read(text, &root)
    }

    #[test]
    fn reports_every_unknown_key_with_a_suggestion() {
        let Reading {
            raw,
            diagnostics,
            checkable,
        } = read_toml("[network]\nsubnett = \"10.0.0.0/24\"\n[[vm]]\nname = \"a\"\nmca = \"x\"\n");
        assert!(
            raw.is_some() && checkable,
            "unknown keys alone do not stop checking"
        );
        let problems: Vec<_> = diagnostics.iter().map(|d| d.problem.clone()).collect();
        assert!(
            matches!(&problems[0], Problem::UnknownKey { key, suggestion: Some(s), .. } if key == "subnett" && s == "subnet")
        );
        assert!(
            matches!(&problems[1], Problem::UnknownKey { key, suggestion: Some(s), .. } if key == "mca" && s == "mac")
        );
        let loc = diagnostics[1].location.as_ref().expect("located");
        assert_eq!((loc.line, loc.column), (5, 1));
    }

    #[test]
    fn reports_every_bad_value() {
        let text = "[network]\nmtu = \"big\"\n[[vm]]\nname = \"a\"\n[[vm]]\nkind = \"app\"\n[[vm]]\nname = \"c\"\nmac = \"zz\"\n";
        let reading = read_toml(text);
        assert!(reading.raw.is_some() && !reading.checkable);
        let paths: Vec<String> = reading
            .diagnostics
            .iter()
            .map(|d| d.path.to_string())
            .collect();
        assert_eq!(paths, ["network.mtu", "vm[1]", "vm[2].mac"]);
        assert!(reading.diagnostics[1]
            .problem
            .to_string()
            .contains("missing key `name`"));
    }

    #[test]
    fn a_bad_required_value_is_reported_once() {
        let text = "[[vm]]\nname = \"a\"\nallow = [{ to = \"B_B\", proto = \"tcp\" }]\n";
        let reading = read_toml(text);
        assert_eq!(reading.diagnostics.len(), 1, "{:?}", reading.diagnostics);
        assert_eq!(reading.diagnostics[0].path.to_string(), "vm[0].allow[0].to");
        assert!(reading.checkable, "a VM's rule is local to it");
    }
}
