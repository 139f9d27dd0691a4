//! Which network interface inside the Net VM is which. The VMM names
//! nothing: the guest kernel calls its NICs `eth0`, `eth1`, `enp0s3`… in
//! probe order. The internal NIC is the one with the net-vm's MAC from
//! the description; the uplink is the one named as described, or with
//! the uplink's MAC, or on the passed-through PCI address, or with the
//! USB vendor and product. This decides the renames to `ethint0` and
//! `uplink0`; pure, given what the guest's sysfs says.

use crate::datapath::interfaces;
use netvm_description::values::{MacAddr, PciAddress, UsbId};
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
    /// The USB device it sits on.
    pub usb: Option<UsbId>,
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

/// The renames that give the internal NIC and the uplink the names the
/// data plane uses; none when they have them already.
pub fn renames(system: &System, nics: &[Nic]) -> Result<Vec<Rename>, FindError> {
    let names = interfaces(system);
    let (internal, uplink) = (names.internal.to_string(), names.uplink.to_string());
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
    if has(&uplink) {
        return Ok(out);
    }
    let device = &system.netvm.uplink.device;
    let (what, matches): (String, Box<dyn Fn(&Nic) -> bool>) =
        match (system.netvm.uplink.mac, device) {
            (Some(m), _) => (
                format!("MAC {m}"),
                Box::new(move |n: &Nic| n.mac == Some(m)),
            ),
            (None, UplinkDevice::Pci(a)) => {
                let a = *a;
                (
                    format!("PCI {a}"),
                    Box::new(move |n: &Nic| n.pci == Some(a)),
                )
            }
            (None, UplinkDevice::Usb(u)) => {
                let u = *u;
                (
                    format!("USB {u}"),
                    Box::new(move |n: &Nic| n.usb == Some(u)),
                )
            }
            (None, UplinkDevice::Interface(name)) => {
                (format!("interface {name}"), Box::new(|_: &Nic| false))
            }
        };
    let candidates: Vec<&Nic> = nics
        .iter()
        .filter(|n| n.name != internal && n.mac != Some(mac) && matches(n))
        .collect();
    match candidates.as_slice() {
        [one] => out.push(Rename {
            from: one.name.clone(),
            to: uplink,
        }),
        [] => return Err(FindError::NoUplink { name: uplink, what }),
        [first, second, ..] => {
            return Err(FindError::Ambiguous {
                first: first.name.clone(),
                second: second.name.clone(),
                what,
            })
        }
    }
    Ok(out)
}
