//! Runs the DNS engine (`netvm-dns`) on the Net VM's internal addresses,
//! IPv4 and (when the plan has one) IPv6: UDP and TCP port 53, bound to
//! the internal interface (`SO_BINDTODEVICE`) so that queries arriving
//! from the uplink never reach it; each upstream question on a fresh
//! socket of the upstream's family with a random port, connected to its
//! upstream; host names from DHCP and DHCPv6 leases while they live
//! ([`Names`], fed by the agent's DHCP hooks, or by following the lease
//! journal when the server runs alone); upstreams of both families
//! learned on the uplink ([`Upstreams`]).
//!
//! One thread, one tokio current-thread runtime: the engine is not shared
//! across threads. UDP is read and written in batches (`mmsg`), the only
//! unsafe code of the crate. Events are JSON lines on stdout
//! ([`netvm_events::Event`]): `ready`, `dns_upstreams`, `counters` on
//! SIGUSR1, `stopped` on SIGTERM or SIGINT. Nothing runs on a timer
//! while nothing happens: names, learned upstreams and the supervisor's
//! stop wake the server when they change, and counters are published to
//! the supervisor (at most once a second) only after queries.

mod leases;
mod mmsg;
mod tcp;

pub use leases::Names;

use netvm_description::values::IfName;
use netvm_dns::{Client, Config, Engine, Step, Transport, Zone};
use netvm_events::{Kind, Ready};
use netvm_plan::DnsPlan;
use netvm_runtime::PartControl;
use socket2::{Domain, Protocol, Socket, Type};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::{watch, Notify};

/// How long an upstream has to answer before the next one is asked.
const UPSTREAM_TIMEOUT: Duration = Duration::from_millis(1500);

/// How to run the server.
#[derive(Debug, Clone)]
pub struct DnsOptions {
    /// The internal interface: the only one served.
    pub interface: IfName,
    /// Upstreams to use instead of the description's.
    pub upstreams: Vec<SocketAddr>,
    /// A DHCP lease journal to follow for host names (when the DHCP
    /// server runs in another process), if any.
    pub leases: Option<PathBuf>,
    /// Host names fed by whoever runs the DHCP server, if any.
    pub names: Option<Names>,
    /// Upstreams learned at run time (on the uplink); when it holds any,
    /// they replace the others.
    pub learned_upstreams: Option<Upstreams>,
    /// Set by a supervisor (the agent) to stop the server and read its
    /// counters; signals stop it too.
    pub control: Option<PartControl>,
}

/// Upstreams learned at run time, shared between whoever learns them and
/// the DNS server, which they wake when they change (clones share them).
///
/// IPv6 upstreams are asked over IPv6, in the order given among the IPv4
/// ones. A link-local one (an RDNSS `fe80::…`) needs its scope: the
/// uplink's interface index in the `SocketAddrV6`, set by whoever learned
/// it (without, asking it fails and the next upstream is asked).
#[derive(Debug, Clone, Default)]
pub struct Upstreams(Arc<watch::Sender<Vec<SocketAddr>>>);

impl Upstreams {
    /// None learned yet.
    pub fn new() -> Upstreams {
        Upstreams::default()
    }

    /// Sets the learned upstreams, IPv4 and IPv6, in the order they are
    /// to be asked (none: keep using the others).
    pub fn set(&self, upstreams: Vec<SocketAddr>) {
        self.0.send_if_modified(|now| {
            let changed = *now != upstreams;
            *now = upstreams;
            changed
        });
    }
}

