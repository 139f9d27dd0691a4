//! The DNS server over IPv6 for real, with dig: the server runs in this
//! process on a thread inside the net-vm namespace (so the test holds
//! the handles the agent holds: learned names and upstreams); a VM
//! namespace asks it on its internal IPv6 address over UDP and TCP; it
//! forwards to a dnsmasq upstream on an IPv6 address in an upstream
//! namespace, whose query log shows what reached it. AAAA and PTR
//! (`ip6.arpa`) for described names, NODATA for a name without IPv6, a
//! pool guest's DHCPv6 address named after its DHCP lease (same MAC),
//! coming and going with its lease, nothing about
//! the internal prefix upstream, no answer to the uplink side. Runs as
//! root; needs dig and dnsmasq.

use netvm_description::values::MacAddr;
use netvm_dhcp::Timestamp;
use netvm_dhcp6::server::Event6;
use netvm_dns_server::{DnsOptions, Names, Upstreams};
use netvm_runtime::PartControl;
use netvm_testsupport::{veth, Netns, Process};
use std::net::{Ipv6Addr, SocketAddr};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(20);

const DESCRIPTION: &str = r#"
[network]
ipv6_prefix = "fd6d:6d6d:6d6d::/64"

[netvm.uplink]
interface = "eth0"
addressing = "static"
address = "203.0.113.2/24"
gateway = "203.0.113.1"

[[vm]]
name = "chrome-vm"

[dns]
records = [{ name = "printer", ip = "192.168.100.60" }]
"#;

/// The net-vm's internal IPv6 address (the prefix's `::1`).
const SERVER: &str = "fd6d:6d6d:6d6d::1";
/// chrome-vm, 192.168.100.101: interface identifier 101 = 0x65.
const CHROME: &str = "fd6d:6d6d:6d6d::65";
/// The upstream, on the uplink's link.
const UPSTREAM: &str = "2001:db8:53::1";
/// The net-vm's uplink address.
const UPLINK: &str = "2001:db8:53::2";

fn dig(ns: &Netns, args: &[&str]) -> String {
    let server = format!("@{SERVER}");
    let mut argv = vec!["dig", &server, "+time=3", "+tries=1"];
    argv.extend_from_slice(args);
    String::from_utf8_lossy(&ns.exec(&argv).stdout).into_owned()
}

fn short(ns: &Netns, args: &[&str]) -> String {
    let mut argv = args.to_vec();
    argv.push("+short");
    dig(ns, &argv).trim().to_owned()
}

/// A dnsmasq on `ip` that answers every name under example.test,
/// logging queries.
fn upstream(ns: &Netns, ip: &str) -> Process {
    let process = ns.spawn(&[
        "dnsmasq",
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        &format!("--listen-address={ip}"),
        "--address=/example.test/2001:db8:77::7",
        "--local-ttl=300",
        "--log-queries",
        "--log-facility=-",
        "--pid-file=",
        "--user=root",
    ]);
    process.wait_for(LONG, |l| l.contains("started"));
    process
}

fn asked(upstream: &Process, name: &str) -> usize {
    upstream
        .lines()
        .iter()
        .filter(|l| l.contains("query[") && l.contains(name))
        .count()
}

