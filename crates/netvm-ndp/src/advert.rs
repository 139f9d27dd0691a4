//! ICMPv6 Router Advertisement (RFC 4861 §4.2) and the options netvm
//! reads or writes in it.
//!
//! ```text
//!  0       type 134 | code 0 | checksum
//!  4       Cur Hop Limit | M O H Prf P reserved | Router Lifetime
//!  8       Reachable Time
//! 12       Retrans Timer
//! 16       options...
//! ```

use crate::error::{BuildError, ParseError};
use crate::nat64::{pref64_len, pref64_plc};
use crate::options::{self, addr, be32, Options, RawOption, MAX_OPTION};
use crate::{is_link_local, mask, ND_HOP_LIMIT, ROUTER_ADVERT};
use netvm_description::values::MacAddr;
use std::net::Ipv6Addr;

const HEADER: usize = 16;
const FLAG_MANAGED: u8 = 0x80;
const FLAG_OTHER: u8 = 0x40;
const FLAG_ON_LINK: u8 = 0x80;
const FLAG_AUTONOMOUS: u8 = 0x40;
/// Longest PREF64 lifetime: 13 bits of 8-second units (RFC 8781 §4).
const PREF64_MAX_LIFETIME: u16 = 8191 * 8;

/// A Prefix Information option (RFC 4861 §4.6.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixInfo {
    /// The prefix; bits past `len` are zero (cleared when read, RFC 4861
    /// says receivers ignore them).
    pub prefix: Ipv6Addr,
    /// Its length, 0..=128.
    pub len: u8,
    /// L: the prefix is on-link.
    pub on_link: bool,
    /// A: hosts may form addresses in it (SLAAC).
    pub autonomous: bool,
    /// Valid lifetime in seconds (`u32::MAX`: infinite).
    pub valid_secs: u32,
    /// Preferred lifetime in seconds (`u32::MAX`: infinite).
    pub preferred_secs: u32,
}

/// A router preference (RFC 4191 §2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preference {
    /// `11`.
    Low,
    /// `00`.
    Medium,
    /// `01`.
    High,
}

impl Preference {
    /// From the two-bit field; `10` is reserved (`None`).
    fn from_bits(bits: u8) -> Option<Preference> {
        match bits & 0b11 {
            0b00 => Some(Preference::Medium),
            0b01 => Some(Preference::High),
            0b11 => Some(Preference::Low),
            _ => None,
        }
    }

    fn bits(self) -> u8 {
        match self {
            Preference::Medium => 0b00,
            Preference::High => 0b01,
            Preference::Low => 0b11,
        }
    }
}

/// A Route Information option (RFC 4191 §2.3): a more-specific route via
/// the advertising router.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The destination prefix; bits past `len` are zero.
    pub prefix: Ipv6Addr,
    /// Its length, 0..=128.
    pub len: u8,
    /// How much to prefer this router for it.
    pub preference: Preference,
    /// Route lifetime in seconds (`u32::MAX`: infinite).
    pub lifetime_secs: u32,
}

/// A PREF64 option (RFC 8781 §4): the NAT64 prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pref64 {
    /// The prefix; bits past `len` are zero.
    pub prefix: Ipv6Addr,
    /// 32, 40, 48, 56, 64 or 96.
    pub len: u8,
    /// Lifetime in seconds: a multiple of 8, at most 65528 (the builder
    /// rounds up and caps).
    pub lifetime_secs: u16,
}

