//! `netvm host devices` and `netvm host passthrough` as a user runs them,
//! on a synthetic sysfs tree (the hidden `--root` option; the same tree
//! builder as `netvm-host`'s tests): what is listed, what a bind writes,
//! how a refusal reads, and that unbind gives the NIC back.

#[path = "../../netvm-host/tests/support/mod.rs"]
mod support;

use std::process::{Command, Output};
use support::Tree;

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");
const NIC: &str = "0000:03:00.0";

fn netvm(tree: &Tree, args: &[&str]) -> Output {
    let root = tree.path("");
    Command::new(NETVM)
        .args(args)
        .arg("--root")
        .arg(&root)
        .output()
        .expect("netvm runs")
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn devices_bind_refuse_and_unbind_from_the_command_line() {
    let tree = Tree::new();
    tree.pci_driver("vfio-pci");
    tree.laptop_nics();

    let listed = netvm(&tree, &["host", "devices", "--format", "json"]);
    assert!(listed.status.success(), "{}", text(&listed));
    let devices: serde_json::Value = serde_json::from_slice(&listed.stdout).expect("json");
    // In address order: the onboard NIC first.
    assert_eq!(devices[0]["address"], "0000:00:1f.6");
    assert_eq!(
        devices[0]["passable"][0],
        "eno1 carries the host's default route"
    );
    assert_eq!(devices[1]["address"], NIC);
    assert_eq!(devices[1]["passable"], serde_json::json!([]));

    let refused = netvm(&tree, &["host", "passthrough", "bind", "0000:00:1f.6"]);
    assert!(!refused.status.success());
    assert!(
        text(&refused).contains("eno1 carries the host's default route"),
        "{}",
        text(&refused)
    );
    // Nothing written: the override still reads as the kernel shows none.
    assert_eq!(
        tree.read(&format!(
            "{}/driver_override",
            Tree::pci_dir("0000:00:1f.6")
        )),
        "(null)\n"
    );

    let bound = netvm(&tree, &["host", "passthrough", "bind", NIC]);
    assert!(bound.status.success(), "{}", text(&bound));
    assert!(
        text(&bound).contains("IOMMU group 7 bound to vfio-pci"),
        "{}",
        text(&bound)
    );
    assert_eq!(
        tree.read(&format!("{}/driver_override", Tree::pci_dir(NIC))),
        "vfio-pci"
    );
    assert_eq!(
        tree.read("sys/bus/pci/drivers/iwlwifi/unbind"),
        NIC,
        "{}",
        text(&bound)
    );

    // The kernel would now probe vfio-pci; the tree plays that part.
    tree.set_driver(NIC, Some("vfio-pci"));
    let unbound = netvm(&tree, &["host", "passthrough", "unbind", NIC]);
    assert!(unbound.status.success(), "{}", text(&unbound));
    assert!(
        text(&unbound).contains("back to iwlwifi"),
        "{}",
        text(&unbound)
    );
    assert_eq!(tree.read("sys/bus/pci/drivers/vfio-pci/unbind"), NIC);
}

#[test]
fn devices_describe_prints_a_stanza_that_checks_and_exits_1_when_none_can_pass() {
    let tree = Tree::new();
    tree.laptop_nics();
    tree.mac("wlp3s0", "a0:b1:c2:d3:e4:f5", 0);

    let described = netvm(&tree, &["host", "devices", "--describe"]);
    assert!(described.status.success(), "{}", text(&described));
    let stanza = String::from_utf8_lossy(&described.stdout).into_owned();
    assert!(
        stanza.contains(
            "# 0000:00:1f.6 (8086:15fa, e1000e, eno1, IOMMU group 9) cannot pass: eno1 carries the host's default route\n"
        ),
        "{stanza}"
    );
    // Pasted whole into a description, `netvm plan` takes it (the parse
    // of every key is in netvm-host's tests/describe.rs).
    let dir = tempfile::tempdir().expect("temporary directory");
    let file = dir.path().join("system.toml");
    std::fs::write(&file, format!("{stanza}\n[[vm]]\nname = \"a\"\n")).expect("write");
    let plan = Command::new(NETVM)
        .args(["plan", "--format", "json"])
        .arg(&file)
        .output()
        .expect("netvm runs");
    assert!(plan.status.success(), "{}\n{stanza}", text(&plan));
    let plan: serde_json::Value = serde_json::from_slice(&plan.stdout).expect("json");
    assert_eq!(plan["network"]["uplink"], "pci 0000:03:00.0");

    let json = netvm(
        &tree,
        &["host", "devices", "--describe", "--format", "json"],
    );
    assert!(json.status.success(), "{}", text(&json));
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).expect("json");
    assert_eq!(
        json[0]["uplink"],
        serde_json::json!({"pci": NIC, "pci_id": "8086:2723", "mac": "a0:b1:c2:d3:e4:f5"})
    );
    assert_eq!(json[0]["chosen"], true);
    assert_eq!(json[1]["uplink"], serde_json::Value::Null);
    assert_eq!(
        json[1]["cannot_pass"][0],
        "eno1 carries the host's default route"
    );

    // With the Wi-Fi carrying the default route too, none can pass.
    tree.default_route("wlp3s0");
    let none = netvm(&tree, &["host", "devices", "--describe"]);
    assert_eq!(none.status.code(), Some(1), "{}", text(&none));
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert_eq!(
        stderr,
        "error: none of the 2 network device(s) can be passed through (the reasons are above)\n"
    );
    assert!(
        String::from_utf8_lossy(&none.stdout)
            .contains("0000:03:00.0 (8086:2723, iwlwifi, wlp3s0, IOMMU group 7) cannot pass: wlp3s0 carries the host's default route"),
        "{}",
        text(&none)
    );
}

#[test]
fn a_platform_nic_binds_to_vfio_platform_from_the_command_line() {
    let tree = Tree::new();
    tree.orin_mgbe();

    let listed = netvm(&tree, &["host", "devices"]);
    assert!(listed.status.success(), "{}", text(&listed));
    assert!(
        text(&listed).contains(
            "platform  6800000.ethernet  nvidia,tegra234-mgbe  tegra-mgbe  mgbe0_0     5      yes"
        ),
        "{}",
        text(&listed)
    );

    let bound = netvm(&tree, &["host", "passthrough", "bind", "6800000.ethernet"]);
    assert!(bound.status.success(), "{}", text(&bound));
    assert!(
        text(&bound).contains("6800000.ethernet: IOMMU group 5 bound to vfio-platform"),
        "{}",
        text(&bound)
    );
    assert_eq!(
        tree.read(&format!(
            "{}/driver_override",
            Tree::platform_dir("6800000.ethernet")
        )),
        "vfio-platform"
    );

    let bad = netvm(
        &tree,
        &["host", "passthrough", "bind", "../6800000.ethernet"],
    );
    assert_eq!(bad.status.code(), Some(2), "{}", text(&bad));
    assert!(
        text(&bad).contains("is neither a PCI address (0000:03:00.0) nor a platform device name"),
        "{}",
        text(&bad)
    );

    tree.set_platform_driver("6800000.ethernet", Some("vfio-platform"));
    let unbound = netvm(
        &tree,
        &["host", "passthrough", "unbind", "6800000.ethernet"],
    );
    assert!(unbound.status.success(), "{}", text(&unbound));
    assert!(
        text(&unbound).contains("back to tegra-mgbe"),
        "{}",
        text(&unbound)
    );
    assert_eq!(
        tree.read("sys/bus/platform/drivers/tegra-mgbe/bind"),
        "6800000.ethernet"
    );
}
