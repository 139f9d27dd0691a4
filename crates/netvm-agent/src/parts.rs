//! Starts and stops the agent's serving parts, each on its own thread
//! with its own stop handle: the DHCP server (whose lease events feed the
//! agent's state, the `endpoints` set, the starvation detector, the DNS
//! server's host names and the event stream), the DNS server, and the
//! uplink's DHCP client (whose lease gives the DNS server its upstreams).
//! A part that ends rings [`Shared::ended`], which wakes the main loop. A reload stops the servers
//! and starts them again with the new description; the uplink client
//! keeps running unless the uplink itself changed.

use crate::hub::Hub;
use crate::ipv6_uplink::{Learned, RouterInfo};
use crate::starvation::Starvation;
use crate::state::{State, Uplink};
use netvm_description::values::Ipv6Cidr;
use netvm_description::values::MacAddr;
use netvm_description::{System, UplinkAddressing, UplinkIpv6};
use netvm_dhcp_server::{ServeOptions, Verdict};
use netvm_dns_server::{DnsOptions, Names, Upstreams};
use netvm_events::{Event, Kind};
use netvm_plan::datapath::NetVmPlan;
use netvm_runtime::{error_chain, Bell, PartControl};
use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

/// One running part.
pub struct Part {
    /// `dhcp`, `dns` or `uplink`.
    pub name: &'static str,
    /// Its stop handle and counters.
    pub control: PartControl,
    thread: JoinHandle<Result<(), String>>,
}

/// Rings a bell when dropped: at the end of a part's thread, returned or
/// panicked.
struct RingOnDrop(Bell);

impl Drop for RingOnDrop {
    fn drop(&mut self) {
        self.0.ring();
    }
}

impl Part {
    /// Runs `body` on a thread of its own, ringing `ended` when it ends.
    pub fn spawn(
        name: &'static str,
        ended: &Bell,
        body: impl FnOnce(PartControl) -> Result<(), String> + Send + 'static,
    ) -> Part {
        let control = PartControl::default();
        let theirs = control.clone();
        let ended = RingOnDrop(ended.clone());
        Part {
            name,
            control,
            thread: thread::spawn(move || {
                let _ended = ended;
                body(theirs)
            }),
        }
    }

    /// Whether it ended (asked to or not).
    pub fn is_finished(&self) -> bool {
        self.thread.is_finished()
    }

    /// Asks it to stop and waits; its error, if it failed.
    pub fn stop(self) -> Result<(), String> {
        self.control.stop.stop();
        self.thread
            .join()
            .unwrap_or_else(|_| Err("it panicked".to_owned()))
    }
}

/// What the parts share with the rest of the agent.
#[derive(Clone)]
pub struct Shared {
    /// The agent's state.
    pub state: Arc<Mutex<State>>,
    /// The event stream.
    pub hub: Arc<Hub>,
    /// DNS upstreams learned on the uplink.
    pub learned: Upstreams,
    /// Host names of the DHCP server's leases, for the DNS server.
    pub names: Names,
    /// The lease journal.
    pub journal: PathBuf,
    /// Rung when a part's thread ends.
    pub ended: Bell,
    /// What the uplink has taught about IPv6 ([`crate::ipv6_uplink`]).
    pub learned6: Arc<Mutex<Learned>>,
    /// Rung when `learned6` changed.
    pub learned6_changed: Bell,
    /// The Wi-Fi uplinks' supplicants and saved networks.
    pub wifi: crate::wifi::Radios,
}

impl Shared {
    /// Changes what the uplink taught about IPv6 with `change`; rings
    /// `learned6_changed` when that changed anything.
    pub fn learn6(&self, change: impl FnOnce(&mut Learned)) {
        let Ok(mut learned) = self.learned6.lock() else {
            return;
        };
        let before = learned.clone();
        change(&mut learned);
        if *learned != before {
            self.learned6_changed.ring();
        }
    }
}

