//! Several uplinks (`[[netvm.uplink]]`): follows each one (the kernel's
//! link events, its DHCP client, its probes), lets
//! [`netvm_uplink::choice`] decide which carries the Internet, and makes
//! that so when it changes.
//!
//! * Each uplink present gets its own DHCP client (or its static
//!   address); its default route sits at metric `1000 + place`, so a
//!   probe bound to it has a way out. The active one also carries the
//!   metric-0 default route everything else follows.
//! * Probes: a DNS query for the root's NS records to each of the
//!   uplink's own resolvers, over that uplink (`SO_BINDTODEVICE`); any
//!   answer passes. An uplink that learned no resolver passes while
//!   addressed.
//! * A switch, in this order: the ruleset's `uplink_active` set (VMs'
//!   IPv4 and port forwards; one nft transaction), the metric-0 default
//!   route (one replace), the DNS upstreams, then every tracked IPv4
//!   connection with an end outside the internal network is cut (their
//!   NAT was the old uplink's). Events: `uplink_up`, `uplink_down`,
//!   `uplink_switched`, `uplink_failed`.
//! * Hot-plug: a NIC that appears and is an uplink the description names
//!   (by MAC, PCI or USB id) is renamed, the plan is applied again (the
//!   caller does that), and its client starts; one that vanishes is
//!   forgotten. The internal side is not touched.
//!
//! IPv6 stays on the primary (first) uplink.

use crate::parts::{refresh_upstreams, Part, Shared};
use crate::state::Uplink;
use netvm_apply::link_watch::LinkSeen;
use netvm_description::values::IfName;
use netvm_description::{System, UplinkAddressing};
use netvm_events::{Event, Kind};
use netvm_runtime::{error_chain, Bell, Stop};
use netvm_uplink::choice::{Candidate, Choice, LinkState, Observation, ProbePolicy, Switched};
use netvm_uplink::Lease;
use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The metric of the first uplink's own default route (the next ones
/// follow it).
pub const METRIC_BASE: u32 = 1000;

/// What the uplinks' threads report.
#[derive(Debug)]
enum News {
    /// The kernel's word on a link.
    Link(LinkSeen),
    /// An uplink's DHCP lease (or its loss).
    Lease(String, Option<Lease>),
    /// A probe's result.
    Probe(String, bool),
    /// A Wi-Fi uplink's association (keys installed) or its end.
    Wifi(crate::wifi::Association),
}

/// What the caller must do after [`Multi::step`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Nothing.
    Nothing,
    /// Apply the plan again (an uplink appeared under its planned name), then
    /// call [`Multi::step`] again.
    Apply,
}

/// The uplinks and their choice.
pub struct Multi {
    choice: Choice,
    epoch: Instant,
    tx: Sender<News>,
    rx: Receiver<News>,
    /// Rung when a thread reported something.
    pub bell: Bell,
    clients: BTreeMap<String, Part>,
    watcher: Option<(Stop, JoinHandle<()>)>,
    /// Links the kernel has now, by name.
    links: BTreeSet<String>,
    carrier: BTreeMap<String, bool>,
    /// Link events to take in again once the plan was applied.
    replay: Vec<LinkSeen>,
    /// The Wi-Fi supplicants (stopped with the manager).
    radios: crate::wifi::Radios,
}

