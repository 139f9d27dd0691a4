//! Many probes at once from inside one namespace (run it through
//! [`crate::netns::inside`]): non-blocking TCP connects, UDP datagrams
//! (a DNS query to port 53, a [`crate::serve::UDP_ASK`] elsewhere) and ICMP
//! echo requests (ICMPv6 echo for IPv6 destinations) on one raw socket
//! per family, all sent together and waited for
//! with one shared deadline, so a batch of thousands of silent flows costs
//! one window, not one timeout each. What answered says who it is and as
//! which address it saw the prober (`NAME saw PEER`, from the lab's
//! listeners).

use crate::expect::Proto;
use crate::serve::UDP_ASK;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    self, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrIn, SockaddrIn6,
};
use std::io::{Read, Write};
use std::net::{
    IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6, TcpStream, UdpSocket,
};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::time::{Duration, Instant};

/// One probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Destination address (either family).
    pub ip: IpAddr,
    /// Protocol.
    pub proto: Proto,
    /// Destination port (ignored for ICMP).
    pub port: u16,
}

/// What a probe met.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "measured")]
pub enum Measured {
    /// Nothing came back within the window.
    Silent,
    /// A refusal came back (a TCP reset or an ICMP error): something is
    /// there, but no listener answered.
    Refused {
        /// The error.
        error: String,
    },
    /// An answer.
    Answered {
        /// The listener's name, when a lab listener answered.
        by: Option<String>,
        /// The address the listener saw the prober as (ICMP: the address
        /// the reply came from).
        peer: Option<IpAddr>,
    },
}

impl std::fmt::Display for Measured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Measured::Silent => f.write_str("silent"),
            Measured::Refused { error } => write!(f, "refused ({error})"),
            Measured::Answered { by, peer } => {
                f.write_str("answered")?;
                if let Some(by) = by {
                    write!(f, " by {by}")?;
                }
                if let Some(peer) = peer {
                    write!(f, " seeing {peer}")?;
                }
                Ok(())
            }
        }
    }
}

/// `NAME saw PEER` in a listener's answer.
fn saw(text: &str) -> Option<(String, Option<IpAddr>)> {
    let line = text.lines().find(|l| l.contains(" saw "))?;
    let (name, peer) = line.split_once(" saw ")?;
    Some((name.trim().to_owned(), peer.trim().parse().ok()))
}

fn answered(bytes: &[u8]) -> Measured {
    let text = String::from_utf8_lossy(bytes);
    match saw(&text) {
        Some((name, peer)) => Measured::Answered {
            by: Some(name),
            peer,
        },
        None => Measured::Answered {
            by: None,
            peer: None,
        },
    }
}

/// A DNS query (A for `lab.verify.`).
fn dns_query(id: u16) -> Vec<u8> {
    let mut q = id.to_be_bytes().to_vec();
    q.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in ["lab", "verify"] {
        q.push(label.len() as u8);
        q.extend(label.as_bytes());
    }
    q.extend([0, 0, 1, 0, 1]);
    q
}

