//! Fuzzes the DHCP server's packet handler: any bytes, from any UDP
//! source port, fed in sequence to one server (so state built by earlier
//! inputs is exercised too), must be answered or dropped without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_description::{parse, Format};
use netvm_dhcp::{Server, ServerConfig, Timestamp};
use std::sync::{LazyLock, Mutex};

static SERVER: LazyLock<Mutex<Server>> = LazyLock::new(|| {
    let text = "[netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"r\"\nmac = \"02:aa:00:00:00:07\"\n\
                [dhcp]\nrapid_commit = true\nrelays = [\"192.168.100.60\"]\n";
    let system = parse("fuzz.toml", text, Format::Toml).expect("valid description");
    Mutex::new(Server::new(ServerConfig::from_system(&system)))
});

fuzz_target!(|data: &[u8]| {
    let mut server = SERVER.lock().unwrap_or_else(|p| p.into_inner());
    let now = Timestamp(1_800_000_000_000 + server.counters().received * 1000);
    // The source port the daemon reads with each datagram: mostly a
    // client's 68, sometimes a relay's 67 (served only with a trusted
    // giaddr) or any other; taken from the transaction id's last octet,
    // so the seeds stay plain DHCP messages.
    let port = match data.get(7) {
        Some(b) if b % 4 == 1 => 67,
        Some(b) if b % 4 == 2 => u16::from(*b) << 4,
        _ => 68,
    };
    let _ = server.handle_from(now, port, data);
    server.poll(now);
});
