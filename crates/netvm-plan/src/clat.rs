//! The CLAT plan: the customer-side translator of 464XLAT (RFC 6877)
//! that gives IPv4-only guests IPv4 through an IPv6-only uplink with a
//! NAT64 (RFC 6146) somewhere upstream.
//!
//! Guests' IPv4 is masqueraded (NAT44) to [`HOST_IPV4`] on the TUN
//! [`TUN`]; tayga 0.9.2 (stateless RFC 6145/7915 translation) turns it
//! into IPv6 from one address, `clat6`, to the NAT64 prefix, and back.
//! Addresses come from RFC 7335's 192.0.0.0/29, set aside for this.
//!
//! Pure: no I/O, deterministic. [`plan`] checks what tayga would refuse
//! (or silently get wrong) and returns everything the applier
//! (`netvm_apply::clat`) and the ruleset need: tayga's configuration
//! text, the TUN's addresses and MTU, the routes, the proxy-NDP entry and
//! its sysctl, and nft rule lines ([`ClatRules`]) for the ruleset to
//! splice in. It does not decide *whether* a CLAT runs (uplink without
//! IPv4, NAT64 prefix known): the agent does.
//!
//! Choices, with their reasons:
//! * **clat6**: the uplink's SLAAC /64 with the interface identifier
//!   [`iid`] = `c1a7:` followed by the uplink's 48-bit MAC. Stable across
//!   restarts; unique on the link because MACs are (a fixed IID would
//!   collide between two net-vms on one network); never EUI-64 shaped
//!   (no `ff:fe`), so it cannot collide with the uplink's own SLAAC
//!   address; `c1a7` marks it in captures. It is made reachable on the
//!   link by a proxy-NDP entry. With a delegated prefix, clat6 is taken
//!   from its last /64 (the internal network uses the first) and routed
//!   to us by the ISP: no proxy NDP.
//! * **MTU**: tayga takes the TUN's MTU as the IPv6 MTU in both
//!   directions (IPv4 with DF bigger than MTU − 20 gets "fragmentation
//!   needed", IPv6 bigger than MTU gets "packet too big"), so the TUN
//!   gets the uplink's MTU and the IPv4 default route through it gets
//!   MTU − 20 (the IPv6 header is 20 bytes longer): the kernel then
//!   answers guests' oversized DF packets itself, and a TCP MSS clamp to
//!   the route MTU spares them the round trip.
//! * **Route metric**: the IPv4 default through the CLAT has metric
//!   [`IPV4_DEFAULT_METRIC`]; a DHCP or static IPv4 default (metric 0)
//!   wins while both exist, so a late IPv4 lease takes over at once.

use netvm_description::values::{IfName, Ipv4Cidr, MacAddr};
use serde::Serialize;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The TUN tayga translates on.
pub const TUN: &str = "clat0";

/// The host side's IPv4 on [`TUN`] (a /32): guests are masqueraded to it
/// and tayga maps it to clat6 (RFC 7335).
pub const HOST_IPV4: Ipv4Addr = Ipv4Addr::new(192, 0, 0, 1);

/// tayga's own IPv4 (`ipv4-addr`): the source of the ICMPv4 errors it
/// makes, and it answers pings (RFC 7335).
pub const TAYGA_IPV4: Ipv4Addr = Ipv4Addr::new(192, 0, 0, 2);

/// Metric of the IPv4 default route through the CLAT: any other IPv4
/// default (DHCP and static ones get metric 0) wins.
pub const IPV4_DEFAULT_METRIC: u32 = 2048;

/// The first 16 bits of clat6's interface identifier ("clat").
pub const IID_TAG: u16 = 0xc1a7;

/// IPv6's minimum link MTU (RFC 8200 section 5).
pub const IPV6_MIN_MTU: u16 = 1280;

/// How much longer an IPv6 header is than an option-less IPv4 header.
const HEADER_GROWTH: u16 = 20;

