//! The file format: serde structs that mirror the description as written,
//! one per table, with defaults and doc comments that become the JSON
//! Schema (`netvm schema`).
//!
//! These types only say what is syntactically allowed. Nothing outside
//! this crate sees them: `validate` turns them into [`crate::System`].

use crate::values::{
    Account, DnsName, DnsUpstream, DomainName, IfName, Ipv4Cidr, Ipv6Cidr, MacAddr, MacPrefix,
    PciAddress, PciId, PlatformDevice, PoolSetting, PortRange, Protocol, Seconds, UsbId, VmName,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

/// A whole system: the internal network, the net-vm, the host and the VMs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "netvm system description")]
pub struct RawSystem {
    /// The internal network every VM is attached to.
    #[serde(default)]
    pub network: RawNetwork,
    /// The Net VM: the only part of the system that faces the uplink.
    #[serde(default)]
    pub netvm: RawNetVm,
    /// The trusted host.
    #[serde(default)]
    pub host: RawHost,
    /// The VMs served by the Net VM, in declaration order.
    #[serde(default)]
    pub vm: Vec<RawVm>,
    /// The DHCP server on the internal network.
    #[serde(default)]
    pub dhcp: RawDhcp,
    /// The DNS service on the internal network.
    #[serde(default)]
    pub dns: RawDns,
    /// The Net VM agent: metrics and security-event thresholds.
    #[serde(default)]
    pub agent: RawAgent,
}

/// `[agent]`: what the Net VM agent publishes and when it raises events.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAgent {
    /// TCP port of the Prometheus metrics on the net-vm's internal
    /// address; no metrics when left out.
    #[serde(default)]
    pub metrics_port: Option<u16>,
    /// VMs allowed to read the metrics (the firewall lets only them in).
    #[serde(default)]
    pub metrics_allow: Vec<VmName>,
    /// TCP port of the agent's control service on the net-vm's internal
    /// address, for the VMs in `control_allow` and `control_read`.
    #[serde(default = "default_control_port")]
    pub control_port: u16,
    /// VMs that may send the agent every control request (read and
    /// change: `reload`, Wi-Fi choices), as `netvm --agent` does.
    #[serde(default)]
    pub control_allow: Vec<VmName>,
    /// VMs that may send only the requests that read (`status`, `leases`,
    /// `uplinks`, `events`).
    #[serde(default)]
    pub control_read: Vec<VmName>,
    /// Distinct ports one uplink source must try within 10 s to be
    /// reported as a port scan.
    #[serde(default = "default_scan_ports")]
    pub scan_ports: u32,
    /// New DHCP clients (MACs) within 10 s that are reported as a
    /// starvation attempt.
    #[serde(default = "default_starvation_clients")]
    pub starvation_clients: u32,
    /// With several uplinks: how often a working uplink's path is probed
    /// (a DNS query to its own resolvers), e.g. `"30s"`.
    #[serde(default = "default_uplink_probe_every")]
    pub uplink_probe_every: Seconds,
    /// With several uplinks: probes failed in a row that make an uplink
    /// `failed` (the traffic moves away from it).
    #[serde(default = "default_uplink_probe_failures")]
    pub uplink_probe_failures: u32,
}

impl Default for RawAgent {
    fn default() -> Self {
        RawAgent {
            metrics_port: None,
            metrics_allow: Vec::new(),
            control_port: default_control_port(),
            control_allow: Vec::new(),
            control_read: Vec::new(),
            scan_ports: default_scan_ports(),
            starvation_clients: default_starvation_clients(),
            uplink_probe_every: default_uplink_probe_every(),
            uplink_probe_failures: default_uplink_probe_failures(),
        }
    }
}

fn default_control_port() -> u16 {
    crate::model::DEFAULT_CONTROL_PORT
}

fn default_uplink_probe_every() -> Seconds {
    Seconds(30)
}

fn default_uplink_probe_failures() -> u32 {
    3
}

fn default_scan_ports() -> u32 {
    20
}

fn default_starvation_clients() -> u32 {
    32
}

