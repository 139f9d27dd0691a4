//! Fuzzes the NFLOG packet summary: any bytes as a logged packet's first
//! bytes must give a summary or `None` without a panic; a summary only
//! for IPv4 or IPv6 with room for its header, with the header's own
//! addresses, and ports only when the copy has room for them.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_netfilter::PacketSummary;
use std::net::IpAddr;

fuzz_target!(|data: &[u8]| {
    let Some(s) = PacketSummary::parse(data) else {
        return;
    };
    match (data[0] >> 4, s.src, s.dst) {
        (4, IpAddr::V4(src), IpAddr::V4(dst)) => {
            let header = usize::from(data[0] & 0x0f) * 4;
            assert!(s.dport.is_none() || data.len() >= header + 4);
            assert_eq!(src.octets(), data[12..16]);
            assert_eq!(dst.octets(), data[16..20]);
        }
        (6, IpAddr::V6(src), IpAddr::V6(dst)) => {
            assert!(data.len() >= 40);
            assert!(s.dport.is_none() || data.len() >= 44);
            assert!(s.icmp_type.is_none() || (s.proto == 58 && data.len() > 40));
            assert_eq!(src.octets(), data[8..24]);
            assert_eq!(dst.octets(), data[24..40]);
        }
        other => panic!("a summary of {other:?}"),
    }
});
