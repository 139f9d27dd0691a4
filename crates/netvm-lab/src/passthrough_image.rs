//! The initramfs of the passthrough lab's host VM
//! (`netvm lab up --vms passthrough`): what a real host running netvm
//! has, from this machine's packages. The Debian cloud kernel's modules
//! (the virtio NIC that stands for the physical one, VFIO, bridge, TAP,
//! veth, nftables), busybox, `netvm`, `nft`, iproute2's `ip` (network
//! namespaces for the VMs), and the VMM: `qemu-system-x86_64` with the
//! libraries and the TCG accelerator module it loads and the firmware it
//! reads, at their paths. Inside: the kernel and the Net VM's own image,
//! which the host VM boots with the arguments `netvm host vmm-args`
//! prints.

use crate::cpio::Archive;
use crate::image::{self, Kernel};
use crate::netns::LabError;
use std::path::Path;

/// Where the host VM keeps what it boots the Net VM with.
pub const NETVM_KERNEL: &str = "/boot/vmlinuz";
/// The Net VM's initramfs inside the host VM.
pub const NETVM_IMAGE: &str = "/boot/net-vm.cpio";
/// The description inside the host VM (and the Net VM).
pub const DESCRIPTION: &str = "/etc/netvm/system.toml";
/// The per-VM report files inside the host VM (`<dir>/<vm>.log`).
pub const REPORTS: &str = "/run/lab";

/// The host VM's `/init`: the NIC with its native driver (as a host
/// boots), VFIO ready, the lab's control shell on the second serial
/// port. Everything else is done by the lab through that shell with
/// netvm's own commands.
const HOST_INIT: &str = r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec > /dev/console 2>&1
mkdir -p /run/netvm /run/lab /run/netns /tmp /var/www /etc/netns
echo /sbin/modprobe > /proc/sys/kernel/modprobe
modprobe virtio_pci
modprobe virtio_net
# A USB uplink's controller (its NIC driver stays unloaded: the host
# must not make an interface of it).
modprobe -q xhci_pci
modprobe -q crc32c_generic
for m in vfio vfio_iommu_type1 vfio-pci tun bridge veth nf_tables nft_limit nft_log nft_reject_bridge nft_ct nf_conntrack; do modprobe $m 2>/dev/null; done
ip link set lo up
echo "netvm-lab: host-vm up at $(cut -d' ' -f1 /proc/uptime)"
# The lab's control channel: a shell on the second serial port. The
# third and fourth carry the Net VM's console and control shell out.
stty -F /dev/ttyS1 -echo 2>/dev/null
stty -F /dev/ttyS2 raw -echo 2>/dev/null
stty -F /dev/ttyS3 raw -echo 2>/dev/null
(while true; do PS1= sh </dev/ttyS1 >/dev/ttyS1 2>&1; done) &
while true; do sleep 3600; done
"#;

/// `lab-vm NAME MAC PORT TCP-PORTS`: a VM as a network namespace of the
/// host VM, on a veth whose host end is named as the VM's TAP (`netvm
/// host up` uses an interface of that name as it finds it), serving HTTP
/// on its ports.
const LAB_VM: &str = r#"#!/bin/sh
set -e
# iproute2's ip (busybox's runs for a bare `ip`, and has no netns).
ip=/usr/sbin/ip
name=$1 mac=$2 port=$3 ports=$4
$ip netns add "$name"
$ip link add "$port" type veth peer name eth0 netns "$name"
# The host's end has no IPv6, as a TAP of the secure host has none (the
# pool VM's port is not one `netvm host up` knows; the audit checks all).
f=/proc/sys/net/ipv6/conf/$port/disable_ipv6; [ ! -e "$f" ] || echo 1 > "$f"
$ip -n "$name" link set eth0 address "$mac"
$ip -n "$name" link set lo up
$ip -n "$name" link set eth0 up
$ip link set "$port" up
mkdir -p "/var/www/$name"
echo "$name" > "/var/www/$name/index.html"
for p in $(echo "$ports" | tr , ' '); do $ip netns exec "$name" httpd -p "$p" -h "/var/www/$name"; done
"#;

/// `lab-dhcp NAME ARGS`: the VM's DHCP client, its lease and checks
/// reported to `/run/lab/NAME.log` (the same scripts a QEMU VM runs).
/// It waits 20 s for each answer: the nested Net VM is slow (its first
/// answer to a new client waits for an `nft` process there).
const LAB_DHCP: &str = r#"#!/bin/sh
name=$1
echo "$2" > "/run/lab/$name.args"
: > "/run/lab/$name.log"
NETVM_ARGS="/run/lab/$name.args" NETVM_REPORT="/run/lab/$name.log" \
  /usr/sbin/ip netns exec "$name" udhcpc -f -i eth0 -s /lease.sh -x "hostname:$name" -t 15 -T 20 -A 2 > /dev/null 2>&1 &