/// NAT64 prefix lengths RFC 6052 section 2.2 allows (and tayga accepts).
pub const NAT64_PREFIX_LENGTHS: [u8; 6] = [32, 40, 48, 56, 64, 96];

/// Where clat6 comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Clat6Source {
    /// The uplink's SLAAC /64 (its network address): clat6 is answered
    /// for on the uplink by proxy NDP.
    Slaac(Ipv6Addr),
    /// A prefix delegated to the uplink (DHCPv6 IA_PD, /64 or shorter):
    /// clat6 comes from its last /64 and is routed to us.
    Delegated {
        /// The prefix's network address.
        prefix: Ipv6Addr,
        /// Its length.
        len: u8,
    },
}

/// What the CLAT is planned from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClatInput {
    /// The NAT64 prefix and its length (PREF64, RFC 7050 or the
    /// description).
    pub nat64_prefix: (Ipv6Addr, u8),
    /// The uplink interface.
    pub uplink: IfName,
    /// The uplink's MAC (clat6's interface identifier, see [`iid`]).
    pub uplink_mac: MacAddr,
    /// The uplink's MTU (at least 1280).
    pub uplink_mtu: u16,
    /// Where clat6 comes from.
    pub source: Clat6Source,
    /// The internal interface.
    pub internal: IfName,
    /// The internal IPv4 subnet (masqueraded to [`HOST_IPV4`]).
    pub subnet: Ipv4Cidr,
    /// tayga's `data-dir`, an absolute path: its working directory, and
    /// its chroot when sandboxed.
    pub data_dir: String,
}

/// Why no CLAT can be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClatError {
    /// Not a length RFC 6052 allows.
    #[error("NAT64 prefix length /{0} is not one RFC 6052 allows (32, 40, 48, 56, 64 or 96)")]
    Nat64Length(u8),
    /// Bits set past the prefix length.
    #[error("NAT64 prefix {0}/{1} has bits set past its length")]
    Nat64HostBits(Ipv6Addr, u8),
    /// RFC 6052 section 2.2: bits 64 to 71 ("u") must be zero.
    #[error("NAT64 prefix {0}/{1} sets bits 64 to 71, which RFC 6052 reserves")]
    Nat64UOctet(Ipv6Addr, u8),
    /// tayga 0.9.2 refuses it: a first octet of 0 other than the
    /// well-known 64:ff9b::/96 (so no RFC 8215 64:ff9b:1::/48), multicast
    /// or link-local.
    #[error("NAT64 prefix {0}/{1} is one tayga 0.9.2 refuses (reserved, multicast or link-local)")]
    Nat64Unsupported(Ipv6Addr, u8),
    /// The SLAAC prefix is not a /64 network address.
    #[error("uplink prefix {0} is not the network address of a /64")]
    SlaacPrefix(Ipv6Addr),
    /// The delegated prefix is longer than /64 or has bits past its length.
    #[error("delegated prefix {0}/{1} is not a /64 or shorter network address")]
    DelegatedPrefix(Ipv6Addr, u8),
    /// clat6 would lie inside the NAT64 prefix (tayga refuses overlaps).
    #[error("CLAT address {0} lies inside the NAT64 prefix")]
    Clat6InNat64(Ipv6Addr),
    /// The uplink cannot carry IPv6.
    #[error("uplink MTU {0} is below IPv6's minimum of 1280")]
    Mtu(u16),
    /// The internal subnet holds the CLAT's own IPv4 addresses.
    #[error("internal subnet {0} overlaps the CLAT's 192.0.0.0/29 (RFC 7335)")]
    SubnetClash(Ipv4Cidr),
    /// tayga's configuration cannot carry this path.
    #[error("data dir {0:?} is not an absolute path without spaces or control characters")]
    DataDir(String),
}

