//! Pool starvation, tried as an attacker would (issue 13, hole 6): one
//! VM floods DISCOVERs from fresh MACs, or acquires and DECLINEs from
//! thousands of rotating MACs. A new pool client must still get an
//! address during the flood, the pool must recover within seconds after
//! it, and reservations are always served. Pure: explicit timestamps.

use dhcproto::v4::{DhcpOption, Message, MessageType, Opcode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use netvm_description::{parse, Format};
use netvm_dhcp::{LeaseState, Outcome, ReplyKind, Server, ServerConfig, Timestamp};
use std::net::Ipv4Addr;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 1);
const T0: Timestamp = Timestamp(1_800_000_000_000);
/// The default pool: host numbers 200-254.
const POOL: usize = 55;

fn server() -> Server {
    let text = "[netvm.uplink]\ninterface = \"eth0\"\n\
         [[vm]]\nname = \"gui-vm\"\nkind = \"system\"\nmac = \"02:00:00:00:00:03\"\n";
    let system = parse("test.toml", text, Format::Toml).unwrap_or_else(|e| panic!("{e}"));
    Server::new(ServerConfig::from_system(&system))
}

fn message(kind: MessageType, mac: [u8; 6]) -> Message {
    let mut m = Message::default();
    m.set_opcode(Opcode::BootRequest)
        .set_xid(u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]))
        .set_chaddr(&mac);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    m
}

fn send(s: &mut Server, now: Timestamp, m: &Message) -> Outcome {
    let mut bytes = Vec::new();
    m.encode(&mut Encoder::new(&mut bytes)).expect("encode");
    s.handle(now, &bytes)
}

fn offered(outcome: &Outcome) -> Option<Ipv4Addr> {
    let reply = outcome.reply.as_ref()?;
    (reply.kind == ReplyKind::Offer).then(|| {
        Message::decode(&mut Decoder::new(&reply.bytes))
            .expect("decodable")
            .yiaddr()
    })
}

/// DISCOVER, then REQUEST `delay_ms` later; the address acknowledged.
fn acquire(s: &mut Server, now: Timestamp, mac: [u8; 6], delay_ms: u64) -> Option<Ipv4Addr> {
    let ip = offered(&send(s, now, &message(MessageType::Discover, mac)))?;
    let mut request = message(MessageType::Request, mac);
    request
        .opts_mut()
        .insert(DhcpOption::RequestedIpAddress(ip));
    request
        .opts_mut()
        .insert(DhcpOption::ServerIdentifier(SERVER));
    let ack = send(s, now.plus_millis(delay_ms), &request);
    (ack.reply.map(|r| r.kind) == Some(ReplyKind::Ack)).then_some(ip)
}

fn attacker(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0xaa, b[0], b[1], b[2], b[3]]
}

fn victim(n: u32) -> [u8; 6] {
    let b = n.to_be_bytes();
    [0x02, 0xbb, b[0], b[1], b[2], b[3]]
}

const GUI_VM: [u8; 6] = [0x02, 0, 0, 0, 0, 0x03];

fn count(s: &Server, state: fn(&LeaseState) -> bool) -> usize {
    s.leases().filter(|l| state(&l.lease.state)).count()
}

fn is_offer(s: &LeaseState) -> bool {
    matches!(s, LeaseState::Offered { .. })
}

fn is_probation(s: &LeaseState) -> bool {
    matches!(s, LeaseState::Probation { .. })
}

/// DISCOVERs from fresh MACs at `rate` per second for `secs`; every 5 s
/// a new client DISCOVERs and REQUESTs 200 ms later, and gui-vm renews.
fn discover_flood(rate: u64, secs: u64) {
    let mut s = server();
    let mut now = T0;
    let mut victims = 0;
    let step = 1000 / rate;
    for tick in 0..secs * rate {
        now = T0.plus_millis(tick * step);
        s.poll(now);
        send(
            &mut s,
            now,
            &message(MessageType::Discover, attacker(tick as u32)),
        );
        if tick % (5 * rate) == 5 * rate - 1 {
            victims += 1;
            let got = acquire(&mut s, now, victim(victims), 200);
            let Some(ip) = got else {
                panic!(
                    "new client {victims} denied {}s into a flood of {rate}/s",
                    (now.0 - T0.0) / 1000
                )
            };
            // It leaves again, so new clients do not fill the pool.
            let mut release = message(MessageType::Release, victim(victims));
            release.set_ciaddr(ip);
            send(&mut s, now.plus_millis(300), &release);
            assert_eq!(
                acquire(&mut s, now, GUI_VM, 10),
                Some(Ipv4Addr::new(192, 168, 100, 3)),
                "reservation denied during the flood"
            );
        }
    }
    // The flood stops: within the offer hold every offer has lapsed.
    let after = now.plus_secs(s.config().offer_hold_secs);
    s.poll(after);
    assert_eq!(count(&s, is_offer), 0, "offers outlive the flood");
    assert!(acquire(&mut s, after, victim(9999), 100).is_some());
}

