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
//!   See [`EVENT_SETS`].
//!
//! Pure and deterministic: same description and interface names, same text.

use crate::policy::PolicyPlan;
use netvm_description::values::IfName;
use netvm_description::System;
use std::fmt::Write;

/// The Net VM's interfaces, by the names it sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetVmInterfaces {
    /// The internal interface (Ghaf names it `ethint0`).
    pub internal: IfName,
    /// The uplink.
    pub uplink: IfName,
}

/// The table every rule lives in.
pub const TABLE: &str = "netvm";

/// The event sets: name, key type, element lifetime, size. An element
/// lives for its lifetime from the first packet (`add` does not refresh
/// it), so one key is reported at most once per lifetime.
pub const EVENT_SETS: [(&str, &str, &str, u32); 5] = [
    // A packet from the internal side with an address and MAC that are
    // not a pair in `endpoints`.
    ("ev_spoofed", "ipv4_addr . ether_addr", "1m", 4096),
    // A new VM-to-VM or VM-to-Internet connection the policy refused.
    (
        "ev_policy",
        "ipv4_addr . ipv4_addr . inet_proto . inet_service",
        "1m",
        4096,
    ),
    // A new VM-to-VM connection the policy allowed.
    (
        "ev_allowed",
        "ipv4_addr . ipv4_addr . inet_proto . inet_service",
        "1m",
        4096,
    ),
    // A refused new connection from the uplink: source, protocol, port
    // (many ports from one source in the lifetime is a port scan).
    (
        "ev_scan",
        "ipv4_addr . inet_proto . inet_service",
        "10s",
        65536,
    ),
    // A DHCP server answer (UDP 67 to 68) seen on the internal side.
    ("ev_rogue_dhcp", "ipv4_addr . ether_addr", "1m", 1024),
];

/// Drops logged per second at most, per chain.
const LOG_RATE: &str = "10/second";

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// Renders the ruleset for `system` with the given policy and interfaces.
pub fn render(system: &System, policy: &PolicyPlan, names: &NetVmInterfaces) -> String {
    let internal = names.internal.as_str();
    let uplink = names.uplink.as_str();
    let netvm_ip = system.netvm.endpoint.ip;
    let subnet = system.network.subnet;
    let mut endpoints: Vec<String> = system
        .endpoints()
        .filter(|(_, role, _)| *role != netvm_description::Role::NetVm)
        .map(|(_, _, e)| format!("{} . {}", e.ip, e.mac))
        .collect();
    endpoints.sort();
    let internet: Vec<String> = system
        .vms
        .iter()
        .filter(|vm| vm.internet)
        .map(|vm| vm.endpoint.ip.to_string())
        .collect();
    let mut flows = Vec::new();
    let mut icmp_flows = Vec::new();
    for f in &policy.flows {
        if f.proto == "icmp" {
            icmp_flows.push(format!("{} . {}", f.from_ip, f.to_ip));
        } else {
            let ports = f.ports.clone().unwrap_or_else(|| "1-65535".to_owned());
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
    for (name, kind, lifetime, size) in EVENT_SETS {
        let _ = writeln!(out, "\tset {name} {{\n\t\ttype {kind}\n\t\tflags dynamic, timeout\n\t\ttimeout {lifetime}\n\t\tsize {size}\n\t}}\n");
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
    let _ = writeln!(
        out,
        "\tchain guard {{\n\
         \t\ttype filter hook prerouting priority raw; policy accept;\n\
         \t\tiifname \"{internal}\" meta nfproto ipv4 ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept comment \"DHCP before an address\"\n\
         \t\tiifname \"{internal}\" meta nfproto ipv4 ip saddr . ether saddr @endpoints accept\n\
         \t\tiifname \"{internal}\" meta nfproto ipv4 add @ev_spoofed {{ ip saddr . ether saddr }}\n\
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
         \t\tiifname \"{internal}\" udp sport 67 udp dport 68 add @ev_rogue_dhcp {{ ip saddr . ether saddr }}\n\
         \t\tiifname \"{internal}\" udp sport 67 udp dport 68 drop comment \"another DHCP server\"\n\
         \t\tiifname \"{internal}\" udp dport 67 accept comment \"DHCP\"\n\
         \t\tiifname \"{internal}\" ip daddr {netvm_ip} meta l4proto {{ tcp, udp }} th dport 53 accept comment \"DNS\"\n\
         \t\ticmp type echo-request add @ping_sources {{ ip saddr limit rate over 5/second burst 10 packets }} drop comment \"ping flood\"\n\
         \t\tiifname \"{internal}\" ip daddr {netvm_ip} icmp type echo-request accept\n\
         \t\tiifname \"{uplink}\" fib daddr . iif type local icmp type echo-request accept comment \"the uplink's own address\"\n\
         \t\tiifname \"{uplink}\" udp sport 67 udp dport 68 accept comment \"uplink DHCP client\"\n\
{metrics}\t\tiifname \"{uplink}\" ct state new meta l4proto {{ tcp, udp }} add @ev_scan {{ ip saddr . meta l4proto . th dport }}\n\
         \t\tlimit rate {LOG_RATE} log prefix \"netvm input drop: \"\n\
         \t\tcounter name input_dropped\n\
         \t}}\n"
    );

    // Forward: the policy.
    let _ = writeln!(
        out,
        "\tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy drop;\n\
         \t\tmeta nfproto ipv6 counter name ipv6_dropped drop comment \"no IPv6 around the IPv4 policy\"\n\
         \t\tct state invalid drop\n\
         \t\tct state established,related accept\n\
         \t\tiifname \"{internal}\" oifname \"{uplink}\" ip saddr @internet accept\n\
         \t\tiifname \"{internal}\" oifname \"{internal}\" ct state new ip saddr . ip daddr . meta l4proto . th dport @flows add @ev_allowed {{ ip saddr . ip daddr . meta l4proto . th dport }}\n\
         \t\tiifname \"{internal}\" oifname \"{internal}\" ip saddr . ip daddr . meta l4proto . th dport @flows accept\n\
         \t\tiifname \"{internal}\" oifname \"{internal}\" icmp type echo-request ip saddr . ip daddr @icmp_flows accept\n\
         \t\tiifname \"{uplink}\" oifname \"{internal}\" ct status dnat accept comment \"port forwards\"\n\
         \t\tiifname \"{internal}\" ct state new meta l4proto {{ tcp, udp }} add @ev_policy {{ ip saddr . ip daddr . meta l4proto . th dport }}\n\
         \t\tiifname \"{uplink}\" ct state new meta l4proto {{ tcp, udp }} add @ev_scan {{ ip saddr . meta l4proto . th dport }}\n\
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
        let (first, last) = split_range(&f.uplink_ports);
        let (to_first, _) = split_range(&f.to_ports);
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

fn split_range(text: &str) -> (u16, u16) {
    let mut parts = text.split('-').map(|p| p.parse::<u16>().unwrap_or(0));
    let first = parts.next().unwrap_or(0);
    (first, parts.next().unwrap_or(first))
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
        render(&system, &policy, &names)
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
}
