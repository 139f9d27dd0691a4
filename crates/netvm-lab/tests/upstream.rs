//! The lab's upstream flavours, each brought up alone
//! ([`lab::up_upstream`]: the upstream and the net-vm's namespace with
//! the uplink's far end, no host, agent or VMs), met by a client in the
//! net-vm's place that does what the net-vm will: the kernel's SLAAC and
//! default route, the router advertisement's options read off the wire,
//! DHCPv6 with prefix delegation (`dhclient -6 -P -N`), DNS (AAAA, DNS64)
//! and HTTP over IPv6, through NAT64 to the IPv4-only service. Then `lab
//! down` must leave no namespace, process or TUN behind.
//!
//! Runs as root; needs radvd, kea-dhcp6-server, tayga, unbound, dnsmasq,
//! dhclient (isc-dhcp-client) and udhcpc, and builds the `netvm` binary
//! (the upstream runs `netvm lab serve` and `netvm lab ra`). Lab ids
//! 80-82.

use netvm_lab::lab::{self, Lab};
use netvm_lab::netns;
use netvm_lab::probe;
use netvm_lab::upstream::{
    self, Flavour, LINK_PREFIX6, NAT64_PREFIX, NAT64_TUN, PD_LENGTH, UPSTREAM_IP6,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// `target/debug/netvm`, built from this tree once per test binary.
fn netvm_binary() -> &'static Path {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let status = Command::new(cargo)
            .args(["build", "-p", "netvm", "--bin", "netvm"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("cargo runs");
        assert!(status.success(), "cargo build -p netvm failed");
        // This test is target/debug/deps/upstream-…; the binary target/debug/netvm.
        let exe = std::env::current_exe().expect("the test's path");
        let debug = exe
            .parent()
            .and_then(Path::parent)
            .expect("the target directory");
        debug.join("netvm")
    })
}

/// A lab of the upstream alone, removed on drop (also after a failed
/// assertion).
struct Upstream {
    lab: Lab,
}

impl Upstream {
    fn up(id: u32, flavour: Flavour) -> Upstream {
        netvm_testsupport::require_root();
        let netvm = netvm_binary();
        // A lab left by an earlier, killed run of this test.
        lab::down(id);
        let lab = lab::up_upstream(id, flavour, netvm)
            .unwrap_or_else(|e| panic!("upstream {flavour} did not come up: {e}"));
        Upstream { lab }
    }

    /// The client: the net-vm's namespace.
    fn ns(&self) -> &str {
        &self.lab.plan.netvm
    }

    /// The client's interface (the uplink's far end, `eth9`).
    fn iface(&self) -> String {
        let plan = &self.lab.plan;
        plan.veths
            .iter()
            .find(|v| v.a.ns == plan.upstream && v.b.ns == plan.netvm)
            .map(|v| v.b.name.clone())
            .expect("the uplink veth")
    }

    /// `lab down`, then nothing of it may be left.
    fn down_and_check(self) {
        let plan = self.lab.plan.clone();
        let prefix = format!("nvl{}-", plan.id);
        let mut pids = Vec::new();
        for ns in netns::list(&prefix) {
            pids.extend(netns::pids(&ns));
        }
        assert!(!pids.is_empty(), "the upstream's daemons were running");
        let dir = self.lab.dir.clone();
        drop(self);
        assert_eq!(netns::list(&prefix), Vec::<String>::new());
        for pid in pids {
            assert!(!netns::alive(pid), "process {pid} outlived lab down");
        }
        assert!(!dir.exists(), "{} is left", dir.display());
        let tun = Command::new("ip")
            .args(["link", "show", NAT64_TUN])
            .output()
            .expect("ip");
        assert!(!tun.status.success(), "a {NAT64_TUN} link is left");
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        lab::down(self.lab.plan.id);
    }
}

