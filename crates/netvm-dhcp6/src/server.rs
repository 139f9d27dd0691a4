//! The internal network's stateful DHCPv6 server (RFC 8415), IA_NA only:
//! every described VM gets its reserved address, keyed by the Ethernet
//! source MAC of its frames (passed in by the driver), never by its DUID;
//! an undescribed MAC gets a pool address, the same one as long as its
//! lease lives. No sockets and no clock: the driver passes the time, the
//! frame's source MAC and the UDP payload to [`Server6::handle`], makes
//! each granted `(address, MAC)` effective in the data plane, then sends
//! the reply ([`Outcome`]); it runs [`Server6::tick`] at
//! [`Server6::next_deadline`].
//!
//! Served: Solicit (Advertise, or Reply with Rapid Commit when the client
//! asks and the configuration allows), Request, Renew, Rebind, Confirm,
//! Release, Decline, Information-request. IA_TA and IA_PD are answered
//! with NoAddrsAvail and NoPrefixAvail. Relay messages, server-only types
//! and messages breaking section 16's identifier rules are dropped with a
//! named [`DropReason`]. Nothing here panics or loops on any input.
//!
//! Guarantees: no two leases share an address; a described MAC only ever
//! holds its reserved address; a pool address is never a reserved one;
//! every reply echoes the client's transaction-id and Client Identifier.
//! A client naming an address that is not its own is given its own (or,
//! renewing or rebinding, told NoBinding, so it starts over with a
//! Request).

mod config;
mod leases;
mod reply;
mod wire;

pub use config::{
    duid_ll, ConfigError, Server6Config, EMPTY_POOL, MAX_DNS, MAX_SEARCH, POOL_IID_BASE,
};
pub use leases::Lease6;
pub use reply::ReplyKind;
pub use wire::{parse as parse_message, ClientMessage, DropReason, IaNa, MessageKind, MAX_MESSAGE};

use config::Checked;
use dhcproto::v6::Status;
use leases::Table;
use netvm_description::values::MacAddr;
use reply::{Draft, IaAnswer};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::net::Ipv6Addr;

/// Milliseconds on the driver's clock. The I/O driver uses the system
/// clock (since the Unix epoch) so that restored leases keep their
/// meaning across a reboot.
pub type Millis = u64;

/// A change to the leases, or something worth reporting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "event")]
pub enum Event6 {
    /// A client was given an address it did not hold: add `(ip, mac)` to
    /// the data plane before the reply leaves.
    LeaseGranted {
        /// The address.
        ip: Ipv6Addr,
        /// The client's MAC.
        mac: MacAddr,
        /// Expiry.
        until: Millis,
    },
    /// A client's lease was extended (Request, Renew or Rebind for the
    /// address it holds); `(ip, mac)` should already be in the data plane.
    LeaseRenewed {
        /// The address.
        ip: Ipv6Addr,
        /// The client's MAC.
        mac: MacAddr,
        /// Expiry.
        until: Millis,
    },
    /// A client released its address: remove `(ip, mac)`.
    LeaseReleased {
        /// The address.
        ip: Ipv6Addr,
        /// The client's MAC.
        mac: MacAddr,
    },
    /// A lease ran out: remove `(ip, mac)`.
    LeaseExpired {
        /// The address.
        ip: Ipv6Addr,
        /// The client's MAC.
        mac: MacAddr,
    },
    /// A client reported its address in use by someone else: remove
    /// `(ip, mac)`; a pool address is held back for a valid lifetime.
    AddressDeclined {
        /// The address.
        ip: Ipv6Addr,
        /// The client's MAC.
        mac: MacAddr,
    },
    /// A lease undone by the driver ([`Server6::revoke`]) because it could
    /// not be made effective: remove `(ip, mac)` if it is there.
    LeaseRevoked {
        /// The address.
        ip: Ipv6Addr,
        /// The client's MAC.
        mac: MacAddr,
    },
    /// An undescribed MAC asked for an address and the pool had none.
    PoolExhausted {
        /// The client's MAC.
        mac: MacAddr,
    },
}

impl Event6 {
    /// The `(ip, mac)` a reply grants (new or renewed), which must be in
    /// the data plane before the reply is sent.
    pub fn grant(&self) -> Option<(Ipv6Addr, MacAddr)> {
        match self {
            Event6::LeaseGranted { ip, mac, .. } | Event6::LeaseRenewed { ip, mac, .. } => {
                Some((*ip, *mac))
            }
            _ => None,
        }
    }

