//! nftables over netlink: add and remove elements of named sets of an
//! `inet` table, each call one transaction (batch), and read named
//! counters. Replaces `nft -f -` with `add element`/`delete element` and
//! `nft -j list counters`.
//!
//! A set's key is typed by the caller as an [`Element`]: a list of
//! [`Part`]s encoded as nft encodes them (a concatenation pads every part
//! to a multiple of 4 bytes; a single part is not padded).

use crate::wire::{self, Netlink};
use crate::{Error, Malformed};
use netlink_packet_core::{DefaultNla, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_REQUEST};
use netlink_packet_netfilter::nftables::{
    DataAttribute, ListAttribute, NfTablesMessage, SetAttribute, SetElementAttribute,
    SetElementList, SetElementMessage, SetMessage,
};
use netlink_packet_netfilter::none::ControlMessage;
use netlink_packet_netfilter::{NetfilterHeader, NetfilterMessage, NetfilterProtoFamily};
use netvm_description::values::MacAddr;
use nix::errno::Errno;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// `NFNL_SUBSYS_NFTABLES`: the batch's `res_id`.
const NFNL_SUBSYS_NFTABLES: u16 = 10;
/// `NFT_MSG_NEWOBJ`.
const NFT_MSG_NEWOBJ: u8 = 18;
const NFTA_OBJ_TABLE: u16 = 1;
const NFTA_OBJ_NAME: u16 = 2;
const NFTA_OBJ_TYPE: u16 = 3;
const NFTA_OBJ_DATA: u16 = 4;
const NFT_OBJECT_COUNTER: u32 = 1;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;
/// Elements per transaction: the kernel answers each with its own ack,
/// and all of them must fit in the receive buffer at once.
pub const BATCH_LIMIT: usize = 1024;
/// Receive buffer asked for: the acks of one full batch, with room.
const RECEIVE_BUFFER: usize = 2 << 20;

/// One component of a set element's key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Part {
    /// `ipv4_addr`: 4 bytes, network order.
    Ipv4(Ipv4Addr),
    /// `ipv6_addr`: 16 bytes, network order.
    Ipv6(Ipv6Addr),
    /// `ether_addr`: 6 bytes.
    Mac(MacAddr),
    /// `inet_proto`: 1 byte.
    Proto(u8),
    /// `inet_service`: 2 bytes, big-endian.
    Port(u16),
}

impl Part {
    fn bytes(&self, out: &mut Vec<u8>) {
        match self {
            Part::Ipv4(ip) => out.extend_from_slice(&ip.octets()),
            Part::Ipv6(ip) => out.extend_from_slice(&ip.octets()),
            Part::Mac(mac) => out.extend_from_slice(&mac.0),
            Part::Proto(p) => out.push(*p),
            Part::Port(p) => out.extend_from_slice(&p.to_be_bytes()),
        }
    }
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Part::Ipv4(ip) => write!(f, "{ip}"),
            Part::Ipv6(ip) => write!(f, "{ip}"),
            Part::Mac(mac) => {
                let m = mac.0;
                write!(
                    f,
                    "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
                    m[0], m[1], m[2], m[3], m[4], m[5]
                )
            }
            Part::Proto(p) => write!(f, "{p}"),
            Part::Port(p) => write!(f, "{p}"),
        }
    }
}

/// A set element: its key's parts in the order of the set's type
/// (`ipv4_addr . ether_addr` is `[Part::Ipv4(..), Part::Mac(..)]`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Element(pub Vec<Part>);

impl Element {
    /// An element of `ipv4_addr . ether_addr`.
    pub fn ipv4_mac(ip: Ipv4Addr, mac: MacAddr) -> Element {
        Element(vec![Part::Ipv4(ip), Part::Mac(mac)])
    }

    /// An element of `ipv6_addr . ether_addr`.
    pub fn ipv6_mac(ip: Ipv6Addr, mac: MacAddr) -> Element {
        Element(vec![Part::Ipv6(ip), Part::Mac(mac)])
    }

    /// The key bytes the kernel expects (`NFTA_DATA_VALUE` of the key):
    /// one part as is; several parts each zero-padded to 4 bytes.
    pub fn key(&self) -> Vec<u8> {
        let mut out = Vec::new();
        let concatenated = self.0.len() > 1;
        for part in &self.0 {
            part.bytes(&mut out);
            if concatenated {
                out.resize(out.len().next_multiple_of(4), 0);
            }
        }
        out
    }
}

impl fmt::Display for Element {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, part) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(" . ")?;
            }
            write!(f, "{part}")?;
        }
        Ok(())
    }
}

