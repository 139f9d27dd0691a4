//! The Net VM's nftables ruleset, rendered as the text of one `nft -f`
//! transaction that replaces our table (`inet netvm`) and nothing else.
//!
//! Default deny everywhere; what the description allows is looked up in
//! sets, so the cost of a packet does not grow with the number of rules:
//!
//! * `endpoints` (`ipv4_addr . ether_addr`): who may send from the
//!   internal side (reservations here; the DHCP server adds leases at run
//!   time). Checked in `guard`, before conntrack, with a counter.
//! * `internet`: VMs allowed out through the uplink (masqueraded).
//! * `flows` (`ipv4_addr . ipv4_addr . inet_proto . inet_service`,
//!   intervals) and `icmp_flows`: VM-to-VM permissions.
//! * Port forwards: DNAT from the uplink, with NAT reflection so a VM can
//!   use the forwarded public address too.
//! * Event sets (`ev_*`, dynamic, with timeouts and a size): what the
//!   agent reports as security events. A packet worth reporting adds its
//!   key (who, to whom, which port) in a rule of its own, so a full set
//!   never changes a verdict, and memory stays bounded whatever arrives.
//!   In front of each such rule, a rule with the same match logs the
//!   packet to NFLOG group [`EVENT_LOG_GROUP`] (prefix: the set's name)
//!   while its key is not in the set yet, under a rate limit: the agent
//!   is told of each key once per element lifetime, pushed, and a full
//!   set or a flood costs no more than the limit. See [`EVENT_SETS`].
//!
//! Pure and deterministic: same description and interface names, same text.

use crate::policy::PolicyPlan;
use netvm_description::values::{IfName, MacAddr, Protocol};
use netvm_description::System;
use serde::Serialize;
use std::fmt::Write;
use std::net::Ipv4Addr;

/// The Net VM's interfaces, by the names it sees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetVmInterfaces {
    /// The internal interface (Ghaf names it `ethint0`).
    pub internal: IfName,
    /// The uplink.
    pub uplink: IfName,
}

/// The table every rule lives in.
pub const TABLE: &str = "netvm";

/// What an event set's elements are made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKey {
    /// Source address and source MAC (`ip saddr . ether saddr`).
    SourceAddressMac,
    /// Source, destination, protocol, destination port
    /// (`ip saddr . ip daddr . meta l4proto . th dport`).
    Connection,
    /// Source, protocol, destination port
    /// (`ip saddr . meta l4proto . th dport`).
    SourceService,
}

impl EventKey {
    /// The set's nftables element type.
    pub fn nft_type(self) -> &'static str {
        match self {
            EventKey::SourceAddressMac => "ipv4_addr . ether_addr",
            EventKey::Connection => "ipv4_addr . ipv4_addr . inet_proto . inet_service",
            EventKey::SourceService => "ipv4_addr . inet_proto . inet_service",
        }
    }

    /// The expression a rule builds the key with from a packet.
    pub fn nft_expression(self) -> &'static str {
        match self {
            EventKey::SourceAddressMac => "ip saddr . ether saddr",
            EventKey::Connection => "ip saddr . ip daddr . meta l4proto . th dport",
            EventKey::SourceService => "ip saddr . meta l4proto . th dport",
        }
    }
}

/// One event set of the ruleset and how its packets are pushed to the
/// agent. An element lives for `lifetime_secs` from the first packet
/// (`add` does not refresh it), so one key is reported at most once per
/// lifetime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct EventSet {
    /// The set's name in the table (`ev_…`).
    pub name: &'static str,
    /// What its elements are made of.
    pub key: EventKey,
    /// How long an element lives, in seconds.
    pub lifetime_secs: u32,
    /// Most elements at once.
    pub size: u32,
    /// The NFLOG group its packets are logged to.
    pub log_group: u16,
    /// The NFLOG prefix of its packets (the set's name and a space).
    pub log_prefix: &'static str,
    /// Packets logged per second at most (per rule).
    pub log_rate_per_second: u32,
    /// Packets logged in a burst above the rate.
    pub log_burst: u32,
}

/// The NFLOG group the event rules log to (the agent listens on it).
pub const EVENT_LOG_GROUP: u16 = 7;

/// Event packets logged per second at most, per rule. A bound on the
/// agent's work, set above what the agent reports (its own limit, 20
/// events a second with a burst of 100, counts what it refuses in
/// `events_suppressed`): a packet this limit stops is never counted, so
/// it must not be the one that binds.
pub const EVENT_LOG_RATE: u32 = 1000;

