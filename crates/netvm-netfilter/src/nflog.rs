//! NFLOG listening: packets that a rule logs with `log group N prefix
//! "…"` arrive on a netlink socket bound to group N, each as a
//! [`LogRecord`] with the rule's prefix, the sender's MAC (when the packet
//! came in on an Ethernet-like device) and a [`PacketSummary`] of its
//! IPv4 or IPv6 header and the start of its transport header (the kernel
//! copies the first 128 bytes).
//!
//! The socket is non-blocking: [`LogListener::recv`] returns what is
//! queued (possibly nothing) without waiting; poll the fd
//! ([`AsFd`]/[`AsRawFd`]) or call [`LogListener::wait`] to sleep until
//! something arrives. If the listener falls behind under a flood, the
//! kernel drops messages (`ENOBUFS`): the listener goes on and counts them
//! ([`LogListener::lost`], [`LogListener::overflows`]).

use crate::wire::{self, Netlink};
use crate::{Error, Malformed};
use netlink_packet_netfilter::nflog::{
    config_request, ConfigCmd, ConfigFlags, ConfigMode, ConfigNla, Timeout,
};
use netlink_packet_netfilter::NetfilterProtoFamily;
use netvm_description::values::MacAddr;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::time::Duration;

/// `NFNL_SUBSYS_ULOG << 8 | NFULNL_MSG_PACKET`.
const NFULNL_PACKET: u16 = 4 << 8;
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_HWADDR: u16 = 8;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
const NFULA_SEQ: u16 = 12;

/// Bytes of each packet the kernel copies: an IPv4 header with options
/// (at most 60), or an IPv6 header (40) and up to 80 bytes of extension
/// headers, and the start of the transport header.
pub const COPY_RANGE: u32 = 128;

/// IPv6 extension headers [`PacketSummary::parse`] steps over (RFC 8200
/// section 4.1; AH, RFC 4302): hop-by-hop options, routing, fragment,
/// authentication, destination options.
const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const AUTHENTICATION: u8 = 51;
const DESTINATION_OPTIONS: u8 = 60;

/// Extension headers followed at most (more is a chain nobody sends).
const MAX_EXTENSION_HEADERS: usize = 8;

/// ICMPv6's next-header number.
const ICMPV6: u8 = 58;

/// Protocols whose header starts with a source and a destination port:
/// TCP, UDP, DCCP, SCTP, UDP-Lite.
fn has_ports(proto: u8) -> bool {
    matches!(proto, 6 | 17 | 33 | 132 | 136)
}

/// Receive buffer asked for: about 1500 queued messages.
const RECEIVE_BUFFER: usize = 1 << 20;

/// The addresses and ports of a logged IPv4 or IPv6 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketSummary {
    /// Source address.
    pub src: IpAddr,
    /// Destination address.
    pub dst: IpAddr,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, 58 icmpv6, …). For
    /// IPv6, the header after the extension headers (the upper-layer
    /// protocol); when the chain cannot be followed (the copy ends inside
    /// it, a hop-by-hop header not first, more than eight headers), the
    /// extension header it stopped at, and no ports.
    pub proto: u8,
    /// Source port (tcp, udp, sctp, dccp, udplite; not in later fragments).
    pub sport: Option<u16>,
    /// Destination port (as `sport`).
    pub dport: Option<u16>,
    /// ICMP or ICMPv6 type (not in later fragments).
    pub icmp_type: Option<u8>,
}

impl PacketSummary {
    /// Reads an IPv4 or IPv6 packet's header (and the ports, or the ICMP
    /// type, of a first fragment). `None` when it is neither or too short
    /// for its header. Ports are `None` when the copy stops before them.
    pub fn parse(packet: &[u8]) -> Option<PacketSummary> {
        match *packet.first()? >> 4 {
            4 => Self::parse_v4(packet),
            6 => Self::parse_v6(packet),
            _ => None,
        }
    }

    fn parse_v4(packet: &[u8]) -> Option<PacketSummary> {
        let first = *packet.first()?;
        let header_len = usize::from(first & 0x0f) * 4;
        if header_len < 20 || packet.len() < header_len {
            return None;
        }
        let octets = |at: usize| -> Option<[u8; 4]> { packet.get(at..at + 4)?.try_into().ok() };
        let proto = packet[9];
        let fragment_offset = u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff;
        let first_fragment = fragment_offset == 0;
        let (sport, dport) = ports(packet, header_len, proto, first_fragment);
        Some(PacketSummary {
            src: Ipv4Addr::from(octets(12)?).into(),
            dst: Ipv4Addr::from(octets(16)?).into(),
            proto,
            sport,
            dport,
            icmp_type: (proto == 1 && first_fragment)
                .then(|| packet.get(header_len).copied())
                .flatten(),
        })
    }