impl Multi {
    /// Starts following the uplinks of `system` (the link watcher; the
    /// clients start as their links show up); `bell` rings when a thread
    /// reported something.
    pub fn start(system: &System, shared: &Shared, bell: &Bell) -> Multi {
        let candidates: Vec<Candidate> = system
            .netvm
            .uplinks
            .iter()
            .map(|u| Candidate {
                name: u.name.to_string(),
                priority: u.priority,
                wifi: u.wifi.is_some(),
            })
            .collect();
        let (tx, rx) = channel();
        let bell = bell.clone();
        let stop = Stop::new();
        let watcher = {
            let (tx, bell, stop, hub) =
                (tx.clone(), bell.clone(), stop.clone(), shared.hub.clone());
            thread::spawn(move || {
                let Ok(fd) = stop.fd() else { return };
                let result = netvm_apply::link_watch::watch_links(fd, &mut |seen| {
                    let _ = tx.send(News::Link(seen));
                    bell.ring();
                });
                if let Err(e) = result {
                    hub.emit(
                        Event::new(Kind::UplinkFailed {
                            uplink: "*".to_owned(),
                            error: format!("watching links: {}", error_chain(&e)),
                        }),
                        true,
                    );
                }
            })
        };
        Multi {
            choice: Choice::new(&candidates, probe_policy(system)),
            epoch: Instant::now(),
            tx,
            rx,
            bell,
            clients: BTreeMap::new(),
            watcher: Some((stop, watcher)),
            // What is there at start was configured by the agent's first
            // apply; only what appears later needs it again.
            links: std::fs::read_dir("/sys/class/net")
                .map(|dir| {
                    dir.flatten()
                        .map(|e| e.file_name().to_string_lossy().into_owned())
                        .collect()
                })
                .unwrap_or_default(),
            replay: Vec::new(),
            carrier: BTreeMap::new(),
            radios: shared.wifi.clone(),
        }
    }

    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// When the next probe is due.
    pub fn deadline(&self) -> Option<Instant> {
        self.choice
            .next_due()
            .and_then(|ms| self.epoch.checked_add(Duration::from_millis(ms)))
    }

    /// Takes in what the threads reported, starts the probes due, and
    /// acts on what changed.
    pub fn step(&mut self, system: &System, shared: &Shared) -> Next {
        self.bell.take();
        let mut next = Next::Nothing;
        for seen in std::mem::take(&mut self.replay) {
            let now = self.now();
            let _ = self.link(system, shared, &seen, now);
        }
        while let Ok(news) = self.rx.try_recv() {
            let now = self.now();
            match news {
                News::Link(seen) => {
                    if self.link(system, shared, &seen, now) == Next::Apply {
                        next = Next::Apply;
                    }
                }
                News::Lease(name, lease) => {
                    let addressed = lease.is_some();
                    // The active uplink renewed with another gateway: the
                    // metric-0 default route follows it.
                    let mut new_router = None;
                    if let Ok(mut state) = shared.state.lock() {
                        match lease {
                            Some(l) => {
                                let active = state
                                    .active_uplink
                                    .as_ref()
                                    .is_some_and(|a| a.as_str() == name);
                                if active {
                                    let before =
                                        state.uplink_leases.get(&name).and_then(|o| o.router);
                                    if before.is_some() && l.router.is_some() && before != l.router
                                    {
                                        new_router = l.router;
                                    }
                                    state.uplink = Uplink::Bound(l.clone());
                                }
                                state.uplink_leases.insert(name.clone(), l);
                            }
                            None => {
                                state.uplink_leases.remove(&name);
                            }
                        }
                    }
                    if let Some(router) = new_router {
                        if let Err(e) = netvm_apply::move_default_route(Some((&name, router))) {
                            failed(
                                shared,
                                &name,
                                format!("the default route: {}", error_chain(&e)),
                            );
                        }
                    }
                    refresh_upstreams(shared);
                    self.observe(
                        system,
                        shared,
                        &name,
                        Observation::Addressed(addressed),
                        now,
                    );
                }
                News::Probe(name, ok) => {
                    self.observe(system, shared, &name, Observation::Probe(ok), now);
                }
                News::Wifi(association) => self.associated(system, shared, &association, now),
            }
        }
        // A client that ended on its own (its socket failed, its link went
        // between two events) is reported; the next carrier starts another.
        let ended: Vec<String> = self
            .clients
            .iter()
            .filter(|(_, part)| part.is_finished())
            .map(|(name, _)| name.clone())
            .collect();
        for name in ended {
            if let Some(part) = self.clients.remove(&name) {
                let why = part.stop().err().unwrap_or_else(|| "it ended".to_owned());
                failed(shared, &name, format!("its DHCP client: {why}"));
                self.carrier.insert(name, false);
            }
        }
        for name in self.choice.probes_due(self.now()) {
            self.probe(&name, shared);
        }
        if let Ok(mut state) = shared.state.lock() {
            state.uplinks = self.choice.status();
        }
        next
    }

