//! What the agent knows while it runs: the description in force, the
//! uplink, the live DHCP leases (from the journal at start, then from the
//! DHCP server's events) and when it last reloaded. `netvm status`,
//! `netvm leases`, the metrics and the names in security events are read
//! from here.

use crate::watch::Names;
use netvm_description::values::MacAddr;
use netvm_description::{System, UplinkAddressing};
use netvm_dhcp::{Event, Timestamp};
use netvm_events::control::{LastReload, LeaseInfo, LeaseState, UplinkStatus, VmStatus, Vms};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};

/// A live lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The holder's MAC.
    pub mac: MacAddr,
    /// The host name it sent, if any.
    pub hostname: Option<String>,
    /// When it ends (ms since the epoch).
    pub until: Timestamp,
}

/// The uplink as the agent last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Uplink {
    /// Addressed from the description.
    Static,
    /// The DHCP client has no lease yet.
    Waiting,
    /// A DHCP lease.
    Bound(netvm_uplink::Lease),
    /// The lease ended or was refused.
    Lost,
}

/// The agent's state.
#[derive(Debug)]
pub struct State {
    /// The description in force.
    pub system: System,
    /// The uplink (with several: the active one's lease).
    pub uplink: Uplink,
    /// With several uplinks: the one that carries the Internet.
    pub active_uplink: Option<netvm_description::values::IfName>,
    /// With several uplinks: each addressed one's lease (static ones as
    /// described), by interface.
    pub uplink_leases: BTreeMap<String, netvm_uplink::Lease>,
    /// With several uplinks: each one's state, for `netvm uplinks`.
    pub uplinks: Vec<netvm_uplink::choice::Status>,
    /// Live leases by address.
    pub leases: BTreeMap<Ipv4Addr, Lease>,
    /// Live DHCPv6 leases (pool and reserved) by address: the holder's MAC.
    pub leases6: BTreeMap<Ipv6Addr, MacAddr>,
    /// Successful reloads so far.
    pub reloads: u64,
    /// The last reload's outcome, if any.
    pub last_reload: Option<LastReload>,
}

impl State {
    /// The state at start, with the journal's live leases.
    pub fn new(system: System, leases: impl IntoIterator<Item = (Ipv4Addr, Lease)>) -> State {
        let uplink = match system.netvm.uplink().addressing {
            _ if system.netvm.managed_uplinks() => Uplink::Waiting,
            UplinkAddressing::Dhcp => Uplink::Waiting,
            _ => Uplink::Static,
        };
        State {
            system,
            uplink,
            active_uplink: None,
            uplink_leases: BTreeMap::new(),
            uplinks: Vec::new(),
            leases: leases.into_iter().collect(),
            leases6: BTreeMap::new(),
            reloads: 0,
            last_reload: None,
        }
    }

    /// Follows one DHCP event.
    pub fn lease_event(&mut self, event: &Event) {
        match event {
            Event::LeaseGranted {
                ip,
                mac,
                hostname,
                until,
                ..
            } => {
                self.leases.insert(
                    *ip,
                    Lease {
                        mac: *mac,
                        hostname: hostname.clone(),
                        until: *until,
                    },
                );
            }
            Event::LeaseReleased { ip, .. } | Event::LeaseExpired { ip, .. } => {
                self.leases.remove(ip);
            }
            _ => {}
        }
    }

    /// The uplink, for `netvm status`.
    pub fn uplink_status(&self) -> UplinkStatus {
        match &self.uplink {
            Uplink::Static => UplinkStatus::Static,
            Uplink::Waiting => UplinkStatus::Waiting,
            Uplink::Lost => UplinkStatus::Lost,
            Uplink::Bound(l) => UplinkStatus::Bound {
                address: format!("{}/{}", l.address, l.prefix),
                router: l.router,
                dns: l.dns.clone(),
                server: l.server,
                lease_secs: l.lease_secs,
            },
        }
    }

