//! Validation: from the file format ([`RawSystem`]) to a [`System`] whose
//! values are consistent with each other, or every problem found.
//!
//! Checks run in a fixed order (network, net-vm, host, names, pool,
//! addresses, flows, forwards, DHCP, DNS) and all of them run, so one
//! pass reports everything. Address derivation (`addressing`) happens
//! here because duplicate checks need the derived values.

use crate::addressing::{self, Request, Shortage};
use crate::diagnostic::{Diagnostic, Problem};
use crate::model::{
    derived_ula, Agent, DevUplink, Dhcp, Dns, Endpoint, Flow, Host, InternalIpv6, Metrics, NetVm,
    Network, Origin, PortForward, Record, RemoteControl, Route, System, Uplink, UplinkAddressing,
    UplinkDevice, UplinkIpv6, Vm, HOST_NAME,
};
use crate::raw::{Addressing, DevUplinkMode, Ipv6Addressing, Mode, RawSystem, VmKind};
use crate::read::closest;
use crate::source::{FieldPath, Node};
use crate::values::{
    DnsName, Ipv4Range, MacAddr, PoolSetting, PortRange, Protocol, Seconds, VmName,
};
use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// Collects problems with their locations.
struct Checker<'a> {
    text: &'a str,
    root: &'a Node,
    found: Vec<Diagnostic>,
}

impl Checker<'_> {
    /// A problem with the value at `path`.
    fn report(&mut self, problem: Problem, path: FieldPath) {
        self.found.push(Diagnostic::at_path(
            self.text, self.root, problem, path, false,
        ));
    }

    /// A problem with the key at `path` (e.g. an option not allowed here).
    fn report_key(&mut self, problem: Problem, path: FieldPath) {
        self.found.push(Diagnostic::at_path(
            self.text, self.root, problem, path, true,
        ));
    }
}

fn at(keys: &[&str]) -> FieldPath {
    keys.iter().fold(FieldPath::root(), |p, k| p.key(k))
}

fn vm_path(i: usize) -> FieldPath {
    FieldPath::root().key("vm").index(i)
}

/// One endpoint under construction: its name, where it is written and
/// what it asks for.
struct Slot {
    name: String,
    path: FieldPath,
    request: Request,
}

/// Validates `raw` (read from `text`, whose tree is `root`).
pub(crate) fn validate(text: &str, root: &Node, raw: RawSystem) -> Result<System, Vec<Diagnostic>> {
    let mut c = Checker {
        text,
        root,
        found: Vec::new(),
    };
    let network = check_network(&mut c, &raw);
    let netvm_name = raw
        .netvm
        .name
        .clone()
        .unwrap_or_else(|| "net-vm".parse().expect("`net-vm` is a valid VM name"));
    let uplinks = check_uplinks(&mut c, &raw, &network);
    let dev_uplink = check_host(&mut c, &raw);
    let unknown_port_new_macs = check_host_limits(&mut c, &raw);
    let host_has_address = raw
        .host
        .internal_address
        .unwrap_or(raw.netvm.mode == Mode::Dev);
    check_names(&mut c, &raw, &netvm_name);
    let pool = check_pool(&mut c, &raw, &network);

    // Endpoints in derivation order: net-vm, host, system VMs, app VMs.
    let mut slots = vec![Slot {
        name: netvm_name.to_string(),
        path: at(&["netvm"]),
        request: Request {
            start: 1,
            ip: raw.netvm.ip,
            fixed: network.subnet.host(1),
            mac: raw.netvm.mac,
        },
    }];
    if host_has_address {
        slots.push(Slot {
            name: HOST_NAME.to_owned(),
            path: at(&["host"]),
            request: Request {
                start: 2,
                ip: raw.host.ip,
                fixed: network.subnet.host(2),
                mac: raw.host.mac,
            },
        });
    }
    let mut vm_order: Vec<usize> = (0..raw.vm.len()).collect();
    vm_order.sort_by_key(|i| raw.vm[*i].kind == VmKind::App);
    for &i in &vm_order {
        let vm = &raw.vm[i];
        slots.push(Slot {
            name: vm.name.to_string(),
            path: vm_path(i),
            request: Request {
                start: if vm.kind == VmKind::System { 3 } else { 101 },
                ip: vm.ip,
                fixed: None,
                mac: vm.mac,
            },
        });
    }
    let endpoints = assign_endpoints(&mut c, &network, pool, &slots);

    check_flows(&mut c, &raw, &netvm_name);
    let forwards = check_forwards(&mut c, &raw);
    let dhcp = check_dhcp(&mut c, &raw, &network, pool);
    let dns = check_dns(&mut c, &raw, &network, &slots);
    let agent = check_agent(&mut c, &raw);

    // A check that returns nothing has reported why.
    let (Some(uplinks), Some(endpoints), Some(dhcp), true) =
        (uplinks, endpoints, dhcp, c.found.is_empty())
    else {
        return Err(c.found);
    };
    let mut endpoints = endpoints.into_iter();
    let mut next = || endpoints.next().expect("one endpoint per slot");
    let netvm_endpoint = next();
    let host_endpoint = host_has_address.then(&mut next);
    let mut vm_endpoints: HashMap<usize, Endpoint> = HashMap::new();
    for &i in &vm_order {
        vm_endpoints.insert(i, next());
    }
    let vms = raw
        .vm
        .iter()
        .enumerate()
        .map(|(i, vm)| Vm {
            name: vm.name.clone(),
            kind: vm.kind,
            endpoint: vm_endpoints.remove(&i).expect("every VM has an endpoint"),
            internet: vm.internet.unwrap_or(vm.kind == VmKind::App),
            allow: vm
                .allow
                .iter()
                .map(|a| Flow {
                    to: a.to.clone(),
                    proto: a.proto,
                    ports: a.ports,
                })
                .collect(),
            forwards: forwards[i].clone(),
        })
        .collect();
    Ok(System {
        network,
        netvm: NetVm {
            name: netvm_name,
            mode: raw.netvm.mode,
            endpoint: netvm_endpoint,
            uplinks,
        },
        host: Host {
            endpoint: host_endpoint,
            dev_uplink,
            tap_user: raw.host.tap_user.clone(),
            tap_group: raw.host.tap_group.clone(),
            unknown_port_new_macs,
        },
        vms,
        dhcp,
        dns,
        agent,
    })
}