    /// RFC 8200: the fixed header, then the extension headers in the
    /// order section 4.1 allows (hop-by-hop only first), each stepped
    /// over by its own length, up to the upper-layer header.
    fn parse_v6(packet: &[u8]) -> Option<PacketSummary> {
        let address = |at: usize| -> Option<Ipv6Addr> {
            let octets: [u8; 16] = packet.get(at..at + 16)?.try_into().ok()?;
            Some(Ipv6Addr::from(octets))
        };
        let (src, dst) = (address(8)?, address(24)?);
        let mut next = packet[6];
        let mut at = 40;
        let mut first_fragment = true;
        let mut followed = 0;
        // Ok: the upper-layer header's number (at `at`); Err: the header
        // the chain stopped at.
        let upper: Result<u8, u8> = loop {
            if !matches!(
                next,
                HOP_BY_HOP | ROUTING | FRAGMENT | AUTHENTICATION | DESTINATION_OPTIONS
            ) {
                break Ok(next);
            }
            if (next == HOP_BY_HOP && followed != 0) || followed == MAX_EXTENSION_HEADERS {
                break Err(next);
            }
            let Some(header) = packet.get(at..at + 8) else {
                break Err(next);
            };
            let len = match next {
                FRAGMENT => 8,
                AUTHENTICATION => (usize::from(header[1]) + 2) * 4,
                _ => (usize::from(header[1]) + 1) * 8,
            };
            if next == FRAGMENT && u16::from_be_bytes([header[2], header[3]]) >> 3 != 0 {
                // A later fragment: what follows is not a header.
                first_fragment = false;
            }
            next = header[0];
            at += len;
            followed += 1;
            if !first_fragment {
                break Ok(next);
            }
        };
        let (proto, found) = match upper {
            Ok(proto) => (proto, first_fragment),
            Err(stopped) => (stopped, false),
        };
        let (sport, dport) = ports(packet, at, proto, found);
        Some(PacketSummary {
            src: src.into(),
            dst: dst.into(),
            proto,
            sport,
            dport,
            icmp_type: (proto == ICMPV6 && found)
                .then(|| packet.get(at).copied())
                .flatten(),
        })
    }
}

/// The source and destination ports of a transport header at `at`, for a
/// protocol with ports, when `present` (a first fragment) and copied.
fn ports(packet: &[u8], at: usize, proto: u8, present: bool) -> (Option<u16>, Option<u16>) {
    let port = |offset: usize| -> Option<u16> {
        if !(present && has_ports(proto)) {
            return None;
        }
        let b = packet.get(at + offset..at + offset + 2)?;
        Some(u16::from_be_bytes([b[0], b[1]]))
    };
    (port(0), port(2))
}

/// One logged packet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The rule's `prefix` (empty when it has none).
    pub prefix: String,
    /// The sender's MAC address, for packets that came in on an
    /// Ethernet-like device.
    pub hw_source: Option<MacAddr>,
    /// The index of the device the packet came in on, if any.
    pub in_ifindex: Option<u32>,
    /// Its IPv4 or IPv6 header; `None` for other packets.
    pub packet: Option<PacketSummary>,
}

/// A record and the instance's sequence number, when the kernel sent one.
type Numbered = (Option<u32>, LogRecord);

/// Reads one NFLOG packet message (after the netlink header).
fn parse_packet_message(payload: &[u8]) -> Result<Numbered, Malformed> {
    let attrs = wire::attributes(payload.get(4..).ok_or(Malformed("nfgenmsg"))?)?;
    let hw_source = match wire::find(&attrs, NFULA_HWADDR) {
        // struct nfulnl_msg_packet_hw: __be16 len, 2 pad, 8 bytes address.
        Some(hw) if wire::be16(hw) == Some(6) => {
            let mac: [u8; 6] = hw
                .get(4..10)
                .and_then(|m| m.try_into().ok())
                .ok_or(Malformed("NFULA_HWADDR"))?;
            Some(MacAddr(mac))
        }
        _ => None,
    };
    let record = LogRecord {
        prefix: wire::find(&attrs, NFULA_PREFIX)
            .map(wire::string)
            .unwrap_or_default(),
        hw_source,
        in_ifindex: wire::find(&attrs, NFULA_IFINDEX_INDEV).and_then(wire::be32),
        packet: wire::find(&attrs, NFULA_PAYLOAD).and_then(PacketSummary::parse),
    };
    Ok((wire::find(&attrs, NFULA_SEQ).and_then(wire::be32), record))
}

