//! The validated description: the only form engines and planners accept.
//!
//! Every value here has been checked, every default applied and every
//! address derived. The types are `#[non_exhaustive]`, so code outside this
//! crate can read them but cannot build one: the only way to a [`System`]
//! is [`crate::parse`] or [`crate::load`].

pub use crate::raw::{DevUplinkMode, Mode, VmKind};
use crate::values::{
    Account, DnsName, DnsUpstream, DomainName, IfName, Ipv4Cidr, Ipv4Range, Ipv6Cidr, MacAddr,
    MacPrefix, PciAddress, PciId, PlatformDevice, PortRange, Protocol, Seconds, UsbId, VmName,
};
use serde::Serialize;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A whole validated system.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct System {
    /// The internal network.
    pub network: Network,
    /// The Net VM.
    pub netvm: NetVm,
    /// The host.
    pub host: Host,
    /// The VMs, in declaration order.
    pub vms: Vec<Vm>,
    /// The DHCP server.
    pub dhcp: Dhcp,
    /// The DNS service.
    pub dns: Dns,
    /// The Net VM agent.
    pub agent: Agent,
}

/// The Net VM agent's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Agent {
    /// Prometheus metrics, if published.
    pub metrics: Option<Metrics>,
    /// The control service for VMs, if any VM may use it.
    pub control: Option<RemoteControl>,
    /// Distinct ports from one uplink source in 10 s that make a port scan.
    pub scan_ports: u32,
    /// New DHCP clients in 10 s that make a starvation attempt.
    pub starvation_clients: u32,
    /// Several uplinks: seconds between probes of a working uplink (1 or
    /// more).
    pub uplink_probe_every: u32,
    /// Several uplinks: failed probes in a row that make an uplink
    /// `failed` (1 or more).
    pub uplink_probe_failures: u32,
}

/// Where the agent publishes metrics, and to whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Metrics {
    /// TCP port on the net-vm's internal address.
    pub port: u16,
    /// VMs allowed to read them.
    pub allow: Vec<VmName>,
}

/// The agent's control service for VMs: TCP on the net-vm's internal
/// address, where the ruleset lets in only the VMs named here. A VM's
/// address is its identity (the host and the net-vm drop spoofed
/// sources), and the agent checks it again on every connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RemoteControl {
    /// TCP port.
    pub port: u16,
    /// VMs that may send every request.
    pub allow: Vec<VmName>,
    /// VMs that may send only the requests that read.
    pub read: Vec<VmName>,
}

/// The control service's port unless `[agent] control_port` says
/// otherwise.
pub const DEFAULT_CONTROL_PORT: u16 = 7071;

/// The internal network.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Network {
    /// Subnet (a network address with prefix /8 to /30).
    pub subnet: Ipv4Cidr,
    /// DNS domain.
    pub domain: DomainName,
    /// MTU.
    pub mtu: u16,
    /// Prefix of derived MACs.
    pub mac_prefix: MacPrefix,
    /// The host's bridge.
    pub bridge: IfName,
    /// IPv6 on the internal network, unless it is off.
    pub ipv6: Option<InternalIpv6>,
}

/// The internal network's IPv6 when the uplink delegates no prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InternalIpv6 {
    /// A /64: written (`ipv6_prefix`) or derived ([`derived_ula`]).
    pub prefix: Ipv6Cidr,
    /// Which of the two.
    pub origin: Origin,
}

/// Interface identifiers of the DHCPv6 pool start here: the IPv4 pool's
/// host number `n` gives `<prefix>::1:0:<n in hex>` (2^32 + n), apart
/// from every described endpoint's identifier (its IPv4 host number,
/// below 2^24 as subnets are /8 or longer).
pub const IPV6_POOL_IID_BASE: u128 = 1 << 32;

/// The unique local /64 derived from the domain and the IPv4 subnet
/// (RFC 4193 shape: `fd`, a 40-bit global ID, subnet ID 0): stable for a
/// description, different between systems that differ in either. The
/// global ID is the top 40 bits of a 64-bit FNV-1a hash, not the RFC's
/// SHA-1 of a timestamp: the point is a prefix that is the same on every
/// run, not one that is unique in the world (write `ipv6_prefix` to
/// choose one).
pub fn derived_ula(domain: &DomainName, subnet: Ipv4Cidr) -> Ipv6Cidr {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in format!("netvm-ula {domain} {subnet}").bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    let global_id = u128::from(hash >> 24);
    let bits = (0xfd_u128 << 120) | (global_id << 80);
    Ipv6Cidr::new(Ipv6Addr::from(bits), 64).unwrap_or_else(|| unreachable!("64 <= 128"))
}

