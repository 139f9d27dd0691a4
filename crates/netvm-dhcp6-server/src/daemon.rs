//! The server loop: read a batch of client frames, let the engine answer
//! them, have the supervisor make every grant effective ([`Hooks6::grant`])
//! before its reply may leave, write the lease snapshot once for the
//! batch, then send the replies; end leases at their deadline; stop when
//! the stop handle is stopped (or, run on its own, on SIGTERM/SIGINT).
//!
//! Between batches the loop sleeps in one `poll` on its packet socket,
//! its stop handle and the engine's next deadline: an idle server does not
//! wake, and the kernel filter keeps other traffic from waking it.
//!
//! Event lines go to `out`, one JSON object each, with `time_ms`:
//! `ready`, the engine's lease events ([`Event6`]), `lease_refused`,
//! `snapshot_failed` and `stopped` with the counters ([`Line6`]).

use crate::frame;
use crate::snapshot;
use crate::sockets::{self, FrameReceiver, ReplySender};
use netvm_description::values::{IfName, MacAddr};
use netvm_dhcp6::server::{ConfigError, Event6, Millis, Reply6, Server6, Server6Config};
use netvm_runtime::{error_chain, PartControl, Stop};
use serde::Serialize;
use serde_json::json;
use std::io::{self, Write};
use std::net::Ipv6Addr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Most frames handled per batch (per snapshot).
const BATCH: usize = 16;

/// How to run the server.
#[derive(Debug, Clone)]
pub struct Serve6Options {
    /// The internal interface: the only one served. It is looked up in
    /// the calling thread's network namespace.
    pub interface: IfName,
    /// Where the lease snapshot lives (none: leases live in memory only).
    pub snapshot: Option<PathBuf>,
    /// Set by a supervisor (the agent) to stop this server and read its
    /// counters; when absent, SIGTERM and SIGINT stop it.
    pub control: Option<PartControl>,
}

/// What the supervisor does with the leases.
pub trait Hooks6 {
    /// Makes `(ip, mac)` effective (the data plane's `endpoints6`); called
    /// before any reply granting it is sent, for new and renewed leases,
    /// and for each lease restored at start. `false` withholds the reply
    /// and undoes the lease (an [`Event6::LeaseRevoked`] follows).
    fn grant(&mut self, ip: Ipv6Addr, mac: MacAddr) -> bool {
        let _ = (ip, mac);
        true
    }

    /// Told every lease event, after [`Hooks6::grant`] had its say
    /// (leases restored at start are told as [`Event6::LeaseGranted`]; a
    /// refused grant is not told, its [`Event6::LeaseRevoked`] is):
    /// removals ([`Event6::removal`]) are to be taken out of the data
    /// plane.
    fn event(&mut self, event: &Event6) {
        let _ = event;
    }
}

/// Hooks that accept every grant and ignore events.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoHooks;

impl Hooks6 for NoHooks {}

