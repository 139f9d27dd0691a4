//! Handing a PCI network device, with the rest of its IOMMU group, to
//! `vfio-pci` so a VM can own it, and giving it back to the host
//! (`netvm host passthrough bind|unbind`).
//!
//! VFIO hands out whole IOMMU groups, so both operations act on every
//! endpoint of the device's group; PCI bridges (class 0x0604) stay with
//! the host. [`bind`] first checks everything that could go wrong and
//! refuses without writing anything; both operations are idempotent (a
//! second run finds nothing to do and writes nothing). Each member's
//! original driver is remembered in `/run/netvm/passthrough/<address>`
//! so [`unbind`] can return it even when the kernel does not re-probe it.
//! Every sysfs write made is reported, in order.

use crate::devices::{self, Bus, GroupMember, HostState, NetDevice, PciInfo, VFIO_DRIVER};
use crate::HostRoot;
use netvm_description::values::PciAddress;
use serde::Serialize;
use std::fmt;
use std::path::{Path, PathBuf};

pub use crate::root::AccessError;

/// Why a device could not be bound or unbound.
#[derive(Debug, thiserror::Error)]
pub enum PassthroughError {
    /// Passing it through would break the host or cannot work; nothing
    /// was written.
    #[error("refusing to pass {device} through: {}", reasons.join("; "))]
    Refused {
        /// The device asked for.
        device: PciAddress,
        /// Every reason found.
        reasons: Vec<String>,
    },
    /// The device does not exist (for [`unbind`]); nothing was written.
    #[error("there is no PCI device {device} (no {})", path.display())]
    NoDevice {
        /// The device asked for.
        device: PciAddress,
        /// Its sysfs directory.
        path: PathBuf,
    },
    /// Its original driver could not be remembered.
    #[error("cannot remember that {device} was bound to {driver}")]
    RecordDriver {
        /// The group member.
        device: PciAddress,
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
        device: PciAddress,
        /// Why.
        #[source]
        source: AccessError,
    },
    /// It could not be unbound from its driver.
    #[error("cannot unbind {device} from {driver}")]
    Unbind {
        /// The group member.
        device: PciAddress,
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
        device: PciAddress,
        /// Why.
        #[source]
        source: AccessError,
    },
    /// It could not be bound back to its original driver.
    #[error("cannot bind {device} back to {driver}")]
    Restore {
        /// The group member.
        device: PciAddress,
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
        device: PciAddress,
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
    pub device: PciAddress,
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
    pub address: PciAddress,
    /// The driver it was bound to before.
    pub previous_driver: Option<String>,
    /// `false` when it already was with `vfio-pci`.
    pub changed: bool,
    /// The driver it is bound to now (`vfio-pci` when all went well).
    pub driver: Option<String>,
}

/// What [`unbind`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Unbound {
    /// The device asked for.
    pub device: PciAddress,
    /// Every endpoint of its group, by address.
    pub members: Vec<MemberUnbound>,
    /// The sysfs writes made, in order.
    pub writes: Vec<SysfsWrite>,
}

/// What [`unbind`] did to one member of the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberUnbound {
    /// The member.
    pub address: PciAddress,
    /// The driver it should return to, as remembered by [`bind`].
    pub return_to: Option<String>,
    /// `false` when it was not with `vfio-pci` and had nothing to undo.
    pub changed: bool,
    /// The driver it is bound to now.
    pub driver: Option<String>,
}

/// Hands `device` and every other endpoint of its IOMMU group to
/// `vfio-pci`; equivalent, per member, to
/// `echo vfio-pci > …/driver_override; echo ADDR > …/driver/unbind;
/// echo ADDR > /sys/bus/pci/drivers_probe`.
///
/// Refuses, writing nothing, when the device is not a PCI network
/// controller, the IOMMU is off, another group member is in use by the
/// host, a member carries the default route, or `vfio-pci` is not loaded.
pub fn bind(root: &HostRoot, device: &PciAddress) -> Result<Bound, PassthroughError> {
    let (pci, own) = checked_nic(root, *device)?;
    let refuse = |reason: String| PassthroughError::Refused {
        device: *device,
        reasons: vec![reason],
    };
    let iommu_group = pci
        .iommu_group
        .ok_or_else(|| refuse("IOMMU is off for it".to_owned()))?;
    let mut writer = Writer {
        root,
        writes: Vec::new(),
    };
    let members = endpoints(own, &pci)
        .into_iter()
        .map(|member| bind_member(&mut writer, member))
        .collect::<Result<_, _>>()?;
    Ok(Bound {
        device: *device,
        iommu_group,
        members,
        writes: writer.writes,
    })
}

