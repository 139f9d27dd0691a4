//! What a server sends the client, Advertise and Reply (RFC 8415 §16.3,
//! §16.10), read strictly from untrusted bytes: every option's length
//! must fit its container exactly, singular options appear once, and our
//! own IA_NA and IA_PD (by IAID) are read whole. A message that breaks
//! any of this is refused as a whole; only the DNS options (23, 24),
//! which carry no binding, are dropped alone when their content is bad.
//! No recursion beyond message -> IA -> IA option -> status, so no input
//! can exhaust the stack, and every loop consumes bytes.

use std::net::Ipv6Addr;

/// DHCPv6 message types the client reads (RFC 8415 §7.3).
const ADVERTISE: u8 = 2;
const REPLY: u8 = 7;

/// Option codes (RFC 8415 §21, RFC 3646).
const OPTION_CLIENTID: u16 = 1;
const OPTION_SERVERID: u16 = 2;
const OPTION_IA_NA: u16 = 3;
const OPTION_IAADDR: u16 = 5;
const OPTION_PREFERENCE: u16 = 7;
const OPTION_STATUS_CODE: u16 = 13;
const OPTION_DNS_SERVERS: u16 = 23;
const OPTION_DOMAIN_LIST: u16 = 24;
const OPTION_IA_PD: u16 = 25;
const OPTION_IAPREFIX: u16 = 26;
const OPTION_SOL_MAX_RT: u16 = 82;

/// At most this many DNS servers and search domains are kept.
pub(crate) const MAX_DNS: usize = 8;
/// See [`MAX_DNS`].
pub(crate) const MAX_SEARCH: usize = 8;

/// Why a server message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Shorter than the 4-byte header.
    Short,
    /// Neither Advertise nor Reply (Reconfigure, a client's message…).
    NotForClient(u8),
    /// An option header or body runs past its container.
    Truncated(u16),
    /// An option's length is wrong for its code.
    BadLength(u16),
    /// A singular option appears twice (or our IA does).
    Duplicate(u16),
    /// No Server Identifier (RFC 8415 §16.3, §16.10).
    NoServerId,
    /// No Client Identifier.
    NoClientId,
}

/// Whose message this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An Advertise (an answer to Solicit).
    Advertise,
    /// A Reply.
    Reply,
}

/// One IA Address (RFC 8415 §21.6) or IA Prefix (§21.22), as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The address, or the prefix.
    pub address: Ipv6Addr,
    /// The prefix length (128 for an address).
    pub len: u8,
    /// Preferred lifetime, seconds.
    pub preferred: u32,
    /// Valid lifetime, seconds.
    pub valid: u32,
    /// Its Status Code, 0 (Success) when absent.
    pub status: u16,
}

/// One of our IAs (RFC 8415 §21.4, §21.21), as sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ia {
    /// T1, seconds.
    pub t1: u32,
    /// T2, seconds.
    pub t2: u32,
    /// Its Status Code, 0 when absent.
    pub status: u16,
    /// Its addresses or prefixes.
    pub entries: Vec<Entry>,
}

/// A server message, with only what the client uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerMessage {
    /// Advertise or Reply.
    pub kind: Kind,
    /// The transaction id (24 bits).
    pub xid: u32,
    /// The Server Identifier (a DUID).
    pub server_id: Vec<u8>,
    /// The Client Identifier.
    pub client_id: Vec<u8>,
    /// The Preference option (§21.8), 0 when absent.
    pub preference: u8,
    /// The message's own Status Code, 0 when absent.
    pub status: u16,
    /// Our IA_NA; none when absent or discarded (T1 > T2, §21.4).
    pub na: Option<Ia>,
    /// Our IA_PD; likewise (§21.21).
    pub pd: Option<Ia>,
    /// DNS servers (RFC 3646 option 23), global unicast ones only.
    pub dns: Vec<Ipv6Addr>,
    /// Domain search list (option 24), lowercase, without the final dot.
    pub search: Vec<String>,
    /// SOL_MAX_RT (§21.24), seconds, when within 60..=86400.
    pub sol_max_rt: Option<u32>,
}

