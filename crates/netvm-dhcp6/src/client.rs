//! The uplink's DHCPv6 client (RFC 8415 §18): Solicit/Advertise,
//! Request/Reply, Renew at T1, Rebind at T2, expiry back to Solicit and
//! Release on stop, with the retransmission of §15 (RT doubling from
//! IRT to MRT with a ±0.1 randomization, MRC and MRD per message). It
//! always asks for a delegated prefix (IA_PD, RFC 8415 §6.3) and for an
//! address (IA_NA) when the network is stateful (the RA's M flag), and
//! collects DNS servers (option 23) and the search list (option 24).
//!
//! No sockets and no clock: the driver passes the time ([`Millis`]) and
//! the server's bytes in and carries out the [`Action`]s; every send goes
//! to All_DHCP_Relay_Agents_and_Servers ([`SERVERS`]) port 547 on the
//! uplink. Randomness (transaction ids, jitter) comes from the seed
//! given to [`Client::new`], so a test is deterministic.
//!
//! Server messages are read by a strict parser of our own (`reply`), not
//! by `dhcproto`'s decoder (which panics on some lengths and recurses
//! without bound); ours are built with `dhcproto`. A message is taken
//! only with our transaction id, a Server Identifier and our Client
//! Identifier; addresses and prefixes only with sane lifetimes
//! (preferred <= valid, valid > 0) and usable values (not multicast,
//! link-local, loopback or unspecified; prefixes 1..=64 bits long with
//! no host bits). Reconfigure is ignored.

mod reply;
mod request;

pub use reply::{parse, Entry, Ia, Kind, ParseError, ServerMessage};

use request::{build, Build};

use dhcproto::v6::MessageType;
use serde::{Deserialize, Serialize};
use std::net::Ipv6Addr;

/// Milliseconds on the driver's monotonic clock.
pub type Millis = u64;

/// All_DHCP_Relay_Agents_and_Servers (RFC 8415 §7.1): every message goes
/// there.
pub const SERVERS: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 1, 2);
/// The servers' UDP port.
pub const SERVER_PORT: u16 = 547;
/// Our UDP port.
pub const CLIENT_PORT: u16 = 546;
/// Our IA_NA's IAID (fixed: one uplink, one IA of each kind).
pub const IA_NA_ID: u32 = 1;
/// Our IA_PD's IAID.
pub const IA_PD_ID: u32 = 2;

/// The first Solicit waits up to this long (§18.2.1, SOL_MAX_DELAY).
const SOL_MAX_DELAY: Millis = 1_000;
/// SOL_MAX_RT unless a server says otherwise (option 82, §21.24).
const SOL_MAX_RT: Millis = 3_600_000;
/// The shortest T1 honoured, so a server cannot make us renew in a loop.
const MIN_T1_SECS: u32 = 1;

/// Retransmission parameters of one message type (RFC 8415 §7.6, §15).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Timing {
    /// Initial retransmission time.
    irt: Millis,
    /// Maximum retransmission time.
    mrt: Millis,
    /// Maximum retransmission count (0: none).
    mrc: u32,
}

const SOLICIT: Timing = Timing {
    irt: 1_000,
    mrt: SOL_MAX_RT,
    mrc: 0,
};
const REQUEST: Timing = Timing {
    irt: 1_000,
    mrt: 30_000,
    mrc: 10,
};
const RENEW: Timing = Timing {
    irt: 10_000,
    mrt: 600_000,
    mrc: 0,
};
const REBIND: Timing = Timing {
    irt: 10_000,
    mrt: 600_000,
    mrc: 0,
};
const RELEASE: Timing = Timing {
    irt: 1_000,
    mrt: 0,
    mrc: 4,
};

/// An address granted in our IA_NA.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Address6 {
    /// The address (to be used as a /128).
    pub address: Ipv6Addr,
    /// Preferred lifetime left, seconds.
    pub preferred: u32,
    /// Valid lifetime left, seconds.
    pub valid: u32,
}

/// A prefix delegated in our IA_PD.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Prefix6 {
    /// The prefix (no host bits).
    pub prefix: Ipv6Addr,
    /// Its length, 1..=64.
    pub len: u8,
    /// Preferred lifetime left, seconds.
    pub preferred: u32,
    /// Valid lifetime left, seconds.
    pub valid: u32,
}

