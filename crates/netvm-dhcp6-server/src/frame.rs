//! The frames the server reads: Ethernet, IPv6 with UDP as its next
//! header (no extension headers: DHCPv6 clients send none), destination
//! port 547. [`parse`] checks them again in full after the kernel's
//! filter ([`filter`]) let them through, and gives the client's MAC (the
//! Ethernet source: the identity the server keys leases by), its address
//! and port, and the DHCPv6 message. Pure.
//!
//! The UDP checksum is not verified: on a veth or virtio link a frame
//! from the peer may carry a checksum the sender left to offload
//! (`CHECKSUM_PARTIAL`), which a packet socket sees unfinished; the
//! engine's parser is strict anyway.

use netvm_description::values::MacAddr;
use socket2::SockFilter;
use std::net::Ipv6Addr;

const ETHERTYPE_IPV6: u16 = 0x86dd;
const ETHERNET: usize = 14;
const IPV6: usize = 40;
const UDP: usize = 8;
const NEXT_HEADER_UDP: u8 = 17;
/// The DHCPv6 server port.
pub const SERVER_PORT: u16 = 547;

/// A client's message, as a frame brought it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received<'a> {
    /// Ethernet source.
    pub mac: MacAddr,
    /// IPv6 source (a link-local address, normally).
    pub ip: Ipv6Addr,
    /// UDP source port (546, normally).
    pub port: u16,
    /// The UDP payload: the DHCPv6 message.
    pub payload: &'a [u8],
}

/// Why a frame was not a message for us.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameError {
    /// Shorter than its headers say.
    Truncated,
    /// Not IPv6 carrying UDP directly, or not to port 547.
    NotForUs,
    /// The IPv6 source cannot be answered (unspecified or multicast).
    BadSource,
}

fn u16_at(frame: &[u8], at: usize) -> Option<u16> {
    let b = frame.get(at..at + 2)?;
    Some(u16::from_be_bytes([b[0], b[1]]))
}

/// Reads one frame.
pub fn parse(frame: &[u8]) -> Result<Received<'_>, FrameError> {
    if frame.len() < ETHERNET + IPV6 + UDP {
        return Err(FrameError::Truncated);
    }
    let ip = &frame[ETHERNET..];
    if u16_at(frame, 12) != Some(ETHERTYPE_IPV6) || ip[0] >> 4 != 6 || ip[6] != NEXT_HEADER_UDP {
        return Err(FrameError::NotForUs);
    }
    let payload_length = usize::from(u16_at(ip, 4).ok_or(FrameError::Truncated)?);
    let udp = &ip[IPV6..];
    if u16_at(udp, 2) != Some(SERVER_PORT) {
        return Err(FrameError::NotForUs);
    }
    let udp_length = usize::from(u16_at(udp, 4).ok_or(FrameError::Truncated)?);
    // The frame may be padded past the IPv6 payload; never short of it.
    if udp_length < UDP || udp_length > payload_length || payload_length > udp.len() {
        return Err(FrameError::Truncated);
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&frame[6..12]);
    let mut source = [0u8; 16];
    source.copy_from_slice(&ip[8..24]);
    let source = Ipv6Addr::from(source);
    if source.is_unspecified() || source.is_multicast() {
        return Err(FrameError::BadSource);
    }
    Ok(Received {
        mac: MacAddr(mac),
        ip: source,
        port: u16_at(udp, 0).ok_or(FrameError::Truncated)?,
        payload: &udp[UDP..udp_length],
    })
}

// Classic BPF (linux/filter.h): opcodes and the ancillary loads.
const LD_W_ABS: u16 = 0x20;
const LD_H_ABS: u16 = 0x28;
const LD_B_ABS: u16 = 0x30;
const JEQ_K: u16 = 0x15;
const RET_K: u16 = 0x06;
/// `SKF_AD_OFF`: loads at this offset and beyond read packet metadata.
const SKF_AD_OFF: u32 = 0xffff_f000;
const SKF_AD_PKTTYPE: u32 = 4;
const SKF_AD_IFINDEX: u32 = 8;
const PACKET_OUTGOING: u32 = 4;

