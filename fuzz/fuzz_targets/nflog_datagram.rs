//! Fuzzes the NFLOG datagram reader: any bytes as a datagram from the
//! kernel (netlink headers, attributes, hardware address, prefix, packet)
//! must parse or be refused without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = netvm_netfilter::nflog::parse_datagram(data);
});
