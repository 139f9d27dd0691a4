//! Which network interface inside the Net VM is which. The VMM names
//! nothing: the guest kernel calls its NICs `eth0`, `eth1`, `enp0s3`… in
//! probe order. The internal NIC is the one with the net-vm's MAC from
//! the description; the uplink is the one named as described, else the
//! one with the uplink's MAC, else (a PCI uplink) the one on a PCI
//! function with the described vendor:device (`pci_id`), else the one on
//! the host's PCI address, or (a USB uplink) the one with the USB vendor
//! and product, or (a platform uplink) the one on the platform device of
//! that name, which holds only when the guest's device tree names the
//! node as the host's does (describe `mac` otherwise). The host's PCI address holds only when the VMM places the
//! passed-through function at the same address in the guest, which QEMU,
//! cloud-hypervisor and crosvm do not do by default: describe `mac` or
//! `pci_id` for real hardware. Among NICs other than the internal one
//! (neither named like it nor with the net-vm's MAC): the internal NIC is
//! virtio too, and may share a passed-through virtio NIC's vendor:device.
//! This decides the renames to `ethint0` and `uplink0` (`uplink1`, ... for
//! further uplinks, which may also appear later: [`uplink_for`]); pure,
//! given what the guest's sysfs says.

use crate::datapath::interfaces;
use netvm_description::values::{MacAddr, PciAddress, PciId, UsbId};
use netvm_description::{System, UplinkDevice};

/// What the guest's sysfs says of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nic {
    /// Its current name.
    pub name: String,
    /// Its MAC.
    pub mac: Option<MacAddr>,
    /// The PCI device it sits on (itself or an ancestor, as for virtio).
    pub pci: Option<PciAddress>,
    /// That PCI function's vendor:device.
    pub pci_id: Option<PciId>,
    /// The USB device it sits on.
    pub usb: Option<UsbId>,
    /// The platform (device-tree) device it sits on, by its kernel name.
    pub platform: Option<String>,
}

/// One rename (`ip link set FROM name TO`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rename {
    /// The current name.
    pub from: String,
    /// The name the data plane expects.
    pub to: String,
}

/// Why an interface could not be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FindError {
    /// No interface has the net-vm's internal MAC.
    #[error("no interface is called {name} or has the net-vm's MAC {mac}")]
    NoInternal {
        /// The expected name.
        name: String,
        /// The MAC looked for.
        mac: MacAddr,
    },
    /// No interface matches the uplink.
    #[error("no interface is called {name} or is the uplink ({what})")]
    NoUplink {
        /// The expected name.
        name: String,
        /// What was looked for.
        what: String,
    },
    /// More than one interface matches the uplink.
    #[error("interfaces {first} and {second} both match the uplink ({what})")]
    Ambiguous {
        /// One.
        first: String,
        /// Another.
        second: String,
        /// What was looked for.
        what: String,
    },
}

/// What identifies the uplink.
enum Wanted {
    Mac(MacAddr),
    Pci(PciAddress),
    PciId(PciId),
    Usb(UsbId),
    Platform(String),
    /// Only its name (already looked for).
    Named(String),
}

impl Wanted {
    fn matches(&self, nic: &Nic) -> bool {
        match self {
            Wanted::Mac(m) => nic.mac == Some(*m),
            Wanted::Pci(a) => nic.pci == Some(*a),
            Wanted::PciId(id) => nic.pci_id == Some(*id),
            Wanted::Usb(u) => nic.usb == Some(*u),
            Wanted::Platform(name) => nic.platform.as_deref() == Some(name.as_str()),
            Wanted::Named(_) => false,
        }
    }
}

impl std::fmt::Display for Wanted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Wanted::Mac(m) => write!(f, "MAC {m}"),
            Wanted::Pci(a) => write!(f, "PCI {a}"),
            Wanted::PciId(id) => write!(f, "PCI id {id}"),
            Wanted::Usb(u) => write!(f, "USB {u}"),
            Wanted::Platform(name) => write!(f, "platform device {name}"),
            Wanted::Named(name) => write!(f, "interface {name}"),
        }
    }
}

/// The renames that give the internal NIC and the uplinks the names the
/// data plane uses; none when they have them already. With one uplink,
/// it must be there; with several, an uplink not plugged in yet is left
/// for [`uplink_for`] when it appears.
pub fn renames(system: &System, nics: &[Nic]) -> Result<Vec<Rename>, FindError> {
    let names = interfaces(system);
    let internal = names.internal.to_string();
    let has = |name: &str| nics.iter().any(|n| n.name == name);
    let mut out = Vec::new();
    let mac = system.netvm.endpoint.mac;
    if !has(&internal) {
        let found =
            nics.iter()
                .find(|n| n.mac == Some(mac))
                .ok_or_else(|| FindError::NoInternal {
                    name: internal.clone(),
                    mac,
                })?;
        out.push(Rename {
            from: found.name.clone(),
            to: internal.clone(),
        });
    }
    let several = system.netvm.managed_uplinks();
    for up in &system.netvm.uplinks {
        let uplink = up.name.to_string();
        if has(&uplink) {
            continue;
        }
        // Not a NIC another rename already takes, nor one already named
        // as another uplink.
        let free = |n: &&Nic| {
            !out.iter().any(|r| r.from == n.name)
                && !system
                    .netvm
                    .uplinks
                    .iter()
                    .any(|u| u.name.as_str() == n.name)
        };
        let wanted = wanted(up);
        let what = wanted.to_string();
        let candidates: Vec<&Nic> = nics
            .iter()
            .filter(|n| n.name != internal && n.mac != Some(mac) && wanted.matches(n))
            .filter(free)
            .collect();
        match candidates.as_slice() {
            [one] => out.push(Rename {
                from: one.name.clone(),
                to: uplink,
            }),
            [] if several => {}
            [] => return Err(FindError::NoUplink { name: uplink, what }),
            [first, second, ..] => {
                return Err(FindError::Ambiguous {
                    first: first.name.clone(),
                    second: second.name.clone(),
                    what,
                })
            }
        }
    }
    Ok(out)
}

/// Which uplink a NIC that appeared at run time is (hot-plug): the name
/// it must be given, if it is one the description names and no
/// interface has that name yet.
pub fn uplink_for(system: &System, nic: &Nic, present: &[String]) -> Option<String> {
    let internal = interfaces(system).internal;
    if nic.name == internal.as_str() || nic.mac == Some(system.netvm.endpoint.mac) {
        return None;
    }
    system
        .netvm
        .uplinks
        .iter()
        .find(|up| {
            up.name.as_str() == nic.name
                || (!present.iter().any(|p| p == up.name.as_str()) && wanted(up).matches(nic))
        })
        .map(|up| up.name.to_string())
}

fn wanted(up: &netvm_description::Uplink) -> Wanted {
    match (up.mac, up.pci_id, &up.device) {
        (Some(m), _, _) => Wanted::Mac(m),
        (None, Some(id), UplinkDevice::Pci(_)) => Wanted::PciId(id),
        (None, _, UplinkDevice::Pci(a)) => Wanted::Pci(*a),
        (None, _, UplinkDevice::Usb(u)) => Wanted::Usb(*u),
        (None, _, UplinkDevice::Platform(name)) => Wanted::Platform(name.to_string()),
        (None, _, UplinkDevice::Interface(name)) => Wanted::Named(name.to_string()),
    }
}
