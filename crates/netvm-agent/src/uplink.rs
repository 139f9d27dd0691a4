//! Runs the uplink DHCP client (`netvm-uplink`) on an interface: a UDP
//! socket on port 68 that sees only that interface (`SO_BINDTODEVICE`;
//! the client asks for broadcast replies while it has no address), the
//! client's timers, and each lease applied with `netvm_apply::set_uplink`.
//! Events are JSON lines ([`netvm_events::Event`]): `uplink_bound`
//! (address, prefix, router, DNS servers, lease times), `uplink_lost`,
//! `uplink_stopped`.

use netvm_description::values::IfName;
use netvm_events::{Event, Kind};
use netvm_runtime::{Stop, Wake};
use netvm_uplink::{Action, Client, Lease};
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

/// Why the client stopped.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    /// The interface's MAC could not be read.
    #[error("cannot read the MAC of {interface} from sysfs")]
    Mac {
        /// The interface.
        interface: IfName,
        /// Why.
        #[source]
        source: netvm_runtime::LinkError,
    },
    /// The socket could not be opened or used.
    #[error("DHCP client socket on {interface}")]
    Socket {
        /// The interface.
        interface: IfName,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A lease could not be put on (or taken off) the interface.
    #[error(transparent)]
    Apply(#[from] netvm_apply::LinkError),
}

/// The DHCP client's socket: UDP port 68 on the uplink only,
/// non-blocking (the loop waits for it with its stop and its timer).
fn socket(interface: &IfName) -> io::Result<UdpSocket> {
    let socket = netvm_runtime::udp_on(interface, 68)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// Runs the client on `interface` until `stop` is stopped, writing
/// events to `events`. Between messages it sleeps until a reply, the
/// stop, or the client's next timer ([`Client::due`]). The lease is left on the interface when it stops (the data
/// plane keeps working across a restart; a new client asks for it again).
pub fn run(
    interface: &IfName,
    stop: &Stop,
    events: &mut dyn Write,
    on_lease: &mut dyn FnMut(Option<&Lease>),
) -> Result<(), UplinkError> {
    run_at(interface, 0, stop, events, on_lease)
}

/// [`run`], with the lease's default route at `metric` (several uplinks:
/// each has its own; the agent moves the metric-0 one). `on_lease` is
/// told of a lease once it is on the interface.
pub fn run_at(
    interface: &IfName,
    metric: u32,
    stop: &Stop,
    events: &mut dyn Write,
    on_lease: &mut dyn FnMut(Option<&Lease>),
) -> Result<(), UplinkError> {
    let mac = netvm_runtime::Link::read(Path::new("/sys"), interface)
        .map_err(|source| UplinkError::Mac {
            interface: interface.clone(),
            source,
        })?
        .mac
        .0;
    let socket_error = |source| UplinkError::Socket {
        interface: interface.clone(),
        source,
    };
    let socket = socket(interface).map_err(socket_error)?;
    let started = Instant::now();
    let now = || u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut client = Client::new(mac, seed());
    let mut actions = client.start(now());
    let mut buf = [0u8; 1500];
    loop {
        for action in actions.drain(..) {
            let told = match &action {
                Action::Configure(lease) => Some(Some(lease.clone())),
                Action::Deconfigure => Some(None),
                _ => None,
            };
            perform(interface, metric, &socket, action, events)?;
            if let Some(lease) = told {
                on_lease(lease.as_ref());
            }
        }
        // A time too far to represent is no deadline.
        let due = started.checked_add(Duration::from_millis(client.due()));
        match stop.wait_for(socket.as_fd(), due).map_err(socket_error)? {
            Wake::Stopped => break,
            Wake::Ready => match socket.recv(&mut buf) {
                Ok(n) => actions.extend(client.handle(now(), &buf[..n])),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(socket_error(e)),
            },
            Wake::Deadline => {}
        }
        actions.extend(client.poll(now()));
    }
    event(
        events,
        Kind::UplinkStopped {
            uplink: interface.to_string(),
        },
    );
    Ok(())
}

fn perform(
    interface: &IfName,
    metric: u32,
    socket: &UdpSocket,
    action: Action,
    events: &mut dyn Write,
) -> Result<(), UplinkError> {
    let send = |bytes: &[u8], to: Ipv4Addr| {
        // A send that fails (no route yet, a full buffer) is retried by
        // the client's own retransmission.
        let _ = socket.send_to(bytes, SocketAddrV4::new(to, 67));
    };
    match action {
        Action::Broadcast(bytes) => send(&bytes, Ipv4Addr::BROADCAST),
        Action::Unicast { server, bytes } => send(&bytes, server),
        Action::Configure(lease) => {
            netvm_apply::set_uplink_at(
                interface.as_str(),
                Some((lease.address, lease.prefix)),
                lease.router,
                metric,
            )?;
            event(
                events,
                Kind::UplinkBound {
                    uplink: interface.to_string(),
                    lease,
                },
            );
        }
        Action::Deconfigure => {
            netvm_apply::set_uplink(interface.as_str(), None, None)?;
            event(
                events,
                Kind::UplinkLost {
                    uplink: interface.to_string(),
                },
            );
        }
    }
    Ok(())
}

fn event(events: &mut dyn Write, kind: Kind) {
    let _ = writeln!(events, "{}", Event::new(kind).to_line());
    let _ = events.flush();
}

/// A stop handle stopped by SIGTERM and SIGINT, for the rest of the
/// process's life.
pub fn stop_on_signals() -> io::Result<Stop> {
    let stop = Stop::new();
    stop.on_signals(&[signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT])?
        .keep();
    Ok(stop)
}