/// A Router Advertisement with the options netvm uses. Options of other
/// types are skipped when read and never written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouterAdvert {
    /// Cur Hop Limit for hosts' packets (0: unspecified).
    pub cur_hop_limit: u8,
    /// M: addresses are available by DHCPv6.
    pub managed: bool,
    /// O: other configuration (DNS) is available by DHCPv6.
    pub other: bool,
    /// Router Lifetime in seconds; 0: not a default router.
    pub router_lifetime_secs: u16,
    /// Reachable Time in milliseconds (0: unspecified).
    pub reachable_ms: u32,
    /// Retrans Timer in milliseconds (0: unspecified).
    pub retrans_ms: u32,
    /// Source Link-Layer Address option (Ethernet).
    pub source_mac: Option<MacAddr>,
    /// MTU option.
    pub mtu: Option<u32>,
    /// Prefix Information options, in order.
    pub prefixes: Vec<PrefixInfo>,
    /// Route Information options, in order (those with the reserved
    /// preference are ignored when read, RFC 4191 §2.3).
    pub routes: Vec<RouteInfo>,
    /// DNS servers and their lifetimes in seconds, in order, from all
    /// RDNSS options.
    pub rdnss: Vec<(Ipv6Addr, u32)>,
    /// Search domains (no trailing dot) and their lifetimes in seconds, in
    /// order, from all DNSSL options.
    pub dnssl: Vec<(String, u32)>,
    /// The first PREF64 option with a known prefix length.
    pub pref64: Option<Pref64>,
}

/// Reads a Router Advertisement received from `source` with IPv6 hop
/// limit `hop_limit` (both from the socket: the address it came from and
/// the `IPV6_HOPLIMIT` ancillary data), checking what RFC 4861 §6.1.2
/// asks except the checksum (the kernel did). The body is checked too:
/// an option of length 0, cut short, or of a length its RFC forbids
/// refuses the whole message; unknown options are skipped.
pub fn parse_router_advert(
    source: Ipv6Addr,
    hop_limit: u8,
    bytes: &[u8],
) -> Result<RouterAdvert, ParseError> {
    if hop_limit != ND_HOP_LIMIT {
        return Err(ParseError::HopLimit(hop_limit));
    }
    if !is_link_local(&source) {
        return Err(ParseError::SourceNotLinkLocal(source));
    }
    if bytes.len() < HEADER {
        return Err(ParseError::Short(bytes.len()));
    }
    if bytes[0] != ROUTER_ADVERT {
        return Err(ParseError::Type(bytes[0]));
    }
    if bytes[1] != 0 {
        return Err(ParseError::Code(bytes[1]));
    }
    let mut advert = RouterAdvert {
        cur_hop_limit: bytes[4],
        managed: bytes[5] & FLAG_MANAGED != 0,
        other: bytes[5] & FLAG_OTHER != 0,
        router_lifetime_secs: u16::from_be_bytes([bytes[6], bytes[7]]),
        reachable_ms: be32(bytes, 8),
        retrans_ms: be32(bytes, 12),
        source_mac: None,
        mtu: None,
        prefixes: Vec::new(),
        routes: Vec::new(),
        rdnss: Vec::new(),
        dnssl: Vec::new(),
        pref64: None,
    };
    for option in Options::new(&bytes[HEADER..]) {
        advert.read_option(option?)?;
    }
    Ok(advert)
}

/// Refuses `option` unless its length field is `allowed`.
fn need_len(option: &RawOption<'_>, allowed: bool) -> Result<(), ParseError> {
    if allowed {
        Ok(())
    } else {
        Err(ParseError::OptionLength {
            kind: option.kind,
            len: option.len,
        })
    }
}