/// Options of a container, as (code, body) pairs; refused when one runs
/// past the end.
fn options(mut bytes: &[u8]) -> Result<Vec<(u16, &[u8])>, ParseError> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let [c0, c1, l0, l1, rest @ ..] = bytes else {
            return Err(ParseError::Truncated(0));
        };
        let code = u16::from_be_bytes([*c0, *c1]);
        let len = usize::from(u16::from_be_bytes([*l0, *l1]));
        if rest.len() < len {
            return Err(ParseError::Truncated(code));
        }
        let (body, next) = rest.split_at(len);
        out.push((code, body));
        bytes = next;
    }
    Ok(out)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut b = [0u8; 4];
    if let Some(s) = bytes.get(at..at + 4) {
        b.copy_from_slice(s);
    }
    u32::from_be_bytes(b)
}

fn ipv6_at(bytes: &[u8], at: usize) -> Ipv6Addr {
    let mut b = [0u8; 16];
    if let Some(s) = bytes.get(at..at + 16) {
        b.copy_from_slice(s);
    }
    Ipv6Addr::from(b)
}

/// A Status Code option's code (§21.13); the text is not kept.
fn status(body: &[u8]) -> Result<u16, ParseError> {
    match body {
        [a, b, ..] => Ok(u16::from_be_bytes([*a, *b])),
        _ => Err(ParseError::BadLength(OPTION_STATUS_CODE)),
    }
}

/// The Status Code among `opts`, at most one.
fn status_among(opts: &[(u16, &[u8])]) -> Result<u16, ParseError> {
    let mut found = None;
    for (code, body) in opts {
        if *code == OPTION_STATUS_CODE {
            if found.is_some() {
                return Err(ParseError::Duplicate(OPTION_STATUS_CODE));
            }
            found = Some(status(body)?);
        }
    }
    Ok(found.unwrap_or(0))
}

/// An IA_NA or IA_PD body whose IAID is ours; `None` when the IA is to be
/// discarded (T1 > T2 with both non-zero, RFC 8415 §21.4).
fn ia(code: u16, body: &[u8]) -> Result<Option<Ia>, ParseError> {
    if body.len() < 12 {
        return Err(ParseError::BadLength(code));
    }
    let (t1, t2) = (u32_at(body, 4), u32_at(body, 8));
    let opts = options(&body[12..])?;
    let (entry_code, fixed) = match code {
        OPTION_IA_NA => (OPTION_IAADDR, 24),
        _ => (OPTION_IAPREFIX, 25),
    };
    let mut entries = Vec::new();
    for (c, b) in &opts {
        if *c != entry_code {
            continue;
        }
        if b.len() < fixed {
            return Err(ParseError::BadLength(*c));
        }
        let inner = options(&b[fixed..])?;
        let entry = if code == OPTION_IA_NA {
            Entry {
                address: ipv6_at(b, 0),
                len: 128,
                preferred: u32_at(b, 16),
                valid: u32_at(b, 20),
                status: status_among(&inner)?,
            }
        } else {
            Entry {
                preferred: u32_at(b, 0),
                valid: u32_at(b, 4),
                len: b[8],
                address: ipv6_at(b, 9),
                status: status_among(&inner)?,
            }
        };
        entries.push(entry);
    }
    let status = status_among(&opts)?;
    if t1 > t2 && t2 > 0 {
        return Ok(None);
    }
    Ok(Some(Ia {
        t1,
        t2,
        status,
        entries,
    }))
}

/// Whether `address` may be a server's (DNS) or ours: not unspecified,
/// loopback, multicast or link-local.
pub(crate) fn is_usable(address: &Ipv6Addr) -> bool {
    !(address.is_unspecified()
        || address.is_loopback()
        || address.is_multicast()
        || address.is_unicast_link_local())
}

fn dns_servers(body: &[u8]) -> Vec<Ipv6Addr> {
    if !body.len().is_multiple_of(16) {
        return Vec::new();
    }
    let mut out: Vec<Ipv6Addr> = Vec::new();
    for at in (0..body.len()).step_by(16) {
        let address = ipv6_at(body, at);
        if is_usable(&address) && !out.contains(&address) && out.len() < MAX_DNS {
            out.push(address);
        }
    }
    out
}

