//! Property tests of the DHCPv6 server: any bytes are answered or dropped
//! without a panic; across any sequence of client messages and times, no
//! two leases share an address, a described MAC only ever gets its
//! reserved address, a pool address is never a reserved one, and every
//! reply echoes the transaction-id and Client Identifier it answers.

use dhcproto::v6::{DhcpOption, DhcpOptions, IAAddr, Message, MessageType, OptionCode, IANA};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use netvm_description::values::MacAddr;
use netvm_dhcp6::server::{duid_ll, Event6, Server6, Server6Config, POOL_IID_BASE};
use proptest::prelude::*;
use std::collections::BTreeSet;
use std::net::Ipv6Addr;

const T0: u64 = 1_800_000_000_000;
const SERVER_MAC: MacAddr = MacAddr([2, 0xad, 0, 0, 0, 1]);
const VMS: [MacAddr; 2] = [
    MacAddr([2, 0xaa, 0, 0, 0, 7]),
    MacAddr([2, 0xaa, 0, 0, 0, 8]),
];
const GUESTS: [MacAddr; 3] = [
    MacAddr([2, 0xbb, 0, 0, 0, 1]),
    MacAddr([2, 0xbb, 0, 0, 0, 2]),
    MacAddr([2, 0xbb, 0, 0, 0, 3]),
];

fn prefix() -> Ipv6Addr {
    "fd00:0:0:1::".parse().expect("prefix")
}

fn config() -> Server6Config {
    let mut config = Server6Config::new(prefix(), duid_ll(SERVER_MAC));
    config.reservations = VMS
        .iter()
        .map(|mac| (*mac, Server6Config::address(prefix(), u64::from(mac.0[5]))))
        .collect();
    // Two pool addresses for three guests: the pool runs out.
    config.pool = POOL_IID_BASE + 200..=POOL_IID_BASE + 201;
    config.preferred_lifetime = 60;
    config.valid_lifetime = 120;
    config.t1 = 30;
    config.t2 = 48;
    config.dns = vec![Server6Config::address(prefix(), 1)];
    config
}

fn reserved(mac: MacAddr) -> Option<Ipv6Addr> {
    VMS.contains(&mac)
        .then(|| Server6Config::address(prefix(), u64::from(mac.0[5])))
}

/// Addresses a client may name: both reservations, the pool, a stranger.
fn addresses() -> Vec<Ipv6Addr> {
    vec![
        Server6Config::address(prefix(), 7),
        Server6Config::address(prefix(), 8),
        Server6Config::address(prefix(), POOL_IID_BASE + 200),
        Server6Config::address(prefix(), POOL_IID_BASE + 201),
        "fd00:9::1".parse().expect("ip"),
    ]
}

#[derive(Debug, Clone)]
struct Step {
    mac: MacAddr,
    kind: u8,
    duid_of: MacAddr,
    iaid: u32,
    named: Vec<usize>,
    server_id: u8,
    rapid: bool,
    advance_secs: u64,
}

fn step() -> impl Strategy<Value = Step> {
    let macs: Vec<MacAddr> = VMS.iter().chain(GUESTS.iter()).copied().collect();
    (
        prop::sample::select(macs.clone()),
        0u8..8,
        prop::sample::select(macs),
        0u32..3,
        prop::collection::vec(0usize..5, 0..3),
        0u8..4,
        any::<bool>(),
        0u64..150,
    )
        .prop_map(
            |(mac, kind, duid_of, iaid, named, server_id, rapid, advance_secs)| Step {
                mac,
                kind,
                duid_of,
                iaid,
                named,
                server_id,
                rapid,
                advance_secs,
            },
        )
}

/// The message a step sends; the server identifier is right for its type
/// three times in four, else absent or another server's.
fn message(step: &Step) -> (Vec<u8>, [u8; 3], Vec<u8>) {
    let kinds = [
        MessageType::Solicit,
        MessageType::Request,
        MessageType::Renew,
        MessageType::Rebind,
        MessageType::Release,
        MessageType::Decline,
        MessageType::Confirm,
        MessageType::InformationRequest,
    ];
    let kind = kinds[usize::from(step.kind) % kinds.len()];
    let xid = [step.kind, step.iaid as u8, step.server_id];
    let duid = duid_ll(step.duid_of);
    let mut m = Message::new_with_id(kind, xid);
    let all = addresses();
    if kind != MessageType::InformationRequest {
        m.opts_mut().insert(DhcpOption::ClientId(duid.clone()));
        m.opts_mut().insert(DhcpOption::IANA(IANA {
            id: step.iaid,
            t1: 0,
            t2: 0,
            opts: step
                .named
                .iter()
                .map(|n| {
                    DhcpOption::IAAddr(IAAddr {
                        addr: all[*n],
                        preferred_life: 0,
                        valid_life: 0,
                        opts: DhcpOptions::new(),
                    })
                })
                .collect(),
        }));
    }
    let wants_server = matches!(
        kind,
        MessageType::Request | MessageType::Renew | MessageType::Release | MessageType::Decline
    );
    match step.server_id {
        3 => m
            .opts_mut()
            .insert(DhcpOption::ServerId(vec![0, 3, 0, 1, 9, 9, 9, 9, 9, 9])),
        2 => {}
        _ if wants_server => m
            .opts_mut()
            .insert(DhcpOption::ServerId(duid_ll(SERVER_MAC))),
        _ => {}
    }
    if step.rapid {
        m.opts_mut().insert(DhcpOption::RapidCommit);
    }
    let mut bytes = Vec::new();
    m.encode(&mut Encoder::new(&mut bytes)).expect("encode");
    let client_id = if kind == MessageType::InformationRequest {
        Vec::new()
    } else {
        duid
    };
    (bytes, xid, client_id)
}