    /// The `(ip, mac)` to take out of the data plane.
    pub fn removal(&self) -> Option<(Ipv6Addr, MacAddr)> {
        match self {
            Event6::LeaseReleased { ip, mac }
            | Event6::LeaseExpired { ip, mac }
            | Event6::AddressDeclined { ip, mac }
            | Event6::LeaseRevoked { ip, mac } => Some((*ip, *mac)),
            _ => None,
        }
    }
}

/// A reply: the UDP payload to send from port 547 to the client's source
/// address and port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply6 {
    /// Advertise or Reply.
    pub kind: ReplyKind,
    /// The DHCPv6 message.
    pub bytes: Vec<u8>,
}

/// What came of one message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The reply, if any. Send it only after every [`Event6::grant`] of
    /// `events` is in the data plane.
    pub reply: Option<Reply6>,
    /// Lease changes (expiries noticed on the way included).
    pub events: Vec<Event6>,
    /// Why the message was dropped, if it was.
    pub dropped: Option<DropReason>,
}

impl Outcome {
    /// The `(ip, mac)` pairs the reply grants.
    pub fn grants(&self) -> impl Iterator<Item = (Ipv6Addr, MacAddr)> + '_ {
        self.events.iter().filter_map(Event6::grant)
    }

    /// Whether the leases changed (a snapshot is due).
    pub fn changed(&self) -> bool {
        self.events
            .iter()
            .any(|e| !matches!(e, Event6::PoolExhausted { .. }))
    }

    fn discarded(reason: DropReason, events: Vec<Event6>) -> Outcome {
        Outcome {
            reply: None,
            events,
            dropped: Some(reason),
        }
    }
}

/// Counters since start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counters6 {
    /// Messages received.
    pub received: u64,
    /// Valid messages by type.
    pub messages: BTreeMap<&'static str, u64>,
    /// Advertise messages sent.
    pub advertise: u64,
    /// Reply messages sent.
    pub reply: u64,
    /// Dropped messages by reason.
    pub dropped: BTreeMap<&'static str, u64>,
    /// Grants undone by the driver.
    pub revoked: u64,
}

/// The server: configuration, leases, counters.
#[derive(Debug, Clone)]
pub struct Server6 {
    checked: Checked,
    table: Table,
    counters: Counters6,
}

/// How a lease came to be for a client, for the event.
fn grant_event(previous: Option<&Lease6>, lease: &Lease6) -> Event6 {
    match previous {
        Some(old) if old.ip == lease.ip => Event6::LeaseRenewed {
            ip: lease.ip,
            mac: lease.mac,
            until: lease.expires_at,
        },
        _ => Event6::LeaseGranted {
            ip: lease.ip,
            mac: lease.mac,
            until: lease.expires_at,
        },
    }
}

impl Server6 {
    /// A server with no leases, or why `config` cannot be served.
    pub fn new(config: Server6Config) -> Result<Server6, ConfigError> {
        Ok(Server6 {
            checked: Checked::new(config)?,
            table: Table::default(),
            counters: Counters6 {
                messages: MessageKind::ALL.iter().map(|k| (k.name(), 0)).collect(),
                dropped: DropReason::ALL.iter().map(|r| (r.name(), 0)).collect(),
                ..Counters6::default()
            },
        })
    }

    /// The configuration.
    pub fn config(&self) -> &Server6Config {
        &self.checked.config
    }

    /// The counters.
    pub fn counters(&self) -> &Counters6 {
        &self.counters
    }

    /// Every live lease, by MAC: the snapshot to persist, and the
    /// `(ip, mac)` pairs the data plane must hold.
    pub fn leases(&self) -> Vec<Lease6> {
        self.table.leases().cloned().collect()
    }

    /// Replaces the leases with `leases` (a snapshot), keeping those that
    /// still fit the configuration at `now`; returns the ones left out:
    /// run out, outside the prefix, a described MAC with another address
    /// than its reservation, an address reserved for another MAC, outside
    /// the pool, past `max_leases`, or a MAC or address seen twice.
    pub fn restore(&mut self, now: Millis, leases: Vec<Lease6>) -> Vec<Lease6> {
        self.table.clear();
        let mut rejected = Vec::new();
        let mut pool_leases = 0usize;
        for lease in leases {
            let config = &self.checked.config;
            let fits = match self.checked.reserved_by_mac.get(&lease.mac) {
                Some(reserved) => *reserved == lease.ip,
                None => {
                    leases::in_pool(config, lease.ip)
                        && !self.checked.reserved_ips.contains(&lease.ip)
                        && pool_leases < config.max_leases
                }
            };
            let fresh = self.table.get(lease.mac).is_none()
                && self.table.holder(lease.ip).is_none()
                && (3..=130).contains(&lease.duid.len());
            if fits && fresh && lease.expires_at > now {
                if !self.checked.reserved_by_mac.contains_key(&lease.mac) {
                    pool_leases += 1;
                }
                self.table.insert(lease);
            } else {
                rejected.push(lease);
            }
        }
        rejected
    }

