//! `netvm lab verify`: the policy oracle. Takes the expected reachability
//! from the description alone ([`crate::expect`]), measures every row of
//! it in a running lab with real packets ([`crate::measure`]) and reports
//! every difference; then attacks the layer-2 guard ([`crate::attack`]).
//!
//! Before measuring it adds what an attacker or a stranger would: a
//! bridge port the plan does not name (`vnet7`, not isolated, a client
//! behind it with a pool lease), routes on the upstream to the internal
//! subnet and to unrelated addresses via the uplink's address; and a
//! listener on every destination that binds every probed port, checked
//! locally first, so silence is proven against a positive control. All of
//! it is removed afterwards, whatever happened.
//!
//! With IPv6 on the internal network, every row between internal
//! endpoints (a VM or the pool client to a VM, the pool client or the
//! net-vm) is measured a second time over IPv6, to the target's IPv6
//! address (the description's `P::iid`, the pool client's lease), with
//! the same expected outcome: one policy for both families. With an
//! upstream that has IPv6, the upstream's rows are measured over IPv6
//! too: VMs to the upstream's IPv6 service (seen as the VM's own address
//! when the upstream delegates a prefix, as the uplink's IPv6 address
//! under NAT66), and the upstream to the uplink's IPv6 address, the
//! net-vm's and every VM's (only a forward, at the VM's own address and
//! port when routed, at the uplink's when NAT66; [`expect::expect6`]).
//! Under NAT66 the upstream gets a route to the internal prefix via the
//! uplink, as an attacker on the LAN would. Those rows report their IPv6
//! address.

use crate::expect::{self, Expectation, Outcome, Proto, SeenAs, Source, Target};
use crate::lab::{wait, Lab};
use crate::measure::{self, Measured, Probe};
use crate::netns::{self, LabError};
use crate::plan::{self, UPSTREAM_IP};
use crate::upstream::UPSTREAM_IP6;
use serde::Serialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// One shared window per batch of probes.
pub const WINDOW: Duration = Duration::from_millis(1500);
/// The unknown port's name on the bridge (not `tap-*`).
pub const UNKNOWN_PORT: &str = "vnet7";
/// The MAC behind it.
pub const UNKNOWN_MAC: &str = "02:ee:00:00:00:07";

/// A difference between the expected table and what was measured.
#[derive(Debug, Clone, Serialize)]
pub struct Difference {
    /// Who sent.
    pub source: String,
    /// Where to (its role).
    pub target: String,
    /// The address probed (an IPv6 one for a row measured over IPv6).
    pub address: Option<IpAddr>,
    /// `tcp`, `udp` or `icmp`.
    pub proto: String,
    /// Port (0 for ICMP).
    pub port: u16,
    /// What the description implies.
    pub expected: String,
    /// What happened.
    pub measured: String,
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let address = self.address.map_or("-".to_owned(), |a| a.to_string());
        let port = if self.proto == "icmp" {
            "echo".to_owned()
        } else {
            self.port.to_string()
        };
        write!(
            f,
            "{} → {} {address} {}/{port}: expected {}, measured {}",
            self.source, self.target, self.proto, self.expected, self.measured
        )
    }
}

/// A check that is not a row of the table (controls, events, attacks).
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What it checks.
    pub name: String,
    /// Whether it passed.
    pub pass: bool,
    /// What it saw.
    pub detail: String,
}

/// Everything one verify found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// The seed of the port sample.
    pub seed: u64,
    /// Rows measured.
    pub rows: usize,
    /// Rows where something must answer.
    pub allowed: usize,
    /// Rows that differ.
    pub differences: Vec<Difference>,
    /// The other checks.
    pub checks: Vec<Check>,
    /// How long it took.
    pub seconds: f64,
}

impl Report {
    /// Whether everything matched.
    pub fn pass(&self) -> bool {
        self.differences.is_empty() && self.checks.iter().all(|c| c.pass)
    }
}

/// What verify added to the lab; removed on drop.
struct Additions {
    upstream: String,
    routes: Vec<String>,
    unknown_ns: String,
    listeners: Vec<u32>,
}

