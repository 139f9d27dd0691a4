//! The host's half for real: `netvm host up` in a namespace standing in
//! for the host, veths standing in for the VMs' TAPs (their other ends in
//! VM namespaces), the net-vm's end in a net-vm namespace. Real traffic
//! checks bridge port isolation and the layer-2 guards; udhcpc and our
//! own server check that a rogue DHCP server in one VM reaches nobody;
//! the audit passes on the result and names each failure on a broken
//! copy; `down` removes exactly what `up` made. Dev mode moves the
//! uplink's addresses onto its bridge and back. QEMU accepts the VMM
//! arguments. Runs as root.

use netvm_testsupport::{veth, Netns, Process};
use std::path::{Path, PathBuf};
use std::time::Duration;

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");

const SECURE: &str = r#"
[netvm.uplink]
interface = "eth0"

[host]
tap_user = "nobody"
tap_group = "nogroup"

[[vm]]
name = "a"

[[vm]]
name = "b"

[[vm]]
name = "c"
"#;

const DEV: &str = r#"
[netvm]
mode = "dev"

[netvm.uplink]
interface = "eth1"

[host]
uplink = "eth9"

[[vm]]
name = "a"
"#;

/// Listens on UDP port 68 and prints what arrives, for `secs` seconds.
const LISTEN68: &str = "import socket,sys,time\n\
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, sys.argv[1].encode())\n\
s.bind(('0.0.0.0', 68)); print('listening', flush=True)\n\
while True:\n    d,a=s.recvfrom(2000); print('got', a[0], a[1], flush=True)\n";

/// Broadcasts a UDP datagram from `port` to port 68 (a DHCP server's
/// reply when `port` is 67), `n` times.
const BROADCAST: &str = "import socket,sys,time\n\
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)\n\
s.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE, b'eth0')\n\
s.bind(('0.0.0.0', int(sys.argv[1])))\n\
for _ in range(int(sys.argv[2])):\n    s.sendto(b'offer', ('255.255.255.255', 68)); time.sleep(0.1)\n";

/// Sends ARP replies claiming `ip` is at this interface's MAC.
const ARP_SPOOF: &str = "import socket,sys\n\
s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\n\
s.bind(('eth0', 0x0806)); mac=s.getsockname()[4]\n\
ip=socket.inet_aton(sys.argv[1])\n\
frame=b'\\xff'*6+mac+b'\\x08\\x06'+b'\\x00\\x01\\x08\\x00\\x06\\x04\\x00\\x02'+mac+ip+b'\\x00'*6+ip\n\
for _ in range(5): s.send(frame)\n";

fn scratch(name: &str, text: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("host-{}", std::process::id()));
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

/// Our DHCP server for `description` on `interface` in `ns`, with a fresh
/// journal called `journal`, once it is ready.
fn dhcp_server(ns: &Netns, description: &str, interface: &str, journal: &str) -> Process {
    let journal = scratch(journal, "");
    std::fs::remove_file(&journal).expect("fresh journal");
    let server = ns.spawn(&[
        NETVM,
        "dhcp",
        "serve",
        description,
        "--interface",
        interface,
        "--journal",
        journal.to_str().expect("utf-8"),
    ]);
    server.wait_for(Duration::from_secs(10), |l| {
        l.contains("\"event\":\"ready\"")
    });
    server
}

