//! The resolver engine: bytes of a query in, steps out (replies to send,
//! upstream questions to ask). No sockets, no clock: the driver passes
//! the time and performs the steps.
//!
//! A query is dropped (and counted) when it does not parse, is not a
//! standard query, or its client is over its rate; it is REFUSED for ANY
//! and non-IN classes; names of the internal zone are answered from the
//! zone and never forwarded; everything else comes from the cache, joins
//! an identical question already waiting for an upstream (coalescing), or
//! is asked of an upstream — the one that answered last, then the next on
//! failure, until all were tried (SERVFAIL).

use crate::cache::{Cache, Key, Millis};
use crate::limiter::Limiter;
use crate::prepared::{PreparedReplies, Source};
use crate::zone::{Lookup, Zone};
use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Record, RecordType};
use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};

/// The EDNS payload size we offer and accept (the DNS flag day value).
const EDNS_PAYLOAD: u16 = 1232;

/// Settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Resolvers to forward to, in order of preference.
    pub upstreams: Vec<SocketAddr>,
    /// Most answers cached.
    pub cache_size: usize,
    /// Queries per second per client (0: no limit).
    pub client_rate: u32,
    /// Burst per client.
    pub client_burst: u32,
    /// Most questions waiting for upstreams.
    pub max_inflight: usize,
    /// Seed for upstream query ids.
    pub seed: u64,
}

/// How a client reached us.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    /// UDP: replies are cut to the client's payload size.
    Udp,
    /// TCP connection number `n` (the driver's).
    Tcp(u64),
}

/// Who asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Client {
    /// Its address.
    pub addr: SocketAddr,
    /// UDP or which TCP connection.
    pub transport: Transport,
}

/// Something for the driver to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send `bytes` to `to`.
    Reply {
        /// The client.
        to: Client,
        /// The DNS message.
        bytes: Vec<u8>,
    },
    /// Ask `upstream`; report the answer with [`Engine::upstream_reply`]
    /// or the failure (timeout, error) with [`Engine::upstream_failed`],
    /// both with `token`.
    Ask {
        /// Identifies the question.
        token: u64,
        /// The resolver.
        upstream: SocketAddr,
        /// The DNS message.
        bytes: Vec<u8>,
    },
}

/// What happened so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counters {
    /// Queries received (well-formed or not).
    pub queries: u64,
    /// Answered from the internal zone.
    pub local: u64,
    /// Answered from the cache.
    pub cache_hits: u64,
    /// Joined an identical question already waiting for an upstream.
    pub coalesced: u64,
    /// Questions asked of upstreams (retries included).
    pub forwarded: u64,
    /// Upstream attempts that failed (timeout, error, bad or failing answer).
    pub upstream_failures: u64,
    /// Answered SERVFAIL (no upstream, all failed, too many in flight).
    pub servfail: u64,
    /// Answered REFUSED (ANY, other classes).
    pub refused: u64,
    /// Dropped: did not parse or not a query.
    pub malformed: u64,
    /// Dropped: the client was over its rate.
    pub rate_limited: u64,
}

/// A client waiting for an upstream answer.
#[derive(Debug, Clone)]
struct Waiter {
    client: Client,
    id: u16,
    query: Query,
    recursion_desired: bool,
    edns: bool,
    payload: usize,
}

/// A question waiting for an upstream.
#[derive(Debug, Clone)]
struct Pending {
    key: Key,
    id: u16,
    upstream: usize,
    tried: usize,
    waiters: Vec<Waiter>,
}

/// The engine.
pub struct Engine {
    zone: Zone,
    cache: Cache,
    limiter: Limiter,
    upstreams: Vec<SocketAddr>,
    preferred: usize,
    max_inflight: usize,
    pending: HashMap<u64, Pending>,
    by_key: HashMap<Key, u64>,
    next_token: u64,
    rng: u64,
    prepared: PreparedReplies,
    counters: Counters,
}

impl Engine {
    /// An engine serving `zone` with `config`.
    pub fn new(zone: Zone, config: Config) -> Engine {
        Engine {
            zone,
            cache: Cache::new(config.cache_size),
            limiter: Limiter::new(config.client_rate, config.client_burst),
            upstreams: config.upstreams,
            preferred: 0,
            max_inflight: config.max_inflight.max(1),
            pending: HashMap::new(),
            by_key: HashMap::new(),
            next_token: 1,
            rng: config.seed | 1,
            prepared: PreparedReplies::new(config.cache_size + 4096),
            counters: Counters::default(),
        }
    }

    /// The counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }

    /// Replaces the names learned from DHCP and DHCPv6 leases (see
    /// [`Zone::set_learned`]).
    pub fn set_learned(&mut self, learned: &[(String, IpAddr)]) {
        if self.zone.set_learned(learned) {
            self.prepared.forget_local();
        }
    }