/// Gives `device` and the other endpoints of its IOMMU group back to the
/// host: per member bound to `vfio-pci`, equivalent to
/// `echo ADDR > /sys/bus/pci/drivers/vfio-pci/unbind; echo > …/driver_override;
/// echo ADDR > /sys/bus/pci/drivers_probe`, then, if no host driver took
/// it, `echo ADDR > /sys/bus/pci/drivers/ORIGINAL/bind`.
pub fn unbind(root: &HostRoot, device: &PciAddress) -> Result<Unbound, PassthroughError> {
    let host = HostState::read(root);
    let Some(NetDevice {
        bus: Bus::Pci(pci), ..
    }) = devices::pci_device(root, *device, &host)
    else {
        return Err(PassthroughError::NoDevice {
            device: *device,
            path: devices::pci_dir(root, *device),
        });
    };
    let own = devices::group_member(root, *device);
    let mut writer = Writer {
        root,
        writes: Vec::new(),
    };
    let members = endpoints(own, &pci)
        .into_iter()
        .map(|member| unbind_member(&mut writer, member))
        .collect::<Result<_, _>>()?;
    Ok(Unbound {
        device: *device,
        members,
        writes: writer.writes,
    })
}

/// The device as a PCI network controller that can be passed through,
/// or every reason it cannot.
fn checked_nic(
    root: &HostRoot,
    device: PciAddress,
) -> Result<(PciInfo, GroupMember), PassthroughError> {
    let refuse = |reasons: Vec<String>| PassthroughError::Refused { device, reasons };
    let host = HostState::read(root);
    let Some(found) = devices::pci_device(root, device, &host) else {
        let path = devices::pci_dir(root, device);
        return Err(refuse(vec![format!(
            "there is no such PCI device (no {})",
            path.display()
        )]));
    };
    let Bus::Pci(pci) = found.bus else {
        return Err(refuse(vec!["it is not a PCI device".to_owned()]));
    };
    if !pci.class.is_some_and(|c| c.is_network()) {
        let class = pci
            .class
            .map_or_else(|| "unknown".to_owned(), |c| c.to_string());
        return Err(refuse(vec![format!(
            "it is not a network controller (class {class})"
        )]));
    }
    let mut reasons = found.passable;
    if !root.is_dir(&root.sys(&format!("bus/pci/drivers/{VFIO_DRIVER}"))) {
        reasons.push(format!(
            "{VFIO_DRIVER} is not loaded: modprobe {VFIO_DRIVER}"
        ));
    }
    if !reasons.is_empty() {
        return Err(refuse(reasons));
    }
    Ok((pci, devices::group_member(root, device)))
}

/// The device and the other members of its group that VFIO takes, by
/// address; bridges stay with the host.
fn endpoints(own: GroupMember, pci: &PciInfo) -> Vec<GroupMember> {
    let mut members: Vec<GroupMember> = pci
        .group
        .iter()
        .filter(|m| !m.bridge)
        .cloned()
        .chain([own])
        .collect();
    members.sort_by_key(|m| m.address);
    members
}

