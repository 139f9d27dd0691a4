//! Turns the packets the ruleset's event rules log (NFLOG group
//! `netvm_plan::ruleset::EVENT_LOG_GROUP`, prefix: the event set's name)
//! into security events. Pure: it is given each logged packet as it
//! arrives ([`netvm_netfilter::LogRecord`]) and the time. The kernel
//! logs a key only when it is not yet in its event set (`ev_*`, which
//! then holds it for the set's lifetime) and at most at the rules' rate,
//! so one key is reported once per lifetime and a flood costs no more
//! than the limit; the agent never polls the sets.
//!
//! * `ev_spoofed`, `ev_spoofed6` → `spoofing` (address, MAC, and whose
//!   they are)
//! * `ev_policy`, `ev_policy6` → `policy_drop`; `ev_allowed`,
//!   `ev_allowed6` → `flow_allowed`
//! * `ev_scan`, `ev_scan6` → `port_scan` when one source tried
//!   `scan_ports` distinct ports within the set's 10 s lifetime (once a
//!   minute per source)
//! * `ev_rogue_dhcp`, `ev_rogue_dhcp6` → `rogue_dhcp_server`
//! * `ev_rogue_ra` → `rogue_router_advert`
//!
//! A set's twin ending in `6` (and `ev_rogue_ra`) logs IPv6 packets, the
//! others IPv4 ones; a record of the other family makes no event.
//! Memory is bounded: [`SCAN_SOURCES`] sources with at most `scan_ports`
//! ports each.

use netvm_events::{Event, Flow, Kind, Proto};
use netvm_netfilter::{LogRecord, PacketSummary};
use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;

/// Seconds a source stays quiet after a `port_scan` report.
pub const SCAN_REPORT_EVERY: u64 = 60;
/// Seconds in which `scan_ports` distinct ports make a scan (the
/// lifetime of `ev_scan`'s elements).
pub const SCAN_WINDOW: u64 = 10;
/// Sources followed at once, at most.
pub const SCAN_SOURCES: usize = 4096;

/// Who an address or MAC belongs to (described VMs and leases).
pub trait Names {
    /// The VM (or lease host name) with this address (IPv4 or IPv6, as
    /// text).
    fn of_ip(&self, ip: &str) -> Option<String>;
    /// The VM (or lease host name) with this MAC.
    fn of_mac(&self, mac: &str) -> Option<String>;
}

/// One source's recent new ports: when each was first tried.
#[derive(Debug, Default)]
struct Source {
    ports: VecDeque<(u64, u8, u16)>,
    reported_at: Option<u64>,
}

/// What it remembers between packets.
#[derive(Debug, Default)]
pub struct Watcher {
    scan_ports: u32,
    sources: HashMap<IpAddr, Source>,
}

impl Watcher {
    /// A watcher reporting port scans from `scan_ports` distinct ports.
    pub fn new(scan_ports: u32) -> Watcher {
        Watcher {
            scan_ports: scan_ports.max(1),
            sources: HashMap::new(),
        }
    }

    /// The event `record` makes, at `now` (seconds), if any. Records with
    /// a prefix no event set has, or without the addresses their set
    /// needs, make none.
    pub fn observe(&mut self, now: u64, record: &LogRecord, names: &dyn Names) -> Option<Event> {
        let set = record.prefix.trim_end();
        let packet = record.packet?;
        let (kind, ipv6) = match set {
            "ev_scan" | "ev_spoofed" | "ev_policy" | "ev_allowed" | "ev_rogue_dhcp" => (set, false),
            "ev_scan6" | "ev_spoofed6" | "ev_policy6" | "ev_allowed6" | "ev_rogue_dhcp6" => {
                (set.trim_end_matches('6'), true)
            }
            "ev_rogue_ra" => (set, true),
            _ => return None,
        };
        if packet.src.is_ipv6() != ipv6 {
            return None;
        }
        match kind {
            "ev_scan" => self.scan(now, &packet),
            "ev_spoofed" => {
                let (ip, mac) = (packet.src, record.hw_source?);
                Some(Event::new(Kind::Spoofing {
                    source_ip: ip,
                    source_mac: mac,
                    mac_of: names.of_mac(&mac.to_string()),
                    ip_of: names.of_ip(&ip.to_string()),
                }))
            }
            "ev_rogue_dhcp" | "ev_rogue_ra" => {
                let (ip, mac) = (packet.src, record.hw_source?);
                let vm = names
                    .of_mac(&mac.to_string())
                    .or_else(|| names.of_ip(&ip.to_string()));
                let kind = match (kind, ip) {
                    ("ev_rogue_ra", IpAddr::V6(ip)) => Kind::RogueRouterAdvert { ip, mac },
                    _ => Kind::RogueDhcpServer { ip, mac },
                };
                Some(Event::new(kind).about(vm))
            }
            "ev_policy" | "ev_allowed" => {
                let flow = Flow {
                    from: packet.src,
                    from_vm: names.of_ip(&packet.src.to_string()),
                    to: packet.dst,
                    to_vm: names.of_ip(&packet.dst.to_string()),
                    proto: Proto::from_number(packet.proto),
                    port: packet.dport,
                };
                Some(Event::new(if kind == "ev_policy" {
                    Kind::PolicyDrop(flow)
                } else {
                    Kind::FlowAllowed(flow)
                }))
            }
            _ => None,
        }
    }