/// Checks `[agent]`: metrics readers and control users must be described
/// VMs, the control port free; thresholds
/// of 0 become 1.
fn check_agent(c: &mut Checker<'_>, raw: &RawSystem) -> Agent {
    let names: Vec<&str> = raw.vm.iter().map(|v| v.name.as_str()).collect();
    for (i, name) in raw.agent.metrics_allow.iter().enumerate() {
        if !names.contains(&name.as_str()) {
            c.report(
                Problem::UnknownVm {
                    name: name.to_string(),
                    suggestion: closest(name.as_str(), names.iter().copied()),
                },
                at(&["agent", "metrics_allow"]).index(i),
            );
        }
    }
    for (field, list) in [
        ("control_allow", &raw.agent.control_allow),
        ("control_read", &raw.agent.control_read),
    ] {
        for (i, name) in list.iter().enumerate() {
            if !names.contains(&name.as_str()) {
                c.report(
                    Problem::UnknownVm {
                        name: name.to_string(),
                        suggestion: closest(name.as_str(), names.iter().copied()),
                    },
                    at(&["agent", field]).index(i),
                );
            } else if field == "control_read" && raw.agent.control_allow.contains(name) {
                c.report(
                    Problem::ControlListedTwice {
                        name: name.to_string(),
                    },
                    at(&["agent", field]).index(i),
                );
            }
        }
    }
    let control_used = !raw.agent.control_allow.is_empty() || !raw.agent.control_read.is_empty();
    if control_used {
        let port = raw.agent.control_port;
        let taken = match port {
            0 => Some("no service"),
            53 => Some("DNS"),
            _ if raw.agent.metrics_port == Some(port) => Some("the metrics"),
            _ => None,
        };
        if let Some(what) = taken {
            c.report(
                Problem::ControlPortTaken { port, what },
                at(&["agent", "control_port"]),
            );
        }
    }
    Agent {
        control: control_used.then(|| RemoteControl {
            port: raw.agent.control_port,
            allow: raw.agent.control_allow.clone(),
            read: raw.agent.control_read.clone(),
        }),
        metrics: raw.agent.metrics_port.map(|port| Metrics {
            port,
            allow: raw.agent.metrics_allow.clone(),
        }),
        scan_ports: raw.agent.scan_ports.max(1),
        starvation_clients: raw.agent.starvation_clients.max(1),
        uplink_probe_every: raw.agent.uplink_probe_every.0.max(1),
        uplink_probe_failures: raw.agent.uplink_probe_failures.max(1),
    }
}

fn check_network(c: &mut Checker<'_>, raw: &RawSystem) -> Network {
    let n = &raw.network;
    if !(8..=30).contains(&n.subnet.prefix()) {
        c.report(
            Problem::SubnetPrefix {
                prefix: n.subnet.prefix(),
            },
            at(&["network", "subnet"]),
        );
    } else if !n.subnet.is_network_address() {
        c.report(
            Problem::SubnetNotNetworkAddress { subnet: n.subnet },
            at(&["network", "subnet"]),
        );
    }
    if !(576..=9000).contains(&n.mtu) {
        c.report(
            Problem::MtuOutOfRange { mtu: n.mtu },
            at(&["network", "mtu"]),
        );
    }
    if n.mac_prefix.is_multicast() {
        c.report(Problem::MulticastMacPrefix, at(&["network", "mac_prefix"]));
    }
    let ipv6 = check_internal_ipv6(c, raw);
    Network {
        ipv6,
        subnet: n.subnet.truncated(),
        domain: n.domain.clone(),
        mtu: n.mtu,
        mac_prefix: n.mac_prefix.clone(),
        bridge: n.bridge.clone(),
    }
}

