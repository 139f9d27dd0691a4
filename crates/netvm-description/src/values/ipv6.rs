//! IPv6 values: an address with prefix length (the internal network's
//! /64, a static uplink address, a NAT64 prefix).

use super::{string_value, value_error, ValueError};
use std::fmt;
use std::net::Ipv6Addr;
use std::str::FromStr;

/// An IPv6 address with a prefix length, e.g. `fd12:3456:789a::/64` (a
/// prefix) or `2001:db8::10/64` (an interface address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv6Cidr {
    addr: Ipv6Addr,
    prefix: u8,
}

impl Ipv6Cidr {
    /// `addr/prefix`, or `None` when the prefix is longer than 128.
    pub fn new(addr: Ipv6Addr, prefix: u8) -> Option<Ipv6Cidr> {
        (prefix <= 128).then_some(Ipv6Cidr { addr, prefix })
    }

    /// The address as written.
    pub fn addr(&self) -> Ipv6Addr {
        self.addr
    }

    /// The prefix length (0..=128).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    fn mask(&self) -> u128 {
        u128::MAX
            .checked_shl(128 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The first address of the prefix.
    pub fn network(&self) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(self.addr) & self.mask())
    }

    /// True when `ip` lies in this prefix.
    pub fn contains(&self, ip: Ipv6Addr) -> bool {
        u128::from(ip) & self.mask() == u128::from(self.addr) & self.mask()
    }

    /// True when the address has no bits set beyond the prefix.
    pub fn is_network_address(&self) -> bool {
        self.addr == self.network()
    }

    /// This prefix with its host bits cleared.
    pub fn truncated(&self) -> Ipv6Cidr {
        Ipv6Cidr {
            addr: self.network(),
            prefix: self.prefix,
        }
    }

    /// The address with interface identifier `iid` in this prefix (its
    /// bits beyond the prefix), if it fits.
    pub fn host(&self, iid: u128) -> Option<Ipv6Addr> {
        (iid & self.mask() == 0).then(|| Ipv6Addr::from(u128::from(self.network()) | iid))
    }

    /// The bits of `ip` beyond this prefix.
    pub fn host_part(&self, ip: Ipv6Addr) -> u128 {
        u128::from(ip) & !self.mask()
    }

    /// A unique local address (`fc00::/7`).
    pub fn is_unique_local(&self) -> bool {
        self.addr.segments()[0] & 0xfe00 == 0xfc00
    }

    /// Global unicast (`2000::/3`).
    pub fn is_global_unicast(&self) -> bool {
        self.addr.segments()[0] & 0xe000 == 0x2000
    }
}

impl FromStr for Ipv6Cidr {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = text.split_once('/').ok_or_else(|| {
            value_error!("`{text}` is not an IPv6 address with prefix: write it like fd00:1::/64")
        })?;
        let addr: Ipv6Addr = addr
            .parse()
            .map_err(|_| value_error!("`{addr}` is not an IPv6 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 128)
            .ok_or_else(|| value_error!("`/{prefix}` is not a prefix length (0 to 128)"))?;
        Ok(Ipv6Cidr { addr, prefix })
    }
}

impl fmt::Display for Ipv6Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

string_value!(
    Ipv6Cidr,
    "Ipv6Cidr",
    "IPv6 address with prefix length",
    "fd00:1::/64"
);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hosts_and_containment() {
        let p: Ipv6Cidr = "fd12:3456:789a::/64".parse().expect("cidr");
        assert!(p.is_network_address() && p.is_unique_local());
        let a = p.host(0xa).expect("fits");
        assert_eq!(a.to_string(), "fd12:3456:789a::a");
        assert!(p.contains(a));
        assert_eq!(p.host_part(a), 0xa);
        assert!(p.host(1 << 64).is_none());
        assert!("2001:db8::1/129".parse::<Ipv6Cidr>().is_err());
        assert!("2001:db8::1".parse::<Ipv6Cidr>().is_err());
    }

    proptest! {
        #[test]
        fn text_round_trips(bits: u128, prefix in 0u8..=128) {
            let cidr = Ipv6Cidr::new(Ipv6Addr::from(bits), prefix).expect("valid");
            prop_assert_eq!(cidr.to_string().parse::<Ipv6Cidr>().expect("parses"), cidr);
            prop_assert!(cidr.contains(cidr.addr()));
            prop_assert!(cidr.truncated().is_network_address());
        }
    }
}
