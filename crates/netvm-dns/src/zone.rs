//! The internal zone: `<name>.<domain>` A and AAAA records and the PTR
//! records of the internal subnet (`in-addr.arpa`) and of the internal
//! IPv6 prefix (`ip6.arpa`, RFC 3596 §2.5: one label per nibble, least
//! significant first), from the description and from DHCP and DHCPv6
//! leases, and the answer for every name the zone owns (NXDOMAIN for
//! unknown ones, so nothing about internal names leaks upstream).

use hickory_proto::rr::rdata::{A, AAAA, PTR, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TTL of names from the description.
const DESCRIBED_TTL: u32 = 300;
/// TTL of names learned from DHCP (the lease may end).
const LEARNED_TTL: u32 = 60;
/// Negative-answer TTL (SOA minimum).
const NEGATIVE_TTL: u32 = 60;

/// What the zone says about a question.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// Records that answer it.
    Answer(Vec<Record>),
    /// The name exists, not with that type.
    NoData,
    /// The name does not exist.
    NxDomain,
    /// Not a name of this zone: forward it.
    NotOurs,
}

/// A name the zone was given that is not a DNS name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{name}` is not a DNS name")]
pub struct ZoneError {
    /// The text.
    pub name: String,
}

/// What a reverse name is to the zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reverse {
    /// Not under the subnet's or the prefix's reverse names.
    NotOurs,
    /// The reverse name of this address.
    Address(IpAddr),
    /// Under ours, but not an address (a name between the zone's apex
    /// and an address, one below an address, a label that is no octet
    /// or nibble).
    Other,
}

/// The internal zone.
#[derive(Debug, Clone)]
pub struct Zone {
    domain: Name,
    network: u32,
    prefix: u8,
    /// The internal IPv6 prefix (network bits, length), if any.
    network6: Option<(u128, u8)>,
    soa: Record,
    names: HashMap<Name, Vec<IpAddr>>,
    ptrs: HashMap<IpAddr, Name>,
    /// At most one address of each family per name.
    learned: HashMap<Name, Vec<IpAddr>>,
    learned_ptrs: HashMap<IpAddr, Name>,
}

fn name(text: &str) -> Result<Name, ZoneError> {
    let mut name = Name::from_ascii(text).map_err(|_| ZoneError {
        name: text.to_owned(),
    })?;
    name.set_fqdn(true);
    Ok(name.to_lowercase())
}

fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

fn mask6(prefix: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0)
}

/// Whether `ip` answers a question of type `qtype` (A or AAAA).
fn answers(ip: &IpAddr, qtype: RecordType) -> bool {
    matches!(
        (ip, qtype),
        (IpAddr::V4(_), RecordType::A) | (IpAddr::V6(_), RecordType::AAAA)
    )
}

impl Zone {
    /// The zone `domain` for `subnet`/`prefix`; `server` is the net-vm's
    /// name (the SOA's primary); `names` are (FQDN, address, with PTR),
    /// IPv4 (A) or IPv6 (AAAA). Reverse names of IPv6 addresses belong to
    /// the zone only under a prefix given with [`Zone::with_prefix6`].
    pub fn new(
        domain: &str,
        subnet: Ipv4Addr,
        prefix: u8,
        server: &str,
        names: &[(String, IpAddr, bool)],
    ) -> Result<Zone, ZoneError> {
        let domain = name(domain)?;
        let primary = name(server)?;
        let contact = name(&format!("hostmaster.{domain}"))?;
        let soa = Record::from_rdata(
            domain.clone(),
            NEGATIVE_TTL,
            RData::SOA(SOA::new(
                primary,
                contact,
                1,
                3600,
                600,
                86400,
                NEGATIVE_TTL,
            )),
        );
        let mut zone = Zone {
            domain,
            network: u32::from(subnet) & mask(prefix),
            prefix,
            network6: None,
            soa,
            names: HashMap::new(),
            ptrs: HashMap::new(),
            learned: HashMap::new(),
            learned_ptrs: HashMap::new(),
        };
        for (text, ip, ptr) in names {
            let owner = name(text)?;
            if *ptr {
                zone.ptrs.entry(*ip).or_insert_with(|| owner.clone());
            }
            zone.names.entry(owner).or_default().push(*ip);
        }
        Ok(zone)
    }

