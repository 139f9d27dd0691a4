//! NAT64 prefixes: the PREF64 option's prefix length codes (RFC 8781 §4)
//! and discovery from the AAAA answers for `ipv4only.arpa` (RFC 7050 §3),
//! which a DNS64 synthesises from its well-known IPv4 addresses embedded
//! as RFC 6052 §2.2 lays them out.

use crate::mask;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The addresses `ipv4only.arpa` has (RFC 7050 §2.1).
pub const WELL_KNOWN_IPV4: [Ipv4Addr; 2] =
    [Ipv4Addr::new(192, 0, 0, 170), Ipv4Addr::new(192, 0, 0, 171)];

/// The NAT64 prefix lengths, longest first: the order they are tried in.
const LENGTHS: [u8; 6] = [96, 64, 56, 48, 40, 32];

/// The prefix length a PREF64 Prefix Length Code stands for.
pub(crate) fn pref64_len(plc: u16) -> Option<u8> {
    match plc {
        0 => Some(96),
        1 => Some(64),
        2 => Some(56),
        3 => Some(48),
        4 => Some(40),
        5 => Some(32),
        _ => None,
    }
}

/// The Prefix Length Code for a NAT64 prefix length.
pub(crate) fn pref64_plc(len: u8) -> Option<u16> {
    (0..6).find(|plc| pref64_len(*plc) == Some(len))
}

/// Where the IPv4 address's four bytes go in an address with a prefix of
/// `len` (RFC 6052 §2.2): never byte 8, the "u" octet (bits 64..71).
fn positions(len: u8) -> Option<[usize; 4]> {
    match len {
        32 => Some([4, 5, 6, 7]),
        40 => Some([5, 6, 7, 9]),
        48 => Some([6, 7, 9, 10]),
        56 => Some([7, 9, 10, 11]),
        64 => Some([9, 10, 11, 12]),
        96 => Some([12, 13, 14, 15]),
        _ => None,
    }
}

/// `ipv4` embedded in `prefix`/`len` as RFC 6052 §2.2 lays it out: the
/// u octet and the suffix are zero. `None` for a length other than 32,
/// 40, 48, 56, 64 or 96.
pub fn embed_ipv4(prefix: Ipv6Addr, len: u8, ipv4: Ipv4Addr) -> Option<Ipv6Addr> {
    let at = positions(len)?;
    let mut octets = mask(prefix, len).octets();
    for (place, byte) in at.iter().zip(ipv4.octets()) {
        octets[*place] = byte;
    }
    Some(octets.into())
}

/// The NAT64 prefixes (`Pref64::/n`) in the AAAA answers for
/// `ipv4only.arpa` (RFC 7050 §3): in each answer, a well-known IPv4
/// address at the position of a prefix length, with the u octet (bits
/// 64..71) zero for lengths under 96 and everything after the IPv4
/// address zero. Lengths are tried longest first, so a prefix whose own
/// bits happen to hold the pattern at a shorter length's position is not
/// mistaken for that length. Answers that are not synthesised give
/// nothing; each prefix is listed once, in the order first found.
pub fn nat64_prefixes_from_aaaa(answers: &[Ipv6Addr]) -> Vec<(Ipv6Addr, u8)> {
    let mut found: Vec<(Ipv6Addr, u8)> = Vec::new();
    for answer in answers {
        let octets = answer.octets();
        let hit = LENGTHS.iter().find(|len| {
            let Some(at) = positions(**len) else {
                return false;
            };
            let embedded =
                Ipv4Addr::new(octets[at[0]], octets[at[1]], octets[at[2]], octets[at[3]]);
            let u_clear = **len == 96 || octets[8] == 0;
            let suffix_clear = octets[at[3] + 1..].iter().all(|b| *b == 0);
            WELL_KNOWN_IPV4.contains(&embedded) && u_clear && suffix_clear
        });
        if let Some(len) = hit {
            let prefix = (mask(*answer, *len), *len);
            if !found.contains(&prefix) {
                found.push(prefix);
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().expect("address")
    }

    #[test]
    fn the_well_known_prefix_and_rfc_6052_examples() {
        // RFC 6052 §2.4's table, with 192.0.0.170 in place of 192.0.2.33.
        let cases = [
            ("64:ff9b::c000:aa", "64:ff9b::", 96),
            ("2001:db8:c000:aa::", "2001:db8::", 32),
            ("2001:db8:1c0:0:aa::", "2001:db8:100::", 40),
            ("2001:db8:122:c000:0:aa00::", "2001:db8:122::", 48),
            ("2001:db8:122:3c0:0:aa:0:0", "2001:db8:122:300::", 56),
            ("2001:db8:122:344:c0:0:aa00:0", "2001:db8:122:344::", 64),
        ];
        for (answer, prefix, len) in cases {
            assert_eq!(
                nat64_prefixes_from_aaaa(&[v6(answer)]),
                [(v6(prefix), len)],
                "{answer}"
            );
            assert_eq!(
                embed_ipv4(v6(prefix), len, WELL_KNOWN_IPV4[0]),
                Some(v6(answer))
            );
        }
    }

    #[test]
    fn both_well_known_addresses_give_one_prefix_and_others_none() {
        let answers = [v6("64:ff9b::c000:aa"), v6("64:ff9b::c000:ab")];
        assert_eq!(nat64_prefixes_from_aaaa(&answers), [(v6("64:ff9b::"), 96)]);
        // A real AAAA, an IPv4 address other than the well-known ones,
        // a set u octet.
        for other in [
            "2001:db8::1",
            "64:ff9b::c000:2a1",
            "2001:db8:122:344:ffc0:0:aa00:0",
        ] {
            assert_eq!(nat64_prefixes_from_aaaa(&[v6(other)]), [], "{other}");
        }
    }

    #[test]
    fn plc_codes_map_both_ways() {
        for len in LENGTHS {
            assert_eq!(pref64_plc(len).and_then(pref64_len), Some(len));
        }
        assert_eq!(pref64_len(6), None);
        assert_eq!(pref64_plc(80), None);
    }
}
