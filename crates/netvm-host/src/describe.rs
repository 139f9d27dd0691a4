//! `netvm host devices --describe`: the `[netvm.uplink]` stanza a user
//! pastes into their description for each NIC the host could pass
//! through, and one comment line for each NIC that cannot.
//!
//! Pure: it renders what [`devices::list`](crate::devices::list) found.
//! The text is TOML that can be pasted whole: the first passable NIC's
//! stanza is live, every other passable NIC's is commented out (uncomment
//! one and comment the first to choose it), and blockers are comments.
//! "First" is a NIC already bound to `vfio-pci` or `vfio-platform` (the
//! user chose it before), else the first in the listing (PCI by address,
//! then USB by port, then platform devices by name).

use crate::devices::{Bus, NetDevice, UsbInfo, VFIO_DRIVER, VFIO_PLATFORM_DRIVER};
use netvm_description::values::{MacAddr, PciAddress, PciId, PlatformDevice, UsbId};
use serde::Serialize;

/// The keys of one `[netvm.uplink]`: the device and how the Net VM finds
/// it. Serialised as the JSON form of the same table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UplinkStanza {
    /// `pci`: the address on the host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pci: Option<PciAddress>,
    /// `pci_id`: how the Net VM finds a PCI NIC.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pci_id: Option<PciId>,
    /// `usb`: vendor:product.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usb: Option<UsbId>,
    /// `platform`: the platform device's kernel name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformDevice>,
    /// `mac`: the card's own MAC, when the host still shows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mac: Option<MacAddr>,
}

impl UplinkStanza {
    /// Only `mac` (the rest is the device's).
    fn mac(mac: Option<MacAddr>) -> Self {
        UplinkStanza {
            pci: None,
            pci_id: None,
            usb: None,
            platform: None,
            mac,
        }
    }

    /// `key = "value"` lines, in the order the description documents.
    fn lines(&self) -> Vec<String> {
        let mut lines = vec!["[netvm.uplink]".to_owned()];
        let mut key = |name: &str, value: Option<String>| {
            if let Some(value) = value {
                lines.push(format!("{name} = \"{value}\""));
            }
        };
        key("pci", self.pci.map(|v| v.to_string()));
        key("pci_id", self.pci_id.map(|v| v.to_string()));
        key("usb", self.usb.map(|v| v.to_string()));
        key("platform", self.platform.as_ref().map(|v| v.to_string()));
        key("mac", self.mac.map(|v| v.to_string()));
        lines
    }
}

/// One device's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Described {
    /// `pci` or `usb`.
    pub bus: &'static str,
    /// PCI address or USB bus-port.
    pub address: String,
    /// One line naming it: id, driver, interfaces, IOMMU group.
    pub summary: String,
    /// What to paste, when it can be passed through.
    pub uplink: Option<UplinkStanza>,
    /// Why it cannot; empty when it can.
    pub cannot_pass: Vec<String>,
    /// Whether its stanza is the live one in the text.
    pub chosen: bool,
}

/// Every device's verdict, the chosen one (if any) first.
pub fn describe(devices: &[NetDevice]) -> Vec<Described> {
    let mut ranked: Vec<(bool, bool, Described)> = devices
        .iter()
        .map(|device| {
            let d = one(device);
            let vfio = matches!(
                device.driver.as_deref(),
                Some(VFIO_DRIVER | VFIO_PLATFORM_DRIVER)
            );
            (d.uplink.is_none(), !vfio, d)
        })
        .collect();
    // Stable: among equals the listing's order stays.
    ranked.sort_by_key(|(blocked, not_vfio, _)| (*blocked, *not_vfio));
    let mut out: Vec<Described> = ranked.into_iter().map(|(_, _, d)| d).collect();
    if let Some(first) = out.first_mut().filter(|d| d.uplink.is_some()) {
        first.chosen = true;
    }
    out
}

fn one(device: &NetDevice) -> Described {
    let mut cannot_pass = device.passable.clone();
    let uplink = match &device.bus {
        Bus::Pci(pci) => Some(UplinkStanza {
            pci: Some(pci.address),
            pci_id: pci.id,
            ..UplinkStanza::mac(device.mac)
        }),
        Bus::Platform(platform) => Some(UplinkStanza {
            platform: Some(platform.name.clone()),
            ..UplinkStanza::mac(device.mac)
        }),
        Bus::Usb(usb) => match usb.id {
            Some(id) => Some(UplinkStanza {
                usb: Some(id),
                ..UplinkStanza::mac(device.mac)
            }),
            None => {
                cannot_pass.push("its vendor:product cannot be read".to_owned());
                None
            }
        },
    };
    Described {
        bus: device.bus_name(),
        address: device.address(),
        summary: summary(device),
        uplink: uplink.filter(|_| cannot_pass.is_empty()),
        cannot_pass,
        chosen: false,
    }
}

/// `0000:03:00.0 (8086:2723, iwlwifi, wlp3s0, IOMMU group 7)`.
fn summary(device: &NetDevice) -> String {
    let mut parts = vec![device.id().unwrap_or_else(|| "id unknown".to_owned())];
    parts.push(
        device
            .driver
            .clone()
            .unwrap_or_else(|| "no driver".to_owned()),
    );
    if !device.interfaces.is_empty() {
        parts.push(device.interfaces.join(","));
    }
    if let Some(group) = device.iommu_group() {
        parts.push(format!("IOMMU group {group}"));
    }
    if let Bus::Usb(UsbInfo {
        product: Some(product),
        ..
    }) = &device.bus
    {
        parts.push(format!("{product:?}"));
    }
    format!("{} ({})", device.address(), parts.join(", "))
}

/// The TOML text: a header, the chosen stanza, the commented
/// alternatives, then one comment line per device that cannot pass.
pub fn text(described: &[Described]) -> String {
    let mut out =
        String::from("# netvm host devices --describe: paste into the system description.\n");
    for d in described.iter().filter(|d| d.uplink.is_some()) {
        let Some(stanza) = &d.uplink else { continue };
        out.push('\n');
        if d.chosen {
            out.push_str(&format!("# {} {}\n", d.bus, comment_safe(&d.summary)));
            for line in stanza.lines() {
                out.push_str(&format!("{line}\n"));
            }
        } else {
            out.push_str(&format!(
                "# or {} {} (uncomment to use it instead):\n",
                d.bus,
                comment_safe(&d.summary)
            ));
            for line in stanza.lines() {
                out.push_str(&format!("# {line}\n"));
            }
        }
    }
    let blocked: Vec<&Described> = described.iter().filter(|d| d.uplink.is_none()).collect();
    if !blocked.is_empty() {
        out.push('\n');
    }
    for d in blocked {
        out.push_str(&format!(
            "# {} cannot pass: {}\n",
            comment_safe(&d.summary),
            comment_safe(&d.cannot_pass.join("; "))
        ));
    }
    out
}

/// A comment stays one line whatever sysfs said.
fn comment_safe(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Whether any device can be passed through.
pub fn any_passable(described: &[Described]) -> bool {
    described.iter().any(|d| d.chosen)
}
