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
use std::net::Ipv4Addr;

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
    /// The uplink.
    pub uplink: Uplink,
    /// Live leases by address.
    pub leases: BTreeMap<Ipv4Addr, Lease>,
    /// Successful reloads so far.
    pub reloads: u64,
    /// The last reload's outcome, if any.
    pub last_reload: Option<LastReload>,
}

impl State {
    /// The state at start, with the journal's live leases.
    pub fn new(system: System, leases: impl IntoIterator<Item = (Ipv4Addr, Lease)>) -> State {
        let uplink = match system.netvm.uplink.addressing {
            UplinkAddressing::Dhcp => Uplink::Waiting,
            _ => Uplink::Static,
        };
        State {
            system,
            uplink,
            leases: leases.into_iter().collect(),
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
