//! The service the lab runs in the upstream and in every VM (`netvm lab
//! serve NAME --port P…`), and the listener `netvm lab verify` puts on
//! every destination (`netvm lab listen NAME --ports SPEC`): on each port
//! (IPv4; the upstream's service with `--ipv6` on IPv6 too),
//! HTTP over TCP answering `NAME saw PEER` (so a probe learns who answered
//! and which address its connection came from, e.g. the uplink's after
//! NAT), and over UDP an echo, or `NAME saw PEER` when the datagram
//! starts with [`UDP_ASK`] (the listener says its name to every datagram). Every connection and datagram received is
//! logged on stdout (`rx tcp PORT PEER` / `rx udp PORT PEER PAYLOAD`), so
//! a check can prove that a spoofed datagram never arrived. Runs until
//! killed; one thread polls every socket, each TCP connection gets its
//! own thread and 2 s.

use nix::poll::{PollFd, PollFlags, PollTimeout};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::{Read, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd;
use std::time::Duration;

/// A UDP datagram starting with this asks the listener who it is.
pub const UDP_ASK: &[u8] = b"netvm-verify ";

fn answer(mut stream: TcpStream, name: &str) {
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let peer = stream
        .peer_addr()
        .map(|a| a.ip().to_string())
        .unwrap_or_default();
    let mut request = [0u8; 1024];
    let _ = stream.read(&mut request);
    let body = format!("{name} saw {peer}\n");
    let _ = write!(
        stream,
        "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
}

/// What [`bind`] got.
struct Bound {
    tcp: Vec<(u16, TcpListener)>,
    udp: Vec<(u16, UdpSocket)>,
    busy: Vec<String>,
}

/// A TCP listener on `[::]:port` for IPv6 only (so it and the IPv4
/// wildcard listener do not collide).
fn tcp6(port: u16) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    socket.set_only_v6(true)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SockAddr::from(SocketAddr::from((
        Ipv6Addr::UNSPECIFIED,
        port,
    ))))?;
    socket.listen(128)?;
    Ok(socket.into())
}

/// A UDP socket on `[::]:port` for IPv6 only.
fn udp6(port: u16) -> std::io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(true)?;
    socket.bind(&SockAddr::from(SocketAddr::from((
        Ipv6Addr::UNSPECIFIED,
        port,
    ))))?;
    Ok(socket.into())
}

/// Binds TCP and UDP on every port of `ports` on the IPv4 wildcard
/// address (and with `ipv6` the IPv6 one too); a port another process
/// holds is skipped (and listed) when `skip_busy`, an error otherwise.
fn bind(ports: &[u16], skip_busy: bool, ipv6: bool) -> std::io::Result<Bound> {
    let mut bound = Bound {
        tcp: Vec::new(),
        udp: Vec::new(),
        busy: Vec::new(),
    };
    let busy = |e: &std::io::Error| skip_busy && e.kind() == std::io::ErrorKind::AddrInUse;
    for port in ports {
        match TcpListener::bind(("0.0.0.0", *port)) {
            Ok(l) => {
                l.set_nonblocking(true)?;
                bound.tcp.push((*port, l));
            }
            Err(e) if busy(&e) => bound.busy.push(format!("tcp/{port}")),
            Err(e) => return Err(e),
        }
        match UdpSocket::bind(("0.0.0.0", *port)) {
            Ok(s) => {
                s.set_nonblocking(true)?;
                bound.udp.push((*port, s));
            }
            Err(e) if busy(&e) => bound.busy.push(format!("udp/{port}")),
            Err(e) => return Err(e),
        }
        if ipv6 {
            match tcp6(*port) {
                Ok(l) => {
                    l.set_nonblocking(true)?;
                    bound.tcp.push((*port, l));
                }
                Err(e) if busy(&e) => bound.busy.push(format!("tcp6/{port}")),
                Err(e) => return Err(e),
            }
            match udp6(*port) {
                Ok(s) => {
                    s.set_nonblocking(true)?;
                    bound.udp.push((*port, s));
                }
                Err(e) if busy(&e) => bound.busy.push(format!("udp6/{port}")),
                Err(e) => return Err(e),
            }
        }
    }
    Ok(bound)
}

