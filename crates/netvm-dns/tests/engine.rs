//! The engine's behaviour, message by message: local answers, the cache,
//! coalescing, failover, protection. No network.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, AAAA, PTR, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use netvm_dns::{Client, Config, Engine, Step, Transport, Zone};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

const UP1: &str = "203.0.113.1:53";
const UP2: &str = "203.0.113.2:53";

const PREFIX6: &str = "fd12:3456:789a::";

/// The address with interface identifier `iid` in the internal prefix.
fn v6(iid: u64) -> Ipv6Addr {
    let prefix: Ipv6Addr = PREFIX6.parse().expect("prefix");
    Ipv6Addr::from(u128::from(prefix) | u128::from(iid))
}

fn engine_with(upstreams: &[&str], rate: u32, max_inflight: usize) -> Engine {
    let v4 = |d| IpAddr::V4(Ipv4Addr::new(192, 168, 100, d));
    let zone = Zone::new(
        "internal",
        Ipv4Addr::new(192, 168, 100, 0),
        24,
        "net-vm.internal",
        &[
            ("net-vm.internal".into(), v4(1), true),
            ("net-vm.internal".into(), IpAddr::V6(v6(1)), true),
            ("chrome-vm.internal".into(), v4(101), true),
            ("chrome-vm.internal".into(), IpAddr::V6(v6(101)), true),
            ("printer.internal".into(), v4(60), true),
        ],
    )
    .expect("zone")
    .with_prefix6(PREFIX6.parse().expect("prefix"), 64);
    Engine::new(
        zone,
        Config {
            upstreams: upstreams.iter().map(|u| u.parse().expect("addr")).collect(),
            cache_size: 100,
            client_rate: rate,
            client_burst: rate.max(1),
            max_inflight,
            seed: 42,
        },
    )
}

fn engine() -> Engine {
    engine_with(&[UP1, UP2], 0, 64)
}

fn client(n: u8) -> Client {
    Client {
        addr: SocketAddr::from(([192, 168, 100, 100 + n], 40000)),
        transport: Transport::Udp,
    }
}

fn query_bytes(id: u16, name: &str, qtype: RecordType) -> Vec<u8> {
    let mut m = Message::query();
    m.metadata.id = id;
    m.metadata.recursion_desired = true;
    m.add_query(Query::query(Name::from_ascii(name).expect("name"), qtype));
    m.to_vec().expect("encode")
}

fn ask(e: &mut Engine, now: u64, who: Client, id: u16, name: &str, qtype: RecordType) -> Vec<Step> {
    let mut out = Vec::new();
    e.query(now, who, &query_bytes(id, name, qtype), &mut out);
    out
}

