//! The lab's own router advertiser (`netvm lab ra`), for the upstream
//! flavour radvd cannot serve: radvd 2.19 (Debian 12) has no PREF64
//! option (RFC 8781), which the `ipv6-only` upstream must announce.
//!
//! [`build`] makes the Router Advertisement (RFC 4861 §4.2) from a
//! [`RaConfig`]: pure, deterministic, unit-tested byte for byte. [`run`]
//! sends it to all-nodes every [`RaConfig::interval`] and whenever a
//! Router Solicitation arrives, from the interface's link-local address
//! (the socket is bound to it, so no RA ever leaves with another source;
//! while that address is tentative it waits). Received datagrams are
//! only checked for their ICMPv6 type: nothing of them is parsed.

use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use std::io::Read;
use std::net::{Ipv6Addr, SocketAddrV6};
use std::time::{Duration, Instant};

/// ICMPv6 type of a Router Solicitation (RFC 4861 §4.1).
const ROUTER_SOLICITATION: u8 = 133;
/// ICMPv6 type of a Router Advertisement (RFC 4861 §4.2).
const ROUTER_ADVERTISEMENT: u8 = 134;
/// Option types: RFC 4861 §4.6, RFC 8106 §5, RFC 8781 §4.
const OPT_SOURCE_LINK_ADDR: u8 = 1;
const OPT_PREFIX_INFO: u8 = 3;
const OPT_RDNSS: u8 = 25;
const OPT_DNSSL: u8 = 31;
const OPT_PREF64: u8 = 38;

/// What to advertise.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaConfig {
    /// The router's MAC (Source Link-Layer Address option), if known.
    pub mac: Option<[u8; 6]>,
    /// M: addresses by DHCPv6.
    pub managed: bool,
    /// O: other configuration by DHCPv6.
    pub other: bool,
    /// Router lifetime, seconds (0: not a default router).
    pub router_lifetime: u16,
    /// On-link, autonomous /64 prefixes (Prefix Information, L=1 A=1).
    pub prefixes: Vec<Ipv6Addr>,
    /// Recursive DNS servers (RDNSS).
    pub rdnss: Vec<Ipv6Addr>,
    /// DNS search list (DNSSL).
    pub dnssl: Vec<String>,
    /// NAT64 prefix and its length (PREF64): 32, 40, 48, 56, 64 or 96.
    pub pref64: Option<(Ipv6Addr, u8)>,
    /// Unsolicited advertisements this often.
    pub interval: Duration,
}

/// Lifetime of the RDNSS, DNSSL and PREF64 options, seconds: at least
/// three times the interval (RFC 8106 §5.1, RFC 8781 §4.1).
const OPTION_LIFETIME: u32 = 1800;
/// Prefix valid and preferred lifetimes, seconds.
const PREFIX_VALID: u32 = 86_400;
const PREFIX_PREFERRED: u32 = 14_400;

/// Why a configuration cannot be advertised.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RaError {
    /// PREF64 carries only these lengths (RFC 8781 §4, PLC).
    #[error("a PREF64 prefix is /32, /40, /48, /56, /64 or /96, not /{0}")]
    Pref64Length(u8),
    /// A DNSSL name is not a DNS name.
    #[error("`{0}` is not a domain name")]
    Domain(String),
}

/// The Prefix Length Code for `len` (RFC 8781 §4).
fn plc(len: u8) -> Result<u16, RaError> {
    Ok(match len {
        96 => 0,
        64 => 1,
        56 => 2,
        48 => 3,
        40 => 4,
        32 => 5,
        other => return Err(RaError::Pref64Length(other)),
    })
}

