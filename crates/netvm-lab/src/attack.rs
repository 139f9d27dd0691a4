//! The layer-2 half of `netvm lab verify`: from every kind of bridge port
//! (a described VM's, the pool client's, one the plan does not name) it
//! spoofs another VM's MAC, its address, both, forges ARP and asks for
//! the victim's lease with the victim's MAC; then a rogue DHCP server's
//! offer and a rogue IPv6 router advertisement, with a capture on every
//! other VM; with IPv6 inside, datagrams from the victim's IPv6 address
//! and neighbour advertisements claiming its address or carrying its MAC.
//! Each must reach nothing, leave the victim as it was, and be
//! counted (a host guard counter or the agent's `spoofing` event). The
//! frames are built by a small Python script (`raw.py`, AF_PACKET), so
//! this crate stays free of unsafe code.

use crate::lab::Lab;
use crate::netns;
use crate::plan::{Expected, VmNode, UPSTREAM_IP};
use crate::verify::{events, Check};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::process::{Command, Stdio};
use std::time::Duration;

const RAW_PY: &str = include_str!("raw.py");
/// The port spoofed datagrams are sent to (a listener holds it and logs).
const SPOOF_PORT: u16 = 3000;

/// One attacking port.
struct Attacker<'a> {
    label: &'static str,
    id: &'static str,
    ns: &'a str,
    mac: String,
}

/// Every packet the host's guards counted (all named counters).
fn counted(lab: &Lab) -> u64 {
    netns::run_in(&lab.plan.host, &["nft", "-j", "list", "counters"])
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| {
            v["nftables"].as_array().map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["counter"]["packets"].as_u64())
                    .sum()
            })
        })
        .unwrap_or(0)
}

fn spoofing_events(lab: &Lab) -> usize {
    events(lab, 100_000)
        .iter()
        .filter(|e| e["event"] == "spoofing")
        .count()
}

fn python(lab: &Lab, ns: &str, args: &[&str]) -> String {
    let script = lab.dir.join("verify-raw.py").display().to_string();
    let mut all = vec!["python3", script.as_str()];
    all.extend_from_slice(args);
    netns::output_in(ns, &all)
}

fn send_udp(ns: &str, from: Ipv4Addr, to: (Ipv4Addr, u16), token: &str) {
    let _ = netns::inside(ns, || -> std::io::Result<()> {
        let s = std::net::UdpSocket::bind((from, 0))?;
        for _ in 0..5 {
            s.send_to(token.as_bytes(), to)?;
        }
        Ok(())
    });
}

/// Runs `act` and says whether the guard counted it (a counter moved or
/// the agent reported spoofing).
fn is_counted(lab: &Lab, act: impl FnOnce()) -> bool {
    let (before, events_before) = (counted(lab), spoofing_events(lab));
    act();
    std::thread::sleep(Duration::from_millis(150));
    counted(lab) > before || spoofing_events(lab) > events_before
}

/// Every lab log a listener wrote, concatenated.
fn listener_logs(lab: &Lab) -> String {
    std::fs::read_dir(&lab.dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            n.starts_with("verify-listen-") || n.starts_with("serve-")
        })
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