fn reply_of(step: &Step) -> (Client, Message) {
    match step {
        Step::Reply { to, bytes } => (*to, Message::from_vec(bytes).expect("reply parses")),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn asked(step: &Step) -> (u64, SocketAddr, Message) {
    match step {
        Step::Ask {
            token,
            upstream,
            bytes,
        } => (
            *token,
            *upstream,
            Message::from_vec(bytes).expect("question parses"),
        ),
        other => panic!("expected a question upstream, got {other:?}"),
    }
}

/// The upstream's answer to `question`.
fn upstream_answer(question: &Message, ttl: u32) -> Vec<u8> {
    let mut m = Message::response(question.metadata.id, OpCode::Query);
    m.metadata.recursion_available = true;
    m.add_query(question.queries[0].clone());
    m.add_answer(Record::from_rdata(
        question.queries[0].name.clone(),
        ttl,
        RData::A(A(Ipv4Addr::new(198, 51, 100, 7))),
    ));
    m.to_vec().expect("encode")
}

#[test]
fn internal_names_are_answered_here_and_never_forwarded() {
    let mut e = engine();
    let out = ask(
        &mut e,
        0,
        client(1),
        7,
        "Chrome-VM.internal.",
        RecordType::A,
    );
    let (to, m) = reply_of(&out[0]);
    assert_eq!(to, client(1));
    assert_eq!(m.metadata.id, 7);
    assert!(m.metadata.authoritative);
    assert_eq!(
        m.answers[0].data,
        RData::A(A(Ipv4Addr::new(192, 168, 100, 101)))
    );
    assert_eq!(
        m.queries[0].name.to_ascii(),
        "Chrome-VM.internal.",
        "question echoed as asked"
    );

    let out = ask(&mut e, 0, client(1), 8, "nobody.internal.", RecordType::A);
    let (_, m) = reply_of(&out[0]);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);

    let out = ask(
        &mut e,
        0,
        client(1),
        9,
        "101.100.168.192.in-addr.arpa.",
        RecordType::PTR,
    );
    let (_, m) = reply_of(&out[0]);
    assert_eq!(m.answers.len(), 1);
    let out = ask(
        &mut e,
        0,
        client(1),
        10,
        "77.100.168.192.in-addr.arpa.",
        RecordType::PTR,
    );
    assert_eq!(
        reply_of(&out[0]).1.metadata.response_code,
        ResponseCode::NXDomain
    );
    assert_eq!(e.counters().local, 4);
    assert_eq!(e.counters().forwarded, 0);
}

#[test]
fn other_names_go_upstream_once_then_come_from_the_cache() {
    let mut e = engine();
    let out = ask(&mut e, 0, client(1), 1, "www.example.com.", RecordType::A);
    let (token, upstream, question) = asked(&out[0]);
    assert_eq!(upstream, UP1.parse().expect("addr"));
    assert!(question.metadata.recursion_desired);
    let mut out = Vec::new();
    e.upstream_reply(10, token, &upstream_answer(&question, 300), &mut out);
    let (to, m) = reply_of(&out[0]);
    assert_eq!((to, m.metadata.id), (client(1), 1));
    assert_eq!(m.answers[0].ttl, 300);

    let out = ask(
        &mut e,
        5_010,
        client(2),
        2,
        "WWW.example.com.",
        RecordType::A,
    );
    let (to, m) = reply_of(&out[0]);
    assert_eq!((to, m.metadata.id), (client(2), 2));
    assert_eq!(m.answers[0].ttl, 295, "TTL counted down");
    assert_eq!(e.counters().cache_hits, 1);
    assert_eq!(e.counters().forwarded, 1);
}

#[test]
fn identical_questions_in_flight_share_one_upstream_query() {
    let mut e = engine();
    let first = ask(&mut e, 0, client(1), 11, "a.example.", RecordType::A);
    let second = ask(&mut e, 0, client(2), 22, "a.example.", RecordType::A);
    assert!(second.is_empty(), "{second:?}");
    let (token, _, question) = asked(&first[0]);
    let mut out = Vec::new();
    e.upstream_reply(1, token, &upstream_answer(&question, 60), &mut out);
    let ids: Vec<(Client, u16)> = out
        .iter()
        .map(reply_of)
        .map(|(c, m)| (c, m.metadata.id))
        .collect();
    assert_eq!(ids, [(client(1), 11), (client(2), 22)]);
    assert_eq!(e.counters().coalesced, 1);
    assert_eq!(e.in_flight(), 0);
}

#[test]
fn a_failing_upstream_hands_over_to_the_next_then_servfail() {
    let mut e = engine();
    let out = ask(&mut e, 0, client(1), 1, "b.example.", RecordType::A);
    let (token, first, _) = asked(&out[0]);
    let mut out = Vec::new();
    e.upstream_failed(token, &mut out);
    let (again, second, question) = asked(&out[0]);
    assert_eq!(
        (again, first, second),
        (token, UP1.parse().expect("a"), UP2.parse().expect("a"))
    );
    // The one that answered is asked first next time.
    let mut out = Vec::new();
    e.upstream_reply(1, token, &upstream_answer(&question, 60), &mut out);
    let out = ask(&mut e, 2, client(1), 2, "c.example.", RecordType::A);
    let (token, upstream, _) = asked(&out[0]);
    assert_eq!(upstream, UP2.parse().expect("addr"));
    let mut out = Vec::new();
    e.upstream_failed(token, &mut out);
    e.upstream_failed(token, &mut out);
    let (_, m) = reply_of(out.last().expect("a reply"));
    assert_eq!(m.metadata.response_code, ResponseCode::ServFail);
    assert_eq!(e.counters().upstream_failures, 3);
}

#[test]
fn answers_that_do_not_match_the_question_are_not_believed() {
    let mut e = engine();
    let out = ask(&mut e, 0, client(1), 1, "d.example.", RecordType::A);
    let (token, _, question) = asked(&out[0]);
    let mut forged = Message::from_vec(&upstream_answer(&question, 60)).expect("parse");
    forged.metadata.id = question.metadata.id.wrapping_add(1);
    let mut out = Vec::new();
    e.upstream_reply(1, token, &forged.to_vec().expect("encode"), &mut out);
    let (_, upstream, _) = asked(&out[0]);
    assert_eq!(upstream, UP2.parse().expect("addr"), "treated as a failure");
    let mut out = Vec::new();
    e.upstream_reply(1, token, b"\x00garbage", &mut out);
    assert_eq!(
        reply_of(&out[0]).1.metadata.response_code,
        ResponseCode::ServFail
    );
}

#[test]
fn negative_upstream_answers_are_cached_by_their_soa() {
    let mut e = engine();
    let out = ask(&mut e, 0, client(1), 1, "gone.example.", RecordType::A);
    let (token, _, question) = asked(&out[0]);
    let mut m = Message::response(question.metadata.id, OpCode::Query);
    m.metadata.response_code = ResponseCode::NXDomain;
    m.add_query(question.queries[0].clone());
    let zone = Name::from_ascii("example.").expect("name");
    m.add_authority(Record::from_rdata(
        zone.clone(),
        30,
        RData::SOA(SOA::new(zone.clone(), zone, 1, 1, 1, 1, 30)),
    ));
    let mut out = Vec::new();
    e.upstream_reply(0, token, &m.to_vec().expect("encode"), &mut out);
    let out = ask(&mut e, 1_000, client(1), 2, "gone.example.", RecordType::A);
    assert_eq!(
        reply_of(&out[0]).1.metadata.response_code,
        ResponseCode::NXDomain
    );
    let out = ask(&mut e, 31_000, client(1), 3, "gone.example.", RecordType::A);
    asked(&out[0]);
}

#[test]
fn any_other_classes_garbage_and_floods_are_refused_or_dropped() {
    let mut e = engine_with(&[UP1], 10, 64);
    let out = ask(&mut e, 0, client(1), 1, "example.com.", RecordType::ANY);
    assert_eq!(
        reply_of(&out[0]).1.metadata.response_code,
        ResponseCode::Refused
    );
    let mut chaos = Message::query();
    let mut q = Query::query(
        Name::from_ascii("version.bind.").expect("name"),
        RecordType::TXT,
    );
    q.query_class = DNSClass::CH;
    chaos.add_query(q);
    let mut out = Vec::new();
    e.query(0, client(1), &chaos.to_vec().expect("encode"), &mut out);
    assert_eq!(
        reply_of(&out[0]).1.metadata.response_code,
        ResponseCode::Refused
    );

    let mut out = Vec::new();
    e.query(0, client(1), b"\x12\x34\x01", &mut out);
    let mut response = Message::response(5, OpCode::Query);
    response.metadata.message_type = MessageType::Response;
    e.query(0, client(1), &response.to_vec().expect("encode"), &mut out);
    assert!(out.is_empty());
    assert_eq!(e.counters().malformed, 2);

    let answered = (0..20)
        .filter(|i| !ask(&mut e, 0, client(3), *i, "net-vm.internal.", RecordType::A).is_empty())
        .count();
    assert_eq!(answered, 10, "burst of 10, then dropped");
    assert_eq!(e.counters().rate_limited, 10);
}

#[test]
fn too_many_questions_in_flight_get_servfail() {
    let mut e = engine_with(&[UP1], 0, 2);
    assert!(matches!(
        ask(&mut e, 0, client(1), 1, "x1.example.", RecordType::A)[0],
        Step::Ask { .. }
    ));
    assert!(matches!(
        ask(&mut e, 0, client(1), 2, "x2.example.", RecordType::A)[0],
        Step::Ask { .. }
    ));
    let out = ask(&mut e, 0, client(1), 3, "x3.example.", RecordType::A);
    assert_eq!(
        reply_of(&out[0]).1.metadata.response_code,
        ResponseCode::ServFail
    );
    let mut none = engine_with(&[], 0, 2);
    let out = ask(&mut none, 0, client(1), 3, "x3.example.", RecordType::A);
    assert_eq!(
        reply_of(&out[0]).1.metadata.response_code,
        ResponseCode::ServFail
    );
}

#[test]
fn udp_replies_are_cut_to_the_clients_size_tcp_ones_are_not() {
    let mut e = engine();
    let out = ask(&mut e, 0, client(1), 1, "big.example.", RecordType::A);
    let (token, _, question) = asked(&out[0]);
    let mut m = Message::response(question.metadata.id, OpCode::Query);
    m.add_query(question.queries[0].clone());
    for i in 0..60u8 {
        m.add_answer(Record::from_rdata(
            question.queries[0].name.clone(),
            60,
            RData::A(A(Ipv4Addr::new(198, 51, 100, i))),
        ));
    }
    let mut out = Vec::new();
    e.upstream_reply(0, token, &m.to_vec().expect("encode"), &mut out);
    let (_, cut) = reply_of(&out[0]);
    assert!(cut.metadata.truncation && cut.answers.is_empty());
    // The same over TCP, and over UDP with EDNS room for it, is whole.
    let tcp = Client {
        addr: client(1).addr,
        transport: Transport::Tcp(1),
    };
    let out = ask(&mut e, 1, tcp, 2, "big.example.", RecordType::A);
    assert_eq!(reply_of(&out[0]).1.answers.len(), 60);
    let mut with_edns =
        Message::from_vec(&query_bytes(3, "big.example.", RecordType::A)).expect("parse");
    let mut edns = Edns::new();
    edns.set_max_payload(4096);
    with_edns.set_edns(edns);
    let mut out = Vec::new();
    e.query(1, client(1), &with_edns.to_vec().expect("encode"), &mut out);
    assert_eq!(reply_of(&out[0]).1.answers.len(), 60);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// No input makes the engine panic, and nothing but a parsed query
    /// gets a reply.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let mut e = engine();
        let mut out = Vec::new();
        e.query(0, client(1), &bytes, &mut out);
        for step in &out {
            if let Step::Ask { token, .. } = step {
                e.upstream_reply(0, *token, &bytes, &mut Vec::new());
            }
        }
    }

    /// Mutated real queries and answers: no panic, and every client that
    /// asked an upstream question is answered once all upstreams failed.
    #[test]
    fn mutated_messages_never_panic(
        flips in proptest::collection::vec((0usize..64, any::<u8>()), 0..8),
        names in proptest::collection::vec(0u8..4, 1..12),
    ) {
        let mut e = engine();
        let mut tokens = Vec::new();
        let mut waiting = 0;
        for (i, n) in names.iter().enumerate() {
            let mut bytes = query_bytes(i as u16, &format!("n{n}.example."), RecordType::A);
            for (at, value) in &flips {
                let len = bytes.len();
                if let Some(b) = bytes.get_mut(*at % len) { *b ^= value; }
            }
            let mut out = Vec::new();
            e.query(0, client(1), &bytes, &mut out);
            let parsed = Message::from_vec(&bytes).ok();
            if out.iter().any(|s| matches!(s, Step::Ask { .. })) || (out.is_empty() && parsed.is_some_and(|m| m.metadata.message_type == MessageType::Query && m.queries.len() == 1)) {
                waiting += 1;
            }
            tokens.extend(out.iter().filter_map(|s| match s { Step::Ask { token, .. } => Some(*token), _ => None }));
        }
        let mut replies = 0;
        for token in tokens {
            for _ in 0..2 {
                let mut out = Vec::new();
                e.upstream_failed(token, &mut out);
                replies += out.iter().filter(|s| matches!(s, Step::Reply { .. })).count();
            }
        }
        prop_assert_eq!(e.in_flight(), 0);
        prop_assert!(replies <= waiting);
    }
}

