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
//!   address); DHCP server replies (UDP source port 67) are dropped; IPv6
//!   goes through the IPv6 guard below; any other EtherType (VLAN tags
//!   included) is dropped;
//! * every other port, whatever its name (QEMU's `tap0`, libvirt's
//!   `vnetN`, a veth, a TAP someone else added): an unknown VM. It must
//!   not use a described endpoint's MAC or address (as source, ARP sender
//!   or DHCP `chaddr`, IPv6 interface identifier), may not act as a DHCP
//!   server, DHCPv6 server or router, sends only IPv4, ARP and IPv6, and
//!   may introduce at most `[host] unknown_port_new_macs` new source MACs
//!   and as many new DHCP client addresses an hour (so one port cannot
//!   empty the dynamic pool with invented clients).
//!
//! The IPv6 guard (per port, whether or not `[network] ipv6` is on: it
//! needs no prefix, so with IPv6 off a VM's IPv6 is checked the same way
//! and the Net VM drops what passes). The internal prefix can change at
//! run time (a prefix delegated by the uplink) and the host never learns
//! it, so sources are checked by their interface identifier, the low 64
//! bits, and by scope:
//!
//! * router advertisements, redirects and router renumbering (ICMPv6 134,
//!   137, 138) and DHCPv6 server messages (UDP source port 547, or to the
//!   client port 546) are dropped: only the Net VM routes and serves;
//! * the source is `::` only for a duplicate address detection NS (to a
//!   solicited-node group) or an MLDv2 report to `ff02::16` (RFC 3590);
//!   otherwise it is in `fe80::/64` (any identifier: the guest picks its
//!   link-local address), or in `2000::/3` or `fc00::/7` (the internal
//!   prefix is one of those) with the VM's identifier (its IPv4 host
//!   number, [`System::ipv6_iid`]); an unknown port's must not be a
//!   described endpoint's identifier;
//! * router and neighbour solicitations and advertisements must come in
//!   one packet with no extension header (no fragment: RFC 6980) and hop
//!   limit 255, and in one of a few exact shapes, because nft reads them
//!   at fixed offsets: no option at all, or exactly one option, the
//!   source/target link-layer address of RFC 4861 4.6.1 carrying the
//!   VM's own MAC (an unknown port: a MAC it introduced as a source), or
//!   for DAD the nonce of RFC 7527. So an option anywhere but first, or
//!   any second option, drops the message: no guest sends that;
//! * the target of a neighbour advertisement or of a DAD solicitation is
//!   link-local (`fe80::/64`) or has the VM's identifier (an unknown
//!   port's: no described identifier), so no VM claims another's address.
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
//! (`host_sent`), IPv6 as much as anything: the secure host has nothing
//! to say on the network.
//!
//! Drops go to a per-port chain that counts them in a named counter
//! (`port_<vm>`, `unknown_ports`) and logs them rate-limited with a
//! prefix naming the port.

use crate::host::{PortPlan, UplinkBridgePlan};
use netvm_description::values::MacAddr;
use netvm_description::{Mode, Role, System};
use std::fmt::Write;
use std::net::Ipv6Addr;

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

/// An unknown port's source MAC (`ether saddr` read raw, so that it can
/// be compared with the link-layer address in a neighbour discovery
/// option, which nft reads raw too).
const SOURCE_MAC: &str = "@ll,48,48";

/// How long an unknown port's source MAC or DHCP client address counts
/// as known once admitted.
const KNOWN_FOR: &str = "1h";

/// Distinct (port, MAC) pairs remembered at most; past that, every frame
/// of an unremembered MAC takes one of its port's new-MAC tokens.
const KNOWN_MAX: u32 = 4096;

/// The MAC as a 48-bit integer.
fn mac_bits(mac: MacAddr) -> u64 {
    mac.0.iter().fold(0u64, |v, b| (v << 8) | u64::from(*b))
}

/// `chaddr` written as the integer nft compares it with.
fn chaddr_value(mac: MacAddr) -> String {
    format!("{:#014x}", mac_bits(mac))
}