fn spoof(lab: &Lab, a: &Attacker, victim: &VmNode, victim_ip: Ipv4Addr) -> Check {
    let ns = a.ns;
    let netvm_ip = lab.plan.netvm_ip;
    let netvm_mac = lab.system.netvm.endpoint.mac.to_string();
    let victim_mac = victim.mac.to_string();
    let own = netns::ipv4_on(ns, "eth0").unwrap_or(Ipv4Addr::UNSPECIFIED);
    let set_mac = |mac: &str| {
        let _ = netns::run_in(ns, &["ip", "link", "set", "eth0", "address", mac]);
    };
    let neigh = |ip: Ipv4Addr, add: bool| {
        let ip = ip.to_string();
        let _ = if add {
            netns::run_in(
                ns,
                &[
                    "ip",
                    "neigh",
                    "replace",
                    &ip,
                    "lladdr",
                    &netvm_mac,
                    "dev",
                    "eth0",
                    "nud",
                    "permanent",
                ],
            )
        } else {
            netns::run_in(ns, &["ip", "neigh", "del", &ip, "dev", "eth0"])
        };
    };
    let cidr = format!("{victim_ip}/32");
    let mut problems = Vec::new();
    let mut cases = Vec::new();
    let token = |case: &str| format!("spoof-{}-{case}", a.id);
    // Another VM's MAC, own address.
    let t = token("mac");
    cases.push((
        "MAC",
        is_counted(lab, || {
            set_mac(&victim_mac);
            neigh(netvm_ip, true);
            neigh(victim_ip, true);
            send_udp(ns, own, (victim_ip, SPOOF_PORT), &t);
            send_udp(ns, own, (netvm_ip, 53), &t);
            set_mac(&a.mac);
            neigh(netvm_ip, false);
            neigh(victim_ip, false);
        }),
        t,
    ));
    // Another VM's address, own MAC; and both.
    for (case, mac) in [("IP", None), ("MAC+IP", Some(&victim_mac))] {
        let t = token(&case.replace('+', "-"));
        cases.push((
            case,
            is_counted(lab, || {
                if let Some(m) = mac {
                    set_mac(m);
                }
                neigh(netvm_ip, true);
                let _ = netns::run_in(ns, &["ip", "addr", "add", &cidr, "dev", "eth0"]);
                send_udp(ns, victim_ip, (UPSTREAM_IP, SPOOF_PORT), &t);
                send_udp(ns, victim_ip, (netvm_ip, 53), &t);
                let _ = netns::run_in(ns, &["ip", "addr", "del", &cidr, "dev", "eth0"]);
                neigh(netvm_ip, false);
                set_mac(&a.mac);
            }),
            t,
        ));
    }
    // Forged ARP: the victim's address is ours (to everyone, and to the
    // net-vm), and so is the net-vm's.
    let arp = is_counted(lab, || {
        let v = victim_ip.to_string();
        let n = netvm_ip.to_string();
        python(
            lab,
            ns,
            &["arp", "eth0", "ff:ff:ff:ff:ff:ff", &a.mac, &v, &v],
        );
        python(lab, ns, &["arp", "eth0", &netvm_mac, &a.mac, &v, &n]);
        python(
            lab,
            ns,
            &["arp", "eth0", "ff:ff:ff:ff:ff:ff", &a.mac, &n, &n],
        );
    });
    cases.push(("ARP", arp, String::new()));
    for (case, ok, _) in &cases {
        if !ok {
            problems.push(format!("{case} spoofing was not counted"));
        }
    }
    // Nothing arrived anywhere.
    let logs = listener_logs(lab);
    for (case, _, t) in &cases {
        if !t.is_empty() && logs.contains(t.as_str()) {
            problems.push(format!("{case} spoofed datagrams reached a listener ({t})"));
        }
    }
    // The victim's mappings did not move.
    let poisoned = |in_ns: &str, dev: &str, ip: Ipv4Addr| {
        netns::run_in(in_ns, &["ip", "neigh", "show", &ip.to_string(), "dev", dev])
            .unwrap_or_default()
            .contains(&a.mac)
    };
    let internal = netvm_plan::datapath::interfaces(&lab.system)
        .internal
        .to_string();
    if poisoned(&lab.plan.netvm, &internal, victim_ip) {
        problems.push(format!(
            "the net-vm now maps {victim_ip} to the attacker's MAC"
        ));
    }
    if poisoned(&victim.ns, "eth0", netvm_ip) {
        problems.push(format!(
            "{} now maps the net-vm to the attacker's MAC",
            victim.name
        ));
    }
    // The victim's lease, asked for with its MAC from the attacker's port.
    set_mac(&victim_mac);
    let said = netns::udhcpc_once(ns, 3, &["-s", "/bin/true"]);
    set_mac(&a.mac);
    if let Some(lease) = said.lines().find(|l| l.contains("obtained")) {
        problems.push(format!(
            "with {}'s MAC it got a lease: {}",
            victim.name,
            lease.trim()
        ));
    }
    if lab.address_of(&victim.ns) != Some(victim_ip) {
        problems.push(format!("{} lost its address {victim_ip}", victim.name));
    }
    Check {
        name: format!(
            "spoofing from {} as {} is dropped and counted",
            a.label, victim.name
        ),
        pass: problems.is_empty(),
        detail: if problems.is_empty() {
            "MAC, IP, MAC+IP and ARP counted; nothing arrived; no lease with the victim's MAC"
                .to_owned()
        } else {
            problems.join("; ")
        },
    }
}

