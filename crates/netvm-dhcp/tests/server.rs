//! Every server state transition, with explicit times and client messages
//! built by dhcproto (so our strict reader is checked against another
//! encoder), replies decoded by dhcproto.

use dhcproto::v4::{DhcpOption, Flags, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable, Encoder};
use netvm_description::{parse, Format};
use netvm_dhcp::{
    Destination, DropReason, Event, Outcome, Record, ReplyKind, Server, ServerConfig, Timestamp,
};
use std::net::Ipv4Addr;

const SERVER: Ipv4Addr = Ipv4Addr::new(192, 168, 100, 1);
const T0: Timestamp = Timestamp(1_800_000_000_000);

fn config(extra: &str) -> ServerConfig {
    let text = format!(
        "[netvm.uplink]\ninterface = \"eth0\"\n\
         [[vm]]\nname = \"gui-vm\"\nkind = \"system\"\nmac = \"02:00:00:00:00:03\"\n\
         [dhcp]\npool = \"192.168.100.200-192.168.100.203\"\nlease_time = \"1h\"\n{extra}"
    );
    let system = parse("test.toml", &text, Format::Toml).unwrap_or_else(|e| panic!("{e}"));
    ServerConfig::from_system(&system)
}

fn server() -> Server {
    Server::new(config(""))
}

/// A client message, built like a real client would.
struct Msg(Message);

impl Msg {
    fn new(kind: MessageType, mac: u8) -> Msg {
        let mut m = Message::default();
        m.set_opcode(Opcode::BootRequest)
            .set_xid(0xabcd_0000 | u32::from(mac))
            .set_chaddr(&[0x02, 0, 0, 0, 0, mac]);
        m.opts_mut().insert(DhcpOption::MessageType(kind));
        Msg(m)
    }
    fn opt(mut self, o: DhcpOption) -> Msg {
        self.0.opts_mut().insert(o);
        self
    }
    fn requested(self, ip: Ipv4Addr) -> Msg {
        self.opt(DhcpOption::RequestedIpAddress(ip))
    }
    fn server(self, ip: Ipv4Addr) -> Msg {
        self.opt(DhcpOption::ServerIdentifier(ip))
    }
    fn ciaddr(mut self, ip: Ipv4Addr) -> Msg {
        self.0.set_ciaddr(ip);
        self
    }
    fn broadcast(mut self) -> Msg {
        self.0.set_flags(Flags::default().set_broadcast());
        self
    }
    fn bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.0.encode(&mut Encoder::new(&mut out)).expect("encode");
        out
    }
}

fn send(server: &mut Server, now: Timestamp, msg: &Msg) -> Outcome {
    server.handle(now, &msg.bytes())
}

fn reply_of(outcome: &Outcome) -> Message {
    let reply = outcome.reply.as_ref().expect("a reply");
    Message::decode(&mut Decoder::new(&reply.bytes)).expect("decodable reply")
}

fn kind_of(outcome: &Outcome) -> Option<ReplyKind> {
    outcome.reply.as_ref().map(|r| r.kind)
}

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 168, 100, last)
}

/// DISCOVER + REQUEST; returns the address acknowledged.
fn lease(server: &mut Server, now: Timestamp, mac: u8) -> Ipv4Addr {
    let offer = send(server, now, &Msg::new(MessageType::Discover, mac));
    let offered = reply_of(&offer).yiaddr();
    let ack = send(
        server,
        now,
        &Msg::new(MessageType::Request, mac)
            .requested(offered)
            .server(SERVER),
    );
    assert_eq!(kind_of(&ack), Some(ReplyKind::Ack), "{ack:?}");
    offered
}