    /// Follows one link event.
    fn link(&mut self, system: &System, shared: &Shared, seen: &LinkSeen, now: u64) -> Next {
        let new = if seen.present {
            self.links.insert(seen.name.clone())
        } else {
            self.links.remove(&seen.name);
            false
        };
        let ours = system
            .netvm
            .uplinks
            .iter()
            .any(|u| u.name.as_str() == seen.name);
        if new && ours {
            // Plugged in under its own name: its kernel settings and link
            // come from the plan, applied again first; this event is
            // taken in after that (the caller calls `step` again).
            self.replay.push(seen.clone());
            return Next::Apply;
        }
        let Some(up) = system
            .netvm
            .uplinks
            .iter()
            .find(|u| u.name.as_str() == seen.name)
        else {
            if seen.present {
                self.adopt(system, shared, &seen.name);
            }
            return Next::Nothing;
        };
        let name = seen.name.clone();
        if up.wifi.is_some() {
            self.tend_supplicant(up, shared, seen.present);
        }
        if !seen.present {
            self.carrier.remove(&name);
            if let Some(part) = self.clients.remove(&name) {
                let _ = part.stop();
            }
            if let Ok(mut state) = shared.state.lock() {
                state.uplink_leases.remove(&name);
            }
            self.observe(system, shared, &name, Observation::Present(false), now);
            return Next::Nothing;
        }
        let had = self
            .carrier
            .insert(name.clone(), seen.carrier)
            .unwrap_or(false);
        self.observe(system, shared, &name, Observation::Present(true), now);
        if up.wifi.is_some() {
            // Wi-Fi: addressing starts when the supplicant says the keys
            // are installed (carrier comes at association, before them).
            if seen.carrier != had {
                self.observe(
                    system,
                    shared,
                    &name,
                    Observation::Carrier(seen.carrier),
                    now,
                );
            }
        } else if seen.carrier && !had {
            // Carrier (back): perhaps another network, so a fresh lease.
            if let Some(part) = self.clients.remove(&name) {
                let _ = part.stop();
                self.observe(system, shared, &name, Observation::Addressed(false), now);
            }
            self.observe(system, shared, &name, Observation::Carrier(true), now);
            self.address(system, shared, up);
        } else if !seen.carrier && had {
            self.observe(system, shared, &name, Observation::Carrier(false), now);
        }
        Next::Nothing
    }

    /// Runs wpa_supplicant on a Wi-Fi uplink while its interface exists.
    fn tend_supplicant(&mut self, up: &netvm_description::Uplink, shared: &Shared, present: bool) {
        let name = up.name.to_string();
        let Ok(mut running) = self.radios.running.lock() else {
            return;
        };
        if !present {
            // Dropped (stopped) outside the lock.
            let gone = running.remove(&name);
            drop(running);
            drop(gone);
            return;
        }
        if running.contains_key(&name) {
            return;
        }
        let saved = self.radios.saved.load().unwrap_or_else(|e| {
            failed(shared, &name, format!("the saved Wi-Fi networks: {e}"));
            Default::default()
        });
        let networks = crate::wifi::networks(up, &saved, &shared.hub);
        let report: crate::wifi::Report = {
            let (tx, bell) = (self.tx.clone(), self.bell.clone());
            Arc::new(move |association| {
                let _ = tx.send(News::Wifi(association));
                bell.ring();
            })
        };
        let supplicant = crate::wifi::Supplicant::start(
            up,
            networks,
            &self.radios.dir,
            Arc::clone(&shared.hub),
            report,
        );
        running.insert(name, Arc::new(supplicant));
    }

