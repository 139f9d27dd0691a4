//! What the host should look like (`netvm plan --role host`): the
//! internal bridge, one TAP per VM named after it (isolated unless it is
//! the net-vm's), the layer-2 guard ruleset, kernel settings, and in dev
//! mode the bridge that shares the host's own uplink with the net-vm.
//! Pure; `netvm-apply` makes it so.

use crate::{host_firewall, l2guard};
use netvm_description::values::{Account, MacAddr};
use netvm_description::{Mode, Role, System, UplinkDevice};
use serde::Serialize;
use std::net::Ipv4Addr;

/// The longest Linux interface name (`IFNAMSIZ` - 1).
const IFNAME_MAX: usize = 15;

/// The host's part of the system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HostPlan {
    /// Secure or dev.
    pub mode: Mode,
    /// The internal bridge.
    pub bridge: BridgePlan,
    /// One port per VM (the net-vm's first), each a TAP the VMM opens.
    pub ports: Vec<PortPlan>,
    /// Dev mode: the bridge joining the host's uplink and the net-vm's
    /// uplink TAP.
    pub uplink_bridge: Option<UplinkBridgePlan>,
    /// Owner of the TAPs (root when `None`).
    pub tap_user: Option<Account>,
    /// Group of the TAPs.
    pub tap_group: Option<Account>,
    /// Kernel settings: path under /proc/sys and value.
    pub sysctls: Vec<(String, String)>,
    /// The layer-2 guards, and in dev mode the host's own firewall: one
    /// `nft -f` transaction replacing our two tables only.
    pub ruleset: String,
}

/// The internal bridge.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BridgePlan {
    /// Interface name.
    pub name: String,
    /// The host's address with prefix (dev mode only).
    pub address: Option<String>,
    /// The host's described MAC (dev mode only): the net-vm's guard lets
    /// the host's address through only with it.
    pub mac: Option<MacAddr>,
    /// MTU of the bridge and its ports.
    pub mtu: u16,
}

/// A bridge port: the TAP of one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PortPlan {
    /// The TAP's name (`tap-<vm>`, shortened stably past 15 bytes).
    pub name: String,
    /// The VM it belongs to.
    pub vm: String,
    /// The VM's role.
    pub role: Role,
    /// The only source MAC the port accepts.
    pub mac: MacAddr,
    /// The only IPv4 source the port accepts (besides 0.0.0.0 for DHCP).
    pub ip: Ipv4Addr,
    /// The interface identifier (low 64 bits) of every IPv6 source the
    /// port accepts besides link-local ones and `::` (its IPv4 host
    /// number, whatever the prefix is at the time).
    pub ipv6_iid: u128,
    /// Bridge port isolation: every port but the net-vm's.
    pub isolated: bool,
}

/// Dev mode: the host's uplink bridged to the net-vm's uplink TAP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UplinkBridgePlan {
    /// The bridge's name (`<bridge>-up`).
    pub name: String,
    /// The host's uplink; its IPv4 addresses and default route move to
    /// the bridge while it is a port, and back when it is released.
    pub host_uplink: String,
    /// The net-vm's uplink TAP.
    pub netvm_port: String,
}

/// Why no host plan can be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPlanError {
    /// Two VMs' shortened TAP names are the same.
    #[error("VMs {first} and {second} would both get the TAP name {name}: rename one of them")]
    PortNameClash {
        /// The shared name.
        name: String,
        /// One VM.
        first: String,
        /// The other.
        second: String,
    },
}

/// The TAP name for `vm`: `tap-<vm><suffix>`, or when that is longer than
/// 15 bytes, the first letters of the name and four hex digits of a hash
/// of the whole name (`tap-busine-1a2b`), so it is stable across runs.
pub fn tap_name(vm: &str, suffix: &str) -> String {
    let full = format!("tap-{vm}{suffix}");
    if full.len() <= IFNAME_MAX {
        return full;
    }
    let hash = fnv1a(vm.as_bytes()) & 0xffff;
    let keep = IFNAME_MAX - "tap-".len() - "-xxxx".len() - suffix.len();
    let head = vm[..keep.min(vm.len())].trim_end_matches('-');
    format!("tap-{head}-{hash:04x}{suffix}")
}