/// Waits until `check` holds.
fn eventually(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < LONG, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The server on a thread inside a namespace; stopped on drop.
struct Server {
    control: PartControl,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl Server {
    fn start(ns: &Netns, options: impl FnOnce(PartControl) -> DnsOptions) -> Server {
        let system =
            netvm_description::parse("system.toml", DESCRIPTION, netvm_description::Format::Toml)
                .expect("valid description");
        // What `netvm plan` prints under `dns`: the description's prefix.
        let plan = netvm_plan::plan(&system).dns;
        let control = PartControl::default();
        let options = options(control.clone());
        let path = format!("/run/netns/{}", ns.name());
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
            // Only this thread moves: its sockets are the namespace's.
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET)
                .map_err(|e| format!("setns: {e}"))?;
            netvm_dns_server::serve(&plan, options).map_err(|e| format!("{e:?}"))
        });
        Server {
            control,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) -> Result<(), String> {
        self.control.stop.stop();
        match self.thread.take() {
            Some(thread) => thread.join().unwrap_or_else(|_| Err("panicked".into())),
            None => Ok(()),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

#[test]
fn the_net_vm_answers_and_forwards_over_ipv6() {
    let up = Netns::new("n6dup");
    let netvm = Netns::new("n6dnv");
    let vm = Netns::new("n6dvm");
    veth(&up, "u0", &netvm, "eth0");
    // `nodad`: usable at once, no duplicate detection to wait for.
    up.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{UPSTREAM}/64"),
        "dev",
        "u0",
        "nodad",
    ]);
    up.ok(&[
        "ip",
        "-6",
        "route",
        "add",
        "fd6d:6d6d:6d6d::/64",
        "via",
        UPLINK,
    ]);
    netvm.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{UPLINK}/64"),
        "dev",
        "eth0",
        "nodad",
    ]);
    netvm.ok(&["ip", "link", "add", "ethint0", "type", "bridge"]);
    netvm.ok(&["ip", "link", "set", "ethint0", "up"]);
    netvm.ok(&["ip", "addr", "add", "192.168.100.1/24", "dev", "ethint0"]);
    netvm.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{SERVER}/64"),
        "dev",
        "ethint0",
        "nodad",
    ]);
    veth(&vm, "eth0", &netvm, "p-vm");
    netvm.ok(&["ip", "link", "set", "p-vm", "master", "ethint0"]);
    vm.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{CHROME}/64"),
        "dev",
        "eth0",
        "nodad",
    ]);

    let dnsmasq = upstream(&up, UPSTREAM);
    let names = Names::new();
    let learned = Upstreams::new();
    // As the agent would from the uplink's router advertisements.
    learned.set(vec![SocketAddr::new(UPSTREAM.parse().expect("ip"), 53)]);
    let mut server = Server::start(&netvm, |control| DnsOptions {
        interface: "ethint0".parse().expect("name"),
        upstreams: Vec::new(),
        leases: None,
        names: Some(names.clone()),
        learned_upstreams: Some(learned.clone()),
        control: Some(control),
    });
    eventually("the server on its IPv6 address", || {
        short(&vm, &["AAAA", "chrome-vm.internal"]) == CHROME
    });

    // Described names over IPv6: AAAA, A, PTR; UDP and TCP.
    assert_eq!(short(&vm, &["A", "chrome-vm.internal"]), "192.168.100.101");
    assert_eq!(short(&vm, &["AAAA", "net-vm.internal"]), SERVER);
    assert_eq!(short(&vm, &["-x", CHROME]), "chrome-vm.internal.");
    assert_eq!(short(&vm, &["+tcp", "AAAA", "chrome-vm.internal"]), CHROME);
    assert_eq!(short(&vm, &["+tcp", "-x", SERVER]), "net-vm.internal.");
    // A name without IPv6: NOERROR, no answer (NODATA), authoritative.
    let nodata = dig(&vm, &["AAAA", "printer.internal"]);
    assert!(
        nodata.contains("status: NOERROR")
            && nodata.contains(" aa ")
            && nodata.contains("ANSWER: 0"),
        "{nodata}"
    );
    let unknown = dig(&vm, &["-x", "fd6d:6d6d:6d6d::77"]);
    assert!(unknown.contains("status: NXDOMAIN"), "{unknown}");

    // Forwarded over IPv6 to the IPv6 upstream.
    assert_eq!(short(&vm, &["AAAA", "www.example.test"]), "2001:db8:77::7");
    assert_eq!(
        short(&vm, &["+tcp", "AAAA", "tcp.example.test"]),
        "2001:db8:77::7"
    );
    assert_eq!(asked(&dnsmasq, "www.example.test"), 1);
    assert!(
        dnsmasq
            .lines()
            .iter()
            .any(|l| l.contains("www.example.test from 2001:db8:53::2")),
        "{:?}",
        dnsmasq.lines()
    );

    // A pool guest: its DHCPv6 address takes the host name of its DHCP
    // lease (same MAC), while both leases live.
    let laptop: Ipv6Addr = "fd6d:6d6d:6d6d::1:0:c8".parse().expect("ip");
    let mac = MacAddr([2, 0, 0, 0, 0, 0x6d]);
    names.lease_event(&netvm_dhcp::Event::LeaseGranted {
        ip: "192.168.100.200".parse().expect("ip"),
        mac,
        client: netvm_dhcp::ClientKey::Mac(mac),
        hostname: Some("laptop".into()),
        until: Timestamp(u64::MAX),
    });
    names.lease_event6(&Event6::LeaseGranted {
        ip: laptop,
        mac,
        until: u64::MAX,
    });
    eventually("laptop.internal", || {
        short(&vm, &["AAAA", "laptop.internal"]) == laptop.to_string()
    });
    assert_eq!(short(&vm, &["A", "laptop.internal"]), "192.168.100.200");
    assert_eq!(short(&vm, &["-x", &laptop.to_string()]), "laptop.internal.");
    names.lease_event6(&Event6::LeaseReleased { ip: laptop, mac });
    eventually("its AAAA to go", || {
        let reply = dig(&vm, &["AAAA", "laptop.internal"]);
        reply.contains("status: NOERROR") && reply.contains("ANSWER: 0")
    });
    let gone = dig(&vm, &["-x", &laptop.to_string()]);
    assert!(gone.contains("status: NXDOMAIN"), "{gone}");

    // Nothing about the internal names or prefix went upstream.
    assert_eq!(asked(&dnsmasq, "internal"), 0, "{:?}", dnsmasq.lines());
    assert_eq!(asked(&dnsmasq, "ip6.arpa"), 0, "{:?}", dnsmasq.lines());

    // The uplink side gets nothing: not on the internal address (routed
    // to the net-vm through its uplink), not on the uplink address.
    for server in [SERVER, UPLINK] {
        let out = up.exec(&[
            "dig",
            &format!("@{server}"),
            "+time=1",
            "+tries=1",
            "AAAA",
            "chrome-vm.internal",
        ]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("ANSWER SECTION") && !text.contains("status:"),
            "{server}: {text}"
        );
    }

    assert_eq!(server.stop(), Ok(()));
    let counters = server.control.counters.lock().expect("counters").clone();
    assert!(counters["local"].as_u64() >= Some(9), "{counters}");
    assert!(counters["forwarded"].as_u64() >= Some(2), "{counters}");
}
