//! `netvm agent FILE`: the Net VM's services in one process. The data
//! plane is applied first, and if that fails the agent exits before
//! serving anything (fail closed). Then, each on its own thread: the DHCP
//! server (whose leases keep the ruleset's `endpoints` set current, so
//! pool clients pass the anti-spoofing guard) and the DNS server on the
//! internal interface, and (when the uplink uses DHCP) the uplink's
//! client, whose lease gives the DNS server its upstreams. Readiness is a
//! `ready` event, and `READY=1` to systemd when `NOTIFY_SOCKET` is set;
//! with `WATCHDOG_USEC`, `WATCHDOG=1` every half interval while every part
//! is alive (one that ends unasked stops the agent with an error). SIGTERM
//! or SIGINT stops every part; the ruleset stays (fail closed).

use netvm_description::values::MacAddr;
use netvm_description::{System, UplinkAddressing};
use netvm_dhcp_server::ServeOptions;
use netvm_dns_server::DnsOptions;
use serde_json::json;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

/// Where the agent keeps state.
#[derive(Debug, Clone)]
pub struct AgentOptions {
    /// The DHCP lease journal.
    pub journal: PathBuf,
}

/// Why the agent stopped.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    /// The data plane could not be applied: nothing is served.
    #[error("the data plane could not be applied; not serving anything")]
    Apply(#[from] netvm_apply::ApplyError),
    /// Signals could not be set up.
    #[error("cannot handle signals")]
    Signals(#[source] io::Error),
    /// A part stopped with an error.
    #[error("{part} stopped: {message}")]
    Part {
        /// `dhcp`, `dns` or `uplink`.
        part: &'static str,
        /// Its error.
        message: String,
    },
}

fn event(value: serde_json::Value) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
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

/// The (address, MAC) pairs the description reserves (in the ruleset
/// already).
fn reserved(system: &System) -> std::collections::HashSet<(std::net::Ipv4Addr, MacAddr)> {
    system.endpoints().map(|(_, _, e)| (e.ip, e.mac)).collect()
}

/// Live bound leases in the journal, as additions to the set.
fn journal_leases(journal: &std::path::Path) -> Vec<crate::endpoints::Change> {
    let now = netvm_dhcp::Timestamp::now();
    netvm_dhcp_server::journal_file::bound_leases(journal)
        .into_iter()
        .filter(|l| l.until > now)
        .filter_map(|l| Some(crate::endpoints::Change::Add(l.ip, l.mac?)))
        .collect()
}

/// Runs the agent for `system` until SIGTERM or SIGINT.
pub fn run(system: &System, options: &AgentOptions) -> Result<(), AgentError> {
    let stop = crate::uplink::stop_on_signals().map_err(AgentError::Signals)?;
    let policy = netvm_plan::plan(system).policy;
    let datapath = netvm_plan::datapath::plan(system, &policy);
    let forbidden = |c: &netvm_plan::policy::Connection| policy.allows(system, c) == Some(false);
    let applied =
        netvm_apply::apply_netvm(&datapath, std::path::Path::new("/proc/sys"), &forbidden)?;
    event(json!({"event": "data_plane_applied", "connections_cut": applied.connections_cut}));

    let names = netvm_plan::datapath::interfaces(system);
    let learned: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
    let failure: Arc<Mutex<Option<AgentError>>> = Arc::default();
    let fail = |part: &'static str, failure: &Arc<Mutex<Option<AgentError>>>, message: String| {
        if let Ok(mut slot) = failure.lock() {
            slot.get_or_insert(AgentError::Part { part, message });
        }
    };
    let mut parts = Vec::new();

    let dhcp = ServeOptions {
        interface: names.internal.clone(),
        journal: options.journal.clone(),
        sys: PathBuf::from("/sys"),
        control: None,
    };
    let endpoints = crate::endpoints::start(reserved(system));
    // Leases already in the journal (a restart) are admitted again.
    for change in journal_leases(&options.journal) {
        let _ = endpoints.send(change);
    }
    let (sys_dhcp, failure_dhcp, stop_dhcp) =
        (system.clone(), Arc::clone(&failure), Arc::clone(&stop));
    parts.push(thread::spawn(move || {
        let mut hook = |event: &netvm_dhcp::Event| {
            if let Some(change) = crate::endpoints::change_for(event) {
                let _ = endpoints.send(change);
            }
        };
        let out = &mut io::stdout();
        if let Err(e) = netvm_dhcp_server::serve_with(&sys_dhcp, &dhcp, out, &mut hook) {
            fail("dhcp", &failure_dhcp, netvm_dhcp_server::error_chain(&e));
            stop_dhcp.store(true, Ordering::Relaxed);
        }
    }));

    let dns = DnsOptions {
        interface: names.internal.clone(),
        upstreams: Vec::new(),
        leases: Some(options.journal.clone()),
        learned_upstreams: Some(Arc::clone(&learned)),
        control: None,
    };
    let (sys_dns, failure_dns, stop_dns) =
        (system.clone(), Arc::clone(&failure), Arc::clone(&stop));
    parts.push(thread::spawn(move || {
        if let Err(e) = netvm_dns_server::serve(&sys_dns, dns) {
            fail("dns", &failure_dns, netvm_dhcp_server::error_chain(&e));
            stop_dns.store(true, Ordering::Relaxed);
        }
    }));

    if system.netvm.uplink.addressing == UplinkAddressing::Dhcp {
        let uplink = names.uplink.clone();
        let (failure_up, stop_up, learned_up) = (
            Arc::clone(&failure),
            Arc::clone(&stop),
            Arc::clone(&learned),
        );
        parts.push(thread::spawn(move || {
            let mut on_lease = |lease: Option<&netvm_uplink::Lease>| {
                let servers = lease
                    .map(|l| l.dns.iter().map(|ip| SocketAddr::from((*ip, 53))).collect())
                    .unwrap_or_default();
                if let Ok(mut list) = learned_up.lock() {
                    *list = servers;
                }
            };
            if let Err(e) = crate::uplink::run(&uplink, &stop_up, &mut io::stdout(), &mut on_lease)
            {
                fail("uplink", &failure_up, netvm_dhcp_server::error_chain(&e));
                stop_up.store(true, Ordering::Relaxed);
            }
        }));
    }

    event(json!({
        "event": "ready",
        "internal": names.internal.to_string(),
        "uplink": names.uplink.to_string(),
    }));
    let notifier = Notifier::from_env();
    if let Some(n) = &notifier {
        n.send("READY=1");
    }
    let mut last_ping = std::time::Instant::now();
    while !stop.load(Ordering::Relaxed) {
        thread::sleep(Duration::from_millis(100));
        // A part that ended without being asked to (a panic) stops the
        // agent; while all are alive, systemd's watchdog is fed.
        // (Checked after the stop flag: on SIGTERM the parts end too.)
        if !stop.load(Ordering::Relaxed) && parts.iter().any(|p| p.is_finished()) {
            fail("a part", &failure, "ended unexpectedly".to_owned());
            break;
        }
        if let Some((n, every)) = notifier.as_ref().and_then(|n| Some((n, n.watchdog?))) {
            if last_ping.elapsed() >= every {
                n.send("WATCHDOG=1");
                last_ping = std::time::Instant::now();
            }
        }
    }
    // A part that failed stopped the others' wait; the servers stop on
    // the signal itself, so a failure is reported and the process exits.
    if let Ok(mut slot) = failure.lock() {
        if let Some(error) = slot.take() {
            return Err(error);
        }
    }
    for part in parts {
        let _ = part.join();
    }
    event(json!({"event": "agent_stopped"}));
    Ok(())
}