#[test]
fn prepared_replies_carry_each_clients_id_and_spelling_and_age() {
    let mut e = engine();
    for (id, name) in [(1, "chrome-vm.internal."), (2, "CHROME-vm.INTERNAL.")] {
        let (_, m) = reply_of(&ask(&mut e, 0, client(1), id, name, RecordType::A)[0]);
        assert_eq!(
            (m.metadata.id, m.queries[0].name.to_ascii()),
            (id, name.to_owned())
        );
        assert_eq!(m.answers.len(), 1);
    }
    assert_eq!(e.counters().local, 2);
    // A cached answer's TTL still counts down across seconds.
    let out = ask(&mut e, 0, client(1), 3, "t.example.", RecordType::A);
    let (token, _, question) = asked(&out[0]);
    e.upstream_reply(0, token, &upstream_answer(&question, 100), &mut Vec::new());
    let ttl = |e: &mut Engine, now, id| {
        reply_of(&ask(e, now, client(2), id, "T.example.", RecordType::A)[0])
            .1
            .answers[0]
            .ttl
    };
    assert_eq!(ttl(&mut e, 100, 4), 100);
    assert_eq!(ttl(&mut e, 900, 5), 100);
    assert_eq!(ttl(&mut e, 2_100, 6), 98);
    assert!(
        asked_nothing(&mut e, 100_000),
        "expired: asked upstream again"
    );
    // A learned name replaces the prepared NXDOMAIN at once.
    let (_, m) = reply_of(&ask(&mut e, 0, client(1), 7, "laptop.internal.", RecordType::A)[0]);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    e.set_learned(&[(
        "laptop".into(),
        IpAddr::V4(Ipv4Addr::new(192, 168, 100, 200)),
    )]);
    let (_, m) = reply_of(&ask(&mut e, 0, client(1), 8, "laptop.internal.", RecordType::A)[0]);
    assert_eq!(m.answers.len(), 1);
}

