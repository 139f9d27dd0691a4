//! The flow policy: which VM may reach the Internet, which VM may open
//! which connections to which other VM, and which uplink ports are
//! forwarded where. Default deny: anything not listed here is dropped.
//!
//! Rows hold the description's own values (VM names, addresses,
//! protocols, port ranges), so the ruleset renders them without parsing
//! text back.
//!
//! One policy, both families: with IPv6 on, every row carries the IPv6
//! twins of its IPv4 addresses (each endpoint's address in the internal
//! /64, [`System::ipv6_in`]), and the ruleset renders both families from
//! the same rows, so no grant exists in one family and not the other.

use netvm_description::values::{Ipv6Cidr, PortRange, Protocol as FlowProtocol, VmName};
use netvm_description::System;
use serde::Serialize;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A permitted VM-to-VM flow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FlowRow {
    /// Source VM.
    pub from: VmName,
    /// Source address.
    pub from_ip: Ipv4Addr,
    /// Source IPv6 address (IPv6 on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from_ip6: Option<Ipv6Addr>,
    /// Destination VM.
    pub to: VmName,
    /// Destination address.
    pub to_ip: Ipv4Addr,
    /// Destination IPv6 address (IPv6 on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_ip6: Option<Ipv6Addr>,
    /// tcp, udp or icmp (ICMPv6 for IPv6).
    pub proto: FlowProtocol,
    /// Ports, or `None` for all (always `None` for icmp).
    pub ports: Option<PortRange>,
}

/// A port forward from the uplink.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ForwardRow {
    /// tcp or udp.
    pub proto: FlowProtocol,
    /// Uplink ports.
    pub uplink_ports: PortRange,
    /// Destination VM.
    pub to: VmName,
    /// Destination address.
    pub to_ip: Ipv4Addr,
    /// Destination IPv6 address (IPv6 on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub to_ip6: Option<Ipv6Addr>,
    /// Destination ports (as many as `uplink_ports`).
    pub to_ports: PortRange,
}

/// Who may reach what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyPlan {
    /// VMs allowed out to the Internet, in declaration order.
    pub internet: Vec<VmName>,
    /// VM-to-VM flows, sorted.
    pub flows: Vec<FlowRow>,
    /// Port forwards, sorted.
    pub forwards: Vec<ForwardRow>,
    /// The internal IPv6 /64 the rows' IPv6 addresses are in (`None`:
    /// IPv6 off, no IPv6 addresses).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6_prefix: Option<Ipv6Cidr>,
}

/// The policy with IPv6 addresses in the description's own prefix (the
/// whole-system plan; the Net VM's uses the prefix in force, see
/// [`plan_in`]).
pub(crate) fn plan(system: &System) -> PolicyPlan {
    plan_in(system, system.network.ipv6.map(|v6| v6.prefix))
}

