//! Fuzzes the ctnetlink entry reader: any bytes as a dumped entry
//! (nfgenmsg and nested tuple attributes, IPv4 or IPv6) must give a tuple,
//! nothing or an error without a panic. A tuple that is read has both
//! addresses of one family, and ICMP identifiers only for ICMP (1) and
//! ICMPv6 (58).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(Some(tuple)) = netvm_netfilter::conntrack::parse_entry(data) {
        assert_eq!(tuple.src.is_ipv4(), tuple.dst.is_ipv4());
        assert!(tuple.icmp.is_none() || tuple.proto == 1 || tuple.proto == 58);
    }
});
