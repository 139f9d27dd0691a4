//! What `netvm lab up` prints: per VM its MAC, leased address, DNS name
//! (resolved from the VM itself through the net-vm) and whether it
//! reaches the upstream's HTTP service (and as which address, i.e.
//! through NAT); a text picture of the topology, or Graphviz `dot`.
//! [`observe`] probes; the rendering functions are pure.

use crate::lab::Lab;
use crate::netns::{self, LabError};
use crate::plan::{Expected, LabPlan, UPSTREAM_HTTP_PORT, UPSTREAM_IP};
use crate::probe;
use std::fmt::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

/// One VM as observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    /// Its name.
    pub name: String,
    /// Its MAC.
    pub mac: String,
    /// The address it holds.
    pub address: Option<Ipv4Addr>,
    /// Where the address should come from.
    pub expected: Expected,
    /// Its DNS name and whether it resolved to its address.
    pub name_resolves: Option<(String, bool)>,
    /// The address the upstream saw its HTTP request come from, if it
    /// got through (behind an IPv6-only uplink: through the CLAT to the
    /// IPv4-only service).
    pub internet_as: Option<String>,
    /// Its IPv6 address (from DHCPv6), if the network has IPv6.
    pub address6: Option<std::net::Ipv6Addr>,
    /// The address the upstream saw its HTTP request over IPv6 come from,
    /// if the upstream has IPv6 and it got through.
    pub internet6_as: Option<String>,
}

/// Probes every VM.
pub fn observe(lab: &Lab) -> Result<Vec<Observed>, LabError> {
    let mut rows = Vec::new();
    let http = SocketAddr::from((lab.plan.upstream_flavour.http_ipv4(), UPSTREAM_HTTP_PORT));
    if lab.qemu {
        return Ok(from_consoles(lab));
    }
    for vm in &lab.plan.vms {
        let address = lab.address_of(&vm.ns);
        let server = lab.plan.netvm_ip;
        let fqdn = vm.fqdn.clone();
        let http6 = lab
            .plan
            .upstream_flavour
            .ipv6()
            .then(|| SocketAddr::from((crate::upstream::UPSTREAM_IP6, UPSTREAM_HTTP_PORT)));
        let (resolved, body, body6) = netns::inside(&vm.ns, || {
            let resolved = fqdn
                .as_deref()
                .map(|n| probe::resolve(server, n, Duration::from_secs(2)));
            let body6 = http6.and_then(|a| probe::http_get(a, Duration::from_secs(2)).ok());
            (
                resolved,
                probe::http_get(http, Duration::from_secs(2)).ok(),
                body6,
            )
        })?;
        let address6 = crate::ipv6::ipv6_on(&vm.ns, "eth0");
        let name_resolves = fqdn.map(|n| {
            let ok = resolved
                .as_ref()
                .is_some_and(|r| address.is_some_and(|a| r.contains(&a)));
            (n, ok)
        });
        let internet_as = body.and_then(|b| b.rsplit(' ').next().map(str::to_owned));
        let internet6_as = body6.and_then(|b| b.rsplit(' ').next().map(str::to_owned));
        rows.push(Observed {
            name: vm.name.clone(),
            mac: vm.mac.to_string(),
            address,
            expected: vm.expected,
            name_resolves,
            internet_as,
            address6,
            internet6_as,
        });
    }
    Ok(rows)
}

/// QEMU mode: what each VM reported on its console (it checks its own
/// name and the upstream once leased).
fn from_consoles(lab: &Lab) -> Vec<Observed> {
    lab.plan
        .vms
        .iter()
        .map(|vm| {
            let address = lab.vm_address(vm);
            let dns = crate::qemu::report(lab, &vm.name, "dns");
            let name_resolves = vm.fqdn.clone().map(|n| {
                let found = dns
                    .as_deref()
                    .and_then(|d| d.rsplit(' ').next())
                    .and_then(|a| a.parse::<Ipv4Addr>().ok());
                (n, found.is_some() && found == address)
            });
            let internet_as = crate::qemu::report(lab, &vm.name, "internet")
                .filter(|b| b.contains(" saw "))
                .and_then(|b| b.rsplit(' ').next().map(str::to_owned));
            Observed {
                name: vm.name.clone(),
                mac: vm.mac.to_string(),
                address,
                expected: vm.expected,
                name_resolves,
                internet_as,
                address6: None,
                internet6_as: None,
            }
        })
        .collect()
}

