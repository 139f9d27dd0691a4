//! The host's network devices as sysfs shows them (`netvm host devices`):
//! PCI network controllers with their IOMMU groups, USB network adapters
//! grouped by USB device, and platform (device-tree) NICs
//! ([`platform`](crate::platform)), each with the reasons it cannot be
//! passed through to a VM.
//!
//! Read-only: nothing here writes. Odd or missing attributes are skipped
//! or `None`, never a panic; the output is sorted (PCI by address, USB by
//! port) so two runs on the same host print the same thing.

pub use crate::platform::{PlatformInfo, PlatformMember, VFIO_PLATFORM_DRIVER};
use crate::HostRoot;
use netvm_description::values::{MacAddr, PciAddress, PciId, UsbId};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::root::AccessError;

/// The driver that holds devices passed through to VMs.
pub const VFIO_DRIVER: &str = "vfio-pci";

/// Drivers that only hold a device for VFIO; a group member bound to one
/// is not in use by the host.
const HOLDING_DRIVERS: [&str; 2] = [VFIO_DRIVER, "pci-stub"];

/// USB drivers that make network interfaces (`drivers/net/usb`).
const USB_NET_DRIVERS: [&str; 10] = [
    "cdc_ether",
    "cdc_ncm",
    "rndis_host",
    "r8152",
    "ax88179_178a",
    "asix",
    "smsc95xx",
    "lan78xx",
    "qmi_wwan",
    "cdc_mbim",
];

/// Why `list` failed: a bus directory that exists could not be read.
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    /// `<root>/sys` is missing or not a directory.
    #[error("sysfs is not mounted at {}", path.display())]
    NoSysfs {
        /// Where sysfs was expected.
        path: PathBuf,
    },
    /// The devices of a bus could not be listed.
    #[error("cannot list the {bus} devices")]
    ListBus {
        /// `PCI` or `USB`.
        bus: &'static str,
        /// Why.
        #[source]
        source: AccessError,
    },
}

/// A PCI class code as sysfs writes it (`0x020000`): class, subclass,
/// programming interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciClass(pub u32);

impl PciClass {
    /// Class 0x02: a network controller (Ethernet, Wi-Fi, ...).
    pub fn is_network(self) -> bool {
        self.0 >> 16 == 0x02
    }

    /// Class 0x0604: a PCI-to-PCI bridge, which VFIO leaves to the host.
    pub fn is_bridge(self) -> bool {
        self.0 >> 8 == 0x0604
    }

    fn parse(text: &str) -> Option<Self> {
        let digits = text.strip_prefix("0x").unwrap_or(text);
        u32::from_str_radix(digits, 16).ok().map(Self)
    }
}

impl fmt::Display for PciClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "0x{:06x}", self.0)
    }
}

impl Serialize for PciClass {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One network device of the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetDevice {
    /// Where it sits: PCI or USB, with the bus's details.
    #[serde(flatten)]
    pub bus: Bus,
    /// The driver bound to it (to its network interface for USB).
    pub driver: Option<String>,
    /// Its network interfaces on the host, sorted.
    pub interfaces: Vec<String>,
    /// The card's own MAC, as its first interface with one shows it; `None`
    /// when it has no interface on the host (bound to vfio-pci) or the
    /// address was set by software (`addr_assign_type` not 0: random or
    /// set by a user), which the guest's driver would not see.
    pub mac: Option<MacAddr>,
    /// Why it can NOT be passed through to a VM; empty when it can.
    pub passable: Vec<String>,
}

/// Bus-specific facts about a [`NetDevice`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "bus", rename_all = "lowercase")]
pub enum Bus {
    /// A PCI function, passed through with VFIO.
    Pci(PciInfo),
    /// A USB device, passed by vendor:product to the VMM.
    Usb(UsbInfo),
    /// A platform (device-tree) device, passed through with VFIO.
    Platform(PlatformInfo),
}

/// A PCI network controller and its IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PciInfo {
    /// Its address, e.g. `0000:03:00.0`.
    pub address: PciAddress,
    /// `vendor:device`, e.g. `8086:2723`.
    pub id: Option<PciId>,
    /// Its class code.
    pub class: Option<PciClass>,
    /// Its IOMMU group; `None` when the IOMMU is off.
    pub iommu_group: Option<u32>,
    /// The other devices of its IOMMU group, sorted by address.
    pub group: Vec<GroupMember>,
}

