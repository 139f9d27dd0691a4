//! Handing a network device, with the rest of its IOMMU group, to VFIO
//! so a VM can own it, and giving it back to the host (`netvm host
//! passthrough bind|unbind`): a PCI NIC to `vfio-pci`, a platform
//! (device-tree) NIC to `vfio-platform`. Both buses work the same way
//! through `driver_override`, so one code path serves both; only the bus
//! directory and the VFIO driver differ.
//!
//! VFIO hands out whole IOMMU groups, so both operations act on every
//! endpoint of the device's group; PCI bridges (class 0x0604) stay with
//! the host. [`bind`] first checks everything that could go wrong and
//! refuses without writing anything; both operations are idempotent (a
//! second run finds nothing to do and writes nothing). Each member's
//! original driver is remembered in `/run/netvm/passthrough/<name>` so
//! [`unbind`] can return it even when the kernel does not re-probe it.
//! Every sysfs write made is reported, in order.

use crate::devices::{self, Bus, HostState, NetDevice, VFIO_DRIVER};
use crate::platform::{self, PlatformInfo, VFIO_PLATFORM_DRIVER};
use crate::HostRoot;
use netvm_description::values::{PciAddress, PlatformDevice};
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

pub use crate::root::AccessError;

/// A device VFIO can take: a PCI function or a platform device.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum VfioDevice {
    /// A PCI function, for `vfio-pci`.
    Pci(PciAddress),
    /// A platform (device-tree) device, for `vfio-platform`.
    Platform(PlatformDevice),
}

impl VfioDevice {
    /// `pci` or `platform`: the directory under `/sys/bus`.
    pub fn bus(&self) -> &'static str {
        match self {
            VfioDevice::Pci(_) => "pci",
            VfioDevice::Platform(_) => "platform",
        }
    }

    /// `PCI` or `platform`, for messages.
    pub fn bus_label(&self) -> &'static str {
        match self {
            VfioDevice::Pci(_) => "PCI",
            VfioDevice::Platform(_) => "platform",
        }
    }

    /// The VFIO driver of its bus.
    pub fn vfio_driver(&self) -> &'static str {
        match self {
            VfioDevice::Pci(_) => VFIO_DRIVER,
            VfioDevice::Platform(_) => VFIO_PLATFORM_DRIVER,
        }
    }

    /// `/sys/bus/<bus>/devices/<name>`.
    fn dir(&self, root: &HostRoot) -> PathBuf {
        root.sys(&format!("bus/{}/devices/{self}", self.bus()))
    }

    /// `/sys/bus/<bus>/<rel>`.
    fn bus_path(&self, root: &HostRoot, rel: &str) -> PathBuf {
        root.sys(&format!("bus/{}/{rel}", self.bus()))
    }
}

impl From<PciAddress> for VfioDevice {
    fn from(address: PciAddress) -> Self {
        VfioDevice::Pci(address)
    }
}

impl From<PlatformDevice> for VfioDevice {
    fn from(name: PlatformDevice) -> Self {
        VfioDevice::Platform(name)
    }
}

impl fmt::Display for VfioDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VfioDevice::Pci(address) => address.fmt(f),
            VfioDevice::Platform(name) => name.fmt(f),
        }
    }
}

impl FromStr for VfioDevice {
    type Err = String;

    /// A PCI address (`0000:03:00.0`), else a platform device name
    /// (`2490000.ethernet`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(address) = text.parse::<PciAddress>() {
            return Ok(VfioDevice::Pci(address));
        }
        text.parse::<PlatformDevice>()
            .map(VfioDevice::Platform)
            .map_err(|_| {
                format!(
                    "`{text}` is neither a PCI address (0000:03:00.0) nor a platform device name (2490000.ethernet)"
                )
            })
    }
}

