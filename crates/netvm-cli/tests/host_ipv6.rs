//! The host's IPv6 guards for real: `netvm host up` (secure mode) in a
//! namespace standing in for the host, a veth standing in for VM a's TAP
//! (its other end in a's namespace) and one for the net-vm's. VM a starts
//! honestly (link-local DAD, MLD, router solicitation, DAD of its own
//! address, pings to the net-vm's link-local and internal address): all
//! of it reaches the net-vm and nothing is counted. Then it lies: radvd
//! as a rogue router, b's address as source, neighbour advertisements
//! with another MAC as target link-layer address or with b's address as
//! target. Each is dropped and counted on a's port; an honest
//! advertisement sent the same way passes. A port the plan does not name
//! gets through with a pool address of its own, not with a's. The secure
//! host has no IPv6 address on the bridge or a port (not even on a port
//! added after `up`), and the audit fails when one appears.
//! Runs as root.

use netvm_testsupport::{veth, Netns, Process};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");

/// Every namespace of this test is named with this (after the fixture's
/// own prefix).
const ROLE: &str = "n6g";

const SECURE: &str = r#"
[network]
ipv6_prefix = "fd00:6:1::/64"

[netvm.uplink]
interface = "eth0"

[[vm]]
name = "a"

[[vm]]
name = "b"
"#;

/// The net-vm's, a's and b's addresses in the internal prefix (their
/// IPv4 host numbers 1, 101 and 102 as interface identifiers).
const NETVM6: &str = "fd00:6:1::1";
const A6: &str = "fd00:6:1::65";
const B6: &str = "fd00:6:1::66";
/// A pool guest's DHCPv6 address: 2^32 + 200 (its IPv4 pool address
/// would be .200).
const POOL6: &str = "fd00:6:1::1:0:c8";
const A_MAC: [u8; 6] = [0x02, 0xad, 0, 0, 0, 0x65];
const OTHER_MAC: [u8; 6] = [0x02, 0xad, 0, 0, 0, 0x99];

/// radvd advertising a prefix of its own on `eth0`.
const RADVD: &str = "interface eth0 {\n\tAdvSendAdvert on;\n\tMinRtrAdvInterval 3;\n\tMaxRtrAdvInterval 4;\n\tprefix fd00:bad::/64 { };\n};\n";

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("host6-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path
}

fn counter(ns: &Netns, name: &str) -> u64 {
    let out = ns.ok(&["nft", "list", "counter", "bridge", "netvm_l2", name]);
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Polls `done` every 100 ms for up to `limit`: whether it came true.
fn eventually(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The IPv6 addresses on `interface` (`ip -6 addr show dev`), with
/// their flags (`tentative` while DAD runs).
fn ipv6_addresses(ns: &Netns, interface: &str) -> Vec<String> {
    ns.ok(&["ip", "-6", "-o", "addr", "show", "dev", interface])
        .lines()
        .map(|l| l.trim().to_owned())
        .collect()
}

/// The link-local address of `interface` once DAD is done.
fn link_local(ns: &Netns, interface: &str) -> String {
    let mut found = None;
    let ready = eventually(Duration::from_secs(20), || {
        found = ipv6_addresses(ns, interface)
            .iter()
            .find(|l| l.contains(" fe80::") && !l.contains("tentative"))
            .and_then(|l| l.split_whitespace().skip_while(|w| *w != "inet6").nth(1))
            .and_then(|a| a.split('/').next())
            .map(str::to_owned);
        found.is_some()
    });
    assert!(
        ready,
        "{interface}: no link-local address: {:?}",
        ipv6_addresses(ns, interface)
    );
    found.unwrap_or_default()
}

fn ping6(ns: &Netns, args: &[&str]) -> bool {
    let mut argv = vec!["ping", "-6", "-c", "2", "-W", "1", "-i", "0.2"];
    argv.extend_from_slice(args);
    ns.exec(&argv).status.success()
}

/// Sends `count` unsolicited neighbour advertisements for `target` with
/// `tlla` as target link-layer address, from `eth0` in `ns` to all nodes
/// (hop limit 255; the kernel picks the source, a's link-local, and
/// computes the checksum). A thread of this process enters `ns` to do it.
fn send_na(ns: &Netns, target: Ipv6Addr, tlla: [u8; 6], count: usize) {
    let path = format!("/run/netns/{}", ns.name());
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("the namespace's file");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))
            .expect("raw ICMPv6 socket");
        socket.bind_device(Some(b"eth0")).expect("bound to eth0");
        socket.set_multicast_hops_v6(255).expect("hop limit 255");
        // RFC 4861 4.4: type 136, code 0, checksum, flags (override),
        // target, then the target link-layer address option.
        let mut na = vec![136, 0, 0, 0, 0x20, 0, 0, 0];
        na.extend_from_slice(&target.octets());
        na.extend_from_slice(&[2, 1]);
        na.extend_from_slice(&tlla);
        let all_nodes = SocketAddrV6::new(Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), 0, 0, 0);
        for _ in 0..count {
            socket
                .send_to(&na, &SockAddr::from(all_nodes))
                .expect("NA sent");
        }
    })
    .join()
    .expect("the sending thread");
}

