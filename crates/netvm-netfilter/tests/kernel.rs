//! The netlink layer against the real kernel, as root, inside namespaces
//! made by the test: set elements checked with `nft -j list set`, an NFLOG
//! record for a packet sent over a veth pair, conntrack entries made by
//! packets over loopback.

use netvm_description::values::MacAddr;
use netvm_netfilter::conntrack::{self, Conntrack};
use netvm_netfilter::{Element, Error, LogListener, LogRecord, NfTables, Part};
use netvm_testsupport::Netns;
use nix::errno::Errno;
use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

/// Loads `ruleset` with `nft -f` inside `ns`.
fn nft_load(ns: &Netns, ruleset: &str) {
    let path = std::env::temp_dir().join(format!("{}.nft", ns.name()));
    std::fs::write(&path, ruleset).expect("write the ruleset");
    let path = path.to_string_lossy().into_owned();
    ns.ok(&["nft", "-f", &path]);
    let _ = std::fs::remove_file(&path);
}

/// The elements of `set` as `nft -j list set` prints them, each its
/// concatenation's JSON.
fn listed(ns: &Netns, set: &str) -> BTreeSet<String> {
    let out = ns.ok(&["nft", "-j", "list", "set", "inet", "t", set]);
    let json: serde_json::Value = serde_json::from_str(&out).expect("nft json");
    json["nftables"]
        .as_array()
        .expect("nftables array")
        .iter()
        .filter_map(|o| o.get("set"))
        .flat_map(|s| s["elem"].as_array().cloned().unwrap_or_default())
        .map(|e| e["concat"].to_string())
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

const RULESET: &str = r#"
table inet t {
    counter c1 { }
    counter c2 { }
    set s { type ipv4_addr . ether_addr; }
    set s6 { type ipv6_addr . ether_addr; }
    set p { type ipv4_addr . inet_proto . inet_service; }
    chain out {
        type filter hook output priority 0; policy accept;
        udp dport 9 counter name "c1"
    }
}
"#;

#[test]
fn set_elements_are_added_and_removed_in_one_batch_each() {
    let ns = Netns::new("nfset");
    nft_load(&ns, RULESET);
    let mac = |last| MacAddr([0x02, 0, 0, 0, 0, last]);
    let a = Element::ipv4_mac(Ipv4Addr::new(10, 0, 0, 2), mac(1));
    let b = Element::ipv4_mac(Ipv4Addr::new(10, 0, 0, 3), mac(2));
    let gone = Element::ipv4_mac(Ipv4Addr::new(10, 0, 0, 9), mac(9));
    let dns = Element(vec![
        Part::Ipv4(Ipv4Addr::new(10, 0, 0, 2)),
        Part::Proto(17),
        Part::Port(53),
    ]);
    let mut nft = ns.inside(|| NfTables::open().expect("open"));

    nft.add("t", "s", &[a.clone(), b.clone()]).expect("add");
    nft.add("t", "s", std::slice::from_ref(&a))
        .expect("adding again is fine");
    nft.add("t", "p", std::slice::from_ref(&dns)).expect("add");
    assert_eq!(
        listed(&ns, "s"),
        set(&[
            r#"["10.0.0.2","02:00:00:00:00:01"]"#,
            r#"["10.0.0.3","02:00:00:00:00:02"]"#
        ])
    );
    assert_eq!(listed(&ns, "p"), set(&[r#"["10.0.0.2","udp",53]"#]));
    let v6 = Element::ipv6_mac("fd00:1::a".parse().expect("ip"), mac(3));
    nft.add("t", "s6", std::slice::from_ref(&v6))
        .expect("add v6");
    assert_eq!(
        listed(&ns, "s6"),
        set(&[r#"["fd00:1::a","02:00:00:00:00:03"]"#])
    );
    nft.remove("t", "s6", std::slice::from_ref(&v6))
        .expect("remove v6");
    assert!(listed(&ns, "s6").is_empty());

    // One absent element neither fails nor keeps the others.
    nft.remove("t", "s", &[gone.clone(), a.clone()])
        .expect("remove");
    assert_eq!(
        listed(&ns, "s"),
        set(&[r#"["10.0.0.3","02:00:00:00:00:02"]"#])
    );
    nft.remove("t", "s", std::slice::from_ref(&gone))
        .expect("removing what is absent is fine");
    nft.remove("t", "p", std::slice::from_ref(&dns))
        .expect("remove");
    assert!(listed(&ns, "p").is_empty());

    // A missing set is an error naming the errno (and the element).
    let err = nft
        .add("t", "nosuchset", std::slice::from_ref(&a))
        .expect_err("no such set");
    assert_eq!(err.errno(), Some(Errno::ENOENT), "{err}");
    assert!(
        matches!(&err, Error::Element { op: "add", element, .. } if *element == a),
        "{err:?}"
    );
    assert!(err.to_string().contains("t.nosuchset"), "{err}");
    let err = nft
        .remove("t", "nosuchset", std::slice::from_ref(&a))
        .expect_err("no such set");
    assert_eq!(err.errno(), Some(Errno::ENOENT), "{err}");
    // A key of the wrong length is refused too.
    let err = nft
        .add("t", "s", &[Element(vec![Part::Port(1)])])
        .expect_err("wrong key length");
    assert!(err.errno().is_some(), "{err}");

    // Counters: c1 counts a UDP packet to port 9 sent from inside.
    ns.inside(|| {
        let socket = UdpSocket::bind("127.0.0.1:0").expect("bind");
        socket.send_to(b"x", "127.0.0.1:9").expect("send");
    });
    let counters = nft.counters("t").expect("counters");
    let names: BTreeSet<&str> = counters.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, BTreeSet::from(["c1", "c2"]));
    let c1 = counters.iter().find(|c| c.name == "c1").expect("c1");
    assert!(c1.packets >= 1 && c1.bytes >= 29, "{c1:?}");
    assert!(nft.counters("nosuchtable").expect("empty").is_empty());
}

/// Receives until a record with `prefix` arrives (sending again with
/// `send` while waiting), or panics after a generous deadline.
fn receive(listener: &mut LogListener, prefix: &str, send: impl Fn()) -> LogRecord {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        send();
        listener
            .wait(Some(Duration::from_millis(500)))
            .expect("wait");
        let records = listener.recv().expect("recv");
        if let Some(r) = records.into_iter().find(|r| r.prefix == prefix) {
            return r;
        }
    }
    panic!("no NFLOG record with prefix {prefix}");
}

#[test]
fn a_logged_packet_arrives_as_a_record() {
    let a = Netns::new("nfloga");
    let b = Netns::new("nflogb");
    netvm_testsupport::veth(&a, "va", &b, "vb");
    a.ok(&["ip", "addr", "add", "10.77.0.1/24", "dev", "va"]);
    b.ok(&["ip", "addr", "add", "10.77.0.2/24", "dev", "vb"]);
    let mac = a.ok(&["cat", "/sys/class/net/va/address"]);
    nft_load(
        &b,
        r#"table inet t {
            chain input {
                type filter hook input priority 0; policy accept;
                udp dport 5353 log prefix "ev_test" group 7
            }
        }"#,
    );
    let mut listener = b.inside(|| LogListener::bind(7).expect("bind"));
    assert!(listener.recv().expect("recv").is_empty(), "nothing yet");
    let sender = a.inside(|| UdpSocket::bind("10.77.0.1:40001").expect("bind"));

    let record = receive(&mut listener, "ev_test", || {
        sender.send_to(b"hello", "10.77.0.2:5353").expect("send");
    });
    let packet = record.packet.expect("an IPv4 packet");
    assert_eq!(packet.src, Ipv4Addr::new(10, 77, 0, 1));
    assert_eq!(packet.dst, Ipv4Addr::new(10, 77, 0, 2));
    assert_eq!(
        (packet.proto, packet.sport, packet.dport),
        (17, Some(40001), Some(5353))
    );
    let hw = record.hw_source.expect("source MAC on a veth");
    let printed: Vec<String> = hw.0.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(printed.join(":"), mac.trim());
    assert!(record.in_ifindex.is_some());

    // A second socket cannot take the same group.
    let err = b.inside(|| LogListener::bind(7).err());
    assert!(err.is_some(), "group 7 is taken");
}

/// IPv6 packets logged by a rule of an `inet` table reach the same
/// group's listener, summarized with their IPv6 addresses.
#[test]
fn a_logged_ipv6_packet_arrives_as_a_record() {
    let a = Netns::new("nfl6a");
    let b = Netns::new("nfl6b");
    netvm_testsupport::veth(&a, "va", &b, "vb");
    a.ok(&["ip", "addr", "add", "fd77::1/64", "dev", "va", "nodad"]);
    b.ok(&["ip", "addr", "add", "fd77::2/64", "dev", "vb", "nodad"]);
    nft_load(
        &b,
        r#"table inet t {
            chain input {
                type filter hook input priority 0; policy accept;
                udp dport 5353 log prefix "ev_test6" group 7
            }
        }"#,
    );
    let mut listener = b.inside(|| LogListener::bind(7).expect("bind"));
    let sender = a.inside(|| UdpSocket::bind("[fd77::1]:40001").expect("bind"));
    let record = receive(&mut listener, "ev_test6", || {
        sender.send_to(b"hello", "[fd77::2]:5353").expect("send");
    });
    let packet = record.packet.expect("an IPv6 packet");
    let ip = |text: &str| -> IpAddr { text.parse().expect("address") };
    assert_eq!((packet.src, packet.dst), (ip("fd77::1"), ip("fd77::2")));
    assert_eq!(
        (packet.proto, packet.sport, packet.dport),
        (17, Some(40001), Some(5353))
    );
    assert!(record.hw_source.is_some());
}

#[test]
fn a_flood_is_counted_not_fatal() {
    let ns = Netns::new("nflood");
    nft_load(
        &ns,
        r#"table inet t {
            chain out {
                type filter hook output priority 0; policy accept;
                udp dport 9 log prefix "flood" group 3
            }
        }"#,
    );
    let mut listener = ns.inside(|| LogListener::bind(3).expect("bind"));
    // The smallest receive buffer the kernel allows fills after a few
    // messages.
    nix::sys::socket::setsockopt(&listener, nix::sys::socket::sockopt::RcvBuf, &0)
        .expect("shrink the buffer");
    let sender = ns.inside(|| UdpSocket::bind("127.0.0.1:0").expect("bind"));
    for _ in 0..2000 {
        sender.send_to(b"x", "127.0.0.1:9").expect("send");
    }
    let mut received = 0u64;
    while listener
        .wait(Some(Duration::from_millis(200)))
        .expect("wait")
    {
        received += listener.recv().expect("recv survives overflow").len() as u64;
    }
    assert!(received > 0 && received < 2000, "received {received}");
    assert!(listener.overflows() > 0);
    // It goes on; the next message that arrives reveals how many were lost.
    let mut sent = 2000;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut more = 0;
    while more == 0 && Instant::now() < deadline {
        sender.send_to(b"x", "127.0.0.1:9").expect("send");
        sent += 1;
        listener
            .wait(Some(Duration::from_millis(500)))
            .expect("wait");
        more = listener.recv().expect("recv").len() as u64;
    }
    assert!(more > 0, "nothing received after the flood");
    received += more;
    assert_eq!(
        received + listener.lost(),
        sent,
        "received {received}, lost {}, sent {sent}",
        listener.lost()
    );
}

#[test]
fn tracked_connections_are_listed_and_deleted() {
    let ns = Netns::new("nfct");
    nft_load(
        &ns,
        r#"table inet t {
            chain out {
                type filter hook output priority 0; policy accept;
                ct state new counter
            }
        }"#,
    );
    let mut ct = ns.inside(|| Conntrack::open().expect("open"));
    ns.inside(|| {
        let socket = UdpSocket::bind("127.0.0.1:40002").expect("bind");
        socket.send_to(b"x", "127.0.0.1:40003").expect("send");
    });
    ns.ok(&["ping", "-c", "1", "-W", "5", "127.0.0.1"]);

    let entries = ct.dump_ipv4().expect("dump");
    let udp = *entries
        .iter()
        .find(|t| t.proto == 17 && t.dport == Some(40003))
        .unwrap_or_else(|| panic!("the UDP flow in {entries:?}"));
    assert_eq!(
        (udp.src, udp.dst, udp.sport),
        (
            IpAddr::from(Ipv4Addr::LOCALHOST),
            IpAddr::from(Ipv4Addr::LOCALHOST),
            Some(40002)
        )
    );
    let icmp = *entries
        .iter()
        .find(|t| t.proto == 1)
        .unwrap_or_else(|| panic!("the ping in {entries:?}"));
    assert_eq!((icmp.sport, icmp.dport), (None, None));
    assert_eq!(icmp.icmp.map(|i| i.kind), Some(8));

    assert!(ct.delete(&udp).expect("delete"), "deleted");
    assert!(ct.delete(&icmp).expect("delete icmp"), "deleted");
    let after = ct.dump_ipv4().expect("dump");
    assert!(!after.contains(&udp) && !after.contains(&icmp), "{after:?}");
    assert!(!ct.delete(&udp).expect("delete again"), "already gone");
    // The one-shot functions use a socket of the caller thread's namespace.
    let again = ns.inside(|| conntrack::delete(&icmp)).expect("delete");
    assert!(!again, "already gone");
}

#[test]
fn tracked_ipv6_connections_are_listed_and_deleted() {
    let ns = Netns::new("n6tnfct");
    nft_load(
        &ns,
        r#"table inet t {
            chain out {
                type filter hook output priority 0; policy accept;
                ct state new counter
            }
        }"#,
    );
    let mut ct = ns.inside(|| Conntrack::open().expect("open"));
    let (_listener, _client, _server) = ns.inside(|| {
        let socket = UdpSocket::bind("[::1]:40002").expect("bind");
        socket.send_to(b"x", "[::1]:40003").expect("send");
        let listener = TcpListener::bind("[::1]:40004").expect("listen");
        let client = TcpStream::connect("[::1]:40004").expect("connect");
        let (server, _) = listener.accept().expect("accept");
        (listener, client, server)
    });
    ns.ok(&["ping", "-6", "-c", "1", "-W", "5", "::1"]);
    // An IPv4 flow too: the IPv6 table must not list it.
    ns.inside(|| {
        let socket = UdpSocket::bind("127.0.0.1:40002").expect("bind");
        socket.send_to(b"x", "127.0.0.1:40003").expect("send");
    });

    let entries = ct.dump_ipv6().expect("dump");
    assert!(entries.iter().all(|t| t.src.is_ipv6() && t.dst.is_ipv6()));
    let localhost = IpAddr::from(Ipv6Addr::LOCALHOST);
    let udp = *entries
        .iter()
        .find(|t| t.proto == 17 && t.dport == Some(40003))
        .unwrap_or_else(|| panic!("the UDP flow in {entries:?}"));
    assert_eq!(
        (udp.src, udp.dst, udp.sport),
        (localhost, localhost, Some(40002))
    );
    let tcp = *entries
        .iter()
        .find(|t| t.proto == 6 && t.dport == Some(40004))
        .unwrap_or_else(|| panic!("the TCP connection in {entries:?}"));
    assert_eq!((tcp.src, tcp.dst), (localhost, localhost));
    let icmp = *entries
        .iter()
        .find(|t| t.proto == 58)
        .unwrap_or_else(|| panic!("the ping in {entries:?}"));
    assert_eq!((icmp.sport, icmp.dport), (None, None));
    assert_eq!(icmp.icmp.map(|i| i.kind), Some(128));
    let all = ct.dump_all().expect("dump all");
    assert!(all.contains(&udp) && all.contains(&tcp) && all.contains(&icmp));
    assert!(
        all.iter()
            .any(|t| t.src.is_ipv4() && t.dport == Some(40003)),
        "the IPv4 flow in {all:?}"
    );

    assert!(ct.delete(&udp).expect("delete"), "deleted");
    assert!(ct.delete(&tcp).expect("delete tcp"), "deleted");
    assert!(ct.delete(&icmp).expect("delete icmpv6"), "deleted");
    let after = ct.dump_ipv6().expect("dump");
    assert!(
        !after.contains(&udp) && !after.contains(&tcp) && !after.contains(&icmp),
        "{after:?}"
    );
    assert!(!ct.delete(&udp).expect("delete again"), "already gone");
    let again = ns.inside(|| conntrack::delete(&icmp)).expect("delete");
    assert!(!again, "already gone");
    // The IPv4 flow is still there.
    let v4 = ns.inside(conntrack::dump_ipv4).expect("dump");
    assert!(v4.iter().any(|t| t.dport == Some(40003)), "{v4:?}");
}

#[test]
fn thousands_of_elements_go_in_and_out() {
    let ns = Netns::new("nfbig");
    nft_load(&ns, RULESET);
    let elements: Vec<Element> = (0..3000u32)
        .map(|i| {
            let [_, _, x, y] = i.to_be_bytes();
            Element::ipv4_mac(Ipv4Addr::new(10, 1, x, y), MacAddr([2, 0, 0, 0, x, y]))
        })
        .collect();
    let mut nft = ns.inside(|| NfTables::open().expect("open"));
    nft.add("t", "s", &elements).expect("add");
    assert_eq!(listed(&ns, "s").len(), 3000);
    // Every other one removed first: the second remove meets 1500 absent.
    let odd: Vec<Element> = elements.iter().skip(1).step_by(2).cloned().collect();
    nft.remove("t", "s", &odd).expect("remove odd");
    assert_eq!(listed(&ns, "s").len(), 1500);
    nft.remove("t", "s", &elements).expect("remove all");
    assert!(listed(&ns, "s").is_empty());
}
