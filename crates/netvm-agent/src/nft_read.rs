//! Reads from the loaded ruleset with `nft -j`: the elements of an event
//! set and the named counters. Parsing is separate from running `nft`,
//! and never fails: what it does not understand it leaves out.

use crate::watch::Element;
use serde_json::Value;
use std::process::Command;

fn nft_json(args: &[&str]) -> Option<Value> {
    let out = Command::new("nft").arg("-j").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The elements of set `name` in table `inet netvm`; empty when it cannot
/// be read.
pub fn set_elements(name: &str) -> Vec<Element> {
    let table = netvm_plan::ruleset::TABLE;
    nft_json(&["list", "set", "inet", table, name])
        .map(|v| elements(&v))
        .unwrap_or_default()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The elements in `nft -j list set` output.
pub fn elements(listing: &Value) -> Vec<Element> {
    let mut out = Vec::new();
    let items = listing["nftables"].as_array().into_iter().flatten();
    for set in items.filter_map(|i| i.get("set")) {
        for elem in set["elem"].as_array().into_iter().flatten() {
            // With timeouts an element is {"elem": {"val": …, "expires": …}}.
            let val = elem.get("elem").map_or(elem, |e| &e["val"]);
            let parts: Option<Element> = match val {
                Value::Object(o) => o
                    .get("concat")
                    .and_then(Value::as_array)
                    .map(|parts| parts.iter().filter_map(text).collect()),
                other => text(other).map(|t| vec![t]),
            };
            if let Some(parts) = parts {
                out.push(parts);
            }
        }
    }
    out
}

/// The named counters of table `inet netvm`: name, packets, bytes.
pub fn counters() -> Vec<(String, u64, u64)> {
    let table = netvm_plan::ruleset::TABLE;
    nft_json(&["list", "counters", "table", "inet", table])
        .map(|v| parse_counters(&v))
        .unwrap_or_default()
}

/// The counters in `nft -j list counters` output.
pub fn parse_counters(listing: &Value) -> Vec<(String, u64, u64)> {
    listing["nftables"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i.get("counter"))
        .filter_map(|c| {
            Some((
                c["name"].as_str()?.to_owned(),
                c["packets"].as_u64()?,
                c["bytes"].as_u64()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_concatenated_elements_with_timeouts() {
        let listing = json!({"nftables": [
            {"metainfo": {"version": "1.0.6"}},
            {"set": {"name": "ev_scan", "elem": [
                {"elem": {"val": {"concat": ["127.0.0.1", "tcp", 1]}, "expires": 9}},
                {"elem": {"val": {"concat": ["127.0.0.1", "udp", 2]}, "expires": 9}},
                "192.168.1.1",
                {"bogus": true}
            ]}}
        ]});
        assert_eq!(
            elements(&listing),
            vec![
                vec!["127.0.0.1".to_owned(), "tcp".to_owned(), "1".to_owned()],
                vec!["127.0.0.1".to_owned(), "udp".to_owned(), "2".to_owned()],
                vec!["192.168.1.1".to_owned()],
            ]
        );
        assert!(elements(&json!({"nope": 1})).is_empty());
    }

    #[test]
    fn reads_counters() {
        let listing = json!({"nftables": [
            {"counter": {"family": "inet", "name": "spoofed", "table": "netvm", "packets": 5, "bytes": 420}},
            {"counter": {"name": "broken"}}
        ]});
        assert_eq!(
            parse_counters(&listing),
            vec![("spoofed".to_owned(), 5, 420)]
        );
    }
}