    /// A Wi-Fi uplink associated (keys installed) or lost its access
    /// point: a fresh lease, or none.
    fn associated(
        &mut self,
        system: &System,
        shared: &Shared,
        association: &crate::wifi::Association,
        now: u64,
    ) {
        let name = association.uplink.clone();
        let Some(up) = system
            .netvm
            .uplinks
            .iter()
            .find(|u| u.name.as_str() == name)
        else {
            return;
        };
        if let Some(part) = self.clients.remove(&name) {
            let _ = part.stop();
            if let Ok(mut state) = shared.state.lock() {
                state.uplink_leases.remove(&name);
            }
            self.observe(system, shared, &name, Observation::Addressed(false), now);
        }
        self.observe(
            system,
            shared,
            &name,
            Observation::Associated(association.associated),
            now,
        );
        if association.associated {
            self.carrier.insert(name.clone(), true);
            self.observe(system, shared, &name, Observation::Carrier(true), now);
            self.address(system, shared, up);
        }
    }

    /// A link the description names as an uplink, under another name:
    /// renamed. The kernel then announces it under its planned name, a
    /// new uplink link, and that event has the plan applied to it.
    fn adopt(&mut self, system: &System, shared: &Shared, name: &str) {
        let Ok(nics) = netvm_apply::guest::nics(Path::new("/sys")) else {
            return;
        };
        let Some(nic) = nics.iter().find(|n| n.name == name) else {
            return;
        };
        let present: Vec<String> = self.links.iter().cloned().collect();
        let Some(to) = netvm_plan::guest::uplink_for(system, nic, &present) else {
            return;
        };
        let rename = netvm_plan::guest::Rename {
            from: name.to_owned(),
            to: to.clone(),
        };
        match netvm_apply::guest::rename(&[rename]) {
            Ok(()) => {
                shared.hub.emit(
                    Event::new(Kind::InterfacesRenamed {
                        renamed: vec![netvm_events::Renamed {
                            from: name.to_owned(),
                            to,
                        }],
                    }),
                    true,
                );
            }
            Err(e) => failed(shared, &to, format!("renaming {name}: {}", error_chain(&e))),
        }
    }

    /// Gives an uplink with carrier its address: a DHCP client, or the
    /// described static one.
    fn address(&mut self, system: &System, shared: &Shared, up: &netvm_description::Uplink) {
        let name = up.name.to_string();
        let place = system
            .netvm
            .uplinks
            .iter()
            .position(|u| u.name == up.name)
            .unwrap_or(0);
        let metric = METRIC_BASE + u32::try_from(place).unwrap_or(0);
        match &up.addressing {
            UplinkAddressing::Dhcp => {
                if !self.clients.contains_key(&name) {
                    let part = start_client(&up.name, metric, &self.tx, &self.bell);
                    self.clients.insert(name, part);
                }
            }
            UplinkAddressing::Static {
                address,
                gateway,
                dns,
            } => {
                let applied = netvm_apply::set_uplink_at(
                    &name,
                    Some((address.addr(), address.prefix())),
                    Some(*gateway),
                    metric,
                );
                if let Err(e) = applied {
                    failed(shared, &name, error_chain(&e));
                    return;
                }
                let lease = Lease {
                    address: address.addr(),
                    prefix: address.prefix(),
                    router: Some(*gateway),
                    dns: dns.clone(),
                    server: *gateway,
                    lease_secs: 0,
                    renew_secs: 0,
                    rebind_secs: 0,
                };
                let _ = self.tx.send(News::Lease(name, Some(lease)));
                self.bell.ring();
            }
        }
    }

    /// Starts a probe of `name` on a thread of its own.
    fn probe(&self, name: &str, shared: &Shared) {
        let dns: Vec<Ipv4Addr> = shared
            .state
            .lock()
            .ok()
            .and_then(|s| s.uplink_leases.get(name).map(|l| l.dns.clone()))
            .unwrap_or_default();
        let (tx, bell, name) = (self.tx.clone(), self.bell.clone(), name.to_owned());
        // Ends with the manager: a probe under way at the agent's stop
        // gives up at once.
        let stop = self
            .watcher
            .as_ref()
            .map(|(stop, _)| stop.clone())
            .unwrap_or_default();
        thread::spawn(move || {
            let ok = match name.parse::<IfName>() {
                Ok(interface) => {
                    dns.is_empty() || dns.iter().take(2).any(|r| probe_dns(&interface, *r, &stop))
                }
                Err(_) => false,
            };
            let _ = tx.send(News::Probe(name, ok));
            bell.ring();
        });
    }

