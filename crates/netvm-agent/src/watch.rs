//! Turns the ruleset's event sets (`ev_*`, see
//! `netvm_plan::ruleset::EVENT_SETS`) into security events. Pure: it is
//! given each set's elements as read (once a second) and remembers what
//! it has reported, so a key is reported once while its element lives.
//! Memory is bounded by the sets' sizes.
//!
//! * `ev_spoofed` → `spoofing` (address, MAC, and whose they are)
//! * `ev_policy` → `policy_drop`; `ev_allowed` → `flow_allowed`
//! * `ev_scan` → `port_scan` when one source tried `scan_ports` distinct
//!   ports within the set's 10 s lifetime (once a minute per source)
//! * `ev_rogue_dhcp` → `rogue_dhcp_server`

use serde_json::{json, Value};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// One element: its key's parts as text (`["192.168.100.5", "tcp", "22"]`).
pub type Element = Vec<String>;

/// Seconds a source stays quiet after a `port_scan` report.
pub const SCAN_REPORT_EVERY: u64 = 60;
/// Sources remembered as recently reported, at most.
const SCAN_SOURCES: usize = 4096;

/// Who an address or MAC belongs to (described VMs and leases).
pub trait Names {
    /// The VM (or lease host name) with this address.
    fn of_ip(&self, ip: &str) -> Option<String>;
    /// The VM (or lease host name) with this MAC.
    fn of_mac(&self, mac: &str) -> Option<String>;
}

/// What has been reported.
#[derive(Debug, Default)]
pub struct Watcher {
    scan_ports: u32,
    seen: HashMap<&'static str, HashSet<Element>>,
    scanners: HashMap<Ipv4Addr, u64>,
}

impl Watcher {
    /// A watcher reporting port scans from `scan_ports` distinct ports.
    pub fn new(scan_ports: u32) -> Watcher {
        Watcher {
            scan_ports: scan_ports.max(1),
            ..Watcher::default()
        }
    }

    /// The events for set `set` now holding `elements`, at `now` (seconds).
    pub fn observe(
        &mut self,
        now: u64,
        set: &'static str,
        elements: &[Element],
        names: &dyn Names,
    ) -> Vec<Value> {
        if set == "ev_scan" {
            return self.scans(now, elements);
        }
        let current: HashSet<Element> = elements.iter().cloned().collect();
        let before = self.seen.insert(set, current).unwrap_or_default();
        let mut events: Vec<Value> = elements
            .iter()
            .filter(|e| !before.contains(*e))
            .filter_map(|e| describe(set, e, names))
            .collect();
        events.dedup();
        events
    }

    fn scans(&mut self, now: u64, elements: &[Element]) -> Vec<Value> {
        self.scanners
            .retain(|_, at| now.saturating_sub(*at) < SCAN_REPORT_EVERY);
        let mut ports: HashMap<Ipv4Addr, HashSet<(&str, &str)>> = HashMap::new();
        for e in elements {
            if let [source, proto, port] = e.as_slice() {
                if let Ok(source) = source.parse::<Ipv4Addr>() {
                    ports.entry(source).or_default().insert((proto, port));
                }
            }
        }
        let mut sources: Vec<(Ipv4Addr, usize)> = ports
            .iter()
            .map(|(s, p)| (*s, p.len()))
            .filter(|(_, n)| *n >= self.scan_ports as usize)
            .collect();
        sources.sort();
        let mut events = Vec::new();
        for (source, count) in sources {
            if self.scanners.contains_key(&source) || self.scanners.len() >= SCAN_SOURCES {
                continue;
            }
            self.scanners.insert(source, now);
            events.push(json!({
                "event": "port_scan",
                "source": source.to_string(),
                "ports": count,
                "window_secs": 10,
            }));
        }
        events
    }
}