/// A route the CLAT needs; `Display` gives its `ip` equivalent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ClatRoute {
    /// IPv4 default through the TUN, with its metric and MTU.
    Ipv4Default {
        /// Route metric ([`IPV4_DEFAULT_METRIC`]).
        metric: u32,
        /// Route MTU: the TUN's MTU minus 20.
        mtu: u16,
    },
    /// clat6/128 to the TUN, so IPv6 coming back reaches tayga.
    Ipv6Host(Ipv6Addr),
}

impl fmt::Display for ClatRoute {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClatRoute::Ipv4Default { metric, mtu } => {
                write!(
                    f,
                    "ip route replace default dev {TUN} metric {metric} mtu {mtu}"
                )
            }
            ClatRoute::Ipv6Host(clat6) => write!(f, "ip -6 route replace {clat6}/128 dev {TUN}"),
        }
    }
}

/// nft rule lines for the ruleset (table `inet netvm`) to splice in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClatRules {
    /// The forward chain's, in this order, before its other accepts and
    /// before any IPv6 drop. Replies ride the chain's `ct state
    /// established,related accept`; nothing new comes in through the
    /// CLAT. The IPv4 rule uses the ruleset's `internet` set, so the CLAT
    /// path obeys the same permission as the IPv4 uplink.
    pub forward: Vec<String>,
    /// The source-NAT (postrouting) chain's.
    pub nat_out: Vec<String>,
}

/// Everything the CLAT needs, for the applier and the ruleset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClatPlan {
    /// The TUN ([`TUN`]).
    pub tun: IfName,
    /// Its MTU: the uplink's (tayga's IPv6 MTU).
    pub tun_mtu: u16,
    /// The host's IPv4 on the TUN, a /32 ([`HOST_IPV4`]).
    pub host_ipv4: Ipv4Addr,
    /// tayga's `ipv4-addr` ([`TAYGA_IPV4`]).
    pub tayga_ipv4: Ipv4Addr,
    /// The IPv6 address [`HOST_IPV4`] is translated to.
    pub clat6: Ipv6Addr,
    /// The NAT64 prefix and length.
    pub nat64_prefix: (Ipv6Addr, u8),
    /// The uplink.
    pub uplink: IfName,
    /// Routes, IPv4 first.
    pub routes: Vec<ClatRoute>,
    /// Whether clat6 needs a proxy-NDP entry on the uplink
    /// (`ip -6 neigh add proxy CLAT6 dev UPLINK`): yes from SLAAC, no
    /// from a delegated prefix.
    pub proxy_ndp: bool,
    /// Kernel settings (path under /proc/sys, value). Besides these the
    /// CLAT relies on the data path's `net/ipv4/ip_forward=1` and
    /// `net/ipv6/conf/all/forwarding=1` (proxy NDP also answers only
    /// on a forwarding interface) with `accept_ra=2` on the uplink.
    pub sysctls: Vec<(String, String)>,
    /// tayga's `data-dir`.
    pub data_dir: String,
    /// tayga's configuration file, whole.
    pub tayga_config: String,
    /// Rule lines for the ruleset.
    pub rules: ClatRules,
}

impl ClatPlan {
    /// The forward-chain lines, then the NAT lines: see [`ClatRules`].
    pub fn rule_lines(&self) -> (&[String], &[String]) {
        (&self.rules.forward, &self.rules.nat_out)
    }
}

/// clat6's interface identifier: [`IID_TAG`], then the 48-bit `mac`.
pub fn iid(mac: &MacAddr) -> u64 {
    let mac48 = mac
        .0
        .iter()
        .fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
    (u64::from(IID_TAG) << 48) | mac48
}

/// The mask of an IPv6 prefix of `len` bits.
fn mask(len: u8) -> u128 {
    match len {
        0 => 0,
        len => u128::MAX << (128 - u32::from(len.min(128))),
    }
}

