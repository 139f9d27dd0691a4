//! The Net VM data plane for real: an upstream namespace, the net-vm
//! namespace (`netvm apply --role net-vm`), a host namespace with a bridge
//! whose VM ports are isolated, and three VM namespaces with static
//! addresses. Real TCP traffic checks NAT, default deny, the VM-to-VM
//! policy, a port forward and anti-spoofing. Runs as root.

use netvm_testsupport::{run_ok, veth, Netns, Process};
use std::path::Path;
use std::time::Duration;

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");

const DESCRIPTION: &str = r#"
# IPv6 off: the IPv6 part below checks that IPv6 then gets nowhere.
[network]
ipv6 = false

[netvm.uplink]
interface = "eth0"
addressing = "static"
address = "203.0.113.2/24"
gateway = "203.0.113.1"

[[vm]]
name = "a"
allow = [{ to = "b", proto = "tcp", ports = "8080-8081" }]
forward = [{ proto = "tcp", port = 8443, to_port = 443 }]

[[vm]]
name = "b"
allow = [{ to = "a", proto = "tcp", ports = 443 }]

[[vm]]
name = "c"
internet = false
"#;

/// A TCP server that answers every connection with the peer's address.
const SERVER: &str = netvm_testsupport::PEER_SERVER;

/// An echo server that keeps connections open.
const ECHO: &str = "import socket,sys,threading\n\
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16); print('listening', flush=True)\n\
def echo(c):\n    while True:\n        d=c.recv(100)\n        if not d: return\n        c.sendall(d)\n\
while True:\n    c,a=s.accept(); threading.Thread(target=echo, args=(c,), daemon=True).start()\n";

/// Keeps one connection and uses it every 0.3 s; says `cut` when it breaks.
const CHATTER: &str = "import socket,sys,time\n\
s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\n\
n=0\n\
while True:\n    try:\n        s.sendall(b'x'); assert s.recv(1)==b'x'\n    except Exception as e:\n        print('cut', e, flush=True); break\n    n+=1; print('ok', n, flush=True); time.sleep(0.3)\n";

/// The same over IPv6.
const SERVER6: &str = "import socket,sys\n\
s=socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('::', int(sys.argv[1]))); s.listen(16); print('listening', flush=True)\n\
while True:\n    c,a=s.accept(); c.sendall((a[0]+'\\n').encode()); c.close()\n";

/// Connects, prints what the server said; exit 1 when it cannot.
const CLIENT: &str = "import socket,sys\n\
s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)\n\
print(s.recv(100).decode().strip())\n";

fn serve(ns: &Netns, port: u16) -> Process {
    serve_with(ns, SERVER, port)
}