/// Why the server could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DnsError {
    /// The zone could not be built from the description.
    #[error("the internal zone")]
    Zone(#[from] netvm_dns::ZoneError),
    /// A socket could not be opened.
    #[error("cannot listen on {what} {address} on {interface}")]
    Listen {
        /// `UDP` or `TCP`.
        what: &'static str,
        /// The address.
        address: SocketAddr,
        /// The interface.
        interface: IfName,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The runtime could not start.
    #[error("cannot start the runtime")]
    Runtime(#[source] io::Error),
}

/// What the tasks share: the engine, the UDP sockets, the TCP writers.
pub(crate) struct Shared {
    engine: RefCell<Engine>,
    udp: UdpSocket,
    /// The IPv6 one, when the plan has an IPv6 address.
    udp6: Option<UdpSocket>,
    /// UDP replies waiting to go out in one `sendmmsg` per socket.
    outbox: RefCell<Vec<(SocketAddr, Vec<u8>)>>,
    tcp: RefCell<HashMap<u64, UnboundedSender<Vec<u8>>>>,
    /// The last TCP connection's number (both listeners count here).
    connections: Cell<u64>,
    started: Instant,
    /// Told whenever the counters may have changed.
    changed: Notify,
}

impl Shared {
    /// Milliseconds since start (the engine's clock).
    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Hands a query to the engine and carries out what it says.
    pub(crate) fn query(self: &Rc<Self>, client: Client, bytes: &[u8]) {
        self.changed.notify_one();
        let mut steps = Vec::new();
        self.engine
            .borrow_mut()
            .query(self.now(), client, bytes, &mut steps);
        self.perform(steps);
    }

    fn perform(self: &Rc<Self>, steps: Vec<Step>) {
        for step in steps {
            match step {
                Step::Reply { to, bytes } => self.send(to, bytes),
                Step::Ask {
                    token,
                    upstream,
                    bytes,
                } => {
                    let shared = Rc::clone(self);
                    tokio::task::spawn_local(async move {
                        let answer = ask(upstream, &bytes).await;
                        let mut steps = Vec::new();
                        match answer {
                            Ok(reply) => shared.engine.borrow_mut().upstream_reply(
                                shared.now(),
                                token,
                                &reply,
                                &mut steps,
                            ),
                            Err(_) => shared
                                .engine
                                .borrow_mut()
                                .upstream_failed(token, &mut steps),
                        }
                        shared.changed.notify_one();
                        shared.perform(steps);
                        shared.flush();
                    });
                }
            }
        }
    }

    fn send(&self, to: Client, bytes: Vec<u8>) {
        match to.transport {
            Transport::Udp => self.outbox.borrow_mut().push((to.addr, bytes)),
            Transport::Tcp(connection) => {
                if let Some(writer) = self.tcp.borrow().get(&connection) {
                    let _ = writer.send(bytes);
                }
            }
        }
    }
}

impl Shared {
    /// Sends the UDP replies waiting in the outbox, each from the socket
    /// of its family.
    pub(crate) fn flush(&self) {
        use std::os::fd::AsRawFd;
        let replies = std::mem::take(&mut *self.outbox.borrow_mut());
        if replies.is_empty() {
            return;
        }
        mmsg::send::<libc::sockaddr_in>(self.udp.as_raw_fd(), &replies);
        if let Some(udp6) = &self.udp6 {
            mmsg::send::<libc::sockaddr_in6>(udp6.as_raw_fd(), &replies);
        }
    }

    /// A number for a new TCP connection.
    pub(crate) fn next_connection(&self) -> u64 {
        let next = self.connections.get() + 1;
        self.connections.set(next);
        next
    }
}

/// One question to one upstream on a fresh socket of its family (a
/// random source port, and the connected address and port, which the
/// kernel holds every datagram to, filter out forged answers from
/// elsewhere, over IPv6 as over IPv4).
async fn ask(upstream: SocketAddr, bytes: &[u8]) -> io::Result<Vec<u8>> {
    let any = match upstream {
        SocketAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        SocketAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    };
    let socket = UdpSocket::bind(SocketAddr::new(any, 0)).await?;
    socket.connect(upstream).await?;
    socket.send(bytes).await?;
    let mut buf = vec![0u8; 65_535];
    let n = tokio::time::timeout(UPSTREAM_TIMEOUT, socket.recv(&mut buf))
        .await
        .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    buf.truncate(n);
    Ok(buf)
}

/// A socket on `address` that sees only `interface`. An IPv6 one is
/// IPv6 only (no IPv4-mapped clients) and may bind the address before
/// it is usable (`IPV6_FREEBIND`): the address is still tentative for
/// the second its duplicate detection takes after it is added.
fn socket_on(
    kind: Type,
    protocol: Protocol,
    address: SocketAddr,
    interface: &IfName,
) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(address), kind, Some(protocol))?;
    if address.is_ipv6() {
        socket.set_only_v6(true)?;
        socket.set_freebind_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind_device(Some(interface.as_str().as_bytes()))?;
    if kind == Type::DGRAM {
        socket.set_recv_buffer_size(4 << 20)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&address.into())?;
    Ok(socket)
}

/// The internal zone the plan describes: A and AAAA records, reverse
/// names of the subnet and of the IPv6 prefix, if any.
pub fn zone(plan: &DnsPlan) -> Result<Zone, netvm_dns::ZoneError> {
    let mut names: Vec<(String, IpAddr, bool)> = Vec::new();
    for n in &plan.names {
        names.push((n.name.to_string(), IpAddr::V4(n.ip), n.ptr));
        if let Some(ip6) = n.ip6 {
            names.push((n.name.to_string(), IpAddr::V6(ip6), n.ptr));
        }
    }
    let zone = Zone::new(
        plan.domain.as_str(),
        plan.subnet.network(),
        plan.subnet.prefix(),
        plan.server.as_str(),
        &names,
    )?;
    Ok(match plan.prefix6 {
        Some(prefix) => zone.with_prefix6(prefix.network(), prefix.prefix()),
        None => zone,
    })
}

fn event(kind: Kind) {
    netvm_runtime::emit_flushed(&mut io::stdout().lock(), &netvm_events::Event::new(kind));
}

/// The engine's counters as JSON (as `netvm status` shows them).
fn counters_json(shared: &Shared) -> serde_json::Value {
    serde_json::to_value(shared.engine.borrow().counters()).unwrap_or_default()
}

/// Serves DNS with `plan` (the plan's: `netvm_plan::datapath::NetVmPlan::dns`)
/// until SIGTERM or SIGINT.
pub fn serve(plan: &DnsPlan, options: DnsOptions) -> Result<(), DnsError> {
    let zone = zone(plan)?;
    let names = zone.len().0;
    let upstreams = if options.upstreams.is_empty() {
        plan.upstreams.iter().map(|u| SocketAddr::V4(u.0)).collect()
    } else {
        options.upstreams.clone()
    };
    let engine = Engine::new(
        zone,
        Config {
            upstreams: upstreams.clone(),
            cache_size: plan.cache_size as usize,
            client_rate: plan.client_rate,
            client_burst: plan.client_burst,
            max_inflight: plan.max_inflight as usize,
            seed: random_seed(),
        },
    );
    let address = SocketAddr::V4(SocketAddrV4::new(plan.listen, 53));
    let address6 = plan
        .listen6
        .map(|ip| SocketAddr::V6(SocketAddrV6::new(ip, 53, 0, 0)));
    let interface = options.interface.clone();
    let listen = |what: &'static str, kind: Type, protocol: Protocol, address: SocketAddr| {
        let open = || -> io::Result<Socket> {
            let socket = socket_on(kind, protocol, address, &interface)?;
            if kind == Type::STREAM {
                socket.listen(128)?;
            }
            Ok(socket)
        };
        open().map_err(|source| DnsError::Listen {
            what,
            address,
            interface: interface.clone(),
            source,
        })
    };
    let udp = listen("UDP", Type::DGRAM, Protocol::UDP, address)?;
    let tcp = listen("TCP", Type::STREAM, Protocol::TCP, address)?;
    let (udp6, tcp6) = match address6 {
        Some(address6) => (
            Some(listen("UDP", Type::DGRAM, Protocol::UDP, address6)?),
            Some(listen("TCP", Type::STREAM, Protocol::TCP, address6)?),
        ),
        None => (None, None),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(DnsError::Runtime)?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let udp = UdpSocket::from_std(udp.into()).map_err(DnsError::Runtime)?;
        let tcp = tokio::net::TcpListener::from_std(tcp.into()).map_err(DnsError::Runtime)?;
        let udp6 = udp6
            .map(|s| UdpSocket::from_std(s.into()))
            .transpose()
            .map_err(DnsError::Runtime)?;
        let tcp6 = tcp6
            .map(|s| tokio::net::TcpListener::from_std(s.into()))
            .transpose()
            .map_err(DnsError::Runtime)?;
        let shared = Rc::new(Shared {
            engine: RefCell::new(engine),
            udp,
            udp6,
            outbox: RefCell::new(Vec::new()),
            tcp: RefCell::new(HashMap::new()),
            connections: Cell::new(0),
            started: Instant::now(),
            changed: Notify::new(),
        });
        tokio::task::spawn_local(tcp::accept(Rc::clone(&shared), tcp));
        if let Some(tcp6) = tcp6 {
            tokio::task::spawn_local(tcp::accept(Rc::clone(&shared), tcp6));
        }
        let lease_names = options
            .names
            .clone()
            .or_else(|| options.leases.is_some().then(Names::new));
        if let Some(lease_names) = lease_names {
            if let Some(journal) = options.leases.clone() {
                tokio::task::spawn_local(leases::follow_journal(lease_names.clone(), journal));
            }
            tokio::task::spawn_local(leases::serve(Rc::clone(&shared), lease_names));
        }
        if let Some(learned) = options.learned_upstreams.clone() {
            tokio::task::spawn_local(follow_upstreams(Rc::clone(&shared), learned));
        }
        event(Kind::Ready(Ready::Dns {
            listen: address.to_string(),
            interface: interface.to_string(),
            upstreams: upstreams.iter().map(ToString::to_string).collect(),
            names: names as u64,
        }));
        run(shared, options.control).await
    })
}

