//! Fuzzes the Neighbor Discovery parsers: any bytes as a Router
//! Advertisement and as a Router Solicitation must be refused or read
//! without a panic, and an advertisement that is read must build again
//! into bytes that read back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use netvm_ndp::{parse_router_advert, parse_router_solicit};
use std::net::Ipv6Addr;

const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

fuzz_target!(|data: &[u8]| {
    let _ = parse_router_solicit(ROUTER, 255, data);
    if let Ok(advert) = parse_router_advert(ROUTER, 255, data) {
        let bytes = advert.build().expect("what was read can be written");
        assert_eq!(parse_router_advert(ROUTER, 255, &bytes), Ok(advert));
    }
});