impl Drop for Additions {
    fn drop(&mut self) {
        for pid in &self.listeners {
            netns::signal(*pid, nix::sys::signal::Signal::SIGKILL);
        }
        for route in &self.routes {
            let _ = netns::run_in(&self.upstream, &["ip", "route", "del", route]);
        }
        for pid in netns::pids(&self.unknown_ns) {
            netns::signal(pid, nix::sys::signal::Signal::SIGKILL);
        }
        netns::delete(&self.unknown_ns);
    }
}

/// Where each source sends from and each target is.
struct Where {
    ns: BTreeMap<Source, String>,
    own: BTreeMap<Source, Vec<IpAddr>>,
    address: BTreeMap<Target, IpAddr>,
    /// The targets' IPv6 addresses (internal endpoints; the uplink and
    /// the upstream's service with an IPv6 upstream).
    address6: BTreeMap<Target, IpAddr>,
    /// Every global IPv6 address of the net-vm's uplink.
    uplink6: Vec<IpAddr>,
}

/// The global IPv6 addresses on `dev` in `ns`.
fn addresses6_on(ns: &str, dev: &str) -> Vec<IpAddr> {
    netns::run_in(
        ns,
        &[
            "ip", "-6", "-o", "addr", "show", "dev", dev, "scope", "global",
        ],
    )
    .unwrap_or_default()
    .lines()
    .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet6").nth(1))
    .filter_map(|a| a.split('/').next()?.parse::<IpAddr>().ok())
    .collect()
}

/// Every address in `ns`: IPv4, and IPv6 of global scope.
fn addresses_in(ns: &str) -> Vec<IpAddr> {
    let mut own: Vec<IpAddr> = netns::run_in(ns, &["ip", "-4", "-o", "addr", "show"])
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet").nth(1))
        .filter_map(|a| a.split('/').next()?.parse().ok())
        .collect();
    own.extend(
        netns::run_in(ns, &["ip", "-6", "-o", "addr", "show", "scope", "global"])
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split_whitespace().skip_while(|w| *w != "inet6").nth(1))
            .filter_map(|a| a.split('/').next()?.parse::<IpAddr>().ok()),
    );
    own
}

fn uplink_address(lab: &Lab) -> Result<Ipv4Addr, LabError> {
    let uplink = netvm_plan::datapath::interfaces(&lab.system)
        .uplink
        .to_string();
    netns::ipv4_on(&lab.plan.netvm, &uplink)
        .ok_or_else(|| LabError::Lab(format!("the net-vm's uplink {uplink} has no address")))
}

/// Adds the unknown port with a client behind it that takes a pool lease.
fn add_unknown_port(lab: &Lab, ns: &str) -> Result<(), LabError> {
    let veth = plan::Veth {
        a: plan::End {
            ns: lab.plan.host.clone(),
            name: UNKNOWN_PORT.to_owned(),
            mac: None,
        },
        b: plan::End {
            ns: ns.to_owned(),
            name: "eth0".to_owned(),
            mac: UNKNOWN_MAC.parse().ok(),
        },
    };
    netns::create(ns)?;
    netns::veth(&veth)?;
    // As a VMM that knows nothing of netvm would: on the bridge, up, not
    // isolated.
    netns::run_in(
        &lab.plan.host,
        &[
            "ip",
            "link",
            "set",
            UNKNOWN_PORT,
            "master",
            &lab.plan.bridge,
            "up",
        ],
    )?;
    let said = netns::udhcpc_once(ns, 6, &["-x", "hostname:unknown-port"]);
    if netns::ipv4_on(ns, "eth0").is_none() {
        return Err(LabError::Lab(format!(
            "the unknown port's client got no lease: {}",
            said.trim()
        )));
    }
    Ok(())
}