/// What a router advertisement on the uplink says that matters here
/// (`None` when the router withdraws itself: router lifetime zero).
pub fn router_info(advert: &netvm_ndp::RouterAdvert) -> Option<RouterInfo> {
    if advert.router_lifetime_secs == 0 {
        return None;
    }
    let slaac = advert
        .prefixes
        .iter()
        .find(|p| p.autonomous && p.len == 64 && p.valid_secs > 0)
        .and_then(|p| Ipv6Cidr::new(p.prefix, p.len));
    Some(RouterInfo {
        managed: advert.managed,
        other: advert.other,
        slaac,
        dns: advert
            .rdnss
            .iter()
            .filter(|(_, lifetime)| *lifetime > 0)
            .map(|(ip, _)| *ip)
            .collect(),
        nat64: advert
            .pref64
            .as_ref()
            .filter(|p| p.lifetime_secs > 0)
            .and_then(|p| Ipv6Cidr::new(p.prefix, p.len)),
    })
}

/// Gives the DNS server the upstreams learned on the uplink: the DHCPv4
/// lease's, then the IPv6 ones (RDNSS, DHCPv6, static), each once.
///
/// The list is computed and handed over under the state's lock: two
/// threads refreshing at once (the uplink's client with a new lease, the
/// main loop woken by what that lease taught) must not let the one that
/// read the older state hand its list over last. (They did: a main loop
/// that read "no lease yet" replaced the lease's DNS server with none,
/// and the DNS server kept answering SERVFAIL for upstream names.)
pub fn refresh_upstreams(shared: &Shared) {
    let Ok(state) = shared.state.lock() else {
        return;
    };
    let mut servers: Vec<SocketAddr> = match &state.uplink {
        Uplink::Bound(lease) => lease
            .dns
            .iter()
            .map(|ip| SocketAddr::from((*ip, 53)))
            .collect(),
        _ => Vec::new(),
    };
    let learned = shared
        .learned6
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    let decision = crate::ipv6_uplink::decide(&state.system, &learned);
    let uplink = netvm_plan::datapath::interfaces(&state.system).uplink;
    // A link-local resolver (RDNSS may name the router's) is reached
    // through the uplink: its address needs the uplink's scope.
    let scope = nix::net::if_::if_nametoindex(uplink.as_str()).unwrap_or(0);
    servers.extend(decision.dns.iter().map(|ip| {
        let scope_id = if ip.is_unicast_link_local() { scope } else { 0 };
        SocketAddr::V6(std::net::SocketAddrV6::new(*ip, 53, 0, scope_id))
    }));
    shared.learned.set(servers);
    drop(state);
}

/// Starts the uplink's DHCPv6 client, when the uplink's IPv6 is `auto`:
/// it asks for a delegated prefix and an address (a network without
/// DHCPv6 costs a Solicit now and then, backing off to an hour); the
/// address goes on the uplink as a /128, the prefix and DNS servers go
/// to what the agent learned.
pub fn start_dhcp6_client(system: &System, shared: &Shared) -> Option<Part> {
    if system.netvm.uplink().ipv6 != UplinkIpv6::Auto {
        return None;
    }
    let uplink = netvm_plan::datapath::interfaces(system).uplink;
    let shared = shared.clone();
    Some(Part::spawn(
        "dhcp6-client",
        &shared.ended.clone(),
        move |control| {
            let link = netvm_runtime::Link::read(std::path::Path::new("/sys"), &uplink)
                .map_err(|e| error_chain(&e))?;
            let config = netvm_uplink::dhcp6::Dhcp6Config {
                interface: uplink.clone(),
                link,
                want_address: true,
            };
            let mut held: Option<netvm_dhcp6::Lease6> = None;
            let mut on_lease = |lease: Option<&netvm_dhcp6::Lease6>| {
                for change in netvm_uplink::dhcp6::uplink_changes(held.as_ref(), lease) {
                    let (address, present) = match change {
                        netvm_uplink::dhcp6::UplinkChange6::Put { address, .. } => (address, true),
                        netvm_uplink::dhcp6::UplinkChange6::Remove { address } => (address, false),
                    };
                    if let Err(e) = netvm_apply::uplink_address6(uplink.as_str(), address, present)
                    {
                        shared.hub.emit(
                            Event::new(Kind::UplinkIpv6Failed {
                                error: error_chain(&e),
                            }),
                            true,
                        );
                    }
                }
                held = lease.cloned();
                let delegated = lease
                    .and_then(|l| l.prefix.as_ref())
                    .and_then(|p| Ipv6Cidr::new(p.prefix, p.len));
                let dns = lease.map(|l| l.dns.clone()).unwrap_or_default();
                shared.learn6(|learned| {
                    learned.delegated = delegated;
                    learned.dhcp6_dns = dns;
                });
            };
            netvm_uplink::dhcp6::run(&config, &control.stop, &mut on_lease)
                .map_err(|e| error_chain(&e))
        },
    ))
}

