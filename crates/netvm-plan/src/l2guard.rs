//! The host's layer-2 guards: an nftables `bridge` table of our own
//! (`bridge netvm_l2`), rendered as one `nft -f` transaction that
//! replaces that table and nothing else.
//!
//! Every frame entering a bridge port is checked at prerouting by the
//! port it came in on (one verdict-map lookup):
//!
//! * the net-vm's ports (its internal TAP and, in dev mode, its uplink
//!   TAP and the host's uplink on the uplink bridge): accepted;
//! * a VM's port: source MAC must be the VM's; ARP must be Ethernet/IPv4
//!   with the VM's MAC and address (or 0.0.0.0 for a probe) as sender;
//!   IPv4 must come from the VM's address, or from 0.0.0.0 to the DHCP
//!   server port; a DHCP client message must carry the VM's MAC as its
//!   `chaddr` (so no VM can ask for, decline or release another's
//!   address); DHCP server replies (UDP source port 67), IPv6 router
//!   advertisements and DHCPv6 server replies are dropped; any other
//!   EtherType (VLAN tags included) is dropped;
//! * every other port, whatever its name (QEMU's `tap0`, libvirt's
//!   `vnetN`, a veth, a TAP someone else added): an unknown VM. It must
//!   not use a described endpoint's MAC or address (as source, ARP sender
//!   or DHCP `chaddr`), may not act as a DHCP server or router, sends
//!   only IPv4, ARP and IPv6, and may introduce at most
//!   `[host] unknown_port_new_macs` new source MACs and as many new DHCP
//!   client addresses an hour (so one port cannot empty the dynamic pool
//!   with invented clients).
//!
//! The kernel here has no `meta ibrname` (nft_meta_bridge), so the guard
//! holds on every bridge of the host: the host is netvm's, and a port
//! netvm did not plan is an unknown VM wherever it is.
//!
//! At forward, a frame between two ports neither of which is the
//! net-vm's is dropped (`isolation`): the ports' `isolated` flag does
//! that for planned ports, this does it for every port, so an unknown
//! port reaches the net-vm and nothing else. In secure mode every frame
//! the host itself would send through a bridge is dropped and counted
//! (`host_sent`): the secure host has nothing to say on the network.
//!
//! Drops go to a per-port chain that counts them in a named counter
//! (`port_<vm>`, `unknown_ports`) and logs them rate-limited with a
//! prefix naming the port.

use crate::host::{PortPlan, UplinkBridgePlan};
use netvm_description::values::MacAddr;
use netvm_description::{Mode, Role, System};
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

/// The named counter of ports the description does not know.
pub const UNKNOWN_COUNTER: &str = "unknown_ports";

/// The named counter of frames dropped between two ports that are not
/// the net-vm's.
pub const ISOLATION_COUNTER: &str = "isolation";

/// The named counter of frames the secure host tried to send.
pub const HOST_SENT_COUNTER: &str = "host_sent";

/// The DHCP client hardware address (`chaddr`) in a UDP packet: BOOTP
/// offset 28 after the 8-byte UDP header, 48 bits.
const CHADDR: &str = "@th,288,48";

/// How long an unknown port's source MAC or DHCP client address counts
/// as known once admitted.
const KNOWN_FOR: &str = "1h";

/// Distinct (port, MAC) pairs remembered at most; past that, every frame
/// of an unremembered MAC takes one of its port's new-MAC tokens.
const KNOWN_MAX: u32 = 4096;

/// `chaddr` written as the integer nft compares it with.
fn chaddr_value(mac: MacAddr) -> String {
    let value = mac.0.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b));
    format!("{value:#014x}")
}

