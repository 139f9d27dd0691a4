//! What the server is told: the internal /64, its DUID, the reservations
//! (MAC -> address), the pool of interface identifiers, lifetimes and the
//! DNS options; and the checks that make a [`Server6Config`] usable.

use netvm_description::values::MacAddr;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;
use std::ops::RangeInclusive;

/// Pool interface identifiers are this plus the IPv4 pool's host number
/// (the addressing decision: pool .200-.254 -> `P::1:c8` .. `P::1:fe`).
pub const POOL_IID_BASE: u64 = 0x1_0000;

/// A pool with no addresses (the range is empty on purpose).
#[allow(clippy::reversed_empty_ranges)]
pub const EMPTY_POOL: RangeInclusive<u64> = 1..=0;

/// The server's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server6Config {
    /// The internal /64 (its network address: the low 64 bits are zero).
    pub prefix: Ipv6Addr,
    /// Our DUID (Server Identifier); [`duid_ll`] of the interface's MAC
    /// keeps it the same across restarts, as clients expect.
    pub server_duid: Vec<u8>,
    /// Each described endpoint's MAC and its address in `prefix`.
    pub reservations: Vec<(MacAddr, Ipv6Addr)>,
    /// Interface identifiers handed out to undescribed MACs (an empty
    /// range: none). Reserved addresses are never handed out from it.
    pub pool: RangeInclusive<u64>,
    /// IA Address preferred-lifetime, seconds.
    pub preferred_lifetime: u32,
    /// IA Address valid-lifetime, seconds; also how long a lease lives.
    pub valid_lifetime: u32,
    /// IA_NA T1, seconds.
    pub t1: u32,
    /// IA_NA T2, seconds.
    pub t2: u32,
    /// DNS Recursive Name Server option (RFC 3646), when not empty.
    pub dns: Vec<Ipv6Addr>,
    /// Domain Search List option (RFC 3646), when not empty.
    pub search: Vec<String>,
    /// Whether a Solicit with Rapid Commit is answered with a Reply
    /// (RFC 8415 section 18.3.1).
    pub rapid_commit: bool,
    /// At most this many pool leases (and declined pool addresses) live at
    /// once; described MACs are always served.
    pub max_leases: usize,
}

impl Server6Config {
    /// A configuration for `prefix` with no reservations, no pool, no DNS
    /// options, Rapid Commit on and lifetimes of an hour (valid two).
    pub fn new(prefix: Ipv6Addr, server_duid: Vec<u8>) -> Server6Config {
        Server6Config {
            prefix,
            server_duid,
            reservations: Vec::new(),
            pool: EMPTY_POOL,
            preferred_lifetime: 3600,
            valid_lifetime: 7200,
            t1: 1800,
            t2: 2880,
            dns: Vec::new(),
            search: Vec::new(),
            rapid_commit: true,
            max_leases: 1024,
        }
    }

    /// The address with interface identifier `iid` in `prefix`.
    pub fn address(prefix: Ipv6Addr, iid: u64) -> Ipv6Addr {
        Ipv6Addr::from(u128::from(prefix) | u128::from(iid))
    }
}

/// A DUID-LL (RFC 8415 section 11.4) for an Ethernet address: type 3,
/// hardware type 1, the MAC.
pub fn duid_ll(mac: MacAddr) -> Vec<u8> {
    let mut duid = vec![0, 3, 0, 1];
    duid.extend_from_slice(&mac.0);
    duid
}

/// Why a configuration cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The prefix has bits set below /64.
    #[error("prefix {0} is not the network address of a /64")]
    PrefixNotNetwork(Ipv6Addr),
    /// The server DUID is shorter than 3 or longer than 130 octets.
    #[error("server DUID of {0} octets (3 to 130 allowed)")]
    ServerDuid(usize),
    /// A reservation outside the prefix.
    #[error("reservation {ip} for {mac} is outside the prefix")]
    OutsidePrefix {
        /// The MAC.
        mac: MacAddr,
        /// Its address.
        ip: Ipv6Addr,
    },
    /// A MAC reserved twice.
    #[error("{0} is reserved twice")]
    DuplicateMac(MacAddr),
    /// An address reserved twice.
    #[error("{0} is reserved twice")]
    DuplicateAddress(Ipv6Addr),
    /// A reservation that is the prefix's subnet-router anycast address
    /// (interface identifier 0), or a pool that contains it.
    #[error("interface identifier 0 is the subnet-router anycast address")]
    AnycastAddress,
    /// Lifetimes out of order: T1 <= T2 <= preferred <= valid, valid > 0.
    #[error("lifetimes must satisfy 0 < valid, T1 <= T2 <= preferred <= valid")]
    Lifetimes,
    /// A search domain that cannot be encoded as a DNS name.
    #[error("search domain {0:?} is not a DNS name")]
    SearchDomain(String),
    /// More DNS servers or search domains than a reply should carry.
    #[error("at most {MAX_DNS} DNS servers and {MAX_SEARCH} octets of search domains")]
    DnsOptions,
}

/// At most this many DNS servers.
pub const MAX_DNS: usize = 16;
/// At most this many octets of encoded search domains.
pub const MAX_SEARCH: usize = 512;

