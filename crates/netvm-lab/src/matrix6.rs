//! The acceptance matrix's IPv6 rows (`netvm lab test`, namespaces
//! mode, when the internal network has IPv6): every VM's DHCPv6 address,
//! IPv6 to the Internet and VM to VM under the same policy as IPv4, port
//! forwards over IPv6, spoofed IPv6 sources and a rogue router
//! advertisement, and IPv4 through the CLAT when the uplink is IPv6-only.
//! Each row says what it saw; a row that cannot apply to the upstream
//! flavour says so and passes.

use crate::lab::{wait, Lab};
use crate::matrix::{guard_counter, lab_error, two_vms, PROBE};
use crate::netns;
use crate::plan::{VmNode, UPSTREAM_HTTP_PORT, VM_PORT};
use crate::probe::{self, Reach};
use netvm_description::values::Ipv6Cidr;
use netvm_description::IPV6_POOL_IID_BASE;
use std::net::{Ipv6Addr, SocketAddr};
use std::time::Duration;

/// What each IPv6 row checks, numbered from [`FIRST_ROW`].
pub const ROWS: [&str; 7] = [
    "IPv6 addresses: reservations and the pool (DHCPv6)",
    "IPv6 to the Internet follows `internet`",
    "IPv6 VM to VM follows the policy",
    "IPv6 port forward, and nothing else, from the upstream",
    "spoofed IPv6 sources get nothing through",
    "a rogue router advertisement is not heard",
    "IPv4 through the CLAT on an IPv6-only uplink",
];

/// The number of the first IPv6 row (after the IPv4 rows and the
/// passthrough lab's row 10).
pub const FIRST_ROW: u8 = 11;

/// Runs the IPv6 rows, in order (the last ones disturb the lab least).
pub fn run(lab: &Lab) -> Vec<crate::matrix::Check> {
    let results = [
        addresses(lab),
        internet(lab),
        policy(lab),
        forward(lab),
        spoofing(lab),
        rogue_ra(lab),
        clat(lab),
    ];
    (FIRST_ROW..)
        .zip(ROWS)
        .zip(results)
        .map(|((row, name), result)| {
            let (pass, detail) = match result {
                Ok(detail) => (true, detail),
                Err(detail) => (false, detail),
            };
            crate::matrix::Check {
                row,
                name,
                pass,
                detail,
            }
        })
        .collect()
}

/// The internal /64 the net-vm uses now (its own address on the internal
/// interface). With an upstream that delegates, the one from the
/// delegated prefix: waited for (up to 20 s), as an agent that just
/// started (row 8) numbers the network in its ULA until the uplink's
/// DHCPv6 client has its prefix again.
pub fn internal_prefix(lab: &Lab) -> Result<Ipv6Cidr, String> {
    let internal = netvm_plan::datapath::interfaces(&lab.system).internal;
    let (pool, len) = crate::upstream::PD_POOL;
    let delegated = Ipv6Cidr::new(pool, len).ok_or("bad PD pool")?;
    let wanted =
        |p: &Ipv6Cidr| !lab.plan.upstream_flavour.delegates() || delegated.contains(p.addr());
    let found = wait(Duration::from_secs(20), "the internal IPv6 prefix", || {
        let own = crate::ipv6::ipv6_on(&lab.plan.netvm, internal.as_str())?;
        Ipv6Cidr::new(own, 64).map(|c| c.truncated()).filter(wanted)
    });
    found.map_err(|_| {
        "the net-vm has no (or not the expected) IPv6 prefix on its internal interface".to_owned()
    })
}

/// The net-vm's own internal IPv6 address.
fn netvm_address(lab: &Lab) -> Result<Ipv6Addr, String> {
    let prefix = internal_prefix(lab)?;
    Ok(lab.system.ipv6_in(&lab.system.netvm.endpoint, prefix))
}

/// `vm`'s IPv6 address as its DHCPv6 client put it on.
fn address_of(vm: &VmNode) -> Result<Ipv6Addr, String> {
    crate::ipv6::ipv6_on(&vm.ns, "eth0").ok_or_else(|| format!("{} has no IPv6 address", vm.name))
}

/// The described endpoint of VM `name`.
fn endpoint<'a>(lab: &'a Lab, name: &str) -> Option<&'a netvm_description::Endpoint> {
    lab.system
        .vms
        .iter()
        .find(|v| v.name.as_str() == name)
        .map(|v| &v.endpoint)
}