    /// Feeds the choice; reports state changes and acts on a switch.
    fn observe(
        &mut self,
        system: &System,
        shared: &Shared,
        name: &str,
        observation: Observation,
        now: u64,
    ) {
        let changes = self.choice.observe(name, observation, now);
        for (uplink, from, to) in &changes.states {
            if *to == LinkState::Up {
                let lease = shared
                    .state
                    .lock()
                    .ok()
                    .and_then(|s| s.uplink_leases.get(uplink).cloned());
                if let Some(lease) = lease {
                    shared.hub.emit(
                        Event::new(Kind::UplinkUp {
                            uplink: uplink.clone(),
                            address: lease.address,
                            router: lease.router,
                        }),
                        true,
                    );
                }
            } else if *from == LinkState::Up {
                shared.hub.emit(
                    Event::new(Kind::UplinkDown {
                        uplink: uplink.clone(),
                        state: to.as_str().to_owned(),
                    }),
                    true,
                );
            }
        }
        if let Some(switched) = changes.switched {
            switch(system, shared, &switched);
        }
    }

    /// Stops the watcher and the clients.
    pub fn stop(&mut self) {
        if let Some((stop, thread)) = self.watcher.take() {
            stop.stop();
            let _ = thread.join();
        }
        for (_, part) in std::mem::take(&mut self.clients) {
            let _ = part.stop();
        }
        // The supplicants stop as they are dropped (outside the lock).
        let gone = self
            .radios
            .running
            .lock()
            .map(|mut r| std::mem::take(&mut *r))
            .unwrap_or_default();
        drop(gone);
    }
}

/// The probe timings: `[agent] uplink_probe_every` between passes and as
/// the first wait once failed (doubling up to twice that, at least 60 s),
/// `uplink_probe_failures` failures in a row, 1 s retries until then.
fn probe_policy(system: &System) -> ProbePolicy {
    let every = u64::from(system.agent.uplink_probe_every) * 1000;
    ProbePolicy {
        interval: every,
        retry: 1_000.min(every),
        failures_to_fail: system.agent.uplink_probe_failures,
        backoff_max: (2 * every).max(60_000),
    }
}

fn failed(shared: &Shared, uplink: &str, error: String) {
    shared.hub.emit(
        Event::new(Kind::UplinkFailed {
            uplink: uplink.to_owned(),
            error,
        }),
        true,
    );
}

/// Makes `switched` so (see the module's list).
fn switch(system: &System, shared: &Shared, switched: &Switched) {
    let to = switched.to.as_deref();
    let lease = to.and_then(|name| {
        shared
            .state
            .lock()
            .ok()
            .and_then(|s| s.uplink_leases.get(name).cloned())
    });
    if let Ok(mut state) = shared.state.lock() {
        state.active_uplink = to.and_then(|n| n.parse().ok());
        state.uplink = match &lease {
            Some(l) => Uplink::Bound(l.clone()),
            None => Uplink::Lost,
        };
    }
    let name = to.unwrap_or("-");
    if let Err(e) = netvm_apply::set_active_uplink(to) {
        failed(
            shared,
            name,
            format!("the ruleset's active uplink: {}", error_chain(&e)),
        );
    }
    let route = match (to, lease.as_ref().and_then(|l| l.router)) {
        (Some(to), Some(router)) => Some((to, router)),
        _ => None,
    };
    if let Err(e) = netvm_apply::move_default_route(route) {
        failed(
            shared,
            name,
            format!("the default route: {}", error_chain(&e)),
        );
    }
    shared.learn6(|learned| learned.has_ipv4 = to.is_some());
    refresh_upstreams(shared);
    // Connections through the old uplink were masqueraded to its
    // address: cut, so each goes on (or is refused) afresh.
    let subnet = system.network.subnet;
    let outside =
        |c: &netvm_plan::policy::Connection| !(subnet.contains(c.src) && subnet.contains(c.dst));
    if switched.from.is_some() {
        if let Err(e) = netvm_apply::conntrack::cut(&outside, &|_| false) {
            failed(
                shared,
                name,
                format!("cutting connections: {}", error_chain(&e)),
            );
        }
    }
    shared.hub.emit(
        Event::new(Kind::UplinkSwitched {
            from: switched.from.clone(),
            to: switched.to.clone(),
            reason: switched.reason.as_str().to_owned(),
        }),
        true,
    );
}

