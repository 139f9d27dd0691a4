//! A Router Advertisement captured from radvd 2.19 (`tcpdump` on a veth,
//! the ICMPv6 message kept; `captures/radvd-2.19-ra.conf` is the config
//! it was sent from, on interface n6rc0): read as radvd meant it, and
//! written back into bytes that read the same.

use netvm_description::values::MacAddr;
use netvm_ndp::{parse_router_advert, Preference, PrefixInfo, RouteInfo};
use std::net::Ipv6Addr;

const RADVD: &[u8] = include_bytes!("captures/radvd-2.19-ra.bin");

fn v6(text: &str) -> Ipv6Addr {
    text.parse().expect("address")
}

#[test]
fn reads_what_radvd_sent() {
    let source = v6("fe80::8484:aff:febe:83cd");
    let advert = parse_router_advert(source, 255, RADVD).expect("radvd's advertisement");
    assert_eq!(advert.cur_hop_limit, 64);
    assert!(advert.managed && advert.other);
    assert_eq!(advert.router_lifetime_secs, 30);
    assert_eq!((advert.reachable_ms, advert.retrans_ms), (0, 0));
    assert_eq!(advert.mtu, Some(1400));
    assert_eq!(
        advert.source_mac,
        Some(MacAddr([0x86, 0x84, 0x0a, 0xbe, 0x83, 0xcd]))
    );
    assert_eq!(
        advert.prefixes,
        [PrefixInfo {
            prefix: v6("2001:db8:6::"),
            len: 64,
            on_link: true,
            autonomous: true,
            valid_secs: 86400,
            preferred_secs: 14400,
        }]
    );
    assert_eq!(
        advert.routes,
        [RouteInfo {
            prefix: v6("2001:db8:77::"),
            len: 48,
            preference: Preference::High,
            lifetime_secs: 30,
        }]
    );
    assert_eq!(advert.rdnss, [(v6("2001:db8:6::53"), 10)]);
    assert_eq!(
        advert.dnssl,
        [
            ("n6r.example".to_owned(), 10),
            ("other.example".to_owned(), 10)
        ]
    );
    assert_eq!(advert.pref64, None);

    let again = advert.build().expect("buildable");
    assert_eq!(parse_router_advert(source, 255, &again), Ok(advert));
}
