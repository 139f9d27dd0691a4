//! The lease table: who holds which address, in which state, until when;
//! indexed by address and by client, with one deadline queue for every
//! timer (offer hold, lease expiry, probation).
//!
//! Memory is bounded by the addresses the server can hand out: a client
//! without a lease is remembered (for giving it its old address back) only
//! until its old address goes to someone else.

use crate::client::ClientKey;
use crate::time::Timestamp;
use netvm_description::values::MacAddr;
use serde::Serialize;
use std::collections::{BTreeSet, HashMap};
use std::net::Ipv4Addr;

/// Where an address stands. Each state carries its own timer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase", tag = "state")]
pub enum LeaseState {
    /// Offered to the client, held until the deadline.
    Offered {
        /// When the offer lapses.
        until: Timestamp,
    },
    /// Acknowledged: the client may use it until the deadline.
    Bound {
        /// When the lease expires.
        until: Timestamp,
    },
    /// Declined by a client (someone else uses it): out of use until the
    /// deadline.
    Probation {
        /// When it may be handed out again.
        until: Timestamp,
    },
}

impl LeaseState {
    /// The state's deadline.
    pub fn deadline(&self) -> Timestamp {
        match *self {
            LeaseState::Offered { until }
            | LeaseState::Bound { until }
            | LeaseState::Probation { until } => until,
        }
    }
}

/// One address in use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Lease {
    /// The address.
    pub ip: Ipv4Addr,
    /// Who holds it (none in probation).
    pub client: Option<ClientKey>,
    /// The holder's hardware address.
    pub mac: MacAddr,
    /// Host name the client gave, sanitised to a DNS label.
    pub hostname: Option<String>,
    /// State and timer.
    #[serde(flatten)]
    pub state: LeaseState,
}

/// Every lease, by address and by client.
#[derive(Debug, Default)]
pub struct LeaseTable {
    by_ip: HashMap<Ipv4Addr, Lease>,
    by_client: HashMap<ClientKey, Ipv4Addr>,
    /// Last address of clients that hold none now.
    previous: HashMap<ClientKey, Ipv4Addr>,
    previous_owner: HashMap<Ipv4Addr, ClientKey>,
    deadlines: BTreeSet<(Timestamp, Ipv4Addr)>,
    /// Addresses in probation, by deadline.
    probation: BTreeSet<(Timestamp, Ipv4Addr)>,
}

impl LeaseTable {
    /// The lease on `ip`.
    pub fn by_ip(&self, ip: Ipv4Addr) -> Option<&Lease> {
        self.by_ip.get(&ip)
    }

    /// The lease `client` holds now.
    pub fn by_client(&self, client: &ClientKey) -> Option<&Lease> {
        self.by_ip.get(self.by_client.get(client)?)
    }

    /// The address `client` held last, if nobody took it since.
    pub fn previous(&self, client: &ClientKey) -> Option<Ipv4Addr> {
        self.previous.get(client).copied()
    }

    /// Puts `lease` in the table, replacing whatever held its address and
    /// whatever its client held before.
    pub fn insert(&mut self, lease: Lease) {
        self.remove(lease.ip);
        if let Some(client) = &lease.client {
            if let Some(old) = self.by_client.get(client).copied() {
                self.remove(old);
            }
            self.by_client.insert(client.clone(), lease.ip);
            self.forget_previous_of(client);
        }
        if let Some(owner) = self.previous_owner.remove(&lease.ip) {
            self.previous.remove(&owner);
        }
        self.deadlines.insert((lease.state.deadline(), lease.ip));
        if let LeaseState::Probation { until } = lease.state {
            self.probation.insert((until, lease.ip));
        }
        self.by_ip.insert(lease.ip, lease);
    }

    fn forget_previous_of(&mut self, client: &ClientKey) {
        if let Some(ip) = self.previous.remove(client) {
            self.previous_owner.remove(&ip);
        }
    }

    /// Removes the lease on `ip`; its client is remembered as its last
    /// holder.
    pub fn remove(&mut self, ip: Ipv4Addr) -> Option<Lease> {
        let lease = self.by_ip.remove(&ip)?;
        self.deadlines.remove(&(lease.state.deadline(), ip));
        self.probation.remove(&(lease.state.deadline(), ip));
        if let Some(client) = &lease.client {
            self.by_client.remove(client);
            self.forget_previous_of(client);
            if let Some(other) = self.previous_owner.insert(ip, client.clone()) {
                self.previous.remove(&other);
            }
            self.previous.insert(client.clone(), ip);
        }
        Some(lease)
    }

    /// The earliest deadline.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.deadlines.first().map(|(at, _)| *at)
    }

    /// Removes and returns every lease whose deadline is at or before `now`.
    pub fn expire(&mut self, now: Timestamp) -> Vec<Lease> {
        let mut expired = Vec::new();
        while let Some(&(at, ip)) = self.deadlines.first() {
            if at > now {
                break;
            }
            if let Some(lease) = self.remove(ip) {
                expired.push(lease);
            }
        }
        expired
    }

    /// Addresses in probation now.
    pub fn probation_count(&self) -> usize {
        self.probation.len()
    }

    /// The address whose probation ends first.
    pub fn oldest_probation(&self) -> Option<Ipv4Addr> {
        self.probation.first().map(|(_, ip)| *ip)
    }

    /// The address of the offer that lapses first among those `keep`
    /// does not protect. Offers have the shortest deadlines, so the walk
    /// from the earliest deadline ends quickly.
    pub fn oldest_offer(&self, keep: impl Fn(&Lease) -> bool) -> Option<Ipv4Addr> {
        self.deadlines.iter().find_map(|(_, ip)| {
            let lease = self.by_ip.get(ip)?;
            (matches!(lease.state, LeaseState::Offered { .. }) && !keep(lease)).then_some(*ip)
        })
    }

    /// Every lease, in address order.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        let mut leases: Vec<&Lease> = self.by_ip.values().collect();
        leases.sort_by_key(|l| l.ip);
        leases.into_iter()
    }

    /// How many leases are in the table.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_ip.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bound(ip: u8, client: u8, until: u64) -> Lease {
        Lease {
            ip: Ipv4Addr::new(10, 0, 0, ip),
            client: Some(ClientKey::Mac(MacAddr([2, 0, 0, 0, 0, client]))),
            mac: MacAddr([2, 0, 0, 0, 0, client]),
            hostname: None,
            state: LeaseState::Bound {
                until: Timestamp(until),
            },
        }
    }

    #[test]
    fn a_client_holds_one_address_and_is_remembered_until_it_is_reused() {
        let mut table = LeaseTable::default();
        table.insert(bound(1, 7, 100));
        table.insert(bound(2, 7, 100));
        assert_eq!(table.len(), 1, "moving to .2 gives up .1");
        let key = ClientKey::Mac(MacAddr([2, 0, 0, 0, 0, 7]));
        assert_eq!(
            table.by_client(&key).map(|l| l.ip),
            Some(Ipv4Addr::new(10, 0, 0, 2))
        );

        let expired = table.expire(Timestamp(100));
        assert_eq!(expired.len(), 1);
        assert_eq!(table.previous(&key), Some(Ipv4Addr::new(10, 0, 0, 2)));
        table.insert(bound(2, 8, 200));
        assert_eq!(table.previous(&key), None, "someone else has it now");
        assert_eq!(table.next_deadline(), Some(Timestamp(200)));
    }
}
