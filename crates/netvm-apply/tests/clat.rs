//! The CLAT against the real kernel and tayga, as root, in three
//! namespaces the test makes (names carry `n6x`):
//!
//! * `lan`: an IPv4-only client, 192.168.100.10/24, default via .1;
//! * `nv`: the net-vm: 192.168.100.1/24 inside, an IPv6-only uplink
//!   (2001:db8:10::2/64, default via ::1), our CLAT and a minimal nft
//!   table made of the plan's rule lines;
//! * `up`: the ISP: 2001:db8:10::1/64 and a tayga NAT64 (prefix
//!   2001:db8:64::/96, pool 192.168.255.0/24) in front of an IPv4-only
//!   service, 198.51.100.10, where a TCP echo server listens.
//!
//! The client's TCP exchange (64 KiB each way, so full-sized segments
//! cross the translated path) reaches the service from the NAT64's pool.
//! Then an agent "crash" (the handle forgotten, tayga left running) and
//! a new uplink prefix: the next apply clears the leftovers and works;
//! remove leaves nothing behind; apply after remove, re-apply with
//! another prefix, a restart by supervision, and drop work too.
//!
//! The NAT64 prefix is a network-specific one: tayga (rightly, RFC 6052
//! section 3.1) refuses to reach 198.51.100.0/24 through 64:ff9b::/96,
//! and 0.9.2 refuses RFC 8215's 64:ff9b:1::/48.

use netvm_apply::clat::{self, Clat, ClatOptions, Sandbox};
use netvm_description::values::Ipv4Cidr;
use netvm_plan::clat::{plan, Clat6Source, ClatInput, ClatPlan};
use netvm_testsupport::{veth, Netns, Process};
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SERVICE: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const PORT: u16 = 7;
const UPLINK_MAC: &str = "02:00:5e:10:00:02";
const WAIT: Duration = Duration::from_secs(20);

/// A directory for configurations and logs, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new_named(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("n6x-clat-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn ip6(text: &str) -> Ipv6Addr {
    text.parse().expect("IPv6 address")
}

/// The ISP: addresses, the NAT64 and the IPv4-only service's address.
fn start_isp(up: &Netns, scratch: &Scratch) -> Process {
    up.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        "2001:db8:10::1/64",
        "dev",
        "isp0",
        "nodad",
    ]);
    up.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        "2001:db8:20::1/64",
        "dev",
        "isp0",
        "nodad",
    ]);
    up.ok(&["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
    up.ok(&["ip", "addr", "add", &format!("{SERVICE}/32"), "dev", "lo"]);
    let data = scratch.path("nat64");
    std::fs::create_dir_all(&data).expect("nat64 data dir");
    let config = scratch.path("nat64.conf");
    std::fs::write(
        &config,
        format!(
            "tun-device nat64\nipv4-addr 192.168.255.1\nprefix 2001:db8:64::/96\n\
             dynamic-pool 192.168.255.0/24\ndata-dir {}\n",
            data.display()
        ),
    )
    .expect("nat64 config");
    let config = config.to_string_lossy().into_owned();
    up.ok(&["tayga", "--mktun", "-c", &config]);
    up.ok(&["ip", "link", "set", "nat64", "up"]);
    up.ok(&["ip", "route", "add", "192.168.255.0/24", "dev", "nat64"]);
    up.ok(&[
        "ip",
        "-6",
        "route",
        "add",
        "2001:db8:64::/96",
        "dev",
        "nat64",
    ]);
    up.spawn(&["tayga", "-d", "-c", &config])
}

/// An echo server on the service address in `up`: each connection's
/// bytes, read to the end, are sent back; the peer's address goes to the
/// returned channel.
fn start_service(up: &Netns) -> mpsc::Receiver<SocketAddr> {
    let listener = up.inside(|| TcpListener::bind((SERVICE, PORT)).expect("bind the service"));
    let (peers, seen) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let _ = stream.set_read_timeout(Some(WAIT));
            if let Ok(peer) = stream.peer_addr() {
                let _ = peers.send(peer);
            }
            let mut bytes = Vec::new();
            if stream.read_to_end(&mut bytes).is_ok() {
                let _ = stream.write_all(&bytes);
            }
        }
    });
    seen
}

