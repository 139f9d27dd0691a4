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
//! * IPv6 (with IPv6 on in the description): the twin of every set and
//!   rule above (`endpoints6`, `internet6`, `flows6`, `icmp_flows6`, the
//!   `…6` event sets), from the same policy rows, plus neighbour
//!   discovery, DHCPv6 and the CLAT's hook; see [`ipv6`]. With IPv6 off
//!   the ruleset is the IPv4 one and every forwarded IPv6 packet is
//!   dropped.
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

mod events;
pub mod ipv6;

pub use events::{
    event_sets, EventKey, EventSet, EVENT_LOG_BURST, EVENT_LOG_GROUP, EVENT_LOG_RATE, EVENT_SETS,
    EV_ALLOWED, EV_ALLOWED6, EV_POLICY, EV_POLICY6, EV_ROGUE_DHCP, EV_ROGUE_DHCP6, EV_ROGUE_RA,
    EV_SCAN, EV_SCAN6, EV_SPOOFED, EV_SPOOFED6, IPV4_EVENT_SETS,
};
pub use ipv6::{Internal6, Ipv6Rules, Uplink6};

use crate::policy::PolicyPlan;
use events::{event_rules, nft_duration};
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
    /// The primary uplink (the first described; IPv6 runs on it).
    pub uplink: IfName,
    /// Every uplink, primary first (not shown with just one).
    #[serde(skip_serializing_if = "at_most_one")]
    pub uplinks: Vec<IfName>,
    /// The uplink that carries the Internet (VMs' IPv4 out, port
    /// forwards in); with several, the `uplink_active` set holds it. A
    /// run-time choice: the ruleset shows it, the plan's JSON does not.
    #[serde(skip)]
    pub active_uplink: Option<IfName>,
    /// The agent's uplink manager tends the uplinks (several, or a
    /// Wi-Fi one): the `uplinks` and `uplink_active` sets exist.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub managed: bool,
}

fn at_most_one(names: &[IfName]) -> bool {
    names.len() <= 1
}

impl NetVmInterfaces {
    /// `iifname`/`oifname` matching every uplink.
    fn any_uplink(&self, dir: &str) -> String {
        match self.uplinks.as_slice() {
            [one] if !self.managed => format!("{dir} \"{one}\""),
            _ => format!("{dir} @{UPLINKS_SET}"),
        }
    }

    /// `iifname`/`oifname` matching the active uplink.
    fn active(&self, dir: &str) -> String {
        match self.uplinks.as_slice() {
            [one] if !self.managed => format!("{dir} \"{one}\""),
            _ => format!("{dir} @{ACTIVE_UPLINK_SET}"),
        }
    }
}

/// With several uplinks: the set of their names.
pub const UPLINKS_SET: &str = "uplinks";
/// With several uplinks: the set holding the active one's name (the
/// agent replaces its element when it switches).
pub const ACTIVE_UPLINK_SET: &str = "uplink_active";

/// The table every rule lives in.
pub const TABLE: &str = "netvm";

/// Drops logged per second at most, per chain.
const LOG_RATE: &str = "10/second";

fn list(items: &[String]) -> String {
    items.join(", ")
}

/// A set declaration (as the IPv4 ones are written).
fn set(name: &str, kind: &str, flags: &str, elements: &[String]) -> String {
    let mut out = format!("\tset {name} {{\n\t\ttype {kind}\n");
    if !flags.is_empty() {
        out += &format!("\t\tflags {flags}\n");
    }
    if !elements.is_empty() {
        out += &format!("\t\telements = {{ {} }}\n", list(elements));
    }
    out + "\t}\n\n"
}

