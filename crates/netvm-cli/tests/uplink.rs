//! The uplink's DHCP client against real servers in an upstream
//! namespace: dnsmasq (a lease with router and DNS servers, applied to the
//! interface) and Kea (a 6 s lease renewed at T1 = 2 s, then lost when Kea
//! is gone). Runs as root; needs dnsmasq and kea-dhcp4.

use netvm_testsupport::{veth, Netns, Process};
use std::path::{Path, PathBuf};
use std::time::Duration;

const NETVM: &str = env!("CARGO_BIN_EXE_netvm");
const LONG: Duration = Duration::from_secs(30);

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("uplink-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    dir
}

fn lease_of(line: &str) -> serde_json::Value {
    let event: serde_json::Value = serde_json::from_str(line).expect("json event");
    event["lease"].clone()
}

fn pair(tag: &str) -> (Netns, Netns) {
    let up = Netns::new(&format!("{tag}u"));
    let nv = Netns::new(&format!("{tag}n"));
    veth(&up, "u0", &nv, "eth0");
    up.ok(&["ip", "addr", "add", "10.9.0.1/24", "dev", "u0"]);
    (up, nv)
}

fn client(nv: &Netns) -> Process {
    nv.spawn(&[NETVM, "uplink", "dhcp", "--interface", "eth0"])
}

#[test]
fn a_lease_from_dnsmasq_is_put_on_the_uplink() {
    let dir = scratch("dnsmasq");
    let (up, nv) = pair("upd");
    let _server = up.spawn(&[
        "dnsmasq",
        "--no-daemon",
        "--port=0",
        "--bind-interfaces",
        "--interface=u0",
        "--dhcp-range=10.9.0.100,10.9.0.150,255.255.255.0,2m",
        "--dhcp-option=option:dns-server,10.9.0.53",
        &format!("--dhcp-leasefile={}", dir.join("leases").display()),
        "--dhcp-authoritative",
        "--pid-file=",
        "--user=root",
    ]);
    let client = client(&nv);
    let bound = client.wait_for(LONG, |l| l.contains("uplink_bound"));
    let lease = lease_of(&bound);
    let address = lease["address"].as_str().expect("address").to_owned();
    assert!(address.starts_with("10.9.0.1"), "{lease}");
    assert_eq!(lease["prefix"], 24);
    assert_eq!(lease["router"], "10.9.0.1");
    assert_eq!(lease["dns"], serde_json::json!(["10.9.0.53"]));
    assert_eq!(nv.ipv4_addresses("eth0"), [format!("{address}/24")]);
    assert!(nv
        .ok(&["ip", "route", "show", "default"])
        .contains("via 10.9.0.1 dev eth0"));
    assert!(nv
        .exec(&["ping", "-c", "1", "-W", "2", "10.9.0.1"])
        .status
        .success());
}

#[test]
fn a_short_kea_lease_is_renewed_then_lost_with_the_server() {
    let dir = scratch("kea");
    let (up, nv) = pair("upk");
    let config = r#"{ "Dhcp4": {
  "interfaces-config": { "interfaces": ["u0"], "dhcp-socket-type": "raw" },
  "lease-database": { "type": "memfile", "persist": false },
  "valid-lifetime": 6, "renew-timer": 2, "rebind-timer": 4,
  "subnet4": [{ "id": 1, "subnet": "10.9.0.0/24", "pools": [{ "pool": "10.9.0.200 - 10.9.0.210" }],
                "option-data": [{ "name": "routers", "data": "10.9.0.1" }] }],
  "loggers": [{ "name": "kea-dhcp4", "output_options": [{ "output": "stdout" }], "severity": "WARN" }]
} }"#;
    let path = dir.join("kea.json");
    std::fs::write(&path, config).expect("config");
    let mut kea = up.spawn(&[
        "env",
        &format!("KEA_PIDFILE_DIR={}", dir.display()),
        &format!("KEA_LOCKFILE_DIR={}", dir.display()),
        "kea-dhcp4",
        "-c",
        path.to_str().expect("utf-8"),
    ]);
    let client = client(&nv);
    let first = lease_of(&client.wait_for(LONG, |l| l.contains("uplink_bound")));
    assert!(
        first["address"]
            .as_str()
            .expect("address")
            .starts_with("10.9.0.2"),
        "{first}"
    );
    assert_eq!(
        (first["lease_secs"].as_u64(), first["renew_secs"].as_u64()),
        (Some(6), Some(2))
    );
    // Renewed at T1 (unicast to Kea): a second bound event, same address.
    let lines = client.wait_for_n(2, LONG, |l| l.contains("uplink_bound"));
    assert_eq!(
        lease_of(&lines[1])["address"],
        first["address"],
        "{lines:?}"
    );
    // Kea goes away: renewing, rebinding, then the lease ends and the
    // address leaves the interface.
    kea.signal("KILL");
    assert!(kea.wait_exit(LONG));
    client.wait_for(LONG, |l| l.contains("uplink_lost"));
    assert_eq!(nv.ipv4_addresses("eth0"), Vec::<String>::new());
}