/// `[network] ipv6` and `ipv6_prefix`: a /64, unique local or global.
fn check_internal_ipv6(c: &mut Checker<'_>, raw: &RawSystem) -> Option<InternalIpv6> {
    let n = &raw.network;
    let path = at(&["network", "ipv6_prefix"]);
    if !n.ipv6 {
        if n.ipv6_prefix.is_some() {
            c.report(
                Problem::Ipv6Off {
                    field: "ipv6_prefix",
                },
                path,
            );
        }
        return None;
    }
    let Some(prefix) = n.ipv6_prefix else {
        return Some(InternalIpv6 {
            prefix: derived_ula(&n.domain, n.subnet.truncated()),
            origin: Origin::Derived,
        });
    };
    if prefix.prefix() != 64 {
        c.report(Problem::Ipv6PrefixLength { prefix }, path);
    } else if !prefix.is_network_address() {
        c.report(Problem::Ipv6PrefixNotNetwork { prefix, len: 64 }, path);
    } else if !(prefix.is_unique_local() || prefix.is_global_unicast()) {
        c.report(Problem::Ipv6PrefixScope { prefix }, path);
    }
    Some(InternalIpv6 {
        prefix: prefix.truncated(),
        origin: Origin::Described,
    })
}

/// True for an address an interface or a server may have.
fn ipv6_unicast(ip: Ipv6Addr) -> bool {
    !(ip.is_unspecified() || ip.is_loopback() || ip.is_multicast())
}

/// `[netvm.uplink] ipv6`, its static settings and `nat64_prefix`.
fn check_uplink_ipv6(
    c: &mut Checker<'_>,
    u: &crate::raw::RawUplink,
    path: &FieldPath,
) -> Option<UplinkIpv6> {
    if let Some(prefix) = u.nat64_prefix {
        if ![32, 40, 48, 56, 64, 96].contains(&prefix.prefix()) {
            c.report(
                Problem::Nat64PrefixLength { prefix },
                path.key("nat64_prefix"),
            );
        } else if !prefix.is_network_address() {
            c.report_key(
                Problem::Ipv6PrefixNotNetwork {
                    prefix,
                    len: prefix.prefix(),
                },
                path.key("nat64_prefix"),
            );
        }
    }
    let statics = [
        ("ipv6_address", u.ipv6_address.is_some()),
        ("ipv6_gateway", u.ipv6_gateway.is_some()),
        ("ipv6_dns", u.ipv6_dns.is_some()),
    ];
    match u.ipv6 {
        Ipv6Addressing::Auto | Ipv6Addressing::Off => {
            for (field, set) in statics {
                if set {
                    c.report_key(Problem::Ipv6StaticOnly { field }, path.key(field));
                }
            }
            if u.ipv6 == Ipv6Addressing::Off && u.nat64_prefix.is_some() {
                c.report_key(
                    Problem::Ipv6Off {
                        field: "nat64_prefix",
                    },
                    path.key("nat64_prefix"),
                );
            }
            Some(match u.ipv6 {
                Ipv6Addressing::Off => UplinkIpv6::Off,
                _ => UplinkIpv6::Auto,
            })
        }
        Ipv6Addressing::Static => {
            for (field, set) in &statics[..2] {
                if !set {
                    c.report(Problem::Ipv6StaticNeeds { field }, path.clone());
                }
            }
            let (address, gateway) = (u.ipv6_address?, u.ipv6_gateway?);
            if !ipv6_unicast(address.addr()) || address.addr().is_unicast_link_local() {
                c.report(
                    Problem::Ipv6NotUnicast {
                        address: address.addr(),
                    },
                    path.key("ipv6_address"),
                );
            }
            if !ipv6_unicast(gateway) {
                c.report(
                    Problem::Ipv6NotUnicast { address: gateway },
                    path.key("ipv6_gateway"),
                );
            } else if !gateway.is_unicast_link_local() && !address.contains(gateway) {
                c.report(
                    Problem::Ipv6GatewayOutside {
                        gateway,
                        network: address.truncated(),
                    },
                    path.key("ipv6_gateway"),
                );
            }
            let dns = u.ipv6_dns.clone().unwrap_or_default();
            for ip in &dns {
                if !ipv6_unicast(*ip) {
                    c.report(
                        Problem::Ipv6NotUnicast { address: *ip },
                        path.key("ipv6_dns"),
                    );
                }
            }
            Some(UplinkIpv6::Static {
                address,
                gateway,
                dns,
            })
        }
    }
}

