//! The Net VM plan's IPv6 with real packets (root, namespaces the test
//! creates and removes): an upstream, the net-vm with the plan applied by
//! hand (its sysctls, addresses, routes and ruleset, as the appliers
//! would), and three VMs on isolated ports of a bridge, each with its
//! DHCPv6 address (a /128) and the net-vm's link-local address as its
//! router, as its router advertisements would say. Real TCP, in both
//! modes: the same policy as IPv4 (internet, allow rules, forwards),
//! nothing from the upstream but the forwards, spoofed sources dropped,
//! and no ICMPv6 redirect ever reaching a VM.

use netvm_description::{parse, Format};
use netvm_plan::datapath::{plan_with, Ipv6Mode, Ipv6Uplink, NetVmPlan};
use netvm_testsupport::{veth, Netns, Process};
use std::time::{Duration, Instant};

const DESCRIPTION: &str = r#"
[network]
ipv6_prefix = "fd00:1::/64"

[netvm.uplink]
interface = "eth0"
addressing = "static"
address = "203.0.113.2/24"
gateway = "203.0.113.1"
ipv6 = "static"
ipv6_address = "2001:db8:ff::2/64"
ipv6_gateway = "2001:db8:ff::1"

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

/// Answers every connection with the peer's address.
const SERVER6: &str = "import socket,sys\n\
s=socket.socket(socket.AF_INET6); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
s.bind(('::', int(sys.argv[1]))); s.listen(16); print('listening', flush=True)\n\
while True:\n    c,a=s.accept(); c.sendall((a[0]+'\\n').encode()); c.close()\n";

/// Connects (from `argv[3]` when given), prints what the server said;
/// exit 1 when it cannot.
const CLIENT6: &str = "import socket,sys\n\
src=(sys.argv[3],0) if len(sys.argv)>3 else None\n\
s=socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2, source_address=src)\n\
print(s.recv(100).decode().strip())\n";

fn serve(ns: &Netns, port: u16) -> Process {
    let server = ns.spawn(&["python3", "-u", "-c", SERVER6, &port.to_string()]);
    server.wait_for(Duration::from_secs(10), |l| l.contains("listening"));
    server
}