/// The IPv4-only client sends 64 KiB through the CLAT and gets them back.
fn exchange(lan: &Netns, peers: &mpsc::Receiver<SocketAddr>) {
    let payload: Vec<u8> = (0..65_536u32).map(|i| (i % 251) as u8).collect();
    let mut stream = lan.inside(|| {
        TcpStream::connect_timeout(&SocketAddr::from((SERVICE, PORT)), WAIT)
            .expect("the IPv4-only client connects through the CLAT")
    });
    stream.set_read_timeout(Some(WAIT)).expect("timeout");
    stream.write_all(&payload).expect("send");
    stream.shutdown(Shutdown::Write).expect("shutdown");
    let mut echoed = Vec::new();
    stream.read_to_end(&mut echoed).expect("receive the echo");
    assert!(
        echoed == payload,
        "the echo differs ({} bytes)",
        echoed.len()
    );
    let peer = peers
        .recv_timeout(WAIT)
        .expect("the service saw the client");
    let pool: Ipv4Cidr = "192.168.255.0/24".parse().expect("pool");
    match peer.ip() {
        std::net::IpAddr::V4(ip) => assert!(pool.contains(ip), "came from {peer}"),
        std::net::IpAddr::V6(_) => panic!("came from {peer}"),
    }
}

fn clat_plan(slaac: &str, data_dir: &Path) -> ClatPlan {
    plan(&ClatInput {
        nat64_prefix: (ip6("2001:db8:64::"), 96),
        uplink: "upl0".parse().expect("name"),
        uplink_mac: UPLINK_MAC.parse().expect("mac"),
        uplink_mtu: 1500,
        source: Clat6Source::Slaac(ip6(slaac)),
        internal: "int0".parse().expect("name"),
        subnet: "192.168.100.0/24".parse().expect("subnet"),
        data_dir: data_dir.to_string_lossy().into_owned(),
    })
    .expect("a valid CLAT plan")
}

/// The net-vm's table: the plan's lines and what the real ruleset has
/// around them (the `internet` set, established replies).
fn load_rules(plan: &ClatPlan) {
    let (forward, nat) = plan.rule_lines();
    let ruleset = format!(
        "table inet n6xclat\ndelete table inet n6xclat\n\
         table inet n6xclat {{\n\
         \tset internet {{ type ipv4_addr; elements = {{ 192.168.100.10 }} }}\n\
         \tchain forward {{\n\t\ttype filter hook forward priority filter; policy drop;\n\
         \t\t{}\n\t\tct state established,related accept\n\t}}\n\
         \tchain nat_in {{\n\t\ttype nat hook prerouting priority dstnat; policy accept;\n\t}}\n\
         \tchain nat_out {{\n\t\ttype nat hook postrouting priority srcnat; policy accept;\n\t\t{}\n\t}}\n\
         }}\n",
        forward.join("\n\t\t"),
        nat.join("\n\t\t"),
    );
    netvm_apply::apply_ruleset(&ruleset).expect("the plan's rules load");
}

/// Polls `check` until it holds, panicking with `what` after [`WAIT`].
fn wait_until(what: &str, check: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn uid_of(pid: u32) -> Option<String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find_map(|l| l.strip_prefix("Uid:"))?;
    line.split_whitespace().next().map(str::to_owned)
}

fn proxies(nv: &Netns) -> String {
    nv.ok(&["ip", "-6", "neigh", "show", "proxy", "dev", "upl0"])
}

fn options(scratch: &Scratch) -> ClatOptions {
    ClatOptions {
        config: scratch.path("clat/tayga.conf"),
        log: scratch.path("clat.log"),
        proc_sys: PathBuf::from("/proc/sys"),
        sandbox: Some(Sandbox {
            user: "nobody".to_owned(),
            group: "nogroup".to_owned(),
        }),
        ready_timeout: WAIT,
    }
}

