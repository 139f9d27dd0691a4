//! The server's exchanges, message by message, with explicit times.

use super::*;
use dhcproto::v6::{
    DhcpOption, DhcpOptions, IAAddr, Message, MessageType, OptionCode, IANA, IAPD, IATA,
};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};

const PREFIX: &str = "fd00:0:0:1::";
const T0: Millis = 1_800_000_000_000;
const RESERVED_MAC: MacAddr = MacAddr([2, 0xaa, 0, 0, 0, 7]);
const OTHER_VM_MAC: MacAddr = MacAddr([2, 0xaa, 0, 0, 0, 8]);
const GUEST_MAC: MacAddr = MacAddr([2, 0xbb, 0, 0, 0, 1]);
const SERVER_MAC: MacAddr = MacAddr([2, 0xad, 0, 0, 0, 1]);

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("address")
}

fn config() -> Server6Config {
    let mut config = Server6Config::new(ip(PREFIX), duid_ll(SERVER_MAC));
    config.reservations = vec![
        (RESERVED_MAC, ip("fd00:0:0:1::7")),
        (OTHER_VM_MAC, ip("fd00:0:0:1::8")),
    ];
    config.pool = POOL_IID_BASE + 200..=POOL_IID_BASE + 201;
    config.preferred_lifetime = 60;
    config.valid_lifetime = 120;
    config.t1 = 30;
    config.t2 = 48;
    config.dns = vec![ip("fd00:0:0:1::1")];
    config.search = vec!["internal".to_owned()];
    config.rapid_commit = true;
    config
}

fn server() -> Server6 {
    Server6::new(config()).expect("valid configuration")
}

/// A client: its DUID (any MAC in it; the server must not care) and IAID.
struct Client {
    duid: Vec<u8>,
    iaid: u32,
}

fn client_with_duid_of(mac: MacAddr) -> Client {
    Client {
        duid: duid_ll(mac),
        iaid: 1,
    }
}

fn ia_na(iaid: u32, addresses: &[Ipv6Addr]) -> DhcpOption {
    DhcpOption::IANA(IANA {
        id: iaid,
        t1: 0,
        t2: 0,
        opts: addresses
            .iter()
            .map(|a| {
                DhcpOption::IAAddr(IAAddr {
                    addr: *a,
                    preferred_life: 0,
                    valid_life: 0,
                    opts: DhcpOptions::new(),
                })
            })
            .collect(),
    })
}

fn encode(kind: MessageType, xid: [u8; 3], opts: Vec<DhcpOption>) -> Vec<u8> {
    let mut message = Message::new_with_id(kind, xid);
    for opt in opts {
        message.opts_mut().insert(opt);
    }
    let mut bytes = Vec::new();
    message
        .encode(&mut Encoder::new(&mut bytes))
        .expect("encode");
    bytes
}

impl Client {
    fn message(&self, kind: MessageType, server: bool, addresses: &[Ipv6Addr]) -> Vec<u8> {
        let mut opts = vec![
            DhcpOption::ClientId(self.duid.clone()),
            DhcpOption::ElapsedTime(0),
            ia_na(self.iaid, addresses),
        ];
        if server {
            opts.push(DhcpOption::ServerId(duid_ll(SERVER_MAC)));
        }
        encode(kind, [1, 2, 3], opts)
    }
}

fn decode(outcome: &Outcome) -> Message {
    let reply = outcome.reply.as_ref().expect("a reply");
    Message::decode(&mut Decoder::new(&reply.bytes)).expect("our reply decodes")
}

/// The IA_NA answers: (IAID, addresses with valid lifetime, status).
type IaSummary = (u32, Vec<(Ipv6Addr, u32)>, Option<Status>);

fn answers(message: &Message) -> Vec<IaSummary> {
    message
        .opts()
        .iter()
        .filter_map(|o| match o {
            DhcpOption::IANA(ia) => {
                let mut addresses: Vec<(Ipv6Addr, u32)> = ia
                    .opts
                    .iter()
                    .filter_map(|o| match o {
                        DhcpOption::IAAddr(a) => Some((a.addr, a.valid_life)),
                        _ => None,
                    })
                    .collect();
                // Those with lifetimes first.
                addresses.sort_by_key(|(a, valid)| (u32::MAX - valid, *a));
                let status = ia.opts.iter().find_map(|o| match o {
                    DhcpOption::StatusCode(s) => Some(s.status),
                    _ => None,
                });
                Some((ia.id, addresses, status))
            }
            _ => None,
        })
        .collect()
}