#[test]
fn discover_is_offered_a_pool_address_and_held() {
    let mut s = server();
    let offer = send(&mut s, T0, &Msg::new(MessageType::Discover, 0x10));
    assert_eq!(kind_of(&offer), Some(ReplyKind::Offer));
    assert!(offer.record.is_none(), "offers are not journaled");
    let m = reply_of(&offer);
    assert_eq!(m.yiaddr(), ip(200));
    assert_eq!(m.opts().msg_type(), Some(MessageType::Offer));
    assert_eq!(
        m.opts().get(OptionCode::ServerIdentifier),
        Some(&DhcpOption::ServerIdentifier(SERVER))
    );
    assert_eq!(
        m.opts().get(OptionCode::AddressLeaseTime),
        Some(&DhcpOption::AddressLeaseTime(3600))
    );
    // The offer is held: the next client gets the next address.
    let other = send(&mut s, T0, &Msg::new(MessageType::Discover, 0x11));
    assert_eq!(reply_of(&other).yiaddr(), ip(201));
    // After the hold lapses the address is free again.
    s.poll(T0.plus_secs(s.config().offer_hold_secs));
    let again = send(
        &mut s,
        T0.plus_secs(40),
        &Msg::new(MessageType::Discover, 0x12),
    );
    assert_eq!(
        reply_of(&again).yiaddr(),
        ip(202),
        "fresh addresses before returned ones"
    );
}

#[test]
fn reservation_is_served_to_its_mac_only_even_when_the_pool_is_empty() {
    let mut s = server();
    for mac in 0x20..0x24 {
        lease(&mut s, T0, mac);
    }
    let none = send(&mut s, T0, &Msg::new(MessageType::Discover, 0x30));
    assert_eq!(none.dropped, Some(DropReason::NoAddress));
    assert!(matches!(none.events[..], [Event::PoolExhausted { .. }]));
    assert_eq!(lease(&mut s, T0, 0x03), ip(3), "gui-vm's reservation");
    // Nobody else gets the reserved address, even asking for it.
    let steal = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Request, 0x30).requested(ip(3)),
    );
    assert_eq!(kind_of(&steal), Some(ReplyKind::Nak));
}

#[test]
fn selecting_request_is_acknowledged_and_journaled() {
    let mut s = server();
    let offered = reply_of(&send(&mut s, T0, &Msg::new(MessageType::Discover, 0x10))).yiaddr();
    let ack = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Request, 0x10)
            .requested(offered)
            .server(SERVER),
    );
    assert_eq!(kind_of(&ack), Some(ReplyKind::Ack));
    assert!(
        matches!(ack.record, Some(Record::Bound { ip, until, .. }) if ip == offered && until == T0.plus_secs(3600))
    );
    assert!(matches!(ack.events[..], [Event::LeaseGranted { ip, .. }] if ip == offered));
    let m = reply_of(&ack);
    assert_eq!(
        m.opts().get(OptionCode::Renewal),
        Some(&DhcpOption::Renewal(1800))
    );
    assert_eq!(
        m.opts().get(OptionCode::Rebinding),
        Some(&DhcpOption::Rebinding(3150))
    );
}

#[test]
fn choosing_another_server_frees_the_offer_silently() {
    let mut s = server();
    let offered = reply_of(&send(&mut s, T0, &Msg::new(MessageType::Discover, 0x10))).yiaddr();
    let other = Ipv4Addr::new(192, 168, 100, 77);
    let out = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Request, 0x10)
            .requested(offered)
            .server(other),
    );
    assert!(out.reply.is_none());
    assert_eq!(out.dropped, Some(DropReason::NotForUs));
    assert!(s.leases().next().is_none(), "the offer is gone");
}

#[test]
fn selecting_an_address_not_offered_is_naked() {
    let mut s = server();
    let taken = lease(&mut s, T0, 0x10);
    let nak = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Request, 0x11)
            .requested(taken)
            .server(SERVER),
    );
    assert_eq!(kind_of(&nak), Some(ReplyKind::Nak));
    assert_eq!(
        nak.reply.as_ref().map(|r| r.to),
        Some(Destination::Broadcast)
    );
    assert!(nak.record.is_none());
}

