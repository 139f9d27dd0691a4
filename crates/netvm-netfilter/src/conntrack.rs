//! Connection tracking over netlink (ctnetlink): list the IPv4 and IPv6
//! entries by their original-direction tuple, and delete one by that
//! tuple. Replaces `conntrack -L -f ipv4|ipv6` and `conntrack -D …`.

use crate::wire::{self, Netlink};
use crate::{Error, Malformed};
use netlink_packet_core::{DefaultNla, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Tuple as CtTuple,
};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use nix::errno::Errno;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW`.
const CT_NEW: u16 = 1 << 8;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_IP_V6_SRC: u16 = 3;
const CTA_IP_V6_DST: u16 = 4;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;
const CTA_PROTO_ICMPV6_ID: u16 = 7;
const CTA_PROTO_ICMPV6_TYPE: u16 = 8;
const CTA_PROTO_ICMPV6_CODE: u16 = 9;
/// `AF_INET`, `AF_INET6`: the nfgenmsg family of an entry.
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
/// ICMPv6's protocol number: its identifier travels in other attributes
/// than ICMP's.
const IPPROTO_ICMPV6: u8 = 58;

/// The (id, type, code) attribute kinds for `proto`: ICMPv6's for 58,
/// ICMP's otherwise.
fn icmp_kinds(proto: u8) -> (u16, u16, u16) {
    if proto == IPPROTO_ICMPV6 {
        (
            CTA_PROTO_ICMPV6_ID,
            CTA_PROTO_ICMPV6_TYPE,
            CTA_PROTO_ICMPV6_CODE,
        )
    } else {
        (CTA_PROTO_ICMP_ID, CTA_PROTO_ICMP_TYPE, CTA_PROTO_ICMP_CODE)
    }
}

/// What identifies an ICMP or ICMPv6 "connection" (an echo's identifier).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Icmp {
    /// ICMP type.
    pub kind: u8,
    /// ICMP code.
    pub code: u8,
    /// Identifier.
    pub id: u16,
}

/// A tracked connection's original-direction tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6, …).
    pub proto: u8,
    /// Source address (IPv4 or IPv6, the same family as `dst` in every
    /// entry the kernel lists).
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// Source port, for protocols with ports.
    pub sport: Option<u16>,
    /// Destination port, for protocols with ports.
    pub dport: Option<u16>,
    /// ICMP's or ICMPv6's type, code and identifier (needed to delete
    /// such an entry); read for protocols 1 and 58 only.
    pub icmp: Option<Icmp>,
    /// Conntrack zone (0 unless the ruleset sets zones).
    pub zone: u16,
}

/// Reads one ctnetlink entry (after the netlink header). `None` for
/// entries of a family other than IPv4 and IPv6, or without an original
/// tuple or addresses. An entry whose addresses are not both of its
/// family, or of the wrong length, is malformed. Public so the parser can
/// be fuzzed; [`Conntrack::dump_all`] is the normal way in.
pub fn parse_entry(payload: &[u8]) -> Result<Option<Tuple>, Malformed> {
    let family = *payload.first().ok_or(Malformed("nfgenmsg"))?;
    let attrs = wire::attributes(payload.get(4..).ok_or(Malformed("nfgenmsg"))?)?;
    if family != AF_INET && family != AF_INET6 {
        return Ok(None);
    }
    let Some(orig) = wire::find(&attrs, CTA_TUPLE_ORIG) else {
        return Ok(None);
    };
    let orig = wire::attributes(orig)?;
    let ip = wire::attributes(wire::find(&orig, CTA_TUPLE_IP).unwrap_or(&[]))?;
    let proto = wire::attributes(wire::find(&orig, CTA_TUPLE_PROTO).unwrap_or(&[]))?;
    let v4 = |kind| -> Result<Option<IpAddr>, Malformed> {
        wire::find(&ip, kind)
            .map(|v| {
                let b: [u8; 4] = v.try_into().map_err(|_| Malformed("IPv4 address length"))?;
                Ok(IpAddr::V4(Ipv4Addr::from(b)))
            })
            .transpose()
    };
    let v6 = |kind| -> Result<Option<IpAddr>, Malformed> {
        wire::find(&ip, kind)
            .map(|v| {
                let b: [u8; 16] = v.try_into().map_err(|_| Malformed("IPv6 address length"))?;
                Ok(IpAddr::V6(Ipv6Addr::from(b)))
            })
            .transpose()
    };
    let addresses = (
        v4(CTA_IP_V4_SRC)?,
        v4(CTA_IP_V4_DST)?,
        v6(CTA_IP_V6_SRC)?,
        v6(CTA_IP_V6_DST)?,
    );
    let (src, dst) = match (family, addresses) {
        (_, (None, None, None, None)) => return Ok(None),
        (AF_INET, (Some(src), Some(dst), None, None)) => (src, dst),
        (AF_INET6, (None, None, Some(src), Some(dst))) => (src, dst),
        _ => return Err(Malformed("tuple addresses not both of the entry's family")),
    };
    let number = wire::find(&proto, CTA_PROTO_NUM)
        .and_then(|v| v.first().copied())
        .ok_or(Malformed("tuple without a protocol number"))?;
    let byte = |kind| wire::find(&proto, kind).and_then(|v| v.first().copied());
    let (id, kind, code) = icmp_kinds(number);
    let icmp = match (
        number == 1 || number == IPPROTO_ICMPV6,
        byte(kind),
        byte(code),
        wire::find(&proto, id).and_then(wire::be16),
    ) {
        (true, Some(kind), Some(code), Some(id)) => Some(Icmp { kind, code, id }),
        _ => None,
    };
    Ok(Some(Tuple {
        proto: number,
        src,
        dst,
        sport: wire::find(&proto, CTA_PROTO_SRC_PORT).and_then(wire::be16),
        dport: wire::find(&proto, CTA_PROTO_DST_PORT).and_then(wire::be16),
        icmp,
        zone: wire::find(&attrs, CTA_ZONE)
            .and_then(wire::be16)
            .unwrap_or(0),
    }))
}

/// `message` for the conntrack table of `family`.
fn message(family: NetfilterProtoFamily, message: ConntrackMessage) -> NetfilterMessage {
    NetfilterMessage::new(NetfilterHeader::new(family, 0, 0), message)
}

/// The family a tuple is deleted in: its source address's.
fn family(tuple: &Tuple) -> NetfilterProtoFamily {
    match tuple.src {
        IpAddr::V4(_) => NetfilterProtoFamily::IPv4,
        IpAddr::V6(_) => NetfilterProtoFamily::IPv6,
    }
}

/// The delete request's attributes for `tuple`.
fn delete_attributes(tuple: &Tuple) -> Vec<ConntrackAttribute> {
    let mut proto = vec![ProtoTuple::Protocol(tuple.proto.into())];
    if let Some(p) = tuple.sport {
        proto.push(ProtoTuple::SourcePort(p));
    }
    if let Some(p) = tuple.dport {
        proto.push(ProtoTuple::DestinationPort(p));
    }
    if let Some(icmp) = tuple.icmp {
        let (id, kind, code) = icmp_kinds(tuple.proto);
        proto.push(ProtoTuple::Other(DefaultNla::new(
            id,
            icmp.id.to_be_bytes().to_vec(),
        )));
        proto.push(ProtoTuple::Other(DefaultNla::new(kind, vec![icmp.kind])));
        proto.push(ProtoTuple::Other(DefaultNla::new(code, vec![icmp.code])));
    }
    let mut attributes = vec![ConntrackAttribute::CtaTupleOrig(vec![
        CtTuple::Ip(vec![
            IPTuple::SourceAddress(tuple.src),
            IPTuple::DestinationAddress(tuple.dst),
        ]),
        CtTuple::Proto(proto),
    ])];
    if tuple.zone != 0 {
        attributes.push(ConntrackAttribute::Other(DefaultNla::new(
            CTA_ZONE,
            tuple.zone.to_be_bytes().to_vec(),
        )));
    }
    attributes
}

/// A ctnetlink socket (in the network namespace of the opening thread),
/// reusable for many requests.
pub struct Conntrack {
    netlink: Netlink,
}

impl Conntrack {
    /// Opens the socket.
    pub fn open() -> Result<Conntrack, Error> {
        Ok(Conntrack {
            netlink: Netlink::open(Some(wire::ANSWER_TIMEOUT))?,
        })
    }

    /// Every IPv4 entry's original tuple.
    pub fn dump_ipv4(&mut self) -> Result<Vec<Tuple>, Error> {
        self.dump(NetfilterProtoFamily::IPv4)
    }

    /// Every IPv6 entry's original tuple.
    pub fn dump_ipv6(&mut self) -> Result<Vec<Tuple>, Error> {
        self.dump(NetfilterProtoFamily::IPv6)
    }

    /// Every IPv4 entry's original tuple, then every IPv6 one's.
    pub fn dump_all(&mut self) -> Result<Vec<Tuple>, Error> {
        let mut tuples = self.dump_ipv4()?;
        tuples.extend(self.dump_ipv6()?);
        Ok(tuples)
    }

    /// The table of `family` (the kernel lists only entries of that
    /// family for it).
    fn dump(&mut self, family: NetfilterProtoFamily) -> Result<Vec<Tuple>, Error> {
        let seq = self.netlink.next_seq();
        let request = wire::encode(
            message(family, ConntrackMessage::Get(Vec::new())),
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
        );
        let mut tuples = Vec::new();
        self.netlink
            .dump("list tracked connections", &request, seq, |ty, payload| {
                if ty == CT_NEW {
                    tuples.extend(parse_entry(payload)?);
                }
                Ok(())
            })?;
        Ok(tuples)
    }

    /// Deletes the entry whose original tuple is `tuple` (in the table
    /// of its source address's family; the kernel refuses a tuple whose
    /// addresses are of two families): `Ok(true)` deleted, `Ok(false)`
    /// there was none (already gone).
    pub fn delete(&mut self, tuple: &Tuple) -> Result<bool, Error> {
        let seq = self.netlink.next_seq();
        let request = wire::encode(
            message(
                family(tuple),
                ConntrackMessage::Delete(delete_attributes(tuple)),
            ),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
        );
        match self
            .netlink
            .ack("delete a tracked connection", &request, seq)?
        {
            Ok(()) => Ok(true),
            Err(Errno::ENOENT) => Ok(false),
            Err(errno) => Err(Error::Refused {
                request: "delete a tracked connection",
                errno,
            }),
        }
    }
}

/// [`Conntrack::dump_ipv4`] on a socket of its own.
pub fn dump_ipv4() -> Result<Vec<Tuple>, Error> {
    Conntrack::open()?.dump_ipv4()
}

/// [`Conntrack::dump_ipv6`] on a socket of its own.
pub fn dump_ipv6() -> Result<Vec<Tuple>, Error> {
    Conntrack::open()?.dump_ipv6()
}

/// [`Conntrack::dump_all`] on a socket of its own.
pub fn dump_all() -> Result<Vec<Tuple>, Error> {
    Conntrack::open()?.dump_all()
}

/// [`Conntrack::delete`] on a socket of its own.
pub fn delete(tuple: &Tuple) -> Result<bool, Error> {
    Conntrack::open()?.delete(tuple)
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::Nla;
    use proptest::prelude::*;

    fn entry(tuple: &Tuple) -> Vec<u8> {
        // What we send to delete is what the kernel dumps, after the
        // netlink header: encode a Delete and strip the 16-byte header.
        let bytes = wire::encode(
            message(
                family(tuple),
                ConntrackMessage::Delete(delete_attributes(tuple)),
            ),
            0,
            1,
        );
        bytes[16..].to_vec()
    }

    fn v6(s: &str) -> IpAddr {
        IpAddr::V6(s.parse().expect("an IPv6 address"))
    }

    #[test]
    fn a_tuple_survives_encoding_and_parsing() {
        let udp = Tuple {
            proto: 17,
            src: Ipv4Addr::new(10, 0, 0, 2).into(),
            dst: Ipv4Addr::new(10, 0, 0, 1).into(),
            sport: Some(40000),
            dport: Some(53),
            icmp: None,
            zone: 0,
        };
        let icmp = Tuple {
            proto: 1,
            sport: None,
            dport: None,
            icmp: Some(Icmp {
                kind: 8,
                code: 0,
                id: 7,
            }),
            zone: 3,
            ..udp
        };
        let tcp6 = Tuple {
            proto: 6,
            src: v6("fd00:1::a"),
            dst: v6("fd00:1::1:0:c8"),
            dport: Some(22),
            ..udp
        };
        let icmp6 = Tuple {
            proto: 58,
            src: v6("fd00:1::a"),
            dst: v6("fd00:1::1"),
            icmp: Some(Icmp {
                kind: 128,
                code: 0,
                id: 9,
            }),
            ..icmp
        };
        for tuple in [udp, icmp, tcp6, icmp6] {
            assert_eq!(parse_entry(&entry(&tuple)), Ok(Some(tuple)));
        }
    }

    #[test]
    fn the_fuzzing_seeds_are_read() {
        let seeds: [&[u8]; 2] = [
            include_bytes!("../../../fuzz/seeds/conntrack_entry/tcp6"),
            include_bytes!("../../../fuzz/seeds/conntrack_entry/icmp6"),
        ];
        let read: Vec<Option<Tuple>> = seeds
            .iter()
            .map(|s| parse_entry(s).expect("a seed parses"))
            .collect();
        let Some(tcp6) = read[0] else {
            panic!("an IPv6 TCP entry")
        };
        assert_eq!((tcp6.proto, tcp6.dport), (6, Some(22)));
        assert_eq!(tcp6.dst, v6("fd00:1::1:0:c8"));
        let Some(icmp6) = read[1] else {
            panic!("an ICMPv6 entry")
        };
        assert_eq!(
            icmp6.icmp,
            Some(Icmp {
                kind: 128,
                code: 0,
                id: 9
            })
        );
    }

    #[test]
    fn icmpv6_uses_its_own_attributes() {
        let icmp6 = Tuple {
            proto: 58,
            src: v6("fd00::a"),
            dst: v6("fd00::1"),
            sport: None,
            dport: None,
            icmp: Some(Icmp {
                kind: 128,
                code: 0,
                id: 0x1234,
            }),
            zone: 0,
        };
        let Some(ConntrackAttribute::CtaTupleOrig(orig)) = delete_attributes(&icmp6).pop() else {
            panic!("an original tuple");
        };
        let kinds: Vec<u16> = orig
            .iter()
            .filter_map(|t| match t {
                CtTuple::Proto(p) => Some(p),
                _ => None,
            })
            .flatten()
            .filter_map(|p| match p {
                ProtoTuple::Other(nla) => Some(nla.kind()),
                _ => None,
            })
            .collect();
        assert_eq!(
            kinds,
            [
                CTA_PROTO_ICMPV6_ID,
                CTA_PROTO_ICMPV6_TYPE,
                CTA_PROTO_ICMPV6_CODE
            ]
        );
        let bytes = entry(&icmp6);
        assert_eq!(bytes[0], AF_INET6);
    }

    #[test]
    fn addresses_of_another_family_are_malformed() {
        let v4 = Tuple {
            proto: 17,
            src: Ipv4Addr::new(10, 0, 0, 2).into(),
            dst: Ipv4Addr::new(10, 0, 0, 1).into(),
            sport: Some(1),
            dport: Some(2),
            icmp: None,
            zone: 0,
        };
        // An IPv4 tuple in an entry that says it is IPv6, and back.
        let mut bytes = entry(&v4);
        bytes[0] = AF_INET6;
        assert!(parse_entry(&bytes).is_err());
        let v6 = Tuple {
            src: v6("fd00::2"),
            dst: v6("fd00::1"),
            ..v4
        };
        let mut bytes = entry(&v6);
        bytes[0] = AF_INET;
        assert!(parse_entry(&bytes).is_err());
        // Mixed families in one tuple.
        let mixed = Tuple {
            dst: Ipv4Addr::new(10, 0, 0, 1).into(),
            ..v6
        };
        assert!(parse_entry(&entry(&mixed)).is_err());
        // Another family (bridge) is skipped.
        let mut bytes = entry(&v4);
        bytes[0] = 7;
        assert_eq!(parse_entry(&bytes), Ok(None));
    }

    fn address(v6: bool, bits: u128) -> IpAddr {
        if v6 {
            IpAddr::V6(Ipv6Addr::from(bits))
        } else {
            IpAddr::V4(Ipv4Addr::from(bits as u32))
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_entry(&bytes);
        }

        #[test]
        fn generated_tuples_round_trip(
            is_v6 in any::<bool>(),
            proto in prop_oneof![Just(1u8), Just(6), Just(17), Just(58), any::<u8>()],
            src in any::<u128>(), dst in any::<u128>(),
            ports in proptest::option::of(any::<(u16, u16)>()), zone in any::<u16>(),
            icmp in proptest::option::of(any::<(u8, u8, u16)>()),
        ) {
            let tuple = Tuple {
                proto,
                src: address(is_v6, src),
                dst: address(is_v6, dst),
                sport: ports.map(|p| p.0),
                dport: ports.map(|p| p.1),
                icmp: icmp
                    .filter(|_| proto == 1 || proto == IPPROTO_ICMPV6)
                    .map(|(kind, code, id)| Icmp { kind, code, id }),
                zone,
            };
            prop_assert_eq!(parse_entry(&entry(&tuple)), Ok(Some(tuple)));
        }
    }
}