fn top_status(message: &Message) -> Option<Status> {
    match message.opts().get(OptionCode::StatusCode) {
        Some(DhcpOption::StatusCode(s)) => Some(s.status),
        _ => None,
    }
}

#[test]
fn a_described_vm_gets_its_reservation_through_the_four_messages() {
    let mut server = server();
    let client = client_with_duid_of(RESERVED_MAC);
    let own = ip("fd00:0:0:1::7");

    let advertise = server.handle(
        T0,
        RESERVED_MAC,
        &client.message(MessageType::Solicit, false, &[]),
    );
    assert_eq!(advertise.events, vec![]);
    let message = decode(&advertise);
    assert_eq!(message.msg_type(), MessageType::Advertise);
    assert_eq!(message.xid(), [1, 2, 3]);
    assert_eq!(
        message.opts().get(OptionCode::ClientId),
        Some(&DhcpOption::ClientId(client.duid.clone()))
    );
    assert_eq!(
        message.opts().get(OptionCode::Preference),
        Some(&DhcpOption::Preference(255))
    );
    assert_eq!(answers(&message), vec![(1, vec![(own, 120)], None)]);
    assert!(server.leases().is_empty(), "an Advertise binds nothing");

    let reply = server.handle(
        T0,
        RESERVED_MAC,
        &client.message(MessageType::Request, true, &[own]),
    );
    assert_eq!(
        reply.events,
        vec![Event6::LeaseGranted {
            ip: own,
            mac: RESERVED_MAC,
            until: T0 + 120_000
        }]
    );
    assert_eq!(
        reply.grants().collect::<Vec<_>>(),
        vec![(own, RESERVED_MAC)]
    );
    let message = decode(&reply);
    assert_eq!(message.msg_type(), MessageType::Reply);
    assert_eq!(answers(&message), vec![(1, vec![(own, 120)], None)]);
    assert_eq!(
        message.opts().get(OptionCode::DomainNameServers),
        Some(&DhcpOption::DomainNameServers(vec![ip("fd00:0:0:1::1")]))
    );
    match message.opts().get(OptionCode::DomainSearchList) {
        Some(DhcpOption::DomainSearchList(names)) => {
            assert_eq!(names.len(), 1);
            assert_eq!(names[0].to_ascii(), "internal.");
        }
        other => panic!("no search list: {other:?}"),
    }
    assert_eq!(server.next_deadline(), Some(T0 + 120_000));

    let renew = server.handle(
        T0 + 30_000,
        RESERVED_MAC,
        &client.message(MessageType::Renew, true, &[own]),
    );
    assert_eq!(
        renew.events,
        vec![Event6::LeaseRenewed {
            ip: own,
            mac: RESERVED_MAC,
            until: T0 + 150_000
        }]
    );
    let rebind = server.handle(
        T0 + 50_000,
        RESERVED_MAC,
        &client.message(MessageType::Rebind, false, &[own]),
    );
    assert_eq!(answers(&decode(&rebind)), vec![(1, vec![(own, 120)], None)]);

    let release = server.handle(
        T0 + 60_000,
        RESERVED_MAC,
        &client.message(MessageType::Release, true, &[own]),
    );
    assert_eq!(
        release.events,
        vec![Event6::LeaseReleased {
            ip: own,
            mac: RESERVED_MAC
        }]
    );
    assert_eq!(top_status(&decode(&release)), Some(Status::Success));
    assert!(server.leases().is_empty());
    assert_eq!(server.next_deadline(), None);
}