fn addresses(lab: &Lab) -> Result<String, String> {
    let prefix = internal_prefix(lab)?;
    let mut seen = Vec::new();
    for vm in &lab.plan.vms {
        let got = address_of(vm)?;
        let want = endpoint(lab, &vm.name).map(|e| lab.system.ipv6_in(e, prefix));
        let ok = match want {
            Some(want) => got == want,
            None => prefix.contains(got) && prefix.host_part(got) >= IPV6_POOL_IID_BASE,
        };
        if !ok {
            return Err(format!(
                "{} holds {got}, expected {}",
                vm.name,
                want.map_or_else(|| format!("a pool address in {prefix}"), |w| w.to_string())
            ));
        }
        seen.push(format!(
            "{} {got}{}",
            vm.name,
            if want.is_some() { "" } else { " (pool)" }
        ));
    }
    Ok(format!("in {prefix}: {}", seen.join(", ")))
}

fn internet(lab: &Lab) -> Result<String, String> {
    if !lab.plan.upstream_flavour.ipv6() {
        return Ok("the upstream has no IPv6: nothing to reach".to_owned());
    }
    let http = SocketAddr::from((crate::upstream::UPSTREAM_IP6, UPSTREAM_HTTP_PORT));
    let mut seen = Vec::new();
    for vm in &lab.plan.vms {
        let body =
            netns::inside(&vm.ns, || probe::http_get(http, PROBE).ok()).map_err(lab_error)?;
        let as_ = body.and_then(|b| b.rsplit(' ').next().map(str::to_owned));
        match (vm.internet, as_) {
            (true, Some(a)) => seen.push(format!("{} out as {a}", vm.name)),
            (true, None) => {
                return Err(format!(
                    "{} may reach the Internet but did not over IPv6",
                    vm.name
                ))
            }
            (false, Some(a)) => {
                return Err(format!(
                    "{} may not reach the Internet but did over IPv6 (as {a})",
                    vm.name
                ))
            }
            (false, None) => seen.push(format!("{} no Internet (as described)", vm.name)),
        }
    }
    Ok(seen.join(", "))
}

fn policy(lab: &Lab) -> Result<String, String> {
    let prefix = internal_prefix(lab)?;
    // The same pairs as row 4, over IPv6.
    let (allowed, forbidden) = crate::matrix::policy_pairs(lab)?;
    let connects = |from: &VmNode, to: &VmNode, port: u16| -> Result<bool, String> {
        let e = endpoint(lab, &to.name).ok_or("not described")?;
        let ip = lab.system.ipv6_in(e, prefix);
        let reach = netns::inside(&from.ns, || {
            probe::connect(SocketAddr::from((ip, port)), PROBE)
        })
        .map_err(lab_error)?;
        Ok(reach == Reach::Open)
    };
    let (from, to, port) = allowed;
    if !connects(from, to, port)? {
        return Err(format!(
            "{} -> {}:{port} over IPv6 is allowed but did not connect",
            from.name, to.name
        ));
    }
    let (a, b) = forbidden;
    if connects(a, b, VM_PORT)? {
        return Err(format!(
            "{} -> {}:{VM_PORT} over IPv6 is forbidden but connected",
            a.name, b.name
        ));
    }
    Ok(format!(
        "{} -> {}:{port} connects; {} -> {}:{VM_PORT} does not",
        from.name, to.name, a.name, b.name
    ))
}

fn forward(lab: &Lab) -> Result<String, String> {
    if !lab.plan.upstream_flavour.ipv6() {
        return Ok("the upstream has no IPv6: no forward over IPv6 to try".to_owned());
    }
    let Some(vm) = lab.system.vms.iter().find(|v| !v.forwards.is_empty()) else {
        return Ok("the description forwards no port".to_owned());
    };
    let f = &vm.forwards[0];
    let prefix = internal_prefix(lab)?;
    let uplink = netvm_plan::datapath::interfaces(&lab.system).uplink;
    let routed = lab.plan.upstream_flavour.delegates();
    // Routed: the VM's own address and port; NAT66: the uplink's address
    // and the uplink port.
    let (target, port) = if routed {
        (lab.system.ipv6_in(&vm.endpoint, prefix), f.vm_ports.first())
    } else {
        let up = crate::ipv6::ipv6_on(&lab.plan.netvm, uplink.as_str())
            .ok_or("the net-vm's uplink has no IPv6 address")?;
        (up, f.uplink_ports.first())
    };
    let other = if port == 22 { 23 } else { 22 };
    let (open, closed) = netns::inside(&lab.plan.upstream, || {
        (
            probe::connect(SocketAddr::from((target, port)), PROBE),
            probe::connect(SocketAddr::from((target, other)), PROBE),
        )
    })
    .map_err(lab_error)?;
    if open != Reach::Open {
        return Err(format!(
            "the upstream could not reach the forward [{target}]:{port} ({open:?})"
        ));
    }
    if closed != Reach::Silent {
        return Err(format!(
            "the upstream got an answer from [{target}]:{other}, which is not forwarded ({closed:?})"
        ));
    }
    Ok(format!(
        "{}: the upstream reaches {} [{target}]:{port} ({}), and [{target}]:{other} is silent",
        vm.name,
        if routed {
            "the VM itself at"
        } else {
            "the uplink's"
        },
        if routed { "routed" } else { "NAT66" }
    ))
}

