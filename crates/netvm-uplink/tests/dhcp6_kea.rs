//! The DHCPv6 client driver against a real server, ISC Kea
//! (`kea-dhcp6`), over a veth between two namespaces of our own: it binds
//! an address from the pool and a /56 from the pd-pool, renews them at
//! T1 (2 s), and releases them on stop; against a server with no address
//! pool it binds the prefix alone. Needs root.

use netvm_dhcp6::Lease6;
use netvm_runtime::{Link, Stop};
use netvm_testsupport::{veth, Netns, Process};
use netvm_uplink::dhcp6::{run, Dhcp6Config};
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const SERVER_IF: &str = "n6cs0";
const CLIENT_IF: &str = "n6cc0";

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("n6c-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Waits until `interface` in `ns` has a link-local address that is no
/// longer tentative (DAD is off, but the kernel still adds it a moment
/// after the link comes up).
fn wait_link_local(ns: &Netns, interface: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let out = ns.ok(&[
            "ip", "-6", "addr", "show", "dev", interface, "scope", "link",
        ]);
        if out.contains("inet6 fe80") && !out.contains("tentative") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no usable link-local address on {interface}: {out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A server and a client namespace joined by a veth, DAD off on both.
fn topology() -> (Netns, Netns) {
    let server = Netns::new("n6cs");
    let client = Netns::new("n6cc");
    for ns in [&server, &client] {
        for scope in ["default", "all"] {
            ns.ok(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{scope}.accept_dad=0"),
            ]);
        }
    }
    veth(&server, SERVER_IF, &client, CLIENT_IF);
    wait_link_local(&server, SERVER_IF);
    wait_link_local(&client, CLIENT_IF);
    (server, client)
}

/// Kea's configuration: subnet 2001:db8:1::/64, an address pool when
/// `addresses`, a pd-pool 2001:db8:8000::/48 of /56s, T1 2 s, T2 3 s,
/// lifetimes 8/10 s, DNS and search options; leases in `dir`.
fn kea_config(dir: &Path, addresses: bool) -> String {
    let pools = if addresses {
        r#""pools": [ { "pool": "2001:db8:1::100-2001:db8:1::1ff" } ],"#
    } else {
        ""
    };
    format!(
        r#"{{ "Dhcp6": {{
  "interfaces-config": {{ "interfaces": [ "{SERVER_IF}" ] }},
  "server-id": {{ "type": "EN", "enterprise-id": 2495, "identifier": "6e3663", "persist": false }},
  "lease-database": {{ "type": "memfile", "persist": true, "name": "{leases}", "lfc-interval": 0 }},
  "renew-timer": 2, "rebind-timer": 3, "preferred-lifetime": 8, "valid-lifetime": 10,
  "option-data": [
    {{ "name": "dns-servers", "data": "2001:db8:1::53" }},
    {{ "name": "domain-search", "data": "example.test" }}
  ],
  "subnet6": [ {{
    "id": 1, "subnet": "2001:db8:1::/64", "interface": "{SERVER_IF}",
    {pools}
    "pd-pools": [ {{ "prefix": "2001:db8:8000::", "prefix-len": 48, "delegated-len": 56 }} ]
  }} ],
  "loggers": [ {{ "name": "kea-dhcp6", "output_options": [ {{ "output": "stdout", "flush": true }} ],
                 "severity": "INFO" }} ]
}} }}"#,
        leases = dir.join("leases6.csv").display(),
    )
}

/// Starts kea-dhcp6 in `ns` with its files in `dir`; returns once it
/// serves.
fn kea(ns: &Netns, dir: &TempDir, addresses: bool) -> Process {
    let config = dir.0.join("kea-dhcp6.conf");
    std::fs::write(&config, kea_config(&dir.0, addresses)).expect("write the Kea config");
    let env_dir = |name: &str| format!("{name}={}", dir.0.display());
    let kea = ns.spawn(&[
        "env",
        &env_dir("KEA_PIDFILE_DIR"),
        &env_dir("KEA_LOCKFILE_DIR"),
        "kea-dhcp6",
        "-c",
        &config.display().to_string(),
    ]);
    kea.wait_for(Duration::from_secs(20), |l| l.contains("DHCP6_STARTED"));
    kea
}