/// Why the server could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum Serve6Error {
    /// The configuration cannot be served.
    #[error("invalid DHCPv6 server configuration")]
    Config(#[source] ConfigError),
    /// The interface could not be found.
    #[error("interface {interface}")]
    Interface {
        /// The interface.
        interface: IfName,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A socket could not be opened.
    #[error("cannot open the {which} socket on {interface}")]
    OpenSocket {
        /// `receive` or `send`.
        which: &'static str,
        /// The interface.
        interface: IfName,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Receiving failed.
    #[error("cannot receive on {interface}")]
    Receive {
        /// The interface.
        interface: IfName,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] io::Error),
    /// Waiting for frames, deadlines and the stop failed.
    #[error("cannot wait for requests on {interface}")]
    Wait {
        /// The interface.
        interface: IfName,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The server's own event lines (beside the engine's [`Event6`]).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Line6 {
    /// Listening, with the leases restored from the snapshot.
    Ready {
        /// The interface.
        interface: String,
        /// Leases held.
        leases: usize,
        /// Snapshot leases left out (run out, or no longer fitting the
        /// configuration).
        rejected: usize,
        /// Why the snapshot could not be read, if it could not.
        snapshot_error: Option<String>,
    },
    /// The supervisor refused a grant: no reply was sent.
    LeaseRefused {
        /// The address.
        ip: Ipv6Addr,
        /// The client's MAC.
        mac: MacAddr,
    },
    /// The snapshot could not be written (replies are sent anyway).
    SnapshotFailed {
        /// Why.
        error: String,
    },
    /// Stopped.
    Stopped {
        /// The final counters.
        counters: serde_json::Value,
    },
}

#[derive(Serialize)]
struct Stamped<'a, T: Serialize> {
    time_ms: u64,
    #[serde(flatten)]
    body: &'a T,
}

/// Milliseconds since the Unix epoch: the engine's clock, so snapshot
/// expiries keep their meaning across a reboot.
fn now_ms() -> Millis {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

fn emit(out: &mut dyn Write, body: &impl Serialize) {
    netvm_runtime::emit(
        out,
        &Stamped {
            time_ms: now_ms(),
            body,
        },
    );
}

struct Daemon<'a> {
    server: Server6,
    receiver: FrameReceiver,
    sender: ReplySender,
    interface: IfName,
    snapshot: Option<PathBuf>,
    out: &'a mut dyn Write,
    hooks: &'a mut dyn Hooks6,
    /// Replies waiting for the batch's snapshot: to whom, and what.
    pending: Vec<(Ipv6Addr, u16, Reply6)>,
    changed: bool,
    frames_rejected: u64,
    /// Replies not sent because a grant in them was refused.
    withheld: u64,
    sent: u64,
    send_errors: u64,
    snapshot_errors: u64,
}

impl Daemon<'_> {
    fn events(&mut self, events: &[Event6]) {
        for event in events {
            self.changed |= !matches!(event, Event6::PoolExhausted { .. });
            self.hooks.event(event);
            emit(self.out, event);
        }
    }

    /// Asks the supervisor about each grant in `events` and tells it the
    /// events; whether the reply may be sent. A refused grant undoes all
    /// of them: the grant events are not told (they never took effect),
    /// a `lease_refused` line and a [`Event6::LeaseRevoked`] per grant
    /// are, after the other events.
    fn approve(&mut self, events: &[Event6]) -> bool {
        let grants: Vec<(Ipv6Addr, MacAddr)> = events.iter().filter_map(Event6::grant).collect();
        let refused = grants
            .iter()
            .find(|(ip, mac)| !self.hooks.grant(*ip, *mac))
            .copied();
        let Some((ip, mac)) = refused else {
            self.events(events);
            return true;
        };
        let others: Vec<Event6> = events
            .iter()
            .filter(|e| e.grant().is_none())
            .cloned()
            .collect();
        self.events(&others);
        emit(self.out, &Line6::LeaseRefused { ip, mac });
        let revoked: Vec<Event6> = grants
            .iter()
            .filter_map(|(ip, mac)| self.server.revoke(*mac, *ip))
            .collect();
        self.events(&revoked);
        false
    }

    fn handle(&mut self, frame: &[u8]) {
        let received = match frame::parse(frame) {
            Ok(received) => received,
            Err(_) => {
                self.frames_rejected += 1;
                return;
            }
        };
        let outcome = self.server.handle(now_ms(), received.mac, received.payload);
        let approved = self.approve(&outcome.events);
        match outcome.reply {
            Some(reply) if approved => self.pending.push((received.ip, received.port, reply)),
            Some(_) => self.withheld += 1,
            None => {}
        }
    }

    /// Takes what is queued, up to a batch.
    fn receive_batch(&mut self, buf: &mut [u8]) -> Result<(), Serve6Error> {
        for _ in 0..BATCH {
            match self.receiver.receive(buf) {
                Ok(Some(n)) => self.handle(&buf[..n]),
                Ok(None) => break,
                Err(source) => {
                    return Err(Serve6Error::Receive {
                        interface: self.interface.clone(),
                        source,
                    })
                }
            }
        }
        Ok(())
    }

    /// Writes the snapshot if the leases changed, then sends the replies.
    fn commit(&mut self) {
        if std::mem::take(&mut self.changed) {
            if let Some(path) = &self.snapshot {
                if let Err(error) = snapshot::write(path, self.server.leases()) {
                    self.snapshot_errors += 1;
                    let error = error_chain(&error);
                    emit(self.out, &Line6::SnapshotFailed { error });
                }
            }
        }
        for (ip, port, reply) in std::mem::take(&mut self.pending) {
            match self.sender.send(ip, port, &reply.bytes) {
                Ok(()) => self.sent += 1,
                Err(_) => self.send_errors += 1,
            }
        }
        let _ = self.out.flush();
    }

    fn timers(&mut self) {
        let events = self.server.tick(now_ms());
        self.events(&events);
    }

    fn deadline(&self) -> Option<Instant> {
        let at = self.server.next_deadline()?;
        // A time too far to represent is no deadline.
        Instant::now().checked_add(Duration::from_millis(at.saturating_sub(now_ms())))
    }

    fn counters(&self) -> serde_json::Value {
        json!({
            "dhcp6": self.server.counters(),
            "frames_rejected": self.frames_rejected,
            "replies_sent": self.sent,
            "replies_withheld": self.withheld,
            "send_errors": self.send_errors,
            "snapshot_errors": self.snapshot_errors,
            "leases": self.server.leases().len(),
        })
    }
}