/// The table.
pub fn table(rows: &[Observed]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<13} {:<18} {:<27} {:<22} INTERNET",
        "VM", "MAC", "LEASED ADDRESS", "DNS NAME"
    );
    for r in rows {
        let address = match (r.address, r.expected) {
            (Some(a), Expected::Reserved(want)) if a == want => format!("{a} (reserved)"),
            (Some(a), Expected::Reserved(want)) => format!("{a} (NOT {want})"),
            (Some(a), Expected::Pool) => format!("{a} (pool)"),
            (None, _) => "none".to_owned(),
        };
        let name = match &r.name_resolves {
            Some((n, true)) => n.clone(),
            Some((n, false)) => format!("{n} (does not resolve)"),
            None => "- (not described)".to_owned(),
        };
        let internet = match &r.internet_as {
            Some(seen) => format!("yes, seen as {seen}"),
            None => "no".to_owned(),
        };
        let _ = writeln!(
            out,
            "{:<13} {:<18} {:<27} {:<22} {}",
            r.name, r.mac, address, name, internet
        );
    }
    if rows.iter().any(|r| r.address6.is_some()) {
        let _ = writeln!(
            out,
            "\n{:<13} {:<30} INTERNET OVER IPV6",
            "VM", "IPV6 ADDRESS (DHCPV6)"
        );
        for r in rows {
            let address6 = r
                .address6
                .map_or_else(|| "none".to_owned(), |a| a.to_string());
            let internet6 = match &r.internet6_as {
                Some(seen) => format!("yes, seen as {seen}"),
                None => "no".to_owned(),
            };
            let _ = writeln!(out, "{:<13} {:<30} {}", r.name, address6, internet6);
        }
    }
    out
}

/// What the lab's machines are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Machines {
    /// Everything is a network namespace.
    Namespaces,
    /// The net-vm and the VMs are QEMU VMs; the host is a namespace.
    Qemu,
    /// The host is a QEMU VM passing its NIC (PCI, or with `usb` a USB
    /// NIC) to a nested QEMU Net VM; the VMs are namespaces of the host
    /// VM.
    Passthrough {
        /// Whether the NIC is a USB one.
        usb: bool,
    },
}

impl Machines {
    /// What `lab` is made of.
    pub fn of(lab: &crate::lab::Lab) -> Machines {
        match (lab.passthrough, lab.qemu) {
            (true, _) => Machines::Passthrough {
                usb: matches!(
                    lab.system.netvm.uplink().device,
                    netvm_description::UplinkDevice::Usb(_)
                ),
            },
            (false, true) => Machines::Qemu,
            (false, false) => Machines::Namespaces,
        }
    }
}

