//! Inside the Net VM: reads what sysfs says of each network interface
//! (MAC, the PCI or USB device under it) and renames interfaces to the
//! names the data plane uses (`netvm_plan::guest` decides which).

use crate::links::{connect, index_of, refused, runtime, LinkError};
use netvm_plan::guest::{Nic, Rename};
use rtnetlink::LinkUnspec;
use std::path::Path;

/// The PCI address or USB id of the device `dir` sits on (walking up).
fn devices(
    dir: &Path,
) -> (
    Option<netvm_description::values::PciAddress>,
    Option<netvm_description::values::UsbId>,
) {
    let Ok(mut path) = std::fs::canonicalize(dir) else {
        return (None, None);
    };
    let (mut pci, mut usb) = (None, None);
    loop {
        if usb.is_none() {
            let id = |f: &str| std::fs::read_to_string(path.join(f)).ok();
            if let (Some(v), Some(p)) = (id("idVendor"), id("idProduct")) {
                usb = format!("{}:{}", v.trim(), p.trim()).parse().ok();
            }
        }
        if pci.is_none() {
            if let Some(name) = path.file_name().and_then(|n| n.to_str()) {
                if path.join("vendor").exists() && name.matches(':').count() == 2 {
                    pci = name.parse().ok();
                }
            }
        }
        if !path.pop() || path.as_os_str() == "/sys/devices" || path.as_os_str() == "/" {
            return (pci, usb);
        }
    }
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
        let (pci, usb) = devices(&dir.join("device"));
        out.push(Nic {
            name,
            mac,
            pci,
            usb,
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
