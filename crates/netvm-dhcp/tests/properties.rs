//! Property tests: random sequences of client actions, expiries, journal
//! compactions and restarts never give one address to two clients and
//! never lose an acknowledged lease; random bytes never panic the server.

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use netvm_description::{parse, Format};
use netvm_dhcp::journal::{self, HEADER};
use netvm_dhcp::{ClientKey, Record, ReplyKind, Server, ServerConfig, Timestamp};
use proptest::prelude::*;
use std::collections::HashMap;
use std::net::Ipv4Addr;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 1);

fn config() -> ServerConfig {
    let text = "[netvm.uplink]\ninterface = \"eth0\"\n\
        [[vm]]\nname = \"r\"\nmac = \"02:00:00:00:00:00\"\n\
        [dhcp]\npool = \"192.168.100.200-192.168.100.205\"\nlease_time = \"2m\"\n\
        [dhcp.limits]\nper_mac_rate = 1000\nper_mac_burst = 1000\n";
    ServerConfig::from_system(&parse("p.toml", text, Format::Toml).expect("valid"))
}

#[derive(Debug, Clone)]
enum Action {
    Discover(u8),
    Select(u8),
    InitReboot(u8, u8),
    Renew(u8),
    Release(u8),
    Decline(u8),
    Wait(u16),
    Compact,
    Restart,
}

fn action() -> impl Strategy<Value = Action> {
    // Client 0 has the reservation; 1-9 share a pool of six addresses.
    let client = 0u8..10;
    prop_oneof![
        3 => client.clone().prop_map(Action::Discover),
        3 => client.clone().prop_map(Action::Select),
        1 => (client.clone(), 195u8..210).prop_map(|(c, ip)| Action::InitReboot(c, ip)),
        2 => client.clone().prop_map(Action::Renew),
        1 => client.clone().prop_map(Action::Release),
        1 => client.prop_map(Action::Decline),
        2 => (1u16..200).prop_map(Action::Wait),
        1 => Just(Action::Compact),
        1 => Just(Action::Restart),
    ]
}

fn message(kind: MessageType, client: u8) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_xid(u32::from(client))
        .set_chaddr(&[2, 0, 0, 0, 0, client]);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m
}

fn bytes(m: &Message) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut Encoder::new(&mut out)).expect("encode");
    out
}

/// What a client believes it holds: the address and the lease end from
/// the last ACK it saw.
type Held = HashMap<u8, (Ipv4Addr, Timestamp)>;

struct World {
    server: Server,
    journal: Vec<u8>,
    now: Timestamp,
    offered: HashMap<u8, Ipv4Addr>,
    held: Held,
}

impl World {
    fn send(&mut self, client: u8, m: &Message) -> Option<Message> {
        let outcome = self.server.handle(self.now, &bytes(m));
        // Durable before the reply leaves.
        if let Some(record) = &outcome.record {
            record.encode(&mut self.journal);
        }
        let reply = outcome.reply?;
        let decoded = Message::decode(&mut Decoder::new(&reply.bytes)).expect("decodable");
        match reply.kind {
            ReplyKind::Ack if !decoded.yiaddr().is_unspecified() => {
                let lease = self.server.config().lease_secs;
                self.held
                    .insert(client, (decoded.yiaddr(), self.now.plus_secs(lease)));
            }
            ReplyKind::Nak => {
                self.held.remove(&client);
            }
            _ => {}
        }
        Some(decoded)
    }

