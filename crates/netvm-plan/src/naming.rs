//! The DHCP server's configuration and the internal DNS zone, derived
//! from the address plan: what the two servers run, as `netvm plan`
//! prints it. The zone's IPv6 half depends on the internal prefix in
//! use, which the uplink can delegate at run time: [`dns`] takes it.

use netvm_description::values::{DnsName as Name, DnsUpstream, DomainName, Ipv4Cidr, Ipv6Cidr};
use netvm_description::System;
use netvm_dhcp::ServerConfig;
use serde::Serialize;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A name the internal DNS answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsName {
    /// Fully qualified name.
    pub name: Name,
    /// Its A record.
    pub ip: Ipv4Addr,
    /// Its AAAA record: the endpoint's address in the internal prefix
    /// (none for `[dns] records`, or without IPv6).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip6: Option<Ipv6Addr>,
    /// Whether a PTR answers for the addresses too (inside the subnet,
    /// inside the prefix).
    pub ptr: bool,
}

/// What the internal DNS serves: its zone and its limits, the DNS
/// server's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsPlan {
    /// Listening address (the net-vm), port 53.
    pub listen: Ipv4Addr,
    /// The net-vm's IPv6 address in the internal prefix, port 53 too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen6: Option<Ipv6Addr>,
    /// Authoritative zone.
    pub domain: DomainName,
    /// The net-vm's own name (the zone's primary server in its SOA).
    pub server: Name,
    /// The internal subnet (reverse names under it belong to the zone).
    pub subnet: Ipv4Cidr,
    /// The internal IPv6 prefix in use (reverse names under it belong to
    /// the zone), if IPv6 is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefix6: Option<Ipv6Cidr>,
    /// Names, sorted.
    pub names: Vec<DnsName>,
    /// Upstream resolvers (empty: learned on the uplink).
    pub upstreams: Vec<DnsUpstream>,
    /// Most answers cached.
    pub cache_size: u32,
    /// Queries per second per client (0: no limit).
    pub client_rate: u32,
    /// Burst per client.
    pub client_burst: u32,
    /// Most questions waiting for upstreams at once.
    pub max_inflight: u32,
}

/// The DHCP server's configuration, reservations included.
pub(crate) fn dhcp(system: &System) -> ServerConfig {
    ServerConfig::from_system(system)
}