/// `[network]`: the internal network.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNetwork {
    /// Internal IPv4 subnet (its network address, with prefix /8 to /30).
    #[serde(default = "default_subnet")]
    pub subnet: Ipv4Cidr,
    /// Internal DNS domain: VMs are `<name>.<domain>`.
    #[serde(default)]
    pub domain: DomainName,
    /// MTU of the internal network (576 to 9000).
    #[serde(default = "default_mtu")]
    pub mtu: u16,
    /// First 3 to 5 octets of derived MACs; the rest is the VM's host number.
    #[serde(default)]
    pub mac_prefix: MacPrefix,
    /// Name of the host's internal bridge.
    #[serde(default = "default_bridge")]
    pub bridge: IfName,
    /// IPv6 on the internal network (default true): every VM gets an
    /// IPv6 address under the same policy as its IPv4 one.
    #[serde(default = "default_true")]
    pub ipv6: bool,
    /// The internal network's IPv6 /64 when the uplink delegates none (a
    /// unique local or global prefix); derived from the domain and subnet
    /// when not written.
    #[serde(default)]
    pub ipv6_prefix: Option<Ipv6Cidr>,
}

fn default_true() -> bool {
    true
}

fn default_subnet() -> Ipv4Cidr {
    Ipv4Cidr::default_subnet()
}

fn default_mtu() -> u16 {
    1500
}

fn default_bridge() -> IfName {
    IfName::default_bridge()
}

impl Default for RawNetwork {
    fn default() -> Self {
        RawNetwork {
            subnet: default_subnet(),
            domain: DomainName::default(),
            mtu: default_mtu(),
            mac_prefix: MacPrefix::default(),
            bridge: default_bridge(),
            ipv6: true,
            ipv6_prefix: None,
        }
    }
}

/// Secure (NIC passed through to the Net VM) or development (host keeps it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// The host never touches the uplink; the NIC is passed to the Net VM.
    #[default]
    Secure,
    /// The host keeps its uplink and bridges or routes it (development only).
    Dev,
}

/// `[netvm]`: the Net VM.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNetVm {
    /// Its name (a DNS label); default `net-vm`.
    #[serde(default)]
    pub name: Option<VmName>,
    /// `secure` (default) or `dev`.
    #[serde(default)]
    pub mode: Mode,
    /// Its MAC on the internal network; derived when left out.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// Its internal address; host number 1 of the subnet when left out.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// The uplink (the network card that faces the Internet or LAN):
    /// one `[netvm.uplink]` table, or several `[[netvm.uplink]]` (the
    /// agent carries the Internet on the best one that works).
    #[serde(default)]
    pub uplink: Option<RawUplinks>,
}

/// `[netvm.uplink]` (one) or `[[netvm.uplink]]` (several). Read by hand
/// (a table is one, an array several) so that a bad field inside keeps
/// its own message and place, which an untagged enum would lose.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum RawUplinks {
    /// One uplink.
    One(Box<RawUplink>),
    /// Several, preferred by `priority`.
    Several(Vec<RawUplink>),
}

impl<'de> Deserialize<'de> for RawUplinks {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Either;
        impl<'de> serde::de::Visitor<'de> for Either {
            type Value = RawUplinks;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a table [netvm.uplink] or an array of tables [[netvm.uplink]]")
            }

            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<RawUplinks, A::Error> {
                RawUplink::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|one| RawUplinks::One(Box::new(one)))
            }

            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                seq: A,
            ) -> Result<RawUplinks, A::Error> {
                Vec::<RawUplink>::deserialize(serde::de::value::SeqAccessDeserializer::new(seq))
                    .map(RawUplinks::Several)
            }
        }
        deserializer.deserialize_any(Either)
    }
}

impl RawUplinks {
    /// The uplinks as written, and whether they were written as an array.
    pub fn as_slice(&self) -> (&[RawUplink], bool) {
        match self {
            RawUplinks::One(one) => (std::slice::from_ref(one.as_ref()), false),
            RawUplinks::Several(all) => (all.as_slice(), true),
        }
    }
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::Secure => "secure",
            Mode::Dev => "dev",
        })
    }
}

/// How the uplink gets its address.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Addressing {
    /// A DHCP client on the uplink.
    #[default]
    Dhcp,
    /// `address`, `gateway` and `dns` from the description.
    Static,
}