/// Event packets logged in a burst above [`EVENT_LOG_RATE`], per rule.
pub const EVENT_LOG_BURST: u32 = 1000;

const fn event_set(
    name: &'static str,
    log_prefix: &'static str,
    key: EventKey,
    lifetime_secs: u32,
    size: u32,
) -> EventSet {
    EventSet {
        name,
        key,
        lifetime_secs,
        size,
        log_group: EVENT_LOG_GROUP,
        log_prefix,
        log_rate_per_second: EVENT_LOG_RATE,
        log_burst: EVENT_LOG_BURST,
    }
}

/// A packet from the internal side with an address and MAC that are not
/// a pair in `endpoints`.
pub const EV_SPOOFED: EventSet = event_set(
    "ev_spoofed",
    "ev_spoofed ",
    EventKey::SourceAddressMac,
    60,
    4096,
);

/// A new VM-to-VM or VM-to-Internet connection the policy refused.
pub const EV_POLICY: EventSet =
    event_set("ev_policy", "ev_policy ", EventKey::Connection, 60, 4096);

/// A new VM-to-VM connection the policy allowed.
pub const EV_ALLOWED: EventSet =
    event_set("ev_allowed", "ev_allowed ", EventKey::Connection, 60, 4096);

/// A refused new connection from the uplink: source, protocol, port
/// (many ports from one source in the lifetime is a port scan).
pub const EV_SCAN: EventSet = event_set("ev_scan", "ev_scan ", EventKey::SourceService, 10, 65536);

/// A DHCP server answer (UDP 67 to 68) seen on the internal side.
pub const EV_ROGUE_DHCP: EventSet = event_set(
    "ev_rogue_dhcp",
    "ev_rogue_dhcp ",
    EventKey::SourceAddressMac,
    60,
    1024,
);

/// The event sets, in the order the ruleset declares them.
pub const EVENT_SETS: [EventSet; 5] = [EV_SPOOFED, EV_POLICY, EV_ALLOWED, EV_SCAN, EV_ROGUE_DHCP];

/// `60` seconds as nft writes it (`1m`), others in seconds (`10s`).
fn nft_duration(secs: u32) -> String {
    if secs != 0 && secs.is_multiple_of(60) {
        format!("{}m", secs / 60)
    } else {
        format!("{secs}s")
    }
}

/// The rules for one event: with `match_` (tabs and all, up to the
/// statement), first log the packet while its key is new (rate-limited),
/// then add the key.
fn event_rules(match_: &str, set: &EventSet) -> String {
    let key = set.key.nft_expression();
    format!(
        "{match_} {key} != @{name} limit rate {rate}/second burst {burst} packets log group {group} prefix \"{prefix}\"\n\
         {match_} add @{name} {{ {key} }}\n",
        name = set.name,
        rate = set.log_rate_per_second,
        burst = set.log_burst,
        group = set.log_group,
        prefix = set.log_prefix,
    )
}