fn describe(set: &str, e: &Element, names: &dyn Names) -> Option<Value> {
    match (set, e.as_slice()) {
        ("ev_spoofed", [ip, mac]) => Some(json!({
            "event": "spoofing",
            "source_ip": ip,
            "source_mac": mac,
            "mac_of": names.of_mac(mac),
            "ip_of": names.of_ip(ip),
        })),
        ("ev_rogue_dhcp", [ip, mac]) => Some(json!({
            "event": "rogue_dhcp_server",
            "ip": ip,
            "mac": mac,
            "vm": names.of_mac(mac).or_else(|| names.of_ip(ip)),
        })),
        ("ev_policy" | "ev_allowed", [from, to, proto, port]) => Some(json!({
            "event": if set == "ev_policy" { "policy_drop" } else { "flow_allowed" },
            "from": from,
            "from_vm": names.of_ip(from),
            "to": to,
            "to_vm": names.of_ip(to),
            "proto": proto,
            "port": port.parse::<u16>().ok(),
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Two;
    impl Names for Two {
        fn of_ip(&self, ip: &str) -> Option<String> {
            (ip == "192.168.100.101").then(|| "chrome-vm".to_owned())
        }
        fn of_mac(&self, mac: &str) -> Option<String> {
            (mac == "02:ad:00:00:00:65").then(|| "chrome-vm".to_owned())
        }
    }

    fn e(parts: &[&str]) -> Element {
        parts.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn a_spoofed_pair_is_reported_once_while_its_element_lives() {
        let mut w = Watcher::new(20);
        let set = [e(&["192.168.100.101", "02:ad:00:00:00:99"])];
        let first = w.observe(1, "ev_spoofed", &set, &Two);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0]["event"], "spoofing");
        assert_eq!(first[0]["ip_of"], "chrome-vm");
        assert_eq!(first[0]["mac_of"], Value::Null);
        assert!(w.observe(2, "ev_spoofed", &set, &Two).is_empty());
        // It expired, then came back: a new report.
        assert!(w.observe(61, "ev_spoofed", &[], &Two).is_empty());
        assert_eq!(w.observe(62, "ev_spoofed", &set, &Two).len(), 1);
    }

    #[test]
    fn policy_drops_name_both_ends() {
        let mut w = Watcher::new(20);
        let set = [e(&["192.168.100.101", "192.168.100.5", "tcp", "22"])];
        let events = w.observe(1, "ev_policy", &set, &Two);
        assert_eq!(events[0]["event"], "policy_drop");
        assert_eq!(events[0]["from_vm"], "chrome-vm");
        assert_eq!(events[0]["port"], 22);
        let allowed = w.observe(1, "ev_allowed", &set, &Two);
        assert_eq!(allowed[0]["event"], "flow_allowed");
    }

    #[test]
    fn a_scan_is_reported_once_per_source_and_minute() {
        let mut w = Watcher::new(20);
        let few: Vec<Element> = (1..20)
            .map(|p| e(&["203.0.113.9", "tcp", &p.to_string()]))
            .collect();
        assert!(w.observe(1, "ev_scan", &few, &Two).is_empty());
        let mut many = few.clone();
        many.push(e(&["203.0.113.9", "udp", "1"]));
        many.extend((1..5).map(|p| e(&["203.0.113.10", "tcp", &p.to_string()])));
        let events = w.observe(2, "ev_scan", &many, &Two);
        assert_eq!(events.len(), 1);
        assert_eq!(events[0]["source"], "203.0.113.9");
        assert_eq!(events[0]["ports"], 20);
        assert!(w.observe(30, "ev_scan", &many, &Two).is_empty());
        assert_eq!(
            w.observe(2 + SCAN_REPORT_EVERY, "ev_scan", &many, &Two)
                .len(),
            1
        );
    }

    #[test]
    fn odd_elements_are_ignored() {
        let mut w = Watcher::new(1);
        assert!(w.observe(1, "ev_spoofed", &[e(&["x"])], &Two).is_empty());
        assert!(w
            .observe(1, "ev_scan", &[e(&["not-an-ip", "tcp", "1"])], &Two)
            .is_empty());
    }
}