/// The packet socket's filter: frames that arrive on interface `ifindex`
/// (not those we send), IPv6, next header UDP, destination port 547.
/// Everything else is dropped in the kernel, so an idle link, or a busy
/// one carrying other traffic, never wakes the server. (Matching the
/// interface here lets the socket stay unbound: binding a packet socket
/// needs a `sockaddr_ll`, which only unsafe code can build.)
pub fn filter(ifindex: u32) -> Vec<SockFilter> {
    // Each `jeq` falls through when equal and jumps to the final drop
    // when not: `jf` counts the instructions in between.
    let program: [(u16, u32, bool); 10] = [
        (LD_W_ABS, SKF_AD_OFF + SKF_AD_IFINDEX, false),
        (JEQ_K, ifindex, true),
        (LD_W_ABS, SKF_AD_OFF + SKF_AD_PKTTYPE, false),
        (JEQ_K, PACKET_OUTGOING, false), // equal: drop (inverted below)
        (LD_H_ABS, 12, false),
        (JEQ_K, u32::from(ETHERTYPE_IPV6), true),
        (LD_B_ABS, 20, false),
        (JEQ_K, u32::from(NEXT_HEADER_UDP), true),
        (LD_H_ABS, (ETHERNET + IPV6 + 2) as u32, false),
        (JEQ_K, u32::from(SERVER_PORT), true),
    ];
    let len = program.len();
    let mut out: Vec<SockFilter> = program
        .iter()
        .enumerate()
        .map(|(i, &(code, k, pass_when_equal))| {
            // The instruction after `i` is i + 1; the drop is at len + 1.
            let to_drop = u8::try_from(len - i).unwrap_or(u8::MAX);
            match (code, pass_when_equal) {
                (JEQ_K, true) => SockFilter::new(code, 0, to_drop, k),
                (JEQ_K, false) => SockFilter::new(code, to_drop, 0, k),
                _ => SockFilter::new(code, 0, 0, k),
            }
        })
        .collect();
    out.push(SockFilter::new(RET_K, 0, 0, 0xffff));
    out.push(SockFilter::new(RET_K, 0, 0, 0));
    out
}

/// A filter that accepts nothing: for the UDP socket that only holds
/// port 547 open (so the kernel sends no port unreachable) and sends.
pub fn drop_all() -> Vec<SockFilter> {
    vec![SockFilter::new(RET_K, 0, 0, 0)]
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A frame from `mac`, `fe80::aa:ff:fe00:7` port 546 to
    /// `ff02::1:2` port 547 carrying `payload`.
    pub fn frame(mac: [u8; 6], payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0x33, 0x33, 0, 1, 0, 2];
        f.extend_from_slice(&mac);
        f.extend_from_slice(&[0x86, 0xdd]);
        let udp_len = u16::try_from(UDP + payload.len()).expect("small");
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[17, 1]);
        f.extend_from_slice(
            &"fe80::aa:ff:fe00:7"
                .parse::<Ipv6Addr>()
                .expect("ip")
                .octets(),
        );
        f.extend_from_slice(&"ff02::1:2".parse::<Ipv6Addr>().expect("ip").octets());
        f.extend_from_slice(&[2, 0x22, 2, 0x23]);
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[0, 0]);
        f.extend_from_slice(payload);
        f
    }

    #[test]
    fn reads_the_client_and_its_message() {
        let f = frame([2, 0xaa, 0, 0, 0, 7], &[1, 2, 3, 4, 5]);
        let got = parse(&f).expect("valid");
        assert_eq!(got.mac, MacAddr([2, 0xaa, 0, 0, 0, 7]));
        assert_eq!(
            got.ip,
            "fe80::aa:ff:fe00:7".parse::<Ipv6Addr>().expect("ip")
        );
        assert_eq!(got.port, 546);
        assert_eq!(got.payload, &[1, 2, 3, 4, 5]);
        // Ethernet padding after the payload is not part of it.
        let mut padded = f.clone();
        padded.extend_from_slice(&[0; 7]);
        assert_eq!(parse(&padded).expect("valid").payload, &[1, 2, 3, 4, 5]);
    }

    #[test]
    fn refuses_what_is_not_a_message_for_us() {
        let f = frame([2, 0xaa, 0, 0, 0, 7], &[1, 2, 3, 4]);
        assert_eq!(parse(&f[..60]), Err(FrameError::Truncated));
        let mut other_port = f.clone();
        other_port[57] = 0x22;
        assert_eq!(parse(&other_port), Err(FrameError::NotForUs));
        let mut tcp = f.clone();
        tcp[20] = 6;
        assert_eq!(parse(&tcp), Err(FrameError::NotForUs));
        let mut long_udp = f.clone();
        long_udp[59] = 200;
        assert_eq!(parse(&long_udp), Err(FrameError::Truncated));
        let mut unspecified = f.clone();
        unspecified[22..38].fill(0);
        assert_eq!(parse(&unspecified), Err(FrameError::BadSource));
    }

    #[test]
    fn the_filter_jumps_to_its_drop() {
        let program = filter(7);
        assert_eq!(program.len(), 12);
    }

    proptest::proptest! {
        #[test]
        fn any_bytes_parse_or_fail(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
