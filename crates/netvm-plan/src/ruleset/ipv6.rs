//! The IPv6 half of the ruleset: the same policy as IPv4, rendered from
//! the same rows ([`PolicyPlan`]), as pieces the ruleset splices in
//! beside their IPv4 twins. Every piece is empty with IPv6 off, so such a
//! ruleset is exactly the IPv4-only one (all forwarded IPv6 dropped and
//! counted in `ipv6_dropped`).
//!
//! What IPv6 adds beyond the twins of the IPv4 sets and rules:
//! * link-local sources pass `guard` only toward link-local or multicast
//!   destinations or the net-vm's own address (neighbour and router
//!   discovery, MLD, DHCPv6); `::` only for duplicate address detection
//!   and MLD reports;
//! * neighbour discovery in `input` (RS, NS, NA from the internal side;
//!   RA, NS, NA from the uplink's routers), the DHCPv6 server and the
//!   uplink's DHCPv6 client; rogue router advertisements and DHCPv6
//!   servers on the internal side are dropped and reported;
//! * an `output` chain that drops ICMPv6 redirects toward the internal
//!   side: Linux has no `send_redirects` for IPv6, and a redirect would
//!   tell a VM to reach another VM directly, around the policy;
//! * two modes: [`Ipv6Mode::Nat66`] (a unique local /64, masqueraded to
//!   the uplink; forwards are DNAT on the uplink's own address with
//!   reflection, as in IPv4) and [`Ipv6Mode::Routed`] (the first /64 of a
//!   delegated prefix: no NAT, a forward opens the VM's own address and
//!   port);
//! * the CLAT's hook (464XLAT): guests' IPv4 masqueraded into the TUN,
//!   and only the CLAT's own IPv6 address out of it to the uplink.

use super::{event_rules, NetVmInterfaces};
use super::{list, set, LOG_RATE};
use super::{EV_ALLOWED6, EV_POLICY6, EV_ROGUE_DHCP6, EV_ROGUE_RA, EV_SCAN6, EV_SPOOFED6};
use crate::datapath::{ClatHook, Ipv6Mode};
use crate::policy::{ForwardRow, PolicyPlan};
use netvm_description::values::{Ipv6Cidr, MacAddr, Protocol};
use netvm_description::System;
use std::net::Ipv6Addr;

/// What the IPv6 half of the ruleset is made from. The default is IPv6
/// off: nothing but the IPv4 ruleset, all forwarded IPv6 dropped.
#[derive(Debug, Clone, Default)]
pub struct Ipv6Rules<'a> {
    /// The internal network's IPv6 (`None`: the description turns it off).
    pub internal: Option<Internal6<'a>>,
    /// The uplink's own IPv6 (`None`: off, or nothing uses it).
    pub uplink: Option<Uplink6>,
    /// The CLAT's TUN and address, while one runs.
    pub clat: Option<&'a ClatHook>,
}

/// The internal network's IPv6.
#[derive(Debug, Clone)]
pub struct Internal6<'a> {
    /// The /64.
    pub prefix: Ipv6Cidr,
    /// Routed or masqueraded.
    pub mode: Ipv6Mode,
    /// The net-vm's address in it.
    pub netvm: Ipv6Addr,
    /// What the `endpoints6` set starts with.
    pub endpoints: &'a [(Ipv6Addr, MacAddr)],
    /// Sources that never come from the uplink: the /64, or the whole
    /// delegated prefix it is part of.
    pub ours: Ipv6Cidr,
}

/// How the uplink has its own IPv6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Uplink6 {
    /// Router advertisements and a DHCPv6 client.
    Auto,
    /// A fixed address and gateway.
    Static,
}

/// The IPv6 pieces, each spliced in after its IPv4 twin (empty ones
/// change nothing).
#[derive(Debug, Default)]
pub(super) struct Pieces {
    pub sets: String,
    pub guard: String,
    pub input_rogue: String,
    pub input_services: String,
    pub ping_flood: String,
    pub echo_internal: String,
    pub echo_uplink: String,
    pub uplink_client: String,
    pub metrics: String,
    pub control: String,
    pub scan: String,
    pub forward_head: String,
    pub forward_out: String,
    pub forward_flows: String,
    pub forward_routed: String,
    pub refused: String,
    pub forward_tail: String,
    pub output_chain: String,
    pub nat_out: String,
    pub nat_reflection: String,
}