    /// Every lease, in address order.
    pub fn lease_list(&self, now: Timestamp) -> Vec<LeaseInfo> {
        self.leases
            .iter()
            .map(|(ip, l)| LeaseInfo {
                ip: *ip,
                mac: l.mac,
                hostname: l.hostname.clone(),
                vm: self.vm_of_mac(l.mac),
                expires_in_secs: l.until.0.saturating_sub(now.0) / 1000,
            })
            .collect()
    }

    fn vm_of_mac(&self, mac: MacAddr) -> Option<String> {
        self.system
            .endpoints()
            .find(|(_, _, e)| e.mac == mac)
            .map(|(name, _, _)| name.to_owned())
    }

    /// Every described VM with its address and whether it holds its lease.
    pub fn vms(&self, now: Timestamp) -> Vms {
        let described = self
            .system
            .vms
            .iter()
            .map(|vm| {
                let lease = self
                    .leases
                    .get(&vm.endpoint.ip)
                    .filter(|l| l.mac == vm.endpoint.mac);
                VmStatus {
                    name: vm.name.to_string(),
                    ip: vm.endpoint.ip,
                    mac: vm.endpoint.mac,
                    lease: if lease.is_some() {
                        LeaseState::Bound
                    } else {
                        LeaseState::None
                    },
                    expires_in_secs: lease.map(|l| l.until.0.saturating_sub(now.0) / 1000),
                }
            })
            .collect();
        let pool = self
            .leases
            .iter()
            .filter(|(_, l)| self.vm_of_mac(l.mac).is_none())
            .count();
        Vms {
            described,
            pool_clients: pool as u64,
        }
    }
}

impl Names for State {
    fn of_ip(&self, ip: &str) -> Option<String> {
        if let Ok(ip6) = ip.parse::<Ipv6Addr>() {
            // A DHCPv6 lease's holder (reserved or pool), by its MAC.
            let mac = self.leases6.get(&ip6)?;
            return self
                .of_mac(&mac.to_string())
                .or_else(|| Some(format!("pool client {mac}")));
        }
        let ip: Ipv4Addr = ip.parse().ok()?;
        self.system
            .endpoints()
            .find(|(_, _, e)| e.ip == ip)
            .map(|(name, _, _)| name.to_owned())
            .or_else(|| {
                let lease = self.leases.get(&ip)?;
                Some(
                    lease
                        .hostname
                        .clone()
                        .unwrap_or_else(|| format!("pool client {}", lease.mac)),
                )
            })
    }

    fn of_mac(&self, mac: &str) -> Option<String> {
        let mac: MacAddr = mac.parse().ok()?;
        self.vm_of_mac(mac).or_else(|| {
            let (_, lease) = self.leases.iter().find(|(_, l)| l.mac == mac)?;
            Some(
                lease
                    .hostname
                    .clone()
                    .unwrap_or_else(|| format!("pool client {mac}")),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_description::{parse, Format};

    #[test]
    fn an_ipv6_address_is_named_by_its_dhcpv6_lease() {
        let text = "[netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"a\"\n";
        let system = parse("t.toml", text, Format::Toml).expect("valid");
        let a_mac = system.vms[0].endpoint.mac;
        let mut state = State::new(system, Vec::new());
        let a6: Ipv6Addr = "fd00:1::65".parse().expect("ip");
        let guest6: Ipv6Addr = "fd00:1::1:0:c8".parse().expect("ip");
        let guest_mac: MacAddr = "02:ee:00:00:00:01".parse().expect("mac");
        state.leases6.insert(a6, a_mac);
        state.leases6.insert(guest6, guest_mac);
        assert_eq!(state.of_ip(&a6.to_string()).as_deref(), Some("a"));
        assert_eq!(
            state.of_ip(&guest6.to_string()).as_deref(),
            Some("pool client 02:ee:00:00:00:01")
        );
        assert_eq!(state.of_ip("fd00:1::99"), None);
    }
}