/// Another device in the IOMMU group of a [`PciInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct GroupMember {
    /// Its address.
    pub address: PciAddress,
    /// Its class code.
    pub class: Option<PciClass>,
    /// The driver bound to it.
    pub driver: Option<String>,
    /// Whether it is a PCI bridge (stays with the host).
    pub bridge: bool,
    /// Its network interfaces, if it is a NIC too.
    pub interfaces: Vec<String>,
}

impl GroupMember {
    /// Whether the host uses it: bound to a real driver and neither a
    /// bridge nor a NIC (a NIC goes along with the group).
    pub fn in_use(&self) -> bool {
        let holding = |d: &String| HOLDING_DRIVERS.contains(&d.as_str());
        let network = self.class.is_some_and(PciClass::is_network);
        !self.bridge && !network && self.driver.as_ref().is_some_and(|d| !holding(d))
    }
}

/// A USB network adapter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsbInfo {
    /// Bus and port path, e.g. `1-2` or `3-1.4`.
    pub port: String,
    /// `vendor:product`.
    pub id: Option<UsbId>,
    /// The product string it reports.
    pub product: Option<String>,
    /// Bus number (`busnum`).
    pub busnum: Option<u32>,
    /// Port path on that bus (`devpath`).
    pub devpath: Option<String>,
}

impl NetDevice {
    /// Whether nothing stands in the way of passing it through.
    pub fn can_pass(&self) -> bool {
        self.passable.is_empty()
    }

    /// `pci`, `usb` or `platform`.
    pub fn bus_name(&self) -> &'static str {
        match self.bus {
            Bus::Pci(_) => "pci",
            Bus::Usb(_) => "usb",
            Bus::Platform(_) => "platform",
        }
    }

    /// The PCI address, the USB bus-port or the platform device's name.
    pub fn address(&self) -> String {
        match &self.bus {
            Bus::Pci(pci) => pci.address.to_string(),
            Bus::Usb(usb) => usb.port.clone(),
            Bus::Platform(platform) => platform.name.to_string(),
        }
    }

    /// `vendor:device` (PCI), `vendor:product` (USB) or the most specific
    /// `compatible` string (platform).
    pub fn id(&self) -> Option<String> {
        match &self.bus {
            Bus::Pci(pci) => pci.id.map(|id| id.to_string()),
            Bus::Usb(usb) => usb.id.map(|id| id.to_string()),
            Bus::Platform(platform) => platform.compatible.first().cloned(),
        }
    }

    /// Its IOMMU group (PCI and platform devices).
    pub fn iommu_group(&self) -> Option<u32> {
        match &self.bus {
            Bus::Pci(pci) => pci.iommu_group,
            Bus::Usb(_) => None,
            Bus::Platform(platform) => platform.iommu_group,
        }
    }
}

/// Lists the host's network devices: PCI first, then USB, then platform.
pub fn list(root: &HostRoot) -> Result<Vec<NetDevice>, DeviceError> {
    if !root.is_dir(&root.sys("")) {
        return Err(DeviceError::NoSysfs { path: root.sys("") });
    }
    let host = HostState::read(root);
    let mut devices = list_pci(root, &host)?;
    devices.extend(list_usb(root, &host)?);
    devices.extend(crate::platform::list_platform(root, &host)?);
    Ok(devices)
}

/// What every device's verdict depends on, read once per command.
pub(crate) struct HostState {
    iommu_on: bool,
    routes: DefaultRoutes,
}

impl HostState {
    pub(crate) fn read(root: &HostRoot) -> Self {
        let groups = root.entries_or_empty(&root.sys("kernel/iommu_groups"));
        Self {
            iommu_on: !groups.is_empty(),
            routes: DefaultRoutes::read(root),
        }
    }

    /// Whether the kernel has IOMMU groups at all.
    pub(crate) fn iommu_on(&self) -> bool {
        self.iommu_on
    }

    /// The host's default routes.
    pub(crate) fn routes(&self) -> &DefaultRoutes {
        &self.routes
    }
}

