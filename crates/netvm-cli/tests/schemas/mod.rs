//! Checks what the programs write against the schemas `netvm schema
//! --events` and `netvm schema --control` print (shared by the test
//! binaries that include it; not all use every function).
#![allow(dead_code)]

use serde_json::Value;
use std::collections::BTreeSet;

/// The validator for `netvm schema FLAG`.
pub fn validator(flag: &str) -> jsonschema::Validator {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_netvm"))
        .args(["schema", flag])
        .output()
        .expect("netvm schema");
    assert!(out.status.success(), "netvm schema {flag}");
    let schema: Value = serde_json::from_slice(&out.stdout).expect("json");
    jsonschema::validator_for(&schema).expect("a valid schema")
}

fn check(validator: &jsonschema::Validator, value: &Value, what: &str) {
    let errors: Vec<String> = validator
        .iter_errors(value)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(errors.is_empty(), "{what}: {errors:?}");
}

/// Checks every JSON line among `lines` (a process's output: other lines
/// are its error messages) against the events' schema; the kinds seen.
pub fn event_lines(lines: &[String]) -> BTreeSet<String> {
    let validator = validator("--events");
    let mut kinds = BTreeSet::new();
    for line in lines.iter().filter(|l| l.starts_with('{')) {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        check(&validator, &value, line);
        kinds.insert(value["event"].as_str().expect("a kind").to_owned());
    }
    // The agent's adapter for untyped events says so when it drops one.
    assert!(
        !lines.iter().any(|l| l.contains("not a known kind")),
        "{lines:?}"
    );
    kinds
}

/// Checks one control-protocol line (a request, an answer or an event).
pub fn control_line(value: &Value) {
    check(&validator("--control"), value, &value.to_string());
}