/// Whether a value was written in the description or derived from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// Written in the description.
    Described,
    /// Derived (Ghaf style) from the declaration order.
    Derived,
}

/// An interface on the internal network: its MAC, address and DNS name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Endpoint {
    /// MAC address.
    pub mac: MacAddr,
    /// Where the MAC came from.
    pub mac_origin: Origin,
    /// IPv4 address inside the subnet.
    pub ip: Ipv4Addr,
    /// Where the address came from.
    pub ip_origin: Origin,
    /// `<name>.<domain>`.
    pub fqdn: DnsName,
}

/// The Net VM.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct NetVm {
    /// Its name.
    pub name: VmName,
    /// Secure or development mode.
    pub mode: Mode,
    /// Its internal interface.
    pub endpoint: Endpoint,
    /// Its uplinks, as described (at least one; the first is the
    /// primary: it alone runs IPv6).
    pub uplinks: Vec<Uplink>,
}

impl NetVm {
    /// The primary uplink: the first described.
    pub fn uplink(&self) -> &Uplink {
        &self.uplinks[0]
    }

    /// Whether the agent's uplink manager tends the uplinks (states,
    /// choice, fail-over): with several, or with a Wi-Fi one (whose link
    /// comes and goes with its network).
    pub fn managed_uplinks(&self) -> bool {
        self.uplinks.len() > 1 || self.uplinks.iter().any(|u| u.wifi.is_some())
    }
}

/// The Net VM's uplink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Uplink {
    /// Its interface name in the Net VM: `interface` as described, else
    /// `uplink0`, `uplink1`, ... by its place in the list.
    pub name: IfName,
    /// Lower is preferred.
    pub priority: u32,
    /// Which device it is.
    pub device: UplinkDevice,
    /// A PCI uplink's vendor:device, when the description names it (to
    /// find it in the guest, where it has another address).
    pub pci_id: Option<PciId>,
    /// Its MAC, when the description names it (to find it in the guest).
    pub mac: Option<MacAddr>,
    /// How it gets its address.
    pub addressing: UplinkAddressing,
    /// How it gets IPv6.
    pub ipv6: UplinkIpv6,
    /// The NAT64 prefix to use when the network announces none.
    pub nat64_prefix: Option<Ipv6Cidr>,
    /// A Wi-Fi uplink's networks and settings; `None`: wired.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wifi: Option<Wifi>,
}

/// A Wi-Fi uplink: the agent runs wpa_supplicant on it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Wifi {
    /// The described networks (more may be saved at run time with
    /// `netvm wifi connect`).
    pub networks: Vec<WifiNetwork>,
    /// A random MAC for each network joined.
    pub random_mac: bool,
}

/// A described Wi-Fi network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct WifiNetwork {
    /// Its name (1 to 32 bytes).
    pub ssid: String,
    /// The file holding its passphrase (read by the agent, never shown).
    pub psk_file: std::path::PathBuf,
    /// WPA2, WPA3 or either.
    pub security: crate::raw::WifiSecurity,
    /// Higher is preferred.
    pub priority: u32,
}

/// How the uplink gets IPv6.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "method")]
pub enum UplinkIpv6 {
    /// Router advertisements (SLAAC, default route, RDNSS, PREF64) and a
    /// DHCPv6 client (an address where the network is stateful, a
    /// delegated prefix where one is offered).
    Auto,
    /// Fixed settings.
    Static {
        /// Address with prefix.
        address: Ipv6Cidr,
        /// Default gateway (link-local or on `address`'s prefix).
        gateway: Ipv6Addr,
        /// DNS servers.
        dns: Vec<Ipv6Addr>,
    },
    /// No IPv6 on the uplink.
    Off,
}

/// The device that carries the uplink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UplinkDevice {
    /// A PCI NIC passed through with VFIO.
    Pci(PciAddress),
    /// A USB NIC passed through to the VMM.
    Usb(UsbId),
    /// A platform (device-tree) NIC passed through with vfio-platform.
    Platform(PlatformDevice),
    /// An interface by name (labs, dev mode).
    Interface(IfName),
}

/// How the uplink gets its address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "method")]
pub enum UplinkAddressing {
    /// A DHCP client.
    Dhcp,
    /// Fixed settings.
    Static {
        /// Address with prefix.
        address: Ipv4Cidr,
        /// Default gateway, inside `address`'s subnet.
        gateway: Ipv4Addr,
        /// DNS servers.
        dns: Vec<Ipv4Addr>,
    },
}