/// `[netvm.uplink]` or `[[netvm.uplink]]`: each uplink, its name in the
/// Net VM, and that no two are the same device.
fn check_uplinks(c: &mut Checker<'_>, raw: &RawSystem, network: &Network) -> Option<Vec<Uplink>> {
    let Some(written) = &raw.netvm.uplink else {
        c.report(Problem::MissingUplink, at(&["netvm"]));
        return None;
    };
    let (all, array) = written.as_slice();
    if all.is_empty() {
        c.report(Problem::MissingUplink, at(&["netvm"]));
        return None;
    }
    let mut uplinks = Vec::new();
    for (i, u) in all.iter().enumerate() {
        let path = if array {
            at(&["netvm", "uplink"]).index(i)
        } else {
            at(&["netvm", "uplink"])
        };
        if i > 0 {
            for (field, set) in [
                ("ipv6", u.ipv6 == Ipv6Addressing::Static),
                ("ipv6_address", u.ipv6_address.is_some()),
                ("ipv6_gateway", u.ipv6_gateway.is_some()),
                ("ipv6_dns", u.ipv6_dns.is_some()),
                ("nat64_prefix", u.nat64_prefix.is_some()),
            ] {
                if set {
                    c.report_key(Problem::Ipv6OnPrimaryOnly { field }, path.key(field));
                }
            }
        }
        let Some(mut uplink) = check_uplink(c, raw, u, network, &path, i) else {
            continue;
        };
        if i > 0 {
            uplink.ipv6 = UplinkIpv6::Off;
            uplink.nat64_prefix = None;
        }
        let same = uplinks.iter().find(|o: &&Uplink| {
            o.name == uplink.name
                || o.device == uplink.device
                || (o.mac.is_some() && o.mac == uplink.mac)
        });
        if let Some(other) = same {
            c.report(
                Problem::DuplicateUplink {
                    name: other.name.to_string(),
                },
                path.clone(),
            );
            continue;
        }
        uplinks.push(uplink);
    }
    (uplinks.len() == all.len()).then_some(uplinks)
}

fn check_uplink(
    c: &mut Checker<'_>,
    raw: &RawSystem,
    u: &crate::raw::RawUplink,
    network: &Network,
    path: &FieldPath,
    place: usize,
) -> Option<Uplink> {
    let path = path.clone();
    let mut devices = Vec::new();
    if let Some(pci) = u.pci {
        devices.push(("pci", UplinkDevice::Pci(pci)));
    }
    if let Some(usb) = u.usb {
        devices.push(("usb", UplinkDevice::Usb(usb)));
    }
    if let Some(name) = &u.platform {
        devices.push(("platform", UplinkDevice::Platform(name.clone())));
    }
    if let Some(name) = &u.interface {
        devices.push(("interface", UplinkDevice::Interface(name.clone())));
    }
    let device = match devices.as_slice() {
        [(kind, device)] => {
            if raw.netvm.mode == Mode::Dev && *kind != "interface" {
                c.report_key(Problem::DevModePassthrough { kind }, path.key(kind));
            }
            Some(device.clone())
        }
        [] => {
            c.report(
                Problem::UplinkDeviceCount {
                    found: "none".to_owned(),
                },
                path.clone(),
            );
            None
        }
        [_, rest @ ..] => {
            let names: Vec<&str> = devices.iter().map(|(k, _)| *k).collect();
            let second = rest.first().map_or("pci", |(k, _)| *k);
            c.report_key(
                Problem::UplinkDeviceCount {
                    found: names.join(" and "),
                },
                path.key(second),
            );
            None
        }
    };
    if u.pci_id.is_some() && u.pci.is_none() {
        c.report_key(Problem::PciOnly { field: "pci_id" }, path.key("pci_id"));
    }
    if let Some(mac) = u.mac {
        check_unicast(c, mac, path.key("mac"));
    }
    let addressing = match u.addressing {
        Addressing::Dhcp => {
            for (field, set) in [
                ("address", u.address.is_some()),
                ("gateway", u.gateway.is_some()),
                ("dns", u.dns.is_some()),
            ] {
                if set {
                    c.report_key(Problem::StaticOnly { field }, path.key(field));
                }
            }
            Some(UplinkAddressing::Dhcp)
        }
        Addressing::Static => static_addressing(c, u, network, &path),
    };
    let ipv6 = check_uplink_ipv6(c, u, &path);
    let wifi = check_wifi(c, u, &path);
    let device = device?;
    let name = match &device {
        UplinkDevice::Interface(name) => name.clone(),
        _ => format!("uplink{place}")
            .parse()
            .expect("uplinkN is a valid interface name"),
    };
    let place = u32::try_from(place).unwrap_or(u32::MAX);
    Some(Uplink {
        name,
        priority: u
            .priority
            .unwrap_or_else(|| place.saturating_add(1).saturating_mul(10)),
        device,
        pci_id: u.pci_id.filter(|_| u.pci.is_some()),
        mac: u.mac,
        addressing: addressing?,
        ipv6: ipv6?,
        nat64_prefix: u
            .nat64_prefix
            .filter(|p| u.ipv6 != Ipv6Addressing::Off && p.is_network_address()),
        wifi,
    })
}