/// Reads the NFLOG packet messages of one datagram from the kernel (other
/// messages, such as acks, are skipped). Public so the parser can be
/// fuzzed; [`LogListener::recv`] is the normal way in.
pub fn parse_datagram(datagram: &[u8]) -> Result<Vec<LogRecord>, Malformed> {
    Ok(parse_numbered(datagram)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

fn parse_numbered(datagram: &[u8]) -> Result<Vec<Numbered>, Malformed> {
    wire::messages(datagram)?
        .into_iter()
        .filter(|m| m.ty == NFULNL_PACKET)
        .map(|m| parse_packet_message(m.payload))
        .collect()
}

/// A netlink socket bound to one NFLOG group (in the network namespace of
/// the thread that bound it). Unbound when dropped.
pub struct LogListener {
    netlink: Netlink,
    group: u16,
    next_seq: Option<u32>,
    lost: u64,
    overflows: u64,
    malformed: u64,
}

impl LogListener {
    /// Binds NFLOG group `group`: copies the first [`COPY_RANGE`] bytes of
    /// each packet, sends every message at once (queue threshold 1) and
    /// numbers them so losses can be counted. Fails (EBUSY) if another
    /// socket already has the group.
    pub fn bind(group: u16) -> Result<LogListener, Error> {
        let mut netlink = Netlink::open(Some(wire::ANSWER_TIMEOUT))?;
        netlink.grow_receive_buffer(RECEIVE_BUFFER);
        let seq = netlink.next_seq();
        let mut request = config_request(
            NetfilterProtoFamily::IPv4,
            group,
            vec![
                ConfigCmd::Bind.into(),
                ConfigMode::new_packet(COPY_RANGE).into(),
                ConfigNla::QThresh(1),
                Timeout::new(1).into(),
                ConfigFlags::SEQ.into(),
            ],
        );
        request.header.sequence_number = seq;
        let mut bytes = vec![0; request.buffer_len()];
        request.serialize(&mut bytes);
        netlink
            .ack("bind the NFLOG group", &bytes, seq)?
            .map_err(|errno| Error::Refused {
                request: "bind the NFLOG group",
                errno,
            })?;
        netlink
            .socket()
            .set_non_blocking(true)
            .map_err(|source| Error::Io {
                action: "make the NFLOG socket non-blocking",
                source,
            })?;
        Ok(LogListener {
            netlink,
            group,
            next_seq: None,
            lost: 0,
            overflows: 0,
            malformed: 0,
        })
    }

    /// The group bound.
    pub fn group(&self) -> u16 {
        self.group
    }

    /// Every record queued now, oldest first; empty when nothing is
    /// queued. Never blocks. A socket overflow is counted and skipped, and
    /// so is a malformed message; only a failing socket is an error.
    pub fn recv(&mut self) -> Result<Vec<LogRecord>, Error> {
        let mut records = Vec::new();
        loop {
            let datagram = match self.netlink.recv_raw() {
                Ok(d) => d,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    self.overflows += 1;
                    continue;
                }
                Err(source) => {
                    return Err(Error::Io {
                        action: "receive NFLOG messages",
                        source,
                    })
                }
            };
            match parse_numbered(datagram) {
                Ok(numbered) => {
                    for (seq, record) in numbered {
                        self.count(seq);
                        records.push(record);
                    }
                }
                Err(_) => self.malformed += 1,
            }
        }
        Ok(records)
    }

    /// Notes sequence number `seq`, counting the numbers skipped.
    fn count(&mut self, seq: Option<u32>) {
        let Some(seq) = seq else { return };
        if let Some(expected) = self.next_seq {
            let gap = seq.wrapping_sub(expected);
            // A gap of more than 2^31 is a reordering, not a loss.
            if gap < 1 << 31 {
                self.lost += u64::from(gap);
            }
        }
        self.next_seq = Some(seq.wrapping_add(1));
    }

    /// Waits until a message is queued or `timeout` passed (`None`:
    /// forever); true when something can be received.
    pub fn wait(&self, timeout: Option<Duration>) -> Result<bool, Error> {
        let timeout = match timeout {
            None => PollTimeout::NONE,
            Some(t) => PollTimeout::try_from(t).unwrap_or(PollTimeout::MAX),
        };
        let mut fds = [PollFd::new(
            self.netlink.socket().as_fd(),
            PollFlags::POLLIN,
        )];
        match poll(&mut fds, timeout) {
            Ok(n) => Ok(n > 0),
            Err(nix::errno::Errno::EINTR) => Ok(false),
            Err(e) => Err(Error::Io {
                action: "wait for NFLOG messages",
                source: io::Error::from(e),
            }),
        }
    }

    /// Messages the kernel numbered but that never arrived (dropped while
    /// the socket was full).
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// How many times the socket overflowed (`ENOBUFS`).
    pub fn overflows(&self) -> u64 {
        self.overflows
    }

    /// Datagrams skipped because they did not parse.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }
}

impl AsFd for LogListener {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.netlink.socket().as_fd()
    }
}