/// `name` as DNS labels (RFC 1035 §3.1), ending with the root label.
fn labels(name: &str) -> Result<Vec<u8>, RaError> {
    let mut out = Vec::new();
    for label in name.trim_end_matches('.').split('.') {
        let ok = !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-');
        if !ok {
            return Err(RaError::Domain(name.to_owned()));
        }
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
    Ok(out)
}

/// Appends option `kind` with `body`, padded with zeros to a multiple of
/// 8 octets (its length field counts units of 8, type and length
/// included).
fn option(out: &mut Vec<u8>, kind: u8, body: &[u8]) {
    let total = (body.len() + 2).div_ceil(8) * 8;
    out.push(kind);
    out.push((total / 8) as u8);
    out.extend_from_slice(body);
    out.resize(out.len() + total - 2 - body.len(), 0);
}

/// The Router Advertisement, ICMPv6 header included (checksum zero: the
/// kernel fills it in for raw ICMPv6 sockets, RFC 3542 §3.1).
pub fn build(config: &RaConfig) -> Result<Vec<u8>, RaError> {
    let mut out = vec![ROUTER_ADVERTISEMENT, 0, 0, 0];
    out.push(64); // Cur Hop Limit
    out.push(u8::from(config.managed) << 7 | u8::from(config.other) << 6);
    out.extend_from_slice(&config.router_lifetime.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes()); // Reachable Time: unspecified
    out.extend_from_slice(&0u32.to_be_bytes()); // Retrans Timer: unspecified
    if let Some(mac) = config.mac {
        option(&mut out, OPT_SOURCE_LINK_ADDR, &mac);
    }
    for prefix in &config.prefixes {
        let mut body = vec![64, 0b1100_0000]; // Prefix Length, L and A
        body.extend_from_slice(&PREFIX_VALID.to_be_bytes());
        body.extend_from_slice(&PREFIX_PREFERRED.to_be_bytes());
        body.extend_from_slice(&0u32.to_be_bytes()); // Reserved2
        body.extend_from_slice(&prefix.octets());
        option(&mut out, OPT_PREFIX_INFO, &body);
    }
    if !config.rdnss.is_empty() {
        let mut body = vec![0, 0];
        body.extend_from_slice(&OPTION_LIFETIME.to_be_bytes());
        for server in &config.rdnss {
            body.extend_from_slice(&server.octets());
        }
        option(&mut out, OPT_RDNSS, &body);
    }
    if !config.dnssl.is_empty() {
        let mut body = vec![0, 0];
        body.extend_from_slice(&OPTION_LIFETIME.to_be_bytes());
        for name in &config.dnssl {
            body.extend(labels(name)?);
        }
        option(&mut out, OPT_DNSSL, &body);
    }
    if let Some((prefix, len)) = config.pref64 {
        // Scaled Lifetime in units of 8 seconds (13 bits), then the PLC.
        let scaled = (OPTION_LIFETIME / 8).min(0x1fff) as u16;
        let mut body = (scaled << 3 | plc(len)?).to_be_bytes().to_vec();
        body.extend_from_slice(&prefix.octets()[..12]);
        option(&mut out, OPT_PREF64, &body);
    }
    Ok(out)
}

/// The link-local address and MAC of `interface` (in this namespace).
fn link_of(interface: &str) -> (Option<Ipv6Addr>, Option<[u8; 6]>) {
    let mut found = (None, None);
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return found;
    };
    for a in addrs.filter(|a| a.interface_name == interface) {
        let Some(address) = a.address else { continue };
        if let Some(link) = address.as_link_addr().and_then(|l| l.addr()) {
            found.1 = Some(link);
        }
        if let Some(v6) = address.as_sockaddr_in6() {
            if v6.ip().segments()[0] & 0xffc0 == 0xfe80 {
                found.0 = Some(v6.ip());
            }
        }
    }
    found
}

/// A raw ICMPv6 socket on `interface`, bound to its link-local address,
/// in the all-routers group (to hear solicitations); `None` while the
/// interface has no usable link-local address yet.
fn open(interface: &str, index: u32) -> std::io::Result<Option<Socket>> {
    let (Some(link_local), _) = link_of(interface) else {
        return Ok(None);
    };
    let socket = Socket::new(Domain::IPV6, Type::RAW, Some(Protocol::ICMPV6))?;
    socket.bind_device(Some(interface.as_bytes()))?;
    // RFC 4861 §6.1.2: receivers drop an RA whose hop limit is not 255.
    socket.set_multicast_hops_v6(255)?;
    socket.set_unicast_hops_v6(255)?;
    socket.set_multicast_if_v6(index)?;
    socket.set_multicast_loop_v6(false)?;
    // A tentative address cannot be bound (EADDRNOTAVAIL): try later.
    if socket
        .bind(&SockAddr::from(SocketAddrV6::new(link_local, 0, 0, index)))
        .is_err()
    {
        return Ok(None);
    }
    socket.join_multicast_v6(&Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2), index)?;
    Ok(Some(socket))
}

