//! The flow policy: which VM may reach the Internet, which VM may open
//! which connections to which other VM, and which uplink ports are
//! forwarded where. Default deny: anything not listed here is dropped.
//!
//! Rows hold the description's own values (VM names, addresses,
//! protocols, port ranges), so the ruleset renders them without parsing
//! text back.

use netvm_description::values::{PortRange, Protocol as FlowProtocol, VmName};
use netvm_description::System;
use serde::Serialize;
use std::net::Ipv4Addr;

/// A permitted VM-to-VM flow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FlowRow {
    /// Source VM.
    pub from: VmName,
    /// Source address.
    pub from_ip: Ipv4Addr,
    /// Destination VM.
    pub to: VmName,
    /// Destination address.
    pub to_ip: Ipv4Addr,
    /// tcp, udp or icmp.
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
}

pub(crate) fn plan(system: &System) -> PolicyPlan {
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
                to: to.name.clone(),
                to_ip: to.endpoint.ip,
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
        let proto = match c.proto {
            Protocol::Tcp => FlowProtocol::Tcp,
            Protocol::Udp => FlowProtocol::Udp,
            Protocol::Icmp => FlowProtocol::Icmp,
            Protocol::Other => return Some(false),
        };
        Some(self.flows.iter().any(|f| {
            f.from_ip == c.src
                && f.to_ip == c.dst
                && f.proto == proto
                && match (f.ports, c.dport) {
                    (None, _) => true,
                    (Some(range), Some(port)) => (range.first()..=range.last()).contains(&port),
                    (Some(_), None) => false,
                }
        }))
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