impl Serialize for VfioDevice {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// Why a device could not be bound or unbound.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    /// Passing it through would break the host or cannot work; nothing
    /// was written.
    #[error("refusing to pass {device} through: {}", reasons.join("; "))]
    Refused {
        /// The device asked for.
        device: VfioDevice,
        /// Every reason found.
        reasons: Vec<String>,
    },
    /// The device does not exist (for [`unbind`]); nothing was written.
    #[error("there is no {} device {device} (no {})", device.bus_label(), path.display())]
    NoDevice {
        /// The device asked for.
        device: VfioDevice,
        /// Its sysfs directory.
        path: PathBuf,
    },
    /// Its original driver could not be remembered.
    #[error("cannot remember that {device} was bound to {driver}")]
    RecordDriver {
        /// The group member.
        device: VfioDevice,
        /// Its driver.
        driver: String,
        /// Why.
        #[source]
        source: AccessError,
    },
    /// `driver_override` could not be set or cleared.
    #[error("cannot set the driver override of {device}")]
    Override {
        /// The group member.
        device: VfioDevice,
        /// Why.
        #[source]
        source: AccessError,
    },
    /// It could not be unbound from its driver.
    #[error("cannot unbind {device} from {driver}")]
    Unbind {
        /// The group member.
        device: VfioDevice,
        /// The driver it is bound to.
        driver: String,
        /// Why.
        #[source]
        source: AccessError,
    },
    /// The kernel could not be asked to probe it.
    #[error("cannot ask the kernel to probe {device}")]
    Probe {
        /// The group member.
        device: VfioDevice,
        /// Why.
        #[source]
        source: AccessError,
    },
    /// It could not be bound back to its original driver.
    #[error("cannot bind {device} back to {driver}")]
    Restore {
        /// The group member.
        device: VfioDevice,
        /// Its original driver.
        driver: String,
        /// Why.
        #[source]
        source: AccessError,
    },
    /// Its state file could not be removed.
    #[error("cannot forget the original driver of {device}")]
    ForgetDriver {
        /// The group member.
        device: VfioDevice,
        /// Why.
        #[source]
        source: AccessError,
    },
}

/// One sysfs write, as performed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SysfsWrite {
    /// The attribute.
    pub path: PathBuf,
    /// What was written.
    pub value: String,
}

impl fmt::Display for SysfsWrite {
    /// The shell equivalent: `echo 0000:03:00.0 > /sys/bus/pci/drivers_probe`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = self.value.trim_end_matches('\n');
        write!(f, "echo {value:?} > {}", self.path.display())
    }
}

/// What [`bind`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Bound {
    /// The device asked for.
    pub device: VfioDevice,
    /// The VFIO driver it went to (`vfio-pci`, `vfio-platform`).
    pub vfio_driver: &'static str,
    /// Its IOMMU group, which the VM gets as a whole.
    pub iommu_group: u32,
    /// Every endpoint of the group, by address.
    pub members: Vec<MemberBound>,
    /// The sysfs writes made, in order.
    pub writes: Vec<SysfsWrite>,
}

/// What [`bind`] did to one member of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberBound {
    /// The member.
    pub address: VfioDevice,
    /// The driver it was bound to before.
    pub previous_driver: Option<String>,
    /// `false` when it already was with the VFIO driver.
    pub changed: bool,
    /// The driver it is bound to now (the VFIO driver when all went well).
    pub driver: Option<String>,
}

/// What [`unbind`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unbound {
    /// The device asked for.
    pub device: VfioDevice,
    /// Every endpoint of its group, by address.
    pub members: Vec<MemberUnbound>,
    /// The sysfs writes made, in order.
    pub writes: Vec<SysfsWrite>,
}

/// What [`unbind`] did to one member of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberUnbound {
    /// The member.
    pub address: VfioDevice,
    /// The driver it should return to, as remembered by [`bind`].
    pub return_to: Option<String>,
    /// `false` when it was not with the VFIO driver and had nothing to undo.
    pub changed: bool,
    /// The driver it is bound to now.
    pub driver: Option<String>,
}

/// One endpoint of the group VFIO takes, with its driver now.
struct Member {
    device: VfioDevice,
    driver: Option<String>,
}

