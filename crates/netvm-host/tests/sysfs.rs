//! `netvm host devices` and `netvm host passthrough` against synthetic
//! sysfs trees (see `support/`), plus one read-only look at the live host.

mod support;

use netvm_description::values::PciAddress;
use netvm_host::devices::{self, Bus, NetDevice, PciInfo, UsbInfo};
use netvm_host::passthrough::{self, PassthroughError, VfioDevice};
use netvm_host::HostRoot;
use support::{Tree, AUDIO, BRIDGE, ETHERNET, WIFI};

const NIC: &str = "0000:03:00.0";
const BRIDGE_ADDR: &str = "0000:00:1c.0";
const AUDIO_ADDR: &str = "0000:00:1f.3";
const ONBOARD: &str = "0000:00:1f.6";
const STATE: &str = "run/netvm/passthrough/0000:03:00.0";

fn addr(text: &str) -> PciAddress {
    text.parse().expect("test addresses are valid")
}

/// A laptop: Wi-Fi NIC alone in IOMMU group 7 behind its root port, and
/// the onboard Ethernet (group 9) carrying the default route.
fn laptop() -> Tree {
    let tree = Tree::new();
    tree.pci_driver("vfio-pci");
    tree.laptop_nics();
    tree.pci(BRIDGE_ADDR, BRIDGE)
        .id("0x8086", "0x02b8")
        .driver("pcieport")
        .group(7)
        .add();
    tree.pci("0000:00:02.0", "0x030000")
        .driver("i915")
        .group(0)
        .add();
    tree
}

fn pci_of(device: &NetDevice) -> &PciInfo {
    match &device.bus {
        Bus::Pci(pci) => pci,
        Bus::Usb(_) | Bus::Platform(_) => panic!("{} is not PCI", device.address()),
    }
}

fn usb_of(device: &NetDevice) -> &UsbInfo {
    match &device.bus {
        Bus::Usb(usb) => usb,
        Bus::Pci(_) | Bus::Platform(_) => panic!("{} is not USB", device.address()),
    }
}

fn find<'a>(devices: &'a [NetDevice], address: &str) -> &'a NetDevice {
    devices
        .iter()
        .find(|d| d.address() == address)
        .unwrap_or_else(|| panic!("{address} not listed in {devices:#?}"))
}