fn connect(ns: &Netns, ip: &str, port: u16, from: Option<&str>) -> Option<String> {
    let port = port.to_string();
    let mut args = vec!["python3", "-c", CLIENT6, ip, &port];
    args.extend(from);
    let out = ns.exec(&args);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn counter(ns: &Netns, name: &str) -> u64 {
    let out = ns.ok(&["nft", "list", "counter", "inet", "netvm", name]);
    out.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// A counter of /proc/net/snmp6 (`Icmp6InRedirects`, …).
fn snmp6(ns: &Netns, name: &str) -> u64 {
    let out = ns.ok(&["cat", "/proc/net/snmp6"]);
    out.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0)
}

/// Namespaces whose new interfaces skip duplicate address detection, so
/// addresses are usable at once (there is nothing to collide with).
fn netns(role: &str) -> Netns {
    let ns = Netns::new(role);
    ns.ok(&["sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"]);
    ns.ok(&["sysctl", "-qw", "net.ipv6.conf.all.accept_dad=0"]);
    ns
}

/// The link-local address of `dev` in `ns`, once it is usable.
fn link_local(ns: &Netns, dev: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let out = ns.ok(&[
            "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "link",
        ]);
        let usable = out.lines().find(|l| !l.contains("tentative"));
        if let Some(address) = usable
            .and_then(|l| l.split_whitespace().skip_while(|w| *w != "inet6").nth(1))
            .and_then(|a| a.split('/').next())
        {
            return address.to_owned();
        }
        assert!(Instant::now() < deadline, "no link-local address on {dev}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Makes `plan` true in `netvm` by hand: sysctls, addresses, routes,
/// the ruleset.
fn apply(netvm: &Netns, plan: &NetVmPlan, tag: &str) {
    for (key, value) in &plan.sysctls {
        netvm.ok(&["sh", "-c", &format!("echo {value} > /proc/sys/{key}")]);
    }
    for i in &plan.interfaces {
        let name = i.name.as_str();
        if let netvm_plan::datapath::InterfaceAddress::Static(v4) = i.address {
            netvm.ok(&["ip", "addr", "replace", &v4.to_string(), "dev", name]);
        }
        for v6 in &i.addresses6 {
            netvm.ok(&["ip", "-6", "addr", "replace", &v6.to_string(), "dev", name]);
        }
    }
    for r in &plan.routes {
        let (dst, via) = (r.destination.to_string(), r.gateway.to_string());
        netvm.ok(&[
            "ip",
            "route",
            "replace",
            &dst,
            "via",
            &via,
            "dev",
            r.device.as_str(),
        ]);
    }
    for r in &plan.routes6 {
        let mut args = vec![
            "ip".to_owned(),
            "-6".into(),
            "route".into(),
            "replace".into(),
        ];
        args.extend(r.to_string().split(' ').map(str::to_owned));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        netvm.ok(&args);
    }
    let file = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("ipv6-packets-{}-{tag}.nft", std::process::id()));
    std::fs::write(&file, &plan.ruleset).expect("write the ruleset");
    netvm.ok(&["nft", "-f", file.to_str().expect("utf-8")]);
    let _ = std::fs::remove_file(&file);
}

struct Lab {
    upstream: Netns,
    netvm: Netns,
    _host: Netns,
    vms: Vec<Netns>,
    /// The VMs' IPv6 addresses.
    addresses: Vec<String>,
    plan: NetVmPlan,
}

fn lab(uplink6: &Ipv6Uplink, tag: &str) -> Lab {
    let system = parse("t.toml", DESCRIPTION, Format::Toml).expect("valid");
    let plan = plan_with(&system, &[], &[], uplink6);
    let v6 = plan.ipv6.clone().expect("IPv6 on");

    let upstream = netns("up6");
    let netvm = netns("nv6");
    let host = netns("host6");
    veth(&upstream, "u0", &netvm, "eth0");
    upstream.ok(&["ip", "addr", "add", "203.0.113.1/24", "dev", "u0"]);
    upstream.ok(&["ip", "-6", "addr", "add", "2001:db8:ff::1/64", "dev", "u0"]);
    // The upstream routes the internal prefix (routed: the delegated
    // one) to the net-vm, so only its policy stands in the way.
    let routed_to_us = uplink6
        .delegated
        .map_or(v6.prefix.to_string(), |d| d.to_string());
    upstream.ok(&[
        "ip",
        "-6",
        "route",
        "add",
        &routed_to_us,
        "via",
        "2001:db8:ff::2",
    ]);

    host.ok(&["ip", "link", "add", "br0", "type", "bridge"]);
    host.ok(&["ip", "link", "set", "br0", "up"]);
    veth(&netvm, "ethint0", &host, "p-nv");
    host.ok(&["ip", "link", "set", "p-nv", "master", "br0"]);
    apply(&netvm, &plan, tag);
    let router = link_local(&netvm, "ethint0");

    let mut vms = Vec::new();
    let mut addresses = Vec::new();
    for vm in &system.vms {
        let name = vm.name.as_str();
        let ns = netns(&format!("{name}6"));
        let port = format!("p-{name}");
        // The MAC first: the link-local address follows it.
        veth(&ns, "eth0", &host, &port);
        ns.ok(&["ip", "link", "set", "eth0", "down"]);
        ns.ok(&[
            "ip",
            "link",
            "set",
            "eth0",
            "address",
            &vm.endpoint.mac.to_string(),
        ]);
        ns.ok(&["ip", "link", "set", "eth0", "up"]);
        host.ok(&["ip", "link", "set", &port, "master", "br0"]);
        host.ok(&["bridge", "link", "set", "dev", &port, "isolated", "on"]);
        // What DHCPv6 and the router advertisements would give it.
        let address = system.ipv6_in(&vm.endpoint, v6.prefix).to_string();
        ns.ok(&[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{address}/128"),
            "dev",
            "eth0",
        ]);
        ns.ok(&[
            "ip", "-6", "route", "add", "default", "via", &router, "dev", "eth0",
        ]);
        vms.push(ns);
        addresses.push(address);
    }
    Lab {
        upstream,
        netvm,
        _host: host,
        vms,
        addresses,
        plan,
    }
}

/// What holds in both modes: the VM-to-VM policy, `internet`, nothing
/// from the upstream to the VMs' own ports, spoofing, no redirects.
fn common(lab: &Lab) {
    let (a, b, c) = (&lab.vms[0], &lab.vms[1], &lab.vms[2]);
    let (a6, b6) = (lab.addresses[0].as_str(), lab.addresses[1].as_str());
    let _a_8080 = serve(a, 8080);
    let _a_443 = serve(a, 443);
    let _b_8080 = serve(b, 8080);
    let _internet = serve(&lab.upstream, 9000);

    // VM to VM: allowed as in IPv4, by the net-vm's forward chain.
    assert_eq!(connect(a, b6, 8080, None).as_deref(), Some(a6));
    assert_eq!(
        connect(b, a6, 8080, None),
        None,
        "b may reach a on 443 only"
    );
    assert_eq!(connect(b, a6, 443, None).as_deref(), Some(b6));
    assert_eq!(connect(c, a6, 443, None), None, "c has no allow rule");

    // Out: a (internet) yes, c (internet = false) no.
    assert!(connect(a, "2001:db8:ff::1", 9000, None).is_some());
    assert_eq!(connect(c, "2001:db8:ff::1", 9000, None), None);

    // The upstream never reaches a VM's own port that is not forwarded,
    // nor the net-vm's internal address.
    assert_eq!(connect(&lab.upstream, a6, 8080, None), None);
    let netvm6 = lab
        .plan
        .ipv6
        .as_ref()
        .expect("on")
        .netvm_address
        .to_string();
    assert_eq!(connect(&lab.upstream, &netvm6, 53, None), None);

    // c using a's address is dropped and counted.
    c.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        &format!("{a6}/128"),
        "dev",
        "eth0",
    ]);
    let spoofed = counter(&lab.netvm, "spoofed");
    assert_eq!(connect(c, b6, 8080, Some(a6)), None);
    assert!(counter(&lab.netvm, "spoofed") > spoofed, "counted");
    c.ok(&[
        "ip",
        "-6",
        "addr",
        "del",
        &format!("{a6}/128"),
        "dev",
        "eth0",
    ]);

    // Every VM-to-VM packet left the net-vm on the interface it came in
    // on, which makes Linux redirect; none reached a VM.
    for vm in &lab.vms {
        assert_eq!(snmp6(vm, "Icmp6InRedirects"), 0);
    }
    assert_eq!(snmp6(&lab.netvm, "Icmp6OutRedirects"), 0);
}

