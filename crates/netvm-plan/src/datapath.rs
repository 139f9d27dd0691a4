//! The Net VM's plan, made once per (re)load: interfaces and addresses,
//! kernel settings, routes, the nftables ruleset with the `endpoints`
//! seed, the DHCP server's configuration, the DNS server's zone and the
//! event sets the agent listens to (`netvm plan --role net-vm`). Every
//! part runs from this one value; pure; appliers make it so.

use crate::naming::{self, DnsPlan};
use crate::policy::{self, PolicyPlan};
use crate::ruleset::{self, EventSet, NetVmInterfaces};
use netvm_description::values::{IfName, Ipv4Cidr, MacAddr};
use netvm_description::{Role, System, UplinkAddressing, UplinkDevice};
use netvm_dhcp::ServerConfig;
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::Ipv4Addr;

/// The name the internal interface gets inside the Net VM (as in Ghaf).
pub const INTERNAL_NAME: &str = "ethint0";

/// The uplink's name when the description names a device, not an
/// interface (the agent finds the device and gives it this name).
pub const UPLINK_NAME: &str = "uplink0";

/// Which side an interface is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InterfaceRole {
    /// The internal network.
    Internal,
    /// The uplink.
    Uplink,
}

impl fmt::Display for InterfaceRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            InterfaceRole::Internal => "internal",
            InterfaceRole::Uplink => "uplink",
        })
    }
}

/// How an interface gets its address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InterfaceAddress {
    /// From a DHCP server (the uplink's client); printed `dhcp`.
    Dhcp,
    /// This address with its prefix.
    Static(Ipv4Cidr),
}

impl fmt::Display for InterfaceAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InterfaceAddress::Dhcp => f.pad("dhcp"),
            InterfaceAddress::Static(cidr) => f.pad(&cidr.to_string()),
        }
    }
}