/// The host.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Host {
    /// Its internal interface, when it has one.
    pub endpoint: Option<Endpoint>,
    /// Dev mode: the host's own uplink and how it is shared.
    pub dev_uplink: Option<DevUplink>,
    /// Owner of the VMs' TAPs (root when `None`).
    pub tap_user: Option<Account>,
    /// Group of the VMs' TAPs.
    pub tap_group: Option<Account>,
    /// New source MACs per hour one bridge port the plan does not name
    /// may introduce (0: none).
    pub unknown_port_new_macs: u32,
}

/// A development host's uplink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct DevUplink {
    /// The host interface.
    pub interface: IfName,
    /// Bridge or NAT.
    pub mode: DevUplinkMode,
}

/// The host's name in the address plan and DNS.
pub const HOST_NAME: &str = "host";

/// A VM served by the Net VM.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Vm {
    /// Its name.
    pub name: VmName,
    /// System or app.
    pub kind: VmKind,
    /// Its internal interface.
    pub endpoint: Endpoint,
    /// May it open connections to the Internet?
    pub internet: bool,
    /// Flows it may open to other VMs.
    pub allow: Vec<Flow>,
    /// Ports forwarded to it from the uplink.
    pub forwards: Vec<PortForward>,
}

/// A flow a VM may open to another VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Flow {
    /// Destination VM (always a VM of the description, never the source).
    pub to: VmName,
    /// Protocol.
    pub proto: Protocol,
    /// Destination ports; `None` for every port (always `None` for ICMP).
    pub ports: Option<PortRange>,
}

/// A port forward from the uplink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct PortForward {
    /// TCP or UDP.
    pub proto: Protocol,
    /// Ports on the uplink.
    pub uplink_ports: PortRange,
    /// Ports on the VM (same length as `uplink_ports`).
    pub vm_ports: PortRange,
}

/// The DHCP server's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Dhcp {
    /// Dynamic pool, inside the subnet, holding no described address.
    pub pool: Option<Ipv4Range>,
    /// Lease time.
    pub lease_time: Seconds,
    /// T1 (< T2).
    pub renew_time: Seconds,
    /// T2 (< lease time).
    pub rebind_time: Seconds,
    /// Rapid commit (RFC 4039) enabled.
    pub rapid_commit: bool,
    /// Classless static routes (option 121).
    pub routes: Vec<Route>,
    /// Trusted relay agents (inside the subnet).
    pub relays: Vec<Ipv4Addr>,
    /// Most leases at once (reservations come on top).
    pub max_leases: u32,
    /// Sustained requests per second per MAC.
    pub per_mac_rate: u32,
    /// Burst of requests per MAC.
    pub per_mac_burst: u32,
    /// How long an offer is held for its client (shorter when the pool
    /// runs out).
    pub offer_hold: Seconds,
    /// How long a declined pool address stays out of use.
    pub probation: Seconds,
    /// Most pool addresses in probation at once.
    pub probation_max: u32,
}

/// A classless static route.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Route {
    /// Destination.
    pub destination: Ipv4Cidr,
    /// Next hop inside the subnet.
    pub gateway: Ipv4Addr,
}

/// The DNS service's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Dns {
    /// Resolvers to forward to (empty: learned on the uplink).
    pub upstreams: Vec<DnsUpstream>,
    /// Extra A records, names fully qualified.
    pub records: Vec<Record>,
    /// Cache size.
    pub cache_size: u32,
    /// Queries per second one client may make (0: no limit).
    pub client_rate: u32,
    /// Burst above that rate.
    pub client_burst: u32,
    /// Most queries waiting for an upstream at once.
    pub max_inflight: u32,
}

/// An A record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Record {
    /// Fully qualified name.
    pub name: DnsName,
    /// Address.
    pub ip: Ipv4Addr,
}

/// The role an endpoint plays in the system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// The Net VM.
    NetVm,
    /// The host.
    Host,
    /// A system VM.
    System,
    /// An application VM.
    App,
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Role::NetVm => "net-vm",
            Role::Host => "host",
            Role::System => "system",
            Role::App => "app",
        })
    }
}

