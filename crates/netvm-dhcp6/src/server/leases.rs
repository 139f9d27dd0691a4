//! The lease table: one lease per MAC (the client's identity is the
//! Ethernet source of its frames, not its DUID), indexed by address too
//! so no two leases ever share one; addresses declined by clients, held
//! back for a valid lifetime; and the choice of a pool address.

use super::config::{Checked, Server6Config};
use super::Millis;
use netvm_description::values::MacAddr;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv6Addr;

/// A lease: what the server remembers of a client, and what a snapshot
/// holds (serde; the driver may write it to disk and [`restore`] it).
///
/// [`restore`]: super::Server6::restore
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lease6 {
    /// The client's MAC: who holds the lease.
    pub mac: MacAddr,
    /// The address.
    pub ip: Ipv6Addr,
    /// The client's DUID when it was granted or last renewed (hex).
    #[serde(with = "hex")]
    pub duid: Vec<u8>,
    /// The IAID of the IA_NA it was granted to.
    pub iaid: u32,
    /// When it runs out, on the driver's clock.
    pub expires_at: Millis,
}

/// DUIDs as lowercase hex strings.
mod hex {
    use serde::{de, Deserialize, Deserializer, Serializer};
    use std::fmt::Write;

    pub fn serialize<S: Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
        let mut text = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            let _ = write!(text, "{b:02x}");
        }
        serializer.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(deserializer)?;
        if text.len() % 2 != 0 || !text.is_ascii() {
            return Err(de::Error::custom("odd-length or non-ASCII hex"));
        }
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).map_err(de::Error::custom))
            .collect()
    }
}

/// Leases by MAC and by address, and declined addresses.
#[derive(Debug, Clone, Default)]
pub(crate) struct Table {
    by_mac: BTreeMap<MacAddr, Lease6>,
    by_ip: BTreeMap<Ipv6Addr, MacAddr>,
    /// Pool addresses a client declined, until when.
    declined: BTreeMap<Ipv6Addr, Millis>,
}

impl Table {
    pub fn get(&self, mac: MacAddr) -> Option<&Lease6> {
        self.by_mac.get(&mac)
    }

    pub fn holder(&self, ip: Ipv6Addr) -> Option<MacAddr> {
        self.by_ip.get(&ip).copied()
    }

    pub fn is_declined(&self, ip: Ipv6Addr) -> bool {
        self.declined.contains_key(&ip)
    }

    pub fn leases(&self) -> impl Iterator<Item = &Lease6> {
        self.by_mac.values()
    }

    pub fn len(&self) -> usize {
        self.by_mac.len()
    }

    pub fn declined_len(&self) -> usize {
        self.declined.len()
    }

    /// Puts `lease` in place of its MAC's lease (returned). The caller
    /// has made sure no other MAC holds its address.
    pub fn insert(&mut self, lease: Lease6) -> Option<Lease6> {
        let previous = self.remove(lease.mac);
        self.by_ip.insert(lease.ip, lease.mac);
        self.by_mac.insert(lease.mac, lease);
        previous
    }

    pub fn remove(&mut self, mac: MacAddr) -> Option<Lease6> {
        let lease = self.by_mac.remove(&mac)?;
        self.by_ip.remove(&lease.ip);
        Some(lease)
    }

    pub fn decline(&mut self, ip: Ipv6Addr, until: Millis) {
        self.declined.insert(ip, until);
    }

    /// Removes the leases that ran out by `now` (returned) and ends the
    /// hold on declined addresses whose time is up.
    pub fn expire(&mut self, now: Millis) -> Vec<Lease6> {
        self.declined.retain(|_, until| *until > now);
        let gone: Vec<MacAddr> = self
            .by_mac
            .values()
            .filter(|l| l.expires_at <= now)
            .map(|l| l.mac)
            .collect();
        gone.into_iter()
            .filter_map(|mac| self.remove(mac))
            .collect()
    }