/// Renders the ruleset for `system` with the given policy and interfaces;
/// `endpoints` is what the `endpoints` set starts with (reservations and
/// the leases still live), in the same transaction; `ipv6` its IPv6 half
/// (the default: IPv6 off).
pub fn render(
    system: &System,
    policy: &PolicyPlan,
    names: &NetVmInterfaces,
    endpoints: &[(Ipv4Addr, MacAddr)],
    ipv6: &Ipv6Rules<'_>,
) -> String {
    let v6 = ipv6::pieces(system, policy, names, ipv6);
    let internal = names.internal.as_str();
    let (any_in, any_out) = (names.any_uplink("iifname"), names.any_uplink("oifname"));
    let (active_in, active_out) = (names.active("iifname"), names.active("oifname"));
    let netvm_ip = system.netvm.endpoint.ip;
    let subnet = system.network.subnet;
    let mut endpoints: Vec<String> = endpoints
        .iter()
        .map(|(ip, mac)| format!("{ip} . {mac}"))
        .collect();
    endpoints.sort();
    endpoints.dedup();
    let internet: Vec<String> = policy
        .internet
        .iter()
        .filter_map(|name| system.vm(name))
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
    out += &set("endpoints", "ipv4_addr . ether_addr", "", &endpoints);
    out += &set("internet", "ipv4_addr", "", &internet);
    out += &set(
        "flows",
        "ipv4_addr . ipv4_addr . inet_proto . inet_service",
        "interval",
        &flows,
    );
    out += &set("icmp_flows", "ipv4_addr . ipv4_addr", "", &icmp_flows);
    if names.managed {
        let quoted = |n: &IfName| format!("\"{n}\"");
        let all: Vec<String> = names.uplinks.iter().map(quoted).collect();
        let active: Vec<String> = names.active_uplink.iter().map(quoted).collect();
        out += &set(UPLINKS_SET, "ifname", "", &all);
        out += &set(ACTIVE_UPLINK_SET, "ifname", "", &active);
    }
    let _ = writeln!(out, "\tset ping_sources {{\n\t\ttype ipv4_addr\n\t\tflags dynamic, timeout\n\t\ttimeout 1m\n\t\tsize 65536\n\t}}\n");
    out += &v6.sets;
    for ev in event_sets(ipv6.internal.is_some()) {
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
         \t\t{any_in} ip saddr {{ {subnet}, 127.0.0.0/8 }} counter name spoofed drop comment \"internal sources from outside\"\n\
{guard6}\
         \t}}\n",
        guard6 = v6.guard,
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

    // The agent's control service: only the VMs the description names
    // (their addresses are their identities; sources are checked before
    // this chain). The same for IPv6 (ruleset/ipv6.rs).
    let control = match &system.agent.control {
        Some(c) => {
            let users: Vec<String> = system
                .vms
                .iter()
                .filter(|vm| c.allow.contains(&vm.name) || c.read.contains(&vm.name))
                .map(|vm| vm.endpoint.ip.to_string())
                .collect();
            format!(
                "\t\tiifname \"{internal}\" ip daddr {netvm_ip} ip saddr {{ {} }} tcp dport {} accept comment \"control\"\n",
                list(&users),
                c.port
            )
        }
        None => String::new(),
    };

    // Input: the net-vm's own services.
    let rogue_dhcp = event_rules(
        &format!("\t\tiifname \"{internal}\" udp sport 67 udp dport 68"),
        &EV_ROGUE_DHCP,
    );
    let scan = event_rules(
        &format!("\t\t{any_in} ct state new meta l4proto {{ tcp, udp }}"),
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
{rogue6}\
         \t\tiifname \"{internal}\" udp dport 67 accept comment \"DHCP\"\n\
         \t\tiifname \"{internal}\" ip daddr {netvm_ip} meta l4proto {{ tcp, udp }} th dport 53 accept comment \"DNS\"\n\
{services6}\
         \t\ticmp type echo-request add @ping_sources {{ ip saddr limit rate over 5/second burst 10 packets }} drop comment \"ping flood\"\n\
{ping_flood6}\
         \t\tiifname \"{internal}\" ip daddr {netvm_ip} icmp type echo-request accept\n\
{echo_internal6}\
         \t\t{any_in} fib daddr . iif type local icmp type echo-request accept comment \"the uplink's own address\"\n\
{echo_uplink6}\
         \t\t{any_in} udp sport 67 udp dport 68 accept comment \"uplink DHCP client\"\n\
{uplink_client6}\
{metrics}{metrics6}{control}{control6}{scan}{scan6}\
         \t\tlimit rate {LOG_RATE} log prefix \"netvm input drop: \"\n\
         \t\tcounter name input_dropped\n\
         \t}}\n",
        rogue6 = v6.input_rogue,
        services6 = v6.input_services,
        ping_flood6 = v6.ping_flood,
        echo_internal6 = v6.echo_internal,
        echo_uplink6 = v6.echo_uplink,
        uplink_client6 = v6.uplink_client,
        metrics6 = v6.metrics,
        control6 = v6.control,
        scan6 = v6.scan,
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
{forward_head6}\
         \t\tct state invalid drop\n\
         \t\tct state established,related accept\n\
         \t\tiifname \"{internal}\" {active_out} ip saddr @internet accept\n\
{forward_out6}\
{allowed}\
         \t\tiifname \"{internal}\" oifname \"{internal}\" ip saddr . ip daddr . meta l4proto . th dport @flows accept\n\
         \t\tiifname \"{internal}\" oifname \"{internal}\" icmp type echo-request ip saddr . ip daddr @icmp_flows accept\n\
{flows6}\
         \t\t{active_in} oifname \"{internal}\" ct status dnat accept comment \"port forwards\"\n\
{routed6}\
{refused}{refused6}{scan}{scan6}{tail6}\
         \t\tlimit rate {LOG_RATE} log prefix \"netvm forward drop: \"\n\
         \t\tcounter name forward_dropped\n\
         \t}}\n",
        forward_head6 = v6.forward_head,
        forward_out6 = v6.forward_out,
        flows6 = v6.forward_flows,
        routed6 = v6.forward_routed,
        refused6 = v6.refused,
        scan6 = v6.scan,
        tail6 = v6.forward_tail,
    );
    out += &v6.output_chain;

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
            "\t\t{active_in} fib daddr . iif type local {match_} {target}"
        );
        // Reflection: a VM using the uplink's address reaches the VM too.
        let _ = writeln!(
            out,
            "\t\tiifname \"{internal}\" ip daddr != {netvm_ip} fib daddr type local {match_} {target}"
        );
        out += &ipv6::nat_in(ipv6, names, f);
    }
    let _ = writeln!(out, "\t}}\n");
    let _ = writeln!(
        out,
        "\tchain nat_out {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\t{any_out} ip saddr {subnet} masquerade\n\
{nat_out6}\
         \t\toifname \"{internal}\" ip saddr {subnet} ct status dnat masquerade comment \"NAT reflection\"\n\
{reflection6}\
         \t}}",
        nat_out6 = v6.nat_out,
        reflection6 = v6.nat_reflection,
    );
    let _ = writeln!(out, "}}");
    out
}

#[cfg(test)]
mod tests;
