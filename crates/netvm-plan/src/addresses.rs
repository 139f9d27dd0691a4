//! The address plan: which MAC and IPv4 address every endpoint has.

use netvm_description::{Mode, Origin, Role, System};
use serde::Serialize;
use std::net::Ipv4Addr;

/// The internal network in a few facts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkSummary {
    /// Secure or dev.
    pub mode: Mode,
    /// Subnet, e.g. `192.168.100.0/24`.
    pub subnet: String,
    /// Netmask.
    pub netmask: Ipv4Addr,
    /// The gateway VMs use: the net-vm's internal address.
    pub gateway: Ipv4Addr,
    /// DNS domain.
    pub domain: String,
    /// MTU.
    pub mtu: u16,
    /// Host bridge name.
    pub bridge: String,
    /// The net-vm's uplink device, e.g. `pci 0000:00:14.3`.
    pub uplink: String,
}

/// One endpoint of the internal network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressRow {
    /// Name.
    pub name: String,
    /// net-vm, host, system or app.
    pub role: Role,
    /// MAC address.
    pub mac: String,
    /// Whether the MAC was described or derived.
    pub mac_origin: Origin,
    /// IPv4 address.
    pub ip: Ipv4Addr,
    /// Whether the address was described or derived.
    pub ip_origin: Origin,
    /// Fully qualified name.
    pub fqdn: String,
}

pub(crate) fn network(system: &System) -> NetworkSummary {
    use netvm_description::UplinkDevice;
    let n = &system.network;
    NetworkSummary {
        mode: system.netvm.mode,
        subnet: n.subnet.to_string(),
        netmask: n.subnet.netmask(),
        gateway: system.netvm.endpoint.ip,
        domain: n.domain.to_string(),
        mtu: n.mtu,
        bridge: n.bridge.to_string(),
        uplink: match &system.netvm.uplink().device {
            UplinkDevice::Pci(a) => format!("pci {a}"),
            UplinkDevice::Usb(id) => format!("usb {id}"),
            UplinkDevice::Platform(name) => format!("platform {name}"),
            UplinkDevice::Interface(name) => format!("interface {name}"),
        },
    }
}

pub(crate) fn rows(system: &System) -> Vec<AddressRow> {
    system
        .endpoints()
        .map(|(name, role, e)| AddressRow {
            name: name.to_owned(),
            role,
            mac: e.mac.to_string(),
            mac_origin: e.mac_origin,
            ip: e.ip,
            ip_origin: e.ip_origin,
            fqdn: e.fqdn.to_string(),
        })
        .collect()
}
