//! The initramfs images of `netvm lab up --vms qemu`, built from what
//! this machine has: the Debian cloud kernel's modules, busybox-static,
//! and for the net-vm the netvm binary and `nft` with the
//! shared libraries they load. Two images: one every VM boots (its name
//! and ports come on the kernel command line), one for the net-vm (with
//! its description). Their `/init` scripts report on the serial console
//! in lines starting `netvm-lab:`, which the lab reads.

use crate::cpio::Archive;
use crate::netns::{io_error, run, LabError};
use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

/// The kernel the VMs boot, and its modules.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// `/boot/vmlinuz-…`.
    pub image: PathBuf,
    /// `/lib/modules/<version>`.
    pub modules: PathBuf,
}

/// Finds the Debian cloud kernel (`linux-image-cloud-amd64`), or any
/// kernel with its modules.
pub fn find_kernel() -> Result<Kernel, LabError> {
    find_kernel_with(None)
}

/// The USB NIC drivers a USB uplink needs (the cloud kernel has no USB
/// support at all).
pub const USB_NIC_MODULES: [&str; 2] = [
    "kernel/drivers/usb/host/xhci-pci.ko",
    "kernel/drivers/net/usb/cdc_ether.ko",
];

/// Finds a kernel (the cloud kernel first) with its modules and, when
/// asked, the module `needs` (relative to its modules directory).
pub fn find_kernel_with(needs: Option<&str>) -> Result<Kernel, LabError> {
    let mut found: Vec<(bool, String)> = std::fs::read_dir("/boot")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix("vmlinuz-")?.to_owned();
            let modules = Path::new("/lib/modules").join(&version);
            let has = needs.is_none_or(|m| modules.join(m).exists());
            (modules.exists() && has).then(|| (version.contains("cloud"), version))
        })
        .collect();
    found.sort();
    let (_, version) = found.pop().ok_or_else(|| {
        LabError::Lab(match needs {
            None => "no kernel with modules in /boot: apt-get install -y linux-image-cloud-amd64"
                .to_owned(),
            Some(m) => format!(
                "no kernel in /boot has {m}: apt-get install -y linux-image-amd64 (the cloud kernel has no USB support)"
            ),
        })
    })?;
    Ok(Kernel {
        image: Path::new("/boot").join(format!("vmlinuz-{version}")),
        modules: Path::new("/lib/modules").join(version),
    })
}

/// Module dependencies from `modules.dep` (paths relative to the
/// modules directory).
pub fn parse_modules_dep(text: &str) -> HashMap<String, Vec<String>> {
    text.lines()
        .filter_map(|l| {
            let (module, deps) = l.split_once(':')?;
            Some((
                module.trim().to_owned(),
                deps.split_whitespace().map(str::to_owned).collect(),
            ))
        })
        .collect()
}

/// `wanted` and everything it depends on.
pub fn closure(deps: &HashMap<String, Vec<String>>, wanted: &[String]) -> BTreeSet<String> {
    let mut all = BTreeSet::new();
    let mut todo: Vec<String> = wanted.to_vec();
    while let Some(m) = todo.pop() {
        if all.insert(m.clone()) {
            todo.extend(deps.get(&m).cloned().unwrap_or_default());
        }
    }
    all
}

/// The shared libraries `ldd` names for `binary` (the dynamic loader too).
pub fn parse_ldd(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let l = l.trim();
            let path = match l.split_once("=>") {
                Some((_, right)) => right.split_whitespace().next()?,
                None => l.split_whitespace().next()?,
            };
            path.starts_with('/').then(|| path.to_owned())
        })
        .collect()
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, LabError> {
    std::fs::read(path).map_err(io_error(path))
}

/// Adds `binary` at `at` with the libraries it loads, at their paths.
pub(crate) fn add_binary(archive: &mut Archive, binary: &Path, at: &str) -> Result<(), LabError> {
    archive.file(at, read(binary)?, 0o755);
    let ldd = run(&["ldd", &binary.display().to_string()]).unwrap_or_default();
    for lib in parse_ldd(&ldd) {
        if !archive.contains(&lib) {
            archive.file(&lib, read(Path::new(&lib))?, 0o755);
        }
    }
    Ok(())
}

