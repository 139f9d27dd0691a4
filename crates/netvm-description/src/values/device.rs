//! Identifiers of physical network devices: PCI addresses, PCI
//! vendor:device ids, USB ids and platform (device-tree) device names.

use super::{string_value, value_error, ValueError};
use std::fmt;
use std::str::FromStr;

/// A PCI address `domain:bus:device.function`, e.g. `0000:00:14.3`; the
/// domain may be left out (`00:14.3`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciAddress {
    /// PCI domain (segment).
    pub domain: u16,
    /// Bus number.
    pub bus: u8,
    /// Device number (0..=31).
    pub device: u8,
    /// Function number (0..=7).
    pub function: u8,
}

impl FromStr for PciAddress {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || value_error!("`{text}` is not a PCI address: write it like 0000:00:14.3");
        let (head, function) = text.rsplit_once('.').ok_or_else(bad)?;
        let parts: Vec<&str> = head.split(':').collect();
        let (domain, bus, device) = match parts.as_slice() {
            [d, b, v] if d.len() == 4 => (*d, *b, *v),
            [b, v] => ("0000", *b, *v),
            _ => return Err(bad()),
        };
        if bus.len() != 2 || device.len() != 2 || function.len() != 1 {
            return Err(bad());
        }
        let hex = |s: &str| u16::from_str_radix(s, 16).map_err(|_| bad());
        let address = PciAddress {
            domain: hex(domain)?,
            bus: u8::from_str_radix(bus, 16).map_err(|_| bad())?,
            device: u8::from_str_radix(device, 16).map_err(|_| bad())?,
            function: u8::from_str_radix(function, 16).map_err(|_| bad())?,
        };
        if address.device > 0x1f || address.function > 7 {
            return Err(value_error!(
                "`{text}` is not a PCI address: device is 00-1f and function 0-7"
            ));
        }
        Ok(address)
    }
}

impl fmt::Display for PciAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{:x}",
            self.domain, self.bus, self.device, self.function
        )
    }
}

string_value!(
    PciAddress,
    "PciAddress",
    "PCI address domain:bus:device.function",
    "0000:00:14.3"
);

/// A PCI vendor:device id, four hex digits each (`1af4:1041`, a modern
/// virtio-net function); what a guest sees of a passed-through function
/// whatever address the VMM gives it. Read case-insensitively, written in
/// lower case (as `lspci -n` prints it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PciId {
    /// Vendor id.
    pub vendor: u16,
    /// Device id.
    pub device: u16,
}

impl FromStr for PciId {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || value_error!("`{text}` is not a PCI id: write vendor:device, e.g. 8086:15f3");
        let (vendor, device) = hex_pair(text).ok_or_else(bad)?;
        Ok(PciId { vendor, device })
    }
}

impl fmt::Display for PciId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.device)
    }
}

string_value!(PciId, "PciId", "PCI vendor:device id", "8086:15f3");

/// `xxxx:yyyy`, four hex digits each (no sign, no `0x`).
fn hex_pair(text: &str) -> Option<(u16, u16)> {
    let (a, b) = text.split_once(':')?;
    let hex = |s: &str| {
        (s.len() == 4 && s.bytes().all(|c| c.is_ascii_hexdigit()))
            .then(|| u16::from_str_radix(s, 16).ok())
            .flatten()
    };
    Some((hex(a)?, hex(b)?))
}

/// A USB device id `vendor:product`, four hex digits each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UsbId {
    /// Vendor id.
    pub vendor: u16,
    /// Product id.
    pub product: u16,
}

impl FromStr for UsbId {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || value_error!("`{text}` is not a USB id: write vendor:product, e.g. 0bda:8153");
        let (vendor, product) = hex_pair(text).ok_or_else(bad)?;
        Ok(UsbId { vendor, product })
    }
}

impl fmt::Display for UsbId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04x}:{:04x}", self.vendor, self.product)
    }
}

string_value!(UsbId, "UsbId", "USB vendor:product id", "0bda:8153");

/// The kernel's name of a platform device, the directory under
/// `/sys/bus/platform/devices`: for a device-tree node `<unit
/// address>.<node name>` (`2490000.ethernet`, `5b040000.ethernet`).
/// Letters, digits and `, . _ + - : @` (ACPI names such as `AMDI8001:00`
/// pass too), 1 to 64 of them, never `.` or `..`, so it is always one
/// path component.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PlatformDevice(String);

/// The longest platform device name accepted.
const PLATFORM_NAME_MAX: usize = 64;

impl PlatformDevice {
    /// The name as the kernel writes it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for PlatformDevice {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let allowed = |c: char| c.is_ascii_alphanumeric() || ",._+-:@".contains(c);
        let ok = (1..=PLATFORM_NAME_MAX).contains(&text.len())
            && text.chars().all(allowed)
            && text.chars().any(|c| c.is_ascii_alphanumeric());
        if !ok {
            return Err(value_error!(
                "`{text}` is not a platform device name: write the kernel's name of the device-tree node as in /sys/bus/platform/devices, e.g. 2490000.ethernet (letters, digits and , . _ + - : @; at most {PLATFORM_NAME_MAX})"
            ));
        }
        Ok(PlatformDevice(text.to_owned()))
    }
}

impl fmt::Display for PlatformDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

string_value!(
    PlatformDevice,
    "PlatformDevice",
    "platform device name <unit address>.<node name>, as in /sys/bus/platform/devices",
    "2490000.ethernet"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pci_addresses() {
        let a: PciAddress = "0000:00:14.3".parse().expect("valid");
        assert_eq!(a.to_string(), "0000:00:14.3");
        assert_eq!("00:14.3".parse::<PciAddress>(), Ok(a));
        assert!("0000:00:20.0".parse::<PciAddress>().is_err());
        assert!("0000:00:14".parse::<PciAddress>().is_err());
        assert!("0000:00:14.8".parse::<PciAddress>().is_err());
    }

    #[test]
    fn usb_ids() {
        let id: UsbId = "0BDA:8153".parse().expect("valid");
        assert_eq!(id.to_string(), "0bda:8153");
        assert!("bda:8153".parse::<UsbId>().is_err());
        assert!("+bda:8153".parse::<UsbId>().is_err());
    }

    #[test]
    fn platform_devices() {
        for good in [
            "2490000.ethernet",
            "5b040000.ethernet",
            "6800000.ethernet",
            "AMDI8001:00",
            "a",
        ] {
            let name: PlatformDevice = good.parse().expect(good);
            assert_eq!(name.to_string(), good);
        }
        let long = "a".repeat(65);
        for bad in [
            "",
            ".",
            "..",
            "...",
            "../eth",
            "2490000.ethernet/x",
            "eth 0",
            "eth\n",
            &long,
            "é.ethernet",
        ] {
            assert!(bad.parse::<PlatformDevice>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn pci_ids() {
        let id: PciId = "1AF4:1041".parse().expect("valid");
        assert_eq!(
            id,
            PciId {
                vendor: 0x1af4,
                device: 0x1041
            }
        );
        assert_eq!(id.to_string(), "1af4:1041");
        for bad in [
            "1af4",
            "1af4:041",
            "1af4:10411",
            "+af4:1041",
            "1af4:104g",
            "1af4-1041",
            "",
        ] {
            assert!(bad.parse::<PciId>().is_err(), "{bad}");
        }
    }
}