/// Serves `ports` as `name` until the process is killed (every port must
/// be free), over IPv4 and with `ipv6` over IPv6 too.
pub fn serve(name: &str, ports: &[u16], ipv6: bool) -> std::io::Result<()> {
    let bound = bind(ports, false, ipv6)?;
    println!("serving {name} on {ports:?}");
    run(name, &bound, false)
}

/// Listens on `ports` as `name` until killed (over IPv4, and with `ipv6`
/// over IPv6 too), skipping ports another service holds; prints
/// `listening NAME` and the ports it skipped first (`tcp/P`, `udp/P`;
/// `tcp6/P`, `udp6/P` for IPv6).
pub fn listen(name: &str, ports: &[u16], ipv6: bool) -> std::io::Result<()> {
    let bound = bind(ports, true, ipv6)?;
    println!(
        "listening {name} on {} ports; busy: {}",
        bound.tcp.len() + bound.udp.len(),
        bound.busy.join(" ")
    );
    run(name, &bound, true)
}

/// Serves until killed; `always_say` answers every datagram with the
/// name (the listener), else only those starting with [`UDP_ASK`].
fn run(name: &str, bound: &Bound, always_say: bool) -> std::io::Result<()> {
    let _ = std::io::stdout().flush();
    let mut buf = [0u8; 1500];
    loop {
        let mut fds: Vec<PollFd> = bound
            .tcp
            .iter()
            .map(|(_, l)| PollFd::new(l.as_fd(), PollFlags::POLLIN))
            .chain(
                bound
                    .udp
                    .iter()
                    .map(|(_, s)| PollFd::new(s.as_fd(), PollFlags::POLLIN)),
            )
            .collect();
        nix::poll::poll(&mut fds, PollTimeout::NONE).map_err(std::io::Error::from)?;
        let ready: Vec<bool> = fds
            .iter()
            .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
            .collect();
        drop(fds);
        let mut out = std::io::stdout().lock();
        for (i, (port, listener)) in bound.tcp.iter().enumerate() {
            if !ready[i] {
                continue;
            }
            while let Ok((stream, peer)) = listener.accept() {
                let _ = writeln!(out, "rx tcp {port} {}", peer.ip());
                let owned = name.to_owned();
                std::thread::spawn(move || answer(stream, &owned));
            }
        }
        for (i, (port, socket)) in bound.udp.iter().enumerate() {
            if !ready[bound.tcp.len() + i] {
                continue;
            }
            while let Ok((n, from)) = socket.recv_from(&mut buf) {
                let got = &buf[..n];
                let text: String = String::from_utf8_lossy(&got[..n.min(64)])
                    .chars()
                    .map(|c| if c.is_ascii_graphic() { c } else { '.' })
                    .collect();
                let _ = writeln!(out, "rx udp {port} {} {text}", from.ip());
                if always_say || got.starts_with(UDP_ASK) {
                    let reply = format!("{name} saw {}\n", from.ip());
                    let _ = socket.send_to(reply.as_bytes(), from);
                } else {
                    let _ = socket.send_to(got, from);
                }
            }
        }
        let _ = out.flush();
    }
}

/// Parses a port list like `1-1024,8080,9000-9002`.
pub fn parse_ports(spec: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for part in spec.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let (a, b): (u16, u16) = match (a.trim().parse(), b.trim().parse()) {
            (Ok(a), Ok(b)) if a >= 1 && a <= b => (a, b),
            _ => return Err(format!("`{part}` is not a port or range")),
        };
        ports.extend(a..=b);
    }
    ports.sort_unstable();
    ports.dedup();
    Ok(ports)
}

/// The shortest spec [`parse_ports`] reads back as `ports` (sorted).
pub fn ports_spec(ports: &[u16]) -> String {
    let mut sorted = ports.to_vec();
    sorted.sort_unstable();
    sorted.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j + 1 < sorted.len() && sorted[j + 1] == sorted[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            sorted[i].to_string()
        } else {
            format!("{}-{}", sorted[i], sorted[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_specs_round_trip() {
        let ports = vec![1, 2, 3, 80, 8080, 8081, 65535];
        assert_eq!(ports_spec(&ports), "1-3,80,8080-8081,65535");
        assert_eq!(parse_ports(&ports_spec(&ports)), Ok(ports));
        assert!(parse_ports("0-3").is_err());
        assert!(parse_ports("9-3").is_err());
    }
}