/// The parts of a configuration the server looks up.
#[derive(Debug, Clone)]
pub(crate) struct Checked {
    pub config: Server6Config,
    pub reserved_by_mac: BTreeMap<MacAddr, Ipv6Addr>,
    pub reserved_ips: BTreeSet<Ipv6Addr>,
    /// The Domain Search List option's data (RFC 1035 names, no
    /// compression: RFC 3646 section 4).
    pub search_list: Vec<u8>,
}

/// Encodes `domain` as uncompressed DNS labels ending with the root.
fn encode_name(domain: &str, out: &mut Vec<u8>) -> Result<(), ConfigError> {
    let bad = || ConfigError::SearchDomain(domain.to_owned());
    let trimmed = domain.strip_suffix('.').unwrap_or(domain);
    if trimmed.is_empty() || trimmed.len() > 253 {
        return Err(bad());
    }
    for label in trimmed.split('.') {
        let valid = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !valid {
            return Err(bad());
        }
        out.push(u8::try_from(label.len()).map_err(|_| bad())?);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(())
}

impl Checked {
    pub fn new(config: Server6Config) -> Result<Checked, ConfigError> {
        let prefix = u128::from(config.prefix);
        if prefix & u128::from(u64::MAX) != 0 {
            return Err(ConfigError::PrefixNotNetwork(config.prefix));
        }
        if !(3..=130).contains(&config.server_duid.len()) {
            return Err(ConfigError::ServerDuid(config.server_duid.len()));
        }
        let c = &config;
        if !(c.valid_lifetime > 0
            && c.t1 <= c.t2
            && c.t2 <= c.preferred_lifetime
            && c.preferred_lifetime <= c.valid_lifetime)
        {
            return Err(ConfigError::Lifetimes);
        }
        if config.pool.contains(&0) {
            return Err(ConfigError::AnycastAddress);
        }
        let mut reserved_by_mac = BTreeMap::new();
        let mut reserved_ips = BTreeSet::new();
        for &(mac, ip) in &config.reservations {
            if u128::from(ip) >> 64 != prefix >> 64 {
                return Err(ConfigError::OutsidePrefix { mac, ip });
            }
            if ip == config.prefix {
                return Err(ConfigError::AnycastAddress);
            }
            if reserved_by_mac.insert(mac, ip).is_some() {
                return Err(ConfigError::DuplicateMac(mac));
            }
            if !reserved_ips.insert(ip) {
                return Err(ConfigError::DuplicateAddress(ip));
            }
        }
        let mut search_list = Vec::new();
        for domain in &config.search {
            encode_name(domain, &mut search_list)?;
        }
        if config.dns.len() > MAX_DNS || search_list.len() > MAX_SEARCH {
            return Err(ConfigError::DnsOptions);
        }
        Ok(Checked {
            config,
            reserved_by_mac,
            reserved_ips,
            search_list,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Server6Config {
        Server6Config::new(
            "fd00:1:2:3::".parse().expect("prefix"),
            duid_ll(MacAddr([2, 0, 0, 0, 0, 1])),
        )
    }

    #[test]
    fn each_mistake_is_named() {
        assert!(Checked::new(config()).is_ok());
        let mut c = config();
        c.prefix = "fd00:1:2:3::1".parse().expect("ip");
        assert!(matches!(
            Checked::new(c),
            Err(ConfigError::PrefixNotNetwork(_))
        ));
        let mut c = config();
        c.server_duid = vec![0, 3];
        assert_eq!(Checked::new(c).err(), Some(ConfigError::ServerDuid(2)));
        let mut c = config();
        c.t1 = 4000;
        assert_eq!(Checked::new(c).err(), Some(ConfigError::Lifetimes));
        let mut c = config();
        c.pool = 0..=5;
        assert_eq!(Checked::new(c).err(), Some(ConfigError::AnycastAddress));
        let mac = MacAddr([2, 0, 0, 0, 0, 7]);
        let mut c = config();
        c.reservations = vec![(mac, "fd00:9::7".parse().expect("ip"))];
        assert!(matches!(
            Checked::new(c),
            Err(ConfigError::OutsidePrefix { .. })
        ));
        let mut c = config();
        let ip: Ipv6Addr = "fd00:1:2:3::7".parse().expect("ip");
        c.reservations = vec![(mac, ip), (mac, "fd00:1:2:3::8".parse().expect("ip"))];
        assert_eq!(Checked::new(c).err(), Some(ConfigError::DuplicateMac(mac)));
        let mut c = config();
        c.reservations = vec![(mac, ip), (MacAddr([2, 0, 0, 0, 0, 8]), ip)];
        assert_eq!(
            Checked::new(c).err(),
            Some(ConfigError::DuplicateAddress(ip))
        );
        let mut c = config();
        c.search = vec!["bad..name".to_owned()];
        assert!(matches!(Checked::new(c), Err(ConfigError::SearchDomain(_))));
    }

    #[test]
    fn search_list_is_uncompressed_labels() {
        let mut c = config();
        c.search = vec!["vm.internal".to_owned(), "internal.".to_owned()];
        let checked = Checked::new(c).expect("valid");
        assert_eq!(
            checked.search_list,
            b"\x02vm\x08internal\x00\x08internal\x00".to_vec()
        );
    }
}
