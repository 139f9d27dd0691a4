//! `netvm agent` for real: in a net-vm namespace it applies the data
//! plane, takes its uplink address from dnsmasq in an upstream namespace,
//! and serves a VM namespace: the VM's DHCP client gets its reservation,
//! its internal name and an upstream name resolve (the latter through
//! the DNS server the uplink's lease named), and it reaches an upstream
//! service through NAT as the uplink's leased address. SIGTERM stops the
//! agent and leaves the ruleset. An agent whose data plane cannot be
//! applied serves nothing. Every event line the agents write is checked
//! against `netvm schema --events`, and the control socket's answers
//! against `netvm schema --control`. Runs as root; needs dnsmasq,
//! udhcpc, dig.

mod schemas;

use netvm_testsupport::{veth, Netns, Process};
use std::path::Path;
use std::time::Duration;

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");
const LONG: Duration = Duration::from_secs(30);

const DESCRIPTION: &str = r#"
[netvm.uplink]
interface = "eth0"
addressing = "dhcp"

[[vm]]
name = "app-vm"
"#;

/// A TCP server that answers every connection with the peer's address.
const SERVER: &str = netvm_testsupport::PEER_SERVER;

const CLIENT: &str = netvm_testsupport::PEER_CLIENT;

fn scratch(name: &str, text: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf-8").to_owned()
}

/// A path in the scratch directory where nothing is yet.
fn fresh(name: &str) -> String {
    let path = scratch(name, "");
    std::fs::remove_file(&path).expect("remove");
    path
}

/// Runs udhcpc once on `ns`'s eth0; what it said.
fn udhcpc(ns: &Netns) -> String {
    udhcpc_with(ns, &[])
}