fn list_pci(root: &HostRoot, host: &HostState) -> Result<Vec<NetDevice>, DeviceError> {
    let names = root
        .entries(&root.sys("bus/pci/devices"))
        .map_err(|source| DeviceError::ListBus { bus: "PCI", source })?;
    Ok(names
        .iter()
        .filter_map(|name| name.parse().ok())
        .filter_map(|address| pci_device(root, address, host))
        .filter(|d| matches!(&d.bus, Bus::Pci(p) if p.class.is_some_and(PciClass::is_network)))
        .collect())
}

/// `/sys/bus/pci/devices/<address>`.
pub(crate) fn pci_dir(root: &HostRoot, address: PciAddress) -> PathBuf {
    root.sys(&format!("bus/pci/devices/{address}"))
}

/// Any PCI device, network or not; `None` when it does not exist.
pub(crate) fn pci_device(
    root: &HostRoot,
    address: PciAddress,
    host: &HostState,
) -> Option<NetDevice> {
    let dir = pci_dir(root, address);
    if !root.is_dir(&dir) {
        return None;
    }
    let hex = |file: &str| root.read(&dir.join(file)).and_then(|t| PciClass::parse(&t));
    let id = pci_id(root, &dir);
    let iommu_group = root
        .link_name(&dir.join("iommu_group"))
        .and_then(|n| n.parse().ok());
    let pci = PciInfo {
        address,
        id,
        class: hex("class"),
        iommu_group,
        group: iommu_group.map_or_else(Vec::new, |g| group_members(root, g, address)),
    };
    let interfaces = pci_interfaces(root, &dir);
    let passable = pci_blockers(root, host, &pci, &interfaces);
    Some(NetDevice {
        driver: root.link_name(&dir.join("driver")),
        mac: card_mac(root, &interfaces),
        interfaces,
        passable,
        bus: Bus::Pci(pci),
    })
}

/// A PCI function's `vendor` and `device` (`0x8086`) as one id.
pub(crate) fn pci_id(root: &HostRoot, dir: &Path) -> Option<PciId> {
    let hex = |file: &str| {
        let text = root.read(&dir.join(file))?;
        u16::from_str_radix(text.strip_prefix("0x").unwrap_or(&text), 16).ok()
    };
    Some(PciId {
        vendor: hex("vendor")?,
        device: hex("device")?,
    })
}

/// The interfaces of a PCI function: `<dev>/net/*`, and for virtio
/// devices `<dev>/virtio<N>/net/*`.
fn pci_interfaces(root: &HostRoot, dir: &Path) -> Vec<String> {
    let mut names = root.entries_or_empty(&dir.join("net"));
    for child in root.entries_or_empty(dir) {
        if child.starts_with("virtio") {
            names.extend(root.entries_or_empty(&dir.join(child).join("net")));
        }
    }
    names.sort();
    names
}

/// The card's own MAC: that of the first of `interfaces` whose address
/// the kernel took from the hardware (`addr_assign_type` 0, or missing).
pub(crate) fn card_mac(root: &HostRoot, interfaces: &[String]) -> Option<MacAddr> {
    interfaces.iter().find_map(|name| {
        let dir = root.sys(&format!("class/net/{name}"));
        let assigned = root.read(&dir.join("addr_assign_type"));
        if assigned.as_deref().is_some_and(|t| t != "0") {
            return None;
        }
        let mac: MacAddr = root.read(&dir.join("address"))?.parse().ok()?;
        (!mac.is_multicast() && !mac.is_zero()).then_some(mac)
    })
}

/// The members of IOMMU group `group` other than `except`.
fn group_members(root: &HostRoot, group: u32, except: PciAddress) -> Vec<GroupMember> {
    let dir = root.sys(&format!("kernel/iommu_groups/{group}/devices"));
    root.entries_or_empty(&dir)
        .iter()
        .filter_map(|name| name.parse().ok())
        .filter(|&address| address != except)
        .map(|address| group_member(root, address))
        .collect()
}

/// The same facts as a group member, for any PCI device.
pub(crate) fn group_member(root: &HostRoot, address: PciAddress) -> GroupMember {
    let dir = pci_dir(root, address);
    let class = root
        .read(&dir.join("class"))
        .and_then(|t| PciClass::parse(&t));
    GroupMember {
        address,
        class,
        driver: root.link_name(&dir.join("driver")),
        bridge: class.is_some_and(PciClass::is_bridge),
        interfaces: pci_interfaces(root, &dir),
    }
}