/// Advertises `config` on `interface` until the process is killed.
pub fn run(interface: &str, mut config: RaConfig) -> std::io::Result<()> {
    let index = nix::net::if_::if_nametoindex(interface).map_err(std::io::Error::from)?;
    let socket = loop {
        if let Some(socket) = open(interface, index)? {
            break socket;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if config.mac.is_none() {
        config.mac = link_of(interface).1;
    }
    let packet = build(&config).map_err(std::io::Error::other)?;
    let all_nodes = SockAddr::from(SocketAddrV6::new(
        Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1),
        0,
        0,
        index,
    ));
    println!("advertising on {interface} every {:?}", config.interval);
    let mut next = Instant::now();
    let mut last_sent = next;
    let mut buf = [0u8; 1500];
    loop {
        let now = Instant::now();
        if now >= next {
            if let Err(e) = socket.send_to(&packet, &all_nodes) {
                println!("send: {e}");
            }
            last_sent = now;
            next = now + config.interval;
        }
        socket.set_read_timeout(Some(
            next.saturating_duration_since(now)
                .max(Duration::from_millis(10)),
        ))?;
        match (&socket).read(&mut buf) {
            // A solicitation: answer at once, to all nodes (RFC 4861
            // §6.2.6 allows it); at most one extra RA a second.
            Ok(n) if n > 0 && buf[0] == ROUTER_SOLICITATION => {
                let soonest = (last_sent + Duration::from_secs(1)).max(Instant::now());
                next = next.min(soonest);
            }
            Ok(_) => {}
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> RaConfig {
        RaConfig {
            mac: Some([0x02, 0, 0, 0, 0, 0x01]),
            managed: false,
            other: false,
            router_lifetime: 1800,
            prefixes: vec!["2001:db8:10::".parse().expect("literal")],
            rdnss: vec!["2001:db8:10::1".parse().expect("literal")],
            dnssl: vec!["lab.test".to_owned()],
            pref64: Some(("2001:db8:64::".parse().expect("literal"), 96)),
            interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn the_advertisement_carries_every_option_in_rfc_layout() {
        let ra = build(&config()).expect("valid");
        // Header: type 134, code 0, checksum 0, hop limit 64, no flags,
        // lifetime 1800, reachable and retrans unspecified.
        assert_eq!(
            ra[..16],
            [134, 0, 0, 0, 64, 0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]
        );
        let mut options = Vec::new();
        let mut rest = &ra[16..];
        while !rest.is_empty() {
            let len = usize::from(rest[1]) * 8;
            options.push((rest[0], rest[..len].to_vec()));
            rest = &rest[len..];
        }
        let kinds: Vec<u8> = options.iter().map(|o| o.0).collect();
        assert_eq!(kinds, [1, 3, 25, 31, 38]);
        assert_eq!(options[0].1, [1, 1, 2, 0, 0, 0, 0, 1]);
        let pio = &options[1].1;
        assert_eq!(pio.len(), 32);
        assert_eq!(pio[2..4], [64, 0xc0]);
        assert_eq!(pio[16..20], [0x20, 0x01, 0x0d, 0xb8]);
        let rdnss = &options[2].1;
        assert_eq!(rdnss.len(), 24);
        assert_eq!(rdnss[4..8], 1800u32.to_be_bytes());
        assert_eq!(rdnss[23], 1);
        let dnssl = &options[3].1;
        assert_eq!(dnssl.len(), 24);
        assert_eq!(dnssl[8..18], *b"\x03lab\x04test\x00");
        // PREF64: length 2, scaled lifetime 225 (1800 s / 8), PLC 0 (/96),
        // then the first 96 bits of the prefix.
        let pref64 = &options[4].1;
        assert_eq!(pref64.len(), 16);
        assert_eq!(u16::from_be_bytes([pref64[2], pref64[3]]), 225 << 3);
        assert_eq!(pref64[4..10], [0x20, 0x01, 0x0d, 0xb8, 0x00, 0x64]);
        assert_eq!(pref64[10..16], [0; 6]);
    }

    #[test]
    fn flags_and_refusals() {
        let mut c = config();
        c.managed = true;
        c.other = true;
        assert_eq!(build(&c).expect("valid")[5], 0xc0);
        c.pref64 = Some(("2001:db8:64::".parse().expect("literal"), 80));
        assert_eq!(build(&c), Err(RaError::Pref64Length(80)));
        c.pref64 = None;
        c.dnssl = vec!["bad..name".to_owned()];
        assert_eq!(build(&c), Err(RaError::Domain("bad..name".to_owned())));
    }
}