/// A Wi-Fi uplink's networks: names of 1 to 32 bytes, each once, the
/// passphrase in a file named by an absolute path; Wi-Fi settings only
/// on a Wi-Fi uplink.
fn check_wifi(
    c: &mut Checker<'_>,
    u: &crate::raw::RawUplink,
    path: &FieldPath,
) -> Option<crate::model::Wifi> {
    if u.kind != crate::raw::UplinkKindName::Wifi {
        if !u.wifi.is_empty() {
            c.report_key(Problem::WifiOnly { field: "wifi" }, path.key("wifi"));
        }
        if u.random_mac {
            c.report_key(
                Problem::WifiOnly {
                    field: "random_mac",
                },
                path.key("random_mac"),
            );
        }
        return None;
    }
    let mut networks: Vec<crate::model::WifiNetwork> = Vec::new();
    for (i, n) in u.wifi.iter().enumerate() {
        let at = path.key("wifi").index(i);
        if n.ssid.is_empty() || n.ssid.len() > 32 {
            c.report(
                Problem::SsidLength {
                    length: n.ssid.len(),
                },
                at.key("ssid"),
            );
        } else if networks.iter().any(|o| o.ssid == n.ssid) {
            c.report(
                Problem::DuplicateSsid {
                    ssid: n.ssid.clone(),
                },
                at.key("ssid"),
            );
        }
        if !n.psk_file.is_absolute() {
            c.report(
                Problem::PskFileRelative {
                    path: n.psk_file.display().to_string(),
                },
                at.key("psk_file"),
            );
        }
        networks.push(crate::model::WifiNetwork {
            ssid: n.ssid.clone(),
            psk_file: n.psk_file.clone(),
            security: n.security,
            priority: n.priority,
        });
    }
    Some(crate::model::Wifi {
        networks,
        random_mac: u.random_mac,
    })
}

fn static_addressing(
    c: &mut Checker<'_>,
    u: &crate::raw::RawUplink,
    network: &Network,
    path: &FieldPath,
) -> Option<UplinkAddressing> {
    if u.address.is_none() {
        c.report(Problem::StaticNeeds { field: "address" }, path.clone());
    }
    if u.gateway.is_none() {
        c.report(Problem::StaticNeeds { field: "gateway" }, path.clone());
    }
    let (address, gateway) = (u.address?, u.gateway?);
    let uplink_net = address.truncated();
    if uplink_net.contains(network.subnet.network()) || network.subnet.contains(address.addr()) {
        c.report(
            Problem::UplinkOverlapsInternal {
                uplink: address,
                subnet: network.subnet,
            },
            path.key("address"),
        );
    }
    if !address.contains(gateway) {
        c.report(
            Problem::GatewayOutsideUplink {
                gateway,
                network: uplink_net,
            },
            path.key("gateway"),
        );
    }
    Some(UplinkAddressing::Static {
        address,
        gateway,
        dns: u.dns.clone().unwrap_or_default(),
    })
}

fn check_host(c: &mut Checker<'_>, raw: &RawSystem) -> Option<DevUplink> {
    let h = &raw.host;
    if h.internal_address == Some(false) {
        if h.ip.is_some() {
            c.report_key(
                Problem::HostAddressDisabled { field: "ip" },
                at(&["host", "ip"]),
            );
        }
        if h.mac.is_some() {
            c.report_key(
                Problem::HostAddressDisabled { field: "mac" },
                at(&["host", "mac"]),
            );
        }
    }
    if let Some(mac) = h.mac {
        check_unicast(c, mac, at(&["host", "mac"]));
    }
    match raw.netvm.mode {
        Mode::Secure => {
            if h.internal_address == Some(true) {
                c.report(
                    Problem::DevOnly {
                        field: "host.internal_address = true",
                    },
                    at(&["host", "internal_address"]),
                );
            }
            if h.uplink.is_some() {
                c.report_key(
                    Problem::DevOnly {
                        field: "host.uplink",
                    },
                    at(&["host", "uplink"]),
                );
            }
            if h.uplink_mode.is_some() {
                c.report_key(
                    Problem::DevOnly {
                        field: "host.uplink_mode",
                    },
                    at(&["host", "uplink_mode"]),
                );
            }
            None
        }
        Mode::Dev => {
            let Some(interface) = h.uplink.clone() else {
                c.report(Problem::DevNeedsHostUplink, at(&["host"]));
                return None;
            };
            Some(DevUplink {
                interface,
                mode: h.uplink_mode.unwrap_or(DevUplinkMode::Bridge),
            })
        }
    }
}