fn check_nat64((prefix, len): (Ipv6Addr, u8)) -> Result<(), ClatError> {
    if !NAT64_PREFIX_LENGTHS.contains(&len) {
        return Err(ClatError::Nat64Length(len));
    }
    let bits = u128::from(prefix);
    if bits & !mask(len) != 0 {
        return Err(ClatError::Nat64HostBits(prefix, len));
    }
    // Bits 64..=71 sit inside the prefix only for /96.
    if (bits >> 56) & 0xff != 0 {
        return Err(ClatError::Nat64UOctet(prefix, len));
    }
    let well_known = prefix == Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0) && len == 96;
    let first = prefix.octets()[0];
    let link_local = prefix.segments()[0] & 0xffc0 == 0xfe80;
    if (first == 0 && !well_known) || first == 0xff || link_local {
        return Err(ClatError::Nat64Unsupported(prefix, len));
    }
    Ok(())
}

/// clat6 and whether it needs proxy NDP.
fn clat6(source: Clat6Source, iid: u64) -> Result<(Ipv6Addr, bool), ClatError> {
    match source {
        Clat6Source::Slaac(prefix) => {
            if u128::from(prefix) & !mask(64) != 0 {
                return Err(ClatError::SlaacPrefix(prefix));
            }
            Ok((Ipv6Addr::from(u128::from(prefix) | u128::from(iid)), true))
        }
        Clat6Source::Delegated { prefix, len } => {
            let bits = u128::from(prefix);
            if len > 64 || bits & !mask(len) != 0 {
                return Err(ClatError::DelegatedPrefix(prefix, len));
            }
            // The last /64: every subnet bit between `len` and 64 set.
            let last = bits | (mask(64) & !mask(len));
            Ok((Ipv6Addr::from(last | u128::from(iid)), false))
        }
    }
}

