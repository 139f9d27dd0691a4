//! The planner: turns a validated [`System`] into a [`Plan`] — everything
//! that should be true on the machines, computed without touching them.
//!
//! Pure and deterministic: no I/O, no clock, collections in a fixed order,
//! so the same description always gives byte-for-byte the same plan
//! (`netvm plan --format json`) and plans can be golden-tested. The plan
//! holds the address plan, the DHCP server's configuration (reservations
//! included), the DNS zone and the flow policy, in the description's own
//! types (addresses, MACs, names, protocols, port ranges), never text to
//! parse back; each machine's part is planned on its own: the Net VM's
//! ([`datapath::NetVmPlan`]: data plane, [`ruleset`], and what its DHCP
//! and DNS servers and event listener run) and the host's bridge, ports
//! and layer-2 guards ([`host`], [`l2guard`]) with the VMM arguments
//! ([`vmm`]).

#![forbid(unsafe_code)]

mod addresses;
pub mod clat;
pub mod datapath;
pub mod guest;
pub mod host;
pub mod host_firewall;
pub mod l2guard;
mod naming;
pub mod policy;
pub mod ruleset;
mod table;
pub mod vmm;

pub use addresses::{AddressRow, NetworkSummary};
pub use naming::{dns as dns_plan, DnsName as PlannedName, DnsPlan};
pub use policy::{FlowRow, ForwardRow, PolicyPlan};

use netvm_description::System;
use serde::Serialize;

/// Everything the description implies, ready to print or apply.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Plan {
    /// The internal network.
    pub network: NetworkSummary,
    /// Every endpoint on the internal network, net-vm first.
    pub addresses: Vec<AddressRow>,
    /// The DHCP server's configuration, with one reservation per
    /// endpoint served by DHCP.
    pub dhcp: netvm_dhcp::ServerConfig,
    /// The internal DNS: its zone and limits.
    pub dns: DnsPlan,
    /// Who may reach what.
    pub policy: PolicyPlan,
}

/// Computes the plan for `system`.
pub fn plan(system: &System) -> Plan {
    Plan {
        network: addresses::network(system),
        addresses: addresses::rows(system),
        dhcp: naming::dhcp(system),
        dns: naming::dns(system, system.network.ipv6.map(|v| v.prefix)),
        policy: policy::plan(system),
    }
}

impl Plan {
    /// The address plan as a table (name, kind, MAC, IPv4, FQDN).
    pub fn address_table(&self) -> String {
        table::addresses(self)
    }

    /// The whole plan as readable text.
    pub fn to_text(&self) -> String {
        table::full(self)
    }
}