fn check_invariants(server: &Server6) -> Result<(), TestCaseError> {
    let mut seen = BTreeSet::new();
    let reserved_ips: BTreeSet<Ipv6Addr> = VMS.iter().filter_map(|m| reserved(*m)).collect();
    for lease in server.leases() {
        prop_assert!(seen.insert(lease.ip), "{} leased twice", lease.ip);
        match reserved(lease.mac) {
            Some(ip) => prop_assert_eq!(lease.ip, ip),
            None => {
                prop_assert!(!reserved_ips.contains(&lease.ip));
                let iid = u64::try_from(u128::from(lease.ip) & u128::from(u64::MAX)).unwrap_or(0);
                prop_assert!(
                    server.config().pool.contains(&iid),
                    "{} not in pool",
                    lease.ip
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn any_bytes_are_answered_or_dropped(bytes in prop::collection::vec(any::<u8>(), 0..600), mac in any::<[u8; 6]>()) {
        let mut server = Server6::new(config()).expect("valid");
        let _ = server.handle(T0, MacAddr(mac), &bytes);
        check_invariants(&server)?;
    }

    #[test]
    fn damaged_messages_are_answered_or_dropped(
        s in step(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let (mut bytes, _, _) = message(&s);
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        let cut = cut.index(bytes.len() + 1);
        let mut server = Server6::new(config()).expect("valid");
        let _ = server.handle(T0, s.mac, &bytes[..cut]);
        check_invariants(&server)?;
    }

    #[test]
    fn leases_stay_consistent_over_any_exchange(steps in prop::collection::vec(step(), 1..40)) {
        let mut server = Server6::new(config()).expect("valid");
        let mut now = T0;
        for s in &steps {
            now += s.advance_secs * 1000;
            if s.advance_secs % 3 == 0 {
                let _ = server.tick(now);
            }
            let (bytes, xid, client_id) = message(s);
            let outcome = server.handle(now, s.mac, &bytes);
            check_invariants(&server)?;
            for (ip, mac) in outcome.grants() {
                prop_assert_eq!(mac, s.mac);
                prop_assert!(server.leases().iter().any(|l| l.ip == ip && l.mac == mac));
            }
            if let Some(reply) = &outcome.reply {
                let m = Message::decode(&mut Decoder::new(&reply.bytes)).expect("decodes");
                prop_assert_eq!(m.xid(), xid);
                match m.opts().get(OptionCode::ClientId) {
                    Some(DhcpOption::ClientId(id)) => prop_assert_eq!(id, &client_id),
                    None => prop_assert!(client_id.is_empty()),
                    other => prop_assert!(false, "{:?}", other),
                }
                // Every address offered with a lifetime is the client's:
                // its reservation, or a pool address.
                for opt in m.opts().iter() {
                    let DhcpOption::IANA(ia) = opt else { continue };
                    for inner in ia.opts.iter() {
                        let DhcpOption::IAAddr(a) = inner else { continue };
                        if a.valid_life == 0 {
                            continue;
                        }
                        match reserved(s.mac) {
                            Some(ip) => prop_assert_eq!(a.addr, ip),
                            None => prop_assert!(reserved(s.duid_of) != Some(a.addr)
                                && VMS.iter().all(|vm| reserved(*vm) != Some(a.addr))),
                        }
                    }
                }
            }
            for event in &outcome.events {
                if let Event6::LeaseGranted { mac, .. } | Event6::LeaseRenewed { mac, .. } = event {
                    prop_assert_eq!(*mac, s.mac);
                }
            }
        }
        // A snapshot restores as it was.
        let mut restarted = Server6::new(config()).expect("valid");
        prop_assert!(restarted.restore(now, server.leases()).is_empty());
        prop_assert_eq!(restarted.leases(), server.leases());
        // Everything runs out in the end.
        let _ = server.tick(now + 121_000);
        prop_assert!(server.leases().is_empty());
        prop_assert_eq!(server.next_deadline(), None);
    }
}