/// Drops logged per second at most, per chain.
const LOG_RATE: &str = "10/second";

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// Renders the ruleset for `system` with the given policy and interfaces;
/// `endpoints` is what the `endpoints` set starts with (reservations and
/// the leases still live), in the same transaction.
pub fn render(
    system: &System,
    policy: &PolicyPlan,
    names: &NetVmInterfaces,
    endpoints: &[(Ipv4Addr, MacAddr)],
) -> String {
    let internal = names.internal.as_str();
    let uplink = names.uplink.as_str();
    let netvm_ip = system.netvm.endpoint.ip;
    let subnet = system.network.subnet;
    let mut endpoints: Vec<String> = endpoints
        .iter()
        .map(|(ip, mac)| format!("{ip} . {mac}"))
        .collect();
    endpoints.sort();
    endpoints.dedup();
    let internet: Vec<String> = system
        .vms
        .iter()
        .filter(|vm| vm.internet)
        .map(|vm| vm.endpoint.ip.to_string())
        .collect();
    let mut flows = Vec::new();
    let mut icmp_flows = Vec::new();
    for f in &policy.flows {
        if f.proto == Protocol::Icmp {
            icmp_flows.push(format!("{} . {}", f.from_ip, f.to_ip));
        } else {
            let ports = match f.ports {
                Some(ports) => ports.to_string(),
                None => "1-65535".to_owned(),
            };
            flows.push(format!(
                "{} . {} . {} . {}",
                f.from_ip, f.to_ip, f.proto, ports
            ));
        }
    }
    icmp_flows.dedup();

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# netvm ruleset for the net-vm: generated, do not edit."
    );
    let _ = writeln!(
        out,
        "# Replaces table inet {TABLE} atomically; other tables are untouched."
    );
    let _ = writeln!(out, "table inet {TABLE}");
    let _ = writeln!(out, "delete table inet {TABLE}");
    let _ = writeln!(out, "table inet {TABLE} {{");

    // Sets.
    let set = |out: &mut String, name: &str, kind: &str, flags: &str, elements: &[String]| {
        let _ = writeln!(out, "\tset {name} {{");
        let _ = writeln!(out, "\t\ttype {kind}");
        if !flags.is_empty() {
            let _ = writeln!(out, "\t\tflags {flags}");
        }
        if !elements.is_empty() {
            let _ = writeln!(out, "\t\telements = {{ {} }}", list(elements));
        }
        let _ = writeln!(out, "\t}}\n");
    };
    set(
        &mut out,
        "endpoints",
        "ipv4_addr . ether_addr",
        "",
        &endpoints,
    );
    set(&mut out, "internet", "ipv4_addr", "", &internet);
    set(
        &mut out,
        "flows",
        "ipv4_addr . ipv4_addr . inet_proto . inet_service",
        "interval",
        &flows,
    );
    set(
        &mut out,
        "icmp_flows",
        "ipv4_addr . ipv4_addr",
        "",
        &icmp_flows,
    );
    let _ = writeln!(out, "\tset ping_sources {{\n\t\ttype ipv4_addr\n\t\tflags dynamic, timeout\n\t\ttimeout 1m\n\t\tsize 65536\n\t}}\n");
    for ev in &EVENT_SETS {
        let _ = writeln!(
            out,
            "\tset {} {{\n\t\ttype {}\n\t\tflags dynamic, timeout\n\t\ttimeout {}\n\t\tsize {}\n\t}}\n",
            ev.name,
            ev.key.nft_type(),
            nft_duration(ev.lifetime_secs),
            ev.size
        );
    }
    for counter in [
        "spoofed",
        "input_dropped",
        "forward_dropped",
        "ipv6_dropped",
    ] {
        let _ = writeln!(out, "\tcounter {counter} {{\n\t}}\n");
    }

    // Anti-spoofing, before conntrack.
    let spoofed = event_rules(
        &format!("\t\tiifname \"{internal}\" meta nfproto ipv4"),
        &EV_SPOOFED,
    );
    let _ = writeln!(
        out,
        "\tchain guard {{\n\
         \t\ttype filter hook prerouting priority raw; policy accept;\n\
         \t\tiifname \"{internal}\" meta nfproto ipv4 ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept comment \"DHCP before an address\"\n\
         \t\tiifname \"{internal}\" meta nfproto ipv4 ip saddr . ether saddr @endpoints accept\n\
{spoofed}\
         \t\tiifname \"{internal}\" meta nfproto ipv4 limit rate {LOG_RATE} log prefix \"netvm spoofed: \"\n\
         \t\tiifname \"{internal}\" meta nfproto ipv4 counter name spoofed drop\n\
         \t\tiifname \"{uplink}\" ip saddr {{ {subnet}, 127.0.0.0/8 }} counter name spoofed drop comment \"internal sources from outside\"\n\
         \t}}\n"
    );

    // Metrics: only the VMs the description names may read them.
    let metrics = match &system.agent.metrics {
        Some(m) if !m.allow.is_empty() => {
            let readers: Vec<String> = system
                .vms
                .iter()
                .filter(|vm| m.allow.contains(&vm.name))
                .map(|vm| vm.endpoint.ip.to_string())
                .collect();
            format!(
                "\t\tiifname \"{internal}\" ip daddr {netvm_ip} ip saddr {{ {} }} tcp dport {} accept comment \"metrics\"\n",
                list(&readers),
                m.port
            )
        }
        _ => String::new(),
    };

    // Input: the net-vm's own services.
    let rogue_dhcp = event_rules(
        &format!("\t\tiifname \"{internal}\" udp sport 67 udp dport 68"),
        &EV_ROGUE_DHCP,
    );
    let scan = event_rules(
        &format!("\t\tiifname \"{uplink}\" ct state new meta l4proto {{ tcp, udp }}"),
        &EV_SCAN,
    );
    let _ = writeln!(
        out,
        "\tchain input {{\n\
         \t\ttype filter hook input priority filter; policy drop;\n\
         \t\tct state invalid drop\n\
         \t\ttcp flags & (fin | syn) == (fin | syn) drop\n\
         \t\ttcp flags & (syn | rst) == (syn | rst) drop\n\
         \t\ttcp flags & (fin | syn | rst | psh | ack | urg) == 0x0 drop\n\
         \t\tct state established,related accept\n\
         \t\tiif \"lo\" accept\n\
{rogue_dhcp}\
         \t\tiifname \"{internal}\" udp sport 67 udp dport 68 drop comment \"another DHCP server\"\n\
         \t\tiifname \"{internal}\" udp dport 67 accept comment \"DHCP\"\n\
         \t\tiifname \"{internal}\" ip daddr {netvm_ip} meta l4proto {{ tcp, udp }} th dport 53 accept comment \"DNS\"\n\
         \t\ticmp type echo-request add @ping_sources {{ ip saddr limit rate over 5/second burst 10 packets }} drop comment \"ping flood\"\n\
         \t\tiifname \"{internal}\" ip daddr {netvm_ip} icmp type echo-request accept\n\
         \t\tiifname \"{uplink}\" fib daddr . iif type local icmp type echo-request accept comment \"the uplink's own address\"\n\
         \t\tiifname \"{uplink}\" udp sport 67 udp dport 68 accept comment \"uplink DHCP client\"\n\
{metrics}{scan}\
         \t\tlimit rate {LOG_RATE} log prefix \"netvm input drop: \"\n\
         \t\tcounter name input_dropped\n\
         \t}}\n"
    );

    // Forward: the policy.
    let allowed = event_rules(
        &format!("\t\tiifname \"{internal}\" oifname \"{internal}\" ct state new ip saddr . ip daddr . meta l4proto . th dport @flows"),
        &EV_ALLOWED,
    );
    let refused = event_rules(
        &format!("\t\tiifname \"{internal}\" ct state new meta l4proto {{ tcp, udp }}"),
        &EV_POLICY,
    );
    let _ = writeln!(
        out,
        "\tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy drop;\n\
         \t\tmeta nfproto ipv6 counter name ipv6_dropped drop comment \"no IPv6 around the IPv4 policy\"\n\
         \t\tct state invalid drop\n\
         \t\tct state established,related accept\n\
         \t\tiifname \"{internal}\" oifname \"{uplink}\" ip saddr @internet accept\n\
{allowed}\
         \t\tiifname \"{internal}\" oifname \"{internal}\" ip saddr . ip daddr . meta l4proto . th dport @flows accept\n\
         \t\tiifname \"{internal}\" oifname \"{internal}\" icmp type echo-request ip saddr . ip daddr @icmp_flows accept\n\
         \t\tiifname \"{uplink}\" oifname \"{internal}\" ct status dnat accept comment \"port forwards\"\n\
{refused}{scan}\
         \t\tlimit rate {LOG_RATE} log prefix \"netvm forward drop: \"\n\
         \t\tcounter name forward_dropped\n\
         \t}}\n"
    );

    // NAT.
    let _ = writeln!(
        out,
        "\tchain nat_in {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;"
    );
    for f in &policy.forwards {
        let (first, last) = (f.uplink_ports.first(), f.uplink_ports.last());
        let to_first = f.to_ports.first();
        let target = if first == to_first {
            format!("dnat ip to {}", f.to_ip)
        } else if first == last {
            format!("dnat ip to {}:{}", f.to_ip, to_first)
        } else {
            // A shifted range: one map entry per port.
            let entries: Vec<String> = (first..=last)
                .map(|p| format!("{p} : {}", u32::from(to_first) + u32::from(p - first)))
                .collect();
            format!(
                "dnat ip to {} : th dport map {{ {} }}",
                f.to_ip,
                list(&entries)
            )
        };
        let match_ = format!("meta l4proto {} th dport {}", f.proto, f.uplink_ports);
        // Only the uplink's own address, whatever DHCP gave it: a LAN
        // host routing other addresses through the net-vm gets nothing.
        let _ = writeln!(
            out,
            "\t\tiifname \"{uplink}\" fib daddr . iif type local {match_} {target}"
        );
        // Reflection: a VM using the uplink's address reaches the VM too.
        let _ = writeln!(
            out,
            "\t\tiifname \"{internal}\" ip daddr != {netvm_ip} fib daddr type local {match_} {target}"
        );
    }
    let _ = writeln!(out, "\t}}\n");
    let _ = writeln!(
        out,
        "\tchain nat_out {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\toifname \"{uplink}\" ip saddr {subnet} masquerade\n\
         \t\toifname \"{internal}\" ip saddr {subnet} ct status dnat masquerade comment \"NAT reflection\"\n\
         \t}}"
    );
    let _ = writeln!(out, "}}");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::{parse, Format};

    fn ruleset() -> String {
        let text = "[netvm.uplink]\ninterface = \"eth0\"\n\
            [[vm]]\nname = \"a\"\nforward = [{ proto = \"tcp\", port = 8443, to_port = 443 }]\n\
            [[vm]]\nname = \"b\"\nallow = [{ to = \"a\", proto = \"tcp\", ports = 443 }]\n";
        let system = parse("t.toml", text, Format::Toml).expect("valid");
        let policy = crate::policy::plan(&system);
        let names = NetVmInterfaces {
            internal: "ethint0".parse().expect("name"),
            uplink: "eth0".parse().expect("name"),
        };
        render(&system, &policy, &names, &[])
    }

    #[test]
    fn a_forward_answers_on_the_uplinks_own_address_only() {
        let text = ruleset();
        let dnat: Vec<&str> = text.lines().filter(|l| l.contains("dnat ip to")).collect();
        assert_eq!(dnat.len(), 2, "{text}");
        assert!(
            dnat[0].contains(
                "iifname \"eth0\" fib daddr . iif type local meta l4proto tcp th dport 8443"
            ),
            "{}",
            dnat[0]
        );
    }

    #[test]
    fn reflected_flows_pass_the_vm_to_vm_policy() {
        let text = ruleset();
        // Only connections from the uplink are accepted for being DNATed;
        // a reflected one (internal to internal) meets `flows`.
        let forward: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("ct status dnat accept"))
            .collect();
        assert_eq!(forward, ["\t\tiifname \"eth0\" oifname \"ethint0\" ct status dnat accept comment \"port forwards\""]);
    }

    #[test]
    fn echo_is_answered_on_the_net_vms_own_addresses_only() {
        let text = ruleset();
        let accepts: Vec<&str> = text
            .lines()
            .filter(|l| {
                l.contains("echo-request") && l.ends_with("accept")
                    || l.contains("echo-request accept comment")
            })
            .collect();
        assert!(
            accepts.iter().all(|l| l.contains("ip daddr 192.168.100.1")
                || l.contains("fib daddr . iif type local")
                || l.contains("@icmp_flows")),
            "{accepts:?}"
        );
    }

    #[test]
    fn every_event_is_logged_once_per_key_before_it_is_added() {
        let text = ruleset();
        let lines: Vec<&str> = text.lines().collect();
        let mut adds = 0;
        for (i, line) in lines.iter().enumerate() {
            let Some(set) = EVENT_SETS
                .iter()
                .find(|s| line.contains(&format!(" add @{} {{", s.name)))
            else {
                continue;
            };
            adds += 1;
            let (match_, _) = line.split_once(" add @").expect("an add rule");
            let key = set.key.nft_expression();
            assert_eq!(
                lines[i - 1],
                format!(
                    "{match_} {key} != @{} limit rate {}/second burst {} packets log group {} prefix \"{}\"",
                    set.name, EVENT_LOG_RATE, EVENT_LOG_BURST, EVENT_LOG_GROUP, set.log_prefix
                ),
                "the rule before {line}"
            );
            assert_eq!(set.log_prefix, format!("{} ", set.name));
        }
        // ev_scan is added in input and in forward.
        assert_eq!(adds, EVENT_SETS.len() + 1, "{text}");
    }

    #[test]
    fn the_endpoints_seed_is_rendered_into_the_set() {
        let text = "[netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"a\"\n";
        let system = parse("t.toml", text, Format::Toml).expect("valid");
        let policy = crate::policy::plan(&system);
        let names = NetVmInterfaces {
            internal: "ethint0".parse().expect("name"),
            uplink: "eth0".parse().expect("name"),
        };
        let seed = [(
            Ipv4Addr::new(192, 168, 100, 201),
            "02:00:00:00:00:01".parse().expect("mac"),
        )];
        let text = render(&system, &policy, &names, &seed);
        assert!(
            text.contains("elements = { 192.168.100.201 . 02:00:00:00:00:01 }"),
            "{text}"
        );
        assert!(!text.contains("add element"), "{text}");
    }
}
