//! The network and passthrough arguments each VMM needs for one VM
//! (`netvm host vmm-args`): the VM's TAP and MAC, and for the net-vm the
//! uplink — a PCI NIC by VFIO, a USB NIC by vendor:product (QEMU only),
//! a platform (device-tree) NIC by vfio-platform (crosvm only), or in dev
//! mode a second TAP. Pure.

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
    /// The VMM cannot pass a platform (device-tree) device through.
    #[error("{vmm} cannot pass the platform NIC {name} through: {why}; use --vmm crosvm (docs/host.md, Platform NICs)")]
    NoPlatform {
        /// The VMM.
        vmm: Vmm,
        /// The device.
        name: String,
        /// What the VMM lacks.
        why: &'static str,
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
            mac: system.netvm.uplink().mac,
        });
    }
    // Every uplink's device goes to the net-vm (several uplinks: a
    // backup, a dongle the agent finds when it is plugged in).
    let devices: Vec<&UplinkDevice> = if is_netvm {
        system.netvm.uplinks.iter().map(|u| &u.device).collect()
    } else {
        Vec::new()
    };
    let mut out = Vec::new();
    for device in &devices {
        if let (UplinkDevice::Platform(name), Some(why)) = (device, no_platform(vmm)) {
            return Err(VmmError::NoPlatform {
                vmm,
                name: name.to_string(),
                why,
            });
        }
    }
    match vmm {
        Vmm::Qemu => qemu(&mut out, &nics, &devices),
        Vmm::CloudHypervisor | Vmm::Crosvm => other(&mut out, vmm, &nics, &devices)?,
    }
    Ok(out)
}

/// Why `vmm` cannot take a platform device, if it cannot. QEMU's
/// `vfio-platform` works only on ARM `virt` machines, builds the guest's
/// device-tree node only for the device types its sysbus-fdt code knows
/// (Calxeda XGMAC, AMD XGBE), and was deprecated in QEMU 10.0 and removed
/// in 10.2; cloud-hypervisor's `--device` takes PCI functions only.
fn no_platform(vmm: Vmm) -> Option<&'static str> {
    match vmm {
        Vmm::Qemu => Some(
            "its vfio-platform device (ARM virt machines only, removed in QEMU 10.2) describes only Calxeda XGMAC and AMD XGBE NICs to the guest",
        ),
        Vmm::CloudHypervisor => Some("its --device passes PCI functions only"),
        Vmm::Crosvm => None,
    }
}

fn mac_option(mac: Option<MacAddr>) -> String {
    mac.map(|m| format!(",mac={m}")).unwrap_or_default()
}

fn qemu(out: &mut Vec<String>, nics: &[Nic<'_>], devices: &[&UplinkDevice]) {
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
    let mut xhci = false;
    for device in devices {
        match device {
            UplinkDevice::Pci(address) => {
                out.push("-device".into());
                out.push(format!("vfio-pci,host={address}"));
            }
            UplinkDevice::Usb(id) => {
                if !xhci {
                    out.push("-device".into());
                    out.push("qemu-xhci,id=netvm-xhci".into());
                    xhci = true;
                }
                out.push("-device".into());
                out.push(format!(
                    "usb-host,bus=netvm-xhci.0,vendorid=0x{:04x},productid=0x{:04x}",
                    id.vendor, id.product
                ));
            }
            // Refused before: see `no_platform`.
            UplinkDevice::Platform(_) | UplinkDevice::Interface(_) => {}
        }
    }
}

fn other(
    out: &mut Vec<String>,
    vmm: Vmm,
    nics: &[Nic<'_>],
    devices: &[&UplinkDevice],
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
    for device in devices {
        match device {
            UplinkDevice::Pci(address) => {
                let path = format!("/sys/bus/pci/devices/{address}/");
                if crosvm {
                    out.push("--vfio".into());
                    out.push(path);
                } else {
                    out.push("--device".into());
                    out.push(format!("path={path}"));
                }
            }
            UplinkDevice::Usb(id) => {
                return Err(VmmError::NoUsb {
                    vmm,
                    id: id.to_string(),
                })
            }
            UplinkDevice::Platform(name) => {
                // crosvm tells a platform device from a PCI one by what
                // VFIO reports (`--vfio-platform` is its older, deprecated
                // spelling); the guest's device-tree node comes from the
                // integrator's `--device-tree-overlay`.
                out.push("--vfio".into());
                out.push(format!("/sys/bus/platform/devices/{name}/"));
            }
            UplinkDevice::Interface(_) => {}
        }
    }
    Ok(())
}

/// `args` as one shell line (our arguments hold no characters a shell
/// would treat specially except `,` and `=`, which need no quoting).
pub fn shell_line(args: &[String]) -> String {
    args.join(" ")
}