fn check_names(c: &mut Checker<'_>, raw: &RawSystem, netvm_name: &VmName) {
    if netvm_name.as_str() == HOST_NAME {
        c.report(
            Problem::ReservedName {
                name: HOST_NAME.to_owned(),
            },
            at(&["netvm", "name"]),
        );
    }
    let mut seen: Vec<&VmName> = vec![netvm_name];
    for (i, vm) in raw.vm.iter().enumerate() {
        let path = vm_path(i).key("name");
        if vm.name.as_str() == HOST_NAME {
            c.report(
                Problem::ReservedName {
                    name: HOST_NAME.to_owned(),
                },
                path,
            );
        } else if seen.contains(&&vm.name) {
            c.report(
                Problem::DuplicateName {
                    name: vm.name.to_string(),
                },
                path,
            );
        }
        seen.push(&vm.name);
    }
}

fn check_pool(c: &mut Checker<'_>, raw: &RawSystem, network: &Network) -> Option<Ipv4Range> {
    let subnet = network.subnet;
    let pool = match raw.dhcp.pool {
        Some(PoolSetting::Disabled) => return None,
        Some(PoolSetting::Range(range)) => range,
        // Default: host numbers 200-254 when the subnet has them.
        None => {
            return Ipv4Range::new(subnet.host(200)?, subnet.host(254)?)
                .filter(|p| p.last() < subnet.broadcast());
        }
    };
    let usable =
        |ip: Ipv4Addr| subnet.contains(ip) && ip != subnet.network() && ip != subnet.broadcast();
    if !usable(pool.first()) || !usable(pool.last()) {
        c.report(
            Problem::PoolOutsideSubnet { pool, subnet },
            at(&["dhcp", "pool"]),
        );
        return None;
    }
    Some(pool)
}

fn check_unicast(c: &mut Checker<'_>, mac: MacAddr, path: FieldPath) {
    if mac.is_broadcast() {
        c.report(Problem::BroadcastMac { mac }, path);
    } else if mac.is_multicast() {
        c.report(Problem::MulticastMac { mac }, path);
    } else if mac.is_zero() {
        c.report(Problem::ZeroMac { mac }, path);
    }
}

/// Checks described addresses, derives the rest, and finds duplicates.
fn assign_endpoints(
    c: &mut Checker<'_>,
    network: &Network,
    pool: Option<Ipv4Range>,
    slots: &[Slot],
) -> Option<Vec<Endpoint>> {
    let subnet = network.subnet;
    // Requests with every rejected value taken out, so the rest can still
    // be derived and checked for duplicates without echoing the rejection.
    let mut requests: Vec<Request> = Vec::with_capacity(slots.len());
    let mut sound = true;
    for slot in slots {
        let mut request = slot.request.clone();
        if let Some(ip) = request.ip {
            let problem = if !subnet.contains(ip) {
                Some(Problem::IpOutsideSubnet { ip, subnet })
            } else if ip == subnet.network() {
                Some(Problem::IpIsNetworkAddress { ip })
            } else if ip == subnet.broadcast() {
                Some(Problem::IpIsBroadcast { ip })
            } else {
                pool.filter(|p| p.contains(ip))
                    .map(|pool| Problem::IpInPool {
                        ip,
                        owner: slot.name.clone(),
                        pool,
                    })
            };
            if let Some(problem) = problem {
                c.report(problem, slot.path.key("ip"));
                request.ip = None;
                sound = false;
            }
        }
        if let Some(mac) = request.mac {
            let before = c.found.len();
            check_unicast(c, mac, slot.path.key("mac"));
            if c.found.len() != before {
                request.mac = None;
                sound = false;
            }
        }
        requests.push(request);
    }
    let results = addressing::assign(subnet, &network.mac_prefix, pool, &requests);
    let mut endpoints = Vec::with_capacity(slots.len());
    let mut ips: HashMap<Ipv4Addr, &str> = HashMap::new();
    let mut macs: HashMap<MacAddr, &str> = HashMap::new();
    for (slot, result) in slots.iter().zip(results) {
        let assigned = match result {
            Ok(assigned) => assigned,
            Err(Shortage::NoFreeAddress) => {
                c.report(
                    Problem::NoFreeAddress {
                        owner: slot.name.clone(),
                        subnet,
                    },
                    slot.path.clone(),
                );
                continue;
            }
            Err(Shortage::MacDoesNotFit(number)) => {
                c.report(
                    Problem::MacPrefixTooLong {
                        owner: slot.name.clone(),
                        number,
                    },
                    slot.path.clone(),
                );
                continue;
            }
        };
        let ip_taken = ips.insert(assigned.ip, &slot.name);
        if let Some(first) = ip_taken {
            c.report(
                Problem::DuplicateIp {
                    ip: assigned.ip,
                    first: first.to_owned(),
                    second: slot.name.clone(),
                },
                slot.path.key("ip"),
            );
        }
        // A derived MAC follows the address: its clash echoes one reported.
        let echo = assigned.mac_origin == Origin::Derived
            && (ip_taken.is_some() || slot.request.mac.is_some());
        if let (Some(first), false) = (macs.insert(assigned.mac, &slot.name), echo) {
            c.report(
                Problem::DuplicateMac {
                    mac: assigned.mac,
                    first: first.to_owned(),
                    second: slot.name.clone(),
                },
                slot.path.key("mac"),
            );
        }
        let label: VmName = slot.name.parse().expect("endpoint names are VM names");
        endpoints.push(Endpoint {
            mac: assigned.mac,
            mac_origin: assigned.mac_origin,
            ip: assigned.ip,
            ip_origin: assigned.ip_origin,
            fqdn: DnsName::join(&label, &network.domain),
        });
    }
    (sound && endpoints.len() == slots.len()).then_some(endpoints)
}

