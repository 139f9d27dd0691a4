//! Reading client messages: a strict, checked view of a DHCPv6 message
//! (RFC 8415 section 8, options section 21) that yields a
//! [`ClientMessage`] or a [`DropReason`].
//!
//! We read requests ourselves rather than with dhcproto's decoder because
//! that decoder stops silently at the first option it cannot read and
//! subtracts from option lengths it has not checked (a Status Code,
//! Authentication or Vendor option shorter than its fixed part underflows);
//! for a parser that any VM can feed, a silent partial read is a misread
//! and an underflow is a panic. Here every option length is checked before
//! a byte of it is used, the options inside IA_NA, IA_TA, IA_PD and
//! IA Address are walked with the same rules, and nothing loops or panics
//! on any input. Replies are built with dhcproto (`reply`).
//!
//! Only what the server acts on is kept: the identifiers, the IAs (their
//! IAID and, for IA_NA, the addresses the client names), Rapid Commit and
//! the Option Request option. Other options are checked for their length
//! and skipped.

use std::net::Ipv6Addr;

/// Largest message accepted: an untagged Ethernet frame's UDP payload
/// (1500 less the IPv6 and UDP headers).
pub const MAX_MESSAGE: usize = 1452;

/// At most this many IA options (IA_NA, IA_TA and IA_PD together) in one
/// message; a reply answers each, so this bounds the reply too.
pub const MAX_IAS: usize = 8;

/// At most this many IA Address options in one IA_NA.
pub const MAX_ADDRESSES: usize = 8;

/// The shortest DUID: a two-octet type and at least one octet
/// (RFC 8415 section 11.1).
const MIN_DUID: usize = 3;
/// The longest DUID: 128 octets and the type (section 11.1).
const MAX_DUID: usize = 130;

/// Option codes we read (RFC 8415 section 21).
mod code {
    pub const CLIENT_ID: u16 = 1;
    pub const SERVER_ID: u16 = 2;
    pub const IA_NA: u16 = 3;
    pub const IA_TA: u16 = 4;
    pub const IA_ADDR: u16 = 5;
    pub const ORO: u16 = 6;
    pub const ELAPSED_TIME: u16 = 8;
    pub const RAPID_COMMIT: u16 = 14;
    pub const IA_PD: u16 = 25;
    pub const IA_PREFIX: u16 = 26;
}

/// The client message types a server acts on (section 7.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// SOLICIT (1).
    Solicit,
    /// REQUEST (3).
    Request,
    /// CONFIRM (4).
    Confirm,
    /// RENEW (5).
    Renew,
    /// REBIND (6).
    Rebind,
    /// RELEASE (8).
    Release,
    /// DECLINE (9).
    Decline,
    /// INFORMATION-REQUEST (11).
    InformationRequest,
}

impl MessageKind {
    /// Every kind, for counters.
    pub const ALL: [MessageKind; 8] = [
        MessageKind::Solicit,
        MessageKind::Request,
        MessageKind::Confirm,
        MessageKind::Renew,
        MessageKind::Rebind,
        MessageKind::Release,
        MessageKind::Decline,
        MessageKind::InformationRequest,
    ];

    /// The counter name.
    pub fn name(self) -> &'static str {
        match self {
            MessageKind::Solicit => "solicit",
            MessageKind::Request => "request",
            MessageKind::Confirm => "confirm",
            MessageKind::Renew => "renew",
            MessageKind::Rebind => "rebind",
            MessageKind::Release => "release",
            MessageKind::Decline => "decline",
            MessageKind::InformationRequest => "information_request",
        }
    }
}