/// Whether asking t.example at `now` goes upstream (no prepared reply).
fn asked_nothing(e: &mut Engine, now: u64) -> bool {
    matches!(
        ask(e, now, client(2), 9, "t.example.", RecordType::A).first(),
        Some(Step::Ask { .. })
    )
}

fn client6(addr: &str) -> Client {
    Client {
        addr: SocketAddr::new(addr.parse().expect("ip"), 40000),
        transport: Transport::Udp,
    }
}

fn reverse(ip: Ipv6Addr) -> String {
    Name::from(ip).to_ascii()
}

#[test]
fn internal_names_have_aaaa_records_and_ip6_arpa_ptrs_answered_here() {
    let mut e = engine();
    let who = client6(&v6(101).to_string());
    let (to, m) = reply_of(&ask(&mut e, 0, who, 1, "chrome-vm.internal.", RecordType::AAAA)[0]);
    assert_eq!(to, who);
    assert!(m.metadata.authoritative);
    assert_eq!(
        m.answers.iter().map(|r| r.data.clone()).collect::<Vec<_>>(),
        [RData::AAAA(AAAA(v6(101)))]
    );
    // A name without IPv6: NOERROR with no answer (NODATA) and the SOA.
    let (_, m) = reply_of(&ask(&mut e, 0, who, 2, "printer.internal.", RecordType::AAAA)[0]);
    assert_eq!(m.metadata.response_code, ResponseCode::NoError);
    assert!(m.answers.is_empty());
    assert_eq!(m.authorities[0].record_type(), RecordType::SOA);
    // PTRs under ip6.arpa, upper-case nibbles too.
    let (_, m) = reply_of(&ask(&mut e, 0, who, 3, &reverse(v6(101)), RecordType::PTR)[0]);
    assert_eq!(
        m.answers[0].data,
        RData::PTR(PTR(Name::from_ascii("chrome-vm.internal.").expect("name")))
    );
    let upper = reverse(v6(0xab)).to_uppercase();
    let (_, m) = reply_of(&ask(&mut e, 0, who, 4, &upper, RecordType::PTR)[0]);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
    assert_eq!(e.counters().forwarded, 0);
    // Another prefix's reverse names are forwarded.
    let elsewhere = reverse("2001:db8::1".parse().expect("ip"));
    assert!(matches!(
        ask(&mut e, 0, who, 5, &elsewhere, RecordType::PTR)[0],
        Step::Ask { .. }
    ));
    // A learned IPv6 name comes and goes with its lease.
    e.set_learned(&[
        (
            "laptop".into(),
            IpAddr::V4(Ipv4Addr::new(192, 168, 100, 200)),
        ),
        ("laptop".into(), IpAddr::V6(v6(0x1_0000_00c8))),
    ]);
    let (_, m) = reply_of(&ask(&mut e, 0, who, 6, "laptop.internal.", RecordType::AAAA)[0]);
    assert_eq!(m.answers[0].data, RData::AAAA(AAAA(v6(0x1_0000_00c8))));
    let (_, m) = reply_of(
        &ask(
            &mut e,
            0,
            who,
            7,
            &reverse(v6(0x1_0000_00c8)),
            RecordType::PTR,
        )[0],
    );
    assert_eq!(
        m.answers[0].data,
        RData::PTR(PTR(Name::from_ascii("laptop.internal.").expect("name")))
    );
    e.set_learned(&[]);
    let (_, m) = reply_of(&ask(&mut e, 0, who, 8, "laptop.internal.", RecordType::AAAA)[0]);
    assert_eq!(m.metadata.response_code, ResponseCode::NXDomain);
}

