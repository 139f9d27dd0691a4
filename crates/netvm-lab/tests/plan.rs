//! The lab's plan for the embedded defaults: namespaces, the veths that
//! stand in for the uplink NIC, the TAPs and the VMs' NICs, and what each
//! VM should get.

use netvm_description::{parse, Format};
use netvm_lab::lab::{DEFAULT_DEV, DEFAULT_SECURE};
use netvm_lab::plan::{plan, plan_with, Expected, LabPlanError, EXTRA_NAME};

fn system(text: &str) -> netvm_description::System {
    parse("default.toml", text, Format::Toml).expect("the embedded default is valid")
}

#[test]
fn the_secure_lab_gives_the_uplink_to_the_net_vm_alone() {
    let lab = plan(&system(DEFAULT_SECURE), 4).expect("plan");
    assert_eq!(
        lab.namespaces(),
        [
            "nvl4-up",
            "nvl4-host",
            "nvl4-net",
            "nvl4-v1",
            "nvl4-v2",
            "nvl4-v3",
            "nvl4-v4",
            "nvl4-x"
        ]
    );
    // The uplink: upstream to net-vm directly, under a probe-order name
    // with the described MAC (the agent finds it).
    let uplink = &lab.veths[0];
    assert_eq!(
        (uplink.a.ns.as_str(), uplink.b.ns.as_str()),
        ("nvl4-up", "nvl4-net")
    );
    assert_eq!(
        uplink.b.mac.map(|m| m.to_string()).as_deref(),
        Some("02:ad:00:00:fe:01")
    );
    // Nothing of the host touches the upstream.
    assert!(lab
        .veths
        .iter()
        .all(|v| !(v.a.ns == "nvl4-up" && v.b.ns == "nvl4-host")));
    assert_eq!(lab.host_uplink, None);
    // Every VM on a host port; the extra one expects the pool.
    let names: Vec<&str> = lab.vms.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["gui-vm", "admin-vm", "chrome-vm", "business-vm", EXTRA_NAME]
    );
    assert_eq!(lab.vms[4].expected, Expected::Pool);
    assert_eq!(
        lab.vm("chrome-vm").map(|v| v.expected),
        Some(Expected::Reserved("192.168.100.101".parse().expect("ip")))
    );
    // Allowed ports and forwards are served.
    assert_eq!(
        lab.vm("admin-vm").map(|v| v.tcp_ports.clone()),
        Some(vec![8080, 9001, 9999])
    );
    assert_eq!(lab.forwards.len(), 1);
    assert_eq!(lab.forwards[0].uplink_port, 8443);
    assert_eq!(
        lab.vm("business-vm").map(|v| v.host_port.as_str()),
        Some("tap-business-vm")
    );
}

#[test]
fn the_dev_lab_gives_the_host_its_uplink_and_bridges_the_net_vm() {
    let lab = plan(&system(DEFAULT_DEV), 0).expect("plan");
    assert_eq!(lab.host_uplink.as_deref(), Some("lan0"));
    let up = &lab.veths[0];
    assert_eq!(
        (up.a.ns.as_str(), up.b.ns.as_str(), up.b.name.as_str()),
        ("nvl0-up", "nvl0-host", "lan0")
    );
    let netvm_uplink = &lab.veths[1];
    assert_eq!(
        (
            netvm_uplink.a.ns.as_str(),
            netvm_uplink.a.name.as_str(),
            netvm_uplink.b.ns.as_str()
        ),
        ("nvl0-host", "tap-net-vm-up", "nvl0-net")
    );
}

#[test]
fn a_vm_named_like_the_extra_one_is_refused() {
    let text = format!("{DEFAULT_SECURE}\n[[vm]]\nname = \"{EXTRA_NAME}\"\n");
    assert!(matches!(
        plan(&system(&text), 1),
        Err(LabPlanError::ExtraName(_))
    ));
}

#[test]
fn the_upstream_flavour_is_planned_and_kept_in_lab_json() {
    use netvm_lab::upstream::Flavour;
    let system = system(DEFAULT_SECURE);
    let default = plan(&system, 2).expect("plan");
    assert_eq!(default.upstream_flavour, netvm_lab::upstream::DEFAULT);
    assert_eq!(default.upstream_service, None);
    let only = plan_with(&system, 2, Flavour::Ipv6Only).expect("plan");
    // The IPv4-only service behind the NAT64 has a namespace of its own,
    // outside the machines `lab up` creates (the upstream makes it).
    assert_eq!(only.upstream_service.as_deref(), Some("nvl2-svc"));
    assert!(!only.namespaces().contains(&"nvl2-svc".to_owned()));
    let json = serde_json::to_value(&only).expect("json");
    assert_eq!(json["upstream_flavour"], "ipv6-only");
    let pd = plan_with(&system, 2, Flavour::DualPd).expect("plan");
    assert_eq!(pd.upstream_service, None);
    assert_eq!(
        serde_json::to_value(&pd).expect("json")["upstream_flavour"],
        "dual-pd"
    );
}
