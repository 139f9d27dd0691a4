//! ICMPv6 Router Solicitation (RFC 4861 §4.1): a host asking routers for
//! an advertisement now.
//!
//! ```text
//!  0       type 133 | code 0 | checksum
//!  4       reserved
//!  8       options...
//! ```

use crate::error::ParseError;
use crate::options::{self, Options};
use crate::{ND_HOP_LIMIT, ROUTER_SOLICIT};
use netvm_description::values::MacAddr;
use std::net::Ipv6Addr;

const HEADER: usize = 8;

/// A Router Solicitation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterSolicit {
    /// Source Link-Layer Address option (Ethernet); never present when
    /// sent from `::`.
    pub source_mac: Option<MacAddr>,
}

/// Reads a Router Solicitation received from `source` with hop limit
/// `hop_limit`, checking what RFC 4861 §6.1.1 asks except the checksum
/// (the kernel did): hop limit 255, code 0, options well formed, and no
/// link-layer address when sent from `::`. Unknown options are skipped.
pub fn parse_router_solicit(
    source: Ipv6Addr,
    hop_limit: u8,
    bytes: &[u8],
) -> Result<RouterSolicit, ParseError> {
    if hop_limit != ND_HOP_LIMIT {
        return Err(ParseError::HopLimit(hop_limit));
    }
    if bytes.len() < HEADER {
        return Err(ParseError::Short(bytes.len()));
    }
    if bytes[0] != ROUTER_SOLICIT {
        return Err(ParseError::Type(bytes[0]));
    }
    if bytes[1] != 0 {
        return Err(ParseError::Code(bytes[1]));
    }
    let mut solicit = RouterSolicit { source_mac: None };
    for option in Options::new(&bytes[HEADER..]) {
        let option = option?;
        if option.kind != options::SOURCE_LL {
            continue;
        }
        if option.len != 1 {
            return Err(ParseError::OptionLength {
                kind: option.kind,
                len: option.len,
            });
        }
        if solicit.source_mac.is_some() {
            return Err(ParseError::DuplicateOption(option.kind));
        }
        let mut mac = [0u8; 6];
        mac.copy_from_slice(&option.bytes[2..8]);
        solicit.source_mac = Some(MacAddr(mac));
    }
    if source.is_unspecified() && solicit.source_mac.is_some() {
        return Err(ParseError::UnspecifiedWithLinkLayer);
    }
    Ok(solicit)
}

impl RouterSolicit {
    /// The message, checksum left zero for the kernel to fill in.
    pub fn build(&self) -> Vec<u8> {
        let mut out = vec![ROUTER_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
        if let Some(mac) = self.source_mac {
            out.extend([options::SOURCE_LL, 1]);
            out.extend(mac.0);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LINK_LOCAL: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 7);

    #[test]
    fn round_trips_and_checks_the_rules() {
        let with_mac = RouterSolicit {
            source_mac: Some(MacAddr([2, 0, 0, 0, 0, 9])),
        };
        let bytes = with_mac.build();
        assert_eq!(parse_router_solicit(LINK_LOCAL, 255, &bytes), Ok(with_mac));
        assert_eq!(
            parse_router_solicit(Ipv6Addr::UNSPECIFIED, 255, &bytes),
            Err(ParseError::UnspecifiedWithLinkLayer)
        );
        assert_eq!(
            parse_router_solicit(LINK_LOCAL, 64, &bytes),
            Err(ParseError::HopLimit(64))
        );
        let bare = RouterSolicit { source_mac: None };
        assert_eq!(
            parse_router_solicit(Ipv6Addr::UNSPECIFIED, 255, &bare.build()),
            Ok(bare)
        );
        let mut coded = RouterSolicit { source_mac: None }.build();
        coded[1] = 1;
        assert_eq!(
            parse_router_solicit(LINK_LOCAL, 255, &coded),
            Err(ParseError::Code(1))
        );
    }
}
