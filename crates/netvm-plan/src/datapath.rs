//! The Net VM's plan, made once per (re)load: interfaces and addresses,
//! kernel settings, routes, the nftables ruleset with the `endpoints`
//! seed, the DHCP server's configuration, the DNS server's zone and the
//! event sets the agent listens to (`netvm plan --role net-vm`). Every
//! part runs from this one value; pure; appliers make it so.
//!
//! IPv6 ([`Ipv6Plan`]): one description, both families. The internal /64
//! is the first /64 of a prefix delegated to the uplink when the agent has
//! one ([`Ipv6Uplink::delegated`]: [`Ipv6Mode::Routed`], no NAT), else the
//! description's ([`Ipv6Mode::Nat66`], masqueraded to the uplink). Every
//! described endpoint's IPv6 address is its IPv4 host number in that /64;
//! VMs get it by DHCPv6 (reservations by MAC), the net-vm's router
//! advertisements carry no on-link prefix, so every packet, VM to VM too,
//! crosses the forward chain under the same policy as IPv4. With IPv6 off
//! in the description the plan is the IPv4 one, unchanged.

use crate::naming::{self, DnsPlan};
use crate::policy::{self, PolicyPlan};
use crate::ruleset::{self, EventSet, Internal6, Ipv6Rules, NetVmInterfaces, Uplink6};
use netvm_description::values::{DomainName, IfName, Ipv4Cidr, Ipv6Cidr, MacAddr};
use netvm_description::{Role, System, UplinkAddressing, UplinkIpv6};
use netvm_dhcp::ServerConfig;
use serde::{Serialize, Serializer};
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::ops::RangeInclusive;

/// The name the internal interface gets inside the Net VM (as in Ghaf).
pub const INTERNAL_NAME: &str = "ethint0";

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
    /// Its IPv6 addresses with their prefixes (none: IPv6 off, or left to
    /// the kernel's SLAAC on an automatic uplink).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub addresses6: Vec<Ipv6Cidr>,
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

/// An IPv6 route; `Display` gives its `ip -6 route` equivalent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Route6Plan {
    /// `ip -6 route replace DESTINATION via GATEWAY dev DEVICE`.
    Via {
        /// Destination.
        destination: Ipv6Cidr,
        /// Next hop (link-local or on the device's prefix).
        gateway: Ipv6Addr,
        /// Interface.
        device: IfName,
    },
    /// `ip -6 route replace unreachable DESTINATION`: the parts of a
    /// delegated prefix not in use answer "unreachable" instead of
    /// bouncing between the net-vm and its upstream.
    Unreachable {
        /// Destination.
        destination: Ipv6Cidr,
    },
}

impl fmt::Display for Route6Plan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Route6Plan::Via {
                destination,
                gateway,
                device,
            } => write!(f, "{destination} via {gateway} dev {device}"),
            Route6Plan::Unreachable { destination } => write!(f, "unreachable {destination}"),
        }
    }
}

/// What the Net VM has learned about IPv6 on its uplink at run time (the
/// default: nothing yet).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Ipv6Uplink {
    /// The prefix delegated to the uplink (DHCPv6 IA_PD), if any: its
    /// first /64 becomes the internal network's, routed.
    pub delegated: Option<Ipv6Cidr>,
    /// The CLAT (464XLAT), while one runs.
    pub clat: Option<ClatHook>,
}

/// Where the CLAT plugs into the data plane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClatHook {
    /// Its TUN (tayga's).
    pub tun: IfName,
    /// The IPv6 address guests' translated IPv4 leaves from.
    pub clat6: Ipv6Addr,
}

/// How the internal IPv6 reaches beyond the uplink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ipv6Mode {
    /// The first /64 of a delegated prefix: routed, no NAT; a port
    /// forward opens the VM's own address and port.
    Routed,
    /// The description's /64 (unique local, or a written global one),
    /// masqueraded to the uplink's address; forwards are DNAT on it.
    Nat66,
}

impl fmt::Display for Ipv6Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(match self {
            Ipv6Mode::Routed => "routed",
            Ipv6Mode::Nat66 => "nat66",
        })
    }
}