/// Why a message was dropped without an answer; counted by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DropReason {
    /// Shorter than the four-octet header.
    Truncated,
    /// Longer than [`MAX_MESSAGE`].
    Oversize,
    /// The frame's source MAC is a group address.
    GroupSourceMac,
    /// A type only servers send (Advertise, Reply, Reconfigure,
    /// Relay-reply).
    ServerMessage,
    /// Relay-forward: we serve our own link only, never through a relay.
    Relayed,
    /// A type we do not serve (leasequery, DHCPv4-over-DHCPv6, unknown).
    UnknownType,
    /// An option's length runs past its container, or is not what its
    /// code requires.
    BadOption,
    /// A Client or Server Identifier shorter or longer than a DUID can be.
    BadDuid,
    /// The same identifier twice, or the same IAID twice in one IA type.
    DuplicateOption,
    /// More than [`MAX_IAS`] IA options or [`MAX_ADDRESSES`] addresses in
    /// an IA_NA.
    TooManyIas,
    /// No Client Identifier where section 16 requires one.
    MissingClientId,
    /// A Server Identifier where section 16 forbids one.
    UnexpectedServerId,
    /// No Server Identifier where section 16 requires one.
    MissingServerId,
    /// A Server Identifier that is not ours: meant for another server.
    OtherServer,
    /// An Information-request carrying an IA option (section 16.12).
    UnexpectedIa,
    /// A Confirm naming no address: nothing to confirm (section 18.3.3).
    NothingToConfirm,
    /// The reply could not be encoded.
    Encode,
}

impl DropReason {
    /// Every reason, for counters that start at zero.
    pub const ALL: [DropReason; 17] = [
        DropReason::Truncated,
        DropReason::Oversize,
        DropReason::GroupSourceMac,
        DropReason::ServerMessage,
        DropReason::Relayed,
        DropReason::UnknownType,
        DropReason::BadOption,
        DropReason::BadDuid,
        DropReason::DuplicateOption,
        DropReason::TooManyIas,
        DropReason::MissingClientId,
        DropReason::UnexpectedServerId,
        DropReason::MissingServerId,
        DropReason::OtherServer,
        DropReason::UnexpectedIa,
        DropReason::NothingToConfirm,
        DropReason::Encode,
    ];

    /// The counter name.
    pub fn name(self) -> &'static str {
        match self {
            DropReason::Truncated => "truncated",
            DropReason::Oversize => "oversize",
            DropReason::GroupSourceMac => "group_source_mac",
            DropReason::ServerMessage => "server_message",
            DropReason::Relayed => "relayed",
            DropReason::UnknownType => "unknown_type",
            DropReason::BadOption => "bad_option",
            DropReason::BadDuid => "bad_duid",
            DropReason::DuplicateOption => "duplicate_option",
            DropReason::TooManyIas => "too_many_ias",
            DropReason::MissingClientId => "missing_client_id",
            DropReason::UnexpectedServerId => "unexpected_server_id",
            DropReason::MissingServerId => "missing_server_id",
            DropReason::OtherServer => "other_server",
            DropReason::UnexpectedIa => "unexpected_ia",
            DropReason::NothingToConfirm => "nothing_to_confirm",
            DropReason::Encode => "encode",
        }
    }
}

/// An IA_NA as the client sent it (section 21.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IaNa {
    /// IAID.
    pub iaid: u32,
    /// The addresses of its IA Address options (section 21.6).
    pub addresses: Vec<Ipv6Addr>,
}

/// A client message, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientMessage {
    /// msg-type.
    pub kind: MessageKind,
    /// transaction-id.
    pub xid: [u8; 3],
    /// Client Identifier (a DUID).
    pub client_id: Option<Vec<u8>>,
    /// Server Identifier (a DUID).
    pub server_id: Option<Vec<u8>>,
    /// IA_NA options, in order.
    pub ia_na: Vec<IaNa>,
    /// IAIDs of IA_TA options.
    pub ia_ta: Vec<u32>,
    /// IAIDs of IA_PD options.
    pub ia_pd: Vec<u32>,
    /// Whether Rapid Commit (section 21.14) is present.
    pub rapid_commit: bool,
    /// The options requested (section 21.7).
    pub oro: Vec<u16>,
}