fn add_busybox(archive: &mut Archive) -> Result<(), LabError> {
    for dir in ["proc", "sys", "dev", "run", "tmp", "etc", "var"] {
        archive.dir(dir);
    }
    let busybox = ["/usr/bin/busybox", "/bin/busybox"]
        .iter()
        .map(Path::new)
        .find(|p| p.exists())
        .ok_or_else(|| LabError::Lab("no busybox: apt-get install -y busybox-static".to_owned()))?;
    archive.file("bin/busybox", read(busybox)?, 0o755);
    let applets = run(&[&busybox.display().to_string(), "--list"])?;
    for applet in applets
        .lines()
        .map(str::trim)
        .filter(|a| !a.is_empty() && *a != "busybox")
    {
        archive.symlink(&format!("bin/{applet}"), "busybox");
    }
    for applet in ["modprobe", "insmod", "init"] {
        archive.symlink(&format!("sbin/{applet}"), "/bin/busybox");
    }
    Ok(())
}

/// Adds the modules under the given directories and named files of the
/// kernel (relative to its modules directory), with their dependencies
/// and the index files busybox modprobe reads.
pub(crate) fn add_modules(
    archive: &mut Archive,
    kernel: &Kernel,
    wanted: &[&str],
) -> Result<(), LabError> {
    let dep_file = kernel.modules.join("modules.dep");
    let deps = parse_modules_dep(&String::from_utf8_lossy(&read(&dep_file)?));
    let mut roots: Vec<String> = SOFT_DEPENDENCIES
        .iter()
        .filter(|m| deps.contains_key(**m))
        .map(|m| (*m).to_owned())
        .collect();
    for w in wanted {
        if w.ends_with(".ko") {
            roots.push((*w).to_owned());
        } else {
            roots.extend(deps.keys().filter(|m| m.starts_with(w)).cloned());
        }
    }
    let version = kernel
        .modules
        .file_name()
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = format!("lib/modules/{version}");
    for module in closure(&deps, &roots) {
        let bytes = read(&kernel.modules.join(&module))?;
        archive.file(&format!("{base}/{module}"), unsigned(bytes), 0o644);
    }
    for index in [
        "modules.dep",
        "modules.alias",
        "modules.symbols",
        "modules.builtin",
        "modules.softdep",
        "modules.order",
    ] {
        let path = kernel.modules.join(index);
        if path.exists() {
            archive.file(&format!("{base}/{index}"), read(&path)?, 0o644);
        }
    }
    Ok(())
}

/// Modules others need without naming them in `modules.dep` (the
/// generic kernel's `libcrc32c`, which nf_tables needs, asks the crypto
/// API for crc32c, a module there and built in the cloud kernel); added
/// when the kernel has them as modules, and loaded first.
const SOFT_DEPENDENCIES: [&str; 1] = ["kernel/crypto/crc32c_generic.ko"];

/// The marker the kernel's module signing appends.
const SIGNATURE_MAGIC: &[u8] = b"~Module signature appended~\n";

/// A kernel module without its appended signature: the kernel then loads
/// it unverified (tainting itself, as for any unsigned module when
/// signatures are not enforced, Debian's default without Secure Boot).
/// Verifying each module's signature is a public-key operation, which
/// costs seconds in a nested TCG guest. A module without a signature, or
/// with a malformed one, is returned as it is.
pub fn unsigned(mut module: Vec<u8>) -> Vec<u8> {
    // struct module_signature: 12 bytes, ending in the big-endian length
    // of the signature that precedes it.
    let Some(rest) = module.len().checked_sub(SIGNATURE_MAGIC.len() + 12) else {
        return module;
    };
    if !module.ends_with(SIGNATURE_MAGIC) {
        return module;
    }
    let length = &module[rest + 8..rest + 12];
    let signature = u32::from_be_bytes([length[0], length[1], length[2], length[3]]) as usize;
    match rest.checked_sub(signature) {
        Some(end) => {
            module.truncate(end);
            module
        }
        None => module,
    }
}