/// Polls `check` every 200 ms for up to 60 s (generous: the machine is
/// shared); panics with `what` when it never held.
fn eventually<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "never: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The client's SLAAC address in the link's /64, once the kernel has
/// one (not tentative) and a default route through the upstream's
/// link-local address.
fn slaac(u: &Upstream) -> Ipv6Addr {
    let (ns, iface) = (u.ns().to_owned(), u.iface());
    eventually("a SLAAC address and a default route from the RA", || {
        let addrs = netns::run_in(
            &ns,
            &[
                "ip",
                "-6",
                "-o",
                "addr",
                "show",
                "dev",
                &iface,
                "scope",
                "global",
                "-tentative",
            ],
        )
        .ok()?;
        let address = addrs
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)?
            .split('/')
            .next()?
            .parse::<Ipv6Addr>()
            .ok()?;
        let routes = netns::run_in(&ns, &["ip", "-6", "route", "show", "default"]).ok()?;
        let via_router = routes.contains("via fe80::") && routes.contains("proto ra");
        (address.segments()[..4] == LINK_PREFIX6.segments()[..4] && via_router).then_some(address)
    })
}

/// A router advertisement as it arrives at the client, asked for with a
/// router solicitation: its M and O flags and its options by type.
struct Ra {
    managed: bool,
    other: bool,
    options: BTreeMap<u8, Vec<Vec<u8>>>,
}

