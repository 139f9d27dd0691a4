//! Finding the Net VM's interfaces inside the guest: by MAC for the
//! internal one; by name, MAC, PCI address or USB id for the uplink.

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
        usb: usb.map(|u| u.parse().expect("usb")),
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