/// What the uplink holds from DHCPv6. Lifetimes count from the moment
/// the [`Action::Bound`] carrying it was returned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct Lease6 {
    /// Our address (IA_NA), if asked for and granted.
    pub address: Option<Address6>,
    /// The delegated prefix (IA_PD), if granted.
    pub prefix: Option<Prefix6>,
    /// DNS servers (option 23).
    pub dns: Vec<Ipv6Addr>,
    /// Domain search list (option 24).
    pub search: Vec<String>,
    /// The granting server's DUID.
    pub server_id: Vec<u8>,
    /// Renew after this many seconds (T1).
    pub t1: u32,
    /// Rebind after this many seconds (T2).
    pub t2: u32,
}

/// Something for the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send these bytes to [`SERVERS`] port [`SERVER_PORT`] on the uplink.
    Send(Vec<u8>),
    /// A lease, new or changed (renewed, rebound, part of it expired):
    /// what to hold from now on.
    Bound(Lease6),
    /// Nothing is held any more (expired, taken back, or released): take
    /// the address off and stop routing the prefix.
    Lost,
}

/// Where the client is, for drivers and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Not started, or stopped.
    Idle,
    /// Looking for servers.
    Soliciting,
    /// Asking the chosen server.
    Requesting,
    /// Holding a lease, waiting for T1.
    Bound,
    /// Past T1: asking the granting server to extend.
    Renewing,
    /// Past T2: asking any server.
    Rebinding,
    /// Giving the lease back.
    Releasing,
}

/// One message exchange and its retransmission clock (RFC 8415 §15).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Exchange {
    xid: u32,
    timing: Timing,
    /// When its first message went (Elapsed Time counts from it).
    started: Millis,
    /// The current retransmission time.
    rt: Millis,
    /// When to send next.
    due: Millis,
    /// Messages sent.
    sent: u32,
}

impl Exchange {
    fn new(xid: u32, timing: Timing, due: Millis) -> Exchange {
        Exchange {
            xid,
            timing,
            started: due,
            rt: 0,
            due,
            sent: 0,
        }
    }

    /// Whether MRC is reached.
    fn exhausted(&self) -> bool {
        self.timing.mrc != 0 && self.sent >= self.timing.mrc
    }

    /// Elapsed Time (§21.9): hundredths of a second since the first
    /// message, 0 in the first.
    fn elapsed(&self, now: Millis) -> u16 {
        if self.sent == 0 {
            return 0;
        }
        u16::try_from(now.saturating_sub(self.started) / 10).unwrap_or(u16::MAX)
    }

    /// Counts a message sent at `now` and sets the next RT: IRT + RAND*IRT
    /// first (RAND > 0 for a Solicit, §18.2.1), then 2RT + RAND*RT, capped
    /// at MRT + RAND*MRT. `rand` is in -100..=100 per mille (±0.1).
    fn sent_at(&mut self, now: Millis, rand: i64, solicit: bool) {
        // RAND * base, rand in per mille.
        let jitter = |base: Millis, r: i64| (i128::from(base) * i128::from(r) / 1000) as i64;
        if self.sent == 0 {
            self.started = now;
            let r = if solicit { rand.abs().max(1) } else { rand };
            self.rt = self
                .timing
                .irt
                .saturating_add_signed(jitter(self.timing.irt, r));
        } else {
            self.rt = (self.rt.saturating_mul(2)).saturating_add_signed(jitter(self.rt, rand));
        }
        if self.timing.mrt != 0 && self.rt > self.timing.mrt {
            self.rt = self
                .timing
                .mrt
                .saturating_add_signed(jitter(self.timing.mrt, rand));
        }
        self.sent += 1;
        self.due = now.saturating_add(self.rt);
    }
}

/// A server's Advertise worth a Request.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Offer {
    server_id: Vec<u8>,
    preference: u8,
    address: Option<Ipv6Addr>,
    prefix: Option<(Ipv6Addr, u8)>,
}

impl Offer {
    fn rank(&self) -> (u8, u8) {
        let ias = u8::from(self.address.is_some()) + u8::from(self.prefix.is_some());
        (self.preference, ias)
    }
}

