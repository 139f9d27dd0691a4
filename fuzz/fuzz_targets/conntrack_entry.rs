//! Fuzzes the ctnetlink entry reader: any bytes as a dumped entry
//! (nfgenmsg and nested tuple attributes) must give a tuple, nothing or an
//! error without a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = netvm_netfilter::conntrack::parse_entry(data);
});