#[test]
fn init_reboot_is_acked_for_its_own_address_and_naked_otherwise() {
    let mut s = server();
    let mine = lease(&mut s, T0, 0x10);
    let ok = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Request, 0x10).requested(mine),
    );
    assert_eq!(kind_of(&ok), Some(ReplyKind::Ack));
    let theirs = lease(&mut s, T0, 0x11);
    let wrong = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Request, 0x10).requested(theirs),
    );
    assert_eq!(kind_of(&wrong), Some(ReplyKind::Nak));
    // Authoritative: an address from another network is refused at once.
    let elsewhere = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Request, 0x12).requested(Ipv4Addr::new(10, 1, 1, 1)),
    );
    assert_eq!(kind_of(&elsewhere), Some(ReplyKind::Nak));
}

#[test]
fn renewing_and_rebinding_extend_the_lease() {
    let mut s = server();
    let mine = lease(&mut s, T0, 0x10);
    let later = T0.plus_secs(1800);
    let renew = send(
        &mut s,
        later,
        &Msg::new(MessageType::Request, 0x10).ciaddr(mine),
    );
    assert_eq!(kind_of(&renew), Some(ReplyKind::Ack));
    let reply = renew.reply.as_ref().expect("reply");
    assert_eq!(
        reply.to,
        Destination::Unicast {
            mac: netvm_description::values::MacAddr([2, 0, 0, 0, 0, 0x10]),
            ip: mine
        }
    );
    assert_eq!(reply_of(&renew).ciaddr(), mine);
    assert!(
        matches!(renew.record, Some(Record::Bound { until, .. }) if until == later.plus_secs(3600))
    );
    // Rebinding: broadcast, same answer.
    let rebind = send(
        &mut s,
        T0.plus_secs(3200),
        &Msg::new(MessageType::Request, 0x10)
            .ciaddr(mine)
            .broadcast(),
    );
    assert_eq!(kind_of(&rebind), Some(ReplyKind::Ack));
    // Renewing someone else's address.
    let theirs = lease(&mut s, T0, 0x11);
    let bad = send(
        &mut s,
        later,
        &Msg::new(MessageType::Request, 0x10).ciaddr(theirs),
    );
    assert_eq!(kind_of(&bad), Some(ReplyKind::Nak));
}

#[test]
fn decline_puts_the_address_in_probation() {
    let mut s = server();
    let declined = lease(&mut s, T0, 0x10);
    let out = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Decline, 0x10)
            .requested(declined)
            .server(SERVER),
    );
    assert!(out.reply.is_none());
    assert!(matches!(out.record, Some(Record::Declined { ip, .. }) if ip == declined));
    assert!(matches!(out.events[..], [Event::AddressDeclined { ip, .. }] if ip == declined));
    // The declining client gets another address; nobody gets the declined one.
    let next = lease(&mut s, T0, 0x10);
    assert_ne!(next, declined);
    for mac in 0x11..0x13 {
        assert_ne!(lease(&mut s, T0, mac), declined);
    }
    // The pool is otherwise full: the probation gives way rather than
    // deny a client (issue 13).
    assert_eq!(
        reply_of(&send(&mut s, T0, &Msg::new(MessageType::Discover, 0x20))).yiaddr(),
        declined
    );
    assert_eq!(s.counters().probations_ended_early, 1);
}

#[test]
fn probation_ends_after_its_period() {
    let mut s = server();
    let declined = lease(&mut s, T0, 0x10);
    send(
        &mut s,
        T0,
        &Msg::new(MessageType::Decline, 0x10)
            .requested(declined)
            .server(SERVER),
    );
    let probation = s.config().probation_secs;
    assert_eq!(probation, 600);
    s.poll(T0.plus_secs(probation - 1));
    assert!(s.leases().any(|l| l.lease.ip == declined));
    s.poll(T0.plus_secs(probation));
    assert!(s.leases().all(|l| l.lease.ip != declined));
}

#[test]
fn release_frees_the_address_and_a_returning_client_gets_it_back() {
    let mut s = server();
    let first = lease(&mut s, T0, 0x10);
    let out = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Release, 0x10)
            .ciaddr(first)
            .server(SERVER),
    );
    assert!(matches!(out.record, Some(Record::Released { ip, .. }) if ip == first));
    assert!(matches!(out.events[..], [Event::LeaseReleased { .. }]));
    assert!(s.leases().next().is_none());
    // A release for an address the client does not hold changes nothing.
    let bogus = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Release, 0x11)
            .ciaddr(first)
            .server(SERVER),
    );
    assert_eq!(bogus.dropped, Some(DropReason::NotForUs));
    lease(&mut s, T0, 0x12); // takes a fresh address
    assert_eq!(
        lease(&mut s, T0, 0x10),
        first,
        "the returning client's old address"
    );
}

