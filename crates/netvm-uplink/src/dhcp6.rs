//! Runs the uplink's DHCPv6 client ([`netvm_dhcp6::client`]) on an
//! interface: one UDP socket on `[::]:546` that sees only that interface
//! (`SO_BINDTODEVICE`), every message to `[ff02::1:2]:547` scoped to it,
//! and one thread that sleeps in `poll(2)` on the socket, the stop handle
//! and the client's next deadline. Each change of lease goes to a
//! callback; on stop the lease is released (and reported gone).
//!
//! It configures nothing itself: [`uplink_changes`] says what a lease
//! change means for the uplink (the IA_NA address as a /128; the
//! delegated prefix is only reported, the planner routes it inside).

use netvm_description::values::IfName;
use netvm_dhcp6::client::{Action, Client, Millis, Phase, CLIENT_PORT, SERVERS, SERVER_PORT};
use netvm_dhcp6::Lease6;
use netvm_runtime::{Link, Stop, Wake};
use socket2::{Domain, Protocol, Socket, Type};
use std::io;
use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, UdpSocket};
use std::os::fd::AsFd;
use std::time::{Duration, Instant};

/// How long a stopping client waits for the server to acknowledge its
/// Release before it ends anyway (RFC 8415 would retry for ~15 s; a
/// stopping agent should not hang that long, and the lease ends by
/// itself).
const RELEASE_WAIT: Duration = Duration::from_secs(2);

/// What the client runs on.
#[derive(Debug, Clone)]
pub struct Dhcp6Config {
    /// The uplink.
    pub interface: IfName,
    /// Its index (the scope of `ff02::1:2`) and MAC (our DUID-LL), as
    /// [`Link::read`] gives them.
    pub link: Link,
    /// Ask for an address (IA_NA) too: the uplink's RAs have the M flag.
    pub want_address: bool,
}

/// Why the client stopped other than being asked to.
#[derive(Debug, thiserror::Error)]
pub enum Dhcp6Error {
    /// The socket could not be opened.
    #[error("cannot open the DHCPv6 client socket on {interface}")]
    Open {
        /// The uplink.
        interface: IfName,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Waiting on or reading the socket failed.
    #[error("DHCPv6 client socket on {interface}")]
    Socket {
        /// The uplink.
        interface: IfName,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// The client's socket: UDP `[::]:546` on the uplink only, non-blocking,
/// multicast leaving through the uplink with a hop limit of 1.
fn socket(interface: &IfName, index: u32) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::IPV6, Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_only_v6(true)?;
    socket.set_reuse_address(true)?;
    socket.bind_device(Some(interface.as_str().as_bytes()))?;
    socket.set_multicast_if_v6(index)?;
    socket.set_multicast_hops_v6(1)?;
    socket.set_nonblocking(true)?;
    socket.bind(&SocketAddrV6::new(Ipv6Addr::UNSPECIFIED, CLIENT_PORT, 0, 0).into())?;
    Ok(socket.into())
}

fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    nanos ^ (u64::from(std::process::id()) << 32)
}

/// The loop's state: the client, its socket and its clock.
struct Driver<'a> {
    config: &'a Dhcp6Config,
    socket: UdpSocket,
    client: Client,
    started: Instant,
    buf: Vec<u8>,
}

