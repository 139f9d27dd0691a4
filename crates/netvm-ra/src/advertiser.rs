//! The internal network's router: Router Advertisements to all nodes on
//! one interface, at start, periodically and in answer to solicitations
//! (timing in [`crate::schedule`]), a new configuration announced at
//! once, and a last advertisement with router lifetime 0 when stopped
//! (RFC 4861 §6.2.5).
//!
//! The thread sleeps in one `poll` on its socket, the stop handle, the
//! update bell and the next deadline: idle, it wakes once per interval.

use crate::schedule::{Millis, Schedule};
use crate::socket::{mac_of, NdSocket};
use crate::RaError;
use netvm_description::values::{IfName, MacAddr};
use netvm_ndp::{
    parse_router_solicit, BuildError, ParseError, PrefixInfo, RouterAdvert, ALL_NODES, ALL_ROUTERS,
    ROUTER_SOLICIT,
};
use netvm_runtime::{Bell, Stop};
use std::hash::{BuildHasher, RandomState};
use std::net::Ipv6Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Default MinRtrAdvInterval (RFC 4861 §6.2.1: a third of the maximum).
pub const MIN_INTERVAL: Duration = Duration::from_secs(200);
/// Default MaxRtrAdvInterval.
pub const MAX_INTERVAL: Duration = Duration::from_secs(600);
/// Router lifetime advertised inside (three times MaxRtrAdvInterval).
pub const ROUTER_LIFETIME_SECS: u16 = 1800;
/// Lifetime of the advertised DNS server and search domain (RFC 8106
/// §5.1: at least three times MaxRtrAdvInterval).
pub const DNS_LIFETIME_SECS: u32 = 1800;
/// How many advertisements after a change still carry what the change
/// removed, with lifetime 0, so hosts drop it now rather than when its
/// lifetime runs out: the fast initial series.
const WITHDRAW_ADVERTS: u8 = 3;

/// What to advertise and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdvertConfig {
    /// The advertisement; its `source_mac`, when `None`, is the
    /// interface's own address.
    pub advert: RouterAdvert,
    /// MinRtrAdvInterval (at least 3 s).
    pub min_interval: Duration,
    /// MaxRtrAdvInterval.
    pub max_interval: Duration,
}

impl AdvertConfig {
    /// What the net-vm advertises on its internal network: addresses and
    /// DNS by DHCPv6 (M=1, O=1), itself as default router for 1800 s,
    /// `dns` as RDNSS, `domain` as DNSSL, the link `mtu`, and no on-link
    /// prefix, so every packet, VM to VM too, goes through the net-vm.
    /// `prefix`, when given, is announced with L=0 and A=0 (neither
    /// on-link nor for SLAAC), lifetimes one day valid, 4 h preferred.
    pub fn internal(
        dns: Ipv6Addr,
        domain: Option<&str>,
        mtu: u32,
        prefix: Option<(Ipv6Addr, u8)>,
    ) -> AdvertConfig {
        AdvertConfig {
            advert: RouterAdvert {
                cur_hop_limit: 64,
                managed: true,
                other: true,
                router_lifetime_secs: ROUTER_LIFETIME_SECS,
                reachable_ms: 0,
                retrans_ms: 0,
                source_mac: None,
                mtu: Some(mtu),
                prefixes: prefix
                    .map(|(prefix, len)| PrefixInfo {
                        prefix: netvm_ndp::mask(prefix, len),
                        len,
                        on_link: false,
                        autonomous: false,
                        valid_secs: 86_400,
                        preferred_secs: 14_400,
                    })
                    .into_iter()
                    .collect(),
                routes: Vec::new(),
                rdnss: vec![(dns, DNS_LIFETIME_SECS)],
                dnssl: domain
                    .map(|d| (d.to_owned(), DNS_LIFETIME_SECS))
                    .into_iter()
                    .collect(),
                pref64: None,
            },
            min_interval: MIN_INTERVAL,
            max_interval: MAX_INTERVAL,
        }
    }
}

/// What an advertiser did, returned when it stops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AdvertStats {
    /// Advertisements sent (the last, lifetime 0, included).
    pub sent: u64,
    /// Advertisements the kernel refused to send (e.g. the link-local
    /// address not yet usable); tried again within 16 s.
    pub send_errors: u64,
    /// Valid Router Solicitations received.
    pub solicitations: u64,
    /// Router Solicitations refused by the parser.
    pub refused: u64,
    /// Other ICMPv6 messages that got past the kernel filter (only those
    /// queued before it was attached).
    pub ignored: u64,
    /// Configurations applied at run time.
    pub updates: u64,
}

/// Hands an advertiser a new configuration from another thread.
#[derive(Debug, Clone)]
pub struct AdvertHandle {
    pending: Arc<Mutex<Option<AdvertConfig>>>,
    bell: Bell,
}

