//! NFLOG listening: packets that a rule logs with `log group N prefix
//! "…"` arrive on a netlink socket bound to group N, each as a
//! [`LogRecord`] with the rule's prefix, the sender's MAC (when the packet
//! came in on an Ethernet-like device) and a [`PacketSummary`] of its
//! IPv4 and TCP/UDP headers (the kernel copies the first 128 bytes).
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
use std::net::Ipv4Addr;
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
/// (at most 60) and the start of the transport header.
pub const COPY_RANGE: u32 = 128;

/// Receive buffer asked for: about 1500 queued messages.
const RECEIVE_BUFFER: usize = 1 << 20;

/// The addresses and ports of a logged IPv4 packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PacketSummary {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number (6 tcp, 17 udp, 1 icmp, …).
    pub proto: u8,
    /// Source port (tcp, udp, sctp, dccp, udplite; not in later fragments).
    pub sport: Option<u16>,
    /// Destination port (as `sport`).
    pub dport: Option<u16>,
}

impl PacketSummary {
    /// Reads an IPv4 packet's header (and the ports of a first fragment of
    /// a protocol with ports). `None` when it is not IPv4 or too short for
    /// its header. Ports are `None` when the copy stops before them.
    pub fn parse(packet: &[u8]) -> Option<PacketSummary> {
        let first = *packet.first()?;
        if first >> 4 != 4 {
            return None;
        }
        let header_len = usize::from(first & 0x0f) * 4;
        if header_len < 20 || packet.len() < header_len {
            return None;
        }
        let octets = |at: usize| -> Option<[u8; 4]> { packet.get(at..at + 4)?.try_into().ok() };
        let proto = packet[9];
        let fragment_offset = u16::from_be_bytes([packet[6], packet[7]]) & 0x1fff;
        let has_ports = matches!(proto, 6 | 17 | 33 | 132 | 136) && fragment_offset == 0;
        let port = |at: usize| -> Option<u16> {
            if !has_ports {
                return None;
            }
            let b = packet.get(header_len + at..header_len + at + 2)?;
            Some(u16::from_be_bytes([b[0], b[1]]))
        };
        Some(PacketSummary {
            src: Ipv4Addr::from(octets(12)?),
            dst: Ipv4Addr::from(octets(16)?),
            proto,
            sport: port(0),
            dport: port(2),
        })
    }
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
    /// Its IPv4 header; `None` for other packets.
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
        assert_eq!(s.src, Ipv4Addr::new(10, 0, 0, 2));
        assert_eq!((s.proto, s.sport, s.dport), (17, Some(5000), Some(53)));
        let icmp = packet([10, 0, 0, 2], [10, 0, 0, 1], 1, 5, 0, (0x0800, 0));
        assert_eq!(PacketSummary::parse(&icmp).expect("ipv4").sport, None);
        // A later fragment (offset 185 words) has no ports.
        let later = packet([10, 0, 0, 2], [10, 0, 0, 1], 17, 5, 185, (1, 2));
        assert_eq!(PacketSummary::parse(&later).expect("ipv4").dport, None);
        // More-fragments flag alone (first fragment) keeps them.
        let first = packet([10, 0, 0, 2], [10, 0, 0, 1], 6, 6, 0x2000, (1, 2));
        assert_eq!(PacketSummary::parse(&first).expect("ipv4").dport, Some(2));
        // Too short, or IPv6.
        assert_eq!(PacketSummary::parse(&udp[..19]), None);
        let mut v6 = udp.clone();
        v6[0] = 0x60;
        assert_eq!(PacketSummary::parse(&v6), None);
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
            prop_assert_eq!(s.src, Ipv4Addr::from(src));
            prop_assert_eq!(s.dst, Ipv4Addr::from(dst));
            prop_assert_eq!(s.proto, proto);
            let ports = matches!(proto, 6 | 17 | 33 | 132 | 136) && frag & 0x1fff == 0;
            prop_assert_eq!(s.sport, ports.then_some(sport));
            prop_assert_eq!(s.dport, ports.then_some(dport));
        }
    }
}