#[test]
fn the_frame_mac_decides_not_the_duid() {
    let mut server = server();
    // A VM with MAC ...:07 claiming, in its DUID, the MAC of the VM ...:08
    // and asking for that VM's address.
    let liar = client_with_duid_of(OTHER_VM_MAC);
    let theirs = ip("fd00:0:0:1::8");
    let reply = server.handle(
        T0,
        RESERVED_MAC,
        &liar.message(MessageType::Request, true, &[theirs]),
    );
    assert_eq!(
        answers(&decode(&reply)),
        vec![(1, vec![(ip("fd00:0:0:1::7"), 120)], None)]
    );
    // Renewing the other VM's address: no binding.
    let renew = server.handle(
        T0,
        RESERVED_MAC,
        &liar.message(MessageType::Renew, true, &[theirs]),
    );
    assert_eq!(
        answers(&decode(&renew)),
        vec![(1, vec![], Some(Status::NoBinding))]
    );
    assert!(renew.events.is_empty());
    // An undescribed MAC using a described VM's DUID gets a pool address.
    let reply = server.handle(
        T0,
        GUEST_MAC,
        &liar.message(MessageType::Request, true, &[theirs]),
    );
    let got = answers(&decode(&reply));
    assert_eq!(got.len(), 1);
    assert!(leases::in_pool(server.config(), got[0].1[0].0), "{got:?}");
    // Releasing someone else's address releases nothing.
    let release = server.handle(
        T0,
        GUEST_MAC,
        &liar.message(MessageType::Release, true, &[theirs]),
    );
    assert!(release.events.is_empty());
    assert_eq!(
        answers(&decode(&release)),
        vec![(1, vec![], Some(Status::NoBinding))]
    );
    assert_eq!(server.leases().len(), 2);
}

#[test]
fn renew_keeps_its_own_address_and_withdraws_the_others() {
    let mut server = server();
    let client = client_with_duid_of(RESERVED_MAC);
    let own = ip("fd00:0:0:1::7");
    let stray = ip("fd00:0:0:1::99");
    server.handle(
        T0,
        RESERVED_MAC,
        &client.message(MessageType::Request, true, &[]),
    );
    let renew = server.handle(
        T0,
        RESERVED_MAC,
        &client.message(MessageType::Renew, true, &[stray, own]),
    );
    assert_eq!(
        answers(&decode(&renew)),
        vec![(1, vec![(own, 120), (stray, 0)], None)]
    );
    // Another DUID on the same MAC renewing: not the binding it was given.
    let stranger = Client {
        duid: vec![0, 4, 1, 2, 3, 4],
        iaid: 1,
    };
    let renew = server.handle(
        T0,
        RESERVED_MAC,
        &stranger.message(MessageType::Renew, true, &[own]),
    );
    assert_eq!(
        answers(&decode(&renew)),
        vec![(1, vec![], Some(Status::NoBinding))]
    );
    // Its Request moves the binding to it: the MAC is the identity.
    let request = server.handle(
        T0,
        RESERVED_MAC,
        &stranger.message(MessageType::Request, true, &[]),
    );
    assert_eq!(
        answers(&decode(&request)),
        vec![(1, vec![(own, 120)], None)]
    );
    assert_eq!(server.leases()[0].duid, stranger.duid);
}

#[test]
fn the_pool_is_stable_per_mac_and_runs_out() {
    let mut server = server();
    let guest = client_with_duid_of(GUEST_MAC);
    let first = server.handle(
        T0,
        GUEST_MAC,
        &guest.message(MessageType::Request, true, &[]),
    );
    let address = answers(&decode(&first))[0].1[0].0;
    assert!(leases::in_pool(server.config(), address));
    let again = server.handle(
        T0 + 1,
        GUEST_MAC,
        &guest.message(MessageType::Request, true, &[]),
    );
    assert_eq!(answers(&decode(&again))[0].1[0].0, address);
    assert!(matches!(again.events[..], [Event6::LeaseRenewed { .. }]));

    let second_mac = MacAddr([2, 0xbb, 0, 0, 0, 2]);
    let second = server.handle(
        T0,
        second_mac,
        &guest.message(MessageType::Request, true, &[]),
    );
    assert_ne!(answers(&decode(&second))[0].1[0].0, address);

    let third_mac = MacAddr([2, 0xbb, 0, 0, 0, 3]);
    let third = server.handle(
        T0,
        third_mac,
        &guest.message(MessageType::Solicit, false, &[]),
    );
    assert_eq!(
        answers(&decode(&third)),
        vec![(1, vec![], Some(Status::NoAddrsAvail))]
    );
    assert_eq!(third.events, vec![Event6::PoolExhausted { mac: third_mac }]);
    assert!(!third.changed());

    // Both leases run out; the first MAC comes back to the same address.
    let expired = server.tick(T0 + 120_001);
    assert_eq!(expired.len(), 2);
    assert!(expired
        .iter()
        .all(|e| matches!(e, Event6::LeaseExpired { .. })));
    let back = server.handle(
        T0 + 200_000,
        GUEST_MAC,
        &guest.message(MessageType::Request, true, &[]),
    );
    assert_eq!(answers(&decode(&back))[0].1[0].0, address);
}

