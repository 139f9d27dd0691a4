//! Starts and stops the agent's serving parts, each on its own thread
//! with its own stop handle: the DHCP server (whose lease events feed the
//! agent's state, the `endpoints` set, the starvation detector, the DNS
//! server's host names and the event stream), the DNS server, and the
//! uplink's DHCP client (whose lease gives the DNS server its upstreams).
//! A part that ends rings [`Shared::ended`], which wakes the main loop. A reload stops the servers
//! and starts them again with the new description; the uplink client
//! keeps running unless the uplink itself changed.

use crate::hub::Hub;
use crate::starvation::Starvation;
use crate::state::{State, Uplink};
use netvm_description::values::MacAddr;
use netvm_description::{System, UplinkAddressing};
use netvm_dhcp_server::{ServeOptions, Verdict};
use netvm_dns_server::{DnsOptions, Names, Upstreams};
use netvm_events::{Event, Kind};
use netvm_plan::datapath::NetVmPlan;
use netvm_runtime::{error_chain, Bell, PartControl};
use std::collections::HashSet;
use std::net::{Ipv4Addr, SocketAddr};
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
    fn spawn(
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
}

/// The (address, MAC) pairs the description reserves (in the ruleset
/// already).
pub fn reserved(system: &System) -> HashSet<(Ipv4Addr, MacAddr)> {
    system.endpoints().map(|(_, _, e)| (e.ip, e.mac)).collect()
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
                Some(add @ crate::endpoints::Change::Add(ip, mac))
                    if !reserved_pairs.contains(&(ip, mac)) && !known(&shared, ip, mac) =>
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
    if system.netvm.uplink.addressing != UplinkAddressing::Dhcp {
        return None;
    }
    let uplink = netvm_plan::datapath::interfaces(system).uplink;
    let shared = shared.clone();
    Some(Part::spawn(
        "uplink",
        &shared.ended.clone(),
        move |control| {
            let mut on_lease = |lease: Option<&netvm_uplink::Lease>| {
                let servers = lease
                    .map(|l| l.dns.iter().map(|ip| SocketAddr::from((*ip, 53))).collect())
                    .unwrap_or_default();
                shared.learned.set(servers);
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
                if changed {
                    let kind = match lease {
                        Some(l) => Kind::UplinkUp {
                            address: l.address,
                            router: l.router,
                        },
                        None => Kind::UplinkDown,
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
