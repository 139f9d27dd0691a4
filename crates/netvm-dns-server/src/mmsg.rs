//! UDP in batches: `recvmmsg` takes up to [`BATCH`] queued queries in one
//! system call and `sendmmsg` sends the replies they produced in one more.
//! Under load most of a DNS server's time is spent in the kernel, and a
//! good part of that is entering and leaving it per datagram.
#![allow(unsafe_code)]

use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::RawFd;

/// Most datagrams per system call.
pub(crate) const BATCH: usize = 32;
/// Largest query read (longer ones are cut and then fail to parse).
const SIZE: usize = 4096;

/// One message header: one buffer, one IPv4 address.
fn header(iov: &mut libc::iovec, addr: &mut libc::sockaddr_in) -> libc::mmsghdr {
    // SAFETY: mmsghdr is plain data; all zeroes is valid.
    let mut h: libc::mmsghdr = unsafe { zeroed() };
    h.msg_hdr.msg_name = (addr as *mut libc::sockaddr_in).cast();
    h.msg_hdr.msg_namelen = size_of::<libc::sockaddr_in>() as libc::socklen_t;
    h.msg_hdr.msg_iov = iov;
    h.msg_hdr.msg_iovlen = 1;
    h
}

/// Receive buffers for one batch.
pub(crate) struct Inbox {
    buffers: Vec<[u8; SIZE]>,
    addresses: Vec<libc::sockaddr_in>,
    lengths: Vec<usize>,
}

impl Inbox {
    pub(crate) fn new() -> Inbox {
        Inbox {
            buffers: vec![[0u8; SIZE]; BATCH],
            // SAFETY: sockaddr_in is plain data; all zeroes is valid.
            addresses: vec![unsafe { zeroed() }; BATCH],
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
        let a = &self.addresses[i];
        let ip = Ipv4Addr::from(u32::from_be(a.sin_addr.s_addr));
        let from = SocketAddr::V4(SocketAddrV4::new(ip, u16::from_be(a.sin_port)));
        (&self.buffers[i][..self.lengths[i]], from)
    }
}

/// Sends `replies` from `fd` (non-blocking), as many per system call as
/// fit a batch; what the socket buffer cannot take is dropped, as the
/// network would drop it.
pub(crate) fn send(fd: RawFd, replies: &[(SocketAddr, Vec<u8>)]) {
    for chunk in replies.chunks(BATCH) {
        let mut addresses: Vec<libc::sockaddr_in> = chunk
            .iter()
            .map(|(to, _)| {
                // SAFETY: sockaddr_in is plain data; all zeroes is valid.
                let mut a: libc::sockaddr_in = unsafe { zeroed() };
                if let SocketAddr::V4(v4) = to {
                    a.sin_family = libc::AF_INET as libc::sa_family_t;
                    a.sin_port = v4.port().to_be();
                    a.sin_addr.s_addr = u32::from(*v4.ip()).to_be();
                }
                a
            })
            .collect();
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
