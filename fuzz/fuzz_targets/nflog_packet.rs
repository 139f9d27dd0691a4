//! Fuzzes the NFLOG packet summary: any bytes as a logged packet's first
//! bytes must give a summary or `None` without a panic, and a summary's
//! ports only come with a header that has room for them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_netfilter::PacketSummary;

fuzz_target!(|data: &[u8]| {
    if let Some(s) = PacketSummary::parse(data) {
        let header = usize::from(data[0] & 0x0f) * 4;
        assert!(s.dport.is_none() || data.len() >= header + 4);
    }
});