/// Row 3 on an uplink without IPv4: the upstream connects to every TCP
/// port from 1 to 1024 and the forwarded ones on the net-vm's uplink
/// IPv6 address; only the forwards answer.
pub(crate) fn upstream_scan6(lab: &Lab) -> Result<String, String> {
    let uplink = netvm_plan::datapath::interfaces(&lab.system).uplink;
    let target = crate::ipv6::ipv6_on(&lab.plan.netvm, uplink.as_str())
        .ok_or("the net-vm's uplink has no IPv6 address")?;
    let forwards: Vec<u16> = lab
        .system
        .vms
        .iter()
        .flat_map(|v| v.forwards.iter().map(|f| f.uplink_ports.first()))
        .collect();
    let mut ports: Vec<u16> = (1..=1024).collect();
    ports.extend(&forwards);
    let answered: Vec<(u16, Reach)> = netns::inside(&lab.plan.upstream, || {
        let mut found = Vec::new();
        for chunk in ports.chunks(64) {
            let got: Vec<(u16, Reach)> = std::thread::scope(|scope| {
                let handles: Vec<_> = chunk
                    .iter()
                    .map(|p| {
                        let p = *p;
                        scope.spawn(move || {
                            (p, probe::connect(SocketAddr::from((target, p)), PROBE))
                        })
                    })
                    .collect();
                handles.into_iter().filter_map(|h| h.join().ok()).collect()
            });
            found.extend(got.into_iter().filter(|(_, r)| *r != Reach::Silent));
        }
        found
    })
    .map_err(lab_error)?;
    let strays: Vec<String> = answered
        .iter()
        .filter(|(p, _)| !forwards.contains(p))
        .map(|(p, r)| format!("{p} ({r:?})"))
        .collect();
    if !strays.is_empty() {
        return Err(format!(
            "the upstream got answers from [{target}] on {}",
            strays.join(", ")
        ));
    }
    let open: Vec<u16> = answered
        .iter()
        .filter(|(_, r)| *r == Reach::Open)
        .map(|(p, _)| *p)
        .collect();
    if forwards.iter().any(|p| !open.contains(p)) {
        return Err(format!(
            "the forwards {forwards:?} on [{target}] did not all connect (open: {open:?})"
        ));
    }
    Ok(format!(
        "no IPv4 on the uplink: {} TCP ports on its IPv6 address [{target}] scanned: silent but the forwards {forwards:?}",
        ports.len()
    ))
}

fn spoofing(lab: &Lab) -> Result<String, String> {
    let (victim, attacker) = two_vms(lab)?;
    let victim_ip = address_of(victim)?;
    let dns = SocketAddr::from((netvm_address(lab)?, 53));
    let before = guard_counter(lab, &attacker.name);
    let ns = &attacker.ns;
    let cidr = format!("{victim_ip}/128");
    netns::run_in(
        ns,
        &["ip", "-6", "addr", "add", &cidr, "dev", "eth0", "nodad"],
    )
    .map_err(lab_error)?;
    let sent = netns::inside(ns, || -> std::io::Result<()> {
        let socket = std::net::UdpSocket::bind((victim_ip, 0))?;
        for _ in 0..10 {
            socket.send_to(b"spoofed", dns)?;
        }
        Ok(())
    })
    .map_err(lab_error);
    let _ = netns::run_in(ns, &["ip", "-6", "addr", "del", &cidr, "dev", "eth0"]);
    sent?.map_err(|e| format!("cannot send from {victim_ip} in {ns}: {e}"))?;
    let dropped = guard_counter(lab, &attacker.name).saturating_sub(before);
    if dropped < 10 {
        return Err(format!(
            "the host's guard counted {dropped} of 10 datagrams {} sent as {victim_ip}",
            attacker.name
        ));
    }
    Ok(format!(
        "{} sent 10 datagrams as {} ({victim_ip}); the host's guard dropped and counted {dropped}",
        attacker.name, victim.name
    ))
}