    /// Ends the leases that ran out by `now`.
    pub fn tick(&mut self, now: Millis) -> Vec<Event6> {
        self.table
            .expire(now)
            .into_iter()
            .map(|l| Event6::LeaseExpired {
                ip: l.ip,
                mac: l.mac,
            })
            .collect()
    }

    /// When [`Server6::tick`] next has something to do.
    pub fn next_deadline(&self) -> Option<Millis> {
        self.table.next_deadline()
    }

    /// Undoes `mac`'s lease of `ip` (a grant the driver could not make
    /// effective: its reply must not be sent).
    pub fn revoke(&mut self, mac: MacAddr, ip: Ipv6Addr) -> Option<Event6> {
        if self.table.get(mac)?.ip != ip {
            return None;
        }
        self.table.remove(mac)?;
        self.counters.revoked += 1;
        Some(Event6::LeaseRevoked { ip, mac })
    }

    /// Answers one message: `bytes` is the UDP payload, `mac` the
    /// Ethernet source of the frame that carried it.
    pub fn handle(&mut self, now: Millis, mac: MacAddr, bytes: &[u8]) -> Outcome {
        self.counters.received += 1;
        let mut events = self.tick(now);
        let checked = if mac.is_multicast() {
            Err(DropReason::GroupSourceMac)
        } else {
            wire::parse(bytes).and_then(|message| {
                message
                    .check_identifiers(&self.checked.config.server_duid)
                    .map(|()| message)
            })
        };
        let message = match checked {
            Ok(message) => message,
            Err(reason) => return self.dropped(reason, events),
        };
        *self
            .counters
            .messages
            .entry(message.kind.name())
            .or_default() += 1;
        let draft = match message.kind {
            MessageKind::Solicit => self.solicit(now, mac, &message, &mut events),
            MessageKind::Request => {
                let mut draft =
                    Draft::new(ReplyKind::Reply, message.xid, message.client_id.as_ref());
                draft.ias = self.assign(now, mac, &message, &mut events);
                draft.dns_options = true;
                draft
            }
            MessageKind::Renew | MessageKind::Rebind => {
                self.extend(now, mac, &message, &mut events)
            }
            MessageKind::Confirm => match self.confirm(mac, &message) {
                Some(draft) => draft,
                None => return self.dropped(DropReason::NothingToConfirm, events),
            },
            MessageKind::Release | MessageKind::Decline => {
                self.give_back(now, mac, &message, &mut events)
            }
            MessageKind::InformationRequest => {
                let mut draft =
                    Draft::new(ReplyKind::Reply, message.xid, message.client_id.as_ref());
                draft.dns_options = true;
                draft
            }
        };
        let Some(bytes) = reply::encode(&self.checked, &draft) else {
            // Undo what the unsent reply would have granted.
            for (ip, mac) in events.iter().filter_map(Event6::grant).collect::<Vec<_>>() {
                events.extend(self.revoke(mac, ip));
            }
            return self.dropped(DropReason::Encode, events);
        };
        match draft.kind {
            ReplyKind::Advertise => self.counters.advertise += 1,
            ReplyKind::Reply => self.counters.reply += 1,
        }
        Outcome {
            reply: Some(Reply6 {
                kind: draft.kind,
                bytes,
            }),
            events,
            dropped: None,
        }
    }

    fn dropped(&mut self, reason: DropReason, events: Vec<Event6>) -> Outcome {
        *self.counters.dropped.entry(reason.name()).or_default() += 1;
        Outcome::discarded(reason, events)
    }

    /// The address `mac` holds or is reserved: the only one it may use.
    fn own(&self, mac: MacAddr) -> Option<Ipv6Addr> {
        self.checked
            .reserved_by_mac
            .get(&mac)
            .copied()
            .or_else(|| self.table.get(mac).map(|l| l.ip))
    }