impl System {
    /// Every endpoint on the internal network with its name and role: the
    /// Net VM, the host (when it has an address), then the VMs in order.
    pub fn endpoints(&self) -> impl Iterator<Item = (&str, Role, &Endpoint)> {
        let netvm = std::iter::once((self.netvm.name.as_str(), Role::NetVm, &self.netvm.endpoint));
        let host = self
            .host
            .endpoint
            .iter()
            .map(|e| (HOST_NAME, Role::Host, e));
        let vms = self.vms.iter().map(|vm| {
            let role = match vm.kind {
                VmKind::System => Role::System,
                VmKind::App => Role::App,
            };
            (vm.name.as_str(), role, &vm.endpoint)
        });
        netvm.chain(host).chain(vms)
    }

    /// The VM called `name`.
    pub fn vm(&self, name: &VmName) -> Option<&Vm> {
        self.vms.iter().find(|vm| &vm.name == name)
    }

    /// The interface identifier of `endpoint` in any internal IPv6
    /// prefix: its IPv4 host number (`192.168.100.10/24` → `::a`).
    pub fn ipv6_iid(&self, endpoint: &Endpoint) -> u128 {
        u128::from(self.network.subnet.host_number(endpoint.ip))
    }

    /// `endpoint`'s IPv6 address in the internal `prefix` (a /64).
    pub fn ipv6_in(&self, endpoint: &Endpoint, prefix: Ipv6Cidr) -> Ipv6Addr {
        let iid = self.ipv6_iid(endpoint);
        prefix
            .host(iid)
            .unwrap_or_else(|| Ipv6Addr::from(u128::from(prefix.network()) | iid))
    }

    /// The DHCPv6 pool's interface identifiers: the IPv4 pool's host
    /// numbers, offset by [`IPV6_POOL_IID_BASE`]. `None` without a pool.
    pub fn ipv6_pool_iids(&self) -> Option<std::ops::RangeInclusive<u128>> {
        let pool = self.dhcp.pool?;
        let subnet = self.network.subnet;
        let first = IPV6_POOL_IID_BASE + u128::from(subnet.host_number(pool.first()));
        let last = IPV6_POOL_IID_BASE + u128::from(subnet.host_number(pool.last()));
        Some(first..=last)
    }
}

#[cfg(test)]
mod ipv6_tests {
    use crate::{parse, Format, Origin, IPV6_POOL_IID_BASE};

    #[test]
    fn every_endpoint_has_its_ipv4_host_number_as_its_ipv6_identifier() {
        let text =
            "[netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"a\"\nip = \"192.168.100.10\"\n";
        let system = parse("t.toml", text, Format::Toml).expect("valid");
        let v6 = system.network.ipv6.expect("on by default");
        assert_eq!(v6.origin, Origin::Derived);
        assert!(v6.prefix.is_unique_local() && v6.prefix.prefix() == 64);
        let a = &system.vms[0].endpoint;
        assert_eq!(system.ipv6_iid(a), 10);
        assert_eq!(system.ipv6_in(a, v6.prefix).segments()[7], 10);
        assert_eq!(
            system.ipv6_in(&system.netvm.endpoint, v6.prefix).segments()[7],
            1
        );
        let pool = system.ipv6_pool_iids().expect("a pool");
        assert_eq!(*pool.start(), IPV6_POOL_IID_BASE + 200);
        assert_eq!(*pool.end(), IPV6_POOL_IID_BASE + 254);
        // Same description, same prefix; another domain, another prefix.
        let again = parse("t.toml", text, Format::Toml).expect("valid");
        assert_eq!(again.network.ipv6, system.network.ipv6);
        let other = format!("[network]\ndomain = \"other\"\n{text}");
        let other = parse("t.toml", &other, Format::Toml).expect("valid");
        assert_ne!(other.network.ipv6.map(|v| v.prefix), Some(v6.prefix));
    }

    #[test]
    fn ipv6_can_be_off_or_written() {
        let off = "[network]\nipv6 = false\n[netvm.uplink]\ninterface = \"eth0\"\nipv6 = \"off\"\n";
        let system = parse("t.toml", off, Format::Toml).expect("valid");
        assert!(system.network.ipv6.is_none());
        assert_eq!(system.netvm.uplink().ipv6, crate::UplinkIpv6::Off);
        let written = "[network]\nipv6_prefix = \"fd12:3456:789a::/64\"\n[netvm.uplink]\ninterface = \"eth0\"\n";
        let system = parse("t.toml", written, Format::Toml).expect("valid");
        let v6 = system.network.ipv6.expect("on");
        assert_eq!(v6.prefix.to_string(), "fd12:3456:789a::/64");
        assert_eq!(v6.origin, Origin::Described);
    }
}