#[test]
fn max_leases_bounds_the_pool_not_the_reservations() {
    let mut config = config();
    config.max_leases = 1;
    let mut server = Server6::new(config).expect("valid");
    let guest = client_with_duid_of(GUEST_MAC);
    server.handle(
        T0,
        GUEST_MAC,
        &guest.message(MessageType::Request, true, &[]),
    );
    let other = MacAddr([2, 0xbb, 0, 0, 0, 2]);
    let refused = server.handle(T0, other, &guest.message(MessageType::Request, true, &[]));
    assert_eq!(
        answers(&decode(&refused)),
        vec![(1, vec![], Some(Status::NoAddrsAvail))]
    );
    let vm = server.handle(
        T0,
        RESERVED_MAC,
        &guest.message(MessageType::Request, true, &[]),
    );
    assert_eq!(answers(&decode(&vm))[0].1[0].0, ip("fd00:0:0:1::7"));
}

#[test]
fn rapid_commit_binds_at_once_when_allowed() {
    let client = client_with_duid_of(RESERVED_MAC);
    let mut solicit = Message::decode(&mut Decoder::new(&client.message(
        MessageType::Solicit,
        false,
        &[],
    )))
    .expect("decode");
    solicit.opts_mut().insert(DhcpOption::RapidCommit);
    let mut bytes = Vec::new();
    solicit
        .encode(&mut Encoder::new(&mut bytes))
        .expect("encode");

    let mut server = server();
    let outcome = server.handle(T0, RESERVED_MAC, &bytes);
    let reply = decode(&outcome);
    assert_eq!(reply.msg_type(), MessageType::Reply);
    assert_eq!(
        reply.opts().get(OptionCode::RapidCommit),
        Some(&DhcpOption::RapidCommit)
    );
    assert!(matches!(outcome.events[..], [Event6::LeaseGranted { .. }]));

    let mut config = config();
    config.rapid_commit = false;
    let mut server = Server6::new(config).expect("valid");
    let outcome = server.handle(T0, RESERVED_MAC, &bytes);
    assert_eq!(decode(&outcome).msg_type(), MessageType::Advertise);
    assert!(outcome.events.is_empty());
}

#[test]
fn temporary_addresses_and_prefixes_are_refused() {
    let mut server = server();
    let duid = duid_ll(GUEST_MAC);
    let bytes = encode(
        MessageType::Request,
        [9, 9, 9],
        vec![
            DhcpOption::ClientId(duid),
            DhcpOption::ServerId(duid_ll(SERVER_MAC)),
            DhcpOption::IATA(IATA {
                id: 4,
                opts: DhcpOptions::new(),
            }),
            DhcpOption::IAPD(IAPD {
                id: 5,
                t1: 0,
                t2: 0,
                opts: DhcpOptions::new(),
            }),
        ],
    );
    let outcome = server.handle(T0, GUEST_MAC, &bytes);
    assert!(outcome.events.is_empty());
    let message = decode(&outcome);
    let status_in = |opts: &DhcpOptions| match opts.get(OptionCode::StatusCode) {
        Some(DhcpOption::StatusCode(s)) => Some(s.status),
        _ => None,
    };
    match message.opts().get(OptionCode::IATA) {
        Some(DhcpOption::IATA(ia)) => assert_eq!(status_in(&ia.opts), Some(Status::NoAddrsAvail)),
        other => panic!("{other:?}"),
    }
    match message.opts().get(OptionCode::IAPD) {
        Some(DhcpOption::IAPD(ia)) => assert_eq!(status_in(&ia.opts), Some(Status::NoPrefixAvail)),
        other => panic!("{other:?}"),
    }
}