/// The policy with IPv6 addresses in `prefix6` (`None`: IPv6 off).
pub(crate) fn plan_in(system: &System, prefix6: Option<Ipv6Cidr>) -> PolicyPlan {
    let v6 = |e| prefix6.map(|p| system.ipv6_in(e, p));
    let internet = system
        .vms
        .iter()
        .filter(|vm| vm.internet)
        .map(|vm| vm.name.clone())
        .collect();
    let mut flows = Vec::new();
    let mut forwards = Vec::new();
    for vm in &system.vms {
        for flow in &vm.allow {
            // Validation guarantees the destination exists.
            let Some(to) = system.vm(&flow.to) else {
                continue;
            };
            flows.push(FlowRow {
                from: vm.name.clone(),
                from_ip: vm.endpoint.ip,
                from_ip6: v6(&vm.endpoint),
                to: to.name.clone(),
                to_ip: to.endpoint.ip,
                to_ip6: v6(&to.endpoint),
                proto: flow.proto,
                ports: flow.ports.filter(|_| flow.proto.has_ports()),
            });
        }
        for f in &vm.forwards {
            forwards.push(ForwardRow {
                proto: f.proto,
                uplink_ports: f.uplink_ports,
                to: vm.name.clone(),
                to_ip: vm.endpoint.ip,
                to_ip6: v6(&vm.endpoint),
                to_ports: f.vm_ports,
            });
        }
    }
    flows.sort();
    flows.dedup();
    forwards.sort();
    PolicyPlan {
        internet,
        flows,
        forwards,
        ipv6_prefix: prefix6,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::{parse, Format};

    #[test]
    fn flows_and_forwards_carry_resolved_addresses() {
        let text = "[netvm.uplink]\ninterface = \"eth0\"\n\
            [[vm]]\nname = \"b\"\ninternet = false\nallow = [{ to = \"a\", proto = \"udp\", ports = \"5000-5001\" }, { to = \"a\", proto = \"icmp\" }]\n\
            [[vm]]\nname = \"a\"\nkind = \"system\"\nforward = [{ proto = \"tcp\", port = 8443, to_port = 443 }]\n";
        let system = parse("t.toml", text, Format::Toml).expect("valid");
        let policy = plan(&system);
        assert!(
            policy.internet.is_empty(),
            "system VMs and internet = false stay inside"
        );
        let flows: Vec<(String, String, FlowProtocol, Option<PortRange>)> = policy
            .flows
            .iter()
            .map(|f| (f.from.to_string(), f.to.to_string(), f.proto, f.ports))
            .collect();
        assert_eq!(
            flows,
            [
                (
                    "b".into(),
                    "a".into(),
                    FlowProtocol::Udp,
                    PortRange::new(5000, 5001)
                ),
                ("b".into(), "a".into(), FlowProtocol::Icmp, None),
            ]
        );
        assert_eq!(
            policy.flows[0].to_ip,
            std::net::Ipv4Addr::new(192, 168, 100, 3)
        );
        let forward = &policy.forwards[0];
        assert_eq!(
            (forward.uplink_ports, forward.to_ports),
            (
                PortRange::new(8443, 8443).expect("range"),
                PortRange::new(443, 443).expect("range")
            )
        );
    }
}

/// One connection as conntrack records its original direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// `tcp`, `udp` or `icmp` (others are never forwarded).
    pub proto: Protocol,
    /// Destination port (tcp/udp).
    pub dport: Option<u16>,
}

/// A transport protocol as conntrack names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
    /// ICMP.
    Icmp,
    /// Anything else.
    Other,
}

/// One IPv6 connection as conntrack records its original direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection6 {
    /// Source address.
    pub src: Ipv6Addr,
    /// Destination address.
    pub dst: Ipv6Addr,
    /// `tcp`, `udp` or `icmp` (ICMPv6 here).
    pub proto: Protocol,
    /// Destination port (tcp/udp).
    pub dport: Option<u16>,
}

impl PolicyPlan {
    /// Would the forward policy let a VM open `c` now? Only connections
    /// that start on the internal network are judged (`None` otherwise):
    /// to another VM by the flows, to anywhere else by `internet`.
    pub fn allows(&self, system: &System, c: &Connection) -> Option<bool> {
        let subnet = system.network.subnet;
        let netvm = system.netvm.endpoint.ip;
        if !subnet.contains(c.src) || c.src == netvm || c.dst == netvm {
            return None;
        }
        let from = system.vms.iter().find(|vm| vm.endpoint.ip == c.src)?;
        if !subnet.contains(c.dst) {
            return Some(from.internet);
        }
        Some(self.flow_allows(c.proto, c.dport, |f| f.from_ip == c.src && f.to_ip == c.dst))
    }

    /// [`PolicyPlan::allows`] for IPv6: the same question in the
    /// internal /64 ([`PolicyPlan::ipv6_prefix`]); `None` with IPv6 off.
    pub fn allows6(&self, system: &System, c: &Connection6) -> Option<bool> {
        let prefix = self.ipv6_prefix?;
        let netvm = system.ipv6_in(&system.netvm.endpoint, prefix);
        if !prefix.contains(c.src) || c.src == netvm || c.dst == netvm {
            return None;
        }
        let from = system
            .vms
            .iter()
            .find(|vm| system.ipv6_in(&vm.endpoint, prefix) == c.src)?;
        if !prefix.contains(c.dst) {
            return Some(from.internet);
        }
        Some(self.flow_allows(c.proto, c.dport, |f| {
            f.from_ip6 == Some(c.src) && f.to_ip6 == Some(c.dst)
        }))
    }

    /// Whether a flow between the addresses `ends` accepts allows `proto`
    /// to `dport`.
    fn flow_allows(
        &self,
        proto: Protocol,
        dport: Option<u16>,
        ends: impl Fn(&FlowRow) -> bool,
    ) -> bool {
        let proto = match proto {
            Protocol::Tcp => FlowProtocol::Tcp,
            Protocol::Udp => FlowProtocol::Udp,
            Protocol::Icmp => FlowProtocol::Icmp,
            Protocol::Other => return false,
        };
        self.flows.iter().any(|f| {
            ends(f)
                && f.proto == proto
                && match (f.ports, dport) {
                    (None, _) => true,
                    (Some(range), Some(port)) => (range.first()..=range.last()).contains(&port),
                    (Some(_), None) => false,
                }
        })
    }
}

