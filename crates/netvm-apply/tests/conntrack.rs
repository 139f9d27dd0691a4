//! Cutting forbidden connections against the real kernel, as root, in a
//! namespace made by the test: IPv4 and IPv6 flows over loopback are
//! tracked, then each family's judge decides which go.

use netvm_apply::conntrack::cut;
use netvm_netfilter::conntrack::dump_all;
use netvm_plan::policy::{Connection, Connection6, Protocol};
use netvm_testsupport::Netns;
use std::net::{Ipv6Addr, TcpListener, TcpStream, UdpSocket};

#[test]
fn a_forbidden_ipv6_connection_is_cut_and_an_allowed_one_stays() {
    let ns = Netns::new("n6tcut");
    // Any ruleset of family inet registers connection tracking for both
    // families in the namespace.
    let ruleset = std::env::temp_dir().join(format!("{}.nft", ns.name()));
    std::fs::write(
        &ruleset,
        "table inet t {
    chain out {
        type filter hook output priority 0; policy accept;
        ct state new counter
    }
}
",
    )
    .expect("write the ruleset");
    ns.ok(&["nft", "-f", &ruleset.to_string_lossy()]);
    let _ = std::fs::remove_file(&ruleset);

    // Forbidden: an established IPv6 TCP connection to port 40021. Allowed:
    // an IPv6 UDP flow to 40022. IPv4: one flow forbidden (40023), one
    // allowed (40024).
    let _sockets = ns.inside(|| {
        let listener = TcpListener::bind("[::1]:40021").expect("listen");
        let client = TcpStream::connect("[::1]:40021").expect("connect");
        let (server, _) = listener.accept().expect("accept");
        let udp6 = UdpSocket::bind("[::1]:40020").expect("bind");
        udp6.send_to(b"x", "[::1]:40022").expect("send");
        let udp4 = UdpSocket::bind("127.0.0.1:40020").expect("bind");
        udp4.send_to(b"x", "127.0.0.1:40023").expect("send");
        udp4.send_to(b"x", "127.0.0.1:40024").expect("send");
        (listener, client, server, udp6, udp4)
    });
    let before = ns.inside(dump_all).expect("dump");
    let present = |dport, v6: bool| {
        move |all: &[netvm_netfilter::Tuple]| {
            all.iter()
                .any(|t| t.dport == Some(dport) && t.src.is_ipv6() == v6)
        }
    };
    for (dport, v6) in [(40021, true), (40022, true), (40023, false), (40024, false)] {
        assert!(present(dport, v6)(&before), "{dport} in {before:?}");
    }

    let forbidden4 = |c: &Connection| c.proto == Protocol::Udp && c.dport == Some(40023);
    let forbidden6 = |c: &Connection6| {
        c.proto == Protocol::Tcp
            && c.dport == Some(40021)
            && c.src == Ipv6Addr::LOCALHOST
            && c.dst == Ipv6Addr::LOCALHOST
    };
    let removed = ns.inside(|| cut(&forbidden4, &forbidden6)).expect("cut");
    assert_eq!(removed, 2);

    let after = ns.inside(dump_all).expect("dump");
    assert!(
        !present(40021, true)(&after),
        "the TCP connection in {after:?}"
    );
    assert!(
        present(40022, true)(&after),
        "the UDP flow is gone: {after:?}"
    );
    assert!(!present(40023, false)(&after), "{after:?}");
    assert!(present(40024, false)(&after), "{after:?}");
    // Nothing more to cut.
    let again = ns.inside(|| cut(&forbidden4, &forbidden6)).expect("cut");
    assert_eq!(again, 0);
}