/// `[netvm.uplink]`: one of `pci`, `usb`, `platform` or `interface`, and
/// its addressing.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUplink {
    /// PCI address of the NIC on the host, passed through with VFIO.
    #[serde(default)]
    pub pci: Option<PciAddress>,
    /// PCI `vendor:device` of that NIC, how the Net VM finds it (the VMM
    /// gives a passed-through function another address). Only with `pci`.
    #[serde(default)]
    pub pci_id: Option<PciId>,
    /// USB `vendor:product` of a USB NIC, passed through to the Net VM.
    #[serde(default)]
    pub usb: Option<UsbId>,
    /// A platform (device-tree) NIC by its kernel name, e.g.
    /// `2490000.ethernet`, passed through with vfio-platform.
    #[serde(default)]
    pub platform: Option<PlatformDevice>,
    /// An interface name (labs, dev mode).
    #[serde(default)]
    pub interface: Option<IfName>,
    /// The NIC's MAC, to find it inside the Net VM.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// With several uplinks: lower is preferred (like a route metric);
    /// default: 10 times its place in the list (10, 20, ...).
    #[serde(default)]
    pub priority: Option<u32>,
    /// `dhcp` (default) or `static`.
    #[serde(default)]
    pub addressing: Addressing,
    /// Static only: the uplink address with prefix, e.g. `203.0.113.10/24`.
    #[serde(default)]
    pub address: Option<Ipv4Cidr>,
    /// Static only: the default gateway.
    #[serde(default)]
    pub gateway: Option<Ipv4Addr>,
    /// Static only: DNS servers reachable on the uplink.
    #[serde(default)]
    pub dns: Option<Vec<Ipv4Addr>>,
    /// IPv6 on the uplink: `auto` (default: router advertisements,
    /// DHCPv6 for an address and a delegated prefix), `static` or `off`.
    #[serde(default)]
    pub ipv6: Ipv6Addressing,
    /// IPv6 static only: the uplink's IPv6 address with prefix.
    #[serde(default)]
    pub ipv6_address: Option<Ipv6Cidr>,
    /// IPv6 static only: the IPv6 default gateway (link-local or inside
    /// `ipv6_address`'s prefix).
    #[serde(default)]
    pub ipv6_gateway: Option<Ipv6Addr>,
    /// IPv6 static only: IPv6 DNS servers reachable on the uplink.
    #[serde(default)]
    pub ipv6_dns: Option<Vec<Ipv6Addr>>,
    /// The NAT64 prefix to use when the network announces none (RFC 6052
    /// lengths /32, /40, /48, /56, /64 or /96), e.g. `64:ff9b::/96`.
    #[serde(default)]
    pub nat64_prefix: Option<Ipv6Cidr>,
    /// `ethernet` (default) or `wifi` (the agent drives wpa_supplicant).
    #[serde(default)]
    pub kind: UplinkKindName,
    /// Wi-Fi only: the networks to join, e.g.
    /// `[{ ssid = "home", psk_file = "/etc/netvm/home.psk" }]`.
    #[serde(default)]
    pub wifi: Vec<RawWifiNetwork>,
    /// Wi-Fi only: a random MAC for each network joined (and for scans).
    #[serde(default)]
    pub random_mac: bool,
}

/// An uplink's kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum UplinkKindName {
    /// A wired NIC (or anything with carrier of its own).
    #[default]
    Ethernet,
    /// A Wi-Fi NIC: the agent runs wpa_supplicant on it.
    Wifi,
}

/// A Wi-Fi network to join.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawWifiNetwork {
    /// Its name (1 to 32 bytes).
    pub ssid: String,
    /// A file in the Net VM holding the passphrase (8 to 63 printable
    /// ASCII characters; one trailing newline is ignored). The secret is
    /// never in the description.
    pub psk_file: PathBuf,
    /// `wpa2` (WPA2-Personal), `wpa3` (SAE) or `wpa2-wpa3` (default:
    /// whichever the network offers, WPA3 first).
    #[serde(default)]
    pub security: WifiSecurity,
    /// Higher is preferred among networks in range (default 0).
    #[serde(default)]
    pub priority: u32,
}

/// Which Wi-Fi security a network uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum WifiSecurity {
    /// WPA2-Personal.
    #[serde(rename = "wpa2")]
    Wpa2,
    /// WPA3-Personal (SAE).
    #[serde(rename = "wpa3")]
    Wpa3,
    /// Either.
    #[default]
    #[serde(rename = "wpa2-wpa3")]
    Wpa2Wpa3,
}

/// How the uplink gets IPv6.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Ipv6Addressing {
    /// Router advertisements (SLAAC, default route, RDNSS, PREF64) and a
    /// DHCPv6 client (an address where the network is stateful, a
    /// delegated prefix where one is offered).
    #[default]
    Auto,
    /// Fixed settings (`ipv6_address`, `ipv6_gateway`, `ipv6_dns`).
    Static,
    /// No IPv6 on the uplink.
    Off,
}

