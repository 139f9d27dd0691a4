//! Platform (device-tree) NICs on synthetic sysfs trees: how `netvm host
//! devices` lists them, what `passthrough bind` writes to hand one to
//! vfio-platform, every refusal (writing nothing), idempotence, and
//! `unbind` giving the NIC back to its driver.

mod support;

use netvm_host::describe;
use netvm_host::devices::{self, Bus, NetDevice, PlatformInfo};
use netvm_host::passthrough::{self, PassthroughError, VfioDevice};
use support::Tree;

/// The Orin's MGBE, the uplink.
const MGBE: &str = "6800000.ethernet";
/// The Orin's EQOS, carrying the host's default route.
const EQOS: &str = "2490000.ethernet";
const STATE: &str = "run/netvm/passthrough/6800000.ethernet";

fn mgbe() -> VfioDevice {
    VfioDevice::Platform(MGBE.parse().expect("name"))
}

/// An Orin-like board: MGBE alone in IOMMU group 5, EQOS in group 6 with
/// the default route, a UART that is no NIC, vfio-platform loaded.
fn orin() -> Tree {
    let tree = Tree::new();
    tree.orin_mgbe();
    tree.mac("mgbe0_0", "48:b0:2d:00:00:01", 0);
    tree.platform(EQOS)
        .compatible(&["nvidia,tegra234-eqos", "snps,dwc-qos-ethernet-4.10"])
        .of_name("ethernet")
        .driver("dwc-eth-dwmac")
        .group(6)
        .net("eth0")
        .add();
    tree.default_route("eth0");
    tree.platform("3100000.serial")
        .compatible(&["nvidia,tegra194-hsuart"])
        .of_name("serial")
        .driver("serial-tegra")
        .group(7)
        .add();
    tree
}

fn info(device: &NetDevice) -> &PlatformInfo {
    match &device.bus {
        Bus::Platform(info) => info,
        _ => panic!("{} is not a platform device", device.address()),
    }
}

fn find<'a>(devices: &'a [NetDevice], name: &str) -> &'a NetDevice {
    devices
        .iter()
        .find(|d| d.address() == name)
        .unwrap_or_else(|| panic!("{name} not listed in {devices:#?}"))
}

