//! `netvm agent` for real: in a net-vm namespace it applies the data
//! plane, takes its uplink address from dnsmasq in an upstream namespace,
//! and serves a VM namespace: the VM's DHCP client gets its reservation,
//! its internal name and an upstream name resolve (the latter through
//! the DNS server the uplink's lease named), and it reaches an upstream
//! service through NAT as the uplink's leased address. SIGTERM stops the
//! agent and leaves the ruleset. An agent whose data plane cannot be
//! applied serves nothing. Runs as root; needs dnsmasq, udhcpc, dig.

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
const SERVER: &str = "import socket,sys\n\
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('0.0.0.0', int(sys.argv[1]))); s.listen(16); print('listening', flush=True)\n\
while True:\n    c,a=s.accept(); c.sendall((a[0]+'\\n').encode()); c.close()\n";

const CLIENT: &str = "import socket,sys\n\
s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)\n\
print(s.recv(100).decode().strip())\n";

fn scratch(name: &str, text: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("agent-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    path.to_str().expect("utf-8").to_owned()
}

/// Runs udhcpc once on `ns`'s eth0; what it said.
fn udhcpc(ns: &Netns) -> String {
    let out = ns.exec(&[
        "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-t", "5", "-T", "1",
    ]);
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
    let journal = scratch("journal", "");
    std::fs::remove_file(&journal).expect("fresh journal");
    let up = Netns::new("agu");
    let nv = Netns::new("agn");
    let vm = Netns::new("agv");
    veth(&up, "u0", &nv, "eth0");
    let pool_vm = Netns::new("agp");
    // The internal side: a bridge named as the agent expects, one port
    // per VM.
    nv.ok(&["ip", "link", "add", "ethint0", "type", "bridge"]);
    nv.ok(&["ip", "link", "set", "ethint0", "up"]);
    for (ns, port) in [(&vm, "p-app"), (&pool_vm, "p-pool")] {
        veth(ns, "eth0", &nv, port);
        nv.ok(&["ip", "link", "set", port, "master", "ethint0"]);
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
    ]);
    agent.wait_for(LONG, |l| l.contains("\"event\":\"ready\""));
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
    // in no `internet` set.)
    let said = udhcpc(&pool_vm);
    assert!(said.contains("lease of 192.168.100.2"), "{said}");
    let pool_address = pool_vm.ipv4_addresses("eth0")[0].replace("/24", "");
    let mut admitted = false;
    for _ in 0..25 {
        let set = nv.ok(&["nft", "list", "set", "inet", "netvm", "endpoints"]);
        if set.contains(&format!("{pool_address} . ")) {
            admitted = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(admitted, "{pool_address} never joined the endpoints set");
    let out = pool_vm.exec(&[
        "dig",
        "@192.168.100.1",
        "+short",
        "+time=3",
        "+tries=2",
        "app-vm.internal",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "192.168.100.101"
    );

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