/// Takes the upstreams learned on the uplink whenever they change.
async fn follow_upstreams(shared: Rc<Shared>, learned: Upstreams) {
    let mut current: Vec<SocketAddr> = Vec::new();
    let mut changes = learned.0.subscribe();
    // The first value counts as a change.
    changes.mark_changed();
    while changes.changed().await.is_ok() {
        let now = changes.borrow_and_update().clone();
        if !now.is_empty() && now != current {
            shared.engine.borrow_mut().set_upstreams(now.clone());
            event(Kind::DnsUpstreams {
                upstreams: now.iter().map(ToString::to_string).collect(),
            });
            current = now;
        }
    }
}

/// A seed from the kernel's random pool, or the clock if unreadable.
fn random_seed() -> u64 {
    use std::io::Read;
    let mut bytes = [0u8; 8];
    match std::fs::File::open("/dev/urandom").and_then(|mut f| f.read_exact(&mut bytes)) {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    }
}

/// Answers what is queued on `socket`, a batch per system call, before
/// waiting again; each batch's replies leave together.
fn drain<A: mmsg::RawAddr>(shared: &Rc<Shared>, socket: &UdpSocket, inbox: &mut mmsg::Inbox<A>) {
    use std::os::fd::AsRawFd;
    let fd = socket.as_raw_fd();
    while let Ok(n) = socket.try_io(tokio::io::Interest::READABLE, || inbox.receive(fd)) {
        for i in 0..n {
            let (bytes, addr) = inbox.get(i);
            shared.query(
                Client {
                    addr,
                    transport: Transport::Udp,
                },
                bytes,
            );
        }
        shared.flush();
        if n < mmsg::BATCH {
            break;
        }
    }
}

