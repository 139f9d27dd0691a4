//! The DHCPv6 server with real clients from Debian (dhclient -6, dhcpcd)
//! in network namespaces made by the test: a described MAC gets its
//! reserved address whatever its DUID claims, an undescribed MAC gets a
//! pool address and keeps it, a release is seen, a refused grant is
//! undone, and leases survive a restart through the snapshot. The server
//! runs on a thread that entered the server's namespace. Runs as root.
//!
//! Not covered: busybox's `udhcpc6`: Debian 12's busybox builds
//! (busybox-static and busybox) have no such applet.

use netvm_description::values::{IfName, MacAddr};
use netvm_dhcp6::server::{duid_ll, Server6Config, POOL_IID_BASE};
use netvm_dhcp6_server::{serve_with, Hooks6, Serve6Options};
use netvm_runtime::{error_chain, PartControl};
use netvm_testsupport::{veth, Netns, Process};
use nix::sched::{setns, CloneFlags};
use serde_json::Value;
use std::io::Write;
use std::net::Ipv6Addr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

const LONG: Duration = Duration::from_secs(40);
const VM_A: MacAddr = MacAddr([2, 0xaa, 0, 0, 0, 7]);
const VM_B: MacAddr = MacAddr([2, 0xaa, 0, 0, 0, 8]);
const GUEST: MacAddr = MacAddr([2, 0xbb, 0, 0, 0, 1]);

fn prefix() -> Ipv6Addr {
    "fd6e:7673:0:1::".parse().expect("prefix")
}

fn at(iid: u64) -> Ipv6Addr {
    Server6Config::address(prefix(), iid)
}

fn config() -> Server6Config {
    let mut config = Server6Config::new(prefix(), duid_ll(MacAddr([2, 0xad, 0, 0, 0, 1])));
    config.reservations = vec![(VM_A, at(7)), (VM_B, at(8))];
    config.pool = POOL_IID_BASE + 200..=POOL_IID_BASE + 201;
    config.preferred_lifetime = 600;
    config.valid_lifetime = 1200;
    config.t1 = 300;
    config.t2 = 480;
    config.dns = vec![at(1)];
    config.search = vec!["internal".to_owned()];
    config
}

/// Event lines written by the server, shared with the test.
#[derive(Clone, Default)]
struct Lines(Arc<(Mutex<Vec<u8>>, Condvar)>);