    fn run(&mut self, action: &Action) {
        match *action {
            Action::Discover(c) => {
                if let Some(offer) = self.send(c, &message(MessageType::Discover, c)) {
                    self.offered.insert(c, offer.yiaddr());
                }
            }
            Action::Select(c) => {
                if let Some(ip) = self.offered.remove(&c) {
                    let mut m = message(MessageType::Request, c);
                    m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
                    m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
                    self.send(c, &m);
                }
            }
            Action::InitReboot(c, last) => {
                let mut m = message(MessageType::Request, c);
                m.opts_mut()
                    .insert(DhcpOption::RequestedIpAddress(Ipv4Addr::new(
                        192, 168, 100, last,
                    )));
                self.send(c, &m);
            }
            Action::Renew(c) => {
                if let Some(&(ip, _)) = self.held.get(&c) {
                    let mut m = message(MessageType::Request, c);
                    m.set_ciaddr(ip);
                    self.send(c, &m);
                }
            }
            Action::Release(c) => {
                if let Some((ip, _)) = self.held.remove(&c) {
                    let mut m = message(MessageType::Release, c);
                    m.set_ciaddr(ip);
                    m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
                    self.send(c, &m);
                }
            }
            Action::Decline(c) => {
                if let Some((ip, _)) = self.held.remove(&c) {
                    let mut m = message(MessageType::Decline, c);
                    m.opts_mut().insert(DhcpOption::RequestedIpAddress(ip));
                    m.opts_mut().insert(DhcpOption::ServerIdentifier(SERVER));
                    self.send(c, &m);
                }
            }
            Action::Wait(secs) => {
                self.now = self.now.plus_secs(u32::from(secs));
                self.server.poll(self.now);
            }
            Action::Compact => {
                let mut compacted = HEADER.to_vec();
                for record in self.server.snapshot() {
                    record.encode(&mut compacted);
                }
                self.journal = compacted;
            }
            Action::Restart => {
                let replay = journal::replay(&self.journal).expect("our own journal");
                assert_eq!(replay.ignored, 0, "our own journal has no torn tail");
                let mut server = Server::new(config());
                server.restore(replay.records, self.now);
                self.server = server;
                self.offered.clear();
            }
        }
        self.held.retain(|_, (_, until)| *until > self.now);
    }

    /// No address is held by two clients, and every lease a client holds
    /// is in the server's table under its name.
    fn check(&self) -> Result<(), String> {
        let mut owners: HashMap<Ipv4Addr, u8> = HashMap::new();
        for (&client, &(ip, _)) in &self.held {
            if let Some(other) = owners.insert(ip, client) {
                return Err(format!("{ip} held by clients {other} and {client}"));
            }
            let key = ClientKey::Mac(netvm_description::values::MacAddr([2, 0, 0, 0, 0, client]));
            let in_table = self
                .server
                .leases()
                .any(|l| l.lease.ip == ip && l.lease.client.as_ref() == Some(&key));
            if !in_table {
                return Err(format!("acknowledged lease {ip} of client {client} lost"));
            }
        }
        Ok(())
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn no_address_twice_and_no_acknowledged_lease_lost(actions in prop::collection::vec(action(), 1..120)) {
        let mut world = World {
            server: Server::new(config()),
            journal: HEADER.to_vec(),
            now: Timestamp(1_800_000_000_000),
            offered: HashMap::new(),
            held: HashMap::new(),
        };
        for (i, action) in actions.iter().enumerate() {
            world.run(action);
            if let Err(problem) = world.check() {
                return Err(TestCaseError::fail(format!("after step {i} ({action:?}): {problem}")));
            }
        }
        // Reservation: client 0 only ever held its own address.
        if let Some((ip, _)) = world.held.get(&0) {
            prop_assert_eq!(*ip, Ipv4Addr::new(192, 168, 100, 101));
        }
    }

    #[test]
    fn random_bytes_never_panic_the_server(packets in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..600), 1..20)) {
        let mut server = Server::new(config());
        for (i, packet) in packets.iter().enumerate() {
            let outcome = server.handle(Timestamp(1_800_000_000_000 + i as u64), packet);
            // Random bytes are never a valid client message that binds anything.
            prop_assert!(outcome.record.is_none());
        }
        prop_assert_eq!(server.counters().received, packets.len() as u64);
    }

    #[test]
    fn mutated_valid_messages_never_panic(flips in prop::collection::vec((0usize..400, any::<u8>()), 1..12), kind in 1u8..9) {
        let mut m = message(MessageType::from(kind), 7);
        m.opts_mut().insert(DhcpOption::Hostname("pc".into()));
        m.opts_mut().insert(DhcpOption::ClientIdentifier(vec![1, 2, 0, 0, 0, 0, 7]));
        let mut packet = bytes(&m);
        for (at, value) in flips {
            if let Some(b) = packet.get_mut(at) { *b = value; }
        }
        let mut server = Server::new(config());
        let _ = server.handle(Timestamp(1_800_000_000_000), &packet);
    }
}

#[test]
fn the_journal_replays_every_record_kind() {
    let records = vec![Record::Declined {
        ip: Ipv4Addr::new(192, 168, 100, 201),
        until: Timestamp(u64::MAX),
    }];
    let mut bytes = HEADER.to_vec();
    for r in &records {
        r.encode(&mut bytes);
    }
    let mut server = Server::new(config());
    server.restore(
        journal::replay(&bytes).expect("journal").records,
        Timestamp(0),
    );
    assert_eq!(server.snapshot(), records);
}