/// A whole source (`kind` 1) or target (`kind` 2) link-layer address
/// option carrying `mac` (RFC 4861 4.6.1: type, length 1 in units of 8
/// bytes, the MAC), as the 64-bit integer nft compares it with.
fn lladdr_option(kind: u8, mac: MacAddr) -> String {
    let value = (u64::from(kind) << 56) | (1 << 48) | mac_bits(mac);
    format!("{value:#018x}")
}

/// The interface identifier (low 64 bits) as an address (`::65`), for
/// `ip6 saddr & ::ffff:ffff:ffff:ffff`.
fn iid_address(iid: u128) -> Ipv6Addr {
    Ipv6Addr::from(iid & u128::from(u64::MAX))
}

/// The interface identifier as the 64-bit integer `@th,128,64` (the low
/// half of an NS/NA target) is compared with.
fn iid_value(iid: u128) -> String {
    format!("{:#x}", iid & u128::from(u64::MAX))
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
        render_ip6(w, &ident(&port.vm), &Source::Vm(port));
    }
    render_unknown(w, system);
    let described: Vec<u128> = system
        .endpoints()
        .map(|(_, _, e)| system.ipv6_iid(e))
        .collect();
    render_ip6(w, "unknown", &Source::Unknown(&described));
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
        ("unknown_macs", &format!("iifname . {SOURCE_MAC}")),
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
    let _ = writeln!(w, "\t\tether type ip udp sport 67 goto {drop}");
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
    let _ = writeln!(w, "\t\tether type ip accept");
    let _ = writeln!(w, "\t\tether type ip6 goto ip6_{id}");
    let _ = writeln!(w, "\t\tgoto {drop}\n\t}}");
}

