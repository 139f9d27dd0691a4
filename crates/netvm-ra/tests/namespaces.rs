//! The advertiser and the listener on veth pairs between namespaces the
//! tests make (root needed; everything is removed afterwards, also when
//! a test fails):
//!
//! * a kernel client learns its default route from the advertiser, and
//!   `rdisc6` (whose solicitation the advertiser answers) shows the
//!   flags, DNS server, search domain and MTU; a new configuration is
//!   announced at once; stopping withdraws the default route;
//! * the listener reads what radvd advertises;
//! * the listener solicits, reads a PREF64 option, and refuses an
//!   advertisement sent with hop limit 64 or from a global address.

use netvm_description::values::IfName;
use netvm_ndp::{ParseError, Pref64, Preference, RouterAdvert};
use netvm_ra::{AdvertConfig, AdvertStats, Advertiser, Heard, Listener, RaError};
use netvm_runtime::Stop;
use netvm_testsupport::{veth, Netns};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How long anything may take before a test gives up.
const PATIENCE: Duration = Duration::from_secs(40);

fn v6(text: &str) -> Ipv6Addr {
    text.parse().expect("address")
}

fn ifname(name: &str) -> IfName {
    name.parse().expect("interface name")
}

/// Two namespaces joined by a veth pair (`a_if` in the first), duplicate
/// address detection off so link-local addresses are usable at once.
/// `client` sysctls are set in the second before its end exists.
fn pair(roles: (&str, &str), ifs: (&str, &str), client: &[&str]) -> (Netns, Netns) {
    let a = Netns::new(roles.0);
    let b = Netns::new(roles.1);
    for ns in [&a, &b] {
        ns.ok(&[
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.accept_dad=0",
            "net.ipv6.conf.default.accept_dad=0",
        ]);
    }
    if !client.is_empty() {
        let mut args = vec!["sysctl", "-qw"];
        args.extend(client);
        b.ok(&args);
    }
    veth(&a, ifs.0, &b, ifs.1);
    (a, b)
}

/// The link-local address of `interface` in `ns`.
fn link_local(ns: &Netns, interface: &str) -> Ipv6Addr {
    let out = ns.ok(&[
        "ip", "-6", "-o", "addr", "show", "dev", interface, "scope", "link",
    ]);
    out.split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .map(v6)
        .unwrap_or_else(|| panic!("no link-local address on {interface}: {out}"))
}

/// The hardware address of `interface` in `ns`.
fn mac(ns: &Netns, interface: &str) -> String {
    let out = ns.ok(&["ip", "-o", "link", "show", "dev", interface]);
    out.split_whitespace()
        .skip_while(|w| *w != "link/ether")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}

/// Calls `f` until it gives something, or panics with `what` after
/// [`PATIENCE`].
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(found) = f() {
            return found;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        thread::sleep(Duration::from_millis(100));
    }
}

/// `rdisc6 -1` on `interface` in `ns`, whitespace squeezed on each line,
/// repeated until its output satisfies `wanted`.
fn rdisc6_until(ns: &Netns, interface: &str, wanted: impl Fn(&str) -> bool) -> String {
    eventually("an rdisc6 answer", || {
        let out = ns.exec(&["rdisc6", "-1", "-n", "-w", "5000", "-r", "2", interface]);
        let text: String = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" ") + "\n")
            .collect();
        wanted(&text).then_some(text)
    })
}

/// The advertiser running on a thread, opened inside `ns`.
fn start(ns: &Netns, interface: &str, config: AdvertConfig) -> (Running, Stop) {
    let advertiser = ns
        .inside(|| Advertiser::open(&ifname(interface), config))
        .expect("open the advertiser");
    let handle = advertiser.handle();
    let stop = Stop::new();
    let theirs = stop.clone();
    let thread = thread::spawn(move || advertiser.run(&theirs));
    (Running { handle, thread }, stop)
}

/// A running advertiser.
struct Running {
    handle: netvm_ra::AdvertHandle,
    thread: JoinHandle<Result<AdvertStats, RaError>>,
}

