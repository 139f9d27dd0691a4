//! What the server needs to know, taken once from the validated system
//! description: its address, the subnet and options it hands out, the
//! pool, the reservations and the limits.
//!
//! The planner (`netvm-plan`) carries this configuration in the Net VM's
//! plan and `netvm plan` prints it (serde), so what is printed is what
//! the server runs; reservations print as a list in address order.

use netvm_description::values::{Ipv4Cidr, Ipv4Range, MacAddr};
use netvm_description::{Role, System};
use serde::Serialize;
use std::collections::HashMap;
use std::net::Ipv4Addr;

/// A fixed assignment: this MAC always gets this address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Reservation {
    /// The address.
    pub ip: Ipv4Addr,
    /// The VM (or `host`) it belongs to.
    pub name: String,
}

/// The server's settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerConfig {
    /// Our address: server identifier, router and DNS server.
    pub server_ip: Ipv4Addr,
    /// The internal subnet.
    pub subnet: Ipv4Cidr,
    /// Domain name (option 15).
    pub domain: String,
    /// Interface MTU (option 26).
    pub mtu: u16,
    /// Lease time in seconds.
    pub lease_secs: u32,
    /// T1 in seconds.
    pub renew_secs: u32,
    /// T2 in seconds.
    pub rebind_secs: u32,
    /// Dynamic pool.
    pub pool: Option<Ipv4Range>,
    /// Reservations by MAC (printed as a list in address order).
    #[serde(serialize_with = "reservations_in_order")]
    pub reservations: HashMap<MacAddr, Reservation>,
    /// Most dynamic leases (offered or bound) at once.
    pub max_leases: u32,
    /// Sustained requests per second per MAC.
    pub per_mac_rate: u32,
    /// Request burst per MAC.
    pub per_mac_burst: u32,
    /// Classless static routes (option 121): destination, gateway.
    pub routes: Vec<(Ipv4Cidr, Ipv4Addr)>,
    /// Rapid commit enabled.
    pub rapid_commit: bool,
    /// Relay agents whose messages are served.
    pub relays: Vec<Ipv4Addr>,
    /// How long an offered pool address is held for its client, in
    /// seconds; an offer gives way earlier when the pool has no free
    /// address left.
    pub offer_hold_secs: u32,
    /// How long a declined pool address stays out of use, in seconds
    /// (RFC 2131 section 3.1.5 leaves the period to the server).
    pub probation_secs: u32,
    /// Most pool addresses in probation at once.
    pub probation_max: u32,
}

/// One reservation as printed: who, their MAC, their address.
#[derive(Serialize)]
struct ReservationRow<'a> {
    name: &'a str,
    mac: MacAddr,
    ip: Ipv4Addr,
}

/// Reservations as a list in address order, so the output is stable.
fn reservations_in_order<S: serde::Serializer>(
    reservations: &HashMap<MacAddr, Reservation>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut rows: Vec<ReservationRow<'_>> = reservations
        .iter()
        .map(|(mac, r)| ReservationRow {
            name: &r.name,
            mac: *mac,
            ip: r.ip,
        })
        .collect();
    rows.sort_by_key(|r| (r.ip, r.mac));
    serializer.collect_seq(rows)
}

impl ServerConfig {
    /// The settings for the net-vm of `system`.
    pub fn from_system(system: &System) -> ServerConfig {
        let d = &system.dhcp;
        let reservations = system
            .endpoints()
            .filter(|(_, role, _)| *role != Role::NetVm)
            .map(|(name, _, e)| {
                let reservation = Reservation {
                    ip: e.ip,
                    name: name.to_owned(),
                };
                (e.mac, reservation)
            })
            .collect();
        ServerConfig {
            server_ip: system.netvm.endpoint.ip,
            subnet: system.network.subnet,
            domain: system.network.domain.to_string(),
            mtu: system.network.mtu,
            lease_secs: d.lease_time.0,
            renew_secs: d.renew_time.0,
            rebind_secs: d.rebind_time.0,
            pool: d.pool,
            reservations,
            max_leases: d.max_leases,
            per_mac_rate: d.per_mac_rate,
            per_mac_burst: d.per_mac_burst,
            routes: d
                .routes
                .iter()
                .map(|r| (r.destination, r.gateway))
                .collect(),
            rapid_commit: d.rapid_commit,
            relays: d.relays.clone(),
            offer_hold_secs: d.offer_hold.0,
            probation_secs: d.probation.0,
            probation_max: d.probation_max,
        }
    }
}