/// The ports `target`'s listener must hold: the sample, and on a VM the
/// VM ports its forwards map the uplink scan to.
fn listener_ports(lab: &Lab, name: &str, sample: &[u16], scan: &[u16], netvm: bool) -> Vec<u16> {
    let mut ports = if netvm {
        scan.to_vec()
    } else {
        sample.to_vec()
    };
    if let Some(vm) = lab.system.vms.iter().find(|v| v.name.as_str() == name) {
        for fw in &vm.forwards {
            let (a, b) = (fw.uplink_ports.first(), fw.uplink_ports.last());
            ports.extend(
                scan.iter()
                    .chain(sample)
                    .filter(|p| a <= **p && **p <= b)
                    .map(|p| fw.vm_ports.first() + (p - a)),
            );
        }
    }
    ports.retain(|p| !expect::DHCP_PORTS.contains(p));
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Starts a listener; waits for it; the ports it could not bind.
fn start_listener(
    lab: &Lab,
    ns: &str,
    name: &str,
    ports: &[u16],
    ipv6: bool,
    pids: &mut Vec<u32>,
) -> Result<BTreeSet<(Proto, u16, bool)>, LabError> {
    let log: PathBuf = lab.dir.join(format!("verify-listen-{name}.log"));
    let _ = std::fs::remove_file(&log);
    let netvm = lab.netvm.display().to_string();
    let spec = crate::serve::ports_spec(ports);
    let mut args = vec![netvm.as_str(), "lab", "listen", name, "--ports", &spec];
    if ipv6 {
        args.push("--ipv6");
    }
    let pid = netns::daemon(ns, &args, &log)?;
    pids.push(pid);
    let line = wait(
        Duration::from_secs(10),
        &format!("the listener in {ns}"),
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.starts_with("listening ")) {
                return Some(Ok(line.to_owned()));
            }
            (!netns::alive(pid)).then(|| {
                Err(LabError::Lab(format!(
                    "the listener in {ns} stopped: {text}"
                )))
            })
        },
    )??;
    let busy = line.split_once("busy:").map_or("", |(_, b)| b);
    Ok(busy
        .split_whitespace()
        .filter_map(|b| {
            let (proto, port) = b.split_once('/')?;
            let (proto, v6) = match proto {
                "tcp" => (Proto::Tcp, false),
                "udp" => (Proto::Udp, false),
                "tcp6" => (Proto::Tcp, true),
                _ => (Proto::Udp, true),
            };
            Some((proto, port.parse().ok()?, v6))
        })
        .collect())
}

