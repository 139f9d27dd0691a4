//! The engine's behaviour, message by message: local answers, the cache,
//! coalescing, failover, protection. No network.

use hickory_proto::op::{Edns, Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::rdata::{A, SOA};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType};
use netvm_dns::{Client, Config, Engine, Step, Transport, Zone};
use proptest::prelude::*;
use std::net::{Ipv4Addr, SocketAddr};

const UP1: &str = "203.0.113.1:53";
const UP2: &str = "203.0.113.2:53";

fn engine_with(upstreams: &[&str], rate: u32, max_inflight: usize) -> Engine {
    let zone = Zone::new(
        "internal",
        Ipv4Addr::new(192, 168, 100, 0),
        24,
        "net-vm.internal",
        &[
            (
                "net-vm.internal".into(),
                Ipv4Addr::new(192, 168, 100, 1),
                true,
            ),
            (
                "chrome-vm.internal".into(),
                Ipv4Addr::new(192, 168, 100, 101),
                true,
            ),
        ],
    )
    .expect("zone");
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
    e.set_learned(&[("laptop".into(), Ipv4Addr::new(192, 168, 100, 200))]);
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