/// A named counter object's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counter {
    /// The counter's name.
    pub name: String,
    /// Packets counted.
    pub packets: u64,
    /// Bytes counted.
    pub bytes: u64,
}

/// A long-lived handle on nftables: one netlink socket, opened once (in
/// the network namespace of the opening thread) and reused by every call.
/// Tables are of family `inet`.
pub struct NfTables {
    netlink: Netlink,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Remove,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Add => "add",
            Op::Remove => "remove",
        }
    }
}

fn inet(message: NfTablesMessage) -> NetfilterMessage {
    NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::Inet, 0, 0),
        message,
    )
}

fn batch_marker(marker: ControlMessage) -> NetfilterMessage {
    NetfilterMessage::new(
        NetfilterHeader::new(NetfilterProtoFamily::Unspec, 0, NFNL_SUBSYS_NFTABLES),
        marker,
    )
}

/// The element message of `op` for one element.
fn element_message(op: Op, table: &str, set: &str, element: &Element) -> NetfilterMessage {
    let body = SetElementMessage {
        attributes: vec![
            SetElementList::Table(table.to_owned()),
            SetElementList::Set(set.to_owned()),
            SetElementList::Elements(vec![ListAttribute::Element(vec![
                SetElementAttribute::Key(DataAttribute::Value(element.key())),
            ])]),
        ],
    };
    inet(match op {
        Op::Add => NfTablesMessage::NewSetElement(body),
        Op::Remove => NfTablesMessage::DeleteSetElement(body),
    })
}

/// Reads a `NEWOBJ` counter message (after the 4-byte nfgenmsg).
pub(crate) fn parse_counter(payload: &[u8]) -> Result<Option<Counter>, Malformed> {
    let attrs = wire::attributes(payload.get(4..).ok_or(Malformed("nfgenmsg"))?)?;
    if wire::find(&attrs, NFTA_OBJ_TYPE).and_then(wire::be32) != Some(NFT_OBJECT_COUNTER) {
        return Ok(None);
    }
    let name = wire::find(&attrs, NFTA_OBJ_NAME)
        .map(wire::string)
        .ok_or(Malformed("counter without a name"))?;
    let data = wire::attributes(
        wire::find(&attrs, NFTA_OBJ_DATA).ok_or(Malformed("counter without data"))?,
    )?;
    let value = |kind| {
        wire::find(&data, kind)
            .and_then(wire::be64)
            .ok_or(Malformed("counter without packets or bytes"))
    };
    Ok(Some(Counter {
        name,
        packets: value(NFTA_COUNTER_PACKETS)?,
        bytes: value(NFTA_COUNTER_BYTES)?,
    }))
}

impl NfTables {
    /// Opens the handle.
    pub fn open() -> Result<NfTables, Error> {
        let netlink = Netlink::open(Some(wire::ANSWER_TIMEOUT))?;
        netlink.grow_receive_buffer(RECEIVE_BUFFER);
        Ok(NfTables { netlink })
    }

    /// Adds `elements` to `set` of `table inet <table>` in one
    /// transaction (one per [`BATCH_LIMIT`] elements). Elements already
    /// there are fine. All or nothing per transaction: on error nothing of
    /// it was added (earlier transactions of a longer call were), and the
    /// error names the first element the kernel refused and its errno
    /// (ENOENT: no such table or set).
    pub fn add(&mut self, table: &str, set: &str, elements: &[Element]) -> Result<(), Error> {
        for chunk in elements.chunks(BATCH_LIMIT) {
            let results = self.batch(Op::Add, table, set, chunk)?;
            for (element, result) in chunk.iter().zip(results) {
                if let Err(errno) = result {
                    return Err(Error::Element {
                        op: Op::Add.name(),
                        table: table.to_owned(),
                        set: set.to_owned(),
                        element: element.clone(),
                        errno,
                    });
                }
            }
        }
        Ok(())
    }

    /// Removes `elements` from `set` of `table inet <table>`, in one
    /// transaction per [`BATCH_LIMIT`] elements. Elements
    /// already absent are not an error and do not keep the others from
    /// being removed (the kernel aborts a batch on the first refusal, so
    /// the rest is sent again without them). A missing table or set is an
    /// [`Error::Refused`] with ENOENT.
    pub fn remove(&mut self, table: &str, set: &str, elements: &[Element]) -> Result<(), Error> {
        let mut saw_absent = false;
        for chunk in elements.chunks(BATCH_LIMIT) {
            saw_absent |= self.remove_batch(table, set, chunk)?;
        }
        if saw_absent {
            // ENOENT also means "no such set": make sure it was the element.
            self.check_set(table, set)?;
        }
        Ok(())
    }