/// The topology as text.
pub fn picture(plan: &LabPlan, rows: &[Observed], machines: Machines) -> String {
    let mut out = String::new();
    let dev = plan.host_uplink.is_some();
    let _ = writeln!(
        out,
        "upstream [{}]  {}",
        plan.upstream,
        plan.upstream_flavour.summary()
    );
    if let Some(svc) = &plan.upstream_service {
        let _ = writeln!(
            out,
            "  (the IPv4-only service [{svc}] {}, behind the NAT64)",
            crate::upstream::SERVICE_IP
        );
    }
    if dev {
        let host_uplink = plan.host_uplink.as_deref().unwrap_or("uplink");
        let _ = writeln!(out, "  |  {host_uplink} (the host's uplink, bridged)");
        let _ = writeln!(
            out,
            "host [{}]  {}: the host keeps its uplink and an internal address (dev mode)",
            plan.host, plan.bridge
        );
        let _ = writeln!(out, "  |  {}-up bridge -> the net-vm's uplink", plan.bridge);
    } else {
        let _ = writeln!(
            out,
            "  |  the uplink NIC: only the net-vm holds it (the host never does)"
        );
    }
    let place = |ns: &str| match machines {
        Machines::Namespaces => ns.to_owned(),
        Machines::Qemu => "QEMU VM".to_owned(),
        Machines::Passthrough { .. } => "namespace in the host VM".to_owned(),
    };
    let netvm_place = match machines {
        Machines::Passthrough { .. } => "QEMU VM nested in the host VM".to_owned(),
        _ => place(&plan.netvm),
    };
    match machines {
        Machines::Passthrough { usb: false } => {
            let _ = writeln!(
                out,
                "  |  (the NIC passes through the host VM's vIOMMU, bound to vfio-pci)"
            );
        }
        Machines::Passthrough { usb: true } => {
            let _ = writeln!(
                out,
                "  |  (the host VM's USB NIC, taken by the Net VM's QEMU by vendor:product)"
            );
        }
        _ => {}
    }
    let _ = writeln!(
        out,
        "net-vm [{netvm_place}]  {}: netvm agent (DHCP, DNS, NAT, firewall, events)",
        plan.netvm_ip
    );
    let _ = writeln!(out, "  |  ethint0");
    if !dev {
        let host = match machines {
            Machines::Passthrough { .. } => "QEMU VM with a vIOMMU".to_owned(),
            _ => plan.host.clone(),
        };
        let _ = writeln!(
            out,
            "host [{host}]  {}: no address, no uplink; isolated ports, layer-2 guards",
            plan.bridge
        );
    } else {
        let _ = writeln!(
            out,
            "host [{}]  {}: isolated ports, layer-2 guards",
            plan.host, plan.bridge
        );
    }
    for (i, vm) in plan.vms.iter().enumerate() {
        let branch = if i + 1 == plan.vms.len() {
            "`--"
        } else {
            "|--"
        };
        let address = rows
            .iter()
            .find(|r| r.name == vm.name)
            .and_then(|r| r.address)
            .map_or("no address".to_owned(), |a| a.to_string());
        let _ = writeln!(
            out,
            "  {branch} {:<16} -- {} [{}] {address}",
            vm.host_port,
            vm.name,
            place(&vm.ns)
        );
    }
    out
}

/// The topology as Graphviz `dot`.
pub fn dot(plan: &LabPlan, rows: &[Observed]) -> String {
    let mut out = String::from("graph netvm_lab {\n  node [shape=box];\n");
    let _ = writeln!(
        out,
        "  upstream [label=\"upstream ({})\\n{}\"];",
        plan.upstream_flavour,
        if plan.upstream_flavour.ipv4() {
            UPSTREAM_IP.to_string()
        } else {
            crate::upstream::UPSTREAM_IP6.to_string()
        }
    );
    let _ = writeln!(out, "  netvm [label=\"net-vm\\n{}\"];", plan.netvm_ip);
    let _ = writeln!(out, "  host [label=\"host\\n{}\"];", plan.bridge);
    if plan.host_uplink.is_some() {
        let _ = writeln!(out, "  upstream -- host [label=\"host uplink (dev)\"];");
        let _ = writeln!(out, "  host -- netvm [label=\"net-vm uplink\"];");
    } else {
        let _ = writeln!(out, "  upstream -- netvm [label=\"uplink (net-vm only)\"];");
    }
    let _ = writeln!(out, "  netvm -- host [label=\"ethint0\"];");
    for vm in &plan.vms {
        let address = rows
            .iter()
            .find(|r| r.name == vm.name)
            .and_then(|r| r.address)
            .map_or("-".to_owned(), |a| a.to_string());
        let id = vm.name.replace('-', "_");
        let _ = writeln!(out, "  {id} [label=\"{}\\n{address}\"];", vm.name);
        let _ = writeln!(out, "  host -- {id} [label=\"{}\"];", vm.host_port);
    }
    out.push_str("}\n");
    out
}
