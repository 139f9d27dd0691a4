//! Connection tracking over netlink (ctnetlink): list the IPv4 entries by
//! their original-direction tuple, and delete one by that tuple.
//! Replaces `conntrack -L -f ipv4` and `conntrack -D …`.

use crate::wire::{self, Netlink};
use crate::{Error, Malformed};
use netlink_packet_core::{DefaultNla, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_netfilter::conntrack::{
    ConntrackAttribute, ConntrackMessage, IPTuple, ProtoTuple, Tuple as CtTuple,
};
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use nix::errno::Errno;
use std::net::{IpAddr, Ipv4Addr};

/// `NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW`.
const CT_NEW: u16 = 1 << 8;
const CTA_TUPLE_ORIG: u16 = 1;
const CTA_ZONE: u16 = 18;
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;

/// What identifies an ICMP "connection" (an echo's identifier).
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
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, …).
    pub proto: u8,
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// Source port, for protocols with ports.
    pub sport: Option<u16>,
    /// Destination port, for protocols with ports.
    pub dport: Option<u16>,
    /// ICMP's type, code and identifier (needed to delete an ICMP entry).
    pub icmp: Option<Icmp>,
    /// Conntrack zone (0 unless the ruleset sets zones).
    pub zone: u16,
}

/// Reads one ctnetlink entry (after the netlink header). `None` for
/// entries that are not IPv4 or have no original tuple. Public so the
/// parser can be fuzzed; [`Conntrack::dump_ipv4`] is the normal way in.
pub fn parse_entry(payload: &[u8]) -> Result<Option<Tuple>, Malformed> {
    let attrs = wire::attributes(payload.get(4..).ok_or(Malformed("nfgenmsg"))?)?;
    let Some(orig) = wire::find(&attrs, CTA_TUPLE_ORIG) else {
        return Ok(None);
    };
    let orig = wire::attributes(orig)?;
    let ip = wire::attributes(wire::find(&orig, CTA_TUPLE_IP).unwrap_or(&[]))?;
    let proto = wire::attributes(wire::find(&orig, CTA_TUPLE_PROTO).unwrap_or(&[]))?;
    let v4 = |kind| -> Option<Ipv4Addr> {
        let b: [u8; 4] = wire::find(&ip, kind)?.try_into().ok()?;
        Some(Ipv4Addr::from(b))
    };
    let (Some(src), Some(dst)) = (v4(CTA_IP_V4_SRC), v4(CTA_IP_V4_DST)) else {
        return Ok(None);
    };
    let number = wire::find(&proto, CTA_PROTO_NUM)
        .and_then(|v| v.first().copied())
        .ok_or(Malformed("tuple without a protocol number"))?;
    let byte = |kind| wire::find(&proto, kind).and_then(|v| v.first().copied());
    let icmp = match (
        byte(CTA_PROTO_ICMP_TYPE),
        byte(CTA_PROTO_ICMP_CODE),
        wire::find(&proto, CTA_PROTO_ICMP_ID).and_then(wire::be16),
    ) {
        (Some(kind), Some(code), Some(id)) => Some(Icmp { kind, code, id }),
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

fn ipv4(message: ConntrackMessage) -> NetfilterMessage {
    NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::IPv4, 0, 0),
        message,
    )
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
        proto.push(ProtoTuple::Other(DefaultNla::new(
            CTA_PROTO_ICMP_ID,
            icmp.id.to_be_bytes().to_vec(),
        )));
        proto.push(ProtoTuple::Other(DefaultNla::new(
            CTA_PROTO_ICMP_TYPE,
            vec![icmp.kind],
        )));
        proto.push(ProtoTuple::Other(DefaultNla::new(
            CTA_PROTO_ICMP_CODE,
            vec![icmp.code],
        )));
    }
    let mut attributes = vec![ConntrackAttribute::CtaTupleOrig(vec![
        CtTuple::Ip(vec![
            IPTuple::SourceAddress(IpAddr::V4(tuple.src)),
            IPTuple::DestinationAddress(IpAddr::V4(tuple.dst)),
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
        let seq = self.netlink.next_seq();
        let request = wire::encode(
            ipv4(ConntrackMessage::Get(Vec::new())),
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

    /// Deletes the entry whose original tuple is `tuple`: `Ok(true)`
    /// deleted, `Ok(false)` there was none (already gone).
    pub fn delete(&mut self, tuple: &Tuple) -> Result<bool, Error> {
        let seq = self.netlink.next_seq();
        let request = wire::encode(
            ipv4(ConntrackMessage::Delete(delete_attributes(tuple))),
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

/// [`Conntrack::delete`] on a socket of its own.
pub fn delete(tuple: &Tuple) -> Result<bool, Error> {
    Conntrack::open()?.delete(tuple)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(tuple: &Tuple) -> Vec<u8> {
        // What we send to delete is what the kernel dumps, after the
        // netlink header: encode a Delete and strip the 16-byte header.
        let bytes = wire::encode(
            ipv4(ConntrackMessage::Delete(delete_attributes(tuple))),
            0,
            1,
        );
        bytes[16..].to_vec()
    }

    #[test]
    fn a_tuple_survives_encoding_and_parsing() {
        for tuple in [
            Tuple {
                proto: 17,
                src: Ipv4Addr::new(10, 0, 0, 2),
                dst: Ipv4Addr::new(10, 0, 0, 1),
                sport: Some(40000),
                dport: Some(53),
                icmp: None,
                zone: 0,
            },
            Tuple {
                proto: 1,
                src: Ipv4Addr::new(10, 0, 0, 2),
                dst: Ipv4Addr::new(10, 0, 0, 1),
                sport: None,
                dport: None,
                icmp: Some(Icmp {
                    kind: 8,
                    code: 0,
                    id: 7,
                }),
                zone: 3,
            },
        ] {
            assert_eq!(parse_entry(&entry(&tuple)), Ok(Some(tuple)));
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_entry(&bytes);
        }

        #[test]
        fn generated_tuples_round_trip(
            proto in any::<u8>(), src in any::<u32>(), dst in any::<u32>(),
            ports in proptest::option::of(any::<(u16, u16)>()), zone in any::<u16>(),
        ) {
            let tuple = Tuple {
                proto,
                src: Ipv4Addr::from(src),
                dst: Ipv4Addr::from(dst),
                sport: ports.map(|p| p.0),
                dport: ports.map(|p| p.1),
                icmp: None,
                zone,
            };
            prop_assert_eq!(parse_entry(&entry(&tuple)), Ok(Some(tuple)));
        }
    }
}