impl RouterAdvert {
    fn read_option(&mut self, option: RawOption<'_>) -> Result<(), ParseError> {
        let b = option.bytes;
        match option.kind {
            options::SOURCE_LL => {
                need_len(&option, option.len == 1)?;
                if self.source_mac.is_some() {
                    return Err(ParseError::DuplicateOption(option.kind));
                }
                let mut mac = [0u8; 6];
                mac.copy_from_slice(&b[2..8]);
                self.source_mac = Some(MacAddr(mac));
            }
            options::MTU => {
                need_len(&option, option.len == 1)?;
                if self.mtu.is_some() {
                    return Err(ParseError::DuplicateOption(option.kind));
                }
                self.mtu = Some(be32(b, 4));
            }
            options::PREFIX_INFO => {
                need_len(&option, option.len == 4)?;
                let len = b[2];
                if len > 128 {
                    return Err(ParseError::PrefixLength(len));
                }
                self.prefixes.push(PrefixInfo {
                    prefix: mask(addr(b, 16), len),
                    len,
                    on_link: b[3] & FLAG_ON_LINK != 0,
                    autonomous: b[3] & FLAG_AUTONOMOUS != 0,
                    valid_secs: be32(b, 4),
                    preferred_secs: be32(b, 8),
                });
            }
            options::ROUTE_INFO => {
                need_len(&option, (1..=3).contains(&option.len))?;
                let len = b[2];
                let room = match option.len {
                    1 => 0,
                    2 => 64,
                    _ => 128,
                };
                if len > room {
                    return Err(ParseError::PrefixLength(len));
                }
                let mut octets = [0u8; 16];
                let carried = b.len() - 8;
                octets[..carried].copy_from_slice(&b[8..]);
                if let Some(preference) = Preference::from_bits(b[3] >> 3) {
                    self.routes.push(RouteInfo {
                        prefix: mask(octets.into(), len),
                        len,
                        preference,
                        lifetime_secs: be32(b, 4),
                    });
                }
            }
            options::RDNSS => {
                need_len(&option, option.len >= 3 && option.len % 2 == 1)?;
                let lifetime = be32(b, 4);
                for at in (8..b.len()).step_by(16) {
                    self.rdnss.push((addr(b, at), lifetime));
                }
            }
            options::DNSSL => {
                need_len(&option, option.len >= 2)?;
                let lifetime = be32(b, 4);
                for name in options::decode_names(&b[8..])? {
                    self.dnssl.push((name, lifetime));
                }
            }
            options::PREF64 => {
                need_len(&option, option.len == 2)?;
                let word = u16::from_be_bytes([b[2], b[3]]);
                let mut octets = [0u8; 16];
                octets[..12].copy_from_slice(&b[4..16]);
                // An unknown PLC makes receivers ignore the option
                // (RFC 8781 §4); a later one may still be usable.
                if let (None, Some(len)) = (&self.pref64, pref64_len(word & 0b111)) {
                    self.pref64 = Some(Pref64 {
                        prefix: mask(octets.into(), len),
                        len,
                        lifetime_secs: word & !0b111,
                    });
                }
            }
            // Others (Target Link-Layer Address, Redirected Header,
            // options we do not know) are skipped (RFC 4861 §6.1.2).
            _ => {}
        }
        Ok(())
    }

    /// The message, from the ICMPv6 header on, with the checksum left
    /// zero for the kernel to fill in. Bits past each prefix length are
    /// cleared. RDNSS servers and DNSSL names with the same lifetime next
    /// to each other share an option.
    pub fn build(&self) -> Result<Vec<u8>, BuildError> {
        let mut out = vec![ROUTER_ADVERT, 0, 0, 0, self.cur_hop_limit];
        let mut flags = 0;
        if self.managed {
            flags |= FLAG_MANAGED;
        }
        if self.other {
            flags |= FLAG_OTHER;
        }
        out.push(flags);
        out.extend(self.router_lifetime_secs.to_be_bytes());
        out.extend(self.reachable_ms.to_be_bytes());
        out.extend(self.retrans_ms.to_be_bytes());
        if let Some(mac) = self.source_mac {
            out.extend([options::SOURCE_LL, 1]);
            out.extend(mac.0);
        }
        if let Some(mtu) = self.mtu {
            out.extend([options::MTU, 1, 0, 0]);
            out.extend(mtu.to_be_bytes());
        }
        for p in &self.prefixes {
            if p.len > 128 {
                return Err(BuildError::PrefixLength(p.len));
            }
            let mut flags = 0;
            if p.on_link {
                flags |= FLAG_ON_LINK;
            }
            if p.autonomous {
                flags |= FLAG_AUTONOMOUS;
            }
            out.extend([options::PREFIX_INFO, 4, p.len, flags]);
            out.extend(p.valid_secs.to_be_bytes());
            out.extend(p.preferred_secs.to_be_bytes());
            out.extend([0; 4]);
            out.extend(mask(p.prefix, p.len).octets());
        }
        for r in &self.routes {
            let units: u8 = match r.len {
                0 => 1,
                1..=64 => 2,
                65..=128 => 3,
                _ => return Err(BuildError::PrefixLength(r.len)),
            };
            out.extend([options::ROUTE_INFO, units, r.len, r.preference.bits() << 3]);
            out.extend(r.lifetime_secs.to_be_bytes());
            out.extend(&mask(r.prefix, r.len).octets()[..usize::from(units - 1) * 8]);
        }
        for run in runs(&self.rdnss, 127) {
            let units = 1 + 2 * run.len();
            // At most 127 servers: 255 units.
            out.extend([options::RDNSS, units as u8, 0, 0]);
            out.extend(run[0].1.to_be_bytes());
            for (server, _) in run {
                out.extend(server.octets());
            }
        }
        self.build_dnssl(&mut out)?;
        if let Some(p) = &self.pref64 {
            let plc = pref64_plc(p.len).ok_or(BuildError::Pref64Length(p.len))?;
            let scaled = p.lifetime_secs.min(PREF64_MAX_LIFETIME).div_ceil(8);
            out.extend([options::PREF64, 2]);
            out.extend(((scaled << 3) | plc).to_be_bytes());
            out.extend(&mask(p.prefix, p.len).octets()[..12]);
        }
        Ok(out)
    }