/// radvd's configuration for a rogue router on `eth0`.
const ROGUE_RADVD: &str = "interface eth0 {
    AdvSendAdvert on;
    MinRtrAdvInterval 3;
    MaxRtrAdvInterval 4;
    AdvDefaultLifetime 1800;
    prefix 2001:db8:bad::/64 { AdvOnLink on; AdvAutonomous on; };
};
";

fn rogue_ra(lab: &Lab) -> Result<String, String> {
    let (victim, attacker) = two_vms(lab)?;
    let conf = lab.dir.join("rogue-radvd.conf");
    std::fs::write(&conf, ROGUE_RADVD).map_err(|e| e.to_string())?;
    let pid_file = lab.dir.join("rogue-radvd.pid");
    let before = guard_counter(lab, &attacker.name);
    let pid = netns::daemon(
        &attacker.ns,
        &[
            "radvd",
            "-n",
            "-C",
            &conf.display().to_string(),
            "-p",
            &pid_file.display().to_string(),
        ],
        &lab.dir.join("rogue-radvd.log"),
    )
    .map_err(lab_error)?;
    // radvd sends three initial advertisements at once and then every
    // 3-4 s: give the guard time to see some.
    let counted = wait(Duration::from_secs(12), "rogue RAs counted", || {
        (guard_counter(lab, &attacker.name) > before).then_some(())
    });
    netns::signal(pid, nix::sys::signal::Signal::SIGTERM);
    std::thread::sleep(Duration::from_millis(300));
    netns::signal(pid, nix::sys::signal::Signal::SIGKILL);
    let routes = netns::output_in(&victim.ns, &["ip", "-6", "route"]);
    let addrs = netns::output_in(&victim.ns, &["ip", "-6", "addr"]);
    if routes.contains("2001:db8:bad") || addrs.contains("2001:db8:bad") {
        return Err(format!(
            "{} took the rogue router's prefix: {routes}",
            victim.name
        ));
    }
    let attacker_ll = netns::output_in(
        &attacker.ns,
        &["ip", "-6", "addr", "show", "dev", "eth0", "scope", "link"],
    );
    let rogue = attacker_ll
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or("fe80::?")
        .to_owned();
    if routes.contains(&format!("via {rogue} ")) {
        return Err(format!(
            "{} routes through the rogue router {rogue}",
            victim.name
        ));
    }
    counted.map_err(lab_error)?;
    let dropped = guard_counter(lab, &attacker.name).saturating_sub(before);
    Ok(format!(
        "radvd in {} advertised 2001:db8:bad::/64 from {rogue}: {} has no such route or address, the host's guard dropped and counted {dropped}",
        attacker.name, victim.name
    ))
}

fn clat(lab: &Lab) -> Result<String, String> {
    if !lab.plan.upstream_flavour.nat64() {
        return Ok("the uplink has IPv4 (or no NAT64): no CLAT runs".to_owned());
    }
    let http = SocketAddr::from((crate::upstream::SERVICE_IP, UPSTREAM_HTTP_PORT));
    let mut seen = Vec::new();
    for vm in &lab.plan.vms {
        let body =
            netns::inside(&vm.ns, || probe::http_get(http, PROBE).ok()).map_err(lab_error)?;
        let as_ = body.and_then(|b| b.rsplit(' ').next().map(str::to_owned));
        match (vm.internet, as_) {
            (true, Some(a)) => seen.push(format!(
                "{} reached {} as {a}",
                vm.name,
                crate::upstream::SERVICE_IP
            )),
            (true, None) => {
                return Err(format!(
                    "{} may reach the Internet but not the IPv4-only service through the CLAT",
                    vm.name
                ))
            }
            (false, Some(_)) => {
                return Err(format!(
                    "{} may not reach the Internet but did through the CLAT",
                    vm.name
                ))
            }
            (false, None) => seen.push(format!("{} no Internet (as described)", vm.name)),
        }
    }
    Ok(seen.join(", "))
}
