//! The server state machine (RFC 2131 section 4.3): what to answer to each
//! client message, which lease changes to make durable first, and what to
//! report.
//!
//! `handle(now, bytes)` takes one received message and returns an
//! [`Outcome`]; `poll(now)` runs the timers that [`Server::poll_at`]
//! announces. Nothing here does I/O or reads a clock. An ACK that binds a
//! lease comes with the journal [`Record`] that must be durable before
//! the ACK is sent: that ordering is the driver's one promise.

use crate::client::ClientKey;
use crate::config::ServerConfig;
use crate::events::{Counters, Event};
use crate::journal::Record;
use crate::leases::{Lease, LeaseState, LeaseTable};
use crate::limiter::Limiter;
use crate::pool::Pool;
use crate::reply::{self, Grant, Reply, ReplyKind, Times};
use crate::request::{self, DropReason, MessageKind, Request};
use crate::time::Timestamp;
use crate::{CLIENT_PORT, SERVER_PORT};
use netvm_description::values::{MacAddr, VmName};
use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;

/// What handling one message produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The reply to send, if any.
    pub reply: Option<Reply>,
    /// The lease change to make durable before `reply` is sent.
    pub record: Option<Record>,
    /// What to report.
    pub events: Vec<Event>,
    /// Why the message was not answered, when it was dropped.
    pub dropped: Option<DropReason>,
}

impl Outcome {
    fn drop(reason: DropReason) -> Outcome {
        Outcome {
            dropped: Some(reason),
            ..Outcome::default()
        }
    }
}

/// A lease as the outside sees it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LeaseView {
    /// The lease.
    #[serde(flatten)]
    pub lease: Lease,
    /// The reservation's owner, for reserved addresses.
    pub reserved_for: Option<String>,
}

/// The DHCP server for one internal network.
#[derive(Debug)]
pub struct Server {
    config: ServerConfig,
    pool: Option<Pool>,
    reserved_ips: HashSet<Ipv4Addr>,
    leases: LeaseTable,
    limiter: Limiter,
    counters: Counters,
    /// Journal records of kinds this version does not know, carried
    /// through compaction.
    carried: Vec<Record>,
    /// Timestamp of the last limiter sweep.
    swept_at: Timestamp,
}

/// Turns what a client calls itself into a DNS label, or nothing.
fn sanitize_hostname(raw: &str) -> Option<String> {
    let label = raw.split('.').next()?.trim().to_ascii_lowercase();
    label.parse::<VmName>().ok().map(|name| name.to_string())
}

impl Server {
    /// A server with no leases.
    pub fn new(config: ServerConfig) -> Server {
        let reserved_ips = config.reservations.values().map(|r| r.ip).collect();
        Server {
            pool: config.pool.map(Pool::new),
            reserved_ips,
            leases: LeaseTable::default(),
            limiter: Limiter::new(config.per_mac_rate, config.per_mac_burst),
            counters: Counters::new(),
            carried: Vec::new(),
            swept_at: Timestamp(0),
            config,
        }
    }

    /// The settings.
    pub fn config(&self) -> &ServerConfig {
        &self.config
    }

    /// Counters since start.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Rebuilds the leases from journal records, in order. Leases that
    /// ended before `now` are not restored (their clients are still
    /// remembered for their old address).
    pub fn restore(&mut self, records: impl IntoIterator<Item = Record>, now: Timestamp) {
        for record in records {
            match record {
                Record::Bound {
                    ip,
                    mac,
                    client,
                    until,
                    hostname,
                } => {
                    if !self.may_hold(ip, mac) {
                        continue; // the description changed since
                    }
                    let lease = Lease {
                        ip,
                        client: Some(client),
                        mac,
                        hostname,
                        state: LeaseState::Bound { until },
                    };
                    self.install_bound(now, lease);
                }
                Record::Released { ip, client } => {
                    if self.leases.by_ip(ip).and_then(|l| l.client.as_ref()) == Some(&client) {
                        self.end_lease(ip, now);
                    }
                }
                Record::Declined { ip, until } => {
                    if self.pool.as_ref().is_some_and(|p| p.contains(ip)) {
                        self.end_lease(ip, now);
                        self.take_address(ip);
                        self.leases.insert(Lease {
                            ip,
                            client: None,
                            mac: MacAddr([0; 6]),
                            hostname: None,
                            state: LeaseState::Probation { until },
                        });
                    }
                }
                unknown @ Record::Unknown { .. } => self.carried.push(unknown),
            }
        }
        // The cap may have been lowered, or the journal written by a
        // version without one.
        while self.leases.probation_count() > self.probation_max() {
            self.end_oldest_probation(now);
        }
        self.poll(now);
    }

