//! Neighbor Discovery options (RFC 4861 §4.6): walking them strictly, and
//! the DNS names of the DNSSL option (RFC 8106 §5.2).

use crate::error::ParseError;

/// Source Link-Layer Address (RFC 4861 §4.6.1).
pub(crate) const SOURCE_LL: u8 = 1;
/// Prefix Information (RFC 4861 §4.6.2).
pub(crate) const PREFIX_INFO: u8 = 3;
/// MTU (RFC 4861 §4.6.4).
pub(crate) const MTU: u8 = 5;
/// Route Information (RFC 4191 §2.3).
pub(crate) const ROUTE_INFO: u8 = 24;
/// Recursive DNS Server (RFC 8106 §5.1).
pub(crate) const RDNSS: u8 = 25;
/// DNS Search List (RFC 8106 §5.2).
pub(crate) const DNSSL: u8 = 31;
/// PREF64 (RFC 8781 §4).
pub(crate) const PREF64: u8 = 38;

/// Longest option: its length is one byte of 8-byte units.
pub(crate) const MAX_OPTION: usize = 255 * 8;

/// One option: its type, its length field and all its bytes (header
/// included, so offsets match the RFC figures).
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawOption<'a> {
    pub kind: u8,
    pub len: u8,
    pub bytes: &'a [u8],
}

/// The options of a message, in order; the first malformed one ends the
/// walk with its error (and nothing after it).
pub(crate) struct Options<'a> {
    rest: &'a [u8],
}

impl<'a> Options<'a> {
    pub fn new(bytes: &'a [u8]) -> Options<'a> {
        Options { rest: bytes }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = Result<RawOption<'a>, ParseError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let [kind, len, ..] = *rest else {
            return Some(Err(ParseError::OptionHeader));
        };
        if len == 0 {
            return Some(Err(ParseError::ZeroLengthOption(kind)));
        }
        let size = usize::from(len) * 8;
        let Some((bytes, after)) = rest.split_at_checked(size) else {
            return Some(Err(ParseError::TruncatedOption(kind)));
        };
        self.rest = after;
        Some(Ok(RawOption { kind, len, bytes }))
    }
}

/// Big-endian u32 at `at` (callers checked the length).
pub(crate) fn be32(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    if let Some(slice) = bytes.get(at..at + 4) {
        word.copy_from_slice(slice);
    }
    u32::from_be_bytes(word)
}

/// The 16 bytes at `at` as an address (callers checked the length).
pub(crate) fn addr(bytes: &[u8], at: usize) -> std::net::Ipv6Addr {
    let mut octets = [0u8; 16];
    if let Some(slice) = bytes.get(at..at + 16) {
        octets.copy_from_slice(slice);
    }
    octets.into()
}

/// Whether `label` is a host-name label: 1 to 63 letters, digits and
/// hyphens, not starting or ending with a hyphen (RFC 1123 §2.1).
fn label_ok(label: &[u8]) -> bool {
    (1..=63).contains(&label.len())
        && label
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        && label.first() != Some(&b'-')
        && label.last() != Some(&b'-')
}

/// Whether `domain` can be a DNSSL search domain: dot-separated host-name
/// labels, no trailing dot, at most 253 characters (255 in wire form).
pub fn validate_domain(domain: &str) -> bool {
    domain.len() <= 253 && domain.split('.').all(|l| label_ok(l.as_bytes()))
}

/// `domain` (valid) in DNS wire form: length-prefixed labels and a zero.
pub(crate) fn encode_name(domain: &str, out: &mut Vec<u8>) {
    for label in domain.split('.') {
        // Valid labels are at most 63 bytes.
        out.push(label.len() as u8);
        out.extend_from_slice(label.as_bytes());
    }
    out.push(0);
}

/// The names in a DNSSL option's name area: uncompressed names, each
/// ending with a zero label, then zero padding to the end (RFC 8106
/// §5.2). At least one name; every label a host-name label.
pub(crate) fn decode_names(area: &[u8]) -> Result<Vec<String>, ParseError> {
    let mut names = Vec::new();
    let mut at = 0;
    while let Some(&first) = area.get(at) {
        if first == 0 {
            // Padding: the rest is zero too.
            if area[at..].iter().any(|b| *b != 0) {
                return Err(ParseError::Domain);
            }
            break;
        }
        let mut name = String::new();
        let start = at;
        loop {
            let len = usize::from(*area.get(at).ok_or(ParseError::Domain)?);
            at += 1;
            if len == 0 {
                break;
            }
            // Compression pointers (top bits set) are over 63: refused.
            let label = area.get(at..at + len).ok_or(ParseError::Domain)?;
            if !label_ok(label) {
                return Err(ParseError::Domain);
            }
            if !name.is_empty() {
                name.push('.');
            }
            name.extend(label.iter().map(|b| char::from(*b)));
            at += len;
        }
        if at - start > 255 {
            return Err(ParseError::Domain);
        }
        names.push(name);
    }
    if names.is_empty() {
        return Err(ParseError::Domain);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_walk_strictly() {
        let two = [1, 1, 0, 0, 0, 0, 0, 0, 5, 1, 0, 0, 0, 0, 5, 220];
        let kinds: Vec<u8> = Options::new(&two).map(|o| o.expect("valid").kind).collect();
        assert_eq!(kinds, [1, 5]);
        let zero = [1, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            Options::new(&zero).next().expect("one").err(),
            Some(ParseError::ZeroLengthOption(1))
        );
        let cut = [3, 4, 0, 0];
        assert_eq!(
            Options::new(&cut).next().expect("one").err(),
            Some(ParseError::TruncatedOption(3))
        );
        assert_eq!(
            Options::new(&[7]).next().expect("one").err(),
            Some(ParseError::OptionHeader)
        );
        let mut after_error = Options::new(&zero);
        after_error.next();
        assert!(after_error.next().is_none(), "an error ends the walk");
    }

    #[test]
    fn domains_round_trip_and_bad_ones_are_refused() {
        let mut wire = Vec::new();
        encode_name("lab.example", &mut wire);
        encode_name("b-2.c", &mut wire);
        wire.extend([0, 0, 0]);
        assert_eq!(
            decode_names(&wire).expect("valid"),
            ["lab.example", "b-2.c"]
        );
        for bad in [
            &b"\x03a_b\x00"[..],  // underscore
            b"\x02-a\x00",        // leading hyphen
            b"\xc0\x0c",          // compression pointer
            b"\x03abc",           // no terminating zero
            b"\x01a\x00\x00\x01", // garbage in the padding
            b"\x00\x00\x00\x00",  // no name at all
        ] {
            assert_eq!(decode_names(bad), Err(ParseError::Domain), "{bad:?}");
        }
        assert!(validate_domain("netvm.internal"));
        for bad in ["", "a..b", "a.", "-a", "a b", &"a".repeat(64)] {
            assert!(!validate_domain(bad), "{bad:?}");
        }
    }
}
