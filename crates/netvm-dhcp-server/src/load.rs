//! A DHCP load generator for tests and benchmarks: many simulated clients
//! (distinct MACs) each run DISCOVER -> OFFER -> REQUEST -> ACK once, with
//! retransmission, at a bounded rate, and every ACK seen is written out
//! as a JSON line the moment it arrives. Requests carry the broadcast
//! flag, so one UDP socket on port 68 hears every reply.
//!
//! It only ever sends on the interface it is given, to the broadcast
//! address, for a bounded number of clients and a bounded time.

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use netvm_description::values::{IfName, MacAddr};
use serde::Serialize;
use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddrV4, UdpSocket};
use std::time::{Duration, Instant};

/// How to load a server.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Interface to send on.
    pub interface: IfName,
    /// Number of simulated clients.
    pub clients: u32,
    /// New exchanges started per second, at most.
    pub rate: u32,
    /// Give up after this long.
    pub duration: Duration,
    /// Distinguishes the MACs of separate runs (second and third octets).
    pub seed: u16,
}

/// What a load run saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadSummary {
    /// Messages sent (retransmissions included).
    pub sent: u64,
    /// Offers received.
    pub offers: u64,
    /// ACKs received.
    pub acks: u64,
    /// NAKs received.
    pub naks: u64,
    /// Retransmissions after a timeout.
    pub retransmissions: u64,
    /// Clients that finished with an ACK.
    pub bound: u32,
    /// From a client's first REQUEST to its ACK, microseconds: mean.
    pub ack_latency_us_avg: u64,
    /// The same, median.
    pub ack_latency_us_p50: u64,
    /// The same, 99th percentile.
    pub ack_latency_us_p99: u64,
    /// The same, the longest.
    pub ack_latency_us_max: u64,
}

impl LoadSummary {
    /// Fills the ACK latency figures from `latencies` (microseconds).
    fn latencies(&mut self, mut latencies: Vec<u64>) {
        if latencies.is_empty() {
            return;
        }
        latencies.sort_unstable();
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        self.ack_latency_us_avg = latencies.iter().sum::<u64>() / latencies.len() as u64;
        self.ack_latency_us_p50 = at(0.5);
        self.ack_latency_us_p99 = at(0.99);
        self.ack_latency_us_max = at(1.0);
    }
}

#[derive(Debug, Clone, Copy)]
enum Phase {
    Discovering,
    Requesting { ip: Ipv4Addr, server: Ipv4Addr },
    Bound,
}

struct Client {
    mac: MacAddr,
    xid: u32,
    phase: Phase,
    deadline: Instant,
    tries: u32,
    /// When its first REQUEST for the current offer left.
    requested: Option<Instant>,
}

/// One ACK as written to the output.
#[derive(Debug, Serialize)]
struct AckLine {
    mac: String,
    ip: Ipv4Addr,
}

const RETRANSMIT: Duration = Duration::from_millis(800);

fn mac_of(seed: u16, i: u32) -> MacAddr {
    let [s0, s1] = seed.to_be_bytes();
    let [_, a, b, c] = i.to_be_bytes();
    MacAddr([0x02, s0, s1, a, b, c])
}

fn message(client: &Client) -> Vec<u8> {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_xid(client.xid)
        .set_flags(Flags::default().set_broadcast())
        .set_chaddr(&client.mac.0);
    let opts = m.opts_mut();
    match client.phase {
        Phase::Discovering | Phase::Bound => {
            opts.insert(DhcpOption::MessageType(MessageType::Discover));
        }
        Phase::Requesting { ip, server } => {
            opts.insert(DhcpOption::MessageType(MessageType::Request));
            opts.insert(DhcpOption::RequestedIpAddress(ip));
            opts.insert(DhcpOption::ServerIdentifier(server));
        }
    }
    let mut out = Vec::with_capacity(300);
    // Encoding a message we built ourselves cannot fail.
    let _ = m.encode(&mut Encoder::new(&mut out));
    out
}

