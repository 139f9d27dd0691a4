//! Several uplinks for real: a net-vm namespace with two wired uplinks
//! to two upstream namespaces (dnsmasq each, a service each), a VM
//! namespace behind it. The preferred uplink carries the Internet; it
//! loses carrier and the other takes over (new connections, DNS, port
//! forwards follow; a long download through it ends, the next one goes
//! through the backup; events say so); it comes back and the traffic fails
//! back; the backup is unplugged (its veth deleted) and plugged in again
//! under another name, and the agent renames and uses it again. Runs as
//! root; needs dnsmasq, udhcpc, dig.

mod schemas;

use netvm_testsupport::{veth, Netns, Process};
use std::path::Path;
use std::time::Duration;

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");
const LONG: Duration = Duration::from_secs(40);

/// The backup's MAC: it is found by it, whatever the kernel names it.
const BACKUP_MAC: &str = "02:00:00:00:99:01";

const DESCRIPTION: &str = r#"
[[netvm.uplink]]
interface = "wan0"
priority = 10

[[netvm.uplink]]
usb = "0bda:8153"
mac = "02:00:00:00:99:01"
priority = 20

[[vm]]
name = "app-vm"
forward = [{ proto = "tcp", port = 8443 }]

[agent]
uplink_probe_every = "2s"
"#;

/// A TCP server that answers every connection with the peer's address.
const SERVER: &str = netvm_testsupport::PEER_SERVER;

const CLIENT: &str = netvm_testsupport::PEER_CLIENT;

/// A long download, `python3 -u -c STREAMER PORT`: to each connection,
/// 1 KiB every 50 ms until it goes, from the address the VM reaches as
/// "the Internet" (both upstreams hold it).
const STREAMER: &str = "import socket,sys,threading,time\n\
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16); print('listening', flush=True)\n\
def feed(c):\n    try:\n        while True: c.sendall(b'x'*1024); time.sleep(0.05)\n    except OSError: c.close()\n\
while True:\n    c,a=s.accept(); threading.Thread(target=feed, args=(c,), daemon=True).start()\n";

/// Its client, `python3 -u -c DOWNLOAD IP PORT`: prints `got N` as the
/// bytes come, then `ended: WHY` when the connection ends (it also sends a
/// byte every 200 ms, with a 5 s TCP user timeout, so a path that silently
/// went ends it too, rather than a wait of minutes).
const DOWNLOAD: &str = "import socket,sys,time\n\
s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)\n\
s.setsockopt(socket.IPPROTO_TCP, 18, 5000)\n\
n=0; last=time.time()\n\
while True:\n    try:\n        b=s.recv(65536)\n    except socket.timeout:\n        b=None\n    except OSError as e:\n        print('ended:', e, flush=True); break\n    if b == b'':\n        print('ended: eof', flush=True); break\n    if b: n+=len(b); print('got', n, flush=True)\n    if time.time()-last > 0.2:\n        last=time.time()\n        try: s.send(b'k')\n        except OSError as e: print('ended:', e, flush=True); break\n";

/// The address both upstreams hold, as a service on the Internet would
/// be reached through either uplink.
const INTERNET: &str = "198.51.100.10";

fn scratch(name: &str, text: &str) -> String {
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("uplinks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf-8").to_owned()
}

fn fresh(name: &str) -> String {
    let path = scratch(name, "");
    std::fs::remove_file(&path).expect("remove");
    path
}

/// An upstream: DHCP on `dev` in `net`.0/24 (it is .1), DNS for `name`
/// as itself.
fn upstream(ns: &Netns, dev: &str, net: &str, name: &str, leases: &str) -> Process {
    ns.ok(&["ip", "addr", "add", &format!("{net}.1/24"), "dev", dev]);
    ns.spawn(&[
        "dnsmasq",
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        // Rebinds when the interface comes back (the backup is replugged).
        "--bind-dynamic",
        &format!("--interface={dev}"),
        &format!("--dhcp-range={net}.100,{net}.150,255.255.255.0,2m"),
        &format!("--dhcp-option=option:dns-server,{net}.1"),
        &format!("--dhcp-leasefile={leases}"),
        &format!("--address=/{name}/{net}.1"),
        "--local-ttl=1",
        "--pid-file=",
        "--user=root",
    ])
}