#[test]
fn ipv6_clients_are_limited_per_address_in_the_prefix_and_per_64_elsewhere() {
    let mut e = engine_with(&[UP1], 2, 64);
    let mut answered = |who: &str| {
        (0..3)
            .filter(|i| {
                !ask(
                    &mut e,
                    0,
                    client6(who),
                    *i,
                    "net-vm.internal.",
                    RecordType::AAAA,
                )
                .is_empty()
            })
            .count()
    };
    // Two VMs in the internal /64: a bucket each.
    assert_eq!(answered(&v6(101).to_string()), 2);
    assert_eq!(answered(&v6(102).to_string()), 2);
    // Link-local sources share their /64's bucket.
    assert_eq!(answered("fe80::1"), 2);
    assert_eq!(answered("fe80::2"), 0);
    assert_eq!(answered("fe80:0:0:1::2"), 2);
}

#[test]
fn ipv6_upstreams_are_asked_in_the_order_given_and_checked_alike() {
    const UP6: &str = "[2001:db8::53]:53";
    let mut e = engine_with(&[UP6, UP1], 0, 64);
    let out = ask(&mut e, 0, client(1), 1, "v6.example.", RecordType::AAAA);
    let (token, upstream, question) = asked(&out[0]);
    assert_eq!(upstream, UP6.parse().expect("addr"));
    // A forged ID from the IPv6 upstream is a failure: the next is asked.
    let mut forged = Message::from_vec(&upstream_answer(&question, 60)).expect("parse");
    forged.metadata.id = question.metadata.id.wrapping_add(1);
    let mut out = Vec::new();
    e.upstream_reply(1, token, &forged.to_vec().expect("encode"), &mut out);
    let (token, upstream, question) = asked(&out[0]);
    assert_eq!(upstream, UP1.parse().expect("addr"));
    let mut out = Vec::new();
    e.upstream_reply(1, token, &upstream_answer(&question, 60), &mut out);
    assert_eq!(reply_of(&out[0]).1.metadata.id, 1);
    // Learned upstreams of both families, in their order.
    e.set_upstreams(vec![UP1.parse().expect("a"), UP6.parse().expect("a")]);
    let out = ask(&mut e, 2, client(1), 2, "w.example.", RecordType::A);
    assert_eq!(asked(&out[0]).1, UP1.parse().expect("addr"));
}

