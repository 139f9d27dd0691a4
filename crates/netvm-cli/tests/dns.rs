//! The DNS server for real, with dig: a VM namespace asks the net-vm
//! namespace (`netvm dns serve`), which forwards to two dnsmasq upstreams
//! in an upstream namespace (their query logs show what reached them).
//! Local names and PTRs, a name learned from a DHCP lease that comes and
//! goes with it, forwarding, cache hits, failover, TCP, and no answer to
//! queries from the uplink side. Runs as root; needs dig and dnsmasq.

use netvm_testsupport::{veth, Netns, Process};
use std::path::Path;
use std::time::{Duration, Instant};

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");
const LONG: Duration = Duration::from_secs(20);

const DESCRIPTION: &str = r#"
[netvm.uplink]
interface = "eth0"
addressing = "static"
address = "203.0.113.2/24"
gateway = "203.0.113.1"

[[vm]]
name = "chrome-vm"

[dhcp]
pool = "192.168.100.200-192.168.100.210"

[dns]
upstreams = ["203.0.113.1", "203.0.113.3"]
records = [{ name = "printer", ip = "192.168.100.60" }]
"#;

fn dig(ns: &Netns, args: &[&str]) -> String {
    let mut argv = vec!["dig", "@192.168.100.1", "+time=3", "+tries=1"];
    argv.extend_from_slice(args);
    String::from_utf8_lossy(&ns.exec(&argv).stdout).into_owned()
}

fn short(ns: &Netns, args: &[&str]) -> String {
    let mut argv = args.to_vec();
    argv.push("+short");
    dig(ns, &argv).trim().to_owned()
}

