//! The dev-mode host's own firewall on the internal bridge: an nftables
//! `inet` table of our own (`inet netvm_host`), rendered for the same
//! `nft -f` transaction as the layer-2 guards.
//!
//! In dev mode the host has an address on the internal bridge. Bridge
//! port isolation does not apply to the bridge device itself, so without
//! this every VM, pool client and unknown port could open connections to
//! the host, and use it as a router around the Net VM wherever the host
//! forwards (a development machine often does). The rule:
//!
//! * the host may open connections into the internal network (that is
//!   what development mode is for: a shell in a VM, a debugger);
//! * nothing on the internal network may open one to the host: only
//!   replies to the host's own connections come in (conntrack);
//! * nothing is forwarded into or out of the internal bridge by the
//!   host: the Net VM is the only router.
//!
//! The forward chain sees bridged frames too when the kernel hands them
//! to IP netfilter (`br_netfilter`, `bridge-nf-call-iptables = 1`): they
//! come and go through the bridge, addressed to another MAC (and
//! `br_netfilter` marks them `pkttype host` all the same), so only what
//! was sent to the host's own MAC (`ether daddr`) or arrives from another
//! interface is routing, and dropped.
//!
//! Dropped packets are counted in `from_internal`. The secure host has no
//! address and forwards nothing, so it gets no such table.

use netvm_description::{Mode, System};
use std::fmt::Write;

/// The table (family `inet`).
pub const TABLE: &str = "netvm_host";

/// The named counter of what the internal network sent the host.
pub const COUNTER: &str = "from_internal";

/// The table's text for `system` (dev mode only), replacing any earlier
/// one in the same transaction.
pub fn render(system: &System) -> Option<String> {
    let mac = match (&system.netvm.mode, &system.host.endpoint) {
        (Mode::Dev, Some(endpoint)) => endpoint.mac,
        _ => return None,
    };
    let bridge = system.network.bridge.as_str();
    let mut w = String::new();
    let _ = writeln!(w, "table inet {TABLE}\ndelete table inet {TABLE}");
    let _ = writeln!(
        w,
        "table inet {TABLE} {{\n\
         \tcounter {COUNTER} {{ }}\n\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy accept;\n\
         \t\tiifname \"{bridge}\" ct state established,related accept\n\
         \t\tiifname \"{bridge}\" counter name \"{COUNTER}\" drop comment \"the internal network opens nothing on the host\"\n\
         \t}}\n\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tiifname \"{bridge}\" ether daddr {mac} counter name \"{COUNTER}\" drop comment \"the Net VM is the only router\"\n\
         \t\toifname \"{bridge}\" iifname != \"{bridge}\" counter name \"{COUNTER}\" drop comment \"nothing routed in\"\n\
         \t}}\n\
         }}"
    );
    Some(w)
}

/// What removes the table (nothing if it is not there).
pub fn removal() -> String {
    format!("table inet {TABLE}\ndelete table inet {TABLE}\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::{parse, Format};

    #[test]
    fn only_the_dev_host_gets_a_firewall_and_it_lets_nothing_in_uninvited() {
        let secure = parse(
            "s.toml",
            "[netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"a\"\n",
            Format::Toml,
        )
        .expect("valid");
        assert_eq!(render(&secure), None);
        let dev = parse(
            "d.toml",
            "[netvm]\nmode = \"dev\"\n[netvm.uplink]\ninterface = \"eth0\"\n[host]\nuplink = \"eth9\"\n[[vm]]\nname = \"a\"\n",
            Format::Toml,
        )
        .expect("valid");
        let text = render(&dev).expect("dev mode");
        assert!(text.contains("iifname \"vmbr0\" ct state established,related accept\n\t\tiifname \"vmbr0\" counter name \"from_internal\" drop"), "{text}");
        assert!(text.contains("hook forward"), "{text}");
        assert!(text.starts_with("table inet netvm_host\ndelete table inet netvm_host\n"));
    }
}
