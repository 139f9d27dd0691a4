//! The uplink's DHCP client (RFC 2131 section 4.4): INIT, SELECTING,
//! REQUESTING, BOUND, RENEWING, REBINDING, with T1/T2 and retransmission
//! backoff (4, 8, 16, 32, 64 s, each ±1 s). No sockets and no clock: the
//! driver passes the time and bytes in and carries out the [`Action`]s.

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use serde::Serialize;
use std::net::Ipv4Addr;

/// Milliseconds on the driver's monotonic clock.
pub type Millis = u64;

/// The longest wait between two retransmissions (RFC 2131: 64 s).
const MAX_BACKOFF: Millis = 64_000;
/// The first wait.
const FIRST_BACKOFF: Millis = 4_000;
/// While renewing or rebinding, retransmit at half the time left, but not
/// more often than this (RFC 2131 says 60 s; short test leases need less).
const MIN_RENEW_RETRY: Millis = 1_000;
/// A REQUEST unanswered this many times sends the client back to INIT.
const REQUEST_TRIES: u32 = 4;

/// A lease on the uplink (as the `uplink_bound` event writes it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Lease {
    /// Our address.
    pub address: Ipv4Addr,
    /// Its prefix length (option 1; /24 when absent).
    pub prefix: u8,
    /// The default gateway (option 3), if any.
    pub router: Option<Ipv4Addr>,
    /// DNS servers (option 6).
    pub dns: Vec<Ipv4Addr>,
    /// The server that granted it.
    pub server: Ipv4Addr,
    /// Lease time in seconds.
    pub lease_secs: u32,
    /// T1 in seconds.
    pub renew_secs: u32,
    /// T2 in seconds.
    pub rebind_secs: u32,
}

/// Where the client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// No lease; DISCOVER sent, waiting for an OFFER.
    Selecting,
    /// REQUEST sent for an offered address.
    Requesting {
        /// The address offered.
        offered: Ipv4Addr,
        /// By whom.
        server: Ipv4Addr,
    },
    /// Holding a lease.
    Bound,
    /// Past T1: REQUEST unicast to the server that granted it.
    Renewing,
    /// Past T2: REQUEST broadcast to any server.
    Rebinding,
}

/// Something for the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Broadcast `0` to port 67.
    Broadcast(Vec<u8>),
    /// Send `bytes` to `server`:67 (from our address).
    Unicast {
        /// The server.
        server: Ipv4Addr,
        /// The message.
        bytes: Vec<u8>,
    },
    /// Put this lease on the uplink (address, route, DNS): new or renewed.
    Configure(Lease),
    /// Take the lease off the uplink (expired or refused).
    Deconfigure,
}

/// The client.
#[derive(Debug)]
pub struct Client {
    mac: [u8; 6],
    state: State,
    xid: u32,
    rng: u64,
    lease: Option<(Lease, Millis)>,
    /// When the next retransmission or timer is due.
    due: Millis,
    backoff: Millis,
    tries: u32,
}

impl Client {
    /// A client for the interface with `mac`; `seed` makes its transaction
    /// ids and jitter unpredictable.
    pub fn new(mac: [u8; 6], seed: u64) -> Client {
        let mut client = Client {
            mac,
            state: State::Selecting,
            xid: 0,
            rng: seed | 1,
            lease: None,
            due: 0,
            backoff: FIRST_BACKOFF,
            tries: 0,
        };
        client.xid = client.random() as u32;
        client
    }

    fn random(&mut self) -> u64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// The state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The lease held, if any.
    pub fn lease(&self) -> Option<&Lease> {
        self.lease.as_ref().map(|(lease, _)| lease)
    }

    /// When [`Client::poll`] has something to do.
    pub fn due(&self) -> Millis {
        self.due
    }

    /// Starts (or restarts) from INIT: a DISCOVER.
    pub fn start(&mut self, now: Millis) -> Vec<Action> {
        self.state = State::Selecting;
        self.xid = self.random() as u32;
        self.backoff = FIRST_BACKOFF;
        self.tries = 0;
        vec![self.transmit(now)]
    }