    /// The zone with the internal IPv6 prefix `network`/`prefix` (the one
    /// in use, a /64): its reverse names under `ip6.arpa` are the zone's
    /// and never forwarded.
    pub fn with_prefix6(mut self, network: Ipv6Addr, prefix: u8) -> Zone {
        let prefix = prefix.min(128);
        self.network6 = Some((u128::from(network) & mask6(prefix), prefix));
        self
    }

    /// The internal IPv6 prefix, if the zone has one.
    pub fn prefix6(&self) -> Option<(Ipv6Addr, u8)> {
        self.network6
            .map(|(network, prefix)| (Ipv6Addr::from(network), prefix))
    }

    /// Replaces the names learned from DHCP and DHCPv6 leases: (label,
    /// address). A label that is not a DNS label, or whose name or
    /// address the description already names, is left out; a name keeps
    /// the first address of each family it is given. Whether anything
    /// changed.
    pub fn set_learned(&mut self, learned: &[(String, IpAddr)]) -> bool {
        let before = (
            std::mem::take(&mut self.learned),
            std::mem::take(&mut self.learned_ptrs),
        );
        for (label, ip) in learned {
            let Ok(owner) = name(&format!("{label}.{}", self.domain)) else {
                continue;
            };
            if owner.num_labels() != self.domain.num_labels() + 1 || self.names.contains_key(&owner)
            {
                continue;
            }
            let addresses = self.learned.entry(owner.clone()).or_default();
            if addresses.iter().any(|a| a.is_ipv4() == ip.is_ipv4()) {
                continue;
            }
            addresses.push(*ip);
            if !self.ptrs.contains_key(ip) {
                self.learned_ptrs.entry(*ip).or_insert(owner);
            }
        }
        before != (self.learned.clone(), self.learned_ptrs.clone())
    }

    /// The zone's SOA record (for negative answers).
    pub fn soa(&self) -> &Record {
        &self.soa
    }

    /// How many names the zone holds (described, learned).
    pub fn len(&self) -> (usize, usize) {
        (self.names.len(), self.learned.len())
    }

    /// Answers `qname` (lower case) / `qtype`.
    pub fn lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        if self.domain.zone_of(qname) {
            return self.forward_lookup(qname, qtype);
        }
        match self.reverse(qname) {
            Reverse::Address(ip) => self.reverse_lookup(qname, ip, qtype),
            Reverse::Other => Lookup::NoData,
            Reverse::NotOurs => Lookup::NotOurs,
        }
    }

    fn forward_lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        if *qname == self.domain {
            return match qtype {
                RecordType::SOA => Lookup::Answer(vec![self.soa.clone()]),
                _ => Lookup::NoData,
            };
        }
        let (addresses, ttl) = if let Some(list) = self.names.get(qname) {
            (list, DESCRIBED_TTL)
        } else if let Some(list) = self.learned.get(qname) {
            (list, LEARNED_TTL)
        } else {
            return Lookup::NxDomain;
        };
        // A name without an address of the asked family exists: NODATA
        // (RFC 4074 §3), never NXDOMAIN, or a client asking AAAA first
        // would give up on its A too.
        let records: Vec<Record> = addresses
            .iter()
            .filter(|ip| answers(ip, qtype))
            .map(|ip| {
                let data = match ip {
                    IpAddr::V4(v4) => RData::A(A(*v4)),
                    IpAddr::V6(v6) => RData::AAAA(AAAA(*v6)),
                };
                Record::from_rdata(qname.clone(), ttl, data)
            })
            .collect();
        if records.is_empty() {
            Lookup::NoData
        } else {
            Lookup::Answer(records)
        }
    }

    fn reverse_lookup(&self, qname: &Name, ip: IpAddr, qtype: RecordType) -> Lookup {
        let (owner, ttl) = if let Some(owner) = self.ptrs.get(&ip) {
            (owner, DESCRIBED_TTL)
        } else if let Some(owner) = self.learned_ptrs.get(&ip) {
            (owner, LEARNED_TTL)
        } else {
            return Lookup::NxDomain;
        };
        if qtype != RecordType::PTR {
            return Lookup::NoData;
        }
        Lookup::Answer(vec![Record::from_rdata(
            qname.clone(),
            ttl,
            RData::PTR(PTR(owner.clone())),
        )])
    }

    /// Where a name under `in-addr.arpa` or `ip6.arpa` falls. A name is
    /// ours once the labels read from the right cover the subnet's (or
    /// the prefix's) bits and match them; below that point anything is
    /// ours (an address, or `Other`), so no name under the internal
    /// reverse zones is ever forwarded.
    fn reverse(&self, qname: &Name) -> Reverse {
        let labels: Vec<&[u8]> = qname.iter().collect();
        let n = labels.len();
        if n < 2 || !labels[n - 1].eq_ignore_ascii_case(b"arpa") {
            return Reverse::NotOurs;
        }
        let below = &labels[..n - 2];
        if labels[n - 2].eq_ignore_ascii_case(b"in-addr") {
            self.reverse4(below)
        } else if labels[n - 2].eq_ignore_ascii_case(b"ip6") {
            self.reverse6(below)
        } else {
            Reverse::NotOurs
        }
    }

    /// `labels` are those left of `in-addr.arpa`: octets, most
    /// significant last.
    fn reverse4(&self, labels: &[&[u8]]) -> Reverse {
        let mut value = 0u32;
        let mut read = 0usize;
        for label in labels.iter().rev().take(4) {
            let Some(octet) = octet(label) else {
                break;
            };
            value |= u32::from(octet) << (24 - 8 * read);
            read += 1;
        }
        if 8 * read < usize::from(self.prefix) || value & mask(self.prefix) != self.network {
            return Reverse::NotOurs; // elsewhere, or a zone above ours
        }
        if read == 4 && labels.len() == 4 {
            Reverse::Address(IpAddr::V4(Ipv4Addr::from(value)))
        } else {
            Reverse::Other
        }
    }

    /// `labels` are those left of `ip6.arpa`: nibbles, most significant
    /// last.
    fn reverse6(&self, labels: &[&[u8]]) -> Reverse {
        let Some((network, prefix)) = self.network6 else {
            return Reverse::NotOurs;
        };
        let mut value = 0u128;
        let mut read = 0usize;
        for label in labels.iter().rev().take(32) {
            let Some(nibble) = nibble(label) else {
                break;
            };
            value |= u128::from(nibble) << (124 - 4 * read);
            read += 1;
        }
        if 4 * read < usize::from(prefix) || value & mask6(prefix) != network {
            return Reverse::NotOurs;
        }
        if read == 32 && labels.len() == 32 {
            Reverse::Address(IpAddr::V6(Ipv6Addr::from(value)))
        } else {
            Reverse::Other
        }
    }
}