    /// Replaces the upstreams (learned on the uplink); questions already
    /// asked go on with the old ones.
    pub fn set_upstreams(&mut self, upstreams: Vec<SocketAddr>) {
        self.upstreams = upstreams;
        self.preferred = 0;
    }

    /// Questions waiting for upstreams.
    pub fn in_flight(&self) -> usize {
        self.pending.len()
    }

    /// The rate limit's key for a client address: an IPv4 address as it
    /// is; an IPv6 address inside the internal prefix as it is (each VM
    /// has its own /128 there, and all of them share the /64); any other
    /// IPv6 source by its /64, since a guest can pick any of 2^64
    /// link-local addresses and must not escape its limit or fill the
    /// table that way.
    fn bucket(&self, ip: IpAddr) -> IpAddr {
        let IpAddr::V6(v6) = ip else {
            return ip;
        };
        let inside = self.zone.prefix6().is_some_and(|(network, prefix)| {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            u128::from(v6) & mask == u128::from(network)
        });
        if inside {
            ip
        } else {
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64)))
        }
    }

    fn next_id(&mut self) -> u16 {
        // xorshift64: unpredictable enough to a client that cannot see
        // our upstream traffic; the driver also uses a fresh port each time.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 32) as u16
    }

    /// Handles a query from `client`.
    pub fn query(&mut self, now: Millis, client: Client, bytes: &[u8], out: &mut Vec<Step>) {
        self.counters.queries += 1;
        let Ok(message) = Message::from_vec(bytes) else {
            self.counters.malformed += 1;
            return;
        };
        let meta = &message.metadata;
        if meta.message_type != MessageType::Query || message.queries.len() != 1 {
            self.counters.malformed += 1;
            return;
        }
        if !self.limiter.allow(self.bucket(client.addr.ip()), now) {
            self.counters.rate_limited += 1;
            return;
        }
        let query = message.queries[0].clone();
        let payload = match (&client.transport, &message.edns) {
            (Transport::Tcp(_), _) => usize::from(u16::MAX),
            (Transport::Udp, Some(edns)) => {
                usize::from(edns.max_payload().clamp(512, EDNS_PAYLOAD))
            }
            (Transport::Udp, None) => 512,
        };
        let waiter = Waiter {
            client,
            id: meta.id,
            query: query.clone(),
            recursion_desired: meta.recursion_desired,
            edns: message.edns.is_some(),
            payload,
        };
        if meta.op_code != OpCode::Query {
            self.reply(&waiter, ResponseCode::NotImp, &[], &[], false, out);
            return;
        }
        if query.query_class != DNSClass::IN || query.query_type == RecordType::ANY {
            self.counters.refused += 1;
            self.reply(&waiter, ResponseCode::Refused, &[], &[], false, out);
            return;
        }
        let qname = query.name.to_lowercase();
        let prepared_key = (
            qname.clone(),
            query.query_type,
            waiter.recursion_desired,
            waiter.edns,
        );
        if let Some((bytes, source)) =
            self.prepared
                .reply(&prepared_key, bytes, waiter.id, waiter.payload, now)
        {
            self.count(source);
            out.push(Step::Reply { to: client, bytes });
            return;
        }
        let answer = match self.zone.lookup(&qname, query.query_type) {
            Lookup::Answer(records) => Some((ResponseCode::NoError, records, Vec::new(), true)),
            Lookup::NotOurs => None,
            negative => {
                let rcode = if negative == Lookup::NxDomain {
                    ResponseCode::NXDomain
                } else {
                    ResponseCode::NoError
                };
                Some((rcode, Vec::new(), vec![self.zone.soa().clone()], true))
            }
        };
        let (answer, source) = match answer {
            Some(local) => (Some(local), Source::Local),
            None => (
                self.cache
                    .get(&(qname.clone(), query.query_type), now)
                    .map(|c| (c.rcode, c.answers, c.authorities, false)),
                Source::Cache,
            ),
        };
        if let Some((rcode, answers, authorities, authoritative)) = answer {
            self.count(source);
            if let Some(bytes) = self.encode(&waiter, rcode, &answers, &authorities, authoritative)
            {
                self.prepared.keep(prepared_key, &bytes, source, now);
                out.push(Step::Reply { to: client, bytes });
            }
            return;
        }
        let key = (qname, query.query_type);
        if let Some(token) = self.by_key.get(&key) {
            if let Some(pending) = self.pending.get_mut(token) {
                self.counters.coalesced += 1;
                pending.waiters.push(waiter);
                return;
            }
        }
        if self.upstreams.is_empty() || self.pending.len() >= self.max_inflight {
            self.counters.servfail += 1;
            self.reply(&waiter, ResponseCode::ServFail, &[], &[], false, out);
            return;
        }
        let token = self.next_token;
        self.next_token += 1;
        let pending = Pending {
            key: key.clone(),
            id: 0,
            upstream: self.preferred % self.upstreams.len(),
            tried: 0,
            waiters: vec![waiter],
        };
        self.by_key.insert(key, token);
        self.pending.insert(token, pending);
        self.ask(token, out);
    }

    /// Sends (again) the question `token` to its current upstream.
    fn ask(&mut self, token: u64, out: &mut Vec<Step>) {
        let id = self.next_id();
        let Some(pending) = self.pending.get_mut(&token) else {
            return;
        };
        pending.id = id;
        let Some(upstream) = self.upstreams.get(pending.upstream).copied() else {
            return;
        };
        let mut message = Message::query();
        message.metadata.id = id;
        message.metadata.recursion_desired = true;
        message.add_query(Query::query(pending.key.0.clone(), pending.key.1));
        let mut edns = Edns::new();
        edns.set_max_payload(EDNS_PAYLOAD);
        message.set_edns(edns);
        if let Ok(bytes) = message.to_vec() {
            self.counters.forwarded += 1;
            out.push(Step::Ask {
                token,
                upstream,
                bytes,
            });
        }
    }

    /// An upstream answered question `token`.
    pub fn upstream_reply(&mut self, now: Millis, token: u64, bytes: &[u8], out: &mut Vec<Step>) {
        let Some(pending) = self.pending.get(&token) else {
            return; // answered or given up already
        };
        let answer = Message::from_vec(bytes).ok().filter(|m| {
            m.metadata.id == pending.id
                && m.metadata.message_type == MessageType::Response
                && m.queries.len() == 1
                && m.queries[0].name.to_lowercase() == pending.key.0
                && m.queries[0].query_type == pending.key.1
        });
        let usable = answer.filter(|m| {
            matches!(
                m.metadata.response_code,
                ResponseCode::NoError | ResponseCode::NXDomain
            )
        });
        let Some(answer) = usable else {
            self.upstream_failed(token, out);
            return;
        };
        let Some(pending) = self.pending.remove(&token) else {
            return;
        };
        self.by_key.remove(&pending.key);
        self.preferred = pending.upstream;
        self.cache.insert(pending.key.clone(), &answer, now);
        let rcode = answer.metadata.response_code;
        for waiter in &pending.waiters {
            self.reply(
                waiter,
                rcode,
                &answer.answers,
                &answer.authorities,
                false,
                out,
            );
        }
    }

    /// Asking the upstream for question `token` failed (no answer in
    /// time, an error, an answer we cannot use): the next upstream is
    /// asked, or when all were, the clients get SERVFAIL.
    pub fn upstream_failed(&mut self, token: u64, out: &mut Vec<Step>) {
        self.counters.upstream_failures += 1;
        let count = self.upstreams.len();
        let Some(pending) = self.pending.get_mut(&token) else {
            return;
        };
        pending.tried += 1;
        if count > 0 && pending.tried < count {
            pending.upstream = (pending.upstream + 1) % count;
            self.preferred = pending.upstream;
            self.ask(token, out);
            return;
        }
        let Some(pending) = self.pending.remove(&token) else {
            return;
        };
        self.by_key.remove(&pending.key);
        for waiter in &pending.waiters {
            self.counters.servfail += 1;
            self.reply(waiter, ResponseCode::ServFail, &[], &[], false, out);
        }
    }

    /// Counts an answer given without an upstream.
    fn count(&mut self, source: Source) {
        match source {
            Source::Local => self.counters.local += 1,
            Source::Cache => self.counters.cache_hits += 1,
        }
    }

    /// Builds the reply for `waiter` and hands it out.
    fn reply(
        &self,
        waiter: &Waiter,
        rcode: ResponseCode,
        answers: &[Record],
        authorities: &[Record],
        authoritative: bool,
        out: &mut Vec<Step>,
    ) {
        if let Some(bytes) = self.encode(waiter, rcode, answers, authorities, authoritative) {
            out.push(Step::Reply {
                to: waiter.client,
                bytes,
            });
        }
    }

    /// Encodes the reply for `waiter`; cut to a truncated header and
    /// question when it does not fit the client's payload size.
    fn encode(
        &self,
        waiter: &Waiter,
        rcode: ResponseCode,
        answers: &[Record],
        authorities: &[Record],
        authoritative: bool,
    ) -> Option<Vec<u8>> {
        let mut message = Message::response(waiter.id, OpCode::Query);
        message.metadata.response_code = rcode;
        message.metadata.recursion_desired = waiter.recursion_desired;
        message.metadata.recursion_available = true;
        message.metadata.authoritative = authoritative;
        message.add_query(waiter.query.clone());
        if waiter.edns {
            let mut edns = Edns::new();
            edns.set_max_payload(EDNS_PAYLOAD);
            message.set_edns(edns);
        }
        let question_only = message.clone();
        message.add_answers(answers.iter().cloned());
        message.add_authorities(authorities.iter().cloned());
        match message.to_vec() {
            Ok(bytes) if bytes.len() <= waiter.payload => Some(bytes),
            _ => {
                let mut cut = question_only;
                cut.metadata.truncation = true;
                cut.to_vec().ok()
            }
        }
    }
}