#[test]
fn advertiser_teaches_a_kernel_client() {
    let (a, b) = pair(
        ("n6r-adv", "n6r-cli"),
        ("n6r0", "n6r1"),
        &[
            "net.ipv6.conf.default.accept_ra=1",
            "net.ipv6.conf.default.forwarding=0",
        ],
    );
    let config = AdvertConfig::internal(v6("fd00:6::1"), Some("n6r.test"), 1400, None);
    let (advertiser, stop) = start(&a, "n6r0", config);
    let router = link_local(&a, "n6r0");

    // The kernel takes the default route from it.
    let want = format!("default via {router} dev n6r1");
    eventually("the default route", || {
        let routes = b.ok(&["ip", "-6", "route", "show", "default"]);
        routes.contains(&want).then_some(())
    });

    // rdisc6 solicits; the answer carries the internal network's setup.
    let out = rdisc6_until(&b, "n6r1", |o| o.contains("fd00:6::1"));
    for line in [
        "Stateful address conf. : Yes",
        "Stateful other conf. : Yes",
        "Router lifetime : 1800",
        "MTU : 1400 bytes",
        "Recursive DNS server : fd00:6::1",
        "DNS search list : n6r.test\n",
        &format!("from {router}"),
    ] {
        assert!(out.contains(line), "rdisc6 lacks {line:?}:\n{out}");
    }
    assert!(!out.contains("Prefix :"), "no on-link prefix:\n{out}");

    // A new configuration goes out at once and withdraws the old server.
    let mut changed = AdvertConfig::internal(v6("fd00:7::1"), Some("n6r.test"), 1400, None);
    changed.advert.pref64 = Some(Pref64 {
        prefix: v6("64:ff9b::"),
        len: 96,
        lifetime_secs: 600,
    });
    advertiser
        .handle
        .update(changed)
        .expect("a valid configuration");
    let out = rdisc6_until(&b, "n6r1", |o| o.contains("fd00:7::1"));
    let old = out
        .split("Recursive DNS server : fd00:6::1\n")
        .nth(1)
        .unwrap_or_else(|| panic!("the old server is withdrawn:\n{out}"));
    assert!(
        old.starts_with("DNS server lifetime : 0 "),
        "with lifetime 0:\n{out}"
    );

    // Echo requests and neighbour solicitations reach the interface; the
    // socket filter keeps them from the advertiser.
    b.ok(&[
        "ping",
        "-6",
        "-c",
        "1",
        "-W",
        "5",
        &format!("{router}%n6r1"),
    ]);

    // Stopping says lifetime 0: the client drops the route.
    stop.stop();
    let stats = advertiser
        .thread
        .join()
        .expect("the advertiser thread")
        .expect("the advertiser ran");
    eventually("the default route to go", || {
        let routes = b.ok(&["ip", "-6", "route", "show", "default"]);
        (!routes.contains(&want)).then_some(())
    });
    assert!(stats.solicitations >= 2, "{stats:?}");
    assert!(stats.sent >= 3, "{stats:?}");
    assert_eq!(stats.updates, 1, "{stats:?}");
    assert_eq!((stats.refused, stats.ignored), (0, 0), "{stats:?}");
}

/// A scratch directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("n6r-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The listener running on a thread inside `ns`, reporting on a channel.
fn listen(
    ns: &Netns,
    interface: &str,
) -> (mpsc::Receiver<Heard>, Stop, JoinHandle<Result<(), RaError>>) {
    let mut listener = ns
        .inside(|| Listener::open(&ifname(interface)))
        .expect("open the listener");
    let (tx, rx) = mpsc::channel();
    let stop = Stop::new();
    let theirs = stop.clone();
    let thread = thread::spawn(move || {
        listener.run(&theirs, |heard| {
            let _ = tx.send(heard);
        })
    });
    (rx, stop, thread)
}

/// The next message heard that `pick` takes.
fn next<T>(rx: &mpsc::Receiver<Heard>, mut pick: impl FnMut(Heard) -> Option<T>) -> T {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let heard = rx.recv_timeout(left).expect("heard in time");
        if let Some(found) = pick(heard) {
            return found;
        }
    }
}