#[cfg(test)]
mod connection_tests {
    use super::*;
    use netvm_description::{parse, Format};

    #[test]
    fn judges_connections_by_the_current_policy() {
        let text = "[netvm.uplink]\ninterface = \"eth0\"\n\
            [[vm]]\nname = \"a\"\nallow = [{ to = \"b\", proto = \"tcp\", ports = \"8000-8010\" }]\n\
            [[vm]]\nname = \"b\"\ninternet = false\n";
        let system = parse("t.toml", text, Format::Toml).expect("valid");
        let policy = plan(&system);
        let (a, b) = (
            Ipv4Addr::new(192, 168, 100, 101),
            Ipv4Addr::new(192, 168, 100, 102),
        );
        let c = |src, dst, proto, dport| Connection {
            src,
            dst,
            proto,
            dport,
        };
        let outside = Ipv4Addr::new(203, 0, 113, 1);
        assert_eq!(
            policy.allows(&system, &c(a, b, Protocol::Tcp, Some(8005))),
            Some(true)
        );
        assert_eq!(
            policy.allows(&system, &c(a, b, Protocol::Tcp, Some(8011))),
            Some(false)
        );
        assert_eq!(
            policy.allows(&system, &c(a, b, Protocol::Udp, Some(8005))),
            Some(false)
        );
        assert_eq!(
            policy.allows(&system, &c(b, a, Protocol::Tcp, Some(8005))),
            Some(false)
        );
        assert_eq!(
            policy.allows(&system, &c(a, outside, Protocol::Tcp, Some(443))),
            Some(true)
        );
        assert_eq!(
            policy.allows(&system, &c(b, outside, Protocol::Tcp, Some(443))),
            Some(false)
        );
        assert_eq!(
            policy.allows(&system, &c(outside, a, Protocol::Tcp, Some(22))),
            None
        );
        assert_eq!(
            policy.allows(
                &system,
                &c(a, Ipv4Addr::new(192, 168, 100, 1), Protocol::Udp, Some(53))
            ),
            None
        );
    }
}

#[cfg(test)]
mod connection6_tests {
    use super::*;
    use netvm_description::{parse, Format};

    #[test]
    fn judges_ipv6_connections_as_their_ipv4_twins() {
        let text = "[network]\nipv6_prefix = \"fd00:1::/64\"\n[netvm.uplink]\ninterface = \"eth0\"\n\
            [[vm]]\nname = \"a\"\nallow = [{ to = \"b\", proto = \"tcp\", ports = \"8000-8010\" }, { to = \"b\", proto = \"icmp\" }]\n\
            [[vm]]\nname = \"b\"\ninternet = false\n";
        let system = parse("t.toml", text, Format::Toml).expect("valid");
        let policy = plan(&system);
        let ip = |text: &str| -> Ipv6Addr { text.parse().expect("address") };
        let (a, b, outside) = (ip("fd00:1::65"), ip("fd00:1::66"), ip("2001:db8::1"));
        let c = |src, dst, proto, dport| Connection6 {
            src,
            dst,
            proto,
            dport,
        };
        let judge = |conn| policy.allows6(&system, &conn);
        assert_eq!(judge(c(a, b, Protocol::Tcp, Some(8005))), Some(true));
        assert_eq!(judge(c(a, b, Protocol::Tcp, Some(8011))), Some(false));
        assert_eq!(judge(c(a, b, Protocol::Icmp, None)), Some(true));
        assert_eq!(judge(c(b, a, Protocol::Icmp, None)), Some(false));
        assert_eq!(judge(c(a, outside, Protocol::Udp, Some(443))), Some(true));
        assert_eq!(judge(c(b, outside, Protocol::Udp, Some(443))), Some(false));
        assert_eq!(judge(c(outside, a, Protocol::Tcp, Some(22))), None);
        assert_eq!(judge(c(a, ip("fd00:1::1"), Protocol::Udp, Some(53))), None);
        // Off: nothing to judge.
        let off = plan_in(&system, None);
        assert_eq!(
            off.allows6(&system, &c(a, b, Protocol::Tcp, Some(8005))),
            None
        );
    }
}