fn refusal(tree: &Tree, device: VfioDevice) -> String {
    let before = tree.snapshot();
    let result = passthrough::bind(&tree.root(), device);
    assert_eq!(tree.snapshot(), before, "a refusal writes nothing");
    match result {
        Err(error @ PassthroughError::Refused { .. }) => error.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn platform_nics_are_listed_with_their_group_and_blockers() {
    let tree = orin();
    let listed = devices::list(&tree.root()).expect("list");
    let names: Vec<String> = listed.iter().map(NetDevice::address).collect();
    assert_eq!(names, [EQOS, MGBE], "the UART is no NIC");

    let mgbe = find(&listed, MGBE);
    assert_eq!(mgbe.bus_name(), "platform");
    assert_eq!(mgbe.driver.as_deref(), Some("tegra-mgbe"));
    assert_eq!(mgbe.interfaces, ["mgbe0_0"]);
    assert_eq!(mgbe.id().as_deref(), Some("nvidia,tegra234-mgbe"));
    assert_eq!(mgbe.iommu_group(), Some(5));
    assert!(info(mgbe).group.is_empty());
    assert!(mgbe.can_pass(), "{:?}", mgbe.passable);

    let eqos = find(&listed, EQOS);
    assert_eq!(eqos.passable, ["eth0 carries the host's default route"]);

    let table = devices::table(&listed);
    assert!(
        table.contains("platform  6800000.ethernet  nvidia,tegra234-mgbe"),
        "{table}"
    );
}

#[test]
fn bind_hands_the_nic_to_vfio_platform_and_a_second_bind_writes_nothing() {
    let tree = orin();
    let dev = Tree::platform_dir(MGBE);
    let bound = passthrough::bind(&tree.root(), mgbe()).expect("bind");
    assert_eq!(bound.vfio_driver, "vfio-platform");
    assert_eq!(bound.iommu_group, 5);
    assert_eq!(
        tree.read(&format!("{dev}/driver_override")),
        "vfio-platform"
    );
    assert_eq!(
        tree.read("sys/bus/platform/drivers/tegra-mgbe/unbind"),
        MGBE
    );
    assert_eq!(tree.read("sys/bus/platform/drivers_probe"), MGBE);
    assert_eq!(
        tree.read("sys/bus/pci/drivers_probe"),
        "",
        "not the PCI bus"
    );
    assert_eq!(tree.read(STATE), "tegra-mgbe\n");
    let writes: Vec<String> = bound.writes.iter().map(ToString::to_string).collect();
    assert_eq!(writes.len(), 3, "{writes:?}");
    assert!(
        writes[0].starts_with("echo \"vfio-platform\" > "),
        "{writes:?}"
    );

    // The kernel now binds vfio-platform and the interface goes away.
    tree.set_platform_driver(MGBE, Some("vfio-platform"));
    std::fs::remove_dir_all(tree.path(&format!("{dev}/net"))).expect("rm net");
    std::fs::remove_file(tree.path("sys/class/net/mgbe0_0")).expect("rm class link");
    let before = tree.snapshot();
    let again = passthrough::bind(&tree.root(), mgbe()).expect("bind again");
    assert!(again.writes.is_empty(), "{:?}", again.writes);
    assert!(!again.members[0].changed);
    assert_eq!(tree.snapshot(), before);

    // Still listed, by its node name, and passable.
    let listed = devices::list(&tree.root()).expect("list");
    let nic = find(&listed, MGBE);
    assert_eq!(nic.driver.as_deref(), Some("vfio-platform"));
    assert!(nic.interfaces.is_empty());
    assert!(nic.can_pass(), "{:?}", nic.passable);
}

#[test]
fn unbind_returns_the_nic_to_its_driver() {
    let tree = orin();
    passthrough::bind(&tree.root(), mgbe()).expect("bind");
    tree.set_platform_driver(MGBE, Some("vfio-platform"));
    let dev = Tree::platform_dir(MGBE);
    let unbound = passthrough::unbind(&tree.root(), mgbe()).expect("unbind");
    assert_eq!(
        tree.read("sys/bus/platform/drivers/vfio-platform/unbind"),
        MGBE
    );
    assert_eq!(tree.read(&format!("{dev}/driver_override")), "\n");
    // The synthetic kernel re-probed nothing, so the driver is bound
    // explicitly.
    assert_eq!(tree.read("sys/bus/platform/drivers/tegra-mgbe/bind"), MGBE);
    assert_eq!(unbound.members[0].return_to.as_deref(), Some("tegra-mgbe"));
    assert!(!tree.path(STATE).exists());

    // Given back (the kernel bound tegra-mgbe), a second unbind has
    // nothing to undo.
    tree.set_platform_driver(MGBE, Some("tegra-mgbe"));
    tree.file(&format!("{dev}/driver_override"), "(null)\n");
    let before = tree.snapshot();
    let again = passthrough::unbind(&tree.root(), mgbe()).expect("unbind again");
    assert!(again.writes.is_empty(), "{:?}", again.writes);
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn refusals_name_the_reason_and_write_nothing() {
    // vfio-platform not loaded.
    let tree = orin();
    std::fs::remove_dir_all(tree.path("sys/bus/platform/drivers/vfio-platform")).expect("rm");
    let message = refusal(&tree, mgbe());
    assert!(
        message.contains("vfio-platform is not loaded: modprobe vfio-platform"),
        "{message}"
    );

    // The default route.
    let tree = orin();
    let message = refusal(&tree, VfioDevice::Platform(EQOS.parse().expect("name")));
    assert!(
        message.contains("eth0 carries the host's default route"),
        "{message}"
    );

    // Not a NIC.
    let message = refusal(
        &tree,
        VfioDevice::Platform("3100000.serial".parse().expect("name")),
    );
    assert!(message.contains("it is not a network device"), "{message}");

    // No such device.
    let message = refusal(
        &tree,
        VfioDevice::Platform("5b040000.ethernet".parse().expect("name")),
    );
    assert!(
        message.contains("there is no such platform device"),
        "{message}"
    );

    // vfio-platform wants a reset handler the kernel lacks.
    tree.file("sys/module/vfio_platform/parameters/reset_required", "Y\n");
    let message = refusal(&tree, mgbe());
    assert!(
        message.contains("vfio-platform has no reset handler for nvidia,tegra234-mgbe and requires one: load it with reset_required=0"),
        "{message}"
    );
    tree.file("sys/module/vfio_platform/parameters/reset_required", "N\n");
    passthrough::bind(&tree.root(), mgbe()).expect("reset_required=0 binds");
}

#[test]
fn groups_without_an_iommu_or_shared_with_a_busy_device_are_refused() {
    // The device tree gave the i.MX 8QM FEC no `iommus`: no group.
    let tree = orin();
    tree.platform("5b040000.ethernet")
        .compatible(&["fsl,imx8qm-fec"])
        .of_name("ethernet")
        .driver("fec")
        .net("eth1")
        .add();
    let fec = VfioDevice::Platform("5b040000.ethernet".parse().expect("name"));
    let message = refusal(&tree, fec);
    assert!(
        message.contains(
            "5b040000.ethernet has no IOMMU group: its device-tree node needs an `iommus` property"
        ),
        "{message}"
    );

    // A DMA engine in use shares the MGBE's stream ID, hence its group.
    tree.platform("2600000.dma-controller")
        .compatible(&["nvidia,tegra234-gpcdma"])
        .of_name("dma-controller")
        .driver("tegra-gpcdma")
        .group(5)
        .add();
    let message = refusal(&tree, mgbe());
    assert!(
        message.contains(
            "2600000.dma-controller (driver tegra-gpcdma) shares IOMMU group 5 and is in use"
        ),
        "{message}"
    );
    // Idle, it goes along.
    tree.set_platform_driver("2600000.dma-controller", None);
    let bound = passthrough::bind(&tree.root(), mgbe()).expect("bind");
    let members: Vec<String> = bound
        .members
        .iter()
        .map(|m| m.address.to_string())
        .collect();
    assert_eq!(members, ["2600000.dma-controller", MGBE]);
    assert_eq!(
        tree.read(&format!(
            "{}/driver_override",
            Tree::platform_dir("2600000.dma-controller")
        )),
        "vfio-platform"
    );
}

#[test]
fn no_iommu_at_all_is_refused() {
    let tree = Tree::new();
    tree.platform_driver("vfio-platform");
    tree.platform(MGBE)
        .of_name("ethernet")
        .driver("tegra-mgbe")
        .net("mgbe0_0")
        .add();
    std::fs::remove_dir(tree.path("sys/kernel/iommu_groups")).expect("rmdir");
    let message = refusal(&tree, mgbe());
    assert!(
        message.contains("IOMMU is off (no /sys/kernel/iommu_groups): the SMMU must be on"),
        "{message}"
    );
}

#[test]
fn a_pci_device_in_the_group_is_refused() {
    let tree = orin();
    tree.pci("0001:00:00.0", support::ETHERNET)
        .driver("pcieport")
        .group(5)
        .add();
    let message = refusal(&tree, mgbe());
    assert!(
        message.contains("0001:00:00.0 shares IOMMU group 5 and is not a platform device"),
        "{message}"
    );
}

#[test]
fn describe_prints_a_platform_stanza() {
    let tree = orin();
    let text = describe::text(&describe::describe(
        &devices::list(&tree.root()).expect("list"),
    ));
    assert!(
        text.contains(
            "# platform 6800000.ethernet (nvidia,tegra234-mgbe, tegra-mgbe, mgbe0_0, IOMMU group 5)\n\
             [netvm.uplink]\nplatform = \"6800000.ethernet\"\nmac = \"48:b0:2d:00:00:01\"\n"
        ),
        "{text}"
    );
    let full = format!("{text}\n[[vm]]\nname = \"a\"\n");
    let system = netvm_description::parse("d.toml", &full, netvm_description::Format::Toml)
        .unwrap_or_else(|e| panic!("{e}\n{full}"));
    assert_eq!(
        system.netvm.uplink().device,
        netvm_description::UplinkDevice::Platform(MGBE.parse().expect("name"))
    );
}