/// What every VM runs: network up, a DHCP client, a web server on the
/// ports it serves, and (once leased) its own checks.
const VM_INIT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec > /dev/console 2>&1
mkdir -p /run /tmp /var/www /etc
arg() { sed -n "s/.*netvm\.$1=\([^ ]*\).*/\1/p" /proc/cmdline; }
name=$(arg name)
hostname "$name"
modprobe virtio_pci
modprobe virtio_net
ip link set lo up
ip link set eth0 up
echo "netvm-lab: $name up at $(cut -d' ' -f1 /proc/uptime)" > /dev/console
echo "$name" > /var/www/index.html
for p in $(arg ports | tr , ' '); do httpd -p "$p" -h /var/www; done
udhcpc -f -i eth0 -s /lease.sh -x "hostname:$name" -t 60 -T 1 -A 2 > /dev/null 2>&1 &
[ -x /sbin/dhclient ] && dhclient -6 -nw -sf /lease6.sh -lf /tmp/dhclient6.leases -pf /run/dhclient6.pid eth0 > /dev/null 2>&1
# The lab's control channel: a shell on the second serial port.
stty -F /dev/ttyS1 -echo 2>/dev/null
(while true; do PS1= sh </dev/ttyS1 >/dev/ttyS1 2>&1; done) &
while true; do sleep 3600; done
"#;

pub(crate) const VM_LEASE: &str = r#"#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}"
    [ -z "$NETVM_ARGS" ] && echo "nameserver ${dns%% *}" > /etc/resolv.conf
    echo "netvm-lab: lease $ip at $(cut -d' ' -f1 /proc/uptime)" >> "${NETVM_REPORT:-/dev/console}"
    [ "$1" = bound ] && /checks.sh &
    ;;
esac
"#;

/// dhclient -6's script: the address as a /128 (the net-vm advertises
/// no on-link prefix; its router advertisements give the default route).
pub(crate) const VM_LEASE6: &str = r#"#!/bin/sh
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6)
    ip -6 addr replace "$new_ip6_address/128" dev "$interface" nodad
    echo "netvm-lab: lease6 $new_ip6_address at $(cut -d' ' -f1 /proc/uptime)" >> "${NETVM_REPORT:-/dev/console}"
    ;;
  EXPIRE6|RELEASE6|STOP6) ip -6 addr flush dev "$interface" scope global ;;
esac
exit 0
"#;

pub(crate) const VM_CHECKS: &str = r#"#!/bin/sh
# Its arguments: the kernel command line of a VM, or (a VM that is a
# namespace of the passthrough lab's host VM) the file NETVM_ARGS; its
# reports go to the console, or to the file NETVM_REPORT.
arg() { sed -n "s/.*netvm\.$1=\([^ ]*\).*/\1/p" "${NETVM_ARGS:-/proc/cmdline}"; }
report() { echo "netvm-lab: $*" >> "${NETVM_REPORT:-/dev/console}"; }
name=$(arg name)
# Every name must resolve, so each is asked until it does, for up to 60 s
# from here: a TCG guest is slow, its first packets may race the net-vm
# admitting a new pool lease, and under load the net-vm may not yet have
# its own uplink (its DNS has no upstream until then).
start=$(cut -d. -f1 /proc/uptime)
lookup() {
  while :; do
    a=$(nslookup -type=a "$1" "$(arg dns)" 2>/dev/null | awk '/^Name:/{f=1} f && /^Address/{print $2}' | tail -1)
    [ -n "$a" ] && break
    [ $(( $(cut -d. -f1 /proc/uptime) - start )) -ge 60 ] && break
    sleep 1
  done
  echo "$a"
}
found=$(lookup "$name.$(arg domain)")
report "dns $name.$(arg domain) ${found:-none}"
for n in $(arg names | tr , ' '); do
  a=$(lookup "$n")
  report "resolved $n ${a:-none}"