fn pci_blockers(
    root: &HostRoot,
    host: &HostState,
    pci: &PciInfo,
    interfaces: &[String],
) -> Vec<String> {
    let mut reasons = Vec::new();
    match pci.iommu_group {
        None if !host.iommu_on => reasons.push(
            "IOMMU is off (no /sys/kernel/iommu_groups): enable intel_iommu=on or amd_iommu=on"
                .to_owned(),
        ),
        None => reasons.push(format!(
            "IOMMU is off for {} (it has no iommu_group): the IOMMU does not cover it",
            pci.address
        )),
        Some(group) => reasons.extend(pci.group.iter().filter(|m| m.in_use()).map(|m| {
            format!(
                "{} (class {}, driver {}) shares IOMMU group {group} and is in use",
                m.address,
                m.class
                    .map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
                m.driver.as_deref().unwrap_or("none"),
            )
        })),
    }
    let group_interfaces = pci.group.iter().flat_map(|m| &m.interfaces);
    for interface in interfaces.iter().chain(group_interfaces) {
        reasons.extend(host.routes.reason(root, interface));
    }
    reasons
}

/// One interface of a USB device that makes a network interface.
struct UsbNetInterface {
    driver: Option<String>,
    interfaces: Vec<String>,
}

fn list_usb(root: &HostRoot, host: &HostState) -> Result<Vec<NetDevice>, DeviceError> {
    let dir = root.sys("bus/usb/devices");
    let names = root
        .entries(&dir)
        .map_err(|source| DeviceError::ListBus { bus: "USB", source })?;
    let mut by_port: BTreeMap<String, Vec<UsbNetInterface>> = BTreeMap::new();
    for name in &names {
        // `1-2:1.0` is interface 0 of configuration 1 of the device at
        // `1-2`; names without `:` are devices and hubs.
        let Some((port, _)) = name.split_once(':') else {
            continue;
        };
        if let Some(found) = usb_net_interface(root, &dir.join(name)) {
            by_port.entry(port.to_owned()).or_default().push(found);
        }
    }
    Ok(by_port
        .into_iter()
        .map(|(port, found)| usb_device(root, host, &dir, port, found))
        .collect())
}

fn usb_net_interface(root: &HostRoot, dir: &Path) -> Option<UsbNetInterface> {
    let hex = |file: &str| {
        root.read(&dir.join(file))
            .and_then(|t| u8::from_str_radix(&t, 16).ok())
    };
    // Communications class (02) with the ECM (06) or NCM (0d) subclass.
    let cdc = hex("bInterfaceClass") == Some(0x02)
        && matches!(hex("bInterfaceSubClass"), Some(0x06 | 0x0d));
    let driver = root.link_name(&dir.join("driver"));
    let interfaces = root.entries_or_empty(&dir.join("net"));
    let known = driver
        .as_deref()
        .is_some_and(|d| USB_NET_DRIVERS.contains(&d));
    (cdc || known || !interfaces.is_empty()).then_some(UsbNetInterface { driver, interfaces })
}

fn usb_device(
    root: &HostRoot,
    host: &HostState,
    bus_dir: &Path,
    port: String,
    found: Vec<UsbNetInterface>,
) -> NetDevice {
    let dir = bus_dir.join(&port);
    let read = |file: &str| root.read(&dir.join(file)).filter(|t| !t.is_empty());
    let id = match (read("idVendor"), read("idProduct")) {
        (Some(v), Some(p)) => format!("{v}:{p}").parse().ok(),
        _ => None,
    };
    let driver = found.iter().find_map(|f| f.driver.clone());
    let interfaces: BTreeSet<String> = found.into_iter().flat_map(|f| f.interfaces).collect();
    let interfaces: Vec<String> = interfaces.into_iter().collect();
    let passable = interfaces
        .iter()
        .filter_map(|i| host.routes.reason(root, i))
        .collect();
    NetDevice {
        mac: card_mac(root, &interfaces),
        bus: Bus::Usb(UsbInfo {
            id,
            product: read("product"),
            busnum: read("busnum").and_then(|t| t.parse().ok()),
            devpath: read("devpath"),
            port,
        }),
        driver,
        interfaces,
        passable,
    }
}