/// How a development host shares its uplink. Only bridging (the ADR's
/// development scenario) exists; routing it through the host would give
/// the host a forwarding path into the internal network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum DevUplinkMode {
    /// Bridge the host's uplink to the Net VM's uplink (the ADR's scenario).
    Bridge,
}

/// `[host]`: the trusted host.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHost {
    /// Give the host an address on the internal network (default: only in dev mode).
    #[serde(default)]
    pub internal_address: Option<bool>,
    /// The host's internal address; host number 2 when left out.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// The host's internal MAC; derived when left out.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// Dev mode only: the host's own uplink interface.
    #[serde(default)]
    pub uplink: Option<IfName>,
    /// Dev mode only: `bridge` (the default and only mode).
    #[serde(default)]
    pub uplink_mode: Option<DevUplinkMode>,
    /// The user that owns the VMs' TAPs, so the VMM can open them
    /// without root (name or uid). Default: root only.
    #[serde(default)]
    pub tap_user: Option<Account>,
    /// The group that owns the VMs' TAPs (name or gid).
    #[serde(default)]
    pub tap_group: Option<Account>,
    /// New source MACs per hour that one bridge port the plan does not
    /// name may introduce (0: none at all; at most 10000). Default 10.
    #[serde(default = "default_unknown_port_new_macs")]
    pub unknown_port_new_macs: u32,
}

fn default_unknown_port_new_macs() -> u32 {
    10
}

impl Default for RawHost {
    fn default() -> Self {
        RawHost {
            internal_address: None,
            ip: None,
            mac: None,
            uplink: None,
            uplink_mode: None,
            tap_user: None,
            tap_group: None,
            unknown_port_new_macs: default_unknown_port_new_macs(),
        }
    }
}

/// What a VM is for: system VMs come first in the address plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum VmKind {
    /// A system service VM (GUI, audio, admin): addresses from host number 3.
    System,
    /// An application VM: addresses from host number 101.
    #[default]
    App,
}

/// `[[vm]]`: one VM.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVm {
    /// Its name, a DNS label: `<name>.<domain>` resolves to it.
    pub name: VmName,
    /// `system` or `app` (default).
    #[serde(default)]
    pub kind: VmKind,
    /// Its MAC; derived from the prefix and its host number when left out.
    #[serde(default)]
    pub mac: Option<MacAddr>,
    /// Its IPv4 address; derived when left out.
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
    /// May it open connections to the Internet? Default: yes for app VMs, no for system VMs.
    #[serde(default)]
    pub internet: Option<bool>,
    /// Connections it may open to other VMs.
    #[serde(default)]
    pub allow: Vec<RawAllow>,
    /// Its ports forwarded from the uplink.
    #[serde(default)]
    pub forward: Vec<RawForward>,
}

/// One permitted flow to another VM.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAllow {
    /// The destination VM.
    pub to: VmName,
    /// `tcp`, `udp` or `icmp`.
    pub proto: Protocol,
    /// Destination port or range (tcp/udp); every port when left out.
    #[serde(default)]
    pub ports: Option<PortRange>,
}

/// One port forward from the uplink to this VM.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawForward {
    /// `tcp` or `udp`.
    pub proto: Protocol,
    /// Port or range on the uplink.
    pub port: PortRange,
    /// First port on the VM; the same as `port` when left out.
    #[serde(default)]
    pub to_port: Option<u16>,
}

/// `[dhcp]`: the DHCP server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDhcp {
    /// Dynamic pool `first-last` for guests not in the description, or
    /// `"none"`. Default: host numbers 200-254 when the subnet has them.
    #[serde(default)]
    pub pool: Option<PoolSetting>,
    /// Lease time (at least 60 s).
    #[serde(default = "default_lease_time")]
    pub lease_time: Seconds,
    /// T1, when clients renew; half the lease time when left out.
    #[serde(default)]
    pub renew_time: Option<Seconds>,
    /// T2, when clients rebind; 7/8 of the lease time when left out.
    #[serde(default)]
    pub rebind_time: Option<Seconds>,
    /// Answer a DISCOVER with an ACK when the client asks (RFC 4039).
    #[serde(default)]
    pub rapid_commit: bool,
    /// Classless static routes handed to clients (option 121).
    #[serde(default)]
    pub routes: Vec<RawRoute>,
    /// Relay agents whose relayed messages are served (their addresses,
    /// inside the subnet). None by default: VMs are directly attached, so
    /// a relayed message is a VM pretending to be a relay.
    #[serde(default)]
    pub relays: Vec<Ipv4Addr>,
    /// Limits against starvation and floods.
    #[serde(default)]
    pub limits: RawDhcpLimits,
}