/// The driver on the client's interface, on a thread that entered the
/// client namespace; each lease change arrives on the receiver.
fn client(
    ns: &Netns,
    want_address: bool,
    stop: &Stop,
) -> (JoinHandle<()>, Receiver<Option<Lease6>>) {
    let read = |file: &str| {
        ns.ok(&["cat", &format!("/sys/class/net/{CLIENT_IF}/{file}")])
            .trim()
            .to_owned()
    };
    let config = Dhcp6Config {
        interface: CLIENT_IF.parse().expect("an interface name"),
        link: Link {
            index: read("ifindex").parse().expect("an index"),
            mac: read("address").parse().expect("a MAC"),
        },
        want_address,
    };
    let netns = std::fs::File::open(format!("/run/netns/{}", ns.name())).expect("open the netns");
    let stop = stop.clone();
    let (tx, rx) = channel();
    let thread = std::thread::spawn(move || {
        nix::sched::setns(&netns, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter the netns");
        run(&config, &stop, &mut |lease| {
            let _ = tx.send(lease.cloned());
        })
        .expect("the client runs");
    });
    (thread, rx)
}

fn next(rx: &Receiver<Option<Lease6>>, what: &str) -> Option<Lease6> {
    rx.recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("no lease change ({what}): {e}"))
}

#[test]
fn binds_renews_and_releases_an_address_and_a_prefix_from_kea() {
    let (server, client_ns) = topology();
    let dir = TempDir::new("both");
    let kea = kea(&server, &dir, true);
    let stop = Stop::new();
    let (thread, rx) = client(&client_ns, true, &stop);

    let lease = next(&rx, "bind").expect("a lease, not a loss");
    let address = lease.address.as_ref().expect("an address from the pool");
    let pool = u128::from("2001:db8:1::100".parse::<Ipv6Addr>().expect("an address"))
        ..=u128::from("2001:db8:1::1ff".parse::<Ipv6Addr>().expect("an address"));
    assert!(pool.contains(&u128::from(address.address)), "{lease:?}");
    assert_eq!((address.preferred, address.valid), (8, 10));
    let prefix = lease.prefix.as_ref().expect("a delegated prefix");
    assert_eq!(prefix.len, 56);
    assert_eq!(
        u128::from(prefix.prefix) >> 80,
        u128::from("2001:db8:8000::".parse::<Ipv6Addr>().expect("an address")) >> 80,
        "{lease:?}"
    );
    assert_eq!(
        lease.dns,
        ["2001:db8:1::53".parse::<Ipv6Addr>().expect("an address")]
    );
    assert_eq!(lease.search, ["example.test"]);
    assert_eq!((lease.t1, lease.t2), (2, 3));

    // T1 is 2 s: the next change is the renewed lease, same values.
    let renewed = next(&rx, "renew").expect("renewed, not lost");
    assert_eq!(
        renewed.address.as_ref().map(|a| a.address),
        Some(address.address)
    );
    assert_eq!(renewed.prefix, lease.prefix);
    assert_eq!(renewed.server_id, lease.server_id);

    stop.stop();
    let mut last = Some(renewed);
    while let Ok(change) = rx.recv_timeout(Duration::from_secs(10)) {
        last = change;
    }
    thread.join().expect("the client thread ends");
    assert_eq!(last, None, "released on stop");
    kea.wait_for(Duration::from_secs(5), |l| l.contains("DHCP6_RELEASE_NA"));
    kea.wait_for(Duration::from_secs(5), |l| l.contains("DHCP6_RELEASE_PD"));
    let logged = |what: &str| kea.lines().iter().any(|l| l.contains(what));
    for what in [
        "DHCP6_LEASE_ALLOC",
        "DHCP6_PD_LEASE_ALLOC",
        "DHCP6_LEASE_RENEW",
        "DHCP6_PD_LEASE_RENEW",
    ] {
        assert!(
            logged(what),
            "Kea logged no {what}:\n{}",
            kea.lines().join("\n")
        );
    }
}

#[test]
fn binds_a_prefix_alone_when_the_server_has_no_addresses() {
    let (server, client_ns) = topology();
    let dir = TempDir::new("pd");
    let _kea = kea(&server, &dir, false);
    let stop = Stop::new();
    let (thread, rx) = client(&client_ns, true, &stop);
    let lease = next(&rx, "bind").expect("a lease");
    assert!(lease.address.is_none(), "{lease:?}");
    assert_eq!(lease.prefix.as_ref().map(|p| p.len), Some(56));
    stop.stop();
    thread.join().expect("the client thread ends");
}

#[test]
fn a_client_on_a_stateless_network_asks_a_prefix_only() {
    let (server, client_ns) = topology();
    let dir = TempDir::new("stateless");
    let kea = kea(&server, &dir, true);
    let stop = Stop::new();
    let (thread, rx) = client(&client_ns, false, &stop);
    let lease = next(&rx, "bind").expect("a lease");
    assert!(lease.address.is_none(), "{lease:?}");
    assert_eq!(lease.prefix.as_ref().map(|p| p.len), Some(56));
    stop.stop();
    thread.join().expect("the client thread ends");
    assert!(
        !kea.lines().iter().any(|l| l.contains("DHCP6_LEASE_ALLOC")),
        "no address was asked for"
    );
}