impl AdvertHandle {
    /// Replaces the configuration; the advertiser announces it at once
    /// (within the 3 s between advertisements). Refused, and the old one
    /// kept, if it cannot be built.
    pub fn update(&self, config: AdvertConfig) -> Result<(), BuildError> {
        config.advert.build()?;
        *self.pending.lock().unwrap_or_else(|p| p.into_inner()) = Some(config);
        self.bell.ring();
        Ok(())
    }
}

/// Router Advertisements on one interface.
#[derive(Debug)]
pub struct Advertiser {
    interface: IfName,
    socket: NdSocket,
    mac: Option<MacAddr>,
    config: AdvertConfig,
    /// What the last change removed, with lifetimes 0.
    withdrawn: Withdrawn,
    withdraw_left: u8,
    pending: Arc<Mutex<Option<AdvertConfig>>>,
    bell: Bell,
    stats: AdvertStats,
}

impl Advertiser {
    /// Opens a raw ICMPv6 socket on `interface` that hears only Router
    /// Solicitations (joined to `ff02::2`) and sends with hop limit 255.
    /// Needs `CAP_NET_RAW`. Nothing is sent until [`Advertiser::run`].
    pub fn open(interface: &IfName, config: AdvertConfig) -> Result<Advertiser, RaError> {
        config.advert.build()?;
        let socket =
            NdSocket::open(interface, ROUTER_SOLICIT, Some(ALL_ROUTERS)).map_err(|source| {
                RaError::Open {
                    interface: interface.clone(),
                    source,
                }
            })?;
        Ok(Advertiser {
            interface: interface.clone(),
            socket,
            mac: mac_of(interface),
            config,
            withdrawn: Withdrawn::default(),
            withdraw_left: 0,
            pending: Arc::default(),
            bell: Bell::new(),
            stats: AdvertStats::default(),
        })
    }

    /// A handle to change the configuration while it runs.
    pub fn handle(&self) -> AdvertHandle {
        AdvertHandle {
            pending: Arc::clone(&self.pending),
            bell: self.bell.clone(),
        }
    }

    /// Advertises until `stop`, then sends one advertisement with router
    /// lifetime 0 and returns what it did. Ends early only if the socket
    /// or the wait fails (e.g. the interface went away).
    pub fn run(mut self, stop: &Stop) -> Result<AdvertStats, RaError> {
        let start = Instant::now();
        let now = || Millis::try_from(start.elapsed().as_millis()).unwrap_or(Millis::MAX);
        let mut schedule = Schedule::new(now(), self.config.min_interval, self.config.max_interval);
        loop {
            if schedule.is_due(now()) {
                if self.send(self.router_lifetime()) {
                    schedule.sent(now(), random());
                } else {
                    schedule.failed(now(), random());
                }
            }
            let deadline = start + Duration::from_millis(schedule.poll_at());
            let ready = {
                let fds = [self.socket.fd(), self.bell.fd().map_err(RaError::Wait)?];
                stop.wait_any(&fds, Some(deadline)).map_err(RaError::Wait)?
            };
            let Some(ready) = ready else {
                break;
            };
            if ready.is_ready(1) && self.bell.take() {
                let config = self
                    .pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .take();
                if let Some(config) = config {
                    schedule.set_intervals(config.min_interval, config.max_interval);
                    self.apply(config);
                    schedule.changed(now());
                }
            }
            if ready.is_ready(0) {
                self.read(&mut schedule, now())?;
            }
        }
        self.send(0);
        Ok(self.stats)
    }

    fn router_lifetime(&self) -> u16 {
        self.config.advert.router_lifetime_secs
    }

    /// Takes `config`, remembering what it no longer advertises.
    fn apply(&mut self, config: AdvertConfig) {
        self.withdrawn = Withdrawn::between(&self.config.advert, &config.advert);
        self.withdraw_left = WITHDRAW_ADVERTS;
        self.config = config;
        self.stats.updates += 1;
    }

    /// Reads every queued message, scheduling an answer to valid
    /// solicitations.
    fn read(&mut self, schedule: &mut Schedule, now: Millis) -> Result<(), RaError> {
        loop {
            let received = self.socket.receive().map_err(|source| RaError::Receive {
                interface: self.interface.clone(),
                source,
            })?;
            let Some(message) = received else {
                return Ok(());
            };
            match parse_router_solicit(message.source, message.hop_limit, message.bytes) {
                Ok(_) => {
                    self.stats.solicitations += 1;
                    schedule.solicited(now, random());
                }
                Err(ParseError::Type(_)) => self.stats.ignored += 1,
                Err(_) => self.stats.refused += 1,
            }
        }
    }