impl Driver<'_> {
    fn now(&self) -> Millis {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn deadline(&self) -> Option<Instant> {
        // A time too far to represent is no deadline.
        self.client
            .next_deadline()
            .and_then(|ms| self.started.checked_add(Duration::from_millis(ms)))
    }

    fn socket_error(&self, source: io::Error) -> Dhcp6Error {
        Dhcp6Error::Socket {
            interface: self.config.interface.clone(),
            source,
        }
    }

    fn perform(&self, actions: Vec<Action>, on_lease: &mut dyn FnMut(Option<&Lease6>)) {
        let to = SocketAddrV6::new(
            SERVERS,
            SERVER_PORT,
            0,
            u32::try_from(self.config.link.index).unwrap_or(0),
        );
        for action in actions {
            match action {
                // A send that fails (no link-local address yet, a full
                // buffer) is retried by the client's own retransmission.
                Action::Send(bytes) => {
                    let _ = self.socket.send_to(&bytes, to);
                }
                Action::Bound(lease) => on_lease(Some(&lease)),
                Action::Lost => on_lease(None),
            }
        }
    }

    /// Hands every datagram waiting from a server port to the client.
    fn receive(&mut self) -> Result<Vec<Action>, Dhcp6Error> {
        let mut actions = Vec::new();
        loop {
            match self.socket.recv_from(&mut self.buf) {
                Ok((n, SocketAddr::V6(from))) if from.port() == SERVER_PORT => {
                    let now = self.now();
                    actions.extend(self.client.handle(now, &self.buf[..n]));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(actions),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(self.socket_error(e)),
            }
        }
    }
}

/// Runs the client until `stop` is stopped, then releases what it holds
/// (waiting up to [`RELEASE_WAIT`] for the server's Reply). `on_lease`
/// hears each change: `Some` for a new, renewed or partly expired lease
/// (lifetimes counted from that moment), `None` when nothing is held any
/// more (expired, withdrawn, released). Between messages the thread
/// sleeps until a datagram, the stop, or the client's next timer.
pub fn run(
    config: &Dhcp6Config,
    stop: &Stop,
    on_lease: &mut dyn FnMut(Option<&Lease6>),
) -> Result<(), Dhcp6Error> {
    let index = u32::try_from(config.link.index).unwrap_or(0);
    let socket = socket(&config.interface, index).map_err(|source| Dhcp6Error::Open {
        interface: config.interface.clone(),
        source,
    })?;
    let mut d = Driver {
        config,
        socket,
        client: Client::new(config.link.mac.0, config.want_address, seed()),
        started: Instant::now(),
        buf: vec![0; 65_536],
    };
    d.client.start(d.now());
    let mut actions = Vec::new();
    loop {
        d.perform(std::mem::take(&mut actions), on_lease);
        let wake = stop
            .wait_for(d.socket.as_fd(), d.deadline())
            .map_err(|e| d.socket_error(e))?;
        match wake {
            Wake::Stopped => break,
            Wake::Ready => actions.extend(d.receive()?),
            Wake::Deadline => {}
        }
        let now = d.now();
        actions.extend(d.client.poll(now));
    }
    let now = d.now();
    let actions = d.client.release(now);
    d.perform(actions, on_lease);
    let give_up = Instant::now() + RELEASE_WAIT;
    while d.client.phase() != Phase::Idle && Instant::now() < give_up {
        let until = d.deadline().map_or(give_up, |at| at.min(give_up));
        let ready =
            netvm_runtime::wait(&[d.socket.as_fd()], Some(until)).map_err(|e| d.socket_error(e))?;
        let mut actions = if ready.is_none() {
            Vec::new()
        } else {
            d.receive()?
        };
        let now = d.now();
        actions.extend(d.client.poll(now));
        d.perform(actions, on_lease);
    }
    Ok(())
}

/// One change to the uplink's addresses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UplinkChange6 {
    /// Put (or refresh) `address/128` with these lifetimes: equivalent to
    /// `ip -6 addr replace <address>/128 dev <uplink> preferred_lft <p>
    /// valid_lft <v>`.
    Put {
        /// The IA_NA address.
        address: Ipv6Addr,
        /// Preferred lifetime, seconds.
        preferred: u32,
        /// Valid lifetime, seconds.
        valid: u32,
    },
    /// Take `address/128` off: `ip -6 addr del <address>/128 dev <uplink>`.
    Remove {
        /// The address no longer held.
        address: Ipv6Addr,
    },
}

/// What going from lease `before` to lease `after` (as [`run`] reports
/// them) means for the uplink's addresses: the old IA_NA address off
/// when it changed or went, the current one put with its lifetimes. The
/// delegated prefix changes nothing on the uplink.
pub fn uplink_changes(before: Option<&Lease6>, after: Option<&Lease6>) -> Vec<UplinkChange6> {
    let old = before.and_then(|l| l.address.as_ref()).map(|a| a.address);
    let new = after.and_then(|l| l.address.as_ref());
    let mut changes = Vec::new();
    if let Some(address) = old.filter(|o| new.map(|n| n.address) != Some(*o)) {
        changes.push(UplinkChange6::Remove { address });
    }
    if let Some(a) = new {
        changes.push(UplinkChange6::Put {
            address: a.address,
            preferred: a.preferred,
            valid: a.valid,
        });
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;
    use netvm_dhcp6::{Address6, Prefix6};

    fn lease(address: Option<&str>) -> Lease6 {
        Lease6 {
            address: address.map(|a| Address6 {
                address: a.parse().expect("an address"),
                preferred: 30,
                valid: 60,
            }),
            prefix: Some(Prefix6 {
                prefix: "2001:db8:8000::".parse().expect("a prefix"),
                len: 56,
                preferred: 30,
                valid: 60,
            }),
            dns: Vec::new(),
            search: Vec::new(),
            server_id: vec![0, 2, 1],
            t1: 15,
            t2: 24,
        }
    }

    #[test]
    fn the_address_is_put_replaced_and_removed_the_prefix_is_not_applied() {
        let a = lease(Some("2001:db8:1::100"));
        let b = lease(Some("2001:db8:1::101"));
        let put = |s: &str| UplinkChange6::Put {
            address: s.parse().expect("an address"),
            preferred: 30,
            valid: 60,
        };
        let remove = |s: &str| UplinkChange6::Remove {
            address: s.parse().expect("an address"),
        };
        assert_eq!(uplink_changes(None, Some(&a)), [put("2001:db8:1::100")]);
        assert_eq!(uplink_changes(Some(&a), Some(&a)), [put("2001:db8:1::100")]);
        assert_eq!(
            uplink_changes(Some(&a), Some(&b)),
            [remove("2001:db8:1::100"), put("2001:db8:1::101")]
        );
        assert_eq!(uplink_changes(Some(&a), None), [remove("2001:db8:1::100")]);
        let pd_only = lease(None);
        assert!(uplink_changes(None, Some(&pd_only)).is_empty());
        assert_eq!(
            uplink_changes(Some(&a), Some(&pd_only)),
            [remove("2001:db8:1::100")]
        );
    }
}
