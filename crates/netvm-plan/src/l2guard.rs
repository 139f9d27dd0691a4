//! The host's layer-2 guards: an nftables `bridge` table of our own
//! (`bridge netvm_l2`), rendered as one `nft -f` transaction that
//! replaces that table and nothing else.
//!
//! Every frame entering the internal bridge is checked at prerouting by
//! the port it came in on (one verdict-map lookup):
//!
//! * the net-vm's ports (its internal TAP and, in dev mode, its uplink
//!   TAP): accepted;
//! * a VM's port: source MAC must be the VM's; ARP must be Ethernet/IPv4
//!   with the VM's MAC and address (or 0.0.0.0 for a probe) as sender;
//!   IPv4 must come from the VM's address, or from 0.0.0.0 to the DHCP
//!   server port; DHCP server replies (UDP source port 67), IPv6 router
//!   advertisements and DHCPv6 server replies are dropped; any other
//!   EtherType (VLAN tags included) is dropped;
//! * any other port (a TAP someone else added): must not use a described
//!   endpoint's MAC or address, and may not act as a DHCP server or
//!   router either.
//!
//! Drops go to a per-port chain that counts them in a named counter
//! (`port_<vm>`, `unknown_ports`) and logs them rate-limited with a
//! prefix naming the port. Frames on other bridges are not touched.

use crate::host::PortPlan;
use netvm_description::{Role, System};
use std::fmt::Write;

/// The table the guards live in (family `bridge`).
pub const TABLE: &str = "netvm_l2";

/// Dropped frames logged per second at most, per port.
const LOG_RATE: &str = "5/second";

/// The nft identifier for `vm` (VM names are DNS labels; `-` → `_`).
pub fn ident(vm: &str) -> String {
    vm.replace('-', "_")
}

/// The named counter of `vm`'s port.
pub fn counter_name(vm: &str) -> String {
    format!("port_{}", ident(vm))
}

/// Ports the description does not know are guarded when their name has
/// this prefix (netvm's own TAP naming).
pub const UNKNOWN_PREFIX: &str = "tap-";

/// The named counter of ports the description does not know.
pub const UNKNOWN_COUNTER: &str = "unknown_ports";

/// Renders the guard table for the internal bridge's `ports`.
pub fn render(system: &System, ports: &[PortPlan], netvm_uplink_tap: Option<&str>) -> String {
    let mut out = String::new();
    let w = &mut out;
    // `table` first so that `delete` never fails on a fresh host; both in
    // the same transaction, so the old table stays if the new one fails.
    let _ = writeln!(w, "table bridge {TABLE}\ndelete table bridge {TABLE}");
    let _ = writeln!(w, "table bridge {TABLE} {{");
    for port in ports.iter().filter(|p| p.role != Role::NetVm) {
        let _ = writeln!(w, "\tcounter {} {{ }}", counter_name(&port.vm));
    }
    let _ = writeln!(w, "\tcounter {UNKNOWN_COUNTER} {{ }}\n");

    let _ = writeln!(w, "\tchain ports {{");
    let _ = writeln!(
        w,
        "\t\ttype filter hook prerouting priority -200; policy accept;"
    );
    let mut verdicts = Vec::new();
    for port in ports {
        let verdict = match port.role {
            Role::NetVm => "accept".to_owned(),
            _ => format!("jump port_{}", ident(&port.vm)),
        };
        verdicts.push(format!("\"{}\" : {verdict}", port.name));
    }
    if let Some(tap) = netvm_uplink_tap {
        verdicts.push(format!("\"{tap}\" : accept"));
    }
    let _ = writeln!(w, "\t\tiifname vmap {{ {} }}", verdicts.join(", "));
    let _ = writeln!(
        w,
        "\t\tiifname \"{UNKNOWN_PREFIX}*\" jump unknown_port\n\t}}"
    );

    for port in ports.iter().filter(|p| p.role != Role::NetVm) {
        render_port(w, port);
    }
    render_unknown(w, system);
    for port in ports.iter().filter(|p| p.role != Role::NetVm) {
        render_drop(w, &ident(&port.vm), &counter_name(&port.vm), &port.name);
    }
    render_drop(w, "unknown", UNKNOWN_COUNTER, "unknown port");
    let _ = writeln!(w, "}}");
    out
}