#[test]
fn listener_reads_radvd() {
    let (r, l) = pair(("n6r-rad", "n6r-lis"), ("n6r2", "n6r3"), &[]);
    r.ok(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    let dir = TempDir::new("radvd");
    let config = dir.0.join("radvd.conf");
    std::fs::write(
        &config,
        "interface n6r2 {
            AdvSendAdvert on;
            AdvManagedFlag on;
            AdvOtherConfigFlag on;
            AdvLinkMTU 1400;
            prefix 2001:db8:6::/64 { AdvOnLink on; AdvAutonomous on; };
            route 2001:db8:77::/48 { AdvRoutePreference high; };
            RDNSS 2001:db8:6::53 { };
            DNSSL n6r.example other.example { };
        };\n",
    )
    .expect("write radvd.conf");
    let (rx, stop, thread) = listen(&l, "n6r3");
    // radvd 2.19 has no `nat64prefix` (2.20 added it): PREF64 is checked
    // against the advertiser below.
    let pid = dir.0.join("radvd.pid");
    let radvd = r.spawn(&[
        "radvd",
        "-n",
        "-C",
        config.to_str().expect("utf-8 path"),
        "-p",
        pid.to_str().expect("utf-8 path"),
        "-m",
        "stderr",
    ]);
    let router = link_local(&r, "n6r2");
    let advert: RouterAdvert = next(&rx, |heard| match heard {
        Heard::Advert { from, advert } if from == router => Some(advert),
        _ => None,
    });
    drop(radvd);
    stop.stop();
    thread
        .join()
        .expect("the listener thread")
        .expect("the listener ran");

    assert!(advert.managed && advert.other, "{advert:?}");
    assert_eq!(advert.mtu, Some(1400));
    assert_eq!(
        advert.source_mac.map(|m| m.to_string()),
        Some(mac(&r, "n6r2"))
    );
    assert_eq!(advert.prefixes.len(), 1);
    let prefix = &advert.prefixes[0];
    assert_eq!((prefix.prefix, prefix.len), (v6("2001:db8:6::"), 64));
    assert!(prefix.on_link && prefix.autonomous);
    assert_eq!(advert.routes.len(), 1);
    assert_eq!(advert.routes[0].prefix, v6("2001:db8:77::"));
    assert_eq!(advert.routes[0].preference, Preference::High);
    let servers: Vec<Ipv6Addr> = advert.rdnss.iter().map(|(a, _)| *a).collect();
    assert_eq!(servers, [v6("2001:db8:6::53")]);
    let domains: Vec<&str> = advert.dnssl.iter().map(|(d, _)| d.as_str()).collect();
    assert_eq!(domains, ["n6r.example", "other.example"]);
}

/// A raw ICMPv6 socket in the current namespace on `interface`, sending
/// with hop limit `hops`.
fn raw_sender(interface: &str, hops: u32) -> Socket {
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6)).expect("raw socket");
    socket
        .bind_device(Some(interface.as_bytes()))
        .expect("bind to the interface");
    socket.set_multicast_hops_v6(hops).expect("hops");
    socket
}

#[test]
fn listener_solicits_reads_pref64_and_refuses_forwarded_adverts() {
    // The client's kernel neither solicits nor takes advertisements: the
    // only solicitation the advertiser hears is the listener's.
    let (a, b) = pair(
        ("n6r-nat", "n6r-upl"),
        ("n6r4", "n6r5"),
        &[
            "net.ipv6.conf.default.accept_ra=0",
            "net.ipv6.conf.default.router_solicitations=0",
        ],
    );
    let (rx, stop_listener, listener) = listen(&b, "n6r5");
    let mut config = AdvertConfig::internal(v6("fd00:6::1"), None, 1500, None);
    let pref64 = Pref64 {
        prefix: v6("64:ff9b::"),
        len: 96,
        lifetime_secs: 1800,
    };
    config.advert.pref64 = Some(pref64.clone());
    let (advertiser, stop) = start(&a, "n6r4", config.clone());
    let router = link_local(&a, "n6r4");

    let advert = next(&rx, |heard| match heard {
        Heard::Advert { from, advert } if from == router => Some(advert),
        _ => None,
    });
    assert_eq!(advert.pref64, Some(pref64));
    assert_eq!(advert.rdnss, [(v6("fd00:6::1"), 1800)]);

    // The same advertisement forwarded (hop limit 64), and one from a
    // global address: both refused, and why.
    let bytes = config.advert.build().expect("buildable");
    a.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        "2001:db8:6::1/64",
        "dev",
        "n6r4",
        "nodad",
    ]);
    a.inside(|| {
        let index = nix::net::if_::if_nametoindex("n6r4").expect("index");
        let to = SockAddr::from(SocketAddrV6::new(netvm_ndp::ALL_NODES, 0, 0, index));
        raw_sender("n6r4", 64).send_to(&bytes, &to).expect("send");
        let global = raw_sender("n6r4", 255);
        global
            .bind(&SockAddr::from(SocketAddrV6::new(
                v6("2001:db8:6::1"),
                0,
                0,
                0,
            )))
            .expect("bind the global address");
        global.send_to(&bytes, &to).expect("send");
    });
    let mut refused = Vec::new();
    while refused.len() < 2 {
        refused.push(next(&rx, |heard| match heard {
            Heard::Refused { reason, .. } => Some(reason),
            Heard::Advert { .. } => None,
        }));
    }
    refused.sort_by_key(|r| format!("{r:?}"));
    assert_eq!(
        refused,
        [
            ParseError::HopLimit(64),
            ParseError::SourceNotLinkLocal(v6("2001:db8:6::1")),
        ]
    );

    stop_listener.stop();
    listener
        .join()
        .expect("the listener thread")
        .expect("the listener ran");
    stop.stop();
    let stats = advertiser
        .thread
        .join()
        .expect("the advertiser thread")
        .expect("the advertiser ran");
    assert!(
        stats.solicitations >= 1,
        "the listener solicited: {stats:?}"
    );
}
