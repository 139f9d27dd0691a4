//! Properties of the parsers and builders: no bytes make a parser panic;
//! every valid advertisement survives build then parse; every NAT64
//! prefix length survives embedding then RFC 7050 discovery.

use netvm_description::values::MacAddr;
use netvm_ndp::{
    embed_ipv4, mask, nat64_prefixes_from_aaaa, parse_router_advert, parse_router_solicit, Pref64,
    Preference, PrefixInfo, RouteInfo, RouterAdvert, RouterSolicit, WELL_KNOWN_IPV4,
};
use proptest::collection::vec;
use proptest::prelude::*;
use std::net::Ipv6Addr;

const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

fn address() -> impl Strategy<Value = Ipv6Addr> {
    any::<u128>().prop_map(Ipv6Addr::from)
}

fn prefix(most: u8) -> impl Strategy<Value = (Ipv6Addr, u8)> {
    (address(), 0..=most).prop_map(|(a, len)| (mask(a, len), len))
}

fn label() -> impl Strategy<Value = String> {
    "[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?"
}

fn domain() -> impl Strategy<Value = String> {
    vec(label(), 1..4).prop_map(|labels| labels.join("."))
}

fn preference() -> impl Strategy<Value = Preference> {
    prop_oneof![
        Just(Preference::Low),
        Just(Preference::Medium),
        Just(Preference::High)
    ]
}

fn pref64() -> impl Strategy<Value = Pref64> {
    (
        address(),
        prop::sample::select(vec![32u8, 40, 48, 56, 64, 96]),
        0u16..8192,
    )
        .prop_map(|(a, len, units)| Pref64 {
            prefix: mask(a, len),
            len,
            lifetime_secs: units * 8,
        })
}

prop_compose! {
    fn advert()(
        header in (any::<u8>(), any::<bool>(), any::<bool>(), any::<u16>(), any::<u32>(), any::<u32>()),
        source_mac in prop::option::of(any::<[u8; 6]>().prop_map(MacAddr)),
        mtu in prop::option::of(any::<u32>()),
        prefixes in vec((prefix(128), any::<(bool, bool, u32, u32)>()), 0..4),
        routes in vec((prefix(128), preference(), any::<u32>()), 0..4),
        rdnss in vec((address(), prop::sample::select(vec![0u32, 600, 1800])), 0..200),
        dnssl in vec((domain(), prop::sample::select(vec![0u32, 600])), 0..40),
        pref64 in prop::option::of(pref64()),
    ) -> RouterAdvert {
        let (cur_hop_limit, managed, other, router_lifetime_secs, reachable_ms, retrans_ms) = header;
        RouterAdvert {
            cur_hop_limit,
            managed,
            other,
            router_lifetime_secs,
            reachable_ms,
            retrans_ms,
            source_mac,
            mtu,
            prefixes: prefixes
                .into_iter()
                .map(|((prefix, len), (on_link, autonomous, valid_secs, preferred_secs))| PrefixInfo {
                    prefix, len, on_link, autonomous, valid_secs, preferred_secs,
                })
                .collect(),
            routes: routes
                .into_iter()
                .map(|((prefix, len), preference, lifetime_secs)| RouteInfo {
                    prefix, len, preference, lifetime_secs,
                })
                .collect(),
            rdnss,
            dnssl,
            pref64,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in vec(any::<u8>(), 0..600),
        hop_limit in prop::sample::select(vec![255u8, 64]),
        source in prop_oneof![Just(ROUTER), Just(Ipv6Addr::UNSPECIFIED), address()],
    ) {
        let _ = parse_router_advert(source, hop_limit, &bytes);
        let _ = parse_router_solicit(source, hop_limit, &bytes);
        // The same bytes behind a valid header reach the option walk.
        let mut advert = vec![134, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        advert.extend(&bytes);
        let _ = parse_router_advert(ROUTER, 255, &advert);
        let mut solicit = vec![133, 0, 0, 0, 0, 0, 0, 0];
        solicit.extend(&bytes);
        let _ = parse_router_solicit(ROUTER, 255, &solicit);
    }

    #[test]
    fn built_adverts_parse_back(advert in advert()) {
        let bytes = advert.build().expect("a valid advertisement builds");
        prop_assert_eq!(parse_router_advert(ROUTER, 255, &bytes), Ok(advert));
    }

    #[test]
    fn damaged_adverts_never_panic(
        advert in advert(),
        damage in vec((any::<prop::sample::Index>(), any::<u8>()), 1..8),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut bytes = advert.build().expect("a valid advertisement builds");
        for (at, value) in damage {
            let at = at.index(bytes.len());
            bytes[at] = value;
        }
        let _ = parse_router_advert(ROUTER, 255, &bytes);
        let end = cut.index(bytes.len() + 1);
        let _ = parse_router_advert(ROUTER, 255, &bytes[..end]);
    }

    #[test]
    fn solicitations_parse_back(mac in prop::option::of(any::<[u8; 6]>().prop_map(MacAddr))) {
        let solicit = RouterSolicit { source_mac: mac };
        prop_assert_eq!(parse_router_solicit(ROUTER, 255, &solicit.build()), Ok(solicit));
    }

    #[test]
    fn rfc_7050_finds_every_prefix_length(
        pref64 in pref64(),
        which in 0usize..2,
        with_other in any::<bool>(),
    ) {
        let answer = embed_ipv4(pref64.prefix, pref64.len, WELL_KNOWN_IPV4[which])
            .expect("a NAT64 length");
        let mut answers = vec![answer];
        if with_other {
            answers.push(
                embed_ipv4(pref64.prefix, pref64.len, WELL_KNOWN_IPV4[1 - which])
                    .expect("a NAT64 length"),
            );
        }
        prop_assert_eq!(
            nat64_prefixes_from_aaaa(&answers),
            vec![(pref64.prefix, pref64.len)]
        );
    }
}
