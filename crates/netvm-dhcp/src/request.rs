//! Reading client messages: a strict, checked view of the bytes of a
//! BOOTREQUEST (RFC 2131 section 2, RFC 2132) that yields a [`Request`] or
//! a [`DropReason`].
//!
//! We read requests ourselves rather than with dhcproto's decoder because
//! that decoder stops silently at the first option it cannot read and
//! trusts the lengths of fixed-size options; for the one parser in the
//! Internet-facing VM that any VM can feed, a silent partial read is a
//! misread. Here every option length is checked before a byte of it is
//! used, split options are joined (RFC 3396), the overload option (52) is
//! followed into `file` and `sname` at most once each, and nothing loops
//! or panics on any input. Replies are built with dhcproto (`reply`).

use netvm_description::values::MacAddr;
use std::net::Ipv4Addr;

/// Largest message accepted: an untagged Ethernet frame's UDP payload.
pub const MAX_MESSAGE: usize = 1500;

/// Fixed BOOTP header (236 bytes) plus the magic cookie.
const OPTIONS_AT: usize = 240;
const MAGIC_COOKIE: [u8; 4] = [99, 130, 83, 99];

/// The client message types a server acts on (option 53).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// DHCPDISCOVER (1).
    Discover,
    /// DHCPREQUEST (3).
    Request,
    /// DHCPDECLINE (4).
    Decline,
    /// DHCPRELEASE (7).
    Release,
    /// DHCPINFORM (8).
    Inform,
}

/// Why a message was dropped without an answer; counted by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than the fixed header and magic cookie.
    Truncated,
    /// Longer than [`MAX_MESSAGE`].
    Oversize,
    /// `op` is not BOOTREQUEST.
    NotRequest,
    /// `htype` is not Ethernet.
    WrongHardwareType,
    /// `hlen` is not 6.
    WrongHardwareLength,
    /// The magic cookie is wrong (plain BOOTP is not served).
    BadMagic,
    /// An option runs past its area or has a length its type forbids.
    BadOptionLength,
    /// Option 52 has a bad value.
    BadOverload,
    /// No message type (option 53).
    NoMessageType,
    /// A message type clients do not send (OFFER, ACK, NAK, or unknown).
    NotClientMessage,
    /// `giaddr` names a relay agent the description does not trust.
    Relayed,
    /// `chaddr` is not a unicast MAC.
    BadClientMac,
    /// Over the per-MAC request rate.
    RateLimited,
    /// Nothing left to offer (pool empty or `max_leases` reached).
    NoAddress,
    /// A REQUEST or DECLINE/RELEASE for another server, or for an
    /// address this server cannot account for.
    NotForUs,
}

impl DropReason {
    /// Every reason, for counters that list zeros too.
    pub const ALL: [DropReason; 15] = [
        DropReason::Truncated,
        DropReason::Oversize,
        DropReason::NotRequest,
        DropReason::WrongHardwareType,
        DropReason::WrongHardwareLength,
        DropReason::BadMagic,
        DropReason::BadOptionLength,
        DropReason::BadOverload,
        DropReason::NoMessageType,
        DropReason::NotClientMessage,
        DropReason::Relayed,
        DropReason::BadClientMac,
        DropReason::RateLimited,
        DropReason::NoAddress,
        DropReason::NotForUs,
    ];

    /// A stable snake_case name for counters and events.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Oversize => "oversize",
            DropReason::NotRequest => "not_request",
            DropReason::WrongHardwareType => "wrong_hardware_type",
            DropReason::WrongHardwareLength => "wrong_hardware_length",
            DropReason::BadMagic => "bad_magic",
            DropReason::BadOptionLength => "bad_option_length",
            DropReason::BadOverload => "bad_overload",
            DropReason::NoMessageType => "no_message_type",
            DropReason::NotClientMessage => "not_client_message",
            DropReason::Relayed => "relayed",
            DropReason::BadClientMac => "bad_client_mac",
            DropReason::RateLimited => "rate_limited",
            DropReason::NoAddress => "no_address",
            DropReason::NotForUs => "not_for_us",
        }
    }
}