/// IPv6 spoofing from `a`: datagrams from the victim's IPv6 address
/// (own MAC; only from a port with an IPv6 address of its own, which has
/// the net-vm's default route), an unsolicited neighbour advertisement
/// claiming the victim's address for the attacker's MAC, and one whose
/// link-layer address is the victim's MAC. Each must be counted by the
/// host's guard, the datagrams must reach no listener, and the net-vm
/// must not map the victim's address to the attacker's MAC.
fn spoof6(
    lab: &Lab,
    a: &Attacker,
    victim: &VmNode,
    victim_ip: Ipv6Addr,
    netvm_ip: Ipv6Addr,
) -> Check {
    let ns = a.ns;
    let victim_mac = victim.mac.to_string();
    let own = crate::ipv6::ipv6_on(ns, "eth0");
    let mut problems = Vec::new();
    let mut done = Vec::new();
    let token = format!("spoof6-{}-ip", a.id);
    if own.is_some() {
        let cidr = format!("{victim_ip}/128");
        let upstream = lab
            .plan
            .upstream_flavour
            .ipv6()
            .then_some(crate::upstream::UPSTREAM_IP6);
        let ip = is_counted(lab, || {
            let _ = netns::run_in(
                ns,
                &["ip", "-6", "addr", "add", &cidr, "dev", "eth0", "nodad"],
            );
            let _ = netns::inside(ns, || -> std::io::Result<()> {
                let s = std::net::UdpSocket::bind((victim_ip, 0))?;
                for _ in 0..5 {
                    s.send_to(token.as_bytes(), (netvm_ip, 53))?;
                    if let Some(up) = upstream {
                        s.send_to(token.as_bytes(), (up, SPOOF_PORT))?;
                    }
                }
                Ok(())
            });
            let _ = netns::run_in(ns, &["ip", "-6", "addr", "del", &cidr, "dev", "eth0"]);
        });
        if ip {
            done.push("IPv6 source");
        } else {
            problems.push("the victim's IPv6 source was not counted".to_owned());
        }
        if listener_logs(lab).contains(token.as_str()) {
            problems.push(format!(
                "datagrams from the victim's IPv6 address arrived ({token})"
            ));
        }
    }
    let v = victim_ip.to_string();
    let claim = is_counted(lab, || {
        python(lab, ns, &["na", "eth0", &a.mac, &v]);
    });
    if claim {
        done.push("NA for its address");
    } else {
        problems
            .push("a neighbour advertisement for the victim's address was not counted".to_owned());
    }
    let target = own.unwrap_or(victim_ip).to_string();
    let foreign = is_counted(lab, || {
        python(lab, ns, &["na", "eth0", &victim_mac, &target]);
    });
    if foreign {
        done.push("NA with its MAC");
    } else {
        problems.push("a neighbour advertisement with the victim's MAC was not counted".to_owned());
    }
    let internal = netvm_plan::datapath::interfaces(&lab.system)
        .internal
        .to_string();
    if netns::run_in(
        &lab.plan.netvm,
        &["ip", "-6", "neigh", "show", &v, "dev", &internal],
    )
    .unwrap_or_default()
    .contains(&a.mac)
    {
        problems.push(format!(
            "the net-vm now maps {victim_ip} to the attacker's MAC"
        ));
    }
    Check {
        name: format!(
            "IPv6 spoofing from {} as {} is dropped and counted",
            a.label, victim.name
        ),
        pass: problems.is_empty(),
        detail: if problems.is_empty() {
            format!(
                "{} counted; nothing arrived; no neighbour entry moved",
                done.join(", ")
            )
        } else {
            problems.join("; ")
        },
    }
}

