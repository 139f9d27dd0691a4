//! `netvm host devices --describe` on synthetic sysfs trees: which NIC's
//! `[netvm.uplink]` is live, which are commented alternatives, how a
//! blocked NIC reads, and that the whole text is a description's uplink.

mod support;

use netvm_description::{parse, Format, UplinkDevice};
use netvm_host::{describe, devices};
use support::{Tree, AUDIO, ETHERNET};

const NIC: &str = "0000:03:00.0";
const ONBOARD: &str = "0000:00:1f.6";

/// A laptop: Wi-Fi alone in group 7, the onboard Ethernet carrying the
/// default route, a USB dongle, and a second Ethernet sharing group 11
/// with an audio device in use.
fn laptop() -> Tree {
    let tree = Tree::new();
    tree.laptop_nics();
    tree.mac("wlp3s0", "a0:b1:c2:d3:e4:f5", 0);
    tree.pci("0000:05:00.0", ETHERNET)
        .id("0x10ec", "0x8168")
        .driver("r8169")
        .group(11)
        .net("enp5s0")
        .add();
    tree.pci("0000:05:00.1", AUDIO)
        .id("0x10ec", "0x0001")
        .driver("snd_hda_intel")
        .group(11)
        .add();
    tree.usb_device("2-1", "0bda", "8153", "USB 10/100/1000 LAN");
    tree.usb_interface("2-1:1.0", "ff", "ff", Some("r8152"), &["enx00e04c680001"]);
    tree.mac("enx00e04c680001", "00:e0:4c:68:00:01", 0);
    tree
}

/// A description made of `text` and one VM.
fn uplink_of(text: &str) -> netvm_description::Uplink {
    let full = format!("{text}\n[[vm]]\nname = \"a\"\n");
    parse("described.toml", &full, Format::Toml)
        .unwrap_or_else(|e| panic!("{e}\n---\n{full}"))
        .netvm
        .uplink()
        .clone()
}

#[test]
fn the_first_passable_nic_is_live_the_others_commented_the_blocked_explained() {
    let tree = laptop();
    let listed = devices::list(&tree.root()).expect("list");
    let described = describe::describe(&listed);
    assert!(describe::any_passable(&described));
    let text = describe::text(&described);
    let expected = "\
# netvm host devices --describe: paste into the system description.

# pci 0000:03:00.0 (8086:2723, iwlwifi, wlp3s0, IOMMU group 7)
[netvm.uplink]
pci = \"0000:03:00.0\"
pci_id = \"8086:2723\"
mac = \"a0:b1:c2:d3:e4:f5\"

# or usb 2-1 (0bda:8153, r8152, enx00e04c680001, \"USB 10/100/1000 LAN\") (uncomment to use it instead):
# [netvm.uplink]
# usb = \"0bda:8153\"
# mac = \"00:e0:4c:68:00:01\"

# 0000:00:1f.6 (8086:15fa, e1000e, eno1, IOMMU group 9) cannot pass: eno1 carries the host's default route
# 0000:05:00.0 (10ec:8168, r8169, enp5s0, IOMMU group 11) cannot pass: 0000:05:00.1 (class 0x040300, driver snd_hda_intel) shares IOMMU group 11 and is in use
";
    assert_eq!(text, expected);

    // Pasted whole, it is a valid uplink: the live stanza.
    let uplink = uplink_of(&text);
    assert_eq!(uplink.device, UplinkDevice::Pci(NIC.parse().expect("pci")));
    assert_eq!(uplink.pci_id, Some("8086:2723".parse().expect("id")));
    assert_eq!(uplink.mac, Some("a0:b1:c2:d3:e4:f5".parse().expect("mac")));

    // The alternative, uncommented instead, is one too.
    let usb: String = text
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .skip_while(|l| !l.starts_with("[netvm.uplink]"))
        .take(3)
        .map(|l| format!("{l}\n"))
        .collect();
    let uplink = uplink_of(&usb);
    assert_eq!(
        uplink.device,
        UplinkDevice::Usb("0bda:8153".parse().expect("usb"))
    );
    assert_eq!(uplink.mac, Some("00:e0:4c:68:00:01".parse().expect("mac")));
}

#[test]
fn a_nic_already_on_vfio_comes_first_and_has_no_mac() {
    let tree = laptop();
    tree.pci("0000:06:00.0", ETHERNET)
        .id("0x8086", "0x15f3")
        .driver("vfio-pci")
        .group(12)
        .add();
    let described = describe::describe(&devices::list(&tree.root()).expect("list"));
    let text = describe::text(&described);
    let uplink = uplink_of(&text);
    assert_eq!(
        uplink.device,
        UplinkDevice::Pci("0000:06:00.0".parse().expect("pci"))
    );
    assert_eq!(uplink.pci_id, Some("8086:15f3".parse().expect("id")));
    assert_eq!(uplink.mac, None, "{text}");
    assert!(text.contains("# or pci 0000:03:00.0 (8086:2723"), "{text}");
}

#[test]
fn a_mac_set_by_software_is_left_out() {
    let tree = laptop();
    tree.mac("wlp3s0", "3a:11:22:33:44:55", 1);
    let listed = devices::list(&tree.root()).expect("list");
    let wifi = listed.iter().find(|d| d.address() == NIC).expect("wifi");
    assert_eq!(wifi.mac, None);
    let text = describe::text(&describe::describe(&listed));
    assert_eq!(uplink_of(&text).mac, None, "{text}");
}

#[test]
fn no_passable_nic_is_said() {
    let tree = Tree::new();
    tree.pci(ONBOARD, ETHERNET)
        .id("0x8086", "0x15fa")
        .driver("e1000e")
        .net("eno1")
        .add();
    // No group at all: the IOMMU is off.
    std::fs::remove_dir(tree.path("sys/kernel/iommu_groups")).expect("rmdir");
    tree.default_route("eno1");
    let described = describe::describe(&devices::list(&tree.root()).expect("list"));
    assert!(!describe::any_passable(&described));
    assert_eq!(
        describe::text(&described),
        "# netvm host devices --describe: paste into the system description.\n\n\
         # 0000:00:1f.6 (8086:15fa, e1000e, eno1) cannot pass: IOMMU is off (no /sys/kernel/iommu_groups): \
         enable intel_iommu=on or amd_iommu=on; eno1 carries the host's default route\n"
    );
}