fn receive_ra(u: &Upstream) -> Ra {
    let iface = u.iface();
    let bytes = netns::inside(u.ns(), || -> std::io::Result<Vec<u8>> {
        let index = nix::net::if_::if_nametoindex(iface.as_str()).map_err(std::io::Error::from)?;
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        socket.bind_device(Some(iface.as_bytes()))?;
        socket.set_multicast_hops_v6(255)?;
        socket.set_read_timeout(Some(Duration::from_secs(1)))?;
        let all_routers = SockAddr::from(SocketAddrV6::new(
            Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2),
            0,
            0,
            index,
        ));
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut buf = [0u8; 1500];
        while Instant::now() < deadline {
            // Router Solicitation (RFC 4861 §4.1), no options.
            socket.send_to(&[133, 0, 0, 0, 0, 0, 0, 0], &all_routers)?;
            let until = Instant::now() + Duration::from_secs(2);
            while Instant::now() < until {
                match (&socket).read(&mut buf) {
                    Ok(n) if n >= 16 && buf[0] == 134 => return Ok(buf[..n].to_vec()),
                    Ok(_) => {}
                    Err(e)
                        if matches!(
                            e.kind(),
                            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                        ) =>
                    {
                        break
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        Err(std::io::Error::other("no router advertisement in 60 s"))
    })
    .expect("enter the client's namespace")
    .expect("a router advertisement");
    let mut options: BTreeMap<u8, Vec<Vec<u8>>> = BTreeMap::new();
    let mut rest = &bytes[16..];
    while rest.len() >= 8 {
        let len = usize::from(rest[1]) * 8;
        assert!(
            len > 0 && len <= rest.len(),
            "malformed option in {bytes:?}"
        );
        options
            .entry(rest[0])
            .or_default()
            .push(rest[..len].to_vec());
        rest = &rest[len..];
    }
    Ra {
        managed: bytes[5] & 0x80 != 0,
        other: bytes[5] & 0x40 != 0,
        options,
    }
}

impl Ra {
    /// The RDNSS option's servers (RFC 8106 §5.1).
    fn rdnss(&self) -> Vec<Ipv6Addr> {
        self.options
            .get(&25)
            .into_iter()
            .flatten()
            .flat_map(|o| {
                o[8..]
                    .chunks_exact(16)
                    .map(|c| Ipv6Addr::from(<[u8; 16]>::try_from(c).expect("16 octets")))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// The lifetimes of the RDNSS, DNSSL and PREF64 options (PREF64's
    /// scaled, in units of 8 s).
    fn lifetimes(&self) -> Vec<(u8, u32)> {
        self.options
            .iter()
            .filter(|(kind, _)| [25, 31, 38].contains(*kind))
            .flat_map(|(kind, all)| {
                all.iter().map(|o| {
                    let lifetime = if *kind == 38 {
                        u32::from(u16::from_be_bytes([o[2], o[3]]) >> 3) * 8
                    } else {
                        u32::from_be_bytes([o[4], o[5], o[6], o[7]])
                    };
                    (*kind, lifetime)
                })
            })
            .collect()
    }

    /// The Prefix Information options' prefixes with their L and A flags.
    fn prefixes(&self) -> Vec<(Ipv6Addr, u8, bool, bool)> {
        self.options
            .get(&3)
            .into_iter()
            .flatten()
            .map(|o| {
                let prefix = Ipv6Addr::from(<[u8; 16]>::try_from(&o[16..32]).expect("16 octets"));
                (prefix, o[2], o[3] & 0x80 != 0, o[3] & 0x40 != 0)
            })
            .collect()
    }

    /// The PREF64 option (RFC 8781 §4): prefix and length.
    fn pref64(&self) -> Option<(Ipv6Addr, u8)> {
        let o = self.options.get(&38)?.first()?;
        let plc = u16::from_be_bytes([o[2], o[3]]) & 7;
        let len = [96, 64, 56, 48, 40, 32][usize::from(plc)];
        let mut octets = [0u8; 16];
        octets[..12].copy_from_slice(&o[4..16]);
        Some((Ipv6Addr::from(octets), len))
    }
}

/// `GET /` from the client to `to`, from `from` when given; the body.
fn http(u: &Upstream, from: Option<Ipv6Addr>, to: SocketAddr) -> String {
    netns::inside(u.ns(), || -> std::io::Result<String> {
        let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
        if let Some(from) = from {
            socket.bind(&SockAddr::from(SocketAddr::from((from, 0))))?;
        }
        socket.connect_timeout(&SockAddr::from(to), Duration::from_secs(5))?;
        let mut stream: std::net::TcpStream = socket.into();
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.trim().to_owned())
            .unwrap_or_default())
    })
    .expect("enter the client's namespace")
    .unwrap_or_else(|e| panic!("GET http://{to}/ failed: {e}"))
}

fn aaaa(u: &Upstream, name: &str) -> Vec<Ipv6Addr> {
    let mut found = netns::inside(u.ns(), || {
        probe::resolve_aaaa(UPSTREAM_IP6.into(), name, Duration::from_secs(3))
    })
    .expect("enter the client's namespace");
    found.sort();
    found
}

/// The upstream's processes' command names.
fn upstream_commands(u: &Upstream) -> Vec<String> {
    netns::pids(&u.lab.plan.upstream)
        .into_iter()
        .filter_map(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).ok())
        .map(|c| c.trim().to_owned())
        .collect()
}

/// Both families' common part: SLAAC, the RA's RDNSS and prefix, AAAA
/// for the lab's names, HTTP over IPv6 seen from the SLAAC address.
fn dual_stack_basics(u: &Upstream) -> (Ipv6Addr, Ra) {
    let address = slaac(u);
    let ra = receive_ra(u);
    assert!(!ra.managed, "M=0: addresses come from SLAAC");
    assert_eq!(ra.prefixes(), [(LINK_PREFIX6, 64, true, true)]);
    assert_eq!(ra.rdnss(), [UPSTREAM_IP6]);
    assert_eq!(ra.lifetimes(), [(25, 1800), (31, 1800)]);
    assert_eq!(aaaa(u, "www.lab.test"), [UPSTREAM_IP6]);
    let body = http(u, None, SocketAddr::from((UPSTREAM_IP6, 80)));
    assert_eq!(body, format!("upstream saw {address}"));
    (address, ra)
}

#[test]
fn dual_pd_delegates_a_56_and_routes_it_to_the_requester() {
    let u = Upstream::up(80, Flavour::DualPd);
    let (_, ra) = dual_stack_basics(&u);
    assert!(ra.other, "O=1: DNS also by DHCPv6");
    assert_eq!(ra.pref64(), None);

    // dhclient asks IA_NA and IA_PD; its script does nothing, the lease
    // file tells what it got.
    let (ns, iface) = (u.ns().to_owned(), u.iface());
    let dir = &u.lab.dir;
    let file = |n: &str| dir.join(n).display().to_string();
    std::fs::write(dir.join("dhclient.conf"), "").expect("write");
    let dhclient = |more: &[&str]| {
        let (conf, leases, pid) = (
            file("dhclient.conf"),
            file("dhclient6.leases"),
            file("dhclient6.pid"),
        );
        let mut args = vec![
            "timeout",
            "60",
            "dhclient",
            "-6",
            "-P",
            "-N",
            "-cf",
            &conf,
            "-lf",
            &leases,
            "-pf",
            &pid,
            "-sf",
            "/bin/true",
        ];
        args.extend_from_slice(more);
        args.push(&iface);
        netns::output_in(&ns, &args)
    };
    let said = dhclient(&["-1", "-v"]);
    let leases = std::fs::read_to_string(dir.join("dhclient6.leases")).unwrap_or_default();
    let delegated = leases
        .lines()
        .find_map(|l| l.trim().strip_prefix("iaprefix "))
        .and_then(|p| p.split_whitespace().next())
        .unwrap_or_else(|| {
            panic!("no delegated prefix; dhclient said:\n{said}\nlease file:\n{leases}")
        })
        .to_owned();
    let (prefix, len) = delegated.split_once('/').expect("PREFIX/LEN");
    let prefix: Ipv6Addr = prefix.parse().expect("an IPv6 prefix");
    assert_eq!(len, PD_LENGTH.to_string());
    let (pool, pool_len) = upstream::PD_POOL;
    assert_eq!(pool_len, 48);
    assert_eq!(
        prefix.segments()[..3],
        pool.segments()[..3],
        "{prefix} inside {pool}/48"
    );
    let na = leases
        .lines()
        .find_map(|l| l.trim().strip_prefix("iaaddr "))
        .and_then(|a| a.split_whitespace().next()?.parse::<Ipv6Addr>().ok())
        .expect("an IA_NA address");
    assert!(
        (upstream::NA_POOL.0..=upstream::NA_POOL.1).contains(&na),
        "{na}"
    );
    assert!(
        leases.contains("option dhcp6.name-servers 2001:db8:10::1;"),
        "{leases}"
    );

    // The upstream routes the delegated prefix via the client's
    // link-local address (Kea's hook did it).
    let link_local = netns::run_in(
        &ns,
        &[
            "ip", "-6", "-o", "addr", "show", "dev", &iface, "scope", "link",
        ],
    )
    .expect("ip")
    .split_whitespace()
    .skip_while(|w| *w != "inet6")
    .nth(1)
    .and_then(|a| a.split('/').next())
    .expect("a link-local address")
    .to_owned();
    let up = u.lab.plan.upstream.clone();
    let route = netns::run_in(&up, &["ip", "-6", "route", "show", &delegated]).expect("ip");
    assert!(
        route.contains(&format!("via {link_local} dev {}", u.lab.plan.upstream_if)),
        "route: {route}"
    );

    // So an address of the delegated prefix reaches the upstream and gets
    // its answer back: routed, no NAT.
    let inside: Ipv6Addr = {
        let mut s = prefix.segments();
        s[7] = 1;
        Ipv6Addr::from(s)
    };
    netns::run_in(
        &ns,
        &[
            "ip",
            "-6",
            "addr",
            "add",
            &format!("{inside}/128"),
            "dev",
            "lo",
        ],
    )
    .expect("ip");
    let body = http(&u, Some(inside), SocketAddr::from((UPSTREAM_IP6, 80)));
    assert_eq!(body, format!("upstream saw {inside}"));

    // Released: the route goes.
    let said = dhclient(&["-r"]);
    eventually(
        &format!("the route removed after release (dhclient said {said})"),
        || {
            let route = netns::run_in(&up, &["ip", "-6", "route", "show", &delegated]).ok()?;
            route.trim().is_empty().then_some(())
        },
    );
    u.down_and_check();
}

#[test]
fn dual_offers_slaac_and_rdnss_and_no_dhcpv6() {
    let u = Upstream::up(81, Flavour::Dual);
    let (_, ra) = dual_stack_basics(&u);
    assert!(!ra.other, "O=0: no DHCPv6 server");
    assert_eq!(ra.pref64(), None);
    let commands = upstream_commands(&u);
    assert!(commands.iter().any(|c| c == "radvd"), "{commands:?}");
    assert!(
        !commands.iter().any(|c| c.starts_with("kea")),
        "{commands:?}"
    );
    u.down_and_check();
}

#[test]
fn ipv6_only_reaches_the_ipv4_service_through_dns64_and_nat64() {
    let u = Upstream::up(82, Flavour::Ipv6Only);
    slaac(&u);
    let ra = receive_ra(&u);
    assert!(!ra.managed && !ra.other);
    assert_eq!(ra.prefixes(), [(LINK_PREFIX6, 64, true, true)]);
    assert_eq!(ra.rdnss(), [UPSTREAM_IP6]);
    assert_eq!(ra.pref64(), Some(NAT64_PREFIX));
    assert_eq!(ra.lifetimes(), [(25, 1800), (31, 1800), (38, 1800)]);

    // No IPv4 on the link: no address on the upstream's side, and a DHCPv4
    // client gets nothing.
    let plan = &u.lab.plan;
    let v4 = netns::run_in(
        &plan.upstream,
        &["ip", "-4", "-o", "addr", "show", "dev", &plan.upstream_if],
    )
    .expect("ip");
    assert_eq!(v4.trim(), "", "IPv4 on the upstream's link");
    let said = netns::output_in(
        u.ns(),
        &[
            "udhcpc",
            "-i",
            &u.iface(),
            "-n",
            "-q",
            "-t",
            "3",
            "-T",
            "1",
            "-s",
            "/bin/true",
        ],
    );
    assert!(
        netns::ipv4_on(u.ns(), &u.iface()).is_none(),
        "a DHCPv4 lease: {said}"
    );

    // DNS64: the IPv4-only names come back as AAAA in the NAT64 prefix, and
    // RFC 7050's ipv4only.arpa reveals that prefix.
    let (prefix, _) = NAT64_PREFIX;
    let service = upstream::nat64_address(prefix, upstream::SERVICE_IP);
    assert_eq!(aaaa(&u, "www.lab.test"), [service]);
    assert_eq!(
        aaaa(&u, "ipv4only.arpa"),
        upstream::IPV4ONLY_ARPA.map(|a| upstream::nat64_address(prefix, a))
    );
    // The net-vm's own RFC 7050 probe (what the agent runs when a router
    // names no PREF64) finds the prefix from where the net-vm would sit.
    let answers = netns::inside(u.ns(), || {
        let dns = SocketAddr::from((UPSTREAM_IP6, 53));
        netvm_agent::nat64_probe::probe(&[dns], &netvm_runtime::Stop::new(), 0x7050)
    })
    .expect("in the namespace")
    .expect("the probe runs");
    assert_eq!(
        netvm_ndp::nat64_prefixes_from_aaaa(&answers),
        [NAT64_PREFIX],
        "{answers:?}"
    );

    // NAT64: HTTP over IPv6 reaches the IPv4-only service, which sees an
    // address of tayga's pool.
    let body = http(&u, None, SocketAddr::from((service, 80)));
    let seen: std::net::Ipv4Addr = body
        .strip_prefix("upstream saw ")
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("answer: {body}"));
    let (pool, _) = upstream::TAYGA_POOL;
    assert_eq!(
        seen.octets()[..3],
        pool.octets()[..3],
        "{seen} from tayga's pool"
    );
    // The upstream itself answers natively over IPv6 too.
    let address = slaac(&u);
    assert_eq!(
        http(&u, None, SocketAddr::from((UPSTREAM_IP6, 80))),
        format!("upstream saw {address}")
    );
    u.down_and_check();
}
