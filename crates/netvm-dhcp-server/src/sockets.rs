//! The server's two sockets on the internal interface.
//!
//! * Receive: a UDP socket on port 67 bound to the interface
//!   (`SO_BINDTODEVICE`), so requests arriving on any other interface —
//!   the uplink above all — never reach the server.
//! * Send: an `AF_PACKET` socket bound to the same interface that writes
//!   whole Ethernet frames (`frame`). A client being offered an address
//!   does not have it yet, so the kernel could not route an IP packet to
//!   it; RFC 2131 section 4.1 asks for a unicast to `chaddr` and `yiaddr`
//!   anyway. Writing the frame ourselves does that without touching the
//!   neighbour table (the other common way, used by dnsmasq) and needs
//!   only `CAP_NET_RAW`. The packet socket is bound with protocol 0, so it
//!   receives nothing.

use crate::frame::{self, Addresses};
use netvm_description::values::{IfName, MacAddr};
use netvm_runtime::{udp_on, Link};
use socket2::{Domain, SockAddr, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, UdpSocket};

/// Opens the receive socket: UDP 0.0.0.0:67 on `interface` only,
/// non-blocking (the loop waits with [`netvm_runtime::wait`]).
pub fn receive_socket(interface: &IfName) -> io::Result<UdpSocket> {
    let socket = udp_on(interface, 67)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Writes Ethernet frames on one interface.
pub struct FrameSender {
    socket: Socket,
    mac: MacAddr,
}

impl FrameSender {
    /// Opens an `AF_PACKET` raw socket bound to `link` (equivalent to
    /// `socket(AF_PACKET, SOCK_RAW, 0)` + `bind(sll_ifindex = index)`).
    pub fn open(link: &Link) -> io::Result<FrameSender> {
        let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
        let index = link.index;
        // SAFETY: `try_init` hands us zeroed storage as large as
        // `sockaddr_storage`, which holds a `sockaddr_ll`; we write only
        // that struct's fields through a correctly aligned pointer cast
        // and report its exact size.
        #[allow(unsafe_code)]
        let ((), address) = unsafe {
            SockAddr::try_init(|storage, len| {
                let sll = storage.cast::<libc::sockaddr_ll>();
                (*sll).sll_family = libc::AF_PACKET as libc::sa_family_t;
                (*sll).sll_protocol = 0;
                (*sll).sll_ifindex = index;
                *len = std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                Ok(())
            })
        }?;
        socket.bind(&address)?;
        socket.set_send_buffer_size(4 << 20)?;
        Ok(FrameSender {
            socket,
            mac: link.mac,
        })
    }

    /// Sends `payload` from `src_ip`:67 to `dst_mac`/`dst_ip`:68.
    pub fn send(
        &self,
        src_ip: Ipv4Addr,
        dst_mac: MacAddr,
        dst_ip: Ipv4Addr,
        payload: &[u8],
    ) -> io::Result<()> {
        let frame = frame::build(
            &Addresses {
                src_mac: self.mac,
                src_ip,
                dst_mac,
                dst_ip,
            },
            payload,
        );
        self.socket.send(&frame).map(|_| ())
    }
}