/// ICMPv6 as the net-vm sees it, verbose (options on their own lines).
fn capture(netvm: &Netns) -> Process {
    let dump = netvm.spawn(&["tcpdump", "-l", "-n", "-v", "-i", "ethint0", "icmp6"]);
    dump.wait_for(Duration::from_secs(10), |l| l.contains("listening on"));
    dump
}

fn audit(host: &Netns, description: &str) -> (bool, String) {
    let out = host.exec(&[NETVM, "host", "audit", description]);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_host_drops_rogue_ipv6_from_a_vm_port_and_has_no_ipv6_itself() {
    let description = scratch("secure6.toml", SECURE);
    let description = description.to_str().expect("utf-8");
    let host = Netns::new(&format!("{ROLE}h"));
    let netvm = Netns::new(&format!("{ROLE}nv"));
    let a = Netns::new(&format!("{ROLE}a"));
    veth(&netvm, "ethint0", &host, "tap-net-vm");
    netvm.ok(&["ip", "addr", "add", "192.168.100.1/24", "dev", "ethint0"]);
    netvm.ok(&[
        "ip",
        "addr",
        "add",
        &format!("{NETVM6}/64"),
        "dev",
        "ethint0",
        "nodad",
    ]);
    veth(&a, "eth0", &host, "tap-a");
    a.ok(&["ip", "link", "set", "eth0", "address", "02:ad:00:00:00:65"]);
    a.ok(&["ip", "addr", "add", "192.168.100.101/24", "dev", "eth0"]);
    // b has no namespace: `up` makes its TAP.

    host.ok(&[NETVM, "host", "up", description]);

    // The secure host: no IPv6 on the bridge or any port, not even
    // link-local (the veths were up, with addresses, before `up`).
    for interface in ["vmbr0", "tap-net-vm", "tap-a", "tap-b"] {
        assert_eq!(
            ipv6_addresses(&host, interface),
            Vec::<String>::new(),
            "{interface}"
        );
    }
    assert_eq!(
        host.ok(&["cat", "/proc/sys/net/ipv6/conf/default/disable_ipv6"])
            .trim(),
        "1"
    );

    // Honest: a comes up again as a guest boots (link-local with DAD,
    // MLD reports, a router solicitation), then its own address with
    // DAD, then pings the net-vm's link-local and internal address.
    let dump = capture(&netvm);
    a.ok(&["ip", "link", "set", "eth0", "down"]);
    a.ok(&["ip", "link", "set", "eth0", "up"]);
    link_local(&a, "eth0");
    a.ok(&["ip", "addr", "add", &format!("{A6}/64"), "dev", "eth0"]);
    assert!(
        eventually(Duration::from_secs(20), || {
            ipv6_addresses(&a, "eth0")
                .iter()
                .any(|l| l.contains(A6) && !l.contains("tentative"))
        }),
        "{:?}",
        ipv6_addresses(&a, "eth0")
    );
    dump.wait_for(Duration::from_secs(10), |l| {
        l.contains(":: > ff02::1:ff00:65") && l.contains(&format!("who has {A6}"))
    });
    dump.wait_for(Duration::from_secs(10), |l| {
        l.contains("router solicitation")
    });
    let netvm_ll = link_local(&netvm, "ethint0");
    assert!(
        ping6(&a, &[&format!("{netvm_ll}%eth0")]),
        "a cannot reach the net-vm's link-local"
    );
    assert!(ping6(&a, &["-I", A6, NETVM6]), "a cannot reach the net-vm");
    assert_eq!(
        counter(&host, "port_a"),
        0,
        "honest IPv6 was dropped: {}",
        host.ok(&["nft", "list", "table", "bridge", "netvm_l2"])
    );

    // A rogue router: radvd in a. Its advertisements are counted and
    // never reach the net-vm, which would otherwise take its prefix. (A
    // router does not listen to advertisements: without this, a would
    // take its own radvd's prefix by SLAAC, and the DAD of that address,
    // whose identifier is not a's, would be dropped and counted too.)
    a.ok(&["sysctl", "-qw", "net.ipv6.conf.eth0.accept_ra=0"]);
    let sent = a.spawn(&["tcpdump", "-l", "-n", "-i", "eth0", "icmp6"]);
    sent.wait_for(Duration::from_secs(10), |l| l.contains("listening on"));
    let config = scratch("radvd.conf", RADVD);
    let pidfile = scratch("radvd.pid", "");
    let radvd = a.spawn(&[
        "radvd",
        "-n",
        "-m",
        "stderr",
        "-C",
        config.to_str().expect("utf-8"),
        "-p",
        pidfile.to_str().expect("utf-8"),
    ]);
    sent.wait_for(Duration::from_secs(30), |l| {
        l.contains("router advertisement")
    });
    assert!(
        eventually(Duration::from_secs(10), || counter(&host, "port_a") > 0),
        "no rogue RA counted; radvd said {:?}",
        radvd.lines()
    );
    drop(radvd);
    // The first advertisement radvd sends is dropped, so the net-vm
    // never learns the prefix.
    assert!(
        !ipv6_addresses(&netvm, "ethint0")
            .iter()
            .any(|l| l.contains("fd00:bad")),
        "{:?}",
        ipv6_addresses(&netvm, "ethint0")
    );

    // b's address as source: dropped and counted.
    let before = counter(&host, "port_a");
    a.ok(&[
        "ip",
        "addr",
        "add",
        &format!("{B6}/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    assert!(!ping6(&a, &["-I", B6, NETVM6]), "b's address passed");
    let after_spoof = counter(&host, "port_a");
    assert!(after_spoof > before, "port_a {before} -> {after_spoof}");
    a.ok(&["ip", "addr", "del", &format!("{B6}/64"), "dev", "eth0"]);

    // Advertisements: another MAC as target link-layer address, and b's
    // address as target, are dropped and counted; then an honest one
    // sent the same way reaches the net-vm, and the dishonest ones sent
    // before it never did.
    let a6: Ipv6Addr = A6.parse().expect("address");
    let b6: Ipv6Addr = B6.parse().expect("address");
    let before = counter(&host, "port_a");
    send_na(&a, a6, OTHER_MAC, 3);
    send_na(&a, b6, A_MAC, 3);
    assert!(
        eventually(Duration::from_secs(5), || counter(&host, "port_a")
            >= before + 6),
        "port_a {before} -> {}",
        counter(&host, "port_a")
    );
    let counted = counter(&host, "port_a");
    send_na(&a, a6, A_MAC, 1);
    dump.wait_for(Duration::from_secs(10), |l| {
        l.contains("destination link-address option (2), length 8 (1): 02:ad:00:00:00:65")
    });
    let lines = dump.lines();
    assert!(
        !lines.iter().any(|l| l.contains("02:ad:00:00:00:99")),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains(&format!("tgt is {B6}"))),
        "{lines:?}"
    );
    assert!(
        !lines.iter().any(|l| l.contains("router advertisement")),
        "{lines:?}"
    );
    assert_eq!(
        counter(&host, "port_a"),
        counted,
        "the honest NA was counted"
    );

    // A port the plan does not name, made after `up` as a VMM's own TAP
    // would be: born without IPv6 on the host's side. Its guest's honest
    // IPv6 (a pool address, identifier 2^32 + 200) passes uncounted; a's
    // identifier as source, another MAC in an advertisement and a's
    // address as target are counted on `unknown_ports`.
    let pool = Netns::new(&format!("{ROLE}u"));
    veth(&pool, "eth0", &host, "vnet6");
    host.ok(&["ip", "link", "set", "vnet6", "master", "vmbr0", "up"]);
    assert_eq!(ipv6_addresses(&host, "vnet6"), Vec::<String>::new());
    let before = counter(&host, "unknown_ports");
    pool.ok(&["ip", "link", "set", "eth0", "down"]);
    pool.ok(&["ip", "link", "set", "eth0", "address", "02:bb:00:00:00:06"]);
    pool.ok(&["ip", "link", "set", "eth0", "up"]);
    link_local(&pool, "eth0");
    pool.ok(&["ip", "addr", "add", &format!("{POOL6}/64"), "dev", "eth0"]);
    assert!(
        eventually(Duration::from_secs(20), || {
            ipv6_addresses(&pool, "eth0")
                .iter()
                .any(|l| l.contains(POOL6) && !l.contains("tentative"))
        }),
        "{:?}",
        ipv6_addresses(&pool, "eth0")
    );
    assert!(
        ping6(&pool, &[&format!("{netvm_ll}%eth0")]),
        "the pool guest cannot reach the net-vm's link-local"
    );
    assert!(
        ping6(&pool, &["-I", POOL6, NETVM6]),
        "the pool guest cannot reach the net-vm"
    );
    assert_eq!(
        counter(&host, "unknown_ports"),
        before,
        "honest IPv6 counted"
    );
    pool.ok(&[
        "ip",
        "addr",
        "add",
        &format!("{A6}/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    assert!(!ping6(&pool, &["-I", A6, NETVM6]), "a's address passed");
    pool.ok(&["ip", "addr", "del", &format!("{A6}/64"), "dev", "eth0"]);
    let spoofed = counter(&host, "unknown_ports");
    assert!(spoofed > before, "unknown_ports {before} -> {spoofed}");
    let pool6: Ipv6Addr = POOL6.parse().expect("address");
    send_na(&pool, pool6, OTHER_MAC, 3);
    send_na(&pool, a6, [0x02, 0xbb, 0, 0, 0, 6], 3);
    assert!(
        eventually(Duration::from_secs(5), || counter(&host, "unknown_ports")
            >= spoofed + 6),
        "unknown_ports {spoofed} -> {}",
        counter(&host, "unknown_ports")
    );

    // The audit passes; IPv6 switched back on for a port makes it fail
    // on the address it gets and on the setting; `up` repairs both.
    let (passed, report) = audit(&host, description);
    assert!(passed, "{report}");
    assert!(
        report
            .contains("PASS no IPv6 address on the bridge, its ports or the uplink (secure mode)"),
        "{report}"
    );
    host.ok(&["sysctl", "-qw", "net.ipv6.conf.tap-a.disable_ipv6=0"]);
    assert!(
        eventually(Duration::from_secs(10), || !ipv6_addresses(&host, "tap-a")
            .is_empty()),
        "tap-a got no link-local address"
    );
    let (passed, report) = audit(&host, description);
    assert!(!passed, "{report}");
    for failure in [
        "FAIL no IPv6 address on the bridge, its ports or the uplink (secure mode): has fe80::",
        "FAIL IPv6 off on vmbr0 and its TAPs (disable_ipv6 = 1): on for tap-a (disable_ipv6 = 0)",
    ] {
        assert!(report.contains(failure), "missing {failure:?} in\n{report}");
    }
    host.ok(&[NETVM, "host", "up", description]);
    assert_eq!(ipv6_addresses(&host, "tap-a"), Vec::<String>::new());
    let (passed, report) = audit(&host, description);
    assert!(passed, "{report}");

    host.ok(&[NETVM, "host", "down", description]);
}