/// Serves DHCPv6 with `config` on `options.interface` until stopped,
/// accepting every grant.
pub fn serve(
    config: Server6Config,
    options: &Serve6Options,
    out: &mut dyn Write,
) -> Result<(), Serve6Error> {
    serve_with(config, options, out, &mut NoHooks)
}

/// [`serve`], asking `hooks` about every grant and telling it every lease
/// event.
pub fn serve_with(
    config: Server6Config,
    options: &Serve6Options,
    out: &mut dyn Write,
    hooks: &mut dyn Hooks6,
) -> Result<(), Serve6Error> {
    let mut server = Server6::new(config).map_err(Serve6Error::Config)?;
    let control = options.control.clone();
    let stop = control.as_ref().map_or_else(Stop::new, |c| c.stop.clone());
    let _signals = match control {
        Some(_) => None,
        None => Some(
            stop.on_signals(&[signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
                .map_err(Serve6Error::Signals)?,
        ),
    };
    let interface = options.interface.clone();
    let ifindex = sockets::ifindex(&interface).map_err(|source| Serve6Error::Interface {
        interface: interface.clone(),
        source,
    })?;
    let open_error = |which| {
        let interface = interface.clone();
        move |source| Serve6Error::OpenSocket {
            which,
            interface,
            source,
        }
    };
    let receiver = FrameReceiver::open(ifindex).map_err(open_error("receive"))?;
    let sender = ReplySender::open(&interface, ifindex).map_err(open_error("send"))?;

    let (stored, snapshot_error) = match &options.snapshot {
        Some(path) => match snapshot::read(path) {
            Ok(leases) => (leases, None),
            Err(error) => (Vec::new(), Some(error_chain(&error))),
        },
        None => (Vec::new(), None),
    };
    let rejected = server.restore(now_ms(), stored).len();
    let mut daemon = Daemon {
        server,
        receiver,
        sender,
        interface: interface.clone(),
        snapshot: options.snapshot.clone(),
        out,
        hooks,
        pending: Vec::new(),
        changed: rejected > 0,
        frames_rejected: 0,
        withheld: 0,
        sent: 0,
        send_errors: 0,
        snapshot_errors: 0,
    };
    // Restored leases are effective again before anything else.
    for lease in daemon.server.leases() {
        daemon.approve(&[Event6::LeaseGranted {
            ip: lease.ip,
            mac: lease.mac,
            until: lease.expires_at,
        }]);
    }
    daemon.commit();
    emit(
        daemon.out,
        &Line6::Ready {
            interface: interface.to_string(),
            leases: daemon.server.leases().len(),
            rejected,
            snapshot_error,
        },
    );
    let _ = daemon.out.flush();
    if let Some(control) = &control {
        control.publish(daemon.counters());
    }

    let mut buf = vec![0u8; 65536];
    let wait_error = |source| Serve6Error::Wait {
        interface: interface.clone(),
        source,
    };
    loop {
        let deadline = daemon.deadline();
        let Some(ready) = stop
            .wait_any(&[daemon.receiver.fd()], deadline)
            .map_err(wait_error)?
        else {
            break;
        };
        if ready.is_ready(0) {
            daemon.receive_batch(&mut buf)?;
        }
        daemon.timers();
        daemon.commit();
        if let Some(control) = &control {
            control.publish(daemon.counters());
        }
    }
    let counters = daemon.counters();
    if let Some(control) = &control {
        control.publish(counters.clone());
    }
    emit(daemon.out, &Line6::Stopped { counters });
    let _ = daemon.out.flush();
    Ok(())
}