"#;

/// The kernel modules of the host VM, beyond the virtio NIC.
const HOST_MODULES: [&str; 9] = [
    "kernel/drivers/vfio/",
    "kernel/drivers/net/tun.ko",
    "kernel/drivers/net/veth.ko",
    "kernel/net/bridge/",
    "kernel/net/netfilter/",
    "kernel/net/ipv4/netfilter/",
    "kernel/net/ipv6/netfilter/",
    "kernel/net/802/",
    "kernel/net/llc/",
];

/// QEMU's firmware and option ROMs, at the paths Debian's QEMU searches.
const QEMU_FILES: [&str; 6] = [
    "/usr/share/seabios/bios-256k.bin",
    "/usr/share/qemu/qboot.rom",
    "/usr/share/qemu/kvmvapic.bin",
    "/usr/share/qemu/linuxboot_dma.bin",
    "/usr/share/qemu/linuxboot.bin",
    "/usr/lib/ipxe/qemu/efi-virtio.rom",
];

/// QEMU's TCG accelerator (a loadable module in Debian's QEMU).
const QEMU_TCG: &str = "/usr/lib/x86_64-linux-gnu/qemu/accel-tcg-x86_64.so";
/// QEMU's `usb-host` device (a loadable module, with libusb).
const QEMU_USB_HOST: &str = "/usr/lib/x86_64-linux-gnu/qemu/hw-usb-host.so";

/// The first of `names` found under the usual binary directories.
fn tool(names: &[&str]) -> Result<std::path::PathBuf, LabError> {
    names
        .iter()
        .flat_map(|n| {
            ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
                .iter()
                .map(move |d| Path::new(d).join(n))
        })
        .find(|p| p.exists())
        .ok_or_else(|| LabError::Lab(format!("none of {names:?} on this machine")))
}

/// The host VM's image: `netvm_image` is the Net VM's (it boots it);
/// with `usb`, the USB NIC's drivers (the host loads only the
/// controller's) and QEMU's `usb-host`.
pub fn host_vm_image(
    kernel: &Kernel,
    netvm: &Path,
    description: &str,
    netvm_image: Vec<u8>,
    usb: bool,
) -> Result<Vec<u8>, LabError> {
    let mut modules = HOST_MODULES.to_vec();
    if usb {
        modules.extend_from_slice(&image::USB_NIC_MODULES);
    }
    let mut a: Archive = image::base(kernel, &modules)?;
    image::add_stripped_netvm(&mut a, netvm)?;
    let qemu = tool(&["qemu-system-x86_64"])?;
    image::add_binary(&mut a, &qemu, "usr/bin/qemu-system-x86_64")?;
    image::add_binary(&mut a, Path::new(QEMU_TCG), QEMU_TCG)?;
    if usb {
        image::add_binary(&mut a, Path::new(QEMU_USB_HOST), QEMU_USB_HOST)?;
    }
    for file in QEMU_FILES {
        // Read through symbolic links: the archive holds the bytes.
        a.file(file, image::read(Path::new(file))?, 0o644);
    }
    image::add_binary(&mut a, &tool(&["nft"])?, "usr/sbin/nft")?;
    image::add_binary(&mut a, &tool(&["ip"])?, "usr/sbin/ip")?;
    a.file(NETVM_KERNEL, image::read(&kernel.image)?, 0o644);
    a.file(NETVM_IMAGE, netvm_image, 0o644);
    a.file(DESCRIPTION, description.as_bytes().to_vec(), 0o644);
    a.file(
        "etc/passwd",
        b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n".to_vec(),
        0o644,
    );
    a.file(
        "etc/group",
        b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
        0o644,
    );
    a.file("init", HOST_INIT.as_bytes().to_vec(), 0o755);
    a.file("usr/bin/lab-vm", LAB_VM.as_bytes().to_vec(), 0o755);
    a.file("usr/bin/lab-dhcp", LAB_DHCP.as_bytes().to_vec(), 0o755);
    a.file("lease.sh", image::VM_LEASE.as_bytes().to_vec(), 0o755);
    a.file("checks.sh", image::VM_CHECKS.as_bytes().to_vec(), 0o755);
    Ok(a.to_bytes())
}