#[test]
fn section_16_drops_are_counted_by_name() {
    let mut server = server();
    let client = client_with_duid_of(RESERVED_MAC);
    let mut drop = |mac: MacAddr, bytes: &[u8]| server.handle(T0, mac, bytes).dropped;
    let solicit_with_server = client.message(MessageType::Solicit, true, &[]);
    assert_eq!(
        drop(RESERVED_MAC, &solicit_with_server),
        Some(DropReason::UnexpectedServerId)
    );
    let request_without = client.message(MessageType::Request, false, &[]);
    assert_eq!(
        drop(RESERVED_MAC, &request_without),
        Some(DropReason::MissingServerId)
    );
    let for_another = encode(
        MessageType::Request,
        [1, 1, 1],
        vec![
            DhcpOption::ClientId(client.duid.clone()),
            DhcpOption::ServerId(vec![0, 3, 0, 1, 9, 9, 9, 9, 9, 9]),
        ],
    );
    assert_eq!(
        drop(RESERVED_MAC, &for_another),
        Some(DropReason::OtherServer)
    );
    let anonymous = encode(MessageType::Solicit, [1, 1, 1], vec![ia_na(1, &[])]);
    assert_eq!(
        drop(RESERVED_MAC, &anonymous),
        Some(DropReason::MissingClientId)
    );
    let relayed = [12u8, 0, 0, 0, 0, 0, 0, 0];
    assert_eq!(drop(RESERVED_MAC, &relayed), Some(DropReason::Relayed));
    let reply = encode(MessageType::Reply, [1, 1, 1], vec![]);
    assert_eq!(drop(RESERVED_MAC, &reply), Some(DropReason::ServerMessage));
    let solicit = client.message(MessageType::Solicit, false, &[]);
    assert_eq!(
        drop(MacAddr([0x33, 0x33, 0, 1, 0, 2]), &solicit),
        Some(DropReason::GroupSourceMac)
    );
    assert_eq!(server.counters().dropped["other_server"], 1);
    assert_eq!(server.counters().received, 7);
    assert_eq!(server.counters().advertise, 0);
}

#[test]
fn confirm_succeeds_only_for_the_clients_own_address() {
    let mut server = server();
    let client = client_with_duid_of(RESERVED_MAC);
    let yes = server.handle(
        T0,
        RESERVED_MAC,
        &client.message(MessageType::Confirm, false, &[ip("fd00:0:0:1::7")]),
    );
    assert_eq!(top_status(&decode(&yes)), Some(Status::Success));
    let no = server.handle(
        T0,
        RESERVED_MAC,
        &client.message(MessageType::Confirm, false, &[ip("fd00:0:0:1::8")]),
    );
    assert_eq!(top_status(&decode(&no)), Some(Status::NotOnLink));
    let nothing = server.handle(
        T0,
        RESERVED_MAC,
        &client.message(MessageType::Confirm, false, &[]),
    );
    assert_eq!(nothing.dropped, Some(DropReason::NothingToConfirm));
    assert!(server.leases().is_empty(), "Confirm binds nothing");
}

#[test]
fn a_declined_pool_address_is_held_back_for_a_valid_lifetime() {
    let mut server = server();
    let guest = client_with_duid_of(GUEST_MAC);
    let first = server.handle(
        T0,
        GUEST_MAC,
        &guest.message(MessageType::Request, true, &[]),
    );
    let declined = answers(&decode(&first))[0].1[0].0;
    let decline = server.handle(
        T0,
        GUEST_MAC,
        &guest.message(MessageType::Decline, true, &[declined]),
    );
    assert_eq!(
        decline.events,
        vec![Event6::AddressDeclined {
            ip: declined,
            mac: GUEST_MAC
        }]
    );
    let next = server.handle(
        T0,
        GUEST_MAC,
        &guest.message(MessageType::Request, true, &[declined]),
    );
    let other = answers(&decode(&next))[0].1[0].0;
    assert_ne!(other, declined);
    assert_eq!(server.next_deadline(), Some(T0 + 120_000));
    assert!(server.tick(T0 + 120_000).len() == 1, "the new lease ends");
    assert!(server.next_deadline().is_none(), "the hold ended too");
}