    /// Sends the current state's message and schedules its retransmission.
    fn transmit(&mut self, now: Millis) -> Action {
        self.tries += 1;
        let bytes = match (self.state.clone(), self.lease.clone()) {
            (State::Requesting { offered, server }, _) => {
                self.message(MessageType::Request, Some(offered), Some(server), None)
            }
            (State::Renewing | State::Rebinding, Some((lease, granted))) => {
                return self.renewal(now, &lease, granted);
            }
            _ => {
                self.state = State::Selecting;
                self.message(MessageType::Discover, None, None, None)
            }
        };
        let jitter = self.random() % 2_001;
        self.due = now + self.backoff + jitter - 1_000;
        self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
        Action::Broadcast(bytes)
    }

    /// A REQUEST while renewing (unicast to the server that granted the
    /// lease) or rebinding (broadcast): the next try at half the time left
    /// to T2 or to the end of the lease.
    fn renewal(&mut self, now: Millis, lease: &Lease, granted: Millis) -> Action {
        let bytes = self.message(MessageType::Request, None, None, Some(lease.address));
        let (end, server) = match self.state {
            State::Renewing => (
                granted + u64::from(lease.rebind_secs) * 1000,
                Some(lease.server),
            ),
            _ => (granted + u64::from(lease.lease_secs) * 1000, None),
        };
        self.due = (now + (end.saturating_sub(now) / 2).max(MIN_RENEW_RETRY)).min(end);
        match server {
            Some(server) => Action::Unicast { server, bytes },
            None => Action::Broadcast(bytes),
        }
    }