    fn pool_leases(&self) -> usize {
        let reserved = &self.checked.reserved_by_mac;
        self.table
            .leases()
            .filter(|l| !reserved.contains_key(&l.mac))
            .count()
            + self.table.declined_len()
    }

    /// The address `mac` would get now: its own, else a free pool address
    /// while the pool has room.
    fn candidate(&self, mac: MacAddr) -> Option<Ipv6Addr> {
        self.own(mac).or_else(|| {
            (self.pool_leases() < self.checked.config.max_leases)
                .then(|| leases::pick(&self.checked, &self.table, mac))
                .flatten()
        })
    }

    /// Gives `mac` its address for a full valid lifetime, remembering the
    /// client's DUID and IAID.
    fn bind(
        &mut self,
        now: Millis,
        mac: MacAddr,
        duid: &[u8],
        iaid: u32,
        events: &mut Vec<Event6>,
    ) -> Option<Ipv6Addr> {
        let Some(ip) = self.candidate(mac) else {
            events.push(Event6::PoolExhausted { mac });
            return None;
        };
        // Only a reservation can meet a lease of another MAC (restored
        // from a snapshot of another configuration): the reservation wins.
        if let Some(other) = self.table.holder(ip).filter(|m| *m != mac) {
            events.extend(self.revoke(other, ip));
        }
        let lease = Lease6 {
            mac,
            ip,
            duid: duid.to_vec(),
            iaid,
            expires_at: now.saturating_add(u64::from(self.checked.config.valid_lifetime) * 1000),
        };
        let previous = self.table.insert(lease.clone());
        if let Some(old) = previous.as_ref().filter(|old| old.ip != ip) {
            events.push(Event6::LeaseReleased {
                ip: old.ip,
                mac: old.mac,
            });
        }
        events.push(grant_event(previous.as_ref(), &lease));
        Some(ip)
    }

