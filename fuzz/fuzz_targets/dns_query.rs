//! Fuzzes the DNS engine's query path: any bytes, fed in sequence to one
//! engine (so cached answers and waiting questions built by earlier
//! inputs are exercised too), as a query from a client and as an
//! upstream's answer to whatever the engine asked, must be answered or
//! dropped without a panic. The zone has an IPv6 prefix, so names under
//! `ip6.arpa` go through its nibble parser.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_dns::{Client, Config, Engine, Step, Transport, Zone};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{LazyLock, Mutex};

static ENGINE: LazyLock<Mutex<(Engine, u64)>> = LazyLock::new(|| {
    let prefix6 = Ipv6Addr::new(0xfd12, 0x3456, 0x789a, 0, 0, 0, 0, 0);
    let zone = Zone::new(
        "internal",
        Ipv4Addr::new(192, 168, 100, 0),
        24,
        "net-vm.internal",
        &[
            ("net-vm.internal".into(), IpAddr::V4(Ipv4Addr::new(192, 168, 100, 1)), true),
            ("net-vm.internal".into(), IpAddr::V6(Ipv6Addr::new(0xfd12, 0x3456, 0x789a, 0, 0, 0, 0, 1)), true),
        ],
    )
    .expect("zone")
    .with_prefix6(prefix6, 64);
    let config = Config {
        upstreams: vec![
            SocketAddr::from(([203, 0, 113, 1], 53)),
            SocketAddr::from((Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x53), 53)),
        ],
        cache_size: 64,
        client_rate: 0,
        client_burst: 1,
        max_inflight: 16,
        seed: 1,
    };
    Mutex::new((Engine::new(zone, config), 0))
});

fuzz_target!(|data: &[u8]| {
    let mut guard = ENGINE.lock().unwrap_or_else(|p| p.into_inner());
    let (engine, now) = &mut *guard;
    *now += 100;
    // Odd second bytes come from an IPv6 client (the rate limit's other
    // keying), even ones from an IPv4 client.
    let addr = if data.get(1).is_some_and(|b| b & 1 == 1) {
        SocketAddr::from((Ipv6Addr::new(0xfd12, 0x3456, 0x789a, 0, 0, 0, 0, 0x65), 5353))
    } else {
        SocketAddr::from(([192, 168, 100, 101], 5353))
    };
    let client = Client {
        addr,
        transport: if data.first().is_some_and(|b| b & 1 == 1) { Transport::Tcp(1) } else { Transport::Udp },
    };
    let mut steps = Vec::new();
    engine.query(*now, client, data, &mut steps);
    for step in steps {
        if let Step::Ask { token, .. } = step {
            let mut out = Vec::new();
            if data.len() % 3 == 0 {
                engine.upstream_failed(token, &mut out);
            } else {
                engine.upstream_reply(*now, token, data, &mut out);
            }
        }
    }
});