/// A label for a generated name.
fn label() -> impl Strategy<Value = String> {
    "[a-z][a-z0-9-]{0,12}[a-z0-9]"
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// Any zone: every name's AAAA is its address in the prefix in use,
    /// its A its IPv4 address, and the PTR of either leads back to it.
    #[test]
    fn generated_zones_answer_aaaa_and_both_ptrs(
        top in any::<u64>(),
        hosts in proptest::collection::btree_map(label(), 2u32..0xfffe, 1..20),
    ) {
        let prefix = Ipv6Addr::from(u128::from(top) << 64);
        let mut names = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let hosts: Vec<(String, u32)> = hosts.into_iter().filter(|(_, h)| seen.insert(*h)).collect();
        for (label, host) in &hosts {
            let fqdn = format!("{label}.internal");
            names.push((fqdn.clone(), IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | host)), true));
            names.push((fqdn, IpAddr::V6(Ipv6Addr::from(u128::from(prefix) | u128::from(*host))), true));
        }
        let zone = Zone::new("internal", Ipv4Addr::new(10, 0, 0, 0), 8, "net-vm.internal", &names)
            .expect("zone")
            .with_prefix6(prefix, 64);
        let mut e = Engine::new(zone, Config {
            upstreams: vec![UP1.parse().expect("addr")],
            cache_size: 10,
            client_rate: 0,
            client_burst: 1,
            max_inflight: 4,
            seed: 1,
        });
        for (i, (label, host)) in hosts.iter().enumerate() {
            let fqdn = format!("{label}.internal.");
            let ip6 = Ipv6Addr::from(u128::from(prefix) | u128::from(*host));
            let ip4 = Ipv4Addr::from(0x0a00_0000 | host);
            let id = i as u16;
            let (_, m) = reply_of(&ask(&mut e, 0, client(1), id, &fqdn, RecordType::AAAA)[0]);
            prop_assert_eq!(m.answers.iter().map(|r| r.data.clone()).collect::<Vec<_>>(), vec![RData::AAAA(AAAA(ip6))]);
            let (_, m) = reply_of(&ask(&mut e, 0, client(1), id, &fqdn, RecordType::A)[0]);
            prop_assert_eq!(m.answers.iter().map(|r| r.data.clone()).collect::<Vec<_>>(), vec![RData::A(A(ip4))]);
            let owner = RData::PTR(PTR(Name::from_ascii(&fqdn).expect("name")));
            for reverse in [Name::from(ip6), Name::from(ip4)] {
                let (_, m) = reply_of(&ask(&mut e, 0, client(1), id, &reverse.to_ascii(), RecordType::PTR)[0]);
                prop_assert_eq!(m.answers.len(), 1);
                prop_assert_eq!(&m.answers[0].data, &owner);
            }
        }
        prop_assert_eq!(e.counters().forwarded, 0);
    }

    /// No name under the internal prefix's reverse zone, well formed or
    /// not, of any type, is ever forwarded, and none makes a panic.
    #[test]
    fn names_under_the_prefix_reverse_zone_never_go_upstream(
        labels in proptest::collection::vec(
            prop_oneof![
                4 => "[0-9a-fA-F]",
                1 => "[0-9a-z-]{1,5}",
            ],
            0..40,
        ),
        qtype in prop_oneof![
            Just(RecordType::PTR),
            Just(RecordType::NS),
            Just(RecordType::SOA),
            Just(RecordType::AAAA),
            Just(RecordType::TXT),
        ],
    ) {
        let mut e = engine();
        let apex = "0.0.0.0.0.0.0.0.a.9.8.7.6.5.4.3.2.1.d.f.ip6.arpa.";
        let mut text = labels.join(".");
        if !text.is_empty() {
            text.push('.');
        }
        text.push_str(apex);
        if let Ok(name) = Name::from_ascii(&text) {
            let mut m = Message::query();
            m.add_query(Query::query(name, qtype));
            if let Ok(bytes) = m.to_vec() {
                let mut out = Vec::new();
                e.query(0, client(1), &bytes, &mut out);
                prop_assert_eq!(out.len(), 1);
                let replied = matches!(out[0], Step::Reply { .. });
                prop_assert!(replied);
            }
        }
        prop_assert_eq!(e.counters().forwarded, 0);
    }
}