    /// Answers to the IA_TA and IA_PD options: we have neither.
    fn refusals(message: &ClientMessage) -> impl Iterator<Item = IaAnswer> + '_ {
        let ta = message
            .ia_ta
            .iter()
            .map(|&iaid| IaAnswer::TaRefused { iaid });
        let pd = message
            .ia_pd
            .iter()
            .map(|&iaid| IaAnswer::PdRefused { iaid });
        ta.chain(pd)
    }

    /// Section 18.3.2 (and 18.3.1 with Rapid Commit): the first IA_NA gets
    /// the client's address, whatever address it named; further IA_NAs
    /// get NoAddrsAvail (one address per MAC).
    fn assign(
        &mut self,
        now: Millis,
        mac: MacAddr,
        message: &ClientMessage,
        events: &mut Vec<Event6>,
    ) -> Vec<IaAnswer> {
        let duid = message.client_id.as_deref().unwrap_or_default();
        let mut answers = Vec::new();
        for (n, ia) in message.ia_na.iter().enumerate() {
            let bound = if n == 0 {
                self.bind(now, mac, duid, ia.iaid, events)
            } else {
                None
            };
            answers.push(match bound {
                Some(ip) => IaAnswer::Address {
                    iaid: ia.iaid,
                    ip,
                    withdrawn: Vec::new(),
                },
                None => IaAnswer::NaStatus {
                    iaid: ia.iaid,
                    status: Status::NoAddrsAvail,
                },
            });
        }
        answers.extend(Self::refusals(message));
        answers
    }

    /// Section 18.3.1.
    fn solicit(
        &mut self,
        now: Millis,
        mac: MacAddr,
        message: &ClientMessage,
        events: &mut Vec<Event6>,
    ) -> Draft {
        if message.rapid_commit && self.checked.config.rapid_commit {
            let mut draft = Draft::new(ReplyKind::Reply, message.xid, message.client_id.as_ref());
            draft.ias = self.assign(now, mac, message, events);
            draft.rapid_commit = true;
            draft.dns_options = true;
            return draft;
        }
        let mut draft = Draft::new(
            ReplyKind::Advertise,
            message.xid,
            message.client_id.as_ref(),
        );
        let candidate = self.candidate(mac);
        if candidate.is_none() && !message.ia_na.is_empty() {
            events.push(Event6::PoolExhausted { mac });
        }
        for (n, ia) in message.ia_na.iter().enumerate() {
            draft.ias.push(match candidate.filter(|_| n == 0) {
                Some(ip) => IaAnswer::Address {
                    iaid: ia.iaid,
                    ip,
                    withdrawn: Vec::new(),
                },
                None => IaAnswer::NaStatus {
                    iaid: ia.iaid,
                    status: Status::NoAddrsAvail,
                },
            });
        }
        draft.ias.extend(Self::refusals(message));
        draft.dns_options = true;
        draft
    }

    /// Whether the client's IA `iaid` (with `duid`) is the one `mac`'s
    /// lease was granted to; with no lease, a described MAC's any IA is.
    fn binding_matches(&self, mac: MacAddr, duid: &[u8], iaid: u32) -> bool {
        match self.table.get(mac) {
            Some(lease) => lease.duid == duid && lease.iaid == iaid,
            None => self.checked.reserved_by_mac.contains_key(&mac),
        }
    }

    /// Sections 18.3.4 and 18.3.5: an IA naming the client's own address
    /// is extended (other addresses it names are returned with lifetimes
    /// 0); any other IA gets NoBinding.
    fn extend(
        &mut self,
        now: Millis,
        mac: MacAddr,
        message: &ClientMessage,
        events: &mut Vec<Event6>,
    ) -> Draft {
        let duid = message.client_id.as_deref().unwrap_or_default();
        let mut draft = Draft::new(ReplyKind::Reply, message.xid, message.client_id.as_ref());
        let mut extended = false;
        for ia in &message.ia_na {
            let own = self
                .own(mac)
                .filter(|ip| !extended && ia.addresses.contains(ip))
                .filter(|_| self.binding_matches(mac, duid, ia.iaid));
            let bound = own.and_then(|_| self.bind(now, mac, duid, ia.iaid, events));
            draft.ias.push(match bound {
                Some(ip) => {
                    extended = true;
                    IaAnswer::Address {
                        iaid: ia.iaid,
                        ip,
                        withdrawn: ia.addresses.iter().copied().filter(|a| *a != ip).collect(),
                    }
                }
                None => IaAnswer::NaStatus {
                    iaid: ia.iaid,
                    status: Status::NoBinding,
                },
            });
        }
        draft.ias.extend(Self::refusals(message));
        draft.dns_options = true;
        draft
    }

    /// Section 18.3.3: Success when every address the client names is its
    /// own, else NotOnLink (which sends it back to Solicit: an address not
    /// its own is of no use to it on this link). No address, no reply.
    fn confirm(&self, mac: MacAddr, message: &ClientMessage) -> Option<Draft> {
        let mut addresses = message.ia_na.iter().flat_map(|ia| &ia.addresses).peekable();
        addresses.peek()?;
        let own = self.own(mac);
        let all_own = addresses.all(|a| Some(*a) == own);
        let mut draft = Draft::new(ReplyKind::Reply, message.xid, message.client_id.as_ref());
        draft.status = Some(if all_own {
            Status::Success
        } else {
            Status::NotOnLink
        });
        Some(draft)
    }

    /// Sections 18.3.7 (Release) and 18.3.8 (Decline): each IA that names
    /// the address `mac` holds, with the DUID and IAID it was granted to,
    /// gives it back; every other IA is answered NoBinding. The reply's
    /// status is Success either way.
    fn give_back(
        &mut self,
        now: Millis,
        mac: MacAddr,
        message: &ClientMessage,
        events: &mut Vec<Event6>,
    ) -> Draft {
        let duid = message.client_id.as_deref().unwrap_or_default();
        let decline = message.kind == MessageKind::Decline;
        let mut draft = Draft::new(ReplyKind::Reply, message.xid, message.client_id.as_ref());
        draft.status = Some(Status::Success);
        for ia in &message.ia_na {
            let held = self
                .table
                .get(mac)
                .filter(|l| l.duid == duid && l.iaid == ia.iaid && ia.addresses.contains(&l.ip));
            let Some(ip) = held.map(|l| l.ip) else {
                draft.ias.push(IaAnswer::NaStatus {
                    iaid: ia.iaid,
                    status: Status::NoBinding,
                });
                continue;
            };
            self.table.remove(mac);
            if decline {
                if !self.checked.reserved_ips.contains(&ip) {
                    let hold = u64::from(self.checked.config.valid_lifetime) * 1000;
                    self.table.decline(ip, now.saturating_add(hold));
                }
                events.push(Event6::AddressDeclined { ip, mac });
            } else {
                events.push(Event6::LeaseReleased { ip, mac });
            }
        }
        draft
    }
}

#[cfg(test)]
mod tests;
