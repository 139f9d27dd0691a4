//! Real client messages captured with tcpdump from dhclient -6
//! (isc-dhcp-client 4.4.3-P1) and dhcpcd 9.4.1 (Debian 12) talking to
//! netvm's DHCPv6 server, kept as bytes in `captures/server/`: the strict
//! reader must read each exactly, and the server must answer them. The
//! server that answered them had the DUID-LL of 02:ad:00:00:00:01 and the
//! prefix fd6e:7673:0:1::/64; the client had MAC 02:aa:00:00:00:07.

use netvm_description::values::MacAddr;
use netvm_dhcp6::server::{
    duid_ll, parse_message, Event6, MessageKind, ReplyKind, Server6, Server6Config,
};
use std::net::Ipv6Addr;

const CLIENT: MacAddr = MacAddr([2, 0xaa, 0, 0, 0, 7]);
const T0: u64 = 1_800_000_000_000;

fn capture(name: &str) -> Vec<u8> {
    let path = format!(
        "{}/tests/captures/server/{name}.bin",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn ip(s: &str) -> Ipv6Addr {
    s.parse().expect("address")
}

#[test]
fn every_capture_is_read_exactly() {
    let dhclient_duid = Some([0u8, 1, 0, 1, 0x32, 0xa4, 0x5c, 0xb3, 2, 0xaa, 0, 0, 0, 7].to_vec());
    let solicit = parse_message(&capture("dhclient-solicit")).expect("valid");
    assert_eq!(solicit.kind, MessageKind::Solicit);
    assert_eq!(solicit.client_id, dhclient_duid);
    assert_eq!(solicit.server_id, None);
    assert_eq!(solicit.ia_na.len(), 1);
    assert_eq!(
        solicit.ia_na[0].iaid, 7,
        "dhclient's IAID: the MAC's last octets"
    );
    assert_eq!(solicit.oro, vec![23, 24, 23, 24]);

    let request = parse_message(&capture("dhclient-request")).expect("valid");
    assert_eq!(request.kind, MessageKind::Request);
    assert_eq!(
        request.server_id,
        Some(duid_ll(MacAddr([2, 0xad, 0, 0, 0, 1])))
    );
    assert_eq!(request.ia_na[0].addresses, vec![ip("fd6e:7673:0:1::7")]);

    let release = parse_message(&capture("dhclient-release")).expect("valid");
    assert_eq!(release.kind, MessageKind::Release);
    assert_eq!(release.ia_na[0].addresses, vec![ip("fd6e:7673:0:1::7")]);

    let dhcpcd = parse_message(&capture("dhcpcd-solicit")).expect("valid");
    assert_eq!(dhcpcd.kind, MessageKind::Solicit);
    assert!(dhcpcd.rapid_commit);
    assert_eq!(dhcpcd.ia_na[0].iaid, 1);
    assert_eq!(dhcpcd.oro, vec![82, 83]);
}

fn server(prefix: &str) -> Server6 {
    let mut config = Server6Config::new(ip(prefix), duid_ll(MacAddr([2, 0xad, 0, 0, 0, 1])));
    config.reservations = vec![(CLIENT, Server6Config::address(ip(prefix), 7))];
    Server6::new(config).expect("valid")
}

#[test]
fn the_server_answers_each_conversation() {
    let mut server = server("fd6e:7673:0:1::");
    let advertise = server.handle(T0, CLIENT, &capture("dhclient-solicit"));
    assert_eq!(
        advertise.reply.as_ref().map(|r| r.kind),
        Some(ReplyKind::Advertise)
    );
    let reply = server.handle(T0, CLIENT, &capture("dhclient-request"));
    assert_eq!(reply.reply.as_ref().map(|r| r.kind), Some(ReplyKind::Reply));
    assert_eq!(
        reply.grants().collect::<Vec<_>>(),
        vec![(ip("fd6e:7673:0:1::7"), CLIENT)]
    );
    let release = server.handle(T0, CLIENT, &capture("dhclient-release"));
    assert!(matches!(release.events[..], [Event6::LeaseReleased { .. }]));

    // dhcpcd asks for Rapid Commit: bound at once.
    let rapid = server.handle(T0, CLIENT, &capture("dhcpcd-solicit"));
    assert_eq!(rapid.reply.as_ref().map(|r| r.kind), Some(ReplyKind::Reply));
    assert!(matches!(rapid.events[..], [Event6::LeaseGranted { .. }]));
}

#[test]
fn a_request_for_an_address_of_another_prefix_gets_the_clients_own() {
    // The same Request to a server on another prefix: the named address
    // is not the client's, so it is given its own.
    let mut server = server("fd00:0:0:9::");
    let reply = server.handle(T0, CLIENT, &capture("dhclient-request"));
    assert_eq!(
        reply.grants().collect::<Vec<_>>(),
        vec![(ip("fd00:0:0:9::7"), CLIENT)]
    );
}