#[test]
fn inform_gets_configuration_without_a_lease() {
    let mut s = server();
    let out = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Inform, 0x40).ciaddr(ip(50)),
    );
    let m = reply_of(&out);
    assert_eq!(m.opts().msg_type(), Some(MessageType::Ack));
    assert_eq!(m.yiaddr(), Ipv4Addr::UNSPECIFIED);
    assert!(m.opts().get(OptionCode::AddressLeaseTime).is_none());
    assert!(out.record.is_none());
    assert!(s.leases().next().is_none());
}

#[test]
fn rapid_commit_when_enabled_and_asked() {
    let mut s = Server::new(config("rapid_commit = true\n"));
    let out = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Discover, 0x10).opt(DhcpOption::RapidCommit),
    );
    assert_eq!(kind_of(&out), Some(ReplyKind::Ack));
    assert!(out.record.is_some());
    assert_eq!(
        reply_of(&out).opts().get(OptionCode::RapidCommit),
        Some(&DhcpOption::RapidCommit)
    );
    let mut plain = server();
    let out = send(
        &mut plain,
        T0,
        &Msg::new(MessageType::Discover, 0x10).opt(DhcpOption::RapidCommit),
    );
    assert_eq!(
        kind_of(&out),
        Some(ReplyKind::Offer),
        "disabled: a normal offer"
    );
}

#[test]
fn client_identifier_wins_over_chaddr() {
    let mut s = server();
    let with_id = |id: u8| {
        Msg::new(MessageType::Discover, 0x10).opt(DhcpOption::ClientIdentifier(vec![0, id]))
    };
    let a = reply_of(&send(&mut s, T0, &with_id(1))).yiaddr();
    let b = reply_of(&send(&mut s, T0, &with_id(2))).yiaddr();
    assert_ne!(a, b, "one MAC, two client ids, two leases");
    let a_again = reply_of(&send(&mut s, T0, &with_id(1))).yiaddr();
    assert_eq!(a, a_again);
}

#[test]
fn expired_leases_are_reclaimed() {
    let mut s = server();
    let addr = lease(&mut s, T0, 0x10);
    assert_eq!(s.poll_at(), Some(T0.plus_secs(3600)));
    let events = s.poll(T0.plus_secs(3600));
    assert!(matches!(events[..], [Event::LeaseExpired { ip, .. }] if ip == addr));
    assert!(s.leases().next().is_none());
}

#[test]
fn max_leases_is_enforced_but_reservations_are_not_blocked() {
    let mut s = Server::new(config("[dhcp.limits]\nmax_leases = 1\n"));
    lease(&mut s, T0, 0x10);
    assert_eq!(
        send(&mut s, T0, &Msg::new(MessageType::Discover, 0x11)).dropped,
        Some(DropReason::NoAddress)
    );
    assert_eq!(lease(&mut s, T0, 0x03), ip(3));
}

#[test]
fn a_flooding_mac_is_limited_and_others_are_not() {
    let mut s = Server::new(config(
        "[dhcp.limits]\nper_mac_rate = 1\nper_mac_burst = 3\n",
    ));
    let flood: Vec<Outcome> = (0..10)
        .map(|_| send(&mut s, T0, &Msg::new(MessageType::Discover, 0x10)))
        .collect();
    let limited = flood
        .iter()
        .filter(|o| o.dropped == Some(DropReason::RateLimited))
        .count();
    assert_eq!(limited, 7);
    assert_eq!(s.counters().dropped["rate_limited"], 7);
    assert_eq!(lease(&mut s, T0, 0x03), ip(3));
    let later = send(
        &mut s,
        T0.plus_secs(1),
        &Msg::new(MessageType::Discover, 0x10),
    );
    assert_eq!(
        kind_of(&later),
        Some(ReplyKind::Offer),
        "refilled after a second"
    );
}

