//! The raw ICMPv6 socket both directions use: bound to one interface,
//! hop limit 255 on everything it sends, the received hop limit reported
//! with every message, and a kernel filter that lets one ICMPv6 type in.

use netvm_description::values::{IfName, MacAddr};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, SockaddrIn6};
use socket2::{Domain, Protocol, SockAddr, SockFilter, Socket, Type};
use std::io::{self, IoSliceMut};
use std::net::{Ipv6Addr, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

/// Largest message read: more than any Router Advertisement on a link
/// with a 9000-byte MTU. Longer ones are dropped as truncated.
const BUFFER: usize = 9216;

/// Classic BPF: accept the message when its first byte (the ICMPv6 type:
/// a raw IPv6 socket sees no IP header) is `kind`, drop it otherwise.
/// `ICMP6_FILTER` would do the same, but neither socket2 nor nix wraps
/// it; `SO_ATTACH_FILTER` is wrapped, so no unsafe code here.
fn only_type(kind: u8) -> [SockFilter; 4] {
    const LD_B_ABS: u16 = 0x30; // BPF_LD | BPF_B | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    [
        SockFilter::new(LD_B_ABS, 0, 0, 0),
        SockFilter::new(JEQ_K, 0, 1, u32::from(kind)),
        SockFilter::new(RET_K, 0, 0, u32::MAX),
        SockFilter::new(RET_K, 0, 0, 0),
    ]
}

/// One received message.
#[derive(Debug)]
pub(crate) struct Received<'a> {
    /// Its IPv6 source.
    pub source: Ipv6Addr,
    /// Its IPv6 hop limit (`IPV6_HOPLIMIT` ancillary data); 0 when the
    /// kernel gave none, which no parser accepts.
    pub hop_limit: u8,
    /// The ICMPv6 message, header first.
    pub bytes: &'a [u8],
}

/// A raw ICMPv6 socket on one interface.
#[derive(Debug)]
pub(crate) struct NdSocket {
    socket: Socket,
    /// The interface's index: the scope of link-local destinations.
    pub index: u32,
    buffer: Vec<u8>,
}

impl NdSocket {
    /// Opens the socket on `interface`, letting only ICMPv6 type `kind`
    /// in (equivalent to `ICMP6_FILTER` with one type passed), joined to
    /// `group` if given. Non-blocking.
    pub fn open(interface: &IfName, kind: u8, group: Option<Ipv6Addr>) -> io::Result<NdSocket> {
        let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
        // Messages queued before the filter is attached are checked
        // again by the caller: the filter only spares it work.
        socket.attach_filter(&only_type(kind))?;
        socket.bind_device(Some(interface.as_str().as_bytes()))?;
        let index = nix::net::if_::if_nametoindex(interface.as_str())?;
        socket.set_multicast_hops_v6(255)?;
        socket.set_unicast_hops_v6(255)?;
        socket.set_multicast_loop_v6(false)?;
        socket.set_recv_hoplimit_v6(true)?;
        socket.set_nonblocking(true)?;
        if let Some(group) = group {
            socket.join_multicast_v6(&group, index)?;
        }
        Ok(NdSocket {
            socket,
            index,
            buffer: vec![0; BUFFER],
        })
    }

    /// The next message queued, if any (`Ok(None)`: none left). Messages
    /// longer than the buffer are skipped.
    pub fn receive(&mut self) -> io::Result<Option<Received<'_>>> {
        loop {
            let fd = self.socket.as_raw_fd();
            let mut iov = [IoSliceMut::new(&mut self.buffer)];
            let mut space = nix::cmsg_space!(i32);
            let message = match recvmsg::<SockaddrIn6>(
                fd,
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(message) => message,
                Err(nix::errno::Errno::EAGAIN) => return Ok(None),
                Err(nix::errno::Errno::EINTR) => continue,
                Err(errno) => return Err(errno.into()),
            };
            if message.flags.contains(MsgFlags::MSG_TRUNC) {
                continue;
            }
            let mut hop_limit = 0;
            for control in message.cmsgs()? {
                if let ControlMessageOwned::Ipv6HopLimit(limit) = control {
                    hop_limit = u8::try_from(limit).unwrap_or(0);
                }
            }
            let source = message
                .address
                .map_or(Ipv6Addr::UNSPECIFIED, |address| address.ip());
            let len = message.bytes;
            return Ok(Some(Received {
                source,
                hop_limit,
                bytes: &self.buffer[..len],
            }));
        }
    }

    /// Sends `bytes` to `destination` (link-local scope: this interface).
    /// The kernel picks the link-local source and fills in the checksum.
    pub fn send(&self, destination: Ipv6Addr, bytes: &[u8]) -> io::Result<()> {
        let to = SocketAddrV6::new(destination, 0, 0, self.index);
        self.socket.send_to(bytes, &SockAddr::from(to))?;
        Ok(())
    }

    /// For `poll`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.socket.as_fd()
    }
}

/// The hardware address of `interface`, from `getifaddrs` (netlink, in
/// the caller's network namespace, unlike a path under `/sys`).
pub(crate) fn mac_of(interface: &IfName) -> Option<MacAddr> {
    nix::ifaddrs::getifaddrs()
        .ok()?
        .filter(|entry| entry.interface_name == interface.as_str())
        .find_map(|entry| entry.address?.as_link_addr()?.addr())
        .map(MacAddr)
}