    /// Removes up to [`BATCH_LIMIT`] elements; true when some were absent.
    fn remove_batch(
        &mut self,
        table: &str,
        set: &str,
        elements: &[Element],
    ) -> Result<bool, Error> {
        let mut pending: Vec<Element> = elements.to_vec();
        let mut saw_absent = false;
        // Each round either succeeds or drops at least one element.
        while !pending.is_empty() {
            let results = self.batch(Op::Remove, table, set, &pending)?;
            if results.iter().all(Result::is_ok) {
                break;
            }
            let mut rest = Vec::new();
            for (element, result) in pending.into_iter().zip(results) {
                match result {
                    Ok(()) => rest.push(element),
                    Err(Errno::ENOENT) => saw_absent = true,
                    Err(errno) => {
                        return Err(Error::Element {
                            op: Op::Remove.name(),
                            table: table.to_owned(),
                            set: set.to_owned(),
                            element,
                            errno,
                        })
                    }
                }
            }
            pending = rest;
        }
        Ok(saw_absent)
    }

    /// Fails with ENOENT unless `set` exists in `table inet <table>`.
    fn check_set(&mut self, table: &str, set: &str) -> Result<(), Error> {
        let seq = self.netlink.next_seq();
        let request = wire::encode(
            inet(NfTablesMessage::GetSet(SetMessage {
                attributes: vec![
                    SetAttribute::Table(table.to_owned()),
                    SetAttribute::Name(set.to_owned()),
                ],
            })),
            NLM_F_REQUEST | NLM_F_ACK,
            seq,
        );
        self.netlink
            .ack("look up the set", &request, seq)?
            .map_err(|errno| Error::Refused {
                request: "remove elements from a set that does not exist",
                errno,
            })
    }

    /// Sends one batch of `op` on `elements`, one message each, and
    /// returns the kernel's verdict on each (in order). Any refusal means
    /// the whole batch was rolled back.
    fn batch(
        &mut self,
        op: Op,
        table: &str,
        set: &str,
        elements: &[Element],
    ) -> Result<Vec<Result<(), Errno>>, Error> {
        if elements.is_empty() {
            return Ok(Vec::new());
        }
        let request = match op {
            Op::Add => "add set elements",
            Op::Remove => "remove set elements",
        };
        let flags = match op {
            Op::Add => NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE,
            Op::Remove => NLM_F_REQUEST | NLM_F_ACK,
        };
        let begin_seq = self.netlink.next_seq();
        let mut bytes = wire::encode(
            batch_marker(ControlMessage::BatchBegin),
            NLM_F_REQUEST,
            begin_seq,
        );
        let mut seqs = Vec::with_capacity(elements.len());
        for element in elements {
            let seq = self.netlink.next_seq();
            seqs.push(seq);
            bytes.extend(wire::encode(
                element_message(op, table, set, element),
                flags,
                seq,
            ));
        }
        let end_seq = self.netlink.next_seq();
        bytes.extend(wire::encode(
            batch_marker(ControlMessage::BatchEnd),
            NLM_F_REQUEST,
            end_seq,
        ));
        self.netlink.send(&bytes)?;

        let mut results: Vec<Option<Result<(), Errno>>> = vec![None; elements.len()];
        let mut missing = elements.len();
        while missing > 0 {
            let datagram = self.netlink.recv()?;
            for m in wire::messages(datagram).map_err(|e| Error::malformed(request, e))? {
                if m.ty != wire::NLMSG_ERROR {
                    continue;
                }
                let code = wire::error_code(m.payload).map_err(|e| Error::malformed(request, e))?;
                if m.seq == begin_seq || m.seq == end_seq {
                    // The batch as a whole was refused (permissions, memory).
                    if let Err(errno) = code {
                        return Err(Error::Refused { request, errno });
                    }
                    continue;
                }
                let Some(i) = seqs.iter().position(|&s| s == m.seq) else {
                    continue;
                };
                if results[i].replace(code).is_none() {
                    missing -= 1;
                }
            }
        }
        Ok(results.into_iter().flatten().collect())
    }

