//! The internal zone: `<name>.<domain>` A records and the PTR records of
//! the internal subnet, from the description and from DHCP leases, and
//! the answer for every name the zone owns (NXDOMAIN for unknown ones,
//! so nothing about internal names leaks upstream).

use hickory_proto::rr::rdata::{A, PTR, SOA};
use hickory_proto::rr::{Name, RData, Record, RecordType};
use std::collections::HashMap;
use std::net::Ipv4Addr;

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

/// The internal zone.
#[derive(Debug, Clone)]
pub struct Zone {
    domain: Name,
    network: u32,
    prefix: u8,
    soa: Record,
    names: HashMap<Name, Vec<Ipv4Addr>>,
    ptrs: HashMap<Ipv4Addr, Name>,
    learned: HashMap<Name, Ipv4Addr>,
    learned_ptrs: HashMap<Ipv4Addr, Name>,
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

impl Zone {
    /// The zone `domain` for `subnet`/`prefix`; `server` is the net-vm's
    /// name (the SOA's primary); `names` are (FQDN, address, with PTR).
    pub fn new(
        domain: &str,
        subnet: Ipv4Addr,
        prefix: u8,
        server: &str,
        names: &[(String, Ipv4Addr, bool)],
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

    /// Replaces the names learned from DHCP leases: (label, address). A
    /// label that is not a DNS label, or whose name or address the
    /// description already names, is left out. Whether anything changed.
    pub fn set_learned(&mut self, learned: &[(String, Ipv4Addr)]) -> bool {
        let before = (
            std::mem::take(&mut self.learned),
            std::mem::take(&mut self.learned_ptrs),
        );
        for (label, ip) in learned {
            let Ok(owner) = name(&format!("{label}.{}", self.domain)) else {
                continue;
            };
            if owner.num_labels() != self.domain.num_labels() + 1
                || self.names.contains_key(&owner)
                || self.learned.contains_key(&owner)
            {
                continue;
            }
            if !self.ptrs.contains_key(ip) {
                self.learned_ptrs.insert(*ip, owner.clone());
            }
            self.learned.insert(owner, *ip);
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
        match self.reverse_address(qname) {
            Some(Some(ip)) => self.reverse_lookup(qname, ip, qtype),
            Some(None) => Lookup::NoData,
            None => Lookup::NotOurs,
        }
    }

    fn forward_lookup(&self, qname: &Name, qtype: RecordType) -> Lookup {
        if *qname == self.domain {
            return match qtype {
                RecordType::SOA => Lookup::Answer(vec![self.soa.clone()]),
                _ => Lookup::NoData,
            };
        }
        let (addresses, ttl): (Vec<Ipv4Addr>, u32) = if let Some(list) = self.names.get(qname) {
            (list.clone(), DESCRIBED_TTL)
        } else if let Some(ip) = self.learned.get(qname) {
            (vec![*ip], LEARNED_TTL)
        } else {
            return Lookup::NxDomain;
        };
        if qtype != RecordType::A {
            return Lookup::NoData;
        }
        Lookup::Answer(
            addresses
                .into_iter()
                .map(|ip| Record::from_rdata(qname.clone(), ttl, RData::A(A(ip))))
                .collect(),
        )
    }

    fn reverse_lookup(&self, qname: &Name, ip: Ipv4Addr, qtype: RecordType) -> Lookup {
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

    /// For a name under `in-addr.arpa` inside the internal subnet:
    /// `Some(Some(ip))` for a whole address, `Some(None)` for a name
    /// between the subnet's reverse zone and an address; `None` when it
    /// is not inside the subnet (or not a reverse name at all).
    fn reverse_address(&self, qname: &Name) -> Option<Option<Ipv4Addr>> {
        let labels: Vec<&[u8]> = qname.iter().collect();
        let n = labels.len();
        if n < 2
            || !labels[n - 1].eq_ignore_ascii_case(b"arpa")
            || !labels[n - 2].eq_ignore_ascii_case(b"in-addr")
        {
            return None;
        }
        // Octets from the most significant: the labels right to left.
        let mut octets = Vec::new();
        for label in labels[..n - 2].iter().rev().take(4) {
            let text = std::str::from_utf8(label).ok()?;
            if text.is_empty() || text.len() > 3 || !text.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            octets.push(text.parse::<u8>().ok()?);
        }
        let bits = 8 * octets.len() as u32;
        if bits < u32::from(self.prefix) {
            return None; // a zone above ours: not internal
        }
        let mut value = 0u32;
        for (i, octet) in octets.iter().enumerate() {
            value |= u32::from(*octet) << (24 - 8 * i);
        }
        if value & mask(self.prefix) != self.network {
            return None;
        }
        if octets.len() == 4 && n == 6 {
            Some(Some(Ipv4Addr::from(value)))
        } else {
            Some(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn zone() -> Zone {
        Zone::new(
            "internal",
            Ipv4Addr::new(192, 168, 100, 0),
            24,
            "net-vm.internal",
            &[
                (
                    "net-vm.internal".into(),
                    Ipv4Addr::new(192, 168, 100, 1),
                    true,
                ),
                (
                    "gui-vm.internal".into(),
                    Ipv4Addr::new(192, 168, 100, 3),
                    true,
                ),
                (
                    "updates.example.com".into(),
                    Ipv4Addr::new(203, 0, 113, 5),
                    false,
                ),
            ],
        )
        .expect("zone")
    }

    fn q(text: &str) -> Name {
        name(text).expect("name")
    }

    #[test]
    fn names_addresses_and_their_absence() {
        let z = zone();
        let Lookup::Answer(records) = z.lookup(&q("GUI-VM.internal"), RecordType::A) else {
            panic!("no answer");
        };
        assert_eq!(
            records[0].data,
            RData::A(A(Ipv4Addr::new(192, 168, 100, 3)))
        );
        assert_eq!(
            z.lookup(&q("gui-vm.internal"), RecordType::AAAA),
            Lookup::NoData
        );
        assert_eq!(
            z.lookup(&q("nope.internal"), RecordType::A),
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
        assert_eq!(
            z.lookup(&q("5.113.0.203.in-addr.arpa"), RecordType::PTR),
            Lookup::NotOurs
        );
        assert_eq!(
            z.lookup(&q("168.192.in-addr.arpa"), RecordType::NS),
            Lookup::NotOurs
        );
    }

    #[test]
    fn learned_names_never_override_described_ones() {
        let mut z = zone();
        z.set_learned(&[
            ("laptop".into(), Ipv4Addr::new(192, 168, 100, 200)),
            ("gui-vm".into(), Ipv4Addr::new(192, 168, 100, 201)),
            ("bad name".into(), Ipv4Addr::new(192, 168, 100, 202)),
            ("evil".into(), Ipv4Addr::new(192, 168, 100, 3)),
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
        z.set_learned(&[]);
        assert_eq!(
            z.lookup(&q("laptop.internal"), RecordType::A),
            Lookup::NxDomain
        );
    }
}
