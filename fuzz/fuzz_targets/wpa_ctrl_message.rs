//! Fuzzes the reading of wpa_supplicant's control socket: any bytes as
//! an event datagram, and as a `STATUS`, `SCAN_RESULTS` or `ADD_NETWORK`
//! reply, must be read or refused without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_wifi::ctrl;

fuzz_target!(|data: &[u8]| {
    let _ = ctrl::parse_event(data);
    let text = String::from_utf8_lossy(data);
    let _ = ctrl::parse_status(&text);
    for bss in ctrl::parse_scan_results(&text) {
        assert!(bss.ssid.len() <= text.len());
        let _ = bss.security();
    }
    let _ = ctrl::network_id(&text);
    let _ = ctrl::expect_ok(&text);
});