/// Client FQDN option (81, RFC 4702) as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFqdn {
    /// The flags octet (S, O, E, N bits).
    pub flags: u8,
    /// The name as text (decoded from wire format when E is set).
    pub name: String,
}

/// A client message that passed every structural check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// Option 53.
    pub kind: MessageKind,
    /// Transaction id.
    pub xid: u32,
    /// The broadcast flag.
    pub broadcast: bool,
    /// `ciaddr`.
    pub ciaddr: Ipv4Addr,
    /// `giaddr`: the relay agent, when relayed.
    pub giaddr: Ipv4Addr,
    /// `chaddr` (first six octets).
    pub chaddr: MacAddr,
    /// Option 61, client identifier.
    pub client_id: Option<Vec<u8>>,
    /// Option 50, requested IP address.
    pub requested_ip: Option<Ipv4Addr>,
    /// Option 54, server identifier.
    pub server_id: Option<Ipv4Addr>,
    /// Option 12, host name (raw text, not yet sanitised).
    pub hostname: Option<String>,
    /// Option 81.
    pub fqdn: Option<ClientFqdn>,
    /// Option 55, parameter request list, in the client's order.
    pub parameters: Vec<u8>,
    /// Option 57, when 576 or more.
    pub max_message_size: Option<u16>,
    /// Option 80 present.
    pub rapid_commit: bool,
}

/// Option codes this parser reads.
mod code {
    pub const PAD: u8 = 0;
    pub const HOSTNAME: u8 = 12;
    pub const REQUESTED_IP: u8 = 50;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETERS: u8 = 55;
    pub const MAX_SIZE: u8 = 57;
    pub const CLIENT_ID: u8 = 61;
    pub const RAPID_COMMIT: u8 = 80;
    pub const FQDN: u8 = 81;
    pub const END: u8 = 255;
}

/// The values of the options we read, each joined across its pieces.
struct Options {
    values: [Option<Vec<u8>>; 256],
}

impl Default for Options {
    fn default() -> Self {
        Options {
            values: [const { None }; 256],
        }
    }
}

impl Options {
    fn get(&self, code: u8) -> Option<&[u8]> {
        self.values[usize::from(code)].as_deref()
    }

    /// Walks one option area (RFC 2132 section 2).
    fn read_area(&mut self, area: &[u8]) -> Result<(), DropReason> {
        let mut at = 0;
        while at < area.len() {
            let code = area[at];
            match code {
                code::PAD => {
                    at += 1;
                    continue;
                }
                code::END => return Ok(()),
                _ => {}
            }
            let len = usize::from(*area.get(at + 1).ok_or(DropReason::BadOptionLength)?);
            let value = area
                .get(at + 2..at + 2 + len)
                .ok_or(DropReason::BadOptionLength)?;
            self.values[usize::from(code)]
                .get_or_insert_with(Vec::new)
                .extend_from_slice(value);
            at += 2 + len;
        }
        Ok(())
    }
}

fn exact<const N: usize>(value: Option<&[u8]>) -> Result<Option<[u8; N]>, DropReason> {
    value
        .map(|v| v.try_into().map_err(|_| DropReason::BadOptionLength))
        .transpose()
}

fn at_least(value: Option<&[u8]>, min: usize) -> Result<Option<&[u8]>, DropReason> {
    match value {
        Some(v) if v.len() < min => Err(DropReason::BadOptionLength),
        other => Ok(other),
    }
}

fn ip(bytes: &[u8]) -> Ipv4Addr {
    let mut octets = [0u8; 4];
    octets.copy_from_slice(&bytes[..4]);
    Ipv4Addr::from(octets)
}