fn socket(interface: &IfName) -> io::Result<UdpSocket> {
    let socket = netvm_runtime::udp_on(interface, 68)?;
    socket.set_read_timeout(Some(Duration::from_millis(5)))?;
    Ok(socket)
}

/// Runs the load; writes one JSON line per ACK to `acks`.
pub fn run(options: &LoadOptions, acks: &mut dyn Write) -> io::Result<LoadSummary> {
    let socket = socket(&options.interface)?;
    let server = SocketAddrV4::new(Ipv4Addr::BROADCAST, 67);
    let start = Instant::now();
    let mut summary = LoadSummary::default();
    let mut clients: Vec<Client> = Vec::new();
    let mut by_xid: HashMap<u32, usize> = HashMap::new();
    let mut buf = [0u8; 1500];
    let mut latencies: Vec<u64> = Vec::new();
    let rate = f64::from(options.rate.max(1));

    while start.elapsed() < options.duration {
        // Start new clients at the configured rate.
        let due = (start.elapsed().as_secs_f64() * rate) as u32;
        while (clients.len() as u32) < due.min(options.clients) {
            let i = clients.len() as u32;
            let client = Client {
                mac: mac_of(options.seed, i),
                xid: (u32::from(options.seed) << 20) ^ i,
                phase: Phase::Discovering,
                deadline: Instant::now() + RETRANSMIT,
                tries: 1,
                requested: None,
            };
            socket.send_to(&message(&client), server)?;
            summary.sent += 1;
            by_xid.insert(client.xid, clients.len());
            clients.push(client);
        }
        // Replies.
        loop {
            let n = match socket.recv(&mut buf) {
                Ok(n) => n,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    break
                }
                Err(e) => return Err(e),
            };
            let Ok(reply) = Message::decode(&mut Decoder::new(&buf[..n])) else {
                continue;
            };
            let Some(&index) = by_xid.get(&reply.xid()) else {
                continue;
            };
            let client = &mut clients[index];
            match (reply.opts().msg_type(), client.phase) {
                (Some(MessageType::Offer), Phase::Discovering) => {
                    summary.offers += 1;
                    let server_id =
                        match reply.opts().get(dhcproto::v4::OptionCode::ServerIdentifier) {
                            Some(DhcpOption::ServerIdentifier(ip)) => *ip,
                            _ => continue,
                        };
                    client.phase = Phase::Requesting {
                        ip: reply.yiaddr(),
                        server: server_id,
                    };
                    client.deadline = Instant::now() + RETRANSMIT;
                    client.tries = 1;
                    client.requested = Some(Instant::now());
                    socket.send_to(&message(client), server)?;
                    summary.sent += 1;
                }
                (Some(MessageType::Ack), Phase::Requesting { ip, .. }) if reply.yiaddr() == ip => {
                    summary.acks += 1;
                    summary.bound += 1;
                    client.phase = Phase::Bound;
                    if let Some(requested) = client.requested {
                        latencies.push(requested.elapsed().as_micros() as u64);
                    }
                    let line = AckLine {
                        mac: client.mac.to_string(),
                        ip,
                    };
                    writeln!(acks, "{}", serde_json::to_string(&line).unwrap_or_default())?;
                    acks.flush()?;
                }
                (Some(MessageType::Nak), _) => {
                    summary.naks += 1;
                    client.phase = Phase::Discovering;
                    client.deadline = Instant::now();
                }
                _ => {}
            }
        }
        // Retransmissions; after three, start over.
        let now = Instant::now();
        for client in clients
            .iter_mut()
            .filter(|c| !matches!(c.phase, Phase::Bound) && c.deadline <= now)
        {
            if client.tries >= 3 {
                client.phase = Phase::Discovering;
                client.tries = 0;
            }
            client.tries += 1;
            client.deadline = now + RETRANSMIT;
            socket.send_to(&message(client), server)?;
            summary.sent += 1;
            summary.retransmissions += 1;
        }
        if summary.bound == options.clients {
            break;
        }
    }
    summary.latencies(latencies);
    Ok(summary)
}