/// Starts the uplink's router advertisement listener, when the uplink's
/// IPv6 is `auto`: each advertisement accepted updates what the agent
/// learned (the kernel itself does SLAAC and the default route).
pub fn start_router_listener(system: &System, shared: &Shared) -> Option<Part> {
    if system.netvm.uplink().ipv6 != UplinkIpv6::Auto {
        return None;
    }
    let uplink = netvm_plan::datapath::interfaces(system).uplink;
    let shared = shared.clone();
    Some(Part::spawn(
        "router-listener",
        &shared.ended.clone(),
        move |control| {
            let mut listener = netvm_ra::Listener::open(&uplink).map_err(|e| error_chain(&e))?;
            listener
                .run(&control.stop, |heard| {
                    if let netvm_ra::Heard::Advert { advert, .. } = heard {
                        let info = router_info(&advert);
                        shared.learn6(|learned| learned.router = info);
                    }
                })
                .map_err(|e| error_chain(&e))
        },
    ))
}

/// The (address, MAC) pairs the description reserves (in the ruleset
/// already).
pub fn reserved(system: &System) -> HashSet<(IpAddr, MacAddr)> {
    system
        .endpoints()
        .map(|(_, _, e)| (IpAddr::V4(e.ip), e.mac))
        .collect()
}

/// Whether the agent already holds a lease of `ip` for `mac` (so its pair
/// is in the `endpoints` set: added at its grant, or with the ruleset).
fn known(shared: &Shared, ip: Ipv4Addr, mac: MacAddr) -> bool {
    shared
        .state
        .lock()
        .is_ok_and(|s| s.leases.get(&ip).is_some_and(|l| l.mac == mac))
}

/// Starts the DHCP server of `plan` (for `system`).
pub fn start_dhcp(system: &System, plan: &NetVmPlan, shared: &Shared) -> Part {
    let names = plan.names.clone();
    let config = plan.dhcp.clone();
    let system = system.clone();
    let shared = shared.clone();
    Part::spawn("dhcp", &shared.ended.clone(), move |control| {
        let options = ServeOptions {
            interface: names.internal,
            journal: shared.journal.clone(),
            sys: PathBuf::from("/sys"),
            control: Some(control),
        };
        let reserved_pairs = reserved(&system);
        let hub = Arc::clone(&shared.hub);
        let endpoints = crate::endpoints::start(reserved_pairs.clone(), move |error| {
            // A lease that ended but whose pair stays in `endpoints`.
            hub.emit(Event::new(Kind::EndpointsUpdateFailed { error }), true);
        });
        let mut starvation = Starvation::new(system.agent.starvation_clients);
        let mut hook = |event: &netvm_dhcp::Event| {
            match crate::endpoints::change_for(event) {
                // Before the ACK leaves, so the client's first packets pass;
                // a renewal of a lease the agent knows is in the set already.
                // A pair nft refuses is not acknowledged: the client's
                // traffic would be dropped as spoofing.
                Some(add @ crate::endpoints::Change::Add(IpAddr::V4(ip), mac))
                    if !reserved_pairs.contains(&(IpAddr::V4(ip), mac))
                        && !known(&shared, ip, mac) =>
                {
                    if let Err(error) = crate::endpoints::apply_now(add) {
                        shared.hub.emit(
                            Event::new(Kind::LeaseRefused {
                                ip,
                                mac,
                                reason: Some("endpoints_add_failed".to_owned()),
                                error: error.clone(),
                            }),
                            false,
                        );
                        return Verdict::Refuse(error);
                    }
                }
                Some(crate::endpoints::Change::Add(..)) => {}
                Some(change) => {
                    let _ = endpoints.send(change);
                }
                None => {}
            }
            if let Ok(mut state) = shared.state.lock() {
                state.lease_event(event);
            }
            shared.names.lease_event(event);
            let now = netvm_dhcp::Timestamp::now().0 / 1000;
            if let Some(alarm) = starvation.observe(now, event) {
                shared.hub.emit(alarm, true);
            }
            // An attacker can cause an empty pool or a decline as fast as
            // it can send: their kinds are security events, rate-limited
            // like the others. The DHCP server logs its lease events itself.
            shared.hub.emit(Event::new(Kind::from(event)), false);
            Verdict::Accept
        };
        netvm_dhcp_server::serve_with(&config, &options, &mut std::io::stdout(), &mut hook)
            .map_err(|e| error_chain(&e))
    })
}

