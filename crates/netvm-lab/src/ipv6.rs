//! The lab VMs' IPv6: each VM namespace runs a real DHCPv6 client (ISC
//! `dhclient -6`, `dhcpcd` and systemd-networkd, in turn by the VM's
//! position, so all three are exercised in every lab), its kernel (or
//! its client) takes the default route from the net-vm's router
//! advertisements, and the lab reads back the address the client put on
//! `eth0`. (Debian 12's busybox builds have no `udhcpc6`.)

use crate::netns::{self, LabError};
use std::net::Ipv6Addr;
use std::path::Path;

/// Which DHCPv6 client a VM runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dhcp6Client {
    /// ISC `dhclient -6` (isc-dhcp-client).
    Dhclient,
    /// `dhcpcd -6` (dhcpcd-base), which also follows the router
    /// advertisements itself.
    Dhcpcd,
    /// systemd-networkd (`DHCP=ipv6`), when this machine has it.
    Networkd,
}

/// systemd-networkd's program.
const NETWORKD: &str = "/lib/systemd/systemd-networkd";

impl Dhcp6Client {
    /// The client of the VM at `index` (its position in the lab).
    pub fn for_vm(index: usize) -> Dhcp6Client {
        match index % 3 {
            0 => Dhcp6Client::Dhclient,
            1 => Dhcp6Client::Dhcpcd,
            _ if Path::new(NETWORKD).exists() => Dhcp6Client::Networkd,
            _ => Dhcp6Client::Dhclient,
        }
    }

    /// Its name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Dhcp6Client::Dhclient => "dhclient -6",
            Dhcp6Client::Dhcpcd => "dhcpcd -6",
            Dhcp6Client::Networkd => "systemd-networkd",
        }
    }
}

/// dhclient's script: puts the address on as a /128 (the net-vm
/// advertises no on-link prefix) and takes an old one off.
const DHCLIENT_SCRIPT: &str = r#"#!/bin/sh
case "$reason" in
  BOUND6|RENEW6|REBIND6|REBOOT6)
    if [ -n "$old_ip6_address" ] && [ "$old_ip6_address" != "$new_ip6_address" ]; then
      ip -6 addr del "$old_ip6_address/128" dev "$interface" 2>/dev/null
    fi
    ip -6 addr replace "$new_ip6_address/128" dev "$interface" nodad \
      valid_lft "${new_max_life:-forever}" preferred_lft "${new_preferred_life:-forever}"
    ;;
  EXPIRE6|RELEASE6|STOP6)
    [ -n "$old_ip6_address" ] && ip -6 addr del "$old_ip6_address/128" dev "$interface" 2>/dev/null
    ;;
esac
exit 0
"#;

/// dhcpcd keeps its pid file and leases under /run/dhcpcd and
/// /var/lib/dhcpcd by interface name, shared by every namespace (and every
/// lab VM's interface is `eth0`): each VM's dhcpcd gets both directories
/// of its own, in a mount namespace of its own.
const DHCPCD_WRAPPER: &str = "mount -t tmpfs tmpfs /run/dhcpcd && \
mount -t tmpfs tmpfs /var/lib/dhcpcd && \
exec dhcpcd -6 -B -L -t 0 --nohook resolv.conf eth0";

fn write_script(dir: &Path, name: &str, text: &str) -> Result<String, LabError> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(netns::io_error(&path))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .map_err(netns::io_error(&path))?;
    Ok(path.display().to_string())
}

/// systemd-networkd's `.network` for the VM's `eth0`: DHCPv6 and the
/// router's advertisements, nothing else (its IPv4 stays udhcpc's).
const NETWORKD_NETWORK: &str = "[Match]
Name=eth0

[Network]
DHCP=ipv6
IPv6AcceptRA=yes
KeepConfiguration=yes
";