#[test]
fn parameter_request_list_is_honoured() {
    let mut s = Server::new(config(
        "routes = [{ destination = \"10.0.0.0/8\", gateway = \"192.168.100.1\" }]\n",
    ));
    let asked = Msg::new(MessageType::Discover, 0x10).opt(DhcpOption::ParameterRequestList(vec![
        OptionCode::SubnetMask,
        OptionCode::InterfaceMtu,
        OptionCode::ClasslessStaticRoute,
    ]));
    let m = reply_of(&send(&mut s, T0, &asked));
    assert!(m.opts().get(OptionCode::InterfaceMtu).is_some());
    assert!(m.opts().get(OptionCode::SubnetMask).is_some());
    assert!(m.opts().get(OptionCode::Router).is_none(), "not asked for");
    match m.opts().get(OptionCode::ClasslessStaticRoute) {
        Some(DhcpOption::ClasslessStaticRoute(routes)) => {
            assert_eq!(routes.len(), 2, "default route included")
        }
        other => panic!("no routes: {other:?}"),
    }
    let defaults = reply_of(&send(&mut s, T0, &Msg::new(MessageType::Discover, 0x11)));
    for code in [
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::DomainName,
    ] {
        assert!(defaults.opts().get(code).is_some(), "{code:?} by default");
    }
    assert!(defaults.opts().get(OptionCode::InterfaceMtu).is_none());
}

#[test]
fn replies_fit_the_clients_maximum_message_size() {
    let mut s = server();
    let mut names = vec![OptionCode::DomainName; 1];
    names.extend([
        OptionCode::SubnetMask,
        OptionCode::Router,
        OptionCode::DomainNameServer,
        OptionCode::BroadcastAddr,
        OptionCode::InterfaceMtu,
    ]);
    let msg = Msg::new(MessageType::Discover, 0x10)
        .opt(DhcpOption::ParameterRequestList(names))
        .opt(DhcpOption::MaxMessageSize(576));
    let reply = send(&mut s, T0, &msg).reply.expect("reply");
    assert!(reply.bytes.len() <= 548, "{}", reply.bytes.len());
    assert!(reply.bytes.len() >= 300, "padded to the BOOTP minimum");
}

#[test]
fn destinations_follow_rfc_2131_section_4_1() {
    let mut s = server();
    let mac = netvm_description::values::MacAddr([2, 0, 0, 0, 0, 0x10]);
    let unicast = send(&mut s, T0, &Msg::new(MessageType::Discover, 0x10))
        .reply
        .expect("reply");
    assert_eq!(unicast.to, Destination::Unicast { mac, ip: ip(200) });
    let flagged = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Discover, 0x10).broadcast(),
    )
    .reply
    .expect("reply");
    assert_eq!(flagged.to, Destination::Broadcast);
}

#[test]
fn host_names_are_recorded_sanitised_and_fqdn_is_answered() {
    let mut s = server();
    let offer = send(&mut s, T0, &Msg::new(MessageType::Discover, 0x10));
    let offered = reply_of(&offer).yiaddr();
    let req = Msg::new(MessageType::Request, 0x10)
        .requested(offered)
        .server(SERVER)
        .opt(DhcpOption::Hostname("Laptop-1.home".to_owned()));
    let ack = send(&mut s, T0, &req);
    assert!(
        matches!(&ack.events[..], [Event::LeaseGranted { hostname: Some(h), .. }] if h == "laptop-1")
    );
    let bad = Msg::new(MessageType::Request, 0x10)
        .requested(offered)
        .server(SERVER)
        .opt(DhcpOption::Hostname("ev il".to_owned()));
    let ack = send(&mut s, T0, &bad);
    assert!(
        matches!(
            &ack.events[..],
            [Event::LeaseGranted { hostname: None, .. }]
        ),
        "not a DNS label: not recorded"
    );
}