/// Reads a client message; never panics.
pub fn parse(bytes: &[u8]) -> Result<Request, DropReason> {
    if bytes.len() > MAX_MESSAGE {
        return Err(DropReason::Oversize);
    }
    if bytes.len() < OPTIONS_AT {
        return Err(DropReason::Truncated);
    }
    if bytes[0] != 1 {
        return Err(DropReason::NotRequest);
    }
    if bytes[1] != 1 {
        return Err(DropReason::WrongHardwareType);
    }
    if bytes[2] != 6 {
        return Err(DropReason::WrongHardwareLength);
    }
    if bytes[236..240] != MAGIC_COOKIE {
        return Err(DropReason::BadMagic);
    }
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&bytes[28..34]);
    let chaddr = MacAddr(mac);
    if chaddr.is_multicast() || chaddr.is_zero() {
        return Err(DropReason::BadClientMac);
    }

    let mut options = Options::default();
    options.read_area(&bytes[OPTIONS_AT..])?;
    // Option overload (RFC 2132 section 9.3): 1 = file, 2 = sname, 3 = both.
    // Each area is read once; an overload option inside them is ignored.
    if let Some(overload) = exact::<1>(options.get(code::OVERLOAD))? {
        let (file, sname) = match overload[0] {
            1 => (true, false),
            2 => (false, true),
            3 => (true, true),
            _ => return Err(DropReason::BadOverload),
        };
        if file {
            options.read_area(&bytes[108..236])?;
        }
        if sname {
            options.read_area(&bytes[44..108])?;
        }
    }

    let kind = match exact::<1>(options.get(code::MESSAGE_TYPE))? {
        None => return Err(DropReason::NoMessageType),
        Some([1]) => MessageKind::Discover,
        Some([3]) => MessageKind::Request,
        Some([4]) => MessageKind::Decline,
        Some([7]) => MessageKind::Release,
        Some([8]) => MessageKind::Inform,
        Some(_) => return Err(DropReason::NotClientMessage),
    };
    let fqdn = at_least(options.get(code::FQDN), 3)?.map(|v| ClientFqdn {
        flags: v[0],
        name: fqdn_name(v[0], &v[3..]),
    });
    Ok(Request {
        kind,
        xid: u32::from_be_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]),
        broadcast: bytes[10] & 0x80 != 0,
        ciaddr: ip(&bytes[12..16]),
        giaddr: ip(&bytes[24..28]),
        chaddr,
        client_id: at_least(options.get(code::CLIENT_ID), 2)?.map(<[u8]>::to_vec),
        requested_ip: exact::<4>(options.get(code::REQUESTED_IP))?.map(Ipv4Addr::from),
        server_id: exact::<4>(options.get(code::SERVER_ID))?.map(Ipv4Addr::from),
        hostname: at_least(options.get(code::HOSTNAME), 1)?
            .map(|v| String::from_utf8_lossy(v).into_owned()),
        fqdn,
        parameters: options.get(code::PARAMETERS).unwrap_or_default().to_vec(),
        max_message_size: exact::<2>(options.get(code::MAX_SIZE))?
            .map(u16::from_be_bytes)
            .filter(|size| *size >= 576),
        rapid_commit: match options.get(code::RAPID_COMMIT) {
            None => false,
            Some([]) => true,
            Some(_) => return Err(DropReason::BadOptionLength),
        },
    })
}

