//! The initramfs of the Wi-Fi lab's guest ([`crate::wifi`]), built from
//! what this machine has: Debian's full kernel (the cloud kernel has no
//! Wi-Fi stack) with `mac80211_hwsim` and what it needs (cfg80211,
//! mac80211, rfkill, libarc4, the CCMP/GCMP/BIP ciphers' crypto
//! templates), veth, bridge, TUN and the netfilter modules the net-vm's
//! image has; busybox; hostapd, wpa_supplicant, wpa_cli, iw, iproute2's
//! `ip` (network namespaces), `nft`, dnsmasq, and optionally `netvm`,
//! each with the shared libraries it loads. Its `/init` loads the
//! modules, makes [`RADIOS`] simulated radios and leaves a control shell
//! on the second serial port; it reports on the console in lines
//! starting `netvm-wifi:`.

use crate::cpio::Archive;
use crate::image::{self, Kernel};
use crate::netns::LabError;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The simulated Wi-Fi driver, relative to the modules directory.
pub const HWSIM: &str = "kernel/drivers/net/wireless/mac80211_hwsim.ko";

/// How many radios `/init` makes (`phy0`…`phy2`, with `wlan0`…`wlan2`).
pub const RADIOS: u32 = 3;

/// The kernel modules of the image: the simulated radios (their
/// dependencies come with them), the ciphers mac80211 asks the crypto
/// API for, and what the net-vm's image has (netfilter, TUN) plus veth
/// and bridge.
const MODULES: [&str; 15] = [
    HWSIM,
    "kernel/crypto/ccm.ko",
    "kernel/crypto/ctr.ko",
    "kernel/crypto/cmac.ko",
    "kernel/crypto/gcm.ko",
    "kernel/crypto/ghash-generic.ko",
    "kernel/drivers/net/veth.ko",
    "kernel/drivers/net/tun.ko",
    "kernel/net/bridge/bridge.ko",
    "kernel/net/netfilter/",
    "kernel/net/ipv4/netfilter/",
    "kernel/net/ipv6/netfilter/",
    "kernel/net/802/",
    "kernel/net/llc/",
    "kernel/drivers/char/hw_random/virtio-rng.ko",
];

/// The programs of the image, found under the usual directories, and
/// where they go.
const TOOLS: [(&str, &str); 7] = [
    ("hostapd", "usr/sbin/hostapd"),
    ("wpa_supplicant", "usr/sbin/wpa_supplicant"),
    ("wpa_cli", "usr/sbin/wpa_cli"),
    ("iw", "usr/sbin/iw"),
    ("ip", "usr/sbin/ip"),
    ("nft", "usr/sbin/nft"),
    ("dnsmasq", "usr/sbin/dnsmasq"),
];

/// The regulatory database and its signature (package wireless-regdb):
/// cfg80211 reads them at start, and says so on the console when they
/// are missing (it then keeps the world domain, which is enough here).
const REGDB: [&str; 2] = [
    "/lib/firmware/regulatory.db",
    "/lib/firmware/regulatory.db.p7s",
];

/// Where the guest keeps the lab's files: configurations, control
/// sockets, background processes' output.
pub const RUN_DIR: &str = "/run/wifi";

/// The guest's `/init`.
const INIT: &str = r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec > /dev/console 2>&1
mkdir -p /run/wifi /run/netns /run/wpa_supplicant /run/hostapd /tmp /var/www /var/lib/misc /etc/netns
ln -s /run /var/run
echo /sbin/modprobe > /proc/sys/kernel/modprobe
echo "netvm-wifi: init at $(cut -d' ' -f1 /proc/uptime)"
# One modprobe for many: each run reads modules.dep, slow under TCG.
modprobe -qa virtio_pci virtio_rng crc32c_generic
modprobe -a ccm ctr cmac gcm ghash_generic veth bridge tun
modprobe -qa nf_tables nf_conntrack nf_nat nft_ct nft_nat nft_masq nft_chain_nat nft_limit nft_log nft_fib_inet nft_fib_ipv4 nft_fib_ipv6 nft_reject_inet nf_conntrack_netlink nfnetlink_log nft_compat
modprobe mac80211_hwsim radios=@RADIOS@
ip link set lo up
echo "netvm-wifi: radios $(ls /sys/class/ieee80211 | tr '\n' ' ')"
echo "netvm-wifi: up at $(cut -d' ' -f1 /proc/uptime)"
# The lab's control channel: a shell on the second serial port.
stty -F /dev/ttyS1 -echo 2>/dev/null
# No prompts: commands end in a line of their own (PS2 would prefix it).
(while true; do PS1= PS2= sh </dev/ttyS1 >/dev/ttyS1 2>&1; done) &
while true; do sleep 3600; done
"#;

/// busybox udhcpc's script: the lease on the interface, the default
/// route and the DNS server; `lease <ip> at <uptime>` appended to
/// `$WIFI_REPORT` (default: the console).
pub const UDHCPC_SCRIPT: &str = "/etc/udhcpc.script";
/// [`UDHCPC_SCRIPT`]'s text.
const UDHCPC: &str = r#"#!/bin/sh
case "$1" in
  deconfig) ip addr flush dev "$interface"; ip link set "$interface" up ;;
  bound|renew)
    ip addr flush dev "$interface"
    ip addr add "$ip/${mask:-24}" dev "$interface"
    [ -n "$router" ] && ip route replace default via "${router%% *}" dev "$interface"
    echo "lease $ip router ${router%% *} dns ${dns%% *} at $(cut -d' ' -f1 /proc/uptime)" >> "${WIFI_REPORT:-/dev/console}"
    ;;