/// What the agent does around the DHCPv6 server's leases: a grant goes
/// into `endpoints6` before its reply (refused: no reply), an ended lease
/// comes out, and both go to the agent's state and event stream.
struct Hooks6 {
    shared: Shared,
    /// Reserved pairs, in the ruleset already.
    reserved: HashSet<(IpAddr, MacAddr)>,
    /// The thread that removes ended leases from the set.
    removals: std::sync::mpsc::Sender<crate::endpoints::Change>,
}

impl netvm_dhcp6_server::Hooks6 for Hooks6 {
    fn grant(&mut self, ip: std::net::Ipv6Addr, mac: MacAddr) -> bool {
        let pair = (IpAddr::V6(ip), mac);
        let known = self
            .shared
            .state
            .lock()
            .is_ok_and(|s| s.leases6.get(&ip) == Some(&mac));
        if !self.reserved.contains(&pair) && !known {
            if let Err(error) =
                crate::endpoints::apply_now(crate::endpoints::Change::Add(pair.0, mac))
            {
                self.shared.hub.emit(
                    Event::new(Kind::UplinkIpv6Failed {
                        error: format!("endpoints6: {ip} . {mac}: {error}"),
                    }),
                    true,
                );
                return false;
            }
        }
        if let Ok(mut state) = self.shared.state.lock() {
            state.leases6.insert(ip, mac);
        }
        true
    }

    fn event(&mut self, event: &netvm_dhcp6::Event6) {
        use netvm_dhcp6::Event6;
        // A guest's DHCPv6 address takes the name of the same MAC's
        // DHCPv4 lease.
        self.shared.names.lease_event6(event);
        if let Some((ip, mac)) = event.removal() {
            let _ = self
                .removals
                .send(crate::endpoints::Change::Remove(IpAddr::V6(ip), mac));
            if let Ok(mut state) = self.shared.state.lock() {
                if state.leases6.get(&ip) == Some(&mac) {
                    state.leases6.remove(&ip);
                }
            }
        }
        let (change, ip, mac) = match event {
            Event6::LeaseGranted { ip, mac, .. } => ("granted", Some(*ip), *mac),
            Event6::LeaseRenewed { ip, mac, .. } => ("renewed", Some(*ip), *mac),
            Event6::LeaseReleased { ip, mac } => ("released", Some(*ip), *mac),
            Event6::LeaseExpired { ip, mac } => ("expired", Some(*ip), *mac),
            Event6::AddressDeclined { ip, mac } => ("declined", Some(*ip), *mac),
            Event6::LeaseRevoked { ip, mac } => ("revoked", Some(*ip), *mac),
            Event6::PoolExhausted { mac } => ("pool_exhausted", None, *mac),
        };
        // Printed, but not what a client can cause as fast as it sends
        // (an empty pool, a decline): those are kept for `netvm events`.
        let print = !matches!(change, "pool_exhausted" | "declined");
        self.shared.hub.emit(
            Event::new(Kind::Lease6 {
                change: change.to_owned(),
                ip,
                mac,
            }),
            print,
        );
    }
}

