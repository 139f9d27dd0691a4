//! What the Net VM's data plane should look like: interfaces and
//! addresses, kernel settings, routes and the nftables ruleset
//! (`netvm plan --role net-vm`). Pure; appliers make it so.

use crate::policy::PolicyPlan;
use crate::ruleset::{self, NetVmInterfaces};
use netvm_description::{System, UplinkAddressing, UplinkDevice};
use serde::Serialize;

/// The name the internal interface gets inside the Net VM (as in Ghaf).
pub const INTERNAL_NAME: &str = "ethint0";

/// The uplink's name when the description names a device, not an
/// interface (the agent finds the device and gives it this name).
pub const UPLINK_NAME: &str = "uplink0";

/// One interface and what it should carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfacePlan {
    /// Name inside the Net VM.
    pub name: String,
    /// `internal` or `uplink`.
    pub role: &'static str,
    /// Address with prefix, or how it is obtained.
    pub address: String,
    /// MTU, when the description sets it.
    pub mtu: Option<u16>,
}

/// A route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoutePlan {
    /// Destination.
    pub destination: String,
    /// Next hop.
    pub gateway: String,
    /// Interface.
    pub device: String,
}

/// The Net VM's data plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetVmPlan {
    /// Interfaces.
    pub interfaces: Vec<InterfacePlan>,
    /// Kernel settings: path under /proc/sys (slashes, so interface
    /// names with dots stay whole) and value.
    pub sysctls: Vec<(String, String)>,
    /// Routes (beyond the connected ones).
    pub routes: Vec<RoutePlan>,
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

/// Computes the Net VM's data plane.
pub fn plan(system: &System, policy: &PolicyPlan) -> NetVmPlan {
    let names = interfaces(system);
    let internal = names.internal.to_string();
    let uplink = names.uplink.to_string();
    let subnet = system.network.subnet;
    let (uplink_address, routes) = match &system.netvm.uplink.addressing {
        UplinkAddressing::Dhcp => ("dhcp".to_owned(), Vec::new()),
        UplinkAddressing::Static {
            address, gateway, ..
        } => (
            address.to_string(),
            vec![RoutePlan {
                destination: "0.0.0.0/0".to_owned(),
                gateway: gateway.to_string(),
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
    NetVmPlan {
        interfaces: vec![
            InterfacePlan {
                name: internal,
                role: "internal",
                address: format!("{}/{}", system.netvm.endpoint.ip, subnet.prefix()),
                mtu: Some(system.network.mtu),
            },
            InterfacePlan {
                name: uplink,
                role: "uplink",
                address: uplink_address,
                mtu: None,
            },
        ],
        sysctls,
        routes,
        ruleset: ruleset::render(system, policy, &names),
    }
}