esac
exit 0
"#;

/// The full kernel, the one with [`HWSIM`].
pub fn find_kernel() -> Result<Kernel, LabError> {
    image::find_kernel_with(Some(HWSIM)).map_err(|_| {
        LabError::Lab(format!(
            "no kernel in /boot has {HWSIM} (the cloud kernel has no Wi-Fi stack): apt-get install -y linux-image-amd64 hostapd iw wpasupplicant"
        ))
    })
}

/// The first place `name` is found under the usual binary directories.
pub fn tool(name: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin"]
        .iter()
        .map(|d| Path::new(d).join(name))
        .find(|p| p.exists())
}

/// The programs the image needs that this machine lacks.
pub fn missing_tools() -> Vec<&'static str> {
    TOOLS
        .iter()
        .map(|(name, _)| *name)
        .filter(|name| tool(name).is_none())
        .collect()
}

/// The Wi-Fi guest's image; with `netvm`, that binary (without debug
/// information) at `/usr/bin/netvm`.
pub fn wifi_image(kernel: &Kernel, netvm: Option<&Path>) -> Result<Vec<u8>, LabError> {
    let mut a = image::base(kernel, &MODULES)?;
    trim_module_indexes(&mut a, kernel)?;
    for (name, at) in TOOLS {
        let path = tool(name).ok_or_else(|| {
            LabError::Lab(format!(
                "no {name} on this machine: apt-get install -y hostapd iw wpasupplicant iproute2 nftables dnsmasq-base"
            ))
        })?;
        image::add_binary(&mut a, &path, at)?;
    }
    if let Some(netvm) = netvm {
        image::add_stripped_netvm(&mut a, netvm)?;
    }
    for file in REGDB {
        let path = Path::new(file);
        if path.exists() {
            a.file(file, image::read(path)?, 0o644);
        }
    }
    a.file(
        "etc/passwd",
        b"root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\ndnsmasq:x:65534:65534:dnsmasq:/:/bin/false\n".to_vec(),
        0o644,
    );
    a.file(
        "etc/group",
        b"root:x:0:\nnogroup:x:65534:\n".to_vec(),
        0o644,
    );
    a.file("etc/hosts", b"127.0.0.1 localhost\n".to_vec(), 0o644);
    a.file(UDHCPC_SCRIPT, UDHCPC.as_bytes().to_vec(), 0o755);
    a.dir(RUN_DIR);
    let init = INIT.replace("@RADIOS@", &RADIOS.to_string());
    a.file("init", init.into_bytes(), 0o755);
    Ok(a.to_bytes())
}

/// Cuts the module indexes busybox modprobe reads down to the modules
/// the image has: the full kernel's name thousands, and each modprobe
/// parses them, which is slow under TCG.
fn trim_module_indexes(archive: &mut Archive, kernel: &Kernel) -> Result<(), LabError> {
    let version = kernel
        .modules
        .file_name()
        .map(|v| v.to_string_lossy().into_owned())
        .unwrap_or_default();
    let base = format!("lib/modules/{version}");
    let dep_path = kernel.modules.join("modules.dep");
    let deps = image::parse_modules_dep(&String::from_utf8_lossy(&image::read(&dep_path)?));
    let present: BTreeSet<&str> = deps
        .keys()
        .filter(|m| archive.contains(&format!("{base}/{m}")))
        .map(String::as_str)
        .collect();
    let names: BTreeSet<String> = present.iter().map(|m| module_name(m)).collect();
    for (index, keep) in [
        ("modules.dep", Keep::Path),
        ("modules.alias", Keep::LastName),
        ("modules.symbols", Keep::LastName),
    ] {
        let path = kernel.modules.join(index);
        if !path.exists() {
            continue;
        }
        let text = String::from_utf8_lossy(&image::read(&path)?).into_owned();
        let kept: String = text
            .lines()
            .filter(|l| match keep {
                Keep::Path => l
                    .split_once(':')
                    .is_some_and(|(m, _)| present.contains(m.trim())),
                Keep::LastName => l
                    .split_whitespace()
                    .last()
                    .is_some_and(|m| names.contains(&m.replace('-', "_"))),
            })
            .map(|l| format!("{l}\n"))
            .collect();
        archive.file(&format!("{base}/{index}"), kept.into_bytes(), 0o644);
    }
    Ok(())
}

/// How an index line names its module.
enum Keep {
    /// `path: deps…` (modules.dep).
    Path,
    /// `alias <what> <name>` (modules.alias, modules.symbols).
    LastName,
}

/// A module's name from its path (`kernel/net/x/foo-bar.ko` → `foo_bar`).
fn module_name(path: &str) -> String {
    let file = path.rsplit('/').next().unwrap_or(path);
    let stem = file.split(".ko").next().unwrap_or(file);
    stem.replace('-', "_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn module_names_come_from_paths() {
        assert_eq!(
            module_name("kernel/crypto/ghash-generic.ko"),
            "ghash_generic"
        );
        assert_eq!(module_name(HWSIM), "mac80211_hwsim");
        assert_eq!(module_name("kernel/x/y.ko.xz"), "y");
    }

    #[test]
    fn the_init_makes_the_radios_and_a_shell() {
        let init = INIT.replace("@RADIOS@", &RADIOS.to_string());
        assert!(init.contains("modprobe mac80211_hwsim radios=3"));
        assert!(init.contains("/dev/ttyS1"));
        assert!(!init.contains('@'));
    }
}
