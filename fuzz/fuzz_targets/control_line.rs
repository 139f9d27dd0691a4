//! Fuzzes the control protocol's readers: any bytes as a line on the
//! agent's control socket (a request the agent reads from a peer, an
//! answer or an event the CLI reads back) must parse or be refused
//! without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_events::control::{Request, Response};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Request>(data);
    let _ = serde_json::from_slice::<Response>(data);
    let _ = serde_json::from_slice::<netvm_events::Event>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<netvm_dhcp::ClientKey>();
    }
});