    /// DNSSL options: names with equal lifetimes next to each other share
    /// one, as long as it stays within the longest option.
    fn build_dnssl(&self, out: &mut Vec<u8>) -> Result<(), BuildError> {
        let mut names = self.dnssl.iter().peekable();
        while let Some((first, lifetime)) = names.next() {
            let mut area = Vec::new();
            add_name(first, &mut area)?;
            while let Some((name, _)) = names.next_if(|(name, next)| {
                next == lifetime && 8 + area.len() + name.len() + 2 <= MAX_OPTION
            }) {
                add_name(name, &mut area)?;
            }
            let padded = (8 + area.len()).div_ceil(8) * 8;
            area.resize(padded - 8, 0);
            // At most MAX_OPTION bytes: 255 units.
            out.extend([options::DNSSL, (padded / 8) as u8, 0, 0]);
            out.extend(lifetime.to_be_bytes());
            out.extend(area);
        }
        Ok(())
    }
}

/// Appends `name` in wire form, if it is a valid search domain.
fn add_name(name: &str, area: &mut Vec<u8>) -> Result<(), BuildError> {
    if !options::validate_domain(name) {
        return Err(BuildError::Domain(name.to_owned()));
    }
    options::encode_name(name, area);
    Ok(())
}

/// `items` cut into runs of equal lifetimes, each at most `most` long.
fn runs<T, L: PartialEq>(items: &[(T, L)], most: usize) -> Vec<&[(T, L)]> {
    let mut out = Vec::new();
    let mut rest = items;
    while !rest.is_empty() {
        let same = rest
            .iter()
            .take(most)
            .take_while(|(_, l)| *l == rest[0].1)
            .count();
        let (run, after) = rest.split_at(same);
        out.push(run);
        rest = after;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROUTER: Ipv6Addr = Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 1);

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().expect("address")
    }

    /// What the net-vm advertises inside: M, O, no on-link prefix.
    fn internal() -> RouterAdvert {
        RouterAdvert {
            cur_hop_limit: 64,
            managed: true,
            other: true,
            router_lifetime_secs: 1800,
            reachable_ms: 0,
            retrans_ms: 0,
            source_mac: Some(MacAddr([2, 0xad, 0, 0, 0, 1])),
            mtu: Some(1500),
            prefixes: vec![PrefixInfo {
                prefix: v6("fd12:3456:789a::"),
                len: 64,
                on_link: false,
                autonomous: false,
                valid_secs: 86400,
                preferred_secs: 14400,
            }],
            routes: vec![],
            rdnss: vec![(v6("fd12:3456:789a::1"), 1800)],
            dnssl: vec![("netvm.internal".into(), 1800)],
            pref64: Some(Pref64 {
                prefix: v6("64:ff9b::"),
                len: 96,
                lifetime_secs: 1800,
            }),
        }
    }

    #[test]
    fn writes_the_rfc_layout() {
        let bytes = internal().build().expect("valid");
        #[rustfmt::skip]
        let expected: Vec<u8> = [
            &[134, 0, 0, 0, 64, 0xc0, 0x07, 0x08, 0, 0, 0, 0, 0, 0, 0, 0][..],
            &[1, 1, 2, 0xad, 0, 0, 0, 1],
            &[5, 1, 0, 0, 0, 0, 0x05, 0xdc],
            &[3, 4, 64, 0, 0, 1, 0x51, 0x80, 0, 0, 0x38, 0x40, 0, 0, 0, 0],
            &[0xfd, 0x12, 0x34, 0x56, 0x78, 0x9a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            &[25, 3, 0, 0, 0, 0, 0x07, 0x08],
            &[0xfd, 0x12, 0x34, 0x56, 0x78, 0x9a, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            &[31, 3, 0, 0, 0, 0, 0x07, 0x08],
            b"\x05netvm\x08internal\x00",
            // 1800 s is 225 units of 8 s; PLC 0 is /96.
            &[38, 2, 0x07, 0x08, 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0],
        ]
        .concat();
        assert_eq!(bytes, expected);
        assert_eq!(parse_router_advert(ROUTER, 255, &bytes), Ok(internal()));
    }

    #[test]
    fn refuses_what_rfc_4861_refuses() {
        let good = internal().build().expect("valid");
        assert_eq!(
            parse_router_advert(ROUTER, 254, &good),
            Err(ParseError::HopLimit(254))
        );
        let global = v6("2001:db8::1");
        assert_eq!(
            parse_router_advert(global, 255, &good),
            Err(ParseError::SourceNotLinkLocal(global))
        );
        assert_eq!(
            parse_router_advert(ROUTER, 255, &good[..15]),
            Err(ParseError::Short(15))
        );
        let mut coded = good.clone();
        coded[1] = 3;
        assert_eq!(
            parse_router_advert(ROUTER, 255, &coded),
            Err(ParseError::Code(3))
        );
        let solicit = crate::RouterSolicit { source_mac: None }.build();
        assert_eq!(
            parse_router_advert(ROUTER, 255, &[solicit, vec![0; 8]].concat()),
            Err(ParseError::Type(133))
        );
        assert_eq!(
            parse_router_advert(ROUTER, 255, &good[..good.len() - 1]),
            Err(ParseError::TruncatedOption(38))
        );
    }

    /// The fixed header of an RA with lifetime 0, then `options`.
    fn with(options: &[u8]) -> Result<RouterAdvert, ParseError> {
        let mut bytes = vec![134, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        bytes.extend(options);
        parse_router_advert(ROUTER, 255, &bytes)
    }

    #[test]
    fn refuses_malformed_options() {
        let zero = [5, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(with(&zero), Err(ParseError::ZeroLengthOption(5)));
        let two_units = |kind: u8| {
            let mut option = vec![0; 16];
            option[0] = kind;
            option[1] = 2;
            option
        };
        for kind in [1, 5, 3] {
            assert_eq!(
                with(&two_units(kind)),
                Err(ParseError::OptionLength { kind, len: 2 }),
                "type {kind}"
            );
        }
        assert_eq!(
            with(&two_units(25)),
            Err(ParseError::OptionLength { kind: 25, len: 2 }),
            "RDNSS needs an odd length of 3 or more"
        );
        let short_dnssl = [31, 1, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            with(&short_dnssl),
            Err(ParseError::OptionLength { kind: 31, len: 1 })
        );
        let mut pref64 = two_units(38);
        pref64.extend([0; 8]);
        pref64[1] = 3;
        assert_eq!(
            with(&pref64),
            Err(ParseError::OptionLength { kind: 38, len: 3 })
        );
        let mtu = [5, 1, 0, 0, 0, 0, 5, 0xdc];
        assert_eq!(
            with(&[mtu, mtu].concat()),
            Err(ParseError::DuplicateOption(5))
        );
        let mut pio = vec![3, 4, 129];
        pio.resize(32, 0);
        assert_eq!(with(&pio), Err(ParseError::PrefixLength(129)));
        // A /65 route needs the three-unit form.
        let mut rio = vec![24, 2, 65, 0];
        rio.resize(16, 0);
        assert_eq!(with(&rio), Err(ParseError::PrefixLength(65)));
        let mut dnssl = vec![31, 2, 0, 0, 0, 0, 0, 60];
        dnssl.extend(b"\x03a_b\x00\x00\x00\x00");
        assert_eq!(with(&dnssl), Err(ParseError::Domain));
    }

    #[test]
    fn skips_what_it_should_ignore() {
        // Unknown type 200; a TLLA (type 2); a route with the reserved
        // preference `10`; a PREF64 with PLC 6; then a usable PREF64.
        let unknown = [200, 1, 1, 2, 3, 4, 5, 6];
        let tlla = [2, 1, 2, 0, 0, 0, 0, 1];
        let reserved_route = [24, 1, 0, 0b10 << 3, 0, 0, 0, 60];
        let bad_plc = [38, 2, 0, 6, 0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0];
        let good_plc = [38, 2, 0, 0x0c, 0x20, 1, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0];
        let parsed = with(&[&unknown[..], &tlla, &reserved_route, &bad_plc, &good_plc].concat())
            .expect("valid");
        assert!(parsed.routes.is_empty());
        assert_eq!(
            parsed.pref64,
            Some(Pref64 {
                prefix: v6("2001:db8::"),
                len: 40,
                lifetime_secs: 8,
            })
        );
    }

    #[test]
    fn reads_routes_of_each_size_and_clears_host_bits() {
        let default = [24, 1, 0, 0b11 << 3, 0, 0, 0x0e, 0x10];
        let mut slash48 = vec![24, 2, 48, 0b01 << 3, 0, 0, 0, 60];
        slash48.extend([0x20, 0x01, 0x0d, 0xb8, 0, 1, 0xff, 0xff]);
        let mut pio = vec![3, 4, 64, 0xc0, 0, 0, 0, 60, 0, 0, 0, 30, 0, 0, 0, 0];
        pio.extend(v6("2001:db8:1:2::99").octets());
        let parsed = with(&[&default[..], &slash48, &pio].concat()).expect("valid");
        assert_eq!(
            parsed.routes,
            [
                RouteInfo {
                    prefix: Ipv6Addr::UNSPECIFIED,
                    len: 0,
                    preference: Preference::Low,
                    lifetime_secs: 3600,
                },
                RouteInfo {
                    prefix: v6("2001:db8:1::"),
                    len: 48,
                    preference: Preference::High,
                    lifetime_secs: 60,
                },
            ]
        );
        assert_eq!(parsed.prefixes[0].prefix, v6("2001:db8:1:2::"));
        assert!(parsed.prefixes[0].on_link && parsed.prefixes[0].autonomous);
    }

    #[test]
    fn shares_options_and_refuses_what_it_cannot_write() {
        let mut advert = internal();
        advert.rdnss = vec![
            (v6("fd00::1"), 600),
            (v6("fd00::2"), 600),
            (v6("fd00::3"), 0),
        ];
        advert.dnssl = vec![("a.b".into(), 600), ("c".into(), 600)];
        let bytes = advert.build().expect("valid");
        let rdnss = bytes.iter().filter(|b| **b == 25).count();
        assert!(rdnss >= 2);
        assert_eq!(parse_router_advert(ROUTER, 255, &bytes), Ok(advert.clone()));
        advert.dnssl = vec![("bad_name".into(), 600)];
        assert_eq!(advert.build(), Err(BuildError::Domain("bad_name".into())));
        advert.dnssl.clear();
        advert.pref64 = Some(Pref64 {
            prefix: v6("64:ff9b::"),
            len: 80,
            lifetime_secs: 8,
        });
        assert_eq!(advert.build(), Err(BuildError::Pref64Length(80)));
    }
}