impl AsRawFd for LogListener {
    fn as_raw_fd(&self) -> RawFd {
        self.netlink.socket().as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// An IPv4 header of `ihl` words (options zero) followed by 4 bytes
    /// of ports.
    fn packet(
        src: [u8; 4],
        dst: [u8; 4],
        proto: u8,
        ihl: u8,
        frag: u16,
        ports: (u16, u16),
    ) -> Vec<u8> {
        let mut p = vec![0u8; usize::from(ihl) * 4];
        p[0] = 0x40 | ihl;
        p[6..8].copy_from_slice(&frag.to_be_bytes());
        p[8] = 64;
        p[9] = proto;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p.extend_from_slice(&ports.0.to_be_bytes());
        p.extend_from_slice(&ports.1.to_be_bytes());
        p
    }

    #[test]
    fn reads_udp_and_icmp_and_fragments() {
        let udp = packet([10, 0, 0, 2], [10, 0, 0, 1], 17, 5, 0, (5000, 53));
        let s = PacketSummary::parse(&udp).expect("ipv4");
        assert_eq!(s.src, IpAddr::from([10, 0, 0, 2]));
        assert_eq!((s.proto, s.sport, s.dport), (17, Some(5000), Some(53)));
        assert_eq!(s.icmp_type, None);
        let icmp = packet([10, 0, 0, 2], [10, 0, 0, 1], 1, 5, 0, (0x0800, 0));
        let s = PacketSummary::parse(&icmp).expect("ipv4");
        assert_eq!((s.sport, s.icmp_type), (None, Some(8)));
        // A later fragment (offset 185 words) has no ports.
        let later = packet([10, 0, 0, 2], [10, 0, 0, 1], 17, 5, 185, (1, 2));
        assert_eq!(PacketSummary::parse(&later).expect("ipv4").dport, None);
        // More-fragments flag alone (first fragment) keeps them.
        let first = packet([10, 0, 0, 2], [10, 0, 0, 1], 6, 6, 0x2000, (1, 2));
        assert_eq!(PacketSummary::parse(&first).expect("ipv4").dport, Some(2));
        // Too short, or an IPv6 version with less than its header.
        assert_eq!(PacketSummary::parse(&udp[..19]), None);
        let mut v6 = udp.clone();
        v6[0] = 0x60;
        assert_eq!(PacketSummary::parse(&v6), None);
        assert_eq!(PacketSummary::parse(&[0x50; 60]), None);
    }

    const SRC6: [u8; 16] = [0xfd, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x65];
    const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];

    /// An extension header of type `kind` (as it is written) with
    /// `next` as its next header; `units` of its length (8 octets each;
    /// AH: 4) beyond the first; a fragment header with `offset`.
    fn extension(kind: u8, next: u8, units: u8, offset: u16) -> Vec<u8> {
        let len = match kind {
            FRAGMENT => 8,
            AUTHENTICATION => (usize::from(units) + 2) * 4,
            _ => (usize::from(units) + 1) * 8,
        };
        let mut h = vec![0u8; len];
        h[0] = next;
        if kind == FRAGMENT {
            h[2..4].copy_from_slice(&(offset << 3 | 1).to_be_bytes());
        } else {
            h[1] = units;
        }
        h
    }

