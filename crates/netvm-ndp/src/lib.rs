//! IPv6 Neighbor Discovery messages the net-vm sends and receives, as
//! bytes in and values out, without sockets or a clock:
//!
//! * [`RouterAdvert`]: ICMPv6 Router Advertisement (RFC 4861 §4.2) with
//!   the options netvm uses: Source Link-Layer Address, MTU, Prefix
//!   Information, Route Information (RFC 4191), RDNSS and DNSSL
//!   (RFC 8106) and PREF64 (RFC 8781). [`parse_router_advert`] checks what
//!   RFC 4861 §6.1.2 asks of a receiver; [`RouterAdvert::build`] writes one.
//! * [`RouterSolicit`]: ICMPv6 Router Solicitation (RFC 4861 §4.1).
//! * [`nat64_prefixes_from_aaaa`]: the NAT64 prefixes found in the AAAA
//!   answers for `ipv4only.arpa` (RFC 7050 §3).
//!
//! The messages start at the ICMPv6 header, as a raw ICMPv6 socket
//! (`socket(AF_INET6, SOCK_RAW, IPPROTO_ICMPV6)`) reads and writes them.
//! Checksums are neither checked nor written: on such a socket Linux
//! verifies the checksum of every message before delivering it and fills
//! it in on every send (RFC 3542 §3.1), using the pseudo-header only it
//! knows. The builders leave the field zero.
//!
//! Parsers never panic and never loop on their input: every option is at
//! least 8 bytes long, or the message is refused. Errors name the reason
//! ([`ParseError`]) so a driver can count drops by reason.

#![forbid(unsafe_code)]

mod advert;
mod error;
mod nat64;
mod options;
mod solicit;

pub use advert::{parse_router_advert, Pref64, Preference, PrefixInfo, RouteInfo, RouterAdvert};
pub use error::{BuildError, ParseError};
pub use nat64::{embed_ipv4, nat64_prefixes_from_aaaa, WELL_KNOWN_IPV4};
pub use options::validate_domain;
pub use solicit::{parse_router_solicit, RouterSolicit};

use std::net::Ipv6Addr;

/// ICMPv6 type of a Router Solicitation.
pub const ROUTER_SOLICIT: u8 = 133;
/// ICMPv6 type of a Router Advertisement.
pub const ROUTER_ADVERT: u8 = 134;
/// The hop limit every Neighbor Discovery message is sent with, and the
/// only one a receiver accepts: proof that it was not forwarded.
pub const ND_HOP_LIMIT: u8 = 255;
/// `ff02::1`: where unsolicited Router Advertisements go.
pub const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);
/// `ff02::2`: where Router Solicitations go.
pub const ALL_ROUTERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);

/// Whether `address` is link-local unicast (`fe80::/10`).
pub fn is_link_local(address: &Ipv6Addr) -> bool {
    address.segments()[0] & 0xffc0 == 0xfe80
}

/// `address` with every bit past the first `len` cleared.
pub fn mask(address: Ipv6Addr, len: u8) -> Ipv6Addr {
    let bits = u128::from(address);
    let kept = match len {
        0 => 0,
        1..=127 => bits & (u128::MAX << (128 - u32::from(len))),
        _ => bits,
    };
    Ipv6Addr::from(kept)
}
