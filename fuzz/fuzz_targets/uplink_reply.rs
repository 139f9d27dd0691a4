//! Fuzzes the uplink DHCP client: any bytes as a server's reply, to a
//! client waiting for an OFFER and to one holding a lease, must be taken
//! or ignored without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_uplink::Client;

fuzz_target!(|data: &[u8]| {
    let mut client = Client::new([2, 0, 0, 0, 0, 0x42], 5);
    client.start(0);
    let _ = client.handle(1, data);
    let _ = client.handle(2, data);
    let _ = client.poll(3_600_000);
});