/// A decimal octet label (`0` to `255`, at most three digits).
fn octet(label: &[u8]) -> Option<u8> {
    if label.is_empty() || label.len() > 3 || !label.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(label).ok()?.parse().ok()
}

/// A nibble label: one hexadecimal digit, either case.
fn nibble(label: &[u8]) -> Option<u8> {
    match label {
        [digit] => char::from(*digit)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PREFIX6: &str = "fd12:3456:789a::";

    fn v6(iid: u16) -> IpAddr {
        let prefix: Ipv6Addr = PREFIX6.parse().expect("prefix");
        let mut segments = prefix.segments();
        segments[7] = iid;
        IpAddr::V6(Ipv6Addr::from(segments))
    }

    fn v4(d: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(192, 168, 100, d))
    }

    fn zone() -> Zone {
        Zone::new(
            "internal",
            Ipv4Addr::new(192, 168, 100, 0),
            24,
            "net-vm.internal",
            &[
                ("net-vm.internal".into(), v4(1), true),
                ("net-vm.internal".into(), v6(1), true),
                ("gui-vm.internal".into(), v4(3), true),
                ("gui-vm.internal".into(), v6(3), true),
                (
                    "updates.example.com".into(),
                    IpAddr::V4(Ipv4Addr::new(203, 0, 113, 5)),
                    false,
                ),
            ],
        )
        .expect("zone")
        .with_prefix6(PREFIX6.parse().expect("prefix"), 64)
    }

    fn q(text: &str) -> Name {
        name(text).expect("name")
    }

    fn rev(ip: IpAddr) -> Name {
        Name::from(ip).to_lowercase()
    }

    #[test]
    fn names_addresses_and_their_absence() {
        let z = zone();
        let Lookup::Answer(records) = z.lookup(&q("GUI-VM.internal"), RecordType::A) else {
            panic!("no answer");
        };
        assert_eq!(records.len(), 1);
        assert_eq!(
            records[0].data,
            RData::A(A(Ipv4Addr::new(192, 168, 100, 3)))
        );
        let Lookup::Answer(records) = z.lookup(&q("gui-vm.internal"), RecordType::AAAA) else {
            panic!("no AAAA");
        };
        let IpAddr::V6(want) = v6(3) else {
            unreachable!()
        };
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].data, RData::AAAA(AAAA(want)));
        assert_eq!(
            z.lookup(&q("gui-vm.internal"), RecordType::MX),
            Lookup::NoData
        );
        assert_eq!(
            z.lookup(&q("nope.internal"), RecordType::A),
            Lookup::NxDomain
        );
        assert_eq!(
            z.lookup(&q("nope.internal"), RecordType::AAAA),
            Lookup::NxDomain
        );
        assert_eq!(
            z.lookup(&q("a.b.internal"), RecordType::A),
            Lookup::NxDomain
        );
        assert_eq!(z.lookup(&q("example.com"), RecordType::A), Lookup::NotOurs);
        assert!(matches!(
            z.lookup(&q("internal"), RecordType::SOA),
            Lookup::Answer(_)
        ));
        // A name without IPv6 has no AAAA: NODATA, not NXDOMAIN.
        assert_eq!(
            z.lookup(&q("updates.example.com"), RecordType::AAAA),
            Lookup::NotOurs
        );
        let v4_only = Zone::new(
            "internal",
            Ipv4Addr::new(192, 168, 100, 0),
            24,
            "net-vm.internal",
            &[("printer.internal".into(), v4(60), true)],
        )
        .expect("zone");
        assert_eq!(
            v4_only.lookup(&q("printer.internal"), RecordType::AAAA),
            Lookup::NoData
        );
    }

    #[test]
    fn reverse_names_of_the_subnet_never_leave() {
        let z = zone();
        assert!(matches!(
            z.lookup(&q("3.100.168.192.in-addr.arpa"), RecordType::PTR),
            Lookup::Answer(_)
        ));
        assert_eq!(
            z.lookup(&q("9.100.168.192.in-addr.arpa"), RecordType::PTR),
            Lookup::NxDomain
        );
        assert_eq!(
            z.lookup(&q("100.168.192.in-addr.arpa"), RecordType::NS),
            Lookup::NoData
        );
        assert_eq!(
            z.lookup(&q("x.3.100.168.192.in-addr.arpa"), RecordType::PTR),
            Lookup::NoData
        );
        // A label that is no octet below the subnet's reverse zone is
        // still ours.
        assert_eq!(
            z.lookup(&q("x.100.168.192.in-addr.arpa"), RecordType::PTR),
            Lookup::NoData
        );
        assert_eq!(
            z.lookup(&q("256.100.168.192.in-addr.arpa"), RecordType::PTR),
            Lookup::NoData
        );
        assert_eq!(
            z.lookup(&q("5.113.0.203.in-addr.arpa"), RecordType::PTR),
            Lookup::NotOurs
        );
        assert_eq!(
            z.lookup(&q("168.192.in-addr.arpa"), RecordType::NS),
            Lookup::NotOurs
        );
        assert_eq!(
            z.lookup(&q("3.x.168.192.in-addr.arpa"), RecordType::PTR),
            Lookup::NotOurs
        );
    }

    #[test]
    fn reverse_names_of_the_prefix_never_leave() {
        let z = zone();
        let Lookup::Answer(ptr) = z.lookup(&rev(v6(3)), RecordType::PTR) else {
            panic!("no PTR");
        };
        assert_eq!(ptr[0].data, RData::PTR(PTR(q("gui-vm.internal"))));
        // Upper-case nibbles are the same name.
        let upper = q(&rev(v6(0xab)).to_ascii().to_uppercase());
        assert_eq!(z.lookup(&upper, RecordType::PTR), Lookup::NxDomain);
        assert_eq!(z.lookup(&rev(v6(3)), RecordType::AAAA), Lookup::NoData);
        assert_eq!(z.lookup(&rev(v6(9)), RecordType::PTR), Lookup::NxDomain);
        // The /64's apex (16 nibbles) and names between it and an address.
        let apex = "a.9.8.7.6.5.4.3.2.1.d.f.ip6.arpa";
        let apex = format!("0.0.0.0.{apex}");
        assert_eq!(z.lookup(&q(&apex), RecordType::NS), Lookup::NoData);
        assert_eq!(
            z.lookup(&q(&format!("1.0.{apex}")), RecordType::PTR),
            Lookup::NoData
        );
        let below = format!("x.{}", rev(v6(3)).to_ascii());
        assert_eq!(z.lookup(&q(&below), RecordType::PTR), Lookup::NoData);
        let bad = format!("ab.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.{apex}");
        assert_eq!(z.lookup(&q(&bad), RecordType::PTR), Lookup::NoData);
        // Above the /64, elsewhere, or without a prefix: not ours.
        assert_eq!(
            z.lookup(&q("0.0.0.a.9.8.7.6.5.4.3.2.1.d.f.ip6.arpa"), RecordType::NS),
            Lookup::NotOurs
        );
        let elsewhere: Ipv6Addr = "2001:db8::3".parse().expect("ip");
        assert_eq!(
            z.lookup(&rev(IpAddr::V6(elsewhere)), RecordType::PTR),
            Lookup::NotOurs
        );
        let without = Zone::new(
            "internal",
            Ipv4Addr::new(192, 168, 100, 0),
            24,
            "net-vm.internal",
            &[],
        )
        .expect("zone");
        assert_eq!(
            without.lookup(&rev(v6(3)), RecordType::PTR),
            Lookup::NotOurs
        );
        assert_eq!(without.prefix6(), None);
        assert_eq!(z.prefix6(), Some((PREFIX6.parse().expect("prefix"), 64)));
    }

    #[test]
    fn learned_names_never_override_described_ones() {
        let mut z = zone();
        z.set_learned(&[
            ("laptop".into(), v4(200)),
            ("gui-vm".into(), v4(201)),
            ("bad name".into(), v4(202)),
            ("evil".into(), v4(3)),
            ("evil6".into(), v6(3)),
        ]);
        assert!(matches!(
            z.lookup(&q("laptop.internal"), RecordType::A),
            Lookup::Answer(_)
        ));
        let Lookup::Answer(records) = z.lookup(&q("gui-vm.internal"), RecordType::A) else {
            panic!("no answer");
        };
        assert_eq!(
            records[0].data,
            RData::A(A(Ipv4Addr::new(192, 168, 100, 3)))
        );
        let Lookup::Answer(ptr) = z.lookup(&q("3.100.168.192.in-addr.arpa"), RecordType::PTR)
        else {
            panic!("no PTR");
        };
        assert_eq!(ptr[0].data, RData::PTR(PTR(q("gui-vm.internal"))));
        let Lookup::Answer(ptr) = z.lookup(&rev(v6(3)), RecordType::PTR) else {
            panic!("no PTR");
        };
        assert_eq!(ptr[0].data, RData::PTR(PTR(q("gui-vm.internal"))));
        z.set_learned(&[]);
        assert_eq!(
            z.lookup(&q("laptop.internal"), RecordType::A),
            Lookup::NxDomain
        );
    }

    #[test]
    fn learned_names_carry_one_address_of_each_family() {
        let mut z = zone();
        let pool6 = v6(0xc8);
        assert!(z.set_learned(&[
            ("laptop".into(), v4(200)),
            ("laptop".into(), pool6),
            ("laptop".into(), v6(0xc9)),
            ("phone".into(), v6(0xca)),
        ]));
        let Lookup::Answer(aaaa) = z.lookup(&q("laptop.internal"), RecordType::AAAA) else {
            panic!("no AAAA");
        };
        let IpAddr::V6(want) = pool6 else {
            unreachable!()
        };
        assert_eq!(aaaa.len(), 1, "the first IPv6 address only");
        assert_eq!(aaaa[0].data, RData::AAAA(AAAA(want)));
        assert_eq!(aaaa[0].ttl, LEARNED_TTL);
        let Lookup::Answer(ptr) = z.lookup(&rev(pool6), RecordType::PTR) else {
            panic!("no PTR");
        };
        assert_eq!(ptr[0].data, RData::PTR(PTR(q("laptop.internal"))));
        assert_eq!(z.lookup(&rev(v6(0xc9)), RecordType::PTR), Lookup::NxDomain);
        // IPv6 only: its A is NODATA.
        assert_eq!(
            z.lookup(&q("phone.internal"), RecordType::A),
            Lookup::NoData
        );
        assert!(!z.set_learned(&[
            ("laptop".into(), v4(200)),
            ("laptop".into(), pool6),
            ("laptop".into(), v6(0xc9)),
            ("phone".into(), v6(0xca)),
        ]));
        assert_eq!(z.len(), (3, 2));
    }
}
