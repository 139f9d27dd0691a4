//! Real client messages captured with tcpdump from udhcpc, dhclient and
//! dhcpcd (Debian 12) talking to netvm, kept as bytes in `captures/`: the
//! strict reader must read each of them exactly, and the server must
//! answer them.

use netvm_description::{parse, Format};
use netvm_dhcp::{parse_request, MessageKind, ReplyKind, Server, ServerConfig, Timestamp};
use std::net::Ipv4Addr;

fn capture(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/captures/{name}.bin", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

#[test]
fn every_capture_is_read_exactly() {
    let cases = [
        ("udhcpc-discover", MessageKind::Discover),
        ("udhcpc-request", MessageKind::Request),
        ("dhclient-discover", MessageKind::Discover),
        ("dhclient-request", MessageKind::Request),
        ("dhclient-release", MessageKind::Release),
        ("dhcpcd-discover", MessageKind::Discover),
        ("dhcpcd-request", MessageKind::Request),
    ];
    for (name, kind) in cases {
        let request = parse_request(&capture(name)).unwrap_or_else(|e| panic!("{name}: {e:?}"));
        assert_eq!(request.kind, kind, "{name}");
        assert_eq!(request.chaddr.to_string(), "02:aa:00:00:00:07", "{name}");
        if kind != MessageKind::Release {
            assert!(
                request.parameters.contains(&1) && request.parameters.contains(&3),
                "{name}: PRL {:?}",
                request.parameters
            );
        }
    }
    // What each client says about itself.
    let udhcpc = parse_request(&capture("udhcpc-request")).expect("valid");
    assert_eq!(udhcpc.hostname.as_deref(), Some("vmu"));
    assert_eq!(
        udhcpc.client_id.as_deref().map(|id| id[0]),
        Some(1),
        "type 1: Ethernet"
    );
    assert_eq!(udhcpc.requested_ip, Some(Ipv4Addr::new(192, 168, 100, 200)));
    assert_eq!(udhcpc.server_id, Some(Ipv4Addr::new(192, 168, 100, 1)));
    let dhcpcd = parse_request(&capture("dhcpcd-discover")).expect("valid");
    assert_eq!(
        dhcpcd.client_id.as_deref().map(|id| id[0]),
        Some(255),
        "RFC 4361 IAID+DUID"
    );
    let release = parse_request(&capture("dhclient-release")).expect("valid");
    assert_eq!(release.ciaddr, Ipv4Addr::new(192, 168, 100, 201));
}

#[test]
fn the_server_answers_each_client_conversation() {
    let text = "[netvm.uplink]\ninterface = \"eth0\"\n";
    let config = ServerConfig::from_system(&parse("c.toml", text, Format::Toml).expect("valid"));
    let now = Timestamp(1_800_000_000_000);
    for client in ["udhcpc", "dhclient", "dhcpcd"] {
        let mut server = Server::new(config.clone());
        let offer = server.handle(now, &capture(&format!("{client}-discover")));
        assert_eq!(
            offer.reply.map(|r| r.kind),
            Some(ReplyKind::Offer),
            "{client}"
        );
        // The captured REQUEST names the address the capturing server
        // offered; it is free here too, so it is granted.
        let ack = server.handle(now, &capture(&format!("{client}-request")));
        assert_eq!(ack.reply.map(|r| r.kind), Some(ReplyKind::Ack), "{client}");
        assert!(ack.record.is_some(), "{client}: journaled");
    }
}