/// Whose IPv6 a chain checks.
enum Source<'a> {
    /// A described VM's port: its own MAC and interface identifier.
    Vm(&'a PortPlan),
    /// A port the plan does not name: no described interface identifier
    /// (these), and link-layer addresses among the MACs it introduced.
    Unknown(&'a [u128]),
}

/// The IPv6 guard of one port: chains `ip6_<id>` (sources, servers,
/// routers), `nd_<id>` (the shapes of RS, NS and NA) and `target_<id>`
/// (whose address an NA or a DAD NS may name). Every drop goes to the
/// port's `drop_<id>`.
fn render_ip6(w: &mut String, id: &str, source: &Source) {
    let drop = format!("drop_{id}");
    let _ = writeln!(w, "\n\tchain ip6_{id} {{");
    let _ = writeln!(w, "\t\tip6 version != 6 goto {drop}");
    let _ = writeln!(
        w,
        "\t\ticmpv6 type {{ nd-router-advert, nd-redirect, router-renumbering }} goto {drop} comment \"only the net-vm routes\""
    );
    let _ = writeln!(
        w,
        "\t\tudp sport 547 goto {drop} comment \"only the net-vm serves DHCPv6\""
    );
    let _ = writeln!(w, "\t\tudp dport 546 goto {drop}");
    let _ = writeln!(
        w,
        "\t\tip6 saddr :: icmpv6 type nd-neighbor-solicit goto nd_{id} comment \"duplicate address detection\""
    );
    let _ = writeln!(
        w,
        "\t\tip6 saddr :: icmpv6 type mld2-listener-report ip6 daddr ff02::16 accept"
    );
    let _ = writeln!(w, "\t\tip6 saddr :: goto {drop}");
    let _ = writeln!(
        w,
        "\t\tip6 saddr != {{ fe80::/64, 2000::/3, fc00::/7 }} goto {drop} comment \"link-local, global or unique local\""
    );
    let low = "ip6 saddr & ::ffff:ffff:ffff:ffff";
    match source {
        Source::Vm(port) => {
            let _ = writeln!(
                w,
                "\t\tip6 saddr != fe80::/64 {low} != {} goto {drop} comment \"its own interface identifier\"",
                iid_address(port.ipv6_iid)
            );
        }
        Source::Unknown(described) => {
            let list: Vec<String> = described
                .iter()
                .map(|iid| iid_address(*iid).to_string())
                .collect();
            let _ = writeln!(
                w,
                "\t\tip6 saddr != fe80::/64 {low} {{ {} }} goto {drop} comment \"a described endpoint's interface identifier\"",
                list.join(", ")
            );
        }
    }
    let _ = writeln!(
        w,
        "\t\ticmpv6 type {{ nd-router-solicit, nd-neighbor-solicit, nd-neighbor-advert }} goto nd_{id}"
    );
    let _ = writeln!(w, "\t\taccept\n\t}}");

    // Options are read at the fixed offset of the first one: 8 bytes
    // into an RS, 24 into an NS or NA (RFC 4861 4.1, 4.3, 4.4).
    let (rs_option, ns_option, na_option, who) = match source {
        Source::Vm(port) => (
            format!("@th,64,64 {}", lladdr_option(1, port.mac)),
            format!("@th,192,64 {}", lladdr_option(1, port.mac)),
            format!("@th,192,64 {}", lladdr_option(2, port.mac)),
            "its own MAC",
        ),
        Source::Unknown(_) => (
            "@th,64,16 0x0101 iifname . @th,80,48 @unknown_macs".to_owned(),
            "@th,192,16 0x0101 iifname . @th,208,48 @unknown_macs".to_owned(),
            "@th,192,16 0x0201 iifname . @th,208,48 @unknown_macs".to_owned(),
            "a MAC it introduced",
        ),
    };
    let _ = writeln!(w, "\n\tchain nd_{id} {{");
    let _ = writeln!(
        w,
        "\t\tip6 nexthdr != 58 goto {drop} comment \"no extension header, no fragment (RFC 6980)\""
    );
    let _ = writeln!(w, "\t\tip6 hoplimit != 255 goto {drop}");
    let _ = writeln!(w, "\t\ticmpv6 type nd-router-solicit ip6 length 8 accept");
    let _ = writeln!(
        w,
        "\t\ticmpv6 type nd-router-solicit ip6 length 16 {rs_option} accept comment \"{who} as source link-layer address\""
    );
    let _ = writeln!(
        w,
        "\t\ticmpv6 type nd-neighbor-solicit ip6 saddr != :: ip6 length 24 accept"
    );
    let _ = writeln!(
        w,
        "\t\ticmpv6 type nd-neighbor-solicit ip6 saddr != :: ip6 length 32 {ns_option} accept comment \"{who} as source link-layer address\""
    );
    let dad = "icmpv6 type nd-neighbor-solicit ip6 saddr :: ip6 daddr ff02::1:ff00:0/104";
    let _ = writeln!(
        w,
        "\t\t{dad} ip6 length 24 goto target_{id} comment \"duplicate address detection\""
    );
    let _ = writeln!(
        w,
        "\t\t{dad} ip6 length 32 @th,192,16 0x0e01 goto target_{id} comment \"duplicate address detection with a nonce (RFC 7527)\""
    );
    let _ = writeln!(
        w,
        "\t\ticmpv6 type nd-neighbor-advert ip6 length 24 goto target_{id}"
    );
    let _ = writeln!(
        w,
        "\t\ticmpv6 type nd-neighbor-advert ip6 length 32 {na_option} goto target_{id} comment \"{who} as target link-layer address\""
    );
    let _ = writeln!(w, "\t\tgoto {drop}\n\t}}");

    let _ = writeln!(w, "\n\tchain target_{id} {{");
    let _ = writeln!(
        w,
        "\t\t@th,64,64 0xfe80000000000000 accept comment \"a link-local target\""
    );
    match source {
        Source::Vm(port) => {
            let _ = writeln!(
                w,
                "\t\t@th,128,64 {} accept comment \"a target with its own interface identifier\"",
                iid_value(port.ipv6_iid)
            );
            let _ = writeln!(w, "\t\tgoto {drop}\n\t}}");
        }
        Source::Unknown(described) => {
            let list: Vec<String> = described.iter().map(|iid| iid_value(*iid)).collect();
            let _ = writeln!(
                w,
                "\t\t@th,128,64 {{ {} }} goto {drop} comment \"a described endpoint's address\"",
                list.join(", ")
            );
            let _ = writeln!(w, "\t\taccept\n\t}}");
        }
    }
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
    let _ = writeln!(w, "\t\tether type ip udp sport 67 goto {drop}");
    let _ = writeln!(w, "\t\tether type != {{ ip, arp, ip6 }} goto {drop}");
    let _ = writeln!(
        w,
        "\t\tiifname . {SOURCE_MAC} != @unknown_macs jump unknown_new_mac"
    );
    let _ = writeln!(
        w,
        "\t\tether type ip udp dport 67 iifname . {CHADDR} != @unknown_chaddrs jump unknown_new_chaddr"
    );
    // After the new-MAC step, so that the frame's own MAC is one the port
    // introduced when its neighbour discovery options are checked.
    let _ = writeln!(w, "\t\tether type ip6 goto ip6_unknown");
    let _ = writeln!(w, "\t\taccept\n\t}}");
    let per_hour = system.host.unknown_port_new_macs;
    for (chain, tokens, known, key) in [
        (
            "unknown_new_mac",
            "unknown_new_macs",
            "unknown_macs",
            format!("iifname . {SOURCE_MAC}"),
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

    /// The chain `name` of `text`, up to its closing brace.
    fn chain<'a>(text: &'a str, name: &str) -> &'a str {
        let start = text
            .find(&format!("\tchain {name} {{"))
            .unwrap_or_else(|| panic!("no chain {name} in {text}"));
        let len = text[start..].find("\n\t}").expect("closing brace");
        &text[start..start + len]
    }

    #[test]
    fn a_vms_ipv6_goes_through_its_own_guard_and_only_there() {
        let text = guard("");
        let port = chain(&text, "port_a");
        assert!(
            port.ends_with(
                "\t\tether type ip accept\n\t\tether type ip6 goto ip6_a\n\t\tgoto drop_a"
            ),
            "{port}"
        );
        assert!(
            !port.contains("ip6 accept") && !port.contains("{ ip, ip6 }"),
            "{port}"
        );
        let unknown = chain(&text, "unknown_port");
        // The new-MAC step comes first, so the ND chain sees the frame's
        // own MAC among those the port introduced.
        let step = unknown.find("jump unknown_new_mac").expect("new MAC step");
        let ip6 = unknown
            .find("ether type ip6 goto ip6_unknown")
            .expect("IPv6 guard");
        assert!(step < ip6, "{unknown}");
        assert!(text.contains("typeof iifname . @ll,48,48"), "{text}");
    }

    #[test]
    fn only_the_net_vm_routes_and_serves_dhcpv6() {
        let text = guard("");
        for id in ["a", "b", "unknown"] {
            let ip6 = chain(&text, &format!("ip6_{id}"));
            for rule in [
                format!("icmpv6 type {{ nd-router-advert, nd-redirect, router-renumbering }} goto drop_{id}"),
                format!("udp sport 547 goto drop_{id}"),
                format!("udp dport 546 goto drop_{id}"),
            ] {
                assert!(ip6.contains(&rule), "{id}: no {rule:?} in {ip6}");
            }
            // Dropped before any rule that accepts.
            let accept = ip6.find("accept").expect("accepts");
            assert!(
                ip6.find("router-renumbering").expect("RA") < accept,
                "{ip6}"
            );
        }
    }

    #[test]
    fn ipv6_sources_are_the_vms_identifier_link_local_or_unspecified_for_dad_and_mld() {
        let text = guard("");
        // a is 192.168.100.101: identifier 0x65.
        let ip6 = chain(&text, "ip6_a");
        for rule in [
            "ip6 saddr :: icmpv6 type nd-neighbor-solicit goto nd_a",
            "ip6 saddr :: icmpv6 type mld2-listener-report ip6 daddr ff02::16 accept",
            "ip6 saddr :: goto drop_a",
            "ip6 saddr != { fe80::/64, 2000::/3, fc00::/7 } goto drop_a",
            "ip6 saddr != fe80::/64 ip6 saddr & ::ffff:ffff:ffff:ffff != ::65 goto drop_a",
        ] {
            assert!(ip6.contains(rule), "no {rule:?} in {ip6}");
        }
        assert_eq!(iid_address(0x65).to_string(), "::65");
        assert_eq!(iid_address(0xab_cdef).to_string(), "::ab:cdef");
        // The unknown port: any identifier but a described one (net-vm,
        // a, b), in any prefix.
        let unknown = chain(&text, "ip6_unknown");
        assert!(unknown.contains(
            "ip6 saddr != fe80::/64 ip6 saddr & ::ffff:ffff:ffff:ffff { ::1, ::65, ::66 } goto drop_unknown"
        ), "{unknown}");
    }

    #[test]
    fn neighbour_discovery_carries_the_vms_own_mac_and_claims_only_its_own_address() {
        let text = guard("");
        let mac: MacAddr = "02:ad:00:00:00:65".parse().expect("mac");
        assert_eq!(lladdr_option(1, mac), "0x010102ad00000065");
        assert_eq!(lladdr_option(2, mac), "0x020102ad00000065");
        let nd = chain(&text, "nd_a");
        for rule in [
            "ip6 nexthdr != 58 goto drop_a",
            "ip6 hoplimit != 255 goto drop_a",
            "icmpv6 type nd-router-solicit ip6 length 8 accept",
            "icmpv6 type nd-router-solicit ip6 length 16 @th,64,64 0x010102ad00000065 accept",
            "icmpv6 type nd-neighbor-solicit ip6 saddr != :: ip6 length 24 accept",
            "icmpv6 type nd-neighbor-solicit ip6 saddr != :: ip6 length 32 @th,192,64 0x010102ad00000065 accept",
            "icmpv6 type nd-neighbor-solicit ip6 saddr :: ip6 daddr ff02::1:ff00:0/104 ip6 length 24 goto target_a",
            "icmpv6 type nd-neighbor-solicit ip6 saddr :: ip6 daddr ff02::1:ff00:0/104 ip6 length 32 @th,192,16 0x0e01 goto target_a",
            "icmpv6 type nd-neighbor-advert ip6 length 24 goto target_a",
            "icmpv6 type nd-neighbor-advert ip6 length 32 @th,192,64 0x020102ad00000065 goto target_a",
        ] {
            assert!(nd.contains(rule), "no {rule:?} in {nd}");
        }
        // Any other shape (another option, a second option) is dropped.
        assert!(nd.ends_with("\t\tgoto drop_a"), "{nd}");
        assert_eq!(
            chain(&text, "target_a"),
            "\tchain target_a {\n\
             \t\t@th,64,64 0xfe80000000000000 accept comment \"a link-local target\"\n\
             \t\t@th,128,64 0x65 accept comment \"a target with its own interface identifier\"\n\
             \t\tgoto drop_a"
        );
        let unknown = chain(&text, "nd_unknown");
        assert!(unknown.contains(
            "icmpv6 type nd-neighbor-advert ip6 length 32 @th,192,16 0x0201 iifname . @th,208,48 @unknown_macs goto target_unknown"
        ), "{unknown}");
        assert!(chain(&text, "target_unknown")
            .contains("@th,128,64 { 0x1, 0x65, 0x66 } goto drop_unknown"));
    }

    #[test]
    fn the_ipv6_guard_needs_no_prefix_and_is_the_same_with_ipv6_off() {
        let derived = guard("");
        let written = guard("[network]\nipv6_prefix = \"2001:db8:1:2::/64\"\n");
        let off = guard("[network]\nipv6 = false\n");
        assert_eq!(derived, written);
        assert_eq!(derived, off);
        assert!(!derived.contains("2001:db8"), "{derived}");
    }

    #[test]
    fn the_secure_host_sends_no_ipv6_either() {
        let text = guard("");
        // Every frame, whatever its EtherType, at bridge output.
        let silent = chain(&text, "host_silent");
        assert!(
            silent.ends_with(
                "\t\tcounter name \"host_sent\" drop comment \"the secure host sends nothing\""
            ),
            "{silent}"
        );
        assert!(!silent.contains("ether type"), "{silent}");
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