const PING_SOURCES6: &str = "\tset ping_sources6 {\n\t\ttype ipv6_addr\n\t\tflags dynamic, timeout\n\t\ttimeout 1m\n\t\tsize 65536\n\t}\n\n";

/// The IPv6 pieces for `rules`.
pub(super) fn pieces(
    system: &System,
    policy: &PolicyPlan,
    names: &NetVmInterfaces,
    rules: &Ipv6Rules<'_>,
) -> Pieces {
    let internal = names.internal.as_str();
    let uplink = names.uplink.as_str();
    let mut p = Pieces::default();

    // Forwarded IPv6 with IPv6 off: dropped and counted, except the
    // CLAT's own traffic, which the rules below judge.
    if rules.internal.is_none() {
        let clat = rules.clat.map_or_else(String::new, |c| {
            format!("iifname != \"{tun}\" oifname != \"{tun}\" ", tun = c.tun)
        });
        p.forward_head = format!(
            "\t\tmeta nfproto ipv6 {clat}counter name ipv6_dropped drop comment \"no IPv6 around the IPv4 policy\"\n"
        );
    }
    if let Some(c) = rules.clat {
        let tun = c.tun.as_str();
        p.forward_out += &format!(
            "\t\tiifname \"{internal}\" oifname \"{tun}\" ip saddr @internet accept comment \"CLAT: IPv4 out\"\n\
             \t\tiifname \"{tun}\" oifname \"{uplink}\" ip6 saddr {} accept comment \"CLAT: translated IPv4 out\"\n",
            c.clat6
        );
        p.nat_out += &format!(
            "\t\toifname \"{tun}\" ip saddr {} masquerade comment \"CLAT: NAT44\"\n",
            system.network.subnet
        );
    }

    if rules.internal.is_some() || rules.uplink.is_some() {
        p.sets += PING_SOURCES6;
        p.ping_flood = "\t\ticmpv6 type echo-request add @ping_sources6 { ip6 saddr limit rate over 5/second burst 10 packets } drop comment \"ping flood\"\n".to_owned();
        p.input_services += "\t\tip6 saddr fe80::/10 icmpv6 type mld-listener-query accept comment \"MLD queries: snooping switches keep our groups\"\n";
    }

    if let Some(mode) = rules.uplink {
        p.input_services += &format!(
            "\t\tiifname \"{uplink}\" ip6 hoplimit 255 icmpv6 type {{ nd-neighbor-solicit, nd-neighbor-advert }} accept comment \"ND\"\n"
        );
        p.echo_uplink = format!(
            "\t\tiifname \"{uplink}\" fib daddr . iif type local icmpv6 type echo-request accept comment \"the uplink's own address\"\n"
        );
        if mode == Uplink6::Auto {
            p.input_services += &format!(
                "\t\tiifname \"{uplink}\" ip6 saddr fe80::/10 ip6 hoplimit 255 icmpv6 type nd-router-advert accept comment \"the uplink's routers\"\n"
            );
            p.uplink_client = format!(
                "\t\tiifname \"{uplink}\" ip6 daddr fe80::/10 udp sport 547 udp dport 546 accept comment \"uplink DHCPv6 client\"\n"
            );
        }
    }

    let Some(v6) = &rules.internal else {
        return p;
    };
    internal_pieces(&mut p, system, policy, names, v6);
    p
}