#[test]
fn restore_rebuilds_bound_leases_and_forgets_ended_ones() {
    let mut s = server();
    let a = lease(&mut s, T0, 0x10);
    let b = lease(&mut s, T0, 0x11);
    let mut records = s.snapshot();
    records.push(Record::Released {
        ip: b,
        client: netvm_dhcp::ClientKey::Mac(netvm_description::values::MacAddr([
            2, 0, 0, 0, 0, 0x11,
        ])),
    });
    let mut restarted = server();
    restarted.restore(records.clone(), T0.plus_secs(10));
    let held: Vec<Ipv4Addr> = restarted.leases().map(|l| l.lease.ip).collect();
    assert_eq!(held, [a]);
    // A restored lease is not offered to anyone else.
    let other = reply_of(&send(
        &mut restarted,
        T0.plus_secs(10),
        &Msg::new(MessageType::Discover, 0x12),
    ))
    .yiaddr();
    assert_ne!(other, a);
    // Restored after the leases ended: nothing bound, old client remembered.
    let mut late = server();
    late.restore(records, T0.plus_secs(7200));
    assert!(late.leases().next().is_none());
    assert_eq!(lease(&mut late, T0.plus_secs(7200), 0x10), a);
}

#[test]
fn garbage_is_dropped_and_counted_by_reason() {
    let mut s = server();
    let out = s.handle(T0, &[1, 2, 3]);
    assert_eq!(out.dropped, Some(DropReason::Truncated));
    let mut offer = Msg::new(MessageType::Offer, 0x10);
    offer.0.set_opcode(Opcode::BootRequest);
    assert_eq!(
        send(&mut s, T0, &offer).dropped,
        Some(DropReason::NotClientMessage)
    );
    assert_eq!(s.counters().received, 2);
    assert_eq!(s.counters().dropped_total(), 2);
}

#[test]
fn relayed_messages_are_served_only_from_trusted_relays() {
    let relay = ip(9);
    let relayed = |m: Msg| {
        let mut m = m;
        m.0.set_giaddr(relay);
        m
    };
    let mut untrusting = server();
    let out = send(
        &mut untrusting,
        T0,
        &relayed(Msg::new(MessageType::Discover, 0x10)),
    );
    assert_eq!(
        out.dropped,
        Some(DropReason::Relayed),
        "a VM pretending to be a relay"
    );
    let mut trusting = Server::new(config("relays = [\"192.168.100.9\"]\n"));
    // A relay agent sends from port 67 (RFC 2131 section 4.1).
    let from_relay = |s: &mut Server, m: Msg| s.handle_from(T0, 67, &relayed(m).bytes());
    let out = from_relay(&mut trusting, Msg::new(MessageType::Discover, 0x10));
    let reply = out.reply.expect("served");
    assert_eq!(reply.to, Destination::Relay { ip: relay });
    assert_eq!(
        reply_of(&from_relay(
            &mut trusting,
            Msg::new(MessageType::Discover, 0x10)
        ))
        .giaddr(),
        relay
    );
    // The same relayed message from a client's port is not served.
    let out = send(
        &mut trusting,
        T0,
        &relayed(Msg::new(MessageType::Discover, 0x10)),
    );
    assert_eq!(out.dropped, Some(DropReason::WrongSourcePort));
}

#[test]
fn a_revoked_grant_frees_its_address_and_stays_undone_after_a_restart() {
    let mut s = server();
    let offer = send(&mut s, T0, &Msg::new(MessageType::Discover, 0x10));
    let offered = reply_of(&offer).yiaddr();
    let ack = send(
        &mut s,
        T0,
        &Msg::new(MessageType::Request, 0x10)
            .requested(offered)
            .server(SERVER),
    );
    let bound = ack.record.expect("a bound record");
    let release = s.revoke(T0, offered).expect("a release record");
    assert!(matches!(release, Record::Released { ip, .. } if ip == offered));
    assert!(s.leases().next().is_none());
    assert_eq!(s.counters().revoked, 1);
    assert_eq!(s.revoke(T0, offered), None, "nothing left to undo");
    let mut restarted = server();
    restarted.restore([bound, release], T0);
    assert!(restarted.leases().next().is_none());
}
