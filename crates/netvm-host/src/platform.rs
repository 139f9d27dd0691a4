//! Platform (device-tree) network devices, the ADR's "platform NIC"
//! (NXP i.MX 8QM `5b040000.ethernet`, NVIDIA Orin MGBE `6800000.ethernet`):
//! what `/sys/bus/platform/devices` shows of them and their IOMMU groups,
//! and why one cannot be handed to `vfio-platform`.
//!
//! A platform device is a NIC when it has network interfaces (`net/`).
//! Bound to `vfio-platform` it has none, so it is then recognised by its
//! device-tree node's generic name (`of_node/name`, or the part of the
//! device name after the unit address) being `ethernet`, as the
//! devicetree specification recommends for NICs, or by the record
//! `netvm host passthrough bind` left under `/run/netvm/passthrough`.
//!
//! Read-only, like [`devices`](crate::devices).

use crate::devices::{Bus, DeviceError, HostState, NetDevice};
use crate::HostRoot;
use netvm_description::values::PlatformDevice;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// The driver that holds platform devices passed through to VMs.
pub const VFIO_PLATFORM_DRIVER: &str = "vfio-platform";

/// `compatible` strings the kernel has a vfio-platform reset handler for
/// (`drivers/vfio/platform/reset/`); any other device needs
/// `vfio-platform.reset_required=0`.
const RESET_HANDLERS: [&str; 3] = [
    "calxeda,hb-xgmac",
    "amd,xgbe-seattle-v1a",
    "brcm,iproc-flexrm-mbox",
];

/// A platform network device and its IOMMU group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformInfo {
    /// Its kernel name, e.g. `2490000.ethernet`.
    pub name: PlatformDevice,
    /// Its device-tree node's `compatible` strings, most specific first.
    pub compatible: Vec<String>,
    /// Its IOMMU group; `None` when the SMMU does not cover it.
    pub iommu_group: Option<u32>,
    /// The other devices of its IOMMU group, sorted by name.
    pub group: Vec<PlatformMember>,
}

/// Another device in the IOMMU group of a [`PlatformInfo`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlatformMember {
    /// Its kernel name.
    pub name: String,
    /// Whether it is on the platform bus (VFIO can take only those with
    /// a platform NIC).
    pub platform: bool,
    /// The driver bound to it.
    pub driver: Option<String>,
    /// Its network interfaces, if it is a NIC too.
    pub interfaces: Vec<String>,
}

impl PlatformMember {
    /// Whether the host uses it: bound to a driver other than
    /// `vfio-platform`, and not a NIC (a NIC goes along with the group).
    pub fn in_use(&self) -> bool {
        self.interfaces.is_empty()
            && self
                .driver
                .as_deref()
                .is_some_and(|d| d != VFIO_PLATFORM_DRIVER)
    }
}

impl PlatformInfo {
    /// Whether vfio-platform would refuse it for want of a reset handler:
    /// `reset_required` is on (the default) and none matches.
    pub(crate) fn lacks_reset(&self, root: &HostRoot) -> bool {
        let required = root.read(&root.sys("module/vfio_platform/parameters/reset_required"));
        required.as_deref().is_some_and(|r| r == "Y" || r == "1")
            && !self
                .compatible
                .iter()
                .any(|c| RESET_HANDLERS.contains(&c.as_str()))
    }
}

/// `/sys/bus/platform/devices/<name>`.
pub(crate) fn platform_dir(root: &HostRoot, name: &str) -> PathBuf {
    root.sys(&format!("bus/platform/devices/{name}"))
}

/// The platform NICs, by name.
pub(crate) fn list_platform(
    root: &HostRoot,
    host: &HostState,
) -> Result<Vec<NetDevice>, DeviceError> {
    let names = root
        .entries(&root.sys("bus/platform/devices"))
        .map_err(|source| DeviceError::ListBus {
            bus: "platform",
            source,
        })?;
    Ok(names
        .iter()
        .filter_map(|name| name.parse::<PlatformDevice>().ok())
        .filter_map(|name| platform_device(root, &name, host))
        .filter(|d| matches!(&d.bus, Bus::Platform(p) if is_nic(root, p, &d.interfaces)))
        .collect())
}

