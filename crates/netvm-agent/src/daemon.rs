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
use crate::parts::{self, Part, Shared};
use crate::state::{Lease, State};
use netvm_description::values::MacAddr;
use netvm_description::System;
use netvm_events::control::{
    Counters, EventCounts, FirewallCounter, LastReload, LeaseInfo, Status,
};
use netvm_events::{Changes, Event, Kind, Ready, Renamed};
use netvm_plan::datapath::NetVmPlan;
use netvm_runtime::{error_chain, Bell, PartControl, Stop};
use serde_json::Value;
use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
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
) -> Result<(netvm_apply::Applied, NetVmPlan), netvm_apply::ApplyError> {
    let plan = netvm_plan::datapath::plan(system, leases);
    let forbidden =
        |c: &netvm_plan::policy::Connection| plan.policy.allows(system, c) == Some(false);
    let applied = netvm_apply::apply_netvm(&plan, Path::new("/proc/sys"), &forbidden)?;
    Ok((applied, plan))
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
        uplink_changed: old.netvm.uplink != new.netvm.uplink,
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

    fn hub(&self) -> &Hub {
        &self.shared.hub
    }
}

/// The running parts.
struct Running {
    /// The plan they run.
    plan: NetVmPlan,
    dhcp: Option<Part>,
    dns: Option<Part>,
    uplink: Option<Part>,
    metrics: Option<(Stop, thread::JoinHandle<()>)>,
}

impl Running {
    /// Starts the servers (and the uplink client and the metrics unless
    /// they run).
    fn start(&mut self, system: &System, shared: &Shared, control: &Arc<Control>) {
        self.dhcp = Some(parts::start_dhcp(system, &self.plan, shared));
        self.dns = Some(parts::start_dns(&self.plan, shared));
        if self.uplink.is_none() {
            self.uplink = parts::start_uplink(system, shared);
        }
        if self.metrics.is_none() {
            self.metrics = start_metrics(system, control);
        }
        if let (Ok(mut controls), Some(dhcp), Some(dns)) =
            (control.parts.lock(), &self.dhcp, &self.dns)
        {
            *controls = (dhcp.control.clone(), dns.control.clone());
        }
    }

    fn any_finished(&self) -> Option<&'static str> {
        [self.dhcp.as_ref(), self.dns.as_ref(), self.uplink.as_ref()]
            .into_iter()
            .flatten()
            .find(|p| p.is_finished())
            .map(|p| p.name)
    }

    /// Stops the servers; the uplink client and the metrics too when
    /// `all`. The errors of parts that had failed.
    fn stop(&mut self, all: bool) -> Vec<(&'static str, String)> {
        let mut parts = vec![self.dhcp.take(), self.dns.take()];
        if all {
            parts.push(self.uplink.take());
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
    let (applied, plan) = apply(system, &pairs)?;
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
            .filter_map(|(ip, l)| Some((l.hostname.clone()?, *ip, l.until))),
    );
    let shared = Shared {
        state: Arc::new(Mutex::new(State::new(system.clone(), leases))),
        hub: Arc::clone(&hub),
        learned: netvm_dns_server::Upstreams::new(),
        names,
        journal: options.journal.clone(),
        ended: Bell::new(),
    };
    let (reload_sender, reload_requests) = channel::<ReloadRequest>();
    let control = Arc::new(Control {
        shared: shared.clone(),
        parts: Arc::new(Mutex::new(Default::default())),
        reloads: Mutex::new(reload_sender),
        reload_asked: Bell::new(),
        file: options.file.clone(),
        started: Instant::now(),
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
    let mut running = Running {
        plan,
        dhcp: None,
        dns: None,
        uplink: None,
        metrics: None,
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
    let woken = |next_ping: Option<Instant>| {
        let fds = [hup.fd()?, shared.ended.fd()?, control.reload_asked.fd()?];
        stop.wait_any(&fds, next_ping)
    };
    loop {
        let next_ping = watchdog.map(|(_, every)| last_ping + every);
        let Some(_) = woken(next_ping).map_err(AgentError::Wait)? else {
            break;
        };
        if control.reload_asked.take() {
            while let Ok(reply) = reload_requests.try_recv() {
                let _ = reply.send(reload(options, &shared, &mut running, &control));
            }
        }
        if hup.take() {
            let _ = reload(options, &shared, &mut running, &control);
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
    if old.netvm.uplink != new.netvm.uplink {
        if let Some(part) = running.uplink.take() {
            let _ = part.stop();
        }
    }
    if old.agent.metrics != new.agent.metrics || old.netvm.endpoint != new.netvm.endpoint {
        running.stop_metrics();
    }
    let (system, result) = match apply(&new, &lease_pairs(&shared.state)) {
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
