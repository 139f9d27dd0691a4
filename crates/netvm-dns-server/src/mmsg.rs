//! UDP in batches: `recvmmsg` takes up to [`BATCH`] queued queries in one
//! system call and `sendmmsg` sends the replies they produced in one more.
//! Under load most of a DNS server's time is spent in the kernel, and a
//! good part of that is entering and leaving it per datagram. One socket
//! is of one family: its addresses are `sockaddr_in` or `sockaddr_in6`
//! ([`RawAddr`]).
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::RawFd;

/// Most datagrams per system call.
pub(crate) const BATCH: usize = 32;
/// Largest query read (longer ones are cut and then fail to parse).
const SIZE: usize = 4096;

/// A socket address as the kernel reads and writes it for one family.
pub(crate) trait RawAddr: Copy {
    /// All zeroes.
    fn zero() -> Self;
    /// The address it holds.
    fn decode(&self) -> SocketAddr;
    /// `addr` in this family's form, if it is of this family.
    fn encode(addr: &SocketAddr) -> Option<Self>;
}

impl RawAddr for libc::sockaddr_in {
    fn zero() -> Self {
        // SAFETY: sockaddr_in is plain data; all zeroes is valid.
        unsafe { zeroed() }
    }

    fn decode(&self) -> SocketAddr {
        let ip = Ipv4Addr::from(u32::from_be(self.sin_addr.s_addr));
        SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(self.sin_port)))
    }

    fn encode(addr: &SocketAddr) -> Option<Self> {
        let SocketAddr::V4(v4) = addr else {
            return None;
        };
        let mut a = Self::zero();
        a.sin_family = libc::AF_INET as libc::sa_family_t;
        a.sin_port = v4.port().to_be();
        a.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
        Some(a)
    }
}

impl RawAddr for libc::sockaddr_in6 {
    fn zero() -> Self {
        // SAFETY: sockaddr_in6 is plain data; all zeroes is valid.
        unsafe { zeroed() }
    }

    fn decode(&self) -> SocketAddr {
        SocketAddr::V6(SocketAddrV6::new(
            Ipv6Addr::from(self.sin6_addr.s6_addr),
            u16::from_be(self.sin6_port),
            self.sin6_flowinfo,
            self.sin6_scope_id,
        ))
    }

    fn encode(addr: &SocketAddr) -> Option<Self> {
        let SocketAddr::V6(v6) = addr else {
            return None;
        };
        let mut a = Self::zero();
        a.sin6_family = libc::AF_INET6 as libc::sa_family_t;
        a.sin6_port = v6.port().to_be();
        a.sin6_flowinfo = v6.flowinfo();
        a.sin6_addr.s6_addr = v6.ip().octets();
        a.sin6_scope_id = v6.scope_id();
        Some(a)
    }
}

/// One message header: one buffer, one address.
fn header<A: RawAddr>(iov: &mut libc::iovec, addr: &mut A) -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain data; all zeroes is valid.
    let mut h: libc::mmsghdr = unsafe { zeroed() };
    h.msg_hdr.msg_name = (addr as *mut A).cast();
    h.msg_hdr.msg_namelen = size_of::<A>() as libc::socklen_t;
    h.msg_hdr.msg_iov = iov;
    h.msg_hdr.msg_iovlen = 1;
    h
}

/// Receive buffers for one batch on a socket of family `A`.
pub(crate) struct Inbox<A: RawAddr> {
    buffers: Vec<[u8; SIZE]>,
    addresses: Vec<A>,
    lengths: Vec<usize>,
}

impl<A: RawAddr> Inbox<A> {
    pub(crate) fn new() -> Inbox<A> {
        Inbox {
            buffers: vec![[0u8; SIZE]; BATCH],
            addresses: vec![A::zero(); BATCH],
            lengths: vec![0; BATCH],
        }
    }