/// What the internal DHCPv6 server runs (stateful, IA_NA, /128s).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Dhcp6Plan {
    /// The internal /64.
    pub prefix: Ipv6Cidr,
    /// Every described endpoint but the net-vm: its MAC (the client's
    /// Ethernet source, not its DUID) and address, in address order.
    pub reservations: Vec<(MacAddr, Ipv6Addr)>,
    /// Interface identifiers of the pool (`None`: no pool).
    pub pool_iids: Option<RangeInclusive<u128>>,
    /// Preferred lifetime, seconds (the DHCP lease time).
    pub preferred_secs: u32,
    /// Valid lifetime, seconds (the DHCP lease time).
    pub valid_secs: u32,
    /// T1, seconds (the DHCP renew time).
    pub t1_secs: u32,
    /// T2, seconds (the DHCP rebind time).
    pub t2_secs: u32,
    /// DNS servers (the net-vm).
    pub dns: Vec<Ipv6Addr>,
    /// Search domains (the internal domain).
    pub search: Vec<DomainName>,
}

/// What the net-vm's router advertisements on the internal side say.
/// No prefix information: no SLAAC and nothing on-link, so VMs send every
/// packet, to each other too, through the net-vm.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RaPlan {
    /// RDNSS (RFC 8106): the net-vm.
    pub rdnss: Ipv6Addr,
    /// DNSSL: the internal domain.
    pub dnssl: DomainName,
    /// MTU option: the network's.
    pub mtu: u16,
    /// Router lifetime, seconds.
    pub router_lifetime_secs: u16,
    /// M: addresses by DHCPv6.
    pub managed: bool,
    /// O: other configuration by DHCPv6.
    pub other: bool,
}

/// The router lifetime of the net-vm's router advertisements.
pub const ROUTER_LIFETIME_SECS: u16 = 1800;

/// The internal network's IPv6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ipv6Plan {
    /// The internal /64.
    pub prefix: Ipv6Cidr,
    /// Routed (a delegated prefix) or masqueraded.
    pub mode: Ipv6Mode,
    /// The net-vm's address in it (its IPv4 host number).
    pub netvm_address: Ipv6Addr,
    /// What the `endpoints6` set starts with: every described endpoint
    /// but the net-vm, and the live DHCPv6 leases the description still
    /// admits, in address order.
    pub endpoints6_seed: Vec<(Ipv6Addr, MacAddr)>,
    /// How many of the IPv6 leases given are in the seed.
    pub leases6_admitted: usize,
    /// The DHCPv6 server's configuration.
    pub dhcp6: Dhcp6Plan,
    /// The router advertisements on the internal side.
    pub ra: RaPlan,
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
    /// IPv6 routes (beyond the connected ones and the uplink's SLAAC).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes6: Vec<Route6Plan>,
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
    /// The internal network's IPv6 (`None`: off in the description).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ipv6: Option<Ipv6Plan>,
    /// The event sets of the ruleset and their NFLOG groups.
    pub event_sets: Vec<EventSet>,
    /// The nftables ruleset, one `nft -f` transaction.
    pub ruleset: String,
}