/// Renders the guard table for the internal bridge's `ports`.
pub fn render(system: &System, ports: &[PortPlan], uplink: Option<&UplinkBridgePlan>) -> String {
    let mut out = String::new();
    let w = &mut out;
    // The net-vm's own ports, and in dev mode the uplink bridge's two.
    let mut trusted: Vec<String> = ports
        .iter()
        .filter(|p| p.role == Role::NetVm)
        .map(|p| format!("\"{}\"", p.name))
        .collect();
    if let Some(up) = uplink {
        trusted.push(format!("\"{}\"", up.netvm_port));
        trusted.push(format!("\"{}\"", up.host_uplink));
    }
    let secure = system.netvm.mode == Mode::Secure;
    // `table` first so that `delete` never fails on a fresh host; both in
    // the same transaction, so the old table stays if the new one fails.
    let _ = writeln!(w, "table bridge {TABLE}\ndelete table bridge {TABLE}");
    let _ = writeln!(w, "table bridge {TABLE} {{");
    for port in ports.iter().filter(|p| p.role != Role::NetVm) {
        let _ = writeln!(w, "\tcounter {} {{ }}", counter_name(&port.vm));
    }
    let _ = writeln!(w, "\tcounter {UNKNOWN_COUNTER} {{ }}");
    let _ = writeln!(w, "\tcounter {ISOLATION_COUNTER} {{ }}");
    if secure {
        let _ = writeln!(w, "\tcounter {HOST_SENT_COUNTER} {{ }}");
    }
    let _ = writeln!(w);
    render_unknown_sets(w);

    let _ = writeln!(w, "\tchain ports {{");
    let _ = writeln!(
        w,
        "\t\ttype filter hook prerouting priority -200; policy accept;"
    );
    let mut verdicts: Vec<String> = trusted.iter().map(|t| format!("{t} : accept")).collect();
    for port in ports.iter().filter(|p| p.role != Role::NetVm) {
        verdicts.push(format!("\"{}\" : jump port_{}", port.name, ident(&port.vm)));
    }
    let _ = writeln!(w, "\t\tiifname vmap {{ {} }}", verdicts.join(", "));
    let _ = writeln!(
        w,
        "\t\tjump unknown_port comment \"every port the plan does not name\"\n\t}}"
    );

    let _ = writeln!(
        w,
        "\n\tchain isolation {{\n\
         \t\ttype filter hook forward priority -200; policy accept;\n\
         \t\tiifname {{ {list} }} accept\n\
         \t\toifname {{ {list} }} accept\n\
         \t\tcounter name \"{ISOLATION_COUNTER}\" drop comment \"only the net-vm talks to VMs\"\n\
         \t}}",
        list = trusted.join(", ")
    );
    if secure {
        let _ = writeln!(
            w,
            "\n\tchain host_silent {{\n\
             \t\ttype filter hook output priority -200; policy accept;\n\
             \t\tcounter name \"{HOST_SENT_COUNTER}\" drop comment \"the secure host sends nothing\"\n\
             \t}}"
        );
    }

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

/// The sets that remember which source MACs and DHCP client addresses
/// each unknown port has introduced, and each port's token bucket.
fn render_unknown_sets(w: &mut String) {
    for (name, key) in [
        ("unknown_macs", "iifname . ether saddr"),
        ("unknown_chaddrs", &format!("iifname . {CHADDR}")),
    ] {
        let _ = writeln!(
            w,
            "\tset {name} {{\n\t\ttypeof {key}\n\t\tflags dynamic, timeout\n\t\ttimeout {KNOWN_FOR}\n\t\tsize {KNOWN_MAX}\n\t}}\n"
        );
    }
    // A port's bucket lives as long as its refill takes, so that an idle
    // port does not get a full burst back every minute: at most twice the
    // limit in any hour.
    for name in ["unknown_new_macs", "unknown_new_chaddrs"] {
        let _ = writeln!(
            w,
            "\tset {name} {{\n\t\ttype ifname\n\t\tflags dynamic, timeout\n\t\ttimeout 1h\n\t\tsize {KNOWN_MAX}\n\t}}\n"
        );
    }
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
        "\t\tether type ip udp dport 67 {CHADDR} != {} goto {drop} comment \"DHCP for its own MAC only\"",
        chaddr_value(mac)
    );
    let _ = writeln!(
        w,
        "\t\tether type ip ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept"
    );
    let _ = writeln!(w, "\t\tether type ip ip saddr != {ip} goto {drop}");
    let _ = writeln!(w, "\t\tether type {{ ip, ip6 }} accept");
    let _ = writeln!(w, "\t\tgoto {drop}\n\t}}");
}

