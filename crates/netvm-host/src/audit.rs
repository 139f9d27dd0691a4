//! The posture audit (`netvm host audit`): what the live host looks like
//! ([`gather`], reads only) checked against the description and the host
//! plan ([`check`], pure), each check a pass or a fail with its reason.

use crate::{devices, HostRoot};
use netvm_description::{Mode, System, UplinkDevice};
use netvm_plan::host::HostPlan;
use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

/// What the host looks like, as far as the audit cares.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// Whether the bridge exists and is a bridge.
    pub bridge_exists: bool,
    /// Addresses on the bridge (IPv4 and IPv6), `ip/prefix`.
    pub bridge_addresses: Vec<String>,
    /// The bridge's `stp_state`.
    pub bridge_stp: Option<String>,
    /// The bridge's `multicast_snooping`.
    pub bridge_snooping: Option<String>,
    /// Every port on the bridge (`brif/`), planned or not.
    pub bridge_ports: Vec<String>,
    /// Per planned port: its bridge (`master`) and `isolated` flag, or
    /// `None` when the interface does not exist.
    pub ports: BTreeMap<String, Option<PortFacts>>,
    /// Interfaces carrying a default route (IPv4 or IPv6).
    pub default_routes: BTreeSet<String>,
    /// The guard table as `nft list` prints it; `None` when not loaded.
    pub guard_table: Option<String>,
    /// The dev host's firewall table; `None` when not loaded.
    pub host_table: Option<String>,
    /// `net/ipv4/ip_forward`.
    pub ip_forward: Option<String>,
    /// Each described uplink's device as the host sees it, in the
    /// description's order.
    pub uplinks: Vec<UplinkFacts>,
    /// IPv6 addresses (link-local included), `ip/prefix`, of the bridge,
    /// every port on it or planned, and the uplink's host interfaces; an
    /// interface that does not exist is not listed.
    pub ipv6_addresses: BTreeMap<String, Vec<String>>,
    /// `net/ipv6/conf/<name>/disable_ipv6` of every name the plan sets it
    /// for (`default` included); `None` when it cannot be read (no such
    /// interface).
    pub ipv6_disabled: BTreeMap<String, Option<String>>,
}

/// What the host shows of one uplink's device.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UplinkFacts {
    /// The PCI or platform uplink's driver (`None` when unbound or USB).
    pub driver: Option<String>,
    /// Host interfaces of the uplink device (it should have none).
    pub interfaces: Vec<String>,
    /// Whether the uplink device was found on the host.
    pub found: bool,
    /// The PCI uplink's vendor:device as the host sees it.
    pub pci_id: Option<netvm_description::values::PciId>,
}

/// One port as the host has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortFacts {
    /// The bridge it is on, if any.
    pub master: Option<String>,
    /// Its `brport/isolated` flag.
    pub isolated: Option<bool>,
}

/// One check's outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was checked.
    pub check: String,
    /// Whether it holds.
    pub passed: bool,
    /// Why it failed, or what was seen.
    pub detail: String,
}

/// Reads the live state under `root` (sysfs, procfs; netlink and nft for
/// addresses and the guard table, which have no file form).
pub fn gather(root: &HostRoot, system: &System, plan: &HostPlan) -> Facts {
    let class_net = |rel: &str| root.sys(&format!("class/net/{rel}"));
    let bridge = &plan.bridge.name;
    let mut facts = Facts {
        bridge_exists: root.is_dir(&class_net(&format!("{bridge}/bridge"))),
        bridge_addresses: netvm_apply::inspect::addresses(bridge)
            .ok()
            .flatten()
            .unwrap_or_default(),
        bridge_stp: root.read(&class_net(&format!("{bridge}/bridge/stp_state"))),
        bridge_snooping: root.read(&class_net(&format!("{bridge}/bridge/multicast_snooping"))),
        bridge_ports: root.entries_or_empty(&class_net(&format!("{bridge}/brif"))),
        default_routes: devices::default_route_interfaces(root),
        guard_table: list_table("bridge", netvm_plan::l2guard::TABLE),
        host_table: list_table("inet", netvm_plan::host_firewall::TABLE),
        ip_forward: root.read(&root.proc("sys/net/ipv4/ip_forward")),
        ..Facts::default()
    };
    for port in &plan.ports {
        let dir = class_net(&port.name);
        let found = root.exists(&dir).then(|| PortFacts {
            master: root.link_name(&dir.join("master")),
            isolated: root
                .read(&dir.join("brport/isolated"))
                .map(|flag| flag == "1"),
        });
        facts.ports.insert(port.name.clone(), found);
    }
    facts.uplinks = system
        .netvm
        .uplinks
        .iter()
        .map(|up| gather_uplink(root, up))
        .collect();
    gather_ipv6(root, plan, &mut facts);
    facts
}

