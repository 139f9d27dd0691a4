//! One DNS question to one server over UDP: sent, then the first
//! datagram from that server taken as its answer, waited for at most
//! [`TIMEOUT`] or until the agent stops. The RFC 7050 probe
//! ([`crate::nat64_probe`]) and the uplinks' reachability probes
//! ([`crate::uplinks`]) ask this way.

use netvm_runtime::{Stop, Wake};
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// How long a server may take to answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);

/// Sends `query` to `server` on `socket` and returns the first datagram
/// that comes back from `server` within [`TIMEOUT`]; `None` when the send
/// failed, nothing came in time, or `stop` was stopped. `socket` is made
/// non-blocking.
pub fn exchange(
    socket: &UdpSocket,
    server: SocketAddr,
    query: &[u8],
    stop: &Stop,
) -> io::Result<Option<Vec<u8>>> {
    socket.set_nonblocking(true)?;
    if socket.send_to(query, server).is_err() {
        return Ok(None);
    }
    let deadline = Instant::now() + TIMEOUT;
    let mut buffer = [0u8; 1500];
    loop {
        match stop.wait_for(socket.as_fd(), Some(deadline))? {
            Wake::Stopped | Wake::Deadline => return Ok(None),
            Wake::Ready => {}
        }
        match socket.recv_from(&mut buffer) {
            Ok((n, from)) if from == server => return Ok(Some(buffer[..n].to_vec())),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(_) => return Ok(None),
        }
    }
}
