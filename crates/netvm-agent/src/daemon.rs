//! `netvm agent FILE`: the Net VM's services in one process.
//!
//! Start: the data plane is applied first (with the journal's live pool
//! leases already in the `endpoints` set, in the same transaction); if
//! that fails the agent exits before serving anything (fail closed). Then
//! the control socket is bound, privileges are dropped (`--user`), and the
//! parts start ([`crate::parts`]), with a watcher that turns the
//! ruleset's event sets into security events and, if described, the
//! metrics endpoint. Readiness is a `ready` event, and `READY=1` to
//! systemd when `NOTIFY_SOCKET` is set; with `WATCHDOG_USEC`, `WATCHDOG=1`
//! every half interval while every part is alive.
//!
//! SIGHUP or `netvm reload`: the description is read again; if invalid,
//! nothing changes and the event says why; otherwise the ruleset is
//! replaced in one transaction (leases kept in `endpoints`, connections
//! the new policy forbids cut) and the servers restart with the new
//! description (the lease journal keeps every lease).
//!
//! SIGTERM or SIGINT: every part stops (the journal is flushed); the
//! ruleset stays in force (fail closed) unless `--remove-on-exit`.
//!
//! The main loop sleeps until a signal, a reload request, a part's end
//! or the watchdog's next ping; every other thread waits on its own
//! sockets, the agent's [`Stop`] and its own next deadline.

use crate::control::Handler;
use crate::hub::Hub;
use crate::ipv6_uplink::{Decision, Learned};
use crate::parts::{self, Part, Shared};
use crate::state::{Lease, State};
use netvm_description::values::MacAddr;
use netvm_description::System;
use netvm_events::control::{
    Counters, EventCounts, FirewallCounter, LastReload, LeaseInfo, Request, Response, Status,
};
use netvm_events::{Changes, Event, Kind, Ready, Renamed};
use netvm_plan::datapath::NetVmPlan;
use netvm_plan::datapath::{ClatHook, Ipv6Uplink};
use netvm_runtime::{error_chain, Bell, PartControl, Stop};
use serde_json::Value;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread;
use std::time::{Duration, Instant};