/// The exchange in progress.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    Idle,
    Soliciting {
        exchange: Exchange,
        /// The best Advertise so far, while collecting for the first RT.
        best: Option<Offer>,
        /// Past the first RT: the next acceptable Advertise is taken.
        collected: bool,
    },
    Requesting {
        exchange: Exchange,
        offer: Offer,
    },
    Bound,
    Renewing {
        exchange: Exchange,
    },
    Rebinding {
        exchange: Exchange,
    },
    Releasing {
        exchange: Exchange,
        lease: Lease6,
    },
}

/// A lifetime's end, on the driver's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Until {
    preferred: Millis,
    valid: Millis,
}

impl Until {
    fn from(now: Millis, preferred: u32, valid: u32) -> Until {
        let at = |secs: u32| now.saturating_add(u64::from(secs) * 1000);
        Until {
            preferred: at(preferred),
            valid: at(valid),
        }
    }

    /// (preferred, valid) seconds left at `now`.
    fn left(&self, now: Millis) -> (u32, u32) {
        let secs = |at: Millis| u32::try_from(at.saturating_sub(now) / 1000).unwrap_or(u32::MAX);
        (secs(self.preferred), secs(self.valid))
    }
}

/// What is held: the lease and when each part of it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Binding {
    lease: Lease6,
    address: Option<(Ipv6Addr, Until)>,
    prefix: Option<(Ipv6Addr, u8, Until)>,
    renew_at: Millis,
    rebind_at: Millis,
}

impl Binding {
    /// The lease with lifetimes as left at `now`.
    fn lease_at(&self, now: Millis) -> Lease6 {
        let mut lease = self.lease.clone();
        lease.address = self.address.map(|(address, until)| {
            let (preferred, valid) = until.left(now);
            Address6 {
                address,
                preferred,
                valid,
            }
        });
        lease.prefix = self.prefix.map(|(prefix, len, until)| {
            let (preferred, valid) = until.left(now);
            Prefix6 {
                prefix,
                len,
                preferred,
                valid,
            }
        });
        lease
    }

    fn expires_at(&self) -> Option<Millis> {
        let a = self.address.map(|(_, u)| u.valid);
        let p = self.prefix.map(|(_, _, u)| u.valid);
        a.into_iter().chain(p).min()
    }
}

/// What one IA of a server message says about the part it carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part<T> {
    /// Granted: the value and its (preferred, valid) seconds.
    Granted(T, u32, u32),
    /// The held value given valid lifetime 0: taken back.
    Withdrawn,
    /// The server no longer knows the IA (NoBinding).
    NoBinding,
    /// Nothing usable (absent, refused, or invalid).
    Nothing,
}

/// The first usable address of our IA_NA.
fn address_part(ia: Option<&Ia>, held: Option<Ipv6Addr>) -> Part<Ipv6Addr> {
    let Some(ia) = ia else {
        return Part::Nothing;
    };
    if ia.status == STATUS_NO_BINDING {
        return Part::NoBinding;
    }
    if ia.status != 0 {
        return Part::Nothing;
    }
    let usable = ia.entries.iter().find(|e| {
        e.status == 0 && e.valid > 0 && e.preferred <= e.valid && reply::is_usable(&e.address)
    });
    if let Some(e) = usable {
        return Part::Granted(e.address, e.preferred, e.valid);
    }
    if held.is_some_and(|h| ia.entries.iter().any(|e| e.address == h && e.valid == 0)) {
        return Part::Withdrawn;
    }
    Part::Nothing
}

/// Whether `prefix/len` may be delegated to us: 1..=64 bits, no host
/// bits, a usable address.
fn prefix_ok(prefix: &Ipv6Addr, len: u8) -> bool {
    let bits = u128::from(*prefix);
    (1..=64).contains(&len) && bits & (u128::MAX >> len) == 0 && reply::is_usable(prefix)
}

/// The first usable prefix of our IA_PD.
fn prefix_part(ia: Option<&Ia>, held: Option<(Ipv6Addr, u8)>) -> Part<(Ipv6Addr, u8)> {
    let Some(ia) = ia else {
        return Part::Nothing;
    };
    if ia.status == STATUS_NO_BINDING {
        return Part::NoBinding;
    }
    if ia.status != 0 {
        return Part::Nothing;
    }
    let usable = ia.entries.iter().find(|e| {
        e.status == 0 && e.valid > 0 && e.preferred <= e.valid && prefix_ok(&e.address, e.len)
    });
    if let Some(e) = usable {
        return Part::Granted((e.address, e.len), e.preferred, e.valid);
    }
    if held.is_some_and(|h| {
        ia.entries
            .iter()
            .any(|e| (e.address, e.len) == h && e.valid == 0)
    }) {
        return Part::Withdrawn;
    }
    Part::Nothing
}

