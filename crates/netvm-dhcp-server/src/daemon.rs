//! The server loop: receive a batch of requests, let the engine answer
//! them, make the batch's lease changes durable with one sync, then send
//! the ACKs; run timers; compact the journal when it grows; stop cleanly
//! on SIGTERM or SIGINT.
//!
//! Between batches the loop sleeps in one `poll` on its receive socket,
//! its stop handle, SIGUSR1, the end of a background compaction and its
//! next deadline (a lease or offer running out, held-back events to
//! count, counters to publish): an idle server does not wake.
//!
//! Everything worth knowing is written to `events` as one JSON object per
//! line ([`netvm_events::Event`]): `ready` (after the journal is replayed and the sockets are
//! open), every lease event (those a client can cause at will, an empty
//! pool or a decline, rate-limited: [`crate::log_limit`]), journal
//! compactions, `counters` on SIGUSR1, and `stopped` with the final
//! counters.

use crate::journal_file::{JournalFile, JournalFileError};
use crate::sockets::{self, FrameSender};
use netvm_description::values::{IfName, MacAddr};
use netvm_dhcp::{Destination, Event, Reply, Server, ServerConfig, Timestamp};
use netvm_events::{Kind, Ready};
use netvm_runtime::{error_chain, Bell, Link, LinkError, PartControl, Stop};
use serde_json::json;
use std::io::{self, Write};
use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Most messages handled per batch (per journal sync).
const BATCH: usize = 16;

/// Counters are published to a supervisor at most this often, and only
/// when they changed.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// How to run the server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// The internal interface: the only one served.
    pub interface: IfName,
    /// The lease journal.
    pub journal: PathBuf,
    /// The sysfs root (normally `/sys`).
    pub sys: PathBuf,
    /// Set by a supervisor (the agent) to stop this server and read its
    /// counters; signals stop it too.
    pub control: Option<PartControl>,
}