/// 32-bit FNV-1a: small, stable, and enough to tell VM names apart.
fn fnv1a(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(0x0100_0193)
    })
}

/// The dev-mode uplink bridge's name: `<bridge>-up`, cut to fit.
fn uplink_bridge_name(bridge: &str) -> String {
    let keep = IFNAME_MAX - "-up".len();
    format!("{}-up", &bridge[..keep.min(bridge.len())])
}

/// Computes the host's plan.
pub fn plan(system: &System) -> Result<HostPlan, HostPlanError> {
    let bridge = system.network.bridge.to_string();
    let ports: Vec<PortPlan> = system
        .endpoints()
        .filter(|(_, role, _)| *role != Role::Host)
        .map(|(vm, role, endpoint)| PortPlan {
            name: tap_name(vm, ""),
            vm: vm.to_owned(),
            role,
            mac: endpoint.mac,
            ip: endpoint.ip,
            ipv6_iid: system.ipv6_iid(endpoint),
            isolated: role != Role::NetVm,
        })
        .collect();
    let uplink_bridge = system.host.dev_uplink.as_ref().map(|dev| UplinkBridgePlan {
        name: uplink_bridge_name(&bridge),
        host_uplink: dev.interface.to_string(),
        netvm_port: tap_name(system.netvm.name.as_str(), "-up"),
    });
    check_names(&ports, uplink_bridge.as_ref())?;

    // No IPv6 on the host's side of the internal network, in either mode:
    // not even a link-local address (the dev host's internal address is
    // IPv4 only; the internal prefix can change at run time and the host
    // never learns it). Written before any of them is brought up.
    let disable_ipv6 = |name: &str| (format!("net/ipv6/conf/{name}/disable_ipv6"), "1".to_owned());
    let mut sysctls = Vec::new();
    if system.netvm.mode == Mode::Secure {
        // Interfaces made later (a VMM's own TAP, a driver that takes the
        // uplink back) are born without IPv6 too.
        sysctls.push(disable_ipv6("default"));
    }
    sysctls.push(disable_ipv6(&bridge));
    sysctls.extend(ports.iter().map(|p| disable_ipv6(&p.name)));
    if let Some(up) = &uplink_bridge {
        sysctls.push(disable_ipv6(&up.netvm_port));
    }
    if system.netvm.mode == Mode::Secure {
        // The secure host routes nothing: it is on no network at all.
        sysctls.push(("net/ipv4/ip_forward".to_owned(), "0".to_owned()));
    }
    let address = system
        .host
        .endpoint
        .as_ref()
        .map(|e| format!("{}/{}", e.ip, system.network.subnet.prefix()));
    let mut ruleset = l2guard::render(system, &ports, uplink_bridge.as_ref());
    if let Some(firewall) = host_firewall::render(system) {
        ruleset.push_str(&firewall);
    }
    Ok(HostPlan {
        mode: system.netvm.mode,
        bridge: BridgePlan {
            name: bridge,
            address,
            mac: system.host.endpoint.as_ref().map(|e| e.mac),
            mtu: system.network.mtu,
        },
        ports,
        uplink_bridge,
        tap_user: system.host.tap_user.clone(),
        tap_group: system.host.tap_group.clone(),
        sysctls,
        ruleset,
    })
}

fn check_names(ports: &[PortPlan], uplink: Option<&UplinkBridgePlan>) -> Result<(), HostPlanError> {
    let mut names: Vec<(&str, &str)> = ports
        .iter()
        .map(|p| (p.name.as_str(), p.vm.as_str()))
        .collect();
    if let Some(up) = uplink {
        names.push((&up.netvm_port, "the net-vm's uplink"));
    }
    names.sort();
    for pair in names.windows(2) {
        if pair[0].0 == pair[1].0 {
            return Err(HostPlanError::PortNameClash {
                name: pair[0].0.to_owned(),
                first: pair[0].1.to_owned(),
                second: pair[1].1.to_owned(),
            });
        }
    }
    Ok(())
}

