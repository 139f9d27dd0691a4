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
//!
//! A message is malformed, and dropped with a named [`DropReason`], when
//! any option present (read or not) has a joined length its code's RFC
//! forbids ([`length_rule`]: fixed and minimum lengths, multiples), when
//! the option area or an overloaded `file`/`sname` has no END, when option
//! 52 appears inside `file` or `sname`, or when option 57 is below 576.
//! The flags' 15 reserved bits are ignored (RFC 2131 section 2). The UDP
//! source port is judged by the server (`Server::handle`).

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
    /// Option 52 inside `file` or `sname` (RFC 2132 section 9.3 allows it
    /// only in the option area).
    NestedOverload,
    /// An option area (or an overloaded `file`/`sname`) without END
    /// (RFC 2131 section 4.1, RFC 2132 section 3.2).
    MissingEnd,
    /// Option 57 below 576 (RFC 2132 section 9.10).
    SmallMaxMessageSize,
    /// Not from UDP port 68, nor from port 67 of a trusted relay agent
    /// (RFC 2131 section 4.1).
    WrongSourcePort,
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
    pub const ALL: [DropReason; 19] = [
        DropReason::Truncated,
        DropReason::Oversize,
        DropReason::NotRequest,
        DropReason::WrongHardwareType,
        DropReason::WrongHardwareLength,
        DropReason::BadMagic,
        DropReason::BadOptionLength,
        DropReason::BadOverload,
        DropReason::NestedOverload,
        DropReason::MissingEnd,
        DropReason::SmallMaxMessageSize,
        DropReason::WrongSourcePort,
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
            DropReason::NestedOverload => "nested_overload",
            DropReason::MissingEnd => "missing_end",
            DropReason::SmallMaxMessageSize => "small_max_message_size",
            DropReason::WrongSourcePort => "wrong_source_port",
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
    /// Option 57 (576 or more).
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

/// The values of every option present, each joined across its pieces
/// (RFC 3396: in the option area, then `file`, then `sname`).
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

/// Which area is being read: option 52 may only appear in the first.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Area {
    Options,
    Overloaded,
}

impl Options {
    fn get(&self, code: u8) -> Option<&[u8]> {
        self.values[usize::from(code)].as_deref()
    }