/// One udhcpc run on `eth0` in `ns` (3 tries, 1 s apart): what it said
/// when it got a lease, `None` when it did not.
fn udhcpc(ns: &Netns) -> Option<String> {
    let out = ns.exec(&[
        "udhcpc",
        "-i",
        "eth0",
        "-n",
        "-q",
        "-f",
        "-t",
        "3",
        "-T",
        "1",
        "-s",
        "/bin/true",
    ]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success().then_some(said)
}

/// A static neighbour entry for b in `ns`, so that frames to b need no
/// ARP answer: only isolation stands between them.
fn knows_b(ns: &Netns) {
    ns.ok(&[
        "ip",
        "neigh",
        "replace",
        "192.168.100.102",
        "lladdr",
        "02:ad:00:00:00:66",
        "dev",
        "eth0",
        "nud",
        "permanent",
    ]);
}

/// The packets of the dev host firewall's counter `name`.
fn host_counter(ns: &Netns, name: &str) -> u64 {
    let out = ns.ok(&["nft", "list", "counter", "inet", "netvm_host", name]);
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// What `up` decides about each link: name, bridge, MTU, alias, port
/// isolation, TAP owner (not the counters and timers the kernel moves).
fn links(ns: &Netns) -> Vec<String> {
    let json: serde_json::Value =
        serde_json::from_str(&ns.ok(&["ip", "-j", "-d", "link", "show"])).expect("ip -j");
    json.as_array()
        .expect("links")
        .iter()
        .map(|l| {
            let info = &l["linkinfo"];
            format!(
                "{} master={} mtu={} alias={} isolated={} user={}",
                l["ifname"],
                l["master"],
                l["mtu"],
                l["ifalias"],
                info["info_slave_data"]["isolated"],
                info["info_data"]["user"]
            )
        })
        .collect()
}

fn ping(ns: &Netns, args: &[&str]) -> bool {
    let mut argv = vec!["ping", "-c", "2", "-W", "1", "-i", "0.2"];
    argv.extend_from_slice(args);
    ns.exec(&argv).status.success()
}

fn sysfs(ns: &Netns, path: &str) -> String {
    ns.ok(&["cat", path]).trim().to_owned()
}

/// A VM namespace on a veth standing in for its TAP, with its planned
/// MAC and address.
fn vm(host: &Netns, name: &str, mac: &str, ip: &str) -> Netns {
    let ns = Netns::new(name);
    veth(&ns, "eth0", host, &format!("tap-{name}"));
    ns.ok(&["ip", "link", "set", "eth0", "address", mac]);
    ns.ok(&["ip", "addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
    ns
}

#[test]
fn the_host_bridge_isolates_and_guards_every_vm_port() {
    let description = scratch("secure.toml", SECURE);
    let description = description.to_str().expect("utf-8");
    let host = Netns::new("host");
    let netvm = Netns::new("nv");
    veth(&netvm, "ethint0", &host, "tap-net-vm");
    netvm.ok(&["ip", "addr", "add", "192.168.100.1/24", "dev", "ethint0"]);
    let a = vm(&host, "a", "02:ad:00:00:00:65", "192.168.100.101");
    let b = vm(&host, "b", "02:ad:00:00:00:66", "192.168.100.102");
    // c has no namespace: `up` makes its TAP.

    host.ok(&[NETVM, "host", "up", description]);
    let before = links(&host);
    let ruleset = host.ok(&["nft", "list", "table", "bridge", "netvm_l2"]);
    host.ok(&[NETVM, "host", "up", description]);
    assert_eq!(
        host.ok(&["nft", "list", "table", "bridge", "netvm_l2"]),
        ruleset,
        "second up changed the guards"
    );
    assert_eq!(links(&host), before, "second up changed the links");

    assert_eq!(host.ipv4_addresses("vmbr0"), Vec::<String>::new());
    assert_eq!(sysfs(&host, "/sys/class/net/vmbr0/bridge/stp_state"), "0");
    assert_eq!(
        sysfs(&host, "/sys/class/net/vmbr0/bridge/forward_delay"),
        "0"
    );
    assert_eq!(
        sysfs(&host, "/proc/sys/net/ipv6/conf/vmbr0/disable_ipv6"),
        "1"
    );
    assert_eq!(sysfs(&host, "/sys/class/net/tap-a/brport/isolated"), "1");
    assert_eq!(sysfs(&host, "/sys/class/net/tap-c/brport/isolated"), "1");
    assert_eq!(
        sysfs(&host, "/sys/class/net/tap-net-vm/brport/isolated"),
        "0"
    );
    let tap_c = host.ok(&["ip", "-d", "link", "show", "tap-c"]);
    assert!(
        tap_c.contains("tap") && tap_c.contains("user nobody") && tap_c.contains("group nogroup"),
        "{tap_c}"
    );

    // Isolation: a reaches the net-vm but not b, even knowing b's MAC.
    assert!(ping(&a, &["192.168.100.1"]), "a cannot reach the net-vm");
    knows_b(&a);
    assert!(
        !ping(&a, &["192.168.100.102"]),
        "a reached b across isolated ports"
    );

    // Spoofed IPv4 source: dropped and counted.
    let before = counter(&host, "port_a");
    a.ok(&["ip", "addr", "add", "192.168.100.150/24", "dev", "eth0"]);
    assert!(
        !ping(&a, &["-I", "192.168.100.150", "192.168.100.1"]),
        "spoofed source passed"
    );
    let after_ip = counter(&host, "port_a");
    assert!(after_ip >= before + 2, "port_a {before} -> {after_ip}");
    a.ok(&["ip", "addr", "del", "192.168.100.150/24", "dev", "eth0"]);

    // Spoofed MAC: dropped and counted; back to normal afterwards.
    a.ok(&["ip", "link", "set", "eth0", "address", "02:ad:00:00:00:99"]);
    assert!(!ping(&a, &["192.168.100.1"]), "spoofed MAC passed");
    let after_mac = counter(&host, "port_a");
    assert!(
        after_mac >= after_ip + 2,
        "port_a {after_ip} -> {after_mac}"
    );
    a.ok(&["ip", "link", "set", "eth0", "address", "02:ad:00:00:00:65"]);
    assert!(
        ping(&a, &["192.168.100.1"]),
        "a lost the net-vm after restoring its MAC"
    );

    // Spoofed ARP: a claims to be the net-vm.
    let before = counter(&host, "port_a");
    a.ok(&["python3", "-c", ARP_SPOOF, "192.168.100.1"]);
    let after_arp = counter(&host, "port_a");
    assert!(after_arp >= before + 5, "port_a {before} -> {after_arp}");

    // DHCP server replies from a VM port never leave it: b's broadcast
    // from port 67 reaches neither a nor the net-vm (whose port is not
    // isolated); from another port it reaches the net-vm, so the path
    // itself works and it is the guard that drops.
    let at_netvm = netvm.spawn(&["python3", "-u", "-c", LISTEN68, "ethint0"]);
    let at_a = a.spawn(&["python3", "-u", "-c", LISTEN68, "eth0"]);
    at_netvm.wait_for(Duration::from_secs(10), |l| l.contains("listening"));
    at_a.wait_for(Duration::from_secs(10), |l| l.contains("listening"));
    let before = counter(&host, "port_b");
    b.ok(&["python3", "-c", BROADCAST, "67", "5"]);
    assert!(
        counter(&host, "port_b") >= before + 5,
        "b's offers not counted"
    );
    b.ok(&["python3", "-c", BROADCAST, "6700", "3"]);
    at_netvm.wait_for(Duration::from_secs(5), |l| {
        l.contains("got 192.168.100.102 6700")
    });
    assert!(
        !at_netvm.lines().iter().any(|l| l.ends_with(" 67")),
        "{:?}",
        at_netvm.lines()
    );
    assert!(
        at_a.lines().iter().all(|l| !l.starts_with("got")),
        "{:?}",
        at_a.lines()
    );

    // A rogue DHCP server (our own, configured as if it were the net-vm)
    // in b: udhcpc in a gets nothing; with the real server in the net-vm
    // it gets its reservation.
    let rogue = scratch(
        "rogue.toml",
        "[netvm]\nip = \"192.168.100.102\"\nmac = \"02:ad:00:00:00:66\"\n[netvm.uplink]\ninterface = \"x0\"\n",
    );
    let rogue = rogue.to_str().expect("utf-8");
    let _rogue_server = dhcp_server(&b, rogue, "eth0", "rogue.journal");
    a.ok(&["ip", "addr", "flush", "dev", "eth0"]);
    assert_eq!(udhcpc(&a), None, "a took a lease from the rogue server");
    let _server = dhcp_server(&netvm, description, "ethint0", "real.journal");
    let said = udhcpc(&a).expect("a got no lease from the net-vm");
    assert!(said.contains("lease of 192.168.100.101 obtained"), "{said}");

    // The audit passes on what `up` built.
    let audit = host.exec(&[NETVM, "host", "audit", description]);
    let report = String::from_utf8_lossy(&audit.stdout);
    assert!(
        audit.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&audit.stderr)
    );
    assert!(!report.contains("FAIL"), "{report}");

    // Break it in five ways; the audit names each one.
    host.ok(&["ip", "addr", "add", "192.168.100.2/24", "dev", "vmbr0"]);
    host.ok(&["bridge", "link", "set", "dev", "tap-a", "isolated", "off"]);
    host.ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    host.ok(&[
        "ip",
        "route",
        "add",
        "default",
        "via",
        "192.168.100.1",
        "dev",
        "vmbr0",
    ]);
    host.ok(&["nft", "delete", "table", "bridge", "netvm_l2"]);
    let audit = host.exec(&[NETVM, "host", "audit", description]);
    let report = String::from_utf8_lossy(&audit.stdout);
    assert!(!audit.status.success(), "{report}");
    for failure in [
        "FAIL bridge vmbr0 has no address (secure mode): has 192.168.100.2/24",
        "FAIL port tap-a (a): isolated is off, should be on",
        "FAIL IPv4 forwarding off (secure mode): ip_forward = 1",
        "FAIL no default route (secure mode): default route via vmbr0",
        "FAIL layer-2 guard table bridge netvm_l2 loaded: not loaded",
    ] {
        assert!(report.contains(failure), "missing {failure:?} in\n{report}");
    }
    assert_eq!(report.matches("FAIL").count(), 5, "{report}");
    // `up` repairs what it owns (the default route is not its to remove).
    host.ok(&["ip", "route", "del", "default"]);
    host.ok(&[NETVM, "host", "up", description]);
    host.ok(&[NETVM, "host", "audit", description]);

    // `down` removes what `up` made and only detaches the rest.
    host.ok(&[NETVM, "host", "down", description]);
    assert!(
        !host.exec(&["ip", "link", "show", "vmbr0"]).status.success(),
        "bridge left behind"
    );
    assert!(
        !host.exec(&["ip", "link", "show", "tap-c"]).status.success(),
        "tap-c left behind"
    );
    assert!(!host
        .exec(&["nft", "list", "table", "bridge", "netvm_l2"])
        .status
        .success());
    for stand_in in ["tap-a", "tap-b", "tap-net-vm"] {
        let link = host.ok(&["ip", "link", "show", stand_in]);
        assert!(
            !link.contains("master"),
            "{stand_in} still on a bridge: {link}"
        );
    }
    host.ok(&[NETVM, "host", "down", description]);
}

#[test]
fn dev_mode_bridges_the_uplink_and_gives_it_back() {
    let description = scratch("dev.toml", DEV);
    let description = description.to_str().expect("utf-8");
    let host = Netns::new("devh");
    let upstream = Netns::new("devu");
    veth(&upstream, "u0", &host, "eth9");
    upstream.ok(&["ip", "addr", "add", "10.0.0.1/24", "dev", "u0"]);
    host.ok(&["ip", "addr", "add", "10.0.0.2/24", "dev", "eth9"]);
    host.ok(&["ip", "route", "add", "default", "via", "10.0.0.1"]);
    let a = vm(&host, "a", "02:ad:00:00:00:65", "192.168.100.101");

    host.ok(&[NETVM, "host", "up", description]);
    host.ok(&[NETVM, "host", "up", description]);
    assert_eq!(host.ipv4_addresses("vmbr0-up"), ["10.0.0.2/24"]);
    assert_eq!(host.ipv4_addresses("eth9"), Vec::<String>::new());
    assert_eq!(host.ipv4_addresses("vmbr0"), ["192.168.100.2/24"]);
    assert!(host
        .ok(&["ip", "route", "show", "default"])
        .contains("dev vmbr0-up"));
    assert!(host
        .ok(&["ip", "link", "show", "tap-net-vm-up"])
        .contains("master vmbr0-up"));
    assert!(ping(&host, &["10.0.0.1"]), "the host lost its uplink");

    // The dev host may reach a VM; a VM may open nothing on the host, nor
    // use it as a router around the net-vm, even with forwarding on.
    host.ok(&["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
    upstream.ok(&["ip", "route", "add", "192.168.100.0/24", "via", "10.0.0.2"]);
    a.ok(&["ip", "route", "add", "10.0.0.0/24", "via", "192.168.100.2"]);
    assert!(ping(&host, &["192.168.100.101"]), "the host cannot reach a");
    let before = host_counter(&host, "from_internal");
    assert!(!ping(&a, &["192.168.100.2"]), "a reached the host");
    assert!(!ping(&a, &["10.0.0.1"]), "a was routed by the host");
    assert!(
        !ping(&upstream, &["192.168.100.101"]),
        "the upstream was routed to a by the host"
    );
    assert!(host_counter(&host, "from_internal") >= before + 6);
    let audit = host.ok(&[NETVM, "host", "audit", description]);
    assert!(
        audit.contains("PASS the host's firewall inet netvm_host loaded (dev mode)"),
        "{audit}"
    );

    host.ok(&[NETVM, "host", "down", description]);
    assert!(!host
        .exec(&["nft", "list", "table", "inet", "netvm_host"])
        .status
        .success());
    assert_eq!(host.ipv4_addresses("eth9"), ["10.0.0.2/24"]);
    assert!(host
        .ok(&["ip", "route", "show", "default"])
        .contains("dev eth9"));
    assert!(!host
        .exec(&["ip", "link", "show", "vmbr0-up"])
        .status
        .success());
    assert!(!host
        .exec(&["ip", "link", "show", "tap-net-vm-up"])
        .status
        .success());
    assert!(
        ping(&host, &["10.0.0.1"]),
        "the host did not get its uplink back"
    );
}

/// A host with a pool, for ports the plan does not name.
const UNKNOWN: &str = r#"
[netvm.uplink]
interface = "eth0"

[host]
unknown_port_new_macs = 4

[[vm]]
name = "a"

[[vm]]
name = "b"

[dhcp]
pool = "192.168.100.200-192.168.100.220"
"#;

/// Prints every frame that arrives on `argv[1]`: `frame SRC-MAC TYPE`,
/// and for a DHCP client message also `dhcp CHADDR`.
const FRAMES: &str = "import socket,sys\n\
s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))\n\
s.bind((sys.argv[1], 0)); print('listening', flush=True)\n\
while True:\n    f,a=s.recvfrom(4096)\n    if a[2]==4: continue\n    line='frame '+f[6:12].hex(':')+' '+f[12:14].hex()\n    if f[12:14]==b'\\x08\\x00' and f[23]==17 and f[36:38]==b'\\x00\\x43': line+=' dhcp '+f[70:76].hex(':')\n    print(line, flush=True)\n";

/// Sends `argv[1]` frames from the interface `eth0`: ARP probes from
/// fresh source MACs (`arp`), or DHCPDISCOVERs with fresh `chaddr`s from
/// the interface's own MAC (`dhcp`).
const FRESH: &str = "import socket,struct,sys\n\
s=socket.socket(socket.AF_PACKET, socket.SOCK_RAW); s.bind(('eth0', 0)); own=s.getsockname()[4]\n\
def csum(b):\n    t=sum(struct.unpack('!%dH' % (len(b)//2), b)); t=(t>>16)+(t&0xffff); t+=t>>16; return (~t)&0xffff\n\
for i in range(int(sys.argv[2])):\n    mac=bytes([2,0xcc,0,0,i>>8,i&255])\n    if sys.argv[1]=='arp':\n        s.send(b'\\xff'*6+mac+b'\\x08\\x06\\x00\\x01\\x08\\x00\\x06\\x04\\x00\\x01'+mac+b'\\x00'*4+b'\\x00'*6+socket.inet_aton('192.168.100.1'))\n    else:\n        bootp=bytes([1,1,6,0])+struct.pack('!IHH',i+1,0,0x8000)+b'\\x00'*16+mac+b'\\x00'*10+b'\\x00'*192+bytes([99,130,83,99,53,1,1,255])\n        udp=struct.pack('!HHHH',68,67,8+len(bootp),0)+bootp\n        ip=struct.pack('!BBHHHBBH4s4s',0x45,0,20+len(udp),0,0,64,17,0,b'\\x00'*4,b'\\xff'*4)\n        ip=ip[:10]+struct.pack('!H',csum(ip))+ip[12:]\n        s.send(b'\\xff'*6+own+b'\\x08\\x00'+ip+udp)\n";

/// A client namespace behind a bridge port the plan does not name,
/// called `port` on the host's side.
fn unknown_port(host: &Netns, port: &str) -> Netns {
    let ns = Netns::new("unk");
    veth(&ns, "eth0", host, port);
    host.ok(&["ip", "link", "set", port, "master", "vmbr0", "up"]);
    ns
}

#[test]
fn ports_the_plan_does_not_name_are_unknown_vms_and_the_secure_host_is_silent() {
    let description = scratch("unknown.toml", UNKNOWN);
    let description = description.to_str().expect("utf-8");
    let host = Netns::new("host");
    let netvm = Netns::new("nv");
    veth(&netvm, "ethint0", &host, "tap-net-vm");
    netvm.ok(&["ip", "addr", "add", "192.168.100.1/24", "dev", "ethint0"]);
    let frames = netvm.spawn(&["python3", "-u", "-c", FRAMES, "ethint0"]);
    frames.wait_for(Duration::from_secs(10), |l| l.contains("listening"));
    let _a = vm(&host, "a", "02:ad:00:00:00:65", "192.168.100.101");
    let b = vm(&host, "b", "02:ad:00:00:00:66", "192.168.100.102");

    // The bridge is new: a snooping bridge would report 224.0.0.106 from
    // 0.0.0.0 with its own MAC as it comes up.
    host.ok(&[NETVM, "host", "up", description]);
    let bridge_mac = sysfs(&host, "/sys/class/net/vmbr0/address");
    b.ok(&["ping", "-c", "1", "-W", "1", "192.168.100.1"]);
    std::thread::sleep(Duration::from_secs(3));
    let from_host = |frames: &Process| {
        frames
            .lines()
            .iter()
            .filter(|l| l.starts_with(&format!("frame {bridge_mac}")))
            .count()
    };
    assert_eq!(from_host(&frames), 0, "{:?}", frames.lines());
    assert_eq!(
        sysfs(&host, "/sys/class/net/vmbr0/bridge/multicast_snooping"),
        "0"
    );
    assert_eq!(counter(&host, "host_sent"), 0);

    let _server = dhcp_server(&netvm, description, "ethint0", "unknown.journal");

    // Whatever its name, a port the plan does not name is an unknown VM:
    // with a's MAC it gets nothing (a's reservation least of all); with
    // a MAC of its own it gets a pool lease, reaches the net-vm, and
    // cannot reach b even knowing b's MAC.
    for (i, name) in ["tap9aud", "tap0", "vnet3", "eth7"].iter().enumerate() {
        let port = unknown_port(&host, name);
        port.ok(&["ip", "link", "set", "eth0", "address", "02:ad:00:00:00:65"]);
        let before = counter(&host, "unknown_ports");
        assert_eq!(udhcpc(&port), None, "{name} got a lease with a's MAC");
        assert!(
            counter(&host, "unknown_ports") > before,
            "{name}: spoofing not counted"
        );
        port.ok(&[
            "ip",
            "link",
            "set",
            "eth0",
            "address",
            &format!("02:bb:00:00:00:{i:02x}"),
        ]);
        let said = udhcpc(&port).unwrap_or_else(|| panic!("{name} got no pool lease"));
        let lease = said
            .split_whitespace()
            .skip_while(|w| *w != "lease")
            .nth(2)
            .expect("udhcpc names the lease")
            .to_owned();
        assert!(lease.starts_with("192.168.100.2"), "{name}: {said}");
        port.ok(&["ip", "addr", "add", &format!("{lease}/24"), "dev", "eth0"]);
        assert!(ping(&port, &["192.168.100.1"]), "{name} lost the net-vm");
        knows_b(&port);
        let before = counter(&host, "isolation");
        assert!(!ping(&port, &["192.168.100.102"]), "{name} reached b");
        assert!(counter(&host, "isolation") > before, "{name}: not counted");
    }

    // One unknown port cannot invent clients faster than the description
    // allows (4 new MACs an hour, and as many new DHCP identities). The
    // DHCP burst goes first: it is sent from the port's own MAC, which is
    // itself one of the 4, so an ARP burst first could spend all of them
    // and the DHCP burst would then be dropped as a fifth new MAC.
    let port = unknown_port(&host, "vnet9");
    let before = counter(&host, "unknown_ports");
    port.ok(&["python3", "-c", FRESH, "dhcp", "20"]);
    port.ok(&["python3", "-c", FRESH, "arp", "20"]);
    let _ = frames.try_wait_for_n(1, Duration::from_secs(10), |l| l.contains(" dhcp 02:cc:"));
    let _ = frames.try_wait_for_n(1, Duration::from_secs(10), |l| {
        l.starts_with("frame 02:cc:") && l.ends_with("0806")
    });
    std::thread::sleep(Duration::from_millis(500));
    let lines = frames.lines();
    let fresh_macs = lines
        .iter()
        .filter(|l| l.starts_with("frame 02:cc:") && l.ends_with("0806"))
        .count();
    let fresh_clients = lines.iter().filter(|l| l.contains(" dhcp 02:cc:")).count();
    assert!(
        (1..=4).contains(&fresh_macs),
        "{fresh_macs} new MACs passed"
    );
    assert!(
        (1..=4).contains(&fresh_clients),
        "{fresh_clients} new DHCP clients passed"
    );
    assert!(counter(&host, "unknown_ports") >= before + 30);

    // Ports the plan does not name are listed by the audit, which passes.
    let audit = host.exec(&[NETVM, "host", "audit", description]);
    let report = String::from_utf8_lossy(&audit.stdout);
    assert!(audit.status.success(), "{report}");
    assert!(
        report.contains("unknown VM: ") && report.contains("vnet9"),
        "{report}"
    );
    assert!(report.contains("PASS bridge vmbr0 has multicast snooping off"));

    // Should the host's stack speak anyway, nothing leaves: counted, and
    // the audit names it.
    host.ok(&["ip", "addr", "add", "192.168.100.2/24", "dev", "vmbr0"]);
    assert!(!ping(&host, &["192.168.100.1"]), "the secure host spoke");
    assert!(counter(&host, "host_sent") >= 2);
    assert_eq!(from_host(&frames), 0, "{:?}", frames.lines());
    let audit = host.exec(&[NETVM, "host", "audit", description]);
    let report = String::from_utf8_lossy(&audit.stdout);
    assert!(
        report.contains("FAIL the host sent nothing on its bridges (secure mode): "),
        "{report}"
    );
    host.ok(&[NETVM, "host", "down", description]);
}