/// The interfaces the host's IPv4 and IPv6 default routes leave by, from
/// `/proc/net/route` and `/proc/net/ipv6_route` (either may be missing);
/// unreachable routes (such as the kernel's IPv6 one on `lo`) are left out.
pub fn default_route_interfaces(root: &HostRoot) -> BTreeSet<String> {
    DefaultRoutes::read(root).0
}

/// The interfaces the host's default routes (IPv4 or IPv6) leave by.
#[derive(Debug, Default)]
pub(crate) struct DefaultRoutes(BTreeSet<String>);

/// `RTF_REJECT`: an unreachable route, such as the kernel's IPv6 one on
/// `lo`, carries no traffic.
const RTF_REJECT: u32 = 0x0200;

impl DefaultRoutes {
    pub(crate) fn read(root: &HostRoot) -> Self {
        let text = |rel| root.read(&root.proc(rel)).unwrap_or_default();
        let mut via = parse_ipv4_defaults(&text("net/route"));
        via.extend(parse_ipv6_defaults(&text("net/ipv6_route")));
        Self(via)
    }

    /// Why `interface` cannot leave the host: it, or the bridge or bond
    /// it is enslaved to, carries a default route.
    pub(crate) fn reason(&self, root: &HostRoot, interface: &str) -> Option<String> {
        if self.0.contains(interface) {
            return Some(format!("{interface} carries the host's default route"));
        }
        let mut current = interface.to_owned();
        // Masters nest (a bond in a bridge) but never deeply.
        for _ in 0..4 {
            let master = root.link_name(&root.sys(&format!("class/net/{current}/master")))?;
            if self.0.contains(&master) {
                return Some(format!(
                    "{interface} is a port of {master}, which carries the host's default route"
                ));
            }
            current = master;
        }
        None
    }
}

/// Interfaces with a default route in `/proc/net/route`: a header line,
/// then `Iface Destination Gateway Flags RefCnt Use Metric Mask ...`.
fn parse_ipv4_defaults(text: &str) -> BTreeSet<String> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (iface, destination, flags, mask) = (
                fields.first()?,
                fields.get(1)?,
                fields.get(3)?,
                fields.get(7)?,
            );
            let default = *destination == "00000000" && *mask == "00000000";
            (default && !rejects(flags)).then(|| (*iface).to_owned())
        })
        .collect()
}

/// Interfaces with a default route in `/proc/net/ipv6_route`: `dest
/// dest_len src src_len next_hop metric refcnt use flags iface`.
fn parse_ipv6_defaults(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let (destination, length, flags, iface) = (
                fields.first()?,
                fields.get(1)?,
                fields.get(8)?,
                fields.get(9)?,
            );
            let default = destination.len() == 32
                && destination.bytes().all(|b| b == b'0')
                && *length == "00";
            (default && !rejects(flags) && *iface != "lo").then(|| (*iface).to_owned())
        })
        .collect()
}

fn rejects(flags: &str) -> bool {
    u32::from_str_radix(flags, 16).is_ok_and(|f| f & RTF_REJECT != 0)
}

/// A table of `devices` for people: one line per device, then indented
/// lines for the rest of its IOMMU group and the reasons it cannot be
/// passed through.
pub fn table(devices: &[NetDevice]) -> String {
    let header = [
        "BUS",
        "ADDRESS",
        "ID",
        "DRIVER",
        "INTERFACES",
        "GROUP",
        "PASSTHROUGH",
    ];
    let rows: Vec<[String; 7]> = devices.iter().map(row).collect();
    let mut widths = header.map(str::len);
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    push_row(&mut out, &header.map(str::to_owned), &widths);
    for (device, row) in devices.iter().zip(&rows) {
        push_row(&mut out, row, &widths);
        for line in details(device) {
            out.push_str("    ");
            out.push_str(&line);
            out.push('\n');
        }
    }
    out
}