fn connect(ns: &Netns, ip: &str, port: u16) -> Option<String> {
    let out = ns.exec(&["python3", "-c", CLIENT, ip, &port.to_string()]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// Starts the python `script` (a server) on `port` in `ns` and waits until
/// it listens.
fn serve_with(ns: &Netns, script: &str, port: u16) -> Process {
    let server = ns.spawn(&["python3", "-u", "-c", script, &port.to_string()]);
    server.wait_for(Duration::from_secs(10), |l| l.contains("listening"));
    server
}

fn counter(ns: &Netns, name: &str) -> u64 {
    let out = ns.ok(&["nft", "list", "counter", "inet", "netvm", name]);
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_net_vm_routes_nats_and_enforces_the_policy() {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dataplane-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let description = dir.join("system.toml");
    std::fs::write(&description, DESCRIPTION).expect("write");
    let description = description.to_str().expect("utf-8");
    let plan: serde_json::Value =
        serde_json::from_str(&run_ok(&[NETVM, "plan", description, "--format", "json"]))
            .expect("plan");

    let upstream = Netns::new("up");
    let netvm = Netns::new("nv");
    let host = Netns::new("host");
    veth(&upstream, "u0", &netvm, "eth0");
    upstream.ok(&["ip", "addr", "add", "203.0.113.1/24", "dev", "u0"]);
    // The upstream can route to the internal subnet through the net-vm, so
    // only the net-vm's policy stands between it and the VMs.
    upstream.ok(&[
        "ip",
        "route",
        "add",
        "192.168.100.0/24",
        "via",
        "203.0.113.2",
    ]);

    host.ok(&["ip", "link", "add", "br0", "type", "bridge"]);
    host.ok(&["ip", "link", "set", "br0", "up"]);
    veth(&netvm, "ethint0", &host, "p-nv");
    host.ok(&["ip", "link", "set", "p-nv", "master", "br0"]);
    let mut vms = Vec::new();
    for (i, name) in ["a", "b", "c"].iter().enumerate() {
        let row = plan["addresses"]
            .as_array()
            .expect("rows")
            .iter()
            .find(|r| r["name"] == *name)
            .expect("row");
        let ns = Netns::new(name);
        let port = format!("p-{name}");
        veth(&ns, "eth0", &host, &port);
        host.ok(&["ip", "link", "set", &port, "master", "br0"]);
        host.ok(&["bridge", "link", "set", "dev", &port, "isolated", "on"]);
        ns.ok(&[
            "ip",
            "link",
            "set",
            "eth0",
            "address",
            row["mac"].as_str().expect("mac"),
        ]);
        ns.ok(&[
            "ip",
            "addr",
            "add",
            &format!("{}/24", row["ip"].as_str().expect("ip")),
            "dev",
            "eth0",
        ]);
        ns.ok(&["ip", "route", "add", "default", "via", "192.168.100.1"]);
        assert_eq!(row["ip"], format!("192.168.100.{}", 101 + i));
        vms.push(ns);
    }
    let (a, b, c) = (&vms[0], &vms[1], &vms[2]);

    // An address left from an earlier plan is removed by the apply.
    netvm.ok(&["ip", "link", "set", "ethint0", "up"]);
    netvm.ok(&["ip", "addr", "add", "192.168.7.1/24", "dev", "ethint0"]);
    netvm.ok(&[NETVM, "apply", description, "--role", "net-vm"]);
    assert_eq!(netvm.ipv4_addresses("ethint0"), ["192.168.100.1/24"]);
    assert_eq!(netvm.ipv4_addresses("eth0"), ["203.0.113.2/24"]);
    // Terse (`-t`): without set elements, which the event sets gain from
    // whatever a namespace sends meanwhile.
    let ruleset = netvm.ok(&["nft", "-s", "-t", "list", "table", "inet", "netvm"]);
    let endpoints = netvm.ok(&["nft", "list", "set", "inet", "netvm", "endpoints"]);
    // Idempotent: a second apply changes nothing.
    netvm.ok(&[NETVM, "apply", description, "--role", "net-vm"]);
    assert_eq!(
        netvm.ok(&["nft", "-s", "-t", "list", "table", "inet", "netvm"]),
        ruleset
    );
    assert_eq!(
        netvm.ok(&["nft", "list", "set", "inet", "netvm", "endpoints"]),
        endpoints
    );

    let _internet = serve(&upstream, 9000);
    let _b_server = serve(b, 8080);
    let _a_server = serve(a, 8080);
    let _a_https = serve(a, 443);

    // Out through NAT: the upstream sees the uplink address.
    assert_eq!(
        connect(a, "203.0.113.1", 9000).as_deref(),
        Some("203.0.113.2")
    );
    assert_eq!(
        connect(c, "203.0.113.1", 9000),
        None,
        "c may not reach the Internet"
    );

    // VM to VM: the allowed pair works, the others do not; the isolated
    // bridge ports leave the net-vm's forward chain as the only way.
    assert_eq!(
        connect(a, "192.168.100.102", 8080).as_deref(),
        Some("192.168.100.101")
    );
    assert_eq!(
        connect(b, "192.168.100.101", 8080),
        None,
        "b -> a is not allowed"
    );
    assert_eq!(
        connect(c, "192.168.100.102", 8080),
        None,
        "c -> b is not allowed"
    );

    // From the uplink: nothing but the port forward.
    assert_eq!(connect(&upstream, "192.168.100.101", 8080), None);
    assert_eq!(connect(&upstream, "192.168.100.101", 443), None);
    let forwarded = connect(&upstream, "203.0.113.2", 8443);
    assert_eq!(
        forwarded.as_deref(),
        Some("203.0.113.1"),
        "the forward reaches a:443"
    );
    // Only the uplink's own address is forwarded: the upstream, routing
    // every other address through the net-vm as a LAN attacker would,
    // gets nothing on the forwarded port anywhere else.
    for unrelated in ["10.99.99.99", "198.51.100.7"] {
        upstream.ok(&["ip", "route", "add", unrelated, "via", "203.0.113.2"]);
    }
    let elsewhere = [
        "192.168.100.1",
        "192.168.100.101",
        "192.168.100.102",
        "192.168.100.103",
        "192.168.100.0",
        "192.168.100.255",
        "10.99.99.99",
        "198.51.100.7",
    ];
    std::thread::scope(|scope| {
        let tries: Vec<_> = elsewhere
            .iter()
            .map(|ip| (ip, scope.spawn(|| connect(&upstream, ip, 8443))))
            .collect();
        for (ip, try_) in tries {
            assert_eq!(try_.join().expect("probe"), None, "{ip}:8443 answered");
        }
    });
    // NAT reflection is a VM-to-VM flow under the same policy: b, which
    // may reach a:443, uses the public address too; c may not, and
    // gets nothing. Both are recorded for the agent's events.
    assert_eq!(
        connect(b, "203.0.113.2", 8443).as_deref(),
        Some("192.168.100.1"),
        "reflected forward"
    );
    assert_eq!(
        connect(c, "203.0.113.2", 8443),
        None,
        "c reached a through the uplink address"
    );
    let allowed = netvm.ok(&["nft", "list", "set", "inet", "netvm", "ev_allowed"]);
    assert!(
        allowed.contains("192.168.100.102 . 192.168.100.101 . tcp . 443"),
        "{allowed}"
    );
    let refused = netvm.ok(&["nft", "list", "set", "inet", "netvm", "ev_policy"]);
    assert!(
        refused.contains("192.168.100.103 . 192.168.100.101 . tcp . 443"),
        "{refused}"
    );
    // The net-vm answers echo on its uplink address only from outside.
    assert!(upstream
        .exec(&["ping", "-c", "1", "-W", "1", "203.0.113.2"])
        .status
        .success());
    assert!(!upstream
        .exec(&["ping", "-c", "1", "-W", "1", "192.168.100.1"])
        .status
        .success());

    // Spoofing: c sends with a's address; dropped and counted.
    let before = counter(&netvm, "spoofed");
    c.ok(&["ip", "addr", "add", "192.168.100.101/32", "dev", "eth0"]);
    let out = c.exec(&[
        "python3",
        "-c",
        "import socket\ns=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.bind(('192.168.100.101', 0))\nfor _ in range(3): s.sendto(b'x', ('203.0.113.1', 9999))\n",
    ]);
    assert!(out.status.success(), "{out:?}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        counter(&netvm, "spoofed") >= before + 3,
        "spoofed packets are dropped and counted"
    );

    // IPv6 never gets around the IPv4 policy: even with IPv6 forwarding
    // switched on by mistake, the forward chain drops it and counts it.
    for (ns, dev, addr) in [
        (a, "eth0", "fd00:1::101/64"),
        (&netvm, "ethint0", "fd00:1::1/64"),
        (&netvm, "eth0", "fd00:2::2/64"),
        (&upstream, "u0", "fd00:2::1/64"),
    ] {
        ns.ok(&["ip", "-6", "addr", "add", addr, "dev", dev, "nodad"]);
    }
    a.ok(&["ip", "-6", "route", "add", "default", "via", "fd00:1::1"]);
    upstream.ok(&[
        "ip",
        "-6",
        "route",
        "add",
        "fd00:1::/64",
        "via",
        "fd00:2::2",
    ]);
    netvm.ok(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    let _server6 = serve_with(&upstream, SERVER6, 9006);
    assert!(
        connect(&upstream, "fd00:2::1", 9006).is_some(),
        "the IPv6 server answers locally"
    );
    // The net-vm does not even answer IPv6 neighbour discovery (input
    // drops it); whatever gets further is dropped in forward. Both count.
    let dropped = || counter(&netvm, "ipv6_dropped") + counter(&netvm, "input_dropped");
    let before = dropped();
    assert_eq!(
        connect(a, "fd00:2::1", 9006),
        None,
        "no IPv6 through the net-vm"
    );
    assert!(dropped() > before, "IPv6 from a VM is dropped and counted");
    netvm.ok(&[NETVM, "apply", description, "--role", "net-vm"]);
    assert_eq!(
        netvm
            .ok(&["sysctl", "-n", "net.ipv6.conf.all.forwarding"])
            .trim(),
        "0",
        "apply switches it off again"
    );

    // A ruleset nft rejects changes nothing: the old one stays in force.
    let broken = dir.join("broken.nft");
    std::fs::write(
        &broken,
        "table inet netvm\ndelete table inet netvm\ntable inet netvm { chain x { nonsense } }\n",
    )
    .expect("write");
    assert!(!netvm
        .exec(&["nft", "-f", broken.to_str().expect("utf-8")])
        .status
        .success());
    assert_eq!(
        netvm.ok(&["nft", "-s", "-t", "list", "table", "inet", "netvm"]),
        ruleset
    );
    assert_eq!(
        connect(a, "192.168.100.102", 8080).as_deref(),
        Some("192.168.100.101")
    );

    // A connection must not outlive its permission: drop the a -> b rule
    // while a connection is open, and it is cut.
    let _echo = serve_with(b, ECHO, 8081);
    let chatter = a.spawn(&["python3", "-u", "-c", CHATTER, "192.168.100.102", "8081"]);
    chatter.wait_for(Duration::from_secs(10), |l| l == "ok 2");
    let narrower = dir.join("narrower.toml");
    std::fs::write(
        &narrower,
        DESCRIPTION.replace(
            "allow = [{ to = \"b\", proto = \"tcp\", ports = \"8080-8081\" }]",
            "",
        ),
    )
    .expect("write");
    let applied = netvm.ok(&[
        NETVM,
        "apply",
        narrower.to_str().expect("utf-8"),
        "--role",
        "net-vm",
    ]);
    assert!(!applied.contains(" 0 connection"), "{applied}");
    chatter.wait_for(Duration::from_secs(10), |l| l.starts_with("cut"));
    assert_eq!(
        connect(a, "192.168.100.102", 8080),
        None,
        "new connections are refused too"
    );
    let _ = std::fs::remove_dir_all(dir);
}
