//! The lab's probes, run from inside a namespace (see
//! [`crate::netns::inside`]): TCP connects and port scans, an HTTP GET,
//! a DNS A or AAAA query (hickory-proto), a UDP exchange. Real traffic; no
//! external tool.

use hickory_proto::op::{Message, Query};
use hickory_proto::rr::{Name, RData, RecordType};
use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

/// What a TCP connect met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    /// It connected.
    Open,
    /// Something answered with a reset or an ICMP error: reachable.
    Refused,
    /// Nothing answered: filtered.
    Silent,
}

/// Connects to `addr`, waiting up to `timeout`.
pub fn connect(addr: SocketAddr, timeout: Duration) -> Reach {
    match TcpStream::connect_timeout(&addr, timeout) {
        Ok(_) => Reach::Open,
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Reach::Silent,
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => Reach::Silent,
        Err(_) => Reach::Refused,
    }
}

/// Connects to every port of `ip` in `ports`, 32 at a time; the ports
/// that were not silent, with what they met.
pub fn scan(ip: Ipv4Addr, ports: &[u16], timeout: Duration) -> Vec<(u16, Reach)> {
    scan_in(ip, ports, timeout, 32)
}

/// [`scan`], `parallel` ports at a time.
pub fn scan_in(
    ip: Ipv4Addr,
    ports: &[u16],
    timeout: Duration,
    parallel: usize,
) -> Vec<(u16, Reach)> {
    let mut reached = Vec::new();
    for chunk in ports.chunks(parallel.max(1)) {
        let found: Vec<(u16, Reach)> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|port| {
                    let port = *port;
                    scope.spawn(move || (port, connect(SocketAddr::from((ip, port)), timeout)))
                })
                .collect();
            handles.into_iter().filter_map(|h| h.join().ok()).collect()
        });
        reached.extend(found.into_iter().filter(|(_, r)| *r != Reach::Silent));
    }
    reached
}

/// `GET /` from `addr`; the body.
pub fn http_get(addr: SocketAddr, timeout: Duration) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(b"GET / HTTP/1.0\r\nHost: lab\r\n\r\n")?;
    let mut response = String::new();
    stream.take(64 * 1024).read_to_string(&mut response)?;
    Ok(response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.trim().to_owned())
        .unwrap_or_default())
}

/// Asks `server` for the A records of `name`; the addresses (empty for
/// NXDOMAIN or no answer within `timeout`).
pub fn resolve(server: Ipv4Addr, name: &str, timeout: Duration) -> Vec<Ipv4Addr> {
    query(IpAddr::V4(server), name, RecordType::A, timeout)
        .into_iter()
        .filter_map(|r| match r {
            RData::A(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// Asks `server` (either family) for the AAAA records of `name`; the
/// addresses (empty for NXDOMAIN or no answer within `timeout`).
pub fn resolve_aaaa(server: IpAddr, name: &str, timeout: Duration) -> Vec<Ipv6Addr> {
    query(server, name, RecordType::AAAA, timeout)
        .into_iter()
        .filter_map(|r| match r {
            RData::AAAA(a) => Some(a.0),
            _ => None,
        })
        .collect()
}

/// One recursive query of `kind` for `name` to `server` over UDP; the
/// answer records' data.
fn query(server: IpAddr, name: &str, kind: RecordType, timeout: Duration) -> Vec<RData> {
    let Ok(name) = Name::from_ascii(name) else {
        return Vec::new();
    };
    let mut query = Message::query();
    query.metadata.id = 0x4c61;
    query.metadata.recursion_desired = true;
    query.add_query(Query::query(name, kind));
    let Ok(bytes) = query.to_vec() else {
        return Vec::new();
    };
    let exchange = || -> std::io::Result<Vec<u8>> {
        let any: SocketAddr = match server {
            IpAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            IpAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let socket = UdpSocket::bind(any)?;
        socket.set_read_timeout(Some(timeout))?;
        socket.send_to(&bytes, (server, 53))?;
        let mut buf = [0u8; 1500];
        let n = socket.recv(&mut buf)?;
        Ok(buf[..n].to_vec())
    };
    let Ok(answer) = exchange() else {
        return Vec::new();
    };
    let Ok(message) = Message::from_vec(&answer) else {
        return Vec::new();
    };
    message.answers.into_iter().map(|r| r.data).collect()
}

/// Sends `payload` to `addr` over UDP; whether the same came back.
pub fn udp_echo(addr: SocketAddr, payload: &[u8], timeout: Duration) -> bool {
    let exchange = || -> std::io::Result<bool> {
        let socket = UdpSocket::bind("0.0.0.0:0")?;
        socket.set_read_timeout(Some(timeout))?;
        socket.send_to(payload, addr)?;
        let mut buf = [0u8; 1500];
        let n = socket.recv(&mut buf)?;
        Ok(&buf[..n] == payload)
    };
    exchange().unwrap_or(false)
}