    /// The advertisement as it goes out now.
    fn current(&self, router_lifetime_secs: u16) -> RouterAdvert {
        let mut advert = self.config.advert.clone();
        advert.router_lifetime_secs = router_lifetime_secs;
        advert.source_mac = advert.source_mac.or(self.mac);
        if self.withdraw_left > 0 {
            self.withdrawn.add_to(&mut advert);
        }
        advert
    }

    /// Sends the advertisement to all nodes; whether it went out.
    fn send(&mut self, router_lifetime_secs: u16) -> bool {
        let sent = self
            .current(router_lifetime_secs)
            .build()
            .ok()
            .map(|bytes| self.socket.send(ALL_NODES, &bytes));
        match sent {
            Some(Ok(())) => {
                self.stats.sent += 1;
                self.withdraw_left = self.withdraw_left.saturating_sub(1);
                true
            }
            _ => {
                self.stats.send_errors += 1;
                false
            }
        }
    }
}

/// What a configuration change took away: prefixes, DNS servers, search
/// domains and the NAT64 prefix, each with lifetime 0.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Withdrawn {
    prefixes: Vec<PrefixInfo>,
    rdnss: Vec<(Ipv6Addr, u32)>,
    dnssl: Vec<(String, u32)>,
    pref64: Option<netvm_ndp::Pref64>,
}

impl Withdrawn {
    fn between(old: &RouterAdvert, new: &RouterAdvert) -> Withdrawn {
        Withdrawn {
            prefixes: old
                .prefixes
                .iter()
                .filter(|p| {
                    !new.prefixes
                        .iter()
                        .any(|n| (n.prefix, n.len) == (p.prefix, p.len))
                })
                .map(|p| PrefixInfo {
                    valid_secs: 0,
                    preferred_secs: 0,
                    ..p.clone()
                })
                .collect(),
            rdnss: old
                .rdnss
                .iter()
                .filter(|(a, _)| !new.rdnss.iter().any(|(n, _)| n == a))
                .map(|(a, _)| (*a, 0))
                .collect(),
            dnssl: old
                .dnssl
                .iter()
                .filter(|(d, _)| !new.dnssl.iter().any(|(n, _)| n == d))
                .map(|(d, _)| (d.clone(), 0))
                .collect(),
            // One PREF64 fits: withdrawn only when none replaces it.
            pref64: match (&old.pref64, &new.pref64) {
                (Some(old), None) => Some(netvm_ndp::Pref64 {
                    lifetime_secs: 0,
                    ..old.clone()
                }),
                _ => None,
            },
        }
    }

    fn add_to(&self, advert: &mut RouterAdvert) {
        advert.prefixes.extend(self.prefixes.iter().cloned());
        advert.rdnss.extend(self.rdnss.iter().cloned());
        advert.dnssl.extend(self.dnssl.iter().cloned());
        if advert.pref64.is_none() {
            advert.pref64.clone_from(&self.pref64);
        }
    }
}

/// A random number for the schedule's jitter (std's per-process random
/// hash keys; no cryptographic use).
fn random() -> u64 {
    RandomState::new().hash_one(Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v6(text: &str) -> Ipv6Addr {
        text.parse().expect("address")
    }

    #[test]
    fn the_internal_advert_builds_and_has_no_on_link_prefix() {
        let config = AdvertConfig::internal(
            v6("fd00:1::1"),
            Some("lab.internal"),
            1500,
            Some((v6("fd00:1::99"), 64)),
        );
        let advert = &config.advert;
        assert!(advert.managed && advert.other);
        assert_eq!(advert.prefixes[0].prefix, v6("fd00:1::"));
        assert!(!advert.prefixes[0].on_link && !advert.prefixes[0].autonomous);
        assert!(advert.build().is_ok());
    }

    #[test]
    fn a_change_withdraws_what_it_removed() {
        let old = AdvertConfig::internal(
            v6("fd00:1::1"),
            Some("a.internal"),
            1500,
            Some((v6("fd00:1::"), 64)),
        );
        let new = AdvertConfig::internal(
            v6("fd00:2::1"),
            Some("a.internal"),
            1500,
            Some((v6("fd00:2::"), 64)),
        );
        let withdrawn = Withdrawn::between(&old.advert, &new.advert);
        assert_eq!(withdrawn.rdnss, [(v6("fd00:1::1"), 0)]);
        assert!(withdrawn.dnssl.is_empty(), "the domain stayed");
        assert_eq!(withdrawn.prefixes.len(), 1);
        assert_eq!(withdrawn.prefixes[0].prefix, v6("fd00:1::"));
        assert_eq!(withdrawn.prefixes[0].valid_secs, 0);
        let mut advert = new.advert.clone();
        withdrawn.add_to(&mut advert);
        assert_eq!(
            advert.rdnss,
            [(v6("fd00:2::1"), 1800), (v6("fd00:1::1"), 0)]
        );
        assert!(advert.build().is_ok());
    }
}
