//! The DHCP server's configuration and the internal DNS zone, derived
//! from the address plan: what the two servers run, as `netvm plan`
//! prints it.

use netvm_description::values::{DnsName as Name, DnsUpstream, DomainName, Ipv4Cidr};
use netvm_description::System;
use netvm_dhcp::ServerConfig;
use serde::Serialize;
use std::net::Ipv4Addr;

/// A name the internal DNS answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsName {
    /// Fully qualified name.
    pub name: Name,
    /// Its A record.
    pub ip: Ipv4Addr,
    /// Whether a PTR answers for the address too (inside the subnet).
    pub ptr: bool,
}

/// What the internal DNS serves: its zone and its limits, the DNS
/// server's whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsPlan {
    /// Listening address (the net-vm), port 53.
    pub listen: Ipv4Addr,
    /// Authoritative zone.
    pub domain: DomainName,
    /// The net-vm's own name (the zone's primary server in its SOA).
    pub server: Name,
    /// The internal subnet (reverse names under it belong to the zone).
    pub subnet: Ipv4Cidr,
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

pub(crate) fn dns(system: &System) -> DnsPlan {
    let subnet = system.network.subnet;
    let endpoints = system.endpoints().map(|(_, _, e)| DnsName {
        name: e.fqdn.clone(),
        ip: e.ip,
        ptr: true,
    });
    let records = system.dns.records.iter().map(|r| DnsName {
        name: r.name.clone(),
        ip: r.ip,
        ptr: subnet.contains(r.ip),
    });
    let mut names: Vec<DnsName> = endpoints.chain(records).collect();
    names.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    DnsPlan {
        listen: system.netvm.endpoint.ip,
        domain: system.network.domain.clone(),
        server: system.netvm.endpoint.fqdn.clone(),
        subnet,
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

        let dns = dns(&system);
        let ptr = |name: &str| {
            dns.names
                .iter()
                .find(|n| n.name.as_str() == name)
                .map(|n| n.ptr)
        };
        assert_eq!(ptr("updates.example.com"), Some(false));
        assert_eq!(ptr("nas.internal"), Some(true));
        assert_eq!(ptr("host.internal"), Some(true));
    }
}