fn refusal(result: Result<passthrough::Bound, PassthroughError>) -> String {
    match result {
        Err(error @ PassthroughError::Refused { .. }) => error.to_string(),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn clean_group_is_listed_as_passable() {
    let tree = laptop();
    let devices = devices::list(&tree.root()).expect("list");
    let addresses: Vec<String> = devices.iter().map(NetDevice::address).collect();
    assert_eq!(addresses, [ONBOARD, NIC], "only network controllers");

    let wifi = find(&devices, NIC);
    let pci = pci_of(wifi);
    assert_eq!(wifi.driver.as_deref(), Some("iwlwifi"));
    assert_eq!(wifi.interfaces, ["wlp3s0"]);
    assert_eq!(
        pci.id.map(|id| id.to_string()).as_deref(),
        Some("8086:2723")
    );
    assert_eq!(pci.iommu_group, Some(7));
    assert_eq!(pci.group.len(), 1);
    assert_eq!(pci.group[0].address, addr(BRIDGE_ADDR));
    assert!(pci.group[0].bridge);
    assert_eq!(pci.group[0].driver.as_deref(), Some("pcieport"));
    assert!(wifi.can_pass(), "{:?}", wifi.passable);

    let onboard = find(&devices, ONBOARD);
    assert_eq!(onboard.passable, ["eno1 carries the host's default route"]);
}

#[test]
fn bind_hands_the_nic_to_vfio() {
    let tree = laptop();
    let dev = Tree::pci_dir(NIC);
    let bound = passthrough::bind(&tree.root(), addr(NIC)).expect("bind");

    assert_eq!(tree.read(&format!("{dev}/driver_override")), "vfio-pci");
    assert_eq!(tree.read("sys/bus/pci/drivers/iwlwifi/unbind"), NIC);
    assert_eq!(tree.read("sys/bus/pci/drivers_probe"), NIC);
    assert_eq!(tree.read(STATE), "iwlwifi\n");
    // The bridge stays with the host.
    let bridge = Tree::pci_dir(BRIDGE_ADDR);
    assert_eq!(tree.read(&format!("{bridge}/driver_override")), "(null)\n");
    assert_eq!(tree.read("sys/bus/pci/drivers/pcieport/unbind"), "");

    assert_eq!(bound.iommu_group, 7);
    assert_eq!(bound.members.len(), 1);
    assert_eq!(bound.members[0].address, VfioDevice::Pci(addr(NIC)));
    assert_eq!(bound.members[0].previous_driver.as_deref(), Some("iwlwifi"));
    assert!(bound.members[0].changed);
    let writes: Vec<String> = bound.writes.iter().map(|w| w.value.clone()).collect();
    assert_eq!(writes, ["vfio-pci", NIC, NIC]);
    assert!(bound.writes[1].path.ends_with("driver/unbind"));
}

#[test]
fn bind_twice_writes_nothing() {
    let tree = laptop();
    passthrough::bind(&tree.root(), addr(NIC)).expect("first bind");
    tree.set_driver(NIC, Some("vfio-pci"));
    let before = tree.snapshot();
    let again = passthrough::bind(&tree.root(), addr(NIC)).expect("second bind");
    assert!(again.writes.is_empty(), "{:?}", again.writes);
    assert!(!again.members[0].changed);
    assert_eq!(tree.snapshot(), before);
    assert_eq!(tree.read(STATE), "iwlwifi\n", "the original driver is kept");
}

#[test]
fn unbind_returns_the_original_driver() {
    let tree = laptop();
    let dev = Tree::pci_dir(NIC);
    passthrough::bind(&tree.root(), addr(NIC)).expect("bind");
    tree.set_driver(NIC, Some("vfio-pci")); // what the kernel does on probe
    tree.file("sys/bus/pci/drivers_probe", "");

    let unbound = passthrough::unbind(&tree.root(), addr(NIC)).expect("unbind");
    assert_eq!(tree.read("sys/bus/pci/drivers/vfio-pci/unbind"), NIC);
    assert_eq!(tree.read(&format!("{dev}/driver_override")), "\n");
    assert_eq!(tree.read("sys/bus/pci/drivers_probe"), NIC);
    // The fake kernel re-probes nothing, so the driver is bound by hand.
    assert_eq!(tree.read("sys/bus/pci/drivers/iwlwifi/bind"), NIC);
    assert!(!tree.path(STATE).exists(), "state file removed");
    assert_eq!(unbound.members.len(), 1);
    assert_eq!(unbound.members[0].return_to.as_deref(), Some("iwlwifi"));
    assert_eq!(unbound.writes.len(), 4);

    tree.set_driver(NIC, Some("iwlwifi"));
    let before = tree.snapshot();
    let again = passthrough::unbind(&tree.root(), addr(NIC)).expect("unbind again");
    assert!(again.writes.is_empty(), "{:?}", again.writes);
    assert!(!again.members[0].changed);
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn unbind_of_a_missing_device_is_an_error() {
    let tree = laptop();
    let error = passthrough::unbind(&tree.root(), addr("0000:09:00.0")).expect_err("missing");
    assert!(
        matches!(error, PassthroughError::NoDevice { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("0000:09:00.0"), "{error}");
}

/// NIC and an audio device in one group, as with missing ACS.
fn shared_group(audio_driver: Option<&str>) -> Tree {
    let tree = laptop();
    let audio = tree.pci(AUDIO_ADDR, AUDIO).id("0x8086", "0xa348").group(7);
    match audio_driver {
        Some(driver) => audio.driver(driver).add(),
        None => audio.add(),
    }
    tree
}

#[test]
fn shared_group_in_use_is_refused_naming_the_member() {
    let tree = shared_group(Some("snd_hda_intel"));
    let reason =
        "0000:00:1f.3 (class 0x040300, driver snd_hda_intel) shares IOMMU group 7 and is in use";
    let devices = devices::list(&tree.root()).expect("list");
    assert_eq!(find(&devices, NIC).passable, [reason]);

    let before = tree.snapshot();
    let message = refusal(passthrough::bind(&tree.root(), addr(NIC)));
    assert!(message.contains(reason), "{message}");
    assert_eq!(tree.snapshot(), before, "a refusal writes nothing");
    assert!(!tree.path("run").exists());
}

#[test]
fn idle_group_members_go_along() {
    let tree = shared_group(None);
    let bound = passthrough::bind(&tree.root(), addr(NIC)).expect("bind");
    let members: Vec<String> = bound
        .members
        .iter()
        .map(|m| m.address.to_string())
        .collect();
    assert_eq!(members, [AUDIO_ADDR, NIC]);
    let audio = Tree::pci_dir(AUDIO_ADDR);
    assert_eq!(tree.read(&format!("{audio}/driver_override")), "vfio-pci");
    assert!(!tree.path("run/netvm/passthrough/0000:00:1f.3").exists());
    assert_eq!(tree.read(STATE), "iwlwifi\n");
}

#[test]
fn a_second_nic_in_the_group_goes_along() {
    let tree = laptop();
    tree.pci("0000:03:00.1", ETHERNET)
        .driver("igb")
        .group(7)
        .net("enp3s0f1")
        .add();
    let bound = passthrough::bind(&tree.root(), addr(NIC)).expect("bind");
    assert_eq!(bound.members.len(), 2);
    assert_eq!(tree.read("run/netvm/passthrough/0000:03:00.1"), "igb\n");
    assert_eq!(tree.read("sys/bus/pci/drivers/igb/unbind"), "0000:03:00.1");
}

#[test]
fn no_iommu_is_refused() {
    let tree = Tree::new();
    tree.pci_driver("vfio-pci");
    tree.pci(NIC, WIFI).driver("iwlwifi").net("wlp3s0").add();
    let devices = devices::list(&tree.root()).expect("list");
    assert_eq!(pci_of(&devices[0]).iommu_group, None);
    assert!(devices[0].passable[0].starts_with("IOMMU is off (no /sys/kernel/iommu_groups)"));

    let before = tree.snapshot();
    let message = refusal(passthrough::bind(&tree.root(), addr(NIC)));
    assert!(message.contains("IOMMU is off"), "{message}");
    assert!(message.contains("intel_iommu=on"), "{message}");
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn device_outside_the_iommu_is_refused() {
    let tree = laptop();
    tree.pci("0000:04:00.0", ETHERNET).driver("r8169").add();
    let message = refusal(passthrough::bind(&tree.root(), addr("0000:04:00.0")));
    assert!(
        message.contains("IOMMU is off for 0000:04:00.0"),
        "{message}"
    );
}

#[test]
fn default_route_on_the_nic_is_refused() {
    let tree = laptop();
    tree.default_route("wlp3s0");
    let before = tree.snapshot();
    let message = refusal(passthrough::bind(&tree.root(), addr(NIC)));
    assert!(
        message.contains("wlp3s0 carries the host's default route"),
        "{message}"
    );
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn ipv6_default_route_is_refused() {
    let tree = laptop();
    tree.default_route6("wlp3s0");
    let message = refusal(passthrough::bind(&tree.root(), addr(NIC)));
    assert!(
        message.contains("wlp3s0 carries the host's default route"),
        "{message}"
    );
}

#[test]
fn default_route_through_a_bridge_is_refused() {
    let tree = laptop();
    tree.master("wlp3s0", "br0");
    tree.default_route("br0");
    let message = refusal(passthrough::bind(&tree.root(), addr(NIC)));
    assert!(
        message.contains("wlp3s0 is a port of br0, which carries the host's default route"),
        "{message}"
    );
}

#[test]
fn default_route_on_a_group_member_is_refused() {
    let tree = laptop();
    tree.pci("0000:03:00.1", ETHERNET)
        .driver("igb")
        .group(7)
        .net("enp3s0f1")
        .add();
    tree.default_route("enp3s0f1");
    let message = refusal(passthrough::bind(&tree.root(), addr(NIC)));
    assert!(
        message.contains("enp3s0f1 carries the host's default route"),
        "{message}"
    );
}

#[test]
fn missing_vfio_pci_is_refused() {
    let tree = laptop();
    std::fs::remove_dir_all(tree.path("sys/bus/pci/drivers/vfio-pci")).expect("unload");
    let before = tree.snapshot();
    let message = refusal(passthrough::bind(&tree.root(), addr(NIC)));
    assert!(
        message.contains("vfio-pci is not loaded: modprobe vfio-pci"),
        "{message}"
    );
    assert_eq!(tree.snapshot(), before);
}

#[test]
fn only_existing_network_controllers_are_bound() {
    let tree = laptop();
    let message = refusal(passthrough::bind(&tree.root(), addr("0000:00:02.0")));
    assert!(
        message.contains("not a network controller (class 0x030000)"),
        "{message}"
    );
    let message = refusal(passthrough::bind(&tree.root(), addr("0000:09:00.0")));
    assert!(message.contains("no such PCI device"), "{message}");
}

#[test]
fn virtio_interfaces_are_found() {
    let tree = Tree::new();
    tree.pci("0000:00:03.0", ETHERNET)
        .id("0x1af4", "0x1041")
        .driver("virtio-pci")
        .add();
    tree.interface(
        &format!("{}/virtio2", Tree::pci_dir("0000:00:03.0")),
        "eth0",
    );
    let devices = devices::list(&tree.root()).expect("list");
    assert_eq!(devices[0].interfaces, ["eth0"]);
    assert_eq!(devices[0].id().as_deref(), Some("1af4:1041"));
}

#[test]
fn odd_sysfs_contents_are_skipped() {
    let tree = laptop();
    tree.pci("0000:05:00.0", "junk").add();
    tree.file("sys/bus/pci/devices/not-an-address", "");
    tree.file("sys/kernel/iommu_groups/7/devices/garbage", "");
    tree.file(&format!("{}/vendor", Tree::pci_dir(NIC)), "");
    tree.file("proc/net/route", "no header\nx\n\n\t\t\n");
    let devices = devices::list(&tree.root()).expect("list");
    assert_eq!(devices.len(), 2);
    assert_eq!(pci_of(find(&devices, NIC)).id, None);
    assert_eq!(pci_of(find(&devices, NIC)).group.len(), 1);
}

#[test]
fn missing_sysfs_is_an_error() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let error = devices::list(&HostRoot::new(dir.path())).expect_err("no sys");
    assert!(
        error.to_string().contains("sysfs is not mounted"),
        "{error}"
    );
}

/// A phone tethering over CDC-NCM, a Realtek r8152 dongle, an unbound
/// CDC-ECM adapter and a keyboard.
fn usb_tree() -> Tree {
    let tree = Tree::new();
    tree.usb_device("1-2", "12d1", "14db", "HUAWEI_MOBILE");
    tree.usb_interface("1-2:1.0", "02", "0d", Some("cdc_ncm"), &["usb0"]);
    tree.usb_interface("1-2:1.1", "0a", "00", Some("cdc_ncm"), &[]);
    tree.usb_device("2-1.4", "0bda", "8153", "USB 10/100/1000 LAN");
    tree.usb_interface("2-1.4:1.0", "ff", "ff", Some("r8152"), &["enx00e04c680001"]);
    tree.usb_device("3-1", "0b95", "1790", "AX88179");
    tree.usb_interface("3-1:1.0", "02", "06", None, &[]);
    tree.usb_device("1-3", "046d", "c31c", "USB Keyboard");
    tree.usb_interface("1-3:1.0", "03", "01", Some("usbhid"), &[]);
    tree
}

#[test]
fn usb_nics_are_listed_by_device() {
    let tree = usb_tree();
    tree.default_route("usb0");
    let devices = devices::list(&tree.root()).expect("list");
    let ports: Vec<String> = devices.iter().map(NetDevice::address).collect();
    assert_eq!(
        ports,
        ["1-2", "2-1.4", "3-1"],
        "grouped by device, keyboard left out"
    );

    let phone = find(&devices, "1-2");
    assert_eq!(phone.bus_name(), "usb");
    assert_eq!(phone.id().as_deref(), Some("12d1:14db"));
    assert_eq!(phone.driver.as_deref(), Some("cdc_ncm"));
    assert_eq!(phone.interfaces, ["usb0"]);
    assert_eq!(phone.passable, ["usb0 carries the host's default route"]);
    assert_eq!(usb_of(phone).busnum, Some(1));

    let dongle = find(&devices, "2-1.4");
    assert_eq!(dongle.id().as_deref(), Some("0bda:8153"));
    assert_eq!(dongle.driver.as_deref(), Some("r8152"));
    assert_eq!(dongle.interfaces, ["enx00e04c680001"]);
    assert_eq!(
        usb_of(dongle).product.as_deref(),
        Some("USB 10/100/1000 LAN")
    );
    assert_eq!(usb_of(dongle).devpath.as_deref(), Some("1.4"));
    assert!(dongle.can_pass());

    let unbound = find(&devices, "3-1");
    assert_eq!(unbound.driver, None);
    assert!(unbound.interfaces.is_empty());
}

#[test]
fn table_shows_the_key_facts() {
    let tree = shared_group(Some("snd_hda_intel"));
    tree.usb_device("2-1", "0bda", "8153", "USB 10/100/1000 LAN");
    tree.usb_interface("2-1:1.0", "ff", "ff", Some("r8152"), &["enx00e04c680001"]);
    let devices = devices::list(&tree.root()).expect("list");
    let table = devices::table(&devices);
    println!("{table}");
    let lines: Vec<&str> = table.lines().collect();
    for column in [
        "BUS",
        "ADDRESS",
        "ID",
        "DRIVER",
        "INTERFACES",
        "GROUP",
        "PASSTHROUGH",
    ] {
        assert!(lines[0].contains(column), "{table}");
    }
    let row = |address: &str| {
        lines
            .iter()
            .find(|l| l.contains(address) && !l.starts_with(' '))
            .unwrap_or_else(|| panic!("no row for {address} in\n{table}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    assert_eq!(
        row(NIC),
        ["pci", NIC, "8086:2723", "iwlwifi", "wlp3s0", "7", "no"]
    );
    assert_eq!(
        row(ONBOARD),
        ["pci", ONBOARD, "8086:15fa", "e1000e", "eno1", "9", "no"]
    );
    assert_eq!(
        row("2-1"),
        [
            "usb",
            "2-1",
            "0bda:8153",
            "r8152",
            "enx00e04c680001",
            "-",
            "yes",
            "(by",
            "USB",
            "id)"
        ]
    );
    assert!(table.contains("    group 7 also holds 0000:00:1c.0 (PCI bridge, pcieport)"));
    assert!(table.contains("    group 7 also holds 0000:00:1f.3 (class 0x040300, snd_hda_intel)"));
    assert!(table.contains(
        "    cannot pass: 0000:00:1f.3 (class 0x040300, driver snd_hda_intel) shares IOMMU group 7 and is in use"
    ));
    assert!(table.contains("    cannot pass: eno1 carries the host's default route"));
}

/// Read-only: lists whatever the machine running the tests has.
#[test]
fn live_host_lists_without_error() {
    let devices = devices::list(&HostRoot::live()).expect("list on the live host");
    println!("{}", devices::table(&devices));
}

#[test]
fn default_route_interfaces_from_both_families() {
    let tree = laptop();
    tree.default_route6("wlp3s0");
    let found = devices::default_route_interfaces(&tree.root());
    assert_eq!(found.into_iter().collect::<Vec<_>>(), ["eno1", "wlp3s0"]);
    std::fs::remove_dir_all(tree.path("proc")).expect("remove proc");
    assert!(devices::default_route_interfaces(&tree.root()).is_empty());
}