    fn message(
        &self,
        kind: MessageType,
        requested: Option<Ipv4Addr>,
        server: Option<Ipv4Addr>,
        ciaddr: Option<Ipv4Addr>,
    ) -> Vec<u8> {
        let mut m = Message::default();
        m.set_opcode(Opcode::BootRequest)
            .set_xid(self.xid)
            .set_chaddr(&self.mac);
        if let Some(ciaddr) = ciaddr {
            m.set_ciaddr(ciaddr);
        } else {
            // Without an address we can only hear broadcast replies.
            m.set_flags(Flags::default().set_broadcast());
        }
        let opts = m.opts_mut();
        opts.insert(DhcpOption::MessageType(kind));
        let mut id = vec![1];
        id.extend_from_slice(&self.mac);
        opts.insert(DhcpOption::ClientIdentifier(id));
        if let Some(ip) = requested {
            opts.insert(DhcpOption::RequestedIpAddress(ip));
        }
        if let Some(server) = server {
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
        opts.insert(DhcpOption::ParameterRequestList(vec![
            OptionCode::SubnetMask,
            OptionCode::Router,
            OptionCode::DomainNameServer,
            OptionCode::AddressLeaseTime,
            OptionCode::Renewal,
            OptionCode::Rebinding,
        ]));
        let mut out = Vec::with_capacity(300);
        // Encoding a message we built ourselves cannot fail.
        let _ = m.encode(&mut Encoder::new(&mut out));
        out
    }

    /// Timers: retransmissions, T1, T2, expiry.
    pub fn poll(&mut self, now: Millis) -> Vec<Action> {
        if now < self.due {
            return Vec::new();
        }
        if let Some((lease, granted)) = self.lease.clone() {
            let at = |secs: u32| granted + u64::from(secs) * 1000;
            if now >= at(lease.lease_secs) {
                self.lease = None;
                let mut actions = vec![Action::Deconfigure];
                actions.extend(self.start(now));
                return actions;
            }
            if now >= at(lease.rebind_secs) && self.state != State::Rebinding {
                self.state = State::Rebinding;
            } else if now >= at(lease.renew_secs) && self.state == State::Bound {
                self.state = State::Renewing;
                self.xid = self.random() as u32;
            }
            if self.state != State::Bound {
                return vec![self.transmit(now)];
            }
            self.due = at(lease.renew_secs);
            return Vec::new();
        }
        if matches!(self.state, State::Requesting { .. }) && self.tries >= REQUEST_TRIES {
            return self.start(now);
        }
        vec![self.transmit(now)]
    }

    /// A message from a server.
    pub fn handle(&mut self, now: Millis, bytes: &[u8]) -> Vec<Action> {
        if !options_fit_dhcproto(bytes) {
            return Vec::new();
        }
        let Ok(m) = Message::decode(&mut Decoder::new(bytes)) else {
            return Vec::new();
        };
        // dhcproto's `chaddr()` slices by the packet's own `hlen` and
        // panics past 16 (found by the property test): check it first.
        if m.opcode() != Opcode::BootReply
            || m.xid() != self.xid
            || m.hlen() != 6
            || m.chaddr() != self.mac
        {
            return Vec::new();
        }
        let server = match m.opts().get(OptionCode::ServerIdentifier) {
            Some(DhcpOption::ServerIdentifier(ip)) => Some(*ip),
            _ => None,
        };
        match (m.opts().msg_type(), self.state.clone()) {
            (Some(MessageType::Offer), State::Selecting) => {
                let Some(server) = server else {
                    return Vec::new();
                };
                self.state = State::Requesting {
                    offered: m.yiaddr(),
                    server,
                };
                self.backoff = FIRST_BACKOFF;
                self.tries = 0;
                vec![self.transmit(now)]
            }
            (Some(MessageType::Ack), State::Requesting { offered, .. })
                if m.yiaddr() == offered =>
            {
                self.bind(now, &m, server)
            }
            (Some(MessageType::Ack), State::Renewing | State::Rebinding) => {
                let held = self.lease().map(|l| l.address);
                if held != Some(m.yiaddr()) {
                    return Vec::new();
                }
                self.bind(now, &m, server)
            }
            (
                Some(MessageType::Nak),
                State::Requesting { .. } | State::Renewing | State::Rebinding,
            ) => {
                let had = self.lease.take().is_some();
                let mut actions = if had {
                    vec![Action::Deconfigure]
                } else {
                    Vec::new()
                };
                actions.extend(self.start(now));
                actions
            }
            _ => Vec::new(),
        }
    }

    fn bind(&mut self, now: Millis, m: &Message, server: Option<Ipv4Addr>) -> Vec<Action> {
        let opts = m.opts();
        let secs = |code| match opts.get(code) {
            Some(DhcpOption::AddressLeaseTime(s))
            | Some(DhcpOption::Renewal(s))
            | Some(DhcpOption::Rebinding(s)) => Some(*s),
            _ => None,
        };
        // Never held longer than granted (a zero lease is taken as one second).
        let lease_secs = secs(OptionCode::AddressLeaseTime).unwrap_or(3_600).max(1);
        let renew_secs = secs(OptionCode::Renewal)
            .unwrap_or(lease_secs / 2)
            .min(lease_secs);
        let rebind_secs = secs(OptionCode::Rebinding)
            .unwrap_or(lease_secs / 8 * 7)
            .clamp(renew_secs, lease_secs);
        let prefix = match opts.get(OptionCode::SubnetMask) {
            Some(DhcpOption::SubnetMask(mask)) => u32::from(*mask).count_ones() as u8,
            _ => 24,
        };
        let router = match opts.get(OptionCode::Router) {
            Some(DhcpOption::Router(list)) => list.first().copied(),
            _ => None,
        };
        let dns = match opts.get(OptionCode::DomainNameServer) {
            Some(DhcpOption::DomainNameServer(list)) => list.clone(),
            _ => Vec::new(),
        };
        let lease = Lease {
            address: m.yiaddr(),
            prefix,
            router,
            dns,
            server: server.unwrap_or(m.siaddr()),
            lease_secs,
            renew_secs,
            rebind_secs,
        };
        self.state = State::Bound;
        self.tries = 0;
        self.backoff = FIRST_BACKOFF;
        self.due = now + u64::from(renew_secs) * 1000;
        self.lease = Some((lease.clone(), now));
        vec![Action::Configure(lease)]
    }
}

/// Whether dhcproto 0.15 may decode `bytes`: it trusts option lengths
/// (`debug_assert!`s on rapid commit 80, client FQDN 81, 94, the
/// bulk-leasequery times 152-155, checked after it has joined repeated
/// options) and reads past them in a release build. Replies on the uplink
/// come from anyone there, so they pass the DHCP server's own strict
/// option check first (every option walks, areas end with END, overload
/// once, every joined value's length as its RFC says), and dhcproto's
/// own view of them too: it joins only consecutive pieces and never reads
/// `file`/`sname`, so each run of pieces must have a valid length on its
/// own. The property test found a length check per piece; the fuzzer two
/// 4-byte pieces of option 155 that dhcproto joined into 8, then an
/// empty option 81 apart from its other pieces.
fn options_fit_dhcproto(bytes: &[u8]) -> bool {
    netvm_dhcp::check_options(bytes).is_ok() && netvm_dhcp::check_option_runs(bytes).is_ok()
}
