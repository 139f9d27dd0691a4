//! Why a message was refused, or could not be written. Each reason is its
//! own variant so drivers count drops by reason.

use std::net::Ipv6Addr;

/// Why received bytes are not an acceptable Neighbor Discovery message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// It arrived with a hop limit other than 255: it was forwarded, or
    /// sent from off the link (RFC 4861 §6.1).
    #[error("hop limit {0}, not 255")]
    HopLimit(u8),
    /// A Router Advertisement from an address that is not link-local
    /// (RFC 4861 §6.1.2).
    #[error("source {0} is not link-local")]
    SourceNotLinkLocal(Ipv6Addr),
    /// A Router Solicitation from the unspecified address that carries a
    /// Source Link-Layer Address option (RFC 4861 §6.1.1).
    #[error("a solicitation from :: carries a link-layer address")]
    UnspecifiedWithLinkLayer,
    /// Shorter than the fixed part of the message.
    #[error("message is {0} bytes, shorter than its header")]
    Short(usize),
    /// Not the ICMPv6 type asked for.
    #[error("ICMPv6 type {0} is not the message expected")]
    Type(u8),
    /// ICMP code other than 0.
    #[error("ICMP code {0}, not 0")]
    Code(u8),
    /// Fewer than two bytes left where an option starts.
    #[error("an option header is cut short")]
    OptionHeader,
    /// An option of length 0 (RFC 4861 §4.6: the message is discarded).
    #[error("option {0} has length 0")]
    ZeroLengthOption(u8),
    /// An option longer than what is left of the message.
    #[error("option {0} runs past the end of the message")]
    TruncatedOption(u8),
    /// A known option whose length its RFC does not allow.
    #[error("option {kind} has length {len} (in 8-byte units), not allowed for it")]
    OptionLength {
        /// The option type.
        kind: u8,
        /// Its length field.
        len: u8,
    },
    /// A second Source Link-Layer Address or MTU option.
    #[error("option {0} appears twice")]
    DuplicateOption(u8),
    /// A prefix length over 128, or over what a Route Information option
    /// of that size can carry (RFC 4191 §2.3).
    #[error("prefix length {0} is not allowed here")]
    PrefixLength(u8),
    /// A DNSSL option whose names are not plain host names in DNS wire
    /// form (RFC 8106 §5.2), or that holds none.
    #[error("DNSSL option holds a malformed domain name")]
    Domain,
}

/// Why a message cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A prefix length over 128, or a route's over what its option allows.
    #[error("prefix length {0} is over 128")]
    PrefixLength(u8),
    /// A search domain that is not a host name (letters, digits and inner
    /// hyphens; labels of 1 to 63; at most 253 characters).
    #[error("search domain {0:?} is not a valid host name")]
    Domain(String),
    /// A PREF64 prefix length other than 32, 40, 48, 56, 64 or 96.
    #[error("NAT64 prefix length {0} cannot be advertised (32, 40, 48, 56, 64, 96)")]
    Pref64Length(u8),
}