/// Status codes (RFC 8415 §21.13) the client acts on.
const STATUS_NO_BINDING: u16 = 3;

/// The client.
#[derive(Debug, Clone)]
pub struct Client {
    duid: Vec<u8>,
    want_address: bool,
    rng: u64,
    sol_max_rt: Millis,
    held: Option<Binding>,
    state: State,
}

impl Client {
    /// A client for the uplink with `mac` (its DUID-LL, RFC 8415 §11.4);
    /// `want_address`: ask for an IA_NA too (the RA's M flag). `seed`
    /// drives transaction ids and jitter.
    pub fn new(mac: [u8; 6], want_address: bool, seed: u64) -> Client {
        let mut duid = vec![0, 3, 0, 1];
        duid.extend_from_slice(&mac);
        Client {
            duid,
            want_address,
            rng: seed | 1,
            sol_max_rt: SOL_MAX_RT,
            held: None,
            state: State::Idle,
        }
    }

    /// Whether to ask for an address (IA_NA) from the next message on:
    /// the uplink's RAs changed their M flag. An address already held is
    /// kept (and renewed) until it ends or is released.
    pub fn set_want_address(&mut self, want: bool) {
        self.want_address = want;
    }

    /// Our DUID (the Client Identifier's content).
    pub fn duid(&self) -> &[u8] {
        &self.duid
    }

    /// Where the client is.
    pub fn phase(&self) -> Phase {
        match self.state {
            State::Idle => Phase::Idle,
            State::Soliciting { .. } => Phase::Soliciting,
            State::Requesting { .. } => Phase::Requesting,
            State::Bound => Phase::Bound,
            State::Renewing { .. } => Phase::Renewing,
            State::Rebinding { .. } => Phase::Rebinding,
            State::Releasing { .. } => Phase::Releasing,
        }
    }

