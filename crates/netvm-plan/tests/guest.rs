//! Finding the Net VM's interfaces inside the guest: by MAC for the
//! internal one; by name, MAC, PCI vendor:device, PCI address or USB id
//! for the uplink.

use netvm_description::{parse, Format, System};
use netvm_plan::guest::{renames, FindError, Nic, Rename};

fn system(uplink: &str) -> System {
    let text = format!("[netvm]\nmac = \"02:ad:00:00:00:01\"\n[netvm.uplink]\n{uplink}\n");
    parse("test.toml", &text, Format::Toml).expect("valid")
}

fn nic(name: &str, mac: &str, pci: Option<&str>, usb: Option<&str>) -> Nic {
    Nic {
        name: name.to_owned(),
        mac: Some(mac.parse().expect("mac")),
        pci: pci.map(|p| p.parse().expect("pci")),
        pci_id: None,
        usb: usb.map(|u| u.parse().expect("usb")),
        platform: None,
    }
}

fn rename(from: &str, to: &str) -> Rename {
    Rename {
        from: from.to_owned(),
        to: to.to_owned(),
    }
}

#[test]
fn the_internal_nic_is_found_by_mac_and_the_uplink_by_pci_address() {
    let s = system("pci = \"0000:00:14.3\"");
    let nics = [
        nic("eth0", "52:54:00:12:34:56", Some("0000:00:14.3"), None),
        nic("eth1", "02:ad:00:00:00:01", Some("0000:00:03.0"), None),
    ];
    assert_eq!(
        renames(&s, &nics),
        Ok(vec![rename("eth1", "ethint0"), rename("eth0", "uplink0")])
    );
}

#[test]
fn named_interfaces_are_left_alone() {
    let s = system("interface = \"eth0\"");
    let nics = [
        nic("eth0", "52:54:00:12:34:56", None, None),
        nic("ethint0", "02:ad:00:00:00:01", None, None),
    ];
    assert_eq!(renames(&s, &nics), Ok(vec![]));
}

#[test]
fn a_usb_uplink_and_an_uplink_mac() {
    let s = system("usb = \"0bda:8153\"");
    let nics = [
        nic("eth0", "02:ad:00:00:00:01", None, None),
        nic("eth1", "00:e0:4c:68:00:01", None, Some("0bda:8153")),
    ];
    assert_eq!(
        renames(&s, &nics),
        Ok(vec![rename("eth0", "ethint0"), rename("eth1", "uplink0")])
    );
    let s = system("pci = \"0000:00:14.3\"\nmac = \"00:e0:4c:68:00:01\"");
    assert_eq!(
        renames(&s, &nics),
        Ok(vec![rename("eth0", "ethint0"), rename("eth1", "uplink0")])
    );
}

#[test]
fn missing_or_ambiguous_interfaces_are_named() {
    let s = system("pci = \"0000:00:14.3\"");
    let none = [nic("eth0", "52:54:00:12:34:56", None, None)];
    let error = renames(&s, &none).expect_err("no internal NIC");
    assert_eq!(
        error.to_string(),
        "no interface is called ethint0 or has the net-vm's MAC 02:ad:00:00:00:01"
    );
    let two = [
        nic("eth0", "02:ad:00:00:00:01", None, None),
        nic("eth1", "52:54:00:00:00:01", Some("0000:00:14.3"), None),
        nic("eth2", "52:54:00:00:00:02", Some("0000:00:14.3"), None),
    ];
    assert!(matches!(
        renames(&s, &two),
        Err(FindError::Ambiguous { .. })
    ));
    let s = system("interface = \"wlan0\"");
    let error = renames(&s, &two).expect_err("no wlan0");
    assert_eq!(
        error.to_string(),
        "no interface is called wlan0 or is the uplink (interface wlan0)"
    );
}

/// A NIC on a PCI function with vendor:device `id`.
fn pci_nic(name: &str, mac: &str, pci: &str, id: &str) -> Nic {
    Nic {
        pci_id: Some(id.parse().expect("pci id")),
        ..nic(name, mac, Some(pci), None)
    }
}