done
# The upstream's name resolved above, so the net-vm has its uplink: three
# tries suffice, and a VM without `internet` is not kept waiting.
for try in 1 2 3; do
  # (busybox 1.35's wget crashes with -T: timeout(1) bounds it instead)
  body=$(timeout 5 wget -q -O - "http://$(arg upstream)/" 2>/dev/null | tail -1)
  [ -n "$body" ] && break
  sleep 1
done
report "internet ${body:-none}"
"#;

/// What the net-vm runs: its NICs' driver, then the agent (nftables
/// modules load on demand through modprobe).
const NETVM_INIT: &str = r#"#!/bin/sh
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec > /dev/console 2>&1
mkdir -p /run/netvm /var/lib/netvm /tmp /etc
echo /sbin/modprobe > /proc/sys/kernel/modprobe
# One modprobe for all: each run reads modules.dep, which is slow in a
# nested guest.
modprobe -a virtio_pci virtio_net
# A USB uplink's drivers, where the image has them; crc32c before
# nf_tables where it is a module.
modprobe -qa xhci_pci cdc_ether crc32c_generic
modprobe -qa nf_tables nf_conntrack nf_nat nft_ct nft_nat nft_masq nft_chain_nat nft_limit nft_log nft_fib_inet nft_fib_ipv4 nft_fib_ipv6 nft_reject_inet nf_conntrack_netlink nfnetlink_log nft_compat
# The CLAT's TUN device (IPv6-only uplinks).
modprobe -q tun
ip link set lo up
echo "netvm-lab: net-vm up at $(cut -d' ' -f1 /proc/uptime)" > /dev/console
# The lab's control channel: a shell on the second serial port.
stty -F /dev/ttyS1 -echo 2>/dev/null
(while true; do PS1= sh </dev/ttyS1 >/dev/ttyS1 2>&1; done) &
# Restarted when it ends, as systemd's Restart= would.
while true; do
  /usr/bin/netvm agent /etc/netvm/system.toml --journal /var/lib/netvm/leases --control /run/netvm/agent.sock > /dev/console 2>&1
  echo "netvm-lab: agent exited $?" > /dev/console
  sleep 1
done
"#;

/// The modules every image has: the virtio NIC over PCI.
const NIC_MODULES: [&str; 2] = [
    "kernel/drivers/net/virtio_net.ko",
    "kernel/drivers/virtio/virtio_pci.ko",
];

/// busybox and the NIC modules, plus `modules`.
pub(crate) fn base(kernel: &Kernel, modules: &[&str]) -> Result<Archive, LabError> {
    let mut a = Archive::new();
    add_busybox(&mut a)?;
    let mut wanted: Vec<&str> = NIC_MODULES.to_vec();
    wanted.extend_from_slice(modules);
    add_modules(&mut a, kernel, &wanted)?;
    Ok(a)
}

/// The image every VM boots.
pub fn vm_image(kernel: &Kernel) -> Result<Vec<u8>, LabError> {
    let mut a = base(kernel, &[])?;
    a.file("init", VM_INIT.as_bytes().to_vec(), 0o755);
    a.file("lease.sh", VM_LEASE.as_bytes().to_vec(), 0o755);
    a.file("lease6.sh", VM_LEASE6.as_bytes().to_vec(), 0o755);
    // The DHCPv6 client (Debian's busybox has no udhcpc6).
    let dhclient = Path::new("/sbin/dhclient");
    if dhclient.exists() {
        add_binary(&mut a, dhclient, "sbin/dhclient")?;
    }
    a.file("checks.sh", VM_CHECKS.as_bytes().to_vec(), 0o755);
    Ok(a.to_bytes())
}