#[test]
fn information_request_gets_the_dns_options() {
    let mut server = server();
    let bytes = encode(
        MessageType::InformationRequest,
        [4, 5, 6],
        vec![DhcpOption::ElapsedTime(0)],
    );
    let outcome = server.handle(T0, GUEST_MAC, &bytes);
    let message = decode(&outcome);
    assert_eq!(message.xid(), [4, 5, 6]);
    assert!(message.opts().get(OptionCode::DomainNameServers).is_some());
    assert!(message.opts().get(OptionCode::ClientId).is_none());
    assert!(outcome.events.is_empty());
    let with_ia = encode(
        MessageType::InformationRequest,
        [4, 5, 6],
        vec![ia_na(1, &[])],
    );
    assert_eq!(
        server.handle(T0, GUEST_MAC, &with_ia).dropped,
        Some(DropReason::UnexpectedIa)
    );
}

#[test]
fn snapshots_restore_what_still_fits() {
    let mut server = server();
    let guest = client_with_duid_of(GUEST_MAC);
    let vm = client_with_duid_of(RESERVED_MAC);
    server.handle(
        T0,
        GUEST_MAC,
        &guest.message(MessageType::Request, true, &[]),
    );
    server.handle(
        T0,
        RESERVED_MAC,
        &vm.message(MessageType::Request, true, &[]),
    );
    let snapshot = server.leases();
    assert_eq!(snapshot.len(), 2);

    let mut restarted = Server6::new(config()).expect("valid");
    assert_eq!(restarted.restore(T0 + 1, snapshot.clone()), vec![]);
    assert_eq!(restarted.leases(), snapshot);
    // The same client renews with the restarted server.
    let own = ip("fd00:0:0:1::7");
    let renew = restarted.handle(
        T0 + 2,
        RESERVED_MAC,
        &vm.message(MessageType::Renew, true, &[own]),
    );
    assert!(matches!(renew.events[..], [Event6::LeaseRenewed { .. }]));

    // A snapshot from another configuration: the VM's address changed.
    let mut changed = config();
    changed.reservations[0].1 = ip("fd00:0:0:1::17");
    let mut other = Server6::new(changed).expect("valid");
    let mut stale = snapshot.clone();
    stale.push(Lease6 {
        mac: OTHER_VM_MAC,
        ip: ip("fd00:0:0:1::8"),
        duid: duid_ll(OTHER_VM_MAC),
        iaid: 1,
        expires_at: T0, // run out
    });
    let rejected = other.restore(T0 + 1, stale);
    let rejected_macs: Vec<MacAddr> = rejected.iter().map(|l| l.mac).collect();
    assert_eq!(rejected_macs, vec![RESERVED_MAC, OTHER_VM_MAC]);
    assert_eq!(other.leases().len(), 1);
}

#[test]
fn revoke_undoes_a_grant() {
    let mut server = server();
    let vm = client_with_duid_of(RESERVED_MAC);
    let outcome = server.handle(
        T0,
        RESERVED_MAC,
        &vm.message(MessageType::Request, true, &[]),
    );
    let (ip, mac) = outcome.grants().next().expect("a grant");
    assert_eq!(
        server.revoke(mac, ip),
        Some(Event6::LeaseRevoked { ip, mac })
    );
    assert!(server.leases().is_empty());
    assert_eq!(server.revoke(mac, ip), None);
    assert_eq!(server.counters().revoked, 1);
}

#[test]
fn events_serialise_with_their_name() {
    let event = Event6::LeaseGranted {
        ip: ip("fd00::7"),
        mac: RESERVED_MAC,
        until: 5,
    };
    assert_eq!(
        serde_json::to_string(&event).expect("json"),
        r#"{"event":"lease_granted","ip":"fd00::7","mac":"02:aa:00:00:00:07","until":5}"#
    );
}
