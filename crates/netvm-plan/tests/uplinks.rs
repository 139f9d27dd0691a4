//! Several uplinks: what the plan makes of them (names, the ruleset's
//! uplink sets, the active one, renames, per-uplink kernel settings).

use netvm_description::{parse, Format, System};
use netvm_plan::datapath::Ipv6Uplink;
use netvm_plan::datapath::{plan, plan_for};
use netvm_plan::guest::{renames, uplink_for, Nic};
use netvm_testsupport::nft_check;

const SEVERAL: &str = "\
[[netvm.uplink]]
interface = \"wan0\"
priority = 20
[[netvm.uplink]]
usb = \"0bda:8153\"
mac = \"02:00:00:00:99:01\"
[[vm]]
name = \"a\"
internet = true
forward = [{ proto = \"tcp\", port = 8443 }]
";

fn system(text: &str) -> System {
    parse("uplinks.toml", text, Format::Toml).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn several_uplinks_are_named_and_ranked_as_described() {
    let s = system(SEVERAL);
    let names: Vec<(&str, u32)> = s
        .netvm
        .uplinks
        .iter()
        .map(|u| (u.name.as_str(), u.priority))
        .collect();
    assert_eq!(names, vec![("wan0", 20), ("uplink1", 20)]);
}

#[test]
fn only_the_active_uplink_carries_vms_and_forwards() {
    let s = system(SEVERAL);
    let none = plan(&s, &[]);
    assert!(
        none.ruleset
            .contains("set uplinks {\n\t\ttype ifname\n\t\telements = { \"wan0\", \"uplink1\" }"),
        "{}",
        none.ruleset
    );
    assert!(none
        .ruleset
        .contains("set uplink_active {\n\t\ttype ifname\n\t}"));
    assert!(none
        .ruleset
        .contains("oifname @uplink_active ip saddr @internet accept"));
    assert!(none
        .ruleset
        .contains("iifname @uplink_active oifname \"ethint0\" ct status dnat accept"));
    assert!(none.ruleset.contains(
        "iifname @uplink_active fib daddr . iif type local meta l4proto tcp th dport 8443"
    ));
    assert!(none
        .ruleset
        .contains("iifname @uplinks udp sport 67 udp dport 68 accept"));
    assert!(none
        .ruleset
        .contains("oifname @uplinks ip saddr 192.168.100.0/24 masquerade"));
    assert!(
        !none.ruleset.contains("\"uplink1\" ip"),
        "no literal backup rules"
    );
    nft_check("several uplinks, none active", &none.ruleset);

    let active = "uplink1".parse().expect("name");
    let on_usb = plan_for(&s, &[], &[], &Ipv6Uplink::default(), Some(&active));
    assert!(on_usb
        .ruleset
        .contains("set uplink_active {\n\t\ttype ifname\n\t\telements = { \"uplink1\" }"));
    nft_check("several uplinks, uplink1 active", &on_usb.ruleset);
    // An active uplink the description does not name is none.
    let stranger = "eth9".parse().expect("name");
    let odd = plan_for(&s, &[], &[], &Ipv6Uplink::default(), Some(&stranger));
    assert_eq!(odd.ruleset, none.ruleset);

    // Each uplink has its interface, DHCP, no reverse-path filter; the
    // backup has no IPv6 at all.
    let uplinks: Vec<&str> = on_usb
        .interfaces
        .iter()
        .filter(|i| i.role == netvm_plan::datapath::InterfaceRole::Uplink)
        .map(|i| i.name.as_str())
        .collect();
    assert_eq!(uplinks, vec!["wan0", "uplink1"]);
    for key in [
        "net/ipv4/conf/uplink1/rp_filter",
        "net/ipv6/conf/uplink1/disable_ipv6",
    ] {
        assert!(on_usb.sysctls.iter().any(|(k, _)| k == key), "{key}");
    }
    assert!(on_usb.sysctls.contains(&(
        "net/ipv6/conf/uplink1/disable_ipv6".to_owned(),
        "1".to_owned()
    )));
}

#[test]
fn one_uplink_renders_as_it_always_did() {
    let s = system("[netvm.uplink]\ninterface = \"wan0\"\n[[vm]]\nname = \"a\"\n");
    let p = plan(&s, &[]);
    assert!(!p.ruleset.contains("@uplink"));
    assert!(p
        .ruleset
        .contains("oifname \"wan0\" ip saddr @internet accept"));
}

#[test]
fn a_lone_wifi_uplink_is_tended_like_several() {
    // Its link comes and goes with its network: the agent's uplink
    // manager tends it, so the ruleset names it through the sets and no
    // default route is planned.
    let s = system(
        "[netvm.uplink]\ninterface = \"wlan0\"\nkind = \"wifi\"\n\
         wifi = [{ ssid = \"home\", psk_file = \"/etc/netvm/home.psk\" }]\n\
         [[vm]]\nname = \"a\"\n",
    );
    assert!(s.netvm.managed_uplinks());
    let p = plan(&s, &[]);
    assert!(p
        .ruleset
        .contains("set uplinks {\n\t\ttype ifname\n\t\telements = { \"wlan0\" }"));
    assert!(p
        .ruleset
        .contains("oifname @uplink_active ip saddr @internet accept"));
    assert!(p.routes.is_empty());
    nft_check("a lone Wi-Fi uplink", &p.ruleset);
    let wired = system("[netvm.uplink]\ninterface = \"wan0\"\n");
    assert!(!wired.netvm.managed_uplinks());
}

fn nic(name: &str, mac: &str, usb: Option<&str>) -> Nic {
    Nic {
        name: name.to_owned(),
        mac: Some(mac.parse().expect("mac")),
        pci: None,
        pci_id: None,
        usb: usb.map(|u| u.parse().expect("usb")),
        platform: None,
    }
}

#[test]
fn a_missing_backup_is_left_for_hot_plug_and_found_when_it_appears() {
    let s = system(SEVERAL);
    let internal = s.netvm.endpoint.mac.to_string();
    let at_boot = [
        nic("eth0", &internal, None),
        nic("wan0", "02:00:00:00:00:07", None),
    ];
    let found = renames(&s, &at_boot).expect("a missing backup is no error");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].to, "ethint0");

    let present = vec!["ethint0".to_owned(), "wan0".to_owned()];
    let dongle = nic("enx020000009901", "02:00:00:00:99:01", Some("0bda:8153"));
    assert_eq!(
        uplink_for(&s, &dongle, &present).as_deref(),
        Some("uplink1")
    );
    let other = nic("enx02", "02:00:00:00:99:02", Some("0bda:8153"));
    assert_eq!(uplink_for(&s, &other, &present), None, "the MAC decides");
    let mut with = present.clone();
    with.push("uplink1".to_owned());
    assert_eq!(uplink_for(&s, &dongle, &with), None, "already there");
}

#[test]
fn the_net_vm_gets_every_uplink_device() {
    let s = system(
        "[[netvm.uplink]]\npci = \"0000:00:14.3\"\n[[netvm.uplink]]\nusb = \"0bda:8153\"\nmac = \"02:00:00:00:99:01\"\n[[netvm.uplink]]\nusb = \"0b95:1790\"\nmac = \"02:00:00:00:99:02\"\n[[vm]]\nname = \"a\"\n",
    );
    let host = netvm_plan::host::plan(&s).expect("host plan");
    let args = netvm_plan::vmm::args(&s, &host, "net-vm", netvm_plan::vmm::Vmm::Qemu)
        .expect("QEMU arguments")
        .join(" ");
    assert!(args.contains("vfio-pci,host=0000:00:14.3"), "{args}");
    assert_eq!(
        args.matches("qemu-xhci").count(),
        1,
        "one USB controller: {args}"
    );
    assert!(args.contains("vendorid=0x0bda,productid=0x8153"), "{args}");
    assert!(args.contains("vendorid=0x0b95,productid=0x1790"), "{args}");
    let vm = netvm_plan::vmm::args(&s, &host, "a", netvm_plan::vmm::Vmm::Qemu)
        .expect("arguments")
        .join(" ");
    assert!(!vm.contains("vfio") && !vm.contains("usb-host"), "{vm}");
}