/// Hands `device` and every other endpoint of its IOMMU group to its
/// bus's VFIO driver; equivalent, per member, to
/// `echo vfio-pci > …/driver_override; echo ADDR > …/driver/unbind;
/// echo ADDR > /sys/bus/pci/drivers_probe` (`vfio-platform` and
/// `/sys/bus/platform` for a platform device).
///
/// Refuses, writing nothing, when the device is not a network device,
/// the IOMMU does not cover it, another group member is in use by the
/// host (or, for a platform device, is not a platform device), a member
/// carries the default route, the VFIO driver is not loaded, or (platform)
/// vfio-platform would want a reset handler the kernel does not have.
pub fn bind(root: &HostRoot, device: impl Into<VfioDevice>) -> Result<Bound, PassthroughError> {
    let device = device.into();
    let (iommu_group, members) = checked_nic(root, &device)?;
    let mut writer = Writer {
        root,
        writes: Vec::new(),
    };
    let members = members
        .into_iter()
        .map(|member| bind_member(&mut writer, member))
        .collect::<Result<_, _>>()?;
    Ok(Bound {
        vfio_driver: device.vfio_driver(),
        device,
        iommu_group,
        members,
        writes: writer.writes,
    })
}

/// Gives `device` and the other endpoints of its IOMMU group back to the
/// host: per member bound to the VFIO driver, equivalent to
/// `echo ADDR > /sys/bus/pci/drivers/vfio-pci/unbind; echo > …/driver_override;
/// echo ADDR > /sys/bus/pci/drivers_probe`, then, if no host driver took
/// it, `echo ADDR > /sys/bus/pci/drivers/ORIGINAL/bind` (`platform` and
/// `vfio-platform` for a platform device).
pub fn unbind(root: &HostRoot, device: impl Into<VfioDevice>) -> Result<Unbound, PassthroughError> {
    let device = device.into();
    let host = HostState::read(root);
    let no_device = || PassthroughError::NoDevice {
        device: device.clone(),
        path: device.dir(root),
    };
    let found = found(root, &device, &host).ok_or_else(no_device)?;
    let mut writer = Writer {
        root,
        writes: Vec::new(),
    };
    let members = endpoints(root, &device, &found)
        .into_iter()
        .map(|member| unbind_member(&mut writer, member))
        .collect::<Result<_, _>>()?;
    Ok(Unbound {
        device,
        members,
        writes: writer.writes,
    })
}

/// What sysfs says of `device`; `None` when it does not exist.
fn found(root: &HostRoot, device: &VfioDevice, host: &HostState) -> Option<NetDevice> {
    match device {
        VfioDevice::Pci(address) => devices::pci_device(root, *address, host),
        VfioDevice::Platform(name) => platform::platform_device(root, name, host),
    }
}

/// The device as a network device that can be passed through (its
/// IOMMU group and the members VFIO takes), or every reason it cannot.
fn checked_nic(
    root: &HostRoot,
    device: &VfioDevice,
) -> Result<(u32, Vec<Member>), PassthroughError> {
    let refuse = |reasons: Vec<String>| PassthroughError::Refused {
        device: device.clone(),
        reasons,
    };
    let host = HostState::read(root);
    let Some(found) = found(root, device, &host) else {
        return Err(refuse(vec![format!(
            "there is no such {} device (no {})",
            device.bus_label(),
            device.dir(root).display()
        )]));
    };
    let mut reasons = Vec::new();
    match &found.bus {
        Bus::Pci(pci) if !pci.class.is_some_and(|c| c.is_network()) => {
            let class = pci
                .class
                .map_or_else(|| "unknown".to_owned(), |c| c.to_string());
            return Err(refuse(vec![format!(
                "it is not a network controller (class {class})"
            )]));
        }
        Bus::Platform(info) if !platform::is_nic(root, info, &found.interfaces) => {
            return Err(refuse(vec![
                "it is not a network device (no interface, and its device-tree node is not named `ethernet`)"
                    .to_owned(),
            ]));
        }
        Bus::Platform(info) => reasons.extend(reset_reason(root, info)),
        _ => {}
    }
    reasons.splice(0..0, found.passable.iter().cloned());
    let vfio = device.vfio_driver();
    if !root.is_dir(&device.bus_path(root, &format!("drivers/{vfio}"))) {
        reasons.push(format!("{vfio} is not loaded: modprobe {vfio}"));
    }
    if !reasons.is_empty() {
        return Err(refuse(reasons));
    }
    let iommu_group = found
        .iommu_group()
        .ok_or_else(|| refuse(vec!["IOMMU is off for it".to_owned()]))?;
    Ok((iommu_group, endpoints(root, device, &found)))
}