/// Plans the CLAT for `input`, or says why tayga could not run it.
pub fn plan(input: &ClatInput) -> Result<ClatPlan, ClatError> {
    check_nat64(input.nat64_prefix)?;
    if input.uplink_mtu < IPV6_MIN_MTU {
        return Err(ClatError::Mtu(input.uplink_mtu));
    }
    let clat_net =
        Ipv4Cidr::new(Ipv4Addr::new(192, 0, 0, 0), 29).expect("192.0.0.0/29 is a valid network");
    let subnet = input.subnet.truncated();
    if subnet.contains(clat_net.network()) || clat_net.contains(subnet.network()) {
        return Err(ClatError::SubnetClash(subnet));
    }
    let dir = &input.data_dir;
    if !dir.starts_with('/') || dir.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(ClatError::DataDir(dir.clone()));
    }
    let (clat6, proxy_ndp) = clat6(input.source, iid(&input.uplink_mac))?;
    let (nat64, nat64_len) = input.nat64_prefix;
    if u128::from(clat6) & mask(nat64_len) == u128::from(nat64) {
        return Err(ClatError::Clat6InNat64(clat6));
    }
    let tun: IfName = TUN.parse().expect("clat0 is a valid interface name");
    let (uplink, internal) = (&input.uplink, &input.internal);
    let route_mtu = input.uplink_mtu - HEADER_GROWTH;
    let sysctls = if proxy_ndp {
        vec![(format!("net/ipv6/conf/{uplink}/proxy_ndp"), "1".to_owned())]
    } else {
        Vec::new()
    };
    let tayga_config = format!(
        "# netvm CLAT (RFC 6877), written by netvm: tayga reads it once at start.\n\
         tun-device {tun}\n\
         ipv4-addr {TAYGA_IPV4}\n\
         prefix {nat64}/{nat64_len}\n\
         map {HOST_IPV4} {clat6}\n\
         data-dir {dir}\n"
    );
    let rules = ClatRules {
        forward: vec![
            format!(
                "oifname \"{tun}\" tcp flags syn tcp option maxseg size set rt mtu comment \"CLAT: MSS for the translated path\""
            ),
            format!(
                "iifname \"{internal}\" oifname \"{tun}\" ip saddr @internet accept comment \"CLAT: IPv4 out\""
            ),
            format!(
                "iifname \"{tun}\" oifname \"{uplink}\" ip6 saddr {clat6} ip6 daddr {nat64}/{nat64_len} accept comment \"CLAT: translated IPv4 out\""
            ),
        ],
        nat_out: vec![format!(
            "oifname \"{tun}\" ip saddr {subnet} masquerade comment \"CLAT: NAT44 to {HOST_IPV4}\""
        )],
    };
    Ok(ClatPlan {
        tun,
        tun_mtu: input.uplink_mtu,
        host_ipv4: HOST_IPV4,
        tayga_ipv4: TAYGA_IPV4,
        clat6,
        nat64_prefix: input.nat64_prefix,
        uplink: uplink.clone(),
        routes: vec![
            ClatRoute::Ipv4Default {
                metric: IPV4_DEFAULT_METRIC,
                mtu: route_mtu,
            },
            ClatRoute::Ipv6Host(clat6),
        ],
        proxy_ndp,
        sysctls,
        data_dir: dir.clone(),
        tayga_config,
        rules,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip6(text: &str) -> Ipv6Addr {
        text.parse().expect("IPv6 address")
    }

    fn input() -> ClatInput {
        ClatInput {
            nat64_prefix: (ip6("64:ff9b::"), 96),
            uplink: "wlan0".parse().expect("name"),
            uplink_mac: "02:00:5e:10:00:02".parse().expect("mac"),
            uplink_mtu: 1500,
            source: Clat6Source::Slaac(ip6("2001:db8:10::")),
            internal: "ethint0".parse().expect("name"),
            subnet: "192.168.100.0/24".parse().expect("subnet"),
            data_dir: "/var/lib/netvm/clat".to_owned(),
        }
    }

    #[test]
    fn slaac_plan_has_proxy_ndp_config_routes_and_rules() {
        let plan = plan(&input()).expect("valid");
        assert_eq!(plan.clat6, ip6("2001:db8:10:0:c1a7:200:5e10:2"));
        assert!(plan.proxy_ndp);
        assert_eq!(
            plan.sysctls,
            [("net/ipv6/conf/wlan0/proxy_ndp".to_owned(), "1".to_owned())]
        );
        assert_eq!(
            plan.tayga_config,
            "# netvm CLAT (RFC 6877), written by netvm: tayga reads it once at start.\n\
             tun-device clat0\n\
             ipv4-addr 192.0.0.2\n\
             prefix 64:ff9b::/96\n\
             map 192.0.0.1 2001:db8:10:0:c1a7:200:5e10:2\n\
             data-dir /var/lib/netvm/clat\n"
        );
        let routes: Vec<String> = plan.routes.iter().map(ToString::to_string).collect();
        assert_eq!(
            routes,
            [
                "ip route replace default dev clat0 metric 2048 mtu 1480",
                "ip -6 route replace 2001:db8:10:0:c1a7:200:5e10:2/128 dev clat0",
            ]
        );
        assert_eq!(plan.tun_mtu, 1500);
        let (forward, nat) = plan.rule_lines();
        assert_eq!(
            forward,
            [
                "oifname \"clat0\" tcp flags syn tcp option maxseg size set rt mtu comment \"CLAT: MSS for the translated path\"",
                "iifname \"ethint0\" oifname \"clat0\" ip saddr @internet accept comment \"CLAT: IPv4 out\"",
                "iifname \"clat0\" oifname \"wlan0\" ip6 saddr 2001:db8:10:0:c1a7:200:5e10:2 ip6 daddr 64:ff9b::/96 accept comment \"CLAT: translated IPv4 out\"",
            ]
        );
        assert_eq!(
            nat,
            ["oifname \"clat0\" ip saddr 192.168.100.0/24 masquerade comment \"CLAT: NAT44 to 192.0.0.1\""]
        );
    }

    #[test]
    fn delegated_prefix_gives_its_last_slash_64_and_no_proxy() {
        let mut input = input();
        input.source = Clat6Source::Delegated {
            prefix: ip6("2001:db8:aa00::"),
            len: 56,
        };
        let plan = plan(&input).expect("valid");
        assert_eq!(plan.clat6, ip6("2001:db8:aa00:ff:c1a7:200:5e10:2"));
        assert!(!plan.proxy_ndp);
        assert!(plan.sysctls.is_empty());
        input.source = Clat6Source::Delegated {
            prefix: ip6("2001:db8:aa00:5::"),
            len: 64,
        };
        let plan = super::plan(&input).expect("valid");
        assert_eq!(plan.clat6, ip6("2001:db8:aa00:5:c1a7:200:5e10:2"));
    }

    #[test]
    fn every_rfc_6052_length_is_accepted_and_others_refused() {
        for len in NAT64_PREFIX_LENGTHS {
            let mut input = input();
            input.nat64_prefix = (ip6("3fff:6400::"), len);
            assert!(plan(&input).is_ok(), "/{len}");
        }
        let mut input = input();
        input.nat64_prefix = (ip6("2001:db8:64::"), 80);
        assert_eq!(plan(&input), Err(ClatError::Nat64Length(80)));
    }

    #[test]
    fn each_refusal_names_its_reason() {
        let refused = |change: &dyn Fn(&mut ClatInput)| {
            let mut input = input();
            change(&mut input);
            plan(&input).expect_err("refused")
        };
        assert_eq!(
            refused(&|i| i.nat64_prefix = (ip6("2001:db8:64::1"), 96)),
            ClatError::Nat64HostBits(ip6("2001:db8:64::1"), 96)
        );
        assert_eq!(
            refused(&|i| i.nat64_prefix = (ip6("2001:db8:64:0:100::"), 96)),
            ClatError::Nat64UOctet(ip6("2001:db8:64:0:100::"), 96)
        );
        // RFC 8215's local-use prefix: tayga 0.9.2 calls it reserved.
        assert_eq!(
            refused(&|i| i.nat64_prefix = (ip6("64:ff9b:1::"), 96)),
            ClatError::Nat64Unsupported(ip6("64:ff9b:1::"), 96)
        );
        assert_eq!(
            refused(&|i| i.nat64_prefix = (ip6("fe80::"), 64)),
            ClatError::Nat64Unsupported(ip6("fe80::"), 64)
        );
        assert_eq!(
            refused(&|i| i.source = Clat6Source::Slaac(ip6("2001:db8:10::1"))),
            ClatError::SlaacPrefix(ip6("2001:db8:10::1"))
        );
        assert_eq!(
            refused(&|i| i.source = Clat6Source::Delegated {
                prefix: ip6("2001:db8:10::"),
                len: 80
            }),
            ClatError::DelegatedPrefix(ip6("2001:db8:10::"), 80)
        );
        assert_eq!(
            refused(&|i| i.nat64_prefix = (ip6("2001:db8::"), 32)),
            ClatError::Clat6InNat64(ip6("2001:db8:10:0:c1a7:200:5e10:2"))
        );
        assert_eq!(refused(&|i| i.uplink_mtu = 1279), ClatError::Mtu(1279));
        let clash: Ipv4Cidr = "192.0.0.0/24".parse().expect("subnet");
        assert_eq!(
            refused(&|i| i.subnet = clash),
            ClatError::SubnetClash(clash)
        );
        assert_eq!(
            refused(&|i| i.data_dir = "/var/lib/a b".to_owned()),
            ClatError::DataDir("/var/lib/a b".to_owned())
        );
    }

    #[test]
    fn the_iid_carries_the_tag_and_the_mac() {
        let mac: MacAddr = "aa:bb:cc:dd:ee:ff".parse().expect("mac");
        assert_eq!(iid(&mac), 0xc1a7_aabb_ccdd_eeff);
    }
}