/// Runs systemd-networkd in a mount namespace of its own: its run-time
/// directory and configuration on fresh tmpfs (the host's are left
/// alone), and `/sys` read-only, which tells it that no udev will
/// announce the links (it then takes them as they are).
const NETWORKD_WRAPPER: &str = "mount -t tmpfs tmpfs /run/systemd && \
mkdir -p /run/systemd/netif /run/systemd/network && \
cp \"$1\" /run/systemd/network/eth0.network && \
chown -R systemd-network:systemd-network /run/systemd/netif && \
mount -t tmpfs tmpfs /etc/systemd/network && \
mount -o remount,ro /sys && \
exec /lib/systemd/systemd-networkd";

/// Waits (up to 3 s) until `eth0` in `ns` has a link-local address that
/// is no longer tentative: a DHCPv6 client cannot bind before.
fn wait_link_local(ns: &str) {
    let _ = crate::lab::wait(
        std::time::Duration::from_secs(3),
        "a link-local address",
        || {
            let out = netns::output_in(ns, &["ip", "-6", "-o", "addr", "show", "dev", "eth0"]);
            (out.contains("fe80:") && !out.contains("tentative")).then_some(())
        },
    );
}

/// Starts `client` in `ns` (on `eth0`), its files and log in `dir`; its
/// pid.
pub fn start_client(dir: &Path, ns: &str, client: Dhcp6Client) -> Result<u32, LabError> {
    wait_link_local(ns);
    let log = dir.join(format!("dhcp6-{ns}.log"));
    match client {
        Dhcp6Client::Dhclient => {
            let script = write_script(dir, "dhclient6.sh", DHCLIENT_SCRIPT)?;
            let leases = dir.join(format!("dhclient6-{ns}.leases"));
            let pid = dir.join(format!("dhclient6-{ns}.pid"));
            netns::daemon(
                ns,
                &[
                    "dhclient",
                    "-6",
                    "-d",
                    "-v",
                    "-sf",
                    &script,
                    "-lf",
                    &leases.display().to_string(),
                    "-pf",
                    &pid.display().to_string(),
                    "eth0",
                ],
                &log,
            )
        }
        Dhcp6Client::Networkd => {
            let network = dir.join(format!("networkd-{ns}.network"));
            std::fs::write(&network, NETWORKD_NETWORK).map_err(netns::io_error(&network))?;
            netns::daemon(
                ns,
                &[
                    "unshare",
                    "-m",
                    "sh",
                    "-c",
                    NETWORKD_WRAPPER,
                    "networkd",
                    &network.display().to_string(),
                ],
                &log,
            )
        }
        Dhcp6Client::Dhcpcd => {
            for dir in ["/run/dhcpcd", "/var/lib/dhcpcd"] {
                std::fs::create_dir_all(dir).map_err(netns::io_error(Path::new(dir)))?;
            }
            netns::daemon(ns, &["unshare", "-m", "sh", "-c", DHCPCD_WRAPPER], &log)
        }
    }
}

/// The global IPv6 address on `interface` in `ns`, if any.
pub fn ipv6_on(ns: &str, interface: &str) -> Option<Ipv6Addr> {
    let out = netns::output_in(
        ns,
        &[
            "ip", "-6", "-o", "addr", "show", "dev", interface, "scope", "global",
        ],
    );
    out.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
}

/// The IPv6 default router of `ns`, if its kernel took one from a
/// router advertisement.
pub fn default_router(ns: &str) -> Option<Ipv6Addr> {
    let out = netns::output_in(ns, &["ip", "-6", "route", "show", "default"]);
    out.split_whitespace()
        .skip_while(|w| *w != "via")
        .nth(1)
        .and_then(|a| a.parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clients_take_turns() {
        assert_eq!(Dhcp6Client::for_vm(0), Dhcp6Client::Dhclient);
        assert_eq!(Dhcp6Client::for_vm(1), Dhcp6Client::Dhcpcd);
        assert_eq!(Dhcp6Client::for_vm(3).name(), "dhclient -6");
        assert_ne!(Dhcp6Client::for_vm(2), Dhcp6Client::Dhcpcd);
    }
}