/// The internal DNS of `system` with `prefix6`, the internal IPv6 prefix
/// in use (the description's, `system.network.ipv6`, or one delegated to
/// the uplink; `None` without IPv6): every endpoint's AAAA is its
/// address in it ([`System::ipv6_in`]).
pub fn dns(system: &System, prefix6: Option<Ipv6Cidr>) -> DnsPlan {
    let subnet = system.network.subnet;
    let prefix6 = prefix6.map(|p| p.truncated());
    let endpoints = system.endpoints().map(|(_, _, e)| DnsName {
        name: e.fqdn.clone(),
        ip: e.ip,
        ip6: prefix6.map(|p| system.ipv6_in(e, p)),
        ptr: true,
    });
    let records = system.dns.records.iter().map(|r| DnsName {
        name: r.name.clone(),
        ip: r.ip,
        ip6: None,
        ptr: subnet.contains(r.ip),
    });
    let mut names: Vec<DnsName> = endpoints.chain(records).collect();
    names.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    DnsPlan {
        listen: system.netvm.endpoint.ip,
        listen6: prefix6.map(|p| system.ipv6_in(&system.netvm.endpoint, p)),
        domain: system.network.domain.clone(),
        server: system.netvm.endpoint.fqdn.clone(),
        subnet,
        prefix6,
        names,
        upstreams: system.dns.upstreams.clone(),
        cache_size: system.dns.cache_size,
        client_rate: system.dns.client_rate,
        client_burst: system.dns.client_burst,
        max_inflight: system.dns.max_inflight,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::{parse, Format};

    #[test]
    fn reservations_exclude_the_server_and_records_outside_get_no_ptr() {
        let text = "[netvm]\nmode = \"dev\"\n[netvm.uplink]\ninterface = \"eth0\"\n[host]\nuplink = \"eth9\"\ninternal_address = true\n\
            [[vm]]\nname = \"a\"\n\
            [dns]\nrecords = [{ name = \"updates.example.com\", ip = \"203.0.113.5\" }, { name = \"nas\", ip = \"192.168.100.50\" }]\n";
        let system = parse("t.toml", text, Format::Toml).expect("valid");
        let dhcp = dhcp(&system);
        let mut names: Vec<(Ipv4Addr, &str)> = dhcp
            .reservations
            .values()
            .map(|r| (r.ip, r.name.as_str()))
            .collect();
        names.sort();
        let names: Vec<&str> = names.into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["host", "a"]);
        assert_eq!(
            dhcp.pool.map(|p| p.to_string()).as_deref(),
            Some("192.168.100.200-192.168.100.254")
        );
        assert_eq!(
            (dhcp.lease_secs, dhcp.renew_secs, dhcp.rebind_secs),
            (3600, 1800, 3150)
        );
        // Printed as a list in address order.
        let json = serde_json::to_value(&dhcp).expect("json");
        assert_eq!(json["reservations"][0]["name"], "host");

        let dns = dns(&system, None);
        let ptr = |name: &str| {
            dns.names
                .iter()
                .find(|n| n.name.as_str() == name)
                .map(|n| n.ptr)
        };
        assert_eq!(ptr("updates.example.com"), Some(false));
        assert_eq!(ptr("nas.internal"), Some(true));
        assert_eq!(ptr("host.internal"), Some(true));
        assert!(dns.names.iter().all(|n| n.ip6.is_none()));
        assert_eq!((dns.listen6, dns.prefix6), (None, None));
        let json = serde_json::to_value(&dns).expect("json");
        assert!(json.get("listen6").is_none() && json["names"][0].get("ip6").is_none());
    }

    #[test]
    fn every_endpoint_has_an_aaaa_in_the_prefix_in_use() {
        let text = "[network]\nipv6_prefix = \"fd12:3456:789a::/64\"\n[netvm]\nmode = \"dev\"\n\
            [netvm.uplink]\ninterface = \"eth0\"\n[host]\nuplink = \"eth9\"\ninternal_address = true\n\
            [[vm]]\nname = \"a\"\nip = \"192.168.100.10\"\n\
            [dns]\nrecords = [{ name = \"nas\", ip = \"192.168.100.50\" }]\n";
        let system = parse("t.toml", text, Format::Toml).expect("valid");
        let described = system.network.ipv6.map(|v| v.prefix);
        let ip6 = |plan: &DnsPlan, name: &str| {
            plan.names
                .iter()
                .find(|n| n.name.as_str() == name)
                .and_then(|n| n.ip6)
                .map(|ip| ip.to_string())
        };
        let plan = dns(&system, described);
        assert_eq!(
            ip6(&plan, "a.internal").as_deref(),
            Some("fd12:3456:789a::a")
        );
        assert_eq!(
            ip6(&plan, "net-vm.internal").as_deref(),
            Some("fd12:3456:789a::1")
        );
        assert!(ip6(&plan, "host.internal").is_some());
        assert_eq!(ip6(&plan, "nas.internal"), None, "records are IPv4 only");
        assert_eq!(
            plan.listen6.map(|ip| ip.to_string()).as_deref(),
            Some("fd12:3456:789a::1")
        );
        assert_eq!(plan.prefix6, described);
        // A delegated prefix replaces the description's.
        let delegated: Ipv6Cidr = "2001:db8:0:7::/64".parse().expect("prefix");
        let plan = dns(&system, Some(delegated));
        assert_eq!(ip6(&plan, "a.internal").as_deref(), Some("2001:db8:0:7::a"));
        assert_eq!(
            plan.listen6.map(|ip| ip.to_string()).as_deref(),
            Some("2001:db8:0:7::1")
        );
    }
}