/// Waits until `socket` is readable; forever without one.
async fn readable(socket: Option<&UdpSocket>) -> io::Result<()> {
    match socket {
        Some(socket) => socket.readable().await,
        None => std::future::pending().await,
    }
}

/// The supervisor's counters are refreshed at most this often.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// The UDP loop, the signals, the supervisor's stop and its counters.
async fn run(shared: Rc<Shared>, control: Option<PartControl>) -> Result<(), DnsError> {
    use tokio::signal::unix::{signal, SignalKind};
    use tokio::time::Instant;
    let mut terminate = signal(SignalKind::terminate()).map_err(DnsError::Runtime)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DnsError::Runtime)?;
    let mut usr1 = signal(SignalKind::user_defined1()).map_err(DnsError::Runtime)?;
    let mut inbox = mmsg::Inbox::<libc::sockaddr_in>::new();
    let mut inbox6 = mmsg::Inbox::<libc::sockaddr_in6>::new();
    let publish = |control: &PartControl| {
        let counters = shared.engine.borrow().counters();
        control.publish(serde_json::to_value(counters).unwrap_or_default());
    };
    let stopped = async {
        match &control {
            Some(control) => control.stop.stopped().await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stopped);
    if let Some(control) = &control {
        publish(control);
    }
    let mut published = Instant::now();
    // When the counters changed since they were published: publish then,
    // or a second after the last time.
    let mut publish_at: Option<Instant> = None;
    loop {
        tokio::select! {
            result = &mut stopped => {
                result.map_err(DnsError::Runtime)?;
                break;
            }
            _ = shared.changed.notified(), if control.is_some() && publish_at.is_none() => {
                publish_at = Some((published + PUBLISH_EVERY).max(Instant::now()));
            }
            _ = tokio::time::sleep_until(publish_at.unwrap_or_else(Instant::now)), if publish_at.is_some() => {
                if let Some(control) = &control {
                    publish(control);
                }
                published = Instant::now();
                publish_at = None;
            }
            ready = shared.udp.readable() => {
                ready.map_err(DnsError::Runtime)?;
                drain(&shared, &shared.udp, &mut inbox);
            }
            ready = readable(shared.udp6.as_ref()) => {
                ready.map_err(DnsError::Runtime)?;
                if let Some(udp6) = &shared.udp6 {
                    drain(&shared, udp6, &mut inbox6);
                }
            }
            _ = usr1.recv() => {
                event(Kind::Counters { counters: counters_json(&shared) });
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    if let Some(control) = &control {
        publish(control);
    }
    event(Kind::Stopped {
        counters: counters_json(&shared),
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::{Name, RecordType};
    use netvm_dns::Lookup;

    #[test]
    fn the_plans_zone_has_aaaa_and_ip6_arpa_names_when_ipv6_is_on() {
        let text = "[network]\nipv6_prefix = \"fd12:3456:789a::/64\"\n\
            [netvm.uplink]\ninterface = \"eth0\"\n[[vm]]\nname = \"a\"\nip = \"192.168.100.10\"\n";
        let system = netvm_description::parse("t.toml", text, netvm_description::Format::Toml)
            .expect("valid");
        let name = |text: &str| Name::from_ascii(text).expect("name");
        let zone = zone(&netvm_plan::plan(&system).dns).expect("zone");
        assert!(matches!(
            zone.lookup(&name("a.internal."), RecordType::AAAA),
            Lookup::Answer(_)
        ));
        let reverse = "a.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.a.9.8.7.6.5.4.3.2.1.d.f.ip6.arpa.";
        assert!(matches!(
            zone.lookup(&name(reverse), RecordType::PTR),
            Lookup::Answer(_)
        ));
        let off = netvm_plan::dns_plan(&system, None);
        let zone = super::zone(&off).expect("zone");
        assert_eq!(
            zone.lookup(&name(reverse), RecordType::PTR),
            Lookup::NotOurs
        );
        assert_eq!(
            zone.lookup(&name("a.internal."), RecordType::AAAA),
            Lookup::NoData
        );
    }
}