/// The pieces of the internal network's IPv6.
fn internal_pieces(
    p: &mut Pieces,
    system: &System,
    policy: &PolicyPlan,
    names: &NetVmInterfaces,
    v6: &Internal6<'_>,
) {
    let internal = names.internal.as_str();
    let uplink = names.uplink.as_str();
    let (prefix, netvm) = (v6.prefix, v6.netvm);

    // Sets, from the same policy rows as the IPv4 ones.
    let mut endpoints: Vec<String> = v6
        .endpoints
        .iter()
        .map(|(ip, mac)| format!("{ip} . {mac}"))
        .collect();
    endpoints.sort();
    endpoints.dedup();
    let internet: Vec<String> = policy
        .internet
        .iter()
        .filter_map(|name| system.vm(name))
        .map(|vm| system.ipv6_in(&vm.endpoint, prefix).to_string())
        .collect();
    let mut flows = Vec::new();
    let mut icmp_flows = Vec::new();
    for f in &policy.flows {
        let (Some(from), Some(to)) = (f.from_ip6, f.to_ip6) else {
            continue;
        };
        if f.proto == Protocol::Icmp {
            icmp_flows.push(format!("{from} . {to}"));
        } else {
            let ports = match f.ports {
                Some(ports) => ports.to_string(),
                None => "1-65535".to_owned(),
            };
            flows.push(format!("{from} . {to} . {} . {ports}", f.proto));
        }
    }
    icmp_flows.dedup();
    let sets = set("endpoints6", "ipv6_addr . ether_addr", "", &endpoints)
        + &set("internet6", "ipv6_addr", "", &internet)
        + &set(
            "flows6",
            "ipv6_addr . ipv6_addr . inet_proto . inet_service",
            "interval",
            &flows,
        )
        + &set("icmp_flows6", "ipv6_addr . ipv6_addr", "", &icmp_flows);
    p.sets = sets + &p.sets;

    // Anti-spoofing, before conntrack.
    let spoofed = event_rules(
        &format!("\t\tiifname \"{internal}\" meta nfproto ipv6"),
        &EV_SPOOFED6,
    );
    p.guard = format!(
        "\t\tiifname \"{internal}\" ip6 saddr . ether saddr @endpoints6 accept\n\
         \t\tiifname \"{internal}\" ip6 saddr fe80::/10 ip6 daddr {{ fe80::/10, ff00::/8, {netvm} }} accept comment \"link-local: ND, MLD, DHCPv6\"\n\
         \t\tiifname \"{internal}\" ip6 saddr :: ip6 daddr ff02::/16 icmpv6 type {{ nd-router-solicit, nd-neighbor-solicit, mld-listener-report, mld2-listener-report }} accept comment \"DAD, RS and MLD before an address\"\n\
{spoofed}\
         \t\tiifname \"{internal}\" meta nfproto ipv6 limit rate {LOG_RATE} log prefix \"netvm spoofed: \"\n\
         \t\tiifname \"{internal}\" meta nfproto ipv6 counter name spoofed drop\n\
         \t\tiifname \"{uplink}\" ip6 saddr {{ {}, ::1 }} counter name spoofed drop comment \"internal sources from outside\"\n",
        v6.ours
    );

    // Input: the net-vm's own services, and no other router or DHCPv6
    // server on the internal side.
    p.input_rogue = event_rules(
        &format!("\t\tiifname \"{internal}\" icmpv6 type nd-router-advert"),
        &EV_ROGUE_RA,
    ) + &format!(
        "\t\tiifname \"{internal}\" icmpv6 type nd-router-advert drop comment \"another router\"\n"
    ) + &event_rules(
        &format!("\t\tiifname \"{internal}\" udp sport 547 udp dport 546"),
        &EV_ROGUE_DHCP6,
    ) + &format!(
        "\t\tiifname \"{internal}\" udp sport 547 udp dport 546 drop comment \"another DHCPv6 server\"\n"
    );
    p.input_services = format!(
        "\t\tiifname \"{internal}\" ip6 saddr fe80::/10 udp dport 547 accept comment \"DHCPv6\"\n\
         \t\tiifname \"{internal}\" ip6 daddr {netvm} meta l4proto {{ tcp, udp }} th dport 53 accept comment \"DNS\"\n\
         \t\tiifname \"{internal}\" ip6 hoplimit 255 icmpv6 type {{ nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }} accept comment \"ND\"\n"
    ) + &p.input_services;
    p.echo_internal =
        format!("\t\tiifname \"{internal}\" ip6 daddr {netvm} icmpv6 type echo-request accept\n");
    if let Some(m) = system
        .agent
        .metrics
        .as_ref()
        .filter(|m| !m.allow.is_empty())
    {
        let readers: Vec<String> = system
            .vms
            .iter()
            .filter(|vm| m.allow.contains(&vm.name))
            .map(|vm| system.ipv6_in(&vm.endpoint, prefix).to_string())
            .collect();
        p.metrics = format!(
            "\t\tiifname \"{internal}\" ip6 daddr {netvm} ip6 saddr {{ {} }} tcp dport {} accept comment \"metrics\"\n",
            list(&readers),
            m.port
        );
    }
    if let Some(c) = &system.agent.control {
        let users: Vec<String> = system
            .vms
            .iter()
            .filter(|vm| c.allow.contains(&vm.name) || c.read.contains(&vm.name))
            .map(|vm| system.ipv6_in(&vm.endpoint, prefix).to_string())
            .collect();
        p.control = format!(
            "\t\tiifname \"{internal}\" ip6 daddr {netvm} ip6 saddr {{ {} }} tcp dport {} accept comment \"control\"\n",
            list(&users),
            c.port
        );
    }
    p.scan = event_rules(
        &format!("\t\tiifname \"{uplink}\" ct state new meta l4proto {{ tcp, udp }}"),
        &EV_SCAN6,
    );

    // Forward: the policy.
    p.forward_out =
        format!("\t\tiifname \"{internal}\" oifname \"{uplink}\" ip6 saddr @internet6 accept\n")
            + &p.forward_out;
    let allowed = event_rules(
        &format!("\t\tiifname \"{internal}\" oifname \"{internal}\" ct state new ip6 saddr . ip6 daddr . meta l4proto . th dport @flows6"),
        &EV_ALLOWED6,
    );
    p.forward_flows = format!(
        "{allowed}\
         \t\tiifname \"{internal}\" oifname \"{internal}\" ip6 saddr . ip6 daddr . meta l4proto . th dport @flows6 accept\n\
         \t\tiifname \"{internal}\" oifname \"{internal}\" icmpv6 type echo-request ip6 saddr . ip6 daddr @icmp_flows6 accept\n"
    );
    if v6.mode == Ipv6Mode::Routed {
        for f in &policy.forwards {
            let Some(to) = f.to_ip6 else { continue };
            p.forward_routed += &format!(
                "\t\tiifname \"{uplink}\" oifname \"{internal}\" ip6 daddr {to} meta l4proto {} th dport {} accept comment \"port forward (routed)\"\n",
                f.proto, f.to_ports
            );
        }
    }
    p.refused = event_rules(
        &format!("\t\tiifname \"{internal}\" ct state new meta l4proto {{ tcp, udp }}"),
        &EV_POLICY6,
    );
    p.forward_tail = "\t\tmeta nfproto ipv6 counter name ipv6_dropped\n".to_owned();

    p.output_chain = format!(
        "\tchain output {{\n\
         \t\ttype filter hook output priority filter; policy accept;\n\
         \t\toifname \"{internal}\" icmpv6 type nd-redirect drop comment \"no redirects: every packet crosses the forward chain\"\n\
         \t}}\n\n"
    );

    // NAT66.
    if v6.mode == Ipv6Mode::Nat66 {
        p.nat_out =
            format!("\t\toifname \"{uplink}\" ip6 saddr {prefix} masquerade\n") + &p.nat_out;
        p.nat_reflection = format!(
            "\t\toifname \"{internal}\" ip6 saddr {prefix} ct status dnat masquerade comment \"NAT reflection\"\n"
        );
    }
}