fn render_unknown(w: &mut String, system: &System) {
    let endpoints: Vec<_> = system.endpoints().map(|(_, _, e)| (e.mac, e.ip)).collect();
    let macs: Vec<String> = endpoints.iter().map(|(mac, _)| mac.to_string()).collect();
    let chaddrs: Vec<String> = endpoints
        .iter()
        .map(|(mac, _)| chaddr_value(*mac))
        .collect();
    let ips: Vec<String> = endpoints.iter().map(|(_, ip)| ip.to_string()).collect();
    let drop = "drop_unknown";
    let _ = writeln!(w, "\n\tchain unknown_port {{");
    let _ = writeln!(w, "\t\tether saddr {{ {} }} goto {drop}", macs.join(", "));
    arp_shape(w, drop);
    let _ = writeln!(
        w,
        "\t\tether type arp arp saddr ether {{ {} }} goto {drop}",
        macs.join(", ")
    );
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
    let _ = writeln!(
        w,
        "\t\tether type ip udp dport 67 {CHADDR} {{ {} }} goto {drop} comment \"a described VM's DHCP identity\"",
        chaddrs.join(", ")
    );
    no_servers(w, drop);
    let _ = writeln!(w, "\t\tether type != {{ ip, arp, ip6 }} goto {drop}");
    let _ = writeln!(
        w,
        "\t\tiifname . ether saddr != @unknown_macs jump unknown_new_mac"
    );
    let _ = writeln!(
        w,
        "\t\tether type ip udp dport 67 iifname . {CHADDR} != @unknown_chaddrs jump unknown_new_chaddr"
    );
    let _ = writeln!(w, "\t\taccept\n\t}}");
    let per_hour = system.host.unknown_port_new_macs;
    for (chain, tokens, known, key) in [
        (
            "unknown_new_mac",
            "unknown_new_macs",
            "unknown_macs",
            "iifname . ether saddr".to_owned(),
        ),
        (
            "unknown_new_chaddr",
            "unknown_new_chaddrs",
            "unknown_chaddrs",
            format!("iifname . {CHADDR}"),
        ),
    ] {
        let _ = writeln!(w, "\n\tchain {chain} {{");
        if per_hour == 0 {
            let _ = writeln!(w, "\t\tgoto {drop} comment \"no new MAC allowed\"");
        } else {
            let _ = writeln!(
                w,
                "\t\tadd @{tokens} {{ iifname limit rate over {per_hour}/hour burst {per_hour} packets }} goto {drop}"
            );
            let _ = writeln!(w, "\t\tadd @{known} {{ {key} }}");
        }
        let _ = writeln!(w, "\t}}");
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::{parse, Format};

    fn guard(extra: &str) -> String {
        let text = format!(
            "[netvm.uplink]\ninterface = \"eth0\"\n{extra}\n[[vm]]\nname = \"a\"\n[[vm]]\nname = \"b\"\n"
        );
        let system = parse("t.toml", &text, Format::Toml).expect("valid");
        crate::host::plan(&system).expect("plan").ruleset
    }

    #[test]
    fn every_port_the_plan_does_not_name_is_an_unknown_vm_whatever_its_name() {
        let text = guard("");
        let ports = text
            .split("chain ports {")
            .nth(1)
            .and_then(|c| c.split('}').nth(1))
            .expect("ports chain");
        // After the named ports' verdicts, everything else: no name test.
        assert!(ports.contains("\t\tjump unknown_port comment"), "{ports}");
        assert!(!text.contains("tap-*"), "{text}");
        assert!(text.contains("\"tap-a\" : jump port_a"), "{text}");
        assert!(text.contains("\"tap-net-vm\" : accept"), "{text}");
    }

    #[test]
    fn only_the_net_vm_talks_to_vms_and_the_secure_host_says_nothing() {
        let text = guard("");
        assert!(text.contains(
            "chain isolation {\n\t\ttype filter hook forward priority -200; policy accept;\n\t\tiifname { \"tap-net-vm\" } accept\n\t\toifname { \"tap-net-vm\" } accept\n\t\tcounter name \"isolation\" drop"
        ), "{text}");
        assert!(text.contains("hook output"), "{text}");
        assert!(text.contains("counter name \"host_sent\" drop"), "{text}");
        let dev = guard("[netvm]\nmode = \"dev\"\n[host]\nuplink = \"eth9\"\n");
        assert!(!dev.contains("hook output"), "{dev}");
        assert!(
            dev.contains("iifname { \"tap-net-vm\", \"tap-net-vm-up\", \"eth9\" } accept"),
            "{dev}"
        );
    }

    #[test]
    fn dhcp_identities_are_checked_on_every_port() {
        let text = guard("");
        assert_eq!(
            chaddr_value("02:ad:00:00:00:65".parse().expect("mac")),
            "0x02ad00000065"
        );
        assert!(
            text.contains("ether type ip udp dport 67 @th,288,48 != 0x02ad00000065 goto drop_a"),
            "{text}"
        );
        assert!(
            text.contains(
                "@th,288,48 { 0x02ad00000001, 0x02ad00000065, 0x02ad00000066 } goto drop_unknown"
            ),
            "{text}"
        );
    }

    #[test]
    fn new_macs_on_unknown_ports_are_limited_as_described() {
        let text = guard("[host]\nunknown_port_new_macs = 7\n");
        assert!(text.contains(
            "add @unknown_new_macs { iifname limit rate over 7/hour burst 7 packets } goto drop_unknown"
        ), "{text}");
        assert!(text.contains(
            "add @unknown_new_chaddrs { iifname limit rate over 7/hour burst 7 packets } goto drop_unknown"
        ), "{text}");
        let none = guard("[host]\nunknown_port_new_macs = 0\n");
        assert!(!none.contains("limit rate over 0"), "{none}");
        assert!(
            none.contains("goto drop_unknown comment \"no new MAC allowed\""),
            "{none}"
        );
    }
}