fn default_lease_time() -> Seconds {
    Seconds(3600)
}

impl Default for RawDhcp {
    fn default() -> Self {
        RawDhcp {
            pool: None,
            lease_time: default_lease_time(),
            renew_time: None,
            rebind_time: None,
            rapid_commit: false,
            routes: Vec::new(),
            relays: Vec::new(),
            limits: RawDhcpLimits::default(),
        }
    }
}

/// A classless static route (RFC 3442).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Destination network.
    pub destination: Ipv4Cidr,
    /// Next hop, inside the internal subnet.
    pub gateway: Ipv4Addr,
}

/// `[dhcp.limits]`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDhcpLimits {
    /// Most leases held at once; reservations are always served on top.
    /// Default: the pool size.
    #[serde(default)]
    pub max_leases: Option<u32>,
    /// Requests per second one MAC may send (sustained).
    #[serde(default = "default_per_mac_rate")]
    pub per_mac_rate: u32,
    /// Requests one MAC may send in a burst.
    #[serde(default = "default_per_mac_burst")]
    pub per_mac_burst: u32,
    /// How long an offered pool address waits for the client's REQUEST
    /// (1 s to 5 min). When the pool has no free address left, the oldest
    /// outstanding offer gives way earlier. Default 10 s.
    #[serde(default = "default_offer_hold")]
    pub offer_hold: Seconds,
    /// How long a declined pool address stays out of use (RFC 2131
    /// section 3.1.5; 1 s to 1 day). Default 10 min.
    #[serde(default = "default_probation")]
    pub probation: Seconds,
    /// Most pool addresses in probation at once (0 to the pool size);
    /// past it the oldest probation ends early. Default: a quarter of the
    /// pool.
    #[serde(default)]
    pub probation_max: Option<u32>,
}

fn default_offer_hold() -> Seconds {
    Seconds(10)
}

fn default_probation() -> Seconds {
    Seconds(600)
}

fn default_per_mac_rate() -> u32 {
    5
}

fn default_per_mac_burst() -> u32 {
    20
}

impl Default for RawDhcpLimits {
    fn default() -> Self {
        RawDhcpLimits {
            max_leases: None,
            per_mac_rate: default_per_mac_rate(),
            per_mac_burst: default_per_mac_burst(),
            offer_hold: default_offer_hold(),
            probation: default_probation(),
            probation_max: None,
        }
    }
}

/// `[dns]`: the DNS service.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDns {
    /// Resolvers to forward to; learned on the uplink when left out.
    #[serde(default)]
    pub upstreams: Vec<DnsUpstream>,
    /// Extra A records (and their PTRs when inside the subnet).
    #[serde(default)]
    pub records: Vec<RawRecord>,
    /// Most answers kept in the cache.
    #[serde(default = "default_cache_size")]
    pub cache_size: u32,
    /// Queries per second one client may make (0: no limit).
    #[serde(default = "default_client_rate")]
    pub client_rate: u32,
    /// Queries one client may make in a burst above its rate.
    #[serde(default = "default_client_burst")]
    pub client_burst: u32,
    /// Most queries waiting for an upstream at once.
    #[serde(default = "default_max_inflight")]
    pub max_inflight: u32,
}

fn default_cache_size() -> u32 {
    10_000
}

fn default_client_rate() -> u32 {
    500
}

fn default_client_burst() -> u32 {
    1_000
}

fn default_max_inflight() -> u32 {
    512
}

impl Default for RawDns {
    fn default() -> Self {
        RawDns {
            upstreams: Vec::new(),
            records: Vec::new(),
            cache_size: default_cache_size(),
            client_rate: default_client_rate(),
            client_burst: default_client_burst(),
            max_inflight: default_max_inflight(),
        }
    }
}

/// An extra DNS A record.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRecord {
    /// A single label (below the internal domain) or a full name.
    pub name: DnsName,
    /// The address it resolves to.
    pub ip: Ipv4Addr,
}
