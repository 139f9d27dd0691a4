//! The validated description: the only form engines and planners accept.
//!
//! Every value here has been checked, every default applied and every
//! address derived. The types are `#[non_exhaustive]`, so code outside this
//! crate can read them but cannot build one: the only way to a [`System`]
//! is [`crate::parse`] or [`crate::load`].

pub use crate::raw::{DevUplinkMode, Mode, VmKind};
use crate::values::{
    Account, DnsName, DnsUpstream, DomainName, IfName, Ipv4Cidr, Ipv4Range, MacAddr, MacPrefix,
    PciAddress, PciId, PlatformDevice, PortRange, Protocol, Seconds, UsbId, VmName,
};
use serde::Serialize;
use std::net::Ipv4Addr;

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
    /// Distinct ports from one uplink source in 10 s that make a port scan.
    pub scan_ports: u32,
    /// New DHCP clients in 10 s that make a starvation attempt.
    pub starvation_clients: u32,
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
    /// Its uplink.
    pub uplink: Uplink,
}

/// The Net VM's uplink.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Uplink {
    /// Which device it is.
    pub device: UplinkDevice,
    /// A PCI uplink's vendor:device, when the description names it (to
    /// find it in the guest, where it has another address).
    pub pci_id: Option<PciId>,
    /// Its MAC, when the description names it (to find it in the guest).
    pub mac: Option<MacAddr>,
    /// How it gets its address.
    pub addressing: UplinkAddressing,
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
}