    /// The named counters of `table inet <table>`, by name order of the
    /// kernel.
    pub fn counters(&mut self, table: &str) -> Result<Vec<Counter>, Error> {
        let seq = self.netlink.next_seq();
        let request = wire::encode(
            inet(NfTablesMessage::GetObject(vec![
                DefaultNla::new(NFTA_OBJ_TABLE, format!("{table}\0").into_bytes()),
                DefaultNla::new(NFTA_OBJ_TYPE, NFT_OBJECT_COUNTER.to_be_bytes().to_vec()),
            ])),
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
        );
        let mut counters = Vec::new();
        self.netlink
            .dump("list counters", &request, seq, |ty, payload| {
                if ty == (NFNL_SUBSYS_NFTABLES << 8) | u16::from(NFT_MSG_NEWOBJ) {
                    if let Some(counter) = parse_counter(payload)? {
                        counters.push(counter);
                    }
                }
                Ok(())
            })?;
        Ok(counters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn concatenations_pad_every_part_to_four_bytes() {
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        let mac = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
        assert_eq!(
            Element::ipv4_mac(ip, mac).key(),
            [10, 0, 0, 2, 0x02, 0, 0, 0, 0, 0x01, 0, 0]
        );
        let e = Element(vec![Part::Ipv4(ip), Part::Proto(17), Part::Port(53)]);
        assert_eq!(e.key(), [10, 0, 0, 2, 17, 0, 0, 0, 0, 53, 0, 0]);
        assert_eq!(e.to_string(), "10.0.0.2 . 17 . 53");
        // A single part is not padded.
        assert_eq!(Element(vec![Part::Port(443)]).key(), [1, 187]);
        assert_eq!(Element(vec![Part::Mac(mac)]).key().len(), 6);
    }

    #[test]
    fn an_element_message_is_what_nft_sends() {
        // `nft --debug=netlink add element inet t s { 10.0.0.2 . 02:00:00:00:00:01 }`
        // prints the key as `0x0200000a 0x00000002 0x00000100`, i.e. these bytes
        // (words shown in host order).
        let mac = MacAddr([0x02, 0, 0, 0, 0, 0x01]);
        let e = Element::ipv4_mac(Ipv4Addr::new(10, 0, 0, 2), mac);
        let words: Vec<u32> = e
            .key()
            .chunks(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(words, [0x0200000a, 0x00000002, 0x00000100]);
        let bytes = wire::encode(element_message(Op::Add, "t", "s", &e), NLM_F_REQUEST, 1);
        // nlmsghdr type: subsystem 10, NFT_MSG_NEWSETELEM (12).
        assert_eq!(&bytes[4..6], &((10u16 << 8) | 12).to_ne_bytes());
        // nfgenmsg: family inet, version 0, res_id 0.
        assert_eq!(&bytes[16..20], &[1, 0, 0, 0]);
        let tail: Vec<u8> = bytes[bytes.len() - 12..].to_vec();
        assert_eq!(tail, e.key());
    }

    #[test]
    fn reads_a_counter_object() {
        let mut p = vec![1, 0, 0, 0];
        let attr = |kind: u16, value: &[u8], p: &mut Vec<u8>| {
            p.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
            p.extend_from_slice(&kind.to_ne_bytes());
            p.extend_from_slice(value);
            p.resize(p.len().next_multiple_of(4), 0);
        };
        attr(NFTA_OBJ_TABLE, b"netvm\0", &mut p);
        attr(NFTA_OBJ_NAME, b"dropped\0", &mut p);
        attr(NFTA_OBJ_TYPE, &1u32.to_be_bytes(), &mut p);
        let mut data = Vec::new();
        attr(NFTA_COUNTER_BYTES, &1500u64.to_be_bytes(), &mut data);
        attr(NFTA_COUNTER_PACKETS, &3u64.to_be_bytes(), &mut data);
        attr(NFTA_OBJ_DATA | 0x8000, &data, &mut p);
        assert_eq!(
            parse_counter(&p),
            Ok(Some(Counter {
                name: "dropped".into(),
                packets: 3,
                bytes: 1500
            }))
        );
    }

    proptest! {
        #[test]
        fn counter_parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_counter(&bytes);
        }

        #[test]
        fn key_length_is_the_padded_sum(ip in any::<u32>(), port in any::<u16>(), proto in any::<u8>()) {
            let e = Element(vec![Part::Ipv4(Ipv4Addr::from(ip)), Part::Proto(proto), Part::Port(port)]);
            let key = e.key();
            prop_assert_eq!(key.len(), 12);
            prop_assert_eq!(&key[..4], &ip.to_be_bytes()[..]);
            prop_assert_eq!(key[4], proto);
            prop_assert_eq!(&key[8..10], &port.to_be_bytes()[..]);
        }
    }
}