/// A dnsmasq that answers every name under example.test, logging queries.
fn upstream(ns: &Netns, ip: &str) -> Process {
    let process = ns.spawn(&[
        "dnsmasq",
        "--no-daemon",
        "--no-resolv",
        "--no-hosts",
        "--bind-interfaces",
        &format!("--listen-address={ip}"),
        "--address=/example.test/198.51.100.7",
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

/// Waits until `check` holds (names learned from leases follow the
/// journal once a second).
fn eventually(what: &str, check: impl Fn() -> bool) {
    eventually_or(what, check, String::new)
}

/// The same, saying `context()` when it times out.
fn eventually_or(what: &str, check: impl Fn() -> bool, context: impl Fn() -> String) {
    let start = Instant::now();
    while !check() {
        assert!(
            start.elapsed() < LONG,
            "timed out waiting for {what}: {}",
            context()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn the_net_vm_answers_local_names_and_forwards_the_rest() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("dns-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let description = dir.join("system.toml");
    std::fs::write(&description, DESCRIPTION).expect("write");
    let description = description.to_str().expect("utf-8");
    let journal = dir.join("leases");
    let journal = journal.to_str().expect("utf-8");

    let up = Netns::new("dnsup");
    let netvm = Netns::new("dnsnv");
    let vm = Netns::new("dnsvm");
    let dynamic = Netns::new("dnsdyn");
    veth(&up, "u0", &netvm, "eth0");
    up.ok(&["ip", "addr", "add", "203.0.113.1/24", "dev", "u0"]);
    up.ok(&["ip", "addr", "add", "203.0.113.3/24", "dev", "u0"]);
    up.ok(&[
        "ip",
        "route",
        "add",
        "192.168.100.0/24",
        "via",
        "203.0.113.2",
    ]);
    netvm.ok(&["ip", "addr", "add", "203.0.113.2/24", "dev", "eth0"]);
    netvm.ok(&["ip", "link", "add", "br0", "type", "bridge"]);
    netvm.ok(&["ip", "link", "set", "br0", "name", "ethint0"]);
    netvm.ok(&["ip", "link", "set", "ethint0", "up"]);
    netvm.ok(&["ip", "addr", "add", "192.168.100.1/24", "dev", "ethint0"]);
    veth(&vm, "eth0", &netvm, "p-vm");
    veth(&dynamic, "eth0", &netvm, "p-dyn");
    netvm.ok(&["ip", "link", "set", "p-vm", "master", "ethint0"]);
    netvm.ok(&["ip", "link", "set", "p-dyn", "master", "ethint0"]);
    vm.ok(&["ip", "addr", "add", "192.168.100.101/24", "dev", "eth0"]);

    let mut first = upstream(&up, "203.0.113.1");
    let second = upstream(&up, "203.0.113.3");
    let dhcp = netvm.spawn(&[
        NETVM,
        "dhcp",
        "serve",
        description,
        "--interface",
        "ethint0",
        "--journal",
        journal,
    ]);
    dhcp.wait_for(LONG, |l| l.contains("\"event\":\"ready\""));
    let dns = netvm.spawn(&[
        NETVM,
        "dns",
        "serve",
        description,
        "--interface",
        "ethint0",
        "--leases",
        journal,
    ]);
    dns.wait_for(LONG, |l| l.contains("\"event\":\"ready\""));

    // Local names, their PTRs, description records; unknown names are
    // NXDOMAIN and never reach an upstream.
    assert_eq!(short(&vm, &["chrome-vm.internal"]), "192.168.100.101");
    assert_eq!(short(&vm, &["net-vm.internal"]), "192.168.100.1");
    assert_eq!(short(&vm, &["printer.internal"]), "192.168.100.60");
    assert_eq!(
        short(&vm, &["-x", "192.168.100.101"]),
        "chrome-vm.internal."
    );
    let unknown = dig(&vm, &["nobody.internal"]);
    assert!(
        unknown.contains("status: NXDOMAIN") && unknown.contains(" aa "),
        "{unknown}"
    );
    let unknown_ptr = dig(&vm, &["-x", "192.168.100.77"]);
    assert!(unknown_ptr.contains("status: NXDOMAIN"), "{unknown_ptr}");
    assert_eq!(asked(&first, "internal") + asked(&second, "internal"), 0);
    assert_eq!(
        asked(&first, "in-addr.arpa") + asked(&second, "in-addr.arpa"),
        0
    );

    // Forwarded once; the second time from the cache.
    assert_eq!(short(&vm, &["www.example.test"]), "198.51.100.7");
    assert_eq!(short(&vm, &["WWW.example.test"]), "198.51.100.7");
    assert_eq!(asked(&first, "www.example.test"), 1, "{:?}", first.lines());

    // TCP, for a local and a forwarded name.
    assert_eq!(
        short(&vm, &["+tcp", "chrome-vm.internal"]),
        "192.168.100.101"
    );
    assert_eq!(short(&vm, &["+tcp", "tcp.example.test"]), "198.51.100.7");

    // ANY is refused.
    assert!(dig(&vm, &["example.test", "ANY"]).contains("status: REFUSED"));

    // The uplink side gets nothing: not on the internal address (routed
    // to the net-vm through its uplink), not on the uplink address.
    for server in ["@192.168.100.1", "@203.0.113.2"] {
        let out = up.exec(&["dig", server, "+time=1", "+tries=1", "chrome-vm.internal"]);
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            !text.contains("ANSWER SECTION") && !text.contains("status:"),
            "{server}: {text}"
        );
    }

    // A DHCP client's host name is served while its lease lives.
    let client = dynamic.spawn(&[
        "udhcpc",
        "-f",
        "-i",
        "eth0",
        "-t",
        "10",
        "-T",
        "1",
        "-x",
        "hostname:laptop",
    ]);
    client.wait_for(LONG, |l| l.contains("obtained"));
    eventually("laptop.internal", || {
        short(&vm, &["laptop.internal"]).starts_with("192.168.100.2")
    });
    let address = short(&vm, &["laptop.internal"]);
    eventually("its PTR", || {
        short(&vm, &["-x", &address]) == "laptop.internal."
    });
    // SIGUSR2 makes udhcpc release its lease; the name goes with it.
    client.signal("USR2");
    let gone = || dig(&vm, &["laptop.internal"]).contains("status: NXDOMAIN");
    eventually_or("laptop.internal to go", gone, || {
        format!("{:?}", dhcp.lines())
    });

    // The first upstream dies: the next question goes to the second.
    first.signal("KILL");
    assert!(first.wait_exit(LONG));
    assert_eq!(
        short(&vm, &["+time=5", "failover.example.test"]),
        "198.51.100.7"
    );
    assert_eq!(
        asked(&second, "failover.example.test"),
        1,
        "{:?}",
        second.lines()
    );

    dns.signal("USR1");
    let counters = dns.wait_for(LONG, |l| l.contains("\"event\":\"counters\""));
    let counters: serde_json::Value = serde_json::from_str(&counters).expect("json");
    let c = &counters["counters"];
    assert!(c["cache_hits"].as_u64() >= Some(1), "{counters}");
    assert!(c["upstream_failures"].as_u64() >= Some(1), "{counters}");
    assert!(c["refused"].as_u64() >= Some(1), "{counters}");
    assert!(c["local"].as_u64() >= Some(8), "{counters}");
}
