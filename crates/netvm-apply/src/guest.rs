//! Inside the Net VM: reads what sysfs says of each network interface
//! (MAC, the PCI function or USB device under it) and renames interfaces to the
//! names the data plane uses (`netvm_plan::guest` decides which).

use crate::links::{connect, index_of, refused, runtime, LinkError};
use netvm_description::values::{PciAddress, PciId, UsbId};
use netvm_plan::guest::{Nic, Rename};
use rtnetlink::LinkUnspec;
use std::path::Path;

/// What sysfs says of the devices an interface sits on.
#[derive(Debug, Default)]
struct Under {
    pci: Option<PciAddress>,
    pci_id: Option<PciId>,
    usb: Option<UsbId>,
    platform: Option<String>,
}

/// The PCI function, USB device and platform device `dir` sits on,
/// walking up from it: a virtio NIC's `device` is `virtioN`, whose parent
/// is the PCI function; a USB NIC's is the USB interface, whose parent has
/// `idVendor`; a platform device's `subsystem` is `platform`. The first
/// (nearest) of each wins.
fn devices(dir: &Path) -> Under {
    let mut under = Under::default();
    let Ok(mut path) = std::fs::canonicalize(dir) else {
        return under;
    };
    let read = |path: &Path, f: &str| std::fs::read_to_string(path.join(f)).ok();
    loop {
        if under.usb.is_none() {
            if let (Some(v), Some(p)) = (read(&path, "idVendor"), read(&path, "idProduct")) {
                under.usb = format!("{}:{}", v.trim(), p.trim()).parse().ok();
            }
        }
        if under.platform.is_none() {
            let subsystem = std::fs::read_link(path.join("subsystem")).ok();
            if subsystem.is_some_and(|s| s.file_name().is_some_and(|n| n == "platform")) {
                under.platform = path.file_name().and_then(|n| n.to_str()).map(str::to_owned);
            }
        }
        if under.pci.is_none() {
            let name = path.file_name().and_then(|n| n.to_str());
            let address = name
                .filter(|n| n.matches(':').count() == 2)
                .and_then(|n| n.parse::<PciAddress>().ok());
            if let (Some(address), Some(vendor)) = (address, read(&path, "vendor")) {
                under.pci = Some(address);
                under.pci_id = read(&path, "device").and_then(|device| pci_id(&vendor, &device));
            }
        }
        if !path.pop() || path.as_os_str() == "/sys/devices" || path.as_os_str() == "/" {
            return under;
        }
    }
}

/// A PCI id from sysfs's `vendor` and `device` files (`0x1af4\n`).
fn pci_id(vendor: &str, device: &str) -> Option<PciId> {
    let hex = |s: &str| s.trim().trim_start_matches("0x").to_owned();
    format!("{}:{}", hex(vendor), hex(device)).parse().ok()
}

/// Every interface under `sys`/class/net but loopback.
pub fn nics(sys: &Path) -> std::io::Result<Vec<Nic>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(sys.join("class/net"))?.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name == "lo" {
            continue;
        }
        let dir = entry.path();
        let mac = std::fs::read_to_string(dir.join("address"))
            .ok()
            .and_then(|m| m.trim().parse().ok());
        let under = devices(&dir.join("device"));
        out.push(Nic {
            name,
            mac,
            pci: under.pci,
            pci_id: under.pci_id,
            usb: under.usb,
            platform: under.platform,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Renames each interface (set down first: the kernel renames only
/// interfaces that are down; the data plane brings them up).
pub fn rename(renames: &[Rename]) -> Result<(), LinkError> {
    if renames.is_empty() {
        return Ok(());
    }
    runtime()?.block_on(async {
        let handle = connect()?;
        for r in renames {
            let index = index_of(&handle, &r.from).await?;
            handle
                .link()
                .set(
                    LinkUnspec::new_with_index(index)
                        .down()
                        .name(r.to.clone())
                        .build(),
                )
                .execute()
                .await
                .map_err(refused(
                    format!("ip link set {} name {}", r.from, r.to),
                    &r.from,
                ))?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A synthetic sysfs: eth0 a virtio NIC (`virtio0`) on PCI function
    /// 0000:00:14.3, 1af4:1041; eth1 a USB NIC 0bda:8153; eth2 on the
    /// platform device 2490000.ethernet; lo.
    fn tree() -> std::path::PathBuf {
        let root = std::env::temp_dir().join(format!("netvm-guest-sysfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let pci = root.join("devices/pci0000:00/0000:00:14.3");
        let virtio = pci.join("virtio0");
        let usb = root.join("devices/usb1/1-1");
        let usb_if = usb.join("1-1:1.0");
        let platform = root.join("devices/platform/bus@0/2490000.ethernet");
        std::fs::create_dir_all(root.join("bus/platform")).expect("bus");
        std::fs::create_dir_all(&platform).expect("platform");
        std::os::unix::fs::symlink(root.join("bus/platform"), platform.join("subsystem"))
            .expect("subsystem");
        std::fs::create_dir_all(root.join("class/net/eth2")).expect("eth2");
        std::os::unix::fs::symlink(&platform, root.join("class/net/eth2/device")).expect("link");
        for dir in [
            &virtio,
            &usb_if,
            &root.join("class/net/eth0"),
            &root.join("class/net/eth1"),
            &root.join("class/net/lo"),
        ] {
            std::fs::create_dir_all(dir).expect("dir");
        }
        std::fs::write(pci.join("vendor"), "0x1af4\n").expect("vendor");
        std::fs::write(pci.join("device"), "0x1041\n").expect("device");
        std::fs::write(usb.join("idVendor"), "0bda\n").expect("idVendor");
        std::fs::write(usb.join("idProduct"), "8153\n").expect("idProduct");
        std::fs::write(root.join("class/net/eth0/address"), "52:54:00:12:34:56\n").expect("mac");
        std::fs::write(root.join("class/net/eth1/address"), "00:e0:4c:68:00:01\n").expect("mac");
        std::os::unix::fs::symlink(&virtio, root.join("class/net/eth0/device")).expect("link");
        std::os::unix::fs::symlink(&usb_if, root.join("class/net/eth1/device")).expect("link");
        root
    }

    #[test]
    fn nics_carry_their_mac_and_the_pci_or_usb_device_above_them() {
        let root = tree();
        let nics = nics(&root).expect("listed");
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(nics.len(), 3, "{nics:?}");
        assert_eq!(nics[2].platform.as_deref(), Some("2490000.ethernet"));
        assert_eq!((nics[2].pci, nics[2].usb), (None, None));
        assert_eq!(nics[0].platform, None);
        assert_eq!(nics[0].name, "eth0");
        assert_eq!(
            nics[0].pci.map(|p| p.to_string()).as_deref(),
            Some("0000:00:14.3")
        );
        assert_eq!(
            nics[0].pci_id.map(|p| p.to_string()).as_deref(),
            Some("1af4:1041")
        );
        assert_eq!(nics[0].usb, None);
        assert_eq!(
            nics[0].mac.map(|m| m.to_string()).as_deref(),
            Some("52:54:00:12:34:56")
        );
        assert_eq!(
            nics[1].usb.map(|u| u.to_string()).as_deref(),
            Some("0bda:8153")
        );
        assert_eq!(nics[1].pci, None);
        assert_eq!(nics[1].pci_id, None);
    }
}