/// A rogue DHCP offer and router advertisement from `a`; captured on
/// every other VM's interface.
fn rogue(lab: &Lab, a: &Attacker, victims: &[(&str, &str)]) -> Check {
    let dhcp = format!("rogue-dhcp-{}", a.id);
    let ra = format!("rogue-ra-{}", a.id);
    let script = lab.dir.join("verify-raw.py").display().to_string();
    let mut captures = Vec::new();
    for (name, ns) in victims {
        let child = Command::new("ip")
            .args([
                "netns", "exec", ns, "python3", &script, "capture", "eth0", "2", &dhcp, &ra,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        if let Ok(mut child) = child {
            let mut first = String::new();
            if let Some(out) = child.stdout.as_mut() {
                let _ = BufReader::new(out).read_line(&mut first);
            }
            captures.push((*name, child));
        }
    }
    let own = netns::ipv4_on(a.ns, "eth0")
        .unwrap_or(Ipv4Addr::UNSPECIFIED)
        .to_string();
    python(lab, a.ns, &["dhcp", "eth0", &own, &dhcp]);
    python(lab, a.ns, &["ra", "eth0", &ra]);
    let mut heard = Vec::new();
    let mut watched = Vec::new();
    for (name, child) in captures {
        let said = child
            .wait_with_output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        watched.push(name);
        for line in said.lines() {
            let w: Vec<&str> = line.split_whitespace().collect();
            if let ["seen", token, n] = w.as_slice() {
                if *n != "0" {
                    heard.push(format!("{name} received {n} frames of {token}"));
                }
            }
        }
    }
    Check {
        name: format!(
            "a rogue DHCP server and router advertisement from {} reach no VM",
            a.label
        ),
        pass: heard.is_empty() && !watched.is_empty(),
        detail: if heard.is_empty() {
            format!("captured on {}: nothing", watched.join(", "))
        } else {
            heard.join("; ")
        },
    }
}

/// Every attack; `unknown` is the namespace behind the port the plan does
/// not name, when verify made one.
pub fn run(lab: &Lab, unknown: Option<&str>) -> Vec<Check> {
    let script = lab.dir.join("verify-raw.py");
    if let Err(e) = std::fs::write(&script, RAW_PY) {
        return vec![Check {
            name: "layer-2 attacks".to_owned(),
            pass: false,
            detail: format!("{}: {e}", script.display()),
        }];
    }
    let described: Vec<&VmNode> = lab
        .plan
        .vms
        .iter()
        .filter(|v| matches!(v.expected, Expected::Reserved(_)))
        .collect();
    let (Some(victim), Some(vm_attacker)) = (described.first(), described.get(1)) else {
        return vec![Check {
            name: "layer-2 attacks".to_owned(),
            pass: false,
            detail: "the description has fewer than two VMs".to_owned(),
        }];
    };
    let Expected::Reserved(victim_ip) = victim.expected else {
        return Vec::new();
    };
    let mut attackers = vec![Attacker {
        label: "a VM's port",
        id: "vm",
        ns: &vm_attacker.ns,
        mac: vm_attacker.mac.to_string(),
    }];
    if let Some(pool) = lab.plan.vms.iter().find(|v| v.expected == Expected::Pool) {
        attackers.push(Attacker {
            label: "the pool client's port",
            id: "pool",
            ns: &pool.ns,
            mac: pool.mac.to_string(),
        });
    }
    if let Some(ns) = unknown {
        attackers.push(Attacker {
            label: "a port the plan does not name",
            id: "unknown",
            ns,
            mac: crate::verify::UNKNOWN_MAC.to_owned(),
        });
    }
    let mut checks = Vec::new();
    for a in &attackers {
        checks.push(spoof(lab, a, victim, victim_ip));
    }
    if lab.plan.ipv6 {
        let netvm_ip = crate::matrix6::internal_prefix(lab)
            .map(|p| lab.system.ipv6_in(&lab.system.netvm.endpoint, p));
        match (crate::ipv6::ipv6_on(&victim.ns, "eth0"), netvm_ip) {
            (Some(victim_ip), Ok(netvm_ip)) => {
                for a in &attackers {
                    checks.push(spoof6(lab, a, victim, victim_ip, netvm_ip));
                }
            }
            (victim_ip, netvm_ip) => checks.push(Check {
                name: "IPv6 spoofing".to_owned(),
                pass: false,
                detail: format!(
                    "no IPv6 address for {} ({victim_ip:?}) or the net-vm ({netvm_ip:?})",
                    victim.name
                ),
            }),
        }
    }
    for a in attackers.iter().filter(|a| a.id != "pool") {
        let victims: Vec<(&str, &str)> = lab
            .plan
            .vms
            .iter()
            .filter(|v| v.ns != a.ns)
            .map(|v| (v.name.as_str(), v.ns.as_str()))
            .collect();
        checks.push(rogue(lab, a, &victims));
    }
    let _ = std::fs::remove_file(&script);
    checks
}