/// The positive control: every port a listener holds answers locally
/// with its name.
fn control(
    ns: &str,
    name: &str,
    ports: &[u16],
    ipv6: bool,
    busy: &BTreeSet<(Proto, u16, bool)>,
) -> Check {
    let families: &[(IpAddr, bool)] = if ipv6 {
        &[
            (IpAddr::V4(Ipv4Addr::LOCALHOST), false),
            (IpAddr::V6(std::net::Ipv6Addr::LOCALHOST), true),
        ]
    } else {
        &[(IpAddr::V4(Ipv4Addr::LOCALHOST), false)]
    };
    let probes: Vec<Probe> = families
        .iter()
        .flat_map(|(ip, v6)| {
            ports
                .iter()
                .flat_map(|p| [Proto::Tcp, Proto::Udp].map(|proto| (proto, *p, *v6)))
                .filter(|k| !busy.contains(k))
                .filter(|(_, p, _)| *p != expect::DNS_PORT)
                .map(|(proto, port, _)| Probe {
                    ip: *ip,
                    proto,
                    port,
                })
        })
        .collect();
    let got = netns::inside(ns, || measure::run(&probes, None, &[], WINDOW)).unwrap_or_default();
    let wrong: Vec<String> = probes
        .iter()
        .zip(got.iter().chain(std::iter::repeat(&Measured::Silent)))
        .filter(|(_, m)| !matches!(m, Measured::Answered { by: Some(b), .. } if b == name))
        .map(|(p, m)| format!("{} {}/{}: {m}", p.ip, p.proto, p.port))
        .take(10)
        .collect();
    Check {
        name: format!("listener {name} answers locally (positive control)"),
        pass: wrong.is_empty(),
        detail: if wrong.is_empty() {
            format!(
                "{} probes answered; held by another service: {}",
                probes.len(),
                busy.iter()
                    .map(|(p, n, v6)| format!("{p}{}/{n}", if *v6 { "6" } else { "" }))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        } else {
            format!("not answered: {}", wrong.join(", "))
        },
    }
}

/// The agent's last `last` events, through its control socket
/// (namespace labs).
pub fn events(lab: &Lab, last: usize) -> Vec<Value> {
    let request = netvm_events::control::Request::Events {
        last,
        follow: false,
        security: false,
    };
    // Read as JSON, not typed: the checks match on the wire's names, and
    // one event this build cannot read must not hide the others.
    let Ok(mut reader) = netvm_agent::control::request(&lab.control(), &request) else {
        return Vec::new();
    };
    let mut line = String::new();
    if std::io::BufRead::read_line(&mut reader, &mut line).is_err() {
        return Vec::new();
    }
    serde_json::from_str::<Value>(&line)
        .ok()
        .and_then(|v| v["events"].as_array().cloned())
        .unwrap_or_default()
}

fn matches(expected: &Outcome, m: &Measured, own: &[IpAddr], uplink: &[IpAddr]) -> bool {
    match (expected, m) {
        (Outcome::Silent, Measured::Silent) => true,
        (Outcome::Silent, _) => false,
        (Outcome::Answered { by, seen_as }, Measured::Answered { by: got, peer }) => {
            let who = by.is_none() || by == got;
            let seen = match seen_as {
                SeenAs::Any => true,
                SeenAs::Own => peer.is_some_and(|p| own.contains(&p)),
                SeenAs::Uplink => peer.is_some_and(|p| uplink.contains(&p)),
            };
            who && seen
        }
        (Outcome::Answered { .. }, _) => false,
    }
}

/// Runs the rows of `rows` (indices into `table`) from each source, the
/// sources in parallel, to the targets' IPv4 addresses (with `ipv6`
/// their IPv6 ones); what each row met.
fn measure_rows(
    table: &[Expectation],
    rows: &[usize],
    at: &Where,
    ipv6: bool,
) -> BTreeMap<usize, (Option<IpAddr>, Measured)> {
    let addresses = if ipv6 { &at.address6 } else { &at.address };
    let mut by_source: BTreeMap<&Source, Vec<usize>> = BTreeMap::new();
    for i in rows {
        by_source.entry(&table[*i].source).or_default().push(*i);
    }
    // One socket per probe in flight: every source's batches together
    // stay within the open-file limit (a large seeded system has tens of
    // thousands of rows, most from the upstream).
    let per_batch = (open_files_limit().saturating_sub(256) / by_source.len().max(1)).max(64);
    let mut out = BTreeMap::new();
    std::thread::scope(|scope| {
        let handles: Vec<_> = by_source
            .into_iter()
            .map(|(source, rows)| {
                scope.spawn(move || {
                    let ns = at.ns.get(source);
                    let local = at.own.get(source).cloned().unwrap_or_default();
                    let mut found = Vec::new();
                    let mut probes = Vec::new();
                    let mut probed = Vec::new();
                    for i in rows {
                        match addresses.get(&table[i].target) {
                            Some(ip) if ns.is_some() => {
                                probes.push(Probe {
                                    ip: *ip,
                                    proto: table[i].proto,
                                    port: table[i].port,
                                });
                                probed.push(i);
                            }
                            _ => found.push((i, (None, Measured::Silent))),
                        }
                    }
                    if let Some(ns) = ns {
                        let got = netns::inside(ns, || {
                            probes
                                .chunks(per_batch)
                                .flat_map(|batch| measure::run(batch, None, &local, WINDOW))
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_else(|e| {
                            vec![
                                Measured::Refused {
                                    error: e.to_string()
                                };
                                probes.len()
                            ]
                        });
                        for ((i, p), m) in probed.into_iter().zip(&probes).zip(got) {
                            found.push((i, (Some(p.ip), m)));
                        }
                    }
                    found
                })
            })
            .collect();
        for h in handles {
            if let Ok(found) = h.join() {
                out.extend(found);
            }
        }
    });
    out
}

/// This process's soft limit of open files (`/proc/self/limits`; 1024,
/// the usual default, when it cannot be read).
fn open_files_limit() -> usize {
    std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|limits| {
            limits
                .lines()
                .find(|l| l.starts_with("Max open files"))
                .and_then(|l| l.split_whitespace().nth(3))
                .and_then(|soft| soft.parse().ok())
        })
        .unwrap_or(1024)
}

/// Measures the whole table of `lab` (port sample from `seed`) and attacks
/// its layer-2 guard; every difference.
pub fn verify(lab: &Lab, seed: u64) -> Result<Report, LabError> {
    if lab.qemu {
        return Err(LabError::Lab(
            "verify runs on namespace labs only".to_owned(),
        ));
    }
    if !lab.plan.upstream_flavour.ipv4() {
        // Its upstream rows are written for an uplink with IPv4 (the
        // expected table has no CLAT yet); `lab test` covers this lab.
        return Err(LabError::Lab(
            "verify needs an upstream with IPv4; behind the ipv6-only upstream run `netvm lab test` (its rows 1-17 cover IPv4 through the CLAT and IPv6)".to_owned(),
        ));
    }
    let started = Instant::now();
    let system = &lab.system;
    let uplink = uplink_address(lab)?;
    let p = plan::prefix(lab.plan.id);
    let mut added = Additions {
        upstream: lab.plan.upstream.clone(),
        routes: Vec::new(),
        unknown_ns: format!("{p}u"),
        listeners: Vec::new(),
    };
    let mut checks = Vec::new();
    // A stranger's port, and an attacker's routes on the LAN.
    let unknown = match add_unknown_port(lab, &added.unknown_ns) {
        Ok(()) => true,
        Err(e) => {
            checks.push(Check {
                name: "a port the plan does not name gets a pool lease".to_owned(),
                pass: false,
                detail: e.to_string(),
            });
            false
        }
    };
    let mut routed = vec![system.network.subnet.to_string()];
    routed.extend(expect::UNRELATED.map(|a| format!("{a}/32")));
    for route in routed {
        netns::run_in(
            &lab.plan.upstream,
            &["ip", "route", "replace", &route, "via", &uplink.to_string()],
        )?;
        added.routes.push(route);
    }

    let mut at = Where {
        ns: BTreeMap::new(),
        own: BTreeMap::new(),
        address: BTreeMap::new(),
        address6: BTreeMap::new(),
        uplink6: Vec::new(),
    };
    let extra = lab
        .plan
        .vms
        .iter()
        .find(|v| v.expected == plan::Expected::Pool);
    at.ns.insert(Source::Upstream, lab.plan.upstream.clone());
    at.ns.insert(Source::Host, lab.plan.host.clone());
    for vm in &system.vms {
        if let Some(node) = lab.plan.vm(vm.name.as_str()) {
            at.ns
                .insert(Source::Vm(vm.name.to_string()), node.ns.clone());
        }
        at.address
            .insert(Target::Vm(vm.name.to_string()), vm.endpoint.ip.into());
    }
    if let Some(x) = extra {
        at.ns.insert(Source::Pool, x.ns.clone());
        if let Some(ip) = lab.address_of(&x.ns) {
            at.address.insert(Target::Pool, ip.into());
        }
    }
    if unknown {
        at.ns.insert(Source::Unknown, added.unknown_ns.clone());
        if let Some(ip) = netns::ipv4_on(&added.unknown_ns, "eth0") {
            at.address.insert(Target::Unknown, ip.into());
        }
    }
    for (source, ns) in &at.ns {
        at.own.insert(source.clone(), addresses_in(ns));
    }
    at.address
        .insert(Target::NetVm, system.netvm.endpoint.ip.into());
    at.address.insert(Target::Uplink, uplink.into());
    if let Some(h) = &system.host.endpoint {
        at.address.insert(Target::Host, h.ip.into());
    }
    at.address
        .insert(Target::Network, system.network.subnet.network().into());
    at.address
        .insert(Target::Broadcast, system.network.subnet.broadcast().into());
    for a in expect::UNRELATED {
        at.address.insert(Target::Unrelated(a), a.into());
    }
    at.address
        .insert(Target::UpstreamService, UPSTREAM_IP.into());
    // IPv6: the internal endpoints at their addresses in P; the uplink's
    // and the upstream's service with an IPv6 upstream.
    let flavour = lab.plan.upstream_flavour;
    let up6 = lab.plan.ipv6 && flavour.ipv6();
    if up6 {
        let dev = netvm_plan::datapath::interfaces(system).uplink.to_string();
        at.uplink6 = addresses6_on(&lab.plan.netvm, &dev);
        if let Some(ip) = at.uplink6.first() {
            at.address6.insert(Target::Uplink, *ip);
        }
        at.address6
            .insert(Target::UpstreamService, UPSTREAM_IP6.into());
    }
    if lab.plan.ipv6 {
        match crate::matrix6::internal_prefix(lab) {
            Ok(prefix) => {
                // NAT66: the LAN's attacker routes the ULA to the uplink
                // (a delegated prefix is routed already).
                if let (true, false, Some(via)) = (up6, flavour.delegates(), at.uplink6.first()) {
                    let route = prefix.to_string();
                    netns::run_in(
                        &lab.plan.upstream,
                        &[
                            "ip",
                            "-6",
                            "route",
                            "replace",
                            &route,
                            "via",
                            &via.to_string(),
                        ],
                    )?;
                    added.routes.push(route);
                }
                at.address6.insert(
                    Target::NetVm,
                    system.ipv6_in(&system.netvm.endpoint, prefix).into(),
                );
                for vm in &system.vms {
                    at.address6.insert(
                        Target::Vm(vm.name.to_string()),
                        system.ipv6_in(&vm.endpoint, prefix).into(),
                    );
                }
                if let Some(ip) = extra.and_then(|x| crate::ipv6::ipv6_on(&x.ns, "eth0")) {
                    at.address6.insert(Target::Pool, ip.into());
                }
            }
            Err(e) => checks.push(Check {
                name: "the internal network has its IPv6 prefix".to_owned(),
                pass: false,
                detail: e,
            }),
        }
    }

    // A listener on every destination, checked locally first.
    let sample = expect::sample_ports(system, seed);
    let scan = expect::uplink_scan_ports(&sample);
    // (namespace, name, the net-vm, over IPv6 too)
    let six = lab.plan.ipv6;
    let mut listeners: Vec<(String, String, bool, bool)> = vec![
        (
            lab.plan.netvm.clone(),
            system.netvm.name.to_string(),
            true,
            six,
        ),
        (lab.plan.host.clone(), expect::HOST.to_owned(), false, false),
        (
            lab.plan.upstream.clone(),
            expect::UPSTREAM.to_owned(),
            false,
            up6,
        ),
    ];
    for node in &lab.plan.vms {
        listeners.push((node.ns.clone(), node.name.clone(), false, six));
    }
    if unknown {
        listeners.push((
            added.unknown_ns.clone(),
            expect::UNKNOWN.to_owned(),
            false,
            false,
        ));
    }
    for (ns, name, netvm, ipv6) in &listeners {
        let ports = listener_ports(lab, name, &sample, &scan, *netvm);
        let busy = start_listener(lab, ns, name, &ports, *ipv6, &mut added.listeners)?;
        checks.push(control(ns, name, &ports, *ipv6, &busy));
    }

    let table = expect::table(system, seed);
    // Phase 1: the allowed VM-to-VM flows, and one forbidden one per VM,
    // before anything else can use up the agent's event budget.
    let mut first: Vec<usize> = table
        .iter()
        .enumerate()
        .filter(|(_, r)| r.flow.is_some())
        .map(|(i, _)| i)
        .collect();
    let mut drops: Vec<usize> = Vec::new();
    for vm in &system.vms {
        let source = Source::Vm(vm.name.to_string());
        if let Some((i, _)) = table.iter().enumerate().find(|(_, r)| {
            r.source == source
                && matches!(r.target, Target::Vm(_))
                && r.proto == Proto::Tcp
                && !r.allowed()
        }) {
            drops.push(i);
        }
    }
    first.extend(&drops);
    let mut measured = measure_rows(&table, &first, &at, false);
    checks.push(event_check(lab, &table, &first, &drops, &measured));
    // Phase 2: everything else.
    let rest: Vec<usize> = (0..table.len())
        .filter(|i| !measured.contains_key(i))
        .collect();
    measured.extend(measure_rows(&table, &rest, &at, false));
    // A flow that must work but stayed silent is probed once more, alone
    // with the other misses: on a loaded machine one answer can miss its
    // window. Something that answered where silence is due is never
    // probed again: that difference stands.
    let missed: Vec<usize> = measured
        .iter()
        .filter(|(i, (address, m))| {
            let row = &table[**i];
            row.allowed() && address.is_some() && matches!(m, Measured::Silent)
        })
        .map(|(i, _)| *i)
        .collect();
    if !missed.is_empty() {
        measured.extend(measure_rows(&table, &missed, &at, false));
    }
    // Phase 3: the rows between internal endpoints again, over IPv6.
    let rows6: Vec<usize> = table
        .iter()
        .enumerate()
        .filter(|(_, r)| over_ipv6(r, &at))
        .map(|(i, _)| i)
        .collect();
    let delegates = flavour.delegates();
    let expected6: BTreeMap<usize, Outcome> = rows6
        .iter()
        .map(|i| (*i, expect::expect6(system, delegates, &table[*i])))
        .collect();
    let mut measured6 = measure_rows(&table, &rows6, &at, true);
    let missed6: Vec<usize> = measured6
        .iter()
        .filter(|(i, (_, m))| {
            expected6.get(i).is_some_and(|o| *o != Outcome::Silent) && matches!(m, Measured::Silent)
        })
        .map(|(i, _)| *i)
        .collect();
    if !missed6.is_empty() {
        measured6.extend(measure_rows(&table, &missed6, &at, true));
    }

    let mut differences = Vec::new();
    let empty = Vec::new();
    for (i, row) in table.iter().enumerate() {
        let Some((address, m)) = measured.get(&i) else {
            continue;
        };
        let own = at.own.get(&row.source).unwrap_or(&empty);
        if address.is_none() && row.allowed() {
            differences.push(difference(
                row,
                &row.outcome,
                None,
                "no address to probe".to_owned(),
            ));
        } else if address.is_some() && !matches(&row.outcome, m, own, &[uplink.into()]) {
            differences.push(difference(row, &row.outcome, *address, m.to_string()));
        }
    }
    for (i, (address, m)) in &measured6 {
        let (row, expected) = (&table[*i], &expected6[i]);
        let own = at.own.get(&row.source).unwrap_or(&empty);
        if !matches(expected, m, own, &at.uplink6) {
            differences.push(difference(row, expected, *address, m.to_string()));
        }
    }
    // Every destination that must answer something did, at least once.
    let mut works: BTreeMap<&Target, bool> = BTreeMap::new();
    for (i, row) in table.iter().enumerate().filter(|(_, r)| r.allowed()) {
        let ok = measured.get(&i).is_some_and(|(_, m)| {
            matches(
                &row.outcome,
                m,
                at.own.get(&row.source).unwrap_or(&empty),
                &[uplink.into()],
            )
        });
        *works.entry(&row.target).or_default() |= ok;
    }
    let dead: Vec<String> = works
        .iter()
        .filter(|(_, ok)| !**ok)
        .map(|(t, _)| t.to_string())
        .collect();
    checks.push(Check {
        name: "every destination answers at least one allowed flow".to_owned(),
        pass: dead.is_empty(),
        detail: if dead.is_empty() {
            format!("{} destinations", works.len())
        } else {
            format!("no allowed flow worked to {}", dead.join(", "))
        },
    });

    // Attacks on the layer-2 guard.
    checks.extend(crate::attack::run(
        lab,
        unknown.then_some(added.unknown_ns.as_str()),
    ));

    drop(added);
    Ok(Report {
        seed,
        rows: table.len() + rows6.len(),
        allowed: table.iter().filter(|r| r.allowed()).count()
            + expected6
                .values()
                .filter(|o| **o != Outcome::Silent)
                .count(),
        differences,
        checks,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Whether `row` is measured over IPv6 too: from a VM or the pool client
/// to an internal endpoint (a VM, the pool client, the net-vm) or the
/// upstream's service; from the upstream to the uplink, the net-vm or a
/// VM. The source must have a global IPv6 address and the target an IPv6
/// address.
fn over_ipv6(row: &Expectation, at: &Where) -> bool {
    let pair = match row.source {
        Source::Vm(_) | Source::Pool => matches!(
            row.target,
            Target::Vm(_) | Target::Pool | Target::NetVm | Target::UpstreamService
        ),
        Source::Upstream => matches!(row.target, Target::Uplink | Target::Vm(_) | Target::NetVm),
        Source::Unknown | Source::Host => false,
    };
    let source = at
        .own
        .get(&row.source)
        .is_some_and(|own| own.iter().any(IpAddr::is_ipv6));
    pair && source && at.address6.contains_key(&row.target)
}

fn difference(
    row: &Expectation,
    expected: &Outcome,
    address: Option<IpAddr>,
    measured: String,
) -> Difference {
    Difference {
        source: row.source.to_string(),
        target: row.target.to_string(),
        address,
        proto: row.proto.to_string(),
        port: row.port,
        expected: expected.to_string(),
        measured,
    }
}

/// Every allowed VM-to-VM flow that got through has its `flow_allowed`;
/// every sampled forbidden one its `policy_drop`.
fn event_check(
    lab: &Lab,
    table: &[Expectation],
    rows: &[usize],
    drops: &[usize],
    measured: &BTreeMap<usize, (Option<IpAddr>, Measured)>,
) -> Check {
    let mut wanted: Vec<(&str, String, String, String, u16)> = Vec::new();
    for i in rows {
        let row = &table[*i];
        let Some((_, m)) = measured.get(i) else {
            continue;
        };
        if let Some((from, to, port)) = &row.flow {
            if matches!(m, Measured::Answered { .. }) {
                wanted.push((
                    "flow_allowed",
                    from.clone(),
                    to.clone(),
                    row.proto.to_string(),
                    *port,
                ));
            }
        } else if drops.contains(i) {
            if let (Source::Vm(from), Target::Vm(to)) = (&row.source, &row.target) {
                wanted.push((
                    "policy_drop",
                    from.clone(),
                    to.clone(),
                    row.proto.to_string(),
                    row.port,
                ));
            }
        }
    }
    let missing = |events: &[Value]| -> Vec<String> {
        wanted
            .iter()
            .filter(|(kind, from, to, proto, port)| {
                !events.iter().any(|e| {
                    e["event"] == *kind
                        && e["from_vm"] == json!(from)
                        && e["to_vm"] == json!(to)
                        && e["proto"] == json!(proto)
                        && e["port"] == json!(port)
                })
            })
            .map(|(kind, from, to, proto, port)| format!("{kind} {from} → {to} {proto}/{port}"))
            .collect()
    };
    // Security events pass the agent's rate limit (20/s, burst 100);
    // what it refuses it counts and reports (`events_suppressed`). A
    // large seeded system asks for more than the burst at once: those
    // may be missing only as far as the agent counted them.
    let suppressed = |events: &[Value]| -> u64 {
        events
            .iter()
            .filter(|e| e["event"] == "events_suppressed")
            .filter_map(|e| e["count"].as_u64())
            .sum()
    };
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut seen = events(lab, 100_000);
    let mut left = missing(&seen);
    while left.len() as u64 > suppressed(&seen) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(300));
        seen = events(lab, 100_000);
        left = missing(&seen);
    }
    let counted = suppressed(&seen);
    Check {
        name: "the agent reports allowed and refused VM-to-VM flows".to_owned(),
        pass: left.len() as u64 <= counted,
        detail: if left.is_empty() {
            format!("{} events found", wanted.len())
        } else if left.len() as u64 <= counted {
            format!(
                "{} of {} events found; the other {} within the {counted} the agent's rate limit refused and counted (events_suppressed)",
                wanted.len() - left.len(),
                wanted.len(),
                left.len()
            )
        } else {
            format!(
                "{} of {} missing, {counted} counted as suppressed: {}",
                left.len(),
                wanted.len(),
                left.join("; ")
            )
        },
    }
}