/// Adds `netvm` at `/usr/bin/netvm`, without debug information (a debug
/// build is mostly that).
pub(crate) fn add_stripped_netvm(archive: &mut Archive, netvm: &Path) -> Result<(), LabError> {
    let stripped = std::env::temp_dir().join(format!(
        "netvm-lab-{}-{:?}-netvm",
        std::process::id(),
        std::thread::current().id()
    ));
    let strip = run(&[
        "strip",
        "--strip-debug",
        "-o",
        &stripped.display().to_string(),
        &netvm.display().to_string(),
    ]);
    let binary = if strip.is_ok() {
        stripped.as_path()
    } else {
        netvm
    };
    let added = add_binary(archive, binary, "usr/bin/netvm");
    let _ = std::fs::remove_file(&stripped);
    added
}

/// The net-vm's image: `netvm`, `nft` (for the ruleset's one transaction;
/// sets, events, counters and conntrack go over netlink), the netfilter
/// modules, and the description.
pub fn netvm_image(kernel: &Kernel, netvm: &Path, description: &str) -> Result<Vec<u8>, LabError> {
    netvm_image_with(kernel, netvm, description, &[])
}

/// [`netvm_image`] with more kernel modules (a USB uplink's drivers).
pub fn netvm_image_with(
    kernel: &Kernel,
    netvm: &Path,
    description: &str,
    modules: &[&str],
) -> Result<Vec<u8>, LabError> {
    let mut wanted = vec![
        "kernel/net/netfilter/",
        "kernel/net/ipv4/netfilter/",
        "kernel/net/ipv6/netfilter/",
        "kernel/drivers/net/tun.ko",
    ];
    wanted.extend_from_slice(modules);
    let mut a = base(kernel, &wanted)?;
    add_stripped_netvm(&mut a, netvm)?;
    let nft = ["/usr/sbin", "/sbin", "/usr/bin"]
        .iter()
        .map(|d| Path::new(d).join("nft"))
        .find(|p| p.exists())
        .ok_or_else(|| LabError::Lab("no nft on this machine".to_owned()))?;
    add_binary(&mut a, &nft, "usr/sbin/nft")?;
    // The CLAT's translator, where this machine has it (the README's
    // packages do): without it an IPv6-only uplink gives IPv4 VMs nothing.
    let tayga = Path::new("/usr/sbin/tayga");
    if tayga.exists() {
        add_binary(&mut a, tayga, "usr/sbin/tayga")?;
    }
    a.file(
        "etc/netvm/system.toml",
        description.as_bytes().to_vec(),
        0o644,
    );
    a.file("init", NETVM_INIT.as_bytes().to_vec(), 0o755);
    Ok(a.to_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_dependencies_are_followed() {
        let deps = parse_modules_dep(
            "kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko\n\
             kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko\n\
             kernel/net/core/failover.ko:\n",
        );
        let all = closure(&deps, &["kernel/drivers/net/virtio_net.ko".to_owned()]);
        assert_eq!(all.len(), 3);
        assert!(all.contains("kernel/net/core/failover.ko"));
    }

    #[test]
    fn module_signatures_are_cut_off() {
        let body = b"\x7fELF module body".to_vec();
        let mut signed = body.clone();
        signed.extend_from_slice(&[0xaa; 5]);
        signed.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 5]);
        signed.extend_from_slice(SIGNATURE_MAGIC);
        assert_eq!(unsigned(signed), body);
        assert_eq!(unsigned(body.clone()), body);
        // A signature longer than the file: left alone.
        let mut odd = b"x".to_vec();
        odd.extend_from_slice(&[0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0]);
        odd.extend_from_slice(SIGNATURE_MAGIC);
        assert_eq!(unsigned(odd.clone()), odd);
        assert_eq!(unsigned(SIGNATURE_MAGIC.to_vec()), SIGNATURE_MAGIC.to_vec());
    }

    #[test]
    fn ldd_output_gives_library_paths() {
        let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                    \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)\n\
                    \t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n";
        assert_eq!(
            parse_ldd(text),
            [
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
        );
    }
}
