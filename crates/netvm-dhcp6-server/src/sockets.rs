//! The server's two sockets on the internal interface.
//!
//! * Receive: an `AF_PACKET` socket for IPv6 frames with the kernel
//!   filter of [`frame::filter`] (this interface, inbound, UDP to 547).
//!   A frame is the only place the client's MAC can be read from reliably:
//!   a UDP socket gives the source address, and a link-local address need
//!   not be derived from the MAC (RFC 8981, RFC 7217), nor be honest.
//! * Send: a UDP socket bound to `[::]:547` on the interface
//!   (`SO_BINDTODEVICE`) and joined to `ff02::1:2`
//!   (All_DHCP_Relay_Agents_and_Servers), so that the interface accepts
//!   the clients' multicast and the kernel answers no port unreachable.
//!   It filters out everything it would receive (the packet socket reads
//!   the messages), and sends replies to the client's address and port
//!   with the interface as scope: from our link-local address, which the
//!   kernel chooses for a link-local destination.

use crate::frame;
use netvm_description::values::IfName;
use socket2::{Domain, Protocol, Socket, Type};
use std::io::{self, Read};
use std::net::{Ipv6Addr, SocketAddrV6, UdpSocket};
use std::os::fd::{AsFd, BorrowedFd};

/// `ETH_P_IPV6`.
const ETH_P_IPV6: u16 = 0x86dd;

/// At most this many frames are discarded when the socket opens.
const DRAIN_AT_OPEN: usize = 4096;

/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 section 7.1).
pub const ALL_SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);

/// The interface's index (equivalent to `if_nametoindex(3)`), in the
/// calling thread's network namespace.
pub fn ifindex(interface: &IfName) -> io::Result<u32> {
    nix::net::if_::if_nametoindex(interface.as_str()).map_err(io::Error::from)
}

/// Reads client frames.
pub struct FrameReceiver {
    socket: Socket,
}

impl FrameReceiver {
    /// Opens the packet socket (equivalent to
    /// `socket(AF_PACKET, SOCK_RAW, htons(ETH_P_IPV6))` and
    /// `setsockopt(SO_ATTACH_FILTER)`), non-blocking. Frames that arrived
    /// before the filter was attached are discarded.
    pub fn open(ifindex: u32) -> io::Result<FrameReceiver> {
        let protocol = Protocol::from(i32::from(ETH_P_IPV6.to_be()));
        let socket = Socket::new(Domain::PACKET, Type::RAW, Some(protocol))?;
        socket.attach_filter(&frame::filter(ifindex))?;
        socket.set_nonblocking(true)?;
        socket.set_recv_buffer_size(1 << 20)?;
        let mut receiver = FrameReceiver { socket };
        // Bounded: frames keep coming only if they pass the filter.
        let mut scratch = vec![0u8; 65536];
        for _ in 0..DRAIN_AT_OPEN {
            if receiver.receive(&mut scratch)?.is_none() {
                break;
            }
        }
        Ok(receiver)
    }

    /// The next frame's length in `buf`, or `None` when none is waiting.
    pub fn receive(&mut self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            match (&self.socket).read(buf) {
                Ok(n) => return Ok(Some(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// For `poll`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// Sends replies; holds port 547.
pub struct ReplySender {
    socket: UdpSocket,
    ifindex: u32,
}

impl ReplySender {
    /// Opens the UDP socket (equivalent to `socket(AF_INET6, SOCK_DGRAM)`,
    /// `SO_BINDTODEVICE`, `IPV6_V6ONLY`, `bind([::]:547)`,
    /// `IPV6_JOIN_GROUP ff02::1:2` and a filter that drops all).
    pub fn open(interface: &IfName, ifindex: u32) -> io::Result<ReplySender> {
        let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
        socket.set_only_v6(true)?;
        socket.set_reuse_address(true)?;
        socket.bind_device(Some(interface.as_str().as_bytes()))?;
        socket.attach_filter(&frame::drop_all())?;
        socket.bind(&SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, frame::SERVER_PORT, 0, 0).into())?;
        socket.join_multicast_v6(&ALL_SERVERS, ifindex)?;
        socket.set_multicast_hops_v6(1)?;
        socket.set_nonblocking(true)?;
        Ok(ReplySender {
            socket: socket.into(),
            ifindex,
        })
    }

    /// Sends `payload` to `ip`:`port` on the interface.
    pub fn send(&self, ip: Ipv6Addr, port: u16, payload: &[u8]) -> io::Result<()> {
        let scope = if ip.is_unicast_link_local() {
            self.ifindex
        } else {
            0
        };
        let to = SocketAddrV6::new(ip, port, 0, scope);
        self.socket.send_to(payload, to).map(|_| ())
    }
}