    fn scan(&mut self, now: u64, packet: &PacketSummary) -> Option<Event> {
        let port = packet.dport?;
        let window = SCAN_WINDOW;
        if !self.sources.contains_key(&packet.src) && self.sources.len() >= SCAN_SOURCES {
            // Make room: forget sources with nothing recent to remember.
            self.sources.retain(|_, s| {
                s.ports.back().is_some_and(|(at, ..)| now < at + window)
                    || s.reported_at.is_some_and(|at| now < at + SCAN_REPORT_EVERY)
            });
            if self.sources.len() >= SCAN_SOURCES {
                return None;
            }
        }
        let scan_ports = self.scan_ports as usize;
        let source = self.sources.entry(packet.src).or_default();
        while source
            .ports
            .front()
            .is_some_and(|(at, ..)| now >= at + window)
        {
            source.ports.pop_front();
        }
        if !source
            .ports
            .iter()
            .any(|(_, proto, p)| *proto == packet.proto && *p == port)
        {
            source.ports.push_back((now, packet.proto, port));
        }
        if source.ports.len() < scan_ports {
            return None;
        }
        let count = source.ports.len();
        source.ports.clear();
        if source
            .reported_at
            .is_some_and(|at| now < at + SCAN_REPORT_EVERY)
        {
            return None;
        }
        source.reported_at = Some(now);
        Some(Event::new(Kind::PortScan {
            source: packet.src,
            ports: count as u64,
            window_secs: window,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    /// An event as its JSON line shows it.
    fn json(event: Option<Event>) -> Value {
        serde_json::to_value(event.expect("an event")).expect("json")
    }

    struct Two;
    impl Names for Two {
        fn of_ip(&self, ip: &str) -> Option<String> {
            (ip == "192.168.100.101" || ip == "fd00:1::65").then(|| "chrome-vm".to_owned())
        }
        fn of_mac(&self, mac: &str) -> Option<String> {
            (mac == "02:ad:00:00:00:65").then(|| "chrome-vm".to_owned())
        }
    }

    fn record(prefix: &str, src: &str, dst: &str, proto: u8, dport: u16, mac: &str) -> LogRecord {
        LogRecord {
            prefix: prefix.to_owned(),
            hw_source: mac.parse().ok(),
            in_ifindex: Some(2),
            packet: Some(PacketSummary {
                src: src.parse().expect("ip"),
                dst: dst.parse().expect("ip"),
                proto,
                sport: Some(40000),
                dport: Some(dport),
                icmp_type: None,
            }),
        }
    }

    #[test]
    fn a_spoofed_packet_names_whose_address_and_mac_it_used() {
        let mut w = Watcher::new(20);
        let r = record(
            "ev_spoofed ",
            "192.168.100.101",
            "192.168.100.1",
            17,
            53,
            "02:ad:00:00:00:99",
        );
        let event = json(w.observe(1, &r, &Two));
        assert_eq!(event["event"], "spoofing");
        assert_eq!(event["ip_of"], "chrome-vm");
        assert_eq!(event["mac_of"], Value::Null);
        assert_eq!(event["source_mac"], "02:ad:00:00:00:99");
    }

    #[test]
    fn policy_drops_name_both_ends() {
        let mut w = Watcher::new(20);
        let r = record(
            "ev_policy ",
            "192.168.100.101",
            "192.168.100.5",
            6,
            22,
            "02:ad:00:00:00:65",
        );
        let event = json(w.observe(1, &r, &Two));
        assert_eq!(event["event"], "policy_drop");
        assert_eq!(event["from_vm"], "chrome-vm");
        assert_eq!(event["proto"], "tcp");
        assert_eq!(event["port"], 22);
        let mut allowed = r.clone();
        allowed.prefix = "ev_allowed ".to_owned();
        assert_eq!(json(w.observe(1, &allowed, &Two))["event"], "flow_allowed");
    }

    #[test]
    fn a_scan_is_reported_once_per_source_and_minute() {
        let mut w = Watcher::new(20);
        let probe = |w: &mut Watcher, now: u64, src: &str, proto: u8, port: u16| {
            w.observe(
                now,
                &record("ev_scan ", src, "203.0.113.110", proto, port, ""),
                &Two,
            )
        };
        for port in 1..20 {
            assert!(probe(&mut w, 1, "203.0.113.9", 6, port).is_none());
        }
        // The same port again is not a new one.
        assert!(probe(&mut w, 1, "203.0.113.9", 6, 5).is_none());
        for port in 1..5 {
            assert!(probe(&mut w, 1, "203.0.113.10", 6, port).is_none());
        }
        let event = json(probe(&mut w, 2, "203.0.113.9", 17, 1));
        assert_eq!(event["source"], "203.0.113.9");
        assert_eq!(event["ports"], 20);
        for port in 100..140 {
            assert!(probe(&mut w, 30, "203.0.113.9", 6, port).is_none());
        }
        for port in 200..219 {
            assert!(probe(&mut w, 2 + SCAN_REPORT_EVERY, "203.0.113.9", 6, port).is_none());
        }
        assert!(probe(&mut w, 2 + SCAN_REPORT_EVERY, "203.0.113.9", 6, 219).is_some());
    }

    #[test]
    fn ports_older_than_the_window_do_not_count() {
        let mut w = Watcher::new(3);
        let r = |port| record("ev_scan ", "203.0.113.9", "203.0.113.110", 6, port, "");
        assert!(w.observe(1, &r(1), &Two).is_none());
        assert!(w.observe(2, &r(2), &Two).is_none());
        assert!(w.observe(1 + SCAN_WINDOW, &r(3), &Two).is_none());
        assert!(w.observe(1 + SCAN_WINDOW, &r(4), &Two).is_some());
    }

    #[test]
    fn odd_records_make_no_event() {
        let mut w = Watcher::new(1);
        let mut no_packet = record(
            "ev_spoofed ",
            "192.168.100.101",
            "192.168.100.1",
            17,
            53,
            "",
        );
        assert!(w.observe(1, &no_packet, &Two).is_none(), "no MAC");
        no_packet.packet = None;
        assert!(w.observe(1, &no_packet, &Two).is_none());
        let other = record("netvm input drop: ", "1.2.3.4", "5.6.7.8", 6, 1, "");
        assert!(w.observe(1, &other, &Two).is_none());
    }

    #[test]
    fn ipv6_twins_make_the_same_events_with_ipv6_addresses() {
        let mut w = Watcher::new(2);
        let spoofed = record(
            "ev_spoofed6 ",
            "fd00:1::65",
            "fd00:1::1",
            17,
            53,
            "02:ad:00:00:00:99",
        );
        let event = json(w.observe(1, &spoofed, &Two));
        assert_eq!(event["event"], "spoofing");
        assert_eq!(event["source_ip"], "fd00:1::65");
        assert_eq!(event["ip_of"], "chrome-vm");

        let drop = record("ev_policy6 ", "fd00:1::65", "fd00:1::66", 6, 22, "");
        let event = json(w.observe(1, &drop, &Two));
        assert_eq!(
            (event["event"].as_str(), event["from"].as_str()),
            (Some("policy_drop"), Some("fd00:1::65"))
        );
        assert_eq!(event["from_vm"], "chrome-vm");
        let allowed = record("ev_allowed6 ", "fd00:1::65", "fd00:1::66", 17, 53, "");
        assert_eq!(json(w.observe(1, &allowed, &Two))["event"], "flow_allowed");

        let probe = |port| record("ev_scan6 ", "2001:db8::9", "2001:db8::1", 6, port, "");
        assert!(w.observe(1, &probe(1), &Two).is_none());
        let event = json(w.observe(1, &probe(2), &Two));
        assert_eq!(
            (event["event"].as_str(), event["source"].as_str()),
            (Some("port_scan"), Some("2001:db8::9"))
        );

        let ra = record(
            "ev_rogue_ra ",
            "fe80::1",
            "ff02::1",
            58,
            0,
            "02:ad:00:00:00:65",
        );
        let event = json(w.observe(1, &ra, &Two));
        assert_eq!(event["event"], "rogue_router_advert");
        assert_eq!(event["ip"], "fe80::1");
        assert_eq!(event["vm"], "chrome-vm");
        let dhcp6 = record(
            "ev_rogue_dhcp6 ",
            "fe80::2",
            "fe80::3",
            17,
            546,
            "02:ad:00:00:00:65",
        );
        let event = json(w.observe(1, &dhcp6, &Two));
        assert_eq!(
            (event["event"].as_str(), event["ip"].as_str()),
            (Some("rogue_dhcp_server"), Some("fe80::2"))
        );
    }

    #[test]
    fn a_record_of_the_other_family_makes_no_event() {
        let mut w = Watcher::new(1);
        let v4_in_v6_set = record(
            "ev_spoofed6 ",
            "192.168.100.101",
            "192.168.100.1",
            17,
            53,
            "02:ad:00:00:00:99",
        );
        assert!(w.observe(1, &v4_in_v6_set, &Two).is_none());
        let v6_in_v4_set = record("ev_policy ", "fd00:1::65", "fd00:1::66", 6, 22, "");
        assert!(w.observe(1, &v6_in_v4_set, &Two).is_none());
        let v4_ra = record(
            "ev_rogue_ra ",
            "192.168.100.101",
            "192.168.100.1",
            17,
            53,
            "02:ad:00:00:00:99",
        );
        assert!(w.observe(1, &v4_ra, &Two).is_none());
    }

    proptest! {
        /// Whatever the kernel logs, the watcher never panics and follows
        /// at most SCAN_SOURCES sources with at most scan_ports ports each.
        #[test]
        fn any_records_keep_memory_bounded(
            records in proptest::collection::vec(
                (0u8..12, any::<u32>(), any::<u32>(), any::<u8>(), any::<Option<u16>>(), any::<[u8; 6]>(), 0u64..1000, any::<bool>()),
                0..400,
            )
        ) {
            let prefixes = [
                "ev_scan ", "ev_spoofed ", "ev_policy ", "ev_allowed ", "ev_rogue_dhcp ", "x",
                "ev_scan6 ", "ev_spoofed6 ", "ev_policy6 ", "ev_allowed6 ", "ev_rogue_dhcp6 ", "ev_rogue_ra ",
            ];
            let mut w = Watcher::new(4);
            let mut now = 0;
            for (p, src, dst, proto, dport, mac, step, v6) in records {
                now += step % 3;
                let r = LogRecord {
                    prefix: prefixes[p as usize].to_owned(),
                    hw_source: Some(netvm_description::values::MacAddr(mac)),
                    in_ifindex: None,
                    packet: Some(PacketSummary {
                        src: if v6 {
                            IpAddr::from(std::net::Ipv6Addr::from(u128::from(src % 64)))
                        } else {
                            IpAddr::from(std::net::Ipv4Addr::from(src % 64))
                        },
                        dst: IpAddr::from(std::net::Ipv4Addr::from(dst)),
                        proto,
                        sport: None,
                        dport,
                        icmp_type: None,
                    }),
                };
                let _ = w.observe(now, &r, &Two);
                prop_assert!(w.sources.len() <= SCAN_SOURCES);
                prop_assert!(w.sources.values().all(|s| s.ports.len() <= 4));
            }
        }
    }
}