impl Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let (store, ready) = &*self.0;
        store
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        ready.notify_all();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Lines {
    fn all(&self) -> Vec<Value> {
        let store = self.0 .0.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&store)
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits until `count` lines are `event` about `mac` (any MAC when
    /// `None`); returns them.
    fn wait(&self, count: usize, event: &str, mac: Option<MacAddr>) -> Vec<Value> {
        let deadline = Instant::now() + LONG;
        let (store, ready) = &*self.0;
        let mut guard = store.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let found: Vec<Value> = String::from_utf8_lossy(&guard)
                .lines()
                .filter_map(|l| serde_json::from_str::<Value>(l).ok())
                .filter(|v| v["event"] == event)
                .filter(|v| mac.is_none_or(|m| v["mac"] == m.to_string()))
                .collect();
            if found.len() >= count {
                return found;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no {count} `{event}` line(s) from the server; it wrote:\n{}",
                String::from_utf8_lossy(&guard)
            );
            guard = ready
                .wait_timeout(guard, left)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

/// Records grants; refuses those of one MAC if asked to.
#[derive(Clone, Default)]
struct Recording {
    grants: Arc<Mutex<Vec<(Ipv6Addr, MacAddr)>>>,
    refuse: Option<MacAddr>,
}

impl Hooks6 for Recording {
    fn grant(&mut self, ip: Ipv6Addr, mac: MacAddr) -> bool {
        self.grants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((ip, mac));
        self.refuse != Some(mac)
    }
}

/// The server on its thread in the server namespace.
struct Running {
    control: PartControl,
    thread: Option<JoinHandle<Result<(), String>>>,
    lines: Lines,
    hooks: Recording,
}

impl Running {
    fn start(ns: &Netns, snapshot: &Path, refuse: Option<MacAddr>) -> Running {
        let control = PartControl::default();
        let lines = Lines::default();
        let hooks = Recording {
            refuse,
            ..Recording::default()
        };
        let path = format!("/run/netns/{}", ns.name());
        let options = Serve6Options {
            interface: "s0".parse::<IfName>().expect("name"),
            snapshot: Some(snapshot.to_owned()),
            control: Some(control.clone()),
        };
        let (mut out, mut thread_hooks) = (lines.clone(), hooks.clone());
        let thread = std::thread::spawn(move || {
            let file = std::fs::File::open(&path).map_err(|e| e.to_string())?;
            setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| e.to_string())?;
            serve_with(config(), &options, &mut out, &mut thread_hooks).map_err(|e| error_chain(&e))
        });
        let running = Running {
            control,
            thread: Some(thread),
            lines,
            hooks,
        };
        running.lines.wait(1, "ready", None);
        running
    }

    fn grants(&self) -> Vec<(Ipv6Addr, MacAddr)> {
        self.hooks
            .grants
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn stop(&mut self) {
        self.control.stop.stop();
        if let Some(thread) = self.thread.take() {
            let ended = thread.join().expect("the server thread did not panic");
            assert_eq!(ended, Ok(()), "the server ended with an error");
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.control.stop.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A server namespace and a client namespace on a veth pair (`s0`,
/// `c0`), DAD off so link-local addresses are usable at once, and a
/// scratch directory.
struct Lab {
    server: Running,
    client_ns: Netns,
    server_ns: Netns,
    dir: PathBuf,
}

fn no_dad(ns: &Netns) {
    for key in ["all", "default"] {
        ns.ok(&[
            "sysctl",
            "-q",
            "-w",
            &format!("net.ipv6.conf.{key}.accept_dad=0"),
        ]);
    }
}

/// Waits until `interface` in `ns` has a usable link-local address.
fn wait_link_local(ns: &Netns, interface: &str) {
    let deadline = Instant::now() + LONG;
    loop {
        let out = ns.ok(&[
            "ip", "-6", "addr", "show", "dev", interface, "scope", "link",
        ]);
        if out.contains("inet6") && !out.contains("tentative") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no link-local on {interface}: {out}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Lab {
    fn new(name: &str, client_mac: MacAddr, refuse: Option<MacAddr>) -> Lab {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("n6s-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        let server_ns = Netns::new("n6ssrv");
        let client_ns = Netns::new("n6scli");
        no_dad(&server_ns);
        no_dad(&client_ns);
        veth(&server_ns, "s0", &client_ns, "c0");
        let mac = client_mac.to_string();
        client_ns.ok(&["ip", "link", "set", "c0", "down"]);
        client_ns.ok(&["ip", "link", "set", "c0", "address", &mac]);
        client_ns.ok(&["ip", "link", "set", "c0", "up"]);
        wait_link_local(&server_ns, "s0");
        wait_link_local(&client_ns, "c0");
        let server = Running::start(&server_ns, &dir.join("leases6.json"), refuse);
        Lab {
            server,
            client_ns,
            server_ns,
            dir,
        }
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).to_string_lossy().into_owned()
    }

    /// Starts `dhclient -6` in the foreground with its own files; its
    /// script records what it was told in `dhclient.env`. `duid_of`
    /// makes it use a DUID-LL of another MAC.
    fn dhclient(&self, duid_of: Option<MacAddr>) -> Process {
        let script = self.path("dhclient-script");
        let env = self.path("dhclient.env");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\necho \"reason=$reason new_ip6_address=$new_ip6_address \
                 dns=$new_dhcp6_name_servers search=$new_dhcp6_domain_search\" >> {env}\n"
            ),
        )
        .expect("script");
        netvm_testsupport::run_ok(&["chmod", "+x", &script]);
        std::fs::write(
            self.path("dhclient.conf"),
            "also request dhcp6.name-servers, dhcp6.domain-search;\n",
        )
        .expect("conf");
        let leases = self.path("dhclient.leases");
        if let Some(mac) = duid_of {
            if !Path::new(&leases).exists() {
                let octal: String = duid_ll(mac).iter().map(|b| format!("\\{b:03o}")).collect();
                std::fs::write(&leases, format!("default-duid \"{octal}\";\n")).expect("leases");
            }
        }
        let (conf, pid) = (self.path("dhclient.conf"), self.path("dhclient.pid"));
        self.client_ns.spawn(&[
            "dhclient", "-6", "-1", "-d", "-v", "-cf", &conf, "-lf", &leases, "-pf", &pid, "-sf",
            &script, "c0",
        ])
    }

    /// Waits for the `n`th line of dhclient's script that gives it an
    /// address (BOUND6, REBOOT6, RENEW6, REBIND6); returns it.
    fn dhclient_told(&self, n: usize) -> String {
        let path = self.dir.join("dhclient.env");
        let deadline = Instant::now() + LONG;
        loop {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let found: Vec<&str> = text
                .lines()
                .filter(|l| {
                    ["BOUND6", "REBOOT6", "RENEW6", "REBIND6"]
                        .iter()
                        .any(|r| l.starts_with(&format!("reason={r} ")))
                })
                .collect();
            if found.len() >= n {
                return found[n - 1].to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "dhclient never reported address #{n}; script saw:\n{text}\nserver wrote: {:?}",
                self.server.lines.all()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Starts dhcpcd for DHCPv6 only on `interface` in `ns`. dhcpcd keeps
/// its DUID, leases and sockets under /var/lib/dhcpcd and /run/dhcpcd: a
/// mount namespace of its own gives it scratch copies under `dir` (with
/// a DUID-LL of `duid_of`, if given). It starts DHCPv6 without waiting
/// for a Router Advertisement when told `noipv6rs` and `ia_na`, and asks
/// for Rapid Commit.
fn dhcpcd(ns: &Netns, interface: &str, dir: &Path, duid_of: Option<MacAddr>) -> Process {
    let (lib, run) = (dir.join("lib"), dir.join("run"));
    std::fs::create_dir_all(&lib).expect("lib");
    std::fs::create_dir_all(&run).expect("run");
    if let Some(mac) = duid_of {
        let octets: Vec<String> = duid_ll(mac).iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(lib.join("duid"), format!("{}\n", octets.join(":"))).expect("duid");
    }
    let conf = dir.join("dhcpcd.conf");
    std::fs::write(&conf, "noipv6rs\nia_na 1\noption rapid_commit\n").expect("conf");
    let command = format!(
        "mount --bind {} /var/lib/dhcpcd && mount --bind {} /run/dhcpcd && \
         exec dhcpcd -6 -B -d -f {} -c /bin/true {interface}",
        lib.display(),
        run.display(),
        conf.display()
    );
    ns.spawn(&[
        "unshare",
        "-m",
        "--propagation",
        "private",
        "sh",
        "-c",
        &command,
    ])
}

fn ip_of(event: &Value) -> Ipv6Addr {
    event["ip"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .expect("an ip")
}

#[test]
fn dhclient_gets_the_reservation_of_its_mac_and_releases_it() {
    let mut lab = Lab::new("dhclient", VM_A, None);
    let mut client = lab.dhclient(None);
    let bound = lab.dhclient_told(1);
    assert!(
        bound.contains(&format!("new_ip6_address={} ", at(7))),
        "{bound}"
    );
    assert!(bound.contains(&format!("dns={}", at(1))), "{bound}");
    assert!(bound.contains("search=internal."), "{bound}");
    let granted = lab.server.lines.wait(1, "lease_granted", Some(VM_A));
    assert_eq!(ip_of(&granted[0]), at(7));
    assert!(lab.server.grants().contains(&(at(7), VM_A)));

    // Released: the server hears it and drops the lease.
    client.signal("TERM");
    client.wait_exit(LONG);
    let (conf, leases, pid) = (
        lab.path("dhclient.conf"),
        lab.path("dhclient.leases"),
        lab.path("dhclient.pid"),
    );
    lab.client_ns.ok(&[
        "dhclient",
        "-6",
        "-r",
        "-cf",
        &conf,
        "-lf",
        &leases,
        "-pf",
        &pid,
        "-sf",
        "/bin/true",
        "c0",
    ]);
    let released = lab.server.lines.wait(1, "lease_released", Some(VM_A));
    assert_eq!(ip_of(&released[0]), at(7));
    drop(client);
    lab.server.stop();
}

#[test]
fn a_duid_claiming_another_vm_changes_nothing() {
    // dhclient on VM A's MAC with VM B's DUID: VM A's address.
    let lab = Lab::new("liar", VM_A, None);
    let _client = lab.dhclient(Some(VM_B));
    let bound = lab.dhclient_told(1);
    assert!(
        bound.contains(&format!("new_ip6_address={} ", at(7))),
        "{bound}"
    );
    let leases = std::fs::read_to_string(lab.dir.join("dhclient.leases")).expect("leases");
    assert!(leases.contains("default-duid \"\\000\\003\\000\\001\\002\\252\\000\\000\\000\\010\""));
    drop(lab);

    // An undescribed MAC with VM B's DUID: a pool address, not VM B's.
    let lab = Lab::new("liar-guest", GUEST, None);
    let _client = lab.dhclient(Some(VM_B));
    let bound = lab.dhclient_told(1);
    let pool = [at(POOL_IID_BASE + 200), at(POOL_IID_BASE + 201)];
    assert!(
        pool.iter()
            .any(|ip| bound.contains(&format!("new_ip6_address={ip} "))),
        "{bound}"
    );
}

#[test]
fn an_undescribed_mac_keeps_its_pool_address_across_a_server_restart() {
    let mut lab = Lab::new("pool", GUEST, None);
    let mut client = lab.dhclient(None);
    lab.dhclient_told(1);
    let granted = lab.server.lines.wait(1, "lease_granted", Some(GUEST));
    let address = ip_of(&granted[0]);
    assert!([at(POOL_IID_BASE + 200), at(POOL_IID_BASE + 201)].contains(&address));
    client.signal("KILL");
    client.wait_exit(LONG);

    // The server restarts from its snapshot, makes the lease effective
    // again at once, and the returning client keeps its address.
    lab.server.stop();
    let snapshot = lab.dir.join("leases6.json");
    lab.server = Running::start(&lab.server_ns, &snapshot, None);
    let ready = lab.server.lines.wait(1, "ready", None);
    assert_eq!(ready[0]["leases"], 1, "{ready:?}");
    assert_eq!(lab.server.grants(), vec![(address, GUEST)]);
    let _client = lab.dhclient(None);
    let bound = lab.dhclient_told(2);
    assert!(
        bound.contains(&format!("new_ip6_address={address} ")),
        "{bound}"
    );
    for line in lab.server.lines.all() {
        if line["event"] == "lease_granted" || line["event"] == "lease_renewed" {
            assert_eq!(ip_of(&line), address, "{line}");
        }
    }
}

#[test]
fn dhcpcd_with_another_vms_duid_gets_its_own_reservation() {
    // VM B's MAC, a DUID claiming VM A.
    let lab = Lab::new("dhcpcd", VM_B, None);
    let claimed: Vec<String> = duid_ll(VM_A).iter().map(|b| format!("{b:02x}")).collect();
    let dhcpcd = dhcpcd(&lab.client_ns, "c0", &lab.dir.join("dhcpcd"), Some(VM_A));
    let granted = lab.server.lines.wait(1, "lease_granted", Some(VM_B));
    assert_eq!(ip_of(&granted[0]), at(8));
    // dhcpcd puts the address on its interface.
    let deadline = Instant::now() + LONG;
    loop {
        let out = lab
            .client_ns
            .ok(&["ip", "-6", "addr", "show", "dev", "c0", "scope", "global"]);
        if out.contains(&format!("{}/128", at(8))) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "dhcpcd did not add {}: {out}\n{}",
            at(8),
            dhcpcd.lines().join("\n")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        dhcpcd
            .lines()
            .iter()
            .any(|l| l.contains(&claimed.join(":"))),
        "dhcpcd used the claimed DUID: {:?}",
        dhcpcd.lines()
    );
}

#[test]
fn a_refused_grant_is_undone_and_not_answered() {
    let lab = Lab::new("refused", VM_A, Some(VM_A));
    let _client = lab.dhclient(None);
    let refused = lab.server.lines.wait(1, "lease_refused", Some(VM_A));
    assert_eq!(ip_of(&refused[0]), at(7));
    let revoked = lab.server.lines.wait(1, "lease_revoked", Some(VM_A));
    assert_eq!(ip_of(&revoked[0]), at(7));
    // The counters are published after the batch: wait for them.
    let deadline = Instant::now() + LONG;
    let counters = loop {
        let counters = lab
            .server
            .control
            .counters
            .lock()
            .expect("counters")
            .clone();
        if counters["replies_withheld"].as_u64() >= Some(1) {
            break counters;
        }
        assert!(Instant::now() < deadline, "nothing withheld: {counters}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(counters["leases"], 0, "{counters}");
    // A grant that never took effect is never reported as granted.
    let lines = lab.server.lines.all();
    assert!(
        lines.iter().all(|l| l["event"] != "lease_granted"),
        "{lines:?}"
    );
}

#[test]
fn a_client_on_another_interface_is_never_served() {
    // A second link into the server's namespace, standing in for the
    // uplink, with a client asking for Rapid Commit on it: served, it
    // would be granted a pool address at once.
    let lab = Lab::new("uplink", VM_A, None);
    let outside = Netns::new("n6sout");
    no_dad(&outside);
    veth(&lab.server_ns, "up0", &outside, "o0");
    wait_link_local(&outside, "o0");
    let seen = lab.server_ns.spawn(&[
        "tcpdump",
        "-l",
        "-n",
        "-i",
        "up0",
        "-c",
        "1",
        "udp dst port 547",
    ]);
    let _outsider = dhcpcd(&outside, "o0", &lab.dir.join("dhcpcd-out"), None);
    seen.wait_for(LONG, |l| l.contains("solicit"));
    // The Solicit reached the server's namespace before the inside
    // client's messages; the inside client is served as usual.
    let _client = lab.dhclient(None);
    lab.dhclient_told(1);
    let lines = lab.server.lines.all();
    for line in &lines {
        if let Some(mac) = line["mac"].as_str() {
            assert_eq!(mac, VM_A.to_string(), "served another interface: {line}");
        }
    }
    assert!(lab.server.grants().iter().all(|(_, mac)| *mac == VM_A));
}
