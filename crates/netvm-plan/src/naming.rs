//! DHCP reservations and DNS names derived from the address plan.

use netvm_description::{Role, System};
use serde::Serialize;
use std::net::Ipv4Addr;

/// A fixed DHCP assignment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    /// Who.
    pub name: String,
    /// Their MAC.
    pub mac: String,
    /// Their address.
    pub ip: Ipv4Addr,
}

/// What the DHCP server hands out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DhcpPlan {
    /// Server address (the net-vm).
    pub server: Ipv4Addr,
    /// Dynamic pool, `first-last`, if any.
    pub pool: Option<String>,
    /// Lease time in seconds.
    pub lease_time: u32,
    /// T1 in seconds.
    pub renew_time: u32,
    /// T2 in seconds.
    pub rebind_time: u32,
    /// Most dynamic leases.
    pub max_leases: u32,
    /// Reservations in address order.
    pub reservations: Vec<Reservation>,
}

/// A name the internal DNS answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsName {
    /// Fully qualified name.
    pub name: String,
    /// Its A record.
    pub ip: Ipv4Addr,
    /// Whether a PTR answers for the address too (inside the subnet).
    pub ptr: bool,
}

/// What the internal DNS serves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DnsPlan {
    /// Listening address (the net-vm).
    pub listen: Ipv4Addr,
    /// Authoritative zone.
    pub domain: String,
    /// Names, sorted.
    pub names: Vec<DnsName>,
    /// Upstream resolvers (empty: learned on the uplink).
    pub upstreams: Vec<String>,
}

pub(crate) fn dhcp(system: &System) -> DhcpPlan {
    let d = &system.dhcp;
    let mut reservations: Vec<Reservation> = system
        .endpoints()
        .filter(|(_, role, _)| *role != Role::NetVm)
        .map(|(name, _, e)| Reservation {
            name: name.to_owned(),
            mac: e.mac.to_string(),
            ip: e.ip,
        })
        .collect();
    reservations.sort_by_key(|r| r.ip);
    DhcpPlan {
        server: system.netvm.endpoint.ip,
        pool: d.pool.map(|p| p.to_string()),
        lease_time: d.lease_time.0,
        renew_time: d.renew_time.0,
        rebind_time: d.rebind_time.0,
        max_leases: d.max_leases,
        reservations,
    }
}

pub(crate) fn dns(system: &System) -> DnsPlan {
    let subnet = system.network.subnet;
    let endpoints = system.endpoints().map(|(_, _, e)| DnsName {
        name: e.fqdn.to_string(),
        ip: e.ip,
        ptr: true,
    });
    let records = system.dns.records.iter().map(|r| DnsName {
        name: r.name.to_string(),
        ip: r.ip,
        ptr: subnet.contains(r.ip),
    });
    let mut names: Vec<DnsName> = endpoints.chain(records).collect();
    names.sort_by(|a, b| a.name.cmp(&b.name));
    DnsPlan {
        listen: system.netvm.endpoint.ip,
        domain: system.network.domain.to_string(),
        names,
        upstreams: system
            .dns
            .upstreams
            .iter()
            .map(ToString::to_string)
            .collect(),
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
        let names: Vec<&str> = dhcp.reservations.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["host", "a"]);
        assert_eq!(
            dhcp.pool.as_deref(),
            Some("192.168.100.200-192.168.100.254")
        );
        assert_eq!(
            (dhcp.lease_time, dhcp.renew_time, dhcp.rebind_time),
            (3600, 1800, 3150)
        );

        let dns = dns(&system);
        let ptr = |name: &str| dns.names.iter().find(|n| n.name == name).map(|n| n.ptr);
        assert_eq!(ptr("updates.example.com"), Some(false));
        assert_eq!(ptr("nas.internal"), Some(true));
        assert_eq!(ptr("host.internal"), Some(true));
    }
}