/// What `ns` sees as its peer address when it connects to `ip`:9000.
fn seen_as(ns: &Netns, ip: &str, port: &str) -> String {
    let out = ns.exec(&["python3", "-c", CLIENT, ip, port]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn dig(vm: &Netns, name: &str) -> String {
    let out = vm.exec(&[
        "dig",
        "@192.168.100.1",
        "+short",
        "+time=2",
        "+tries=2",
        name,
    ]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn json(line: &str) -> serde_json::Value {
    serde_json::from_str(line).expect("json")
}

/// The uplink_switched events so far, as (from, to, reason).
fn switches(agent: &Process) -> Vec<(String, String, String)> {
    agent
        .lines()
        .iter()
        .filter(|l| l.contains("\"event\":\"uplink_switched\""))
        .map(|l| {
            let v = json(l);
            let s = |k: &str| v[k].as_str().unwrap_or("-").to_owned();
            (s("from"), s("to"), s("reason"))
        })
        .collect()
}

/// Waits until the agent's events show a switch to `to`; the switches
/// after `since` of them.
fn wait_switch(agent: &Process, since: usize, to: &str) -> Vec<(String, String, String)> {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        let now = switches(agent);
        if now.iter().skip(since).any(|(_, t, _)| t == to) {
            return now.into_iter().skip(since).collect();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no switch to {to}; the agent said:\n{}",
            agent.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The address the net-vm's `dev` leased.
fn leased(nv: &Netns, dev: &str) -> String {
    let deadline = std::time::Instant::now() + LONG;
    loop {
        if let Some(a) = nv.ipv4_addresses(dev).first() {
            return a.split('/').next().unwrap_or_default().to_owned();
        }
        assert!(std::time::Instant::now() < deadline, "{dev} has no address");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_internet_fails_over_and_back_and_a_replugged_uplink_is_used_again() {
    let description = scratch("system.toml", DESCRIPTION);
    let journal = fresh("journal");
    let socket = fresh("control.sock");
    let a = Netns::new("ula");
    let b = Netns::new("ulb");
    let nv = Netns::new("uln");
    let vm = Netns::new("ulv");
    veth(&a, "ua", &nv, "wan0");
    veth(&b, "ub", &nv, "eth1");
    nv.ok(&["ip", "link", "set", "eth1", "address", BACKUP_MAC]);
    nv.ok(&["ip", "link", "add", "br-int", "type", "bridge"]);
    nv.ok(&[
        "ip",
        "link",
        "set",
        "br-int",
        "address",
        "02:ad:00:00:00:01",
    ]);
    nv.ok(&["ip", "link", "set", "br-int", "up"]);
    veth(&vm, "eth0", &nv, "p-app");
    nv.ok(&["ip", "link", "set", "p-app", "master", "br-int"]);
    vm.ok(&["ip", "link", "set", "eth0", "address", "02:ad:00:00:00:65"]);
    let _dns_a = upstream(&a, "ua", "10.9.0", "a.test", &scratch("a.leases", ""));
    let _dns_b = upstream(&b, "ub", "10.8.0", "b.test", &scratch("b.leases", ""));
    let service_a = a.spawn(&["python3", "-u", "-c", SERVER, "9000"]);
    let service_b = b.spawn(&["python3", "-u", "-c", SERVER, "9000"]);
    service_a.wait_for(LONG, |l| l.contains("listening"));
    service_b.wait_for(LONG, |l| l.contains("listening"));
    for ns in [&a, &b] {
        ns.ok(&["ip", "addr", "add", &format!("{INTERNET}/32"), "dev", "lo"]);
        ns.ok(&["ip", "link", "set", "lo", "up"]);
    }
    let streamer_a = a.spawn(&["python3", "-u", "-c", STREAMER, "9100"]);
    let streamer_b = b.spawn(&["python3", "-u", "-c", STREAMER, "9100"]);
    streamer_a.wait_for(LONG, |l| l.contains("listening"));
    streamer_b.wait_for(LONG, |l| l.contains("listening"));

    let agent = nv.spawn(&[
        NETVM,
        "agent",
        &description,
        "--journal",
        &journal,
        "--control",
        &socket,
    ]);
    agent.wait_for(LONG, |l| l.contains("\"event\":\"ready\""));
    let renamed = agent.wait_for(LONG, |l| l.contains("interfaces_renamed"));
    assert!(
        renamed.contains("\"from\":\"eth1\",\"to\":\"uplink1\""),
        "{renamed}"
    );

    // The preferred uplink carries the Internet once it proved itself.
    wait_switch(&agent, 0, "wan0");
    let wan0 = leased(&nv, "wan0");
    let uplink1 = leased(&nv, "uplink1");
    let out = vm.exec(&[
        "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1",
    ]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("lease of 192.168.100.101 obtained"),
        "{out:?}"
    );
    let server = vm.spawn(&["python3", "-u", "-c", SERVER, "8443"]);
    server.wait_for(LONG, |l| l.contains("listening"));
    assert_eq!(seen_as(&vm, "10.9.0.1", "9000"), wan0);
    assert_eq!(dig(&vm, "a.test"), "10.9.0.1");
    // The port forward answers on the active uplink only.
    assert_eq!(seen_as(&a, &wan0, "8443"), "10.9.0.1");
    assert_eq!(seen_as(&b, &uplink1, "8443"), "", "a forward on the backup");

    // A long download from "the Internet" runs through wan0.
    assert_eq!(seen_as(&vm, INTERNET, "9000"), wan0);
    let download = vm.spawn(&["python3", "-u", "-c", DOWNLOAD, INTERNET, "9100"]);
    download.wait_for(LONG, |l| l.starts_with("got"));

    // The preferred one loses carrier: the backup takes over at once.
    let before = switches(&agent).len();
    let cut_at = std::time::Instant::now();
    a.ok(&["ip", "link", "set", "ua", "down"]);
    let after = wait_switch(&agent, before, "uplink1");
    eprintln!("fail-over (carrier lost) seen after {:?}", cut_at.elapsed());
    // The download through the old uplink ends (its NAT entry was cut);
    // a new connection to the same address goes out through the backup.
    let ended = download.wait_for(LONG, |l| l.starts_with("ended"));
    eprintln!(
        "the long download {ended} {:?} after the cut",
        cut_at.elapsed()
    );
    assert_eq!(seen_as(&vm, INTERNET, "9000"), uplink1);
    let download = vm.spawn(&["python3", "-u", "-c", DOWNLOAD, INTERNET, "9100"]);
    download.wait_for(LONG, |l| l.starts_with("got"));
    assert_eq!(
        after,
        vec![("wan0".into(), "uplink1".into(), "no_carrier".into())]
    );
    agent.wait_for(LONG, |l| {
        l.contains("\"event\":\"uplink_down\"")
            && l.contains("\"uplink\":\"wan0\"")
            && l.contains("\"state\":\"no_carrier\"")
    });
    assert_eq!(seen_as(&vm, "10.8.0.1", "9000"), uplink1);
    assert_eq!(dig(&vm, "b.test"), "10.8.0.1", "DNS follows the uplink");
    assert_eq!(
        seen_as(&b, &uplink1, "8443"),
        "10.8.0.1",
        "the forward follows"
    );
    assert_eq!(
        seen_as(&a, &wan0, "8443"),
        "",
        "a forward on the old uplink"
    );
    // `netvm uplinks` says so.
    let out = std::process::Command::new(NETVM)
        .args(["uplinks", "--control", &socket, "--format", "json"])
        .output()
        .expect("netvm uplinks");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let row = |name: &str| {
        listed
            .as_array()
            .and_then(|all| all.iter().find(|u| u["name"] == name).cloned())
            .unwrap_or_else(|| panic!("{name} in {listed}"))
    };
    assert_eq!(row("wan0")["state"], "no_carrier", "{listed}");
    assert_eq!(row("uplink1")["state"], "up", "{listed}");
    assert_eq!(row("uplink1")["active"], true, "{listed}");
    assert_eq!(row("uplink1")["address"], uplink1.as_str(), "{listed}");
    schemas::control_line(&serde_json::json!({"ok": true, "uplinks": listed}));

    // It comes back: a new lease, a probe, and the traffic fails back.
    let before = switches(&agent).len();
    let back_at = std::time::Instant::now();
    a.ok(&["ip", "link", "set", "ua", "up"]);
    let after = wait_switch(&agent, before, "wan0");
    eprintln!(
        "fail-back (carrier back, new lease, one probe) seen after {:?}",
        back_at.elapsed()
    );
    assert_eq!(
        after,
        vec![("uplink1".into(), "wan0".into(), "preferred".into())]
    );
    let wan0 = leased(&nv, "wan0");
    assert_eq!(seen_as(&vm, "10.9.0.1", "9000"), wan0);
    // The download that ran through the backup ends too, and the next
    // one goes through wan0 again.
    let ended = download.wait_for(LONG, |l| l.starts_with("ended"));
    eprintln!(
        "the second long download {ended} {:?} after carrier came back",
        back_at.elapsed()
    );
    assert_eq!(seen_as(&vm, INTERNET, "9000"), wan0);

    // A dead path with carrier and a lease (the upstream stops answering
    // beyond its DHCP): the probes find it, and find it back.
    a.ok(&[
        "nft",
        "add table inet dead; add chain inet dead input { type filter hook input priority 0; udp dport 53 drop; tcp dport 9000 drop; }",
    ]);
    let before = switches(&agent).len();
    let dead_at = std::time::Instant::now();
    let after = wait_switch(&agent, before, "uplink1");
    eprintln!(
        "fail-over (probes failing) seen after {:?}",
        dead_at.elapsed()
    );
    assert_eq!(
        after,
        vec![("wan0".into(), "uplink1".into(), "failed".into())]
    );
    assert_eq!(seen_as(&vm, "10.8.0.1", "9000"), uplink1);
    a.ok(&["nft", "delete table inet dead"]);
    let before = switches(&agent).len();
    let after = wait_switch(&agent, before, "wan0");
    assert_eq!(
        after,
        vec![("uplink1".into(), "wan0".into(), "preferred".into())]
    );
    assert_eq!(seen_as(&vm, "10.9.0.1", "9000"), wan0);

    // The backup is unplugged, then plugged in again as another NIC with
    // its MAC: renamed, addressed, and it takes over when wan0 goes.
    b.ok(&["ip", "link", "del", "ub"]);
    // (Its carrier goes before the link does: the event says no_carrier.)
    agent.wait_for(LONG, |l| {
        l.contains("\"event\":\"uplink_down\"") && l.contains("\"uplink\":\"uplink1\"")
    });
    agent.wait_for(LONG, |l| {
        l.contains("\"event\":\"uplink_stopped\"") && l.contains("\"uplink\":\"uplink1\"")
    });
    veth(&b, "ub", &nv, "eth5");
    nv.ok(&["ip", "link", "set", "eth5", "address", BACKUP_MAC]);
    b.ok(&["ip", "addr", "add", "10.8.0.1/24", "dev", "ub"]);
    agent.wait_for(LONG, |l| l.contains("\"from\":\"eth5\",\"to\":\"uplink1\""));
    agent.wait_for_n(2, LONG, |l| {
        l.contains("\"event\":\"uplink_up\"") && l.contains("\"uplink\":\"uplink1\"")
    });
    let before = switches(&agent).len();
    a.ok(&["ip", "link", "set", "ua", "down"]);
    wait_switch(&agent, before, "uplink1");
    let uplink1 = leased(&nv, "uplink1");
    assert_eq!(seen_as(&vm, "10.8.0.1", "9000"), uplink1);

    // The primary (IPv6's uplink too) is unplugged: the agent goes on
    // without it, and takes it back when it returns.
    a.ok(&["ip", "link", "del", "ua"]);
    agent.wait_for(LONG, |l| {
        l.contains("\"event\":\"uplink_stopped\"") && l.contains("\"uplink\":\"wan0\"")
    });
    let out = std::process::Command::new(NETVM)
        .args(["uplinks", "--control", &socket, "--format", "json"])
        .output()
        .expect("netvm uplinks");
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(listed[0]["state"], "absent", "{listed}");
    assert_eq!(listed[1]["active"], true, "{listed}");
    let before = switches(&agent).len();
    veth(&a, "ua", &nv, "wan0");
    a.ok(&["ip", "addr", "add", "10.9.0.1/24", "dev", "ua"]);
    let after = wait_switch(&agent, before, "wan0");
    assert_eq!(
        after,
        vec![("uplink1".into(), "wan0".into(), "preferred".into())]
    );
    let wan0 = leased(&nv, "wan0");
    assert_eq!(seen_as(&vm, "10.9.0.1", "9000"), wan0);
    // The plan's settings for it were applied to the new interface.
    assert_eq!(
        nv.ok(&["cat", "/proc/sys/net/ipv6/conf/wan0/accept_ra"])
            .trim(),
        "2"
    );

    // The internal side never moved: the VM kept its address throughout.
    assert_eq!(vm.ipv4_addresses("eth0"), ["192.168.100.101/24"]);
    schemas::event_lines(&agent.lines());
}