/// [`udhcpc`] with more arguments.
fn udhcpc_with(ns: &Netns, more: &[&str]) -> String {
    let mut args = vec![
        "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1",
    ];
    args.extend_from_slice(more);
    let out = ns.exec(&args);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn lease_of(line: &str) -> serde_json::Value {
    serde_json::from_str::<serde_json::Value>(line).expect("json")["lease"].clone()
}

/// The upstream: DHCP for the net-vm's uplink and DNS for example.test.
fn upstream(up: &Netns, dir_file: &str) -> Process {
    up.spawn(&[
        "dnsmasq",
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        "--interface=u0",
        "--dhcp-range=10.9.0.100,10.9.0.150,255.255.255.0,2m",
        "--dhcp-option=option:dns-server,10.9.0.1",
        &format!("--dhcp-leasefile={dir_file}"),
        "--address=/example.test/10.9.0.1",
        "--local-ttl=300",
        "--pid-file=",
        "--user=root",
    ])
}

#[test]
fn the_agent_serves_a_vm_with_its_lease_names_and_the_internet() {
    let description = scratch("system.toml", DESCRIPTION);
    let leases = scratch("dnsmasq.leases", "");
    let journal = fresh("journal");
    let socket = fresh("first.sock");
    let up = Netns::new("agu");
    let nv = Netns::new("agn");
    let vm = Netns::new("agv");
    veth(&up, "u0", &nv, "eth0");
    let pool_vm = Netns::new("agp");
    // The internal side: a bridge with the net-vm's MAC under another
    // name (the agent finds it by MAC and renames it `ethint0`), one
    // port per VM.
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
    for (ns, port) in [(&vm, "p-app"), (&pool_vm, "p-pool")] {
        veth(ns, "eth0", &nv, port);
        nv.ok(&["ip", "link", "set", port, "master", "br-int"]);
    }
    up.ok(&["ip", "addr", "add", "10.9.0.1/24", "dev", "u0"]);
    vm.ok(&["ip", "link", "set", "eth0", "address", "02:ad:00:00:00:65"]);
    let _dnsmasq = upstream(&up, &leases);
    let service = up.spawn(&["python3", "-u", "-c", SERVER, "9000"]);
    service.wait_for(LONG, |l| l.contains("listening"));

    // systemd's side of READY=1 and the watchdog: a datagram socket.
    let notify_path =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("agent-{}/notify", std::process::id()));
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).expect("notify socket");
    notify
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let agent = nv.spawn(&[
        "env",
        &format!("NOTIFY_SOCKET={}", notify_path.display()),
        "WATCHDOG_USEC=400000",
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
        renamed.contains("\"from\":\"br-int\",\"to\":\"ethint0\""),
        "{renamed}"
    );
    let bound = agent.wait_for(LONG, |l| l.contains("uplink_bound"));
    let uplink_address = lease_of(&bound)["address"]
        .as_str()
        .expect("address")
        .to_owned();
    agent.wait_for(LONG, |l| {
        l.contains("dns_upstreams") && l.contains("10.9.0.1:53")
    });

    // The VM's DHCP client gets its reservation (the test support gives
    // each namespace its own resolv.conf for the client's script).
    let said = udhcpc(&vm);
    assert!(said.contains("lease of 192.168.100.101 obtained"), "{said}");
    assert_eq!(vm.ipv4_addresses("eth0"), ["192.168.100.101/24"]);

    let dig = |name: &str| {
        let out = vm.exec(&[
            "dig",
            "@192.168.100.1",
            "+short",
            "+time=3",
            "+tries=2",
            name,
        ]);
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    assert_eq!(dig("app-vm.internal"), "192.168.100.101");
    assert_eq!(dig("www.example.test"), "10.9.0.1");

    // Out through NAT, as the address the uplink leased.
    let out = vm.exec(&["python3", "-c", CLIENT, "10.9.0.1", "9000"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        uplink_address,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A VM the description does not name gets a pool address, and its
    // lease admits it past the anti-spoofing guard: its (address, MAC)
    // joins the `endpoints` set and it can use the net-vm's DNS. (Whether
    // pool clients may reach the Internet is not described yet: they are
    // in no `internet` set.) The host name it gives reaches the DNS
    // server through the agent's DHCP hook.
    // The client's own script reads the set the moment the ACK is in
    // (before it even configures the address): the pair must be there
    // already, with no waiting, since the agent adds it before the ACK
    // leaves (tests/endpoints.rs proves the ACK waits for the add: one
    // the kernel refuses gets no ACK). Its first query then passes the
    // guard at once (one try) and the `spoofed` counter does not move.
    let seen_at_ack = scratch("endpoints-at-ack.txt", "");
    let script = scratch(
        "pool-script.sh",
        &format!(
            "#!/bin/sh
case \"$1\" in bound|renew)
  ip netns exec {} nft list set inet netvm endpoints > {seen_at_ack}
  ip addr add \"$ip/$mask\" dev \"$interface\"
;; esac
",
            nv.name()
        ),
    );
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let spoofed = |nv: &Netns| {
        let listing = nv.ok(&["nft", "list", "counter", "inet", "netvm", "spoofed"]);
        listing
            .split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .expect("the spoofed counter")
    };
    let spoofed_before = spoofed(&nv);
    let said = udhcpc_with(&pool_vm, &["-x", "hostname:pool-box", "-s", &script]);
    assert!(said.contains("lease of 192.168.100.2"), "{said}");
    let pool_address = pool_vm.ipv4_addresses("eth0")[0].replace("/24", "");
    let at_ack = std::fs::read_to_string(&seen_at_ack).expect("the script ran");
    assert!(
        at_ack.contains(&format!("{pool_address} . ")),
        "{pool_address} was not in the endpoints set when its ACK arrived: {at_ack}"
    );
    let out = pool_vm.exec(&[
        "dig",
        "@192.168.100.1",
        "+short",
        "+time=3",
        "+tries=1",
        "app-vm.internal",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "192.168.100.101"
    );
    assert_eq!(
        spoofed(&nv),
        spoofed_before,
        "a pool client's first packets were taken for spoofing"
    );
    // The DNS server learns the name on its own thread: ask until it
    // answers (the name is fed before the ACK leaves, so this is quick).
    let mut named = String::new();
    for _ in 0..25 {
        named = dig("pool-box.internal");
        if !named.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(named, pool_address, "the pool client's host name");

    // systemd heard READY=1 first, then the watchdog every 0.2 s.
    let mut heard = Vec::new();
    let mut buf = [0u8; 64];
    while heard.iter().filter(|m| *m == "WATCHDOG=1").count() < 3 {
        let n = notify.recv(&mut buf).expect("a notification within 10 s");
        heard.push(String::from_utf8_lossy(&buf[..n]).into_owned());
    }
    assert_eq!(heard[0], "READY=1", "{heard:?}");

    // SIGTERM: everything stops, the ruleset stays (fail closed).
    let mut agent = agent;
    agent.signal("TERM");
    assert!(
        agent.wait_exit(LONG),
        "the agent did not stop: {:?}",
        agent.lines()
    );
    assert!(
        agent.lines().iter().any(|l| l.contains("agent_stopped")),
        "{:?}",
        agent.lines()
    );
    nv.ok(&["nft", "list", "table", "inet", "netvm"]);

    // Every event the agent and its parts wrote is one the schema allows.
    let kinds = schemas::event_lines(&agent.lines());
    for kind in [
        "interfaces_renamed",
        "data_plane_applied",
        "ready",
        "uplink_bound",
        "dns_upstreams",
        "lease_granted",
        "stopped",
        "uplink_stopped",
        "agent_stopped",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
}

#[test]
fn an_agent_that_cannot_apply_its_data_plane_serves_nothing() {
    let description = scratch("broken.toml", DESCRIPTION);
    let journal = scratch("broken.journal", "");
    let nv = Netns::new("agx");
    // No internal interface: the data plane cannot be applied.
    let out = nv.exec(&[NETVM, "agent", &description, "--journal", &journal]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success());
    assert!(!stdout.contains("ready"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the data plane could not be applied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Two VMs that may talk on one port, metrics for one of them, the
/// control service for both (one may only read).
const OPERATED: &str = r#"
[netvm.uplink]
interface = "eth0"
addressing = "dhcp"

[[vm]]
name = "app-vm"
allow = [{ to = "db-vm", proto = "tcp", ports = 7000 }]

[[vm]]
name = "db-vm"
internet = false

[agent]
metrics_port = 9100
metrics_allow = ["app-vm"]
control_allow = ["app-vm"]
control_read = ["db-vm"]
scan_ports = 20
"#;

/// Connects to `host` (argument 2) on each port given, waiting argument
/// 1 seconds each; prints `open` for each port that answered.
const SCANNER: &str = r#"
import socket, sys
for p in sys.argv[3:]:
    s = socket.socket()
    s.settimeout(float(sys.argv[1]))
    try:
        s.connect((sys.argv[2], int(p)))
        print("open", p)
    except Exception as e:
        print("closed", p, e, file=sys.stderr)
    s.close()
"#;

/// Sends three UDP datagrams from `sys.argv[1]` to the net-vm's DNS port.
const SPOOFER: &str = "import socket,sys\n\
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.bind((sys.argv[1], 0))\n\
for _ in range(3): s.sendto(b'x'*12, ('192.168.100.1', 53))\n";

/// Answers like a DHCP server would: from port 67 to 68, broadcast.
const ROGUE: &str = "import socket\n\
s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)\n\
s.bind(('0.0.0.0', 67))\n\
for _ in range(3): s.sendto(b'offer', ('255.255.255.255', 68))\n";

const FETCH: &str = "import urllib.request,sys\n\
print(urllib.request.urlopen(sys.argv[1], timeout=3).read().decode())\n";

/// Lines of the agent that are events named `name`.
fn events_named(agent: &Process, name: &str) -> Vec<serde_json::Value> {
    agent
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event"] == name)
        .collect()
}

fn connects(ns: &Netns, host: &str, port: &str) -> bool {
    let out = ns.exec(&["python3", "-c", SCANNER, "2", host, port]);
    eprintln!("{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).contains("open")
}

#[test]
fn the_agent_is_operated_through_its_control_socket() {
    let description = scratch("operated.toml", OPERATED);
    let leases = scratch("operated-dnsmasq.leases", "");
    let journal = fresh("operated-journal");
    let control = fresh("control.sock");
    let up = Netns::new("aou");
    let nv = Netns::new("aon");
    let app = Netns::new("aoa");
    let db = Netns::new("aod");
    veth(&up, "u0", &nv, "eth0");
    nv.ok(&["ip", "link", "add", "ethint0", "type", "bridge"]);
    nv.ok(&["ip", "link", "set", "ethint0", "up"]);
    for (ns, port, mac) in [
        (&app, "p-app", "02:ad:00:00:00:65"),
        (&db, "p-db", "02:ad:00:00:00:66"),
    ] {
        veth(ns, "eth0", &nv, port);
        nv.ok(&["ip", "link", "set", port, "master", "ethint0"]);
        // As on the host's bridge: VMs reach each other only through
        // the net-vm (which answers ARP for them).
        nv.ok(&["bridge", "link", "set", "dev", port, "isolated", "on"]);
        ns.ok(&["ip", "link", "set", "eth0", "address", mac]);
    }
    up.ok(&["ip", "addr", "add", "10.9.0.1/24", "dev", "u0"]);
    let _dnsmasq = upstream(&up, &leases);
    let start = |extra: &[&str]| {
        let mut args = vec![
            NETVM,
            "agent",
            &description,
            "--journal",
            &journal,
            "--control",
            &control,
            "--user",
            "nobody",
        ];
        args.extend_from_slice(extra);
        let agent = nv.spawn(&args);
        agent.wait_for(LONG, |l| l.contains("\"event\":\"ready\""));
        agent
    };
    let agent = start(&[]);
    let bound = agent.wait_for(LONG, |l| l.contains("uplink_bound"));
    let uplink_address = lease_of(&bound)["address"]
        .as_str()
        .expect("address")
        .to_owned();
    let netvm = |args: &[&str]| -> std::process::Output {
        let mut all = vec![NETVM];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--control", &control]);
        nv.exec(&all)
    };
    let stdout = |out: &std::process::Output| String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = |out: &std::process::Output| String::from_utf8_lossy(&out.stderr).into_owned();

    // Privileges: the agent runs as nobody with exactly three capabilities.
    let proc_status =
        std::fs::read_to_string(format!("/proc/{}/status", agent.pid())).expect("status");
    let field = |name: &str| {
        proc_status
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    assert!(
        field("Uid:").contains("65534\t65534\t65534"),
        "{}",
        field("Uid:")
    );
    assert!(
        field("CapEff:").ends_with("0000000000003400"),
        "{}",
        field("CapEff:")
    );

    // Both VMs get their reservations; the agent's lease list says so.
    assert!(udhcpc(&app).contains("lease of 192.168.100.101 obtained"));
    assert!(udhcpc(&db).contains("lease of 192.168.100.102 obtained"));
    let leases = netvm(&["leases", "--format", "json"]);
    assert!(leases.status.success(), "{}", stderr(&leases));
    let listed: serde_json::Value = serde_json::from_str(&stdout(&leases)).expect("json");
    let vms: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|l| l["vm"].as_str())
        .collect();
    assert_eq!(vms, ["app-vm", "db-vm"]);
    let status = netvm(&["status", "--format", "json"]);
    let status: serde_json::Value = serde_json::from_str(&stdout(&status)).expect("json");
    assert_eq!(status["uplink"]["state"], "bound");
    assert_eq!(status["vms"]["described"][0]["lease"], "bound");
    let table = stdout(&netvm(&["status"]));
    assert!(
        table.contains("app-vm") && table.contains("bound"),
        "{table}"
    );

    // The control socket: mode 0600; another user cannot connect, and
    // with the mode opened up, the agent itself refuses the peer.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&control)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let as_stranger = |args: &[&str]| {
        let mut all = vec![
            "setpriv",
            "--reuid=12345",
            "--regid=12345",
            "--clear-groups",
            NETVM,
        ];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--control", &control]);
        nv.exec(&all)
    };
    let refused = as_stranger(&["status"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("Permission denied"),
        "{}",
        stderr(&refused)
    );
    std::fs::set_permissions(&control, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let refused = as_stranger(&["status"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("refused: peer uid 12345"),
        "{}",
        stderr(&refused)
    );

    // Policy: app-vm → db-vm:7000 is allowed, :7001 is not; both are events.
    let _listeners: Vec<Process> = ["7000", "7001"]
        .iter()
        .map(|port| {
            let p = db.spawn(&["python3", "-u", "-c", SERVER, port]);
            p.wait_for(LONG, |l| l.contains("listening"));
            p
        })
        .collect();
    assert!(connects(&app, "192.168.100.102", "7000"));
    assert!(!connects(&app, "192.168.100.102", "7001"));
    let allowed = agent.wait_for(LONG, |l| l.contains("\"flow_allowed\""));
    assert!(allowed.contains("\"to_vm\":\"db-vm\""), "{allowed}");
    let dropped = agent.wait_for(LONG, |l| l.contains("\"policy_drop\""));
    assert!(
        dropped.contains("\"port\":7001") && dropped.contains("\"from_vm\":\"app-vm\""),
        "{dropped}"
    );

    // Spoofing: app-vm sends from an address that is not its own: three
    // datagrams, one event naming whose MAC it was.
    app.ok(&["ip", "addr", "add", "192.168.100.77/24", "dev", "eth0"]);
    app.ok(&["python3", "-c", SPOOFER, "192.168.100.77"]);
    app.ok(&["python3", "-c", SPOOFER, "192.168.100.77"]);
    let spoof = agent.wait_for(LONG, |l| l.contains("\"spoofing\""));
    assert!(
        spoof.contains("\"mac_of\":\"app-vm\"") && spoof.contains("192.168.100.77"),
        "{spoof}"
    );

    // A port scan from the upstream: 40 ports, one event; nothing open.
    let ports: Vec<String> = (1..=40).map(|p| (20000 + p).to_string()).collect();
    let mut args = vec!["python3", "-c", SCANNER, "0.05", uplink_address.as_str()];
    args.extend(ports.iter().map(String::as_str));
    let scanned = up.exec(&args);
    assert_eq!(stdout(&scanned), "", "a port answered the scan");
    let scan = agent.wait_for(LONG, |l| l.contains("\"port_scan\""));
    assert!(scan.contains("\"source\":\"10.9.0.1\""), "{scan}");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        events_named(&agent, "spoofing").len(),
        1,
        "{:?}",
        agent.lines()
    );
    assert_eq!(
        events_named(&agent, "port_scan").len(),
        1,
        "{:?}",
        agent.lines()
    );
    // A DHCP server in db-vm answering (UDP 67 to 68, three times): one
    // rogue-server event naming db-vm.
    db.ok(&["python3", "-c", ROGUE]);
    let rogue = agent.wait_for(LONG, |l| l.contains("\"rogue_dhcp_server\""));
    assert!(rogue.contains("\"vm\":\"db-vm\""), "{rogue}");
    // Starvation: 100 invented clients from db-vm's port in 2 s. The
    // reservations hold.
    let acks = scratch("starvation.acks", "");
    db.ok(&[
        NETVM,
        "dhcp",
        "load",
        "--interface",
        "eth0",
        "--clients",
        "100",
        "--rate",
        "100",
        "--seconds",
        "2",
        "--acks",
        &acks,
    ]);
    let starving = agent.wait_for(LONG, |l| l.contains("\"dhcp_starvation\""));
    assert!(starving.contains("\"clients\":32"), "{starving}");
    assert!(udhcpc(&app).contains("lease of 192.168.100.101 obtained"));
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        events_named(&agent, "rogue_dhcp_server").len(),
        1,
        "{:?}",
        agent.lines()
    );
    // The same events through `netvm events`.
    let listed = stdout(&netvm(&["events", "--last", "1000"]));
    assert!(
        listed.contains("\"port_scan\"") && listed.contains("\"spoofing\""),
        "{listed}"
    );
    let lines: Vec<String> = listed.lines().map(str::to_owned).collect();
    schemas::event_lines(&lines);
    // The answers themselves, as the control protocol's schema says.
    for (flag, field) in [("status", "status"), ("leases", "leases")] {
        let out = netvm(&[flag, "--format", "json"]);
        let value: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
        schemas::control_line(&serde_json::json!({"ok": true, field: value}));
    }

    // Metrics: app-vm may read them, db-vm may not.
    let metrics = app.exec(&["python3", "-c", FETCH, "http://192.168.100.1:9100/metrics"]);
    let text = stdout(&metrics);
    assert!(
        text.contains("netvm_up 1") && text.contains("netvm_vms_with_lease 2"),
        "{text}{}",
        stderr(&metrics)
    );
    assert!(!db
        .exec(&["python3", "-c", FETCH, "http://192.168.100.1:9100/metrics"])
        .status
        .success());

    // The control service for VMs: app-vm may ask everything, db-vm may
    // only read; both are known by their addresses.
    let remote = |ns: &Netns, args: &[&str]| -> std::process::Output {
        let mut all = vec![NETVM];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--agent", "192.168.100.1:7071"]);
        ns.exec(&all)
    };
    for ns in [&app, &db] {
        let out = remote(ns, &["status", "--format", "json"]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(stdout(&out).contains("\"app-vm\""), "{}", stdout(&out));
        let out = remote(ns, &["events", "--last", "3"]);
        assert!(out.status.success(), "{}", stderr(&out));
        schemas::event_lines(&stdout(&out).lines().map(str::to_owned).collect::<Vec<_>>());
    }
    let refused = remote(&db, &["reload"]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("may only read"),
        "{}",
        stderr(&refused)
    );
    let reloaded = remote(&app, &["reload"]);
    assert!(reloaded.status.success(), "{}", stderr(&reloaded));
    // One VM holds at most four connections: a fifth silent one is closed
    // unanswered, while db-vm is still served.
    let hog = app.spawn(&[
        "python3",
        "-u",
        "-c",
        "import socket,time\nc=[socket.create_connection(('192.168.100.1',7071),timeout=5) for _ in range(5)]\nprint('fifth', repr(c[4].recv(100)), flush=True)\ntime.sleep(30)",
    ]);
    let fifth = hog.wait_for(LONG, |l| l.starts_with("fifth"));
    assert_eq!(fifth.trim(), "fifth b''", "{:?}", hog.lines());
    let out = remote(&db, &["leases"]);
    assert!(out.status.success(), "{}", stderr(&out));
    drop(hog);
    // Not through the Unix socket's door: the control port answers no one
    // else, and not on another port.
    assert!(!connects(&app, "192.168.100.1", "7072"));
    // A line that is no request gets a refusal, not a hang.
    let junk = app.exec(&[
        "python3",
        "-c",
        "import socket\ns=socket.create_connection(('192.168.100.1',7071),timeout=5)\ns.sendall(b'hello\\n')\nprint(s.recv(4096).decode())",
    ]);
    assert!(
        stdout(&junk).contains("\"ok\":false"),
        "{}{}",
        stdout(&junk),
        stderr(&junk)
    );

    // A reload with a broken file (SIGHUP) changes nothing and says why.
    std::fs::write(
        &description,
        OPERATED.replace("ports = 7000", "ports = 70000"),
    )
    .expect("write");
    agent.signal("HUP");
    let failed = agent.wait_for(LONG, |l| l.contains("reload_failed"));
    assert!(failed.contains("70000"), "{failed}");
    assert!(connects(&app, "192.168.100.102", "7000"));
    let refused = netvm(&["reload"]);
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("70000"), "{}", stderr(&refused));

    // A valid change: the flow moves to port 7001. An open connection on
    // 7000 is cut, 7001 now works, the leases stay.
    let held = app.spawn(&[
        "python3", "-u", "-c",
        "import socket,time\ns=socket.create_connection(('192.168.100.102',7000));print('connected',flush=True);time.sleep(60)",
    ]);
    held.wait_for(LONG, |l| l.contains("connected"));
    std::fs::write(
        &description,
        OPERATED
            .replace("ports = 7000", "ports = 7001")
            .replace("control_read = [\"db-vm\"]", "control_read = []"),
    )
    .expect("write");
    let reloaded = netvm(&["reload"]);
    assert!(reloaded.status.success(), "{}", stderr(&reloaded));
    let outcome: serde_json::Value = serde_json::from_str(&stdout(&reloaded)).expect("json");
    assert_eq!(
        outcome["changes"]["vms_changed"],
        serde_json::json!(["app-vm"])
    );
    assert!(
        outcome["connections_cut"].as_u64().expect("count") >= 1,
        "{outcome}"
    );
    assert!(connects(&app, "192.168.100.102", "7001"));
    assert!(!connects(&app, "192.168.100.102", "7000"));
    // db-vm is no longer a control user: its requests get nothing.
    let gone = remote(&db, &["status"]);
    assert!(!gone.status.success());
    assert!(
        stderr(&gone).contains("cannot reach the agent's control service"),
        "{}",
        stderr(&gone)
    );
    assert!(remote(&app, &["uplinks"]).status.success());
    let listed = stdout(&netvm(&["leases", "--format", "json"]));
    assert!(
        listed.contains("192.168.100.101") && listed.contains("192.168.100.102"),
        "{listed}"
    );

    // kill -9 and a restart: the leases are still known, a renewal keeps
    // the address.
    let mut agent = agent;
    agent.signal("KILL");
    assert!(agent.wait_exit(LONG));
    let kinds = schemas::event_lines(&agent.lines());
    for kind in [
        "privileges_dropped",
        "flow_allowed",
        "policy_drop",
        "spoofing",
        "port_scan",
        "rogue_dhcp_server",
        "dhcp_starvation",
        "reload_failed",
        "reloaded",
    ] {
        assert!(kinds.contains(kind), "no {kind} in {kinds:?}");
    }
    let mut agent = start(&["--remove-on-exit"]);
    let listed = stdout(&netvm(&["leases", "--format", "json"]));
    assert!(
        listed.contains("192.168.100.101") && listed.contains("192.168.100.102"),
        "{listed}"
    );
    assert!(udhcpc(&app).contains("lease of 192.168.100.101 obtained"));

    // SIGTERM with --remove-on-exit: the ruleset goes too (without the
    // flag it stays: the first test).
    agent.signal("TERM");
    assert!(agent.wait_exit(LONG), "{:?}", agent.lines());
    assert!(!nv
        .exec(&["nft", "list", "table", "inet", "netvm"])
        .status
        .success());
    assert!(
        !Path::new(&control).exists(),
        "the control socket is removed on exit"
    );
    let kinds = schemas::event_lines(&agent.lines());
    assert!(kinds.contains("ruleset_removed"), "{kinds:?}");
}