    /// An IPv6 packet through `chain` (kind, units, fragment offset) to
    /// `upper`, followed by `payload`.
    fn packet6(chain: &[(u8, u8, u16)], upper: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, 0, 64];
        p[6] = chain.first().map_or(upper, |(kind, ..)| *kind);
        p.extend_from_slice(&SRC6);
        p.extend_from_slice(&DST6);
        for (i, (kind, units, offset)) in chain.iter().enumerate() {
            let next = chain.get(i + 1).map_or(upper, |(k, ..)| *k);
            p.extend(extension(*kind, next, *units, *offset));
        }
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn reads_ipv6_through_its_extension_headers() {
        let ports = [0x9c, 0x40, 0, 53, 0, 0, 0, 0];
        let udp = PacketSummary::parse(&packet6(&[], 17, &ports)).expect("ipv6");
        assert_eq!(udp.src, IpAddr::from(SRC6));
        assert_eq!(udp.dst, IpAddr::from(DST6));
        assert_eq!(
            (udp.proto, udp.sport, udp.dport),
            (17, Some(40000), Some(53))
        );

        // Hop-by-hop, destination options, routing, a first fragment, AH.
        let chain = [
            (HOP_BY_HOP, 0, 0),
            (DESTINATION_OPTIONS, 1, 0),
            (ROUTING, 0, 0),
            (FRAGMENT, 0, 0),
            (AUTHENTICATION, 4, 0),
        ];
        let tcp = PacketSummary::parse(&packet6(&chain, 6, &ports)).expect("ipv6");
        assert_eq!((tcp.proto, tcp.dport), (6, Some(53)));

        // A later fragment: the protocol, no ports.
        let later = PacketSummary::parse(&packet6(&[(FRAGMENT, 0, 185)], 17, &ports));
        assert_eq!(later.map(|s| (s.proto, s.dport)), Some((17, None)));

        // ICMPv6: its type (a neighbour solicitation), no ports.
        let ns = PacketSummary::parse(&packet6(&[], ICMPV6, &[135, 0, 0, 0])).expect("ipv6");
        assert_eq!((ns.proto, ns.icmp_type, ns.sport), (58, Some(135), None));

        // Chains not followed: the header stopped at, no ports.
        let stopped = |p: Vec<u8>| PacketSummary::parse(&p).map(|s| (s.proto, s.dport));
        let late_hbh = [(DESTINATION_OPTIONS, 0, 0), (HOP_BY_HOP, 0, 0)];
        assert_eq!(
            stopped(packet6(&late_hbh, 17, &ports)),
            Some((HOP_BY_HOP, None))
        );
        let long = [(DESTINATION_OPTIONS, 0, 0); 9];
        assert_eq!(
            stopped(packet6(&long, 17, &ports)),
            Some((DESTINATION_OPTIONS, None))
        );
        let mut cut = packet6(&[(ROUTING, 3, 0)], 17, &ports);
        cut.truncate(60);
        assert_eq!(
            stopped(cut),
            Some((17, None)),
            "the ports are not in the copy"
        );
        let cut = packet6(&[(ROUTING, 3, 0)], 17, &ports)[..44].to_vec();
        assert_eq!(stopped(cut), Some((ROUTING, None)));
        // ESP and "no next header" end the chain.
        assert_eq!(stopped(packet6(&[], 50, &ports)), Some((50, None)));
        // The fixed header alone, or less.
        assert_eq!(stopped(packet6(&[], 59, &[])), Some((59, None)));
        assert_eq!(PacketSummary::parse(&packet6(&[], 17, &[])[..39]), None);
    }

