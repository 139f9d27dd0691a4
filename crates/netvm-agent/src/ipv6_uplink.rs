//! What the uplink has taught the agent about IPv6, and what follows
//! from it. Pure: the uplink's parts (the router advertisement listener,
//! the DHCPv6 client, the NAT64 probe, the IPv4 client) report into
//! [`Learned`]; [`decide`] says which internal prefix is routed, which
//! NAT64 prefix is used, whether the CLAT runs and which IPv6 DNS servers
//! the uplink offers. The agent re-plans the data plane when the
//! [`Decision`] changes, and only then.
//!
//! * **Delegated prefix:** the DHCPv6 client's IA_PD, while it is valid.
//!   The internal network then uses its first /64, routed.
//! * **NAT64 prefix:** the router's PREF64 option (RFC 8781) first, then
//!   what the RFC 7050 probe found, then the description's
//!   `nat64_prefix`.
//! * **CLAT:** on when the uplink has no IPv4 (no DHCPv4 lease, no
//!   static IPv4), has a NAT64 prefix and a global IPv6 prefix for the
//!   CLAT's address (the delegated prefix's last /64, or the advertised
//!   SLAAC /64; `netvm_plan::clat` picks the address in it).
//!   A DHCPv4 lease arriving later turns it off: native IPv4 wins.

use netvm_description::values::Ipv6Cidr;
use netvm_description::{System, UplinkAddressing, UplinkIpv6};
use netvm_plan::clat::Clat6Source;
use std::net::Ipv6Addr;

/// What the uplink has taught the agent so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Learned {
    /// The last router advertisement accepted on the uplink, if any
    /// router still claims to be one (router lifetime above zero).
    pub router: Option<RouterInfo>,
    /// A prefix the DHCPv6 client holds (IA_PD).
    pub delegated: Option<Ipv6Cidr>,
    /// IPv6 DNS servers from the DHCPv6 client.
    pub dhcp6_dns: Vec<Ipv6Addr>,
    /// The NAT64 prefix the RFC 7050 probe found, if it ran.
    pub probed_nat64: Option<Ipv6Cidr>,
    /// Whether the uplink has IPv4 (a DHCPv4 lease, or static IPv4).
    pub has_ipv4: bool,
}

/// What a router advertisement on the uplink said that matters here.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouterInfo {
    /// M: addresses from DHCPv6.
    pub managed: bool,
    /// O: other configuration from DHCPv6.
    pub other: bool,
    /// The first /64 advertised for SLAAC (A flag), the uplink's own.
    pub slaac: Option<Ipv6Cidr>,
    /// Its RDNSS servers (RFC 8106).
    pub dns: Vec<Ipv6Addr>,
    /// Its PREF64 (RFC 8781).
    pub nat64: Option<Ipv6Cidr>,
}

/// What the data plane and the servers are to do with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decision {
    /// The delegated prefix the internal network routes, if any.
    pub delegated: Option<Ipv6Cidr>,
    /// The NAT64 prefix in use, if any.
    pub nat64: Option<Ipv6Cidr>,
    /// The CLAT, when it runs: where its IPv6 address comes from (the
    /// uplink's SLAAC /64, answered for by proxy NDP, or the last /64 of
    /// a delegated prefix, routed to us; `netvm_plan::clat` makes it).
    pub clat: Option<Clat6Source>,
    /// IPv6 DNS servers of the uplink, router's first, each once.
    pub dns: Vec<Ipv6Addr>,
}

/// Whether the uplink has IPv4 without a DHCP client (static).
pub fn static_ipv4(system: &System) -> bool {
    matches!(
        system.netvm.uplink().addressing,
        UplinkAddressing::Static { .. }
    )
}

/// What follows from `learned` for `system`.
pub fn decide(system: &System, learned: &Learned) -> Decision {
    let uplink = system.netvm.uplink();
    if uplink.ipv6 == UplinkIpv6::Off {
        return Decision::default();
    }
    let mut dns: Vec<Ipv6Addr> = Vec::new();
    let from_router = learned.router.iter().flat_map(|r| r.dns.iter());
    let fixed = match &uplink.ipv6 {
        UplinkIpv6::Static { dns, .. } => dns.as_slice(),
        _ => &[],
    };
    for ip in fixed
        .iter()
        .chain(from_router)
        .chain(learned.dhcp6_dns.iter())
    {
        if !dns.contains(ip) {
            dns.push(*ip);
        }
    }
    let delegated = learned
        .delegated
        .filter(|p| p.prefix() <= 64 && (p.is_global_unicast() || p.is_unique_local()));
    let nat64 = learned
        .router
        .as_ref()
        .and_then(|r| r.nat64)
        .or(learned.probed_nat64)
        .or(uplink.nat64_prefix);
    let has_ipv4 = learned.has_ipv4 || static_ipv4(system);
    let clat = match (nat64, has_ipv4) {
        (Some(_), false) => clat_source(learned, delegated),
        _ => None,
    };
    Decision {
        delegated,
        nat64,
        clat,
        dns,
    }
}