    /// Reads what is queued on `fd` (non-blocking): how many datagrams.
    pub(crate) fn receive(&mut self, fd: RawFd) -> io::Result<usize> {
        let mut iovecs: Vec<libc::iovec> = self
            .buffers
            .iter_mut()
            .map(|b| libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: SIZE,
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .zip(self.addresses.iter_mut())
            .map(|(iov, addr)| header(iov, addr))
            .collect();
        // SAFETY: every header points at a live iovec, buffer and address
        // of the right sizes, all of which outlive the call.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                headers.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        for (length, header) in self.lengths.iter_mut().zip(&headers).take(n) {
            *length = (header.msg_len as usize).min(SIZE);
        }
        Ok(n)
    }

    /// Datagram `i` of the last batch and who sent it.
    pub(crate) fn get(&self, i: usize) -> (&[u8], SocketAddr) {
        (
            &self.buffers[i][..self.lengths[i]],
            self.addresses[i].decode(),
        )
    }
}

/// Sends `replies` from `fd`, a socket of family `A` (non-blocking), as
/// many per system call as fit a batch; replies to addresses of another
/// family are skipped, and what the socket buffer cannot take is
/// dropped, as the network would drop it.
pub(crate) fn send<A: RawAddr>(fd: RawFd, replies: &[(SocketAddr, Vec<u8>)]) {
    let replies: Vec<(A, &[u8])> = replies
        .iter()
        .filter_map(|(to, bytes)| Some((A::encode(to)?, bytes.as_slice())))
        .collect();
    for chunk in replies.chunks(BATCH) {
        let mut addresses: Vec<A> = chunk.iter().map(|(to, _)| *to).collect();
        let mut iovecs: Vec<libc::iovec> = chunk
            .iter()
            .map(|(_, bytes)| libc::iovec {
                iov_base: bytes.as_ptr() as *mut libc::c_void,
                iov_len: bytes.len(),
            })
            .collect();
        let mut headers: Vec<libc::mmsghdr> = iovecs
            .iter_mut()
            .zip(addresses.iter_mut())
            .map(|(iov, addr)| header(iov, addr))
            .collect();
        let mut sent = 0;
        while sent < headers.len() {
            // SAFETY: the headers from `sent` on point at live iovecs,
            // reply bytes and addresses that outlive the call.
            let n = unsafe {
                libc::sendmmsg(
                    fd,
                    headers[sent..].as_mut_ptr(),
                    (headers.len() - sent) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if n <= 0 {
                break; // full buffer or an error: the rest is dropped
            }
            sent += n as usize;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_in_their_own_family_only() {
        let v4: SocketAddr = "192.168.100.101:40000".parse().expect("addr");
        let v6: SocketAddr = "[fd12:3456:789a::65]:40000".parse().expect("addr");
        let raw4 = libc::sockaddr_in::encode(&v4).expect("v4");
        assert_eq!(raw4.decode(), v4);
        let raw6 = libc::sockaddr_in6::encode(&v6).expect("v6");
        assert_eq!(raw6.decode(), v6);
        assert!(libc::sockaddr_in::encode(&v6).is_none());
        assert!(libc::sockaddr_in6::encode(&v4).is_none());
    }

    #[test]
    fn a_batch_goes_out_and_comes_in_over_ipv6_loopback() {
        use std::os::fd::AsRawFd;
        let server = std::net::UdpSocket::bind("[::1]:0").expect("IPv6 loopback");
        server.set_nonblocking(true).expect("nonblocking");
        let client = std::net::UdpSocket::bind("[::1]:0").expect("bind");
        let to = server.local_addr().expect("addr");
        let replies: Vec<(SocketAddr, Vec<u8>)> = (0..3u8).map(|i| (to, vec![i; 5])).collect();
        send::<libc::sockaddr_in6>(client.as_raw_fd(), &replies);
        let mut inbox = Inbox::<libc::sockaddr_in6>::new();
        let mut got = Vec::new();
        for _ in 0..100 {
            if let Ok(n) = inbox.receive(server.as_raw_fd()) {
                for i in 0..n {
                    let (bytes, from) = inbox.get(i);
                    got.push((bytes.to_vec(), from));
                }
            }
            if got.len() == 3 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let from = client.local_addr().expect("addr");
        assert_eq!(
            got,
            (0..3u8).map(|i| (vec![i; 5], from)).collect::<Vec<_>>()
        );
    }
}