/// Why the server could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The interface could not be read.
    #[error("interface {interface}")]
    Link {
        /// The interface.
        interface: IfName,
        /// Why.
        #[source]
        source: LinkError,
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
    /// The journal failed.
    #[error(transparent)]
    Journal(#[from] JournalFileError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] io::Error),
    /// Waiting for requests, timers and the stop failed.
    #[error("cannot wait for requests on {interface}")]
    Wait {
        /// The interface.
        interface: IfName,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Writes one event line (buffered: the loop flushes once per batch); a
/// reader that went away does not stop the server.
fn emit(out: &mut dyn Write, kind: Kind) {
    netvm_runtime::emit(out, &netvm_events::Event::new(kind));
}

struct Daemon<'a> {
    server: Server,
    journal: JournalFile,
    receive: UdpSocket,
    send: FrameSender,
    server_ip: Ipv4Addr,
    interface: IfName,
    out: &'a mut dyn Write,
    /// Told every lease event too (the agent keeps the ruleset's
    /// `endpoints` set in step with the leases); may refuse a grant.
    hook: &'a mut dyn FnMut(&Event) -> Verdict,
    /// ACKs waiting for the batch's journal sync.
    durable: Vec<Reply>,
    /// Bounds the floodable events written to `out`.
    log_limit: crate::log_limit::LogLimit,
    send_errors: u64,
}

impl Daemon<'_> {
    fn send(&mut self, reply: &Reply) {
        let sent = match reply.to {
            Destination::Broadcast => self.send.send(
                self.server_ip,
                MacAddr([0xff; 6]),
                Ipv4Addr::BROADCAST,
                &reply.bytes,
            ),
            Destination::Unicast { mac, ip } => {
                self.send.send(self.server_ip, mac, ip, &reply.bytes)
            }
            // A relay has its address: the kernel routes to it.
            Destination::Relay { ip } => self.receive.send_to(&reply.bytes, (ip, 67)).map(|_| ()),
        };
        if sent.is_err() {
            self.send_errors += 1;
        }
    }

    fn handle(&mut self, now: Timestamp, source_port: u16, bytes: &[u8]) {
        let outcome = self.server.handle_from(now, source_port, bytes);
        for event in &outcome.events {
            if let (Verdict::Refuse(error), Event::LeaseGranted { ip, mac, .. }) =
                ((self.hook)(event), event)
            {
                self.refuse(now, *ip, *mac, outcome.record.as_ref(), &error);
                return;
            }
            if self.log_limit.allow(event, std::time::Instant::now()) {
                emit(self.out, Kind::from(event));
            }
        }
        let Some(reply) = outcome.reply else {
            if let Some(record) = &outcome.record {
                self.journal.append(record);
            }
            return;
        };
        match &outcome.record {
            Some(record) => {
                self.journal.append(record);
                self.durable.push(reply);
            }
            None => self.send(&reply),
        }
    }

    /// A grant the hook refused: no ACK; the lease is undone in the engine
    /// and the journal says so (its `Bound` record, then a release), so a
    /// restart does not bring it back. The client retries by itself.
    fn refuse(
        &mut self,
        now: Timestamp,
        ip: Ipv4Addr,
        mac: MacAddr,
        bound: Option<&netvm_dhcp::Record>,
        error: &str,
    ) {
        if let Some(release) = self.server.revoke(now, ip) {
            if let Some(bound) = bound {
                self.journal.append(bound);
            }
            self.journal.append(&release);
        }
        emit(
            self.out,
            Kind::LeaseRefused {
                ip,
                mac,
                reason: None,
                error: error.to_owned(),
            },
        );
    }

    /// Takes whatever is queued, up to a batch (the socket is
    /// non-blocking).
    fn receive_batch(&mut self, buf: &mut [u8]) -> Result<(), ServeError> {
        let receive_error = |interface: &IfName, source| ServeError::Receive {
            interface: interface.clone(),
            source,
        };
        for _ in 0..BATCH {
            match self.receive.recv_from(buf) {
                // The engine judges the source port (68 from a client,
                // 67 only from a trusted relay).
                Ok((n, from)) => self.handle(Timestamp::now(), from.port(), &buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) =>
                {
                    break
                }
                Err(e) => return Err(receive_error(&self.interface, e)),
            }
        }
        Ok(())
    }

    /// Makes the batch durable, then sends its ACKs.
    fn commit(&mut self) {
        match self.journal.commit() {
            Ok(()) => {
                for reply in std::mem::take(&mut self.durable) {
                    self.send(&reply);
                }
            }
            Err(error) => {
                // Not durable: not acknowledged. Clients retransmit.
                self.durable.clear();
                emit(
                    self.out,
                    Kind::JournalError {
                        error: error_chain(&error),
                    },
                );
            }
        }
    }

    fn compact(&mut self) -> Result<(), ServeError> {
        if let Some(done) = self.journal.finish_compaction()? {
            emit(
                self.out,
                Kind::JournalCompacted {
                    before: done.before,
                    after: done.after,
                },
            );
        }
        if self.journal.wants_compaction() && !self.journal.has_pending() {
            self.journal.start_compaction(self.server.snapshot());
        }
        Ok(())
    }

    /// The earliest of the engine's next timer and the next count of
    /// held-back events.
    fn next_timer(&self) -> Option<Instant> {
        let now = Timestamp::now();
        // A time too far to represent is no deadline.
        let engine = self.server.poll_at().and_then(|at| {
            Instant::now().checked_add(Duration::from_millis(at.0.saturating_sub(now.0)))
        });
        [engine, self.log_limit.report_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the engine's timers and reports held-back events; whether
    /// anything happened.
    fn timers(&mut self) -> bool {
        let events = self.server.poll(Timestamp::now());
        let fired = !events.is_empty();
        for event in events {
            if self.log_limit.allow(&event, Instant::now()) {
                emit(self.out, Kind::from(&event));
            }
            // Expiries cannot be refused.
            let _ = (self.hook)(&event);
        }
        if let Some(count) = self.log_limit.report(Instant::now()) {
            emit(
                self.out,
                Kind::EventsSuppressed {
                    kinds: vec!["pool_exhausted".to_owned(), "address_declined".to_owned()],
                    count,
                },
            );
        }
        fired
    }

    fn counters(&self) -> serde_json::Value {
        json!({
            "dhcp": self.server.counters(),
            "send_errors": self.send_errors,
            "journal_bytes": self.journal.len(),
            "leases": self.server.leases().count(),
        })
    }
}

/// Serves DHCP with `config` (the plan's: `netvm_plan::datapath::NetVmPlan::dhcp`)
/// on `options.interface` until SIGTERM/SIGINT.
pub fn serve(
    config: &ServerConfig,
    options: &ServeOptions,
    out: &mut dyn Write,
) -> Result<(), ServeError> {
    serve_with(config, options, out, &mut |_| Verdict::Accept)
}

/// What a hook says about a lease event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Go on (the only answer that counts for events other than a grant).
    Accept,
    /// A `lease_granted` that must not be acknowledged: the supervisor
    /// could not make it effective; why, for the `lease_refused` event.
    Refuse(String),
}

/// [`serve`], telling `hook` every lease event as well. A grant the hook
/// refuses is not acknowledged and is undone ([`Verdict::Refuse`]).
pub fn serve_with(
    config: &ServerConfig,
    options: &ServeOptions,
    out: &mut dyn Write,
    hook: &mut dyn FnMut(&Event) -> Verdict,
) -> Result<(), ServeError> {
    let control = options.control.clone();
    let stop = control.as_ref().map_or_else(Stop::new, |c| c.stop.clone());
    let report = Bell::new();
    let compacted = Bell::new();
    let _signals = (
        stop.on_signals(&[signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])
            .map_err(ServeError::Signals)?,
        report
            .on_signals(&[signal_hook::consts::SIGUSR1])
            .map_err(ServeError::Signals)?,
    );
    let interface = options.interface.clone();
    let link = Link::read(&options.sys, &interface).map_err(|source| ServeError::Link {
        interface: interface.clone(),
        source,
    })?;
    let config = config.clone();
    let server_ip = config.server_ip;
    let now = Timestamp::now();
    let opened = JournalFile::open(&options.journal, now.0 / 1000)?;
    let mut server = Server::new(config);
    let replayed = opened.records.len();
    server.restore(opened.records, now);
    let open_error = |which| {
        let interface = interface.clone();
        move |source| ServeError::OpenSocket {
            which,
            interface,
            source,
        }
    };
    let receive = sockets::receive_socket(&interface).map_err(open_error("receive"))?;
    let send = FrameSender::open(&link).map_err(open_error("send"))?;
    let mut journal = opened.journal;
    journal.ring_when_compacted(compacted.clone());
    let mut daemon = Daemon {
        server,
        journal,
        receive,
        send,
        server_ip,
        interface: interface.clone(),
        out,
        hook,
        durable: Vec::new(),
        log_limit: crate::log_limit::LogLimit::new(Instant::now()),
        send_errors: 0,
    };
    let leases = daemon.server.leases().count();
    emit(
        daemon.out,
        Kind::Ready(Ready::Dhcp {
            interface: interface.to_string(),
            server: server_ip,
            journal: options.journal.clone(),
            records_replayed: replayed as u64,
            leases: leases as u64,
            ignored_bytes: opened.ignored_bytes as u64,
            damaged_copy: opened.damaged_copy,
        }),
    );
    let _ = daemon.out.flush();

    let mut buf = vec![0u8; 2048];
    let wait_error = |source| ServeError::Wait {
        interface: interface.clone(),
        source,
    };
    // Whether the counters changed since they were last published, and
    // when that was.
    let mut unpublished = false;
    let mut published = Instant::now();
    if let Some(control) = &control {
        control.publish(daemon.counters());
    }
    loop {
        let publish_at = (unpublished && control.is_some()).then_some(published + PUBLISH_EVERY);
        let deadline = [daemon.next_timer(), publish_at]
            .into_iter()
            .flatten()
            .min();
        let fds = [
            daemon.receive.as_fd(),
            report.fd().map_err(wait_error)?,
            compacted.fd().map_err(wait_error)?,
        ];
        let Some(ready) = stop.wait_any(&fds, deadline).map_err(wait_error)? else {
            break;
        };
        if ready.is_ready(0) {
            daemon.receive_batch(&mut buf)?;
            daemon.commit();
            unpublished = true;
        }
        unpublished |= daemon.timers();
        compacted.take();
        daemon.compact()?;
        if report.take() {
            let counters = daemon.counters();
            emit(daemon.out, Kind::Counters { counters });
        }
        if let Some(control) = control
            .as_ref()
            .filter(|_| unpublished && published.elapsed() >= PUBLISH_EVERY)
        {
            control.publish(daemon.counters());
            published = Instant::now();
            unpublished = false;
        }
    }
    daemon.commit();
    let counters = daemon.counters();
    if let Some(control) = &control {
        control.publish(counters.clone());
    }
    emit(daemon.out, Kind::Stopped { counters });
    Ok(())
}