    /// The earliest expiry of a lease or a declined address.
    pub fn next_deadline(&self) -> Option<Millis> {
        let leases = self.by_mac.values().map(|l| l.expires_at);
        leases.chain(self.declined.values().copied()).min()
    }

    pub fn clear(&mut self) {
        *self = Table::default();
    }
}

/// FNV-1a of a MAC: where its search for a pool address starts, so a
/// client tends to get the same address again after its lease ran out.
fn start_of(mac: MacAddr) -> u64 {
    mac.0.iter().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Whether `ip` is a pool address of `config`.
pub(crate) fn in_pool(config: &Server6Config, ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let prefix = u128::from(config.prefix);
    // The low 64 bits are the interface identifier.
    let iid = u64::try_from(bits & u128::from(u64::MAX)).unwrap_or(0);
    bits >> 64 == prefix >> 64 && config.pool.contains(&iid)
}

/// A free pool address for `mac`: not leased, not declined, not reserved.
/// Probes at most as many addresses as could be taken, plus one.
pub(crate) fn pick(checked: &Checked, table: &Table, mac: MacAddr) -> Option<Ipv6Addr> {
    let config = &checked.config;
    let (start, end) = (*config.pool.start(), *config.pool.end());
    if start > end {
        return None;
    }
    let size = u128::from(end - start) + 1;
    let first = u128::from(start_of(mac)) % size;
    let taken = table.len() + table.declined_len() + checked.reserved_ips.len();
    let probes = size.min(taken as u128 + 1);
    (0..probes).find_map(|i| {
        // Below `size`, which is at most 2^64: fits.
        let offset = u64::try_from((first + i) % size).ok()?;
        let ip = Server6Config::address(config.prefix, start + offset);
        let free = table.holder(ip).is_none()
            && !table.is_declined(ip)
            && !checked.reserved_ips.contains(&ip);
        free.then_some(ip)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_round_trips_as_json() {
        let lease = Lease6 {
            mac: MacAddr([2, 0xaa, 0, 0, 0, 7]),
            ip: "fd00::7".parse().expect("ip"),
            duid: vec![0, 3, 0, 1, 2, 0xaa, 0, 0, 0, 7],
            iaid: 7,
            expires_at: 1_000,
        };
        let text = serde_json::to_string(&lease).expect("json");
        assert_eq!(
            text,
            r#"{"mac":"02:aa:00:00:00:07","ip":"fd00::7","duid":"0003000102aa00000007","iaid":7,"expires_at":1000}"#
        );
        let back: Lease6 = serde_json::from_str(&text).expect("parse");
        assert_eq!(back, lease);
        assert!(serde_json::from_str::<Lease6>(&text.replace("0007\"", "007\"")).is_err());
    }

    #[test]
    fn a_full_pool_is_searched_to_the_end() {
        let mut config = Server6Config::new("fd00::".parse().expect("ip"), vec![0, 3, 0, 1, 2]);
        config.pool = 10..=13;
        config.reservations = vec![(MacAddr([2, 0, 0, 0, 0, 1]), "fd00::c".parse().expect("ip"))];
        let checked = Checked::new(config).expect("valid");
        let mut table = Table::default();
        let mut given = Vec::new();
        for n in 0..3u8 {
            let mac = MacAddr([2, 1, 0, 0, 0, n]);
            let ip = pick(&checked, &table, mac).expect("free");
            table.insert(Lease6 {
                mac,
                ip,
                duid: vec![0, 3, 0],
                iaid: 0,
                expires_at: 10,
            });
            given.push(ip);
        }
        given.sort();
        let expect: Vec<Ipv6Addr> = ["fd00::a", "fd00::b", "fd00::d"]
            .iter()
            .map(|s| s.parse().expect("ip"))
            .collect();
        assert_eq!(given, expect);
        assert_eq!(pick(&checked, &table, MacAddr([2, 1, 0, 0, 0, 9])), None);
    }
}