fn check_flows(c: &mut Checker<'_>, raw: &RawSystem, netvm_name: &VmName) {
    let names: Vec<&str> = raw.vm.iter().map(|v| v.name.as_str()).collect();
    for (i, vm) in raw.vm.iter().enumerate() {
        for (j, allow) in vm.allow.iter().enumerate() {
            let path = vm_path(i).key("allow").index(j);
            if allow.to == vm.name {
                c.report(
                    Problem::SelfRule {
                        name: vm.name.to_string(),
                    },
                    path.key("to"),
                );
            } else if !names.contains(&allow.to.as_str()) {
                let suggestion = if &allow.to == netvm_name {
                    None
                } else {
                    closest(allow.to.as_str(), names.iter().copied())
                };
                c.report(
                    Problem::UnknownVm {
                        name: allow.to.to_string(),
                        suggestion,
                    },
                    path.key("to"),
                );
            }
            if allow.proto == Protocol::Icmp && allow.ports.is_some() {
                c.report_key(Problem::PortsWithIcmp, path.key("ports"));
            }
        }
    }
}

/// Checks port forwards; returns them per VM (index as in `raw.vm`).
fn check_forwards(c: &mut Checker<'_>, raw: &RawSystem) -> Vec<Vec<PortForward>> {
    let mut taken: Vec<(Protocol, PortRange, &str)> = Vec::new();
    let mut all = Vec::with_capacity(raw.vm.len());
    for (i, vm) in raw.vm.iter().enumerate() {
        let mut forwards = Vec::new();
        for (j, f) in vm.forward.iter().enumerate() {
            let path = vm_path(i).key("forward").index(j);
            if !f.proto.has_ports() {
                c.report(Problem::ForwardNotTcpUdp, path.key("proto"));
                continue;
            }
            let to = f.to_port.unwrap_or(f.port.first());
            let last = u32::from(to) + f.port.len() - 1;
            let vm_ports = u16::try_from(last)
                .ok()
                .and_then(|last| PortRange::new(to, last));
            let Some(vm_ports) = vm_ports else {
                c.report(
                    Problem::ForwardTargetOverflow {
                        to_port: to,
                        ports: f.port,
                    },
                    path.key("to_port"),
                );
                continue;
            };
            if let Some((_, _, other)) = taken
                .iter()
                .find(|(proto, ports, _)| *proto == f.proto && ports.overlaps(&f.port))
            {
                c.report(
                    Problem::DuplicateForward {
                        proto: f.proto,
                        ports: f.port,
                        other: (*other).to_owned(),
                    },
                    path.key("port"),
                );
            }
            taken.push((f.proto, f.port, vm.name.as_str()));
            forwards.push(PortForward {
                proto: f.proto,
                uplink_ports: f.port,
                vm_ports,
            });
        }
        all.push(forwards);
    }
    all
}