/// How the agent runs.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The description, read again on reload.
    pub file: PathBuf,
    /// The DHCP lease journal.
    pub journal: PathBuf,
    /// The control socket.
    pub control: PathBuf,
    /// The user to run as after setup.
    pub user: Option<String>,
    /// Delete the ruleset when stopping (otherwise it stays: fail closed).
    pub remove_on_exit: bool,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The data plane could not be applied: nothing is served.
    #[error("the data plane could not be applied; not serving anything")]
    Apply(#[from] netvm_apply::ApplyError),
    /// The internal interface or the uplink could not be found or renamed.
    #[error("the data plane could not be applied; not serving anything: {0}")]
    Interfaces(String),
    /// Signals could not be set up.
    #[error("cannot handle signals")]
    Signals(#[source] io::Error),
    /// The main loop could not wait for signals, requests and parts.
    #[error("cannot wait for signals, reload requests and the parts")]
    Wait(#[source] io::Error),
    /// The control socket could not be opened.
    #[error(transparent)]
    Control(#[from] crate::control::ControlError),
    /// Privileges could not be dropped.
    #[error("cannot run as the given user")]
    Privileges(#[from] crate::privileges::PrivilegeError),
    /// The journal could not be handed to the user.
    #[error("cannot give the lease journal {path} to the agent's user")]
    Journal {
        /// The journal or its directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A part stopped with an error.
    #[error("{part} stopped: {message}")]
    Part {
        /// `dhcp`, `dns` or `uplink`.
        part: &'static str,
        /// Its error.
        message: String,
    },
}

/// systemd's notification socket (`NOTIFY_SOCKET`) and watchdog
/// interval (`WATCHDOG_USEC`, for this process when `WATCHDOG_PID` says
/// so), when the agent runs under systemd.
struct Notifier {
    socket: std::os::unix::net::UnixDatagram,
    path: std::ffi::OsString,
    watchdog: Option<Duration>,
}

impl Notifier {
    fn from_env() -> Option<Notifier> {
        let path = std::env::var_os("NOTIFY_SOCKET")?;
        let socket = std::os::unix::net::UnixDatagram::unbound().ok()?;
        let ours = std::env::var("WATCHDOG_PID")
            .map(|pid| pid == std::process::id().to_string())
            .unwrap_or(true);
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.parse::<u64>().ok())
            .filter(|usec| ours && *usec > 0)
            // Ping at half the interval, as sd_watchdog_enabled(3) advises.
            .map(|usec| Duration::from_micros(usec / 2));
        Some(Notifier {
            socket,
            path,
            watchdog,
        })
    }

    fn send(&self, message: &str) {
        let _ = self.socket.send_to(message.as_bytes(), &self.path);
    }
}

/// Live bound leases in the journal.
fn journal_leases(journal: &Path) -> Vec<(Ipv4Addr, Lease)> {
    let now = netvm_dhcp::Timestamp::now();
    netvm_dhcp_server::journal_file::bound_leases(journal)
        .into_iter()
        .filter(|l| l.until > now)
        .filter_map(|l| {
            Some((
                l.ip,
                Lease {
                    mac: l.mac?,
                    hostname: l.hostname,
                    until: l.until,
                },
            ))
        })
        .collect()
}

/// Finds the internal interface (by the net-vm's MAC) and the uplink (by
/// name, MAC, PCI vendor:device or address, or USB id) and gives them the names the data
/// plane uses; the renames done.
fn find_interfaces(system: &System) -> Result<Vec<netvm_plan::guest::Rename>, AgentError> {
    let nics = netvm_apply::guest::nics(Path::new("/sys"))
        .map_err(|e| AgentError::Interfaces(format!("cannot list /sys/class/net: {e}")))?;
    let renames = netvm_plan::guest::renames(system, &nics)
        .map_err(|e| AgentError::Interfaces(e.to_string()))?;
    netvm_apply::guest::rename(&renames).map_err(|e| AgentError::Interfaces(error_chain(&e)))?;
    Ok(renames)
}

/// Plans the Net VM for `system` with `leases` seeding `endpoints` (those
/// the description still admits) and applies its data plane in one
/// ruleset transaction; cuts connections the policy forbids. The plan
/// the servers then run.
fn apply(
    system: &System,
    leases: &[(Ipv4Addr, MacAddr)],
    leases6: &[(Ipv6Addr, MacAddr)],
    uplink6: &Ipv6Uplink,
    active: Option<&netvm_description::values::IfName>,
) -> Result<(netvm_apply::Applied, NetVmPlan), netvm_apply::ApplyError> {
    let plan = netvm_plan::datapath::plan_for(system, leases, leases6, uplink6, active);
    let forbidden =
        |c: &netvm_plan::policy::Connection| plan.policy.allows(system, c) == Some(false);
    let forbidden6 =
        |c: &netvm_plan::policy::Connection6| plan.policy.allows6(system, c) == Some(false);
    let applied = netvm_apply::apply_netvm(&plan, Path::new("/proc/sys"), &forbidden, &forbidden6)?;
    Ok((applied, plan))
}

/// With several uplinks, the one that carries the Internet now.
fn active_uplink(shared: &Shared) -> Option<netvm_description::values::IfName> {
    shared
        .state
        .lock()
        .ok()
        .and_then(|s| s.active_uplink.clone())
}

fn lease6_pairs(state: &Mutex<State>) -> Vec<(Ipv6Addr, MacAddr)> {
    state
        .lock()
        .map(|s| s.leases6.iter().map(|(ip, mac)| (*ip, *mac)).collect())
        .unwrap_or_default()
}

fn lease_pairs(state: &Mutex<State>) -> Vec<(Ipv4Addr, MacAddr)> {
    state
        .lock()
        .map(|s| s.leases.iter().map(|(ip, l)| (*ip, l.mac)).collect())
        .unwrap_or_default()
}

/// Gives the journal (and its directory) to the user the agent becomes.
fn hand_over_journal(journal: &Path, uid: u32, gid: u32) -> Result<(), AgentError> {
    let error = |path: &Path| {
        let path = path.to_owned();
        move |source| AgentError::Journal { path, source }
    };
    if let Some(dir) = journal.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(error(dir))?;
        std::os::unix::fs::chown(dir, Some(uid), Some(gid)).map_err(error(dir))?;
        // The journal's lock and compaction files live beside it.
        for entry in std::fs::read_dir(dir).map_err(error(dir))?.flatten() {
            let path = entry.path();
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            let ours = journal
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            if let (Some(name), Some(ours)) = (name, ours) {
                if name.starts_with(&ours) {
                    std::os::unix::fs::chown(&path, Some(uid), Some(gid)).map_err(error(&path))?;
                }
            }
        }
    }
    Ok(())
}

/// What changed between two descriptions, for the `reloaded` event.
fn differences(old: &System, new: &System) -> Changes {
    let names = |s: &System| -> Vec<String> { s.vms.iter().map(|v| v.name.to_string()).collect() };
    let (before, after) = (names(old), names(new));
    let added: Vec<String> = after
        .iter()
        .filter(|n| !before.contains(n))
        .cloned()
        .collect();
    let removed: Vec<String> = before
        .iter()
        .filter(|n| !after.contains(n))
        .cloned()
        .collect();
    let changed: Vec<String> = new
        .vms
        .iter()
        .filter(|vm| old.vms.iter().any(|o| o.name == vm.name && o != *vm))
        .map(|vm| vm.name.to_string())
        .collect();
    Changes {
        vms_added: added,
        vms_removed: removed,
        vms_changed: changed,
        dhcp_changed: old.dhcp != new.dhcp,
        dns_changed: old.dns != new.dns,
        uplink_changed: old.netvm.uplinks != new.netvm.uplinks,
    }
}

/// Requests the control socket hands to the main loop.
type ReloadRequest = Sender<Result<Event, String>>;

/// What the control socket and the metrics read.
struct Control {
    shared: Shared,
    parts: Arc<Mutex<(PartControl, PartControl)>>,
    reloads: Mutex<Sender<ReloadRequest>>,
    /// Rung with each request sent on `reloads`.
    reload_asked: Bell,
    file: PathBuf,
    started: Instant,
    /// The VMs that may use the control service, as the running
    /// description names them.
    users: Arc<RwLock<crate::remote_control::Users>>,
}

impl Control {
    fn counters(&self) -> Counters {
        let (dhcp, dns) = match self.parts.lock() {
            Ok(p) => (
                p.0.counters.lock().map(|c| c.clone()).unwrap_or_default(),
                p.1.counters.lock().map(|c| c.clone()).unwrap_or_default(),
            ),
            Err(_) => (Value::Null, Value::Null),
        };
        // Read over netlink: a status or a metrics scrape starts no process.
        let table = netvm_plan::ruleset::TABLE;
        let (firewall, firewall_error) =
            match netvm_netfilter::NfTables::open().and_then(|mut nft| nft.counters(table)) {
                Ok(counters) => (
                    counters
                        .into_iter()
                        .map(|c| {
                            let counter = FirewallCounter {
                                packets: c.packets,
                                bytes: c.bytes,
                            };
                            (c.name, counter)
                        })
                        .collect(),
                    None,
                ),
                Err(e) => (Default::default(), Some(e.to_string())),
            };
        let (reported, suppressed) = self.shared.hub.counts();
        Counters {
            dhcp,
            dns,
            firewall,
            firewall_error,
            events: EventCounts {
                reported,
                suppressed,
            },
        }
    }
}

impl Handler for Control {
    fn status(&self) -> Result<Status, String> {
        let counters = self.counters();
        let now = netvm_dhcp::Timestamp::now();
        let state = self
            .shared
            .state
            .lock()
            .map_err(|_| "the agent's state is unreadable".to_owned())?;
        Ok(Status {
            description: self.file.clone(),
            mode: state.system.netvm.mode.to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            uplink: state.uplink_status(),
            vms: state.vms(now),
            counters,
            reloads: state.reloads,
            last_reload: state.last_reload.clone(),
        })
    }

    fn leases(&self) -> Result<Vec<LeaseInfo>, String> {
        let now = netvm_dhcp::Timestamp::now();
        self.shared
            .state
            .lock()
            .map(|s| s.lease_list(now))
            .map_err(|_| "the agent's state is unreadable".to_owned())
    }

    fn uplinks(&self) -> Result<Vec<netvm_events::control::UplinkInfo>, String> {
        let state = self
            .shared
            .state
            .lock()
            .map_err(|_| "the agent's state is unreadable".to_owned())?;
        Ok(crate::uplinks::info(&state))
    }

    fn reload(&self) -> Result<Event, String> {
        let (reply, answer) = channel();
        self.reloads
            .lock()
            .map_err(|_| "the agent is stopping".to_owned())?
            .send(reply)
            .map_err(|_| "the agent is stopping".to_owned())?;
        self.reload_asked.ring();
        answer
            .recv_timeout(Duration::from_secs(60))
            .map_err(|_| "the reload did not finish within 60 s".to_owned())?
    }

    fn wifi(&self, request: &Request) -> Result<Response, String> {
        crate::wifi_control::answer(&self.shared, request)
    }

    fn hub(&self) -> &Hub {
        &self.shared.hub
    }
}

/// The running parts.
struct Running {
    /// The plan they run.
    plan: NetVmPlan,
    dhcp: Option<Part>,
    /// The internal side's DHCPv6 server, while IPv6 is on.
    dhcp6: Option<Part>,
    dns: Option<Part>,
    uplink: Option<Part>,
    /// The uplink's router advertisement listener (IPv6 `auto`).
    router_listener: Option<Part>,
    /// The uplink's DHCPv6 client (IPv6 `auto`).
    dhcp6_client: Option<Part>,
    /// The internal side's router advertisements, while IPv6 is on.
    advertiser: Option<(netvm_ra::AdvertHandle, Part)>,
    /// The CLAT, while the uplink needs one.
    clat: Option<netvm_apply::clat::Clat>,
    /// What the uplink's IPv6 decided, as applied.
    decision: Decision,
    /// The uplink's IPv6 as given to the plan.
    uplink6: Ipv6Uplink,
    /// The RFC 7050 probe, while it runs, and the DNS servers it asked.
    probe: Option<(thread::JoinHandle<()>, Vec<Ipv6Addr>)>,
    /// The agent's stop (for the probe).
    stop: Stop,
    /// Until when the internal side's IPv6 service (DHCPv6, router
    /// advertisements) waits at start for the uplink to say whether it
    /// delegates a prefix, so VMs are not first given addresses in a
    /// prefix that is replaced a second later. `None`: serving.
    ipv6_settle: Option<Instant>,
    metrics: Option<(Stop, thread::JoinHandle<()>)>,
    /// Several uplinks: their manager.
    multi: Option<crate::uplinks::Multi>,
    /// Rung by the manager's threads (kept across reloads).
    uplinks_bell: Bell,
}

impl Running {
    /// Starts the servers (and the uplink client and the metrics unless
    /// they run).
    fn start(&mut self, system: &System, shared: &Shared, control: &Arc<Control>) {
        self.dhcp = Some(parts::start_dhcp(system, &self.plan, shared));
        if self.ipv6_settle.is_none() {
            self.dhcp6 = parts::start_dhcp6(system, &self.plan, shared);
        }
        self.dns = Some(parts::start_dns(&self.plan, shared));
        if system.netvm.managed_uplinks() {
            if self.multi.is_none() {
                self.multi = Some(crate::uplinks::Multi::start(
                    system,
                    shared,
                    &self.uplinks_bell,
                ));
            }
        } else if self.uplink.is_none() {
            self.uplink = parts::start_uplink(system, shared);
        }
        self.start_uplink6(system, shared);
        if self.ipv6_settle.is_none() {
            self.advertise(shared);
        }
        if self.metrics.is_none() {
            self.metrics = start_metrics(system, control);
        }
        if let Ok(mut users) = control.users.write() {
            let prefix6 = self.plan.ipv6.as_ref().map(|i| i.prefix);
            *users = crate::remote_control::Users::of(system, prefix6);
        }
        if let (Ok(mut controls), Some(dhcp), Some(dns)) =
            (control.parts.lock(), &self.dhcp, &self.dns)
        {
            *controls = (dhcp.control.clone(), dns.control.clone());
        }
    }

    /// Starts the primary uplink's IPv6 parts (router listener, DHCPv6
    /// client) unless they run. With several uplinks, only while the
    /// primary is plugged in (it may come later).
    fn start_uplink6(&mut self, system: &System, shared: &Shared) {
        if system.netvm.managed_uplinks() {
            let primary = &system.netvm.uplink().name;
            if !Path::new("/sys/class/net").join(primary.as_str()).exists() {
                return;
            }
        }
        if self.router_listener.is_none() {
            self.router_listener = parts::start_router_listener(system, shared);
        }
        if self.dhcp6_client.is_none() {
            self.dhcp6_client = parts::start_dhcp6_client(system, shared);
        }
    }

    /// With several uplinks the primary's IPv6 parts end when it is
    /// unplugged: reported, not fatal; they start again when it is back.
    fn tend_uplink6(&mut self, system: &System, shared: &Shared) {
        for slot in [&mut self.router_listener, &mut self.dhcp6_client] {
            if slot.as_ref().is_some_and(|p| p.is_finished()) {
                if let Some(part) = slot.take() {
                    let name = part.name;
                    let why = part.stop().err().unwrap_or_else(|| "it ended".to_owned());
                    shared.hub.emit(
                        Event::new(Kind::UplinkIpv6Failed {
                            error: format!("{name}: {why}"),
                        }),
                        true,
                    );
                }
            }
        }
        self.start_uplink6(system, shared);
    }

    /// Starts the internal side's IPv6 service (after the settle time).
    fn start_ipv6(&mut self, system: &System, shared: &Shared) {
        if self.dhcp6.is_none() {
            self.dhcp6 = parts::start_dhcp6(system, &self.plan, shared);
        }
        self.advertise(shared);
    }

    fn any_finished(&self) -> Option<&'static str> {
        // With several uplinks, the primary's IPv6 parts may end with it
        // (see `tend_uplink6`).
        let several = self.multi.is_some();
        [
            self.dhcp.as_ref(),
            self.dhcp6.as_ref(),
            self.dns.as_ref(),
            self.uplink.as_ref(),
            self.router_listener.as_ref().filter(|_| !several),
            self.dhcp6_client.as_ref().filter(|_| !several),
            self.advertiser.as_ref().map(|(_, part)| part),
        ]
        .into_iter()
        .flatten()
        .find(|p| p.is_finished())
        .map(|p| p.name)
    }

    /// Stops the servers; the uplink client and the metrics too when
    /// `all`. The errors of parts that had failed.
    fn stop(&mut self, all: bool) -> Vec<(&'static str, String)> {
        let mut parts = vec![self.dhcp.take(), self.dhcp6.take(), self.dns.take()];
        if all {
            if let Some(mut multi) = self.multi.take() {
                multi.stop();
            }
            parts.push(self.uplink.take());
            parts.push(self.router_listener.take());
            parts.push(self.dhcp6_client.take());
            parts.push(self.advertiser.take().map(|(_, part)| part));
            if let Some(clat) = self.clat.take() {
                if let Err(e) = clat.remove() {
                    errors_clat(&e);
                }
            }
            self.stop_metrics();
        }
        parts
            .into_iter()
            .flatten()
            .filter_map(|p| {
                let name = p.name;
                p.stop().err().map(|e| (name, e))
            })
            .collect()
    }

    /// The internal side's router advertisements follow the plan: started
    /// when IPv6 is on, told of a new prefix's settings, stopped (with a
    /// last advertisement of router lifetime zero) when IPv6 goes.
    fn advertise(&mut self, shared: &Shared) {
        let Some(ipv6) = &self.plan.ipv6 else {
            if let Some((_, part)) = self.advertiser.take() {
                let _ = part.stop();
            }
            return;
        };
        let config = netvm_ra::AdvertConfig::internal(
            ipv6.ra.rdnss,
            Some(ipv6.ra.dnssl.as_str()),
            u32::from(ipv6.ra.mtu),
            None,
        );
        if let Some((handle, _)) = &self.advertiser {
            if let Err(e) = handle.update(config) {
                shared.hub.emit(
                    Event::new(Kind::UplinkIpv6Failed {
                        error: format!("router advertisement: {e}"),
                    }),
                    true,
                );
            }
            return;
        }
        match netvm_ra::Advertiser::open(&self.plan.names.internal, config) {
            Ok(advertiser) => {
                let handle = advertiser.handle();
                let part = Part::spawn("router-advertiser", &shared.ended, move |control| {
                    advertiser
                        .run(&control.stop)
                        .map(|_| ())
                        .map_err(|e| error_chain(&e))
                });
                self.advertiser = Some((handle, part));
            }
            Err(e) => shared.hub.emit(
                Event::new(Kind::UplinkIpv6Failed {
                    error: format!(
                        "router advertisements on the internal side: {}",
                        error_chain(&e)
                    ),
                }),
                true,
            ),
        }
    }

    fn stop_metrics(&mut self) {
        if let Some((stop, thread)) = self.metrics.take() {
            stop.stop();
            let _ = thread.join();
        }
    }
}

/// Runs the agent for `system` until SIGTERM or SIGINT.
pub fn run(system: &System, options: &AgentOptions) -> Result<(), AgentError> {
    let stop = crate::uplink::stop_on_signals().map_err(AgentError::Signals)?;
    let hup = Bell::new();
    let _hup = hup
        .on_signals(&[signal_hook::consts::SIGHUP])
        .map_err(AgentError::Signals)?;

    let hub = Arc::new(Hub::new());
    let renamed = find_interfaces(system)?;
    if !renamed.is_empty() {
        let renamed = renamed
            .iter()
            .map(|r| Renamed {
                from: r.from.to_string(),
                to: r.to.to_string(),
            })
            .collect();
        hub.emit(Event::new(Kind::InterfacesRenamed { renamed }), true);
    }
    let leases = journal_leases(&options.journal);
    let pairs: Vec<(Ipv4Addr, MacAddr)> = leases.iter().map(|(ip, l)| (*ip, l.mac)).collect();
    let (applied, plan) = apply(system, &pairs, &[], &Ipv6Uplink::default(), None)?;
    hub.emit(
        Event::new(Kind::DataPlaneApplied {
            connections_cut: applied.connections_cut as u64,
            pool_leases_admitted: plan.leases_admitted as u64,
        }),
        true,
    );
    let listener = crate::control::listen(&options.control)?;
    if let Some(user) = &options.user {
        let (uid, gid) = crate::privileges::lookup(user)?;
        hand_over_journal(&options.journal, uid.as_raw(), gid.as_raw())?;
        crate::privileges::drop_to(uid, gid)?;
        let capabilities = ["CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_NET_BIND_SERVICE"];
        hub.emit(
            Event::new(Kind::PrivilegesDropped {
                user: user.clone(),
                capabilities: capabilities.map(str::to_owned).to_vec(),
            }),
            true,
        );
    }

    let names = netvm_dns_server::Names::new();
    names.replace(
        leases
            .iter()
            .filter_map(|(ip, l)| Some((l.hostname.clone()?, *ip, Some(l.mac), l.until))),
    );
    let shared = Shared {
        state: Arc::new(Mutex::new(State::new(system.clone(), leases))),
        hub: Arc::clone(&hub),
        learned: netvm_dns_server::Upstreams::new(),
        names,
        journal: options.journal.clone(),
        ended: Bell::new(),
        learned6: Arc::new(Mutex::new(Learned::default())),
        learned6_changed: Bell::new(),
        wifi: crate::wifi::Radios::beside(&options.journal),
    };
    let (reload_sender, reload_requests) = channel::<ReloadRequest>();
    let control = Arc::new(Control {
        shared: shared.clone(),
        parts: Arc::new(Mutex::new(Default::default())),
        reloads: Mutex::new(reload_sender),
        reload_asked: Bell::new(),
        file: options.file.clone(),
        started: Instant::now(),
        users: Arc::new(RwLock::new(crate::remote_control::Users::of(system, None))),
    });
    let handler: Arc<dyn Handler> = Arc::clone(&control) as Arc<dyn Handler>;
    let (control_stop, control_hub) = (stop.clone(), Arc::clone(&hub));
    let mut helpers = vec![thread::spawn(move || {
        if let Err(e) = crate::control::serve(listener, handler, control_stop) {
            control_hub.emit(
                Event::new(Kind::ControlFailed {
                    error: e.to_string(),
                }),
                true,
            );
        }
    })];
    helpers.push(start_watcher(&shared, stop.clone()));
    helpers.extend(start_remote_control(system, &control, &stop));
    let mut running = Running {
        plan,
        dhcp: None,
        dhcp6: None,
        dns: None,
        uplink: None,
        router_listener: None,
        dhcp6_client: None,
        advertiser: None,
        clat: None,
        decision: Decision::default(),
        uplink6: Ipv6Uplink::default(),
        probe: None,
        stop: stop.clone(),
        ipv6_settle: (system.netvm.uplink().ipv6 == netvm_description::UplinkIpv6::Auto)
            .then(|| Instant::now() + IPV6_SETTLE),
        metrics: None,
        multi: None,
        uplinks_bell: Bell::new(),
    };
    running.start(system, &shared, &control);

    let names = netvm_plan::datapath::interfaces(system);
    hub.emit(
        Event::new(Kind::Ready(Ready::Agent {
            internal: names.internal.to_string(),
            uplink: names.uplink.to_string(),
            control: options.control.clone(),
        })),
        true,
    );
    let notifier = Notifier::from_env();
    if let Some(n) = &notifier {
        n.send("READY=1");
    }
    let watchdog = notifier.as_ref().and_then(|n| Some((n, n.watchdog?)));
    let mut last_ping = Instant::now();
    let mut failure = None;
    // Wakes for a signal, a reload request, a part's end, the stop, or
    // the watchdog's next ping.
    let uplinks_bell = running.uplinks_bell.clone();
    let woken = |next_ping: Option<Instant>| {
        let fds = [
            hup.fd()?,
            shared.ended.fd()?,
            control.reload_asked.fd()?,
            shared.learned6_changed.fd()?,
            uplinks_bell.fd()?,
        ];
        stop.wait_any(&fds, next_ping)
    };
    loop {
        let next_ping = watchdog.map(|(_, every)| last_ping + every);
        let probe = running.multi.as_ref().and_then(|m| m.deadline());
        let next = [next_ping, running.ipv6_settle, probe]
            .into_iter()
            .flatten()
            .min();
        let Some(_) = woken(next).map_err(AgentError::Wait)? else {
            break;
        };
        uplinks_step(&shared, &mut running, system);
        if running.ipv6_settle.is_some_and(|t| Instant::now() >= t) {
            running.ipv6_settle = None;
            running.start_ipv6(&system_now(&shared, system), &shared);
        }
        if control.reload_asked.take() {
            while let Ok(reply) = reload_requests.try_recv() {
                let _ = reply.send(reload(options, &shared, &mut running, &control));
            }
        }
        if hup.take() {
            let _ = reload(options, &shared, &mut running, &control);
        }
        if shared.learned6_changed.take() {
            ipv6_changed(options, &shared, &mut running, &control);
        }
        // A part that ended without being asked to (an error or a panic)
        // stops the agent; while all are alive, systemd's watchdog is fed.
        shared.ended.take();
        if !stop.is_stopped() {
            if let Some(part) = running.any_finished() {
                failure = Some(part);
                break;
            }
        }
        if let Some((n, every)) = watchdog {
            if last_ping.elapsed() >= every {
                n.send("WATCHDOG=1");
                last_ping = Instant::now();
            }
        }
    }
    stop.stop();
    let mut first_error = None;
    for (part, message) in running.stop(true) {
        first_error.get_or_insert(AgentError::Part { part, message });
    }
    helpers.drain(..).for_each(|h| {
        let _ = h.join();
    });
    if let (Some(part), None) = (failure, &first_error) {
        first_error = Some(AgentError::Part {
            part,
            message: "ended unexpectedly".to_owned(),
        });
    }
    if options.remove_on_exit {
        let table = netvm_plan::ruleset::TABLE;
        let removed =
            netvm_apply::apply_ruleset(&format!("table inet {table}\ndelete table inet {table}\n"))
                .is_ok();
        hub.emit(Event::new(Kind::RulesetRemoved { ok: removed }), true);
    }
    let _ = std::fs::remove_file(&options.control);
    if let Some(error) = first_error {
        return Err(error);
    }
    hub.emit(Event::new(Kind::AgentStopped), true);
    Ok(())
}

/// Several uplinks: what their threads reported; an uplink that appeared
/// (and was renamed) gets the plan applied again.
fn uplinks_step(shared: &Shared, running: &mut Running, started: &System) {
    let system = system_now(shared, started);
    let Some(multi) = running.multi.as_mut() else {
        return;
    };
    let next = multi.step(&system, shared);
    running.tend_uplink6(&system, shared);
    if next == crate::uplinks::Next::Apply {
        let (leases, leases6) = (lease_pairs(&shared.state), lease6_pairs(&shared.state));
        let active = active_uplink(shared);
        match apply(
            &system,
            &leases,
            &leases6,
            &running.uplink6,
            active.as_ref(),
        ) {
            Ok((_, plan)) => running.plan = plan,
            Err(e) => shared.hub.emit(
                Event::new(Kind::UplinkFailed {
                    uplink: "*".to_owned(),
                    error: format!("applying the plan to a new uplink: {}", error_chain(&e)),
                }),
                true,
            ),
        }
        if let Some(multi) = running.multi.as_mut() {
            let _ = multi.step(&system, shared);
        }
    }
}

/// Reads the description again and applies the difference; on any
/// problem the agent goes on as it was.
fn reload(
    options: &AgentOptions,
    shared: &Shared,
    running: &mut Running,
    control: &Arc<Control>,
) -> Result<Event, String> {
    let failed = |why: String| {
        shared.hub.emit(
            Event::new(Kind::ReloadFailed {
                error: why.clone(),
                unchanged: true,
            }),
            true,
        );
        if let Ok(mut state) = shared.state.lock() {
            state.last_reload = Some(LastReload {
                ok: false,
                changes: None,
                error: Some(why.clone()),
            });
        }
        Err(why)
    };
    let new = match netvm_description::load(&options.file) {
        Ok(system) => system,
        Err(netvm_description::LoadError::Invalid(error)) => return failed(error.to_string()),
        Err(other) => return failed(error_chain(&other)),
    };
    let old = match shared.state.lock() {
        Ok(state) => state.system.clone(),
        Err(_) => return failed("the agent's state is unreadable".to_owned()),
    };
    if new == old {
        let event = Event::new(Kind::Reloaded {
            changed: false,
            changes: None,
            connections_cut: None,
            part_errors: None,
        });
        shared.hub.emit(event.clone(), true);
        return Ok(event);
    }
    if let Err(e) = find_interfaces(&new) {
        return failed(e.to_string());
    }
    let changes = differences(&old, &new);
    // The servers stop first, so no lease changes while the ruleset is
    // replaced with every live lease in it.
    let errors = running.stop(false);
    if old.netvm.uplinks != new.netvm.uplinks {
        if let Some(mut multi) = running.multi.take() {
            multi.stop();
        }
        for part in [
            running.uplink.take(),
            running.router_listener.take(),
            running.dhcp6_client.take(),
        ]
        .into_iter()
        .flatten()
        {
            let _ = part.stop();
        }
    }
    if old.agent.metrics != new.agent.metrics || old.netvm.endpoint != new.netvm.endpoint {
        running.stop_metrics();
    }
    let uplink6 = running.uplink6.clone();
    let leases6 = lease6_pairs(&shared.state);
    let active = active_uplink(shared);
    let (system, result) = match apply(
        &new,
        &lease_pairs(&shared.state),
        &leases6,
        &uplink6,
        active.as_ref(),
    ) {
        Ok((applied, plan)) => {
            running.plan = plan;
            (&new, Ok(applied.connections_cut))
        }
        // The servers start again with the plan they ran.
        Err(e) => (&old, Err(error_chain(&e))),
    };
    if let Ok(mut state) = shared.state.lock() {
        state.system = system.clone();
    }
    running.start(system, shared, control);
    match result {
        Ok(cut) => {
            let event = Event::new(Kind::Reloaded {
                changed: true,
                changes: Some(changes.clone()),
                connections_cut: Some(cut as u64),
                part_errors: Some(errors.len() as u64),
            });
            shared.hub.emit(event.clone(), true);
            if let Ok(mut state) = shared.state.lock() {
                state.reloads += 1;
                state.last_reload = Some(LastReload {
                    ok: true,
                    changes: Some(changes),
                    error: None,
                });
            }
            Ok(event)
        }
        Err(why) => failed(format!(
            "the new data plane could not be applied, the old description stays: {why}"
        )),
    }
}

/// How long the internal IPv6 service waits at start for the uplink's
/// delegated prefix (a DHCPv6 server on the uplink answers in well under
/// a second; without one, VMs get the internal ULA after this).
const IPV6_SETTLE: Duration = Duration::from_secs(4);

/// The description in force.
fn system_now(shared: &Shared, started: &System) -> System {
    shared
        .state
        .lock()
        .map(|s| s.system.clone())
        .unwrap_or_else(|_| started.clone())
}

/// Reports a CLAT that failed to go.
fn errors_clat(e: &netvm_apply::clat::ClatError) {
    eprintln!(
        "netvm agent: the CLAT could not be removed: {}",
        error_chain(e)
    );
}

/// The uplink taught something about IPv6: the DNS server hears of its
/// IPv6 resolvers; the RFC 7050 probe runs when the router names no
/// NAT64 prefix and the uplink has no IPv4; when what follows changed
/// (the delegated prefix, the NAT64 prefix, the CLAT), the data plane is
/// planned and applied again, the CLAT started, changed or stopped, and
/// the servers restarted with the new plan.
fn ipv6_changed(
    options: &AgentOptions,
    shared: &Shared,
    running: &mut Running,
    control: &Arc<Control>,
) {
    parts::refresh_upstreams(shared);
    let Ok(system) = shared.state.lock().map(|s| s.system.clone()) else {
        return;
    };
    let learned = shared
        .learned6
        .lock()
        .map(|l| l.clone())
        .unwrap_or_default();
    start_probe(&system, &learned, shared, running);
    let decision = crate::ipv6_uplink::decide(&system, &learned);
    if decision == running.decision {
        return;
    }
    let clat_plan = decision.clat.and_then(|source| {
        let plan = clat_plan(&system, &decision, source, options);
        if let Err(e) = &plan {
            shared
                .hub
                .emit(Event::new(Kind::ClatFailed { error: e.clone() }), true);
        }
        plan.ok()
    });
    let uplink6 = Ipv6Uplink {
        delegated: decision.delegated,
        clat: clat_plan.as_ref().map(|p| ClatHook {
            tun: p.tun.clone(),
            clat6: p.clat6,
        }),
    };
    // The servers stop first, so no lease changes while the ruleset is
    // replaced with every live lease in it.
    let _ = running.stop(false);
    let leases = lease_pairs(&shared.state);
    let leases6 = lease6_pairs(&shared.state);
    match apply(
        &system,
        &leases,
        &leases6,
        &uplink6,
        active_uplink(shared).as_ref(),
    ) {
        Ok((_, plan)) => {
            running.plan = plan;
            running.uplink6 = uplink6;
        }
        Err(e) => shared.hub.emit(
            Event::new(Kind::UplinkIpv6Failed {
                error: format!("the data plane for the uplink's IPv6: {}", error_chain(&e)),
            }),
            true,
        ),
    }
    set_clat(shared, running, clat_plan, options);
    if decision.delegated.is_some() {
        running.ipv6_settle = None;
    }
    running.start(&system, shared, control);
    shared.hub.emit(
        Event::new(Kind::Ipv6Uplink {
            internal_prefix: running.plan.ipv6.as_ref().map(|v| v.prefix.to_string()),
            delegated: decision.delegated.map(|p| p.to_string()),
            nat64: decision.nat64.map(|p| p.to_string()),
            clat: running.clat.as_ref().map(|c| c.plan().clat6.to_string()),
            dns: decision.dns.iter().map(ToString::to_string).collect(),
        }),
        true,
    );
    running.decision = decision;
}

/// The CLAT's plan for `decision` (its NAT64 prefix and address source).
fn clat_plan(
    system: &System,
    decision: &Decision,
    source: netvm_plan::clat::Clat6Source,
    options: &AgentOptions,
) -> Result<netvm_plan::clat::ClatPlan, String> {
    let nat64 = decision.nat64.ok_or("no NAT64 prefix")?;
    let names = netvm_plan::datapath::interfaces(system);
    let link =
        netvm_runtime::Link::read(Path::new("/sys"), &names.uplink).map_err(|e| error_chain(&e))?;
    let mtu = std::fs::read_to_string(format!("/sys/class/net/{}/mtu", names.uplink))
        .ok()
        .and_then(|t| t.trim().parse::<u16>().ok())
        .unwrap_or(1500);
    let data_dir = clat_dir(options);
    netvm_plan::clat::plan(&netvm_plan::clat::ClatInput {
        nat64_prefix: (nat64.network(), nat64.prefix()),
        uplink: names.uplink,
        uplink_mac: link.mac,
        uplink_mtu: mtu,
        source,
        internal: names.internal,
        subnet: system.network.subnet,
        data_dir: data_dir.display().to_string(),
    })
    .map_err(|e| e.to_string())
}

/// tayga's directory: beside the lease journal.
fn clat_dir(options: &AgentOptions) -> std::path::PathBuf {
    options
        .journal
        .parent()
        .unwrap_or(Path::new("/var/lib/netvm"))
        .join("clat")
}

/// Starts, changes or stops the CLAT to match `plan`.
fn set_clat(
    shared: &Shared,
    running: &mut Running,
    plan: Option<netvm_plan::clat::ClatPlan>,
    options: &AgentOptions,
) {
    let failed = |e: netvm_apply::clat::ClatError| {
        shared.hub.emit(
            Event::new(Kind::ClatFailed {
                error: error_chain(&e),
            }),
            true,
        );
    };
    match (plan, running.clat.take()) {
        (None, None) => {}
        (None, Some(clat)) => {
            if let Err(e) = clat.remove() {
                failed(e);
            }
        }
        (Some(plan), Some(mut clat)) => {
            if *clat.plan() != plan {
                if let Err(e) = clat.reapply(&plan) {
                    failed(e);
                    return;
                }
            }
            running.clat = Some(clat);
        }
        (Some(plan), None) => {
            let dir = clat_dir(options);
            let clat_options = netvm_apply::clat::ClatOptions {
                config: dir.join("tayga.conf"),
                log: dir.join("tayga.log"),
                proc_sys: std::path::PathBuf::from("/proc/sys"),
                // tayga's own sandbox (-u -g -r) needs privileges the
                // agent has dropped by now (docs/ipv6.md).
                sandbox: None,
                ready_timeout: Duration::from_secs(5),
            };
            match netvm_apply::clat::apply(&plan, &clat_options) {
                Ok(clat) => running.clat = Some(clat),
                Err(e) => failed(e),
            }
        }
    }
}

/// Starts the RFC 7050 probe when the router names no NAT64 prefix, the
/// uplink has no IPv4 and its IPv6 DNS servers were not asked yet; what
/// it finds goes to what the agent learned.
fn start_probe(system: &System, learned: &Learned, shared: &Shared, running: &mut Running) {
    if let Some((thread, _)) = &running.probe {
        if !thread.is_finished() {
            return;
        }
    }
    let Some(router) = &learned.router else {
        return;
    };
    let has_ipv4 = learned.has_ipv4 || crate::ipv6_uplink::static_ipv4(system);
    if router.nat64.is_some() || has_ipv4 || router.dns.is_empty() {
        return;
    }
    if running
        .probe
        .as_ref()
        .is_some_and(|(_, asked)| *asked == router.dns)
    {
        return;
    }
    let servers: Vec<std::net::SocketAddr> = router
        .dns
        .iter()
        .map(|ip| std::net::SocketAddr::from((*ip, 53)))
        .collect();
    let (shared, stop) = (shared.clone(), running.stop.clone());
    let thread = thread::spawn(move || {
        let id = (std::process::id() & 0xffff) as u16;
        let answers = crate::nat64_probe::probe(&servers, &stop, id).unwrap_or_default();
        let found = netvm_ndp::nat64_prefixes_from_aaaa(&answers)
            .first()
            .and_then(|(prefix, len)| netvm_description::values::Ipv6Cidr::new(*prefix, *len));
        shared.learn6(|learned| learned.probed_nat64 = found);
    });
    running.probe = Some((thread, router.dns.clone()));
}

/// Listens to the event rules' NFLOG group and reports what the
/// packets mean ([`crate::watch`]). It sleeps until the kernel logs a
/// packet, the agent stops, or, while security events were suppressed
/// and not yet reported, the next once-a-second report is due: at rest
/// it never wakes. A reload keeps it (the group does not change).
fn start_watcher(shared: &Shared, stop: Stop) -> thread::JoinHandle<()> {
    let shared = shared.clone();
    thread::spawn(move || {
        let group = netvm_plan::ruleset::EVENT_LOG_GROUP;
        let mut listener = match netvm_netfilter::LogListener::bind(group) {
            Ok(listener) => listener,
            Err(e) => {
                // Fail loudly: the rules still drop, but nothing reports.
                shared.hub.emit(
                    Event::new(Kind::EventsUnavailable {
                        nflog_group: group,
                        error: e.to_string(),
                    }),
                    true,
                );
                return;
            }
        };
        let scan_ports = shared
            .state
            .lock()
            .map(|s| s.system.agent.scan_ports)
            .unwrap_or(20);
        let mut watcher = crate::watch::Watcher::new(scan_ports);
        let started = Instant::now();
        let mut last_report = Instant::now();
        let (mut lost, mut failed) = (0, None::<String>);
        loop {
            let due = last_report + Duration::from_secs(1);
            // A refusal from any part (the DHCP server's security events
            // too) rings the hub's bell; then a report is due within 1 s.
            shared.hub.suppressing().take();
            let deadline = shared.hub.has_unreported().then_some(due);
            let woken = shared.hub.suppressing().fd().and_then(|bell| {
                stop.wait_any(&[std::os::fd::AsFd::as_fd(&listener), bell], deadline)
            });
            match woken {
                Ok(None) => return,
                Ok(Some(_)) => {}
                Err(e) => {
                    failed = Some(e.to_string());
                    // Not a busy loop when waiting itself fails.
                    if stop.sleep(Duration::from_secs(1)).unwrap_or(true) {
                        return;
                    }
                }
            }
            let records = match listener.recv() {
                Ok(records) => records,
                Err(e) => {
                    failed = Some(e.to_string());
                    Vec::new()
                }
            };
            if let Some(error) = failed.take() {
                shared.hub.emit(
                    Event::new(Kind::EventsUnavailable {
                        nflog_group: group,
                        error,
                    }),
                    true,
                );
            }
            let now = started.elapsed().as_secs();
            if let Ok(state) = shared.state.lock() {
                let events: Vec<netvm_events::Event> = records
                    .iter()
                    .filter_map(|r| watcher.observe(now, r, &*state))
                    .collect();
                drop(state);
                for event in events {
                    shared.hub.emit(event, true);
                }
            }
            if listener.lost() > lost {
                // The kernel dropped log messages (a flood outran us): said once per burst.
                shared.hub.emit(
                    Event::new(Kind::EventsLost {
                        count: listener.lost() - lost,
                    }),
                    true,
                );
                lost = listener.lost();
            }
            if Instant::now() >= due {
                shared.hub.report_suppressed();
                last_report = Instant::now();
            }
        }
    })
}

/// Starts the metrics endpoint when the description asks for one.
fn start_metrics(
    system: &System,
    control: &Arc<Control>,
) -> Option<(Stop, thread::JoinHandle<()>)> {
    let metrics = system.agent.metrics.as_ref()?;
    let address = SocketAddr::from((system.netvm.endpoint.ip, metrics.port));
    let stop = Stop::new();
    let (control, theirs) = (Arc::clone(control), stop.clone());
    let hub = Arc::clone(&control.shared.hub);
    let thread = thread::spawn(move || {
        let status = Arc::new(move || {
            control
                .status()
                .ok()
                .and_then(|s| serde_json::to_value(s).ok())
                .unwrap_or_default()
        });
        if let Err(e) = crate::metrics::serve(address, status, theirs) {
            hub.emit(
                Event::new(Kind::MetricsFailed {
                    address: address.to_string(),
                    error: e.to_string(),
                }),
                true,
            );
        }
    });
    Some((stop, thread))
}

/// The control service for VMs, when the description names any user; it
/// runs until the agent stops (a new `control_port` takes a restart, new
/// users do not).
fn start_remote_control(
    system: &System,
    control: &Arc<Control>,
    stop: &Stop,
) -> Option<thread::JoinHandle<()>> {
    let port = system.agent.control.as_ref()?.port;
    let ipv4 = system.netvm.endpoint.ip;
    let handler: Arc<dyn Handler> = Arc::clone(control) as Arc<dyn Handler>;
    let (users, hub, stop) = (
        Arc::clone(&control.users),
        Arc::clone(&control.shared.hub),
        stop.clone(),
    );
    Some(thread::spawn(move || {
        if let Err(e) = crate::remote_control::serve(ipv4, port, users, handler, stop) {
            hub.emit(
                Event::new(Kind::ControlFailed {
                    error: format!("control service on port {port}: {e}"),
                }),
                true,
            );
        }
    }))
}