impl HostPlan {
    /// The port of the VM called `vm`.
    pub fn port(&self, vm: &str) -> Option<&PortPlan> {
        self.ports.iter().find(|p| p.vm == vm)
    }
}

/// The PCI, USB or platform device the host hands to the net-vm, if any.
pub fn passthrough(system: &System) -> Option<&UplinkDevice> {
    match &system.netvm.uplink().device {
        UplinkDevice::Interface(_) => None,
        device => Some(device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::{parse, Format};

    #[test]
    fn tap_names_fit_and_are_stable() {
        assert_eq!(tap_name("gui-vm", ""), "tap-gui-vm");
        assert_eq!(tap_name("net-vm", "-up"), "tap-net-vm-up");
        assert_eq!(tap_name("business-vm", ""), "tap-business-vm");
        let long = tap_name("business-vm-2", "");
        assert_eq!(long.len(), 15, "{long}");
        assert!(long.starts_with("tap-busine-"), "{long}");
        assert_eq!(long, tap_name("business-vm-2", ""));
        assert_ne!(long, tap_name("business-vm-3", ""));
        let up = tap_name("a-very-long-net-vm", "-up");
        assert!(up.len() <= 15 && up.ends_with("-up"), "{up}");
        // A cut that ends in '-' is trimmed, not left dangling.
        assert!(!tap_name("abcde-fghijkl", "").contains("--"));
    }

    #[test]
    fn secure_host_isolates_every_vm_port_and_has_no_address() {
        let text = std::fs::read_to_string("../../examples/ghaf-laptop.toml").expect("example");
        let system = parse("ghaf-laptop.toml", &text, Format::Toml).expect("valid");
        let plan = plan(&system).expect("plan");
        assert_eq!(plan.bridge.address, None);
        assert_eq!(plan.ports[0].vm, "net-vm");
        assert!(!plan.ports[0].isolated);
        assert!(plan.ports[1..].iter().all(|p| p.isolated));
        assert!(plan.uplink_bridge.is_none());
        assert!(plan
            .sysctls
            .contains(&("net/ipv4/ip_forward".to_owned(), "0".to_owned())));
        // No IPv6 on the bridge, any TAP, or any interface made later.
        let off = |name: &str| (format!("net/ipv6/conf/{name}/disable_ipv6"), "1".to_owned());
        assert_eq!(plan.sysctls[0], off("default"));
        assert!(plan.sysctls.contains(&off("vmbr0")));
        assert!(plan
            .ports
            .iter()
            .all(|p| plan.sysctls.contains(&off(&p.name))));
        assert_eq!(
            plan.ports[1].ipv6_iid,
            system.ipv6_iid(&system.vms[0].endpoint)
        );
    }

    #[test]
    fn dev_host_bridges_its_uplink_and_keeps_an_address() {
        let text = std::fs::read_to_string("../../examples/dev-mode.toml").expect("example");
        let system = parse("dev-mode.toml", &text, Format::Toml).expect("valid");
        let plan = plan(&system).expect("plan");
        assert_eq!(plan.bridge.address.as_deref(), Some("192.168.100.2/24"));
        let up = plan.uplink_bridge.expect("dev mode bridges the uplink");
        assert_eq!(up.name, "vmbr0-up");
        assert_eq!(up.host_uplink, "enp0s31f6");
        assert_eq!(up.netvm_port, "tap-net-vm-up");
        assert!(!plan.sysctls.iter().any(|(k, _)| k == "net/ipv4/ip_forward"));
        // The dev host's internal side has no IPv6 either; its other
        // interfaces are its own business.
        assert!(plan.sysctls.contains(&(
            "net/ipv6/conf/vmbr0/disable_ipv6".to_owned(),
            "1".to_owned()
        )));
        assert!(!plan.sysctls.iter().any(|(k, _)| k.contains("/default/")));
    }
}