fn row(device: &NetDevice) -> [String; 7] {
    let or_dash = |text: Option<String>| text.unwrap_or_else(|| "-".to_owned());
    let group = device.iommu_group().map(|g| g.to_string());
    let verdict = match (&device.bus, device.can_pass()) {
        (_, false) => "no",
        (Bus::Pci(_) | Bus::Platform(_), true) => "yes",
        (Bus::Usb(_), true) => "yes (by USB id)",
    };
    let interfaces = Some(device.interfaces.join(",")).filter(|t| !t.is_empty());
    [
        device.bus_name().to_owned(),
        device.address(),
        or_dash(device.id()),
        or_dash(device.driver.clone()),
        or_dash(interfaces),
        or_dash(group),
        verdict.to_owned(),
    ]
}

fn details(device: &NetDevice) -> Vec<String> {
    let mut lines = Vec::new();
    match &device.bus {
        Bus::Pci(pci) => {
            for member in &pci.group {
                lines.push(member_line(member, pci.iommu_group.unwrap_or_default()));
            }
        }
        Bus::Platform(platform) => {
            for member in &platform.group {
                let driver = member.driver.as_deref().unwrap_or("no driver");
                lines.push(format!(
                    "group {} also holds {} ({driver})",
                    platform.iommu_group.unwrap_or_default(),
                    member.name
                ));
            }
        }
        Bus::Usb(_) => {}
    }
    lines.extend(device.passable.iter().map(|r| format!("cannot pass: {r}")));
    lines
}

fn member_line(member: &GroupMember, group: u32) -> String {
    let class = match member.class {
        _ if member.bridge => "PCI bridge".to_owned(),
        Some(class) => format!("class {class}"),
        None => "class unknown".to_owned(),
    };
    let driver = member.driver.as_deref().unwrap_or("no driver");
    let mut line = format!(
        "group {group} also holds {} ({class}, {driver}",
        member.address
    );
    if !member.interfaces.is_empty() {
        line.push_str(&format!(", {}", member.interfaces.join(",")));
    }
    line.push(')');
    line
}

fn push_row(out: &mut String, cells: &[String; 7], widths: &[usize; 7]) {
    let mut line = String::new();
    for (cell, width) in cells.iter().zip(widths) {
        line.push_str(&format!("{cell:<width$}  "));
    }
    out.push_str(line.trim_end());
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes() {
        let parse = |t| PciClass::parse(t).expect("hex class");
        assert!(parse("0x020000").is_network());
        assert!(parse("0x028000").is_network());
        assert!(parse("0x060400").is_bridge());
        assert!(!parse("0x060000").is_bridge());
        assert!(!parse("0x040300").is_network());
        assert_eq!(parse("0x040300").to_string(), "0x040300");
        assert_eq!(PciClass::parse("junk"), None);
    }

    #[test]
    fn ipv4_default_routes() {
        let text =
            "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
            eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
            eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
            wg0\t00000000\t00000000\t0001\t0\t0\t0\t00000080\t0\t0\t0\n\
            short\t00000000\n";
        assert_eq!(
            parse_ipv4_defaults(text),
            BTreeSet::from(["eth0".to_owned()])
        );
        assert!(parse_ipv4_defaults("").is_empty());
    }

    #[test]
    fn ipv6_default_routes() {
        let zero = "00000000000000000000000000000000";
        let text = format!(
            "fe800000000000000000000000000000 40 {zero} 00 {zero} 00000100 00000001 00000000 00000001     eth0\n\
             {zero} 00 {zero} 00 fe800000000000000000000000000001 00000400 00000003 00000000 00000003   wlan0\n\
             {zero} 00 {zero} 00 {zero} ffffffff 00000001 00000000 00200200       lo\n\
             {zero} 00 {zero}\n"
        );
        assert_eq!(
            parse_ipv6_defaults(&text),
            BTreeSet::from(["wlan0".to_owned()])
        );
    }

    #[test]
    fn members_in_use() {
        let member = |class, driver: Option<&str>| GroupMember {
            address: "0000:00:1f.3".parse().expect("address"),
            class: Some(PciClass(class)),
            driver: driver.map(str::to_owned),
            bridge: PciClass(class).is_bridge(),
            interfaces: Vec::new(),
        };
        assert!(member(0x040300, Some("snd_hda_intel")).in_use());
        assert!(!member(0x040300, None).in_use());
        assert!(!member(0x040300, Some("vfio-pci")).in_use());
        assert!(!member(0x060400, Some("pcieport")).in_use());
        assert!(!member(0x020000, Some("e1000e")).in_use());
    }
}
