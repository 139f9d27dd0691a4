//! The flow policy: which VM may reach the Internet, which VM may open
//! which connections to which other VM, and which uplink ports are
//! forwarded where. Default deny: anything not listed here is dropped.

use netvm_description::System;
use serde::Serialize;
use std::net::Ipv4Addr;

/// A permitted VM-to-VM flow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct FlowRow {
    /// Source VM.
    pub from: String,
    /// Source address.
    pub from_ip: Ipv4Addr,
    /// Destination VM.
    pub to: String,
    /// Destination address.
    pub to_ip: Ipv4Addr,
    /// tcp, udp or icmp.
    pub proto: String,
    /// Ports, or `None` for all.
    pub ports: Option<String>,
}

/// A port forward from the uplink.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct ForwardRow {
    /// tcp or udp.
    pub proto: String,
    /// Uplink ports.
    pub uplink_ports: String,
    /// Destination VM.
    pub to: String,
    /// Destination address.
    pub to_ip: Ipv4Addr,
    /// Destination ports.
    pub to_ports: String,
}

/// Who may reach what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PolicyPlan {
    /// VMs allowed out to the Internet, in declaration order.
    pub internet: Vec<String>,
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
        .map(|vm| vm.name.to_string())
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
                from: vm.name.to_string(),
                from_ip: vm.endpoint.ip,
                to: to.name.to_string(),
                to_ip: to.endpoint.ip,
                proto: flow.proto.to_string(),
                ports: flow.ports.map(|p| p.to_string()),
            });
        }
        for f in &vm.forwards {
            forwards.push(ForwardRow {
                proto: f.proto.to_string(),
                uplink_ports: f.uplink_ports.to_string(),
                to: vm.name.to_string(),
                to_ip: vm.endpoint.ip,
                to_ports: f.vm_ports.to_string(),
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