#[test]
fn a_discover_flood_from_fresh_macs_denies_no_new_client() {
    // The attack: about 2 packets/s, for 5 minutes.
    discover_flood(2, 300);
}

#[test]
fn a_fast_discover_flood_denies_no_new_client() {
    discover_flood(100, 60);
}

#[test]
fn acquire_then_decline_from_rotating_macs_fills_at_most_the_probation_cap() {
    let mut s = server();
    let cap = usize::try_from(s.config().probation_max).expect("small");
    assert_eq!(cap, POOL / 4);
    // 3,000 MACs in 0.3 s, each acquiring an address and declining it.
    for n in 0..3000u32 {
        let now = T0.plus_millis(u64::from(n) / 10);
        let Some(ip) = acquire(&mut s, now, attacker(n), 0) else {
            panic!("attacker {n} got no address: the pool is held by probation")
        };
        let mut decline = message(MessageType::Decline, attacker(n));
        decline
            .opts_mut()
            .insert(DhcpOption::RequestedIpAddress(ip));
        decline
            .opts_mut()
            .insert(DhcpOption::ServerIdentifier(SERVER));
        send(&mut s, now, &decline);
        assert!(count(&s, is_probation) <= cap, "probation over its cap");
        if n % 100 == 0 {
            assert!(
                acquire(&mut s, now, victim(n), 5).is_some(),
                "new client denied"
            );
        }
        // gui-vm asks within its own rate (20 messages in a burst).
        if n % 500 == 0 {
            assert!(
                acquire(&mut s, now, GUI_VM, 5).is_some(),
                "reservation denied"
            );
        }
    }
    let now = T0.plus_secs(1);
    // Right after the flood, every other pool address is free.
    let mut got = 0;
    for v in 10_000..10_000 + (POOL - cap) as u32 {
        got += usize::from(acquire(&mut s, now, victim(v), 5).is_some());
    }
    assert!(
        got >= POOL - cap - 31,
        "only {got} clients served after the flood"
    );
}

#[test]
fn probation_gives_way_when_the_pool_is_otherwise_full() {
    let mut s = server();
    let cap = usize::try_from(s.config().probation_max).expect("small");
    for n in 0..cap as u32 {
        let ip = acquire(&mut s, T0, attacker(n), 0).expect("address");
        let mut decline = message(MessageType::Decline, attacker(n));
        decline
            .opts_mut()
            .insert(DhcpOption::RequestedIpAddress(ip));
        send(&mut s, T0, &decline);
    }
    assert_eq!(count(&s, is_probation), cap);
    // Everything else bound by clients that stay.
    for v in 0..(POOL - cap) as u32 {
        assert!(acquire(&mut s, T0, victim(v), 0).is_some());
    }
    // One more client: the oldest probation ends early for it.
    assert!(acquire(&mut s, T0.plus_secs(1), victim(999), 0).is_some());
    assert_eq!(count(&s, is_probation), cap - 1);
}

#[test]
fn a_restart_does_not_bring_back_probation_past_the_cap() {
    let mut s = server();
    let cap = usize::try_from(s.config().probation_max).expect("small");
    let mut records = Vec::new();
    for n in 0..(2 * cap) as u32 {
        let ip = acquire(&mut s, T0, attacker(n), 0).expect("address");
        let mut decline = message(MessageType::Decline, attacker(n));
        decline
            .opts_mut()
            .insert(DhcpOption::RequestedIpAddress(ip));
        records.extend(send(&mut s, T0, &decline).record);
    }
    let mut restarted = server();
    restarted.restore(records, T0.plus_secs(1));
    assert_eq!(count(&restarted, is_probation), cap);
}