/// The IPv6 side: addresses through netlink, `disable_ipv6` from procfs.
fn gather_ipv6(root: &HostRoot, plan: &HostPlan, facts: &mut Facts) {
    let mut names: BTreeSet<&str> = BTreeSet::from([plan.bridge.name.as_str()]);
    names.extend(plan.ports.iter().map(|p| p.name.as_str()));
    names.extend(facts.bridge_ports.iter().map(String::as_str));
    for up in &facts.uplinks {
        names.extend(up.interfaces.iter().map(String::as_str));
    }
    for name in names {
        if let Ok(Some(addresses)) = netvm_apply::inspect::addresses(name) {
            let ipv6 = addresses.into_iter().filter(|a| a.contains(':')).collect();
            facts.ipv6_addresses.insert(name.to_owned(), ipv6);
        }
    }
    for (key, _) in &plan.sysctls {
        if let Some(name) = disable_ipv6_of(key) {
            let value = root.read(&root.proc(&format!("sys/{key}")));
            facts.ipv6_disabled.insert(name.to_owned(), value);
        }
    }
}

/// The interface of a planned `net/ipv6/conf/<name>/disable_ipv6`.
fn disable_ipv6_of(key: &str) -> Option<&str> {
    key.strip_prefix("net/ipv6/conf/")?
        .strip_suffix("/disable_ipv6")
}

fn gather_uplink(root: &HostRoot, up: &netvm_description::Uplink) -> UplinkFacts {
    let mut facts = UplinkFacts::default();
    let Ok(listed) = devices::list(root) else {
        return facts;
    };
    let wanted = |device: &devices::NetDevice| match (&up.device, &device.bus) {
        (UplinkDevice::Pci(address), devices::Bus::Pci(pci)) => pci.address == *address,
        (UplinkDevice::Usb(id), devices::Bus::Usb(usb)) => usb.id == Some(*id),
        (UplinkDevice::Platform(name), devices::Bus::Platform(p)) => p.name == *name,
        _ => false,
    };
    if let Some(device) = listed.iter().find(|d| wanted(d)) {
        facts.found = true;
        facts.driver = device.driver.clone();
        facts.interfaces = device.interfaces.clone();
        if let devices::Bus::Pci(pci) = &device.bus {
            facts.pci_id = pci.id;
        }
    } else if let UplinkDevice::Pci(address) = &up.device {
        // Bound to vfio-pci, a NIC is still listed by class; a missing
        // one is reported by the check.
        let dir = devices::pci_dir(root, *address);
        facts.found = root.exists(&dir);
        facts.driver = root.link_name(&dir.join("driver"));
        facts.pci_id = devices::pci_id(root, &dir);
    } else if let UplinkDevice::Platform(name) = &up.device {
        // Bound to vfio-platform and with an unusual node name, it is not
        // listed as a NIC.
        let dir = crate::platform::platform_dir(root, name.as_str());
        facts.found = root.exists(&dir);
        facts.driver = root.link_name(&dir.join("driver"));
    }
    facts
}