fn check_dhcp(
    c: &mut Checker<'_>,
    raw: &RawSystem,
    network: &Network,
    pool: Option<Ipv4Range>,
) -> Option<Dhcp> {
    let d = &raw.dhcp;
    let lease = d.lease_time;
    let mut sound = true;
    if lease.0 < 60 {
        c.report(
            Problem::LeaseTooShort { lease },
            at(&["dhcp", "lease_time"]),
        );
        sound = false;
    }
    let renew = d.renew_time.unwrap_or(Seconds(lease.0 / 2));
    let rebind = d.rebind_time.unwrap_or(Seconds(
        u32::try_from(u64::from(lease.0) * 7 / 8).unwrap_or(u32::MAX),
    ));
    if sound && !(renew < rebind && rebind < lease) {
        let field = if d.rebind_time.is_some() && rebind >= lease {
            "rebind_time"
        } else if d.renew_time.is_some() {
            "renew_time"
        } else {
            "rebind_time"
        };
        c.report(
            Problem::TimesOutOfOrder {
                renew,
                rebind,
                lease,
            },
            at(&["dhcp", field]),
        );
    }
    for (field, value) in [
        ("per_mac_rate", d.limits.per_mac_rate),
        ("per_mac_burst", d.limits.per_mac_burst),
    ] {
        if value == 0 {
            c.report(Problem::ZeroLimit { field }, at(&["dhcp", "limits", field]));
        }
    }
    let subnet = network.subnet;
    let mut routes = Vec::new();
    for (i, r) in d.routes.iter().enumerate() {
        let path = at(&["dhcp", "routes"]).index(i);
        if !r.destination.is_network_address() {
            c.report(
                Problem::RouteNotNetworkAddress {
                    destination: r.destination,
                },
                path.key("destination"),
            );
        }
        if !subnet.contains(r.gateway) {
            c.report(
                Problem::RouteGatewayOutsideSubnet {
                    gateway: r.gateway,
                    subnet,
                },
                path.key("gateway"),
            );
        }
        routes.push(Route {
            destination: r.destination,
            gateway: r.gateway,
        });
    }
    for (i, relay) in d.relays.iter().enumerate() {
        if !subnet.contains(*relay) {
            c.report(
                Problem::IpOutsideSubnet { ip: *relay, subnet },
                at(&["dhcp", "relays"]).index(i),
            );
        }
    }
    let pool_size = pool.map_or(0, |p| u32::try_from(p.len()).unwrap_or(u32::MAX));
    for (field, value, (min, max)) in [
        ("offer_hold", d.limits.offer_hold.0, OFFER_HOLD_RANGE),
        ("probation", d.limits.probation.0, PROBATION_RANGE),
    ] {
        if !(min..=max).contains(&value) {
            c.report(
                Problem::LimitOutOfRange {
                    field,
                    value: value.into(),
                    min: min.into(),
                    max: max.into(),
                },
                at(&["dhcp", "limits", field]),
            );
        }
    }
    if let Some(value) = d.limits.probation_max.filter(|v| *v > pool_size) {
        c.report(
            Problem::LimitOutOfRange {
                field: "probation_max",
                value: value.into(),
                min: 0,
                max: pool_size.into(),
            },
            at(&["dhcp", "limits", "probation_max"]),
        );
    }
    // A quarter of the pool, but at least one address when there is a
    // pool, so a single DECLINE is still honoured in a tiny pool.
    let probation_max = d.limits.probation_max.unwrap_or_else(|| {
        if pool_size == 0 {
            0
        } else {
            (pool_size / 4).max(1)
        }
    });
    sound.then(|| Dhcp {
        pool,
        lease_time: lease,
        renew_time: renew,
        rebind_time: rebind,
        rapid_commit: d.rapid_commit,
        routes,
        relays: d.relays.clone(),
        max_leases: d.limits.max_leases.unwrap_or(pool_size),
        per_mac_rate: d.limits.per_mac_rate,
        per_mac_burst: d.limits.per_mac_burst,
        offer_hold: d.limits.offer_hold,
        probation: d.limits.probation,
        probation_max,
    })
}

/// Seconds an offer may be held: long enough for a client that collects
/// offers for a second or two, short enough that a DISCOVER flood's
/// offers lapse quickly.
const OFFER_HOLD_RANGE: (u32, u32) = (1, 300);

/// Seconds a declined address may stay out of use.
const PROBATION_RANGE: (u32, u32) = (1, 86_400);

/// Most new MACs per minute `host.unknown_port_new_macs` may allow.
const UNKNOWN_PORT_NEW_MACS_MAX: u32 = 10_000;

/// Checks `[host]`'s limits; returns `unknown_port_new_macs`.
fn check_host_limits(c: &mut Checker<'_>, raw: &RawSystem) -> u32 {
    let value = raw.host.unknown_port_new_macs;
    if value > UNKNOWN_PORT_NEW_MACS_MAX {
        c.report(
            Problem::LimitOutOfRange {
                field: "unknown_port_new_macs",
                value: value.into(),
                min: 0,
                max: UNKNOWN_PORT_NEW_MACS_MAX.into(),
            },
            at(&["host", "unknown_port_new_macs"]),
        );
    }
    value
}

fn check_dns(c: &mut Checker<'_>, raw: &RawSystem, network: &Network, slots: &[Slot]) -> Dns {
    let mut records: Vec<Record> = Vec::new();
    for (i, r) in raw.dns.records.iter().enumerate() {
        let path = at(&["dns", "records"]).index(i).key("name");
        let name = if r.name.is_single_label() {
            let label: VmName = r
                .name
                .as_str()
                .parse()
                .expect("a single-label DNS name is a VM name");
            DnsName::join(&label, &network.domain)
        } else {
            r.name.clone()
        };
        let shadows_vm = slots.iter().any(|s| {
            s.name
                .parse::<VmName>()
                .is_ok_and(|label| DnsName::join(&label, &network.domain) == name)
        });
        if shadows_vm {
            c.report(
                Problem::RecordShadowsVm {
                    name: name.to_string(),
                },
                path,
            );
        } else if records.iter().any(|other| other.name == name) {
            c.report(
                Problem::DuplicateRecord {
                    name: name.to_string(),
                },
                path,
            );
        }
        records.push(Record { name, ip: r.ip });
    }
    Dns {
        upstreams: raw.dns.upstreams.clone(),
        records,
        cache_size: raw.dns.cache_size,
        client_rate: raw.dns.client_rate,
        client_burst: raw.dns.client_burst.max(1),
        max_inflight: raw.dns.max_inflight.max(1),
    }
}