/// Where the CLAT's address comes from: a delegated prefix when there
/// is one (routed to us; the internal network uses its first /64, the
/// CLAT its last), else the advertised SLAAC /64.
fn clat_source(learned: &Learned, delegated: Option<Ipv6Cidr>) -> Option<Clat6Source> {
    if let Some(pd) = delegated {
        return Some(Clat6Source::Delegated {
            prefix: pd.network(),
            len: pd.prefix(),
        });
    }
    let slaac = learned.router.as_ref()?.slaac?;
    Some(Clat6Source::Slaac(slaac.network()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::{parse, Format};

    fn system(extra: &str) -> System {
        let text = format!("[netvm.uplink]\ninterface = \"eth0\"\n{extra}[[vm]]\nname = \"a\"\n");
        parse("t.toml", &text, Format::Toml).expect("valid")
    }

    fn cidr(text: &str) -> Ipv6Cidr {
        text.parse().expect("cidr")
    }

    fn ip(text: &str) -> Ipv6Addr {
        text.parse().expect("ip")
    }

    fn router(nat64: Option<&str>) -> RouterInfo {
        RouterInfo {
            managed: false,
            other: true,
            slaac: Some(cidr("2001:db8:10::/64")),
            dns: vec![ip("2001:db8:10::1")],
            nat64: nat64.map(cidr),
        }
    }

    #[test]
    fn an_ipv6_only_uplink_with_pref64_runs_the_clat_in_the_slaac_prefix() {
        let learned = Learned {
            router: Some(router(Some("64:ff9b::/96"))),
            ..Learned::default()
        };
        let d = decide(&system(""), &learned);
        assert_eq!(d.nat64, Some(cidr("64:ff9b::/96")));
        assert_eq!(d.clat, Some(Clat6Source::Slaac(ip("2001:db8:10::"))));
        assert_eq!(d.dns, [ip("2001:db8:10::1")]);
        assert_eq!(d.delegated, None);
    }

    #[test]
    fn native_ipv4_turns_the_clat_off() {
        let learned = Learned {
            router: Some(router(Some("64:ff9b::/96"))),
            has_ipv4: true,
            ..Learned::default()
        };
        assert_eq!(decide(&system(""), &learned).clat, None);
        let fixed = system(
            "addressing = \"static\"\naddress = \"203.0.113.2/24\"\ngateway = \"203.0.113.1\"\n",
        );
        let learned = Learned {
            router: Some(router(Some("64:ff9b::/96"))),
            ..Learned::default()
        };
        assert_eq!(decide(&fixed, &learned).clat, None);
    }

    #[test]
    fn a_delegated_prefix_is_routed_and_hosts_the_clat_in_its_last_64() {
        let learned = Learned {
            router: Some(router(None)),
            delegated: Some(cidr("2001:db8:100:ab00::/56")),
            probed_nat64: Some(cidr("64:ff9b::/96")),
            dhcp6_dns: vec![ip("2001:db8:10::1"), ip("2001:db8:10::53")],
            ..Learned::default()
        };
        let d = decide(&system(""), &learned);
        assert_eq!(d.delegated, Some(cidr("2001:db8:100:ab00::/56")));
        assert_eq!(
            d.clat,
            Some(Clat6Source::Delegated {
                prefix: ip("2001:db8:100:ab00::"),
                len: 56
            })
        );
        assert_eq!(d.dns, [ip("2001:db8:10::1"), ip("2001:db8:10::53")]);
    }

    #[test]
    fn pref64_wins_over_the_probe_and_the_probe_over_the_description() {
        let s = system("nat64_prefix = \"2001:db8:64::/96\"\n");
        let mut learned = Learned {
            router: Some(router(None)),
            ..Learned::default()
        };
        assert_eq!(decide(&s, &learned).nat64, Some(cidr("2001:db8:64::/96")));
        learned.probed_nat64 = Some(cidr("2001:db8:77::/96"));
        assert_eq!(decide(&s, &learned).nat64, Some(cidr("2001:db8:77::/96")));
        learned.router = Some(router(Some("64:ff9b::/96")));
        assert_eq!(decide(&s, &learned).nat64, Some(cidr("64:ff9b::/96")));
    }

    #[test]
    fn nothing_follows_when_the_uplinks_ipv6_is_off_or_nothing_was_learned() {
        let off = system("ipv6 = \"off\"\n");
        let learned = Learned {
            router: Some(router(Some("64:ff9b::/96"))),
            delegated: Some(cidr("2001:db8:100::/56")),
            ..Learned::default()
        };
        assert_eq!(decide(&off, &learned), Decision::default());
        assert_eq!(
            decide(&system(""), &Learned::default()),
            Decision::default()
        );
        // A NAT64 prefix without a global prefix for the CLAT: no CLAT.
        let s = system("nat64_prefix = \"64:ff9b::/96\"\n");
        assert_eq!(decide(&s, &Learned::default()).clat, None);
    }
}