/// Starts the DHCPv6 server of `plan`, when the internal network has
/// IPv6. Its lease snapshot lives beside the DHCPv4 journal.
pub fn start_dhcp6(system: &System, plan: &NetVmPlan, shared: &Shared) -> Option<Part> {
    let ipv6 = plan.ipv6.as_ref()?;
    let d = &ipv6.dhcp6;
    let pool = d
        .pool_iids
        .as_ref()
        .and_then(|p| Some(u64::try_from(*p.start()).ok()?..=u64::try_from(*p.end()).ok()?))
        .unwrap_or(netvm_dhcp6::server::EMPTY_POOL);
    let config = netvm_dhcp6::Server6Config {
        prefix: d.prefix.network(),
        server_duid: netvm_dhcp6::server::duid_ll(system.netvm.endpoint.mac),
        reservations: d.reservations.clone(),
        pool,
        preferred_lifetime: d.preferred_secs,
        valid_lifetime: d.valid_secs,
        t1: d.t1_secs,
        t2: d.t2_secs,
        dns: d.dns.clone(),
        search: d.search.iter().map(ToString::to_string).collect(),
        rapid_commit: true,
        max_leases: usize::try_from(system.dhcp.max_leases).unwrap_or(usize::MAX),
    };
    let reserved: HashSet<(IpAddr, MacAddr)> = d
        .reservations
        .iter()
        .map(|(mac, ip)| (IpAddr::V6(*ip), *mac))
        .collect();
    let interface = plan.names.internal.clone();
    let shared = shared.clone();
    Some(Part::spawn(
        "dhcp6",
        &shared.ended.clone(),
        move |control| {
            let options = netvm_dhcp6_server::Serve6Options {
                interface,
                snapshot: shared.journal.parent().map(|dir| dir.join("leases6.json")),
                control: Some(control),
            };
            let hub = Arc::clone(&shared.hub);
            let removals = crate::endpoints::start(reserved.clone(), move |error| {
                hub.emit(Event::new(Kind::EndpointsUpdateFailed { error }), true);
            });
            let mut hooks = Hooks6 {
                shared: shared.clone(),
                reserved,
                removals,
            };
            // The server's own lines are not the agent's typed events:
            // its lease events reach the stream through the hooks.
            netvm_dhcp6_server::serve_with(config, &options, &mut std::io::sink(), &mut hooks)
                .map_err(|e| error_chain(&e))
        },
    ))
}

/// Starts the DNS server of `plan`.
pub fn start_dns(plan: &NetVmPlan, shared: &Shared) -> Part {
    let names = plan.names.clone();
    let dns = plan.dns.clone();
    let shared = shared.clone();
    Part::spawn("dns", &shared.ended.clone(), move |control| {
        let options = DnsOptions {
            interface: names.internal,
            upstreams: Vec::new(),
            leases: None,
            names: Some(shared.names.clone()),
            learned_upstreams: Some(shared.learned.clone()),
            control: Some(control),
        };
        netvm_dns_server::serve(&dns, options).map_err(|e| error_chain(&e))
    })
}

/// Starts the uplink's DHCP client, when the uplink uses DHCP.
pub fn start_uplink(system: &System, shared: &Shared) -> Option<Part> {
    if system.netvm.uplink().addressing != UplinkAddressing::Dhcp {
        return None;
    }
    let uplink = netvm_plan::datapath::interfaces(system).uplink;
    let shared = shared.clone();
    Some(Part::spawn(
        "uplink",
        &shared.ended.clone(),
        move |control| {
            let mut on_lease = |lease: Option<&netvm_uplink::Lease>| {
                // The state first: whoever `learn6` wakes reads it.
                let Ok(mut state) = shared.state.lock() else {
                    return;
                };
                let now = match lease {
                    Some(l) => Uplink::Bound(l.clone()),
                    None => Uplink::Lost,
                };
                let changed = match (&state.uplink, &now) {
                    (Uplink::Bound(a), Uplink::Bound(b)) => a.address != b.address,
                    (a, b) => a != b,
                };
                state.uplink = now;
                drop(state);
                shared.learn6(|learned| learned.has_ipv4 = lease.is_some());
                refresh_upstreams(&shared);
                let Ok(state) = shared.state.lock() else {
                    return;
                };
                if changed {
                    let kind = match lease {
                        Some(l) => Kind::UplinkUp {
                            uplink: uplink.to_string(),
                            address: l.address,
                            router: l.router,
                        },
                        None => Kind::UplinkDown {
                            uplink: uplink.to_string(),
                            state: "addressing".to_owned(),
                        },
                    };
                    drop(state);
                    // The client logs uplink_bound / uplink_lost itself.
                    shared.hub.emit(Event::new(kind), false);
                }
            };
            crate::uplink::run(
                &uplink,
                &control.stop,
                &mut std::io::stdout(),
                &mut on_lease,
            )
            .map_err(|e| error_chain(&e))
        },
    ))
}