fn list_table(family: &str, name: &str) -> Option<String> {
    let output = Command::new("nft")
        .args(["list", "table", family, name])
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Checks `facts` against the description and plan.
pub fn check(system: &System, plan: &HostPlan, facts: &Facts) -> Vec<Finding> {
    let secure = system.netvm.mode == Mode::Secure;
    let mut out = Vec::new();
    let mut finding = |check: String, passed: bool, detail: String| {
        out.push(Finding {
            check,
            passed,
            detail,
        })
    };
    let bridge = &plan.bridge.name;
    finding(
        format!("bridge {bridge} exists"),
        facts.bridge_exists,
        if facts.bridge_exists {
            "present"
        } else {
            "missing (run `netvm host up`)"
        }
        .into(),
    );
    let stp_off = facts.bridge_stp.as_deref() == Some("0");
    finding(
        format!("bridge {bridge} has STP off"),
        stp_off,
        format!(
            "stp_state {}",
            facts.bridge_stp.as_deref().unwrap_or("unknown")
        ),
    );
    let snooping_off = facts.bridge_snooping.as_deref() == Some("0");
    finding(
        format!("bridge {bridge} has multicast snooping off"),
        snooping_off,
        format!(
            "multicast_snooping {}{}",
            facts.bridge_snooping.as_deref().unwrap_or("unknown"),
            if snooping_off {
                ""
            } else {
                " (a snooping bridge reports 224.0.0.106 from the host)"
            }
        ),
    );
    let expected: Vec<String> = plan.bridge.address.iter().cloned().collect();
    let address_ok = facts.bridge_addresses == expected;
    finding(
        if secure {
            format!("bridge {bridge} has no address (secure mode)")
        } else {
            format!("bridge {bridge} has only the host's address")
        },
        address_ok,
        if facts.bridge_addresses.is_empty() {
            "no address".into()
        } else {
            format!("has {}", facts.bridge_addresses.join(", "))
        },
    );
    for port in &plan.ports {
        let seen = facts.ports.get(&port.name).cloned().flatten();
        let (passed, detail) = match seen {
            None => (false, "missing".to_owned()),
            Some(p) if p.master.as_deref() != Some(bridge.as_str()) => (
                false,
                format!(
                    "on {} instead of {bridge}",
                    p.master.as_deref().unwrap_or("no bridge")
                ),
            ),
            Some(p) if p.isolated != Some(port.isolated) => (
                false,
                format!(
                    "isolated is {}, should be {}",
                    p.isolated.map(on_off).unwrap_or("unknown"),
                    on_off(port.isolated)
                ),
            ),
            Some(_) => (
                true,
                format!("on {bridge}, isolated {}", on_off(port.isolated)),
            ),
        };
        finding(format!("port {} ({})", port.name, port.vm), passed, detail);
    }
    let guard = facts.guard_table.as_deref();
    let missing: Vec<&str> = plan
        .ports
        .iter()
        .filter(|p| guard.is_some_and(|t| !t.contains(&format!("\"{}\"", p.name))))
        .map(|p| p.name.as_str())
        .collect();
    finding(
        format!(
            "layer-2 guard table bridge {} loaded",
            netvm_plan::l2guard::TABLE
        ),
        guard.is_some() && missing.is_empty(),
        match guard {
            None => "not loaded".into(),
            Some(_) if !missing.is_empty() => format!("no rule for {}", missing.join(", ")),
            Some(_) => "loaded, every port guarded".into(),
        },
    );
    let unplanned: Vec<&str> = facts
        .bridge_ports
        .iter()
        .filter(|name| !plan.ports.iter().any(|p| &p.name == *name))
        .map(String::as_str)
        .collect();
    let fallback = guard.is_some_and(|t| t.contains("jump unknown_port"));
    finding(
        format!("ports of {bridge} the plan does not name are guarded as unknown VMs"),
        guard.is_none() || fallback,
        match (unplanned.is_empty(), fallback) {
            (_, false) if guard.is_some() => "the guard has no rule for unnamed ports".into(),
            (true, _) => "none on the bridge".into(),
            (false, _) => format!("unknown VM: {}", unplanned.join(", ")),
        },
    );
    if !secure && system.host.endpoint.is_some() {
        let table = netvm_plan::host_firewall::TABLE;
        finding(
            format!("the host's firewall inet {table} loaded (dev mode)"),
            facts.host_table.is_some(),
            if facts.host_table.is_some() {
                "loaded: the internal network opens nothing on the host".into()
            } else {
                "not loaded: every VM can open connections to the host".into()
            },
        );
    }
    check_ipv6_off(plan, facts, &mut finding);
    if secure {
        check_secure(system, facts, &mut finding);
        if let Some(table) = guard {
            let sent = counter_packets(table, netvm_plan::l2guard::HOST_SENT_COUNTER);
            finding(
                "the host sent nothing on its bridges (secure mode)".into(),
                sent == Some(0),
                match sent {
                    Some(0) => "no frame".into(),
                    Some(n) => format!("{n} frame(s) from the host dropped by the guard"),
                    None => "the guard has no host_sent counter".into(),
                },
            );
        }
    }
    out
}

/// The packets of the named counter `name` in `table` as `nft list`
/// prints it (`counter NAME { packets N bytes M }`).
fn counter_packets(table: &str, name: &str) -> Option<u64> {
    let at = table.find(&format!("counter {name} {{"))?;
    table[at..]
        .split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)?
        .parse()
        .ok()
}