    #[test]
    fn reads_a_packet_message_and_counts_gaps() {
        let mut payload = vec![2, 0, 0, 0];
        let mut attr = |kind: u16, value: &[u8]| {
            payload.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
            payload.extend_from_slice(&kind.to_ne_bytes());
            payload.extend_from_slice(value);
            payload.resize(payload.len().next_multiple_of(4), 0);
        };
        attr(NFULA_PREFIX, b"ev_test\0");
        attr(NFULA_HWADDR, &[0, 6, 0, 0, 2, 0, 0, 0, 0, 9, 0, 0]);
        attr(NFULA_SEQ, &7u32.to_be_bytes());
        attr(
            NFULA_PAYLOAD,
            &packet([10, 0, 0, 2], [10, 0, 0, 1], 17, 5, 0, (40000, 53)),
        );
        let mut datagram = Vec::new();
        datagram.extend_from_slice(&(16 + payload.len() as u32).to_ne_bytes());
        datagram.extend_from_slice(&NFULNL_PACKET.to_ne_bytes());
        datagram.extend_from_slice(&[0; 10]);
        datagram.extend_from_slice(&payload);
        let records = parse_numbered(&datagram).expect("parses");
        assert_eq!(records.len(), 1);
        let (seq, record) = &records[0];
        assert_eq!(*seq, Some(7));
        assert_eq!(record.prefix, "ev_test");
        assert_eq!(record.hw_source, Some(MacAddr([2, 0, 0, 0, 0, 9])));
        assert_eq!(record.packet.expect("ipv4").dport, Some(53));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = PacketSummary::parse(&bytes);
            let _ = parse_datagram(&bytes);
            if bytes.len() >= 4 {
                let _ = parse_packet_message(&bytes);
            }
        }

        #[test]
        fn well_formed_headers_round_trip(
            src in any::<[u8; 4]>(),
            dst in any::<[u8; 4]>(),
            proto in any::<u8>(),
            ihl in 5u8..=15,
            frag in any::<u16>(),
            sport in any::<u16>(),
            dport in any::<u16>(),
        ) {
            let p = packet(src, dst, proto, ihl, frag, (sport, dport));
            let s = PacketSummary::parse(&p).expect("well formed");
            prop_assert_eq!(s.src, IpAddr::from(src));
            prop_assert_eq!(s.dst, IpAddr::from(dst));
            prop_assert_eq!(s.proto, proto);
            let ports = matches!(proto, 6 | 17 | 33 | 132 | 136) && frag & 0x1fff == 0;
            prop_assert_eq!(s.sport, ports.then_some(sport));
            prop_assert_eq!(s.dport, ports.then_some(dport));
        }

        /// Bytes that claim to be IPv6: a summary or `None`, never a
        /// panic; ports only from inside the copy.
        #[test]
        fn arbitrary_ipv6_never_panics(
            rest in proptest::collection::vec(any::<u8>(), 0..200),
            next in prop::sample::select(vec![0u8, 6, 17, 43, 44, 51, 58, 60]),
        ) {
            let mut bytes = vec![0x60, 0, 0, 0, 0, 0, next, 64];
            bytes.extend(rest);
            if let Some(s) = PacketSummary::parse(&bytes) {
                prop_assert!(bytes.len() >= 40);
                prop_assert!(s.dport.is_none() || has_ports(s.proto));
                prop_assert!(s.icmp_type.is_none() || s.proto == ICMPV6);
            }
        }

        /// Any well-formed chain of extension headers is followed to its
        /// upper-layer header: addresses, protocol and ports read back.
        #[test]
        fn well_formed_ipv6_round_trips(
            src in any::<[u8; 16]>(),
            dst in any::<[u8; 16]>(),
            hop_by_hop in any::<bool>(),
            chain in proptest::collection::vec(
                (prop::sample::select(vec![ROUTING, FRAGMENT, AUTHENTICATION, DESTINATION_OPTIONS]), 0u8..4),
                0..5,
            ),
            upper in prop::sample::select(vec![6u8, 17, 33, 58, 59, 132, 136, 1, 250]),
            sport in any::<u16>(),
            dport in any::<u16>(),
        ) {
            let mut headers: Vec<(u8, u8, u16)> = Vec::new();
            if hop_by_hop {
                headers.push((HOP_BY_HOP, 1, 0));
            }
            headers.extend(chain.iter().map(|(kind, units)| (*kind, *units, 0)));
            let mut payload = sport.to_be_bytes().to_vec();
            payload.extend_from_slice(&dport.to_be_bytes());
            let mut p = packet6(&headers, upper, &payload);
            p[8..24].copy_from_slice(&src);
            p[24..40].copy_from_slice(&dst);
            let s = PacketSummary::parse(&p).expect("well formed");
            prop_assert_eq!(s.src, IpAddr::from(src));
            prop_assert_eq!(s.dst, IpAddr::from(dst));
            prop_assert_eq!(s.proto, upper);
            let ports = has_ports(upper);
            prop_assert_eq!(s.sport, ports.then_some(sport));
            prop_assert_eq!(s.dport, ports.then_some(dport));
            prop_assert_eq!(s.icmp_type, (upper == ICMPV6).then_some(sport.to_be_bytes()[0]));
        }
    }
}
