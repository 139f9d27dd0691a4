//! Fuzzes the DHCPv6 server's message handler: any bytes, from one of a
//! few source MACs, fed in sequence to one server (so leases built by
//! earlier inputs are exercised too), must be answered or dropped without
//! a panic, and no two leases may ever share an address.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_description::values::MacAddr;
use netvm_dhcp6::server::{duid_ll, Server6, Server6Config, POOL_IID_BASE};
use std::collections::BTreeSet;
use std::sync::{LazyLock, Mutex};

const MACS: [MacAddr; 4] = [
    MacAddr([2, 0xaa, 0, 0, 0, 7]),
    MacAddr([2, 0xaa, 0, 0, 0, 8]),
    MacAddr([2, 0xbb, 0, 0, 0, 1]),
    MacAddr([2, 0xbb, 0, 0, 0, 2]),
];

static SERVER: LazyLock<Mutex<Server6>> = LazyLock::new(|| {
    let prefix = "fd00:0:0:1::".parse().expect("prefix");
    let mut config = Server6Config::new(prefix, duid_ll(MacAddr([2, 0xad, 0, 0, 0, 1])));
    config.reservations = vec![
        (MACS[0], Server6Config::address(prefix, 7)),
        (MACS[1], Server6Config::address(prefix, 8)),
    ];
    config.pool = POOL_IID_BASE + 200..=POOL_IID_BASE + 201;
    config.dns = vec![Server6Config::address(prefix, 1)];
    config.search = vec!["internal".to_owned()];
    config.valid_lifetime = 120;
    config.preferred_lifetime = 60;
    config.t1 = 30;
    config.t2 = 48;
    Mutex::new(Server6::new(config).expect("valid configuration"))
});

fuzz_target!(|data: &[u8]| {
    let mut server = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    // Ten seconds per message: leases run out now and then.
    let now = 1_800_000_000_000 + server.counters().received * 10_000;
    // The source MAC from the transaction-id's last octet, so the seeds
    // stay plain DHCPv6 messages.
    let mac = MACS[usize::from(data.get(3).copied().unwrap_or(0)) % MACS.len()];
    let _ = server.handle(now, mac, data);
    let _ = server.tick(now);
    let mut seen = BTreeSet::new();
    for lease in server.leases() {
        assert!(seen.insert(lease.ip), "{} leased twice", lease.ip);
    }
});