/// Domain names in DNS wire format without compression (RFC 8415 §10):
/// labels of 1..=63 letters, digits, `-` or `_`, names of at most 255
/// bytes, each ended by the root label. Anything else drops the option.
fn search_list(mut body: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !body.is_empty() {
        let mut name = String::new();
        let mut wire = 0usize;
        loop {
            let Some((&len, rest)) = body.split_first() else {
                return Vec::new();
            };
            let len = usize::from(len);
            wire += len + 1;
            if len > 63 || wire > 255 || rest.len() < len {
                return Vec::new();
            }
            let (label, next) = rest.split_at(len);
            body = next;
            if len == 0 {
                break;
            }
            if !label
                .iter()
                .all(|c| c.is_ascii_alphanumeric() || *c == b'-' || *c == b'_')
            {
                return Vec::new();
            }
            if !name.is_empty() {
                name.push('.');
            }
            name.extend(label.iter().map(|c| char::from(c.to_ascii_lowercase())));
        }
        if name.is_empty() {
            return Vec::new();
        }
        if !out.contains(&name) && out.len() < MAX_SEARCH {
            out.push(name);
        }
    }
    out
}

/// Reads a server message; `na_id` and `pd_id` are our IAIDs (IAs with
/// other IAIDs are checked for shape only).
pub fn parse(bytes: &[u8], na_id: u32, pd_id: u32) -> Result<ServerMessage, ParseError> {
    let [kind, x0, x1, x2, rest @ ..] = bytes else {
        return Err(ParseError::Short);
    };
    let kind = match *kind {
        ADVERTISE => Kind::Advertise,
        REPLY => Kind::Reply,
        other => return Err(ParseError::NotForClient(other)),
    };
    let mut m = ServerMessage {
        kind,
        xid: u32::from_be_bytes([0, *x0, *x1, *x2]),
        server_id: Vec::new(),
        client_id: Vec::new(),
        preference: 0,
        status: 0,
        na: None,
        pd: None,
        dns: Vec::new(),
        search: Vec::new(),
        sol_max_rt: None,
    };
    let mut seen: Vec<u16> = Vec::new();
    let mut once = |code: u16| {
        if seen.contains(&code) {
            return Err(ParseError::Duplicate(code));
        }
        seen.push(code);
        Ok(())
    };
    for (code, body) in options(rest)? {
        match code {
            OPTION_CLIENTID | OPTION_SERVERID => {
                once(code)?;
                // A DUID: a 2-byte type and 1..=128 bytes (§11.1).
                if !(3..=130).contains(&body.len()) {
                    return Err(ParseError::BadLength(code));
                }
                if code == OPTION_CLIENTID {
                    m.client_id = body.to_vec();
                } else {
                    m.server_id = body.to_vec();
                }
            }
            OPTION_PREFERENCE => {
                once(code)?;
                let [pref] = body else {
                    return Err(ParseError::BadLength(code));
                };
                m.preference = *pref;
            }
            OPTION_STATUS_CODE => {
                once(code)?;
                m.status = status(body)?;
            }
            OPTION_IA_NA | OPTION_IA_PD => {
                if body.len() < 12 {
                    return Err(ParseError::BadLength(code));
                }
                let id = u32_at(body, 0);
                let ours = if code == OPTION_IA_NA { na_id } else { pd_id };
                if id != ours {
                    // Someone else's IA: its options must still fit.
                    options(&body[12..])?;
                    continue;
                }
                // The IA's code and IAID together must be unique.
                once(code | 0x8000)?;
                let parsed = ia(code, body)?;
                if code == OPTION_IA_NA {
                    m.na = parsed;
                } else {
                    m.pd = parsed;
                }
            }
            OPTION_DNS_SERVERS => {
                once(code)?;
                m.dns = dns_servers(body);
            }
            OPTION_DOMAIN_LIST => {
                once(code)?;
                m.search = search_list(body);
            }
            OPTION_SOL_MAX_RT => {
                once(code)?;
                if body.len() != 4 {
                    return Err(ParseError::BadLength(code));
                }
                let secs = u32_at(body, 0);
                m.sol_max_rt = (60..=86_400).contains(&secs).then_some(secs);
            }
            _ => {}
        }
    }
    if m.server_id.is_empty() {
        return Err(ParseError::NoServerId);
    }
    if m.client_id.is_empty() {
        return Err(ParseError::NoClientId);
    }
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opt(code: u16, body: &[u8]) -> Vec<u8> {
        let mut out = code.to_be_bytes().to_vec();
        out.extend_from_slice(&(body.len() as u16).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    fn message(kind: u8, opts: &[Vec<u8>]) -> Vec<u8> {
        let mut out = vec![kind, 1, 2, 3];
        for o in opts {
            out.extend_from_slice(o);
        }
        out
    }

    fn ids() -> Vec<Vec<u8>> {
        vec![
            opt(1, &[0, 3, 0, 1, 2, 0, 0, 0, 0, 1]),
            opt(2, &[0, 2, 0, 0, 9, 9]),
        ]
    }

    #[test]
    fn reads_a_reply_with_both_ias() {
        let mut iaaddr = "2001:db8::5"
            .parse::<Ipv6Addr>()
            .expect("an address")
            .octets()
            .to_vec();
        iaaddr.extend_from_slice(&[0, 0, 0, 50, 0, 0, 0, 100]);
        let mut na = vec![0, 0, 0, 1, 0, 0, 0, 20, 0, 0, 0, 30];
        na.extend(opt(5, &iaaddr));
        let mut iaprefix = vec![0, 0, 0, 50, 0, 0, 0, 100, 56];
        iaprefix.extend_from_slice(
            &"2001:db8:8000::"
                .parse::<Ipv6Addr>()
                .expect("an address")
                .octets(),
        );
        let mut pd = vec![0, 0, 0, 2, 0, 0, 0, 20, 0, 0, 0, 30];
        pd.extend(opt(26, &iaprefix));
        let mut opts = ids();
        opts.push(opt(3, &na));
        opts.push(opt(25, &pd));
        opts.push(opt(24, b"\x07example\x04test\x00\x03LAB\x00"));
        let m = parse(&message(7, &opts), 1, 2).expect("present");
        assert_eq!(m.kind, Kind::Reply);
        assert_eq!(m.xid, 0x010203);
        let na = m.na.expect("present");
        assert_eq!((na.t1, na.t2), (20, 30));
        assert_eq!(
            na.entries[0].address,
            "2001:db8::5".parse::<Ipv6Addr>().expect("an address")
        );
        assert_eq!((na.entries[0].preferred, na.entries[0].valid), (50, 100));
        let pd = m.pd.expect("present");
        assert_eq!(pd.entries[0].len, 56);
        assert_eq!(m.search, vec!["example.test", "lab"]);
    }

    #[test]
    fn refuses_broken_shapes() {
        assert_eq!(parse(&[7, 0, 0], 1, 2), Err(ParseError::Short));
        assert_eq!(
            parse(&message(10, &ids()), 1, 2),
            Err(ParseError::NotForClient(10))
        );
        let mut truncated = message(7, &ids());
        truncated.extend_from_slice(&[0, 23, 0, 16, 1]);
        assert_eq!(parse(&truncated, 1, 2), Err(ParseError::Truncated(23)));
        let mut twice = ids();
        twice.push(opt(2, &[0, 2, 0, 0, 9, 8]));
        assert_eq!(
            parse(&message(7, &twice), 1, 2),
            Err(ParseError::Duplicate(2))
        );
        assert_eq!(
            parse(&message(7, &ids()[..1]), 1, 2),
            Err(ParseError::NoServerId)
        );
        let mut short_ia = ids();
        short_ia.push(opt(25, &[0, 0, 0, 2]));
        assert_eq!(
            parse(&message(7, &short_ia), 1, 2),
            Err(ParseError::BadLength(25))
        );
    }

    #[test]
    fn an_ia_with_t1_past_t2_is_discarded() {
        let mut opts = ids();
        opts.push(opt(25, &[0, 0, 0, 2, 0, 0, 0, 30, 0, 0, 0, 20]));
        assert_eq!(parse(&message(7, &opts), 1, 2).expect("present").pd, None);
    }

    #[test]
    fn a_bad_search_list_or_dns_list_is_dropped_alone() {
        let mut opts = ids();
        opts.push(opt(24, b"\x07example\xc0\x0c"));
        opts.push(opt(23, &[0; 15]));
        let m = parse(&message(7, &opts), 1, 2).expect("present");
        assert!(m.search.is_empty());
        assert!(m.dns.is_empty());
        let mut opts = ids();
        opts.push(opt(24, b"\x03a b\x00"));
        assert!(parse(&message(7, &opts), 1, 2)
            .expect("present")
            .search
            .is_empty());
    }
}