/// The name in an FQDN option: DNS wire format when the E bit (0x04) is
/// set, ASCII otherwise (RFC 4702 section 2.3). Unreadable names give "".
fn fqdn_name(flags: u8, raw: &[u8]) -> String {
    if flags & 0x04 == 0 {
        return String::from_utf8_lossy(raw).into_owned();
    }
    let mut labels = Vec::new();
    let mut at = 0;
    while let Some(&len) = raw.get(at) {
        if len == 0 {
            break;
        }
        // Compression pointers (0xc0) are not allowed here (RFC 4702).
        let Some(label) = raw
            .get(at + 1..at + 1 + usize::from(len))
            .filter(|_| len < 64)
        else {
            return String::new();
        };
        labels.push(String::from_utf8_lossy(label).into_owned());
        at += 1 + usize::from(len);
    }
    labels.join(".")
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid DISCOVER with the given extra options.
    pub(crate) fn discover(extra: &[u8]) -> Vec<u8> {
        let mut bytes = vec![0u8; OPTIONS_AT];
        bytes[0] = 1;
        bytes[1] = 1;
        bytes[2] = 6;
        bytes[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        bytes[28..34].copy_from_slice(&[0x02, 0, 0, 0, 0, 0x42]);
        bytes[236..240].copy_from_slice(&MAGIC_COOKIE);
        bytes.extend_from_slice(&[53, 1, 1]);
        bytes.extend_from_slice(extra);
        bytes.push(255);
        bytes
    }

    #[test]
    fn reads_a_discover() {
        let request = parse(&discover(&[55, 3, 1, 3, 6, 12, 3, b'p', b'c', b'1'])).expect("valid");
        assert_eq!(request.kind, MessageKind::Discover);
        assert_eq!(request.xid, 0x1234_5678);
        assert_eq!(request.chaddr.to_string(), "02:00:00:00:00:42");
        assert_eq!(request.parameters, [1, 3, 6]);
        assert_eq!(request.hostname.as_deref(), Some("pc1"));
    }

    #[test]
    fn structural_defects_have_named_reasons() {
        let valid = discover(&[]);
        let mut cases: Vec<(Vec<u8>, DropReason)> = vec![
            (valid[..100].to_vec(), DropReason::Truncated),
            (vec![0u8; MAX_MESSAGE + 1], DropReason::Oversize),
            (discover(&[50, 3, 10, 0, 0]), DropReason::BadOptionLength),
            (discover(&[12, 200]), DropReason::BadOptionLength),
            (discover(&[52, 1, 9]), DropReason::BadOverload),
            (discover(&[80, 1, 0]), DropReason::BadOptionLength),
            (discover(&[81, 2, 0, 0]), DropReason::BadOptionLength),
        ];
        let mut edit = |at: usize, value: u8, reason| {
            let mut bytes = valid.clone();
            bytes[at] = value;
            cases.push((bytes, reason));
        };
        edit(0, 2, DropReason::NotRequest);
        edit(1, 6, DropReason::WrongHardwareType);
        edit(2, 16, DropReason::WrongHardwareLength);
        edit(236, 0, DropReason::BadMagic);
        edit(28, 0x01, DropReason::BadClientMac);
        edit(OPTIONS_AT + 2, 2, DropReason::NotClientMessage);
        edit(OPTIONS_AT, 0, DropReason::NoMessageType);
        for (bytes, reason) in cases {
            assert_eq!(parse(&bytes), Err(reason));
        }
    }

    #[test]
    fn split_options_are_joined_and_overload_is_followed_once() {
        let mut bytes = discover(&[12, 2, b'a', b'b', 12, 1, b'c', 52, 1, 1]);
        // The file field holds the client id and another overload option.
        bytes[108..115].copy_from_slice(&[61, 3, 1, 2, 3, 52, 1]);
        bytes[115] = 3;
        bytes[116] = 255;
        let request = parse(&bytes).expect("valid");
        assert_eq!(request.hostname.as_deref(), Some("abc"));
        assert_eq!(request.client_id, Some(vec![1, 2, 3]));
    }

    #[test]
    fn fqdn_in_wire_format() {
        let request = parse(&discover(&[
            81, 11, 0x05, 0, 0, 3, b'p', b'c', b'1', 2, b'a', b'b', 0,
        ]))
        .expect("valid");
        assert_eq!(request.fqdn.map(|f| f.name).as_deref(), Some("pc1.ab"));
    }
}
