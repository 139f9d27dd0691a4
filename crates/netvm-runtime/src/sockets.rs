//! Sockets that see one interface only.

use netvm_description::values::IfName;
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};

/// A UDP socket on `port` that sees only `interface` (`SO_BINDTODEVICE`),
/// may broadcast, and has room for bursts (4 MiB receive buffer).
pub fn udp_on(interface: &IfName, port: u16) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_reuse_address(true)?;
    socket.set_broadcast(true)?;
    socket.bind_device(Some(interface.as_str().as_bytes()))?;
    socket.set_recv_buffer_size(4 << 20)?;
    socket.bind(&SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port).into())?;
    Ok(socket.into())
}