impl ClientMessage {
    /// Whether any IA option is present.
    pub fn has_ia(&self) -> bool {
        !(self.ia_na.is_empty() && self.ia_ta.is_empty() && self.ia_pd.is_empty())
    }

    /// Applies RFC 8415 section 16: which identifiers each type must and
    /// must not carry. `ours` is our DUID.
    pub fn check_identifiers(&self, ours: &[u8]) -> Result<(), DropReason> {
        use MessageKind as K;
        let client_required = !matches!(self.kind, K::InformationRequest);
        if client_required && self.client_id.is_none() {
            return Err(DropReason::MissingClientId);
        }
        match (self.kind, &self.server_id) {
            (K::Solicit | K::Confirm | K::Rebind, Some(_)) => Err(DropReason::UnexpectedServerId),
            (K::Request | K::Renew | K::Release | K::Decline, None) => {
                Err(DropReason::MissingServerId)
            }
            (_, Some(id)) if id.as_slice() != ours => Err(DropReason::OtherServer),
            (K::InformationRequest, _) if self.has_ia() => Err(DropReason::UnexpectedIa),
            _ => Ok(()),
        }
    }
}

/// The type octet: ours to serve, or why not.
fn kind_of(msg_type: u8) -> Result<MessageKind, DropReason> {
    Ok(match msg_type {
        1 => MessageKind::Solicit,
        3 => MessageKind::Request,
        4 => MessageKind::Confirm,
        5 => MessageKind::Renew,
        6 => MessageKind::Rebind,
        8 => MessageKind::Release,
        9 => MessageKind::Decline,
        11 => MessageKind::InformationRequest,
        2 | 7 | 10 | 13 => return Err(DropReason::ServerMessage),
        12 => return Err(DropReason::Relayed),
        _ => return Err(DropReason::UnknownType),
    })
}

/// Walks the options in `area`: each as (code, data), or
/// [`DropReason::BadOption`] when a header or its data runs past the end.
struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<(u16, &'a [u8]), DropReason>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let parsed = match self.rest {
            [c0, c1, l0, l1, rest @ ..] => {
                let len = usize::from(u16::from_be_bytes([*l0, *l1]));
                if len <= rest.len() {
                    let (data, after) = rest.split_at(len);
                    Ok((u16::from_be_bytes([*c0, *c1]), data, after))
                } else {
                    Err(DropReason::BadOption)
                }
            }
            _ => Err(DropReason::BadOption),
        };
        match parsed {
            Ok((code, data, after)) => {
                self.rest = after;
                Some(Ok((code, data)))
            }
            Err(reason) => {
                self.rest = &[];
                Some(Err(reason))
            }
        }
    }
}

fn options(area: &[u8]) -> Options<'_> {
    Options { rest: area }
}

fn u32_at(data: &[u8], at: usize) -> Option<u32> {
    let bytes = data.get(at..at + 4)?;
    Some(u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]))
}

/// Checks the lengths of every option in `area` and of the options
/// inside any IA Address or IA Prefix in it, without keeping anything.
fn check_nested(area: &[u8]) -> Result<(), DropReason> {
    for option in options(area) {
        let (code, data) = option?;
        match code {
            code::IA_ADDR => {
                let inner = data.get(24..).ok_or(DropReason::BadOption)?;
                check_flat(inner)?;
            }
            code::IA_PREFIX => {
                let inner = data.get(25..).ok_or(DropReason::BadOption)?;
                check_flat(inner)?;
            }
            _ => {}
        }
    }
    Ok(())
}

fn check_flat(area: &[u8]) -> Result<(), DropReason> {
    options(area).try_for_each(|o| o.map(|_| ()))
}