/// Why vfio-platform would refuse to bind `info`, if it would.
fn reset_reason(root: &HostRoot, info: &PlatformInfo) -> Option<String> {
    info.lacks_reset(root).then(|| {
        format!(
            "vfio-platform has no reset handler for {} and requires one: load it with reset_required=0 (the guest's driver resets the NIC)",
            info.compatible.first().map_or("it", String::as_str)
        )
    })
}

/// The device and the other members of its group that VFIO takes, by
/// address; PCI bridges stay with the host.
fn endpoints(root: &HostRoot, device: &VfioDevice, found: &NetDevice) -> Vec<Member> {
    let own = Member {
        device: device.clone(),
        driver: root.link_name(&device.dir(root).join("driver")),
    };
    let others: Vec<Member> = match &found.bus {
        Bus::Pci(pci) => pci
            .group
            .iter()
            .filter(|m| !m.bridge)
            .map(|m| Member {
                device: VfioDevice::Pci(m.address),
                driver: m.driver.clone(),
            })
            .collect(),
        // Members that are not platform devices were refused by `bind`;
        // `unbind` leaves them alone.
        Bus::Platform(info) => info
            .group
            .iter()
            .filter(|m| m.platform)
            .filter_map(|m| {
                Some(Member {
                    device: VfioDevice::Platform(m.name.parse().ok()?),
                    driver: m.driver.clone(),
                })
            })
            .collect(),
        Bus::Usb(_) => Vec::new(),
    };
    let mut members: Vec<Member> = others.into_iter().chain([own]).collect();
    members.sort_by(|a, b| a.device.cmp(&b.device));
    members
}

fn bind_member(writer: &mut Writer<'_>, member: Member) -> Result<MemberBound, PassthroughError> {
    let device = member.device;
    let vfio = device.vfio_driver();
    let previous = member.driver;
    if previous.as_deref() == Some(vfio) {
        return Ok(MemberBound {
            address: device,
            driver: previous.clone(),
            previous_driver: previous,
            changed: false,
        });
    }
    let root = writer.root;
    let dir = device.dir(root);
    if let Some(driver) = &previous {
        // Remembered before anything changes, so a failure later still
        // leaves the way back on disk.
        root.save(&state_file(root, &device), &format!("{driver}\n"))
            .map_err(|source| PassthroughError::RecordDriver {
                device: device.clone(),
                driver: driver.clone(),
                source,
            })?;
    }
    // The override goes first so that nothing re-probes the device into
    // its old driver between the unbind and the probe.
    writer
        .write(&dir.join("driver_override"), vfio)
        .map_err(|source| PassthroughError::Override {
            device: device.clone(),
            source,
        })?;
    if let Some(driver) = &previous {
        writer
            .write(&dir.join("driver/unbind"), &device.to_string())
            .map_err(|source| PassthroughError::Unbind {
                device: device.clone(),
                driver: driver.clone(),
                source,
            })?;
    }
    probe(writer, &device)?;
    Ok(MemberBound {
        driver: root.link_name(&dir.join("driver")),
        address: device,
        previous_driver: previous,
        changed: true,
    })
}

fn unbind_member(
    writer: &mut Writer<'_>,
    member: Member,
) -> Result<MemberUnbound, PassthroughError> {
    let device = member.device;
    let vfio = device.vfio_driver();
    let root = writer.root;
    let dir = device.dir(root);
    let state = state_file(root, &device);
    let return_to = root.read(&state).filter(|d| is_driver_name(d));
    let on_vfio = member.driver.as_deref() == Some(vfio);
    let overridden = root
        .read(&dir.join("driver_override"))
        .is_some_and(|o| !o.is_empty() && o != "(null)");
    if !on_vfio && !overridden && return_to.is_none() {
        return Ok(MemberUnbound {
            address: device,
            return_to,
            changed: false,
            driver: member.driver,
        });
    }
    if on_vfio {
        let unbind = device.bus_path(root, &format!("drivers/{vfio}/unbind"));
        writer
            .write(&unbind, &device.to_string())
            .map_err(|source| PassthroughError::Unbind {
                device: device.clone(),
                driver: vfio.to_owned(),
                source,
            })?;
    }
    // A lone newline clears the override.
    writer
        .write(&dir.join("driver_override"), "\n")
        .map_err(|source| PassthroughError::Override {
            device: device.clone(),
            source,
        })?;
    probe(writer, &device)?;
    let mut driver = root.link_name(&dir.join("driver"));
    if let Some(original) = &return_to {
        if needs_restore(driver.as_deref(), vfio) {
            restore(writer, &device, original)?;
            driver = root.link_name(&dir.join("driver"));
        }
    }
    root.remove(&state)
        .map_err(|source| PassthroughError::ForgetDriver {
            device: device.clone(),
            source,
        })?;
    Ok(MemberUnbound {
        address: device,
        return_to,
        changed: true,
        driver,
    })
}