fn bind_member(
    writer: &mut Writer<'_>,
    member: GroupMember,
) -> Result<MemberBound, PassthroughError> {
    let device = member.address;
    let previous = member.driver;
    if previous.as_deref() == Some(VFIO_DRIVER) {
        return Ok(MemberBound {
            address: device,
            driver: previous.clone(),
            previous_driver: previous,
            changed: false,
        });
    }
    let root = writer.root;
    let dir = devices::pci_dir(root, device);
    if let Some(driver) = &previous {
        // Remembered before anything changes, so a failure later still
        // leaves the way back on disk.
        root.save(&state_file(root, device), &format!("{driver}\n"))
            .map_err(|source| PassthroughError::RecordDriver {
                device,
                driver: driver.clone(),
                source,
            })?;
    }
    // The override goes first so that nothing re-probes the device into
    // its old driver between the unbind and the probe.
    writer
        .write(&dir.join("driver_override"), VFIO_DRIVER)
        .map_err(|source| PassthroughError::Override { device, source })?;
    if let Some(driver) = &previous {
        writer
            .write(&dir.join("driver/unbind"), &device.to_string())
            .map_err(|source| PassthroughError::Unbind {
                device,
                driver: driver.clone(),
                source,
            })?;
    }
    probe(writer, device)?;
    Ok(MemberBound {
        address: device,
        previous_driver: previous,
        changed: true,
        driver: root.link_name(&dir.join("driver")),
    })
}

fn unbind_member(
    writer: &mut Writer<'_>,
    member: GroupMember,
) -> Result<MemberUnbound, PassthroughError> {
    let device = member.address;
    let root = writer.root;
    let dir = devices::pci_dir(root, device);
    let state = state_file(root, device);
    let return_to = root.read(&state).filter(|d| is_driver_name(d));
    let on_vfio = member.driver.as_deref() == Some(VFIO_DRIVER);
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
        let unbind = root.sys(&format!("bus/pci/drivers/{VFIO_DRIVER}/unbind"));
        writer
            .write(&unbind, &device.to_string())
            .map_err(|source| PassthroughError::Unbind {
                device,
                driver: VFIO_DRIVER.to_owned(),
                source,
            })?;
    }
    // A lone newline clears the override.
    writer
        .write(&dir.join("driver_override"), "\n")
        .map_err(|source| PassthroughError::Override { device, source })?;
    probe(writer, device)?;
    let mut driver = root.link_name(&dir.join("driver"));
    if let Some(original) = &return_to {
        if needs_restore(driver.as_deref()) {
            restore(writer, device, original)?;
            driver = root.link_name(&dir.join("driver"));
        }
    }
    root.remove(&state)
        .map_err(|source| PassthroughError::ForgetDriver { device, source })?;
    Ok(MemberUnbound {
        address: device,
        return_to,
        changed: true,
        driver,
    })
}

/// After the probe, a device with no driver (its driver does not probe
/// by itself, e.g. it was bound with `new_id`) or still with `vfio-pci`
/// has not gone home; binding it explicitly either fixes that or fails
/// with the kernel's reason.
fn needs_restore(driver: Option<&str>) -> bool {
    driver.is_none_or(|d| d == VFIO_DRIVER)
}

fn restore(
    writer: &mut Writer<'_>,
    device: PciAddress,
    original: &str,
) -> Result<(), PassthroughError> {
    let bind = writer.root.sys(&format!("bus/pci/drivers/{original}/bind"));
    if !writer.root.exists(&bind) {
        // Its module is not loaded; the next modprobe will pick it up.
        return Ok(());
    }
    writer
        .write(&bind, &device.to_string())
        .map_err(|source| PassthroughError::Restore {
            device,
            driver: original.to_owned(),
            source,
        })
}

fn probe(writer: &mut Writer<'_>, device: PciAddress) -> Result<(), PassthroughError> {
    let path = writer.root.sys("bus/pci/drivers_probe");
    writer
        .write(&path, &device.to_string())
        .map_err(|source| PassthroughError::Probe { device, source })
}

/// `/run/netvm/passthrough/<address>`: the member's original driver.
fn state_file(root: &HostRoot, device: PciAddress) -> PathBuf {
    root.run(&format!("netvm/passthrough/{device}"))
}

/// The state file names a directory under `/sys/bus/pci/drivers`; a
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
        assert!(needs_restore(None));
        assert!(needs_restore(Some(VFIO_DRIVER)));
        assert!(!needs_restore(Some("iwlwifi")));
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