#[test]
fn a_pci_id_finds_the_uplink_at_whatever_address_the_vmm_gave_it() {
    // Host address 0000:03:00.0; in the guest the VMM put it at 00:04.0,
    // next to the internal virtio NIC, which has the same vendor:device.
    let s = system("pci = \"0000:03:00.0\"\npci_id = \"1AF4:1041\"");
    let nics = [
        pci_nic("eth0", "02:ad:00:00:00:01", "0000:00:03.0", "1af4:1041"),
        pci_nic("eth1", "52:54:00:12:34:56", "0000:00:04.0", "1af4:1041"),
    ];
    assert_eq!(
        renames(&s, &nics),
        Ok(vec![rename("eth0", "ethint0"), rename("eth1", "uplink0")])
    );
    // Already renamed, the internal NIC is excluded by its name too.
    let nics = [
        pci_nic("ethint0", "02:ad:00:00:00:01", "0000:00:03.0", "1af4:1041"),
        pci_nic("eth1", "52:54:00:12:34:56", "0000:00:04.0", "1af4:1041"),
    ];
    assert_eq!(renames(&s, &nics), Ok(vec![rename("eth1", "uplink0")]));
}

#[test]
fn a_pci_id_wins_over_the_host_address_and_a_mac_over_both() {
    let s = system("pci = \"0000:00:14.3\"\npci_id = \"8086:15f3\"");
    let nics = [
        pci_nic("eth0", "02:ad:00:00:00:01", "0000:00:03.0", "1af4:1041"),
        // At the host's address, but another card.
        pci_nic("eth1", "52:54:00:00:00:01", "0000:00:14.3", "10ec:8168"),
        pci_nic("eth2", "52:54:00:00:00:02", "0000:00:05.0", "8086:15f3"),
    ];
    assert_eq!(
        renames(&s, &nics),
        Ok(vec![rename("eth0", "ethint0"), rename("eth2", "uplink0")])
    );
    let s = system("pci = \"0000:00:14.3\"\npci_id = \"8086:15f3\"\nmac = \"52:54:00:00:00:01\"");
    assert_eq!(
        renames(&s, &nics),
        Ok(vec![rename("eth0", "ethint0"), rename("eth1", "uplink0")])
    );
}

#[test]
fn a_pci_id_on_two_nics_or_on_none_is_named() {
    let s = system("pci = \"0000:00:14.3\"\npci_id = \"8086:15f3\"");
    let two = [
        pci_nic("eth0", "02:ad:00:00:00:01", "0000:00:03.0", "1af4:1041"),
        pci_nic("eth1", "52:54:00:00:00:01", "0000:00:04.0", "8086:15f3"),
        pci_nic("eth2", "52:54:00:00:00:02", "0000:00:05.0", "8086:15f3"),
    ];
    assert_eq!(
        renames(&s, &two).expect_err("two").to_string(),
        "interfaces eth1 and eth2 both match the uplink (PCI id 8086:15f3)"
    );
    let none = [
        pci_nic("eth0", "02:ad:00:00:00:01", "0000:00:03.0", "8086:15f3"),
        pci_nic("eth1", "52:54:00:00:00:01", "0000:00:14.3", "10ec:8168"),
    ];
    assert_eq!(
        renames(&s, &none).expect_err("none").to_string(),
        "no interface is called uplink0 or is the uplink (PCI id 8086:15f3)"
    );
}

#[test]
fn a_platform_uplink_by_its_device_name_or_its_mac() {
    let s = system("platform = \"2490000.ethernet\"");
    let nics = [
        nic("eth0", "02:ad:00:00:00:01", Some("0000:00:01.0"), None),
        Nic {
            platform: Some("2490000.ethernet".to_owned()),
            ..nic("eth1", "48:b0:2d:00:00:01", None, None)
        },
    ];
    assert_eq!(
        renames(&s, &nics),
        Ok(vec![rename("eth0", "ethint0"), rename("eth1", "uplink0")])
    );
    // The guest's device tree put it at another unit address: only the
    // MAC finds it.
    let moved = [
        nics[0].clone(),
        Nic {
            platform: Some("a0000000.ethernet".to_owned()),
            ..nics[1].clone()
        },
    ];
    assert_eq!(
        renames(&s, &moved).expect_err("moved").to_string(),
        "no interface is called uplink0 or is the uplink (platform device 2490000.ethernet)"
    );
    let s = system("platform = \"2490000.ethernet\"\nmac = \"48:b0:2d:00:00:01\"");
    assert_eq!(
        renames(&s, &moved),
        Ok(vec![rename("eth0", "ethint0"), rename("eth1", "uplink0")])
    );
}