/// Starts the DHCP client of one uplink; its leases go to the manager.
fn start_client(interface: &IfName, metric: u32, tx: &Sender<News>, bell: &Bell) -> Part {
    let (interface, tx, bell) = (interface.clone(), tx.clone(), bell.clone());
    Part::spawn("uplink", &Bell::new(), move |control| {
        let name = interface.to_string();
        let mut on_lease = |lease: Option<&Lease>| {
            let _ = tx.send(News::Lease(name.clone(), lease.cloned()));
            bell.ring();
        };
        crate::uplink::run_at(
            &interface,
            metric,
            &control.stop,
            &mut std::io::stdout(),
            &mut on_lease,
        )
        .map_err(|e| error_chain(&e))
    })
}

/// One DNS query (the root's NS) to `resolver` over `interface`; true
/// when an answer to it (its id, the response bit) comes back within
/// [`crate::dns_exchange::TIMEOUT`]. Any answer passes, a refusal too:
/// the path works.
fn probe_dns(interface: &IfName, resolver: Ipv4Addr, stop: &Stop) -> bool {
    let Ok(socket) = netvm_runtime::udp_on(interface, 0) else {
        return false;
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let id = (std::process::id() as u16) ^ (nanos as u16);
    let [hi, lo] = id.to_be_bytes();
    // Header: id, RD, one question; question: ".", NS, IN.
    let query = [hi, lo, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 1];
    let server = SocketAddr::from((resolver, 53));
    match crate::dns_exchange::exchange(&socket, server, &query, stop) {
        Ok(Some(reply)) => reply.len() >= 12 && reply[..2] == [hi, lo] && reply[2] & 0x80 != 0,
        _ => false,
    }
}

/// Each uplink as `netvm uplinks` shows it. With one uplink: up while it
/// has its address, and always the active one then.
pub fn info(state: &crate::state::State) -> Vec<netvm_events::control::UplinkInfo> {
    use netvm_events::control::UplinkInfo;
    if !state.system.netvm.managed_uplinks() {
        let up = state.system.netvm.uplink();
        let (address, router) = match (&state.uplink, &up.addressing) {
            (Uplink::Bound(l), _) => (Some(l.address), l.router),
            (
                Uplink::Static,
                UplinkAddressing::Static {
                    address, gateway, ..
                },
            ) => (Some(address.addr()), Some(*gateway)),
            _ => (None, None),
        };
        return vec![UplinkInfo {
            name: up.name.to_string(),
            priority: up.priority,
            state: if address.is_some() {
                "up"
            } else {
                "addressing"
            }
            .to_owned(),
            active: address.is_some(),
            proven: false,
            failures: 0,
            address,
            router,
        }];
    }
    state
        .uplinks
        .iter()
        .map(|s| {
            let lease = state.uplink_leases.get(&s.name);
            UplinkInfo {
                name: s.name.clone(),
                priority: s.priority,
                state: s.state.as_str().to_owned(),
                active: s.active,
                proven: s.proven,
                failures: s.failures,
                address: lease.map(|l| l.address),
                router: lease.and_then(|l| l.router),
            }
        })
        .collect()
}