    /// Walks one option area (RFC 2132 section 2), which must end with
    /// END; what follows END is padding and is not read.
    fn read_area(&mut self, area: &[u8], which: Area) -> Result<(), DropReason> {
        let mut at = 0;
        while at < area.len() {
            let code = area[at];
            match code {
                code::PAD => {
                    at += 1;
                    continue;
                }
                code::END => return Ok(()),
                code::OVERLOAD if which == Area::Overloaded => {
                    return Err(DropReason::NestedOverload)
                }
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
        Err(DropReason::MissingEnd)
    }

    /// Checks every present option's joined length against its code's
    /// rule ([`length_rule`]).
    fn check_lengths(&self) -> Result<(), DropReason> {
        for (code, value) in (0..=u8::MAX).zip(self.values.iter()) {
            if let Some(value) = value {
                if !length_rule(code).allows(value.len()) {
                    return Err(DropReason::BadOptionLength);
                }
            }
        }
        Ok(())
    }
}

/// What lengths an option's (joined) value may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    /// No rule: any length, 0 included.
    Any,
    /// Exactly this many octets.
    Fixed(usize),
    /// At least this many octets.
    AtLeast(usize),
    /// `head` octets, then zero or more items of `item` octets, and at
    /// least `min` octets in all (a list of addresses: head 0, item 4,
    /// min 4).
    List {
        /// Octets before the items.
        head: usize,
        /// Octets per item.
        item: usize,
        /// Fewest octets.
        min: usize,
    },
}

impl Length {
    fn allows(self, len: usize) -> bool {
        match self {
            Length::Any => true,
            Length::Fixed(n) => len == n,
            Length::AtLeast(n) => len >= n,
            Length::List { head, item, min } => {
                len >= min && len >= head && (len - head).is_multiple_of(item)
            }
        }
    }
}

/// One or more IPv4 addresses.
const ADDRESSES: Length = Length::List {
    head: 0,
    item: 4,
    min: 4,
};

/// Pairs of IPv4 addresses (policy filters, static routes).
const ADDRESS_PAIRS: Length = Length::List {
    head: 0,
    item: 8,
    min: 8,
};

/// One or more 16-bit values.
const SHORTS: Length = Length::List {
    head: 0,
    item: 2,
    min: 2,
};

/// The length rule of an option code, from the RFC that defines it; the
/// rule applies to the value joined across its pieces (RFC 3396).
///
/// Codes no RFC gives a length (unassigned, the site-specific 224-254 of
/// RFC 3942, vendor and PXE codes 128-135) take any length, 0 included:
/// RFC 2131 section 4.3 asks servers to ignore options they do not know,
/// and a rule we made up would refuse a client that follows a future RFC.
/// Every length check here is on a code some RFC fixes.
fn length_rule(code: u8) -> Length {
    match code {
        // RFC 2132 section 3-9.
        1 | 2 | 16 | 24 | 28 | 32 | 35 | 38 | 50 | 51 | 54 | 58 | 59 => Length::Fixed(4),
        13 | 22 | 26 | 57 => Length::Fixed(2),
        19 | 20 | 23 | 27 | 29 | 30 | 31 | 34 | 36 | 37 | 39 | 46 | 52 | 53 => Length::Fixed(1),
        3..=11 | 41 | 42 | 44 | 45 | 48 | 49 | 65 | 69..=76 => ADDRESSES,
        21 | 33 => ADDRESS_PAIRS,
        25 => SHORTS,
        12 | 14 | 15 | 17 | 18 | 40 | 43 | 47 | 55 | 56 | 60 | 62 | 63 | 64 | 66 | 67 => {
            Length::AtLeast(1)
        }
        61 => Length::AtLeast(2),
        // Mobile IP home agents: "minimum length 0" (RFC 2132 section 8.13).
        68 => Length::List {
            head: 0,
            item: 4,
            min: 0,
        },
        // RFC 3004 user class; RFC 2610 SLP directory agent and scope. Windows
        // sends option 77 as plain text, so only "not empty" is asked.
        77 | 79 => Length::AtLeast(1),
        78 => Length::List {
            head: 1,
            item: 4,
            min: 1,
        },
        80 => Length::Fixed(0),                            // RFC 4039
        81 => Length::AtLeast(3),                          // RFC 4702
        82 => Length::AtLeast(2),                          // RFC 3046
        83 => Length::AtLeast(14),                         // RFC 4174
        85 | 89 | 92 | 136 | 138 | 142 | 150 => ADDRESSES, // RFC 2241, 4280, 4388, 5192, 5417, 6153, 5859
        86 | 87 | 88 | 98 | 100 | 101 | 114 | 119 | 120 | 137 | 141 | 145 | 161 | 209 | 210
        | 213 => Length::AtLeast(1), // RFC 2241, 4280, 2485, 4833, 8910, 3397, 3361, 5223, 6011, 6704, 8520, 5071, 5986
        90 => Length::AtLeast(11), // RFC 3118
        91 | 108 | 118 | 152..=155 | 159 | 208 | 211 => Length::Fixed(4), // RFC 4388, 8925, 3011, 6926, 7618, 5071
        93 | 117 => SHORTS,                                               // RFC 4578, 2937
        94 => Length::Fixed(3),                                           // RFC 4578
        97 => Length::Fixed(17),                                          // RFC 4578
        99 => Length::AtLeast(3),                                         // RFC 4776
        116 | 156 | 157 => Length::Fixed(1),                              // RFC 2563, 6926
        121 => Length::AtLeast(5),                                        // RFC 3442
        123 | 144 => Length::Fixed(16),                                   // RFC 6225
        124 | 125 => Length::AtLeast(5),                                  // RFC 3925
        158 => Length::AtLeast(5),                                        // RFC 7291
        212 => Length::List {
            head: 22,
            item: 4,
            min: 22,
        }, // RFC 5969
        _ => Length::Any,
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

/// Reads every option of a BOOTP message of at least [`OPTIONS_AT`]
/// bytes, joined across pieces and areas, and checks each one's length.
fn read_options(bytes: &[u8]) -> Result<Options, DropReason> {
    let mut options = Options::default();
    options.read_area(&bytes[OPTIONS_AT..], Area::Options)?;
    // Option overload (RFC 2132 section 9.3): 1 = file, 2 = sname, 3 = both.
    // Each area is read once, must end with END, and may not hold
    // another overload option.
    if let Some(overload) = exact::<1>(options.get(code::OVERLOAD))? {
        let (file, sname) = match overload[0] {
            1 => (true, false),
            2 => (false, true),
            3 => (true, true),
            _ => return Err(DropReason::BadOverload),
        };
        if file {
            options.read_area(&bytes[108..236], Area::Overloaded)?;
        }
        if sname {
            options.read_area(&bytes[44..108], Area::Overloaded)?;
        }
    }
    options.check_lengths()?;
    Ok(options)
}

/// Checks the option areas of any DHCP message, a server's reply as much
/// as a client's request, by the same rules as [`parse`]: every option
/// walks, every area ends with END, overload is read once and never
/// nested, and every option's value joined across its pieces (RFC 3396)
/// has a length its RFC allows. The uplink's client calls this before
/// handing a reply to a decoder that trusts those lengths.
pub fn check_options(bytes: &[u8]) -> Result<(), DropReason> {
    if bytes.len() < OPTIONS_AT {
        return Err(DropReason::Truncated);
    }
    if bytes[236..240] != MAGIC_COOKIE {
        return Err(DropReason::BadMagic);
    }
    read_options(bytes).map(|_| ())
}

/// Checks the option area the way a decoder that joins only
/// *consecutive* pieces of an option sees it (dhcproto 0.15: a PAD, END
/// or another code ends a run, a later run of the same code is decoded
/// on its own, and `file`/`sname` are never read): every run's joined
/// length must be one its code's RFC allows. [`check_options`] judges
/// the whole message as RFC 3396 joins it; a message that passes both
/// reads the same either way.
pub fn check_option_runs(bytes: &[u8]) -> Result<(), DropReason> {
    let area = bytes.get(OPTIONS_AT..).ok_or(DropReason::Truncated)?;
    let mut run: Option<(u8, usize)> = None;
    let mut at = 0;
    let end_run = |run: &mut Option<(u8, usize)>| match run.take() {
        Some((code, len)) if !length_rule(code).allows(len) => Err(DropReason::BadOptionLength),
        _ => Ok(()),
    };
    while let Some(&code) = area.get(at) {
        if code == code::PAD || code == code::END {
            end_run(&mut run)?;
            if code == code::END {
                return Ok(());
            }
            at += 1;
            continue;
        }
        let len = usize::from(*area.get(at + 1).ok_or(DropReason::BadOptionLength)?);
        if area.get(at + 2..at + 2 + len).is_none() {
            return Err(DropReason::BadOptionLength);
        }
        match &mut run {
            Some((current, total)) if *current == code => *total += len,
            _ => {
                end_run(&mut run)?;
                run = Some((code, len));
            }
        }
        at += 2 + len;
    }
    end_run(&mut run)?;
    Err(DropReason::MissingEnd)
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

    let options = read_options(bytes)?;

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
        max_message_size: match exact::<2>(options.get(code::MAX_SIZE))? {
            Some(size) if u16::from_be_bytes(size) < 576 => {
                return Err(DropReason::SmallMaxMessageSize)
            }
            size => size.map(u16::from_be_bytes),
        },
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
        edit(OPTIONS_AT, 0, DropReason::MissingEnd);
        let mut untyped = valid.clone();
        untyped[OPTIONS_AT..OPTIONS_AT + 3].fill(0);
        cases.push((untyped, DropReason::NoMessageType));
        for (bytes, reason) in cases {
            assert_eq!(parse(&bytes), Err(reason));
        }
    }

    #[test]
    fn split_options_are_joined_and_overload_is_followed_once() {
        let mut bytes = discover(&[12, 2, b'a', b'b', 12, 1, b'c', 52, 1, 1]);
        // The file field holds the client id.
        bytes[108..114].copy_from_slice(&[61, 3, 1, 2, 3, 255]);
        let request = parse(&bytes).expect("valid");
        assert_eq!(request.hostname.as_deref(), Some("abc"));
        assert_eq!(request.client_id, Some(vec![1, 2, 3]));
        // Another overload option inside `file` is refused, not ignored.
        bytes[113..117].copy_from_slice(&[52, 1, 3, 255]);
        assert_eq!(parse(&bytes), Err(DropReason::NestedOverload));
        // So is a `file` without END.
        bytes[108..128].fill(0);
        bytes[108..113].copy_from_slice(&[61, 3, 1, 2, 3]);
        assert_eq!(parse(&bytes), Err(DropReason::MissingEnd));
    }

    #[test]
    fn every_fixed_length_code_refuses_other_lengths() {
        for code in 1..=254u8 {
            let rule = length_rule(code);
            for len in 0..=20usize {
                let mut extra = vec![code, u8::try_from(len).expect("small")];
                // Values that pass the checks of the options we read.
                let fill = match code {
                    53 => 1,
                    52 => 0,
                    _ => 0xff,
                };
                extra.extend(std::iter::repeat_n(fill, len));
                let bytes = if code == 53 {
                    let mut b = discover(&[]);
                    b.truncate(OPTIONS_AT);
                    b.extend_from_slice(&extra);
                    b.push(255);
                    b
                } else {
                    discover(&extra)
                };
                let result = parse(&bytes);
                if !rule.allows(len) {
                    assert_eq!(result, Err(DropReason::BadOptionLength), "{code} {len}");
                } else {
                    assert_ne!(result, Err(DropReason::BadOptionLength), "{code} {len}");
                }
            }
        }
    }

    #[test]
    fn length_rules_of_well_known_codes() {
        use Length::*;
        for (code, ok, bad) in [
            (1u8, &[4usize][..], &[0usize, 3, 5, 8][..]),
            (3, &[4, 8, 12], &[0, 2, 5, 6]),
            (6, &[4, 8], &[0, 7]),
            (12, &[1, 63], &[0]),
            (26, &[2], &[0, 1, 4]),
            (33, &[8, 16], &[0, 4, 12]),
            (51, &[4], &[0, 8]),
            (55, &[1, 20], &[0]),
            (57, &[2], &[0, 1, 3]),
            (61, &[2, 7], &[0, 1]),
            (68, &[0, 4, 8], &[1, 5]),
            (78, &[1, 5, 9], &[0, 2]),
            (80, &[0], &[1]),
            (81, &[3, 20], &[0, 2]),
            (121, &[5, 8], &[0, 4]),
            (212, &[22, 26], &[0, 21, 23]),
            (224, &[0, 1, 255], &[]),
        ] {
            let rule = length_rule(code);
            assert_eq!(rule == Any, bad.is_empty(), "{code}");
            for len in ok {
                assert!(rule.allows(*len), "{code} {len}");
            }
            for len in bad {
                assert!(!rule.allows(*len), "{code} {len}");
            }
        }
    }

    #[test]
    fn option_area_needs_end_and_57_is_at_least_576() {
        let mut no_end = discover(&[12, 2, b'p', b'c']);
        no_end.pop();
        assert_eq!(parse(&no_end), Err(DropReason::MissingEnd));
        // END after padding is fine; what follows END is not read.
        let mut padded = discover(&[0, 0, 12, 2, b'p', b'c', 0]);
        padded.extend_from_slice(&[1, 2, 3]);
        assert!(parse(&padded).is_ok());
        assert_eq!(
            parse(&discover(&[57, 2, 2, 63])),
            Err(DropReason::SmallMaxMessageSize)
        );
        assert_eq!(
            parse(&discover(&[57, 2, 2, 64])).map(|r| r.max_message_size),
            Ok(Some(576))
        );
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
