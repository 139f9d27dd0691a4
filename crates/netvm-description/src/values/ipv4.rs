//! IPv4 values: an address with prefix length, an inclusive address range,
//! and a DNS upstream (address with optional port).

use super::{string_value, value_error, ValueError};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::str::FromStr;

/// An IPv4 address with a prefix length, e.g. `192.168.100.0/24` (a subnet)
/// or `203.0.113.10/24` (an interface address).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ipv4Cidr {
    addr: Ipv4Addr,
    prefix: u8,
}

impl Ipv4Cidr {
    /// `addr/prefix`, or `None` when the prefix is longer than 32.
    pub fn new(addr: Ipv4Addr, prefix: u8) -> Option<Ipv4Cidr> {
        (prefix <= 32).then_some(Ipv4Cidr { addr, prefix })
    }

    /// The address as written.
    pub fn addr(&self) -> Ipv4Addr {
        self.addr
    }

    /// The prefix length (0..=32).
    pub fn prefix(&self) -> u8 {
        self.prefix
    }

    /// The netmask, e.g. 255.255.255.0 for /24.
    pub fn netmask(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.mask())
    }

    fn mask(&self) -> u32 {
        u32::MAX
            .checked_shl(32 - u32::from(self.prefix))
            .unwrap_or(0)
    }

    /// The first address of the subnet.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) & self.mask())
    }

    /// The last address of the subnet.
    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.addr) | !self.mask())
    }

    /// True when `ip` lies in this subnet (network and broadcast included).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }

    /// The host number of `ip` in this subnet (`.5` in a /24 is 5).
    pub fn host_number(&self, ip: Ipv4Addr) -> u32 {
        u32::from(ip) & !self.mask()
    }

    /// The address with host number `n`, if it lies inside the subnet.
    pub fn host(&self, n: u32) -> Option<Ipv4Addr> {
        (n & self.mask() == 0).then(|| Ipv4Addr::from(u32::from(self.network()) | n))
    }

    /// The number of addresses in the subnet, network and broadcast included.
    pub fn size(&self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    /// True when the address is the subnet's first address.
    pub fn is_network_address(&self) -> bool {
        self.addr == self.network()
    }

    /// The default internal subnet, 192.168.100.0/24 (as in Ghaf).
    pub fn default_subnet() -> Ipv4Cidr {
        Ipv4Cidr {
            addr: Ipv4Addr::new(192, 168, 100, 0),
            prefix: 24,
        }
    }

    /// This prefix with its host bits cleared.
    pub fn truncated(&self) -> Ipv4Cidr {
        Ipv4Cidr {
            addr: self.network(),
            prefix: self.prefix,
        }
    }
}

impl FromStr for Ipv4Cidr {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = text.split_once('/').ok_or_else(|| {
            value_error!("`{text}` is not an address with prefix: write it like 192.168.100.0/24")
        })?;
        let addr: Ipv4Addr = addr
            .parse()
            .map_err(|_| value_error!("`{addr}` is not an IPv4 address"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| *p <= 32)
            .ok_or_else(|| value_error!("`/{prefix}` is not a prefix length (0 to 32)"))?;
        Ok(Ipv4Cidr { addr, prefix })
    }
}

impl fmt::Display for Ipv4Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

string_value!(
    Ipv4Cidr,
    "Ipv4Cidr",
    "IPv4 address with prefix length",
    "192.168.100.0/24"
);

/// An inclusive range of IPv4 addresses, written `first-last`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Range {
    first: Ipv4Addr,
    last: Ipv4Addr,
}

impl Ipv4Range {
    /// The first address.
    pub fn first(&self) -> Ipv4Addr {
        self.first
    }

    /// The last address (inclusive).
    pub fn last(&self) -> Ipv4Addr {
        self.last
    }

    /// True when `ip` lies in the range.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        self.first <= ip && ip <= self.last
    }

    /// How many addresses the range holds.
    pub fn len(&self) -> u64 {
        u64::from(u32::from(self.last) - u32::from(self.first)) + 1
    }

    /// Always false: a range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The range from `first` to `last`, or `None` when they are out of order.
    pub fn new(first: Ipv4Addr, last: Ipv4Addr) -> Option<Ipv4Range> {
        (first <= last).then_some(Ipv4Range { first, last })
    }
}