    /// The records that rebuild the current state: what a compacted
    /// journal holds.
    pub fn snapshot(&self) -> Vec<Record> {
        let mut records: Vec<Record> = self
            .leases
            .iter()
            .filter_map(|lease| match (lease.state, &lease.client) {
                (LeaseState::Bound { until }, Some(client)) => Some(Record::Bound {
                    ip: lease.ip,
                    mac: lease.mac,
                    client: client.clone(),
                    until,
                    hostname: lease.hostname.clone(),
                }),
                (LeaseState::Probation { until }, _) => Some(Record::Declined {
                    ip: lease.ip,
                    until,
                }),
                _ => None,
            })
            .collect();
        records.extend(self.carried.iter().cloned());
        records
    }

    /// Every lease, in address order.
    pub fn leases(&self) -> impl Iterator<Item = LeaseView> + '_ {
        let owners: HashMap<Ipv4Addr, &str> = self
            .config
            .reservations
            .values()
            .map(|r| (r.ip, r.name.as_str()))
            .collect();
        self.leases.iter().map(move |lease| LeaseView {
            reserved_for: owners.get(&lease.ip).map(|n| (*n).to_owned()),
            lease: lease.clone(),
        })
    }

    /// When [`Server::poll`] next has work.
    pub fn poll_at(&self) -> Option<Timestamp> {
        self.leases.next_deadline()
    }

    /// Runs timers due at `now`: lapsed offers and leases free their
    /// addresses, probation ends.
    pub fn poll(&mut self, now: Timestamp) -> Vec<Event> {
        let mut events = Vec::new();
        for lease in self.leases.expire(now) {
            self.release_address(lease.ip, now);
            if let (LeaseState::Bound { .. }, Some(_)) = (lease.state, &lease.client) {
                events.push(Event::LeaseExpired {
                    ip: lease.ip,
                    mac: lease.mac,
                });
            }
        }
        if now.0.saturating_sub(self.swept_at.0) > 60_000 {
            self.limiter.sweep(now);
            self.swept_at = now;
        }
        events
    }

    /// Handles one message received on the internal interface from a
    /// client's port ([`CLIENT_PORT`]): [`Server::handle_from`] for tests
    /// and fuzzing; a driver that knows the source port must use that.
    pub fn handle(&mut self, now: Timestamp, bytes: &[u8]) -> Outcome {
        self.handle_from(now, CLIENT_PORT, bytes)
    }

    /// Handles one message received on the internal interface from UDP
    /// port `source_port`: [`CLIENT_PORT`] for a client, [`SERVER_PORT`]
    /// for a trusted relay agent; anything else is dropped.
    pub fn handle_from(&mut self, now: Timestamp, source_port: u16, bytes: &[u8]) -> Outcome {
        self.counters.received += 1;
        let outcome = match request::parse(bytes) {
            Err(reason) => Outcome::drop(reason),
            Ok(request) => {
                self.counters.count_kind(request.kind);
                let reserved = self.config.reservations.contains_key(&request.chaddr);
                let relayed = !request.giaddr.is_unspecified();
                if relayed && !self.config.relays.contains(&request.giaddr) {
                    Outcome::drop(DropReason::Relayed)
                } else if source_port != if relayed { SERVER_PORT } else { CLIENT_PORT } {
                    // RFC 2131 section 4.1: clients send from 68, relay
                    // agents from 67; anything else is not a DHCP client
                    // (a VM's program spoofing one, or a reflection).
                    Outcome::drop(DropReason::WrongSourcePort)
                } else if self.limiter.allow(request.chaddr, now, reserved) {
                    self.dispatch(now, &request)
                } else {
                    Outcome::drop(DropReason::RateLimited)
                }
            }
        };
        if let Some(reason) = outcome.dropped {
            self.counters.count_drop(reason);
        }
        if let Some(reply) = &outcome.reply {
            match reply.kind {
                ReplyKind::Offer => self.counters.offer += 1,
                ReplyKind::Ack => self.counters.ack += 1,
                ReplyKind::Nak => self.counters.nak += 1,
            }
        }
        outcome
    }

    /// Undoes the bound lease on `ip` whose ACK the driver could not make
    /// effective (the agent could not let its traffic through): the
    /// address is free again and the returned record, journaled after
    /// the lease's `Bound` record, keeps a restart from bringing it back.
    /// Nothing when `ip` is not bound.
    pub fn revoke(&mut self, now: Timestamp, ip: Ipv4Addr) -> Option<Record> {
        let lease = self.leases.by_ip(ip)?;
        let LeaseState::Bound { .. } = lease.state else {
            return None;
        };
        let client = lease.client.clone()?;
        self.end_lease(ip, now);
        self.counters.ack = self.counters.ack.saturating_sub(1);
        self.counters.revoked += 1;
        Some(Record::Released { ip, client })
    }

    fn dispatch(&mut self, now: Timestamp, request: &Request) -> Outcome {
        match request.kind {
            MessageKind::Discover => self.discover(now, request),
            MessageKind::Request => self.request(now, request),
            MessageKind::Decline => self.decline(now, request),
            MessageKind::Release => self.release(now, request),
            MessageKind::Inform => self.inform(request),
        }
    }

    fn client_key(request: &Request) -> ClientKey {
        match &request.client_id {
            Some(id) => ClientKey::Id(id.clone()),
            None => ClientKey::Mac(request.chaddr),
        }
    }

    fn in_pool(&self, ip: Ipv4Addr) -> bool {
        self.pool.as_ref().is_some_and(|p| p.contains(ip))
    }

    /// Dynamic leases (offered or bound) now.
    fn dynamic_in_use(&self) -> u64 {
        self.pool.as_ref().map_or(0, Pool::in_use)
    }

    /// May the client with `mac` ever hold `ip`? (Its reservation, or a
    /// pool address when it has none.)
    fn may_hold(&self, ip: Ipv4Addr, mac: MacAddr) -> bool {
        match self.config.reservations.get(&mac) {
            Some(reservation) => reservation.ip == ip,
            None => self.in_pool(ip) && !self.reserved_ips.contains(&ip),
        }
    }

    /// Can `client` have `ip` now: a reservation is its MAC's whatever the
    /// client id; otherwise its own lease or a free pool address within
    /// the limits.
    fn available_to(&self, ip: Ipv4Addr, client: &ClientKey, mac: MacAddr) -> bool {
        if let Some(reservation) = self.config.reservations.get(&mac) {
            return reservation.ip == ip;
        }
        if !self.may_hold(ip, mac) {
            return false;
        }
        match self.leases.by_ip(ip) {
            Some(lease) => lease.client.as_ref() == Some(client),
            None => {
                let holds_one = self
                    .leases
                    .by_client(client)
                    .is_some_and(|l| self.in_pool(l.ip));
                self.pool.as_ref().is_some_and(|p| p.is_free(ip))
                    && (holds_one || self.dynamic_in_use() < u64::from(self.config.max_leases))
            }
        }
    }

    /// Marks a pool address used (no-op for reserved addresses).
    fn take_address(&mut self, ip: Ipv4Addr) {
        if let Some(pool) = &mut self.pool {
            pool.take(ip);
        }
    }

    fn release_address(&mut self, ip: Ipv4Addr, now: Timestamp) {
        if let Some(pool) = &mut self.pool {
            pool.give_back(ip, now);
        }
    }

    fn end_lease(&mut self, ip: Ipv4Addr, now: Timestamp) -> Option<Lease> {
        let lease = self.leases.remove(ip)?;
        self.release_address(ip, now);
        Some(lease)
    }

    /// The address to offer: reservation, current lease, previous address,
    /// the requested one, then any free pool address.
    fn choose(
        &mut self,
        now: Timestamp,
        request: &Request,
        client: &ClientKey,
    ) -> Option<Ipv4Addr> {
        if let Some(reservation) = self.config.reservations.get(&request.chaddr) {
            return Some(reservation.ip);
        }
        let candidates = [
            self.leases.by_client(client).map(|l| l.ip),
            self.leases.previous(client),
            request.requested_ip,
        ];
        if let Some(ip) = candidates
            .into_iter()
            .flatten()
            .find(|ip| self.available_to(*ip, client, request.chaddr))
        {
            return Some(ip);
        }
        let full = self.dynamic_in_use() >= u64::from(self.config.max_leases)
            || self.pool.as_ref().is_some_and(|p| p.free() == 0);
        if full && !self.give_way(now, client) {
            return None;
        }
        self.pool.as_mut()?.take_any()
    }

    /// Frees one pool address for `client` when none is left: the oldest
    /// outstanding offer to another client (an offer is a promise of
    /// seconds, and a flood of DISCOVERs from fresh MACs must not hold
    /// the pool), else the oldest probation. Bound leases are never
    /// taken. Returns whether an address was freed.
    fn give_way(&mut self, now: Timestamp, client: &ClientKey) -> bool {
        if self.pool.is_none() {
            return false;
        }
        if let Some(ip) = self
            .leases
            .oldest_offer(|lease| lease.client.as_ref() == Some(client))
        {
            self.end_lease(ip, now);
            self.counters.offers_reclaimed += 1;
            return true;
        }
        if self.leases.probation_count() > 0 {
            self.end_oldest_probation(now);
            return true;
        }
        false
    }

    /// Most addresses in probation at once.
    fn probation_max(&self) -> usize {
        usize::try_from(self.config.probation_max).unwrap_or(usize::MAX)
    }

    /// Ends the probation that would end first, now.
    fn end_oldest_probation(&mut self, now: Timestamp) {
        if let Some(ip) = self.leases.oldest_probation() {
            self.end_lease(ip, now);
            self.counters.probations_ended_early += 1;
        }
    }

    fn times(&self) -> Times {
        Times {
            lease: self.config.lease_secs,
            renew: self.config.renew_secs,
            rebind: self.config.rebind_secs,
        }
    }

    fn hostname(request: &Request) -> Option<String> {
        request
            .fqdn
            .as_ref()
            .and_then(|f| sanitize_hostname(&f.name))
            .or_else(|| request.hostname.as_deref().and_then(sanitize_hostname))
    }

    fn discover(&mut self, now: Timestamp, request: &Request) -> Outcome {
        let client = Self::client_key(request);
        let Some(ip) = self.choose(now, request, &client) else {
            let mut outcome = Outcome::drop(DropReason::NoAddress);
            outcome.events.push(Event::PoolExhausted {
                mac: request.chaddr,
            });
            return outcome;
        };
        if request.rapid_commit && self.config.rapid_commit {
            return self.bind(now, request, client, ip, true);
        }
        let hostname = Self::hostname(request);
        // A client renewing by DISCOVER keeps its binding while offered.
        let bound = self
            .leases
            .by_ip(ip)
            .is_some_and(|l| matches!(l.state, LeaseState::Bound { .. }));
        if !bound {
            self.take_address(ip);
            self.leases.insert(Lease {
                ip,
                client: Some(client),
                mac: request.chaddr,
                hostname: hostname.clone(),
                state: LeaseState::Offered {
                    until: now.plus_secs(self.config.offer_hold_secs),
                },
            });
        }
        let grant = Grant {
            kind: ReplyKind::Offer,
            yiaddr: ip,
            times: Some(self.times()),
            hostname: hostname.as_deref(),
            rapid_commit: false,
        };
        Outcome {
            reply: Some(reply::grant(&self.config, request, &grant)),
            ..Outcome::default()
        }
    }

    /// Makes `ip` the client's bound lease until `until`, moving it off
    /// any other address it held.
    fn install_bound(&mut self, now: Timestamp, lease: Lease) {
        if self.leases.by_ip(lease.ip).is_none() {
            self.take_address(lease.ip);
        }
        if let Some(client) = &lease.client {
            let old = self.leases.by_client(client).map(|l| l.ip);
            if let Some(old) = old.filter(|old| *old != lease.ip) {
                self.end_lease(old, now);
            }
        }
        self.leases.insert(lease);
    }

    /// Acknowledges `ip` to the client: the lease, its journal record, the
    /// ACK and the event.
    fn bind(
        &mut self,
        now: Timestamp,
        request: &Request,
        client: ClientKey,
        ip: Ipv4Addr,
        rapid: bool,
    ) -> Outcome {
        let hostname = Self::hostname(request);
        let until = now.plus_secs(self.config.lease_secs);
        self.install_bound(
            now,
            Lease {
                ip,
                client: Some(client.clone()),
                mac: request.chaddr,
                hostname: hostname.clone(),
                state: LeaseState::Bound { until },
            },
        );
        let grant = Grant {
            kind: ReplyKind::Ack,
            yiaddr: ip,
            times: Some(self.times()),
            hostname: hostname.as_deref(),
            rapid_commit: rapid,
        };
        Outcome {
            reply: Some(reply::grant(&self.config, request, &grant)),
            record: Some(Record::Bound {
                ip,
                mac: request.chaddr,
                client: client.clone(),
                until,
                hostname: hostname.clone(),
            }),
            events: vec![Event::LeaseGranted {
                ip,
                mac: request.chaddr,
                client,
                hostname,
                until,
            }],
            dropped: None,
        }
    }

    fn nak(&self, request: &Request, why: &str) -> Outcome {
        Outcome {
            reply: Some(reply::nak(&self.config, request, why)),
            ..Outcome::default()
        }
    }

    fn request(&mut self, now: Timestamp, request: &Request) -> Outcome {
        let client = Self::client_key(request);
        let ours = self.config.server_ip;
        let (ip, state) = match (request.server_id, request.requested_ip) {
            // SELECTING, another server chosen: our offer lapses now.
            (Some(server), _) if server != ours => {
                let offered = self
                    .leases
                    .by_client(&client)
                    .filter(|l| matches!(l.state, LeaseState::Offered { .. }))
                    .map(|l| l.ip);
                if let Some(ip) = offered {
                    self.end_lease(ip, now);
                }
                return Outcome::drop(DropReason::NotForUs);
            }
            (Some(_), Some(ip)) => (ip, "selecting"),
            (Some(_), None) => return Outcome::drop(DropReason::NotForUs),
            // INIT-REBOOT: we are authoritative for the subnet.
            (None, Some(ip)) if request.ciaddr.is_unspecified() => (ip, "init-reboot"),
            // RENEWING or REBINDING.
            (None, _) if !request.ciaddr.is_unspecified() => (request.ciaddr, "renewing"),
            (None, _) => return Outcome::drop(DropReason::NotForUs),
        };
        if self.available_to(ip, &client, request.chaddr) {
            return self.bind(now, request, client, ip, false);
        }
        if self.config.subnet.contains(ip) || state == "selecting" {
            return self.nak(request, &format!("{ip} is not yours ({state})"));
        }
        // Renewing an address from another network: not ours to judge.
        if state == "renewing" {
            return Outcome::drop(DropReason::NotForUs);
        }
        self.nak(request, &format!("{ip} is not on this network"))
    }

    /// The client's own lease on `ip`, for DECLINE and RELEASE, which must
    /// name us as server when they name one.
    fn own_lease(&self, request: &Request, ip: Option<Ipv4Addr>) -> Option<Ipv4Addr> {
        if request
            .server_id
            .is_some_and(|s| s != self.config.server_ip)
        {
            return None;
        }
        let ip = ip?;
        let client = Self::client_key(request);
        let lease = self.leases.by_ip(ip)?;
        (lease.client.as_ref() == Some(&client)).then_some(ip)
    }

    fn decline(&mut self, now: Timestamp, request: &Request) -> Outcome {
        let Some(ip) = self.own_lease(request, request.requested_ip) else {
            return Outcome::drop(DropReason::NotForUs);
        };
        let event = Event::AddressDeclined {
            ip,
            mac: request.chaddr,
        };
        if self.reserved_ips.contains(&ip) {
            // A reserved address cannot go to anyone else: report only.
            self.leases.remove(ip);
            return Outcome {
                events: vec![event],
                ..Outcome::default()
            };
        }
        self.leases.remove(ip);
        if self.probation_max() == 0 {
            // No probation at all: the address is free again, and the
            // journal says so (a probation that ends now).
            self.release_address(ip, now);
            return Outcome {
                record: Some(Record::Declined { ip, until: now }),
                events: vec![event],
                ..Outcome::default()
            };
        }
        // Past the cap the oldest probation ends early: one client (or
        // one VM with many MACs) cannot put the pool out of use.
        while self.leases.probation_count() >= self.probation_max() {
            self.end_oldest_probation(now);
        }
        let until = now.plus_secs(self.config.probation_secs);
        self.leases.insert(Lease {
            ip,
            client: None,
            mac: request.chaddr,
            hostname: None,
            state: LeaseState::Probation { until },
        });
        Outcome {
            record: Some(Record::Declined { ip, until }),
            events: vec![event],
            ..Outcome::default()
        }
    }

    fn release(&mut self, now: Timestamp, request: &Request) -> Outcome {
        let Some(ip) = self.own_lease(request, Some(request.ciaddr)) else {
            return Outcome::drop(DropReason::NotForUs);
        };
        let client = Self::client_key(request);
        self.end_lease(ip, now);
        Outcome {
            record: Some(Record::Released { ip, client }),
            events: vec![Event::LeaseReleased {
                ip,
                mac: request.chaddr,
            }],
            ..Outcome::default()
        }
    }

    fn inform(&mut self, request: &Request) -> Outcome {
        if !self.config.subnet.contains(request.ciaddr) || request.ciaddr.is_unspecified() {
            return Outcome::drop(DropReason::NotForUs);
        }
        let grant = Grant {
            kind: ReplyKind::Ack,
            yiaddr: Ipv4Addr::UNSPECIFIED,
            times: None,
            hostname: None,
            rapid_commit: false,
        };
        Outcome {
            reply: Some(reply::grant(&self.config, request, &grant)),
            ..Outcome::default()
        }
    }
}