fn checksum(bytes: &[u8]) -> u16 {
    let mut sum: u32 = bytes
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMPv6 echo request (the kernel fills in the checksum of a raw
/// ICMPv6 socket).
fn echo_request6(id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![128, 0, 0, 0];
    p.extend(id.to_be_bytes());
    p.extend(seq.to_be_bytes());
    p.extend(b"netvm-verify");
    p
}

fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend(id.to_be_bytes());
    p.extend(seq.to_be_bytes());
    p.extend(b"netvm-verify");
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

enum State {
    Connecting(TcpStream),
    Reading(TcpStream, Vec<u8>),
    Waiting(UdpSocket),
    Icmp,
    Done,
}

fn io(e: nix::Error) -> std::io::Error {
    std::io::Error::from(e)
}

fn tcp_start(to: SocketAddr) -> Result<State, Measured> {
    let family = match to {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd: OwnedFd = socket::socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(|e| Measured::Refused {
        error: e.to_string(),
    })?;
    let connected = match to {
        SocketAddr::V4(to) => socket::connect(fd.as_raw_fd(), &SockaddrIn::from(to)),
        SocketAddr::V6(to) => socket::connect(fd.as_raw_fd(), &SockaddrIn6::from(to)),
    };
    match connected {
        Ok(()) | Err(nix::Error::EINPROGRESS) => Ok(State::Connecting(TcpStream::from(fd))),
        Err(nix::Error::ECONNREFUSED) => Err(Measured::Refused {
            error: "connection refused".to_owned(),
        }),
        // No route, no address: nothing left this namespace.
        Err(_) => Err(Measured::Silent),
    }
}

fn udp_start(bind: IpAddr, to: SocketAddr, payload: &[u8]) -> Result<State, Measured> {
    let start = || -> std::io::Result<UdpSocket> {
        let s = UdpSocket::bind((bind, 0))?;
        if to.is_ipv4() {
            s.set_broadcast(true)?;
        }
        s.set_nonblocking(true)?;
        s.send_to(payload, to)?;
        Ok(s)
    };
    start().map(State::Waiting).map_err(|_| Measured::Silent)
}

/// Sends every probe of `probes` (UDP and ICMP to IPv4 addresses from
/// `bind` when given) and waits up to `window` for all of them together;
/// what each met, in order. Answers from `local` addresses (the prober's
/// own, which a broadcast reaches too) do not count.
pub fn run(
    probes: &[Probe],
    bind: Option<Ipv4Addr>,
    local: &[IpAddr],
    window: Duration,
) -> Vec<Measured> {
    let bind_ip = bind.unwrap_or(Ipv4Addr::UNSPECIFIED);
    let mut results: Vec<Measured> = vec![Measured::Silent; probes.len()];
    let ident = (std::process::id() as u16) ^ 0x5a5a;
    let raw: Option<OwnedFd> = probes
        .iter()
        .any(|p| p.proto == Proto::Icmp && p.ip.is_ipv4())
        .then(|| {
            socket::socket(
                AddressFamily::Inet,
                SockType::Raw,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                SockProtocol::Icmp,
            )
            .ok()
        })
        .flatten();
    if let Some(fd) = &raw {
        let _ = socket::setsockopt(fd, socket::sockopt::Broadcast, &true);
        if let Some(ip) = bind {
            let _ = socket::bind(fd.as_raw_fd(), &SockaddrIn::from(SocketAddrV4::new(ip, 0)));
        }
    }
    let raw6: Option<OwnedFd> = probes
        .iter()
        .any(|p| p.proto == Proto::Icmp && p.ip.is_ipv6())
        .then(|| {
            socket::socket(
                AddressFamily::Inet6,
                SockType::Raw,
                SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
                SockProtocol::IcmpV6,
            )
            .ok()
        })
        .flatten();
    let mut states: Vec<State> = Vec::with_capacity(probes.len());
    for (i, p) in probes.iter().enumerate() {
        let to = SocketAddr::new(p.ip, p.port);
        let from = match p.ip {
            IpAddr::V4(_) => IpAddr::V4(bind_ip),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        };
        let started = match p.proto {
            Proto::Tcp => tcp_start(to),
            Proto::Udp => {
                let payload = if p.port == crate::expect::DNS_PORT {
                    dns_query(i as u16)
                } else {
                    let mut v = UDP_ASK.to_vec();
                    v.extend(format!("probe {i}").as_bytes());
                    v
                };
                udp_start(from, to, &payload)
            }
            Proto::Icmp => match (p.ip, &raw, &raw6) {
                (IpAddr::V4(ip), Some(fd), _) => {
                    let sent = socket::sendto(
                        fd.as_raw_fd(),
                        &echo_request(ident, i as u16),
                        &SockaddrIn::from(SocketAddrV4::new(ip, 0)),
                        socket::MsgFlags::empty(),
                    );
                    sent.map(|_| State::Icmp).map_err(|_| Measured::Silent)
                }
                (IpAddr::V6(ip), _, Some(fd)) => {
                    let sent = socket::sendto(
                        fd.as_raw_fd(),
                        &echo_request6(ident, i as u16),
                        &SockaddrIn6::from(SocketAddrV6::new(ip, 0, 0, 0)),
                        socket::MsgFlags::empty(),
                    );
                    sent.map(|_| State::Icmp).map_err(|_| Measured::Silent)
                }
                _ => Err(Measured::Refused {
                    error: "no raw ICMP socket".to_owned(),
                }),
            },
        };
        match started {
            Ok(s) => states.push(s),
            Err(m) => {
                results[i] = m;
                states.push(State::Done);
            }
        }
    }
    let mut deadline = Instant::now() + window;
    // A connection that opened late gets one more second to say who it is.
    let mut extended = false;
    let mut buf = [0u8; 2048];
    loop {
        let pending = states
            .iter()
            .filter(|s| {
                matches!(
                    s,
                    State::Connecting(_) | State::Reading(..) | State::Waiting(_)
                )
            })
            .count();
        let icmp_pending = states.iter().any(|s| matches!(s, State::Icmp));
        let now = Instant::now();
        if now >= deadline && !extended && states.iter().any(|s| matches!(s, State::Reading(..))) {
            extended = true;
            deadline = now + Duration::from_secs(1);
            states.iter_mut().for_each(|s| {
                if !matches!(s, State::Reading(..)) {
                    *s = State::Done;
                }
            });
            continue;
        }
        if (pending == 0 && !icmp_pending) || now >= deadline {
            break;
        }
        let mut index = Vec::new();
        let mut fds = Vec::new();
        for (i, s) in states.iter().enumerate() {
            let (fd, flags) = match s {
                State::Connecting(t) => (t.as_fd(), PollFlags::POLLOUT),
                State::Reading(t, _) => (t.as_fd(), PollFlags::POLLIN),
                State::Waiting(u) => (u.as_fd(), PollFlags::POLLIN),
                _ => continue,
            };
            index.push(i);
            fds.push(PollFd::new(fd, flags));
        }
        if let Some(fd) = &raw {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        let raw6_at = fds.len();
        if let Some(fd) = &raw6 {
            fds.push(PollFd::new(fd.as_fd(), PollFlags::POLLIN));
        }
        let left = deadline
            .saturating_duration_since(now)
            .as_millis()
            .min(60_000) as u16;
        if nix::poll::poll(&mut fds, PollTimeout::from(left.max(1))).is_err() {
            break;
        }
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        for (k, i) in index.iter().enumerate() {
            if !ready[k] {
                continue;
            }
            let state = std::mem::replace(&mut states[*i], State::Done);
            states[*i] = match state {
                State::Connecting(mut t) => {
                    match socket::getsockopt(&t, socket::sockopt::SocketError) {
                        Ok(0) => {
                            let _ = t.write_all(b"GET / HTTP/1.0\r\nHost: verify\r\n\r\n");
                            State::Reading(t, Vec::new())
                        }
                        Ok(errno) => {
                            results[*i] = Measured::Refused {
                                error: std::io::Error::from_raw_os_error(errno).to_string(),
                            };
                            State::Done
                        }
                        Err(e) => {
                            results[*i] = Measured::Refused {
                                error: io(e).to_string(),
                            };
                            State::Done
                        }
                    }
                }
                State::Reading(mut t, mut got) => match t.read(&mut buf) {
                    Ok(0) => {
                        results[*i] = answered(&got);
                        State::Done
                    }
                    Ok(n) => {
                        got.extend_from_slice(&buf[..n]);
                        if saw(&String::from_utf8_lossy(&got)).is_some() {
                            results[*i] = answered(&got);
                            State::Done
                        } else {
                            State::Reading(t, got)
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => State::Reading(t, got),
                    Err(_) => {
                        results[*i] = answered(&got);
                        State::Done
                    }
                },
                State::Waiting(u) => match u.recv_from(&mut buf) {
                    Ok((_, from)) if local.contains(&from.ip()) => State::Waiting(u),
                    Ok((n, _)) => {
                        results[*i] = answered(&buf[..n]);
                        State::Done
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => State::Waiting(u),
                    Err(e) => {
                        results[*i] = Measured::Refused {
                            error: e.to_string(),
                        };
                        State::Done
                    }
                },
                other => other,
            };
        }
        if let (Some(fd), Some(true)) = (&raw, raw6_at.checked_sub(1).map(|k| ready[k])) {
            while let Ok((n, _)) = socket::recvfrom::<SockaddrIn>(fd.as_raw_fd(), &mut buf) {
                let packet = &buf[..n];
                let ihl = usize::from(packet.first().map_or(5, |b| b & 0x0f)) * 4;
                let (Some(header), Some(icmp)) = (packet.get(..20), packet.get(ihl..ihl + 8))
                else {
                    continue;
                };
                let from = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
                let (kind, id, seq) = (
                    icmp[0],
                    u16::from_be_bytes([icmp[4], icmp[5]]),
                    usize::from(u16::from_be_bytes([icmp[6], icmp[7]])),
                );
                if kind == 0
                    && id == ident
                    && !local.contains(&IpAddr::V4(from))
                    && matches!(states.get(seq), Some(State::Icmp))
                {
                    results[seq] = Measured::Answered {
                        by: None,
                        peer: Some(IpAddr::V4(from)),
                    };
                    states[seq] = State::Done;
                }
            }
        }
        if let (Some(fd), Some(true)) = (&raw6, ready.get(raw6_at)) {
            while let Ok((n, addr)) = socket::recvfrom::<SockaddrIn6>(fd.as_raw_fd(), &mut buf) {
                // A raw ICMPv6 socket reads the ICMPv6 message alone.
                let (Some(icmp), Some(addr)) = (buf[..n].get(..8), addr) else {
                    continue;
                };
                let from = IpAddr::V6(addr.ip());
                let (kind, id, seq) = (
                    icmp[0],
                    u16::from_be_bytes([icmp[4], icmp[5]]),
                    usize::from(u16::from_be_bytes([icmp[6], icmp[7]])),
                );
                if kind == 129
                    && id == ident
                    && !local.contains(&from)
                    && matches!(states.get(seq), Some(State::Icmp))
                    && probes.get(seq).is_some_and(|p| p.ip.is_ipv6())
                {
                    results[seq] = Measured::Answered {
                        by: None,
                        peer: Some(from),
                    };
                    states[seq] = State::Done;
                }
            }
        }
    }
    // A connection that opened but said nothing still reached something.
    for (i, s) in states.iter().enumerate() {
        if let State::Reading(_, got) = s {
            results[i] = answered(got);
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_who_answered() {
        let http = b"HTTP/1.0 200 OK\r\nContent-Length: 9\r\n\r\ngui-vm saw 192.168.100.4\n";
        assert_eq!(
            answered(http),
            Measured::Answered {
                by: Some("gui-vm".to_owned()),
                peer: Some(IpAddr::V4(Ipv4Addr::new(192, 168, 100, 4)))
            }
        );
        assert_eq!(
            answered(b"\x12\x34"),
            Measured::Answered {
                by: None,
                peer: None
            }
        );
    }

    #[test]
    fn echo_requests_have_a_valid_checksum() {
        assert_eq!(checksum(&echo_request(7, 9)), 0);
    }

    #[test]
    fn probes_loopback_in_one_window() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let started = Instant::now();
        let got = run(
            &[
                Probe {
                    ip: Ipv4Addr::LOCALHOST.into(),
                    proto: Proto::Tcp,
                    port,
                },
                Probe {
                    ip: Ipv4Addr::new(192, 0, 2, 1).into(),
                    proto: Proto::Udp,
                    port: 9,
                },
            ],
            None,
            &[],
            Duration::from_millis(300),
        );
        assert!(started.elapsed() < Duration::from_secs(2));
        assert!(matches!(got[0], Measured::Answered { .. }), "{got:?}");
        assert_eq!(got[1], Measured::Silent);
    }

    #[test]
    fn probes_ipv6_loopback() {
        // Skipped where the kernel has no IPv6 (no ::1).
        let Ok(listener) = std::net::TcpListener::bind("[::1]:0") else {
            return;
        };
        let port = listener.local_addr().expect("addr").port();
        let got = run(
            &[Probe {
                ip: Ipv6Addr::LOCALHOST.into(),
                proto: Proto::Tcp,
                port,
            }],
            None,
            &[],
            Duration::from_millis(300),
        );
        assert!(matches!(got[0], Measured::Answered { .. }), "{got:?}");
    }
}