impl FromStr for Ipv4Range {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (first, last) = text.split_once('-').ok_or_else(|| {
            value_error!(
                "`{text}` is not an address range: write it like 192.168.100.200-192.168.100.250"
            )
        })?;
        let parse = |s: &str| {
            s.trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| value_error!("`{s}` is not an IPv4 address"))
        };
        let (first, last) = (parse(first)?, parse(last)?);
        Ipv4Range::new(first, last).ok_or_else(|| {
            value_error!("range `{text}` is out of order: {first} comes after {last}")
        })
    }
}

impl fmt::Display for Ipv4Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

string_value!(
    Ipv4Range,
    "Ipv4Range",
    "Inclusive IPv4 address range, first-last",
    "192.168.100.200-192.168.100.250"
);

/// The `dhcp.pool` setting: a range, or `none` for no dynamic pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolSetting {
    /// No dynamic pool: only described VMs get addresses.
    Disabled,
    /// This range.
    Range(Ipv4Range),
}

impl FromStr for PoolSetting {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text == "none" {
            Ok(PoolSetting::Disabled)
        } else {
            text.parse().map(PoolSetting::Range)
        }
    }
}

impl fmt::Display for PoolSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolSetting::Disabled => f.write_str("none"),
            PoolSetting::Range(range) => range.fmt(f),
        }
    }
}

string_value!(
    PoolSetting,
    "PoolSetting",
    "Dynamic pool first-last, or none",
    "192.168.100.200-192.168.100.254"
);

/// A DNS server to forward to: `address` or `address:port` (port 53 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DnsUpstream(pub SocketAddrV4);

impl FromStr for DnsUpstream {
    type Err = ValueError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if let Ok(ip) = text.parse::<Ipv4Addr>() {
            return Ok(DnsUpstream(SocketAddrV4::new(ip, 53)));
        }
        text.parse::<SocketAddrV4>()
            .map(DnsUpstream)
            .map_err(|_| value_error!("`{text}` is not a DNS server: write 1.1.1.1 or 1.1.1.1:53"))
    }
}

impl fmt::Display for DnsUpstream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.port() == 53 {
            write!(f, "{}", self.0.ip())
        } else {
            write!(f, "{}", self.0)
        }
    }
}

string_value!(
    DnsUpstream,
    "DnsUpstream",
    "DNS server as address or address:port",
    "9.9.9.9"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnet_arithmetic() {
        let net: Ipv4Cidr = "192.168.100.0/24".parse().expect("valid");
        assert_eq!(net.broadcast(), Ipv4Addr::new(192, 168, 100, 255));
        assert_eq!(net.netmask(), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(net.host(101), Some(Ipv4Addr::new(192, 168, 100, 101)));
        assert_eq!(net.host(256), None);
        assert_eq!(net.host_number(Ipv4Addr::new(192, 168, 100, 7)), 7);
        assert!(net.contains(Ipv4Addr::new(192, 168, 100, 255)));
        assert!(!net.contains(Ipv4Addr::new(192, 168, 101, 1)));
        assert_eq!(net.size(), 256);
        let all: Ipv4Cidr = "0.0.0.0/0".parse().expect("valid");
        assert_eq!(all.netmask(), Ipv4Addr::UNSPECIFIED);
        assert!("10.0.0.0/33".parse::<Ipv4Cidr>().is_err());
        assert!("10.0.0.0".parse::<Ipv4Cidr>().is_err());
    }

    #[test]
    fn ranges_must_be_in_order() {
        let r: Ipv4Range = "10.0.0.5-10.0.0.9".parse().expect("valid");
        assert_eq!(r.len(), 5);
        assert!("10.0.0.9-10.0.0.5".parse::<Ipv4Range>().is_err());
    }

    #[test]
    fn upstream_port_defaults_to_53() {
        let u: DnsUpstream = "9.9.9.9".parse().expect("valid");
        assert_eq!(u.0.port(), 53);
        let u: DnsUpstream = "127.0.0.1:5353".parse().expect("valid");
        assert_eq!(u.to_string(), "127.0.0.1:5353");
    }
}