fn on_off(flag: bool) -> &'static str {
    if flag {
        "on"
    } else {
        "off"
    }
}

/// `disable_ipv6` where the plan sets it (both modes: the host has no
/// IPv6 on the internal network in either).
fn check_ipv6_off(plan: &HostPlan, facts: &Facts, finding: &mut impl FnMut(String, bool, String)) {
    let planned: Vec<&str> = plan
        .sysctls
        .iter()
        .filter_map(|(key, _)| disable_ipv6_of(key))
        .collect();
    // A missing port has its own failing line; `default` always exists.
    let on: Vec<String> = planned
        .iter()
        .filter_map(|name| match facts.ipv6_disabled.get(*name) {
            Some(Some(value)) if value == "1" => None,
            Some(Some(value)) => Some(format!("{name} (disable_ipv6 = {value})")),
            Some(None) if *name == "default" => Some("default (unreadable)".to_owned()),
            Some(None) | None => None,
        })
        .collect();
    finding(
        format!(
            "IPv6 off on {} and its TAPs (disable_ipv6 = 1)",
            plan.bridge.name
        ),
        on.is_empty(),
        if on.is_empty() {
            format!("off on {}", planned.join(", "))
        } else {
            format!("on for {}", on.join(", "))
        },
    );
}

fn check_secure(system: &System, facts: &Facts, finding: &mut impl FnMut(String, bool, String)) {
    let with_ipv6: Vec<String> = facts
        .ipv6_addresses
        .iter()
        .filter(|(_, addresses)| !addresses.is_empty())
        .map(|(name, addresses)| format!("{} on {name}", addresses.join(", ")))
        .collect();
    finding(
        "no IPv6 address on the bridge, its ports or the uplink (secure mode)".into(),
        with_ipv6.is_empty(),
        if with_ipv6.is_empty() {
            format!(
                "none on {}",
                facts
                    .ipv6_addresses
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        } else {
            format!("has {}", with_ipv6.join("; "))
        },
    );
    finding(
        "no default route (secure mode)".into(),
        facts.default_routes.is_empty(),
        if facts.default_routes.is_empty() {
            "none".into()
        } else {
            format!(
                "default route via {}",
                facts
                    .default_routes
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
    );
    let forwarding_off = facts.ip_forward.as_deref() == Some("0");
    finding(
        "IPv4 forwarding off (secure mode)".into(),
        forwarding_off,
        format!(
            "ip_forward = {}",
            facts.ip_forward.as_deref().unwrap_or("unknown")
        ),
    );
    let none = UplinkFacts::default();
    for (i, up) in system.netvm.uplinks.iter().enumerate() {
        let up_facts = facts.uplinks.get(i).unwrap_or(&none).clone();
        match &up.device {
            UplinkDevice::Pci(address) => {
                let bound = up_facts.driver.as_deref() == Some("vfio-pci");
                let seen = up_facts
                    .pci_id
                    .map_or_else(String::new, |id| format!(", id {id}"));
                finding(
                    format!("uplink NIC {address} bound to vfio-pci"),
                    bound,
                    driver_seen(&up_facts, &seen),
                );
                if let (Some(described), true) = (up.pci_id, up_facts.found) {
                    let same = up_facts.pci_id == Some(described);
                    finding(
                        format!("uplink NIC {address} is the described card {described}"),
                        same,
                        match up_facts.pci_id {
                            Some(id) if same => format!("id {id}"),
                            Some(id) => format!(
                                "id {id}: the description names another card (the Net VM looks for {described})"
                            ),
                            None => "its vendor:device cannot be read".into(),
                        },
                    );
                }
            }
            UplinkDevice::Usb(id) => {
                let free = up_facts.interfaces.is_empty();
                finding(
                    format!("uplink USB NIC {id} has no host interface"),
                    free,
                    if free {
                        "no interface".into()
                    } else {
                        format!("host interface {}", up_facts.interfaces.join(", "))
                    },
                );
            }
            UplinkDevice::Platform(name) => {
                let vfio = devices::VFIO_PLATFORM_DRIVER;
                finding(
                    format!("uplink platform NIC {name} bound to {vfio}"),
                    up_facts.driver.as_deref() == Some(vfio),
                    driver_seen(&up_facts, ""),
                );
            }
            UplinkDevice::Interface(_) => {}
        }
        if matches!(up.device, UplinkDevice::Pci(_) | UplinkDevice::Platform(_))
            && !up_facts.interfaces.is_empty()
        {
            finding(
                "uplink NIC has no host interface".into(),
                false,
                format!("host interface {}", up_facts.interfaces.join(", ")),
            );
        }
    }
}

/// What the audit saw of a PCI or platform uplink's driver, and `more`.
fn driver_seen(facts: &UplinkFacts, more: &str) -> String {
    if !facts.found {
        return "not found on this host".into();
    }
    format!("driver {}{more}", facts.driver.as_deref().unwrap_or("none"))
}

/// The findings as text: `PASS check: detail` / `FAIL check: detail`.
pub fn report(findings: &[Finding]) -> String {
    let mut out = String::new();
    for f in findings {
        let verdict = if f.passed { "PASS" } else { "FAIL" };
        out.push_str(&format!("{verdict} {}: {}\n", f.check, f.detail));
    }
    let failed = findings.iter().filter(|f| !f.passed).count();
    out.push_str(&format!("{} check(s), {failed} failed\n", findings.len()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::{parse, Format};

    fn secure(uplink: &str) -> (System, HostPlan) {
        let text = format!("[netvm.uplink]\n{uplink}\n[[vm]]\nname = \"a\"\n");
        let system = parse("test.toml", &text, Format::Toml).expect("valid");
        let plan = netvm_plan::host::plan(&system).expect("plan");
        (system, plan)
    }

    fn bound_uplink(id: &str) -> Facts {
        Facts {
            uplinks: vec![UplinkFacts {
                found: true,
                driver: Some("vfio-pci".into()),
                pci_id: Some(id.parse().expect("id")),
                ..UplinkFacts::default()
            }],
            ..Facts::default()
        }
    }

    fn line<'a>(findings: &'a [Finding], start: &str) -> Option<&'a Finding> {
        findings.iter().find(|f| f.check.starts_with(start))
    }

    #[test]
    fn the_pci_uplink_shows_its_id_and_fails_when_the_description_names_another_card() {
        let (system, plan) = secure("pci = \"0000:03:00.0\"\npci_id = \"8086:15F3\"");
        let same = check(&system, &plan, &bound_uplink("8086:15f3"));
        let bound = line(&same, "uplink NIC 0000:03:00.0 bound").expect("bound line");
        assert!(bound.passed);
        assert_eq!(bound.detail, "driver vfio-pci, id 8086:15f3");
        let card = line(&same, "uplink NIC 0000:03:00.0 is the described card").expect("id");
        assert!(card.passed, "{card:?}");

        let other = check(&system, &plan, &bound_uplink("10ec:8168"));
        let card = line(&other, "uplink NIC 0000:03:00.0 is the described card").expect("id");
        assert!(!card.passed);
        assert_eq!(
            card.detail,
            "id 10ec:8168: the description names another card (the Net VM looks for 8086:15f3)"
        );

        // Without `pci_id`, only the id seen is shown.
        let (system, plan) = secure("pci = \"0000:03:00.0\"");
        let findings = check(&system, &plan, &bound_uplink("10ec:8168"));
        assert!(line(&findings, "uplink NIC 0000:03:00.0 is the described").is_none());
        let bound = line(&findings, "uplink NIC 0000:03:00.0 bound").expect("bound line");
        assert_eq!(bound.detail, "driver vfio-pci, id 10ec:8168");
    }

    #[test]
    fn every_uplink_is_audited_a_backup_dongle_with_a_host_interface_fails() {
        let text = "[[netvm.uplink]]\npci = \"0000:03:00.0\"\n[[netvm.uplink]]\nusb = \"0bda:8153\"\nmac = \"02:00:00:00:99:01\"\n[[vm]]\nname = \"a\"\n";
        let system = parse("two.toml", text, Format::Toml).expect("valid");
        let plan = netvm_plan::host::plan(&system).expect("plan");
        let mut facts = bound_uplink("8086:15f3");
        facts.uplinks.push(UplinkFacts {
            found: true,
            interfaces: vec!["enx020000009901".into()],
            ..UplinkFacts::default()
        });
        let findings = check(&system, &plan, &facts);
        assert!(line(&findings, "uplink NIC 0000:03:00.0 bound").is_some_and(|f| f.passed));
        let dongle = line(&findings, "uplink USB NIC 0bda:8153 has no host interface")
            .expect("the backup is audited");
        assert!(!dongle.passed);
        assert_eq!(dongle.detail, "host interface enx020000009901");
    }

    #[test]
    fn the_secure_host_fails_on_any_ipv6_address_link_local_included() {
        let (system, plan) = secure("interface = \"eth0\"");
        let mut facts = Facts::default();
        for name in ["vmbr0", "tap-net-vm", "tap-a"] {
            facts.ipv6_addresses.insert(name.into(), Vec::new());
        }
        for (key, _) in &plan.sysctls {
            if let Some(name) = disable_ipv6_of(key) {
                facts.ipv6_disabled.insert(name.into(), Some("1".into()));
            }
        }
        let clean = check(&system, &plan, &facts);
        let none = line(&clean, "no IPv6 address").expect("IPv6 line");
        assert!(none.passed, "{none:?}");
        assert_eq!(none.detail, "none on tap-a, tap-net-vm, vmbr0");
        let off = line(&clean, "IPv6 off on vmbr0").expect("disable_ipv6 line");
        assert!(off.passed, "{off:?}");
        assert_eq!(off.detail, "off on default, vmbr0, tap-net-vm, tap-a");

        facts
            .ipv6_addresses
            .insert("tap-a".into(), vec!["fe80::ff:fe00:65/64".into()]);
        facts.ipv6_disabled.insert("tap-a".into(), Some("0".into()));
        let broken = check(&system, &plan, &facts);
        let none = line(&broken, "no IPv6 address").expect("IPv6 line");
        assert!(!none.passed);
        assert_eq!(none.detail, "has fe80::ff:fe00:65/64 on tap-a");
        let off = line(&broken, "IPv6 off on vmbr0").expect("disable_ipv6 line");
        assert!(!off.passed);
        assert_eq!(off.detail, "on for tap-a (disable_ipv6 = 0)");
    }

    #[test]
    fn the_dev_host_checks_disable_ipv6_but_not_every_address() {
        let text = "[netvm]\nmode = \"dev\"\n[netvm.uplink]\ninterface = \"eth0\"\n[host]\nuplink = \"eth9\"\n[[vm]]\nname = \"a\"\n";
        let system = parse("dev.toml", text, Format::Toml).expect("valid");
        let plan = netvm_plan::host::plan(&system).expect("plan");
        let findings = check(&system, &plan, &Facts::default());
        assert!(line(&findings, "no IPv6 address").is_none());
        assert!(line(&findings, "IPv6 off on vmbr0").is_some_and(|f| f.passed));
    }

    #[test]
    fn a_platform_uplink_must_be_on_vfio_platform_with_no_host_interface() {
        let (system, plan) = secure("platform = \"6800000.ethernet\"");
        let bound = Facts {
            uplinks: vec![UplinkFacts {
                found: true,
                driver: Some("vfio-platform".into()),
                ..UplinkFacts::default()
            }],
            ..Facts::default()
        };
        let findings = check(&system, &plan, &bound);
        let on_vfio = line(
            &findings,
            "uplink platform NIC 6800000.ethernet bound to vfio-platform",
        )
        .expect("platform line");
        assert!(on_vfio.passed, "{on_vfio:?}");
        assert!(line(&findings, "uplink NIC has no host interface").is_none());

        let host_keeps_it = Facts {
            uplinks: vec![UplinkFacts {
                found: true,
                driver: Some("tegra-mgbe".into()),
                interfaces: vec!["mgbe0_0".into()],
                ..UplinkFacts::default()
            }],
            ..Facts::default()
        };
        let findings = check(&system, &plan, &host_keeps_it);
        let on_vfio = line(&findings, "uplink platform NIC").expect("platform line");
        assert!(!on_vfio.passed);
        assert_eq!(on_vfio.detail, "driver tegra-mgbe");
        let interface = line(&findings, "uplink NIC has no host interface").expect("interface");
        assert!(!interface.passed);
        assert_eq!(interface.detail, "host interface mgbe0_0");

        let missing = check(&system, &plan, &Facts::default());
        let on_vfio = line(&missing, "uplink platform NIC").expect("platform line");
        assert_eq!(
            (on_vfio.passed, on_vfio.detail.as_str()),
            (false, "not found on this host")
        );
    }
}