impl Serialize for InterfaceAddress {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One interface and what it should carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfacePlan {
    /// Name inside the Net VM.
    pub name: IfName,
    /// Internal or uplink.
    pub role: InterfaceRole,
    /// Address with prefix, or how it is obtained.
    pub address: InterfaceAddress,
    /// MTU, when the description sets it.
    pub mtu: Option<u16>,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutePlan {
    /// Destination.
    pub destination: Ipv4Cidr,
    /// Next hop.
    pub gateway: Ipv4Addr,
    /// Interface.
    pub device: IfName,
}

/// The Net VM's plan: everything its parts run, made once per (re)load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetVmPlan {
    /// The interface names the data plane and the servers use.
    pub names: NetVmInterfaces,
    /// Interfaces.
    pub interfaces: Vec<InterfacePlan>,
    /// Kernel settings: path under /proc/sys (slashes, so interface
    /// names with dots stay whole) and value.
    pub sysctls: Vec<(String, String)>,
    /// Routes (beyond the connected ones).
    pub routes: Vec<RoutePlan>,
    /// Who may reach what (the ruleset's sets, and which tracked
    /// connections a new policy cuts).
    pub policy: PolicyPlan,
    /// The DHCP server's configuration, reservations included.
    pub dhcp: ServerConfig,
    /// The DNS server's zone and limits.
    pub dns: DnsPlan,
    /// What the `endpoints` set starts with, in the ruleset's own
    /// transaction: every reservation and the live leases given to
    /// [`plan`] that the description still admits, in address order.
    pub endpoints_seed: Vec<(Ipv4Addr, MacAddr)>,
    /// How many of the leases given to [`plan`] are in the seed.
    pub leases_admitted: usize,
    /// The event sets of the ruleset and their NFLOG groups.
    pub event_sets: Vec<EventSet>,
    /// The nftables ruleset, one `nft -f` transaction.
    pub ruleset: String,
}

/// The interface names the Net VM uses for `system`.
pub fn interfaces(system: &System) -> NetVmInterfaces {
    let uplink = match &system.netvm.uplink.device {
        UplinkDevice::Interface(name) => name.clone(),
        UplinkDevice::Pci(_) | UplinkDevice::Usb(_) | UplinkDevice::Platform(_) => UPLINK_NAME
            .parse()
            .expect("uplink0 is a valid interface name"),
    };
    NetVmInterfaces {
        internal: INTERNAL_NAME
            .parse()
            .expect("ethint0 is a valid interface name"),
        uplink,
    }
}

/// The leases (address, MAC) that `system` still lets send: not
/// clashing with an endpoint it describes (an address or MAC it now
/// gives to a VM, the host or the net-vm), each pair once, in order.
pub fn admitted_leases(
    system: &System,
    leases: &[(Ipv4Addr, MacAddr)],
) -> Vec<(Ipv4Addr, MacAddr)> {
    let mut admitted: Vec<(Ipv4Addr, MacAddr)> = leases
        .iter()
        .filter(|(ip, mac)| {
            !system
                .endpoints()
                .any(|(_, _, e)| e.ip == *ip || e.mac == *mac)
        })
        .copied()
        .collect();
    admitted.sort();
    admitted.dedup();
    admitted
}

/// Computes the Net VM's plan for `system`, with `leases` (the live
/// pool leases, address and MAC) seeding the `endpoints` set.
pub fn plan(system: &System, leases: &[(Ipv4Addr, MacAddr)]) -> NetVmPlan {
    let names = interfaces(system);
    let internal = names.internal.clone();
    let uplink = names.uplink.clone();
    let (uplink_address, routes) = match &system.netvm.uplink.addressing {
        UplinkAddressing::Dhcp => (InterfaceAddress::Dhcp, Vec::new()),
        UplinkAddressing::Static {
            address, gateway, ..
        } => (
            InterfaceAddress::Static(*address),
            vec![RoutePlan {
                destination: default_route(),
                gateway: *gateway,
                device: uplink.clone(),
            }],
        ),
    };
    let sysctl = |key: String, value: &str| (key, value.to_owned());
    // Reverse-path filtering: strict on the internal side. A DHCP uplink
    // has no address or route while it asks for one, and strict (or
    // loose) filtering would drop the server's replies, so it gets none;
    // the guard chain drops internal and loopback sources arriving there
    // instead. The kernel uses the larger of `all` and the interface's
    // value, so `all` is 0 and each interface says its own.
    let uplink_rp = match system.netvm.uplink.addressing {
        UplinkAddressing::Dhcp => "0",
        UplinkAddressing::Static { .. } => "1",
    };
    let sysctls = vec![
        sysctl("net/ipv4/ip_forward".into(), "1"),
        sysctl("net/ipv4/conf/all/send_redirects".into(), "0"),
        sysctl("net/ipv4/conf/all/accept_redirects".into(), "0"),
        sysctl("net/ipv4/conf/all/rp_filter".into(), "0"),
        sysctl(format!("net/ipv4/conf/{internal}/send_redirects"), "0"),
        sysctl(format!("net/ipv4/conf/{internal}/rp_filter"), "1"),
        // VMs sit on isolated bridge ports: the Net VM answers their ARP
        // for each other, so VM-to-VM traffic crosses its forward chain.
        sysctl(format!("net/ipv4/conf/{internal}/proxy_arp"), "1"),
        sysctl(format!("net/ipv4/conf/{internal}/proxy_arp_pvlan"), "1"),
        sysctl(format!("net/ipv4/conf/{uplink}/rp_filter"), uplink_rp),
        sysctl("net/ipv6/conf/all/forwarding".into(), "0"),
    ];
    let policy = policy::plan(system);
    let admitted = admitted_leases(system, leases);
    let mut endpoints_seed: Vec<(Ipv4Addr, MacAddr)> = system
        .endpoints()
        .filter(|(_, role, _)| *role != Role::NetVm)
        .map(|(_, _, e)| (e.ip, e.mac))
        .chain(admitted.iter().copied())
        .collect();
    endpoints_seed.sort();
    let ruleset = ruleset::render(system, &policy, &names, &endpoints_seed);
    NetVmPlan {
        interfaces: vec![
            InterfacePlan {
                name: internal,
                role: InterfaceRole::Internal,
                address: InterfaceAddress::Static(internal_address(system)),
                mtu: Some(system.network.mtu),
            },
            InterfacePlan {
                name: uplink,
                role: InterfaceRole::Uplink,
                address: uplink_address,
                mtu: None,
            },
        ],
        names,
        sysctls,
        routes,
        policy,
        dhcp: naming::dhcp(system),
        dns: naming::dns(system),
        endpoints_seed,
        leases_admitted: admitted.len(),
        event_sets: ruleset::EVENT_SETS.to_vec(),
        ruleset,
    }
}

/// The net-vm's address on the internal network, with the subnet's prefix.
fn internal_address(system: &System) -> Ipv4Cidr {
    let subnet = system.network.subnet;
    Ipv4Cidr::new(system.netvm.endpoint.ip, subnet.prefix()).unwrap_or(subnet)
}

/// `0.0.0.0/0`.
fn default_route() -> Ipv4Cidr {
    Ipv4Cidr::new(Ipv4Addr::UNSPECIFIED, 0).unwrap_or_else(Ipv4Cidr::default_subnet)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::{parse, Format};

    #[test]
    fn leases_clashing_with_the_description_are_left_out_of_the_seed() {
        let text = "[netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"a\"\n";
        let system = parse("t.toml", text, Format::Toml).expect("valid");
        let a = system.vms[0].endpoint.clone();
        let mac = |text: &str| -> MacAddr { text.parse().expect("mac") };
        let pool = Ipv4Addr::new(192, 168, 100, 201);
        let leases = [
            (pool, mac("02:00:00:00:00:01")),
            (pool, mac("02:00:00:00:00:01")),
            // A's address or A's MAC: the description gives them to A now.
            (a.ip, mac("02:00:00:00:00:02")),
            (Ipv4Addr::new(192, 168, 100, 202), a.mac),
            // The net-vm's own address.
            (system.netvm.endpoint.ip, mac("02:00:00:00:00:03")),
        ];
        let plan = plan(&system, &leases);
        assert_eq!(plan.leases_admitted, 1);
        assert_eq!(
            plan.endpoints_seed,
            [(a.ip, a.mac), (pool, mac("02:00:00:00:00:01"))]
        );
        assert_eq!(plan.dhcp.reservations.len(), 1);
        assert_eq!(plan.event_sets.len(), ruleset::EVENT_SETS.len());
        assert!(plan.ruleset.contains("192.168.100.201 . 02:00:00:00:00:01"));
    }
}
