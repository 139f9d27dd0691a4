//! Ethernet frames for replies to clients that have no address yet: the
//! DHCP payload wrapped in UDP (67 -> 68), IPv4 and Ethernet headers,
//! addressed to the client's hardware address (RFC 2131 section 4.1).
//! Pure: the bytes are built here and written by `sockets`.

use netvm_description::values::MacAddr;
use std::net::Ipv4Addr;

const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const IP_HEADER: usize = 20;
const UDP_HEADER: usize = 8;

/// Who sends a frame and to whom.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Addresses {
    /// Our interface's MAC.
    pub src_mac: MacAddr,
    /// Our address.
    pub src_ip: Ipv4Addr,
    /// The client's MAC (or broadcast).
    pub dst_mac: MacAddr,
    /// The client's address (or 255.255.255.255).
    pub dst_ip: Ipv4Addr,
}

/// The Internet checksum (RFC 1071) of `data`, starting from `sum`.
fn checksum(data: &[u8], mut sum: u32) -> u16 {
    for chunk in data.chunks(2) {
        let word = match chunk {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(u16::try_from(sum).unwrap_or(u16::MAX))
}

/// Builds the frame carrying `payload` from port 67 to port 68.
pub fn build(addresses: &Addresses, payload: &[u8]) -> Vec<u8> {
    let udp_len = UDP_HEADER + payload.len();
    let ip_len = IP_HEADER + udp_len;
    let mut frame = Vec::with_capacity(14 + ip_len);
    frame.extend_from_slice(&addresses.dst_mac.0);
    frame.extend_from_slice(&addresses.src_mac.0);
    frame.extend_from_slice(&ETHERTYPE_IPV4);

    let ip_start = frame.len();
    let total = u16::try_from(ip_len).unwrap_or(u16::MAX).to_be_bytes();
    frame.extend_from_slice(&[0x45, 0x10, total[0], total[1], 0, 0, 0, 0, 64, 17, 0, 0]);
    frame.extend_from_slice(&addresses.src_ip.octets());
    frame.extend_from_slice(&addresses.dst_ip.octets());
    let ip_sum = checksum(&frame[ip_start..ip_start + IP_HEADER], 0).to_be_bytes();
    frame[ip_start + 10..ip_start + 12].copy_from_slice(&ip_sum);

    let udp_start = frame.len();
    let length = u16::try_from(udp_len).unwrap_or(u16::MAX).to_be_bytes();
    frame.extend_from_slice(&[0, 67, 0, 68, length[0], length[1], 0, 0]);
    frame.extend_from_slice(payload);
    // UDP checksum over the pseudo-header (RFC 768).
    let mut pseudo = 0u32;
    for word in [addresses.src_ip.octets(), addresses.dst_ip.octets()] {
        pseudo += u32::from(u16::from_be_bytes([word[0], word[1]]));
        pseudo += u32::from(u16::from_be_bytes([word[2], word[3]]));
    }
    pseudo += 17 + u32::from(u16::from_be_bytes(length));
    let udp_sum = match checksum(&frame[udp_start..], pseudo) {
        0 => 0xffff,
        sum => sum,
    };
    frame[udp_start + 6..udp_start + 8].copy_from_slice(&udp_sum.to_be_bytes());
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_checksums_verify() {
        let addresses = Addresses {
            src_mac: MacAddr([2, 0, 0, 0, 0, 1]),
            src_ip: Ipv4Addr::new(192, 168, 100, 1),
            dst_mac: MacAddr([2, 0, 0, 0, 0, 9]),
            dst_ip: Ipv4Addr::new(192, 168, 100, 9),
        };
        let payload = [7u8; 301];
        let frame = build(&addresses, &payload);
        assert_eq!(frame.len(), 14 + 20 + 8 + 301);
        assert_eq!(&frame[..6], &[2, 0, 0, 0, 0, 9]);
        // A header with its checksum in place sums to zero.
        assert_eq!(checksum(&frame[14..34], 0), 0);
        let mut pseudo = 0u32;
        for w in [[192u8, 168], [100, 1], [192, 168], [100, 9]] {
            pseudo += u32::from(u16::from_be_bytes(w));
        }
        pseudo += 17 + 8 + 301;
        assert_eq!(checksum(&frame[34..], pseudo), 0);
        assert_eq!(&frame[34..38], &[0, 67, 0, 68]);
    }
}