/// Whether the platform device is a NIC (see the module's notes).
pub(crate) fn is_nic(root: &HostRoot, info: &PlatformInfo, interfaces: &[String]) -> bool {
    let name = info.name.as_str();
    let dir = platform_dir(root, name);
    // Device-tree properties end in NUL.
    let node_name = root
        .read(&dir.join("of_node/name"))
        .map(|n| n.trim_end_matches('\0').to_owned());
    let generic = |n: &str| n == "ethernet";
    !interfaces.is_empty()
        || node_name.as_deref().is_some_and(generic)
        || name.split_once('.').is_some_and(|(_, node)| generic(node))
        || root.exists(&root.run(&format!("netvm/passthrough/{name}")))
}

/// Any platform device; `None` when it does not exist.
pub(crate) fn platform_device(
    root: &HostRoot,
    name: &PlatformDevice,
    host: &HostState,
) -> Option<NetDevice> {
    let dir = platform_dir(root, name.as_str());
    if !root.is_dir(&dir) {
        return None;
    }
    let iommu_group = root
        .link_name(&dir.join("iommu_group"))
        .and_then(|n| n.parse().ok());
    let info = PlatformInfo {
        name: name.clone(),
        compatible: compatible(root, &dir),
        iommu_group,
        group: iommu_group.map_or_else(Vec::new, |g| group_members(root, g, name.as_str())),
    };
    let interfaces = root.entries_or_empty(&dir.join("net"));
    let passable = blockers(root, host, &info, &interfaces);
    Some(NetDevice {
        driver: root.link_name(&dir.join("driver")),
        mac: crate::devices::card_mac(root, &interfaces),
        interfaces,
        passable,
        bus: Bus::Platform(info),
    })
}

/// `of_node/compatible`: NUL-separated strings.
fn compatible(root: &HostRoot, dir: &Path) -> Vec<String> {
    root.read(&dir.join("of_node/compatible"))
        .map(|text| {
            text.split('\0')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

/// The members of IOMMU group `group` other than `except`.
fn group_members(root: &HostRoot, group: u32, except: &str) -> Vec<PlatformMember> {
    let dir = root.sys(&format!("kernel/iommu_groups/{group}/devices"));
    root.entries_or_empty(&dir)
        .into_iter()
        .filter(|name| name != except)
        .map(|name| {
            let member = dir.join(&name);
            PlatformMember {
                platform: root.link_name(&member.join("subsystem")).as_deref() == Some("platform")
                    || root.is_dir(&platform_dir(root, &name)),
                driver: root.link_name(&member.join("driver")),
                interfaces: root.entries_or_empty(&member.join("net")),
                name,
            }
        })
        .collect()
}

fn blockers(
    root: &HostRoot,
    host: &HostState,
    info: &PlatformInfo,
    interfaces: &[String],
) -> Vec<String> {
    let mut reasons = Vec::new();
    match info.iommu_group {
        None if !host.iommu_on() => reasons.push(
            "IOMMU is off (no /sys/kernel/iommu_groups): the SMMU must be on and cover the device"
                .to_owned(),
        ),
        None => reasons.push(format!(
            "{} has no IOMMU group: its device-tree node needs an `iommus` property (an SMMU stream of its own)",
            info.name
        )),
        Some(group) => {
            for m in &info.group {
                if !m.platform {
                    reasons.push(format!(
                        "{} shares IOMMU group {group} and is not a platform device (vfio-platform takes only platform devices)",
                        m.name
                    ));
                } else if m.in_use() {
                    reasons.push(format!(
                        "{} (driver {}) shares IOMMU group {group} and is in use",
                        m.name,
                        m.driver.as_deref().unwrap_or("none")
                    ));
                }
            }
        }
    }
    let group_interfaces = info.group.iter().flat_map(|m| &m.interfaces);
    for interface in interfaces.iter().chain(group_interfaces) {
        reasons.extend(host.routes().reason(root, interface));
    }
    reasons
}
