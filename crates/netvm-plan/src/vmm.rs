//! The network and passthrough arguments each VMM needs for one VM
//! (`netvm host vmm-args`): the VM's TAP and MAC, and for the net-vm the
//! uplink — a PCI NIC by VFIO, a USB NIC by vendor:product (QEMU only),
//! or in dev mode a second TAP. Pure.

use crate::host::HostPlan;
use netvm_description::values::MacAddr;
use netvm_description::{System, UplinkDevice};
use serde::Serialize;

/// A virtual machine monitor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Vmm {
    /// QEMU (`qemu-system-x86_64`, q35 or pc; virtio-net-pci).
    Qemu,
    /// Cloud Hypervisor.
    CloudHypervisor,
    /// crosvm.
    Crosvm,
}

impl std::fmt::Display for Vmm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Vmm::Qemu => "qemu",
            Vmm::CloudHypervisor => "cloud-hypervisor",
            Vmm::Crosvm => "crosvm",
        })
    }
}

/// Why no arguments can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VmmError {
    /// No VM of that name.
    #[error("no VM called {name} in the description (VMs: {known})")]
    UnknownVm {
        /// The name asked for.
        name: String,
        /// The names there are.
        known: String,
    },
    /// The VMM cannot attach a USB device from its command line.
    #[error("{vmm} cannot pass the USB NIC {id} through from its command line: use --vmm qemu, or pass the USB controller's PCI address instead")]
    NoUsb {
        /// The VMM.
        vmm: Vmm,
        /// The device.
        id: String,
    },
}

/// One virtual NIC.
struct Nic<'a> {
    id: &'static str,
    tap: &'a str,
    mac: Option<MacAddr>,
}

/// The arguments for `vm` under `vmm`, one argv element each.
pub fn args(system: &System, host: &HostPlan, vm: &str, vmm: Vmm) -> Result<Vec<String>, VmmError> {
    let port = host.port(vm).ok_or_else(|| VmmError::UnknownVm {
        name: vm.to_owned(),
        known: host
            .ports
            .iter()
            .map(|p| p.vm.as_str())
            .collect::<Vec<_>>()
            .join(", "),
    })?;
    let mut nics = vec![Nic {
        id: "netvm-int",
        tap: &port.name,
        mac: Some(port.mac),
    }];
    let is_netvm = vm == system.netvm.name.as_str();
    if let (true, Some(up)) = (is_netvm, &host.uplink_bridge) {
        nics.push(Nic {
            id: "netvm-up",
            tap: &up.netvm_port,
            mac: system.netvm.uplink.mac,
        });
    }
    let device = if is_netvm {
        Some(&system.netvm.uplink.device)
    } else {
        None
    };
    let mut out = Vec::new();
    match vmm {
        Vmm::Qemu => qemu(&mut out, &nics, device),
        Vmm::CloudHypervisor | Vmm::Crosvm => other(&mut out, vmm, &nics, device)?,
    }
    Ok(out)
}

fn mac_option(mac: Option<MacAddr>) -> String {
    mac.map(|m| format!(",mac={m}")).unwrap_or_default()
}

fn qemu(out: &mut Vec<String>, nics: &[Nic<'_>], device: Option<&UplinkDevice>) {
    for nic in nics {
        out.push("-netdev".into());
        out.push(format!(
            "tap,id={},ifname={},script=no,downscript=no",
            nic.id, nic.tap
        ));
        out.push("-device".into());
        out.push(format!(
            "virtio-net-pci,netdev={}{}",
            nic.id,
            mac_option(nic.mac)
        ));
    }
    match device {
        Some(UplinkDevice::Pci(address)) => {
            out.push("-device".into());
            out.push(format!("vfio-pci,host={address}"));
        }
        Some(UplinkDevice::Usb(id)) => {
            out.push("-device".into());
            out.push("qemu-xhci,id=netvm-xhci".into());
            out.push("-device".into());
            out.push(format!(
                "usb-host,bus=netvm-xhci.0,vendorid=0x{:04x},productid=0x{:04x}",
                id.vendor, id.product
            ));
        }
        Some(UplinkDevice::Interface(_)) | None => {}
    }
}

fn other(
    out: &mut Vec<String>,
    vmm: Vmm,
    nics: &[Nic<'_>],
    device: Option<&UplinkDevice>,
) -> Result<(), VmmError> {
    let crosvm = vmm == Vmm::Crosvm;
    if !crosvm {
        // cloud-hypervisor takes every NIC after one --net.
        out.push("--net".into());
    }
    for nic in nics {
        if crosvm {
            out.push("--net".into());
            out.push(format!("tap-name={}{}", nic.tap, mac_option(nic.mac)));
        } else {
            out.push(format!("tap={}{}", nic.tap, mac_option(nic.mac)));
        }
    }
    match device {
        Some(UplinkDevice::Pci(address)) => {
            let path = format!("/sys/bus/pci/devices/{address}/");
            if crosvm {
                out.push("--vfio".into());
                out.push(path);
            } else {
                out.push("--device".into());
                out.push(format!("path={path}"));
            }
        }
        Some(UplinkDevice::Usb(id)) => {
            return Err(VmmError::NoUsb {
                vmm,
                id: id.to_string(),
            })
        }
        Some(UplinkDevice::Interface(_)) | None => {}
    }
    Ok(())
}

/// `args` as one shell line (our arguments hold no characters a shell
/// would treat specially except `,` and `=`, which need no quoting).
pub fn shell_line(args: &[String]) -> String {
    args.join(" ")
}
