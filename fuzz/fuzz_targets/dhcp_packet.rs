//! Fuzzes the DHCP server's packet handler: any bytes, fed in sequence to
//! one server (so state built by earlier inputs is exercised too), must be
//! answered or dropped without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_description::{parse, Format};
use netvm_dhcp::{Server, ServerConfig, Timestamp};
use std::sync::{LazyLock, Mutex};

static SERVER: LazyLock<Mutex<Server>> = LazyLock::new(|| {
    let text = "[netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"r\"\nmac = \"02:aa:00:00:00:07\"\n\
                [dhcp]\nrapid_commit = true\n";
    let system = parse("fuzz.toml", text, Format::Toml).expect("valid description");
    Mutex::new(Server::new(ServerConfig::from_system(&system)))
});

fuzz_target!(|data: &[u8]| {
    let mut server = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    let now = Timestamp(1_800_000_000_000 + server.counters().received * 1000);
    let _ = server.handle(now, data);
    server.poll(now);
});
