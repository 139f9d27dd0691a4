//! What a lab is made of, computed from a description and a lab id:
//! namespaces, the veth pairs between them (standing in for the uplink
//! NIC, the TAPs and the VMs' NICs), the upstream's addresses and names,
//! and what each VM should end up with. Pure: `up` makes it so, `test`
//! checks it, `down` removes it.

use crate::upstream::Flavour;
use netvm_description::values::MacAddr;
use netvm_description::{Mode, System, UplinkDevice};
use serde::Serialize;
use std::net::Ipv4Addr;

/// The upstream's own address (router, DHCP and DNS server, HTTP).
pub const UPSTREAM_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
/// The upstream network's prefix length.
pub const UPSTREAM_PREFIX: u8 = 24;
/// Dev mode: the host's address on the upstream network.
pub const HOST_DEV_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 2);
/// Addresses the upstream's DHCP server hands out.
pub const UPSTREAM_POOL: (Ipv4Addr, Ipv4Addr) = (
    Ipv4Addr::new(203, 0, 113, 100),
    Ipv4Addr::new(203, 0, 113, 150),
);
/// Names the upstream's DNS server answers (all with [`UPSTREAM_IP`]).
pub const UPSTREAM_NAMES: [&str; 2] = ["www.lab.test", "updates.lab.test"];
/// The upstream's HTTP service.
pub const UPSTREAM_HTTP_PORT: u16 = 80;
/// The port every VM serves on (TCP and UDP), besides its allowed ports.
pub const VM_PORT: u16 = 8080;
/// The VM the description does not name: it must get a pool address.
pub const EXTRA_NAME: &str = "guest";
/// Its MAC.
pub const EXTRA_MAC: MacAddr = MacAddr([0x02, 0xee, 0x00, 0x00, 0x00, 0x01]);

/// Where a VM's address should come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Expected {
    /// Its reservation.
    Reserved(Ipv4Addr),
    /// The DHCP pool.
    Pool,
}

/// One VM of the lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VmNode {
    /// Its name (`guest` for the extra one).
    pub name: String,
    /// Its namespace.
    pub ns: String,
    /// Its MAC.
    pub mac: MacAddr,
    /// Its DNS name, when described.
    pub fqdn: Option<String>,
    /// The address it should get.
    pub expected: Expected,
    /// Whether the description lets it reach the Internet.
    pub internet: bool,
    /// Its port on the host's bridge.
    pub host_port: String,
    /// TCP ports it serves: [`VM_PORT`], ports other VMs may use, port
    /// forwards.
    pub tcp_ports: Vec<u16>,
}

/// One veth pair: `(namespace, name, MAC)` at each end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Veth {
    /// One end.
    pub a: End,
    /// The other end.
    pub b: End,
}

/// One end of a veth pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct End {
    /// Namespace.
    pub ns: String,
    /// Interface name.
    pub name: String,
    /// MAC, when it matters.
    pub mac: Option<MacAddr>,
}

/// The whole lab.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LabPlan {
    /// Its id (part of every name).
    pub id: u32,
    /// Secure or dev.
    pub mode: Mode,
    /// The upstream namespace.
    pub upstream: String,
    /// The upstream's interface.
    pub upstream_if: String,
    /// What the upstream offers (`lab up --upstream`).
    pub upstream_flavour: Flavour,
    /// `ipv6-only`: the namespace of the IPv4-only service behind the
    /// upstream's NAT64.
    pub upstream_service: Option<String>,
    /// The host namespace.
    pub host: String,
    /// The host's internal bridge.
    pub bridge: String,
    /// Dev mode: the host's uplink interface.
    pub host_uplink: Option<String>,
    /// The net-vm's namespace.
    pub netvm: String,
    /// The net-vm's internal address.
    pub netvm_ip: Ipv4Addr,
    /// Whether the internal network has IPv6 (every VM runs a DHCPv6
    /// client and serves over both families).
    pub ipv6: bool,
    /// The internal domain.
    pub domain: String,
    /// Every VM (described ones in order, then the extra one).
    pub vms: Vec<VmNode>,
    /// Every veth pair.
    pub veths: Vec<Veth>,
    /// TCP port forwards from the uplink.
    pub forwards: Vec<Forward>,
}

/// A TCP port forward from the uplink to a VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Forward {
    /// The VM.
    pub vm: String,
    /// The port on the uplink.
    pub uplink_port: u16,
}

/// Why a description cannot become a lab.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LabPlanError {
    /// The host's plan failed.
    #[error(transparent)]
    Host(#[from] netvm_plan::host::HostPlanError),
    /// The lab's own names are taken by the description.
    #[error("the description names a VM `{0}`, which the lab uses for its extra VM")]
    ExtraName(String),
}

/// The namespace prefix of lab `id`.
pub fn prefix(id: u32) -> String {
    format!("nvl{id}-")
}

fn end(ns: &str, name: &str, mac: Option<MacAddr>) -> End {
    End {
        ns: ns.to_owned(),
        name: name.to_owned(),
        mac,
    }
}

/// The lab for `system` with id `id` and the default upstream.
pub fn plan(system: &System, id: u32) -> Result<LabPlan, LabPlanError> {
    plan_with(system, id, crate::upstream::DEFAULT)
}