/// After the probe, a device with no driver (its driver does not probe
/// by itself, e.g. it was bound with `new_id`) or still with the VFIO
/// driver has not gone home; binding it explicitly either fixes that or
/// fails with the kernel's reason.
fn needs_restore(driver: Option<&str>, vfio: &str) -> bool {
    driver.is_none_or(|d| d == vfio)
}

fn restore(
    writer: &mut Writer<'_>,
    device: &VfioDevice,
    original: &str,
) -> Result<(), PassthroughError> {
    let bind = device.bus_path(writer.root, &format!("drivers/{original}/bind"));
    if !writer.root.exists(&bind) {
        // Its module is not loaded; the next modprobe will pick it up.
        return Ok(());
    }
    writer
        .write(&bind, &device.to_string())
        .map_err(|source| PassthroughError::Restore {
            device: device.clone(),
            driver: original.to_owned(),
            source,
        })
}

fn probe(writer: &mut Writer<'_>, device: &VfioDevice) -> Result<(), PassthroughError> {
    let path = device.bus_path(writer.root, "drivers_probe");
    writer
        .write(&path, &device.to_string())
        .map_err(|source| PassthroughError::Probe {
            device: device.clone(),
            source,
        })
}

/// `/run/netvm/passthrough/<name>`: the member's original driver.
fn state_file(root: &HostRoot, device: &VfioDevice) -> PathBuf {
    root.run(&format!("netvm/passthrough/{device}"))
}

/// The state file names a directory under `/sys/bus/<bus>/drivers`; a
/// name that could leave it is ignored.
fn is_driver_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// Performs sysfs writes and keeps the list of those made.
struct Writer<'a> {
    root: &'a HostRoot,
    writes: Vec<SysfsWrite>,
}

impl Writer<'_> {
    fn write(&mut self, path: &Path, value: &str) -> Result<(), AccessError> {
        self.root.write(path, value)?;
        self.writes.push(SysfsWrite {
            path: path.to_owned(),
            value: value.to_owned(),
        });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_names_from_state_files() {
        assert!(is_driver_name("iwlwifi"));
        assert!(is_driver_name("ax88179_178a"));
        assert!(!is_driver_name(""));
        assert!(!is_driver_name(".."));
        assert!(!is_driver_name("../../x"));
    }

    #[test]
    fn restore_when_not_home() {
        assert!(needs_restore(None, VFIO_DRIVER));
        assert!(needs_restore(Some(VFIO_DRIVER), VFIO_DRIVER));
        assert!(needs_restore(
            Some(VFIO_PLATFORM_DRIVER),
            VFIO_PLATFORM_DRIVER
        ));
        assert!(!needs_restore(Some("iwlwifi"), VFIO_DRIVER));
    }

    #[test]
    fn devices_by_name() {
        let pci: VfioDevice = "0000:03:00.0".parse().expect("pci");
        assert_eq!((pci.bus(), pci.vfio_driver()), ("pci", VFIO_DRIVER));
        let platform: VfioDevice = "2490000.ethernet".parse().expect("platform");
        assert_eq!(platform.bus(), "platform");
        assert_eq!(platform.vfio_driver(), VFIO_PLATFORM_DRIVER);
        assert_eq!(platform.to_string(), "2490000.ethernet");
        assert!("../x".parse::<VfioDevice>().is_err());
    }

    #[test]
    fn writes_read_as_shell() {
        let write = SysfsWrite {
            path: PathBuf::from("/sys/bus/pci/devices/0000:03:00.0/driver_override"),
            value: "\n".to_owned(),
        };
        assert_eq!(
            write.to_string(),
            "echo \"\" > /sys/bus/pci/devices/0000:03:00.0/driver_override"
        );
    }
}