/// The NAT66 rules of one port forward (nothing when routed or off):
/// DNAT of what arrives on the uplink for its own address, and the same
/// from the internal side (reflection), as in IPv4.
pub(super) fn nat_in(rules: &Ipv6Rules<'_>, names: &NetVmInterfaces, f: &ForwardRow) -> String {
    let (Some(v6), Some(to)) = (&rules.internal, f.to_ip6) else {
        return String::new();
    };
    if v6.mode != Ipv6Mode::Nat66 {
        return String::new();
    }
    let (internal, uplink) = (names.internal.as_str(), names.uplink.as_str());
    let (first, last) = (f.uplink_ports.first(), f.uplink_ports.last());
    let to_first = f.to_ports.first();
    let target = if first == to_first {
        format!("dnat ip6 to {to}")
    } else if first == last {
        format!("dnat ip6 to [{to}]:{to_first}")
    } else {
        let entries: Vec<String> = (first..=last)
            .map(|p| format!("{p} : {}", u32::from(to_first) + u32::from(p - first)))
            .collect();
        format!("dnat ip6 to {to} : th dport map {{ {} }}", list(&entries))
    };
    let match_ = format!("meta l4proto {} th dport {}", f.proto, f.uplink_ports);
    format!(
        "\t\tiifname \"{uplink}\" meta nfproto ipv6 fib daddr . iif type local {match_} {target}\n\
         \t\tiifname \"{internal}\" ip6 daddr != {{ {}, fe80::/10 }} fib daddr type local {match_} {target}\n",
        v6.netvm
    )
}