/// The lab for `system` with id `id` and the `flavour` of upstream.
pub fn plan_with(system: &System, id: u32, flavour: Flavour) -> Result<LabPlan, LabPlanError> {
    if system.vms.iter().any(|vm| vm.name.as_str() == EXTRA_NAME) {
        return Err(LabPlanError::ExtraName(EXTRA_NAME.to_owned()));
    }
    let host_plan = netvm_plan::host::plan(system)?;
    let p = prefix(id);
    let (upstream, host, netvm) = (format!("{p}up"), format!("{p}host"), format!("{p}net"));
    let names = netvm_plan::datapath::interfaces(system);
    // The net-vm's uplink: under another name with the described MAC (the
    // agent finds it), or under the described name.
    let uplink_end = match (system.netvm.uplink().mac, &system.netvm.uplink().device) {
        (Some(mac), _) => end(&netvm, "eth9", Some(mac)),
        (None, UplinkDevice::Interface(name)) => end(&netvm, name.as_str(), None),
        (None, _) => end(&netvm, names.uplink.as_str(), None),
    };
    let upstream_if = "up0".to_owned();
    let mut veths = Vec::new();
    let host_uplink = host_plan
        .uplink_bridge
        .as_ref()
        .map(|u| u.host_uplink.clone());
    match &host_plan.uplink_bridge {
        None => veths.push(Veth {
            a: end(&upstream, &upstream_if, None),
            b: uplink_end,
        }),
        Some(bridge) => {
            veths.push(Veth {
                a: end(&upstream, &upstream_if, None),
                b: end(&host, &bridge.host_uplink, None),
            });
            veths.push(Veth {
                a: end(&host, &bridge.netvm_port, None),
                b: uplink_end,
            });
        }
    }
    let mut vms = Vec::new();
    let mut forwards = Vec::new();
    let policy = netvm_plan::plan(system).policy;
    for (i, port) in host_plan.ports.iter().enumerate() {
        if port.role == netvm_description::Role::NetVm {
            // The agent finds its internal NIC by MAC and renames it.
            veths.push(Veth {
                a: end(&host, &port.name, None),
                b: end(&netvm, "eth0", Some(port.mac)),
            });
            continue;
        }
        let Some(vm) = system.vms.iter().find(|v| v.name.as_str() == port.vm) else {
            continue;
        };
        let ns = format!("{p}v{i}");
        let mut tcp_ports = vec![VM_PORT];
        for flow in &policy.flows {
            if flow.to_ip == vm.endpoint.ip
                && flow.proto == netvm_description::values::Protocol::Tcp
            {
                if let Some(ports) = flow.ports {
                    tcp_ports.push(ports.first());
                }
            }
        }
        for f in &vm.forwards {
            if f.proto == netvm_description::values::Protocol::Tcp {
                tcp_ports.push(f.vm_ports.first());
                forwards.push(Forward {
                    vm: vm.name.to_string(),
                    uplink_port: f.uplink_ports.first(),
                });
            }
        }
        tcp_ports.sort_unstable();
        tcp_ports.dedup();
        veths.push(Veth {
            a: end(&host, &port.name, None),
            b: end(&ns, "eth0", Some(port.mac)),
        });
        vms.push(VmNode {
            name: vm.name.to_string(),
            ns,
            mac: port.mac,
            fqdn: Some(vm.endpoint.fqdn.to_string()),
            expected: Expected::Reserved(vm.endpoint.ip),
            internet: vm.internet,
            host_port: port.name.clone(),
            tcp_ports,
        });
    }
    let extra_ns = format!("{p}x");
    let extra_port = format!("tap-{EXTRA_NAME}");
    veths.push(Veth {
        a: end(&host, &extra_port, None),
        b: end(&extra_ns, "eth0", Some(EXTRA_MAC)),
    });
    vms.push(VmNode {
        name: EXTRA_NAME.to_owned(),
        ns: extra_ns,
        mac: EXTRA_MAC,
        fqdn: None,
        expected: Expected::Pool,
        internet: false,
        host_port: extra_port,
        tcp_ports: vec![VM_PORT],
    });
    Ok(LabPlan {
        id,
        mode: system.netvm.mode,
        upstream_service: flavour.nat64().then(|| format!("{p}svc")),
        upstream,
        upstream_if,
        upstream_flavour: flavour,
        host,
        bridge: host_plan.bridge.name.clone(),
        host_uplink,
        netvm,
        netvm_ip: system.netvm.endpoint.ip,
        ipv6: system.network.ipv6.is_some(),
        domain: system.network.domain.to_string(),
        vms,
        veths,
        forwards,
    })
}

impl LabPlan {
    /// Every namespace, the upstream first.
    pub fn namespaces(&self) -> Vec<String> {
        let mut all = vec![self.upstream.clone(), self.host.clone(), self.netvm.clone()];
        all.extend(self.vms.iter().map(|v| v.ns.clone()));
        all
    }

    /// The VM called `name`.
    pub fn vm(&self, name: &str) -> Option<&VmNode> {
        self.vms.iter().find(|v| v.name == name)
    }
}