    /// The lease held at `now`, if any.
    pub fn lease(&self, now: Millis) -> Option<Lease6> {
        self.held.as_ref().map(|b| b.lease_at(now))
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// RAND of §15: -100..=100 per mille.
    fn rand(&mut self) -> i64 {
        (self.random() % 201) as i64 - 100
    }

    fn xid(&mut self) -> u32 {
        (self.random() as u32) & 0x00ff_ffff
    }

    /// Starts looking for servers (after the first Solicit's random delay
    /// of up to a second, §18.2.1). Nothing is sent yet: call
    /// [`Client::poll`] at [`Client::next_deadline`].
    pub fn start(&mut self, now: Millis) {
        let delay = self.random() % (SOL_MAX_DELAY + 1);
        self.solicit(now + delay);
    }

    fn solicit(&mut self, due: Millis) {
        let xid = self.xid();
        let mut timing = SOLICIT;
        timing.mrt = self.sol_max_rt;
        self.state = State::Soliciting {
            exchange: Exchange::new(xid, timing, due),
            best: None,
            collected: false,
        };
    }

    /// Gives the lease back (RFC 8415 §18.2.7): a Release, retransmitted
    /// up to REL_MAX_RC times until a Reply, then [`Phase::Idle`]. With
    /// nothing held, stops at once.
    pub fn release(&mut self, now: Millis) -> Vec<Action> {
        let Some(binding) = self.held.take() else {
            self.state = State::Idle;
            return Vec::new();
        };
        let xid = self.xid();
        self.state = State::Releasing {
            exchange: Exchange::new(xid, RELEASE, now),
            lease: binding.lease_at(now),
        };
        let mut actions = vec![Action::Lost];
        actions.extend(self.transmit(now));
        actions
    }

    /// When [`Client::poll`] has something to do; none when idle.
    pub fn next_deadline(&self) -> Option<Millis> {
        let exchange = match &self.state {
            State::Idle => None,
            State::Soliciting { exchange, .. }
            | State::Requesting { exchange, .. }
            | State::Renewing { exchange }
            | State::Rebinding { exchange }
            | State::Releasing { exchange, .. } => Some(exchange.due),
            State::Bound => None,
        };
        let binding = self.held.as_ref().and_then(|b| {
            let timer = match self.state {
                State::Bound => Some(b.renew_at.min(b.rebind_at)),
                State::Renewing { .. } => Some(b.rebind_at),
                _ => None,
            };
            timer.into_iter().chain(b.expires_at()).min()
        });
        exchange.into_iter().chain(binding).min()
    }

    /// Timers: retransmissions, T1, T2, the end of valid lifetimes.
    pub fn poll(&mut self, now: Millis) -> Vec<Action> {
        let mut actions = self.expire(now);
        match &mut self.state {
            State::Idle => {}
            State::Soliciting {
                exchange,
                best,
                collected,
            } => {
                if now < exchange.due {
                    return actions;
                }
                if exchange.sent > 0 && !*collected {
                    *collected = true;
                    if let Some(offer) = best.take() {
                        actions.extend(self.request(now, offer));
                        return actions;
                    }
                }
                actions.extend(self.transmit(now));
            }
            State::Requesting { exchange, .. } => {
                if now < exchange.due {
                    return actions;
                }
                if exchange.exhausted() {
                    // The server went quiet: look for another (§18.2.2).
                    self.solicit(now);
                }
                actions.extend(self.transmit(now));
            }
            State::Bound => {
                let Some(b) = &self.held else {
                    self.solicit(now);
                    actions.extend(self.transmit(now));
                    return actions;
                };
                if now >= b.rebind_at {
                    self.rebind(now, &mut actions);
                } else if now >= b.renew_at {
                    let xid = self.xid();
                    self.state = State::Renewing {
                        exchange: Exchange::new(xid, RENEW, now),
                    };
                    actions.extend(self.transmit(now));
                }
            }
            State::Renewing { exchange } => {
                let rebind_at = self.held.as_ref().map_or(0, |b| b.rebind_at);
                if now >= rebind_at {
                    self.rebind(now, &mut actions);
                } else if now >= exchange.due {
                    actions.extend(self.transmit(now));
                }
            }
            State::Rebinding { exchange } => {
                if now >= exchange.due {
                    actions.extend(self.transmit(now));
                }
            }
            State::Releasing { exchange, .. } => {
                if now < exchange.due {
                    return actions;
                }
                if exchange.exhausted() {
                    self.state = State::Idle;
                } else {
                    actions.extend(self.transmit(now));
                }
            }
        }
        actions
    }

    fn rebind(&mut self, now: Millis, actions: &mut Vec<Action>) {
        let xid = self.xid();
        self.state = State::Rebinding {
            exchange: Exchange::new(xid, REBIND, now),
        };
        actions.extend(self.transmit(now));
    }

    /// Drops the parts of the lease whose valid lifetime ended; all gone:
    /// [`Action::Lost`] and back to Solicit.
    fn expire(&mut self, now: Millis) -> Vec<Action> {
        let Some(b) = &mut self.held else {
            return Vec::new();
        };
        let before = (b.address.is_some(), b.prefix.is_some());
        b.address = b.address.filter(|(_, u)| now < u.valid);
        b.prefix = b.prefix.filter(|(_, _, u)| now < u.valid);
        if (b.address.is_some(), b.prefix.is_some()) == before {
            return Vec::new();
        }
        if b.address.is_none() && b.prefix.is_none() {
            self.held = None;
            if matches!(
                self.state,
                State::Bound | State::Renewing { .. } | State::Rebinding { .. }
            ) {
                self.solicit(now);
            }
            return vec![Action::Lost];
        }
        vec![Action::Bound(b.lease_at(now))]
    }

    fn request(&mut self, now: Millis, offer: Offer) -> Vec<Action> {
        let xid = self.xid();
        self.state = State::Requesting {
            exchange: Exchange::new(xid, REQUEST, now),
            offer,
        };
        self.transmit(now).into_iter().collect()
    }

    /// Sends the current exchange's message (first or again) and sets its
    /// next retransmission.
    fn transmit(&mut self, now: Millis) -> Option<Action> {
        let rand = self.rand();
        let held = self.held.as_ref().map(|b| b.lease_at(now));
        let parts = |lease: &Lease6| {
            (
                lease.address.as_ref().map(|a| a.address),
                lease.prefix.as_ref().map(|p| (p.prefix, p.len)),
            )
        };
        // (kind, server, (address, prefix), whether we ask for options)
        let (kind, server, (address, prefix), ask) = match &self.state {
            State::Idle | State::Bound => return None,
            State::Soliciting { .. } => (MessageType::Solicit, None, (None, None), true),
            State::Requesting { offer, .. } => (
                MessageType::Request,
                Some(offer.server_id.clone()),
                (offer.address, offer.prefix),
                true,
            ),
            State::Renewing { .. } => {
                let held = held.as_ref()?;
                (
                    MessageType::Renew,
                    Some(held.server_id.clone()),
                    parts(held),
                    true,
                )
            }
            State::Rebinding { .. } => (MessageType::Rebind, None, parts(held.as_ref()?), true),
            State::Releasing { lease, .. } => (
                MessageType::Release,
                Some(lease.server_id.clone()),
                parts(lease),
                false,
            ),
        };
        let exchange = self.exchange_mut()?;
        let elapsed = exchange.elapsed(now);
        let xid = exchange.xid;
        exchange.sent_at(now, rand, kind == MessageType::Solicit);
        let bytes = build(&Build {
            kind,
            xid,
            duid: &self.duid,
            elapsed,
            server: server.as_deref(),
            // A Release gives back only what is held; the others ask for
            // every IA we want, with what we hold or were offered.
            na: (ask && self.want_address) || address.is_some(),
            address,
            prefix,
            oro: ask,
        });
        Some(Action::Send(bytes))
    }

    fn exchange_mut(&mut self) -> Option<&mut Exchange> {
        match &mut self.state {
            State::Idle | State::Bound => None,
            State::Soliciting { exchange, .. }
            | State::Requesting { exchange, .. }
            | State::Renewing { exchange }
            | State::Rebinding { exchange }
            | State::Releasing { exchange, .. } => Some(exchange),
        }
    }

    /// A server's message.
    pub fn handle(&mut self, now: Millis, bytes: &[u8]) -> Vec<Action> {
        let Ok(m) = parse(bytes, IA_NA_ID, IA_PD_ID) else {
            return Vec::new();
        };
        let Some(xid) = self.exchange_mut().map(|e| e.xid) else {
            return Vec::new();
        };
        if m.client_id != self.duid || m.xid != xid {
            return Vec::new();
        }
        if let Some(secs) = m.sol_max_rt {
            self.sol_max_rt = u64::from(secs) * 1000;
            if let State::Soliciting { exchange, .. } = &mut self.state {
                exchange.timing.mrt = self.sol_max_rt;
            }
        }
        let held_server = self.held.as_ref().map(|b| b.lease.server_id.clone());
        match (m.kind, &mut self.state) {
            (Kind::Advertise, State::Soliciting { .. }) => {
                let Some(offer) = self.offer(&m) else {
                    return Vec::new();
                };
                let State::Soliciting {
                    best, collected, ..
                } = &mut self.state
                else {
                    return Vec::new();
                };
                if offer.preference == 255 || *collected {
                    return self.request(now, offer);
                }
                if best.as_ref().is_none_or(|b| offer.rank() > b.rank()) {
                    *best = Some(offer);
                }
                Vec::new()
            }
            (Kind::Reply, State::Requesting { offer, .. })
                if m.server_id == offer.server_id && m.status == 0 =>
            {
                self.bind(now, &m)
            }
            (Kind::Reply, State::Renewing { .. })
                if Some(&m.server_id) == held_server.as_ref() && m.status == 0 =>
            {
                self.bind(now, &m)
            }
            (Kind::Reply, State::Rebinding { .. }) if m.status == 0 => self.bind(now, &m),
            (Kind::Reply, State::Releasing { .. }) => {
                self.state = State::Idle;
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// An Advertise worth a Request: a top-level Success and at least
    /// one usable IA (§18.2.9).
    fn offer(&self, m: &ServerMessage) -> Option<Offer> {
        if m.status != 0 {
            return None;
        }
        let address = match address_part(m.na.as_ref().filter(|_| self.want_address), None) {
            Part::Granted(a, _, _) => Some(a),
            _ => None,
        };
        let prefix = match prefix_part(m.pd.as_ref(), None) {
            Part::Granted(p, _, _) => Some(p),
            _ => None,
        };
        if address.is_none() && prefix.is_none() {
            return None;
        }
        Some(Offer {
            server_id: m.server_id.clone(),
            preference: m.preference,
            address,
            prefix,
        })
    }

    /// A Reply to Request, Renew or Rebind (§18.2.10.1): what it grants
    /// replaces what is held, what it withdraws goes, what it does not
    /// mention stays until it expires. NoBinding: Request again.
    fn bind(&mut self, now: Millis, m: &ServerMessage) -> Vec<Action> {
        let old = self.held.clone();
        let held_address = old.as_ref().and_then(|b| b.address.map(|(a, _)| a));
        let held_prefix = old.as_ref().and_then(|b| b.prefix.map(|(p, l, _)| (p, l)));
        let na =
            m.na.as_ref()
                .filter(|_| self.want_address || held_address.is_some());
        let address = address_part(na, held_address);
        let prefix = prefix_part(m.pd.as_ref(), held_prefix);
        let renewing = old.is_some() && !matches!(self.state, State::Requesting { .. });
        if renewing && (address == Part::NoBinding || prefix == Part::NoBinding) {
            let offer = Offer {
                server_id: m.server_id.clone(),
                preference: m.preference,
                address: held_address,
                prefix: held_prefix,
            };
            return self.request(now, offer);
        }
        let mut t = Vec::new();
        let new_address = match address {
            Part::Granted(a, pref, valid) => {
                t.extend(m.na.as_ref().map(|ia| (ia.t1, ia.t2)));
                Some((a, Until::from(now, pref, valid)))
            }
            Part::Withdrawn => None,
            Part::NoBinding | Part::Nothing => old.as_ref().and_then(|b| b.address),
        };
        let new_prefix = match prefix {
            Part::Granted((p, len), pref, valid) => {
                t.extend(m.pd.as_ref().map(|ia| (ia.t1, ia.t2)));
                Some((p, len, Until::from(now, pref, valid)))
            }
            Part::Withdrawn => None,
            Part::NoBinding | Part::Nothing => old.as_ref().and_then(|b| b.prefix),
        };
        if new_address.is_none() && new_prefix.is_none() {
            self.held = None;
            self.solicit(now);
            return if old.is_some() {
                vec![Action::Lost]
            } else {
                Vec::new()
            };
        }
        let (t1, t2) = timers(now, &t, new_address.map(|a| a.1), new_prefix.map(|p| p.2));
        let binding = Binding {
            lease: Lease6 {
                address: None,
                prefix: None,
                dns: m.dns.clone(),
                search: m.search.clone(),
                server_id: m.server_id.clone(),
                t1,
                t2,
            },
            address: new_address,
            prefix: new_prefix,
            renew_at: now.saturating_add(u64::from(t1) * 1000),
            rebind_at: now.saturating_add(u64::from(t2) * 1000),
        };
        let lease = binding.lease_at(now);
        self.held = Some(binding);
        self.state = State::Bound;
        vec![Action::Bound(lease)]
    }
}

/// T1 and T2 (seconds from `now`) for a binding: the smallest non-zero
/// ones the granting IAs gave; when they left them to us (0), 0.5 and 0.8
/// times the shortest preferred lifetime (RFC 8415 §21.4). T2 is at most
/// 0.8 times the shortest valid lifetime, so the client asks before it
/// loses anything (a T1 past that T2 becomes half of it), and T1 is at
/// least [`MIN_T1_SECS`] and at most T2.
fn timers(
    now: Millis,
    given: &[(u32, u32)],
    address: Option<Until>,
    prefix: Option<Until>,
) -> (u32, u32) {
    let parts: Vec<(u32, u32)> = address
        .into_iter()
        .chain(prefix)
        .map(|u| u.left(now))
        .collect();
    let preferred = parts.iter().map(|p| p.0).min().unwrap_or(0);
    let valid = parts.iter().map(|p| p.1).min().unwrap_or(0);
    let t1 = given
        .iter()
        .map(|t| t.0)
        .filter(|t| *t > 0)
        .min()
        .unwrap_or(preferred / 2);
    let t2 = given
        .iter()
        .map(|t| t.1)
        .filter(|t| *t > 0)
        .min()
        .unwrap_or((u64::from(preferred) * 4 / 5) as u32);
    let t2 = t2.min((u64::from(valid) * 4 / 5) as u32).max(MIN_T1_SECS);
    let t1 = if t1 > t2 { valid / 2 } else { t1 };
    (t1.max(MIN_T1_SECS).min(t2), t2)
}