#[test]
fn nat66_masquerades_and_forwards_on_the_uplinks_own_address() {
    let lab = lab(&Ipv6Uplink::default(), "nat66");
    assert_eq!(lab.plan.ipv6.as_ref().expect("on").mode, Ipv6Mode::Nat66);
    common(&lab);
    let a = &lab.vms[0];
    let _internet = serve(&lab.upstream, 9001);
    assert_eq!(
        connect(a, "2001:db8:ff::1", 9001, None).as_deref(),
        Some("2001:db8:ff::2"),
        "masqueraded to the uplink's address"
    );
    let _a_443 = serve(a, 443);
    assert_eq!(
        connect(&lab.upstream, "2001:db8:ff::2", 8443, None).as_deref(),
        Some("2001:db8:ff::1"),
        "the forward, on the uplink's own address"
    );
    assert_eq!(connect(&lab.upstream, &lab.addresses[0], 443, None), None);
}

#[test]
fn routed_reaches_the_forwarded_port_on_the_vms_own_address() {
    let uplink6 = Ipv6Uplink {
        delegated: Some("2001:db8:40::/56".parse().expect("prefix")),
        clat: None,
    };
    let lab = lab(&uplink6, "routed");
    assert_eq!(lab.plan.ipv6.as_ref().expect("on").mode, Ipv6Mode::Routed);
    common(&lab);
    let a = &lab.vms[0];
    let a6 = lab.addresses[0].as_str();
    let _internet = serve(&lab.upstream, 9001);
    assert_eq!(
        connect(a, "2001:db8:ff::1", 9001, None).as_deref(),
        Some(a6),
        "routed: the VM's own address"
    );
    let _a_443 = serve(a, 443);
    assert_eq!(
        connect(&lab.upstream, a6, 443, None).as_deref(),
        Some("2001:db8:ff::1"),
        "the forward opens the VM's own address and port"
    );
    assert_eq!(connect(&lab.upstream, "2001:db8:ff::2", 8443, None), None);
    // An unused part of the delegated prefix is unreachable, not looped.
    assert_eq!(connect(&lab.upstream, "2001:db8:40:9::1", 443, None), None);
}