/// Rules that hold for every VM-facing port: no DHCP server, no router.
fn no_servers(w: &mut String, drop: &str) {
    let _ = writeln!(w, "\t\tether type ip udp sport 67 goto {drop}");
    let _ = writeln!(
        w,
        "\t\tether type ip6 icmpv6 type nd-router-advert goto {drop}"
    );
    let _ = writeln!(w, "\t\tether type ip6 udp sport 547 goto {drop}");
}

/// ARP that is not Ethernet/IPv4 cannot be checked by address: dropped.
fn arp_shape(w: &mut String, drop: &str) {
    let _ = writeln!(
        w,
        "\t\tether type arp arp htype != 1 goto {drop}\n\
         \t\tether type arp arp ptype != ip goto {drop}\n\
         \t\tether type arp arp hlen != 6 goto {drop}\n\
         \t\tether type arp arp plen != 4 goto {drop}"
    );
}

fn render_port(w: &mut String, port: &PortPlan) {
    let id = ident(&port.vm);
    let drop = format!("drop_{id}");
    let (mac, ip) = (port.mac, port.ip);
    let _ = writeln!(w, "\n\tchain port_{id} {{");
    let _ = writeln!(w, "\t\tether saddr != {mac} goto {drop}");
    arp_shape(w, &drop);
    let _ = writeln!(w, "\t\tether type arp arp saddr ether != {mac} goto {drop}");
    let _ = writeln!(
        w,
        "\t\tether type arp arp saddr ip != {{ {ip}, 0.0.0.0 }} goto {drop}"
    );
    let _ = writeln!(w, "\t\tether type arp accept");
    no_servers(w, &drop);
    let _ = writeln!(
        w,
        "\t\tether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept"
    );
    let _ = writeln!(w, "\t\tether type ip ip saddr != {ip} goto {drop}");
    let _ = writeln!(w, "\t\tether type {{ ip, ip6 }} accept");
    let _ = writeln!(w, "\t\tgoto {drop}\n\t}}");
}

fn render_unknown(w: &mut String, system: &System) {
    let macs: Vec<String> = system
        .endpoints()
        .map(|(_, _, e)| e.mac.to_string())
        .collect();
    let ips: Vec<String> = system
        .endpoints()
        .map(|(_, _, e)| e.ip.to_string())
        .collect();
    let drop = "drop_unknown";
    let _ = writeln!(w, "\n\tchain unknown_port {{");
    let _ = writeln!(w, "\t\tether saddr {{ {} }} goto {drop}", macs.join(", "));
    arp_shape(w, drop);
    let _ = writeln!(
        w,
        "\t\tether type arp arp saddr ip {{ {} }} goto {drop}",
        ips.join(", ")
    );
    let _ = writeln!(
        w,
        "\t\tether type ip ip saddr {{ {} }} goto {drop}",
        ips.join(", ")
    );
    no_servers(w, drop);
    let _ = writeln!(w, "\t\tether type {{ ip, arp, ip6 }} accept");
    let _ = writeln!(w, "\t\tgoto {drop}\n\t}}");
}

fn render_drop(w: &mut String, id: &str, counter: &str, port: &str) {
    let _ = writeln!(
        w,
        "\n\tchain drop_{id} {{\n\
         \t\tcounter name \"{counter}\"\n\
         \t\tlimit rate {LOG_RATE} log prefix \"netvm-l2 drop {port}: \" level warn\n\
         \t\tdrop\n\t}}"
    );
}