/// The interface names the Net VM uses for `system`.
/// With one uplink, it is the active one; with several, none is until
/// [`plan_for`] is told which.
pub fn interfaces(system: &System) -> NetVmInterfaces {
    let uplinks: Vec<IfName> = system
        .netvm
        .uplinks
        .iter()
        .map(|u| u.name.clone())
        .collect();
    NetVmInterfaces {
        internal: INTERNAL_NAME
            .parse()
            .expect("ethint0 is a valid interface name"),
        uplink: system.netvm.uplink().name.clone(),
        active_uplink: (!system.netvm.managed_uplinks())
            .then(|| system.netvm.uplink().name.clone()),
        uplinks,
        managed: system.netvm.managed_uplinks(),
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

/// The IPv6 leases (address, MAC) that `system` still lets send with
/// the internal /64 `prefix`: inside it, not clashing with an endpoint it
/// describes (its address there or its MAC), each pair once, in order.
pub fn admitted_leases6(
    system: &System,
    prefix: Ipv6Cidr,
    leases: &[(Ipv6Addr, MacAddr)],
) -> Vec<(Ipv6Addr, MacAddr)> {
    let mut admitted: Vec<(Ipv6Addr, MacAddr)> = leases
        .iter()
        .filter(|(ip, mac)| {
            prefix.contains(*ip)
                && prefix.host_part(*ip) != 0
                && !system
                    .endpoints()
                    .any(|(_, _, e)| system.ipv6_in(e, prefix) == *ip || e.mac == *mac)
        })
        .copied()
        .collect();
    admitted.sort();
    admitted.dedup();
    admitted
}

/// The internal /64 and how it reaches out, with what the uplink
/// learned: the first /64 of a delegated prefix (routed) when there is
/// one of /64 or shorter, else the description's (NAT66). `None` with
/// IPv6 off in the description.
pub fn internal_prefix(system: &System, uplink6: &Ipv6Uplink) -> Option<(Ipv6Cidr, Ipv6Mode)> {
    let described = system.network.ipv6?;
    let routed = uplink6
        .delegated
        .filter(|d| d.prefix() <= 64)
        .and_then(|d| Ipv6Cidr::new(d.network(), 64));
    Some(match routed {
        Some(prefix) => (prefix, Ipv6Mode::Routed),
        None => (described.prefix, Ipv6Mode::Nat66),
    })
}

/// Computes the Net VM's plan for `system`, with `leases` (the live
/// pool leases, address and MAC) seeding the `endpoints` set, and
/// nothing learned about IPv6 on the uplink yet: [`plan_with`].
pub fn plan(system: &System, leases: &[(Ipv4Addr, MacAddr)]) -> NetVmPlan {
    plan_with(system, leases, &[], &Ipv6Uplink::default())
}

/// Computes the Net VM's plan for `system`: `leases` and `leases6` (the
/// live DHCP and DHCPv6 pool leases, address and MAC) seed the
/// `endpoints` and `endpoints6` sets; `uplink6` is what the uplink
/// learned (a delegated prefix, a running CLAT).
pub fn plan_with(
    system: &System,
    leases: &[(Ipv4Addr, MacAddr)],
    leases6: &[(Ipv6Addr, MacAddr)],
    uplink6: &Ipv6Uplink,
) -> NetVmPlan {
    plan_for(system, leases, leases6, uplink6, None)
}

/// [`plan_with`], with `active` the uplink that carries the Internet now
/// (with several uplinks; `None`: none yet, and VMs get no Internet
/// until the agent chooses one). With one uplink it is always that one.
pub fn plan_for(
    system: &System,
    leases: &[(Ipv4Addr, MacAddr)],
    leases6: &[(Ipv6Addr, MacAddr)],
    uplink6: &Ipv6Uplink,
    active: Option<&IfName>,
) -> NetVmPlan {
    let mut names = interfaces(system);
    if names.managed {
        names.active_uplink = active.filter(|a| names.uplinks.contains(a)).cloned();
    }
    let internal = names.internal.clone();
    let uplink = names.uplink.clone();
    // With several uplinks the agent puts the default route on the
    // active one; with one, a static uplink's is planned here.
    let several = system.netvm.managed_uplinks();
    let routes = match &system.netvm.uplink().addressing {
        UplinkAddressing::Static { gateway, .. } if !several => vec![RoutePlan {
            destination: default_route(),
            gateway: *gateway,
            device: uplink.clone(),
        }],
        _ => Vec::new(),
    };
    let sysctl = |key: String, value: &str| (key, value.to_owned());
    // Reverse-path filtering: strict on the internal side. A DHCP uplink
    // has no address or route while it asks for one, and strict (or
    // loose) filtering would drop the server's replies, so it gets none;
    // the guard chain drops internal and loopback sources arriving there
    // instead. The kernel uses the larger of `all` and the interface's
    // value, so `all` is 0 and each interface says its own.
    let rp = |up: &netvm_description::Uplink| match up.addressing {
        UplinkAddressing::Dhcp => "0",
        // Strict needs the route back through it: only the active uplink
        // has the default route when there are several.
        UplinkAddressing::Static { .. } if several => "2",
        UplinkAddressing::Static { .. } => "1",
    };
    let mut sysctls = vec![
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
    ];
    for up in &system.netvm.uplinks {
        sysctls.push(sysctl(
            format!("net/ipv4/conf/{}/rp_filter", up.name),
            rp(up),
        ));
    }
    let internal6 = internal_prefix(system, uplink6);
    let clat = uplink6.clat.as_ref();
    // The uplink's own IPv6 matters when the internal network has IPv6
    // or a CLAT runs over it; otherwise IPv6 stays as it always was.
    let uplink_v6 = match &system.netvm.uplink().ipv6 {
        _ if internal6.is_none() && clat.is_none() => None,
        UplinkIpv6::Auto => Some(Uplink6::Auto),
        UplinkIpv6::Static { .. } => Some(Uplink6::Static),
        UplinkIpv6::Off => None,
    };
    if internal6.is_none() && clat.is_none() {
        sysctls.push(sysctl("net/ipv6/conf/all/forwarding".into(), "0"));
    } else {
        sysctls.extend(ipv6_sysctls(system, &internal, &uplink));
    }
    // IPv6 runs on the primary uplink alone: the others carry none.
    for up in system.netvm.uplinks.iter().skip(1) {
        for (key, value) in [("disable_ipv6", "1"), ("accept_ra", "0"), ("autoconf", "0")] {
            sysctls.push(sysctl(format!("net/ipv6/conf/{}/{key}", up.name), value));
        }
    }
    let mut routes6 = Vec::new();
    if let (Some(_), UplinkIpv6::Static { gateway, .. }) = (uplink_v6, &system.netvm.uplink().ipv6)
    {
        routes6.push(Route6Plan::Via {
            destination: Ipv6Cidr::new(Ipv6Addr::UNSPECIFIED, 0)
                .unwrap_or_else(|| unreachable!("0 <= 128")),
            gateway: *gateway,
            device: uplink.clone(),
        });
    }
    if let (Some((_, Ipv6Mode::Routed)), Some(delegated)) = (internal6, uplink6.delegated) {
        routes6.push(Route6Plan::Unreachable {
            destination: delegated.truncated(),
        });
    }
    let uplink_addresses6 = match (&system.netvm.uplink().ipv6, uplink_v6) {
        (UplinkIpv6::Static { address, .. }, Some(_)) => vec![*address],
        _ => Vec::new(),
    };

    let policy = policy::plan_in(system, internal6.map(|(prefix, _)| prefix));
    let ipv6 = internal6.map(|(prefix, mode)| ipv6_plan(system, prefix, mode, leases6));
    let admitted = admitted_leases(system, leases);
    let mut endpoints_seed: Vec<(Ipv4Addr, MacAddr)> = system
        .endpoints()
        .filter(|(_, role, _)| *role != Role::NetVm)
        .map(|(_, _, e)| (e.ip, e.mac))
        .chain(admitted.iter().copied())
        .collect();
    endpoints_seed.sort();
    let rules6 = Ipv6Rules {
        internal: ipv6.as_ref().map(|v6| Internal6 {
            prefix: v6.prefix,
            mode: v6.mode,
            netvm: v6.netvm_address,
            endpoints: &v6.endpoints6_seed,
            ours: match (v6.mode, uplink6.delegated) {
                (Ipv6Mode::Routed, Some(delegated)) => delegated.truncated(),
                _ => v6.prefix,
            },
        }),
        uplink: uplink_v6,
        clat,
    };
    let ruleset = ruleset::render(system, &policy, &names, &endpoints_seed, &rules6);
    let internal_addresses6 = ipv6
        .as_ref()
        .and_then(|v6| Ipv6Cidr::new(v6.netvm_address, 64))
        .into_iter()
        .collect();
    NetVmPlan {
        interfaces: [InterfacePlan {
            name: internal,
            role: InterfaceRole::Internal,
            address: InterfaceAddress::Static(internal_address(system)),
            mtu: Some(system.network.mtu),
            addresses6: internal_addresses6,
        }]
        .into_iter()
        .chain(system.netvm.uplinks.iter().map(|up| InterfacePlan {
            name: up.name.clone(),
            role: InterfaceRole::Uplink,
            address: match up.addressing {
                UplinkAddressing::Dhcp => InterfaceAddress::Dhcp,
                UplinkAddressing::Static { address, .. } => InterfaceAddress::Static(address),
            },
            mtu: None,
            addresses6: if up.name == uplink {
                uplink_addresses6.clone()
            } else {
                Vec::new()
            },
        }))
        .collect(),
        names,
        sysctls,
        routes,
        routes6,
        policy,
        dhcp: naming::dhcp(system),
        dns: naming::dns(system, internal6.map(|(prefix, _)| prefix)),
        endpoints_seed,
        leases_admitted: admitted.len(),
        event_sets: ruleset::event_sets(ipv6.is_some()).to_vec(),
        ipv6,
        ruleset,
    }
}

/// IPv6 kernel settings, with IPv6 in use: forwarding; on the internal
/// side no router advertisements, autoconfiguration or redirects taken
/// (only the net-vm routes there); on the uplink, as its description says
/// (`auto`: router advertisements taken although forwarding, and SLAAC).
fn ipv6_sysctls(system: &System, internal: &IfName, uplink: &IfName) -> Vec<(String, String)> {
    let sysctl = |key: String, value: &str| (key, value.to_owned());
    let mut sysctls = vec![sysctl("net/ipv6/conf/all/forwarding".into(), "1")];
    if system.network.ipv6.is_some() {
        sysctls.push(sysctl(
            format!("net/ipv6/conf/{internal}/disable_ipv6"),
            "0",
        ));
    }
    sysctls.extend([
        sysctl(format!("net/ipv6/conf/{internal}/accept_ra"), "0"),
        sysctl(format!("net/ipv6/conf/{internal}/autoconf"), "0"),
        sysctl(format!("net/ipv6/conf/{internal}/accept_redirects"), "0"),
    ]);
    let (disable, accept_ra, autoconf) = match system.netvm.uplink().ipv6 {
        UplinkIpv6::Auto => ("0", "2", "1"),
        UplinkIpv6::Static { .. } => ("0", "0", "0"),
        UplinkIpv6::Off => ("1", "0", "0"),
    };
    sysctls.extend([
        sysctl(format!("net/ipv6/conf/{uplink}/disable_ipv6"), disable),
        sysctl(format!("net/ipv6/conf/{uplink}/accept_ra"), accept_ra),
        sysctl(format!("net/ipv6/conf/{uplink}/autoconf"), autoconf),
    ]);
    sysctls
}

/// The internal network's IPv6 in `prefix`.
fn ipv6_plan(
    system: &System,
    prefix: Ipv6Cidr,
    mode: Ipv6Mode,
    leases6: &[(Ipv6Addr, MacAddr)],
) -> Ipv6Plan {
    let netvm_address = system.ipv6_in(&system.netvm.endpoint, prefix);
    let described: Vec<(Ipv6Addr, MacAddr)> = system
        .endpoints()
        .filter(|(_, role, _)| *role != Role::NetVm)
        .map(|(_, _, e)| (system.ipv6_in(e, prefix), e.mac))
        .collect();
    let admitted = admitted_leases6(system, prefix, leases6);
    let mut endpoints6_seed: Vec<(Ipv6Addr, MacAddr)> =
        described.iter().chain(&admitted).copied().collect();
    endpoints6_seed.sort();
    let mut reservations: Vec<(MacAddr, Ipv6Addr)> =
        described.iter().map(|(ip, mac)| (*mac, *ip)).collect();
    reservations.sort_by_key(|(_, ip)| *ip);
    let d = &system.dhcp;
    let domain = system.network.domain.clone();
    Ipv6Plan {
        prefix,
        mode,
        netvm_address,
        endpoints6_seed,
        leases6_admitted: admitted.len(),
        dhcp6: Dhcp6Plan {
            prefix,
            reservations,
            pool_iids: system.ipv6_pool_iids(),
            preferred_secs: d.lease_time.0,
            valid_secs: d.lease_time.0,
            t1_secs: d.renew_time.0,
            t2_secs: d.rebind_time.0,
            dns: vec![netvm_address],
            search: vec![domain.clone()],
        },
        ra: RaPlan {
            rdnss: netvm_address,
            dnssl: domain,
            mtu: system.network.mtu,
            router_lifetime_secs: ROUTER_LIFETIME_SECS,
            managed: true,
            other: true,
        },
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

    fn system(text: &str) -> System {
        parse("t.toml", text, Format::Toml).expect("valid")
    }

    const ONE_VM: &str = "[network]\nipv6_prefix = \"fd00:1::/64\"\n[netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"a\"\n";

    fn delegated(text: &str) -> Ipv6Uplink {
        Ipv6Uplink {
            delegated: Some(text.parse().expect("prefix")),
            clat: None,
        }
    }

    fn cidr(text: &str) -> Ipv6Cidr {
        text.parse().expect("cidr")
    }

    fn value<'a>(plan: &'a NetVmPlan, key: &str) -> Option<&'a str> {
        plan.sysctls
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_internal_prefix_is_the_delegated_first_64_routed_else_the_described_one() {
        let system = system(ONE_VM);
        let nat66 = plan(&system, &[]);
        let v6 = nat66.ipv6.as_ref().expect("on");
        assert_eq!((v6.prefix, v6.mode), (cidr("fd00:1::/64"), Ipv6Mode::Nat66));
        assert_eq!(v6.netvm_address.to_string(), "fd00:1::1");
        assert_eq!(nat66.interfaces[0].addresses6, [cidr("fd00:1::1/64")]);
        assert!(nat66.routes6.is_empty(), "{:?}", nat66.routes6);

        let routed = plan_with(&system, &[], &[], &delegated("2001:db8:7:f0::/60"));
        let v6 = routed.ipv6.as_ref().expect("on");
        assert_eq!(
            (v6.prefix, v6.mode),
            (cidr("2001:db8:7:f0::/64"), Ipv6Mode::Routed)
        );
        assert_eq!(
            routed.interfaces[0].addresses6,
            [cidr("2001:db8:7:f0::1/64")]
        );
        assert_eq!(
            routed.routes6,
            [Route6Plan::Unreachable {
                destination: cidr("2001:db8:7:f0::/60")
            }]
        );
        assert_eq!(
            routed.routes6[0].to_string(),
            "unreachable 2001:db8:7:f0::/60"
        );
        // The policy's IPv6 addresses are in the prefix in force.
        assert_eq!(routed.policy.ipv6_prefix, Some(v6.prefix));
        // A delegated prefix longer than /64 cannot hold the network.
        let narrow = plan_with(&system, &[], &[], &delegated("2001:db8::/80"));
        assert_eq!(narrow.ipv6.expect("on").mode, Ipv6Mode::Nat66);
    }

    #[test]
    fn every_described_endpoint_but_the_net_vm_is_reserved_and_seeded() {
        let system = system(ONE_VM);
        let a = system.vms[0].endpoint.clone();
        let a6 = system.ipv6_in(&a, cidr("fd00:1::/64"));
        let mac = |text: &str| -> MacAddr { text.parse().expect("mac") };
        let pool: Ipv6Addr = "fd00:1::1:0:c9".parse().expect("address");
        let leases6 = [
            (pool, mac("02:00:00:00:00:01")),
            (pool, mac("02:00:00:00:00:01")),
            // A's address or MAC, the net-vm's address, another prefix,
            // the subnet-router anycast address.
            (a6, mac("02:00:00:00:00:02")),
            ("fd00:1::1:0:ca".parse().expect("address"), a.mac),
            (
                "fd00:1::1".parse().expect("address"),
                mac("02:00:00:00:00:03"),
            ),
            (
                "fd00:2::1:0:cb".parse().expect("address"),
                mac("02:00:00:00:00:04"),
            ),
            (
                "fd00:1::".parse().expect("address"),
                mac("02:00:00:00:00:05"),
            ),
        ];
        let plan = plan_with(&system, &[], &leases6, &Ipv6Uplink::default());
        let v6 = plan.ipv6.expect("on");
        assert_eq!(v6.leases6_admitted, 1);
        assert_eq!(
            v6.endpoints6_seed,
            [(a6, a.mac), (pool, mac("02:00:00:00:00:01"))]
        );
        assert_eq!(v6.dhcp6.reservations, [(a.mac, a6)]);
        let pool_iids = v6.dhcp6.pool_iids.expect("a pool");
        assert_eq!(
            (*pool_iids.start(), *pool_iids.end()),
            ((1 << 32) + 200, (1 << 32) + 254)
        );
        assert_eq!(
            (
                v6.dhcp6.preferred_secs,
                v6.dhcp6.valid_secs,
                v6.dhcp6.t1_secs,
                v6.dhcp6.t2_secs
            ),
            (3600, 3600, 1800, 3150)
        );
        assert_eq!(v6.dhcp6.dns, [v6.netvm_address]);
        assert_eq!(v6.ra.rdnss, v6.netvm_address);
        assert_eq!(v6.ra.router_lifetime_secs, 1800);
        assert!(v6.ra.managed && v6.ra.other);
        assert_eq!(v6.ra.mtu, system.network.mtu);
        assert!(plan.ruleset.contains("fd00:1::1:0:c9 . 02:00:00:00:00:01"));
    }

    #[test]
    fn kernel_settings_follow_the_uplinks_ipv6() {
        let auto = plan(&system(ONE_VM), &[]);
        assert_eq!(value(&auto, "net/ipv6/conf/all/forwarding"), Some("1"));
        for (key, expected) in [
            ("accept_ra", "0"),
            ("autoconf", "0"),
            ("accept_redirects", "0"),
        ] {
            assert_eq!(
                value(&auto, &format!("net/ipv6/conf/ethint0/{key}")),
                Some(expected)
            );
        }
        assert_eq!(value(&auto, "net/ipv6/conf/eth0/accept_ra"), Some("2"));
        assert_eq!(value(&auto, "net/ipv6/conf/eth0/autoconf"), Some("1"));
        assert_eq!(value(&auto, "net/ipv6/conf/eth0/disable_ipv6"), Some("0"));

        let fixed = ONE_VM.replace(
            "interface = \"eth0\"\n",
            "interface = \"eth0\"\nipv6 = \"static\"\nipv6_address = \"2001:db8::10/64\"\nipv6_gateway = \"fe80::1\"\n",
        );
        let fixed = plan(&system(&fixed), &[]);
        assert_eq!(value(&fixed, "net/ipv6/conf/eth0/accept_ra"), Some("0"));
        assert_eq!(fixed.interfaces[1].addresses6, [cidr("2001:db8::10/64")]);
        assert_eq!(fixed.routes6[0].to_string(), "::/0 via fe80::1 dev eth0");

        let off = ONE_VM.replace(
            "interface = \"eth0\"\n",
            "interface = \"eth0\"\nipv6 = \"off\"\n",
        );
        let off = plan(&system(&off), &[]);
        assert_eq!(value(&off, "net/ipv6/conf/eth0/disable_ipv6"), Some("1"));
        assert_eq!(value(&off, "net/ipv6/conf/eth0/accept_ra"), Some("0"));
        assert!(!off.ruleset.contains("iifname \"eth0\" ip6 hoplimit 255"));
        assert!(off.ipv6.is_some(), "the internal network keeps its IPv6");

        // IPv6 off inside: forwarding off, nothing else said.
        let none = ONE_VM.replace("ipv6_prefix = \"fd00:1::/64\"", "ipv6 = false");
        let none = plan(&system(&none), &[]);
        let v6: Vec<&(String, String)> = none
            .sysctls
            .iter()
            .filter(|(k, _)| k.contains("ipv6"))
            .collect();
        assert_eq!(
            v6,
            [&("net/ipv6/conf/all/forwarding".to_owned(), "0".to_owned())]
        );
        assert!(none.ipv6.is_none() && none.routes6.is_empty());
        assert!(none.interfaces.iter().all(|i| i.addresses6.is_empty()));
        assert_eq!(
            none.event_sets,
            ruleset::EVENT_SETS[..ruleset::IPV4_EVENT_SETS]
        );
    }

    #[test]
    fn a_clat_turns_ipv6_forwarding_on_even_with_ipv6_off_inside() {
        let none = ONE_VM.replace("ipv6_prefix = \"fd00:1::/64\"", "ipv6 = false");
        let clat = Ipv6Uplink {
            delegated: None,
            clat: Some(ClatHook {
                tun: "clat0".parse().expect("name"),
                clat6: "2001:db8::c1a7".parse().expect("address"),
            }),
        };
        let plan = plan_with(&system(&none), &[], &[], &clat);
        assert_eq!(value(&plan, "net/ipv6/conf/all/forwarding"), Some("1"));
        assert_eq!(value(&plan, "net/ipv6/conf/eth0/accept_ra"), Some("2"));
        assert!(plan.ipv6.is_none());
    }
}