#[test]
fn an_ipv4_only_client_reaches_an_ipv4_service_over_an_ipv6_only_uplink() {
    let lan = Netns::new("n6xlan");
    let nv = Netns::new("n6xnv");
    let up = Netns::new("n6xup");
    let scratch = Scratch::new_named("xlat");
    veth(&lan, "lan0", &nv, "int0");
    veth(&nv, "upl0", &up, "isp0");
    lan.ok(&["ip", "addr", "add", "192.168.100.10/24", "dev", "lan0"]);
    lan.ok(&["ip", "route", "add", "default", "via", "192.168.100.1"]);
    nv.ok(&["ip", "link", "set", "upl0", "address", UPLINK_MAC]);
    nv.ok(&["ip", "addr", "add", "192.168.100.1/24", "dev", "int0"]);
    nv.ok(&[
        "ip",
        "-6",
        "addr",
        "add",
        "2001:db8:10::2/64",
        "dev",
        "upl0",
        "nodad",
    ]);
    nv.ok(&[
        "ip",
        "-6",
        "route",
        "add",
        "default",
        "via",
        "2001:db8:10::1",
    ]);
    nv.ok(&[
        "sysctl",
        "-qw",
        "net.ipv4.ip_forward=1",
        "net.ipv6.conf.all.forwarding=1",
    ]);
    let _nat64 = start_isp(&up, &scratch);
    let peers = start_service(&up);
    let data_dir = scratch.path("clat-data");
    let first = clat_plan("2001:db8:10::", &data_dir);
    let options = options(&scratch);

    let (lan, nv_ref) = (&lan, &nv);
    nv.inside(move || {
        let nv = nv_ref;
        let clat = clat::apply(&first, &options).expect("the CLAT applies");
        load_rules(&first);
        assert!(proxies(nv).contains(&first.clat6.to_string()));
        let routes = nv.ok(&["ip", "route", "show", "default"]);
        assert!(
            routes.contains("dev clat0")
                && routes.contains("metric 2048")
                && routes.contains("mtu 1480"),
            "{routes}"
        );
        let pid = clat.pid().expect("tayga runs");
        wait_until("tayga drops to nobody", || {
            uid_of(pid).as_deref() == Some("65534")
        });
        let root = std::fs::read_link(format!("/proc/{pid}/root")).expect("tayga's root");
        assert_eq!(root, data_dir, "tayga is chrooted to its data dir");
        exchange(lan, &peers);

        // The agent dies without stopping tayga; the uplink is renumbered.
        std::mem::forget(clat);
        nv.ok(&[
            "ip",
            "-6",
            "addr",
            "add",
            "2001:db8:20::2/64",
            "dev",
            "upl0",
            "nodad",
        ]);
        let second = clat_plan("2001:db8:20::", &data_dir);
        let clat: Clat = clat::apply(&second, &options).expect("the CLAT applies again");
        load_rules(&second);
        wait_until("the stale tayga is gone", || {
            uid_of(pid).is_none() || zombie(pid)
        });
        let listed = proxies(nv);
        assert!(listed.contains(&second.clat6.to_string()), "{listed}");
        assert!(!listed.contains(&first.clat6.to_string()), "{listed}");
        exchange(lan, &peers);

        let pid = clat.pid().expect("tayga runs");
        clat.remove().expect("the CLAT is removed");
        assert!(uid_of(pid).is_none(), "tayga is reaped");
        assert_eq!(proxies(nv).trim(), "");
        let links = nv.ok(&["ip", "-o", "link", "show"]);
        assert!(!links.contains("clat0"), "{links}");

        // Applying after a remove works; a re-apply with the first prefix
        // too; dropping the handle removes everything.
        let mut clat = clat::apply(&second, &options).expect("the CLAT applies after a remove");
        clat.reapply(&first).expect("the CLAT re-applies");
        load_rules(&first);
        let listed = proxies(nv);
        assert!(listed.contains(&first.clat6.to_string()), "{listed}");
        assert!(!listed.contains(&second.clat6.to_string()), "{listed}");
        exchange(lan, &peers);

        // tayga dies: supervision starts it again on the same TUN.
        let pid = clat.pid().expect("tayga runs");
        let raw = i32::try_from(pid).expect("pid");
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(raw),
            nix::sys::signal::Signal::SIGKILL,
        )
        .expect("kill tayga");
        let deadline = Instant::now() + WAIT;
        while clat.supervise().expect("tayga restarts").is_none() {
            assert!(Instant::now() < deadline, "supervise never saw tayga end");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_ne!(clat.pid(), Some(pid));
        exchange(lan, &peers);
        drop(clat);
        assert_eq!(proxies(nv).trim(), "");
        let links = nv.ok(&["ip", "-o", "link", "show"]);
        assert!(!links.contains("clat0"), "{links}");
    });
}

/// Whether `pid` has ended but is not yet reaped (the forgotten handle's
/// child is never reaped).
fn zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            s.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
        })
        .unwrap_or(true)
}

#[test]
fn a_tayga_that_cannot_start_leaves_nothing_behind() {
    let nv = Netns::new("n6xfail");
    let scratch = Scratch::new_named("fail");
    nv.ok(&[
        "ip", "link", "add", "upl0", "type", "veth", "peer", "name", "upl1",
    ]);
    nv.ok(&["ip", "link", "set", "upl0", "up"]);
    let plan = clat_plan("2001:db8:10::", &scratch.path("clat-data"));
    let mut options = options(&scratch);
    options.sandbox = Some(Sandbox {
        user: "n6x-no-such-user".to_owned(),
        group: "nogroup".to_owned(),
    });
    nv.inside(|| {
        let error = clat::apply(&plan, &options).expect_err("tayga cannot become that user");
        assert!(
            matches!(error, clat::ClatError::Exited { ref log, .. } if log.contains("n6x-no-such-user")),
            "{error}"
        );
        assert_eq!(proxies(&nv).trim(), "");
        let links = nv.ok(&["ip", "-o", "link", "show"]);
        assert!(!links.contains("clat0"), "{links}");
    });
}