/// An IA_NA's data (section 21.4): IAID, T1, T2, then options.
fn ia_na(data: &[u8]) -> Result<IaNa, DropReason> {
    let iaid = u32_at(data, 0).ok_or(DropReason::BadOption)?;
    let inner = data.get(12..).ok_or(DropReason::BadOption)?;
    check_nested(inner)?;
    let mut addresses = Vec::new();
    for option in options(inner) {
        let (code, data) = option?;
        if code == code::IA_ADDR {
            // address, preferred-lifetime, valid-lifetime, options: the
            // length was checked by `check_nested`.
            let octets: [u8; 16] = data
                .get(..16)
                .and_then(|a| a.try_into().ok())
                .ok_or(DropReason::BadOption)?;
            if addresses.len() == MAX_ADDRESSES {
                return Err(DropReason::TooManyIas);
            }
            addresses.push(Ipv6Addr::from(octets));
        }
    }
    Ok(IaNa { iaid, addresses })
}

fn duid(data: &[u8]) -> Result<Vec<u8>, DropReason> {
    if (MIN_DUID..=MAX_DUID).contains(&data.len()) {
        Ok(data.to_vec())
    } else {
        Err(DropReason::BadDuid)
    }
}

/// Reads a client message (the UDP payload).
pub fn parse(bytes: &[u8]) -> Result<ClientMessage, DropReason> {
    if bytes.len() > MAX_MESSAGE {
        return Err(DropReason::Oversize);
    }
    let [msg_type, x0, x1, x2, area @ ..] = bytes else {
        return Err(DropReason::Truncated);
    };
    let kind = kind_of(*msg_type)?;
    let mut message = ClientMessage {
        kind,
        xid: [*x0, *x1, *x2],
        client_id: None,
        server_id: None,
        ia_na: Vec::new(),
        ia_ta: Vec::new(),
        ia_pd: Vec::new(),
        rapid_commit: false,
        oro: Vec::new(),
    };
    let mut ias = 0usize;
    for option in options(area) {
        let (code, data) = option?;
        match code {
            code::CLIENT_ID | code::SERVER_ID => {
                let slot = if code == code::CLIENT_ID {
                    &mut message.client_id
                } else {
                    &mut message.server_id
                };
                if slot.is_some() {
                    return Err(DropReason::DuplicateOption);
                }
                *slot = Some(duid(data)?);
            }
            code::IA_NA | code::IA_TA | code::IA_PD => {
                ias += 1;
                if ias > MAX_IAS {
                    return Err(DropReason::TooManyIas);
                }
                match code {
                    code::IA_NA => {
                        let ia = ia_na(data)?;
                        if message.ia_na.iter().any(|other| other.iaid == ia.iaid) {
                            return Err(DropReason::DuplicateOption);
                        }
                        message.ia_na.push(ia);
                    }
                    code::IA_TA => {
                        let iaid = u32_at(data, 0).ok_or(DropReason::BadOption)?;
                        check_nested(data.get(4..).ok_or(DropReason::BadOption)?)?;
                        if message.ia_ta.contains(&iaid) {
                            return Err(DropReason::DuplicateOption);
                        }
                        message.ia_ta.push(iaid);
                    }
                    _ => {
                        let iaid = u32_at(data, 0).ok_or(DropReason::BadOption)?;
                        check_nested(data.get(12..).ok_or(DropReason::BadOption)?)?;
                        if message.ia_pd.contains(&iaid) {
                            return Err(DropReason::DuplicateOption);
                        }
                        message.ia_pd.push(iaid);
                    }
                }
            }
            code::ORO => {
                if data.len() % 2 != 0 {
                    return Err(DropReason::BadOption);
                }
                message.oro = data
                    .chunks_exact(2)
                    .map(|c| u16::from_be_bytes([c[0], c[1]]))
                    .collect();
            }
            code::ELAPSED_TIME if data.len() != 2 => return Err(DropReason::BadOption),
            code::RAPID_COMMIT => {
                if !data.is_empty() {
                    return Err(DropReason::BadOption);
                }
                message.rapid_commit = true;
            }
            _ => {}
        }
    }
    Ok(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_by_name() {
        assert_eq!(parse(&[1, 0, 0]), Err(DropReason::Truncated));
        assert_eq!(parse(&[0; 2000]), Err(DropReason::Oversize));
        assert_eq!(parse(&[7, 0, 0, 0]), Err(DropReason::ServerMessage));
        assert_eq!(parse(&[12, 0, 0, 0]), Err(DropReason::Relayed));
        assert_eq!(parse(&[99, 0, 0, 0]), Err(DropReason::UnknownType));
        // An option whose length runs past the message.
        assert_eq!(
            parse(&[1, 0, 0, 0, 0, 1, 0, 9, 1]),
            Err(DropReason::BadOption)
        );
        // Half an option header.
        assert_eq!(parse(&[1, 0, 0, 0, 0, 1]), Err(DropReason::BadOption));
        // A one-octet DUID.
        assert_eq!(
            parse(&[1, 0, 0, 0, 0, 1, 0, 1, 5]),
            Err(DropReason::BadDuid)
        );
        // Two Client IDs.
        let id = [0, 1, 0, 3, 0, 3, 1];
        let twice = [&[1u8, 0, 0, 0][..], &id, &id].concat();
        assert_eq!(parse(&twice), Err(DropReason::DuplicateOption));
        // Rapid Commit with data; Elapsed Time of three octets.
        assert_eq!(
            parse(&[1, 0, 0, 0, 0, 14, 0, 1, 0]),
            Err(DropReason::BadOption)
        );
        assert_eq!(
            parse(&[1, 0, 0, 0, 0, 8, 0, 3, 0, 0, 0]),
            Err(DropReason::BadOption)
        );
        // An IA_NA shorter than its fixed part.
        assert_eq!(
            parse(&[1, 0, 0, 0, 0, 3, 0, 4, 0, 0, 0, 1]),
            Err(DropReason::BadOption)
        );
        // A Status Code inside an IA_NA whose length runs past the IA.
        let ia = [0, 3, 0, 16, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 13, 0, 9];
        assert_eq!(
            parse(&[&[1u8, 0, 0, 0][..], &ia].concat()),
            Err(DropReason::BadOption)
        );
    }

    #[test]
    fn identifiers_follow_section_16() {
        let ours = [0u8, 3, 0, 1, 2, 0, 0, 0, 0, 1];
        let mut message = ClientMessage {
            kind: MessageKind::Solicit,
            xid: [1, 2, 3],
            client_id: Some(vec![0, 3, 0, 1, 2, 0xaa, 0, 0, 0, 7]),
            server_id: None,
            ia_na: vec![IaNa {
                iaid: 1,
                addresses: vec![],
            }],
            ia_ta: vec![],
            ia_pd: vec![],
            rapid_commit: false,
            oro: vec![],
        };
        assert_eq!(message.check_identifiers(&ours), Ok(()));
        message.server_id = Some(ours.to_vec());
        assert_eq!(
            message.check_identifiers(&ours),
            Err(DropReason::UnexpectedServerId)
        );
        message.kind = MessageKind::Request;
        assert_eq!(message.check_identifiers(&ours), Ok(()));
        message.server_id = Some(vec![0, 3, 9]);
        assert_eq!(
            message.check_identifiers(&ours),
            Err(DropReason::OtherServer)
        );
        message.server_id = None;
        assert_eq!(
            message.check_identifiers(&ours),
            Err(DropReason::MissingServerId)
        );
        message.client_id = None;
        assert_eq!(
            message.check_identifiers(&ours),
            Err(DropReason::MissingClientId)
        );
        message.kind = MessageKind::InformationRequest;
        assert_eq!(
            message.check_identifiers(&ours),
            Err(DropReason::UnexpectedIa)
        );
        message.ia_na.clear();
        assert_eq!(message.check_identifiers(&ours), Ok(()));
    }
}
