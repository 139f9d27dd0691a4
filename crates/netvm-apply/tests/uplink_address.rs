//! The uplink's lease on a real link, as root, in a namespace the test
//! makes (name carries `uad`): a renewal that brings another address in
//! the same subnet leaves exactly the new one and its default route (the
//! kernel deletes secondaries with their primary, so the old address must
//! go before the new one comes), and a lost lease leaves none.

use netvm_testsupport::Netns;
use std::net::Ipv4Addr;

fn show(ns: &Netns, what: &[&str]) -> String {
    let out = ns.exec(what);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_new_address_in_the_same_subnet_replaces_the_old_one() {
    netvm_testsupport::require_root();
    let ns = Netns::new("uad");
    ns.ok(&[
        "ip", "link", "add", "wan0", "type", "veth", "peer", "name", "w0",
    ]);
    ns.ok(&["ip", "link", "set", "w0", "up"]);
    ns.ok(&["ip", "link", "set", "wan0", "up"]);
    let gateway = Ipv4Addr::new(10, 77, 0, 1);
    for (address, metric) in [
        (Ipv4Addr::new(10, 77, 0, 161), 1000),
        // Another address in the same /24 (a new lease after a switch of
        // access point, or an expired one).
        (Ipv4Addr::new(10, 77, 0, 162), 1000),
        (Ipv4Addr::new(10, 77, 0, 163), 0),
    ] {
        ns.inside(|| {
            netvm_apply::set_uplink_at("wan0", Some((address, 24)), Some(gateway), metric)
        })
        .unwrap_or_else(|e| panic!("{address}: {e}"));
        let addresses = show(&ns, &["ip", "-4", "-o", "addr", "show", "dev", "wan0"]);
        assert_eq!(addresses.lines().count(), 1, "{addresses}");
        assert!(addresses.contains(&format!("{address}/24")), "{addresses}");
        let routes = show(&ns, &["ip", "-4", "route", "show", "default"]);
        assert!(
            routes.contains("default via 10.77.0.1 dev wan0"),
            "{routes}"
        );
    }
    // Two addresses at once (a stray secondary): one call leaves one.
    ns.ok(&["ip", "addr", "add", "10.77.0.170/24", "dev", "wan0"]);
    ns.inside(|| {
        netvm_apply::set_uplink(
            "wan0",
            Some((Ipv4Addr::new(10, 77, 0, 171), 24)),
            Some(gateway),
        )
    })
    .expect("replace with a secondary present");
    let addresses = show(&ns, &["ip", "-4", "-o", "addr", "show", "dev", "wan0"]);
    assert_eq!(addresses.lines().count(), 1, "{addresses}");
    assert!(addresses.contains("10.77.0.171/24"), "{addresses}");
    ns.inside(|| netvm_apply::set_uplink("wan0", None, None))
        .expect("lost");
    let addresses = show(&ns, &["ip", "-4", "-o", "addr", "show", "dev", "wan0"]);
    assert!(addresses.trim().is_empty(), "{addresses}");
}
